// CallbacksRepo: scheduled callbacks and retries (callbacks.hpp).
#include "osvi/store/callbacks.hpp"

#include <cerrno>
#include <climits>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/store/database.hpp"
#include "sqlite.hpp"

namespace osvi::daemon {
namespace {

using sql::run;
using sql::wrap;

constexpr const char* kColumns =
    "id, kind, source_call_id, agent_uuid, phone, time_zone, due_at, requested_text, request_json, "
    "retry_count, state, call_id, outcome, created_at, updated_at";

CallbackRow read_row(const sql::Stmt& s) {
  CallbackRow r;
  r.id = s.int64(0);
  r.kind = s.text(1);
  r.source_call_id = s.text(2);
  r.agent_uuid = s.text(3);
  r.phone = s.text(4);
  r.time_zone = s.opt_text(5);
  r.due_at_ms = s.int64(6);
  r.requested_text = s.opt_text(7);
  r.request_json = s.text(8);
  r.retry_count = s.int64(9);
  r.state = s.text(10);
  r.call_id = s.opt_text(11);
  r.outcome = s.opt_text(12);
  r.created_at_ms = s.int64(13);
  r.updated_at_ms = s.int64(14);
  return r;
}

}  // namespace

Result<int64_t> CallbacksRepo::schedule(const CallbackRow& row, bool* created) {
  const int64_t now = db_.clock().wall_ms();
  auto stmt = db_.sql().cached(
      "INSERT INTO callbacks (kind, source_call_id, agent_uuid, phone, time_zone, due_at, requested_text, "
      "request_json, retry_count, state, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
      "'scheduled', ?10, ?10) ON CONFLICT (source_call_id, kind) DO NOTHING RETURNING id");
  if (!stmt.ok()) return wrap("scheduling a callback", stmt.error());
  (*stmt)->bind_all(row.kind, row.source_call_id, row.agent_uuid, row.phone, row.time_zone, row.due_at_ms,
                    row.requested_text, row.request_json, row.retry_count, now);
  auto r = (*stmt)->step();
  if (!r.ok()) return wrap("scheduling a callback", r.error());
  if (*r) {
    const int64_t id = (*stmt)->int64(0);
    if (created != nullptr) *created = true;
    return id;
  }
  if (created != nullptr) *created = false;
  auto existing = db_.sql().cached("SELECT id FROM callbacks WHERE source_call_id = ?1 AND kind = ?2");
  if (!existing.ok()) return wrap("scheduling a callback", existing.error());
  (*existing)->bind_all(row.source_call_id, row.kind);
  auto e = (*existing)->step();
  if (!e.ok()) return wrap("scheduling a callback", e.error());
  if (!*e) return make_error("store: scheduling a callback: conflicting row vanished", -EIO);
  return (*existing)->int64(0);
}

Result<std::optional<CallbackRow>> CallbacksRepo::get(int64_t id) {
  static const std::string sql = std::string("SELECT ") + kColumns + " FROM callbacks WHERE id = ?1";
  auto stmt = db_.sql().cached(sql);
  if (!stmt.ok()) return wrap("reading callback " + std::to_string(id), stmt.error());
  (*stmt)->bind_all(id);
  auto r = (*stmt)->step();
  if (!r.ok()) return wrap("reading callback " + std::to_string(id), r.error());
  if (!*r) return std::optional<CallbackRow>();
  return std::optional<CallbackRow>(read_row(**stmt));
}

namespace {

// "?2, ?3, …" for n agents from parameter `first` on.
std::string placeholders(size_t n, int first) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += (i ? ", ?" : "?") + std::to_string(first + static_cast<int>(i));
  return out;
}

}  // namespace

Result<std::optional<CallbackRow>> CallbacksRepo::next_due(int64_t now_ms,
                                                           const std::vector<std::string>& agent_uuids) {
  if (agent_uuids.empty()) return std::optional<CallbackRow>();
  // Walks callbacks_due (partial: scheduled rows only, agent_uuid in the index), so cancelled and finished
  // rows cost nothing and another agent's due rows are passed over without reading the table.
  auto stmt = db_.sql().cached_shape(std::string("SELECT ") + kColumns +
                                     " FROM callbacks INDEXED BY callbacks_due WHERE state = 'scheduled' AND "
                                     "due_at <= ?1 AND agent_uuid IN (" +
                                     placeholders(agent_uuids.size(), 2) + ") ORDER BY due_at, id LIMIT 1");
  if (!stmt.ok()) return wrap("reading the next due callback", stmt.error());
  (*stmt)->bind(1, now_ms);
  for (size_t i = 0; i < agent_uuids.size(); ++i) (*stmt)->bind(static_cast<int>(i) + 2, agent_uuids[i]);
  auto r = (*stmt)->step();
  if (!r.ok()) return wrap("reading the next due callback", r.error());
  if (!*r) return std::optional<CallbackRow>();
  return std::optional<CallbackRow>(read_row(**stmt));
}

