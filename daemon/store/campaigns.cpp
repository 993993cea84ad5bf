// CampaignsRepo: campaign definitions and agents, uploads, imported contacts and the status report.
#include "osvi/store/campaigns.hpp"

#include <cerrno>
#include <map>
#include <string>
#include <utility>

#include "contact_rows.hpp"
#include "osvi/store/database.hpp"
#include "sqlite.hpp"

namespace osvi::daemon {
namespace {

using store_rows::kContactColumns;
using store_rows::read_contact;

using sql::run;
using sql::wrap;

constexpr const char* kCampaignColumns =
    "id, name, status, source, is_retry_enabled, retry_threshold, retry_delay, retry_on, starts_at, ends_at, "
    "window_start, window_end, days_mask, max_concurrent_per_agent, definition_hash, created_at, updated_at";

constexpr const char* kUploadColumns =
    "id, campaign_id, agent_uuid, file_name, source, enqueued, idempotency_key, result_json, created_at";

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ',';
    out += item;
  }
  return out;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size() && !text.empty()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    if (comma > start) out.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

CampaignRow read_campaign(const sql::Stmt& s) {
  CampaignRow c;
  c.id = s.int64(0);
  c.name = s.text(1);
  c.status = s.text(2);
  c.source = s.text(3);
  c.is_retry_enabled = s.int64(4) != 0;
  c.retry_threshold = s.int64(5);
  c.retry_delay_s = s.int64(6);
  c.retry_on = split(s.text(7));
  c.starts_at_ms = s.opt_int64(8);
  c.ends_at_ms = s.opt_int64(9);
  c.window_start_min = s.is_null(10) ? 0 : static_cast<int>(s.int64(10));
  c.window_end_min = s.is_null(11) ? 24 * 60 : static_cast<int>(s.int64(11));
  c.days_mask = static_cast<int>(s.int64(12));
  c.max_concurrent_per_agent = s.int64(13);
  c.definition_hash = s.text(14);
  c.created_at_ms = s.int64(15);
  c.updated_at_ms = s.int64(16);
  return c;
}

UploadRow read_upload(const sql::Stmt& s) {
  UploadRow u;
  u.id = s.int64(0);
  u.campaign_id = s.int64(1);
  u.agent_uuid = s.is_null(2) ? std::string() : s.text(2);
  u.file_name = s.is_null(3) ? std::string() : s.text(3);
  u.source = s.text(4);
  u.enqueued = s.int64(5) != 0;
  u.idempotency_key = s.opt_text(6);
  u.result_json = s.opt_text(7);
  u.created_at_ms = s.int64(8);
  return u;
}

// Characters, not bytes: "longer name" is what a person reads (a Devanagari name is 3 bytes a letter).
size_t utf8_chars(std::string_view text) {
  size_t n = 0;
  for (char ch : text) {
    if ((static_cast<unsigned char>(ch) & 0xC0) != 0x80) ++n;
  }
  return n;
}

// By agent_uuid: campaign_agents is WITHOUT ROWID, so the order of the definition is not kept.
Status load_agents(sql::Db& db, CampaignRow& row) {
  auto stmt =
      db.cached("SELECT agent_uuid, active FROM campaign_agents WHERE campaign_id = ?1 ORDER BY agent_uuid");
  if (!stmt.ok()) return stmt.error();
  (*stmt)->bind(1, row.id);
  row.agents.clear();
  for (;;) {
    auto r = (*stmt)->step();
    if (!r.ok()) return r.error();
    if (!*r) break;
    row.agents.push_back(CampaignAgentRow{(*stmt)->text(0), (*stmt)->int64(1) != 0});
  }
  return {};
}

}  // namespace

Status CampaignsRepo::upsert(const CampaignRow& row) {
  const int64_t now = db_.clock().wall_ms();
  Status s = db_.transaction([&]() -> Status {
    const int64_t created = row.created_at_ms > 0 ? row.created_at_ms : now;
    Status up = run(
        db_.sql(),
        "INSERT INTO campaigns (id, name, status, source, is_retry_enabled, retry_threshold, "
        "retry_delay, retry_on, starts_at, ends_at, window_start, window_end, days_mask, "
        "max_concurrent_per_agent, definition_hash, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, "
        "?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) ON CONFLICT (id) DO UPDATE SET "
        "name = excluded.name, status = excluded.status, source = excluded.source, "
        "is_retry_enabled = excluded.is_retry_enabled, retry_threshold = excluded.retry_threshold, "
        "retry_delay = excluded.retry_delay, retry_on = excluded.retry_on, starts_at = "
        "excluded.starts_at, ends_at = excluded.ends_at, window_start = excluded.window_start, "
        "window_end = excluded.window_end, days_mask = excluded.days_mask, "
        "max_concurrent_per_agent = excluded.max_concurrent_per_agent, definition_hash = "
        "excluded.definition_hash, updated_at = excluded.updated_at",
        row.id, row.name, row.status, row.source, row.is_retry_enabled, row.retry_threshold,
        row.retry_delay_s, join(row.retry_on), row.starts_at_ms, row.ends_at_ms, row.window_start_min,
        row.window_end_min, row.days_mask, row.max_concurrent_per_agent, row.definition_hash, created, now);
    if (!up.ok()) return up;
    Status del = run(db_.sql(), "DELETE FROM campaign_agents WHERE campaign_id = ?1", row.id);
    if (!del.ok()) return del;
    for (const auto& agent : row.agents) {
      Status ins =
          run(db_.sql(), "INSERT INTO campaign_agents (campaign_id, agent_uuid, active) VALUES (?1, ?2, ?3)",
              row.id, agent.agent_uuid, agent.active);
      if (!ins.ok()) return ins;
    }
    return {};
  });
  if (!s.ok()) return wrap("saving campaign " + std::to_string(row.id), s.error());
  return {};
}

