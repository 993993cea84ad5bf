// A real osvid with a SIP line against real SIP peers on loopback: baresip as the far phone (speech in,
// DTMF both ways, its recording of what it heard), sipp scenarios (a digest registrar, 486/480/503, no
// answer, far-end BYE, REFER, 20 calls at once) and a lossy relay in between; osvi-model-server scripts the
// agent (its transcripts, replies and tool calls), so the words in a transcript prove the audio's path.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "model_server_process.hpp"
#include "osvi/net/json.hpp"
#include "sip_peers.hpp"
#include "test_support.hpp"
#include "wav.hpp"

using namespace std::chrono_literals;
using osvi::net::JsonPtr;
using osvi::test::Baresip;
using osvi::test::DaemonProcess;
using osvi::test::http_request;
using osvi::test::Sipp;

namespace {

constexpr const char* kToken = "SipE2eToken01234";
constexpr const char* kSentence = "I would like to book an appointment";
constexpr const char* kTransferNumber = "+4930999000";

std::string str(const cJSON* o, const char* k) {
  return osvi::test::json_str(o, k);
}

std::string print(const cJSON* o) {
  if (o == nullptr) return "null";
  char* text = cJSON_PrintUnformatted(o);
  std::string out(text);
  cJSON_free(text);
  return out;
}

// The model stand-in's script for every test: the caller's words, then the agent ends the call (or sends
// keypad tones, or transfers) on what it "heard".
std::string scenario(const std::string& transcript) {
  return R"({"stt":{"transcripts":[")" + transcript + R"("]},
    "llm":{"rules":[
      {"match":"pressed the keys","reply":"Sending the code.",
       "tool_calls":[{"name":"send_dtmf","arguments":{"digits":"159"}}]},
      {"match":"transfer","reply":"One moment.","tool_calls":[{"name":"transfer_call","arguments":{}}]},
      {"match":"appointment","reply":"Goodbye!","tool_calls":[{"name":"end_call","arguments":{}}]}],
     "default_reply":"Noted.","after_tool_reply":"Done."}})";
}

// Files of `dir` named <prefix>...<suffix> (sipp names its logs after the scenario and its pid).
std::vector<std::string> files_in(const std::string& dir, const std::string& prefix,
                                  const std::string& suffix) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && name.size() >= suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(e.path().string());
  }
  return out;
}

class SipE2E : public ::testing::Test {
 protected:
  void start_model(const std::string& transcript = kSentence) {
    osvi::test::write_file(dir_.file("scenario.json"), scenario(transcript));
    model_ = std::make_unique<osvi::test::ModelServer>(dir_.file("scenario.json"), dir_.file("model.log"));
    ASSERT_FALSE(model_->base().empty()) << model_->error();
  }

