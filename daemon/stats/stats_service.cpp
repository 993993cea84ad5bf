// StatsService: the dashboard's window in the box's zone, its buckets summed per local day and hour.
#include "osvi/stats/stats_service.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <optional>
#include <utility>

#include "osvi/base/civil.hpp"

namespace osvi::daemon {
namespace {

constexpr int64_t kHourMs = StatsRepo::kHourMs;

std::string date_text(const CivilDate& c) {
  char b[48];  // room for any int64 year, so the format cannot truncate
  std::snprintf(b, sizeof b, "%04lld-%02d-%02d", static_cast<long long>(c.year), c.month, c.day);
  return b;
}

int64_t floor_mod(int64_t a, int64_t b) {
  const int64_t r = a % b;
  return r < 0 ? r + b : r;
}

double rounded(double v, double scale) {
  return std::round(v * scale) / scale;
}

double average(int64_t sum, int64_t n) {
  return n > 0 ? rounded(static_cast<double>(sum) / static_cast<double>(n), 100) : 0.0;
}

// The window's local days: starts[i] is day i's midnight (UTC ms), starts[days] tomorrow's.
struct Window {
  std::vector<int64_t> starts;
  std::vector<std::string> dates;
  int64_t from() const { return starts.front(); }
  int64_t to() const { return starts.back(); }
  // The day a bucket starting at ms belongs to; -1 outside the window.
  int day_of(int64_t ms) const {
    auto it = std::upper_bound(starts.begin(), starts.end(), ms);
    if (it == starts.begin() || it == starts.end()) return -1;
    return static_cast<int>(it - starts.begin()) - 1;
  }
};

Window window_of(const TimeZone& zone, int64_t now_ms, int days) {
  const LocalTime today = zone.local(now_ms);
  const int64_t today_n = days_from_civil(today.year, today.month, today.day);
  Window w;
  for (int64_t n = today_n - (days - 1); n <= today_n + 1; ++n) {
    const CivilDate c = civil_from_days(n);
    w.starts.push_back(zone.utc_ms_of(static_cast<int>(c.year), c.month, c.day, 0));
    if (n <= today_n) w.dates.push_back(date_text(c));
  }
  return w;
}

// The minute of the UTC hour (in ms) the window's local hours start at, when the hour rollup keeps that phase
// and it is the same all through the window; nullopt otherwise (then the 15-minute buckets are read).
// Checking the local midnights is enough: a zone's offset changes by a part of an hour only at a DST change
// (Lord Howe Island), which falls between two midnights of different phases.
std::optional<int64_t> hour_phase(const TimeZone& zone, const Window& w) {
  std::optional<int64_t> phase;
  for (int64_t midnight : w.starts) {
    const int64_t p = floor_mod(-int64_t{zone.offset_at(midnight / 1000)} * 1000, StatsRepo::kHourMs);
    if (phase && *phase != p) return std::nullopt;
    phase = p;
  }
  const auto& known = StatsRepo::kHourPhases;
  if (!phase || std::find(known.begin(), known.end(), *phase) == known.end()) return std::nullopt;
  return phase;
}

// Sums buckets into the daily series, the hours and today's count.
struct Accumulator {
  const TimeZone& zone;
  const Window& window;
  DashboardStats& out;

