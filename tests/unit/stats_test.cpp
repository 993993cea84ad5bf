// GET /v1/stats and the stats room: local days and hours across midnights (Asia/Kolkata, Asia/Kathmandu) and
// DST changes (Europe/Berlin), each status in its column, revisions counted once, in_progress and test calls,
// top agents at the window's edges, chat cards, migration 8's backfill, the plans of every query (no scan),
// and the endpoint: its shape, days validation and an agent-limited token. Instants are literal UTC values
// (computed with Python's zoneinfo), not derived from the TimeZone code under test.
#include "osvi/store/stats.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "api_harness.hpp"
#include "osvi/base/time_zone.hpp"
#include "osvi/clock.hpp"
#include "osvi/stats/stats_service.hpp"
#include "osvi/store/store.hpp"
#include "test_support.hpp"

namespace osvi::daemon {
namespace {

using test::api_keys;
using test::api_num;
using test::api_str;
using test::ApiReply;
using test::expect_api_error;

// A second connection to the file, for what the store does not offer (plans, undoing a migration).
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK)
      throw std::runtime_error("cannot open " + path);
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;
  void exec(const std::string& sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    const std::string msg = err != nullptr ? err : "";
    sqlite3_free(err);
    if (rc != SQLITE_OK) throw std::runtime_error(sql + ": " + msg);
  }
  // Column `col` of every row.
  std::vector<std::string> column(const std::string& sql, int col = 0) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK)
      throw std::runtime_error(sql + ": " + sqlite3_errmsg(db_));
    std::vector<std::string> rows;
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, col);
      rows.emplace_back(text != nullptr ? reinterpret_cast<const char*>(text) : "");
    }
    sqlite3_finalize(stmt);
    return rows;
  }

 private:
  sqlite3* db_ = nullptr;
};

// prefix + i; GCC 12 warns falsely (-Wrestrict) about "literal" + std::to_string(i).
std::string named(const char* prefix, int i) {
  std::string out(prefix);
  out += std::to_string(i);
  return out;
}

CallRecord make_call(const std::string& id, const std::string& agent, int64_t created_ms,
                     const std::string& status = "picked", const std::string& type = "outbound",
                     int64_t duration_s = 0) {
  CallRecord c;
  c.call_id = id;
  c.agent_uuid = agent;
  c.agent_name = "Name of " + agent;
  c.phone_number = "+919876543210";
  c.status = status;
  c.call_type = type;
  c.duration_seconds = duration_s;
  c.created_at_ms = created_ms;
  return c;
}

class StatsTest : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }
  void reopen() {
    service_.reset();
    store_.reset();
    auto s = Store::open(StoreOptions{dir_.file("osvi.db")}, clock_);
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(*s);
    service_ = std::make_unique<StatsService>(*store_, zones_, clock_);
  }
  void add(const CallRecord& c) { ASSERT_TRUE(store_->calls().insert(c).ok()) << c.call_id; }
  DashboardStats stats(int days, const std::string& zone, std::vector<std::string> agents = {}) {
    auto r = service_->compute(StatsQuery{days, std::move(agents), zone});
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? *r : DashboardStats{};
  }
  // Counts per local hour as "hour:n" for the hours with calls.
  static std::vector<std::string> hours(const DashboardStats& s) {
    std::vector<std::string> out;
    for (size_t h = 0; h < 24; ++h)
      if (s.by_hour[h] != 0) out.push_back(std::to_string(h) + ":" + std::to_string(s.by_hour[h]));
    return out;
  }
  // Totals per local day as "date:n" for the days with calls.
  static std::vector<std::string> days_with_calls(const DashboardStats& s) {
    std::vector<std::string> out;
    for (const DayCounts& d : s.daily)
      if (d.total != 0) out.push_back(d.date + ":" + std::to_string(d.total));
    return out;
  }

  test::TempDir dir_;
  ManualClock clock_{0};
  TimeZones zones_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<StatsService> service_;
};