Result<std::optional<int64_t>> CallbacksRepo::earliest_due(const std::vector<std::string>& agent_uuids) {
  if (agent_uuids.empty()) return std::optional<int64_t>();
  auto stmt = db_.sql().cached_shape(
      "SELECT due_at FROM callbacks INDEXED BY callbacks_due WHERE state = 'scheduled' AND agent_uuid IN (" +
      placeholders(agent_uuids.size(), 1) + ") ORDER BY due_at, id LIMIT 1");
  if (!stmt.ok()) return wrap("reading the earliest callback", stmt.error());
  for (size_t i = 0; i < agent_uuids.size(); ++i) (*stmt)->bind(static_cast<int>(i) + 1, agent_uuids[i]);
  auto r = (*stmt)->step();
  if (!r.ok()) return wrap("reading the earliest callback", r.error());
  if (!*r) return std::optional<int64_t>();
  return std::optional<int64_t>((*stmt)->int64(0));
}

Status CallbacksRepo::defer(int64_t id, int64_t due_at_ms) {
  Status s = run(db_.sql(),
                 "UPDATE callbacks SET due_at = ?2, updated_at = ?3 WHERE id = ?1 AND state = 'scheduled'",
                 id, due_at_ms, db_.clock().wall_ms());
  if (!s.ok()) return wrap("deferring callback " + std::to_string(id), s.error());
  return {};
}

Status CallbacksRepo::open(int64_t id, std::string_view call_id) {
  const int64_t now = db_.clock().wall_ms();
  Status s =
      run(db_.sql(),
          "UPDATE callbacks SET state = 'dialing', call_id = ?2, due_at = ?3, updated_at = ?3 WHERE id = "
          "?1 AND state = 'scheduled'",
          id, call_id, now);
  if (!s.ok()) return wrap("opening callback " + std::to_string(id), s.error());
  if (db_.sql().changes() == 0)
    return make_error("store: callback " + std::to_string(id) + " is no longer scheduled", -EBUSY);
  return {};
}

Result<std::optional<CallbackRow>> CallbacksRepo::close(std::string_view call_id, std::string_view outcome) {
  const std::string what = "closing the callback of call " + std::string(call_id);
  Status s = run(db_.sql(),
                 "UPDATE callbacks SET state = 'done', outcome = ?2, updated_at = ?3 WHERE call_id = ?1 AND "
                 "state = 'dialing'",
                 call_id, outcome, db_.clock().wall_ms());
  if (!s.ok()) return wrap(what, s.error());
  static const std::string sql = std::string("SELECT ") + kColumns + " FROM callbacks WHERE call_id = ?1";
  auto stmt = db_.sql().cached(sql);
  if (!stmt.ok()) return wrap(what, stmt.error());
  (*stmt)->bind_all(call_id);
  auto r = (*stmt)->step();
  if (!r.ok()) return wrap(what, r.error());
  if (!*r) return std::optional<CallbackRow>();
  return std::optional<CallbackRow>(read_row(**stmt));
}

Status CallbacksRepo::set_state(int64_t id, std::string_view state, std::optional<std::string_view> outcome) {
  Status s = run(db_.sql(),
                 "UPDATE callbacks SET state = ?2, outcome = ?3, updated_at = ?4 WHERE id = ?1 AND state = "
                 "'scheduled'",
                 id, state, outcome, db_.clock().wall_ms());
  if (!s.ok()) return wrap("finishing callback " + std::to_string(id), s.error());
  return {};
}

Status CallbacksRepo::requeue(int64_t id, int64_t due_at_ms) {
  Status s =
      run(db_.sql(),
          "UPDATE callbacks SET state = 'scheduled', call_id = NULL, due_at = ?2, updated_at = ?3 WHERE "
          "id = ?1 AND state = 'dialing'",
          id, due_at_ms, db_.clock().wall_ms());
  if (!s.ok()) return wrap("queueing callback " + std::to_string(id) + " again", s.error());
  return {};
}

Result<std::vector<CallbackRow>> CallbacksRepo::open_rows() {
  static const std::string sql =
      std::string("SELECT ") + kColumns + " FROM callbacks WHERE state = 'dialing' ORDER BY id";
  auto stmt = db_.sql().cached(sql);
  if (!stmt.ok()) return wrap("reading open callbacks", stmt.error());
  std::vector<CallbackRow> out;
  for (;;) {
    auto r = (*stmt)->step();
    if (!r.ok()) return wrap("reading open callbacks", r.error());
    if (!*r) break;
    out.push_back(read_row(**stmt));
  }
  return out;
}

Status CallbacksRepo::cancel(int64_t id) {
  Status s = run(db_.sql(),
                 "UPDATE callbacks SET state = 'cancelled', updated_at = ?2 WHERE id = ?1 AND state = "
                 "'scheduled'",
                 id, db_.clock().wall_ms());
  if (!s.ok()) return wrap("cancelling callback " + std::to_string(id), s.error());
  if (db_.sql().changes() > 0) return {};
  auto row = get(id);
  if (!row.ok()) return row.error();
  if (!*row) return make_error("store: no callback " + std::to_string(id), -ENOENT);
  return make_error("store: callback " + std::to_string(id) + " is " + (*row)->state + ", not scheduled",
                    -EBUSY);
}

