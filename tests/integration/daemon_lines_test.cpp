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

// A generic modem without an audio_device cannot carry a conversation: health says why, POST /v1/call is
// refused with 409 and that reason (nothing dialled, no record), and an incoming call is left unanswered
// rather than picked up into silence and dropped.
TEST(DaemonLinesAudio, GenericLineWithoutAudioIsRefusedNotDialled) {
  osvi::test::TempDir dir;
  const int port = osvi::test::free_loopback_port();
  osvi::test::write_file(
      dir.file("osvid.json"),
      R"({"state_dir":")" + dir.file("state") + R"(","api":{"listen":"127.0.0.1:)" + std::to_string(port) +
          R"(","tokens":[")" + kToken +
          R"("]},"agents":[{"agent_uuid":"agent_a","name":"A","active":true}],)" +
          R"("lines":[{"id":"gsm0","type":"at","vendor":"generic","device":")" + dir.file("modem-at") +
          R"(","agent_uuid":"agent_a","command_timeout_ms":500,"poll_interval_ms":100}]})");
  ModemSim sim(dir.file("modem-at"));
  DaemonProcess d(dir.path(), {"--config", dir.file("osvid.json")});
  ASSERT_TRUE(d.wait_notify("READY=1", 20s)) << d.stderr_text();
  const std::string base = "http://127.0.0.1:" + std::to_string(port);

  auto h = osvi::test::http_request("GET", base + "/v1/health", kToken);
  osvi::net::JsonPtr hj = osvi::test::parse_json(h.body);
  const cJSON* line =
      cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(hj.get(), "data"), "lines"), 0);
  ASSERT_TRUE(line) << h.body;
  EXPECT_EQ(osvi::test::json_str(line, "state"), "idle");
  const std::string reason = osvi::test::json_str(line, "reason");
  EXPECT_EQ(reason.rfind("audio unavailable: no audio_device configured", 0), 0u) << reason;
  EXPECT_EQ(osvi::test::json_str(cJSON_GetObjectItem(line, "audio"), "kind"), "none");

  auto r = osvi::test::http_request("POST", base + "/v1/call", kToken,
                                    R"({"agent_uuid":"agent_a","phone_number":"9876543210",)"
                                    R"("country_code":"IN"})");
  EXPECT_EQ(r.status, 409) << r.body;
  osvi::net::JsonPtr rj = osvi::test::parse_json(r.body);
  ASSERT_TRUE(rj) << r.body;
  EXPECT_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(rj.get(), "success"))) << r.body;
  const std::string msg = osvi::test::json_str(rj.get(), "error");
  EXPECT_NE(msg.find("no line of this box can carry call audio"), std::string::npos) << msg;
  EXPECT_NE(msg.find("gsm0: no audio_device configured"), std::string::npos) << msg;
  const cJSON* errors = cJSON_GetObjectItem(rj.get(), "errors");
  ASSERT_EQ(cJSON_GetArraySize(errors), 1) << r.body;
  EXPECT_EQ(std::string(cJSON_GetArrayItem(errors, 0)->valuestring), msg);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(sim.count("ATD"), 0u) << "a call without audio was dialled";
  auto calls = osvi::test::http_request("GET", base + "/v1/calls", kToken);
  osvi::net::JsonPtr cj = osvi::test::parse_json(calls.body);
  EXPECT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(cj.get(), "data")), 0) << calls.body;

  sim.ring_incoming("+919800000042");
  EXPECT_TRUE(d.wait_stderr("not answered: the line's audio is unavailable", 5s)) << d.stderr_text();
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(sim.count("ATA"), 0u) << "an incoming call was answered into silence";

  d.signal(SIGTERM);
  EXPECT_EQ(d.wait_exit(10s), 0);
}

