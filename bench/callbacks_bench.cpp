// Callbacks over a large table: CallbacksRepo::next_due (the dialler's "next callback" probe), earliest_due
// (its timer), calls_since (the daily cap's count), the API's list page, and the dialler's whole decision per
// callback — the pass that finds it, checks the agent, do-not-disturb, the calling hours in the callee's zone
// and the daily cap, opens it and hands the call over — then the call's end (closed, retry_config read).
//
//   callbacks_bench [scheduled] [picks]   (defaults 100000 and 20000)
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "osvi/base/log.hpp"
#include "osvi/campaigns/dialer.hpp"
#include "osvi/clock.hpp"
#include "osvi/store/store.hpp"
#include "test_support.hpp"

using namespace osvi;
using namespace osvi::daemon;
using Steady = std::chrono::steady_clock;

namespace {

constexpr int kAgents = 12;
// 06:00 UTC on a Monday: 11:30 in India, inside the 08:00-21:00 floor.
constexpr int64_t kNow = 1'772'431'200'000;  // 2026-03-02T06:00:00Z

double us_since(Steady::time_point t) {
  return std::chrono::duration<double, std::micro>(Steady::now() - t).count();
}

void report(const char* what, std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) {
    return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
  };
  std::printf("%-48s p50 %8.1f us  p99 %8.1f us  max %8.1f us  (n=%zu)\n", what, pct(0.5), pct(0.99),
              v.back(), v.size());
}

std::string agent_name(int a) {
  return "agent_" + std::to_string(a);
}

class ManualTimer final : public CallTimer {
 public:
  void arm(int64_t) override {}
};

class BenchCalls final : public CallService {
 public:
  Result<std::string> place_call(const PlaceCallRequest& r) override {
    live.push_back(r);
    return *r.call_id;
  }
  size_t idle_lines() const override { return live.empty() ? 1 : 0; }
  int add_finished_listener(CallFinishedListener l) override {
    listener = std::move(l);
    return 1;
  }
  void remove_finished_listener(int) override { listener = nullptr; }
  std::vector<PlaceCallRequest> live;
  CallFinishedListener listener;
};

}  // namespace

