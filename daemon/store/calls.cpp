// CallsRepo: rows of calls, their transcript turns and recordings.
#include "osvi/store/calls.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <utility>
#include <variant>

#include "osvi/store/database.hpp"
#include "sqlite.hpp"

namespace osvi::daemon {
namespace {

using sql::run;
using sql::wrap;

// One table drives the INSERT, UPDATE and SELECT of calls, so adding a column is one line here plus a
// migration.
using CallField =
    std::variant<std::string CallRecord::*, std::optional<std::string> CallRecord::*, int64_t CallRecord::*,
                 std::optional<int64_t> CallRecord::*, bool CallRecord::*>;
struct CallColumn {
  const char* name;
  CallField field;
};

const auto kCallColumns = std::to_array<CallColumn>({
    {"call_id", &CallRecord::call_id},
    {"agent_uuid", &CallRecord::agent_uuid},
    {"agent_name", &CallRecord::agent_name},
    {"phone_number", &CallRecord::phone_number},
    {"from_number", &CallRecord::from_number},
    {"status", &CallRecord::status},
    {"call_type", &CallRecord::call_type},
    {"duration_seconds", &CallRecord::duration_seconds},
    {"call_ended_by", &CallRecord::call_ended_by},
    {"call_ended_reason", &CallRecord::call_ended_reason},
    {"campaign_id", &CallRecord::campaign_id},
    {"campaign_upload_id", &CallRecord::campaign_upload_id},
    {"tag_id", &CallRecord::tag_id},
    {"tag_name", &CallRecord::tag_name},
    {"tag_color_code", &CallRecord::tag_color_code},
    {"created_at", &CallRecord::created_at_ms},
    {"call_picked_at", &CallRecord::call_picked_at_ms},
    {"ended_at", &CallRecord::ended_at_ms},
    {"caller_name", &CallRecord::caller_name},
    {"person_name", &CallRecord::person_name},
    {"retry_count", &CallRecord::retry_count},
    {"summary", &CallRecord::summary},
    {"data_captured", &CallRecord::data_captured},
    {"post_call_analysis", &CallRecord::post_call_analysis},
    {"structured_output", &CallRecord::structured_output},
    {"call_trigger_data", &CallRecord::call_trigger_data},
    {"additional_data", &CallRecord::additional_data},
    {"system_prompt", &CallRecord::system_prompt},
    {"initial_greeting", &CallRecord::initial_greeting},
    {"webhook_url", &CallRecord::webhook_url},
    {"call_config_overrides", &CallRecord::call_config_overrides},
    {"data_extraction", &CallRecord::data_extraction},
    {"line", &CallRecord::line},
    {"callback_required", &CallRecord::callback_required},
    {"greeting_gap_ms", &CallRecord::greeting_gap_ms},
    {"execution_mode", &CallRecord::execution_mode},
    {"revision", &CallRecord::revision},
    {"updated_at", &CallRecord::updated_at_ms},
});

std::string call_column_list() {
  std::string out;
  for (const auto& col : kCallColumns) {
    if (!out.empty()) out += ", ";
    out += col.name;
  }
  return out;
}

const std::string& insert_call_sql() {
  static const std::string sql = [] {
    std::string values;
    for (size_t i = 0; i < kCallColumns.size(); ++i) values += (i == 0 ? "?" : ", ?") + std::to_string(i + 1);
    return "INSERT INTO calls (" + call_column_list() + ") VALUES (" + values + ")";
  }();
  return sql;
}

// created_at is immutable; revision and updated_at are the store's to set.
const std::string& update_call_sql() {
  static const std::string sql = [] {
    std::string sets;
    int i = 0;
    for (const auto& col : kCallColumns) {
      ++i;
      std::string_view name = col.name;
      if (name == "call_id" || name == "created_at" || name == "revision" || name == "updated_at") continue;
      if (!sets.empty()) sets += ", ";
      sets += std::string(name) + " = ?" + std::to_string(i);
    }
    return "UPDATE calls SET " + sets + ", revision = revision + 1, updated_at = ?" + std::to_string(i + 1) +
           " WHERE call_id = ?1";
  }();
  return sql;
}

const std::string& select_call_sql() {
  static const std::string sql = "SELECT " + call_column_list() + " FROM calls WHERE call_id = ?1";
  return sql;
}

int bind_call(sql::Stmt& stmt, const CallRecord& call) {
  int index = 0;
  for (const auto& col : kCallColumns) {
    ++index;
    std::visit([&](auto member) { stmt.bind(index, call.*member); }, col.field);
  }
  return index;
}

void read_value(const sql::Stmt& s, int col, std::string& out) {
  out = s.text(col);
}
void read_value(const sql::Stmt& s, int col, std::optional<std::string>& out) {
  out = s.opt_text(col);
}
void read_value(const sql::Stmt& s, int col, int64_t& out) {
  out = s.int64(col);
}
void read_value(const sql::Stmt& s, int col, std::optional<int64_t>& out) {
  out = s.opt_int64(col);
}
void read_value(const sql::Stmt& s, int col, bool& out) {
  out = s.int64(col) != 0;
}

CallRecord read_call(const sql::Stmt& stmt) {
  CallRecord call;
  int col = 0;
  for (const auto& column : kCallColumns) {
    std::visit([&](auto member) { read_value(stmt, col, call.*member); }, column.field);
    ++col;
  }
  return call;
}

// The CallSummary of GET /v1/calls: the list reads these and nothing else, so a page of calls with
// megabyte prompts costs what a page of small ones does.
constexpr auto kSummaryColumns = std::to_array<std::string_view>(
    {"call_id", "agent_uuid", "agent_name", "phone_number", "from_number", "status", "call_type",
     "duration_seconds", "call_ended_by", "call_ended_reason", "campaign_id", "campaign_upload_id", "tag_id",
     "tag_name", "tag_color_code", "created_at", "call_picked_at"});

}  // namespace

namespace calls_detail {

const std::string& summary_column_list() {
  static const std::string list = [] {
    std::string out;
    for (std::string_view name : kSummaryColumns) {
      if (!out.empty()) out += ", ";
      out += name;
    }
    return out;
  }();
  return list;
}

CallRecord read_summary(const sql::Stmt& stmt) {
  // The members behind kSummaryColumns, looked up once: this runs for every listed call.
  static const std::vector<CallField> fields = [] {
    std::vector<CallField> out;
    for (std::string_view name : kSummaryColumns) {
      for (const auto& column : kCallColumns)
        if (column.name == name) out.push_back(column.field);
    }
    return out;
  }();
  CallRecord call;
  int col = 0;
  for (const CallField& field : fields) {
    std::visit([&](auto member) { read_value(stmt, col, call.*member); }, field);
    ++col;
  }
  return call;
}

}  // namespace calls_detail

Status CallsRepo::insert(const CallRecord& call) {
  CallRecord row = call;
  const int64_t now = db_.clock().wall_ms();
  if (row.created_at_ms == 0) row.created_at_ms = now;
  if (row.updated_at_ms == 0) row.updated_at_ms = now;
  auto stmt = db_.sql().cached(insert_call_sql());
  if (!stmt.ok()) return wrap("inserting call " + call.call_id, stmt.error());
  bind_call(**stmt, row);
  if (Status s = (*stmt)->run(); !s.ok()) return wrap("inserting call " + call.call_id, s.error());
  return {};
}

Status CallsRepo::update(const CallRecord& call) {
  auto stmt = db_.sql().cached(update_call_sql());
  if (!stmt.ok()) return wrap("updating call " + call.call_id, stmt.error());
  int last = bind_call(**stmt, call);
  (*stmt)->bind(last + 1, db_.clock().wall_ms());
  if (Status s = (*stmt)->run(); !s.ok()) return wrap("updating call " + call.call_id, s.error());
  if (db_.sql().changes() == 0)
    return make_error("store: updating call " + call.call_id + ": no such call", -ENOENT);
  return {};
}

Result<std::optional<CallRecord>> CallsRepo::get(std::string_view call_id) {
  auto stmt = db_.sql().cached(select_call_sql());
  if (!stmt.ok()) return wrap("reading call", stmt.error());
  (*stmt)->bind(1, call_id);
  auto row = (*stmt)->step();
  if (!row.ok()) return wrap("reading call " + std::string(call_id), row.error());
  if (!*row) return std::optional<CallRecord>();
  return std::optional<CallRecord>(read_call(**stmt));
}

Status CallsRepo::remove(std::string_view call_id) {
  if (Status s = run(db_.sql(), "DELETE FROM calls WHERE call_id = ?1", call_id); !s.ok()) {
    return wrap("deleting call " + std::string(call_id), s.error());
  }
  if (db_.sql().changes() == 0) {
    return make_error("store: deleting call " + std::string(call_id) + ": no such call", -ENOENT);
  }
  return {};
}

Status CallsRepo::add_transcript_turn(const TranscriptTurn& t) {
  Status s = run(db_.sql(),
                 "INSERT INTO transcript_turns (call_id, seq, role, text, started_at, ended_at, interrupted, "
                 "latency_json, kind) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                 t.call_id, t.seq, t.role, t.text, t.started_at_ms, t.ended_at_ms, t.interrupted,
                 t.latency_json, t.kind);
  if (!s.ok()) return wrap("adding turn " + std::to_string(t.seq) + " of call " + t.call_id, s.error());
  return {};
}

Result<std::vector<TranscriptTurn>> CallsRepo::transcript(std::string_view call_id) {
  auto stmt = db_.sql().cached(
      "SELECT call_id, seq, role, text, started_at, ended_at, interrupted, latency_json, kind FROM "
      "transcript_turns "
      "WHERE call_id = ?1 ORDER BY seq");
  if (!stmt.ok()) return wrap("reading transcript", stmt.error());
  (*stmt)->bind(1, call_id);
  std::vector<TranscriptTurn> out;
  for (;;) {
    auto row = (*stmt)->step();
    if (!row.ok()) return wrap("reading transcript of " + std::string(call_id), row.error());
    if (!*row) break;
    const sql::Stmt& s = **stmt;
    out.push_back(TranscriptTurn{s.text(0), s.int64(1), s.text(2), s.text(3), s.opt_int64(4), s.opt_int64(5),
                                 s.int64(6) != 0, s.opt_text(7), s.opt_text(8)});
  }
  return out;
}

Result<int64_t> CallsRepo::count() {
  auto stmt = db_.sql().cached("SELECT COUNT(*) FROM calls");
  if (!stmt.ok()) return wrap("counting calls", stmt.error());
  auto row = (*stmt)->step();
  if (!row.ok()) return wrap("counting calls", row.error());
  return *row ? (*stmt)->int64(0) : int64_t{0};
}

Result<int64_t> CallsRepo::transcript_turn_count(std::string_view call_id) {
  auto stmt = db_.sql().cached("SELECT COUNT(*) FROM transcript_turns WHERE call_id = ?1");
  if (!stmt.ok()) return wrap("counting transcript turns", stmt.error());
  (*stmt)->bind(1, call_id);
  auto row = (*stmt)->step();
  if (!row.ok()) return wrap("counting transcript turns", row.error());
  return *row ? (*stmt)->int64(0) : int64_t{0};
}

Status CallsRepo::save_recording(std::string_view call_id, std::string_view path, std::string_view format,
                                 int64_t duration_ms, int64_t bytes) {
  Status s = run(db_.sql(),
                 "INSERT INTO recordings (call_id, path, format, duration_ms, bytes, created_at) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (call_id) DO UPDATE SET path = excluded.path, "
                 "format = excluded.format, duration_ms = excluded.duration_ms, bytes = excluded.bytes, "
                 "created_at = excluded.created_at",
                 call_id, path, format, duration_ms, bytes, db_.clock().wall_ms());
  if (!s.ok()) return wrap("saving the recording of call " + std::string(call_id), s.error());
  return {};
}

Result<std::optional<RecordingRow>> CallsRepo::recording(std::string_view call_id) {
  auto stmt = db_.sql().cached(
      "SELECT call_id, path, format, duration_ms, bytes, created_at FROM recordings WHERE call_id = ?1");
  if (!stmt.ok()) return wrap("reading recording", stmt.error());
  (*stmt)->bind(1, call_id);
  auto row = (*stmt)->step();
  if (!row.ok()) return wrap("reading the recording of call " + std::string(call_id), row.error());
  if (!*row) return std::optional<RecordingRow>();
  const sql::Stmt& s = **stmt;
  return std::optional<RecordingRow>(
      RecordingRow{s.text(0), s.text(1), s.text(2), s.int64(3), s.int64(4), s.int64(5)});
}

Status CallsRepo::set_picked(std::string_view call_id, int64_t picked_at_ms) {
  Status s = run(db_.sql(),
                 "UPDATE calls SET call_picked_at = ?2, updated_at = ?3 WHERE call_id = ?1 AND status = "
                 "'in_progress'",
                 call_id, picked_at_ms, db_.clock().wall_ms());
  if (!s.ok()) return wrap("recording the answer of call " + std::string(call_id), s.error());
  return {};
}

Result<bool> CallsRepo::any_in_progress() {
  auto stmt = db_.sql().cached("SELECT EXISTS (SELECT 1 FROM calls WHERE status = 'in_progress')");
  if (!stmt.ok()) return wrap("looking for live calls", stmt.error());
  auto row = (*stmt)->step();
  if (!row.ok()) return wrap("looking for live calls", row.error());
  return *row && (*stmt)->int64(0) != 0;
}

Result<std::vector<std::string>> CallsRepo::close_in_progress(Transaction& /*tx*/, int64_t now,
                                                              std::optional<int64_t> alive_at) {
  struct Live {
    std::string id;
    int64_t last_seen;
    std::optional<int64_t> picked;
  };
  std::vector<Live> live;
  {
    auto select = db_.sql().cached(
        "SELECT call_id, created_at, call_picked_at, (SELECT MAX(COALESCE(ended_at, started_at)) FROM "
        "transcript_turns t WHERE t.call_id = calls.call_id) FROM calls WHERE status = 'in_progress' ORDER "
        "BY created_at, call_id");
    if (!select.ok()) return select.error();
    for (;;) {
      auto row = (*select)->step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      const sql::Stmt& s = **select;
      Live c{s.text(0), s.int64(1), s.opt_int64(2)};
      if (c.picked) c.last_seen = std::max(c.last_seen, *c.picked);
      if (auto turns = s.opt_int64(3)) c.last_seen = std::max(c.last_seen, *turns);
      // The heartbeat is the daemon's, not the call's: it only says something about calls older than it.
      if (alive_at && *alive_at >= c.last_seen) c.last_seen = *alive_at;
      live.push_back(std::move(c));
    }
  }
  for (const Live& c : live) {
    // A clock set back while the daemon was down must not end a call before it was answered.
    const int64_t ended = std::max(std::min(c.last_seen, now), c.picked.value_or(0));
    const int64_t seconds = c.picked ? (ended - *c.picked + 500) / 1000 : 0;
    Status upd = run(db_.sql(),
                     "UPDATE calls SET status = ?2, call_ended_reason = 'daemon_restart', call_ended_by = "
                     "'system', ended_at = ?3, duration_seconds = ?4, revision = revision + 1, updated_at = "
                     "?5 WHERE call_id = ?1 AND status = 'in_progress'",
                     c.id, std::string_view(c.picked ? "picked" : "failed"), ended, seconds, now);
    if (!upd.ok()) return upd.error();
  }
  std::vector<std::string> ids;
  ids.reserve(live.size());
  for (Live& c : live) ids.push_back(std::move(c.id));
  return ids;
}

}  // namespace osvi::daemon