Result<std::optional<CampaignRow>> CampaignsRepo::get(int64_t id) {
  const std::string what = "reading campaign " + std::to_string(id);
  std::optional<CampaignRow> out;
  {
    auto stmt = db_.sql().cached(std::string("SELECT ") + kCampaignColumns + " FROM campaigns WHERE id = ?1");
    if (!stmt.ok()) return wrap(what, stmt.error());
    (*stmt)->bind(1, id);
    auto r = (*stmt)->step();
    if (!r.ok()) return wrap(what, r.error());
    if (!*r) return out;
    out = read_campaign(**stmt);
  }
  if (Status s = load_agents(db_.sql(), *out); !s.ok()) return wrap(what, s.error());
  return out;
}

Result<std::vector<CampaignRow>> CampaignsRepo::list() {
  std::vector<CampaignRow> out;
  {
    auto stmt = db_.sql().cached(std::string("SELECT ") + kCampaignColumns + " FROM campaigns ORDER BY id");
    if (!stmt.ok()) return wrap("listing campaigns", stmt.error());
    for (;;) {
      auto r = (*stmt)->step();
      if (!r.ok()) return wrap("listing campaigns", r.error());
      if (!*r) break;
      out.push_back(read_campaign(**stmt));
    }
  }
  for (auto& row : out) {
    if (Status s = load_agents(db_.sql(), row); !s.ok()) return wrap("listing campaigns", s.error());
  }
  return out;
}

Status CampaignsRepo::set_status(int64_t id, std::string_view status) {
  const std::string what = "setting the status of campaign " + std::to_string(id);
  Status s = run(db_.sql(), "UPDATE campaigns SET status = ?2, updated_at = ?3 WHERE id = ?1", id, status,
                 db_.clock().wall_ms());
  if (!s.ok()) return wrap(what, s.error());
  if (db_.sql().changes() == 0) return make_error("store: " + what + ": no such campaign", -ENOENT);
  return {};
}

Result<int64_t> CampaignsRepo::create_upload(const UploadRow& row) {
  const int64_t created = row.created_at_ms > 0 ? row.created_at_ms : db_.clock().wall_ms();
  std::optional<std::string> agent;
  if (!row.agent_uuid.empty()) agent = row.agent_uuid;
  Status s = run(db_.sql(),
                 "INSERT INTO campaign_uploads (campaign_id, agent_uuid, file_name, source, enqueued, "
                 "idempotency_key, result_json, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                 row.campaign_id, agent, row.file_name, row.source, row.enqueued, row.idempotency_key,
                 row.result_json, created);
  if (!s.ok()) return wrap("creating an upload of campaign " + std::to_string(row.campaign_id), s.error());
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_.sql().handle()));
}

Result<std::optional<UploadRow>> CampaignsRepo::upload_by_key(std::string_view idempotency_key) {
  auto stmt = db_.sql().cached(std::string("SELECT ") + kUploadColumns +
                               " FROM campaign_uploads WHERE idempotency_key = ?1");
  if (!stmt.ok()) return wrap("finding an upload by key", stmt.error());
  (*stmt)->bind(1, idempotency_key);
  auto r = (*stmt)->step();
  if (!r.ok()) return wrap("finding an upload by key", r.error());
  if (!*r) return std::optional<UploadRow>();
  return std::optional<UploadRow>(read_upload(**stmt));
}

Result<std::optional<UploadRow>> CampaignsRepo::upload(int64_t upload_id) {
  auto stmt =
      db_.sql().cached(std::string("SELECT ") + kUploadColumns + " FROM campaign_uploads WHERE id = ?1");
  if (!stmt.ok()) return wrap("reading an upload", stmt.error());
  (*stmt)->bind(1, upload_id);
  auto r = (*stmt)->step();
  if (!r.ok()) return wrap("reading upload " + std::to_string(upload_id), r.error());
  if (!*r) return std::optional<UploadRow>();
  return std::optional<UploadRow>(read_upload(**stmt));
}

