// Calls end to end on the pty modem: osvid answers an EC25 call whose audio is an alsa-lib file PCM.
//
// The modem (RING, +CLIP, ATA, +CLCC) is tests/support/modem_sim; osvi-model-server stands in for the model
// services; the PCM is defined by our own ALSA configuration (ALSA_CONFIG_PATH) and paced by the engine
// (the line's audio_clockless).
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
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
using osvi::test::ModemSim;

namespace {

constexpr const char* kToken = "ModemE2eToken012";
constexpr const char* kCaller = "+919800000042";
constexpr int kRate =
    8000;  // the EC25's USB audio class voice: the rate the AT line reports and the engine opens
constexpr const char* kGreeting = "Hello, front desk.";
constexpr const char* kUtterance = "I need the opening hours";
constexpr const char* kReply = "We open at nine in the morning.";

using osvi::test::ModelServer;

JsonPtr parse(const std::string& s) {
  return osvi::test::parse_json(s);
}
std::string str(const cJSON* o, const char* k) {
  return osvi::test::json_str(o, k);
}

// The caller as the modem's PCM delivers it: 8 kHz s16le mono. Silence while the greeting plays, the
// sentence, then silence long enough to outlast the test, so the file plugin's `infile` never reaches EOF
// during the call (what alsa-lib does at EOF is not what a line does).
std::vector<int16_t> caller_audio() {
  const std::vector<int16_t> wide = osvi::test::espeak_speech(kUtterance);  // 16 kHz
  std::vector<int16_t> out(static_cast<size_t>(kRate) * 4, 0);              // 4 s
  // 16 -> 8 kHz: a [1 2 1]/4 low-pass then every second sample; enough for a VAD and an energy probe.
  for (size_t i = 1; i + 1 < wide.size(); i += 2)
    out.push_back(static_cast<int16_t>((wide[i - 1] + 2 * wide[i] + wide[i + 1]) / 4));
  out.resize(out.size() + static_cast<size_t>(kRate) * 45, 0);
  return out;
}

// 20 ms frames of `pcm` whose RMS is above -40 dBFS: the agent's speech, not the engine's silence fill.
size_t loud_frames(const std::vector<int16_t>& pcm) {
  const size_t frame = kRate / 50;
  size_t n = 0;
  for (size_t at = 0; at + frame <= pcm.size(); at += frame) {
    double e = 0;
    for (size_t i = at; i < at + frame; ++i) e += static_cast<double>(pcm[i]) * pcm[i];
    n += std::sqrt(e / static_cast<double>(frame)) > 328.0 ? 1 : 0;
  }
  return n;
}

std::vector<int16_t> read_pcm(const std::string& path) {
  const std::string bytes = osvi::test::read_file(path);
  std::vector<int16_t> pcm(bytes.size() / 2);
  std::memcpy(pcm.data(), bytes.data(), pcm.size() * 2);
  return pcm;
}

class ModemCallE2E : public ::testing::Test {
 protected:
  // scenario: the model server's script. The line is an EC25 on the pty whose audio_device is a PCM of
  // our own ALSA configuration: capture reads the caller file, playback writes the agent file.
  void start(const std::string& scenario) {
    osvi::test::write_file(dir_.file("scenario.json"), scenario);
    model_ = std::make_unique<ModelServer>(dir_.file("scenario.json"), dir_.file("model.log"));
    ASSERT_FALSE(model_->base().empty());
    const std::vector<int16_t> caller = caller_audio();
    osvi::test::write_file(dir_.file("caller.raw"),
                           std::string(reinterpret_cast<const char*>(caller.data()), caller.size() * 2));
    // asym: one file PCM for both directions would also copy the captured caller into the agent's file.
    // Inline null slaves: our configuration is the whole of alsa-lib's, without alsa.conf's "null".
    osvi::test::write_file(
        dir_.file("alsa.conf"),
        "pcm.ec25_bench {\n  type asym\n"
        "  playback.pcm { type file slave.pcm { type null } file \"" +
            dir_.file("agent.raw") +
            "\" format raw }\n"
            "  capture.pcm { type file slave.pcm { type null } file \"/dev/null\" infile \"" +
            dir_.file("caller.raw") + "\" format raw }\n}\n");
    sim_ = std::make_unique<ModemSim>(dir_.file("modem-at"));
    const std::string url = model_->base() + "/v1";
    port_ = osvi::test::free_loopback_port();
    const std::string cfg =
        R"({"state_dir":")" + dir_.file("state") + R"(","api":{"listen":"127.0.0.1:)" +
        std::to_string(port_) + R"(","tokens":[")" + kToken + R"("]},"audio":{"rt_priority":0},)" +
        R"("agents":[{"agent_uuid":"agent_a","name":"A","active":true,)" + R"("stt":{"base_url":")" + url +
        R"("},"llm":{"base_url":")" + url + R"("},"voice":{"base_url":")" + url +
        R"("},"greeting":{"text":")" + kGreeting + R"("}}],)" +
        R"("lines":[{"id":"gsm0","type":"at","vendor":"quectel_ec25","device":")" + dir_.file("modem-at") +
        R"(","audio_device":"ec25_bench","audio_clockless":true,"agent_uuid":"agent_a",)" +
        R"("command_timeout_ms":2000,"poll_interval_ms":200}]})";
    osvi::test::write_file(dir_.file("osvid.json"), cfg);
    daemon_ = std::make_unique<DaemonProcess>(
        dir_.path(), std::vector<std::string>{"--config", dir_.file("osvid.json")},
        std::map<std::string, std::string>{{"ALSA_CONFIG_PATH", dir_.file("alsa.conf")}});
    ASSERT_TRUE(daemon_->wait_notify("READY=1", 15s)) << daemon_->stderr_text();
    // READY waits for the line's init, so the modem is idle and the QPCMV probe has been answered.
    ASSERT_GE(sim_->count("AT+QPCMV=1,2"), 1u);
  }

  std::string api(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  // The first call that reached a final status.
  JsonPtr wait_call_done(std::chrono::seconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      JsonPtr j = parse(http_request("GET", api("/v1/calls"), kToken).body);
      const cJSON* data = j ? cJSON_GetObjectItem(j.get(), "data") : nullptr;
      const cJSON* c = nullptr;
      cJSON_ArrayForEach(c, data) {
        if (str(c, "status") != "in_progress") {
          JsonPtr dj = parse(http_request("GET", api("/v1/call/" + str(c, "call_id")), kToken).body);
          return dj ? JsonPtr(cJSON_Duplicate(cJSON_GetObjectItem(dj.get(), "data"), true)) : nullptr;
        }
      }
      std::this_thread::sleep_for(200ms);
    }
    ADD_FAILURE() << "no call ended within " << timeout.count() << " s\n"
                  << daemon_->stderr_text() << dump_commands();
    return nullptr;
  }

  // The id of the one call, once it is listed.
  std::string wait_call_id(std::chrono::seconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      JsonPtr j = parse(http_request("GET", api("/v1/calls"), kToken).body);
      const cJSON* first = j ? cJSON_GetArrayItem(cJSON_GetObjectItem(j.get(), "data"), 0) : nullptr;
      if (first) return str(first, "call_id");
      std::this_thread::sleep_for(100ms);
    }
    return {};
  }

  struct Turn {
    std::string role, text;
  };
  std::vector<Turn> transcript(const std::string& call_id) {
    JsonPtr j = parse(http_request("GET", api("/v1/call/" + call_id + "/transcript"), kToken).body);
    std::vector<Turn> out;
    const cJSON* t = j ? cJSON_GetObjectItem(cJSON_GetObjectItem(j.get(), "data"), "transcript") : nullptr;
    const cJSON* e = nullptr;
    cJSON_ArrayForEach(e, t) out.push_back({str(e, "role"), str(e, "text")});
    return out;
  }
  static std::string dump(const std::vector<Turn>& turns) {
    std::string s;
    for (const Turn& t : turns) s += t.role + ": " + t.text + "\n";
    return s;
  }
  std::string dump_commands() const {
    std::string s = "modem commands:";
    for (const std::string& c : sim_->commands()) s += " " + c;
    return s + "\n";
  }

  // Greeting, the caller's turn and the agent's answer, in order, as the API reports them.
  void expect_conversation(const std::string& id) {
    auto t = transcript(id);
    ASSERT_GE(t.size(), 3u) << dump(t);
    EXPECT_EQ(t[0].role, "agent") << dump(t);
    EXPECT_EQ(t[0].text, kGreeting) << dump(t);
    EXPECT_EQ(t[1].role, "user") << dump(t);
    EXPECT_EQ(t[1].text, kUtterance) << dump(t);
    // The answer is the next agent turn; a tool call (end_call) is recorded before the words it follows.
    size_t i = 2;
    while (i < t.size() && t[i].role == "tool") ++i;
    ASSERT_LT(i, t.size()) << dump(t);
    EXPECT_EQ(t[i].role, "agent") << dump(t);
    EXPECT_EQ(t[i].text, kReply) << dump(t);
  }

  // What the model server was sent to transcribe: the caller's sentence, read from `infile` through the
  // PCM, not the silence around it.
  void expect_caller_reached_stt() {
    std::ifstream f(dir_.file("model.log"));
    std::string line;
    double loudest = -200, longest = 0;
    while (std::getline(f, line)) {
      JsonPtr j = parse(line);
      if (!j || str(j.get(), "endpoint") != "/v1/audio/transcriptions") continue;
      const cJSON* a = cJSON_GetObjectItem(j.get(), "audio");
      loudest = std::max(loudest, cJSON_GetNumberValue(cJSON_GetObjectItem(a, "rms_dbfs")));
      longest = std::max(longest, cJSON_GetNumberValue(cJSON_GetObjectItem(a, "duration")));
    }
    EXPECT_GT(longest, 1.0) << osvi::test::read_file(dir_.file("model.log"));
    EXPECT_GT(loudest, -35.0) << osvi::test::read_file(dir_.file("model.log"));
  }

  void expect_recording(const std::string& id) {
    auto rec = http_request("GET", api("/v1/call/" + id + "/recording"), kToken);
    ASSERT_EQ(rec.status, 200) << rec.body;
    JsonPtr rj = parse(rec.body);
    const std::string url = str(cJSON_GetObjectItem(rj.get(), "data"), "recording_url");
    auto file = http_request("GET", url, "");
    EXPECT_EQ(file.status, 200);
    ASSERT_GT(file.body.size(), 1000u);
    EXPECT_EQ(file.body.substr(0, 4), "OggS");
  }

  // Stops osvid (so alsa-lib has closed the playback file and flushed its buffer), then checks the agent
  // spoke into the modem's PCM: greeting and reply are well over a second of audible frames.
  void expect_agent_audio() {
    daemon_->signal(SIGTERM);
    EXPECT_EQ(daemon_->wait_exit(15s), 0) << daemon_->stderr_text();
    // Paced, the PCM takes one period per period: a call of a few seconds is never a minute of audio.
    struct stat st {};
    ASSERT_EQ(::stat(dir_.file("agent.raw").c_str(), &st), 0);
    ASSERT_LT(st.st_size, kRate * 2 * 60) << "the PCM ran faster than real time (not paced)";
    const std::vector<int16_t> played = read_pcm(dir_.file("agent.raw"));
    ASSERT_GT(played.size(), static_cast<size_t>(kRate) * 3) << "the agent's PCM file is (nearly) empty";
    EXPECT_GT(loud_frames(played), 75u) << "played " << played.size() << " samples";
  }

  osvi::test::TempDir dir_;
  std::unique_ptr<ModelServer> model_;
  std::unique_ptr<ModemSim> sim_;
  std::unique_ptr<DaemonProcess> daemon_;
  int port_ = 0;
};