TEST_F(StatsTest, KolkataDaysAndHoursSplitAtLocalMidnight) {
  clock_.advance_ms(1'796'279'400'000);                           // 2026-12-03T12:00:00+05:30
  add(make_call("before-window", "agent_a", 1'795'717'799'000));  // 2026-11-26T23:59:59+05:30
  add(make_call("first-day", "agent_a", 1'795'717'800'000));      // 2026-11-27T00:00:00+05:30
  add(make_call("last-second", "agent_a", 1'796'236'199'000));    // 2026-12-02T23:59:59+05:30
  add(make_call("today", "agent_a", 1'796'236'200'000));          // 2026-12-03T00:00:00+05:30
  const DashboardStats s = stats(7, "Asia/Kolkata");
  EXPECT_EQ(s.from, "2026-11-27");
  EXPECT_EQ(s.to, "2026-12-03");
  ASSERT_EQ(s.daily.size(), 7u);
  EXPECT_EQ(s.daily.front().date, "2026-11-27");
  EXPECT_EQ(s.daily.back().date, "2026-12-03");
  EXPECT_EQ(days_with_calls(s), (std::vector<std::string>{"2026-11-27:1", "2026-12-02:1", "2026-12-03:1"}));
  EXPECT_EQ(hours(s), (std::vector<std::string>{"0:2", "23:1"}));
  EXPECT_EQ(s.cards.total_calls, 3);
  EXPECT_EQ(s.cards.today_calls, 1);
  EXPECT_EQ(s.utc_offset_minutes, 330);
  // The call before the window is in no number, the top agents' included (a window edge mid-UTC-day).
  ASSERT_EQ(s.top_agents.size(), 1u);
  EXPECT_EQ(s.top_agents[0].calls, 3);
  EXPECT_EQ(s.cards.active_agents, 1);
  // 14 days reach back to 2026-11-20: the early call is in.
  EXPECT_EQ(stats(14, "Asia/Kolkata").cards.total_calls, 4);
  EXPECT_EQ(stats(14, "Asia/Kolkata").top_agents.at(0).calls, 4);
}

TEST_F(StatsTest, KathmanduQuarterHourOffset) {
  clock_.advance_ms(1'796'278'500'000);               // 2026-12-03T12:00:00+05:45
  add(make_call("a", "agent_a", 1'796'235'299'000));  // 2026-12-02T23:59:59+05:45
  add(make_call("b", "agent_a", 1'796'235'300'000));  // 2026-12-03T00:00:00+05:45
  add(make_call("c", "agent_a", 1'796'199'299'000));  // 2026-12-02T13:59:59+05:45
  add(make_call("d", "agent_a", 1'796'199'300'000));  // 2026-12-02T14:00:00+05:45
  const DashboardStats s = stats(7, "Asia/Kathmandu");
  EXPECT_EQ(days_with_calls(s), (std::vector<std::string>{"2026-12-02:3", "2026-12-03:1"}));
  EXPECT_EQ(hours(s), (std::vector<std::string>{"0:1", "13:1", "14:1", "23:1"}));
  EXPECT_EQ(s.cards.today_calls, 1);
  EXPECT_EQ(s.utc_offset_minutes, 345);
}

// 2026-03-29: clocks go from 02:00 CET to 03:00 CEST; the day has 23 hours and no 02:xx.
TEST_F(StatsTest, BerlinSpringForward) {
  clock_.advance_ms(1'774'864'800'000);                      // 2026-03-30T12:00:00+02:00
  add(make_call("edge-out", "agent_a", 1'774'306'799'000));  // 2026-03-23T23:59:59+01:00
  add(make_call("edge-in", "agent_a", 1'774'306'800'000));   // 2026-03-24T00:00:00+01:00
  add(make_call("sat-late", "agent_a", 1'774'738'200'000));  // 2026-03-28T23:50:00+01:00
  add(make_call("before", "agent_a", 1'774'745'400'000));    // 2026-03-29T01:50:00+01:00
  add(make_call("after", "agent_a", 1'774'746'600'000));     // 2026-03-29T03:10:00+02:00
  add(make_call("sun-late", "agent_a", 1'774'821'000'000));  // 2026-03-29T23:50:00+02:00
  add(make_call("mon", "agent_a", 1'774'822'200'000));       // 2026-03-30T00:10:00+02:00
  const DashboardStats s = stats(7, "Europe/Berlin");
  EXPECT_EQ(s.from, "2026-03-24");
  EXPECT_EQ(s.to, "2026-03-30");
  EXPECT_EQ(days_with_calls(s),
            (std::vector<std::string>{"2026-03-24:1", "2026-03-28:1", "2026-03-29:3", "2026-03-30:1"}));
  EXPECT_EQ(hours(s), (std::vector<std::string>{"0:2", "1:1", "3:1", "23:2"}));
  EXPECT_EQ(s.cards.today_calls, 1);
  EXPECT_EQ(s.cards.total_calls, 6);
  EXPECT_EQ(s.top_agents.at(0).calls, 6);
  EXPECT_EQ(s.utc_offset_minutes, 120);
}

