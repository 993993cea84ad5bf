// Calls end to end: osvid with a simulated line (its caller speaking through alsa-lib) and osvi-model-server
// standing in for the model services — greeting and turns, barge-in, silence, tools, fallback, outbound.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "model_server_process.hpp"
#include "osvi/net/json.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using osvi::net::JsonPtr;
using osvi::test::DaemonProcess;
using osvi::test::http_request;

namespace {

constexpr const char* kToken = "E2eToken01234567";

using osvi::test::ModelServer;

JsonPtr parse(const std::string& s) {
  return osvi::test::parse_json(s);
}
std::string str(const cJSON* o, const char* k) {
  return osvi::test::json_str(o, k);
}

class CallsE2E : public ::testing::Test {
 protected:
  // scenario: the model server's; agent: extra members of the agent object; sim: the line's "sim" object.
  void start(const std::string& scenario, const std::string& agent, const std::string& sim) {
    osvi::test::write_file(dir_.file("scenario.json"), scenario);
    model_ = std::make_unique<ModelServer>(dir_.file("scenario.json"), dir_.file("model.log"));
    ASSERT_FALSE(model_->base().empty());
    const std::string url = model_->base() + "/v1";
    port_ = osvi::test::free_loopback_port();
    const std::string cfg =
        R"({"state_dir":")" + dir_.file("state") + R"(","api":{"listen":"127.0.0.1:)" +
        std::to_string(port_) + R"(","tokens":[")" + kToken + R"("]},"audio":{"rt_priority":0},)" +
        R"("agents":[{"agent_uuid":"agent_a","name":"A","active":true,)" + R"("stt":{"base_url":")" + url +
        R"("},"llm":{"base_url":")" + url + R"("},"voice":{"base_url":")" + url + R"("})" +
        (agent.empty() ? "" : "," + agent) + R"(}],)" + top_extra_ +
        R"("lines":[{"id":"sim0","type":"sim","agent_uuid":"agent_a",)" + line_extra_ + R"("sim":)" + sim +
        "}]}";
    osvi::test::write_file(dir_.file("osvid.json"), cfg);
    std::vector<std::string> args{"--config", dir_.file("osvid.json")};
    if (relative_state_) {
      // As the README runs it: `osvid --state-dir ./state` from the folder that holds it.
      args.insert(args.end(), {"--state-dir", "./state"});
      char cwd[4096];
      ASSERT_NE(::getcwd(cwd, sizeof cwd), nullptr);
      ASSERT_EQ(::chdir(dir_.path().c_str()), 0);
      daemon_ = std::make_unique<DaemonProcess>(dir_.path(), args);
      ASSERT_EQ(::chdir(cwd), 0);
    } else {
      daemon_ = std::make_unique<DaemonProcess>(dir_.path(), args);
    }
    ASSERT_TRUE(daemon_->wait_notify("READY=1", 10s)) << daemon_->stderr_text();
  }

  std::string api(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  // The first call that reached a final status.
  JsonPtr wait_call_done(std::chrono::seconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      auto r = http_request("GET", api("/v1/calls"), kToken);
      JsonPtr j = parse(r.body);
      const cJSON* data = j ? cJSON_GetObjectItem(j.get(), "data") : nullptr;
      const cJSON* c = nullptr;
      cJSON_ArrayForEach(c, data) {
        if (str(c, "status") != "in_progress") {
          auto d = http_request("GET", api("/v1/call/" + str(c, "call_id")), kToken);
          JsonPtr dj = parse(d.body);
          return dj ? JsonPtr(cJSON_Duplicate(cJSON_GetObjectItem(dj.get(), "data"), true)) : nullptr;
        }
      }
      std::this_thread::sleep_for(200ms);
    }
    ADD_FAILURE() << "no call ended within " << timeout.count() << " s\n" << daemon_->stderr_text();
    return nullptr;
  }

  struct Turn {
    std::string role, text;
    bool interrupted = false;
    std::string latency;
  };
  std::vector<Turn> transcript(const std::string& call_id) {
    auto r = http_request("GET", api("/v1/call/" + call_id + "/transcript"), kToken);
    JsonPtr j = parse(r.body);
    std::vector<Turn> out;
    const cJSON* t = j ? cJSON_GetObjectItem(cJSON_GetObjectItem(j.get(), "data"), "transcript") : nullptr;
    const cJSON* e = nullptr;
    cJSON_ArrayForEach(e, t) {
      Turn turn{str(e, "role"), str(e, "text"), cJSON_IsTrue(cJSON_GetObjectItem(e, "interrupted")) != 0, ""};
      if (const cJSON* l = cJSON_GetObjectItem(e, "latency")) turn.latency = osvi::net::json_print(l);
      out.push_back(turn);
    }
    return out;
  }

  static std::string dump(const std::vector<Turn>& turns) {
    std::string s;
    for (const Turn& t : turns) s += t.role + (t.interrupted ? "*" : "") + ": " + t.text + "\n";
    return s;
  }

  // Every chat request the model server received: its "messages" arrays.
  std::vector<JsonPtr> chat_requests() {
    std::vector<JsonPtr> out;
    std::ifstream f(dir_.file("model.log"));
    std::string line;
    while (std::getline(f, line)) {
      JsonPtr j = parse(line);
      if (!j) continue;
      if (str(j.get(), "endpoint").find("chat") == std::string::npos) continue;
      out.emplace_back(cJSON_Duplicate(cJSON_GetObjectItem(j.get(), "messages"), true));
    }
    return out;
  }

  bool relative_state_ = false;  // --state-dir ./state, run from dir_
  std::string line_extra_;       // members added to the line object, each followed by a comma
  std::string top_extra_;        // members added to the configuration's top level, each followed by a comma
  osvi::test::TempDir dir_;
  std::unique_ptr<ModelServer> model_;
  std::unique_ptr<DaemonProcess> daemon_;
  int port_ = 0;
};

