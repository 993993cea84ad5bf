// DialerQueue: the campaign contact queue as the dialler works it — picks, attempts, deferrals.
#include "osvi/store/dialer_queue.hpp"

#include <algorithm>
#include <cerrno>
#include <string>

#include "contact_rows.hpp"
#include "osvi/store/database.hpp"
#include "sqlite.hpp"

namespace osvi::daemon {
namespace {

using store_rows::kContactColumns;
using store_rows::read_contact;

using sql::run;
using sql::wrap;

constexpr const char* kAttemptColumns =
    "id, contact_id, campaign_id, agent_uuid, phone, call_id, started_at, ended_at, outcome";

AttemptRow read_attempt(const sql::Stmt& s) {
  AttemptRow a;
  a.id = s.int64(0);
  a.contact_id = s.int64(1);
  a.campaign_id = s.int64(2);
  a.agent_uuid = s.text(3);
  a.phone = s.text(4);
  a.call_id = s.text(5);
  a.started_at_ms = s.int64(6);
  a.ended_at_ms = s.opt_int64(7);
  a.outcome = s.opt_text(8);
  return a;
}

// One row of a cached query, or none.
template <class Row, class Read, class... Args>
Result<std::optional<Row>> one_row(Database& db, const std::string& sql, std::string_view what, Read read,
                                   const Args&... args) {
  auto stmt = db.sql().cached(sql);
  if (!stmt.ok()) return wrap(what, stmt.error());
  (*stmt)->bind_all(args...);
  auto row = (*stmt)->step();
  if (!row.ok()) return wrap(what, row.error());
  if (!*row) return std::optional<Row>();
  return std::optional<Row>(read(**stmt));
}

}  // namespace

Result<std::optional<ContactRow>> DialerQueue::next_due(int64_t campaign_id, std::string_view agent_uuid,
                                                        int64_t now_ms) {
  // The state term selects the partial index campaign_contacts_due; its order is the ORDER BY, so the
  // probe reads one index entry and one row whatever the queue's size.
  static const std::string sql = std::string("SELECT ") + kContactColumns +
                                 " FROM campaign_contacts WHERE campaign_id = ?1 AND agent_uuid = ?2 AND "
                                 "state = 'queued' AND next_attempt_at <= ?3 ORDER BY next_attempt_at, id "
                                 "LIMIT 1";
  return one_row<ContactRow>(db_, sql, "picking the next contact", read_contact, campaign_id, agent_uuid,
                             now_ms);
}

Result<std::optional<int64_t>> DialerQueue::earliest_due(int64_t campaign_id, std::string_view agent_uuid) {
  static const std::string sql =
      "SELECT next_attempt_at FROM campaign_contacts WHERE campaign_id = ?1 AND agent_uuid = ?2 AND "
      "state = 'queued' AND next_attempt_at IS NOT NULL ORDER BY next_attempt_at, id LIMIT 1";
  return one_row<int64_t>(
      db_, sql, "finding the next due contact", [](const sql::Stmt& s) { return s.int64(0); }, campaign_id,
      agent_uuid);
}

Status DialerQueue::defer(int64_t contact_id, int64_t next_attempt_at_ms) {
  Status s = run(db_.sql(),
                 "UPDATE campaign_contacts SET next_attempt_at = ?2, updated_at = ?3 WHERE id = ?1 AND "
                 "state = 'queued'",
                 contact_id, next_attempt_at_ms, db_.clock().wall_ms());
  if (!s.ok()) return wrap("deferring contact " + std::to_string(contact_id), s.error());
  if (db_.sql().changes() == 0) {
    return make_error("store: deferring contact " + std::to_string(contact_id) + ": not queued", -ENOENT);
  }
  return {};
}

Status DialerQueue::finish(int64_t contact_id, std::string_view state, std::string_view outcome) {
  const std::string what = "finishing contact " + std::to_string(contact_id);
  if (state != "done" && state != "dnd") {
    return make_error("store: " + what + ": state must be done or dnd, not \"" + std::string(state) + "\"",
                      -EINVAL);
  }
  Status s = run(db_.sql(),
                 "UPDATE campaign_contacts SET state = ?2, last_outcome = ?3, next_attempt_at = NULL, "
                 "updated_at = ?4 WHERE id = ?1",
                 contact_id, state, outcome, db_.clock().wall_ms());
  if (!s.ok()) return wrap(what, s.error());
  if (db_.sql().changes() == 0) return make_error("store: " + what + ": no such contact", -ENOENT);
  return {};
}

Status DialerQueue::open_attempt(const ContactRow& contact, std::string_view call_id, int64_t now_ms) {
  const std::string what = "opening an attempt for contact " + std::to_string(contact.id);
  auto tx = db_.begin();
  if (!tx.ok()) return wrap(what, tx.error());
  // Only a queued contact moves to dialing: a second pick of the same contact (a stale row) must fail
  // before an attempt row exists, so it can never become a second call.
  Status s =
      run(db_.sql(),
          "UPDATE campaign_contacts SET state = 'dialing', attempts = attempts + 1, last_call_id = ?2, "
          "next_attempt_at = NULL, updated_at = ?3 WHERE id = ?1 AND state = 'queued'",
          contact.id, call_id, now_ms);
  if (!s.ok()) return wrap(what, s.error());
  if (db_.sql().changes() == 0) return make_error("store: " + what + ": the contact is not queued", -ESTALE);
  s = run(db_.sql(),
          "INSERT INTO campaign_attempts (contact_id, campaign_id, agent_uuid, phone, call_id, started_at) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
          contact.id, contact.campaign_id, contact.agent_uuid, contact.phone, call_id, now_ms);
  if (!s.ok()) return wrap(what, s.error());
  if (Status c = tx->commit(); !c.ok()) return wrap(what, c.error());
  return {};
}

Result<std::optional<AttemptRow>> DialerQueue::close_attempt(std::string_view call_id,
                                                             std::string_view outcome, int64_t now_ms) {
  const std::string what = "closing the attempt of call " + std::string(call_id);
  static const std::string by_call =
      std::string("SELECT ") + kAttemptColumns + " FROM campaign_attempts WHERE call_id = ?1";
  auto tx = db_.begin();
  if (!tx.ok()) return wrap(what, tx.error());
  auto found = one_row<AttemptRow>(db_, by_call, what, read_attempt, call_id);
  if (!found.ok()) return found.error();
  if (!*found || (*found)->ended_at_ms) return found;  // unknown, or closed already: nothing to change
  AttemptRow a = **found;
  Status s = run(db_.sql(), "UPDATE campaign_attempts SET ended_at = ?2, outcome = ?3 WHERE id = ?1", a.id,
                 now_ms, outcome);
  if (!s.ok()) return wrap(what, s.error());
  // The contact keeps the outcome of its latest attempt (GET /v1/campaigns/{id}/contacts shows it).
  s = run(
      db_.sql(),
      "UPDATE campaign_contacts SET last_outcome = ?2, updated_at = ?3 WHERE id = ?1 AND last_call_id = ?4",
      a.contact_id, outcome, db_.clock().wall_ms(), call_id);
  if (!s.ok()) return wrap(what, s.error());
  if (Status c = tx->commit(); !c.ok()) return wrap(what, c.error());
  a.ended_at_ms = now_ms;
  a.outcome = std::string(outcome);
  return std::optional<AttemptRow>(std::move(a));
}

Status DialerQueue::queue_again(int64_t contact_id, int64_t next_attempt_at_ms, bool uncount) {
  Status s =
      run(db_.sql(),
          "UPDATE campaign_contacts SET state = 'queued', next_attempt_at = ?2, "
          "attempts = max(attempts - ?3, 0), updated_at = ?4 WHERE id = ?1",
          contact_id, next_attempt_at_ms, static_cast<int64_t>(uncount ? 1 : 0), db_.clock().wall_ms());
  const std::string what = "queueing contact " + std::to_string(contact_id) + " again";
  if (!s.ok()) return wrap(what, s.error());
  if (db_.sql().changes() == 0) return make_error("store: " + what + ": no such contact", -ENOENT);
  return {};
}

Result<std::optional<ContactRow>> DialerQueue::contact(int64_t contact_id) {
  static const std::string sql =
      std::string("SELECT ") + kContactColumns + " FROM campaign_contacts WHERE id = ?1";
  return one_row<ContactRow>(db_, sql, "reading contact " + std::to_string(contact_id), read_contact,
                             contact_id);
}

Result<std::vector<AttemptRow>> DialerQueue::open_attempts() {
  static const std::string sql =
      std::string("SELECT ") + kAttemptColumns + " FROM campaign_attempts WHERE ended_at IS NULL ORDER BY id";
  auto stmt = db_.sql().cached(sql);
  if (!stmt.ok()) return wrap("listing open attempts", stmt.error());
  std::vector<AttemptRow> out;
  for (;;) {
    auto row = (*stmt)->step();
    if (!row.ok()) return wrap("listing open attempts", row.error());
    if (!*row) break;
    out.push_back(read_attempt(**stmt));
  }
  return out;
}

Result<int64_t> DialerQueue::attempts_since(std::string_view phone, int64_t since_ms,
                                            std::optional<int64_t>* oldest) {
  // An attempt that never reached a line ("not_placed") is no call to that person and does not count.
  auto stmt = db_.sql().cached(
      "SELECT count(*), min(started_at) FROM campaign_attempts WHERE phone = ?1 AND started_at >= ?2 AND "
      "(outcome IS NULL OR outcome <> 'not_placed')");
  if (!stmt.ok()) return wrap("counting attempts", stmt.error());
  (*stmt)->bind_all(phone, since_ms);
  auto row = (*stmt)->step();
  if (!row.ok()) return wrap("counting the attempts to " + std::string(phone), row.error());
  const int64_t n = *row ? (*stmt)->int64(0) : 0;
  if (oldest != nullptr) *oldest = *row ? (*stmt)->opt_int64(1) : std::nullopt;
  return n;
}

Result<int64_t> DialerQueue::dialing_count(int64_t campaign_id, std::string_view agent_uuid) {
  auto stmt = db_.sql().cached(
      "SELECT count(*) FROM campaign_contacts WHERE state = 'dialing' AND campaign_id = ?1 AND agent_uuid = "
      "?2");
  if (!stmt.ok()) return wrap("counting dialing contacts", stmt.error());
  (*stmt)->bind_all(campaign_id, agent_uuid);
  auto row = (*stmt)->step();
  if (!row.ok()) return wrap("counting dialing contacts", row.error());
  return *row ? (*stmt)->int64(0) : int64_t{0};
}

}  // namespace osvi::daemon