// The caller asks, the agent answers and ends the call itself: osvid hangs up on the modem.
TEST_F(ModemCallE2E, InboundCallAnsweredAndEndedByTheAgent) {
  start(std::string(R"({"stt":{"transcripts":[")") + kUtterance + R"("]},
            "llm":{"rules":[{"match":"opening hours","reply":")" +
        kReply + R"(","tool_calls":[{"name":"end_call","arguments":{}}]}]}})");
  sim_->ring_incoming(kCaller);
  ASSERT_TRUE(sim_->wait_command("ATA", 10s)) << daemon_->stderr_text() << dump_commands();

  JsonPtr call = wait_call_done(25s);
  ASSERT_TRUE(call);
  EXPECT_EQ(str(call.get(), "status"), "picked");
  EXPECT_EQ(str(call.get(), "call_type"), "inbound");
  EXPECT_EQ(str(call.get(), "phone_number"), kCaller);
  // No lines[].number configured: the box's own number is the SIM's, as AT+CNUM answered it at init.
  EXPECT_EQ(str(call.get(), "from_number"), ModemSim::own_number());
  EXPECT_EQ(str(call.get(), "call_ended_reason"), "assistant-ended-call");
  EXPECT_EQ(str(call.get(), "call_ended_by"), "agent");
  EXPECT_GE(sim_->count("AT+CHUP") + sim_->count("ATH"), 1u) << dump_commands();
  EXPECT_GE(sim_->count("AT+CLCC"), 1u) << "the line tracks the call through +CLCC";

  const std::string id = str(call.get(), "call_id");
  expect_conversation(id);
  EXPECT_NE(dump(transcript(id)).find("tool: end_call"), std::string::npos) << dump(transcript(id));
  expect_caller_reached_stt();
  expect_recording(id);
  expect_agent_audio();
}

