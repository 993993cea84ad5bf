// GET /v1/stats at 1,000,000 calls: p50/p99/max of the service and of the whole HTTP request for days=7, 14,
// 30, 90 (an all-agents token and a one-agent token), and what the rollup triggers add to a call's writes.
//
//   stats_bench [database] [requests_per_case] [write_calls]   (defaults: a temp file, 300, 2000; 0 write
//   calls: the reads only)
//
// A database path that exists is used as it is (built by an earlier run); one that does not is built there
// and kept. The build goes through CallsRepo::insert, 10,000 calls per transaction, so the rollups are the
// triggers' work, not a backfill: 1,000,000 calls over the 365 days before "now" (2026-12-03T12:00+05:30, a
// fixed clock), eight agents (agent_0 takes about a third), every status, 70 % outbound, more calls in office
// hours, 1 % test calls. The box's zone is Asia/Kolkata.
//
// Reads: "service" is StatsService::compute, what the handler calls; "http" is the whole request through the
// real HttpServer and Api on a thread of their own (ServedHttp, as the API tests), sent by libcurl over
// loopback (a new connection per request), JSON included.
//
// Writes: per call, an insert (in_progress) and the final update (picked, 2 minutes) each in a transaction of
// its own, as the engine writes them, first with the triggers and then with them dropped (the same SQL put
// back afterwards), alternating three rounds each; the calls written are removed again. Last, the file is
// taken back to schema version 7 and opened: the time of migration 8, its backfill included.
#include <sqlite3.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "daemon_process.hpp"
#include "osvi/api/api.hpp"
#include "osvi/base/time_zone.hpp"
#include "osvi/clock.hpp"
#include "osvi/config/config.hpp"
#include "osvi/stats/stats_service.hpp"
#include "osvi/store/stats.hpp"
#include "osvi/store/store.hpp"
#include "served_http.hpp"
#include "test_support.hpp"

using namespace osvi;
using namespace osvi::daemon;
using Steady = std::chrono::steady_clock;

namespace {

constexpr int kAgents = 8;
constexpr int64_t kCalls = 1'000'000;
constexpr int64_t kDayMs = 86'400'000;
constexpr int64_t kNow = 1'796'279'400'000;  // 2026-12-03T12:00:00+05:30
constexpr int64_t kIst = 19'800'000;         // +05:30 in ms
constexpr const char* kAdminToken = "BenchToken012345";
constexpr const char* kAgentToken = "BenchAgent012345";

using test::Rng;

std::string numbered(const char* prefix, int64_t i) {
  char b[64];
  std::snprintf(b, sizeof b, "%s%012lld", prefix, static_cast<long long>(i));
  return b;
}

std::string agent_of(int a) {
  std::string s = "agent_";
  s += std::to_string(a);
  return s;
}

CallRecord random_call(Rng& rng, int64_t i, int64_t created_ms) {
  CallRecord c;
  c.call_id = numbered("0190a1b2-c3d4-7e5f-8a9b-", i);
  const int a = rng.below(3) == 0 ? 0 : rng.below(kAgents);
  c.agent_uuid = agent_of(a);
  c.agent_name = "Agent " + std::to_string(a);
  c.phone_number = "+9198" + std::to_string(10'000'000 + rng.below(90'000'000));
  c.call_type = rng.below(10) < 7 ? "outbound" : "inbound";
  c.created_at_ms = created_ms;
  const int r = rng.below(100);
  c.status = r < 55 ? "picked" : r < 75 ? "not_picked" : r < 83 ? "failed" : r < 90 ? "busy" : "voicemail";
  if (c.status == "picked" || c.status == "voicemail") {
    c.call_picked_at_ms = created_ms + 5000 + rng.below(15000);
    c.duration_seconds = 20 + rng.below(400);
    c.ended_at_ms = *c.call_picked_at_ms + c.duration_seconds * 1000;
  }
  if (rng.below(100) == 0) c.execution_mode = "test";
  c.updated_at_ms = created_ms;
  return c;
}

// A local (IST) time of day weighted towards office hours, as ms since local midnight.
int64_t time_of_day(Rng& rng) {
  const int hour = rng.below(3) > 0 ? 9 + rng.below(10) : rng.below(24);
  return int64_t{hour} * 3'600'000 + rng.below(3'600'000);
}

bool build(Store& store) {
  std::vector<AgentRecord> agents;
  for (int a = 0; a < kAgents; ++a)
    agents.push_back({0, agent_of(a), "Agent " + std::to_string(a), "voice", true, false, "{}", "", 0, 0});
  if (!store.agents().sync(agents).ok()) return false;
  Rng rng;
  // Local midnights of the 365 days ending today, and calls_per_day on each (sorted within the day).
  const int64_t today_midnight = (kNow + kIst) / kDayMs * kDayMs - kIst;
  const int64_t first_midnight = today_midnight - 364 * kDayMs;
  const int64_t per_day = kCalls / 365 + 1;
  int64_t i = 0;
  const auto t0 = Steady::now();
  for (int64_t day = 0; day < 365 && i < kCalls; ++day) {
    std::vector<int64_t> times;
    for (int64_t k = 0; k < per_day && i + static_cast<int64_t>(times.size()) < kCalls; ++k)
      times.push_back(first_midnight + day * kDayMs + time_of_day(rng));
    std::sort(times.begin(), times.end());
    auto tx = store.database().begin();
    if (!tx) return false;
    for (int64_t t : times) {
      if (t > kNow) t = kNow - rng.below(3'600'000);
      if (!store.calls().insert(random_call(rng, i++, t)).ok()) return false;
    }
    if (!tx->commit().ok()) return false;
    if (day % 73 == 72)
      std::fprintf(stderr, "  built %lld calls (%.0f s)\n", static_cast<long long>(i),
                   std::chrono::duration<double>(Steady::now() - t0).count());
  }
  std::fprintf(stderr, "built %lld calls in %.1f s\n", static_cast<long long>(i),
               std::chrono::duration<double>(Steady::now() - t0).count());
  return true;
}

struct Figures {
  double p50 = 0, p99 = 0, max = 0;
};

Figures figures(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) {
    return ms[std::min(ms.size() - 1, static_cast<size_t>(q * static_cast<double>(ms.size())))];
  };
  return {at(0.50), at(0.99), ms.back()};
}

