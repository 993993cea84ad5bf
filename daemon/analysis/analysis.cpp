// AnalysisService: the post-call analysis pipeline (analysis.hpp) — job pick, request, reply check, result.
#include "osvi/analysis/analysis.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <set>
#include <utility>

#include "osvi/base/log.hpp"
#include "osvi/base/phone.hpp"
#include "osvi/config/output_schema.hpp"
#include "osvi/hal/line.hpp"
#include "osvi/net/json.hpp"

namespace osvi::daemon {

using net::JsonPtr;

// One analysis waiting on the model: everything its request and its result need, copied at its start so a
// configuration reload meanwhile changes nothing under it.
struct AnalysisService::Running {
  PostCallJob job;
  AgentConfig agent;
  CallRecord call;
  std::vector<TranscriptTurn> transcript;
  OutputSchema output;
  std::shared_ptr<const TimeZone> zone;
  analysis::Input input;
  analysis::Prepared prepared;
  int round = 0;  // 0: the request, 1: the repair round
  net::RequestId request = 0;
};

int64_t analysis_backoff_ms(int64_t attempts) {
  int64_t d = kAnalysisFirstRetryMs;
  for (int64_t i = 1; i < attempts && d < kAnalysisMaxRetryMs; ++i) d *= 2;
  return std::min(d, kAnalysisMaxRetryMs);
}

namespace {

// Whether a failed request is worth another try later: the model's service was unreachable or busy, as
// opposed to refusing this request (4xx) — that one would fail the same way again.
bool transient(const net::UpstreamError& e) {
  using K = net::UpstreamError::Kind;
  if (e.kind == K::http) return e.http_status >= 500 || e.http_status == 429 || e.http_status == 408;
  return true;  // timeout, connect, reset, breaker_open, protocol (a proxy's broken stream)
}

// The call's post_call_analysis as an object to add to: what the calls engine put there stays
// (upstream_errors, callback_required).
JsonPtr analysis_object(const CallRecord& call) {
  if (call.post_call_analysis) {
    std::string why;
    JsonPtr doc = net::json_parse(*call.post_call_analysis, &why);
    if (cJSON_IsObject(doc.get())) return doc;
  }
  return JsonPtr(cJSON_CreateObject());
}

void set(cJSON* o, const char* key, cJSON* value) {
  cJSON_DeleteItemFromObjectCaseSensitive(o, key);
  cJSON_AddItemToObject(o, key, value);
}

cJSON* strings(const std::vector<std::string>& v) {
  cJSON* a = cJSON_CreateArray();
  for (const std::string& s : v) cJSON_AddItemToArray(a, cJSON_CreateString(s.c_str()));
  return a;
}

// Stored JSON text as a member (absent when unset or not JSON).
void add_json(cJSON* o, const char* key, const std::optional<std::string>& text) {
  if (!text) return;
  std::string why;
  if (JsonPtr v = net::json_parse(*text, &why)) cJSON_AddItemToObject(o, key, v.release());
}

}  // namespace

Result<std::unique_ptr<AnalysisService>> AnalysisService::create(AnalysisContext ctx) {
  if (ctx.clock == nullptr || ctx.store == nullptr || ctx.upstream == nullptr || ctx.calls == nullptr ||
      ctx.zones == nullptr || !ctx.timer) {
    return make_error("analysis: clock, store, upstream, calls, zones and timer are required", -EINVAL);
  }
  if (!ctx.phone_zones) ctx.phone_zones = [](std::string_view e164) { return phone_time_zones(e164); };
  if (ctx.max_in_flight == 0) ctx.max_in_flight = 1;
  std::unique_ptr<AnalysisService> s(new AnalysisService(std::move(ctx)));
  AnalysisService* self = s.get();
  auto timer = s->ctx_.timer([self] { self->pump(); });
  if (!timer) return make_error("analysis timer: " + timer.error().message, timer.error().code);
  s->timer_ = std::move(*timer);
  // The job of a call is created with its final record, before the listeners hear of it.
  s->finished_handle_ = s->ctx_.calls->add_finished_listener([self](const CallRecord&) { self->poke(); });
  return s;
}

AnalysisService::~AnalysisService() {
  ctx_.calls->remove_finished_listener(finished_handle_);
  for (auto& [id, r] : running_) ctx_.upstream->cancel(r->request);  // their jobs stay pending: redone later
  if (timer_) timer_->arm(-1);
}

void AnalysisService::set_config(const Config* config) {
  config_ = config;
  if (started_) pump();
}

Status AnalysisService::start() {
  auto counts = ctx_.store->post_call().counts();
  if (!counts) return counts.error();
  if (counts->analysis_pending > 0)
    log::info("post-call analysis: " + std::to_string(counts->analysis_pending) + " jobs pending");
  started_ = true;
  pump();
  return {};
}

int AnalysisService::add_done_listener(AnalysisDoneListener listener) {
  const int h = next_listener_++;
  listeners_.emplace(h, std::move(listener));
  return h;
}

void AnalysisService::remove_done_listener(int handle) {
  listeners_.erase(handle);
}

void AnalysisService::poke() {
  if (started_) pump();
}

void AnalysisService::pump() {
  if (pumping_ || config_ == nullptr || !started_) return;
  pumping_ = true;
  // Jobs that end at once (skipped) free their slot in the same turn: look again until nothing starts. A job
  // is tried once per pass, so one the store cannot read does not spin the loop.
  std::set<std::string> tried;
  for (bool again = true; again && running_.size() < ctx_.max_in_flight;) {
    again = false;
    const int64_t now = ctx_.clock->wall_ms();
    auto due =
        ctx_.store->post_call().due_for_analysis(now, ctx_.max_in_flight + running_.size() + tried.size());
    if (!due) {
      log::error("post-call analysis: cannot read the due jobs: " + due.error().message);
      break;
    }
    for (const PostCallJob& job : *due) {
      if (running_.size() >= ctx_.max_in_flight) break;
      if (running_.count(job.call_id) || !tried.insert(job.call_id).second) continue;
      begin(job);
      again = true;
    }
  }
  pumping_ = false;
  arm();
}

void AnalysisService::arm() {
  // Nothing to wait for while every slot is taken: the next reply pumps.
  if (running_.size() >= ctx_.max_in_flight) return timer_->arm(-1);
  // Jobs in flight are pending too: the earliest job not running is among the first running+1 by due time.
  auto next = ctx_.store->post_call().due_for_analysis(INT64_MAX, running_.size() + 1);
  if (!next) return timer_->arm(-1);
  for (const PostCallJob& j : *next) {
    if (running_.count(j.call_id)) continue;
    const int64_t wait_ms = std::max<int64_t>(0, j.next_attempt_at_ms - ctx_.clock->wall_ms());
    return timer_->arm(ctx_.clock->monotonic_us() + wait_ms * 1000);
  }
  timer_->arm(-1);
}

Status AnalysisService::finish(const std::string& call_id, std::string_view state,
                               std::optional<std::string> reason) {
  Status s = ctx_.store->post_call().finish_analysis(
      call_id, state, reason ? std::optional<std::string_view>(*reason) : std::nullopt);
  if (!s)
    log::error("post-call analysis: cannot close the job: " + s.error().message, {{"CALL_ID", call_id}});
  return s;
}

void AnalysisService::begin(const PostCallJob& job) {
  const std::string& id = job.call_id;
  auto skip = [&](const std::string& why) {
    if (finish(id, "skipped", why)) notify(id);
  };
  // The store's trouble is not the job's: it stays pending, due again a little later.
  auto defer = [&](const std::string& what) {
    log::error("post-call analysis: " + what, {{"CALL_ID", id}});
    (void)ctx_.store->post_call().retry_analysis(id, ctx_.clock->wall_ms() + kAnalysisFirstRetryMs, what);
  };
  auto call = ctx_.store->calls().get(id);
  if (!call) return defer("cannot read the call: " + call.error().message);
  if (!*call) return skip("the call record is gone");
  if ((*call)->status != "picked") return skip("not picked (" + (*call)->status + ")");
  const AgentConfig* agent = nullptr;
  for (const AgentConfig& a : config_->agents)
    if (a.agent_uuid == (*call)->agent_uuid) agent = &a;
  if (!agent) return skip("agent " + (*call)->agent_uuid + " is not in the configuration");
  if (!agent->analysis.enabled) return skip("analysis is off for the agent");
  auto turns = ctx_.store->calls().transcript(id);
  if (!turns) return defer("cannot read the transcript: " + turns.error().message);
  const bool spoken = std::any_of(turns->begin(), turns->end(), [](const TranscriptTurn& t) {
    return (t.role == "user" || t.role == "agent") && !t.text.empty();
  });
  if (!spoken) return skip("no transcript");

  auto r = std::make_shared<Running>();
  r->job = job;
  r->agent = *agent;
  r->call = std::move(**call);
  r->transcript = std::move(*turns);
  std::vector<std::string> problems;
  r->output = parse_output_schema_text(r->agent.analysis.output_schema_json, &problems);
  // The callee's zone: the number's, when it maps to exactly one; otherwise the site's.
  std::string zone_name = config_->site.time_zone;
  if (hal::is_e164(r->call.phone_number)) {
    const std::vector<std::string> zones = ctx_.phone_zones(r->call.phone_number);
    if (zones.size() == 1) zone_name = zones.front();
  }
  auto zone = ctx_.zones->get(zone_name);
  r->zone = zone ? *zone : TimeZone::fixed(config_->site.time_zone, config_->site.utc_offset_minutes * 60);
  const int64_t end_ms = r->call.ended_at_ms.value_or(job.created_at_ms);
  r->input.agent = &r->agent;
  r->input.call = &r->call;
  r->input.transcript = &r->transcript;
  r->input.fields = analysis::merge_fields(r->agent.analysis.data_extraction, r->call.data_extraction);
  r->input.output = &r->output;
  r->input.zone = r->zone->name();
  r->input.call_end_local = r->zone->local(end_ms);
  r->prepared = analysis::build_request(r->input);
  running_[id] = r;
  send(r);
}

void AnalysisService::send(const std::shared_ptr<Running>& r) {
  net::ChatRequest req;
  req.endpoint = to_net_endpoint(r->agent.analysis.llm);
  req.messages = r->prepared.messages;  // after a bad reply, the repair conversation (on_reply)
  req.temperature = r->agent.analysis.llm.temperature;
  req.max_tokens = r->agent.analysis.llm.max_tokens;
  req.response_format_json = r->prepared.response_format_json;
  net::ChatCallbacks cb;
  cb.on_done = [this, r](net::ChatResult result) { on_reply(r, std::move(result.text)); };
  cb.on_error = [this, r](const net::UpstreamError& e) { on_error(r, e); };
  r->request = ctx_.upstream->chat(std::move(req), std::move(cb));
}

void AnalysisService::on_reply(const std::shared_ptr<Running>& r, std::string text) {
  const std::string id = r->call.call_id;
  auto outcome = analysis::check_reply(text, r->input);
  if (!outcome && r->round == 0) {
    log::info("post-call analysis: the model's reply is not usable (" + outcome.error().message +
                  "); asking once more",
              {{"CALL_ID", id}});
    r->round = 1;
    r->prepared.messages = analysis::repair_messages(r->prepared, text, outcome.error().message);
    return send(r);
  }
  if (!outcome) {
    const std::string why = "the model's reply is not usable after one repair: " + outcome.error().message;
    if (Status s = write_failed(id, why); !s)
      log::error("post-call analysis: cannot record the failure: " + s.error().message, {{"CALL_ID", id}});
    log::warning("post-call analysis failed: " + why, {{"CALL_ID", id}});
    return end(id, true);
  }
  bool scheduled = false;
  if (Status s = write_done(*r, *outcome, &scheduled); !s) {
    // The job stays pending: a store failure now is retried like an outage.
    log::error("post-call analysis: cannot store the result: " + s.error().message, {{"CALL_ID", id}});
    (void)ctx_.store->post_call().retry_analysis(id, ctx_.clock->wall_ms() + kAnalysisFirstRetryMs,
                                                 "storing the result: " + s.error().message);
    return end(id, false);
  }
  log::notice("post-call analysis done" + std::string(outcome->missing.empty() ? "" : ", incomplete") +
                  (scheduled ? ", callback scheduled" : ""),
              {{"CALL_ID", id}, {"AGENT_UUID", r->agent.agent_uuid}});
  if (scheduled && ctx_.dialer) ctx_.dialer->poke();
  end(id, true);
}

void AnalysisService::on_error(const std::shared_ptr<Running>& r, const net::UpstreamError& e) {
  const std::string id = r->call.call_id;
  const std::string what = std::string(net::to_string(e.kind)) +
                           (e.http_status ? " " + std::to_string(e.http_status) : std::string()) + ": " +
                           e.message;
  const int64_t now = ctx_.clock->wall_ms();
  if (!transient(e) || now - r->job.created_at_ms >= kAnalysisGiveUpMs) {
    const std::string why = transient(e) ? "the analysis model was unreachable for 24 h (" + what + ")"
                                         : "the analysis model refused the request (" + what + ")";
    if (Status s = write_failed(id, why); !s)
      log::error("post-call analysis: cannot record the failure: " + s.error().message, {{"CALL_ID", id}});
    log::warning("post-call analysis failed: " + why, {{"CALL_ID", id}});
    return end(id, true);
  }
  const int64_t delay = analysis_backoff_ms(r->job.attempts + 1);
  if (Status s = ctx_.store->post_call().retry_analysis(id, now + delay, what); !s)
    log::error("post-call analysis: cannot defer the job: " + s.error().message, {{"CALL_ID", id}});
  // The first deferral is news; the rest of a long outage would flood the journal (one line per try).
  const std::string line = "post-call analysis deferred " + std::to_string(delay / 1000) + " s: " + what;
  if (r->job.attempts == 0)
    log::info(line, {{"CALL_ID", id}});
  else
    log::debug(line, {{"CALL_ID", id}});
  end(id, false);
}

void AnalysisService::end(const std::string& call_id, bool done) {
  running_.erase(call_id);
  if (done) notify(call_id);
  pump();
}

void AnalysisService::notify(const std::string& call_id) {
  auto copy = listeners_;  // a listener may remove itself
  for (auto& [h, l] : copy) l(call_id);
}

Status AnalysisService::write_failed(const std::string& call_id, const std::string& reason) {
  Database& db = ctx_.store->database();
  auto tx = db.begin();
  if (!tx) return tx.error();
  auto call = ctx_.store->calls().get(call_id);
  if (!call) return call.error();
  if (*call) {
    CallRecord rec = std::move(**call);
    JsonPtr pca = analysis_object(rec);
    set(pca.get(), "status", cJSON_CreateString("failed"));
    set(pca.get(), "error", cJSON_CreateString(reason.c_str()));
    rec.post_call_analysis = net::json_print(pca.get());
    if (Status s = ctx_.store->calls().update(rec); !s) return s;
    if (Status s = enqueue_call_record(*tx, ctx_.store->calls(), ctx_.store->outbox(), call_id); !s) return s;
  }
  if (Status s = ctx_.store->post_call().finish_analysis(call_id, "failed", reason); !s) return s;
  return tx->commit();
}

Status AnalysisService::write_done(Running& r, analysis::Outcome& out, bool* callback_scheduled) {
  const std::string& id = r.call.call_id;
  Database& db = ctx_.store->database();
  auto tx = db.begin();
  if (!tx) return tx.error();
  auto fresh = ctx_.store->calls().get(id);
  if (!fresh) return fresh.error();
  if (!*fresh) {
    if (Status s = ctx_.store->post_call().finish_analysis(id, "skipped", "the call record is gone"); !s)
      return s;
    return tx->commit();
  }
  CallRecord rec = std::move(**fresh);
  // A PBX extension (a SIP call) can be called back while a SIP line is configured.
  const bool sip_line =
      config_ && std::any_of(config_->lines.begin(), config_->lines.end(),
                             [](const LineConfig& l) { return l.type == LineType::sip && l.enabled; });
  const bool phone_known = hal::is_e164(rec.phone_number) || (sip_line && is_pbx_extension(rec.phone_number));
  JsonPtr pca = analysis_object(rec);
  cJSON* o = pca.get();
  set(o, "status", cJSON_CreateString("done"));
  cJSON_DeleteItemFromObjectCaseSensitive(o, "error");
  set(o, "complete", cJSON_CreateBool(out.missing.empty()));
  set(o, "missing", strings(out.missing));
  cJSON* dropped = cJSON_CreateArray();
  for (const analysis::Dropped& d : out.dropped) {
    cJSON* x = cJSON_CreateObject();
    net::json_add_string(x, "key", d.key);
    net::json_add_string(x, "reason", d.reason);
    cJSON_AddItemToArray(dropped, x);
  }
  set(o, "dropped_fields", dropped);
  set(o, "tags", strings(out.tags));
  set(o, "model", cJSON_CreateString(r.agent.analysis.llm.model.c_str()));

  // The callback: the callee's local time made absolute in their zone, then queued for the dialler when the
  // call (call_config_overrides.enable_callback) or else the agent (callback_detection.enabled) wants it.
  bool enabled = r.agent.analysis.callback_detection.enabled;
  if (rec.call_config_overrides) {
    std::string why;
    JsonPtr ov = net::json_parse(*rec.call_config_overrides, &why);
    if (const cJSON* e = cJSON_GetObjectItemCaseSensitive(ov.get(), "enable_callback"); cJSON_IsBool(e))
      enabled = cJSON_IsTrue(e);
  }
  cJSON* cb = cJSON_CreateObject();
  cJSON_AddBoolToObject(cb, "required", out.callback_required);
  net::json_add_string_or_null(cb, "requested_text", out.callback_text);
  net::json_add_string_or_null(cb, "local_time", out.callback_local);
  net::json_add_string(cb, "time_zone", r.zone->name());
  std::optional<int64_t> at_ms;
  if (out.callback_required && out.callback_local) {
    const analysis::LocalDateTime t = *analysis::parse_local_minute(*out.callback_local);
    at_ms = r.zone->utc_ms_of(t.year, t.month, t.day, t.hour * 60 + t.minute);
    net::json_add_string(cb, "at", analysis::iso_in_zone(*r.zone, *at_ms));
  } else {
    cJSON_AddNullToObject(cb, "at");
  }
  std::optional<int64_t> callback_id;
  std::string not_scheduled;
  if (!out.callback_required) {
    not_scheduled = "";
  } else if (!enabled) {
    not_scheduled = "callbacks are off for this call";
  } else if (!at_ms) {
    not_scheduled = "no time was named";
  } else if (!phone_known) {
    not_scheduled = "the callee's number is unknown";
  } else {
    CallbackRow row;
    row.kind = "callback";
    row.source_call_id = id;
    row.agent_uuid = rec.agent_uuid;
    row.phone = rec.phone_number;
    row.time_zone = r.zone->name();
    row.due_at_ms = std::max(*at_ms, ctx_.clock->wall_ms());  // a time already past: as soon as hours allow
    row.requested_text = out.callback_text;
    JsonPtr req(cJSON_CreateObject());
    if (rec.person_name) net::json_add_string(req.get(), "person_name", *rec.person_name);
    add_json(req.get(), "additional_data", rec.additional_data);
    if (rec.webhook_url) net::json_add_string(req.get(), "webhook_url", *rec.webhook_url);
    add_json(req.get(), "data_extraction", rec.data_extraction);
    add_json(req.get(), "call_config_overrides", rec.call_config_overrides);
    row.request_json = net::json_print(req.get());
    auto sched = ctx_.store->callbacks().schedule(row);
    if (!sched) return sched.error();
    callback_id = *sched;
    *callback_scheduled = true;
  }
  cJSON_AddBoolToObject(cb, "scheduled", callback_id.has_value());
  net::json_add_int_or_null(cb, "callback_id", callback_id);
  if (!not_scheduled.empty()) net::json_add_string(cb, "not_scheduled", not_scheduled);
  set(o, "callback", cb);

  cJSON* oo = cJSON_CreateObject();
  cJSON_AddBoolToObject(oo, "requested", out.opt_out);
  if (out.opt_out && phone_known) {
    auto added = ctx_.store->dnd().add_entry(rec.agent_uuid, rec.phone_number,
                                             std::string("asked not to be called again (post-call analysis)"),
                                             "opt_out", id);
    if (!added) return added.error();
    cJSON_AddBoolToObject(oo, "dnd_added", added->created);
  } else if (out.opt_out) {
    net::json_add_string(oo, "not_recorded", "the caller's number is unknown");
  }
  set(o, "opt_out", oo);

  rec.summary = out.summary;
  if (!r.input.fields.empty()) rec.data_captured = net::json_print(out.data.get());
  if (!out.tags.empty()) {
    for (const CallTag& t : r.agent.analysis.tags) {
      if (t.name != out.tags.front()) continue;
      rec.tag_id = t.id;
      rec.tag_name = t.name;
      rec.tag_color_code = t.color_code;
    }
  }
  if (out.structured) rec.structured_output = net::json_print(out.structured.get());
  rec.callback_required = rec.callback_required || out.callback_required;
  set(o, "callback_required", cJSON_CreateBool(rec.callback_required));
  rec.post_call_analysis = net::json_print(o);
  if (Status s = ctx_.store->calls().update(rec); !s) return s;
  if (Status s = enqueue_call_record(*tx, ctx_.store->calls(), ctx_.store->outbox(), id); !s) return s;
  if (Status s = ctx_.store->post_call().finish_analysis(id, "done", std::nullopt); !s) return s;
  return tx->commit();
}

}  // namespace osvi::daemon