  // osvid with the model stand-in and one sip line "pbx" (user 201); `sip` adds/overrides keys of the sip
  // object (JSON members without braces, e.g. "registrar":"127.0.0.1:5060","register_expires_s":0).
  void start_osvid(const std::string& sip, bool wait_ready = true) {
    if (!model_) start_model();
    api_port_ = osvi::test::free_loopback_port();
    sip_port_ = osvi::test::free_udp_port_pair();
    rtp_min_ = port_span(200, {sip_port_});
    const int rtp_min = rtp_min_;
    osvi::test::write_file(dir_.file("sip.pass"), "s3cret-201\n");
    ::chmod(dir_.file("sip.pass").c_str(), 0600);
    const std::string url = model_->base() + "/v1";
    const std::string cfg =
        R"({"state_dir":")" + dir_.file("state") + R"(","api":{"listen":"127.0.0.1:)" +
        std::to_string(api_port_) + R"(","tokens":[")" + kToken + R"("]},"audio":{"rt_priority":0},)" +
        R"("agents":[{"agent_uuid":"agent_sip","name":"Desk","active":true,"mode":"voice",)" +
        R"("greeting":{"text":"Hello."},"call":{"voicemail":{"detect":false}},)" +
        R"("tools":{"transfer":{"enabled":true,"number":")" + kTransferNumber + R"("}},)" +
        R"("stt":{"base_url":")" + url + R"("},"llm":{"base_url":")" + url + R"("},"voice":{"base_url":")" +
        url + R"("}}],)" +
        R"("lines":[{"id":"pbx","type":"sip","agent_uuid":"agent_sip","number":"+4930123456",)" +
        R"("sip":{"user":"201","password_file":")" + dir_.file("sip.pass") +
        R"(","local_ip":"127.0.0.1","local_port":)" + std::to_string(sip_port_) + R"(,"rtp_port_min":)" +
        std::to_string(rtp_min) + R"(,"rtp_port_max":)" + std::to_string(rtp_min + 199) +
        R"(,"codecs":["pcmu","pcma"],"keepalive_s":0,)" + sip + "}}]}";
    osvi::test::write_file(dir_.file("osvid.json"), cfg);
    started_ = std::chrono::steady_clock::now();
    daemon_ = std::make_unique<DaemonProcess>(dir_.path(),
                                              std::vector<std::string>{"--config", dir_.file("osvid.json")});
    if (wait_ready) {
      ASSERT_TRUE(daemon_->wait_notify("READY=1", 20s)) << daemon_->stderr_text();
    }
  }

  std::string api(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(api_port_) + path;
  }

  JsonPtr get_data(const std::string& path) {
    auto r = http_request("GET", api(path), kToken);
    JsonPtr j = osvi::test::parse_json(r.body);
    return j ? JsonPtr(cJSON_Duplicate(cJSON_GetObjectItem(j.get(), "data"), true)) : nullptr;
  }

  // The first of `span` ports from a free even port, clear of `avoid` and of the box's RTP range (sipp's
  // media ports count up from its -mp; the box's RTP range must not hold its SIP port).
  int port_span(int span, std::vector<int> avoid = {}) const {
    for (int i = 0; i < 100; ++i) {
      const int p = osvi::test::free_udp_port_pair();
      if (p % 2 != 0 || p + span > 65000) continue;
      bool clear = rtp_min_ == 0 || p + span <= rtp_min_ || p >= rtp_min_ + 200;
      for (int a : avoid) clear = clear && (a < p || a >= p + span);
      if (clear) return p;
    }
    ADD_FAILURE() << "no free span of " << span << " ports";
    return 0;
  }

  // The sip line's entry of GET /v1/health.
  JsonPtr health_line() {
    JsonPtr h = get_data("/v1/health");
    const cJSON* l = nullptr;
    cJSON_ArrayForEach(l, cJSON_GetObjectItem(h.get(), "lines")) if (str(l, "id") == "pbx") return JsonPtr(
        cJSON_Duplicate(l, true));
    return nullptr;
  }

  std::string place_call(const std::string& number) {
    auto r =
        http_request("POST", api("/v1/call"), kToken,
                     R"({"agent_uuid":"agent_sip","phone_number":")" + number + R"(","country_code":"DE"})");
    EXPECT_EQ(r.status, 200) << number << ": " << r.body;
    JsonPtr j = osvi::test::parse_json(r.body);
    return str(cJSON_GetObjectItem(j.get(), "data"), "call_id");
  }

  // The call's record once it is final (status no longer in_progress); null on timeout.
  JsonPtr wait_final(const std::string& call_id, std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      JsonPtr c = get_data("/v1/call/" + call_id);
      const std::string status = str(c.get(), "status");
      if (!status.empty() && status != "in_progress" && !str(c.get(), "ended_at").empty()) return c;
      std::this_thread::sleep_for(100ms);
    }
    return nullptr;
  }

  // Call ids of the inbound calls, newest first.
  std::vector<std::string> inbound_calls() {
    std::vector<std::string> out;
    JsonPtr l = get_data("/v1/calls?call_type=inbound&per_page=100");
    const cJSON* c = nullptr;
    cJSON_ArrayForEach(c, l.get()) out.push_back(str(c, "call_id"));
    return out;
  }

  std::string wait_inbound_call(std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      auto ids = inbound_calls();
      if (!ids.empty()) return ids.front();
      std::this_thread::sleep_for(50ms);
    }
    return {};
  }

  // "role: text" per turn.
  std::string transcript(const std::string& call_id) {
    JsonPtr t = get_data("/v1/call/" + call_id + "/transcript");
    std::string out;
    const cJSON* e = nullptr;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(t.get(), "transcript")) out +=
        str(e, "role") + ": " + str(e, "text") + "\n";
    return out;
  }

  // The loudness (rms dBFS) of every utterance the model stand-in was sent to transcribe.
  std::vector<double> uploads() {
    auto r = http_request("GET", model_->base() + "/control/log", "");
    JsonPtr log = osvi::test::parse_json(r.body);
    std::vector<double> out;
    const cJSON* e = nullptr;
    cJSON_ArrayForEach(e, log.get()) {
      const cJSON* rms = cJSON_GetObjectItem(cJSON_GetObjectItem(e, "audio"), "rms_dbfs");
      if (cJSON_IsNumber(rms)) out.push_back(rms->valuedouble);
    }
    return out;
  }
  double loudest_upload() {
    const auto u = uploads();
    return u.empty() ? -200.0 : *std::max_element(u.begin(), u.end());
  }

  void stop_osvid() {
    if (!daemon_) return;
    daemon_->signal(SIGTERM);
    EXPECT_EQ(daemon_->wait_exit(20s), 0) << daemon_->stderr_text();
    daemon_.reset();
  }

  // The caller's words as baresip's source (8 kHz WAV): after the agent's greeting, then silence.
  std::string caller_wav(const std::string& sentence = kSentence) {
    const std::string path = dir_.file("caller.wav");
    osvi::test::write_speech_wav(path, sentence, 1000, 40000);
    return path;
  }

  // An inbound call from baresip (through `via_port` when not 0: the relay) carried to the agent's goodbye.
  void inbound_call_from_baresip(int via_port, std::string* call_id) {
    osvi::test::BaresipOptions o;
    o.user = "caller";
    o.source_wav = caller_wav();
    ASSERT_EQ(::mkdir(dir_.file("baresip").c_str(), 0700), 0);
    Baresip phone(dir_.file("baresip"), o);
    ASSERT_TRUE(phone.start()) << phone.error();
    const int port = via_port != 0 ? via_port : sip_port_;
    ASSERT_TRUE(phone.command("dial", "sip:201@127.0.0.1:" + std::to_string(port)));
    ASSERT_TRUE(phone.wait_event("CALL_ESTABLISHED", 10s)) << phone.log_text() << daemon_->stderr_text();
    // The agent's goodbye ends the call from the box's side.
    ASSERT_TRUE(phone.wait_event("CALL_CLOSED", 30s)) << phone.log_text() << daemon_->stderr_text();
    *call_id = wait_inbound_call(5s);
    ASSERT_FALSE(call_id->empty());
    JsonPtr c = wait_final(*call_id, 10s);
    ASSERT_TRUE(c) << daemon_->stderr_text();
    EXPECT_EQ(str(c.get(), "status"), "picked");
    EXPECT_EQ(str(c.get(), "line").rfind("pbx.", 0), 0u) << str(c.get(), "line");  // a channel of the trunk
    EXPECT_EQ(str(c.get(), "call_ended_by"), "agent");
    const std::string t = transcript(*call_id);
    EXPECT_NE(t.find(std::string("user: ") + kSentence), std::string::npos) << t;
    EXPECT_NE(t.find("Goodbye"), std::string::npos) << t;
    // The uploaded audio was the caller's speech, not silence or noise.
    EXPECT_GT(loudest_upload(), -40.0);
    // baresip heard the agent: its dump of the decoded audio holds speech.
    const auto heard = phone.recordings("dec");
    ASSERT_FALSE(heard.empty()) << phone.log_text();
    const osvi::test::Wav w = osvi::test::read_wav(heard.front());
    EXPECT_GT(osvi::test::rms_dbfs(w.samples), -50.0) << heard.front();
  }

  osvi::test::TempDir dir_;
  std::unique_ptr<osvi::test::ModelServer> model_;
  std::unique_ptr<DaemonProcess> daemon_;
  int api_port_ = 0;
  int sip_port_ = 0;
  int rtp_min_ = 0;
  std::chrono::steady_clock::time_point started_;
};

