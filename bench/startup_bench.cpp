// Start-to-READY time, idle VmRSS and stripped binary size of osvid with the default configuration.
//
// Usage: startup_bench [runs]   (osvid path is compiled in; run from any folder)
// Each run forks osvid with a fresh state folder and NOTIFY_SOCKET, times fork → READY=1, waits 1 s idle,
// reads VmRSS from /proc, then stops it with SIGTERM.
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "test_support.hpp"

namespace {

long vm_rss_kb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::atoi(argv[1]) : 20;
  std::vector<double> ready_ms;
  std::vector<double> rss_kb;
  for (int i = 0; i < runs; ++i) {
    osvi::test::TempDir dir;
    const int port = osvi::test::free_loopback_port();
    auto t0 = std::chrono::steady_clock::now();
    osvi::test::DaemonProcess d(
        dir.path(), {"--state-dir", dir.file("state"), "--listen", "127.0.0.1:" + std::to_string(port)});
    if (!d.wait_notify("READY=1", std::chrono::seconds(5))) {
      std::fprintf(stderr, "run %d: no READY within 5 s\n%s", i, d.stderr_text().c_str());
      return 1;
    }
    ready_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    std::this_thread::sleep_for(std::chrono::seconds(1));
    rss_kb.push_back(static_cast<double>(vm_rss_kb(d.pid())));
    d.signal(SIGTERM);
    d.wait_exit(std::chrono::seconds(2));
  }

  // Stripped size: strip a copy, never the build output.
  const std::string copy = "/tmp/osvid-stripped-bench";
  std::string cmd = std::string("strip -o ") + copy + " " + OSVID_PATH;
  long stripped = -1;
  if (std::system(cmd.c_str()) == 0) {
    struct stat st {};
    if (stat(copy.c_str(), &st) == 0) stripped = st.st_size;
    std::remove(copy.c_str());
  }
  struct stat st {};
  stat(OSVID_PATH, &st);

  std::printf("runs: %d\n", runs);
  std::printf("start to READY ms: p50 %.1f  p95 %.1f  max %.1f\n", percentile(ready_ms, 0.5),
              percentile(ready_ms, 0.95), *std::max_element(ready_ms.begin(), ready_ms.end()));
  std::printf("idle VmRSS kB: p50 %.0f  max %.0f\n", percentile(rss_kb, 0.5),
              *std::max_element(rss_kb.begin(), rss_kb.end()));
  std::printf("binary bytes: %ld  stripped: %ld\n", static_cast<long>(st.st_size), stripped);
  return 0;
}