// The agent answers and the caller hangs up (NO CARRIER): the call ends as the customer's, and osvid sends
// no hang-up of its own.
TEST_F(ModemCallE2E, InboundCallEndedByTheCaller) {
  start(std::string(R"({"stt":{"transcripts":[")") + kUtterance + R"("]},
            "llm":{"rules":[{"match":"opening hours","reply":")" +
        kReply + R"("}]}})");
  sim_->ring_incoming(kCaller);
  ASSERT_TRUE(sim_->wait_command("ATA", 10s)) << daemon_->stderr_text() << dump_commands();
  const std::string id = wait_call_id(5s);
  ASSERT_FALSE(id.empty()) << daemon_->stderr_text();

  // The caller waits for the agent's answer to be in the transcript, then hangs up.
  const auto end = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < end && dump(transcript(id)).find(kReply) == std::string::npos)
    std::this_thread::sleep_for(200ms);
  ASSERT_NE(dump(transcript(id)).find(kReply), std::string::npos)
      << dump(transcript(id)) << daemon_->stderr_text();
  sim_->remote_hangup();

  JsonPtr call = wait_call_done(10s);
  ASSERT_TRUE(call);
  EXPECT_EQ(str(call.get(), "status"), "picked");
  EXPECT_EQ(str(call.get(), "call_type"), "inbound");
  EXPECT_EQ(str(call.get(), "phone_number"), kCaller);
  EXPECT_EQ(str(call.get(), "call_ended_reason"), "customer-ended-call");
  EXPECT_EQ(str(call.get(), "call_ended_by"), "user");
  EXPECT_EQ(sim_->count("AT+CHUP") + sim_->count("ATH"), 0u) << dump_commands();

  expect_conversation(id);
  expect_caller_reached_stt();
  expect_recording(id);
  expect_agent_audio();
}

}  // namespace