// The agent greets, the caller speaks twice, the agent answers each time and ends the call with end_call.
TEST_F(CallsE2E, GreetingTwoTurnsAndEndCall) {
  start(R"({"stt":{"transcripts":["I want an appointment","No thanks, bye"]},
            "llm":{"rules":[{"match":"appointment","reply":"Sure. Which day?"},
                            {"match":"bye","reply":"Goodbye!","tool_calls":[{"name":"end_call","arguments":{}}]}]}})",
        R"("greeting":{"text":"Hello, front desk."})",
        R"({"incoming_after_s":1,"steps":[{"say":"I want an appointment","after_agent":true},
             {"say":"No thanks, bye","after_agent":true},{"silence_ms":20000}]})");
  JsonPtr call = wait_call_done(45s);
  ASSERT_TRUE(call);
  EXPECT_EQ(str(call.get(), "status"), "picked");
  EXPECT_EQ(str(call.get(), "call_type"), "inbound");
  EXPECT_EQ(str(call.get(), "call_ended_reason"), "assistant-ended-call");
  EXPECT_EQ(str(call.get(), "call_ended_by"), "agent");
  const std::string id = str(call.get(), "call_id");
  auto t = transcript(id);
  std::vector<std::pair<std::string, std::string>> want = {{"agent", "Hello, front desk."},
                                                           {"user", "I want an appointment"},
                                                           {"agent", "Sure. Which day?"},
                                                           {"user", "No thanks, bye"}};
  ASSERT_GE(t.size(), want.size() + 1) << dump(t);
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(t[i].role, want[i].first) << dump(t);
    EXPECT_EQ(t[i].text, want[i].second) << dump(t);
  }
  EXPECT_NE(dump(t).find("agent: Goodbye!"), std::string::npos) << dump(t);
  EXPECT_NE(t[2].latency.find("voice_to_voice_ms"), std::string::npos) << t[2].latency;
  EXPECT_NE(t[2].latency.find("stt_sent_ms"), std::string::npos) << t[2].latency;

  // The stereo recording is there, behind a signed URL that needs no token.
  auto rec = http_request("GET", api("/v1/call/" + id + "/recording"), kToken);
  ASSERT_EQ(rec.status, 200) << rec.body;
  JsonPtr rj = parse(rec.body);
  const std::string url = str(cJSON_GetObjectItem(rj.get(), "data"), "recording_url");
  auto file = http_request("GET", url, "");
  EXPECT_EQ(file.status, 200);
  ASSERT_GT(file.body.size(), 1000u);
  EXPECT_EQ(file.body.substr(0, 4), "OggS");
  // The file as served must satisfy an independent reader (opus-tools, a test dependency installed by
  // .ci/install-deps): opusinfo exits non-zero on any warning (no EOS, holes, bad granules).
  osvi::test::write_file(dir_.file("call.opus"), file.body);
  const std::string cmd =
      "opusinfo '" + dir_.file("call.opus") + "' > '" + dir_.file("opusinfo.txt") + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  const std::string info = osvi::test::read_file(dir_.file("opusinfo.txt"));
  EXPECT_EQ(rc, 0) << cmd << "\n" << info;
  EXPECT_NE(info.find("Channels: 2\n"), std::string::npos) << info;
  EXPECT_NE(info.find("Original sample rate: 16000 Hz"), std::string::npos) << info;
  EXPECT_NE(info.find("CALL_ID=" + id), std::string::npos) << info;
}

