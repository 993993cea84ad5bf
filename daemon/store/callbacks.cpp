// CallbacksRepo: scheduled callbacks and retries (callbacks.hpp).
#include "osvi/store/callbacks.hpp"

#include <cerrno>
#include <string>

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

}  // namespace osvi::daemon