Status CampaignsRepo::set_upload_result(int64_t upload_id, std::string_view result_json) {
  Status s =
      run(db_.sql(), "UPDATE campaign_uploads SET result_json = ?2 WHERE id = ?1", upload_id, result_json);
  if (!s.ok()) return wrap("saving the result of upload " + std::to_string(upload_id), s.error());
  return {};
}

Status CampaignsRepo::remove_upload(int64_t upload_id) {
  Status s = run(db_.sql(), "DELETE FROM campaign_uploads WHERE id = ?1", upload_id);
  if (!s.ok()) return wrap("removing upload " + std::to_string(upload_id), s.error());
  return {};
}

Result<ContactAdd> CampaignsRepo::add_contact(int64_t campaign_id, int64_t upload_id,
                                              std::string_view agent_uuid, const ContactInput& contact,
                                              bool enqueue) {
  const std::string what = "adding contact " + contact.phone + " to campaign " + std::to_string(campaign_id);
  const int64_t now = db_.clock().wall_ms();
  std::optional<std::pair<int64_t, std::optional<std::string>>> existing;
  {
    auto find = db_.sql().cached(
        "SELECT id, person_name FROM campaign_contacts WHERE campaign_id = ?1 AND phone = ?2");
    if (!find.ok()) return wrap(what, find.error());
    (*find)->bind_all(campaign_id, contact.phone);
    auto r = (*find)->step();
    if (!r.ok()) return wrap(what, r.error());
    if (*r) existing.emplace((*find)->int64(0), (*find)->opt_text(1));
  }
  if (!existing) {
    std::optional<int64_t> due;
    if (enqueue) due = now;
    Status s =
        run(db_.sql(),
            "INSERT INTO campaign_contacts (upload_id, campaign_id, agent_uuid, phone, person_name, "
            "variables_json, time_zone, state, next_attempt_at, created_at, updated_at) VALUES (?1, ?2, ?3, "
            "?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
            upload_id, campaign_id, agent_uuid, contact.phone, contact.person_name, contact.variables_json,
            contact.time_zone, enqueue ? "queued" : "held", due, now);
    if (!s.ok()) return wrap(what, s.error());
    return ContactAdd::added;
  }
  const size_t old_len = existing->second ? utf8_chars(*existing->second) : 0;
  const size_t new_len = contact.person_name ? utf8_chars(*contact.person_name) : 0;
  if (new_len <= old_len) return ContactAdd::duplicate;
  // The longer name wins with the prompt variables that came with it (when it brought any).
  Status s =
      run(db_.sql(),
          "UPDATE campaign_contacts SET person_name = ?2, variables_json = coalesce(?3, variables_json), "
          "updated_at = ?4 WHERE id = ?1",
          existing->first, contact.person_name, contact.variables_json, now);
  if (!s.ok()) return wrap(what, s.error());
  return ContactAdd::duplicate_renamed;
}

Result<int64_t> CampaignsRepo::enqueue_upload(int64_t upload_id) {
  const std::string what = "enqueueing upload " + std::to_string(upload_id);
  const int64_t now = db_.clock().wall_ms();
  int64_t moved = 0;
  Status s = db_.transaction([&]() -> Status {
    Status up = run(db_.sql(),
                    "UPDATE campaign_contacts SET state = 'queued', next_attempt_at = ?2, updated_at = ?2 "
                    "WHERE upload_id = ?1 AND state = 'held'",
                    upload_id, now);
    if (!up.ok()) return up;
    moved = db_.sql().changes();
    return run(db_.sql(), "UPDATE campaign_uploads SET enqueued = 1 WHERE id = ?1", upload_id);
  });
  if (!s.ok()) return wrap(what, s.error());
  return moved;
}

Result<int64_t> CampaignsRepo::queued_count(int64_t campaign_id) {
  auto stmt = db_.sql().cached(
      "SELECT count(*) FROM campaign_contacts WHERE campaign_id = ?1 AND state IN ('queued', 'dialing')");
  if (!stmt.ok()) return wrap("counting queued contacts", stmt.error());
  (*stmt)->bind(1, campaign_id);
  auto r = (*stmt)->step();
  if (!r.ok()) return wrap("counting queued contacts", r.error());
  return (*stmt)->int64(0);
}

Result<int64_t> CampaignsRepo::queued_count(int64_t campaign_id, std::string_view agent_uuid) {
  auto stmt = db_.sql().cached(
      "SELECT count(*) FROM campaign_contacts WHERE campaign_id = ?1 AND agent_uuid = ?2 "
      "AND state IN ('queued', 'dialing')");
  if (!stmt.ok()) return wrap("counting queued contacts", stmt.error());
  (*stmt)->bind_all(campaign_id, agent_uuid);
  auto r = (*stmt)->step();
  if (!r.ok()) return wrap("counting queued contacts", r.error());
  return (*stmt)->int64(0);
}