// `osvid --state-dir ./state` (the README's usage): the recording is stored once, not under the relative
// folder joined to itself, and served. The line's configured number is the call's from_number.
TEST_F(CallsE2E, RecordingServedWithARelativeStateDirAndFromNumberFromConfig) {
  relative_state_ = true;
  line_extra_ = R"("number":"+911140000000",)";
  start(R"({"stt":{"transcripts":["Bye now"]},
            "llm":{"rules":[{"match":"bye","reply":"Goodbye!","tool_calls":[{"name":"end_call","arguments":{}}]}]}})",
        R"("greeting":{"text":"Hello."})",
        R"({"incoming_after_s":1,"steps":[{"say":"Bye now","after_agent":true},{"silence_ms":20000}]})");
  JsonPtr call = wait_call_done(45s);
  ASSERT_TRUE(call);
  EXPECT_EQ(str(call.get(), "from_number"), "+911140000000");
  const std::string id = str(call.get(), "call_id");
  auto rec = http_request("GET", api("/v1/call/" + id + "/recording"), kToken);
  ASSERT_EQ(rec.status, 200) << rec.body << daemon_->stderr_text();
  JsonPtr rj = parse(rec.body);
  auto file = http_request("GET", str(cJSON_GetObjectItem(rj.get(), "data"), "recording_url"), "");
  EXPECT_EQ(file.status, 200);
  ASSERT_GT(file.body.size(), 1000u);
  EXPECT_EQ(file.body.substr(0, 4), "OggS");
  EXPECT_EQ(file.body, osvi::test::read_file(dir_.file("state/recordings/" + id + ".opus")));
}