// 2026-10-25: clocks go from 03:00 CEST back to 02:00 CET; 02:30 happens twice and the day has 25 hours.
TEST_F(StatsTest, BerlinFallBack) {
  clock_.advance_ms(1'793'012'400'000);                      // 2026-10-26T12:00:00+01:00
  add(make_call("edge-out", "agent_a", 1'792'447'199'000));  // 2026-10-19T23:59:59+02:00
  add(make_call("edge-in", "agent_a", 1'792'447'200'000));   // 2026-10-20T00:00:00+02:00
  add(make_call("first", "agent_a", 1'792'888'200'000));     // 2026-10-25T02:30:00+02:00
  add(make_call("second", "agent_a", 1'792'891'800'000));    // 2026-10-25T02:30:00+01:00
  add(make_call("late", "agent_a", 1'792'967'400'000));      // 2026-10-25T23:30:00+01:00
  add(make_call("mon", "agent_a", 1'792'969'200'000));       // 2026-10-26T00:00:00+01:00
  const DashboardStats s = stats(7, "Europe/Berlin");
  EXPECT_EQ(s.from, "2026-10-20");
  EXPECT_EQ(days_with_calls(s), (std::vector<std::string>{"2026-10-20:1", "2026-10-25:3", "2026-10-26:1"}));
  EXPECT_EQ(hours(s), (std::vector<std::string>{"0:2", "2:2", "23:1"}));
  EXPECT_EQ(s.cards.total_calls, 5);
  EXPECT_EQ(s.utc_offset_minutes, 60);
}

// 2026-04-05, Australia/Lord_Howe: clocks go from 02:00 +11:00 back to 01:30 +10:30, so the local hours
// start at minute 0 of the UTC hour before and at minute 30 after: no hour rollup fits the window, the
// 15-minute buckets are read (an hour row of phase 0 would put 02:05 into hour 1).
TEST_F(StatsTest, LordHoweHalfHourDstFallsBackToQuarters) {
  clock_.advance_ms(1'775'352'600'000);               // 2026-04-05T12:00:00+10:30
  add(make_call("a", "agent_a", 1'775'308'200'000));  // 2026-04-05T00:10:00+11:00
  add(make_call("b", "agent_a", 1'775'313'900'000));  // 2026-04-05T01:45:00+11:00
  add(make_call("c", "agent_a", 1'775'315'400'000));  // 2026-04-05T01:40:00+10:30
  add(make_call("d", "agent_a", 1'775'316'900'000));  // 2026-04-05T02:05:00+10:30
  const DashboardStats s = stats(7, "Australia/Lord_Howe");
  EXPECT_EQ(s.to, "2026-04-05");
  EXPECT_EQ(days_with_calls(s), (std::vector<std::string>{"2026-04-05:4"}));
  EXPECT_EQ(hours(s), (std::vector<std::string>{"0:1", "1:2", "2:1"}));
  EXPECT_EQ(s.utc_offset_minutes, 630);
  const DashboardStats mine = stats(7, "Australia/Lord_Howe", {"agent_a"});  // the agent's quarters
  EXPECT_EQ(hours(mine), (std::vector<std::string>{"0:1", "1:2", "2:1"}));
}

// The all-agents series come from the hour rollup (phases 0, 15 and 30 min), an agent-limited one from the
// agents' hour rollup: after inserts, updates and removals, the two agree with each other and with the calls
// placed one by one in every zone.
TEST_F(StatsTest, HourRollupAgreesWithTheQuarters) {
  clock_.advance_ms(1'796'279'400'000);  // 2026-12-03T12:00:00+05:30
  const char* statuses[] = {"picked", "not_picked", "failed", "busy", "voicemail", "in_progress"};
  std::vector<CallRecord> calls;
  for (int i = 0; i < 300; ++i) {
    // Every 37 minutes and 11 seconds back from now: all quarters of the hour, 8 days.
    calls.push_back(make_call(named("c", i), named("agent_", i % 3),
                              1'796'279'400'000 - int64_t{i} * 2'231'000, statuses[i % 6],
                              i % 4 == 0 ? "inbound" : "outbound", i % 50));
    add(calls.back());
  }
  for (int i = 0; i < 300; i += 7) {
    calls[static_cast<size_t>(i)].status = "picked";
    ASSERT_TRUE(store_->calls().update(calls[static_cast<size_t>(i)]).ok());
  }
  std::vector<bool> removed(calls.size(), false);
  for (int i = 3; i < 300; i += 11) {
    ASSERT_TRUE(store_->calls().remove(named("c", i)).ok());
    removed[static_cast<size_t>(i)] = true;
  }
  for (const char* zone : {"Asia/Kolkata", "Asia/Kathmandu", "Europe/Berlin", "UTC", "America/St_Johns"}) {
    const DashboardStats all = stats(7, zone);
    const DashboardStats each = stats(7, zone, {"agent_0", "agent_1", "agent_2"});
    EXPECT_EQ(all.by_hour, each.by_hour) << zone;
    ASSERT_EQ(all.daily.size(), each.daily.size());
    for (size_t d = 0; d < all.daily.size(); ++d) {
      const DayCounts &a = all.daily[d], &b = each.daily[d];
      EXPECT_EQ(std::vector<int64_t>({a.picked, a.not_picked, a.failed, a.busy, a.voicemail, a.total}),
                std::vector<int64_t>({b.picked, b.not_picked, b.failed, b.busy, b.voicemail, b.total}))
          << zone << " " << a.date;
    }
    EXPECT_EQ(all.cards.today_calls, each.cards.today_calls) << zone;
    EXPECT_EQ(all.cards.total_calls, each.cards.total_calls) << zone;
    int64_t in_series = 0;
    for (const DayCounts& d : all.daily) in_series += d.total;
    EXPECT_EQ(in_series, all.cards.total_calls) << zone;
    // And both agree with the calls themselves, placed in local days and hours one by one.
    auto tz = TimeZone::load(zone);
    ASSERT_TRUE(tz.ok()) << zone;
    std::array<int64_t, 24> want{};
    for (size_t i = 0; i < calls.size(); ++i) {
      if (removed[i]) continue;
      const LocalTime lt = (*tz)->local(calls[i].created_at_ms);
      char date[16];
      std::snprintf(date, sizeof date, "%04d-%02d-%02d", lt.year, lt.month, lt.day);
      if (date >= all.from && date <= all.to) ++want[static_cast<size_t>(lt.minute_of_day / 60)];
    }
    EXPECT_EQ(all.by_hour, want) << zone;
  }
}