Result<int64_t> CallbacksRepo::calls_since(std::string_view phone, int64_t since_ms,
                                           std::optional<int64_t>* oldest) {
  // callbacks_placed: only rows that were dialled, by number and the moment dialled (open() sets due_at).
  auto stmt = db_.sql().cached(
      "SELECT count(*), min(due_at) FROM callbacks WHERE phone = ?1 AND call_id IS NOT NULL AND due_at >= "
      "?2");
  if (!stmt.ok()) return wrap("counting callback calls", stmt.error());
  (*stmt)->bind_all(phone, since_ms);
  auto r = (*stmt)->step();
  if (!r.ok()) return wrap("counting the callback calls to " + std::string(phone), r.error());
  const int64_t n = *r ? (*stmt)->int64(0) : 0;
  if (oldest != nullptr) *oldest = *r ? (*stmt)->opt_int64(1) : std::nullopt;
  return n;
}

Result<std::vector<std::string>> CallbacksRepo::unretried_calls(int64_t since_ms) {
  // calls_status (status, created_at DESC): the two statuses' calls of the window, not the whole table.
  auto stmt = db_.sql().cached(
      "SELECT c.call_id FROM calls c WHERE c.status IN ('not_picked', 'busy') AND c.created_at >= ?1 AND "
      "c.call_type = 'outbound' AND json_type(c.call_config_overrides, '$.retry_config') = 'object' AND NOT "
      "EXISTS (SELECT 1 FROM callbacks b WHERE b.source_call_id = c.call_id AND b.kind = 'retry') ORDER BY "
      "c.created_at, c.call_id");
  if (!stmt.ok()) return wrap("finding unretried calls", stmt.error());
  (*stmt)->bind_all(since_ms);
  std::vector<std::string> out;
  for (;;) {
    auto r = (*stmt)->step();
    if (!r.ok()) return wrap("finding unretried calls", r.error());
    if (!*r) break;
    out.push_back((*stmt)->text(0));
  }
  return out;
}

Result<CallbacksRepo::Page> CallbacksRepo::list(const Filter& f) {
  if (f.page < 1 || f.per_page < 1)
    return make_error("store: listing callbacks: page and per_page start at 1", -EINVAL);
  const int64_t offset = f.page - 1 > INT64_MAX / f.per_page ? INT64_MAX : (f.page - 1) * f.per_page;
  // Only the filters given are in the SQL, so each shape can use its index (an "?1 IS NULL OR" term would
  // keep the planner from any); the shape varies with them and the number of agents.
  std::string where;
  std::vector<std::string_view> args;
  auto term = [&](const std::string& sql) { where += (where.empty() ? " WHERE " : " AND ") + sql; };
  if (f.state) {
    args.push_back(*f.state);
    term("state = ?" + std::to_string(args.size()));
  }
  if (f.kind) {
    args.push_back(*f.kind);
    term("kind = ?" + std::to_string(args.size()));
  }
  if (!f.agent_uuids.empty()) {
    std::string in;
    for (const std::string& a : f.agent_uuids) {
      args.push_back(a);
      in += (in.empty() ? "?" : ", ?") + std::to_string(args.size());
    }
    term("agent_uuid IN (" + in + ")");
  }
  auto bind_filter = [&](sql::Stmt& st) {
    for (size_t i = 0; i < args.size(); ++i) st.bind(static_cast<int>(i) + 1, args[i]);
  };
  const int next = static_cast<int>(args.size()) + 1;
  Page page;
  auto count = db_.sql().cached_shape("SELECT count(*) FROM callbacks" + where);
  if (!count.ok()) return wrap("counting callbacks", count.error());
  bind_filter(**count);
  auto c = (*count)->step();
  if (!c.ok()) return wrap("counting callbacks", c.error());
  page.total_count = *c ? (*count)->int64(0) : 0;
  if (offset >= page.total_count) return page;
  // Newest first by id: ids are given in insertion order and rows are never deleted, so this is creation
  // order. The page's ids are chosen first (from callbacks_listing when an agent is named: a sort of ids, not
  // of whole rows), then only those rows are read (bench/callbacks_bench.cpp).
  auto rows = db_.sql().cached_shape(std::string("SELECT ") + kColumns +
                                     " FROM callbacks WHERE id IN (SELECT id FROM callbacks" + where +
                                     " ORDER BY id DESC LIMIT ?" + std::to_string(next) + " OFFSET ?" +
                                     std::to_string(next + 1) + ") ORDER BY id DESC");
  if (!rows.ok()) return wrap("listing callbacks", rows.error());
  bind_filter(**rows);
  (*rows)->bind(next, f.per_page);
  (*rows)->bind(next + 1, offset);
  for (;;) {
    auto r = (*rows)->step();
    if (!r.ok()) return wrap("listing callbacks", r.error());
    if (!*r) break;
    page.rows.push_back(read_row(**rows));
  }
  return page;
}

}  // namespace osvi::daemon
