// The campaign dialler over a large queue: DialerQueue::next_due (the indexed "next contact" probe) and the
// dialler's whole decision per pick — the pass that finds a due contact, checks do-not-disturb, the callee's
// calling hours in its zone and the daily attempts cap, records the attempt and hands the call over.
//
//   dialer_bench [contacts] [picks]   (defaults 1000000 and 20000)
#include <sqlite3.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
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

constexpr int kCampaigns = 3;
constexpr int kAgents = 4;  // per campaign
// 14:00 UTC on a Monday: inside the 08:00-21:00 floor in India, London and New York, not in Los Angeles.
constexpr int64_t kNow = 1'772'460'000'000;  // 2026-03-02T14:00:00Z

double us_since(Steady::time_point t) {
  return std::chrono::duration<double, std::micro>(Steady::now() - t).count();
}

// This thread's CPU time: on a shared machine the wall-clock tail is mostly other processes' time slices.
double thread_cpu_us() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

void report(const char* what, std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) {
    return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
  };
  std::printf("%-44s p50 %8.1f us  p99 %8.1f us  max %8.1f us  (n=%zu)\n", what, pct(0.5), pct(0.99),
              v.back(), v.size());
}

std::string agent_name(int a) {
  return "agent_" + std::to_string(a);
}

// The bench drives the dialler's timer by hand: poke() arms it, fire() runs the pass.
class ManualTimer final : public CallTimer {
 public:
  void arm(int64_t at_us) override { at = at_us; }
  int64_t at = -1;
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

bool exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) == SQLITE_OK) return true;
  std::fprintf(stderr, "%s: %s\n", sql, err != nullptr ? err : "?");
  sqlite3_free(err);
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  const int contacts = argc > 1 ? std::atoi(argv[1]) : 1'000'000;
  const int picks = argc > 2 ? std::atoi(argv[2]) : 20'000;
  log::set_level(log::Level::warning);
  test::TempDir dir;
  ManualClock clock(kNow);
  auto opened = Store::open(StoreOptions{dir.file("osvid.db"), 5000, true}, clock);
  if (!opened) return std::fprintf(stderr, "%s\n", opened.error().message.c_str()), 1;
  Store& st = **opened;

  std::map<int, int64_t> upload;
  for (int c = 1; c <= kCampaigns; ++c) {
    CampaignRow row;
    row.id = c;
    row.name = "Campaign " + std::to_string(c);
    row.max_concurrent_per_agent = 1;
    for (int a = 0; a < kAgents; ++a) row.agents.push_back({agent_name((c - 1) * kAgents + a), true});
    if (auto s = st.campaigns().upsert(row); !s)
      return std::fprintf(stderr, "%s\n", s.error().message.c_str()), 1;
    UploadRow u;
    u.campaign_id = c;
    u.agent_uuid = row.agents.front().agent_uuid;
    u.file_name = "bench.csv";
    auto id = st.campaigns().create_upload(u);
    if (!id) return std::fprintf(stderr, "%s\n", id.error().message.c_str()), 1;
    upload[c] = *id;
  }

  // The queue, written through a second connection in one transaction (a bulk load, not the import path):
  // half due already, half over the next week; a tenth in a zone outside its hours now (Los Angeles).
  const auto t_seed = Steady::now();
  {
    sqlite3* db = nullptr;
    if (sqlite3_open(dir.file("osvid.db").c_str(), &db) != SQLITE_OK) return 1;
    exec(db, "BEGIN");
    sqlite3_stmt* ins = nullptr;
    sqlite3_prepare_v2(
        db,
        "INSERT INTO campaign_contacts (upload_id, campaign_id, agent_uuid, phone, person_name, "
        "variables_json, time_zone, state, attempts, next_attempt_at, created_at, updated_at) "
        "VALUES (?1, ?2, ?3, ?4, 'Asha', '{\"plan\":\"gold\"}', ?5, 'queued', 0, ?6, ?7, ?7)",
        -1, &ins, nullptr);
    std::mt19937_64 rng(42);
    static const char* kZones[] = {"Asia/Kolkata", "Europe/London",      "America/New_York", "Asia/Kolkata",
                                   "Asia/Kolkata", "Europe/London",      "America/New_York", "Asia/Kolkata",
                                   "Asia/Kolkata", "America/Los_Angeles"};
    for (int i = 0; i < contacts; ++i) {
      const int c = 1 + i % kCampaigns;
      const int a = (c - 1) * kAgents + (i / kCampaigns) % kAgents;
      char phone[24];
      std::snprintf(phone, sizeof phone, "+9198%08d", i);
      const int64_t due = (rng() % 2 == 0) ? kNow - static_cast<int64_t>(rng() % 86'400'000)
                                           : kNow + static_cast<int64_t>(rng() % (7 * 86'400'000LL));
      const std::string agent = agent_name(a);
      sqlite3_bind_int64(ins, 1, upload[c]);
      sqlite3_bind_int64(ins, 2, c);
      sqlite3_bind_text(ins, 3, agent.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(ins, 4, phone, -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(ins, 5, kZones[rng() % 10], -1, SQLITE_STATIC);
      sqlite3_bind_int64(ins, 6, due);
      sqlite3_bind_int64(ins, 7, kNow - 86'400'000);
      if (sqlite3_step(ins) != SQLITE_DONE) return std::fprintf(stderr, "%s\n", sqlite3_errmsg(db)), 1;
      sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    // 100,000 do-not-disturb entries, some of them queued contacts' numbers.
    sqlite3_prepare_v2(db, "INSERT INTO dnd_numbers (agent_uuid, phone, created_at) VALUES (?1, ?2, ?3)", -1,
                       &ins, nullptr);
    for (int i = 0; i < 100'000; ++i) {
      char phone[24];
      std::snprintf(phone, sizeof phone, "+9198%08d",
                    static_cast<int>(rng() % static_cast<uint64_t>(contacts * 4)));
      const std::string agent = agent_name(static_cast<int>(rng() % (kCampaigns * kAgents)));
      sqlite3_bind_text(ins, 1, agent.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(ins, 2, phone, -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(ins, 3, kNow - 1000);
      sqlite3_step(ins);  // a repeated (agent, phone) is refused by the unique index: fine
      sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    exec(db, "COMMIT");
    exec(db, "ANALYZE");
    sqlite3_close(db);
  }
  std::printf("seeded %d contacts (%d campaigns x %d agents) + 100000 DND entries in %.1f s\n", contacts,
              kCampaigns, kAgents, us_since(t_seed) / 1e6);

  // 1. next_due alone: a random (campaign, agent), now.
  DialerQueue& q = st.dialer_queue();
  std::mt19937 rng(7);
  std::vector<double> next_us, earliest_us;
  for (int i = 0; i < picks; ++i) {
    const int c = 1 + static_cast<int>(rng() % kCampaigns);
    const std::string agent = agent_name((c - 1) * kAgents + static_cast<int>(rng() % kAgents));
    auto t = Steady::now();
    auto r = q.next_due(c, agent, kNow);
    next_us.push_back(us_since(t));
    if (!r || !*r) return std::fprintf(stderr, "next_due found nothing\n"), 1;
    t = Steady::now();
    auto e = q.earliest_due(c, agent);
    earliest_us.push_back(us_since(t));
    if (!e || !*e) return 1;
  }
  report("DialerQueue::next_due (1 probe)", next_us);
  report("DialerQueue::earliest_due", earliest_us);

  // 2. The dialler's decision per pick: one pass with one free line (DND, zone, cap checks, the attempt
  //    committed, the call handed over), then the call's end (attempt closed, contact finished).
  Config cfg;
  for (int a = 0; a < kCampaigns * kAgents; ++a) {
    AgentConfig ag;
    ag.agent_uuid = agent_name(a);
    ag.active = true;
    cfg.agents.push_back(ag);
  }
  TimeZones zones;
  BenchCalls calls;
  ManualTimer* timer = nullptr;
  std::function<void()> fire;
  DialerContext ctx;
  ctx.clock = &clock;
  ctx.store = &st;
  ctx.calls = &calls;
  ctx.zones = &zones;
  ctx.timer = [&](std::function<void()> f) -> Result<std::unique_ptr<CallTimer>> {
    fire = std::move(f);
    auto t = std::make_unique<ManualTimer>();
    timer = t.get();
    return std::unique_ptr<CallTimer>(std::move(t));
  };
  auto dialer = Dialer::create(std::move(ctx));
  if (!dialer) return std::fprintf(stderr, "%s\n", dialer.error().message.c_str()), 1;
  (*dialer)->set_config(&cfg);
  if (auto s = (*dialer)->start(); !s) return 1;
  std::vector<double> pass_us, end_us, pass_cpu_us;
  int64_t decisions_before = 0;
  for (int i = 0; i < picks; ++i) {
    clock.advance_ms(10);
    const double cpu0 = thread_cpu_us();
    auto t = Steady::now();
    fire();
    pass_us.push_back(us_since(t));
    pass_cpu_us.push_back(thread_cpu_us() - cpu0);
    if (calls.live.empty()) return std::fprintf(stderr, "pass %d placed no call\n", i), 1;
    CallRecord rec;
    rec.call_id = *calls.live.front().call_id;
    rec.status = "picked";
    rec.campaign_id = calls.live.front().campaign_id;
    calls.live.clear();
    t = Steady::now();
    calls.listener(rec);
    end_us.push_back(us_since(t));
  }
  const DialerCounters& n = (*dialer)->counters();
  const int64_t decisions = n.placed + n.deferred_window + n.deferred_cap + n.dnd - decisions_before;
  report("Dialer pass placing one call (full decision)", pass_us);
  report("  the same, this thread's CPU time", pass_cpu_us);
  report("Dialer: a call's end (attempt closed)", end_us);
  std::printf(
      "passes %d: placed %lld, deferred (hours) %lld, deferred (cap) %lld, dnd %lld; %.2f decisions/pass\n",
      picks, static_cast<long long>(n.placed), static_cast<long long>(n.deferred_window),
      static_cast<long long>(n.deferred_cap), static_cast<long long>(n.dnd),
      static_cast<double>(decisions) / picks);
  (void)timer;
  return 0;
}