// 1. Registration at a registrar that challenges with a digest; the line idle and "registered" in health;
// the refresh before the granted expiry. The start-to-registered time is printed for the bench's record.
TEST_F(SipE2E, RegistersWithDigestChallengeAndRefreshes) {
  const int registrar = osvi::test::free_udp_port_pair();
  Sipp sipp(dir_.path(), {"-sf", osvi::test::sip_scenario("registrar_digest.xml"), "-i", "127.0.0.1", "-p",
                          std::to_string(registrar), "-m", "1", "-key", "expires", "3", "-trace_err",
                          "-trace_msg", "-message_file", dir_.file("registrar-messages.log")});
  ASSERT_NO_FATAL_FAILURE(start_osvid(
      R"("registrar":"127.0.0.1:)" + std::to_string(registrar) + R"(","register_expires_s":60)", false));
  std::string registration;
  JsonPtr line;
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < until) {
    line = health_line();
    registration = str(cJSON_GetObjectItem(line.get(), "sip"), "registration");
    if (registration == "registered") break;
    std::this_thread::sleep_for(20ms);
  }
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_)
          .count();
  ASSERT_EQ(registration, "registered") << print(line.get()) << daemon_->stderr_text() << sipp.output();
  std::printf("[ sip ] registration-to-ready %lld ms (osvid start to registered in /v1/health)\n",
              static_cast<long long>(ms));
  EXPECT_EQ(str(line.get(), "state"), "idle");
  EXPECT_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(line.get(), "sip"), "last_code")->valueint, 200);
  // The registrar granted 3 s: the refresh comes before it runs out, and sipp's scenario ends with it.
  EXPECT_EQ(sipp.wait_exit(10s), 0) << sipp.output() << daemon_->stderr_text()
                                    << osvi::test::read_file(dir_.file("registrar-messages.log"));
  stop_osvid();
}

