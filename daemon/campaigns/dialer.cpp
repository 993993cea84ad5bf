// Dialer: the campaign scheduler (dialer.hpp).
#include "osvi/campaigns/dialer.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <utility>

#include "osvi/base/ids.hpp"
#include "osvi/base/log.hpp"
#include "osvi/base/phone.hpp"
#include "osvi/net/json.hpp"

namespace osvi::daemon {
namespace {

constexpr int kDayMin = 24 * 60;
constexpr int64_t kDayMs = 24LL * 3600 * 1000;

using Interval = std::pair<int, int>;  // [start, end) minutes of the local day, start < end

// A daily window as non-wrapping intervals: [s, e) when s < e; [s, 24:00) and [00:00, e) when it wraps past
// midnight; nothing when s == e.
std::vector<Interval> day_intervals(int start_min, int end_min) {
  start_min = std::clamp(start_min, 0, kDayMin);
  end_min = std::clamp(end_min, 0, kDayMin);
  if (start_min < end_min) return {{start_min, end_min}};
  if (start_min > end_min) {
    std::vector<Interval> out{{start_min, kDayMin}};
    if (end_min > 0) out.emplace_back(0, end_min);
    return out;
  }
  return {};
}

// The campaign's window inside the legal floor: a campaign can narrow the floor, never widen it. Both are
// minutes of the callee's local day; the result may be two intervals when the campaign's window wraps.
std::vector<Interval> allowed_intervals(const CampaignRow& c, const ComplianceConfig& floor) {
  std::vector<Interval> out;
  for (const Interval& a : day_intervals(c.window_start_min, c.window_end_min)) {
    for (const Interval& b : day_intervals(floor.calling_hours_start_min, floor.calling_hours_end_min)) {
      const int s = std::max(a.first, b.first), e = std::min(a.second, b.second);
      if (s < e) out.emplace_back(s, e);
    }
  }
  return out;
}

// The first instant >= now_ms inside one of the intervals on one of the days (-1: never).
int64_t next_allowed(const TimeZone& zone, int64_t now_ms, const std::vector<Interval>& intervals,
                     int days_mask) {
  int64_t best = -1;
  for (const Interval& i : intervals) {
    const int64_t at = zone.next_inside(now_ms, i.first, i.second, days_mask);
    if (at >= 0 && (best < 0 || at < best)) best = at;
  }
  return best;
}

bool is_final(std::string_view status) {
  return !status.empty() && status != "in_progress";
}

std::string id_text(int64_t id) {
  return std::to_string(id);
}

const cJSON* member(const cJSON* o, const char* name) {
  const cJSON* v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsNull(v) ? nullptr : v;
}

std::optional<std::string> string_of(const cJSON* o, const char* name) {
  const cJSON* v = member(o, name);
  if (!cJSON_IsString(v)) return std::nullopt;
  return std::string(v->valuestring);
}

// An integer member; none when absent, not a number, or beyond what a double holds exactly (a cast of a
// larger value would be undefined).
std::optional<int64_t> int_of(const cJSON* o, const char* name) {
  const cJSON* v = member(o, name);
  if (!cJSON_IsNumber(v) || !(std::fabs(v->valuedouble) <= 9007199254740992.0)) return std::nullopt;
  return static_cast<int64_t>(v->valuedouble);
}

// The call a callback places, from its request_json (CallbackRow) and retry count.
PlaceCallRequest callback_request(const CallbackRow& row, const std::string& call_id) {
  PlaceCallRequest r;
  r.agent_uuid = row.agent_uuid;
  r.phone_e164 = row.phone;
  r.retry_count = row.retry_count;
  r.call_id = call_id;
  r.source = row.kind;  // callback | retry
  std::string ignored;
  net::JsonPtr req = net::json_parse(row.request_json, &ignored);
  const cJSON* o = cJSON_IsObject(req.get()) ? req.get() : nullptr;
  if (o == nullptr) return r;  // json_valid holds in the table; a non-object carries nothing
  r.person_name = string_of(o, "person_name");
  r.system_prompt = string_of(o, "system_prompt");
  r.initial_greeting = string_of(o, "initial_greeting");
  r.webhook_url = string_of(o, "webhook_url");
  if (const cJSON* v = member(o, "additional_data"); cJSON_IsObject(v))
    r.additional_data = net::json_print(v);
  if (const cJSON* v = member(o, "data_extraction"); cJSON_IsArray(v)) r.data_extraction = net::json_print(v);
  if (const cJSON* v = member(o, "call_config_overrides"); cJSON_IsObject(v)) {
    // The overrides the engine acts on are read out of the object, as the API's request parser does.
    r.call_config_overrides = net::json_print(v);
    r.max_call_duration_seconds = int_of(v, "max_call_duration_seconds");
    if (const cJSON* cb = member(v, "enable_callback"); cJSON_IsBool(cb))
      r.enable_callback = cJSON_IsTrue(cb);
  }
  r.campaign_id = int_of(o, "campaign_id");
  r.campaign_upload_id = int_of(o, "campaign_upload_id");
  return r;
}

// A retry places the same call again: request_json from the call record (CallbackRow's shape).
std::string request_json_of(const CallRecord& rec) {
  net::JsonPtr o(cJSON_CreateObject());
  auto add_text = [&](const char* name, const std::optional<std::string>& v) {
    if (v) net::json_add_string(o.get(), name, *v);
  };
  auto add_json = [&](const char* name, const std::optional<std::string>& v) {
    if (!v) return;
    std::string ignored;
    net::JsonPtr parsed = net::json_parse(*v, &ignored);
    if (parsed) cJSON_AddItemToObject(o.get(), name, parsed.release());
  };
  add_text("person_name", rec.person_name);
  add_json("additional_data", rec.additional_data);
  add_text("system_prompt", rec.system_prompt);
  add_text("initial_greeting", rec.initial_greeting);
  add_text("webhook_url", rec.webhook_url);
  add_json("call_config_overrides", rec.call_config_overrides);
  add_json("data_extraction", rec.data_extraction);
  if (rec.campaign_id) cJSON_AddNumberToObject(o.get(), "campaign_id", static_cast<double>(*rec.campaign_id));
  if (rec.campaign_upload_id)
    cJSON_AddNumberToObject(o.get(), "campaign_upload_id", static_cast<double>(*rec.campaign_upload_id));
  return net::json_print(o.get());
}

}  // namespace

std::optional<RetryConfig> retry_config_of(const std::optional<std::string>& call_config_overrides) {
  if (!call_config_overrides) return std::nullopt;
  std::string ignored;
  net::JsonPtr o = net::json_parse(*call_config_overrides, &ignored);
  const cJSON* rc = cJSON_IsObject(o.get()) ? member(o.get(), "retry_config") : nullptr;
  if (!cJSON_IsObject(rc)) return std::nullopt;
  RetryConfig out;
  if (const cJSON* v = member(rc, "enabled"); cJSON_IsBool(v)) out.enabled = cJSON_IsTrue(v);
  if (auto v = int_of(rc, "max_attempts")) out.max_attempts = *v;
  if (auto v = int_of(rc, "interval_minutes")) out.interval_minutes = *v;
  return out;
}

bool retry_config_retries(std::string_view status) {
  return status == "not_picked" || status == "busy";
}

// One (campaign, agent) pair of a pass.
struct Dialer::Slot {
  const CampaignRow* campaign = nullptr;
  std::string agent_uuid;
  std::vector<Interval> intervals;
  int64_t dialing = 0;
  bool done = false;
};

Result<std::unique_ptr<Dialer>> Dialer::create(DialerContext ctx) {
  if (ctx.clock == nullptr || ctx.store == nullptr || ctx.calls == nullptr || ctx.zones == nullptr ||
      !ctx.timer) {
    return make_error("dialer: clock, store, calls, zones and timer are required", -EINVAL);
  }
  std::unique_ptr<Dialer> d(new Dialer(std::move(ctx)));
  auto timer = d->ctx_.timer([raw = d.get()] { raw->run(); });
  if (!timer.ok()) return make_error("dialer: timer: " + timer.error().message, timer.error().code);
  d->timer_ = std::move(*timer);
  d->listener_ = d->ctx_.calls->add_finished_listener(
      [raw = d.get()](const CallRecord& record) { raw->on_call_finished(record); });
  return d;
}

Dialer::~Dialer() {
  if (listener_ >= 0) ctx_.calls->remove_finished_listener(listener_);
}

void Dialer::set_config(const Config* config) {
  config_ = config;
  agent_skip_until_.clear();  // a reload may have brought an agent back
  poke();
}

void Dialer::poke() {
  if (running_) {
    repoke_ = true;
    return;
  }
  arm(ctx_.clock->wall_ms());
}

void Dialer::arm(int64_t wall_ms) {
  wake_ms_ = wall_ms;
  if (!timer_) return;
  if (wall_ms < 0) {
    timer_->arm(-1);
    return;
  }
  const int64_t ahead_ms = std::max<int64_t>(0, wall_ms - ctx_.clock->wall_ms());
  timer_->arm(ctx_.clock->monotonic_us() + ahead_ms * 1000);
}

bool Dialer::agent_dials(std::string_view agent_uuid) const {
  if (config_ == nullptr) return false;
  for (const AgentConfig& a : config_->agents) {
    if (a.agent_uuid == agent_uuid) return a.active && !a.archived && a.mode == AgentMode::voice;
  }
  return false;
}

std::shared_ptr<const TimeZone> Dialer::zone_of(const ContactRow& contact) {
  if (contact.time_zone && !contact.time_zone->empty()) {
    auto z = ctx_.zones->get(*contact.time_zone);
    if (z.ok()) return *z;
    log::warning("contact " + id_text(contact.id) + ": " + z.error().message + "; using the site's zone",
                 {{"CAMPAIGN_ID", id_text(contact.campaign_id)}});
  }
  return site_zone();
}

std::shared_ptr<const TimeZone> Dialer::zone_for(const std::optional<std::string>& zone,
                                                 const std::string& phone) {
  if (zone && !zone->empty()) {
    auto z = ctx_.zones->get(*zone);
    if (z.ok()) return *z;
    log::warning("callback to " + phone + ": " + z.error().message +
                 "; using the number's or the site's zone");
  }
  // As a contact import does: one zone for the number is the callee's; several (a country spanning zones)
  // or none leave the site's.
  const std::vector<std::string> zones = phone_time_zones(phone);
  if (zones.size() == 1) {
    auto z = ctx_.zones->get(zones.front());
    if (z.ok()) return *z;
  }
  return site_zone();
}

std::shared_ptr<const TimeZone> Dialer::site_zone() {
  if (config_ != nullptr) {
    auto z = ctx_.zones->get(config_->site.time_zone);
    if (z.ok()) return *z;
  }
  // The site's zone is checked when configuration loads; a fixed offset keeps the floor meaningful anyway.
  const int offset_min = config_ != nullptr ? config_->site.utc_offset_minutes : 0;
  return TimeZone::fixed("site", offset_min * 60);
}

Status Dialer::start() {
  const int64_t now = ctx_.clock->wall_ms();
  DialerQueue& q = ctx_.store->dialer_queue();
  auto open = q.open_attempts();
  if (!open.ok()) return open.error();
  for (const AttemptRow& a : *open) {
    const std::string campaign = id_text(a.campaign_id);
    auto record = ctx_.store->calls().get(a.call_id);
    if (!record.ok() && record.error().code != -ENOENT) return record.error();
    const bool have = record.ok() && record->has_value();
    if (have && !is_final((*record)->status)) {
      // Store::open closes every call a dead daemon left in_progress, so this is a call of this process;
      // its end will come through on_call_finished.
      continue;
    }
    Status s = ctx_.store->database().transaction([&]() -> Status {
      if (!have) {
        // The attempt was committed but the call record never was: the line never dialled this attempt.
        auto closed = q.close_attempt(a.call_id, "not_placed", now);
        if (!closed.ok()) return closed.error();
        auto c = q.contact(a.contact_id);
        if (!c.ok()) return c.error();
        if (*c && (*c)->state == "dialing" && (*c)->last_call_id == a.call_id) {
          return q.queue_again(a.contact_id, now, true);
        }
        return {};
      }
      auto closed = q.close_attempt(a.call_id, (*record)->status, now);
      if (!closed.ok()) return closed.error();
      if (!*closed) return {};
      return settle(**closed, (*record)->status, now);
    });
    if (!s.ok()) return s.error();
    ++counters_.recovered;
    log::notice("campaign attempt left open by the previous run closed: " +
                    (have ? "call " + (*record)->status : std::string("never placed, queued again")),
                {{"CAMPAIGN_ID", campaign}, {"CALL_ID", a.call_id}});
  }
  if (Status s = recover_callbacks(now); !s.ok()) return s;
  poke();
  return {};
}

Status Dialer::recover_callbacks(int64_t now) {
  CallbacksRepo& cb = ctx_.store->callbacks();
  // A call's final record commits before the dialler hears of it: a crash in between would lose the retry
  // its retry_config owes. Calls of the last retry window (interval_minutes is at most 1440) are looked at
  // once; schedule_retry applies the same rules, and a retry row already there (even cancelled) stops it.
  auto unretried = cb.unretried_calls(now - kDayMs - kDayMs / 24);
  if (!unretried.ok()) return unretried.error();
  for (const std::string& call_id : *unretried) {
    auto record = ctx_.store->calls().get(call_id);
    if (!record.ok()) return record.error();
    if (!*record) continue;
    Status s = ctx_.store->database().transaction([&]() -> Status { return schedule_retry(**record, now); });
    if (!s.ok()) return s;
  }
  auto open = cb.open_rows();
  if (!open.ok()) return open.error();
  for (const CallbackRow& row : *open) {
    if (!row.call_id) continue;  // dialing always has its call id (open() sets both)
    auto record = ctx_.store->calls().get(*row.call_id);
    if (!record.ok() && record.error().code != -ENOENT) return record.error();
    const bool have = record.ok() && record->has_value();
    // As for campaign attempts: a record still in_progress is a call of this process; its end closes it.
    if (have && !is_final((*record)->status)) continue;
    Status s = have ? finish_callback(**record, now)
                    // Committed as dialing, but the call record never was: the line never dialled it.
                    : cb.requeue(row.id, now);
    if (!s.ok()) return s;
    ++counters_.recovered;
    log::notice("callback " + id_text(row.id) + " left open by the previous run closed: " +
                    (have ? "call " + (*record)->status : std::string("never placed, scheduled again")),
                {{"CALL_ID", *row.call_id}, {"AGENT_UUID", row.agent_uuid}});
  }
  return {};
}

void Dialer::on_call_finished(const CallRecord& record) {
  poke();  // a line is free
  if (!is_final(record.status)) return;
  const int64_t now = ctx_.clock->wall_ms();
  if (Status s = finish_callback(record, now); !s.ok()) {
    log::error("dialer: closing the call's callback or scheduling its retry failed: " + s.error().message,
               {{"CALL_ID", record.call_id}});
  }
  if (!record.campaign_id) return;
  DialerQueue& q = ctx_.store->dialer_queue();
  // Closing the attempt and moving the contact are one transaction: a crash between them would leave a
  // contact dialing with no open attempt to recover it from.
  Status s = ctx_.store->database().transaction([&]() -> Status {
    auto closed = q.close_attempt(record.call_id, record.status, now);
    if (!closed.ok()) return closed.error();
    if (!*closed) return {};  // not a dialler call (an API call naming a campaign)
    return settle(**closed, record.status, now);
  });
  if (!s.ok()) {
    log::error("dialer: closing the attempt failed: " + s.error().message,
               {{"CAMPAIGN_ID", id_text(*record.campaign_id)}, {"CALL_ID", record.call_id}});
  }
}

Status Dialer::finish_callback(const CallRecord& record, int64_t now) {
  CallbacksRepo& cb = ctx_.store->callbacks();
  // Closing the callback and scheduling the retry are one transaction: a crash between them would leave
  // the retry owed with nothing to recover it from.
  return ctx_.store->database().transaction([&]() -> Status {
    auto closed = cb.close(record.call_id, record.status);
    if (!closed.ok()) return closed.error();
    if (*closed) {
      log::info("callback " + id_text((*closed)->id) + " (" + (*closed)->kind + ") done: " + record.status,
                {{"CALL_ID", record.call_id}, {"AGENT_UUID", record.agent_uuid}});
    }
    return schedule_retry(record, now);
  });
}

Status Dialer::schedule_retry(const CallRecord& record, int64_t now) {
  if (record.call_type != "outbound" || !retry_config_retries(record.status)) return {};
  const std::optional<RetryConfig> rc = retry_config_of(record.call_config_overrides);
  if (!rc || !rc->enabled || record.retry_count >= rc->max_attempts) return {};
  CallbackRow row;
  row.kind = "retry";
  row.source_call_id = record.call_id;
  row.agent_uuid = record.agent_uuid;
  row.phone = record.phone_number;
  // From the call's end (a start-up recovery may see it late: then the retry may be due already).
  row.due_at_ms = record.ended_at_ms.value_or(now) + rc->interval_minutes * 60'000;
  row.request_json = request_json_of(record);
  row.retry_count = record.retry_count + 1;
  bool created = false;
  auto id = ctx_.store->callbacks().schedule(row, &created);
  if (!id.ok()) return id.error();
  if (!created) return {};  // the call's end seen twice (a recovery after the listener): one retry
  ++counters_.retries_scheduled;
  log::info("call " + record.status + ": retry " + std::to_string(row.retry_count) + " of " +
                std::to_string(rc->max_attempts) + " scheduled in " + std::to_string(rc->interval_minutes) +
                " min (callback " + id_text(*id) + ")",
            {{"CALL_ID", record.call_id}, {"AGENT_UUID", record.agent_uuid}});
  return {};
}

Status Dialer::settle(const AttemptRow& attempt, const std::string& status, int64_t now_ms) {
  DialerQueue& q = ctx_.store->dialer_queue();
  auto c = q.contact(attempt.contact_id);
  if (!c.ok()) return c.error();
  // Settled already (a repeated finish), or the contact moved on: nothing to do.
  if (!*c || (*c)->state != "dialing" || (*c)->last_call_id != attempt.call_id) return {};
  const ContactRow& contact = **c;
  auto camp = ctx_.store->campaigns().get(attempt.campaign_id);
  if (!camp.ok()) return camp.error();
  const std::string campaign = id_text(attempt.campaign_id);
  const CampaignRow* row = camp->has_value() ? &**camp : nullptr;
  const bool retry = row != nullptr && row->is_retry_enabled &&
                     std::find(row->retry_on.begin(), row->retry_on.end(), status) != row->retry_on.end() &&
                     contact.attempts < row->retry_threshold;
  if (retry) {
    const int64_t at = now_ms + row->retry_delay_s * 1000;
    if (Status s = q.queue_again(contact.id, at, false); !s.ok()) return s;
    ++counters_.retried;
    log::info("campaign contact " + id_text(contact.id) + ": " + status + ", retry " +
                  std::to_string(contact.attempts + 1) + " of " + std::to_string(row->retry_threshold) +
                  " in " + std::to_string(row->retry_delay_s) + " s",
              {{"CAMPAIGN_ID", campaign}, {"CALL_ID", attempt.call_id}});
    return {};
  }
  if (Status s = q.finish(contact.id, "done", status); !s.ok()) return s;
  ++counters_.finished;
  log::info("campaign contact " + id_text(contact.id) + " done: " + status + " after " +
                std::to_string(contact.attempts) + " attempt(s)",
            {{"CAMPAIGN_ID", campaign}, {"CALL_ID", attempt.call_id}});
  return {};
}

void Dialer::run() {
  if (config_ == nullptr) return;
  running_ = true;
  repoke_ = false;
  const int64_t now = ctx_.clock->wall_ms();
  DialerQueue& q = ctx_.store->dialer_queue();
  int64_t wake = -1;
  auto wake_at = [&wake](int64_t at) {
    if (at >= 0 && (wake < 0 || at < wake)) wake = at;
  };

  // Due callbacks first: each is a promise to one callee, and they share the turn's decisions and lines.
  // Only agents that may dial now are asked for: another agent's callbacks keep their due_at and wait (a
  // reload that brings the agent back pokes).
  std::vector<std::string> dialing_agents;
  for (const AgentConfig& a : config_->agents) {
    if (!agent_dials(a.agent_uuid)) continue;
    if (auto it = agent_skip_until_.find(a.agent_uuid); it != agent_skip_until_.end() && it->second > now) {
      wake_at(it->second);
      continue;
    }
    dialing_agents.push_back(a.agent_uuid);
  }
  int budget = kDecisionsPerTurn;
  bool more = false, lines = true;
  for (;;) {
    if (budget-- <= 0) {
      more = true;
      break;
    }
    const Pick p = pick_callback(now, dialing_agents);
    if (p == Pick::placed || p == Pick::moved) continue;
    if (p == Pick::no_line) lines = false;
    break;  // empty, no line, or a store error (the safety net below looks again)
  }
  if (!more) {
    auto due = ctx_.store->callbacks().earliest_due(dialing_agents);
    if (!due.ok()) {
      log::error("dialer: " + due.error().message);
      wake_at(now + kBusyBackoffMs);
    } else if (*due) {
      // Due but waiting for a line (a call's end pokes: this is the safety net), or later.
      wake_at(**due > now ? **due : now + kBusyBackoffMs);
    }
  }

  auto campaigns = ctx_.store->campaigns().list();
  if (!campaigns.ok()) {
    log::error("dialer: " + campaigns.error().message);
    running_ = false;
    arm(now + kBusyBackoffMs);
    return;
  }
  std::vector<Slot> slots;
  for (const CampaignRow& c : *campaigns) {
    if (c.status != "active") continue;  // paused: its queue stays as it is
    if (c.starts_at_ms && *c.starts_at_ms > now) {
      wake_at(*c.starts_at_ms);
      continue;
    }
    if (c.ends_at_ms && *c.ends_at_ms <= now) continue;
    auto intervals = allowed_intervals(c, config_->compliance);
    if (intervals.empty()) continue;  // its window lies outside the legal floor: it can never dial
    for (const CampaignAgentRow& a : c.agents) {
      if (!a.active || !agent_dials(a.agent_uuid)) continue;
      if (auto it = agent_skip_until_.find(a.agent_uuid); it != agent_skip_until_.end()) {
        if (it->second > now) {
          wake_at(it->second);
          continue;
        }
        agent_skip_until_.erase(it);
      }
      auto dialing = q.dialing_count(c.id, a.agent_uuid);
      if (!dialing.ok()) {
        log::error("dialer: " + dialing.error().message, {{"CAMPAIGN_ID", id_text(c.id)}});
        continue;
      }
      slots.push_back(Slot{&c, a.agent_uuid, intervals, *dialing, false});
    }
  }

  // Round robin: one call per (campaign, agent) per round, so one large campaign cannot take every line.
  bool progress = true;
  while (progress && lines && !more) {
    progress = false;
    for (Slot& s : slots) {
      if (s.done) continue;
      for (;;) {
        if (budget-- <= 0) {
          more = true;
          break;
        }
        const Pick p = pick(s, now);
        if (p == Pick::moved) continue;
        if (p == Pick::placed) {
          progress = true;
        } else if (p == Pick::no_line) {
          lines = false;
        } else {
          s.done = true;  // empty, full (its calls' ends poke), or stopped
        }
        break;
      }
      if (more || !lines) break;
    }
  }

  if (more) {
    wake = now;  // the rest on the next turn
  } else {
    for (const Slot& s : slots) {
      auto due = q.earliest_due(s.campaign->id, s.agent_uuid);
      if (!due.ok() || !*due) continue;
      if (**due > now) {
        wake_at(**due);
      } else {
        // Due but waiting for a line or for one of its calls to end (those poke: this is the safety net),
        // or stopped by a store error.
        wake_at(now + kBusyBackoffMs);
      }
    }
  }
  running_ = false;
  arm(repoke_ ? now : wake);
}

Dialer::Pick Dialer::pick(Slot& s, int64_t now) {
  if (ctx_.calls->idle_lines() == 0) return Pick::no_line;
  if (s.dialing >= s.campaign->max_concurrent_per_agent) return Pick::full;
  DialerQueue& q = ctx_.store->dialer_queue();
  const std::string campaign = id_text(s.campaign->id);
  auto next = q.next_due(s.campaign->id, s.agent_uuid, now);
  if (!next.ok()) {
    log::error("dialer: " + next.error().message, {{"CAMPAIGN_ID", campaign}});
    return Pick::stop_agent;
  }
  if (!*next) return Pick::empty;
  const ContactRow& c = **next;

  // Do-not-disturb at the moment of dialling: an entry added a second ago stops this call.
  auto dnd = ctx_.store->dnd().is_active(c.agent_uuid, c.phone);
  if (!dnd.ok()) {
    log::error("dialer: " + dnd.error().message, {{"CAMPAIGN_ID", campaign}});
    return Pick::stop_agent;
  }
  if (*dnd) {
    if (Status st = q.finish(c.id, "dnd", "dnd"); !st.ok()) {
      log::error("dialer: " + st.error().message, {{"CAMPAIGN_ID", campaign}});
      return Pick::stop_agent;
    }
    ++counters_.dnd;
    log::info("campaign contact " + id_text(c.id) + " skipped: on the do-not-disturb list of " + c.agent_uuid,
              {{"CAMPAIGN_ID", campaign}});
    return Pick::moved;
  }

  // Calling hours in the callee's local time.
  auto zone = zone_of(c);
  const int64_t allowed = next_allowed(*zone, now, s.intervals, s.campaign->days_mask);
  if (allowed != now) {
    if (allowed < 0) return Pick::stop_agent;  // no allowed day at all (an empty days mask)
    if (Status st = q.defer(c.id, allowed); !st.ok()) {
      log::error("dialer: " + st.error().message, {{"CAMPAIGN_ID", campaign}});
      return Pick::stop_agent;
    }
    ++counters_.deferred_window;
    if (log::enabled(log::Level::debug))
      log::debug("campaign contact " + id_text(c.id) + " outside calling hours in " + zone->name() +
                     ": deferred " + std::to_string((allowed - now) / 1000) + " s",
                 {{"CAMPAIGN_ID", campaign}});
    return Pick::moved;
  }

  // At most max_attempts_per_day calls to one number in any 24 h, every campaign and callback together.
  std::optional<int64_t> oldest;
  auto recent = calls_in_day(c.phone, now, &oldest);
  if (!recent.ok()) {
    log::error("dialer: " + recent.error().message, {{"CAMPAIGN_ID", campaign}});
    return Pick::stop_agent;
  }
  if (*recent >= static_cast<int64_t>(config_->compliance.max_attempts_per_day)) {
    // +1: the oldest attempt stops counting the millisecond after it is 24 h old.
    const int64_t at = std::max(now, oldest.value_or(now) + kDayMs) + 1;
    if (Status st = q.defer(c.id, at); !st.ok()) {
      log::error("dialer: " + st.error().message, {{"CAMPAIGN_ID", campaign}});
      return Pick::stop_agent;
    }
    ++counters_.deferred_cap;
    log::info("campaign contact " + id_text(c.id) + ": " + std::to_string(*recent) +
                  " calls to the number in 24 h, deferred " + std::to_string((at - now) / 1000) + " s",
              {{"CAMPAIGN_ID", campaign}});
    return Pick::moved;
  }
  return place(s, c, now);
}

Result<int64_t> Dialer::calls_in_day(const std::string& phone, int64_t now, std::optional<int64_t>* oldest) {
  std::optional<int64_t> a, b;
  auto attempts = ctx_.store->dialer_queue().attempts_since(phone, now - kDayMs, &a);
  if (!attempts.ok()) return attempts.error();
  auto callbacks = ctx_.store->callbacks().calls_since(phone, now - kDayMs, &b);
  if (!callbacks.ok()) return callbacks.error();
  *oldest = a && b ? std::min(*a, *b) : (a ? a : b);
  return *attempts + *callbacks;
}

Dialer::Pick Dialer::pick_callback(int64_t now, const std::vector<std::string>& agents) {
  if (ctx_.calls->idle_lines() == 0) return Pick::no_line;
  CallbacksRepo& cb = ctx_.store->callbacks();
  auto next = cb.next_due(now, agents);
  if (!next.ok()) {
    log::error("dialer: " + next.error().message);
    return Pick::stop_agent;
  }
  if (!*next) return Pick::empty;
  const CallbackRow& row = **next;
  const std::string id = id_text(row.id);
  auto defer = [&](int64_t at) {
    if (Status st = cb.defer(row.id, at); !st.ok()) {
      log::error("dialer: " + st.error().message, {{"AGENT_UUID", row.agent_uuid}});
      return Pick::stop_agent;
    }
    return Pick::moved;
  };

  // Do-not-disturb at the moment of dialling.
  auto dnd = ctx_.store->dnd().is_active(row.agent_uuid, row.phone);
  if (!dnd.ok()) {
    log::error("dialer: " + dnd.error().message, {{"AGENT_UUID", row.agent_uuid}});
    return Pick::stop_agent;
  }
  if (*dnd) {
    if (Status st = cb.set_state(row.id, "dnd", "dnd"); !st.ok()) {
      log::error("dialer: " + st.error().message, {{"AGENT_UUID", row.agent_uuid}});
      return Pick::stop_agent;
    }
    ++counters_.dnd;
    log::info("callback " + id + " not placed: on the do-not-disturb list of " + row.agent_uuid,
              {{"AGENT_UUID", row.agent_uuid}});
    return Pick::moved;
  }

  // Calling hours: the legal floor in the callee's local time, every day (a callback has no campaign
  // window; the callee chose the time, the floor still binds).
  auto zone = zone_for(row.time_zone, row.phone);
  const ComplianceConfig& floor = config_->compliance;
  const int64_t allowed = next_allowed(
      *zone, now, day_intervals(floor.calling_hours_start_min, floor.calling_hours_end_min), 0x7f);
  if (allowed != now) {
    // -1: a floor that allows no minute at all; looked at again a day later (a reload may widen it).
    const int64_t at = allowed < 0 ? now + kDayMs : allowed;
    ++counters_.deferred_window;
    log::info("callback " + id + " outside calling hours in " + zone->name() + ": deferred " +
                  std::to_string((at - now) / 1000) + " s",
              {{"AGENT_UUID", row.agent_uuid}});
    return defer(at);
  }

  std::optional<int64_t> oldest;
  auto recent = calls_in_day(row.phone, now, &oldest);
  if (!recent.ok()) {
    log::error("dialer: " + recent.error().message, {{"AGENT_UUID", row.agent_uuid}});
    return Pick::stop_agent;
  }
  if (*recent >= static_cast<int64_t>(floor.max_attempts_per_day)) {
    const int64_t at = std::max(now, oldest.value_or(now) + kDayMs) + 1;
    ++counters_.deferred_cap;
    log::info("callback " + id + ": " + std::to_string(*recent) + " calls to the number in 24 h, deferred " +
                  std::to_string((at - now) / 1000) + " s",
              {{"AGENT_UUID", row.agent_uuid}});
    return defer(at);
  }
  return place_callback(row, now);
}

Dialer::Pick Dialer::place_callback(const CallbackRow& row, int64_t now) {
  CallbacksRepo& cb = ctx_.store->callbacks();
  const std::string id = id_text(row.id);
  const std::string call_id = new_uuid_v7(now);
  // Committed before the line dials: a crash from here on finds it dialing at start, with its call id.
  if (Status st = cb.open(row.id, call_id); !st.ok()) {
    log::error("dialer: " + st.error().message, {{"CALL_ID", call_id}});
    return st.error().code == -EBUSY ? Pick::moved : Pick::stop_agent;
  }
  auto placed = ctx_.calls->place_call(callback_request(row, call_id));
  if (placed.ok()) {
    ++counters_.placed;
    ++counters_.callbacks_placed;
    log::info(row.kind + " call placed: callback " + id + ", retry_count " + std::to_string(row.retry_count),
              {{"CALL_ID", call_id}, {"AGENT_UUID", row.agent_uuid}});
    return Pick::placed;
  }

  const Error& err = placed.error();
  ++counters_.not_placed;
  log::warning("callback " + id + " not placed: " + err.message, {{"CALL_ID", call_id}});
  Pick result = Pick::moved;
  Status st = ctx_.store->database().transaction([&]() -> Status {
    auto cur = cb.get(row.id);
    if (!cur.ok()) return cur.error();
    // A finished listener that ran inside place_call may have closed it already.
    if (!*cur || (*cur)->state != "dialing" || (*cur)->call_id != call_id) return {};
    switch (err.code) {
      case -EBUSY:
      case -ENODEV:
        result = Pick::no_line;
        return cb.requeue(row.id, now + kBusyBackoffMs);
      case -ENOENT:
        // The agent went away (a reload the dialler has not seen yet): its callbacks wait for its return.
        agent_skip_until_[row.agent_uuid] = now + kAgentBackoffMs;
        return cb.requeue(row.id, now);
      case -EPERM:
        if (Status u = cb.requeue(row.id, now); !u.ok()) return u;
        ++counters_.dnd;
        return cb.set_state(row.id, "dnd", "dnd");
      case -EMSGSIZE:
      case -EINVAL:
        // The request itself cannot be placed: no later try would do.
        if (Status u = cb.requeue(row.id, now); !u.ok()) return u;
        return cb.set_state(row.id, "done", "not_placed");
      default:
        result = Pick::stop_agent;
        return cb.requeue(row.id, now + kBusyBackoffMs);
    }
  });
  if (!st.ok()) {
    log::error("dialer: " + st.error().message, {{"CALL_ID", call_id}});
    return Pick::stop_agent;
  }
  return result;
}

Dialer::Pick Dialer::place(Slot& s, const ContactRow& c, int64_t now) {
  DialerQueue& q = ctx_.store->dialer_queue();
  const std::string campaign = id_text(c.campaign_id);
  const std::string call_id = new_uuid_v7(now);
  // The attempt is committed before the line dials: a crash from here on finds it open at start.
  if (Status st = q.open_attempt(c, call_id, now); !st.ok()) {
    log::error("dialer: " + st.error().message, {{"CAMPAIGN_ID", campaign}, {"CALL_ID", call_id}});
    return Pick::stop_agent;
  }
  PlaceCallRequest r;
  r.agent_uuid = c.agent_uuid;
  r.phone_e164 = c.phone;
  r.person_name = c.person_name;
  r.additional_data = c.variables_json;
  r.campaign_id = c.campaign_id;
  r.campaign_upload_id = c.upload_id;
  r.source = "campaign";
  r.call_id = call_id;
  auto placed = ctx_.calls->place_call(r);
  if (placed.ok()) {
    ++s.dialing;
    ++counters_.placed;
    log::info(
        "campaign call placed: contact " + id_text(c.id) + ", attempt " + std::to_string(c.attempts + 1),
        {{"CAMPAIGN_ID", campaign}, {"CALL_ID", call_id}, {"AGENT_UUID", c.agent_uuid}});
    return Pick::placed;
  }

  const Error& err = placed.error();
  ++counters_.not_placed;
  log::warning("campaign call not placed: " + err.message, {{"CAMPAIGN_ID", campaign}, {"CALL_ID", call_id}});
  Pick result = Pick::moved;
  Status st = ctx_.store->database().transaction([&]() -> Status {
    auto closed = q.close_attempt(call_id, "not_placed", now);
    if (!closed.ok()) return closed.error();
    auto cur = q.contact(c.id);
    if (!cur.ok()) return cur.error();
    // A finished listener that ran inside place_call may have settled it already.
    if (!*cur || (*cur)->state != "dialing" || (*cur)->last_call_id != call_id) return {};
    switch (err.code) {
      case -EBUSY:
      case -ENODEV:
        result = Pick::no_line;
        return q.queue_again(c.id, now + kBusyBackoffMs, true);
      case -ENOENT:
        // The agent went away (a reload the dialler has not seen yet): keep the contact for its return.
        result = Pick::stop_agent;
        agent_skip_until_[c.agent_uuid] = now + kAgentBackoffMs;
        return q.queue_again(c.id, now + kAgentBackoffMs, true);
      case -EPERM:
        if (Status u = q.queue_again(c.id, now, true); !u.ok()) return u;
        ++counters_.dnd;
        return q.finish(c.id, "dnd", "dnd");
      case -EMSGSIZE:
      case -EINVAL:
        // The contact itself cannot be called (its variables are too large): no later attempt would do.
        if (Status u = q.queue_again(c.id, now, true); !u.ok()) return u;
        return q.finish(c.id, "done", "not_placed");
      default:
        result = Pick::stop_agent;
        return q.queue_again(c.id, now + kBusyBackoffMs, true);
    }
  });
  if (!st.ok()) {
    log::error("dialer: " + st.error().message, {{"CAMPAIGN_ID", campaign}, {"CALL_ID", call_id}});
    return Pick::stop_agent;
  }
  return result;
}

}  // namespace osvi::daemon
