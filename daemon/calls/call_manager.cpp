// The calls engine: line selection, the outbound queue, inbound answering, call lifetimes.
#include "osvi/calls/call_manager.hpp"

#include <algorithm>
#include <utility>

#include "osvi/base/ids.hpp"
#include "osvi/base/log.hpp"
#include "osvi/base/phone.hpp"

namespace osvi::daemon {

namespace {

CallSetup outbound_setup(const AgentConfig& a, const CallRecord& rec, const PlaceCallRequest& r) {
  return CallSetup{a,
                   rec,
                   true,
                   r.system_prompt,
                   r.initial_greeting,
                   r.person_name,
                   r.additional_data,
                   r.max_call_duration_seconds};
}

// The box's own number on `line`, E.164: configuration (lines[].number) wins, else what the SIM answers to
// AT+CNUM, made E.164 with site.country when it is national. A number that cannot be made E.164 is not a
// from_number: unknown (null) rather than a string a client cannot dial back.
std::optional<std::string> own_number(const LineConfig* lc, const hal::Line& line, const Config* config) {
  if (lc && !lc->number.empty()) return lc->number;
  const std::string sim = line.identity().own_number;
  if (sim.empty()) return std::nullopt;
  if (config) {
    if (auto e164 = normalize_phone(sim, config->site.country)) return *e164;
  }
  if (hal::is_e164(sim)) return sim;  // another country's SIM
  return std::nullopt;
}

}  // namespace

// A call that never reached a line still gets a final record, never an in_progress orphan.
void CallManager::close_unplaced(CallRecord& rec, std::string reason) {
  rec.status = "failed";
  rec.call_ended_reason = std::move(reason);
  rec.call_ended_by = "system";
  rec.ended_at_ms = ctx_.clock->wall_ms();
  if (Status s = finish_call_and_enqueue(*ctx_.store, rec); !s) {
    log::error("cannot write the final call record: " + s.error().message, {{"CALL_ID", rec.call_id}});
    return;
  }
  log::info("call ended before it reached a line: " + *rec.call_ended_reason,
            {{"CALL_ID", rec.call_id}, {"AGENT_UUID", rec.agent_uuid}, {"CALL_STATUS", rec.status}});
  announce(rec);
}

void CallManager::announce(const CallRecord& record) {
  if (stopping_ || finished_listeners_.empty()) return;
  finished_pending_.push_back(record);
}

void CallManager::deliver_finished() {
  // A listener may place calls (announcing more) or remove listeners: each round works on what it took.
  while (!finished_pending_.empty()) {
    std::vector<CallRecord> batch = std::exchange(finished_pending_, {});
    for (const CallRecord& r : batch) {
      std::vector<int> handles;
      for (const auto& [h, fn] : finished_listeners_) handles.push_back(h);
      for (int h : handles) {
        auto it = finished_listeners_.find(h);
        if (it == finished_listeners_.end()) continue;
        CallFinishedListener fn = it->second;  // the listener may remove itself while it runs
        fn(r);
      }
    }
  }
}

int CallManager::add_finished_listener(CallFinishedListener listener) {
  const int handle = ++next_listener_;
  finished_listeners_.emplace(handle, std::move(listener));
  return handle;
}

void CallManager::remove_finished_listener(int handle) {
  finished_listeners_.erase(handle);
}

CallManager::CallManager(CallContext& ctx, LineManager& lines) : ctx_(ctx), lines_(lines) {
  // Finished calls are destroyed on the next loop iteration, never inside their
  // own callbacks; their listeners are told there too, outside the event that ended them.
  auto post = ctx_.loop->add_post([this] {
    graveyard_.clear();
    deliver_finished();
  });
  if (post) reaper_ = std::move(*post);
}

CallManager::~CallManager() {
  shutdown();
}

const AgentConfig* CallManager::agent(std::string_view uuid) const {
  if (!config_) return nullptr;
  for (const AgentConfig& a : config_->agents)
    if (a.agent_uuid == uuid) return &a;
  return nullptr;
}

Call* CallManager::call_on(const hal::Line& line) {
  for (auto& c : calls_)
    if (&c.call->line() == &line && !c.call->finished()) return c.call.get();
  return nullptr;
}

const Call* CallManager::call_on(const hal::Line& line) const {
  for (const auto& c : calls_)
    if (&c.call->line() == &line && !c.call->finished()) return c.call.get();
  return nullptr;
}

bool CallManager::line_free(const hal::Line& line) const {
  return line.state() == hal::LineState::idle && !call_on(line) && !line.held() &&
         line.audio().unavailable.empty();
}

hal::Line* CallManager::free_line(std::string_view number) {
  const bool extension = is_pbx_extension(number);
  for (hal::Line* l : lines_.lines())
    if (line_free(*l) && (!extension || lines_.is_sip(*l))) return l;
  return nullptr;
}

size_t CallManager::idle_lines() const {
  size_t n = 0;
  for (const hal::Line* l : lines_.lines())
    if (line_free(*l)) ++n;
  return n;
}

CallsHealth CallManager::health() const {
  CallsHealth h{calls_.size(), queue_.size(), max_queue(), finished_xruns_};
  for (const auto& c : calls_) h.xruns += c.call->audio_xruns();
  return h;
}

Result<std::string> CallManager::place_call(const PlaceCallRequest& r) {
  // Checked here too so every source (API, fleet, campaigns) is bounded, not only the one that checks first.
  if (r.additional_data && r.additional_data->size() > kMaxAdditionalDataBytes)
    return make_error("additional_data: " + std::to_string(r.additional_data->size()) +
                          " bytes of JSON, more than the limit of " + std::to_string(kMaxAdditionalDataBytes),
                      -EMSGSIZE);
  if (r.call_trigger_data && r.call_trigger_data->size() > kMaxTriggerDataBytes)
    return make_error("call request: " + std::to_string(r.call_trigger_data->size()) +
                          " bytes of JSON to store as call_trigger_data, more than the limit of " +
                          std::to_string(kMaxTriggerDataBytes),
                      -EMSGSIZE);
  if (r.call_id) {
    if (!is_uuid(*r.call_id)) return make_error("call_id: " + *r.call_id + " is not a UUID", -EINVAL);
    auto existing = ctx_.store->calls().get(*r.call_id);
    if (!existing) return existing.error();
    if (existing->has_value())
      return make_error("call_id: a call " + *r.call_id + " exists already", -EEXIST);
  }
  const AgentConfig* a = agent(r.agent_uuid);
  if (!a || !a->active || a->archived || a->mode != AgentMode::voice)
    return make_error("agent_uuid: " + r.agent_uuid + " is not an active voice agent", -ENOENT);
  auto dnd = ctx_.store->dnd().is_active(r.agent_uuid, r.phone_e164);
  if (!dnd) return dnd.error();
  if (*dnd)
    return make_error("phone_number: " + r.phone_e164 + " is on the do-not-disturb list of this agent",
                      -EPERM);
  if (lines_.size() == 0) return make_error("this box has no telephony line to place calls on", -ENODEV);
  // Sources other than the API (callbacks, the dialler) arrive here unchecked; a modem cannot dial these.
  if (is_pbx_extension(r.phone_e164) && !lines_.has_sip())
    return make_error(
        "phone_number: " + r.phone_e164 + " is a PBX extension, and this box has no SIP line to dial one",
        -EPROTONOSUPPORT);
  {
    // A line whose audio cannot work would connect a caller to silence: refuse rather than dial.
    std::string why;
    bool any_audio = false;
    for (hal::Line* l : lines_.lines()) {
      const std::string u = l->audio().unavailable;
      if (u.empty()) {
        any_audio = true;
        break;
      }
      why += (why.empty() ? "" : "; ") + l->id() + ": " + u;
    }
    if (!any_audio) return make_error("no line of this box can carry call audio (" + why + ")", -ENOMEDIUM);
  }
  hal::Line* line = free_line(r.phone_e164);
  if (!line && queue_.size() >= max_queue())
    return make_error("every line is busy and the call queue is full (" + std::to_string(queue_.size()) +
                          " waiting); retry later",
                      -EBUSY);

  CallRecord rec;
  const int64_t now = ctx_.clock->wall_ms();
  rec.call_id = r.call_id ? *r.call_id : new_uuid_v7(now);
  rec.agent_uuid = a->agent_uuid;
  rec.agent_name = a->name;
  rec.phone_number = r.phone_e164;
  rec.call_type = "outbound";
  rec.status = "in_progress";
  rec.person_name = r.person_name;
  // V1CallDetail.caller_name names the other party: on an outbound call, the callee the request names.
  rec.caller_name = r.person_name;
  if (line) rec.from_number = own_number(lines_.config_of(line->id()), *line, config_);
  rec.system_prompt = r.system_prompt;
  rec.initial_greeting = r.initial_greeting;
  rec.webhook_url = r.webhook_url;
  rec.additional_data = r.additional_data;
  rec.call_config_overrides = r.call_config_overrides;
  rec.data_extraction = r.data_extraction;
  rec.call_trigger_data = r.call_trigger_data;
  rec.campaign_id = r.campaign_id;
  rec.campaign_upload_id = r.campaign_upload_id;
  rec.retry_count = r.retry_count;
  if (Status s = ctx_.store->calls().insert(rec); !s) return s.error();

  if (!line) {
    queue_.push_back({r, rec});
    log::info("every line is busy: call queued (" + std::to_string(queue_.size()) + " waiting)",
              {{"CALL_ID", rec.call_id}, {"AGENT_UUID", rec.agent_uuid}});
    return rec.call_id;
  }
  CallSetup setup = outbound_setup(*a, rec, r);
  if (Status s = launch(*line, std::move(setup)); !s) {
    // The record exists: close it rather than leave it in_progress.
    close_unplaced(rec, "line_refused: " + s.error().message);
  }
  return rec.call_id;
}

bool CallManager::voice_agent_active(std::string_view uuid) const {
  const AgentConfig* a = agent(uuid);
  return a && a->active && !a->archived && a->mode == AgentMode::voice;
}

Result<std::string> CallManager::start_web_call(const std::string& agent_uuid,
                                                std::shared_ptr<hal::Line> line, AudioPortFactory port,
                                                std::function<void(const TranscriptTurn&)> on_turn) {
  if (!line) return make_error("web call: no line", -EINVAL);
  const AgentConfig* a = agent(agent_uuid);
  if (!voice_agent_active(agent_uuid))
    return make_error("agent_uuid: " + agent_uuid + " is not an active voice agent", -ENOENT);
  CallRecord rec;
  rec.call_id = new_uuid_v7(ctx_.clock->wall_ms());
  rec.agent_uuid = a->agent_uuid;
  rec.agent_name = a->name;
  // The browser called the agent, as a caller dials an agent's number: inbound (the store knows no third
  // type); no number, and marked a test like OSVI's dashboard web call (docs/api.md "Test calls").
  rec.call_type = "inbound";
  rec.execution_mode = "test";
  rec.phone_number = "";
  rec.status = "in_progress";
  rec.line = line->id();
  if (Status s = ctx_.store->calls().insert(rec); !s) return s.error();
  CallSetup setup{*a, rec, false, std::nullopt, std::nullopt, std::nullopt, std::nullopt, std::nullopt};
  hal::Line& l = *line;
  l.set_event_handler([this, &l](const hal::LineEvent& e) { on_line_event(l, e); });
  if (Status s = launch(l, std::move(setup), std::move(port), std::move(on_turn), std::move(line)); !s) {
    close_unplaced(rec, "answer_failed: " + s.error().message);
    return s.error();
  }
  return rec.call_id;
}

Status CallManager::launch(hal::Line& line, CallSetup setup, AudioPortFactory port,
                           std::function<void(const TranscriptTurn&)> on_turn,
                           std::shared_ptr<hal::Line> owned) {
  setup.record.line = line.id();
  setup.record.from_number = own_number(lines_.config_of(line.id()), line, config_);
  // The settings of this moment travel with the call: a reload later changes the next call, not this one.
  auto ctx = std::make_unique<CallContext>(ctx_);
  if (config_) {
    ctx->audio = config_->audio;
    ctx->calls = config_->calls;
  }
  if (port) ctx->audio_port = std::move(port);
  if (on_turn) ctx->on_turn = std::move(on_turn);
  auto call = std::make_unique<Call>(*ctx, line, std::move(setup), [this](Call& c) { call_finished(c); });
  Call* raw = call.get();
  calls_.push_back(Live{std::move(owned), std::move(ctx), std::move(call)});
  Status s = raw->start();
  lines_.refresh(line);
  if (!s) {
    log::warning("line " + line.id() + " refused the call: " + s.error().message, {{"CALL_ID", raw->id()}});
    auto it = std::find_if(calls_.begin(), calls_.end(), [&](auto& c) { return c.call.get() == raw; });
    graveyard_.push_back(std::move(*it));
    calls_.erase(it);
  }
  return s;
}

void CallManager::call_finished(Call& call) {
  finished_xruns_ += call.audio_xruns();
  auto it = std::find_if(calls_.begin(), calls_.end(), [&](auto& c) { return c.call.get() == &call; });
  if (it != calls_.end()) {
    graveyard_.push_back(std::move(*it));
    calls_.erase(it);
  }
  lines_.refresh(call.line());
  announce(call.record());
}

void CallManager::drain_queue() {
  while (!queue_.empty()) {
    // First come, first dialled — among the calls a free line can take: an extension waiting for a SIP
    // channel does not hold up a number a free modem could dial.
    hal::Line* line = nullptr;
    auto it = queue_.begin();
    for (; it != queue_.end(); ++it)
      if ((line = free_line(it->request.phone_e164)) != nullptr) break;
    if (!line) return;
    Queued q = std::move(*it);
    queue_.erase(it);
    const AgentConfig* a = agent(q.request.agent_uuid);
    if (!a) {
      close_unplaced(q.record, "agent_removed");
      continue;
    }
    // The list may have changed while the call waited: checked again at the moment of dialling.
    auto dnd = ctx_.store->dnd().is_active(q.record.agent_uuid, q.record.phone_number);
    if (!dnd) {
      // Not knowing is not permission: the call is not dialled.
      close_unplaced(q.record, "do_not_disturb_unknown: " + dnd.error().message);
      continue;
    }
    if (*dnd) {
      log::notice("queued call not dialled: " + q.record.phone_number +
                      " was put on the do-not-disturb list while it waited",
                  {{"CALL_ID", q.record.call_id}, {"AGENT_UUID", q.record.agent_uuid}});
      close_unplaced(q.record, "do_not_disturb");
      continue;
    }
    const PlaceCallRequest& r = q.request;
    CallSetup setup = outbound_setup(*a, q.record, r);
    if (Status s = launch(*line, std::move(setup)); !s) {
      close_unplaced(q.record, "line_refused: " + s.error().message);
    }
  }
}

// Caller ids arrive as the network formats them, often national ("09876543210"); site.country makes them
// E.164 like every outbound number, so records, search and the do-not-disturb list agree. A number the
// library cannot read (a short code, an operator string) is kept as the network sent it.
std::string CallManager::caller_number(const std::string& raw) const {
  if (raw.empty() || !config_) return raw;
  auto e164 = normalize_phone(raw, config_->site.country);
  return e164 ? *e164 : raw;
}

void CallManager::answer_inbound(hal::Line& line, const hal::LineEvent& e) {
  if (line.held()) {
    // The audio loopback has the line's PCM open; it ends within seconds and the caller may ring on.
    log::warning("line " + line.id() + ": incoming call from " +
                     (e.number.empty() ? "a withheld number" : e.number) +
                     " not answered: the line is held by an audio loopback test",
                 {{"LINE", line.id()}});
    return;
  }
  const LineConfig* lc = lines_.config_of(line.id());
  const AgentConfig* a = lc ? agent(lc->agent_uuid) : nullptr;
  if (!a || !a->active || a->archived || a->mode != AgentMode::voice) {
    log::notice("line " + line.id() + ": incoming call from " +
                    (e.number.empty() ? "a withheld number" : e.number) +
                    " not answered: no active voice agent is assigned to the line",
                {{"LINE", line.id()}});
    return;
  }
  if (const std::string u = line.audio().unavailable; !u.empty()) {
    log::warning("line " + line.id() + ": incoming call from " +
                     (e.number.empty() ? "a withheld number" : e.number) +
                     " not answered: the line's audio is unavailable (" + u + ")",
                 {{"LINE", line.id()}});
    return;
  }
  CallRecord rec;
  rec.call_id = new_uuid_v7(ctx_.clock->wall_ms());
  rec.agent_uuid = a->agent_uuid;
  rec.agent_name = a->name;
  rec.phone_number = caller_number(e.number);
  rec.from_number = own_number(lc, line, config_);
  rec.call_type = "inbound";
  rec.status = "in_progress";
  if (Status s = ctx_.store->calls().insert(rec); !s) {
    log::error("cannot record the incoming call, not answering: " + s.error().message, {{"LINE", line.id()}});
    return;
  }
  CallSetup setup{*a, rec, false, std::nullopt, std::nullopt, std::nullopt, std::nullopt, std::nullopt};
  if (Status s = launch(line, std::move(setup)); !s) {
    close_unplaced(rec, "answer_failed: " + s.error().message);
  }
}

void CallManager::on_line_event(hal::Line& line, const hal::LineEvent& e) {
  if (Call* c = call_on(line)) {
    c->on_line_event(e);
  } else if (e.type == hal::LineEvent::Type::incoming) {
    answer_inbound(line, e);
  }
  if (line.state() == hal::LineState::idle && !call_on(line)) drain_queue();
}

void CallManager::shutdown() {
  stopping_ = true;
  finished_pending_.clear();
  std::vector<Live> live = std::move(calls_);
  calls_.clear();
  for (auto& c : live)
    if (!c.call->finished()) c.call->abort("daemon_stopped");
  for (Queued& q : queue_) {
    close_unplaced(q.record, "daemon_stopped");
  }
  queue_.clear();
  for (auto& c : live) graveyard_.push_back(std::move(c));
}

}  // namespace osvi::daemon