TEST_F(StatsTest, EachStatusInItsColumnAndTheCards) {
  clock_.advance_ms(1'796'279'400'000);  // 2026-12-03T12:00:00+05:30
  const int64_t t = 1'796'250'000'000;   // 2026-12-03T03:50:00+05:30
  add(make_call("p1", "agent_a", t, "picked", "outbound", 100));
  add(make_call("p2", "agent_a", t + 1000, "picked", "inbound", 50));
  add(make_call("np", "agent_a", t + 2000, "not_picked", "outbound"));
  add(make_call("f", "agent_b", t + 3000, "failed", "outbound"));
  add(make_call("b", "agent_b", t + 4000, "busy", "inbound"));
  add(make_call("vm", "agent_b", t + 5000, "voicemail", "outbound", 30));
  add(make_call("live", "agent_b", t + 6000, "in_progress", "inbound"));
  CallRecord test_call = make_call("test", "agent_a", t + 7000, "picked", "inbound", 500);
  test_call.execution_mode = "test";
  add(test_call);
  const DashboardStats s = stats(7, "Asia/Kolkata");
  const DayCounts& today = s.daily.back();
  EXPECT_EQ(today.date, "2026-12-03");
  EXPECT_EQ(today.picked, 2);
  EXPECT_EQ(today.not_picked, 1);
  EXPECT_EQ(today.failed, 1);
  EXPECT_EQ(today.busy, 1);
  EXPECT_EQ(today.voicemail, 1);
  EXPECT_EQ(today.total, 7);  // the live call too; the test call not at all
  EXPECT_EQ(s.cards.total_calls, 7);
  EXPECT_EQ(s.cards.today_calls, 7);
  EXPECT_EQ(s.cards.total_duration_s, 180);
  EXPECT_DOUBLE_EQ(s.cards.avg_duration_s, 75.0);  // (100 + 50) / 2 picked
  EXPECT_DOUBLE_EQ(s.cards.answer_rate, 0.3333);   // 2 picked / 6 finished
  EXPECT_EQ(s.cards.inbound, 3);
  EXPECT_EQ(s.cards.outbound, 4);
  EXPECT_EQ(s.cards.active_agents, 2);
  EXPECT_EQ(hours(s), (std::vector<std::string>{"3:7"}));
  ASSERT_EQ(s.top_agents.size(), 2u);
  EXPECT_EQ(s.top_agents[0].agent_uuid, "agent_b");  // 4 calls
  EXPECT_EQ(s.top_agents[0].calls, 4);
  EXPECT_EQ(s.top_agents[0].picked, 0);
  EXPECT_DOUBLE_EQ(s.top_agents[0].avg_duration_s, 0.0);
  EXPECT_EQ(s.top_agents[1].agent_uuid, "agent_a");
  EXPECT_EQ(s.top_agents[1].calls, 3);
  EXPECT_EQ(s.top_agents[1].picked, 2);
  EXPECT_DOUBLE_EQ(s.top_agents[1].avg_duration_s, 75.0);
  // Neither agent is configured: the name of its latest call.
  EXPECT_EQ(s.top_agents[1].name, "Name of agent_a");
}