double since_ms(Steady::time_point t) {
  return std::chrono::duration<double, std::milli>(Steady::now() - t).count();
}

// This thread's CPU time in ms: what a request costs apart from waiting for a core on a loaded machine.
double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

std::unique_ptr<Store> open_store(const std::string& path, const Clock& clock) {
  StoreOptions o{path};
  o.quick_check = false;  // the bench reopens a large file several times
  auto s = Store::open(o, clock);
  if (!s) {
    std::fprintf(stderr, "cannot open %s: %s\n", path.c_str(), s.error().message.c_str());
    return nullptr;
  }
  return std::move(*s);
}

// sqlite3 on its own connection, for the triggers' DDL between rounds (the store is closed then).
bool raw_exec(const std::string& path, const std::string& sql, std::vector<std::string>* rows = nullptr) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) return false;
  auto cb = [](void* out, int, char** values, char**) {
    if (out != nullptr) static_cast<std::vector<std::string>*>(out)->emplace_back(values[0] ? values[0] : "");
    return 0;
  };
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), cb, rows, &err);
  if (rc != SQLITE_OK) std::fprintf(stderr, "%s: %s\n", sql.c_str(), err ? err : "?");
  sqlite3_free(err);
  sqlite3_close(db);
  return rc == SQLITE_OK;
}

// Per call: microseconds of the insert and of the final update, each its own transaction.
struct WriteCost {
  double insert_us = 0, update_us = 0;
};

WriteCost write_round(Store& store, Rng& rng, int64_t first_id, int n) {
  std::vector<double> ins, upd;
  std::vector<std::string> ids;
  for (int k = 0; k < n; ++k) {
    CallRecord c = random_call(rng, first_id + k, kNow - rng.below(3'600'000));
    c.execution_mode = "prod";
    c.status = "in_progress";
    c.duration_seconds = 0;
    auto t = Steady::now();
    if (!store.database().transaction([&] { return store.calls().insert(c); }).ok()) std::abort();
    ins.push_back(since_ms(t) * 1000);
    c.status = "picked";
    c.duration_seconds = 120;
    t = Steady::now();
    if (!store.database().transaction([&] { return store.calls().update(c); }).ok()) std::abort();
    upd.push_back(since_ms(t) * 1000);
    ids.push_back(c.call_id);
  }
  for (const std::string& id : ids) (void)store.calls().remove(id);
  return {figures(ins).p50, figures(upd).p50};
}

}  // namespace

