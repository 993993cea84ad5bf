// osvid's memory over a long API run: forks the real osvid and hammers its API while sampling its RSS.
//
//   api_soak_bench [seconds] [clients] [osvid]   (defaults 240, 4, the osvid of this build tree)
//
// Another osvid binary (e.g. one built from an older commit) can be measured by naming it.
// Each client loops over a mix: POST /v1/call with valid bodies and with invalid ones up to max_body_bytes
// (4 MiB: huge strings, and objects of many small members, the allocation pattern that fragments a heap), a
// body above the limit (refused), GET /v1/calls and /v1/health, unknown routes (404), and a fresh connection
// every few requests. VmRSS and RssAnon are read from /proc every second; the program prints start, peak and
// end, and the RSS at each tenth of the run. Figures in bench/README.md.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

namespace {

constexpr const char* kToken = "SoakToken0123456";

struct Rss {
  long vm_kb = 0, anon_kb = 0;
};

Rss rss_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  Rss r;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) r.vm_kb = std::atol(line.c_str() + 6);
    if (line.rfind("RssAnon:", 0) == 0) r.anon_kb = std::atol(line.c_str() + 8);
  }
  return r;
}

class Client {
 public:
  explicit Client(uint16_t port) : port_(port) {}
  ~Client() { close_fd(); }

  // One request; the status, or 0 when the connection failed (it is reopened on the next call).
  int request(const std::string& method, const std::string& path, const std::string& body, bool close_after) {
    if (fd_ < 0 && !open_fd()) return 0;
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAPI-Token: " + kToken + "\r\n";
    if (!body.empty() || method == "POST")
      req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    if (close_after) req += "Connection: close\r\n";
    req += "\r\n";
    req += body;
    size_t off = 0;
    while (off < req.size()) {
      const ssize_t n = ::send(fd_, req.data() + off, req.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;  // the server may answer 413 and close before the body is in
      off += static_cast<size_t>(n);
    }
    std::string in;
    char buf[65536];
    int status = 0;
    for (;;) {
      const size_t end = in.find("\r\n\r\n");
      if (end != std::string::npos) {
        status = std::atoi(in.c_str() + 9);
        const size_t cl = in.find("Content-Length: ");
        const size_t len =
            cl != std::string::npos && cl < end ? std::strtoul(in.c_str() + cl + 16, nullptr, 10) : 0;
        if (in.size() >= end + 4 + len) break;
      }
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        close_fd();
        return status;
      }
      in.append(buf, static_cast<size_t>(n));
    }
    if (close_after || off < req.size() || in.find("Connection: close") != std::string::npos) close_fd();
    return status;
  }

 private:
  bool open_fd() {
    fd_ = osvi::test::connect_loopback(port_, 10);
    if (fd_ < 0) return false;
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return true;
  }
  void close_fd() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  uint16_t port_;
  int fd_ = -1;
};