TEST_F(StatsTest, RevisionsCountACallOnceByItsCurrentState) {
  clock_.advance_ms(1'796'279'400'000);
  CallRecord c = make_call("c1", "agent_a", 1'796'250'000'000, "in_progress", "outbound");
  add(c);
  EXPECT_EQ(stats(7, "Asia/Kolkata").cards.answer_rate, 0.0);  // nothing finished yet
  EXPECT_EQ(stats(7, "Asia/Kolkata").daily.back().total, 1);
  c.status = "picked";
  c.duration_seconds = 40;
  ASSERT_TRUE(store_->calls().update(c).ok());
  c.summary = std::string("later analysis: a new revision, same state");
  ASSERT_TRUE(store_->calls().update(c).ok());
  ASSERT_TRUE(store_->calls().update(c).ok());
  DashboardStats s = stats(7, "Asia/Kolkata");
  EXPECT_EQ(s.cards.total_calls, 1);
  EXPECT_EQ(s.daily.back().picked, 1);
  EXPECT_EQ(s.daily.back().total, 1);
  EXPECT_EQ(s.cards.total_duration_s, 40);
  EXPECT_DOUBLE_EQ(s.cards.answer_rate, 1.0);
  // Moving agent (a rewrite of the row) moves the call between agents, not into both.
  c.agent_uuid = "agent_b";
  ASSERT_TRUE(store_->calls().update(c).ok());
  s = stats(7, "Asia/Kolkata", {"agent_a"});
  EXPECT_EQ(s.cards.total_calls, 0);
  EXPECT_TRUE(s.top_agents.empty());
  s = stats(7, "Asia/Kolkata");
  EXPECT_EQ(s.cards.total_calls, 1);
  ASSERT_EQ(s.top_agents.size(), 1u);
  EXPECT_EQ(s.top_agents[0].agent_uuid, "agent_b");
  ASSERT_TRUE(store_->calls().remove("c1").ok());
  s = stats(7, "Asia/Kolkata");
  EXPECT_EQ(s.cards.total_calls, 0);
  EXPECT_EQ(s.cards.active_agents, 0);
  EXPECT_TRUE(s.top_agents.empty());
}

TEST_F(StatsTest, StartUpRecoveryMovesAnInterruptedCallOutOfInProgress) {
  clock_.advance_ms(1'796'279'400'000);
  add(make_call("live", "agent_a", 1'796'250'000'000, "in_progress"));
  EXPECT_EQ(stats(7, "Asia/Kolkata").daily.back().failed, 0);
  reopen();  // the daemon "restarts": the call is closed as failed
  const DashboardStats s = stats(7, "Asia/Kolkata");
  EXPECT_EQ(s.daily.back().failed, 1);
  EXPECT_EQ(s.daily.back().total, 1);
}

TEST_F(StatsTest, TopAgentsAtMostFiveMostCallsFirstWithConfiguredNames) {
  clock_.advance_ms(1'796'279'400'000);
  ASSERT_TRUE(store_->agents()
                  .sync({AgentRecord{0, "agent_3", "Front desk", "voice", true, false, "{}", "", 0, 0}})
                  .ok());
  int id = 0;
  for (int a = 0; a < 7; ++a) {
    for (int k = 0; k <= a; ++k) {
      ++id;
      add(make_call(named("c", id), named("agent_", a), 1'796'250'000'000 + id));
    }
  }
  const DashboardStats s = stats(30, "Asia/Kolkata");
  EXPECT_EQ(s.cards.active_agents, 7);
  ASSERT_EQ(s.top_agents.size(), 5u);
  std::vector<std::string> order;
  for (const TopAgent& a : s.top_agents) order.push_back(a.agent_uuid + "=" + std::to_string(a.calls));
  EXPECT_EQ(order,
            (std::vector<std::string>{"agent_6=7", "agent_5=6", "agent_4=5", "agent_3=4", "agent_2=3"}));
  EXPECT_EQ(s.top_agents[3].name, "Front desk");
  EXPECT_EQ(s.top_agents[0].name, "Name of agent_6");
}

TEST_F(StatsTest, AgentLimitedQuerySeesOnlyItsAgents) {
  clock_.advance_ms(1'796'279'400'000);
  add(make_call("a1", "agent_a", 1'796'250'000'000, "picked", "inbound", 10));
  add(make_call("b1", "agent_b", 1'796'250'000'000, "busy"));
  add(make_call("b2", "agent_b", 1'796'150'000'000, "picked", "outbound", 20));  // 2026-12-02
  const DashboardStats s = stats(7, "Asia/Kolkata", {"agent_b", "agent_b"});
  EXPECT_EQ(s.cards.total_calls, 2);
  EXPECT_EQ(s.cards.inbound, 0);
  EXPECT_EQ(s.cards.total_duration_s, 20);
  EXPECT_EQ(s.cards.active_agents, 1);
  EXPECT_EQ(days_with_calls(s), (std::vector<std::string>{"2026-12-02:1", "2026-12-03:1"}));
  ASSERT_EQ(s.top_agents.size(), 1u);
  EXPECT_EQ(s.top_agents[0].agent_uuid, "agent_b");
  EXPECT_EQ(stats(7, "Asia/Kolkata", {"agent_nobody"}).cards.total_calls, 0);
}

