// Store: the durable outbox of fleet deliveries (call records, events), its quota and its counters.
#include <cjson/cJSON.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "osvi/store/store.hpp"
#include "osvi/net/json.hpp"
#include "sqlite.hpp"

namespace osvi::daemon {
namespace {

constexpr const char* kBytesKey = "outbox.bytes";
constexpr const char* kDroppedKey = "outbox.dropped";

using sql::run;
using sql::wrap;

template <class... Args>
Result<int64_t> query_int(sql::Db& db, const std::string& sql, const Args&... args) {
  auto stmt = db.cached(sql);
  if (!stmt.ok()) return stmt.error();
  (*stmt)->bind_all(args...);
  auto row = (*stmt)->step();
  if (!row.ok()) return row.error();
  return *row ? (*stmt)->int64(0) : int64_t{0};
}

// Adds delta to an integer kept in meta, in the caller's transaction.
Status add_meta(sql::Db& db, const char* key, int64_t delta) {
  return run(db,
             "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = "
             "CAST(CAST(value AS INTEGER) + ?2 AS TEXT)",
             key, std::to_string(delta));
}

void add_opt_string(cJSON* o, const char* name, const std::optional<std::string>& v) {
  if (v) {
    net::json_add_string(o, name, *v);
  } else {
    cJSON_AddNullToObject(o, name);
  }
}

// JSON columns are embedded as JSON, so the fleet does not parse strings inside strings.
void add_opt_json(cJSON* o, const char* name, const std::optional<std::string>& v) {
  cJSON* parsed = v ? cJSON_ParseWithLength(v->data(), v->size()) : nullptr;
  if (parsed != nullptr) {
    cJSON_AddItemToObject(o, name, parsed);
  } else {
    add_opt_string(o, name, v);
  }
}

void add_opt_int(cJSON* o, const char* name, const std::optional<int64_t>& v) {
  if (v) {
    cJSON_AddNumberToObject(o, name, static_cast<double>(*v));
  } else {
    cJSON_AddNullToObject(o, name);
  }
}

std::string call_payload(const CallRecord& c, size_t turns, const std::string& key) {
  net::JsonPtr o(cJSON_CreateObject());
  cJSON* r = o.get();
  net::json_add_string(r, "type", "call");
  net::json_add_string(r, "idempotency_key", key);
  net::json_add_string(r, "call_id", c.call_id);
  cJSON_AddNumberToObject(r, "revision", static_cast<double>(c.revision));
  net::json_add_string(r, "agent_uuid", c.agent_uuid);
  net::json_add_string(r, "agent_name", c.agent_name);
  net::json_add_string(r, "phone_number", c.phone_number);
  net::json_add_string(r, "from_number", c.from_number);
  net::json_add_string(r, "status", c.status);
  net::json_add_string(r, "call_type", c.call_type);
  cJSON_AddNumberToObject(r, "duration_seconds", static_cast<double>(c.duration_seconds));
  add_opt_string(r, "call_ended_by", c.call_ended_by);
  add_opt_string(r, "call_ended_reason", c.call_ended_reason);
  add_opt_int(r, "campaign_id", c.campaign_id);
  add_opt_int(r, "campaign_upload_id", c.campaign_upload_id);
  if (c.tag_id) {
    cJSON* tag = cJSON_AddObjectToObject(r, "tag");
    cJSON_AddNumberToObject(tag, "id", static_cast<double>(*c.tag_id));
    add_opt_string(tag, "name", c.tag_name);
    add_opt_string(tag, "color_code", c.tag_color_code);
  } else {
    cJSON_AddNullToObject(r, "tag");
  }
  cJSON_AddNumberToObject(r, "created_at_ms", static_cast<double>(c.created_at_ms));
  add_opt_int(r, "call_picked_at_ms", c.call_picked_at_ms);
  add_opt_int(r, "ended_at_ms", c.ended_at_ms);
  add_opt_string(r, "caller_name", c.caller_name);
  add_opt_string(r, "person_name", c.person_name);
  cJSON_AddNumberToObject(r, "retry_count", static_cast<double>(c.retry_count));
  add_opt_string(r, "summary", c.summary);
  add_opt_json(r, "data_captured", c.data_captured);
  add_opt_json(r, "post_call_analysis", c.post_call_analysis);
  add_opt_json(r, "structured_output", c.structured_output);
  add_opt_json(r, "call_trigger_data", c.call_trigger_data);
  add_opt_string(r, "line", c.line);
  cJSON_AddBoolToObject(r, "callback_required", c.callback_required);
  net::json_add_string(r, "execution_mode", c.execution_mode);
  cJSON_AddNumberToObject(r, "transcript_turns", static_cast<double>(turns));
  cJSON_AddNumberToObject(r, "updated_at_ms", static_cast<double>(c.updated_at_ms));
  return net::json_print(r);
}

}  // namespace

Status Store::finish_call(const CallRecord& call) {
  Status s = transaction([&]() -> Status {
    if (Status u = update_call(call); !u.ok()) return u;
    return enqueue_call_record(call.call_id);
  });
  if (!s.ok()) return wrap("finishing call " + call.call_id, s.error());
  return {};
}

Status Store::enqueue_call_record(std::string_view call_id) {
  auto c = call(call_id);
  if (!c.ok()) return c.error();
  if (!c->has_value())
    return make_error("store: queueing call " + std::string(call_id) + ": no such call", -ENOENT);
  auto turns = query_int(*db_, "SELECT COUNT(*) FROM transcript_turns WHERE call_id = ?1", call_id);
  if (!turns.ok()) return wrap("counting transcript turns", turns.error());
  const CallRecord& rec = **c;
  const std::string key = "call:" + rec.call_id + ":" + std::to_string(rec.revision);
  auto q = enqueue(kOutboxKindCall, "calls", call_payload(rec, static_cast<size_t>(*turns), key), key);
  if (!q.ok()) return q.error();
  return {};
}

Result<bool> Store::enqueue(std::string_view kind, std::string_view topic, std::string_view payload,
                            std::string_view idempotency_key) {
  bool inserted = false;
  Status s = transaction([&]() -> Status {
    Status ins = run(*db_,
                     "INSERT INTO outbox (topic, payload, idempotency_key, kind, created_at) "
                     "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (idempotency_key) DO NOTHING",
                     topic, payload, idempotency_key, kind, clock_.wall_ms());
    if (!ins.ok()) return ins;
    inserted = db_->changes() > 0;
    if (!inserted) return {};
    if (Status b = add_meta(*db_, kBytesKey, static_cast<int64_t>(payload.size())); !b.ok()) return b;
    return enforce_outbox_quota();
  });
  if (!s.ok()) return wrap("queueing " + std::string(idempotency_key), s.error());
  return inserted;
}

// Runs inside the enqueue transaction, so a dropped event and the new row commit together.
Status Store::enforce_outbox_quota() {
  auto rows = query_int(*db_, "SELECT COUNT(*) FROM outbox");
  if (!rows.ok()) return rows.error();
  auto bytes = query_int(*db_, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?1", kBytesKey);
  if (!bytes.ok()) return bytes.error();
  int64_t n = *rows, b = *bytes;
  int64_t dropped = 0;
  while (n > outbox_limits_.max_rows || b > outbox_limits_.max_bytes) {
    auto stmt = db_->cached(
        "DELETE FROM outbox WHERE id = (SELECT MIN(id) FROM outbox WHERE kind <> 'call') "
        "RETURNING LENGTH(CAST(payload AS BLOB))");
    if (!stmt.ok()) return stmt.error();
    auto row = (*stmt)->step();
    if (!row.ok()) return row.error();
    if (!*row) break;  // only call records left: they stay, over quota (alarm)
    b -= (*stmt)->int64(0);
    --n;
    ++dropped;
  }
  if (dropped == 0) return {};
  if (Status s = add_meta(*db_, kBytesKey, -(*bytes - b)); !s.ok()) return s;
  return add_meta(*db_, kDroppedKey, dropped);
}

Result<std::vector<OutboxRow>> Store::outbox_pending(int64_t after_id, size_t limit) {
  auto stmt = db_->cached(
      "SELECT id, topic, payload, idempotency_key, kind, created_at, attempts FROM outbox WHERE id > ?1 "
      "ORDER BY id LIMIT ?2");
  if (!stmt.ok()) return wrap("listing the outbox", stmt.error());
  (*stmt)->bind_all(after_id, static_cast<int64_t>(limit));
  std::vector<OutboxRow> out;
  for (;;) {
    auto row = (*stmt)->step();
    if (!row.ok()) return wrap("listing the outbox", row.error());
    if (!*row) break;
    OutboxRow r;
    r.id = (*stmt)->int64(0);
    r.topic = (*stmt)->text(1);
    r.payload = (*stmt)->text(2);
    r.idempotency_key = (*stmt)->text(3);
    r.kind = (*stmt)->text(4);
    r.created_at_ms = (*stmt)->int64(5);
    r.attempts = (*stmt)->int64(6);
    out.push_back(std::move(r));
  }
  return out;
}

Status Store::outbox_mark_attempted(int64_t first_id, int64_t last_id) {
  Status s =
      run(*db_, "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ?3 WHERE id BETWEEN ?1 AND ?2",
          first_id, last_id, clock_.wall_ms());
  if (!s.ok()) return wrap("marking outbox attempts", s.error());
  return {};
}

Status Store::outbox_delete(const std::vector<int64_t>& ids) {
  if (ids.empty()) return {};
  Status s = transaction([&]() -> Status {
    int64_t freed = 0;
    for (int64_t id : ids) {
      auto stmt = db_->cached("DELETE FROM outbox WHERE id = ?1 RETURNING LENGTH(CAST(payload AS BLOB))");
      if (!stmt.ok()) return stmt.error();
      (*stmt)->bind(1, id);
      auto row = (*stmt)->step();
      if (!row.ok()) return row.error();
      if (*row) freed += (*stmt)->int64(0);
    }
    return add_meta(*db_, kBytesKey, -freed);
  });
  if (!s.ok()) return wrap("deleting delivered outbox rows", s.error());
  return {};
}

Result<OutboxStats> Store::outbox_stats() {
  OutboxStats st;
  auto stmt = db_->cached(
      "SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(payload AS BLOB))), 0), COALESCE(MIN(created_at), 0), "
      "COALESCE(SUM(kind <> 'call'), 0) FROM outbox");
  if (!stmt.ok()) return wrap("reading outbox statistics", stmt.error());
  auto row = (*stmt)->step();
  if (!row.ok()) return wrap("reading outbox statistics", row.error());
  int64_t non_call = 0;
  if (*row) {
    st.queued = (*stmt)->int64(0);
    st.bytes = (*stmt)->int64(1);
    st.oldest_created_at_ms = (*stmt)->int64(2);
    non_call = (*stmt)->int64(3);
  }
  if (auto d = meta(kDroppedKey)) st.dropped = std::strtoll(d->c_str(), nullptr, 10);
  st.over_quota =
      non_call == 0 && (st.queued > outbox_limits_.max_rows || st.bytes > outbox_limits_.max_bytes);
  // The running byte count can drift when other tools write the table; the exact sum resets it.
  auto cached = meta(kBytesKey);
  if (!cached || std::strtoll(cached->c_str(), nullptr, 10) != st.bytes) {
    if (!db_->in_transaction()) (void)set_meta(kBytesKey, std::to_string(st.bytes));
  }
  return st;
}

int64_t Store::data_version() {
  auto v = db_->query_text("PRAGMA data_version");
  if (!v.ok() || !v->has_value()) return -1;
  return std::strtoll((*v)->c_str(), nullptr, 10);
}

}  // namespace osvi::daemon
