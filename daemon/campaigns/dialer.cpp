// Dialer: the campaign scheduler (dialer.hpp).
#include "osvi/campaigns/dialer.hpp"

#include <algorithm>
#include <cerrno>
#include <utility>

#include "osvi/base/ids.hpp"
#include "osvi/base/log.hpp"

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

}  // namespace

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
  poke();
  return {};
}

void Dialer::on_call_finished(const CallRecord& record) {
  poke();  // a line is free
  if (!record.campaign_id || !is_final(record.status)) return;
  const int64_t now = ctx_.clock->wall_ms();
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
  int budget = kDecisionsPerTurn;
  bool more = false, lines = true, progress = true;
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

  // At most max_attempts_per_day calls to one number in any 24 h, every campaign together.
  std::optional<int64_t> oldest;
  auto recent = q.attempts_since(c.phone, now - kDayMs, &oldest);
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