// The caller cuts the agent off mid-reply: playback stops, the turn is marked interrupted, and the next
// request to the model carries only what the caller heard.
TEST_F(CallsE2E, BargeInTrimsTheContext) {
  const std::string long_reply =
      "Our branch is open from nine to five on weekdays. On Saturdays we open at ten and close at two. "
      "We are closed on Sundays and on public holidays. Parking is available behind the building. "
      "The nearest bus stop is two minutes away.";
  start(R"({"stt":{"transcripts":["Tell me the opening hours","Stop, thank you","Bye"]},
            "llm":{"rules":[{"match":"hours","reply":")" +
            long_reply + R"("},
                            {"match":"stop","reply":"Sure."},
                            {"match":"bye","reply":"Bye.","tool_calls":[{"name":"end_call","arguments":{}}]}]}})",
        R"("greeting":{"text":"Hello."},"call":{"min_interruption_s":0.3})",
        R"({"incoming_after_s":1,"steps":[{"say":"Tell me the opening hours","after_agent":true},
             {"wait_ms":3500},{"say":"Stop, thank you"},{"say":"Bye","after_agent":true},{"silence_ms":20000}]})");
  JsonPtr call = wait_call_done(50s);
  ASSERT_TRUE(call);
  auto t = transcript(str(call.get(), "call_id"));
  const Turn* cut = nullptr;
  for (const Turn& turn : t)
    if (turn.role == "agent" && turn.interrupted) cut = &turn;
  ASSERT_NE(cut, nullptr) << dump(t);
  EXPECT_LT(cut->text.size(), long_reply.size()) << dump(t);
  EXPECT_EQ(long_reply.rfind(cut->text.substr(0, 20), 0), 0u) << cut->text;

  // The request after the interruption: its assistant message is the heard part, not the whole reply.
  bool checked = false;
  for (const JsonPtr& msgs : chat_requests()) {
    const cJSON* m = nullptr;
    cJSON_ArrayForEach(m, msgs.get()) {
      if (str(m, "role") == "assistant" && str(m, "content").rfind("Our branch", 0) == 0) {
        EXPECT_EQ(str(m, "content"), cut->text);
        EXPECT_NE(str(m, "content"), long_reply);
        checked = true;
      }
    }
  }
  EXPECT_TRUE(checked) << "no request carried the interrupted reply";
}

// A silent caller hears the silence message once, then the agent hangs up (silence_timeout).
TEST_F(CallsE2E, SilenceRepromptThenHangup) {
  start(
      R"({"stt":{"transcripts":[]}})",
      R"("greeting":{"text":"Hello."},"call":{"silence":{"timeout_s":1,"message":"Are you still there?","max_prompts":1}})",
      R"({"incoming_after_s":1,"steps":[{"silence_ms":30000}]})");
  JsonPtr call = wait_call_done(30s);
  ASSERT_TRUE(call);
  EXPECT_EQ(str(call.get(), "call_ended_reason"), "silence_timeout");
  auto t = transcript(str(call.get(), "call_id"));
  ASSERT_EQ(t.size(), 2u) << dump(t);
  EXPECT_EQ(t[1].text, "Are you still there?");
}

// transfer_call: the transfer message, then the line transfers the call to the configured number.
TEST_F(CallsE2E, TransferToAHuman) {
  start(
      R"({"stt":{"transcripts":["I need a human"]},
            "llm":{"rules":[{"match":"human","reply":"","tool_calls":[{"name":"transfer_call","arguments":{}}]}]}})",
      R"("greeting":{"text":"Hello."},"tools":{"transfer":{"enabled":true,"number":"+919800000099","message":"Transferring you now."}})",
      R"({"incoming_after_s":1,"steps":[{"say":"I need a human","after_agent":true},{"silence_ms":20000}]})");
  JsonPtr call = wait_call_done(30s);
  ASSERT_TRUE(call);
  EXPECT_EQ(str(call.get(), "call_ended_reason"), "transferred");
  auto t = transcript(str(call.get(), "call_id"));
  EXPECT_NE(dump(t).find("agent: Transferring you now."), std::string::npos) << dump(t);
  EXPECT_NE(dump(t).find("transferred to +919800000099"), std::string::npos) << dump(t);
}