TEST_F(StatsTest, ChatCardsCountTheWindowsSessionsByStatusNow) {
  clock_.advance_ms(1'796'279'400'000);
  const int64_t in = 1'796'250'000'000, before = 1'795'717'799'000;  // today; 2026-11-26T23:59:59+05:30
  auto session = [&](const std::string& id, const std::string& agent, const std::string& customer,
                     const std::string& status, int64_t at) {
    ChatSessionRow r;
    r.id = id;
    r.agent_uuid = agent;
    r.customer_id = customer;
    r.status = status;
    r.created_at_ms = r.updated_at_ms = r.last_message_at_ms = at;
    if (status == "closed") r.closed_at_ms = at;
    auto made = store_->chat().create(r);
    ASSERT_TRUE(made.ok()) << made.error().message;
  };
  session("s1", "agent_a", "c1", "active", in);
  session("s2", "agent_a", "c2", "dormant", in);
  session("s3", "agent_a", "c3", "closed", in);
  session("s4", "agent_b", "c4", "active", in);
  session("s5", "agent_b", "c5", "closed", before);  // before the window
  ChatTally c = stats(7, "Asia/Kolkata").chat;
  EXPECT_EQ(c.total, 4);
  EXPECT_EQ(c.active, 2);
  EXPECT_EQ(c.dormant, 1);
  EXPECT_EQ(c.closed, 1);
  c = stats(7, "Asia/Kolkata", {"agent_b"}).chat;
  EXPECT_EQ(c.total, 1);
  EXPECT_EQ(c.active, 1);
  EXPECT_EQ(stats(14, "Asia/Kolkata", {"agent_b"}).chat.closed, 1);
}

TEST_F(StatsTest, UnknownZoneAndDaysAreErrors) {
  EXPECT_FALSE(service_->compute(StatsQuery{7, {}, "Mars/Olympus"}).ok());
  EXPECT_FALSE(service_->compute(StatsQuery{8, {}, "Asia/Kolkata"}).ok());
  for (int days : {7, 14, 30, 90}) EXPECT_EQ(stats(days, "UTC").daily.size(), static_cast<size_t>(days));
}

// A version 7 file with calls: migration 8 fills the rollups from them.
TEST_F(StatsTest, Migration8BackfillsTheRollups) {
  clock_.advance_ms(1'796'279'400'000);
  add(make_call("p", "agent_a", 1'796'250'000'000, "picked", "inbound", 30));
  add(make_call("n", "agent_b", 1'796'150'000'000, "not_picked"));
  CallRecord t = make_call("t", "agent_b", 1'796'150'000'000, "picked");
  t.execution_mode = "test";
  add(t);
  const DashboardStats want = stats(7, "Asia/Kolkata");
  service_.reset();
  store_.reset();
  {
    RawDb raw(dir_.file("osvi.db"));
    raw.exec(R"sql(
DROP TRIGGER call_stats_insert; DROP TRIGGER call_stats_delete;
DROP TRIGGER call_stats_update_old; DROP TRIGGER call_stats_update_new;
DROP TABLE call_stats_quarter; DROP TABLE call_stats_hour; DROP TABLE call_stats_agent_quarter;
DROP TABLE call_stats_agent_hour;
DROP TABLE call_stats_agent_day;
DROP INDEX chat_sessions_created; DROP INDEX chat_sessions_agent_created;
PRAGMA user_version = 7;
)sql");
  }
  reopen();
  EXPECT_EQ(store_->database().open_report().schema_before, 7);
  const DashboardStats got = stats(7, "Asia/Kolkata");
  EXPECT_EQ(got.cards.total_calls, 2);
  EXPECT_EQ(got.cards.total_calls, want.cards.total_calls);
  EXPECT_EQ(got.cards.inbound, want.cards.inbound);
  EXPECT_EQ(got.cards.total_duration_s, want.cards.total_duration_s);
  EXPECT_EQ(days_with_calls(got), days_with_calls(want));
  EXPECT_EQ(got.by_hour, want.by_hour);
  EXPECT_EQ(got.top_agents.size(), want.top_agents.size());
}

