// Calls end to end on the pty modem whose voice is a PCM tty (SIM7600, and the generic profile with a tty
// audio_device): osvid answers, the caller's speech travels module → engine → STT, the agent's voice
// engine → module, health tells the truth about the audio path, and a port that goes quiet ends the call
// as audio lost.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "model_server_process.hpp"
#include "modem_sim.hpp"
#include "osvi/net/json.hpp"
#include "test_support.hpp"
#include "wav.hpp"

using namespace std::chrono_literals;
using osvi::net::JsonPtr;
using osvi::test::DaemonProcess;
using osvi::test::http_request;
using osvi::test::ModelServer;
using osvi::test::ModemSim;

namespace {

constexpr const char* kToken = "TtyE2eToken01234";
constexpr const char* kCaller = "+919800000042";
constexpr const char* kGreeting = "Hello, front desk.";
constexpr const char* kUtterance = "I need the opening hours";
constexpr const char* kReply = "We open at nine in the morning.";

std::string str(const cJSON* o, const char* k) {
  return osvi::test::json_str(o, k);
}

// 20 ms frames of `pcm` whose RMS is above -40 dBFS: the agent's speech, not the engine's silence fill.
size_t loud_frames(const std::vector<int16_t>& pcm, unsigned rate) {
  const size_t frame = rate / 50;
  size_t n = 0;
  for (size_t at = 0; at + frame <= pcm.size(); at += frame) {
    double e = 0;
    for (size_t i = at; i < at + frame; ++i) e += static_cast<double>(pcm[i]) * pcm[i];
    n += std::sqrt(e / static_cast<double>(frame)) > 328.0 ? 1 : 0;
  }
  return n;
}

// The caller at the module's rate: silence while the greeting plays, the sentence, then silence.
std::vector<int16_t> caller_audio(unsigned rate, bool speak) {
  std::vector<int16_t> out(static_cast<size_t>(rate) * 4, 0);
  if (!speak) return out;
  const std::vector<int16_t> wide = osvi::test::espeak_speech(kUtterance);  // 16 kHz
  if (rate == 16000) {
    out.insert(out.end(), wide.begin(), wide.end());
  } else {
    for (size_t i = 1; i + 1 < wide.size(); i += 2)
      out.push_back(static_cast<int16_t>((wide[i - 1] + 2 * wide[i] + wide[i + 1]) / 4));
  }
  return out;
}

class ModemTtyAudioE2E : public ::testing::Test {
 protected:
  // vendor: "simcom_sim7600" (16 kHz after AT+CPCMFRM=1) or "generic" (8 kHz, audio from the answer on).
  void start(const std::string& vendor, const std::string& scenario, bool speak) {
    rate_ = vendor == "generic" ? 8000 : 16000;
    osvi::test::write_file(dir_.file("scenario.json"), scenario);
    model_ = std::make_unique<ModelServer>(dir_.file("scenario.json"), dir_.file("model.log"));
    ASSERT_FALSE(model_->base().empty());
    sim_ = std::make_unique<ModemSim>(dir_.file("modem-at"));
    sim_->enable_audio(dir_.file("modem-audio"), rate_);
    sim_->set_audio_source(caller_audio(rate_, speak));
    const std::string url = model_->base() + "/v1";
    port_ = osvi::test::free_loopback_port();
    const std::string cfg =
        R"({"state_dir":")" + dir_.file("state") + R"(","api":{"listen":"127.0.0.1:)" +
        std::to_string(port_) + R"(","tokens":[")" + kToken + R"("]},"audio":{"rt_priority":0},)" +
        R"("agents":[{"agent_uuid":"agent_a","name":"A","active":true,)" + R"("stt":{"base_url":")" + url +
        R"("},"llm":{"base_url":")" + url + R"("},"voice":{"base_url":")" + url +
        R"("},"greeting":{"text":")" + kGreeting + R"("}}],)" +
        R"("lines":[{"id":"gsm0","type":"at","vendor":")" + vendor + R"(","device":")" +
        dir_.file("modem-at") + R"(","audio_device":")" + dir_.file("modem-audio") +
        R"(","agent_uuid":"agent_a",)" + R"("command_timeout_ms":2000,"poll_interval_ms":200}]})";
    osvi::test::write_file(dir_.file("osvid.json"), cfg);
    daemon_ = std::make_unique<DaemonProcess>(dir_.path(),
                                              std::vector<std::string>{"--config", dir_.file("osvid.json")});
    ASSERT_TRUE(daemon_->wait_notify("READY=1", 15s)) << daemon_->stderr_text();
  }

  std::string api(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  JsonPtr health_line() {
    JsonPtr j = osvi::test::parse_json(http_request("GET", api("/v1/health"), kToken).body);
    const cJSON* lines = j ? cJSON_GetObjectItem(cJSON_GetObjectItem(j.get(), "data"), "lines") : nullptr;
    const cJSON* l = lines ? cJSON_GetArrayItem(lines, 0) : nullptr;
    return l ? JsonPtr(cJSON_Duplicate(l, true)) : nullptr;
  }
  bool audio_flag(const char* key) {
    JsonPtr l = health_line();
    const cJSON* a = l ? cJSON_GetObjectItem(l.get(), "audio") : nullptr;
    return a && cJSON_IsTrue(cJSON_GetObjectItem(a, key));
  }
  bool wait_for(const std::function<bool()>& ok, std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (ok()) return true;
      std::this_thread::sleep_for(50ms);
    }
    return ok();
  }

  JsonPtr wait_call_done(std::chrono::seconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      JsonPtr j = osvi::test::parse_json(http_request("GET", api("/v1/calls"), kToken).body);
      const cJSON* c = nullptr;
      const cJSON* data = j ? cJSON_GetObjectItem(j.get(), "data") : nullptr;
      cJSON_ArrayForEach(c, data) {
        if (str(c, "status") != "in_progress") {
          JsonPtr dj =
              osvi::test::parse_json(http_request("GET", api("/v1/call/" + str(c, "call_id")), kToken).body);
          return dj ? JsonPtr(cJSON_Duplicate(cJSON_GetObjectItem(dj.get(), "data"), true)) : nullptr;
        }
      }
      std::this_thread::sleep_for(200ms);
    }
    ADD_FAILURE() << "no call ended within " << timeout.count() << " s\n" << daemon_->stderr_text();
    return nullptr;
  }

  std::string transcript(const std::string& call_id) {
    JsonPtr j =
        osvi::test::parse_json(http_request("GET", api("/v1/call/" + call_id + "/transcript"), kToken).body);
    std::string s;
    const cJSON* e = nullptr;
    const cJSON* turns =
        j ? cJSON_GetObjectItem(cJSON_GetObjectItem(j.get(), "data"), "transcript") : nullptr;
    cJSON_ArrayForEach(e, turns) s += str(e, "role") + ": " + str(e, "text") + "\n";
    return s;
  }

  // What the model server was sent to transcribe: the caller's sentence as the module's tty delivered it.
  void expect_caller_reached_stt() {
    std::ifstream f(dir_.file("model.log"));
    std::string line;
    double loudest = -200, longest = 0;
    while (std::getline(f, line)) {
      JsonPtr j = osvi::test::parse_json(line);
      if (!j || str(j.get(), "endpoint") != "/v1/audio/transcriptions") continue;
      const cJSON* a = cJSON_GetObjectItem(j.get(), "audio");
      loudest = std::max(loudest, cJSON_GetNumberValue(cJSON_GetObjectItem(a, "rms_dbfs")));
      longest = std::max(longest, cJSON_GetNumberValue(cJSON_GetObjectItem(a, "duration")));
    }
    EXPECT_GT(longest, 1.0) << osvi::test::read_file(dir_.file("model.log"));
    EXPECT_GT(loudest, -35.0) << osvi::test::read_file(dir_.file("model.log"));
  }

  // The caller talks, the agent answers and ends the call: both directions went over the tty.
  void converse() {
    EXPECT_FALSE(audio_flag("ready")) << "idle: no audio path is open";
    sim_->ring_incoming(kCaller);
    ASSERT_TRUE(sim_->wait_command("ATA", 10s)) << daemon_->stderr_text();
    // Health says ready once the engine really has the tty open.
    EXPECT_TRUE(wait_for([&] { return audio_flag("ready"); }, 5s)) << daemon_->stderr_text();

    JsonPtr call = wait_call_done(30s);
    ASSERT_TRUE(call);
    EXPECT_EQ(str(call.get(), "status"), "picked");
    EXPECT_EQ(str(call.get(), "call_ended_reason"), "assistant-ended-call") << daemon_->stderr_text();
    const std::string t = transcript(str(call.get(), "call_id"));
    EXPECT_NE(t.find(std::string("agent: ") + kGreeting), std::string::npos) << t;
    EXPECT_NE(t.find(std::string("user: ") + kUtterance), std::string::npos) << t;
    EXPECT_NE(t.find(std::string("agent: ") + kReply), std::string::npos) << t;
    expect_caller_reached_stt();
    // The greeting and the reply reached the module: well over a second of audible frames.
    EXPECT_GT(loud_frames(sim_->audio_received(), rate_), 75u);
    EXPECT_TRUE(wait_for([&] { return !audio_flag("ready"); }, 5s)) << "the audio path closed with the call";
    EXPECT_FALSE(audio_flag("stalled")) << osvi::net::json_print(health_line().get());
    daemon_->signal(SIGTERM);
    EXPECT_EQ(daemon_->wait_exit(15s), 0) << daemon_->stderr_text();
  }

  std::string conversation_scenario() const {
    return std::string(R"({"stt":{"transcripts":[")") + kUtterance + R"("]},
            "llm":{"rules":[{"match":"opening hours","reply":")" +
           kReply + R"(","tool_calls":[{"name":"end_call","arguments":{}}]}]}})";
  }

  osvi::test::TempDir dir_;
  std::unique_ptr<ModelServer> model_;
  std::unique_ptr<ModemSim> sim_;
  std::unique_ptr<DaemonProcess> daemon_;
  int port_ = 0;
  unsigned rate_ = 16000;
};

