// Post-call analysis: the loop's own CPU time per analysed call — job pick, prompt and schema build, reply
// parse and type checks, the result transaction (call update + outbox record + job close, a callback row for
// every fourth call) — with an in-process model that answers at once, so the model's time is excluded.
//
//   analysis_bench [calls]   (default 2000)
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "osvi/analysis/analysis.hpp"
#include "osvi/base/log.hpp"
#include "osvi/clock.hpp"
#include "osvi/store/store.hpp"
#include "test_support.hpp"

using namespace osvi;
using namespace osvi::daemon;
using Steady = std::chrono::steady_clock;

namespace {

// This thread's CPU time: on a shared machine the wall-clock tail is mostly other processes' time slices.
double thread_cpu_us() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

void report(const char* what, std::vector<double> v) {
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  auto pct = [&](double p) {
    return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
  };
  std::printf("%-34s p50 %7.1f us  p99 %7.1f us  mean %7.1f us  max %8.1f us  (n=%zu)\n", what, pct(0.5),
              pct(0.99), sum / static_cast<double>(v.size()), v.back(), v.size());
}

class ManualTimer final : public CallTimer {
 public:
  void arm(int64_t) override {}
};

class NoCalls final : public CallService {
 public:
  Result<std::string> place_call(const PlaceCallRequest&) override { return make_error("no", -ENODEV); }
  size_t idle_lines() const override { return 0; }
  int add_finished_listener(CallFinishedListener) override { return 1; }
  void remove_finished_listener(int) override {}
};

// The model: every chat request answered with the canned reply on the bench's next turn (never from inside
// chat(), as the Upstream contract says).
class InstantModel final : public net::Upstream {
 public:
  std::deque<std::function<void()>> queue;
  size_t requests = 0;
  net::RequestId transcribe(net::SttRequest, net::SttCallbacks) override { return 0; }
  net::RequestId speak(net::TtsRequest, net::TtsCallbacks) override { return 0; }
  net::RequestId embed(net::EmbeddingsRequest, net::EmbeddingsCallbacks) override { return 0; }
  net::RequestId chat(net::ChatRequest request, net::ChatCallbacks cb) override {
    const bool callback = requests++ % 4 == 0;
    std::string reply =
        R"({"summary":"The callee confirmed the order and asked about delivery times; the agent explained the options.",
        "data":{"name":"Asha Rao","order_total":4520.5,"confirmed":true,"delivery_date":"2026-12-09",
        "city":"Pune","notes":null},"tags":["interested","order"],
        "callback":{"required":)" +
        std::string(callback ? "true" : "false") +
        R"(,"requested_text":"after six tomorrow","local_time":"2026-12-03T18:00"},
        "structured_output":{"outcome":"confirmed","items":3,"follow_up":false},"opt_out":{"requested":false}})";
    (void)request;
    queue.push_back([cb = std::move(cb), reply = std::move(reply)] {
      cb.on_done(net::ChatResult{reply, {}, "stop"});
    });
    return requests;
  }
  void cancel(net::RequestId) override {}
  bool breaker_open(std::string_view) const override { return false; }
  std::vector<net::BreakerState> breakers() const override { return {}; }
};

}  // namespace