// Multi-prompt: the model moves the conversation to another state; the next request carries its prompt.
TEST_F(CallsE2E, MultiPromptTransition) {
  start(
      R"({"stt":{"transcripts":["I want a demo","Bye"]},
            "llm":{"rules":[{"match":"demo","reply":"","tool_calls":[{"name":"switch_state","arguments":{"state":"closing"}}]},
                            {"match":"bye","reply":"Bye.","tool_calls":[{"name":"end_call","arguments":{}}]}],
                   "after_tool_reply":"Great, let us book it."}})",
      R"("greeting":{"text":"Hello."},"prompt":{"type":"multi","initial_state":"qualify","states":[
             {"name":"qualify","prompt":"QUALIFY-PROMPT","transitions":[{"to":"closing","when":"the caller wants a demo"}]},
             {"name":"closing","prompt":"CLOSING-PROMPT"}]})",
      R"({"incoming_after_s":1,"steps":[{"say":"I want a demo","after_agent":true},{"say":"Bye","after_agent":true},{"silence_ms":20000}]})");
  JsonPtr call = wait_call_done(40s);
  ASSERT_TRUE(call);
  auto reqs = chat_requests();
  ASSERT_GE(reqs.size(), 2u);
  auto system_of = [](const JsonPtr& msgs) { return str(cJSON_GetArrayItem(msgs.get(), 0), "content"); };
  EXPECT_NE(system_of(reqs[0]).find("QUALIFY-PROMPT"), std::string::npos);
  EXPECT_NE(system_of(reqs[1]).find("CLOSING-PROMPT"), std::string::npos) << system_of(reqs[1]);
  auto t = transcript(str(call.get(), "call_id"));
  EXPECT_NE(dump(t).find("agent: Great, let us book it."), std::string::npos) << dump(t);
}

// The model never answers: the caller hears the filler, then the local message and the tone, leaves a
// voicemail, and the record asks for a callback. No gap without agent audio exceeds 3 s.
TEST_F(CallsE2E, UpstreamTimeoutFallsBackToVoicemail) {
  start(
      R"({"stt":{"transcripts":["Hello there","This is my message"]},"llm":{"fault":{"fault":"hang","count":0}}})",
      R"("greeting":{"text":"Hello."})",
      R"({"incoming_after_s":1,"party_log":")" + dir_.file("party.log") +
          R"(","steps":[{"say":"Hello there","after_agent":true},{"say":"This is my message","after_agent":true},{"silence_ms":20000}]})");
  JsonPtr call = wait_call_done(45s);
  ASSERT_TRUE(call);
  EXPECT_EQ(str(call.get(), "call_ended_reason"), "upstream_failure");
  EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(call.get(), "callback_required")))
      << osvi::net::json_print(call.get());
  auto t = transcript(str(call.get(), "call_id"));
  EXPECT_NE(dump(t).find("technical trouble"), std::string::npos) << dump(t);
  auto rec = http_request("GET", api("/v1/call/" + str(call.get(), "call_id") + "/recording"), kToken);
  EXPECT_EQ(rec.status, 200) << rec.body;

  // Dead air, from the party's side: the end of each caller step to the next agent audio.
  std::ifstream f(dir_.file("party.log"));
  std::string line;
  int64_t step_end = -1, worst = 0, rate = 16000;
  while (std::getline(f, line)) {
    JsonPtr j = parse(line);
    if (!j) continue;
    const std::string ev = str(j.get(), "event");
    const int64_t sample = static_cast<int64_t>(cJSON_GetNumberValue(cJSON_GetObjectItem(j.get(), "sample")));
    rate = static_cast<int64_t>(cJSON_GetNumberValue(cJSON_GetObjectItem(j.get(), "rate")));
    if (ev == "step_end") step_end = sample;
    if (ev == "agent_start" && step_end >= 0) {
      worst = std::max(worst, sample - step_end);
      step_end = -1;
    }
  }
  EXPECT_GT(worst, 0);
  EXPECT_LE(worst, 3 * rate) << "dead air " << static_cast<double>(worst) / static_cast<double>(rate) << " s";
}