// Every statement the stats run is an index search: none scans a table (calls above all), with and without
// the planner statistics PRAGMA optimize leaves behind.
TEST_F(StatsTest, NoQueryScansATable) {
  clock_.advance_ms(1'796'279'400'000);
  for (int i = 0; i < 200; ++i)
    add(make_call(named("c", i), named("agent_", i % 4), 1'796'000'000'000 + int64_t{i} * 1'000'000));
  RawDb raw(dir_.file("osvi.db"));
  for (bool analyzed : {false, true}) {
    if (analyzed) raw.exec("ANALYZE");
    for (const std::string& sql : StatsRepo::statements()) {
      const auto plan = raw.column("EXPLAIN QUERY PLAN " + sql, 3);
      ASSERT_FALSE(plan.empty()) << sql;
      bool searched = false;
      for (const std::string& step : plan) {
        EXPECT_FALSE(step.starts_with("SCAN")) << step << " in " << sql << (analyzed ? " (analyzed)" : "");
        searched = searched || step.starts_with("SEARCH");
      }
      EXPECT_TRUE(searched) << sql;
    }
  }
  // The rollups' own writes are keyed too: the triggers' UPDATEs find their row by primary key.
  const auto plan = raw.column(
      "EXPLAIN QUERY PLAN UPDATE call_stats_agent_day SET calls = calls - 1 WHERE day = 0 AND agent_uuid = "
      "'a'",
      3);
  ASSERT_FALSE(plan.empty());
  EXPECT_TRUE(plan[0].starts_with("SEARCH")) << plan[0];
}

// The endpoint over the real HTTP server and Api.
class StatsApiTest : public test::ApiTest {
 protected:
  void SetUp() override {
    start_api({AgentRecord{0, "agent_a", "Front desk", "voice", true, false, "{}", "", 0, 0},
               AgentRecord{0, "agent_b", "Back office", "voice", true, false, "{}", "", 0, 0}});
    stats_ = std::make_unique<StatsService>(*store_, zones_, clock_);
    ctx_.stats = stats_.get();
  }
  TimeZones zones_;
  std::unique_ptr<StatsService> stats_;
};

// test::kApiT0 is 2026-05-29T01:56:40+05:30.
TEST_F(StatsApiTest, TheDocumentedShape) {
  ASSERT_TRUE(store_->calls()
                  .insert(make_call("a1", "agent_a", test::kApiT0 - 60'000, "picked", "inbound", 61))
                  .ok());
  ASSERT_TRUE(store_->calls().insert(make_call("b1", "agent_b", test::kApiT0 - 86'400'000, "busy")).ok());
  ApiReply r = request("GET", "/v1/stats");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(api_keys(r.json.get()), (std::vector<std::string>{"success", "data"}));
  const cJSON* d = r.data();
  EXPECT_EQ(api_keys(d), (std::vector<std::string>{"days", "time_zone", "from", "to", "generated_at", "cards",
                                                   "daily", "top_agents", "by_hour", "chat"}));
  EXPECT_EQ(api_num(d, "days"), 7);
  EXPECT_EQ(api_str(d, "time_zone"), "Asia/Kolkata");
  EXPECT_EQ(api_str(d, "from"), "2026-05-23");
  EXPECT_EQ(api_str(d, "to"), "2026-05-29");
  EXPECT_EQ(api_str(d, "generated_at"), "2026-05-29T01:56:40+05:30");
  const cJSON* cards = cJSON_GetObjectItemCaseSensitive(d, "cards");
  EXPECT_EQ(api_keys(cards),
            (std::vector<std::string>{"total_calls", "today_calls", "avg_duration_s", "total_duration_s",
                                      "answer_rate", "active_agents", "inbound", "outbound"}));
  EXPECT_EQ(api_num(cards, "total_calls"), 2);
  EXPECT_EQ(api_num(cards, "today_calls"), 1);
  EXPECT_EQ(api_num(cards, "avg_duration_s"), 61);
  EXPECT_EQ(api_num(cards, "total_duration_s"), 61);
  EXPECT_EQ(api_num(cards, "answer_rate"), 0.5);
  EXPECT_EQ(api_num(cards, "active_agents"), 2);
  EXPECT_EQ(api_num(cards, "inbound"), 1);
  EXPECT_EQ(api_num(cards, "outbound"), 1);
  const cJSON* daily = cJSON_GetObjectItemCaseSensitive(d, "daily");
  ASSERT_EQ(cJSON_GetArraySize(daily), 7);
  const cJSON* last = cJSON_GetArrayItem(daily, 6);
  EXPECT_EQ(api_keys(last), (std::vector<std::string>{"date", "picked", "not_picked", "failed", "busy",
                                                      "voicemail", "total"}));
  EXPECT_EQ(api_str(last, "date"), "2026-05-29");
  EXPECT_EQ(api_num(last, "picked"), 1);
  EXPECT_EQ(api_num(cJSON_GetArrayItem(daily, 5), "busy"), 1);
  EXPECT_EQ(api_str(cJSON_GetArrayItem(daily, 0), "date"), "2026-05-23");
  EXPECT_EQ(api_num(cJSON_GetArrayItem(daily, 0), "total"), 0);
  const cJSON* top = cJSON_GetObjectItemCaseSensitive(d, "top_agents");
  ASSERT_EQ(cJSON_GetArraySize(top), 2);
  const cJSON* first = cJSON_GetArrayItem(top, 0);
  EXPECT_EQ(api_keys(first),
            (std::vector<std::string>{"agent_uuid", "name", "calls", "picked", "avg_duration_s"}));
  EXPECT_EQ(api_str(first, "agent_uuid"), "agent_a");  // 1 call each: agent_uuid order
  EXPECT_EQ(api_str(first, "name"), "Front desk");
  const cJSON* hours = cJSON_GetObjectItemCaseSensitive(d, "by_hour");
  ASSERT_EQ(cJSON_GetArraySize(hours), 24);
  EXPECT_EQ(cJSON_GetArrayItem(hours, 1)->valuedouble, 2);  // 01:55 today, 01:56 yesterday
  const cJSON* chat = cJSON_GetObjectItemCaseSensitive(d, "chat");
  EXPECT_EQ(api_keys(chat), (std::vector<std::string>{"total", "active", "closed", "dormant"}));
  for (const char* days : {"7", "14", "30", "90"}) {
    r = request("GET", std::string("/v1/stats?days=") + days);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.data(), "daily")), std::stoi(days));
  }
}