// 2. baresip calls the box: the agent answers, hears the caller (the transcript has the words) and is heard
// (baresip's recording of the call is not silence).
TEST_F(SipE2E, InboundCallFromBaresipCarriesSpeechBothWays) {
  ASSERT_NO_FATAL_FAILURE(start_osvid(R"("registrar":"127.0.0.1:9","register_expires_s":0)"));
  std::string call_id;
  ASSERT_NO_FATAL_FAILURE(inbound_call_from_baresip(0, &call_id));
  JsonPtr c = get_data("/v1/call/" + call_id);
  EXPECT_EQ(str(c.get(), "from_number"), "+4930123456");
  EXPECT_EQ(http_request("GET", api("/v1/call/" + call_id + "/recording"), kToken).status, 200);
  stop_osvid();
}

// 3. POST /v1/call to a PBX extension and to an E.164 number, both reaching baresip (the "registrar" of a
// line that does not register).
TEST_F(SipE2E, OutboundCallsToExtensionAndE164) {
  osvi::test::BaresipOptions o;
  o.user = "201";
  o.aliases = {"+4930555123"};
  o.source_wav = caller_wav();
  ASSERT_EQ(::mkdir(dir_.file("baresip").c_str(), 0700), 0);
  Baresip phone(dir_.file("baresip"), o);
  ASSERT_TRUE(phone.start()) << phone.error();
  ASSERT_NO_FATAL_FAILURE(start_osvid(R"("registrar":"127.0.0.1:)" + std::to_string(phone.sip_port()) +
                                      R"(","register_expires_s":0)"));
  for (const std::string number : {"201", "+4930555123"}) {
    const std::string id = place_call(number);
    ASSERT_FALSE(id.empty());
    ASSERT_TRUE(phone.wait_event("CALL_ESTABLISHED", 10s))
        << number << phone.log_text() << daemon_->stderr_text();
    JsonPtr c = wait_final(id, 30s);
    ASSERT_TRUE(c) << number << daemon_->stderr_text();
    EXPECT_EQ(str(c.get(), "status"), "picked") << number;
    EXPECT_EQ(str(c.get(), "phone_number"), number) << number;
    const std::string t = transcript(id);
    EXPECT_NE(t.find(std::string("user: ") + kSentence), std::string::npos) << number << "\n" << t;
    EXPECT_TRUE(phone.wait_event("CALL_CLOSED", 5s)) << number;
    EXPECT_NE(phone.log_text().find(number == "201" ? "sip:201@" : "sip:+4930555123@"), std::string::npos);
  }
  // Both callers' words were uploaded as speech.
  const auto u = uploads();
  EXPECT_EQ(std::count_if(u.begin(), u.end(), [](double db) { return db > -40.0; }), 2) << u.size();
  stop_osvid();
}

