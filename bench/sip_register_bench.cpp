// Registration-to-ready time of a SIP line (SipTrunk::start() until its channels are up) against a sipp
// registrar on loopback, the trunk's create/destroy cost, and the resident memory one registered trunk adds.
//
// Usage: sip_register_bench [iterations=50]   (needs sipp on PATH; tests/sip/registrar_twice.xml)
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "osvi/clock.hpp"
#include "osvi/hal/sip_line.hpp"

using Clock = std::chrono::steady_clock;

namespace {

uint16_t free_port() {
  int s = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

long rss_kb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 50;
  const uint16_t port = free_port();
  const std::string scenario = std::string(OSVI_SOURCE_DIR) + "/tests/sip/registrar_twice.xml";
  const pid_t sipp = ::fork();
  if (sipp == 0) {
    std::freopen("/dev/null", "w", stdout);
    std::freopen("/dev/null", "w", stderr);
    const std::string p = std::to_string(port);
    ::execlp("sipp", "sipp", "-sf", scenario.c_str(), "-i", "127.0.0.1", "-p", p.c_str(), "-nostdin",
             "-timeout", "300s", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  osvi::SystemClock clock;
  std::vector<double> create_ms, ready_ms, destroy_ms;
  long rss_before = -1, rss_with = -1;
  for (int i = 0; i < iterations; ++i) {
    osvi::hal::SipLineOptions o;
    o.id = "pbx";
    o.registrar = "127.0.0.1:" + std::to_string(port);
    o.user = "201";
    o.local_ip = "127.0.0.1";
    o.local_port = free_port();
    o.register_expires_s = 600;
    o.keepalive_s = 0;
    if (i == 0) rss_before = rss_kb();
    const auto t0 = Clock::now();
    auto trunk = osvi::hal::SipTrunk::create(o, clock);
    if (!trunk.ok()) {
      std::fprintf(stderr, "create: %s\n", trunk.error().message.c_str());
      return 1;
    }
    const auto t1 = Clock::now();
    (void)(*trunk)->start();
    while ((*trunk)->state() != osvi::hal::LineState::idle) {
      pollfd p{(*trunk)->poll_fd(), POLLIN, 0};
      if (::poll(&p, 1, 5000) <= 0) {
        std::fprintf(stderr, "no registration within 5 s: %s\n", (*trunk)->reason().c_str());
        return 1;
      }
      (*trunk)->handle_io(p.revents);
    }
    const auto t2 = Clock::now();
    if (i == 0) rss_with = rss_kb();
    trunk->reset();
    const auto t3 = Clock::now();
    create_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    ready_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
    destroy_ms.push_back(std::chrono::duration<double, std::milli>(t3 - t2).count());
  }
  ::kill(sipp, SIGKILL);
  ::waitpid(sipp, nullptr, 0);
  std::printf("iterations %d\n", iterations);
  std::printf("create (SIP thread + stack)   p50 %.2f ms  p95 %.2f ms\n", pct(create_ms, 0.5),
              pct(create_ms, 0.95));
  std::printf("start -> registered (up)      p50 %.2f ms  p95 %.2f ms\n", pct(ready_ms, 0.5),
              pct(ready_ms, 0.95));
  std::printf("destroy (un-REGISTER, join)   p50 %.2f ms  p95 %.2f ms\n", pct(destroy_ms, 0.5),
              pct(destroy_ms, 0.95));
  std::printf("VmRSS: %ld kB before the first trunk, %ld kB with it registered (+%ld kB)\n", rss_before,
              rss_with, rss_with - rss_before);
  return 0;
}