TEST_F(StatsApiTest, DaysIsValidatedAndNothingElseIsAccepted) {
  for (const char* bad : {"0", "5", "07", "7.0", "-7", "abc", "365", ""})
    expect_api_error(request("GET", std::string("/v1/stats?days=") + bad), 422,
                     "days: must be 7, 14, 30 or 90");
  expect_api_error(request("GET", "/v1/stats?days=7&days=14"), 422, "days: given more than once");
  expect_api_error(request("GET", "/v1/stats?agent_uuid=agent_a"), 422, "\"agent_uuid\": unknown");
  expect_api_error(request("POST", "/v1/stats", "{}"), 405, "not allowed");
  expect_api_error(request("GET", "/v1/stats", "", "WrongToken012345"), 401, "invalid API-Token");
}

TEST_F(StatsApiTest, AnAgentLimitedTokenSeesOnlyItsAgents) {
  ASSERT_TRUE(store_->calls()
                  .insert(make_call("a1", "agent_a", test::kApiT0 - 60'000, "picked", "inbound", 61))
                  .ok());
  ASSERT_TRUE(store_->calls().insert(make_call("a2", "agent_a", test::kApiT0 - 50'000, "picked")).ok());
  ASSERT_TRUE(store_->calls().insert(make_call("b1", "agent_b", test::kApiT0 - 86'400'000, "busy")).ok());
  ChatSessionRow row;
  row.id = "s-a";
  row.agent_uuid = "agent_a";
  row.customer_id = "cust";
  row.created_at_ms = row.updated_at_ms = row.last_message_at_ms = test::kApiT0 - 1000;
  ASSERT_TRUE(store_->chat().create(row).ok());
  ApiReply r = request("GET", "/v1/stats", "", test::kApiTokenB);  // agent_b only
  ASSERT_EQ(r.status, 200) << r.body;
  const cJSON* cards = cJSON_GetObjectItemCaseSensitive(r.data(), "cards");
  EXPECT_EQ(api_num(cards, "total_calls"), 1);
  EXPECT_EQ(api_num(cards, "today_calls"), 0);
  EXPECT_EQ(api_num(cards, "inbound"), 0);
  EXPECT_EQ(api_num(cards, "active_agents"), 1);
  const cJSON* top = cJSON_GetObjectItemCaseSensitive(r.data(), "top_agents");
  ASSERT_EQ(cJSON_GetArraySize(top), 1);
  EXPECT_EQ(api_str(cJSON_GetArrayItem(top, 0), "agent_uuid"), "agent_b");
  EXPECT_EQ(api_str(cJSON_GetArrayItem(top, 0), "name"), "Back office");
  EXPECT_EQ(api_num(cJSON_GetObjectItemCaseSensitive(r.data(), "chat"), "total"), 0);
  // The admin token sees both agents and the chat session.
  r = request("GET", "/v1/stats");
  EXPECT_EQ(api_num(cJSON_GetObjectItemCaseSensitive(r.data(), "cards"), "total_calls"), 3);
  EXPECT_EQ(api_num(cJSON_GetObjectItemCaseSensitive(r.data(), "chat"), "active"), 1);
}

TEST_F(StatsApiTest, WithoutTheServiceItAnswers503) {
  ctx_.stats = nullptr;
  expect_api_error(request("GET", "/v1/stats"), 503, "stats are not available");
}

}  // namespace
}  // namespace osvi::daemon