  void add(const OutcomeBucket& b) {
    const int day = window.day_of(b.start_ms);
    if (day < 0) return;
    DayCounts& d = out.daily[static_cast<size_t>(day)];
    d.picked += b.picked;
    d.not_picked += b.not_picked;
    d.failed += b.failed;
    d.busy += b.busy;
    d.voicemail += b.voicemail;
    d.total += b.calls;
    // A bucket (or an hour of the window's phase) lies inside one local hour: zones' offsets are whole
    // quarter hours.
    const int64_t local_ms = b.start_ms + int64_t{zone.offset_at(b.start_ms / 1000)} * 1000;
    out.by_hour[static_cast<size_t>(floor_mod(local_ms, StatsRepo::kDayMs) / kHourMs)] += b.calls;
    if (day == out.days - 1) out.cards.today_calls += b.calls;
  }
};

}  // namespace

StatsService::StatsService(Store& store, TimeZones& zones, const Clock& clock)
    : repo_(store.database()), zones_(zones), clock_(clock) {}

bool StatsService::valid_days(int64_t days) {
  return std::find(kWindows.begin(), kWindows.end(), days) != kWindows.end();
}

Result<DashboardStats> StatsService::compute(const StatsQuery& query) {
  if (!valid_days(query.days)) return make_error("days: must be 7, 14, 30 or 90", -EINVAL);
  auto zone = zones_.get(query.time_zone);
  if (!zone) return zone.error();
  const int64_t now = clock_.wall_ms();
  const Window window = window_of(**zone, now, query.days);

  DashboardStats out;
  out.days = query.days;
  out.time_zone = query.time_zone;
  out.from = window.dates.front();
  out.to = window.dates.back();
  out.generated_at_ms = now;
  out.utc_offset_minutes = (*zone)->offset_at(now / 1000) / 60;
  for (const std::string& date : window.dates) {
    DayCounts d;
    d.date = date;
    out.daily.push_back(std::move(d));
  }
  Accumulator acc{**zone, window, out};

  // The series come from the hour or 15-minute rollups (the outcome counters only), the cards and top agents
  // from each agent's totals over the same window: rollups of the same triggers, so they agree.
  std::vector<std::string> mine = query.agents;
  std::sort(mine.begin(), mine.end());
  mine.erase(std::unique(mine.begin(), mine.end()), mine.end());
  // 24 rows a day from the hour rollups when the zone's hours line up with one of their phases, else 96.
  const std::optional<int64_t> phase = hour_phase(**zone, window);
  if (mine.empty()) {
    auto buckets =
        phase ? repo_.hours(*phase, window.from(), window.to()) : repo_.buckets(window.from(), window.to());
    if (!buckets) return buckets.error();
    for (const OutcomeBucket& b : *buckets) acc.add(b);
    auto chat = repo_.chat(window.from(), window.to(), "");
    if (!chat) return chat.error();
    out.chat = *chat;
  } else {
    // A limited token: only its agents' rows are read, so nothing of another agent reaches a number.
    for (const std::string& agent : mine) {
      auto buckets = phase ? repo_.agent_hours(agent, *phase, window.from(), window.to())
                           : repo_.agent_buckets(agent, window.from(), window.to());
      if (!buckets) return buckets.error();
      for (const OutcomeBucket& b : *buckets) acc.add(b);
      auto chat = repo_.chat(window.from(), window.to(), agent);
      if (!chat) return chat.error();
      out.chat.total += chat->total;
      out.chat.active += chat->active;
      out.chat.closed += chat->closed;
      out.chat.dormant += chat->dormant;
    }
  }
  auto per_agent = repo_.agents(window.from(), window.to(), mine);
  if (!per_agent) return per_agent.error();
  std::vector<AgentTally> agents = std::move(*per_agent);

  CallTally t;
  for (const AgentTally& a : agents) t += a.tally;
  StatsCards& c = out.cards;
  c.total_calls = t.calls;
  c.total_duration_s = t.duration_s;
  c.avg_duration_s = average(t.picked_duration_s, t.picked);
  const int64_t finished = t.calls - t.in_progress;
  c.answer_rate =
      finished > 0 ? rounded(static_cast<double>(t.picked) / static_cast<double>(finished), 1e4) : 0.0;
  c.active_agents = static_cast<int64_t>(agents.size());
  c.inbound = t.inbound;
  c.outbound = t.calls - t.inbound;

  std::sort(agents.begin(), agents.end(), [](const AgentTally& a, const AgentTally& b) {
    return a.tally.calls != b.tally.calls ? a.tally.calls > b.tally.calls : a.agent_uuid < b.agent_uuid;
  });
  if (agents.size() > kTopAgents) agents.resize(kTopAgents);
  for (const AgentTally& a : agents) {
    auto name = repo_.agent_name(a.agent_uuid);
    if (!name) return name.error();
    out.top_agents.push_back({a.agent_uuid, *name, a.tally.calls, a.tally.picked,
                              average(a.tally.picked_duration_s, a.tally.picked)});
  }
  return out;
}

}  // namespace osvi::daemon
