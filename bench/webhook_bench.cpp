// Webhook dispatcher: deliveries/s to a loopback receiver (another thread) with one destination and with
// several, and the memory the dispatcher costs with 10,000 deliveries pending.
//
//   ./build/bench/webhook_bench [deliveries] [destinations] [body_bytes]
#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "osvi/net/poll_driver.hpp"
#include "osvi/store/store.hpp"
#include "osvi/webhooks/dispatcher.hpp"
#include "test_support.hpp"
#include "webhook_receiver.hpp"

using namespace osvi;
using namespace osvi::daemon;

namespace {

long rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return -1;
}

size_t heap_bytes() {
  return mallinfo2().uordblks;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void enqueue(Store& store, const test::WebhookReceiver& rx, int from, int count, int destinations,
             const std::string& body, int64_t now_ms) {
  (void)store.database().transaction([&]() -> Status {
    for (int n = from; n < from + count; ++n) {
      WebhookDelivery d;
      char id[40];
      std::snprintf(id, sizeof id, "msg_%026d", n);
      d.webhook_id = id;
      d.call_id = "call-" + std::to_string(n);
      d.destination = "dest-" + std::to_string(n % destinations);
      d.url = rx.url("/hook");
      d.body = body;
      d.expires_at_ms = now_ms + 86'400'000;
      if (auto r = store.webhooks().enqueue(d); !r) return r.error();
    }
    return {};
  });
}

Config config(const std::string& state_dir, int in_flight) {
  Config cfg;
  cfg.state_dir = state_dir;
  cfg.webhooks.allowed_targets = {"127.0.0.1/32"};
  cfg.webhooks.max_in_flight = in_flight;
  cfg.webhooks.initial_backoff_ms = 60'000;
  cfg.webhooks.signing_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  return cfg;
}

int run(int deliveries, int destinations, const std::string& body) {
  test::TempDir dir;
  SystemClock clock;
  StoreOptions so;
  so.path = dir.file("osvi.db");
  auto store = Store::open(so, clock);
  auto driver = net::PollDriver::create();
  test::WebhookReceiver rx;
  if (!store || !driver || !rx.start()) return 1;
  enqueue(**store, rx, 0, deliveries, destinations, body, clock.wall_ms());
  auto d = webhooks::Dispatcher::create((*store)->webhooks(), clock, [&] { return &(*driver)->client(); },
                                        config(dir.path(), destinations));
  if (!d) return 1;
  const double t0 = now_s();
  (*d)->start();
  bool ok = (*driver)->run_until([&] { return (*d)->stats().delivered >= deliveries; }, 600'000);
  const double dt = now_s() - t0;
  std::printf("%-14d %-13d %-9.2f %-12.0f %s\n", deliveries, destinations, dt, deliveries / dt,
              ok && rx.count() == static_cast<size_t>(deliveries) ? "all delivered" : "INCOMPLETE");
  return ok ? 0 : 1;
}

// 10,000 pending behind a receiver that refuses connections: what creating and running the dispatcher adds.
int memory(int pending, const std::string& body) {
  test::TempDir dir;
  SystemClock clock;
  StoreOptions so;
  so.path = dir.file("osvi.db");
  auto store = Store::open(so, clock);
  auto driver = net::PollDriver::create();
  test::WebhookReceiver rx;
  if (!store || !driver || !rx.start()) return 1;
  rx.stop();  // connection refused from here on
  enqueue(**store, rx, 0, pending, 1, body, clock.wall_ms());
  (*driver)->run_for(10);  // curl set up before the baseline
  malloc_trim(0);
  const long rss0 = rss_kib();
  const size_t heap0 = heap_bytes();
  auto cfg = config(dir.path(), 16);
  cfg.webhooks.initial_backoff_ms = 1;  // retry the head as fast as it fails: the busiest idle there is
  cfg.webhooks.max_backoff_ms = 1;
  auto d =
      webhooks::Dispatcher::create((*store)->webhooks(), clock, [&] { return &(*driver)->client(); }, cfg);
  if (!d) return 1;
  (*d)->start();
  (*driver)->run_for(2000);
  const long rss1 = rss_kib();
  const size_t heap1 = heap_bytes();
  auto counts = (*store)->webhooks().counts();
  std::printf("pending %lld, attempts in 2 s %lld (receiver down)\n",
              counts ? static_cast<long long>(counts->pending) : -1LL,
              static_cast<long long>((*d)->stats().attempts));
  std::printf("dispatcher running over them: heap +%.1f KiB, RSS +%ld KiB (RSS %ld KiB)\n",
              (static_cast<double>(heap1) - static_cast<double>(heap0)) / 1024.0, rss1 - rss0, rss1);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int deliveries = argc > 1 ? std::atoi(argv[1]) : 5000;
  const int destinations = argc > 2 ? std::atoi(argv[2]) : 16;
  const size_t body_bytes = argc > 3 ? static_cast<size_t>(std::atol(argv[3])) : 1024;
  std::string body = "{\"pad\":\"" + std::string(body_bytes > 11 ? body_bytes - 11 : 0, 'x') + "\"}";
  std::printf("%-14s %-13s %-9s %-12s\n", "deliveries", "destinations", "seconds", "deliveries/s");
  int rc = run(deliveries, 1, body);
  rc |= run(deliveries, destinations, body);
  rc |= memory(10'000, body);
  return rc;
}
