// The chat endpoints through a real in-process HTTP server and a ChatService on virtual time with
// SimUpstream: every v1, legacy and extension endpoint's shapes and errors.
#include <gtest/gtest.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "api_harness.hpp"
#include "chunked_client.hpp"
#include "daemon_process.hpp"
#include "osvi/api/chat_events.hpp"
#include "osvi/api/event_hub.hpp"
#include "osvi/chat/chat_service.hpp"
#include "upstream_sim.hpp"
#include "virtual_time.hpp"

namespace osvi::test {
namespace {

using daemon::AgentConfig;
using daemon::AgentMode;

const std::vector<std::string> kSessionKeys = {"id",       "chat_agent_id",  "account_id", "customer_id",
                                               "mode",     "help_requested", "status",     "current_state",
                                               "metadata", "active_human",   "created_at", "updated_at"};

AgentConfig agent(const std::string& uuid, AgentMode mode, bool active = true) {
  AgentConfig a;
  a.agent_uuid = uuid;
  a.name = "Agent " + uuid;
  a.mode = mode;
  a.active = active;
  a.prompt.system_prompt = "Be helpful.";
  a.fallback.message = "Sorry, try again later.";
  a.greeting.text = "Welcome {{person_name}}!";
  return a;
}

net::SimLlmReply say(std::string text) {
  net::SimLlmReply r;
  r.text = std::move(text);
  return r;
}

// Whether text has pattern's shape: '#' a digit, anything else itself. (Not std::regex: GCC 12 reports a
// false -Wmaybe-uninitialized inside it in the sanitizer build.)
bool shaped(const std::string& text, std::string_view pattern) {
  if (text.size() != pattern.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    if (pattern[i] == '#' ? !std::isdigit(static_cast<unsigned char>(text[i])) : text[i] != pattern[i])
      return false;
  }
  return true;
}

class ApiChatTest : public ApiTest {
 protected:
  void SetUp() override {
    config_.agents = {agent("agent_chat", AgentMode::chat), agent("agent_b", AgentMode::chat),
                      agent("agent_voice", AgentMode::voice), agent("agent_idle", AgentMode::chat, false)};
    AgentConfig locked = agent("agent_locked", AgentMode::chat);
    locked.chat.whisper = false;
    config_.agents.push_back(locked);
    auto s = daemon::Store::open(daemon::StoreOptions{dir_.file("osvi.db")}, vt_.clock);
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(*s);
    std::vector<daemon::AgentRecord> records;
    for (const AgentConfig& a : config_.agents)
      records.push_back({0, a.agent_uuid, a.name, a.mode == AgentMode::chat ? "chat" : "voice", a.active,
                         false, "{}", "", 0, 0});
    ASSERT_TRUE(store_->agents().sync(records).ok());
    sim_ = std::make_unique<net::SimUpstream>(vt_.schedule());
    auto chat =
        daemon::ChatService::create({&config_, store_.get(), sim_.get(), &vt_.clock, vt_.timer_factory()});
    ASSERT_TRUE(chat.ok()) << chat.error().message;
    chat_ = std::move(*chat);
    tokens_ = {daemon::ApiToken{kApiToken, {}, true}, daemon::ApiToken{kApiTokenB, {"agent_b"}, false}};
    ctx_.config = &config_;
    ctx_.tokens = &tokens_;
    ctx_.store = store_.get();
    ctx_.clock = &vt_.clock;
    ctx_.listen = "127.0.0.1:1";
    ctx_.chat = chat_.get();
    api_ = std::make_unique<daemon::Api>(ctx_);
    net::HttpServerOptions o;
    o.port = 0;
    Status started = served_.start(
        o, [this](net::HttpRequest& req, net::HttpReply reply) { api_->handle(req, std::move(reply)); });
    ASSERT_TRUE(started.ok()) << started.error().message;
    port_ = served_.port();
    // Virtual time runs on while the tests wait for replies: 10 ms of it per real millisecond.
    pump_ = std::thread([this] {
      while (!stop_) {
        served_.locked([this] { vt_.advance_ms(10); });
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
  }
  void TearDown() override {
    stop_ = true;
    if (pump_.joinable()) pump_.join();
    served_.stop();
  }

  void push(std::string text) {
    served_.locked([&] { sim_->push_llm(say(std::move(text))); });
  }

  std::string create(const std::string& customer = "cust-1", const std::string& agent_uuid = "agent_chat") {
    auto r = request("POST", "/v1/chat/session",
                     R"({"agent_uuid":")" + agent_uuid + R"(","customer_id":")" + customer + R"("})");
    EXPECT_EQ(r.status, 200) << r.body;
    return api_str(r.data(), "id");
  }

  ApiReply inbound(const std::string& content, const std::string& customer = "cust-1",
                   const std::string& token = kApiToken) {
    return request(
        "POST", "/v1/chat/inbound",
        R"({"agent_uuid":"agent_chat","customer_id":")" + customer + R"(","content":")" + content + R"("})",
        token);
  }

  ApiReply support(const std::string& id, const std::string& body, const std::string& token = kApiToken) {
    return request("POST", "/v1/chat/session/" + id + "/support", body, token);
  }

  VirtualTime vt_;
  std::unique_ptr<net::SimUpstream> sim_;
  std::unique_ptr<daemon::ChatService> chat_;
  std::thread pump_;
  std::atomic<bool> stop_{false};
};

TEST_F(ApiChatTest, CreateSessionHasTheSpecShape) {
  auto r =
      request("POST", "/v1/chat/session",
              R"({"agent_uuid":"agent_chat","customer_id":"+919800000001","input_fields":{"plan":"gold"},)"
              R"("context":["a","","b","c","d","e","f"]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(cJSON_IsTrue(r.get("success")));
  const cJSON* d = r.data();
  EXPECT_EQ(api_keys(d), kSessionKeys);
  EXPECT_GT(api_num(d, "chat_agent_id"), 0);
  EXPECT_EQ(api_num(d, "account_id"), 1);
  EXPECT_EQ(api_str(d, "customer_id"), "+919800000001");
  EXPECT_EQ(api_str(d, "mode"), "ai");
  EXPECT_EQ(api_str(d, "status"), "active");
  EXPECT_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(d, "help_requested")));
  EXPECT_EQ(api_str(d, "current_state"), "<null>");
  EXPECT_EQ(api_str(d, "active_human"), "<null>");
  const cJSON* meta = cJSON_GetObjectItem(d, "metadata");
  EXPECT_EQ(api_keys(meta), (std::vector<std::string>{"input_fields", "state_fields", "context"}));
  EXPECT_EQ(net::json_print(cJSON_GetObjectItem(meta, "context")), R"(["b","c","d","e","f"])");
  EXPECT_EQ(net::json_print(cJSON_GetObjectItem(meta, "input_fields")), R"({"plan":"gold"})");
  const char* utc_micro = "####-##-##T##:##:##.######Z";
  EXPECT_TRUE(shaped(api_str(d, "created_at"), utc_micro)) << api_str(d, "created_at");
  EXPECT_TRUE(shaped(api_str(d, "updated_at"), utc_micro));
  // A second session of the same pair closes the first.
  const std::string first = api_str(d, "id");
  const std::string second = create("+919800000001");
  EXPECT_NE(first, second);
  auto old = request("GET", "/v1/chat/session/" + first);
  EXPECT_EQ(api_str(old.data(), "status"), "closed");
}

TEST_F(ApiChatTest, CreateSessionErrors) {
  expect_api_error(request("POST", "/v1/chat/session", R"({"customer_id":"c"})"), 422,
                   "agent_uuid: required");
  expect_api_error(request("POST", "/v1/chat/session", R"({"agent_uuid":"agent_chat"})"), 422,
                   "customer_id: required");
  expect_api_error(request("POST", "/v1/chat/session", R"({"agent_uuid":"agent_chat","customer_id":"  "})"),
                   422, "customer_id: must not be empty");
  expect_api_error(request("POST", "/v1/chat/session",
                           R"({"agent_uuid":"agent_chat","customer_id":"c","input_fields":[1]})"),
                   422, "input_fields: must be an object");
  expect_api_error(
      request("POST", "/v1/chat/session", R"({"agent_uuid":"agent_chat","customer_id":"c","context":"x"})"),
      422, "context: must be an array of strings");
  expect_api_error(
      request("POST", "/v1/chat/session", R"({"agent_uuid":"agent_chat","customer_id":"c","context":[1]})"),
      422, "context: must be an array of strings");
  expect_api_error(request("POST", "/v1/chat/session", R"({"agent_uuid":"agent_voice","customer_id":"c"})"),
                   422, "\"agent_voice\" is a voice agent");
  expect_api_error(request("POST", "/v1/chat/session", R"({"agent_uuid":"agent_idle","customer_id":"c"})"),
                   422, "\"agent_idle\" is not active");
  expect_api_error(request("POST", "/v1/chat/session", R"({"agent_uuid":"agent_zzz","customer_id":"c"})"),
                   404, "no agent \"agent_zzz\"");
  expect_api_error(
      request("POST", "/v1/chat/session", R"({"agent_uuid":"agent_chat","customer_id":"c"})", kApiTokenB),
      403, "may not use agent \"agent_chat\"");
  const std::string big(17 * 1024, 'x');
  expect_api_error(
      request("POST", "/v1/chat/session",
              R"({"agent_uuid":"agent_chat","customer_id":"c","input_fields":{"k":")" + big + R"("}})"),
      422, "input_fields: larger than");
}

TEST_F(ApiChatTest, ActiveSessionLookup) {
  const std::string id = create("cust-9");
  auto one = request("GET", "/v1/chat/session/active?customer_id=cust-9&agent_uuid=agent_chat");
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(api_keys(one.data()), kSessionKeys);
  EXPECT_EQ(api_str(one.data(), "id"), id);
  expect_api_error(request("GET", "/v1/chat/session/active?customer_id=nobody&agent_uuid=agent_chat"), 404,
                   "no active chat session");
  const std::string other = create("cust-9", "agent_b");
  auto all = request("GET", "/v1/chat/session/active?customer_id=cust-9");
  ASSERT_EQ(all.status, 200);
  EXPECT_EQ(api_keys(all.data()), (std::vector<std::string>{"agent_b", "agent_chat"}));
  EXPECT_EQ(api_str(cJSON_GetObjectItem(all.data(), "agent_b"), "id"), other);
  // A limited token sees only its agents.
  auto limited = request("GET", "/v1/chat/session/active?customer_id=cust-9", {}, kApiTokenB);
  EXPECT_EQ(api_keys(limited.data()), std::vector<std::string>{"agent_b"});
  expect_api_error(
      request("GET", "/v1/chat/session/active?customer_id=cust-9&agent_uuid=agent_chat", {}, kApiTokenB), 403,
      "agent_chat");
  expect_api_error(request("GET", "/v1/chat/session/active"), 422, "customer_id: required");
  expect_api_error(request("GET", "/v1/chat/session/active?customer_id=x&foo=1"), 422, "\"foo\": unknown");
}

TEST_F(ApiChatTest, InboundAnswersWithTheAgentsReply) {
  push("Hello! How can I help?");
  auto r = inbound("hi");
  ASSERT_EQ(r.status, 200) << r.body;
  const cJSON* d = r.data();
  EXPECT_EQ(api_keys(d),
            (std::vector<std::string>{"session_id", "reply", "state", "mode", "help_requested", "error"}));
  EXPECT_EQ(api_str(d, "reply"), "Hello! How can I help?");
  EXPECT_EQ(api_str(d, "state"), "default");
  EXPECT_EQ(api_str(d, "mode"), "ai");
  EXPECT_EQ(api_str(d, "error"), "<null>");
  const std::string sid = api_str(d, "session_id");
  // The session it created is the active one, and an explicit session_id routes there.
  auto active = request("GET", "/v1/chat/session/active?customer_id=cust-1&agent_uuid=agent_chat");
  EXPECT_EQ(api_str(active.data(), "id"), sid);
  push("Second.");
  auto again = request(
      "POST", "/v1/chat/inbound",
      R"({"agent_uuid":"agent_chat","customer_id":"cust-1","content":"more","session_id":")" + sid + R"("})");
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(api_str(again.data(), "session_id"), sid);
  // The model failing: the fallback text, and the error says why.
  served_.locked([&] { sim_->fail_next(net::UpstreamStage::llm, {}); });
  auto failed = inbound("hello?");
  ASSERT_EQ(failed.status, 200) << failed.body;
  EXPECT_EQ(api_str(failed.data(), "reply"), "Sorry, try again later.");
  EXPECT_NE(api_str(failed.data(), "error").find("llm http"), std::string::npos);
}

TEST_F(ApiChatTest, InboundErrors) {
  expect_api_error(request("POST", "/v1/chat/inbound", R"({"agent_uuid":"agent_chat","customer_id":"c"})"),
                   422, "content: required");
  expect_api_error(request("POST", "/v1/chat/inbound", R"({"agent_uuid":"agent_chat","content":"x"})"), 422,
                   "customer_id: required");
  expect_api_error(
      request("POST", "/v1/chat/inbound",
              R"({"agent_uuid":"agent_chat","customer_id":"c","content":"x","session_id":"nope"})"),
      422, "session_id: must be a UUID");
  expect_api_error(
      request(
          "POST", "/v1/chat/inbound",
          R"({"agent_uuid":"agent_chat","customer_id":"c","content":"x","session_id":"0190a6d2-0000-7000-8000-000000000000"})"),
      404, "no chat session");
  expect_api_error(
      request("POST", "/v1/chat/inbound", R"({"agent_uuid":"agent_voice","customer_id":"c","content":"x"})"),
      422, "voice agent");
  expect_api_error(inbound("x", "c", kApiTokenB), 403, "agent_chat");
  expect_api_error(inbound(std::string(4001, 'a')), 422, "content: longer than 4000 characters");
}

TEST_F(ApiChatTest, SupportRail) {
  push("Hi.");
  const std::string sid = api_str(inbound("hello").data(), "session_id");
  auto t = support(sid, R"({"command":"takeover","active_human":"rita@example.com"})");
  ASSERT_EQ(t.status, 200) << t.body;
  EXPECT_EQ(api_keys(t.data()),
            (std::vector<std::string>{"state", "session_id", "command", "active_human", "mode", "status"}));
  EXPECT_EQ(api_str(t.data(), "state"), "ok");
  EXPECT_EQ(api_str(t.data(), "active_human"), "rita@example.com");
  EXPECT_EQ(api_str(t.data(), "mode"), "support");
  auto quiet = inbound("anyone?");
  ASSERT_EQ(quiet.status, 200);
  EXPECT_EQ(api_str(quiet.data(), "reply"), "<null>");
  EXPECT_EQ(api_str(quiet.data(), "mode"), "support");
  auto plain = support(sid, R"({"message":"Rita here"})");
  ASSERT_EQ(plain.status, 200) << plain.body;
  EXPECT_EQ(api_str(plain.data(), "command"), "<null>");
  ASSERT_EQ(support(sid, R"({"command":"whisper","message":"be brief"})").status, 200);
  push("Your order ships today.");
  auto tell = support(sid, R"({"command":"tell","message":"say it ships today"})");
  ASSERT_EQ(tell.status, 200) << tell.body;
  EXPECT_EQ(api_str(tell.data(), "reply"), "Your order ships today.");
  auto end = support(sid, R"({"command":"end"})");
  EXPECT_EQ(api_str(end.data(), "mode"), "ai");
  push("Back.");
  EXPECT_EQ(api_str(inbound("ok").data(), "reply"), "Back.");
  push("Customer asked about shipping.");
  auto close = support(sid, R"({"command":"close"})");
  ASSERT_EQ(close.status, 200) << close.body;
  EXPECT_EQ(api_str(close.data(), "summary"), "Customer asked about shipping.");
  EXPECT_EQ(api_str(close.data(), "status"), "closed");
  expect_api_error(support(sid, R"({"command":"end"})"), 422, "is closed");
}

TEST_F(ApiChatTest, SupportErrors) {
  const std::string sid = create();
  expect_api_error(support(sid, R"({"message":"hi"})"), 422, "needs support mode");
  expect_api_error(support(sid, R"({"command":"shout"})"), 422, "command: \"shout\" is not one of");
  expect_api_error(support(sid, R"({"command":"tell"})"), 422, "message: required");
  expect_api_error(support(sid, R"({"command":"takeover","operator":"a","active_human":"b"})"), 422,
                   "operator: differs");
  expect_api_error(support("0190a6d2-0000-7000-8000-000000000000", R"({"command":"end"})"), 404,
                   "no chat session");
  expect_api_error(support(sid, R"({"command":"end"})", kApiTokenB), 404, "no chat session");
  const std::string locked = create("c2", "agent_locked");
  expect_api_error(support(locked, R"({"command":"whisper","message":"x"})"), 422,
                   "command: \"whisper\" is disabled for agent \"agent_locked\"");
}

TEST_F(ApiChatTest, InjectContext) {
  const std::string sid = create();
  for (int i = 1; i <= 6; ++i) {
    auto r = request("POST", "/v1/chat/session/" + sid + "/inject_context",
                     R"({"context":"entry )" + std::to_string(i) + R"("})");
    ASSERT_EQ(r.status, 200) << r.body;
    if (i == 6) {
      EXPECT_EQ(api_keys(r.data()), (std::vector<std::string>{"session_id", "context"}));
      EXPECT_EQ(net::json_print(cJSON_GetObjectItem(r.data(), "context")),
                R"(["entry 2","entry 3","entry 4","entry 5","entry 6"])");
    }
  }
  expect_api_error(request("POST", "/v1/chat/session/" + sid + "/inject_context", R"({"context":""})"), 422,
                   "context: must not be empty");
  expect_api_error(request("POST", "/v1/chat/session/" + sid + "/inject_context", R"({"context":["a"]})"),
                   422, "context: must be a string");
}

TEST_F(ApiChatTest, LegacyEndpoints) {
  auto s =
      request("POST", "/chat_sessions", R"({"agent_uuid":"agent_chat","metadata":{"person_name":"Asha"}})");
  ASSERT_EQ(s.status, 200) << s.body;
  EXPECT_EQ(api_keys(s.data()),
            (std::vector<std::string>{"session_id", "agent_name", "started_at", "welcome_message"}));
  EXPECT_EQ(api_str(s.data(), "agent_name"), "Agent agent_chat");
  EXPECT_EQ(api_str(s.data(), "welcome_message"), "Welcome Asha!");
  EXPECT_TRUE(shaped(api_str(s.data(), "started_at"), "####-##-##T##:##:##.######"))
      << api_str(s.data(), "started_at");
  const std::string sid = api_str(s.data(), "session_id");
  push("Glad to help.");
  auto m = request("POST", "/chat_messages/send_message",
                   R"({"agent_uuid":"agent_chat","chat_session_id":")" + sid + R"(","message":"help"})");
  ASSERT_EQ(m.status, 200) << m.body;
  EXPECT_EQ(api_keys(m.data()), (std::vector<std::string>{"session_id", "response", "tool_calls",
                                                          "tool_results", "current_state", "error"}));
  EXPECT_EQ(api_str(m.data(), "response"), "Glad to help.");
  auto p = request("POST", "/chat_sessions/" + sid + "/pause_session", R"({"agent_uuid":"agent_chat"})");
  ASSERT_EQ(p.status, 200) << p.body;
  EXPECT_EQ(api_keys(p.data()), (std::vector<std::string>{"success", "session_id", "message"}));
  EXPECT_EQ(api_str(p.data(), "message"), "Session paused");
  EXPECT_EQ(api_str(request("GET", "/v1/chat/session/" + sid).data(), "status"), "dormant");
  push("Asked for help; the agent offered it.");
  // The older docs' close has no body at all.
  auto c = request("POST", "/chat_sessions/" + sid + "/close_session");
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_EQ(api_keys(c.data()), (std::vector<std::string>{"session_id", "summary", "summary_error"}));
  EXPECT_EQ(api_str(c.data(), "summary"), "Asked for help; the agent offered it.");
  expect_api_error(request("POST", "/chat_messages/send_message",
                           R"({"agent_uuid":"agent_b","chat_session_id":")" + sid + R"(","message":"x"})"),
                   404, "no chat session");
  expect_api_error(request("POST", "/chat_sessions", R"({"agent_uuid":"agent_voice"})"), 422, "voice agent");
}

TEST_F(ApiChatTest, ListingWithFiltersStatsAndMessages) {
  push("One.");
  const std::string a = api_str(inbound("first", "c-a").data(), "session_id");
  push("Two.");
  const std::string b = api_str(inbound("I want a real person", "c-b").data(), "session_id");
  const std::string c = create("c-c", "agent_b");
  auto all = request("GET", "/v1/chat/sessions");
  ASSERT_EQ(all.status, 200) << all.body;
  ASSERT_EQ(cJSON_GetArraySize(all.data()), 3);
  EXPECT_EQ(api_str(cJSON_GetArrayItem(all.data(), 0), "id"), b) << "help requested first";
  const cJSON* meta = all.get("meta");
  EXPECT_EQ(api_num(meta, "total_count"), 3);
  const cJSON* stats = cJSON_GetObjectItem(meta, "stats");
  EXPECT_EQ(api_num(stats, "total"), 3);
  EXPECT_EQ(api_num(stats, "active"), 3);
  EXPECT_EQ(api_num(stats, "help_requested"), 1);
  auto helped = request("GET", "/v1/chat/sessions?help_requested=true");
  ASSERT_EQ(cJSON_GetArraySize(helped.data()), 1);
  auto by_agent = request("GET", "/v1/chat/sessions?agent_uuid=agent_b");
  ASSERT_EQ(cJSON_GetArraySize(by_agent.data()), 1);
  EXPECT_EQ(api_str(cJSON_GetArrayItem(by_agent.data(), 0), "id"), c);
  auto limited = request("GET", "/v1/chat/sessions", {}, kApiTokenB);
  ASSERT_EQ(cJSON_GetArraySize(limited.data()), 1);
  EXPECT_EQ(api_num(cJSON_GetObjectItem(limited.get("meta"), "stats"), "total"), 1);
  auto customer = request("GET", "/v1/chat/sessions?customer_id=c-a&status=active&mode=ai");
  ASSERT_EQ(cJSON_GetArraySize(customer.data()), 1);
  EXPECT_EQ(api_str(cJSON_GetArrayItem(customer.data(), 0), "id"), a);
  expect_api_error(request("GET", "/v1/chat/sessions?status=open"), 422, "status: \"open\" is not one of");
  expect_api_error(request("GET", "/v1/chat/sessions?per_page=101"), 422, "per_page");

  auto one = request("GET", "/v1/chat/session/" + a);
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(api_str(one.data(), "agent_uuid"), "agent_chat");
  expect_api_error(request("GET", "/v1/chat/session/" + a, {}, kApiTokenB), 404, "no chat session");
  auto msgs = request("GET", "/v1/chat/session/" + a + "/messages?per_page=1&page=2");
  ASSERT_EQ(msgs.status, 200) << msgs.body;
  ASSERT_EQ(cJSON_GetArraySize(msgs.data()), 1);
  const cJSON* m = cJSON_GetArrayItem(msgs.data(), 0);
  EXPECT_EQ(api_keys(m), (std::vector<std::string>{"id", "session_id", "role", "text", "created_at",
                                                   "operator", "latency_ms", "error"}));
  EXPECT_EQ(api_str(m, "role"), "agent");
  EXPECT_EQ(api_str(m, "text"), "One.");
  EXPECT_EQ(api_num(msgs.get("meta"), "total_count"), 2);
}

TEST_F(ApiChatTest, AClientThatLeavesBeforeTheReplyIsDroppedHarmlessly) {
  served_.locked([&] {
    net::SimTiming slow;
    slow.first_ms = 3000;  // virtual: ~300 ms of real time at the pump's pace
    sim_->set_timing(net::UpstreamStage::llm, slow);
    sim_->push_llm(say("Late answer."));
  });
  HttpRequestOptions o;
  o.timeout_ms = 50;
  auto gone =
      http_request("POST", "http://127.0.0.1:" + std::to_string(port_) + "/v1/chat/inbound", kApiToken,
                   R"({"agent_uuid":"agent_chat","customer_id":"leaver","content":"hello"})", o);
  EXPECT_EQ(gone.status, 0) << "the client was meant to give up first";
  // The turn still completes and is stored; the server goes on serving.
  std::string reply_text;
  for (int i = 0; i < 400 && reply_text.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    served_.locked([&] {
      auto open = store_->chat().open_for("leaver", "agent_chat");
      if (!open.ok() || !*open) return;
      auto msgs = store_->chat().recent((*open)->id, 1);
      if (msgs.ok() && !msgs->empty() && (*msgs)[0].role == "agent") reply_text = (*msgs)[0].text;
    });
  }
  EXPECT_EQ(reply_text, "Late answer.");
  served_.locked([&] { sim_->set_timing(net::UpstreamStage::llm, net::SimTiming{}); });
  push("Still here.");
  auto next = inbound("again", "leaver");
  ASSERT_EQ(next.status, 200) << next.body;
  EXPECT_EQ(api_str(next.data(), "reply"), "Still here.");
}

TEST_F(ApiChatTest, WithoutAChatServiceTheEndpointsAnswer503) {
  served_.locked([&] { ctx_.chat = nullptr; });
  expect_api_error(request("POST", "/v1/chat/session", R"({"agent_uuid":"agent_chat","customer_id":"c"})"),
                   503, "chat is not available");
  expect_api_error(request("GET", "/v1/chat/sessions"), 503, "chat is not available");
}

// The event streams: the inbox and one session see the session's events as they happen; a token limited to
// other agents sees none of them; the routes refuse what they do not know.
TEST_F(ApiChatTest, EventStreamsCarryTheSessionsEventsToTheirSubscribers) {
  std::unique_ptr<daemon::EventHub> hub;
  served_.locked([&] {
    auto h = daemon::EventHub::create(vt_.clock, vt_.timer_factory());
    ASSERT_TRUE(h.ok()) << h.error().message;
    hub = std::move(*h);
    ctx_.events = hub.get();
    chat_->set_listener([&hub](const daemon::ChatEvent& e) { daemon::publish_chat_event(*hub, e); });
  });
  ASSERT_TRUE(hub);
  push("Hi.");
  const std::string sid = api_str(inbound("hello").data(), "session_id");
  ASSERT_FALSE(sid.empty());

  auto open = [&](const std::string& path, const std::string& token) {
    auto c = std::make_unique<osvi::test::ChunkedClient>(port_);
    EXPECT_TRUE(c->ok());
    EXPECT_TRUE(c->get(path, "API-Token: " + token + "\r\n"));
    EXPECT_TRUE(c->read_head()) << path;
    EXPECT_NE(c->head().find("200"), std::string::npos) << c->head();
    EXPECT_NE(c->head().find("text/event-stream"), std::string::npos) << c->head();
    return c;
  };
  auto inbox = open("/v1/chat/events", kApiToken);
  auto session = open("/v1/chat/session/" + sid + "/events", kApiToken);
  auto limited = open("/v1/chat/events", kApiTokenB);
  auto has = [](osvi::test::ChunkedClient& c, const std::string& text) {
    return c.read_until(3000, [&] { return c.body().find(text) != std::string::npos; });
  };

  ASSERT_EQ(support(sid, R"({"command":"takeover","active_human":"rita@example.com"})").status, 200);
  EXPECT_TRUE(has(*session, "event: mode.changed")) << session->body();
  EXPECT_TRUE(has(*inbox, "event: mode.changed")) << inbox->body();
  ASSERT_EQ(inbound("anyone there?").status, 200);
  EXPECT_TRUE(has(*session, "anyone there?")) << session->body();
  EXPECT_TRUE(has(*inbox, "event: message.created")) << inbox->body();

  // agent_b's own session reaches the limited stream; nothing of agent_chat came before it.
  push("Hello from b.");
  auto b = request("POST", "/v1/chat/inbound",
                   R"({"agent_uuid":"agent_b","customer_id":"cust-b","content":"hi b"})", kApiTokenB);
  ASSERT_EQ(b.status, 200) << b.body;
  EXPECT_TRUE(has(*limited, "hi b")) << limited->body();
  EXPECT_EQ(limited->body().find("anyone there?"), std::string::npos) << limited->body();
  EXPECT_EQ(limited->body().find("mode.changed"), std::string::npos) << limited->body();
  EXPECT_TRUE(has(*inbox, "hi b"));
  EXPECT_EQ(session->body().find("hi b"), std::string::npos)
      << "another session's message on this one's stream";

  expect_api_error(request("GET", "/v1/chat/session/00000000-0000-4000-8000-000000000000/events"), 404, "");
  expect_api_error(request("GET", "/v1/chat/session/" + sid + "/events", {}, kApiTokenB), 404, "");
  expect_api_error(request("GET", "/v1/chat/events?agent_uuid=agent_chat", {}, kApiTokenB), 403,
                   "agent_chat");
  expect_api_error(request("GET", "/v1/chat/events?since=1"), 422, "since");

  inbox.reset();
  session.reset();
  limited.reset();
  served_.locked([&] {
    chat_->set_listener({});
    ctx_.events = nullptr;
    hub.reset();
  });
}

}  // namespace
}  // namespace osvi::test
