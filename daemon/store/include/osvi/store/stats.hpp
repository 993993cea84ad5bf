// Repository of the dashboard's call rollups (migration 8) and the chat cards' counts, read by the stats
// room.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"

namespace osvi::daemon {

class Database;

// Production calls (execution_mode prod) counted by their current state. inbound + outbound = calls;
// picked + not_picked + failed + busy + voicemail + in_progress = calls.
struct CallTally {
  int64_t calls = 0, picked = 0, not_picked = 0, failed = 0, busy = 0, voicemail = 0, in_progress = 0;
  int64_t inbound = 0;
  int64_t duration_s = 0;         // duration_seconds of every call
  int64_t picked_duration_s = 0;  // of the picked ones only
  CallTally& operator+=(const CallTally& o);
  CallTally& operator-=(const CallTally& o);
  bool operator==(const CallTally&) const = default;
};

// The calls created in [start_ms, start_ms + StatsRepo::kBucketMs): the counters the daily series and the
// hours need and no more (every value read counts, at 96 buckets a day).
struct OutcomeBucket {
  int64_t start_ms = 0;
  int64_t calls = 0, picked = 0, not_picked = 0, failed = 0, busy = 0, voicemail = 0;
};

struct AgentTally {
  std::string agent_uuid;
  CallTally tally;
};

// Chat sessions by their status now.
struct ChatTally {
  int64_t total = 0, active = 0, closed = 0, dormant = 0;
};

class StatsRepo {
 public:
  static constexpr int64_t kBucketMs = 15 * 60 * 1000;  // the rollups' grid, UTC
  static constexpr int64_t kDayMs = 86'400'000;
  static constexpr int64_t kHourMs = 3'600'000;
  static constexpr std::array<int64_t, 3> kHourPhases = {0, 900'000, 1'800'000};

  explicit StatsRepo(Database& db) : db_(db) {}

  // Every agent's calls per bucket starting in [from_ms, to_ms), ascending; buckets without a call may be
  // missing. Bounds that are not multiples of kBucketMs take the buckets that start inside.
  Result<std::vector<OutcomeBucket>> buckets(int64_t from_ms, int64_t to_ms);
  // Every agent's calls per hour starting in [from_ms, to_ms) at minute phase_ms / 60000 of the UTC hour
  // (kHourPhases: the minutes local hours start at in today's zones). An hour is counted as starting at
  // start_ms; hours without a call may be missing. -EINVAL for another phase.
  Result<std::vector<OutcomeBucket>> hours(int64_t phase_ms, int64_t from_ms, int64_t to_ms);
  // The same for one agent.
  Result<std::vector<OutcomeBucket>> agent_hours(std::string_view agent_uuid, int64_t phase_ms,
                                                 int64_t from_ms, int64_t to_ms);
  // Every agent's calls per bucket as above, for one agent.
  Result<std::vector<OutcomeBucket>> agent_buckets(std::string_view agent_uuid, int64_t from_ms,
                                                   int64_t to_ms);
  // Each agent's total over the buckets starting in [from_ms, to_ms) (multiples of kBucketMs), agents with
  // no call in it left out, ordered by agent_uuid; only the agents in `only` unless it is empty. Whole UTC
  // days come from the day rollup, the partial days at the edges from the agent's buckets: ~(days + 2 x 96)
  // rows per agent, however many calls.
  Result<std::vector<AgentTally>> agents(int64_t from_ms, int64_t to_ms,
                                         std::span<const std::string> only = {});
  // Chat sessions created in [from_ms, to_ms) by their status now; of one agent when agent_uuid is not empty.
  Result<ChatTally> chat(int64_t from_ms, int64_t to_ms, std::string_view agent_uuid);
  // The agent's name: its configuration's, else the name on its latest call, else "".
  Result<std::string> agent_name(std::string_view agent_uuid);

  // Every statement above, for EXPLAIN QUERY PLAN in the tests (no full scan of any table).
  static std::vector<std::string> statements();

 private:
  Database& db_;
};

}  // namespace osvi::daemon