// A generic modem whose audio_device names a PCM tty that is not there: the same refusal, with the path.
TEST(DaemonLinesAudio, GenericLineWithMissingAudioTtyIsRefused) {
  osvi::test::TempDir dir;
  const int port = osvi::test::free_loopback_port();
  osvi::test::write_file(
      dir.file("osvid.json"),
      R"({"state_dir":")" + dir.file("state") + R"(","api":{"listen":"127.0.0.1:)" + std::to_string(port) +
          R"(","tokens":[")" + kToken +
          R"("]},"agents":[{"agent_uuid":"agent_a","name":"A","active":true}],)" +
          R"("lines":[{"id":"gsm0","type":"at","vendor":"generic","device":")" + dir.file("modem-at") +
          R"(","audio_device":")" + dir.file("no-audio-tty") +
          R"(","agent_uuid":"agent_a","command_timeout_ms":500,"poll_interval_ms":100}]})");
  ModemSim sim(dir.file("modem-at"));
  DaemonProcess d(dir.path(), {"--config", dir.file("osvid.json")});
  ASSERT_TRUE(d.wait_notify("READY=1", 20s)) << d.stderr_text();
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  auto h = osvi::test::http_request("GET", base + "/v1/health", kToken);
  EXPECT_NE(h.body.find("audio unavailable: audio tty " + dir.file("no-audio-tty") + ": No such file"),
            std::string::npos)
      << h.body;
  auto r = osvi::test::http_request("POST", base + "/v1/call", kToken,
                                    R"({"agent_uuid":"agent_a","phone_number":"9876543210",)"
                                    R"("country_code":"IN"})");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(r.body.find("no-audio-tty"), std::string::npos) << r.body;
  EXPECT_EQ(sim.count("ATD"), 0u);
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait_exit(10s), 0);
}

}  // namespace

// The STATUS= line follows every line change. A notify socket nobody reads (here: the harness after
// READY=1; systemd busy in real life) fills after net.unix.max_dgram_qlen (10) datagrams: the status must
// then be dropped, never block the loop that runs the calls and the API (calls_bench's barge-in run froze
// on its 4th call, a few line changes per call, with osvid's loop in sendmsg()).
TEST(DaemonNotify, UnreadNotifySocketNeverBlocksTheLoop) {
  osvi::test::TempDir dir;
  const int port = osvi::test::free_loopback_port();
  osvi::test::write_file(dir.file("osvid.json"),
                         R"({"state_dir":")" + dir.file("state") + R"(","api":{"listen":"127.0.0.1:)" +
                             std::to_string(port) + R"(","tokens":[")" + kToken +
                             R"("]},"agents":[{"agent_uuid":"agent_a","name":"A","active":true}],)"
                             R"("lines":[{"id":"sim0","type":"sim","agent_uuid":"agent_a",)"
                             R"("sim":{"outcome":"busy","ring_interval_ms":20}}]})");
  DaemonProcess d(dir.path(), {"--config", dir.file("osvid.json")});
  ASSERT_TRUE(d.wait_notify("READY=1", 20s)) << d.stderr_text();
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  // From here on nobody reads the notify socket. Each busy call is dialing → idle: two status changes.
  constexpr int kCalls = 12;
  for (int i = 0; i < kCalls; ++i) {
    auto r = osvi::test::http_request("POST", base + "/v1/call", kToken,
                                      R"({"agent_uuid":"agent_a","phone_number":"9876543210",)"
                                      R"("country_code":"IN"})");
    ASSERT_EQ(r.status, 200) << "call " << i << ": " << r.body << "\n" << d.stderr_text();
    // Wait for this call to end (the line idle again) before the next, as a campaign would.
    bool idle = false;
    const auto end = std::chrono::steady_clock::now() + 5s;
    while (!idle && std::chrono::steady_clock::now() < end) {
      auto h = osvi::test::http_request("GET", base + "/v1/health", kToken);
      ASSERT_EQ(h.status, 200) << "the API stopped answering during call " << i << "\n" << d.stderr_text();
      std::string why;
      osvi::net::JsonPtr j = osvi::net::json_parse(h.body, &why);
      const cJSON* lines = j ? cJSON_GetObjectItem(cJSON_GetObjectItem(j.get(), "data"), "lines") : nullptr;
      const cJSON* l = lines ? cJSON_GetArrayItem(lines, 0) : nullptr;
      const cJSON* state = l ? cJSON_GetObjectItem(l, "state") : nullptr;
      idle = cJSON_IsString(state) && std::string(state->valuestring) == "idle";
      if (!idle) std::this_thread::sleep_for(20ms);
    }
    ASSERT_TRUE(idle) << "call " << i << " never ended\n" << d.stderr_text();
  }
  // Every call has its final record.
  auto r = osvi::test::http_request("GET", base + "/v1/calls", kToken);
  ASSERT_EQ(r.status, 200) << d.stderr_text();
  std::string why;
  osvi::net::JsonPtr j = osvi::net::json_parse(r.body, &why);
  ASSERT_TRUE(j) << why;
  int busy = 0;
  const cJSON* c = nullptr;
  cJSON_ArrayForEach(c, cJSON_GetObjectItem(j.get(), "data")) {
    const cJSON* s = cJSON_GetObjectItem(c, "status");
    busy += cJSON_IsString(s) && std::string(s->valuestring) == "busy";
  }
  EXPECT_EQ(busy, kCalls) << r.body;
}