// 4. SIP final answers map onto the call's status; a far-end BYE ends the call with its record.
TEST_F(SipE2E, StatusMappingsThroughSippScenarios) {
  const int pbx = osvi::test::free_udp_port_pair();
  ASSERT_NO_FATAL_FAILURE(start_osvid(R"("registrar":"127.0.0.1:)" + std::to_string(pbx) +
                                      R"(","register_expires_s":0,"ring_timeout_s":2)"));
  struct Case {
    std::string scenario, status, ended_reason;
  };
  const std::vector<Case> cases = {
      {"uas_486.xml", "busy", ""},
      {"uas_480.xml", "not_picked", ""},
      {"uas_503.xml", "failed", "SIP 503 Service Unavailable"},
      {"e2e_uas_noanswer.xml", "not_picked", ""},
  };
  int n = 0;
  for (const Case& k : cases) {
    std::vector<std::string> args{"-sf",       osvi::test::sip_scenario(k.scenario),
                                  "-i",        "127.0.0.1",
                                  "-p",        std::to_string(pbx),
                                  "-m",        "1",
                                  "-trace_err"};
    Sipp sipp(dir_.path(), args);
    std::this_thread::sleep_for(150ms);  // sipp binds its port
    const std::string id = place_call("+49305550" + std::to_string(10 + n++));
    JsonPtr c = wait_final(id, 15s);
    ASSERT_TRUE(c) << k.scenario << daemon_->stderr_text();
    EXPECT_EQ(str(c.get(), "status"), k.status) << k.scenario;
    if (!k.ended_reason.empty()) {
      EXPECT_EQ(str(c.get(), "call_ended_reason"), k.ended_reason);
    }
    EXPECT_EQ(sipp.wait_exit(5s), 0) << k.scenario << sipp.output();
  }
  // The far end answers, stays silent (nothing for the agent to answer), then hangs up first.
  osvi::test::write_file(dir_.file("speech.ulaw"), std::string(8000, '\xff'));
  Sipp sipp(dir_.path(), {"-sf", osvi::test::sip_scenario("uas_bye.xml"), "-i", "127.0.0.1", "-mi",
                          "127.0.0.1", "-mp", std::to_string(port_span(4)), "-p", std::to_string(pbx), "-m",
                          "1", "-trace_err", "-trace_msg", "-message_file", dir_.file("bye-messages.log")});
  std::this_thread::sleep_for(150ms);
  const std::string id = place_call("+4930555099");
  JsonPtr c = wait_final(id, 15s);
  ASSERT_TRUE(c) << daemon_->stderr_text() << osvi::test::read_file(dir_.file("bye-messages.log"));
  EXPECT_EQ(str(c.get(), "status"), "picked");
  EXPECT_EQ(str(c.get(), "call_ended_by"), "user");
  EXPECT_EQ(str(c.get(), "call_ended_reason"), "customer-ended-call");
  EXPECT_EQ(sipp.wait_exit(5s), 0) << sipp.output() << osvi::test::read_file(dir_.file("bye-messages.log"));
  stop_osvid();
}

