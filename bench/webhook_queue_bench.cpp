// Queueing post-call webhooks from a backlog: WebhookService::run_slice over thousands of finished, analysed
// calls (a crash or an outage between analysis and queueing) — how long one slice holds the loop, and the
// cost per call of building its deliveries and committing them with its job's mark.
//
//   webhook_queue_bench [calls]   (default 10000)
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "osvi/base/log.hpp"
#include "osvi/clock.hpp"
#include "osvi/store/store.hpp"
#include "osvi/store/unit_of_work.hpp"
#include "osvi/webhooks/webhook_service.hpp"
#include "test_support.hpp"

using namespace osvi;
using namespace osvi::daemon;
using Steady = std::chrono::steady_clock;

namespace {

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
  std::printf("%-40s p50 %8.1f us  p99 %8.1f us  max %8.1f us  (n=%zu)\n", what, pct(0.5), pct(0.99),
              v.back(), v.size());
}

// The bench runs the slices by hand.
class ManualTimer final : public CallTimer {
 public:
  void arm(int64_t at_us) override { at = at_us; }
  int64_t at = -1;
};

}  // namespace

int main(int argc, char** argv) {
  const int calls = argc > 1 ? std::atoi(argv[1]) : 10000;
  log::set_level(log::Level::warning);
  test::TempDir dir;
  SystemClock clock;
  StoreOptions so;
  so.path = dir.file("osvi.db");
  auto store = Store::open(so, clock);
  if (!store.ok()) {
    std::fprintf(stderr, "store: %s\n", store.error().message.c_str());
    return 1;
  }
  Store& st = **store;

  // A realistic call: a 12-turn transcript, additional data, an analysis result, a webhook_url.
  const Steady::time_point seed_start = Steady::now();
  for (int i = 0; i < calls; ++i) {
    CallRecord c;
    char id[64];
    std::snprintf(id, sizeof id, "0190aaaa-0000-7000-8000-%012d", i);
    c.call_id = id;
    c.agent_uuid = "agent_a";
    c.agent_name = "Front desk";
    c.phone_number = "+919876543210";
    c.person_name = "Ravi Kumar";
    c.additional_data = R"({"crm_id":"L42","campaign":"spring","branch":"Pune"})";
    c.webhook_url = "https://hooks.example.com/calls";
    if (!st.calls().insert(c).ok()) return 1;
    for (int t = 0; t < 12; ++t) {
      TranscriptTurn turn;
      turn.call_id = c.call_id;
      turn.seq = t + 1;
      turn.role = t % 2 ? "user" : "agent";
      turn.text =
          "A sentence of about this length, said by one side of the call, number " + std::to_string(t);
      if (!st.calls().add_transcript_turn(turn).ok()) return 1;
    }
    c.status = "picked";
    c.duration_seconds = 95;
    c.call_picked_at_ms = clock.wall_ms();
    c.ended_at_ms = clock.wall_ms();
    c.summary = "The caller wants a demo on Friday morning and asked for a brochure by email.";
    c.data_captured = R"({"email":"ravi@example.com","confirmed":true,"slot":"2026-06-05T10:00:00+05:30"})";
    c.structured_output = R"({"appointment":{"day":"friday","time":"10:00"},"interest":"high"})";
    if (!finish_call_and_enqueue(st, c).ok()) return 1;
    if (!st.post_call().finish_analysis(c.call_id, "done", std::nullopt).ok()) return 1;
  }
  const double seed_s = us_since(seed_start) / 1e6;

  Config config;
  AgentConfig a;
  a.agent_uuid = "agent_a";
  a.name = "Front desk";
  a.analysis.enabled = true;
  IntegrationConfig crm;
  crm.name = "CRM";
  crm.url = "https://crm.example.com/leads/{{crm_id}}/calls";
  crm.headers = {{"Authorization", "Bearer x"}};
  IntegrationConfig sheet;
  sheet.name = "Sheet";
  sheet.url = "https://sheets.example.com/hook";
  sheet.body_auto = false;
  sheet.body_template =
      R"({"row":["{{call_log_id}}","{{person_name}}","{{call_summary}}","{{data_capture}}"]})";
  a.analysis.integrations = {crm, sheet};
  config.agents.push_back(a);

  auto timer = std::make_unique<ManualTimer>();
  ManualTimer* t = timer.get();
  WebhookContext ctx;
  ctx.clock = &clock;
  ctx.store = &st;
  ctx.timer = [&timer](std::function<void()>) -> Result<std::unique_ptr<CallTimer>> {
    return std::unique_ptr<CallTimer>(std::move(timer));
  };
  auto svc = WebhookService::create(std::move(ctx));
  if (!svc.ok()) return 1;
  (*svc)->set_config(&config);
  if (!(*svc)->start().ok()) return 1;

  std::vector<double> slice_wall, slice_cpu, per_call_cpu;
  size_t total = 0;
  const Steady::time_point all = Steady::now();
  while (t->at >= 0) {
    t->at = -1;
    const Steady::time_point w = Steady::now();
    const double c0 = thread_cpu_us();
    auto n = (*svc)->run_slice();
    const double cpu = thread_cpu_us() - c0;
    slice_wall.push_back(us_since(w));
    slice_cpu.push_back(cpu);
    if (!n.ok()) {
      std::fprintf(stderr, "slice: %s\n", n.error().message.c_str());
      return 1;
    }
    if (*n > 0) per_call_cpu.push_back(cpu / static_cast<double>(*n));
    total += *n;
  }
  const double all_s = us_since(all) / 1e6;
  std::printf(
      "%d calls seeded in %.1f s; %zu queued (%lld deliveries) in %.2f s = %.0f calls/s, %zu slices\n", calls,
      seed_s, total, static_cast<long long>((*svc)->counters().deliveries), all_s,
      static_cast<double>(total) / all_s, slice_wall.size());
  report("slice, wall", slice_wall);
  report("slice, this thread's CPU", slice_cpu);
  report("per call (slice CPU / calls in it)", per_call_cpu);
  return total == static_cast<size_t>(calls) ? 0 : 1;
}
