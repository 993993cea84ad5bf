// The local API under hostile clients: a legitimate client's time to answer while 300 idle or half-sent
// connections from its own (loopback) address are held, against the same with none.
//
//   http_hostile_bench [rounds] [hostile]   (default 200 rounds, 300 hostile sockets)
//
// Before each round every hostile socket the server has closed is opened again (half of them idle, half
// with a half-sent request head), so each legitimate request arrives behind a fresh burst of them.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "osvi/net/http_server.hpp"

using Steady = std::chrono::steady_clock;

namespace {

int connect_to(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// True when the peer has closed `fd` (EOF or reset) without blocking.
bool peer_closed(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, 0) <= 0) return false;
  char buf[256];
  const ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  return n <= 0;
}

// One legitimate request on a new connection; milliseconds until the whole response head came, or -1.
double legitimate_request_ms(uint16_t port, int limit_ms) {
  const auto t0 = Steady::now();
  const int fd = connect_to(port);
  if (fd < 0) return -1;
  const std::string req = "GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return -1;
  }
  std::string got;
  while (got.find("\r\n\r\n") == std::string::npos) {
    const auto left =
        limit_ms - std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - t0).count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0) break;
    char buf[1024];
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  if (got.rfind("HTTP/1.1 200", 0) != 0) return -1;
  return std::chrono::duration<double, std::milli>(Steady::now() - t0).count();
}

void report(const char* what, std::vector<double> v, int failures) {
  std::sort(v.begin(), v.end());
  if (v.empty()) {
    std::printf("%-44s no answers, %d failures\n", what, failures);
    return;
  }
  auto pct = [&](double p) {
    return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
  };
  std::printf("%-44s p50 %7.2f ms  p95 %7.2f ms  max %7.2f ms  (n=%zu, unanswered in 2 s: %d)\n", what,
              pct(0.5), pct(0.95), v.back(), v.size(), failures);
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 200;
  const int hostile_n = argc > 2 ? std::atoi(argv[2]) : 300;
  // The hostile sockets and the server's side of them live in this one process.
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = std::max<rlim_t>(rl.rlim_cur, std::min<rlim_t>(rl.rlim_max, 4096));
  setrlimit(RLIMIT_NOFILE, &rl);

  osvi::net::HttpServerOptions o;  // the daemon's defaults: 64 connections, 16 per client, 10 s / 5 s
  o.port = 0;
  auto started = osvi::net::HttpServer::start(o, [](osvi::net::HttpRequest&, osvi::net::HttpReply reply) {
    osvi::net::HttpResponse r;
    r.body = "{\"success\":true}";
    reply.send(std::move(r));
  });
  if (!started) {
    std::fprintf(stderr, "start: %s\n", started.error().message.c_str());
    return 1;
  }
  osvi::net::HttpServer& server = **started;
  const uint16_t port = server.port();
  std::atomic<bool> stop{false};
  // The daemon's loop in small: wait on poll_fd() up to timeout_ms(), then run().
  std::thread loop([&] {
    while (!stop) {
      const int wait = static_cast<int>(std::min<uint64_t>(server.timeout_ms().value_or(50), 50));
      pollfd p{server.poll_fd(), POLLIN, 0};
      poll(&p, 1, wait);
      server.run();
    }
  });

  std::vector<double> baseline;
  int baseline_failures = 0;
  for (int i = 0; i < rounds; ++i) {
    const double ms = legitimate_request_ms(port, 2000);
    if (ms < 0)
      ++baseline_failures;
    else
      baseline.push_back(ms);
  }

  std::vector<int> hostile(static_cast<size_t>(hostile_n), -1);
  std::vector<double> held;
  int held_failures = 0, reopened = 0;
  const std::string half = "GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
  for (int i = 0; i < rounds; ++i) {
    for (size_t k = 0; k < hostile.size(); ++k) {
      if (hostile[k] >= 0 && !peer_closed(hostile[k])) continue;
      if (hostile[k] >= 0) close(hostile[k]);
      hostile[k] = connect_to(port);
      ++reopened;
      if (hostile[k] >= 0 && k % 2) send(hostile[k], half.data(), half.size(), MSG_NOSIGNAL);
    }
    const double ms = legitimate_request_ms(port, 2000);
    if (ms < 0)
      ++held_failures;
    else
      held.push_back(ms);
  }
  stop = true;
  loop.join();
  for (int fd : hostile)
    if (fd >= 0) close(fd);

  std::printf("legitimate GET on a new connection, %d rounds\n", rounds);
  report("no hostile sockets", baseline, baseline_failures);
  char what[96];
  std::snprintf(what, sizeof what, "%d hostile sockets held (same address)", hostile_n);
  report(what, held, held_failures);
  // Each burst evicts the connections kept from the one before (older), so all of them are reopened.
  std::printf("hostile connections opened: %d (%.1f per round)\n", reopened,
              static_cast<double>(reopened) / rounds);
  return held_failures == 0 ? 0 : 2;
}
