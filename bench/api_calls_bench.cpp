// GET /v1/calls under load: the real HttpServer + Api on one loop thread over a database of 100,000 calls.
//
//   api_calls_bench [calls] [seconds_per_query] [connections] [database]   (defaults 100000, 3, 4, a temp
//   file)
//
// A database path that exists is used as it is (built by an earlier run with the same arguments); one that
// does not is built there and kept, for EXPLAIN QUERY PLAN with the sqlite3 shell.
// The database is built in one transaction through the store: eight agents, realistic statuses, call types,
// campaigns and dates over 90 days, a 1.5 KB prompt on every outbound call and, on one call in 250, a 1 MiB
// prompt with 64 KiB of additional data (the rows that made the list slow). A client thread keeps
// `connections` keep-alive connections busy, one request in flight on each, and measures each request from
// its first byte sent to the last byte of the answer. Figures in bench/README.md.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "osvi/api/api.hpp"
#include "osvi/calls/call_service.hpp"
#include "osvi/clock.hpp"
#include "osvi/config/config.hpp"
#include "osvi/net/http_server.hpp"
#include "osvi/store/store.hpp"
#include "test_support.hpp"

using namespace osvi;
using namespace osvi::daemon;
using Steady = std::chrono::steady_clock;

namespace {

constexpr const char* kToken = "BenchToken012345";
constexpr int kAgents = 8;
constexpr int64_t kDayMs = 86'400'000;

class NoCalls : public CallService {
 public:
  Result<std::string> place_call(const PlaceCallRequest&) override { return make_error("bench", -ENOTSUP); }
  size_t idle_lines() const override { return 0; }
  int add_finished_listener(CallFinishedListener) override { return 0; }
  void remove_finished_listener(int) override {}
};

std::string id_of(int i) {
  char b[40];
  std::snprintf(b, sizeof b, "0190a1b2-c3d4-7e5f-8a9b-%012d", i);
  return b;
}

std::string agent_of(int i) {
  return "agent_" + std::to_string(i);
}

using test::Rng;

bool build(Store& store, int n, int64_t first_ms) {
  std::vector<AgentRecord> agents;
  for (int a = 0; a < kAgents; ++a)
    agents.push_back({0, agent_of(a), "Agent " + std::to_string(a), "voice", true, false, "{}", "", 0, 0});
  if (!store.agents().sync(agents).ok()) return false;
  Rng rng;
  const std::string prompt(1500, 'p');
  const std::string big_prompt(1 << 20, 'P');
  const std::string big_data = R"({"notes":")" + std::string(64 << 10, 'n') + R"("})";
  const std::string summary(300, 's');
  const int64_t step = 90 * kDayMs / n;
  auto tx = store.database().begin();
  if (!tx) return false;
  for (int i = 0; i < n; ++i) {
    CallRecord c;
    c.call_id = id_of(i);
    // Agents are not equally busy: agent_0 takes about a third of the calls.
    const int a = rng.below(3) == 0 ? 0 : rng.below(kAgents);
    c.agent_uuid = agent_of(a);
    c.agent_name = "Agent " + std::to_string(a);
    c.phone_number = "+9198" + std::to_string(10'000'000 + rng.below(90'000'000));
    c.from_number = std::string("+911140000000");
    c.call_type = rng.below(10) < 7 ? "outbound" : "inbound";
    c.created_at_ms = first_ms + static_cast<int64_t>(i) * step + rng.below(1000);
    const int r = rng.below(100);
    c.status = i >= n - 3 ? "in_progress"
               : r < 55   ? "picked"
               : r < 75   ? "not_picked"
               : r < 83   ? "failed"
               : r < 90   ? "busy"
                          : "voicemail";
    if (c.status == "picked" || c.status == "voicemail") {
      c.call_picked_at_ms = c.created_at_ms + 5000 + rng.below(15000);
      c.duration_seconds = 20 + rng.below(400);
      c.ended_at_ms = *c.call_picked_at_ms + c.duration_seconds * 1000;
      c.summary = summary;
      c.call_ended_by = std::string(rng.below(2) ? "agent" : "user");
      c.call_ended_reason = std::string("assistant-ended-call");
    }
    if (c.call_type == "outbound") {
      c.system_prompt = prompt;
      c.person_name = std::string("Ravi Kumar");
      c.caller_name = c.person_name;
      if (rng.below(10) < 4) {
        c.campaign_id = 1 + rng.below(5);
        c.campaign_upload_id = *c.campaign_id * 10 + rng.below(3);
      }
    }
    if (i % 250 == 0) {
      c.system_prompt = big_prompt;
      c.additional_data = big_data;
    }
    if (!store.calls().insert(c).ok()) return false;
  }
  return tx->commit().ok();
}

struct Conn {
  int fd = -1;
  std::string path;
  size_t query = 0;
  std::string in;
  Steady::time_point sent;
};

int connect_to(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool send_request(Conn& c) {
  const std::string req =
      "GET " + c.path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAPI-Token: " + kToken + "\r\n\r\n";
  c.in.clear();
  c.sent = Steady::now();
  return ::send(c.fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size());
}

// A whole response in c.in: its status, or 0 while incomplete.
int complete(const Conn& c) {
  const size_t end = c.in.find("\r\n\r\n");
  if (end == std::string::npos) return 0;
  const size_t cl = c.in.find("Content-Length: ");
  if (cl == std::string::npos || cl > end) return 0;
  const size_t len = std::strtoul(c.in.c_str() + cl + 16, nullptr, 10);
  if (c.in.size() < end + 4 + len) return 0;
  return std::atoi(c.in.c_str() + 9);
}

void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  (void)sched_setaffinity(0, sizeof set, &set);
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 100'000;
  double seconds = argc > 2 ? std::atof(argv[2]) : 3.0;  // per query; the warm-up changes it for a second
  const int connections = argc > 3 ? std::atoi(argv[3]) : 4;
  test::TempDir dir;
  const std::string path = argc > 4 ? argv[4] : dir.file("osvi.db");
  const bool reuse = ::access(path.c_str(), F_OK) == 0;
  SystemClock clock;
  auto store = Store::open(StoreOptions{path}, clock);
  if (!store) {
    std::fprintf(stderr, "store: %s\n", store.error().message.c_str());
    return 1;
  }
  // The history ends now; a reused database keeps the dates it was built with, so only the date filter moves.
  const int64_t first_ms = clock.wall_ms() - 90 * kDayMs;
  auto t0 = Steady::now();
  if (!reuse && !build(**store, n, first_ms)) {
    std::fprintf(stderr, "building the database failed\n");
    return 1;
  }
  std::printf("built %d calls in %.1f s\n", n, std::chrono::duration<double>(Steady::now() - t0).count());

  Config config;
  config.site.utc_offset_minutes = 330;
  std::vector<ApiToken> tokens = {ApiToken{kToken, {}, true}};
  NoCalls calls;
  ApiContext ctx;
  ctx.config = &config;
  ctx.tokens = &tokens;
  ctx.store = store->get();
  ctx.clock = &clock;
  ctx.calls = &calls;
  ctx.listen = "127.0.0.1:0";
  Api api(ctx);
  net::HttpServerOptions o;
  o.port = 0;
  auto server = net::HttpServer::start(
      o, [&api](net::HttpRequest& req, net::HttpReply reply) { api.handle(req, std::move(reply)); });
  if (!server) {
    std::fprintf(stderr, "server: %s\n", server.error().message.c_str());
    return 1;
  }
  std::atomic<bool> stop{false};
  // The loop thread's own CPU time: what the requests cost the one core that serves them, whatever else the
  // machine is running (req/s measured from the client also pays for the client and for other processes).
  std::atomic<int64_t> loop_cpu_ns{0};
  // The daemon's loop: one thread, the HTTP server driven from poll.
  std::thread loop([&] {
    pin(0);
    while (!stop) {
      const int wait = static_cast<int>(std::min<uint64_t>((*server)->timeout_ms().value_or(10), 10));
      pollfd p{(*server)->poll_fd(), POLLIN, 0};
      ::poll(&p, 1, wait);
      (*server)->run();
      timespec ts{};
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      loop_cpu_ns = static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
    }
  });
  pin(1);

  // A day in the middle of the history, in the box's offset (IST): a date filter matches about 1/90 of it.
  const time_t mid = static_cast<time_t>((first_ms + 45 * kDayMs + 330 * 60'000) / 1000);
  tm day{};
  gmtime_r(&mid, &day);
  char date[16];
  std::strftime(date, sizeof date, "%Y-%m-%d", &day);
  const std::vector<std::string> queries = {
      "/v1/calls",
      "/v1/calls?page=2",
      "/v1/calls?page=40",
      "/v1/calls?per_page=100",
      "/v1/calls?status=picked",
      "/v1/calls?status=not_picked,busy",
      "/v1/calls?agent_uuid=agent_3",
      "/v1/calls?agent_uuid=agent_0&status=picked",
      "/v1/calls?call_type=inbound",
      "/v1/calls?campaign_id=3",
      std::string("/v1/calls?start_date=") + date + "&end_date=" + date,
      "/v1/calls?phone_number=98765",
  };
  const uint16_t port = (*server)->port();
  std::vector<double> all;
  std::printf("%-50s %9s %9s %9s %9s %11s %11s\n", "query", "req/s", "p50 ms", "p99 ms", "max ms",
              "loop us/req", "req/s/core");
  int failures = 0;
  auto run_one = [&](const std::vector<std::string>& paths, const char* label) {
    std::vector<Conn> conns(static_cast<size_t>(connections));
    std::vector<double> lat;
    size_t next_query = 0;
    for (Conn& c : conns) {
      c.fd = connect_to(port);
      c.query = next_query++ % paths.size();
      c.path = paths[c.query];
      if (c.fd < 0 || !send_request(c)) {
        std::fprintf(stderr, "connect failed\n");
        std::exit(1);
      }
    }
    const auto begin = Steady::now();
    const int64_t cpu_begin = loop_cpu_ns.load();
    const auto end = begin + std::chrono::duration<double>(seconds);
    std::vector<pollfd> pfds(conns.size());
    while (Steady::now() < end) {
      for (size_t i = 0; i < conns.size(); ++i) pfds[i] = {conns[i].fd, POLLIN, 0};
      if (::poll(pfds.data(), pfds.size(), 1000) <= 0) continue;
      for (size_t i = 0; i < conns.size(); ++i) {
        if (!(pfds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        Conn& c = conns[i];
        char buf[65536];
        const ssize_t got = ::recv(c.fd, buf, sizeof buf, 0);
        if (got <= 0) {
          std::fprintf(stderr, "connection closed by the server\n");
          std::exit(1);
        }
        c.in.append(buf, static_cast<size_t>(got));
        const int status = complete(c);
        if (status == 0) continue;
        if (status != 200) {
          if (++failures < 5) std::fprintf(stderr, "%s: %d %s\n", c.path.c_str(), status, c.in.c_str());
        }
        lat.push_back(std::chrono::duration<double, std::milli>(Steady::now() - c.sent).count());
        c.query = next_query++ % paths.size();
        c.path = paths[c.query];
        if (!send_request(c)) std::exit(1);
      }
    }
    const double elapsed = std::chrono::duration<double>(Steady::now() - begin).count();
    const double cpu_us = static_cast<double>(loop_cpu_ns.load() - cpu_begin) / 1000.0;
    const double us_per_req = lat.empty() ? 0.0 : cpu_us / static_cast<double>(lat.size());
    for (Conn& c : conns) ::close(c.fd);
    std::sort(lat.begin(), lat.end());
    auto pct = [&](double p) {
      return lat.empty()
                 ? 0.0
                 : lat[std::min(lat.size() - 1, static_cast<size_t>(p * static_cast<double>(lat.size())))];
    };
    std::printf("%-50s %9.0f %9.2f %9.2f %9.2f %11.0f %11.0f\n", label,
                static_cast<double>(lat.size()) / elapsed, pct(0.5), pct(0.99),
                lat.empty() ? 0.0 : lat.back(), us_per_req, us_per_req > 0 ? 1e6 / us_per_req : 0.0);
    all.insert(all.end(), lat.begin(), lat.end());
  };
  // Warm-up (page cache, the loop's first allocations), not reported.
  {
    const double measured = seconds;
    seconds = 1.0;
    run_one(queries, "(warm-up, 1 s)");
    all.clear();
    seconds = measured;
  }
  for (const std::string& q : queries) run_one({q}, q.c_str());
  run_one(queries, "mix of all of the above");
  stop = true;
  loop.join();
  if (failures) std::printf("%d requests did not answer 200\n", failures);
  return failures ? 1 : 0;
}