TEST_F(ModemTtyAudioE2E, Sim7600CallCarriesAudioBothWaysOverTheTty) {
  start("simcom_sim7600", conversation_scenario(), true);
  JsonPtr l = health_line();
  ASSERT_TRUE(l);
  const cJSON* a = cJSON_GetObjectItem(l.get(), "audio");
  EXPECT_EQ(str(a, "kind"), "tty");
  EXPECT_EQ(cJSON_GetNumberValue(cJSON_GetObjectItem(a, "sample_rate")), 16000);
  EXPECT_EQ(str(l.get(), "reason"), "");
  // A module slow to confirm the hang-up: its PCM stopped at AT+CPCMREG=0 well over the stall window before
  // the call's audio closes, and that is no stall.
  sim_->on("AT+CHUP", [this](const std::string&) {
    std::this_thread::sleep_for(900ms);
    sim_->set_calls({});
    return ModemSim::ok();
  });
  converse();
  EXPECT_EQ(sim_->count("AT+CPCMREG=1"), 1u);
  EXPECT_EQ(sim_->count("AT+CPCMREG=0"), 1u);
  EXPECT_EQ(daemon_->stderr_text().find("call audio stalled"), std::string::npos) << daemon_->stderr_text();
}

TEST_F(ModemTtyAudioE2E, GenericProfileWithATtyAudioDeviceCarriesTheCall) {
  start("generic", conversation_scenario(), true);
  JsonPtr l = health_line();
  ASSERT_TRUE(l);
  EXPECT_EQ(str(cJSON_GetObjectItem(l.get(), "audio"), "kind"), "tty");
  EXPECT_EQ(str(l.get(), "reason"), "");
  converse();
  EXPECT_EQ(sim_->count("AT+CPCMREG"), 0u) << "no SIMCom commands on a generic modem";
}