// POST /v1/call places an outbound call on the free line; the callee answers and the agent talks.
TEST_F(CallsE2E, OutboundCallFromTheApi) {
  start(
      R"({"stt":{"transcripts":["Yes speaking","Bye"]},
            "llm":{"rules":[{"match":"speaking","reply":"Hi."},
                            {"match":"bye","reply":"Bye.","tool_calls":[{"name":"end_call","arguments":{}}]}]}})",
      R"("greeting":{"text":"Hello {{person_name}}, this is the bank."},"call":{"voicemail":{"detect":false}},)"
      R"("prompt":{"type":"single","system_prompt":"You call {{person_name}} about {{topic}}."})",
      R"({"outcome":"answer","rings":1,"ring_interval_ms":200,"steps":[{"say":"Yes speaking","after_agent":true},{"say":"Bye","after_agent":true},{"silence_ms":20000}]})");
  auto r = http_request(
      "POST", api("/v1/call"), kToken,
      R"({"agent_uuid":"agent_a","phone_number":"9876543210","country_code":"IN","person_name":"Ravi",)"
      R"("additional_data":{"topic":"a loan"}})");
  ASSERT_EQ(r.status, 200) << r.body;
  JsonPtr j = parse(r.body);
  const std::string id = str(cJSON_GetObjectItem(j.get(), "data"), "call_id");
  ASSERT_FALSE(id.empty());
  auto busy = http_request("GET", api("/v1/call/" + id), kToken);
  EXPECT_EQ(busy.status, 200);
  JsonPtr call = wait_call_done(40s);
  ASSERT_TRUE(call);
  EXPECT_EQ(str(call.get(), "call_id"), id);
  EXPECT_EQ(str(call.get(), "phone_number"), "+919876543210");
  EXPECT_EQ(str(call.get(), "status"), "picked");
  EXPECT_EQ(str(call.get(), "call_type"), "outbound");
  // V1CallDetail.caller_name is the other party's name; the sim line has no number of its own: null, not "".
  EXPECT_EQ(str(call.get(), "caller_name"), "Ravi");
  EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(call.get(), "from_number")))
      << osvi::net::json_print(call.get());
  auto t = transcript(id);
  ASSERT_GE(t.size(), 1u);
  EXPECT_EQ(t[0].text, "Hello Ravi, this is the bank.") << dump(t);
  EXPECT_NE(dump(t).find("agent: Hi."), std::string::npos) << dump(t);
  // The prompt's {{variables}} came from person_name and additional_data.
  auto reqs = chat_requests();
  ASSERT_FALSE(reqs.empty());
  EXPECT_NE(str(cJSON_GetArrayItem(reqs[0].get(), 0), "content").find("You call Ravi about a loan."),
            std::string::npos);
}

// The callee answers with "Hello?"; answering-machine detection (on by default) hears a person and the agent
// greets: the record carries the abandonment guard's measure, from the end of the hello to the agent's first
// audio (docs/api.md, greeting_gap_ms).
TEST_F(CallsE2E, OutboundAnswerHasItsGreetingGapOnTheRecord) {
  start(R"({"stt":{"transcripts":[]},"llm":{"default_reply":"Fine."}})",
        R"("greeting":{"text":"Hello, this is the bank. Is this a good time?"})",
        R"({"outcome":"answer","rings":1,"ring_interval_ms":200,)"
        R"("steps":[{"wait_ms":400},{"say":"Hello?","ms":0},{"hangup":true,"after_agent":true}]})");
  auto r = http_request("POST", api("/v1/call"), kToken,
                        R"({"agent_uuid":"agent_a","phone_number":"9876543210","country_code":"IN"})");
  ASSERT_EQ(r.status, 200) << r.body;
  JsonPtr call = wait_call_done(40s);
  ASSERT_TRUE(call);
  EXPECT_EQ(str(call.get(), "status"), "picked");
  const cJSON* gap = cJSON_GetObjectItem(call.get(), "greeting_gap_ms");
  ASSERT_TRUE(cJSON_IsNumber(gap)) << osvi::net::json_print(call.get()) << daemon_->stderr_text();
  // AMD waits for 800 ms of silence after the hello before it calls it a person: the gap cannot be shorter.
  EXPECT_GE(gap->valuedouble, 700);
  EXPECT_LT(gap->valuedouble, 10000);
}

