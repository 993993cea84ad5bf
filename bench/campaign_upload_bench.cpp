// POST /v1/campaigns/{id}/contacts with 10,000 contacts: the real HttpServer + Api + CampaignService on one
// loop thread over a store in a temp file, the request sent with libcurl from the main thread.
//
//   campaign_upload_bench [contacts] [runs]   (defaults 10000, 5)
//
// Each run uploads `contacts` distinct Indian numbers (phone, person_name, one prompt variable) with enqueue
// into a fresh campaign, so every run stores everything: normalisation, zone lookup, DND check, duplicate
// rule, 500-contact transactions. Printed per run: the request's wall time and the peak-RSS delta of the
// process across the request (VmHWM reset through /proc/self/clear_refs before it; the client's own body
// string is built before the reset, so the delta is the server side: parse tree, import, SQLite). The phone
// module is loaded by a warm-up upload first, as on a box that has imported before. Figures in
// bench/README.md.
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "osvi/api/api.hpp"
#include "osvi/base/time_zone.hpp"
#include "osvi/campaigns/campaigns.hpp"
#include "osvi/clock.hpp"
#include "osvi/config/config.hpp"
#include "osvi/net/http_server.hpp"
#include "osvi/store/store.hpp"
#include "test_support.hpp"

using namespace osvi;
using namespace osvi::daemon;

namespace {

long status_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(key, 0) == 0) return std::atol(line.c_str() + std::string(key).size());
  }
  return -1;
}

void reset_peak() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
}

std::string body(int contacts, int base) {
  std::string b = R"({"agent_uuid": "agent_a", "enqueue": true, "contacts": [)";
  for (int i = 0; i < contacts; ++i) {
    if (i) b += ',';
    const int n = base + i;
    b += R"({"phone": "9)" + std::to_string(800000000 + n) + R"(", "person_name": "Customer )" +
         std::to_string(n) + R"(", "plan": "Pro"})";
  }
  return b + "]}";
}

}  // namespace

int main(int argc, char** argv) {
  const int contacts = argc > 1 ? std::atoi(argv[1]) : 10000;
  const int runs = argc > 2 ? std::atoi(argv[2]) : 5;
  test::TempDir dir;
  SystemClock clock;
  auto store = Store::open(StoreOptions{dir.file("osvi.db")}, clock);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.error().message.c_str());
    return 1;
  }
  std::vector<AgentRecord> agents = {{0, "agent_a", "Alpha", "voice", true, false, "{}", "", 0, 0}};
  if (!(*store)->agents().sync(agents).ok()) return 1;
  Config config;
  AgentConfig a;
  a.agent_uuid = "agent_a";
  a.name = "Alpha";
  a.active = true;
  config.agents.push_back(a);
  std::vector<ApiToken> tokens = {ApiToken{"TokAll0123456789", {}, true}};
  TimeZones zones;
  CampaignService service(**store, zones);
  if (!service.sync(config).ok()) return 1;
  ApiContext ctx;
  ctx.config = &config;
  ctx.tokens = &tokens;
  ctx.store = store->get();
  ctx.clock = &clock;
  ctx.campaigns = &service;
  Api api(ctx);
  net::HttpServerOptions o;
  o.port = 0;
  o.max_body_bytes = 8 * 1024 * 1024;
  auto server = net::HttpServer::start(
      o, [&](net::HttpRequest& req, net::HttpReply reply) { api.handle(req, std::move(reply)); });
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.error().message.c_str());
    return 1;
  }
  std::atomic<bool> stop{false};
  std::thread loop([&] {
    while (!stop) {
      const int wait = static_cast<int>(std::min<uint64_t>((*server)->timeout_ms().value_or(10), 10));
      pollfd p{(*server)->poll_fd(), POLLIN, 0};
      poll(&p, 1, wait);
      (*server)->run();
    }
  });
  const std::string base = "http://127.0.0.1:" + std::to_string((*server)->port()) + "/v1/campaigns";
  auto post = [&](const std::string& url, const std::string& b) {
    return test::http_request("POST", url, "TokAll0123456789", b);
  };

  int ok = 0;
  std::printf("contacts %d, runs %d\n", contacts, runs);
  std::printf("run  time(ms)  contacts/s  VmRSS before(MB)  peak delta(MB)  accepted\n");
  std::vector<double> times, deltas;
  for (int run = 0; run <= runs; ++run) {  // run 0: warm-up (phone module, statement cache)
    const int id = run + 1;
    auto c = post(base, R"({"id": )" + std::to_string(id) + R"(, "name": "Bench )" + std::to_string(id) +
                            R"(", "agents": ["agent_a"]})");
    if (c.status != 201) {
      std::fprintf(stderr, "create: %ld %s\n", c.status, c.body.c_str());
      break;
    }
    const std::string b = body(run == 0 ? 100 : contacts, run * contacts);
    const std::string url = base + "/" + std::to_string(id) + "/contacts";
    reset_peak();
    const long before = status_kb("VmRSS:");
    const auto t0 = std::chrono::steady_clock::now();
    auto r = post(url, b);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const long peak = status_kb("VmHWM:");
    if (r.status != 200) {
      std::fprintf(stderr, "upload: %ld %s\n", r.status, r.body.substr(0, 400).c_str());
      break;
    }
    const size_t at = r.body.find("\"contacts_accepted\":");
    const long accepted = at == std::string::npos ? -1 : std::atol(r.body.c_str() + at + 20);
    if (run == 0) continue;
    ++ok;
    times.push_back(ms);
    deltas.push_back(static_cast<double>(peak - before) / 1024.0);
    std::printf("%3d  %8.1f  %10.0f  %16.1f  %14.1f  %8ld\n", run, ms, contacts * 1000.0 / ms,
                static_cast<double>(before) / 1024.0, static_cast<double>(peak - before) / 1024.0, accepted);
  }
  stop = true;
  loop.join();
  if (ok == 0) return 1;
  std::sort(times.begin(), times.end());
  std::sort(deltas.begin(), deltas.end());
  std::printf("median: %.1f ms per upload (%.0f contacts/s), peak RSS delta %.1f MB (max %.1f MB)\n",
              times[times.size() / 2], contacts * 1000.0 / times[times.size() / 2], deltas[deltas.size() / 2],
              deltas.back());
  return 0;
}