// The module's PCM stops mid-call: the engine notices within its stall window, tells the line (health,
// journal) and the call ends as audio lost instead of sitting in silence.
TEST_F(ModemTtyAudioE2E, Sim7600StalledAudioTtyEndsTheCallAsAudioLost) {
  start("simcom_sim7600", R"({"stt":{"transcripts":["hello"]},"llm":{"rules":[]}})", false);
  sim_->ring_incoming(kCaller);
  ASSERT_TRUE(sim_->wait_command("ATA", 10s)) << daemon_->stderr_text();
  ASSERT_TRUE(wait_for([&] { return audio_flag("ready"); }, 5s)) << daemon_->stderr_text();
  // The greeting is reaching the module: audio flows both ways before the stall.
  ASSERT_TRUE(wait_for([&] { return loud_frames(sim_->audio_received(), rate_) > 20; }, 10s))
      << daemon_->stderr_text();

  sim_->stall_audio(true);
  JsonPtr call = wait_call_done(15s);
  ASSERT_TRUE(call);
  EXPECT_EQ(str(call.get(), "status"), "picked");
  EXPECT_EQ(str(call.get(), "call_ended_reason"), "no_call_audio") << daemon_->stderr_text();
  EXPECT_EQ(str(call.get(), "call_ended_by"), "system");
  EXPECT_GE(sim_->count("AT+CHUP") + sim_->count("ATH"), 1u);

  JsonPtr l = health_line();
  ASSERT_TRUE(l);
  const cJSON* a = cJSON_GetObjectItem(l.get(), "audio");
  EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(a, "stalled"))) << osvi::net::json_print(l.get());
  EXPECT_FALSE(cJSON_IsTrue(cJSON_GetObjectItem(a, "ready")));
  EXPECT_NE(str(a, "error").find("no audio from " + dir_.file("modem-audio")), std::string::npos)
      << str(a, "error");
  EXPECT_NE(str(a, "error").find("USB reset"), std::string::npos) << str(a, "error");
  EXPECT_TRUE(daemon_->wait_stderr("call audio stalled", 5s)) << daemon_->stderr_text();
  daemon_->signal(SIGTERM);
  EXPECT_EQ(daemon_->wait_exit(15s), 0) << daemon_->stderr_text();
}

}  // namespace
