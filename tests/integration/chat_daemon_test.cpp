// Chat through a real osvid and osvi-model-server answering in 300 ms: 200 concurrent POST /v1/chat/inbound
// are all answered with their own reply while GET /v1/health and GET /v1/calls stay answered.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "model_server_process.hpp"
#include "osvi/net/json.hpp"
#include "test_support.hpp"

namespace osvi::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kToken = "TestToken0123456";
constexpr int kConcurrent = 200;

int open_fds(pid_t pid) {
  int n = 0;
  DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (!d) return -1;
  while (::readdir(d) != nullptr) ++n;
  ::closedir(d);
  return n - 2;
}

TEST(ChatDaemon, TwoHundredConcurrentInboundMessagesAreAllAnsweredAndTheApiStaysResponsive) {
  TempDir dir;
  write_file(dir.file("scenario.json"), R"({"llm": {"latency_ms": 300}})");
  ModelServer server(dir.file("scenario.json"), dir.file("log.jsonl"));
  ASSERT_FALSE(server.base().empty()) << server.error();
  const std::string state = dir.file("state");
  ASSERT_EQ(::mkdir(state.c_str(), 0700), 0);
  const int port = free_loopback_port();
  write_file(dir.file("osvid.json"),
             R"({"state_dir":")" + state + R"(","api":{"listen":"127.0.0.1:)" + std::to_string(port) +
                 R"(","tokens":[")" + kToken +
                 R"("],"max_connections":512,"max_connections_per_client":512},)"
                 R"("agents":[{"agent_uuid":"agent_chat","name":"Chat","mode":"chat","active":true,)"
                 R"("prompt":{"system_prompt":"Be brief."},"llm":{"base_url":")" +
                 server.base() + R"(/v1","model":"osvi-sim","timeout_ms":20000}}]})");
  DaemonProcess osvid(dir.path(), {"--config", dir.file("osvid.json")});
  ASSERT_TRUE(osvid.wait_notify("READY=1", 10s)) << osvid.stderr_text();
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  const int fds_before = open_fds(osvid.pid());

  std::vector<HttpResult> results(kConcurrent);
  std::atomic<int> started{0};
  std::vector<std::thread> clients;
  clients.reserve(kConcurrent);
  for (int i = 0; i < kConcurrent; ++i) {
    clients.emplace_back([&, i] {
      HttpRequestOptions o;
      o.timeout_ms = 60000;
      ++started;
      results[static_cast<size_t>(i)] =
          http_request("POST", base + "/v1/chat/inbound", kToken,
                       R"({"agent_uuid":"agent_chat","customer_id":"cust-)" + std::to_string(i) +
                           R"(","content":"message number )" + std::to_string(i) + R"("})",
                       o);
    });
  }
  // Meanwhile another client's reads: each answered within a bound generous enough for ASan on 2 cores.
  long slowest_ms = 0;
  int probes = 0;
  int peak_fds = fds_before;
  std::thread prober([&] {
    while (started < kConcurrent) std::this_thread::sleep_for(1ms);
    for (int i = 0; i < 10; ++i) {
      for (const char* path : {"/v1/health", "/v1/calls"}) {
        const auto t0 = std::chrono::steady_clock::now();
        HttpRequestOptions o;
        o.timeout_ms = 10000;
        auto r = http_request("GET", base + path, kToken, {}, o);
        const long ms = static_cast<long>(
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
                .count());
        EXPECT_EQ(r.status, 200) << path << ": " << r.body;
        slowest_ms = std::max(slowest_ms, ms);
        ++probes;
      }
      peak_fds = std::max(peak_fds, open_fds(osvid.pid()));
      std::this_thread::sleep_for(30ms);
    }
  });
  for (std::thread& t : clients) t.join();
  prober.join();

  EXPECT_LT(slowest_ms, 1000) << "GET /v1/health or /v1/calls took " << slowest_ms << " ms during the burst";
  EXPECT_EQ(probes, 20);
  int ok = 0;
  for (int i = 0; i < kConcurrent; ++i) {
    const HttpResult& r = results[static_cast<size_t>(i)];
    ASSERT_EQ(r.status, 200) << i << ": " << r.body;
    net::JsonPtr j = parse_json(r.body);
    const cJSON* d = cJSON_GetObjectItem(j.get(), "data");
    EXPECT_EQ(json_str(d, "reply"),
              "You said: message number " + std::to_string(i) + ". How else can I help?")
        << r.body;
    EXPECT_EQ(json_str(d, "mode"), "ai");
    if (json_str(d, "reply").find("number " + std::to_string(i) + ".") != std::string::npos) ++ok;
  }
  EXPECT_EQ(ok, kConcurrent);
  // Every session and message landed: 200 sessions, 400 messages.
  auto list = http_request("GET", base + "/v1/chat/sessions?per_page=1", kToken);
  ASSERT_EQ(list.status, 200) << list.body;
  net::JsonPtr lj = parse_json(list.body);
  const cJSON* stats = cJSON_GetObjectItem(cJSON_GetObjectItem(lj.get(), "meta"), "stats");
  EXPECT_EQ(cJSON_GetObjectItem(stats, "active")->valueint, kConcurrent);
  // The connections were held (suspended) and then released: the daemon is back near where it started.
  const int fds_after = open_fds(osvid.pid());
  std::printf("osvid fds: %d before, %d peak during the burst, %d after\n", fds_before, peak_fds, fds_after);
  EXPECT_GT(peak_fds, fds_before + kConcurrent) << "the burst was not in flight while probing";
  EXPECT_LT(fds_after, fds_before + 32) << "connections left open after the burst";
  osvid.signal(SIGTERM);
  EXPECT_EQ(osvid.wait_exit(10s), 0) << osvid.stderr_text();
}

}  // namespace
}  // namespace osvi::test