// 5. RFC 4733 both ways: baresip's keys reach the call (a "DTMF" user turn), and the agent's send_dtmf
// tool's digits reach baresip as telephone-events.
TEST_F(SipE2E, Rfc4733DigitsBothWays) {
  ASSERT_NO_FATAL_FAILURE(start_model("hello"));
  ASSERT_NO_FATAL_FAILURE(start_osvid(R"("registrar":"127.0.0.1:9","register_expires_s":0)"));
  osvi::test::BaresipOptions o;
  o.user = "caller";
  ASSERT_EQ(::mkdir(dir_.file("baresip").c_str(), 0700), 0);
  Baresip phone(dir_.file("baresip"), o);
  ASSERT_TRUE(phone.start()) << phone.error();
  ASSERT_TRUE(phone.command("dial", "sip:201@127.0.0.1:" + std::to_string(sip_port_)));
  ASSERT_TRUE(phone.wait_event("CALL_ESTABLISHED", 10s)) << phone.log_text() << daemon_->stderr_text();
  std::this_thread::sleep_for(1000ms);  // the greeting
  for (const char* d : {"4", "2", "#"}) {
    ASSERT_TRUE(phone.command("sndcode", d));
    std::this_thread::sleep_for(250ms);
  }
  for (const char* d : {"1", "5", "9"})
    EXPECT_TRUE(phone.wait_event("CALL_DTMF_START", 10s, d))
        << d << phone.log_text() << daemon_->stderr_text();
  ASSERT_TRUE(phone.command("hangup"));
  const std::string id = wait_inbound_call(5s);
  ASSERT_FALSE(id.empty());
  JsonPtr c = wait_final(id, 10s);
  ASSERT_TRUE(c);
  const std::string t = transcript(id);
  EXPECT_NE(t.find("user: DTMF 42#"), std::string::npos) << t;
  stop_osvid();
}

// 6. The transfer_call tool: the box sends REFER (to the agent's transfer number) to the PBX leg, which
// accepts it (202) and reports success (NOTIFY sipfrag 200); the call ends transferred.
TEST_F(SipE2E, TransferCallSendsReferAndEndsTransferred) {
  ASSERT_NO_FATAL_FAILURE(start_model("please transfer me to sales"));
  const int pbx = osvi::test::free_udp_port_pair();
  ASSERT_NO_FATAL_FAILURE(
      start_osvid(R"("registrar":"127.0.0.1:)" + std::to_string(pbx) + R"(","register_expires_s":0)"));
  osvi::test::write_speech_ulaw(dir_.file("speech.ulaw"), "please transfer me to sales", 1200, 4000);
  Sipp sipp(dir_.path(), {"-sf", osvi::test::sip_scenario("e2e_uas_refer.xml"), "-i", "127.0.0.1", "-mi",
                          "127.0.0.1", "-mp", std::to_string(port_span(4)), "-p", std::to_string(pbx), "-m",
                          "1", "-trace_err", "-trace_logs"});
  std::this_thread::sleep_for(150ms);
  const std::string id = place_call("+4930555200");
  JsonPtr c = wait_final(id, 30s);
  ASSERT_TRUE(c) << daemon_->stderr_text() << sipp.output();
  EXPECT_EQ(str(c.get(), "status"), "picked");
  EXPECT_EQ(str(c.get(), "call_ended_reason"), "transferred");
  EXPECT_EQ(sipp.wait_exit(10s), 0) << sipp.output();
  const std::string t = transcript(id);
  EXPECT_NE(t.find(std::string("transferred to ") + kTransferNumber), std::string::npos) << t;
  // sipp logged the Refer-To it got: the agent's transfer number at the PBX.
  std::string logs;
  for (const std::string& f : files_in(dir_.path(), "e2e_uas_refer_", "_logs.log"))
    logs += osvi::test::read_file(f);
  EXPECT_NE(logs.find(std::string("<sip:") + kTransferNumber + "@127.0.0.1"), std::string::npos) << logs;
  stop_osvid();
}

