// SSE fan-out: events/s from one publisher to 50 subscribers over loopback through the real HttpServer and
// EventHub on one loop thread, and the server's memory per open (idle) subscriber.
//
//   sse_bench [subscribers] [events] [idle_subscribers]   (default 50, 20000, 500)
//
// The publisher keeps at most 128 KiB of events in flight per subscriber (under the 256 KiB drop line), so
// the figure is the rate every subscriber keeps up with, none dropped; the clients read on one thread of
// their own with epoll, as 50 browsers would on other machines.
#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "osvi/api/event_hub.hpp"
#include "osvi/net/json.hpp"
#include "served_http.hpp"

using Steady = std::chrono::steady_clock;

namespace {

class NoTimer final : public osvi::daemon::CallTimer {
 public:
  void arm(int64_t) override {}
};

int connect_and_get(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    std::perror("connect");
    std::exit(1);
  }
  const std::string req = "GET /inbox HTTP/1.1\r\nHost: x\r\n\r\n";
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) std::exit(1);
  return fd;
}

long rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return 0;
}

size_t heap_in_use() {
  return mallinfo2().uordblks;
}

}  // namespace

int main(int argc, char** argv) {
  const int subscribers = argc > 1 ? std::atoi(argv[1]) : 50;
  const int events = argc > 2 ? std::atoi(argv[2]) : 20000;
  const int idle = argc > 3 ? std::atoi(argv[3]) : 500;
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);

  osvi::SystemClock clock;
  osvi::daemon::EventHubOptions ho;
  ho.max_subscribers = static_cast<size_t>(std::max(subscribers, idle));
  auto hub = osvi::daemon::EventHub::create(
      clock,
      [](std::function<void()>) -> osvi::Result<std::unique_ptr<osvi::daemon::CallTimer>> {
        return std::unique_ptr<osvi::daemon::CallTimer>(std::make_unique<NoTimer>());
      },
      ho);
  if (!hub) return 1;
  osvi::test::ServedHttp served;
  osvi::net::HttpServerOptions so;
  so.port = 0;
  so.max_connections = 1024;
  so.max_connections_per_client = 1024;
  if (!served.start(so, [&](osvi::net::HttpRequest& req, osvi::net::HttpReply reply) {
        (*hub)->subscribe(req, std::move(reply), "inbox", std::nullopt);
      })) {
    return 1;
  }
  auto subscribed = [&] {
    size_t n = 0;
    served.locked([&] { n = (*hub)->stats().subscribers; });
    return n;
  };

  // --- Throughput: events/s to `subscribers` clients.
  std::vector<int> fds;
  for (int i = 0; i < subscribers; ++i) fds.push_back(connect_and_get(served.port()));
  while (subscribed() < static_cast<size_t>(subscribers))
    std::this_thread::sleep_for(std::chrono::milliseconds(1));

  std::vector<std::atomic<uint64_t>> received(static_cast<size_t>(subscribers));
  std::atomic<int> finished{0};
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    const int ep = epoll_create1(EPOLL_CLOEXEC);
    std::vector<std::string> tail(fds.size());
    std::vector<bool> done(fds.size());
    for (size_t i = 0; i < fds.size(); ++i) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = i;
      epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    std::vector<char> buf(1 << 16);
    epoll_event evs[64];
    while (!stop) {
      const int n = epoll_wait(ep, evs, 64, 10);
      for (int k = 0; k < n; ++k) {
        const size_t i = evs[k].data.u64;
        const ssize_t got = recv(fds[i], buf.data(), buf.size(), MSG_DONTWAIT);
        if (got <= 0) continue;
        received[i] += static_cast<uint64_t>(got);
        // The last event is named "end": looked for across read boundaries in a short tail.
        tail[i].append(buf.data(), static_cast<size_t>(got));
        if (!done[i] && tail[i].find("event: end\n") != std::string::npos) {
          done[i] = true;
          ++finished;
        }
        if (tail[i].size() > 64) tail[i].erase(0, tail[i].size() - 64);
      }
    }
    close(ep);
  });

  osvi::net::JsonPtr data(cJSON_CreateObject());
  osvi::net::json_add_string(data.get(), "session_id", "0b6c3a52-7f0e-4c4e-9f55-5f1a3d2c9e11");
  osvi::net::json_add_string(data.get(), "agent_uuid", "5d1e7a3c-2b4f-4e8a-9c6d-1f2e3a4b5c6d");
  osvi::net::json_add_string(data.get(), "role", "assistant");
  osvi::net::json_add_string(data.get(), "text",
                             "Thanks, your order 48213 ships tomorrow; anything else I can help with?");
  const std::vector<std::string> keys = {"inbox", "session:0b6c3a52-7f0e-4c4e-9f55-5f1a3d2c9e11"};
  const size_t frame = osvi::daemon::format_sse_event("1780000000000-10000", "message.created",
                                                      osvi::net::json_print(data.get()))
                           .size();
  constexpr int kBatch = 64;
  constexpr uint64_t kWindow = 128 * 1024;
  double publish_cpu_s = 0;
  const auto t0 = Steady::now();
  for (int sent = 0; sent < events;) {
    const uint64_t published_bytes = static_cast<uint64_t>(sent) * frame;
    for (;;) {
      uint64_t least = UINT64_MAX;
      for (auto& r : received) least = std::min<uint64_t>(least, r.load());
      if (least + kWindow >= published_bytes) break;
      std::this_thread::yield();
    }
    served.locked([&] {
      const auto p0 = Steady::now();
      for (int i = 0; i < kBatch && sent < events; ++i, ++sent)
        (*hub)->publish(keys, sent + 1 == events ? "end" : "message.created", data.get(), "5d1e7a3c");
      publish_cpu_s += std::chrono::duration<double>(Steady::now() - p0).count();
    });
  }
  while (finished < subscribers) std::this_thread::sleep_for(std::chrono::microseconds(200));
  const double secs = std::chrono::duration<double>(Steady::now() - t0).count();
  stop = true;
  reader.join();
  osvi::daemon::EventHubStats st;
  served.locked([&] { st = (*hub)->stats(); });
  std::printf("fan-out: %d events (%zu-byte frames) to %d subscribers in %.3f s\n", events, frame,
              subscribers, secs);
  std::printf("  %.0f events/s, %.0f deliveries/s, %.1f MB/s to the clients; dropped %llu\n", events / secs,
              events * static_cast<double>(subscribers) / secs,
              events * static_cast<double>(frame) * subscribers / secs / 1e6,
              static_cast<unsigned long long>(st.dropped_slow_consumers));
  std::printf("  loop time in publish(): %.2f us per event (%.3f us per delivery), %.0f%% of the run\n",
              publish_cpu_s / events * 1e6, publish_cpu_s / events / subscribers * 1e6,
              publish_cpu_s / secs * 100);
  for (int fd : fds) close(fd);
  while (subscribed() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  // --- Memory: `idle` open subscribers with nothing to send (parked), against none.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  size_t heap0 = 0;
  long rss0 = 0;
  served.locked([&] {
    malloc_trim(0);
    heap0 = heap_in_use();
    rss0 = rss_kib();
  });
  fds.clear();
  for (int i = 0; i < idle; ++i) fds.push_back(connect_and_get(served.port()));
  while (subscribed() < static_cast<size_t>(idle)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  size_t heap1 = 0;
  long rss1 = 0;
  served.locked([&] {
    heap1 = heap_in_use();
    rss1 = rss_kib();
  });
  std::printf(
      "memory: %d idle subscribers: heap +%.1f KiB each, RSS +%.1f KiB each (server and client sides)\n",
      idle, (static_cast<double>(heap1) - static_cast<double>(heap0)) / idle / 1024.0,
      static_cast<double>(rss1 - rss0) / idle);
  for (int fd : fds) close(fd);
  served.stop();
  return st.dropped_slow_consumers == 0 ? 0 : 1;
}