int main(int argc, char** argv) {
  const int scheduled = argc > 1 ? std::atoi(argv[1]) : 100'000;
  const int picks = argc > 2 ? std::atoi(argv[2]) : 20'000;
  log::set_level(log::Level::warning);
  test::TempDir dir;
  ManualClock clock(kNow);
  auto opened = Store::open(StoreOptions{dir.file("osvid.db"), 5000, true}, clock);
  if (!opened) return std::fprintf(stderr, "%s\n", opened.error().message.c_str()), 1;
  Store& st = **opened;

  // The table, written through a second connection in one transaction (a bulk load): `scheduled` rows, half
  // due already (over the last hour), half over the next week; as many finished rows with a call (history
  // the cap and the list walk past).
  const auto t_seed = Steady::now();
  {
    sqlite3* db = nullptr;
    if (sqlite3_open(dir.file("osvid.db").c_str(), &db) != SQLITE_OK) return 1;
    sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr);
    sqlite3_stmt* ins = nullptr;
    sqlite3_prepare_v2(
        db,
        "INSERT INTO callbacks (kind, source_call_id, agent_uuid, phone, due_at, request_json, "
        "state, call_id, outcome, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, "
        "'{\"person_name\":\"Asha\",\"call_config_overrides\":{\"retry_config\":{\"max_attempts\":"
        "1}}}', ?6, ?7, ?8, ?9, ?9)",
        -1, &ins, nullptr);
    std::mt19937_64 rng(42);
    for (int i = 0; i < 2 * scheduled; ++i) {
      const bool open = i < scheduled;
      char phone[24], source[48], call[48];
      std::snprintf(phone, sizeof phone, "+9198%08d", static_cast<int>(rng() % 200'000));
      std::snprintf(source, sizeof source, "source-%d", i);
      std::snprintf(call, sizeof call, "call-%d", i);
      const int64_t due = open ? ((rng() % 2 == 0) ? kNow - static_cast<int64_t>(rng() % 3'600'000)
                                                   : kNow + static_cast<int64_t>(rng() % (7 * 86'400'000LL)))
                               : kNow - static_cast<int64_t>(rng() % (3 * 86'400'000LL));
      const std::string agent = agent_name(static_cast<int>(rng() % kAgents));
      sqlite3_bind_text(ins, 1, i % 3 == 0 ? "retry" : "callback", -1, SQLITE_STATIC);
      sqlite3_bind_text(ins, 2, source, -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(ins, 3, agent.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(ins, 4, phone, -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(ins, 5, due);
      sqlite3_bind_text(ins, 6, open ? "scheduled" : "done", -1, SQLITE_STATIC);
      if (open) {
        sqlite3_bind_null(ins, 7);
        sqlite3_bind_null(ins, 8);
      } else {
        sqlite3_bind_text(ins, 7, call, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 8, "picked", -1, SQLITE_STATIC);
      }
      sqlite3_bind_int64(ins, 9, kNow - 4 * 86'400'000LL + i);
      if (sqlite3_step(ins) != SQLITE_DONE) return std::fprintf(stderr, "%s\n", sqlite3_errmsg(db)), 1;
      sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
    sqlite3_exec(db, "ANALYZE", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  std::printf("seeded %d scheduled + %d finished callbacks in %.1f s\n", scheduled, scheduled,
              us_since(t_seed) / 1e6);

  // 1. The probes alone.
  CallbacksRepo& cb = st.callbacks();
  std::mt19937 rng(7);
  std::vector<std::string> all_agents, half_agents;
  for (int a = 0; a < kAgents; ++a) {
    all_agents.push_back(agent_name(a));
    if (a % 2 == 0) half_agents.push_back(agent_name(a));
  }
  std::vector<double> next_us, next_half_us, earliest_us, cap_us;
  for (int i = 0; i < picks; ++i) {
    auto t = Steady::now();
    auto r = cb.next_due(kNow, all_agents);
    next_us.push_back(us_since(t));
    if (!r || !*r) return std::fprintf(stderr, "next_due found nothing\n"), 1;
    // Half the agents inactive: their due rows are passed over in the index.
    t = Steady::now();
    auto h = cb.next_due(kNow, half_agents);
    next_half_us.push_back(us_since(t));
    if (!h || !*h) return 1;
    t = Steady::now();
    auto e = cb.earliest_due(all_agents);
    earliest_us.push_back(us_since(t));
    if (!e || !*e) return 1;
    char phone[24];
    std::snprintf(phone, sizeof phone, "+9198%08d", static_cast<int>(rng() % 200'000));
    std::optional<int64_t> oldest;
    t = Steady::now();
    auto n = cb.calls_since(phone, kNow - 86'400'000, &oldest);
    cap_us.push_back(us_since(t));
    if (!n) return 1;
  }
  report("CallbacksRepo::next_due (1 probe, 12 agents)", next_us);
  report("CallbacksRepo::next_due (6 of the 12 agents)", next_half_us);
  report("CallbacksRepo::earliest_due", earliest_us);
  report("CallbacksRepo::calls_since (daily cap)", cap_us);
  std::vector<double> list_all_us, list_agent_us;
  for (int i = 0; i < 200; ++i) {
    CallbacksRepo::Filter f;
    auto t = Steady::now();
    if (!cb.list(f)) return 1;
    list_all_us.push_back(us_since(t));
    f.agent_uuids = {agent_name(i % kAgents)};
    f.state = "scheduled";
    t = Steady::now();
    if (!cb.list(f)) return 1;
    list_agent_us.push_back(us_since(t));
  }
  report("CallbacksRepo::list page 1 (every agent)", list_all_us);
  report("CallbacksRepo::list page 1 (agent, scheduled)", list_agent_us);

  // 2. The dialler's decision per callback: one pass with one free line, then the call's end.
  Config cfg;
  for (int a = 0; a < kAgents; ++a) {
    AgentConfig ag;
    ag.agent_uuid = agent_name(a);
    ag.active = true;
    cfg.agents.push_back(ag);
  }
  cfg.site.time_zone = "Asia/Kolkata";
  cfg.site.utc_offset_minutes = 330;
  cfg.compliance.max_attempts_per_day = 1000;  // the bench measures the decision, not the cap's deferrals
  TimeZones zones;
  BenchCalls calls;
  std::function<void()> fire;
  DialerContext ctx;
  ctx.clock = &clock;
  ctx.store = &st;
  ctx.calls = &calls;
  ctx.zones = &zones;
  ctx.timer = [&](std::function<void()> f) -> Result<std::unique_ptr<CallTimer>> {
    fire = std::move(f);
    return std::unique_ptr<CallTimer>(std::make_unique<ManualTimer>());
  };
  auto dialer = Dialer::create(std::move(ctx));
  if (!dialer) return std::fprintf(stderr, "%s\n", dialer.error().message.c_str()), 1;
  (*dialer)->set_config(&cfg);
  if (auto s = (*dialer)->start(); !s) return 1;
  std::vector<double> pass_us, end_us;
  const int passes = std::min(picks, scheduled / 2);
  for (int i = 0; i < passes; ++i) {
    clock.advance_ms(10);
    auto t = Steady::now();
    fire();
    pass_us.push_back(us_since(t));
    if (calls.live.empty()) return std::fprintf(stderr, "pass %d placed no call\n", i), 1;
    const PlaceCallRequest& r = calls.live.front();
    CallRecord rec;
    rec.call_id = *r.call_id;
    rec.agent_uuid = r.agent_uuid;
    rec.phone_number = r.phone_e164;
    rec.status = "picked";
    rec.call_config_overrides = r.call_config_overrides;
    rec.retry_count = r.retry_count;
    calls.live.clear();
    t = Steady::now();
    calls.listener(rec);
    end_us.push_back(us_since(t));
  }
  const DialerCounters& n = (*dialer)->counters();
  report("Dialer pass placing one callback (full decision)", pass_us);
  report("Dialer: a callback call's end (closed)", end_us);
  std::printf("passes %d: callbacks placed %lld, deferred (hours) %lld, (cap) %lld, dnd %lld\n", passes,
              static_cast<long long>(n.callbacks_placed), static_cast<long long>(n.deferred_window),
              static_cast<long long>(n.deferred_cap), static_cast<long long>(n.dnd));
  return 0;
}