// The caller asks not to be called again: the model calls opt_out, the caller hears the goodbye, the call
// ends as theirs, and from then on the API refuses to call the number.
TEST_F(CallsE2E, OptOutToolPutsTheCallerOnTheDndList) {
  start(R"({"stt":{"transcripts":["Please do not call me again"]},
            "llm":{"rules":[{"match":"call me again","reply":"",
                             "tool_calls":[{"name":"opt_out","arguments":{"reason":"asked on the phone"}}]}]}})",
        R"("greeting":{"text":"Hello."})",
        R"({"incoming_after_s":1,"steps":[{"say":"Please do not call me again","after_agent":true},)"
        R"({"silence_ms":20000}]})");
  JsonPtr call = wait_call_done(45s);
  ASSERT_TRUE(call);
  EXPECT_EQ(str(call.get(), "call_ended_reason"), "opt_out");
  EXPECT_EQ(str(call.get(), "call_ended_by"), "user");
  const std::string phone = str(call.get(), "phone_number");
  auto t = transcript(str(call.get(), "call_id"));
  EXPECT_NE(dump(t).find("tool: opt_out: " + phone + " added to the do-not-disturb list"), std::string::npos)
      << dump(t);
  EXPECT_NE(dump(t).find("agent: You will not be called again. Goodbye."), std::string::npos) << dump(t);
  auto again =
      http_request("POST", api("/v1/call"), kToken,
                   R"({"agent_uuid":"agent_a","phone_number":")" + phone + R"(","country_code":"IN"})");
  EXPECT_EQ(again.status, 400) << again.body;
  EXPECT_NE(again.body.find("do-not-disturb"), std::string::npos) << again.body;
}

// The caller asks what the knowledge base knows: the model calls search_knowledge_base, the knowledge filler
// covers the search, the next request carries the document's row and the reply is spoken.
TEST_F(CallsE2E, KnowledgeSearchFeedsTheNextReply) {
  osvi::test::write_file(dir_.file("facts.csv"),
                         "topic,answer\n"
                         "Opening hours,The clinic is closed on Sundays and public holidays.\n"
                         "Fees,A consultation costs Rs 500.\n"
                         "Parking,Cars park in the basement; two hours are free.\n"
                         "Reports,Blood test reports are ready after 24 hours.\n");
  top_extra_ = R"("knowledge":{"documents":[{"name":"Clinic facts","format":"csv","path":")" +
               dir_.file("facts.csv") + R"("}]},)";
  start(R"({"stt":{"transcripts":["Are you open on Sunday"]},
            "llm":{"rules":[{"match":"sunday","reply":"",
                             "tool_calls":[{"name":"search_knowledge_base","arguments":{"query":"open on Sundays"}}]}],
                   "after_tool_reply":"We are closed on Sundays."}})",
        R"("greeting":{"text":"Hello, front desk."},)"
        R"("knowledge":{"documents":["Clinic facts"],"relevance_threshold":0.1})",
        R"({"incoming_after_s":1,"steps":[{"say":"Are you open on Sunday","after_agent":true},)"
        R"({"silence_ms":500,"after_agent":true},{"hangup":true}]})");
  JsonPtr call = wait_call_done(45s);
  ASSERT_TRUE(call);
  const std::string t = dump(transcript(str(call.get(), "call_id")));
  EXPECT_NE(t.find("tool: search_knowledge_base {\"query\":\"open on Sundays\"} -> 1 hit (Clinic facts)\n"
                   "agent: Let me check that for you.\nagent: We are closed on Sundays.\n"),
            std::string::npos)
      << t;
  bool carried = false;
  for (const JsonPtr& msgs : chat_requests()) {
    const cJSON* m = nullptr;
    cJSON_ArrayForEach(m, msgs.get()) {
      if (str(m, "role") == "tool" &&
          str(m, "content").find("closed on Sundays and public holidays") != std::string::npos &&
          str(m, "content").find("Sources: Clinic facts") != std::string::npos)
        carried = true;
    }
  }
  EXPECT_TRUE(carried);
}

