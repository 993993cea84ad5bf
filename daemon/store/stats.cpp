// StatsRepo: the dashboard's reads of the call rollups (migration 8) and of the chat sessions.
#include "osvi/store/stats.hpp"

#include <algorithm>
#include <cerrno>
#include <map>

#include "osvi/store/database.hpp"
#include "sqlite.hpp"

namespace osvi::daemon {
namespace {

using sql::wrap;

// The tally columns in CallTally's order; read_tally reads them from column `first` on.
const std::string kTally =
    "calls, picked, not_picked, failed, busy, voicemail, in_progress, inbound, duration_s, picked_duration_s";
const std::string kTallySums =
    "sum(calls), sum(picked), sum(not_picked), sum(failed), sum(busy), sum(voicemail), sum(in_progress), "
    "sum(inbound), sum(duration_s), sum(picked_duration_s)";

// OutcomeBucket's columns, in its order.
const std::string kOutcomes = "bucket, calls, picked, not_picked, failed, busy, voicemail";

const std::string kBuckets =
    "SELECT " + kOutcomes + " FROM call_stats_quarter WHERE bucket >= ?1 AND bucket < ?2 ORDER BY bucket";
const std::string kAgentBuckets = "SELECT " + kOutcomes +
                                  " FROM call_stats_agent_quarter WHERE agent_uuid = ?1 AND bucket >= ?2 AND "
                                  "bucket < ?3 ORDER BY bucket";
const std::string kHours =
    "SELECT hour, calls, picked, not_picked, failed, busy, voicemail FROM call_stats_hour "
    "WHERE phase = ?1 AND hour >= ?2 AND hour < ?3 ORDER BY hour";
const std::string kAgentHours =
    "SELECT hour, calls, picked, not_picked, failed, busy, voicemail FROM call_stats_agent_hour "
    "WHERE agent_uuid = ?1 AND phase = ?2 AND hour >= ?3 AND hour < ?4 ORDER BY hour";
// Summed here rather than with GROUP BY: the rows come in (day, agent) order, and a sorter costs more.
const std::string kAgentDays =
    "SELECT agent_uuid, " + kTally + " FROM call_stats_agent_day WHERE day >= ?1 AND day < ?2";
const std::string kAgentRange = "SELECT " + kTallySums +
                                " FROM call_stats_agent_quarter WHERE agent_uuid = ?1 AND bucket >= ?2 AND "
                                "bucket < ?3";
const std::string kChat =
    "SELECT status, count(*) FROM chat_sessions WHERE created_at >= ?1 AND created_at < ?2 GROUP BY status";
const std::string kAgentChat =
    "SELECT status, count(*) FROM chat_sessions "
    "WHERE agent_uuid = ?1 AND created_at >= ?2 AND created_at < ?3 GROUP BY status";
const std::string kConfiguredName = "SELECT name FROM agents WHERE agent_uuid = ?1";
const std::string kLatestCallName =
    "SELECT agent_name FROM calls WHERE agent_uuid = ?1 ORDER BY created_at DESC LIMIT 1";

CallTally read_tally(const sql::Stmt& s, int first) {
  CallTally t;
  int c = first;
  for (int64_t* field : {&t.calls, &t.picked, &t.not_picked, &t.failed, &t.busy, &t.voicemail, &t.in_progress,
                         &t.inbound, &t.duration_s, &t.picked_duration_s}) {
    *field = s.int64(c++);
  }
  return t;
}

Result<std::vector<OutcomeBucket>> read_buckets(sql::StmtRef& stmt, std::string_view what) {
  std::vector<OutcomeBucket> out;
  for (;;) {
    auto row = stmt->step();
    if (!row.ok()) return wrap(what, row.error());
    if (!*row) break;
    const sql::Stmt& s = *stmt;
    out.push_back({s.int64(0), s.int64(1), s.int64(2), s.int64(3), s.int64(4), s.int64(5), s.int64(6)});
  }
  return out;
}

int64_t floor_to(int64_t ms, int64_t unit) {
  const int64_t q = ms / unit;
  return (q * unit > ms ? q - 1 : q) * unit;
}

}  // namespace

CallTally& CallTally::operator+=(const CallTally& o) {
  calls += o.calls;
  picked += o.picked;
  not_picked += o.not_picked;
  failed += o.failed;
  busy += o.busy;
  voicemail += o.voicemail;
  in_progress += o.in_progress;
  inbound += o.inbound;
  duration_s += o.duration_s;
  picked_duration_s += o.picked_duration_s;
  return *this;
}

CallTally& CallTally::operator-=(const CallTally& o) {
  calls -= o.calls;
  picked -= o.picked;
  not_picked -= o.not_picked;
  failed -= o.failed;
  busy -= o.busy;
  voicemail -= o.voicemail;
  in_progress -= o.in_progress;
  inbound -= o.inbound;
  duration_s -= o.duration_s;
  picked_duration_s -= o.picked_duration_s;
  return *this;
}

Result<std::vector<OutcomeBucket>> StatsRepo::buckets(int64_t from_ms, int64_t to_ms) {
  auto stmt = db_.sql().cached(kBuckets);
  if (!stmt.ok()) return wrap("reading the call rollup", stmt.error());
  (*stmt)->bind_all(from_ms, to_ms);
  return read_buckets(*stmt, "reading the call rollup");
}

Result<std::vector<OutcomeBucket>> StatsRepo::hours(int64_t phase_ms, int64_t from_ms, int64_t to_ms) {
  if (std::find(kHourPhases.begin(), kHourPhases.end(), phase_ms) == kHourPhases.end())
    return make_error("store: no hour rollup of phase " + std::to_string(phase_ms) + " ms", -EINVAL);
  auto stmt = db_.sql().cached(kHours);
  if (!stmt.ok()) return wrap("reading the hour rollup", stmt.error());
  (*stmt)->bind_all(phase_ms, from_ms, to_ms);
  return read_buckets(*stmt, "reading the hour rollup");
}

Result<std::vector<OutcomeBucket>> StatsRepo::agent_hours(std::string_view agent_uuid, int64_t phase_ms,
                                                          int64_t from_ms, int64_t to_ms) {
  if (std::find(kHourPhases.begin(), kHourPhases.end(), phase_ms) == kHourPhases.end())
    return make_error("store: no hour rollup of phase " + std::to_string(phase_ms) + " ms", -EINVAL);
  auto stmt = db_.sql().cached(kAgentHours);
  if (!stmt.ok()) return wrap("reading an agent's hour rollup", stmt.error());
  (*stmt)->bind_all(agent_uuid, phase_ms, from_ms, to_ms);
  return read_buckets(*stmt, "reading an agent's hour rollup");
}

Result<std::vector<OutcomeBucket>> StatsRepo::agent_buckets(std::string_view agent_uuid, int64_t from_ms,
                                                            int64_t to_ms) {
  auto stmt = db_.sql().cached(kAgentBuckets);
  if (!stmt.ok()) return wrap("reading an agent's call rollup", stmt.error());
  (*stmt)->bind_all(agent_uuid, from_ms, to_ms);
  return read_buckets(*stmt, "reading an agent's call rollup");
}

Result<std::vector<AgentTally>> StatsRepo::agents(int64_t from_ms, int64_t to_ms,
                                                  std::span<const std::string> only) {
  // The whole UTC days around the window, then the parts of its first and last day outside it taken back.
  const int64_t day_lo = floor_to(from_ms, kDayMs);
  const int64_t day_hi = floor_to(to_ms + kDayMs - 1, kDayMs);
  std::map<std::string, CallTally, std::less<>> totals;
  {
    auto stmt = db_.sql().cached(kAgentDays);
    if (!stmt.ok()) return wrap("reading the agents' day rollup", stmt.error());
    (*stmt)->bind_all(day_lo, day_hi);
    for (;;) {
      auto row = (*stmt)->step();
      if (!row.ok()) return wrap("reading the agents' day rollup", row.error());
      if (!*row) break;
      std::string agent = (*stmt)->text(0);
      if (!only.empty() && std::find(only.begin(), only.end(), agent) == only.end()) continue;
      totals[std::move(agent)] += read_tally(**stmt, 1);
    }
  }
  auto take_back = [&](const std::string& agent, CallTally& total, int64_t from, int64_t to) -> Status {
    if (from >= to) return {};
    auto stmt = db_.sql().cached(kAgentRange);
    if (!stmt.ok()) return wrap("reading an agent's call rollup", stmt.error());
    (*stmt)->bind_all(agent, from, to);
    auto row = (*stmt)->step();
    if (!row.ok()) return wrap("reading an agent's call rollup", row.error());
    if (*row) total -= read_tally(**stmt, 0);  // sums of no rows are NULL: read as 0
    return {};
  };
  std::vector<AgentTally> out;
  for (auto& [agent, total] : totals) {
    if (total.calls == 0) continue;  // rows whose calls all moved away or were removed
    if (Status s = take_back(agent, total, day_lo, from_ms); !s) return s.error();
    if (Status s = take_back(agent, total, to_ms, day_hi); !s) return s.error();
    if (total.calls > 0) out.push_back({agent, total});
  }
  return out;
}

Result<ChatTally> StatsRepo::chat(int64_t from_ms, int64_t to_ms, std::string_view agent_uuid) {
  auto stmt = db_.sql().cached(agent_uuid.empty() ? kChat : kAgentChat);
  if (!stmt.ok()) return wrap("counting chat sessions", stmt.error());
  if (agent_uuid.empty()) {
    (*stmt)->bind_all(from_ms, to_ms);
  } else {
    (*stmt)->bind_all(agent_uuid, from_ms, to_ms);
  }
  ChatTally out;
  for (;;) {
    auto row = (*stmt)->step();
    if (!row.ok()) return wrap("counting chat sessions", row.error());
    if (!*row) break;
    const std::string status = (*stmt)->text(0);
    const int64_t n = (*stmt)->int64(1);
    out.total += n;
    if (status == "active") out.active += n;
    if (status == "closed") out.closed += n;
    if (status == "dormant") out.dormant += n;
  }
  return out;
}

Result<std::string> StatsRepo::agent_name(std::string_view agent_uuid) {
  for (const std::string* sql : {&kConfiguredName, &kLatestCallName}) {
    auto stmt = db_.sql().cached(*sql);
    if (!stmt.ok()) return wrap("reading an agent's name", stmt.error());
    (*stmt)->bind_all(agent_uuid);
    auto row = (*stmt)->step();
    if (!row.ok()) return wrap("reading an agent's name", row.error());
    if (*row) return (*stmt)->text(0);
  }
  return std::string();
}

std::vector<std::string> StatsRepo::statements() {
  return {kBuckets,    kHours, kAgentHours, kAgentBuckets,   kAgentDays,
          kAgentRange, kChat,  kAgentChat,  kConfiguredName, kLatestCallName};
}

}  // namespace osvi::daemon