// Bodies built once and reused: what varies between requests is their order, as with a real client.
struct Bodies {
  std::vector<std::string> valid, invalid;
  std::string too_big;
  Bodies() {
    const std::string base = R"("agent_uuid":"agent_a","phone_number":"9876543210","country_code":"IN")";
    valid.push_back("{" + base + "}");
    valid.push_back("{" + base + R"(,"person_name":"Ravi","additional_data":{"topic":")" +
                    std::string(12000, 't') + R"("}})");
    valid.push_back("{" + base + R"(,"system_prompt":")" + std::string(30000, 'p') + R"("})");
    // Invalid: sizes from 64 KiB to just under 4 MiB, as one string and as many small members.
    for (size_t size : {size_t{64} << 10, size_t{512} << 10, size_t{2} << 20, (size_t{4} << 20) - 4096}) {
      invalid.push_back("{" + base + R"(,"system_prompt":")" + std::string(size, 'x') + R"("})");
      std::string many = "{" + base + R"(,"additional_data":{)";
      // append(), not operator+: GCC 12 at -O3 reports a false -Wrestrict on the concatenation.
      for (int i = 0; many.size() + 32 < size; ++i) {
        const std::string n = std::to_string(i);
        many.append(i ? ",\"k" : "\"k").append(n).append("\":").append(n);
      }
      invalid.push_back(many + "}}");
      invalid.push_back(std::string(size, '['));  // not JSON
    }
    too_big = "{" + base + R"(,"system_prompt":")" + std::string((size_t{4} << 20) + 1000, 'y') + R"("})";
  }
};

}  // namespace

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::atoi(argv[1]) : 240;
  const int clients = argc > 2 ? std::atoi(argv[2]) : 4;
  osvi::test::TempDir dir;
  const int port = osvi::test::free_loopback_port();
  const std::string url = "http://127.0.0.1:9/v1";  // never reached: no line, no call
  osvi::test::write_file(dir.file("osvid.json"),
                         R"({"state_dir":")" + dir.file("state") + R"(","api":{"listen":"127.0.0.1:)" +
                             std::to_string(port) + R"(","tokens":[")" + kToken +
                             R"("]},"agents":[{"agent_uuid":"agent_a","name":"A","active":true,)" +
                             R"("stt":{"base_url":")" + url + R"("},"llm":{"base_url":")" + url +
                             R"("},"voice":{"base_url":")" + url + R"("}}]})");
  const std::string osvid = argc > 3 ? argv[3] : OSVID_PATH;
  const std::string config = dir.file("osvid.json"), log = dir.file("osvid.log");
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    ::execl(osvid.c_str(), osvid.c_str(), "--config", config.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Up once the API accepts a connection.
  bool up = false;
  for (int i = 0; i < 150 && !up; ++i) {
    std::this_thread::sleep_for(100ms);
    Client probe(static_cast<uint16_t>(port));
    up = probe.request("GET", "/v1/health", {}, true) == 200;
  }
  if (!up) {
    std::fprintf(stderr, "%s did not start (log %s)\n", osvid.c_str(), log.c_str());
    ::kill(pid, SIGKILL);
    return 1;
  }
  const Bodies bodies;
  std::atomic<bool> stop{false};
  std::atomic<long> requests{0}, failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&, t] {
      Client c(static_cast<uint16_t>(port));
      unsigned k = static_cast<unsigned>(t) * 7919u;
      while (!stop) {
        ++k;
        int status = 0;
        const bool close_after = k % 5 == 0;
        switch (k % 10) {
          case 0:
          case 1:
            status = c.request("POST", "/v1/call", bodies.valid[k % bodies.valid.size()], close_after);
            break;
          case 2:
          case 3:
            status =
                c.request("POST", "/v1/call", bodies.invalid[(k / 10) % bodies.invalid.size()], close_after);
            break;
          case 4:
            if (k % 40 == 4)
              status = c.request("POST", "/v1/call", bodies.too_big, close_after);
            else
              status = c.request("GET", "/v1/calls?status=picked&page=" + std::to_string(k % 7 + 1), {},
                                 close_after);
            break;
          case 5:
            status = c.request("GET", "/v1/health", {}, close_after);
            break;
          case 6:
            status = c.request("GET", "/v1/no/such/route/" + std::to_string(k), {}, close_after);
            break;
          case 7:
            status = c.request("GET", "/v1/call/0190a1b2-c3d4-7e5f-8a9b-" + std::to_string(100000000000 + k),
                               {}, close_after);
            break;
          default:
            status = c.request("GET", "/v1/calls?per_page=100", {}, close_after);
            break;
        }
        ++requests;
        // 503 is the answer to a valid call request on a box without lines; 500 or no answer is a failure.
        if (status == 0 || status == 500) {
          if (++failures <= 5) std::fprintf(stderr, "request kind %u answered %d\n", k % 10, status);
        }
      }
    });
  }
  const Rss start = rss_of(pid);
  Rss peak = start, now = start;
  std::printf("t(s)  VmRSS(MB)  RssAnon(MB)  requests\n");
  auto mb = [](long kb) { return static_cast<double>(kb) / 1024.0; };
  const auto begin = Steady::now();
  for (int s = 1; s <= seconds; ++s) {
    std::this_thread::sleep_until(begin + std::chrono::seconds(s));
    now = rss_of(pid);
    peak.vm_kb = std::max(peak.vm_kb, now.vm_kb);
    peak.anon_kb = std::max(peak.anon_kb, now.anon_kb);
    if (s % std::max(1, seconds / 10) == 0)
      std::printf("%4d  %9.1f  %11.1f  %8ld\n", s, mb(now.vm_kb), mb(now.anon_kb), requests.load());
    std::fflush(stdout);
  }
  stop = true;
  for (auto& th : threads) th.join();
  std::this_thread::sleep_for(1s);
  const Rss end = rss_of(pid);
  std::printf("requests %ld (%ld unanswered or 500) in %d s with %d clients\n", requests.load(),
              failures.load(), seconds, clients);
  std::printf("VmRSS   start %.1f MB  peak %.1f MB  end %.1f MB (idle 1 s after the load)\n", mb(start.vm_kb),
              mb(peak.vm_kb), mb(end.vm_kb));
  std::printf("RssAnon start %.1f MB  peak %.1f MB  end %.1f MB\n", mb(start.anon_kb), mb(peak.anon_kb),
              mb(end.anon_kb));
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return 0;
}
