// The dashboard's numbers (GET /v1/stats): call cards, daily outcomes, top agents, calls by hour and chat
// cards over the last 7/14/30/90 days of the box's time zone, read from the store's rollups.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "osvi/base/time_zone.hpp"
#include "osvi/clock.hpp"
#include "osvi/result.hpp"
#include "osvi/store/stats.hpp"
#include "osvi/store/store.hpp"

namespace osvi::daemon {

struct StatsQuery {
  int days = 7;                     // one of StatsService::kWindows
  std::vector<std::string> agents;  // the token's agents; empty = every agent
  std::string time_zone;            // IANA name: the days and hours of the answer are this zone's
};

// One local day. The five outcome columns leave in_progress out: total is every call created that day.
struct DayCounts {
  std::string date;  // YYYY-MM-DD
  int64_t picked = 0, not_picked = 0, failed = 0, busy = 0, voicemail = 0, total = 0;
};

struct TopAgent {
  std::string agent_uuid, name;
  int64_t calls = 0, picked = 0;
  double avg_duration_s = 0;  // over its picked calls
};

struct StatsCards {
  int64_t total_calls = 0, today_calls = 0;
  double avg_duration_s = 0;  // over the picked calls
  int64_t total_duration_s = 0;
  double answer_rate = 0;  // picked / calls with a final status, 0..1
  int64_t active_agents = 0, inbound = 0, outbound = 0;
};

struct DashboardStats {
  int days = 7;
  std::string time_zone;
  std::string from, to;  // the first and last local dates of the window (to = today)
  int64_t generated_at_ms = 0;
  int utc_offset_minutes = 0;  // the zone's offset at generated_at
  StatsCards cards;
  std::vector<DayCounts> daily;  // one per day, oldest first
  std::vector<TopAgent> top_agents;
  std::array<int64_t, 24> by_hour{};
  ChatTally chat;
};

// Loop thread only (the store and the zone cache are).
class StatsService {
 public:
  static constexpr std::array<int, 4> kWindows = {7, 14, 30, 90};
  static constexpr size_t kTopAgents = 5;

  StatsService(Store& store, TimeZones& zones, const Clock& clock);
  static bool valid_days(int64_t days);
  // The window is the `days` local days ending today (now by the clock), midnight to midnight.
  Result<DashboardStats> compute(const StatsQuery& query);

 private:
  StatsRepo repo_;
  TimeZones& zones_;
  const Clock& clock_;
};

}  // namespace osvi::daemon
