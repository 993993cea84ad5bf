// Chat to call and back end to end: a chat agent's model calls offer_call (osvi-model-server rules), osvid
// places the call on a simulated line through the linked voice agent with the chat summary in its variables,
// the callee talks, and when the call ends the chat session holds its note.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "model_server_process.hpp"
#include "osvi/net/json.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace osvi::test {
namespace {

constexpr const char* kToken = "ChatCallToken012";

TEST(ChatCallE2E, TheAgreedCallIsPlacedWithTheChatSummaryAndItsEndComesBackToTheChat) {
  TempDir dir;
  // The chat's turn: the customer's "call me" gets offer_call, the tool's result the after-tool reply. The
  // call: "Yes speaking" and "Bye" (end_call).
  write_file(dir.file("scenario.json"), R"({"stt":{"transcripts":["Yes speaking","Bye"]},
    "llm":{"after_tool_reply":"We are calling you now.","rules":[
                    {"match_any":"analyse a finished phone call","reply_json":{"summary":"Ravi's router was reset.","data":{},
                      "tags":[],"callback":{"required":false},"opt_out":{"requested":false}}},
                    {"match":"call me","reply":"","tool_calls":[{"name":"offer_call",
                      "arguments":{"phone_number":"9876543210","country_code":"IN","reason":"router"}}]},
                    {"match":"speaking","reply":"Hi, about your router."},
                    {"match":"bye","reply":"Bye.","tool_calls":[{"name":"end_call","arguments":{}}]}]}})");
  ModelServer model(dir.file("scenario.json"), dir.file("model.log"));
  ASSERT_FALSE(model.base().empty()) << model.error();
  const std::string url = model.base() + "/v1";
  const int port = free_loopback_port();
  write_file(
      dir.file("osvid.json"),
      R"({"state_dir":")" + dir.file("state") + R"(","api":{"listen":"127.0.0.1:)" + std::to_string(port) +
          R"(","tokens":[")" + kToken + R"("]},"audio":{"rt_priority":0},)" +
          R"("compliance":{"calling_hours":"00:00-24:00"},)" +
          R"("agents":[{"agent_uuid":"agent_a","name":"Voice","active":true,)" + R"("stt":{"base_url":")" +
          url + R"("},"llm":{"base_url":")" + url + R"("},"voice":{"base_url":")" + url + R"("},)" +
          R"("analysis":{"enabled":true,"llm":{"base_url":")" + url + R"("}},)" +
          R"("greeting":{"text":"Hello {{person_name}}."},"call":{"voicemail":{"detect":false}},)" +
          R"("prompt":{"type":"single","system_prompt":"You call about this chat: {{chat_summary}}"}},)" +
          R"({"agent_uuid":"agent_chat","name":"Chat","mode":"chat","active":true,)" +
          R"("prompt":{"system_prompt":"Be brief."},"llm":{"base_url":")" + url +
          R"(","timeout_ms":20000},"chat":{"voice_agent":"agent_a"}}],)" +
          R"("lines":[{"id":"sim0","type":"sim","agent_uuid":"agent_a","sim":)" +
          R"({"outcome":"answer","rings":1,"ring_interval_ms":200,"steps":[{"say":"Yes speaking",)" +
          R"("after_agent":true},{"say":"Bye","after_agent":true},{"silence_ms":20000}]}}]})");
  DaemonProcess osvid(dir.path(), {"--config", dir.file("osvid.json")});
  ASSERT_TRUE(osvid.wait_notify("READY=1", 10s)) << osvid.stderr_text();
  const std::string base = "http://127.0.0.1:" + std::to_string(port);

  auto created =
      http_request("POST", base + "/v1/chat/session", kToken,
                   R"({"agent_uuid":"agent_chat","customer_id":"cust-1","input_fields":{"name":"Ravi"}})");
  ASSERT_EQ(created.status, 200) << created.body;
  HttpRequestOptions o;
  o.timeout_ms = 30000;
  auto r =
      http_request("POST", base + "/v1/chat/inbound", kToken,
                   R"({"agent_uuid":"agent_chat","customer_id":"cust-1","content":"Please call me"})", o);
  ASSERT_EQ(r.status, 200) << r.body;
  net::JsonPtr j = parse_json(r.body);
  const cJSON* d = cJSON_GetObjectItem(j.get(), "data");
  EXPECT_EQ(json_str(d, "reply"), "We are calling you now.") << r.body << osvid.stderr_text();
  const std::string sid = json_str(d, "session_id");
  ASSERT_FALSE(sid.empty());

  // The call's final record, then the note in the chat.
  std::string call_id, status, note;
  const auto end = std::chrono::steady_clock::now() + 45s;
  while (std::chrono::steady_clock::now() < end && note.empty()) {
    auto calls = http_request("GET", base + "/v1/calls", kToken);
    net::JsonPtr cj = parse_json(calls.body);
    const cJSON* c = nullptr;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(cj.get(), "data")) {
      call_id = json_str(c, "call_id");
      status = json_str(c, "status");
    }
    auto msgs = http_request("GET", base + "/v1/chat/session/" + sid + "/messages?per_page=100", kToken);
    net::JsonPtr mj = parse_json(msgs.body);
    const cJSON* m = nullptr;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(mj.get(), "data")) {
      if (json_str(m, "role") == "system") note = json_str(m, "text");
    }
    if (note.empty()) std::this_thread::sleep_for(200ms);
  }
  ASSERT_FALSE(call_id.empty()) << osvid.stderr_text();
  EXPECT_EQ(status, "picked");
  // Noted once the analysis was done: with its summary.
  ASSERT_EQ(note.rfind("Phone call " + call_id + " ended: picked, ", 0), 0u) << note << "\n"
                                                                             << osvid.stderr_text();

  EXPECT_NE(note.find("s. Summary: Ravi's router was reset."), std::string::npos) << note << "\n"
                                                                                  << osvid.stderr_text();
  auto detail = http_request("GET", base + "/v1/call/" + call_id, kToken);
  net::JsonPtr dj = parse_json(detail.body);
  const cJSON* call = cJSON_GetObjectItem(dj.get(), "data");
  EXPECT_EQ(json_str(call, "phone_number"), "+919876543210");
  EXPECT_EQ(json_str(call, "caller_name"), "Ravi");
  // The voice agent's prompt carried the chat's summary.
  bool summarised = false;
  std::ifstream log(dir.file("model.log"));
  for (std::string line; std::getline(log, line);) {
    if (line.find("You call about this chat: customer: Please call me") != std::string::npos)
      summarised = true;
  }
  EXPECT_TRUE(summarised) << read_file(dir.file("model.log"));
  // The tool's result went back to the model, and the tool turn is in the chat's history.
  EXPECT_NE(read_file(dir.file("model.log")).find("phone rings shortly"), std::string::npos);
  auto msgs = http_request("GET", base + "/v1/chat/session/" + sid + "/messages?per_page=100", kToken);
  EXPECT_NE(msgs.body.find(R"("role":"tool","text":"offer_call()"), std::string::npos) << msgs.body;
  // The session's context holds the note for the model's next turn.
  auto s = http_request("GET", base + "/v1/chat/session/" + sid, kToken);
  EXPECT_NE(s.body.find("Phone call " + call_id + " ended"), std::string::npos) << s.body;
}

}  // namespace
}  // namespace osvi::test
