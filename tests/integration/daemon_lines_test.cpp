// osvid with telephony lines: READY after the modem line is idle, health shows it, the pty vanishing and
// returning.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "daemon_process.hpp"
#include "modem_sim.hpp"
#include "osvi/net/json.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using osvi::test::DaemonProcess;
using osvi::test::ModemSim;

namespace {

constexpr const char* kToken = "LinesToken012345";

class DaemonLinesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = osvi::test::free_loopback_port();
    osvi::test::write_file(
        dir_.file("osvid.json"),
        R"({"state_dir":")" + dir_.file("state") + R"(","api":{"listen":"127.0.0.1:)" +
            std::to_string(port_) + R"(","tokens":[")" + kToken +
            R"("]},"agents":[{"agent_uuid":"agent_a","name":"A","active":true}],)" +
            R"("lines":[{"id":"gsm0","type":"at","vendor":"quectel_ec25","device":")" +
            dir_.file("modem-at") +
            R"(","agent_uuid":"agent_a","command_timeout_ms":500,"poll_interval_ms":100,"reopen_min_ms":100,)" +
            R"("reopen_max_ms":300},{"id":"sim0","type":"sim"}]})");
  }

  // The "lines" entry `id` of /v1/health; null JSON when absent.
  osvi::net::JsonPtr health_line(const std::string& id, std::string* state = nullptr) {
    auto r =
        osvi::test::http_request("GET", "http://127.0.0.1:" + std::to_string(port_) + "/v1/health", kToken);
    std::string why;
    osvi::net::JsonPtr j = osvi::net::json_parse(r.body, &why);
    if (!j) return nullptr;
    const cJSON* lines = cJSON_GetObjectItem(cJSON_GetObjectItem(j.get(), "data"), "lines");
    const cJSON* l = nullptr;
    cJSON_ArrayForEach(l, lines) {
      const cJSON* lid = cJSON_GetObjectItem(l, "id");
      if (cJSON_IsString(lid) && id == lid->valuestring) {
        if (state) *state = cJSON_GetObjectItem(l, "state")->valuestring;
        return osvi::net::JsonPtr(cJSON_Duplicate(l, true));
      }
    }
    return nullptr;
  }
  bool wait_state(const std::string& id, const std::string& want, std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    std::string state;
    while (std::chrono::steady_clock::now() < end) {
      if (health_line(id, &state) && state == want) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  osvi::test::TempDir dir_;
  int port_ = 0;
};

TEST_F(DaemonLinesTest, ReadyAfterLineIdleThenDownAndBackUp) {
  ModemSim sim(dir_.file("modem-at"));
  sim.on("ATE0", [](const std::string&) {
    std::this_thread::sleep_for(300ms);  // a module still booting: READY must wait for it
    return ModemSim::ok();
  });
  DaemonProcess d(dir_.path(), {"--config", dir_.file("osvid.json")});
  ASSERT_TRUE(d.wait_notify("READY=1", 20s)) << d.stderr_text();
  ASSERT_TRUE(sim.count("AT+CGSN") >= 1) << "READY before the line was initialised";
  bool status_lists_lines = false;
  for (const std::string& m : d.notify_messages())
    if (m.find("READY=1") != std::string::npos && m.find("gsm0 idle") != std::string::npos)
      status_lists_lines = true;
  EXPECT_TRUE(status_lists_lines);

  std::string state;
  auto line = health_line("gsm0", &state);
  ASSERT_TRUE(line);
  EXPECT_EQ(state, "idle");
  EXPECT_STREQ(cJSON_GetObjectItem(line.get(), "type")->valuestring, "at");
  const cJSON* modem = cJSON_GetObjectItem(line.get(), "modem");
  EXPECT_EQ(std::string(cJSON_GetObjectItem(modem, "imei")->valuestring), ModemSim::imei());
  EXPECT_STREQ(cJSON_GetObjectItem(cJSON_GetObjectItem(line.get(), "audio"), "kind")->valuestring, "alsa");
  ASSERT_TRUE(health_line("sim0", &state));
  EXPECT_EQ(state, "idle");

  sim.disappear();
  ASSERT_TRUE(wait_state("gsm0", "down", 10s));
  line = health_line("gsm0");
  EXPECT_NE(std::string(cJSON_GetObjectItem(line.get(), "reason")->valuestring).find("modem lost"),
            std::string::npos);
  EXPECT_TRUE(d.wait_stderr("line gsm0 down", 5s)) << d.stderr_text();

  sim.reappear();
  ASSERT_TRUE(wait_state("gsm0", "idle", 10s)) << d.stderr_text();
  EXPECT_TRUE(d.wait_stderr("line gsm0 up", 5s));
  EXPECT_TRUE(d.wait_notify("gsm0 idle", 5s));

  d.signal(SIGTERM);
  EXPECT_EQ(d.wait_exit(10s), 0);
}

TEST_F(DaemonLinesTest, AbsentModemIsDownWithAReasonAndStillReady) {
  DaemonProcess d(dir_.path(), {"--config", dir_.file("osvid.json")});
  ASSERT_TRUE(d.wait_notify("READY=1", 20s)) << d.stderr_text();
  std::string state;
  auto line = health_line("gsm0", &state);
  ASSERT_TRUE(line);
  EXPECT_EQ(state, "down");
  EXPECT_NE(std::string(cJSON_GetObjectItem(line.get(), "reason")->valuestring).find("No such file"),
            std::string::npos);
  EXPECT_TRUE(d.wait_stderr("line gsm0 down", 5s));
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait_exit(10s), 0);
}

}  // namespace