Result<std::optional<CampaignReport>> CampaignsRepo::report(int64_t id) {
  auto campaign = get(id);
  if (!campaign.ok()) return campaign.error();
  if (!campaign->has_value()) return std::optional<CampaignReport>();
  const std::string what = "reporting campaign " + std::to_string(id);
  CampaignReport rep;
  rep.campaign = std::move(**campaign);
  {
    // call_counts keeps per-group counts up to date by trigger: a few rows, whatever the number of calls.
    auto stmt = db_.sql().cached(
        "SELECT status, sum(n) FROM call_counts WHERE campaign_id = ?1 GROUP BY status HAVING sum(n) > 0 "
        "ORDER BY status");
    if (!stmt.ok()) return wrap(what, stmt.error());
    (*stmt)->bind(1, id);
    for (;;) {
      auto r = (*stmt)->step();
      if (!r.ok()) return wrap(what, r.error());
      if (!*r) break;
      rep.calls_by_status.emplace_back((*stmt)->text(0), (*stmt)->int64(1));
      rep.calls_total += (*stmt)->int64(1);
    }
  }
  std::map<int64_t, size_t> index;
  {
    auto stmt = db_.sql().cached(std::string("SELECT ") + kUploadColumns +
                                 " FROM campaign_uploads WHERE campaign_id = ?1 ORDER BY created_at, id");
    if (!stmt.ok()) return wrap(what, stmt.error());
    (*stmt)->bind(1, id);
    for (;;) {
      auto r = (*stmt)->step();
      if (!r.ok()) return wrap(what, r.error());
      if (!*r) break;
      index[(*stmt)->int64(0)] = rep.uploads.size();
      rep.uploads.push_back(UploadReport{read_upload(**stmt), {}});
    }
  }
  {
    auto stmt = db_.sql().cached(
        "SELECT upload_id, agent_uuid, sum(state IN ('queued', 'dialing')) FROM campaign_contacts "
        "WHERE campaign_id = ?1 GROUP BY upload_id, agent_uuid ORDER BY upload_id, agent_uuid");
    if (!stmt.ok()) return wrap(what, stmt.error());
    (*stmt)->bind(1, id);
    for (;;) {
      auto r = (*stmt)->step();
      if (!r.ok()) return wrap(what, r.error());
      if (!*r) break;
      auto it = index.find((*stmt)->int64(0));
      if (it == index.end()) continue;
      UploadReport& up = rep.uploads[it->second];
      const int64_t queued = (*stmt)->int64(2);
      up.queues.push_back(UploadQueue{(*stmt)->text(1), queued, up.upload.enqueued && queued == 0});
    }
  }
  // An upload whose contacts were all duplicates or DND still shows its agent's (empty) queue.
  for (auto& up : rep.uploads) {
    if (up.queues.empty() && !up.upload.agent_uuid.empty()) {
      up.queues.push_back(UploadQueue{up.upload.agent_uuid, 0, up.upload.enqueued});
    }
  }
  return std::optional<CampaignReport>(std::move(rep));
}

Result<std::vector<ContactRow>> CampaignsRepo::contacts(int64_t campaign_id, std::string_view state,
                                                        int64_t page, int64_t per_page,
                                                        int64_t* total_count) {
  const std::string what = "listing the contacts of campaign " + std::to_string(campaign_id);
  if (page < 1) page = 1;
  if (per_page < 1) per_page = 1;
  if (total_count != nullptr) {
    auto stmt = db_.sql().cached(
        "SELECT count(*) FROM campaign_contacts WHERE campaign_id = ?1 AND (?2 = '' OR state = ?2)");
    if (!stmt.ok()) return wrap(what, stmt.error());
    (*stmt)->bind_all(campaign_id, state);
    auto r = (*stmt)->step();
    if (!r.ok()) return wrap(what, r.error());
    *total_count = (*stmt)->int64(0);
  }
  auto stmt = db_.sql().cached(std::string("SELECT ") + kContactColumns +
                               " FROM campaign_contacts WHERE campaign_id = ?1 AND (?2 = '' OR state = ?2) "
                               "ORDER BY id LIMIT ?3 OFFSET ?4");
  if (!stmt.ok()) return wrap(what, stmt.error());
  (*stmt)->bind_all(campaign_id, state, per_page, (page - 1) * per_page);
  std::vector<ContactRow> out;
  for (;;) {
    auto r = (*stmt)->step();
    if (!r.ok()) return wrap(what, r.error());
    if (!*r) break;
    out.push_back(read_contact(**stmt));
  }
  return out;
}

}  // namespace osvi::daemon