int main(int argc, char** argv) {
  const int calls = argc > 1 ? std::atoi(argv[1]) : 2000;
  log::set_level(log::Level::warning);
  test::TempDir dir;
  SystemClock clock;
  auto store = Store::open(StoreOptions{dir.file("osvi.db"), 5000, true}, clock);
  if (!store) {
    std::fprintf(stderr, "store: %s\n", store.error().message.c_str());
    return 1;
  }
  // Finished calls of a typical length: 16 turns, a per-call extraction list, overrides.
  for (int i = 0; i < calls; ++i) {
    CallRecord r;
    char id[40];
    std::snprintf(id, sizeof id, "0190a1b2-0000-7000-8000-%012d", i);
    r.call_id = id;
    r.agent_uuid = "agent_a";
    r.phone_number = "+9198765" + std::to_string(10000 + i);
    r.person_name = "Asha";
    r.data_extraction = R"([{"key":"city","description":"the callee's city","required":false},
                            {"key":"notes","description":"anything else","output_format":"free text"}])";
    r.call_config_overrides = R"({"enable_callback":true})";
    if (!(*store)->calls().insert(r)) return 1;
    for (int t = 0; t < 16; ++t) {
      TranscriptTurn turn{id,
                          t,
                          t % 2 ? "user" : "agent",
                          t % 2 ? "Yes, I would like the delivery next week, preferably in the evening."
                                : "Thank you. Can you confirm the order total and the address for delivery?",
                          {},
                          {},
                          false,
                          {}};
      if (!(*store)->calls().add_transcript_turn(turn)) return 1;
    }
    r.status = "picked";
    r.ended_at_ms = clock.wall_ms() - (calls - i);
    if (!finish_call_and_enqueue(**store, r)) return 1;
  }

  Config config;
  AgentConfig a;
  a.agent_uuid = "agent_a";
  a.analysis.enabled = true;
  a.analysis.prompt = "Say whether the order was confirmed.";
  a.analysis.data_extraction = {{"name", FieldType::text, "the callee's full name", true},
                                {"order_total", FieldType::number, "in rupees", true},
                                {"confirmed", FieldType::boolean, "", true},
                                {"delivery_date", FieldType::date, "", false}};
  a.analysis.tags = {{1, "interested", "#00aa00"}, {2, "order", "#0000aa"}, {3, "wrong-number", "#aa0000"}};
  a.analysis.output_schema_json =
      R"({"type":"object","properties":{"outcome":{"type":"string","enum":["confirmed","declined"]},)"
      R"("items":{"type":"integer"},"follow_up":{"type":"boolean"}},"required":["outcome"]})";
  config.agents.push_back(a);
  config.site.time_zone = "Asia/Kolkata";

  InstantModel model;
  NoCalls no_calls;
  TimeZones zones;
  AnalysisContext ctx;
  ctx.clock = &clock;
  ctx.store = store->get();
  ctx.upstream = &model;
  ctx.calls = &no_calls;
  ctx.zones = &zones;
  ctx.timer = [](std::function<void()>) -> Result<std::unique_ptr<CallTimer>> {
    return std::unique_ptr<CallTimer>(new ManualTimer);
  };
  ctx.phone_zones = [](std::string_view) { return std::vector<std::string>{"Asia/Kolkata"}; };
  auto service = AnalysisService::create(std::move(ctx));
  if (!service) return 1;
  (*service)->set_config(&config);
  int done = 0;
  (*service)->add_done_listener([&](const std::string&) { ++done; });

  // Each turn of the bench's loop is one reply handled: its check and result transaction, then (inside the
  // same turn, as on the daemon's loop) the next job's pick and request build.
  std::vector<double> cpu, wall;
  const double cpu0 = thread_cpu_us();
  const auto wall0 = Steady::now();
  if (!(*service)->start()) return 1;
  while (!model.queue.empty()) {
    auto next = std::move(model.queue.front());
    model.queue.pop_front();
    const double c = thread_cpu_us();
    const auto w = Steady::now();
    next();
    cpu.push_back(thread_cpu_us() - c);
    wall.push_back(std::chrono::duration<double, std::micro>(Steady::now() - w).count());
  }
  const double total_cpu = thread_cpu_us() - cpu0;
  const double total_wall = std::chrono::duration<double, std::micro>(Steady::now() - wall0).count();
  auto counts = (*store)->post_call().counts();
  std::printf("analysed %d calls (%zu model requests), pending after: %lld\n", done, model.requests,
              counts ? static_cast<long long>(counts->analysis_pending) : -1LL);
  report("loop CPU per reply turn", cpu);
  report("wall per reply turn", wall);
  std::printf("%-34s %7.1f us CPU, %7.1f us wall per analysed call (start() included)\n", "overall",
              total_cpu / done, total_wall / done);
  return done == calls ? 0 : 1;
}