int main(int argc, char** argv) {
  test::TempDir tmp;
  const std::string path = argc > 1 ? argv[1] : tmp.file("stats.db");
  const int requests = argc > 2 ? std::atoi(argv[2]) : 300;
  const int write_calls = argc > 3 ? std::atoi(argv[3]) : 2000;
  ManualClock clock(kNow);
  const bool existed = std::filesystem::exists(path);
  auto store = open_store(path, clock);
  if (!store) return 1;
  if (!existed && !build(*store)) {
    std::fprintf(stderr, "building the database failed\n");
    return 1;
  }
  auto total = store->calls().count();
  std::printf("database %s: %lld calls, %.0f MB\n", path.c_str(), static_cast<long long>(total ? *total : -1),
              static_cast<double>(std::filesystem::file_size(path)) / 1e6);

  // --- Reads
  // ------------------------------------------------------------------------------------------------
  TimeZones zones;
  StatsService service(*store, zones, clock);
  Config config;  // site.time_zone Asia/Kolkata
  std::vector<ApiToken> tokens = {{kAdminToken, {}, true}, {kAgentToken, {"agent_3"}, false}};
  ApiContext ctx;
  ctx.config = &config;
  ctx.tokens = &tokens;
  ctx.store = store.get();
  ctx.clock = &clock;
  ctx.stats = &service;
  Api api(ctx);
  test::ServedHttp served;
  net::HttpServerOptions options;
  options.port = 0;
  if (!served
           .start(options,
                  [&](net::HttpRequest& req, net::HttpReply reply) { api.handle(req, std::move(reply)); })
           .ok())
    return 1;
  const std::string base = "http://127.0.0.1:" + std::to_string(served.port()) + "/v1/stats?days=";

  std::printf("\n%-34s %9s %9s %9s\n", "GET /v1/stats", "p50 ms", "p99 ms", "max ms");
  for (const char* who : {"all agents", "one agent"}) {
    const bool admin = std::string(who) == "all agents";
    for (int days : {7, 14, 30, 90}) {
      std::vector<double> svc, cpu, http;
      StatsQuery q{days, admin ? std::vector<std::string>{} : std::vector<std::string>{"agent_3"},
                   "Asia/Kolkata"};
      int64_t calls = 0;
      for (int k = 0; k < requests + 10; ++k) {
        const bool keep = k >= 10;  // the first ten warm the caches
        Result<DashboardStats> r = make_error("unset", -1);
        served.locked([&] {
          const auto t = Steady::now();
          const double c = thread_cpu_ms();
          r = service.compute(q);
          if (keep) {
            svc.push_back(since_ms(t));
            cpu.push_back(thread_cpu_ms() - c);
          }
        });
        if (!r) return 1;
        calls = r->cards.total_calls;
      }
      for (int k = 0; k < requests + 10; ++k) {
        const auto t = Steady::now();
        auto reply =
            test::http_request("GET", base + std::to_string(days), admin ? kAdminToken : kAgentToken);
        const double ms = since_ms(t);
        if (reply.status != 200) {
          std::fprintf(stderr, "HTTP %ld: %s\n", reply.status, reply.body.c_str());
          return 1;
        }
        if (k >= 10) http.push_back(ms);
      }
      const Figures s = figures(svc), c = figures(cpu), h = figures(http);
      std::printf("%-10s days=%-2d service (%7lld calls) %7.2f %9.2f %9.2f\n", who, days,
                  static_cast<long long>(calls), s.p50, s.p99, s.max);
      std::printf("%-10s days=%-2d service, CPU time         %7.2f %9.2f %9.2f\n", who, days, c.p50, c.p99,
                  c.max);
      std::printf("%-10s days=%-2d http                   %7.2f %9.2f %9.2f\n", who, days, h.p50, h.p99,
                  h.max);
    }
  }
  served.stop();

  // Where the time of the largest window goes: the repository's reads alone (CPU ms, p50 of `requests`).
  {
    StatsRepo repo(store->database());
    const int64_t to = (kNow + kIst) / kDayMs * kDayMs - kIst + kDayMs, from = to - 90 * kDayMs;
    auto part = [&](const char* what, const std::function<size_t()>& fn) {
      std::vector<double> cpu;
      size_t rows = 0;
      for (int k = 0; k < requests; ++k) {
        const double c = thread_cpu_ms();
        rows = fn();
        cpu.push_back(thread_cpu_ms() - c);
      }
      std::printf("days=90 %-40s %6zu rows %7.2f ms CPU\n", what, rows, figures(cpu).p50);
    };
    part("StatsRepo::buckets (all agents, quarters)", [&] { return repo.buckets(from, to)->size(); });
    part("StatsRepo::hours (all agents, phase 30 min)",
         [&] { return repo.hours(1'800'000, from, to)->size(); });
    part("StatsRepo::agents", [&] { return repo.agents(from, to)->size(); });
    part("StatsRepo::agent_buckets (agent_3)",
         [&] { return repo.agent_buckets("agent_3", from, to)->size(); });
    part("StatsRepo::chat (all agents)", [&] { return size_t(repo.chat(from, to, "")->total); });
  }
  if (write_calls <= 0) return 0;  // reads only

  // --- Writes
  // -----------------------------------------------------------------------------------------------
  std::vector<std::string> triggers;
  store.reset();
  if (!raw_exec(path, "SELECT sql FROM sqlite_schema WHERE type = 'trigger' AND name LIKE 'call_stats_%'",
                &triggers) ||
      triggers.size() != 4) {
    std::fprintf(stderr, "expected the 4 call_stats triggers, found %zu\n", triggers.size());
    return 1;
  }
  std::vector<double> with_ins, with_upd, without_ins, without_upd;
  Rng rng;
  int64_t next_id = 5'000'000;
  for (int round = 0; round < 6; ++round) {
    const bool with = round % 2 == 0;
    if (!with && !raw_exec(path,
                           "DROP TRIGGER call_stats_insert; DROP TRIGGER call_stats_delete; "
                           "DROP TRIGGER call_stats_update_old; DROP TRIGGER call_stats_update_new"))
      return 1;
    store = open_store(path, clock);
    if (!store) return 1;
    const WriteCost c = write_round(*store, rng, next_id, write_calls);
    next_id += write_calls;
    (with ? with_ins : without_ins).push_back(c.insert_us);
    (with ? with_upd : without_upd).push_back(c.update_us);
    store.reset();
    if (!with) {
      std::string sql;
      for (const std::string& t : triggers) sql += t + ";\n";
      if (!raw_exec(path, sql)) return 1;
    }
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf("\nper call write, median of 3 rounds x %d calls (p50 us)   insert    update\n", write_calls);
  std::printf("with the rollup triggers                                 %8.1f  %8.1f\n", median(with_ins),
              median(with_upd));
  std::printf("without                                                  %8.1f  %8.1f\n", median(without_ins),
              median(without_upd));

  // --- Migration 8's backfill: the file taken back to version 7, then opened
  // ---------------------------------
  if (!raw_exec(
          path,
          "DROP TRIGGER call_stats_insert; DROP TRIGGER call_stats_delete; "
          "DROP TRIGGER call_stats_update_old; DROP TRIGGER call_stats_update_new; "
          "DROP TABLE call_stats_quarter; DROP TABLE call_stats_hour; DROP TABLE call_stats_agent_quarter; "
          "DROP TABLE call_stats_agent_hour; "
          "DROP TABLE call_stats_agent_day; DROP INDEX chat_sessions_created; "
          "DROP INDEX chat_sessions_agent_created; PRAGMA user_version = 7"))
    return 1;
  const auto t = Steady::now();
  store = open_store(path, clock);
  if (!store || store->database().open_report().schema_before != 7) return 1;
  std::printf("\nmigration 8 (backfill of the rollups) at %lld calls: %.1f s\n",
              static_cast<long long>(total ? *total : -1), since_ms(t) / 1000);
  return 0;
}
