// Writes that span the calls and outbox repositories: a call's record is queued with the change it describes.
#include "osvi/store/unit_of_work.hpp"

#include <cjson/cJSON.h>

#include <cerrno>
#include <charconv>
#include <string>

#include "osvi/net/json.hpp"
#include "osvi/store/store.hpp"
#include "sqlite.hpp"

namespace osvi::daemon {
namespace {

using sql::wrap;

// JSON columns are embedded as JSON, so the fleet does not parse strings inside strings.
void add_opt_json(cJSON* o, const char* name, const std::optional<std::string>& v) {
  cJSON* parsed = v ? cJSON_ParseWithLength(v->data(), v->size()) : nullptr;
  if (parsed != nullptr) {
    cJSON_AddItemToObject(o, name, parsed);
  } else {
    net::json_add_string_or_null(o, name, v);
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
  net::json_add_string_or_null(r, "from_number", c.from_number);
  net::json_add_string(r, "status", c.status);
  net::json_add_string(r, "call_type", c.call_type);
  cJSON_AddNumberToObject(r, "duration_seconds", static_cast<double>(c.duration_seconds));
  net::json_add_string_or_null(r, "call_ended_by", c.call_ended_by);
  net::json_add_string_or_null(r, "call_ended_reason", c.call_ended_reason);
  net::json_add_int_or_null(r, "campaign_id", c.campaign_id);
  net::json_add_int_or_null(r, "campaign_upload_id", c.campaign_upload_id);
  if (c.tag_id) {
    cJSON* tag = cJSON_AddObjectToObject(r, "tag");
    cJSON_AddNumberToObject(tag, "id", static_cast<double>(*c.tag_id));
    net::json_add_string_or_null(tag, "name", c.tag_name);
    net::json_add_string_or_null(tag, "color_code", c.tag_color_code);
  } else {
    cJSON_AddNullToObject(r, "tag");
  }
  cJSON_AddNumberToObject(r, "created_at_ms", static_cast<double>(c.created_at_ms));
  net::json_add_int_or_null(r, "call_picked_at_ms", c.call_picked_at_ms);
  net::json_add_int_or_null(r, "ended_at_ms", c.ended_at_ms);
  net::json_add_string_or_null(r, "caller_name", c.caller_name);
  net::json_add_string_or_null(r, "person_name", c.person_name);
  cJSON_AddNumberToObject(r, "retry_count", static_cast<double>(c.retry_count));
  net::json_add_string_or_null(r, "summary", c.summary);
  add_opt_json(r, "data_captured", c.data_captured);
  add_opt_json(r, "post_call_analysis", c.post_call_analysis);
  add_opt_json(r, "structured_output", c.structured_output);
  add_opt_json(r, "call_trigger_data", c.call_trigger_data);
  net::json_add_string_or_null(r, "line", c.line);
  cJSON_AddBoolToObject(r, "callback_required", c.callback_required);
  net::json_add_int_or_null(r, "greeting_gap_ms", c.greeting_gap_ms);
  net::json_add_string(r, "execution_mode", c.execution_mode);
  cJSON_AddNumberToObject(r, "transcript_turns", static_cast<double>(turns));
  cJSON_AddNumberToObject(r, "updated_at_ms", static_cast<double>(c.updated_at_ms));
  return net::json_print(r);
}

}  // namespace

Status enqueue_call_record(Transaction& /*tx*/, CallsRepo& calls, OutboxRepo& outbox,
                           std::string_view call_id) {
  auto c = calls.get(call_id);
  if (!c.ok()) return c.error();
  if (!c->has_value())
    return make_error("store: queueing call " + std::string(call_id) + ": no such call", -ENOENT);
  auto turns = calls.transcript_turn_count(call_id);
  if (!turns.ok()) return turns.error();
  const CallRecord& rec = **c;
  const std::string key = "call:" + rec.call_id + ":" + std::to_string(rec.revision);
  auto q = outbox.enqueue(kOutboxKindCall, "calls", call_payload(rec, static_cast<size_t>(*turns), key), key);
  if (!q.ok()) return q.error();
  return {};
}

Status finish_call_and_enqueue(Transaction& tx, CallsRepo& calls, OutboxRepo& outbox, const CallRecord& call,
                               PostCallJobsRepo* jobs) {
  Status s = calls.update(call);
  if (s.ok()) s = enqueue_call_record(tx, calls, outbox, call.call_id);
  // The analysis and the webhooks of the call start from this row: committed with the final record, a crash
  // after the call's end cannot lose them.
  if (s.ok() && jobs != nullptr && call.status != "in_progress")
    s = jobs->create(call.call_id, call.ended_at_ms.value_or(0));
  if (!s.ok()) return wrap("finishing call " + call.call_id, s.error());
  return {};
}

Status mark_calls_alive(CallsRepo& calls, MetaRepo& meta, int64_t now) {
  auto live = calls.any_in_progress();
  if (!live.ok()) return live.error();
  if (!*live) return {};
  if (Status s = meta.set(kCallsAliveKey, std::to_string(now)); !s.ok())
    return wrap("marking live calls alive", s.error());
  return {};
}

Result<std::vector<std::string>> close_interrupted_calls(Transaction& tx, CallsRepo& calls,
                                                         OutboxRepo& outbox, MetaRepo& meta, int64_t now,
                                                         PostCallJobsRepo* jobs) {
  auto live = calls.any_in_progress();
  if (!live.ok()) return wrap("closing calls left in_progress", live.error());
  if (!*live) return std::vector<std::string>{};
  // The heartbeat only sharpens the end time: unreadable, the calls still close, at their last evidence.
  std::optional<int64_t> alive_at;
  if (auto text = meta.get(kCallsAliveKey)) {
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
    if (ec == std::errc() && end == text->data() + text->size()) alive_at = v;
  }
  auto ids = calls.close_in_progress(tx, now, alive_at);
  if (!ids.ok()) return wrap("closing calls left in_progress", ids.error());
  // The fleet must hear about every closed call, and only if closing it commits.
  for (const std::string& id : *ids) {
    if (Status q = enqueue_call_record(tx, calls, outbox, id); !q.ok())
      return wrap("closing calls left in_progress", q.error());
    if (jobs != nullptr) {
      if (Status j = jobs->create(id, now); !j.ok()) return wrap("closing calls left in_progress", j.error());
    }
  }
  return ids;
}

Status finish_call_and_enqueue(Store& store, const CallRecord& call) {
  auto tx = store.database().begin();
  if (!tx.ok()) return wrap("finishing call " + call.call_id, tx.error());
  if (Status s = finish_call_and_enqueue(*tx, store.calls(), store.outbox(), call, &store.post_call());
      !s.ok())
    return s;
  if (Status s = tx->commit(); !s.ok()) return wrap("finishing call " + call.call_id, s.error());
  return {};
}

}  // namespace osvi::daemon