// 7. Twenty calls at once into one sip line: all answered, all recorded, all ended by the agent.
TEST_F(SipE2E, TwentyConcurrentCallsOnOneLine) {
  ASSERT_NO_FATAL_FAILURE(start_osvid(R"("registrar":"127.0.0.1:9","register_expires_s":0,"max_calls":20)"));
  osvi::test::write_speech_ulaw(dir_.file("speech.ulaw"), kSentence, 1500, 5000);
  Sipp sipp(dir_.path(), {"127.0.0.1:" + std::to_string(sip_port_),
                          "-sf",
                          osvi::test::sip_scenario("uac_speech.xml"),
                          "-s",
                          "201",
                          "-i",
                          "127.0.0.1",
                          "-mi",
                          "127.0.0.1",
                          "-p",
                          std::to_string(osvi::test::free_udp_port_pair()),
                          "-mp",
                          std::to_string(port_span(60)),
                          "-m",
                          "20",
                          "-l",
                          "20",
                          "-r",
                          "20",
                          "-trace_err"});
  const auto exit = sipp.wait_exit(60s);
  EXPECT_EQ(exit, 0) << sipp.output() << daemon_->stderr_text();
  const auto ids = inbound_calls();
  EXPECT_EQ(ids.size(), 20u);
  for (const std::string& id : ids) {
    JsonPtr c = wait_final(id, 10s);
    ASSERT_TRUE(c) << id;
    EXPECT_EQ(str(c.get(), "status"), "picked") << id;
    EXPECT_EQ(str(c.get(), "call_ended_by"), "agent") << id;
    EXPECT_NE(transcript(id).find(kSentence), std::string::npos) << id;
    EXPECT_EQ(http_request("GET", api("/v1/call/" + id + "/recording"), kToken).status, 200) << id;
  }
  // Every caller's words reached speech-to-text as speech.
  const auto u = uploads();
  EXPECT_GE(std::count_if(u.begin(), u.end(), [](double db) { return db > -40.0; }), 20) << u.size();
  stop_osvid();
}

// 8. 5 % of the RTP lost and 5 % reordered (both ways, through the relay): the call goes on and the words
// still reach the transcript.
TEST_F(SipE2E, CallSurvivesPacketLossAndReordering) {
  ASSERT_NO_FATAL_FAILURE(start_osvid(R"("registrar":"127.0.0.1:9","register_expires_s":0)"));
  osvi::test::UdpRelay relay(sip_port_, {0.05, 0.05, 17});
  ASSERT_TRUE(relay.start());
  std::string call_id;
  ASSERT_NO_FATAL_FAILURE(inbound_call_from_baresip(relay.sip_port(), &call_id));
  const osvi::test::RelayStats s = relay.stats();
  EXPECT_GT(s.sip, 4u);
  EXPECT_GT(s.rtp_to_box, 100u);
  EXPECT_GT(s.rtp_to_peer, 50u);
  EXPECT_GT(s.dropped, 5u);
  EXPECT_GT(s.reordered, 5u);
  stop_osvid();
}

}  // namespace