// The caller presses the agent's opt-out key while the agent talks: the in-band detector hears it, the agent
// stops, says the configured message and ends the call; the number is on the list.
TEST_F(CallsE2E, OptOutKeyPressedDuringTheGreeting) {
  start(R"({"stt":{"transcripts":[]},"llm":{"default_reply":"Fine."}})",
        R"("greeting":{"text":"Hello, this is the bank with an offer on loans that runs for a long while."},)"
        R"("tools":{"opt_out":{"dtmf_key":"9","message":"Removed from our list. Goodbye."}})",
        R"({"incoming_after_s":1,"steps":[{"wait_ms":1500},{"dtmf":"9"},{"silence_ms":20000}]})");
  JsonPtr call = wait_call_done(40s);
  ASSERT_TRUE(call);
  EXPECT_EQ(str(call.get(), "call_ended_reason"), "opt_out") << daemon_->stderr_text();
  EXPECT_EQ(str(call.get(), "call_ended_by"), "user");
  const std::string phone = str(call.get(), "phone_number");
  auto t = transcript(str(call.get(), "call_id"));
  EXPECT_NE(dump(t).find("tool: opt_out: " + phone +
                         " added to the do-not-disturb list (caller pressed 9 to opt out)"),
            std::string::npos)
      << dump(t);
  ASSERT_FALSE(t.empty());
  EXPECT_EQ(t.back().text, "Removed from our list. Goodbye.") << dump(t);
  // The greeting was cut at the key: what the caller heard of it, marked interrupted.
  const Turn* cut = nullptr;
  for (const Turn& turn : t)
    if (turn.role == "agent" && turn.interrupted) cut = &turn;
  ASSERT_NE(cut, nullptr) << "the greeting went on over the key\n" << dump(t);
  EXPECT_EQ(std::string("Hello, this is the bank with an offer").rfind(cut->text.substr(0, 10), 0), 0u)
      << dump(t);
  auto list = http_request("GET", api("/v1/dnd_numbers?agent_uuid=agent_a"), kToken);
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_NE(list.body.find(phone), std::string::npos) << list.body;
  EXPECT_NE(list.body.find("caller pressed 9 to opt out"), std::string::npos) << list.body;
}

}  // namespace

namespace {

// The README's first command ends in `osvid --demo`: it must hold a whole conversation and report it.
TEST(Demo, RunsOneConversationAndPrintsTheReport) {
  osvi::test::TempDir dir;
  const std::string cmd = std::string("timeout 50 ") + OSVID_PATH + " --demo --state-dir " +
                          dir.file("state") +
                          " --listen 127.0.0.1:" + std::to_string(osvi::test::free_loopback_port()) + " 2>" +
                          dir.file("stderr.txt");
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  ASSERT_TRUE(WIFEXITED(status)) << out;
  EXPECT_EQ(WEXITSTATUS(status), 0) << out << osvi::test::read_file(dir.file("stderr.txt"));
  EXPECT_NE(out.find("Caller: Hello, I would like to book an appointment for tomorrow."), std::string::npos)
      << out;
  EXPECT_NE(out.find("Agent:  Of course. What time tomorrow suits you?"), std::string::npos) << out;
  EXPECT_NE(out.find("status picked, inbound, line sim0"), std::string::npos) << out;
  const std::string key = "Recording (stereo Ogg Opus, left caller, right agent): ";
  const size_t at = out.find(key);
  ASSERT_NE(at, std::string::npos) << out;
  std::string path = out.substr(at + key.size());
  path = path.substr(0, path.find('\n'));
  EXPECT_EQ(osvi::test::read_file(path).substr(0, 4), "OggS") << path;
}

}  // namespace
