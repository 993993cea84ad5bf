// ChatService on a virtual clock with SimUpstream: model turns, operator commands, whispers, dormancy,
// close summaries, help requests, the fallback, the per-session queue and the events.
#include "osvi/chat/chat_service.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "knowledge_eval.hpp"
#include "osvi/knowledge/knowledge_service.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/text.hpp"
#include "test_support.hpp"
#include "upstream_sim.hpp"
#include "virtual_time.hpp"

namespace osvi::daemon {
namespace {

using net::SimLlmReply;
using test::TempDir;
using test::VirtualTime;

AgentConfig chat_agent(const std::string& uuid) {
  AgentConfig a;
  a.agent_uuid = uuid;
  a.name = "Chat " + uuid;
  a.mode = AgentMode::chat;
  a.active = true;
  a.prompt.system_prompt = "You help {{name}} (customer {{customer_id}}).";
  a.llm.timeout_ms = 2000;
  a.fallback.message = "Sorry, we have trouble answering right now.";
  a.greeting.text = "Hi {{name}}!";
  return a;
}

SimLlmReply say(std::string text) {
  SimLlmReply r;
  r.text = std::move(text);
  return r;
}

SimLlmReply use(std::vector<net::ToolCall> calls) {
  SimLlmReply r;
  r.tool_calls = std::move(calls);
  return r;
}

// Appending rather than operator+: GCC 12 -O3 reports a false -Wrestrict on the temporaries.
std::string numbered(const char* prefix, int i) {
  std::string s(prefix);
  s.append(std::to_string(i));
  return s;
}

struct Recorded {
  std::string type, session_id;
  std::string data;
};

class ChatServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::open(StoreOptions{dir_.file("osvi.db")}, vt_.clock);
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(*s);
    config_.agents.push_back(chat_agent("agent_chat"));
    AgentConfig multi = chat_agent("agent_multi");
    multi.prompt.type = PromptType::multi;
    multi.prompt.initial_state = "greet";
    multi.prompt.states = {{"greet", "Greet them.", {{"order", "they name an order"}}},
                           {"order", "Help with the order.", {}}};
    config_.agents.push_back(multi);
    AgentConfig locked = chat_agent("agent_locked");
    locked.chat.takeover = locked.chat.tell = locked.chat.whisper = false;
    config_.agents.push_back(locked);
    AgentConfig voice = chat_agent("agent_voice");
    voice.mode = AgentMode::voice;
    config_.agents.push_back(voice);
    AgentConfig off = chat_agent("agent_off");
    off.active = false;
    config_.agents.push_back(off);
    std::vector<AgentRecord> records;
    for (const AgentConfig& a : config_.agents)
      records.push_back({0, a.agent_uuid, a.name, a.mode == AgentMode::chat ? "chat" : "voice", a.active,
                         false, "{}", "", 0, 0});
    ASSERT_TRUE(store_->agents().sync(records).ok());
    sim_ = std::make_unique<net::SimUpstream>(vt_.schedule());
    make_service();
  }

  void make_service() {
    chat_.reset();
    ChatContext ctx;
    ctx.config = &config_;
    ctx.store = store_.get();
    ctx.upstream = sim_.get();
    ctx.clock = &vt_.clock;
    ctx.timer = vt_.timer_factory();
    ctx.calls = calls_;
    ctx.zones = zones_;
    ctx.knowledge = knowledge_;
    ctx.phone_zones = [](std::string_view e164) -> std::vector<std::string> {
      if (e164.substr(0, 2) == "+1") return {"America/New_York"};
      return {};
    };
    // The module of libphonenumber is not needed: "+" numbers as given, national ones as Indian.
    ctx.normalize_phone = [](std::string_view text, std::string_view region) -> Result<std::string> {
      if (text.find_first_not_of("+0123456789") != std::string_view::npos)
        return make_error("must contain digits only (got " + net::quoted(text) + ")");
      if (text.substr(0, 1) == "+") return std::string(text);
      if (region != "IN") return make_error("unknown country code " + net::quoted(region));
      return "+91" + std::string(text);
    };
    auto c = ChatService::create(std::move(ctx));
    ASSERT_TRUE(c.ok()) << c.error().message;
    chat_ = std::move(*c);
    chat_->set_listener([this](const ChatEvent& e) {
      events_.push_back({e.type, e.session_id, net::json_print(e.data.get())});
    });
  }

  // Runs the loop until done ran (or 10 s of virtual time passed).
  template <class T>
  std::optional<Result<T>> pump(std::optional<Result<T>>& out) {
    for (int i = 0; i < 1000 && !out; ++i) vt_.advance_ms(10);
    return std::move(out);
  }

  Result<ChatTurn> send(const std::string& content, const std::string& agent = "agent_chat",
                        const std::string& customer = "cust-1") {
    std::optional<Result<ChatTurn>> out;
    chat_->inbound({agent, customer, content, std::nullopt}, [&](Result<ChatTurn> r) { out = std::move(r); });
    EXPECT_FALSE(out) << "done ran inside inbound()";
    auto r = pump(out);
    if (!r) return make_error("timed out", -ETIMEDOUT);
    return std::move(*r);
  }

  Result<ChatSupportResult> support(const std::string& id, std::optional<std::string> command,
                                    std::optional<std::string> message = std::nullopt,
                                    std::optional<std::string> op = std::nullopt) {
    std::optional<Result<ChatSupportResult>> out;
    chat_->support(id, {command, message, op}, [&](Result<ChatSupportResult> r) { out = std::move(r); });
    EXPECT_FALSE(out);
    auto r = pump(out);
    if (!r) return make_error("timed out", -ETIMEDOUT);
    return std::move(*r);
  }

  ChatSessionRow session(const std::string& id) {
    auto s = store_->chat().get(id);
    EXPECT_TRUE(s.ok() && *s);
    return s.ok() && *s ? **s : ChatSessionRow{};
  }

  std::vector<std::string> event_types() {
    std::vector<std::string> out;
    for (const Recorded& e : events_) out.push_back(e.type);
    return out;
  }

  // The text of every message of a request of the given role.
  static std::vector<std::string> texts(const net::ChatRequest& r, const std::string& role) {
    std::vector<std::string> out;
    for (const net::ChatMessage& m : r.messages) {
      if (m.role == role) out.push_back(m.content);
    }
    return out;
  }

  TempDir dir_;
  VirtualTime vt_;
  std::unique_ptr<Store> store_;
  Config config_;
  std::unique_ptr<net::SimUpstream> sim_;
  std::unique_ptr<ChatService> chat_;
  std::vector<Recorded> events_;
  CallService* calls_ = nullptr;  // offer_call's engine (OfferCallTest)
  TimeZones* zones_ = nullptr;    // the callees' zones (OfferCallTest); null = the site's fixed offset
  knowledge::KnowledgeService* knowledge_ = nullptr;  // search_knowledge_base (the knowledge tests)
};

// search_knowledge_base in a chat: offered with attached documents, its result (the chunk and its source) in
// the next model request, and with embeddings that request waits for the query's vector.
TEST_F(ChatServiceTest, SearchKnowledgeBaseFeedsTheNextModelRequestOnceTheSearchIsDone) {
  knowledge::KnowledgeService kb(*store_, vt_.clock, vt_.schedule());
  knowledge::IngestRequest doc;
  doc.name = "Fees";
  // Several sections: with only two chunks, FTS5's bm25 gives a word found in one of them no weight.
  doc.content =
      "LOCKERS\n\nA medium locker costs Rs 3,000 a year, paid in April.\n\nCHEQUES\n\nA cheque book is "
      "free.\n\nCARDS\n\nA debit card costs Rs 200 a year.\n\nHOURS\n\nBranches open at ten on "
      "weekdays.\n\nLOANS\n\nHome loans start at 8.5 percent.";
  ASSERT_TRUE(kb.ingest(doc).ok());
  test::StandInEmbedder embedder;
  embedder.deferred = true;
  kb.set_embedder(&embedder);
  AgentConfig& agent = config_.agents[0];
  agent.knowledge.documents = {"Fees"};
  agent.knowledge.relevance_threshold = 0.05;
  knowledge_ = &kb;
  make_service();
  auto search = [](const std::string& id) {
    net::SimLlmReply r;
    r.tool_calls = {{id, "search_knowledge_base", R"({"query":"price of a medium locker"})"}};
    return r;
  };

  sim_->push_llm(search("call_1"));
  sim_->push_llm(say("A medium locker is Rs 3,000 a year."));
  auto turn = send("How much is a medium locker?");
  ASSERT_TRUE(turn.ok()) << turn.error().message;
  EXPECT_EQ(turn->reply, "A medium locker is Rs 3,000 a year.");
  ASSERT_EQ(sim_->chat_requests().size(), 2u);
  const auto& offered = sim_->chat_requests()[0].tools;
  EXPECT_TRUE(std::any_of(offered.begin(), offered.end(),
                          [](const net::ToolSpec& t) { return t.name == "search_knowledge_base"; }));
  auto results = texts(sim_->chat_requests()[1], "tool");
  ASSERT_EQ(results.size(), 1u);
  EXPECT_NE(results[0].find("Rs 3,000"), std::string::npos) << results[0];
  EXPECT_NE(results[0].find("Fees"), std::string::npos) << results[0];

  // With embeddings the query is embedded first: no model request until its vector came.
  agent.knowledge.embeddings = EmbeddingsConfig{};
  chat_->set_config(&config_);
  sim_->push_llm(search("call_2"));
  sim_->push_llm(say("Still Rs 3,000."));
  std::optional<Result<ChatTurn>> out;
  chat_->inbound({"agent_chat", "cust-1", "And now?", std::nullopt},
                 [&](Result<ChatTurn> r) { out = std::move(r); });
  for (int i = 0; i < 100; ++i) vt_.advance_ms(10);
  EXPECT_FALSE(out) << "answered before the search";
  EXPECT_EQ(sim_->chat_requests().size(), 3u) << "the next request went before the search result";
  embedder.deliver();
  auto r = pump(out);
  ASSERT_TRUE(r && r->ok());
  EXPECT_EQ((*r)->reply, "Still Rs 3,000.");
  ASSERT_EQ(sim_->chat_requests().size(), 4u);
  EXPECT_NE(texts(sim_->chat_requests()[3], "tool").back().find("Rs 3,000"), std::string::npos);

  // Without attached documents the tool is not offered.
  agent.knowledge.documents.clear();
  chat_->set_config(&config_);
  sim_->push_llm(say("Hello."));
  ASSERT_TRUE(send("Hi").ok());
  const auto& none = sim_->chat_requests().back().tools;
  EXPECT_TRUE(std::none_of(none.begin(), none.end(),
                           [](const net::ToolSpec& t) { return t.name == "search_knowledge_base"; }));
  chat_.reset();
  knowledge_ = nullptr;
}

TEST_F(ChatServiceTest, CreateKeepsTheLastFiveNonEmptyContextEntriesAndClosesThePreviousSession) {
  auto first = chat_->create_session("agent_chat", "cust-1", "{}", {});
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->status, "active");
  EXPECT_EQ(first->mode, "ai");
  events_.clear();
  auto second = chat_->create_session("agent_chat", "cust-1", R"({"name":"Asha"})",
                                      {"a", "", "b", "  ", "c", "d", "e", "f"});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->context_json, R"(["b","c","d","e","f"])");
  EXPECT_EQ(session(first->id).status, "closed");
  EXPECT_EQ(session(first->id).summary_error, "superseded by a new session");
  ASSERT_EQ(event_types(), std::vector<std::string>{"status.changed"});
  EXPECT_EQ(events_[0].session_id, first->id);
  auto open = chat_->open_session("cust-1", "agent_chat");
  ASSERT_TRUE(open.ok() && *open);
  EXPECT_EQ((*open)->id, second->id);
  // Another agent's session of the same customer is untouched.
  auto other = chat_->create_session("agent_multi", "cust-1", "{}", {});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->current_state, "greet");
  EXPECT_EQ(session(second->id).status, "active");
}

TEST_F(ChatServiceTest, AgentsThatCannotChatAreRefusedByName) {
  auto voice = chat_->create_session("agent_voice", "c", "{}", {});
  ASSERT_FALSE(voice.ok());
  EXPECT_EQ(voice.error().code, -EINVAL);
  EXPECT_NE(voice.error().message.find("\"agent_voice\" is a voice agent"), std::string::npos);
  auto off = chat_->create_session("agent_off", "c", "{}", {});
  ASSERT_FALSE(off.ok());
  EXPECT_NE(off.error().message.find("not active"), std::string::npos);
  auto unknown = chat_->create_session("agent_nope", "c", "{}", {});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, -ENOENT);
}

TEST_F(ChatServiceTest, InboundCreatesASessionAndAnswersWithPromptVariablesAndContext) {
  auto created = chat_->create_session("agent_chat", "cust-1", R"({"name":"Asha"})", {"bought a kettle"});
  ASSERT_TRUE(created.ok());
  events_.clear();
  sim_->push_llm(say("Hello Asha, how can I help?"));
  auto r = send("Hi there");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->session.id, created->id);
  EXPECT_EQ(r->reply, "Hello Asha, how can I help?");
  EXPECT_FALSE(r->error);
  ASSERT_EQ(sim_->chat_requests().size(), 1u);
  const net::ChatRequest& req = sim_->chat_requests()[0];
  EXPECT_EQ(req.endpoint.timeout_ms, 2000);
  const auto system = texts(req, "system");
  ASSERT_FALSE(system.empty());
  EXPECT_NE(system[0].find("You help Asha (customer cust-1)."), std::string::npos) << system[0];
  EXPECT_NE(system[0].find("- bought a kettle"), std::string::npos);
  EXPECT_EQ(texts(req, "user"), std::vector<std::string>{"Hi there"});
  EXPECT_EQ(event_types(), (std::vector<std::string>{"message.created", "message.created"}));
  auto msgs = store_->chat().messages(created->id, 1, 10);
  ASSERT_TRUE(msgs.ok());
  ASSERT_EQ(msgs->rows.size(), 2u);
  EXPECT_EQ(msgs->rows[0].role, "customer");
  EXPECT_EQ(msgs->rows[1].role, "agent");
  EXPECT_TRUE(msgs->rows[1].latency_ms.has_value());
  // Each message is on the outbox for the fleet.
  auto pending = store_->outbox().pending(0, 10);
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 2u);
  EXPECT_EQ((*pending)[0].kind, "chat_message");
  EXPECT_EQ((*pending)[0].topic, "events");
  EXPECT_EQ((*pending)[1].idempotency_key, "chat_message:" + std::to_string(msgs->rows[1].id));

  // The next turn carries the history.
  sim_->push_llm(say("Sure."));
  ASSERT_TRUE(send("Can you help?").ok());
  ASSERT_EQ(sim_->chat_requests().size(), 2u);
  EXPECT_EQ(texts(sim_->chat_requests()[1], "user"), (std::vector<std::string>{"Hi there", "Can you help?"}));
  EXPECT_EQ(texts(sim_->chat_requests()[1], "assistant"),
            std::vector<std::string>{"Hello Asha, how can I help?"});
}

TEST_F(ChatServiceTest, TakeoverStopsAiRepliesUntilEnd) {
  sim_->push_llm(say("First answer."));
  auto r = send("hello");
  ASSERT_TRUE(r.ok());
  const std::string id = r->session.id;
  events_.clear();
  auto t = support(id, "takeover", std::nullopt, "rita@example.com");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->session.mode, "support");
  EXPECT_EQ(t->session.active_human, "rita@example.com");
  EXPECT_EQ(event_types(), std::vector<std::string>{"mode.changed"});

  auto quiet = send("are you there?");
  ASSERT_TRUE(quiet.ok());
  EXPECT_FALSE(quiet->reply.has_value());
  EXPECT_EQ(quiet->session.mode, "support");
  EXPECT_EQ(sim_->chat_requests().size(), 1u) << "no model request in support mode";

  auto op = support(id, std::nullopt, "Yes, Rita here.");
  ASSERT_TRUE(op.ok());
  auto msgs = store_->chat().recent(id, 1);
  ASSERT_TRUE(msgs.ok() && msgs->size() == 1);
  EXPECT_EQ((*msgs)[0].role, "operator");
  EXPECT_EQ((*msgs)[0].operator_id, "rita@example.com");

  events_.clear();
  auto e = support(id, "end");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->session.mode, "ai");
  EXPECT_FALSE(e->session.active_human);
  EXPECT_EQ(event_types(), std::vector<std::string>{"mode.changed"});
  sim_->push_llm(say("Back with you."));
  auto back = send("thanks");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->reply, "Back with you.");
  ASSERT_EQ(sim_->chat_requests().size(), 2u);
  // The operator's words are part of the conversation the model sees.
  const auto assistant = texts(sim_->chat_requests()[1], "assistant");
  EXPECT_NE(std::find(assistant.begin(), assistant.end(), "Yes, Rita here."), assistant.end());
}

TEST_F(ChatServiceTest, PlainOperatorMessageNeedsSupportMode) {
  auto s = chat_->create_session("agent_chat", "cust-1", "{}", {});
  ASSERT_TRUE(s.ok());
  auto r = support(s->id, std::nullopt, "hello from a human");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, -EINVAL);
  EXPECT_NE(r.error().message.find("support mode"), std::string::npos);
  auto no_message = support(s->id, "whisper");
  ASSERT_FALSE(no_message.ok());
  EXPECT_NE(no_message.error().message.find("message: required"), std::string::npos);
}

TEST_F(ChatServiceTest, WhisperReachesOnlyTheNextModelRequest) {
  auto s = chat_->create_session("agent_chat", "cust-1", "{}", {});
  ASSERT_TRUE(s.ok());
  events_.clear();
  ASSERT_TRUE(support(s->id, "whisper", "Offer the 10% coupon").ok());
  EXPECT_EQ(event_types(), std::vector<std::string>{"message.created"});
  sim_->push_llm(say("Here is a coupon."));
  sim_->push_llm(say("Anything else?"));
  ASSERT_TRUE(send("price?").ok());
  ASSERT_TRUE(send("ok").ok());
  ASSERT_EQ(sim_->chat_requests().size(), 2u);
  auto has_whisper = [&](const net::ChatRequest& r) {
    for (const std::string& t : texts(r, "system"))
      if (t.find("Offer the 10% coupon") != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(has_whisper(sim_->chat_requests()[0]));
  EXPECT_FALSE(has_whisper(sim_->chat_requests()[1]));
  // The customer never sees it: it is not an assistant or user message.
  for (const net::ChatMessage& m : sim_->chat_requests()[0].messages) {
    if (m.role != "system") {
      EXPECT_EQ(m.content.find("coupon"), std::string::npos) << m.role;
    }
  }
}

TEST_F(ChatServiceTest, TellAddsGuidanceAndTriggersATurnEvenInSupportMode) {
  auto s = chat_->create_session("agent_chat", "cust-1", "{}", {});
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(support(s->id, "takeover").ok());
  EXPECT_EQ(session(s->id).active_human, "operator");
  sim_->push_llm(say("Your refund was approved."));
  auto t = support(s->id, "tell", "Tell them the refund is approved", "ops");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->reply, "Your refund was approved.");
  ASSERT_EQ(sim_->chat_requests().size(), 1u);
  const auto system = texts(sim_->chat_requests()[0], "system");
  EXPECT_NE(std::find(system.begin(), system.end(),
                      "Guidance from a human operator: Tell them the refund is approved"),
            system.end());
  auto msgs = store_->chat().recent(s->id, 2);
  ASSERT_TRUE(msgs.ok() && msgs->size() == 2);
  EXPECT_EQ((*msgs)[0].role, "tell");
  EXPECT_EQ((*msgs)[0].operator_id, "ops");
  EXPECT_EQ((*msgs)[1].role, "agent");
}

TEST_F(ChatServiceTest, DisabledCommandsAreRefusedByName) {
  auto s = chat_->create_session("agent_locked", "cust-1", "{}", {});
  ASSERT_TRUE(s.ok());
  for (const char* cmd : {"takeover", "tell", "whisper"}) {
    auto r = support(s->id, cmd, "x");
    ASSERT_FALSE(r.ok()) << cmd;
    EXPECT_EQ(r.error().code, -EPERM);
    std::string want = "\"";
    want.append(cmd).append("\" is disabled");
    EXPECT_NE(r.error().message.find(want), std::string::npos) << r.error().message;
  }
  EXPECT_TRUE(support(s->id, "end").ok());
}

TEST_F(ChatServiceTest, QuietSessionsGoDormantAndTheNextMessageResumesThem) {
  sim_->push_llm(say("Hi."));
  auto r = send("hello");
  ASSERT_TRUE(r.ok());
  const std::string id = r->session.id;
  events_.clear();
  vt_.advance_ms(1799 * 1000);
  EXPECT_EQ(session(id).status, "active");
  EXPECT_TRUE(events_.empty());
  vt_.advance_ms(2000);
  EXPECT_EQ(session(id).status, "dormant");
  ASSERT_EQ(event_types(), std::vector<std::string>{"status.changed"});
  EXPECT_NE(events_[0].data.find("\"status\":\"dormant\""), std::string::npos);
  // Still the open session: the next message resumes it.
  events_.clear();
  sim_->push_llm(say("Welcome back."));
  auto again = send("I'm back");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->session.id, id);
  EXPECT_EQ(again->session.status, "active");
  EXPECT_EQ(event_types(),
            (std::vector<std::string>{"message.created", "status.changed", "message.created"}));
}

TEST_F(ChatServiceTest, DormancyIsFoundAgainAfterARestart) {
  auto s = chat_->create_session("agent_chat", "cust-1", "{}", {});
  ASSERT_TRUE(s.ok());
  chat_.reset();
  vt_.advance_ms(600 * 1000);
  make_service();  // a new daemon: the sweep is armed from the store
  vt_.advance_ms(1201 * 1000);
  EXPECT_EQ(session(s->id).status, "dormant");
}

TEST_F(ChatServiceTest, CloseStoresASummaryOrWhyNot) {
  sim_->push_llm(say("Hello."));
  auto r = send("My kettle leaks");
  ASSERT_TRUE(r.ok());
  events_.clear();
  sim_->push_llm(say("The customer reported a leaking kettle."));
  auto c = support(r->session.id, "close");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->summary, "The customer reported a leaking kettle.");
  EXPECT_EQ(session(r->session.id).status, "closed");
  EXPECT_EQ(session(r->session.id).summary, "The customer reported a leaking kettle.");
  EXPECT_EQ(event_types(), std::vector<std::string>{"status.changed"});
  const net::ChatRequest& req = sim_->chat_requests().back();
  EXPECT_NE(texts(req, "user")[0].find("customer: My kettle leaks"), std::string::npos);
  auto again = support(r->session.id, "end");
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message.find("is closed"), std::string::npos);

  // A failing model: summary null and the reason.
  sim_->push_llm(say("Hi."));
  auto r2 = send("second chat");
  ASSERT_TRUE(r2.ok());
  EXPECT_NE(r2->session.id, r->session.id);
  sim_->fail_next(net::UpstreamStage::llm, {});
  auto c2 = support(r2->session.id, "close");
  ASSERT_TRUE(c2.ok());
  EXPECT_FALSE(c2->summary);
  ASSERT_TRUE(c2->summary_error);
  EXPECT_NE(c2->summary_error->find("llm http"), std::string::npos) << *c2->summary_error;
}

TEST_F(ChatServiceTest, HelpRequestedByPhraseOrToolAndClearedByEnd) {
  sim_->push_llm(say("A colleague will join."));
  auto r = send("I want to TALK TO A HUMAN please");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->session.help_requested);
  EXPECT_EQ(event_types(),
            (std::vector<std::string>{"message.created", "help.requested", "message.created"}));
  auto e = support(r->session.id, "end");
  ASSERT_TRUE(e.ok());
  EXPECT_FALSE(e->session.help_requested);

  // The model escalates with the tool.
  events_.clear();
  sim_->push_llm(use({{"c1", "request_human", R"({"reason":"refund over limit"})"}}));
  sim_->push_llm(say("I've asked a colleague to help."));
  auto t = send("refund my 5000 rupees");
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->session.help_requested);
  EXPECT_EQ(t->reply, "I've asked a colleague to help.");
  ASSERT_EQ(t->tools.size(), 1u);
  EXPECT_EQ(t->tools[0].name, "request_human");
  EXPECT_EQ(event_types(), (std::vector<std::string>{"message.created", "message.created", "message.created",
                                                     "help.requested"}));
}

TEST_F(ChatServiceTest, MultiPromptStateAndStateFields) {
  sim_->push_llm(use({{"c1", "switch_state", R"({"state":"order"})"},
                      {"c2", "set_state_field", R"({"field":"order_id","value":"A-17"})"}}));
  sim_->push_llm(say("Looking at order A-17."));
  auto r = send("about order A-17", "agent_multi");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->session.current_state, "order");
  EXPECT_EQ(r->session.state_fields_json, R"({"order":{"order_id":"A-17"}})");
  ASSERT_EQ(sim_->chat_requests().size(), 2u);
  EXPECT_NE(texts(sim_->chat_requests()[0], "system")[0].find("Greet them."), std::string::npos);
  const auto& tools = sim_->chat_requests()[0].tools;
  auto has = [&](const char* n) {
    return std::any_of(tools.begin(), tools.end(), [&](const net::ToolSpec& t) { return t.name == n; });
  };
  EXPECT_TRUE(has("switch_state"));
  EXPECT_TRUE(has("request_human"));
  EXPECT_TRUE(has("set_state_field"));
  // The next turn's prompt is the new state's.
  sim_->push_llm(say("Done."));
  ASSERT_TRUE(send("thanks", "agent_multi").ok());
  EXPECT_NE(texts(sim_->chat_requests()[2], "system")[0].find("Help with the order."), std::string::npos);
  EXPECT_EQ(session(r->session.id).current_state, "order");
}

TEST_F(ChatServiceTest, UpstreamFailureGivesTheFallbackAndRecordsTheError) {
  sim_->fail_next(net::UpstreamStage::llm, {});
  auto r = send("hello");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->reply, "Sorry, we have trouble answering right now.");
  ASSERT_TRUE(r->error);
  EXPECT_NE(r->error->find("llm http"), std::string::npos);
  auto msgs = store_->chat().recent(r->session.id, 1);
  ASSERT_TRUE(msgs.ok() && msgs->size() == 1);
  EXPECT_EQ((*msgs)[0].text, "Sorry, we have trouble answering right now.");
  EXPECT_TRUE((*msgs)[0].error);

  // A model slower than the agent's llm timeout: the fallback too.
  net::SimTiming hang;
  hang.first_ms = net::kSimHang;
  sim_->set_timing(net::UpstreamStage::llm, hang);
  sim_->push_llm(say("too late"));
  auto slow = send("hello again");
  ASSERT_TRUE(slow.ok());
  EXPECT_EQ(slow->reply, "Sorry, we have trouble answering right now.");
  ASSERT_TRUE(slow->error);
  EXPECT_NE(slow->error->find("timeout"), std::string::npos) << *slow->error;
}

TEST_F(ChatServiceTest, ConcurrentMessagesOfOneSessionAreSerialisedAndBounded) {
  auto s = chat_->create_session("agent_chat", "cust-1", "{}", {});
  ASSERT_TRUE(s.ok());
  std::vector<std::optional<Result<ChatTurn>>> out(10);
  for (int i = 0; i < 8; ++i) sim_->push_llm(say(numbered("answer ", i)));
  for (int i = 0; i < 10; ++i) {
    chat_->inbound({"agent_chat", "cust-1", numbered("q", i), std::nullopt},
                   [&out, i](Result<ChatTurn> r) { out[static_cast<size_t>(i)] = std::move(r); });
  }
  EXPECT_EQ(chat_->queued(s->id), 8u);
  for (int i = 0; i < 2000; ++i) vt_.advance_ms(10);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(out[static_cast<size_t>(i)]) << i;
    if (i < 8) {
      ASSERT_TRUE(out[static_cast<size_t>(i)]->ok()) << i;
      EXPECT_EQ((*out[static_cast<size_t>(i)])->reply, numbered("answer ", i));
    } else {
      ASSERT_FALSE(out[static_cast<size_t>(i)]->ok());
      EXPECT_EQ(out[static_cast<size_t>(i)]->error().code, -EBUSY);
    }
  }
  // One at a time: each request saw the previous answer.
  ASSERT_EQ(sim_->chat_requests().size(), 8u);
  EXPECT_EQ(texts(sim_->chat_requests()[7], "assistant").back(), "answer 6");
  EXPECT_EQ(chat_->queued(s->id), 0u);
}

TEST_F(ChatServiceTest, AReloadWhileTheModelAnswersKeepsTheTurnsAgent) {
  sim_->push_llm(say("Answer after the reload."));
  std::optional<Result<ChatTurn>> out;
  chat_->inbound({"agent_chat", "cust-1", "hello", std::nullopt},
                 [&](Result<ChatTurn> r) { out = std::move(r); });
  vt_.advance_ms(5);  // the request is in flight
  ASSERT_FALSE(out);
  {
    auto fresh = std::make_unique<Config>(config_);
    fresh->agents[0].fallback.message = "changed";
    chat_->set_config(fresh.get());
    config_ = Config{};  // the old agents are gone (ASan would catch a turn still pointing at them)
    config_ = *fresh;
    chat_->set_config(&config_);
  }
  auto r = pump(out);
  ASSERT_TRUE(r && r->ok());
  EXPECT_EQ((*r)->reply, "Answer after the reload.");
}

TEST_F(ChatServiceTest, InjectContextKeepsTheLastFive) {
  auto s = chat_->create_session("agent_chat", "cust-1", "{}", {"one", "two", "three", "four", "five"});
  ASSERT_TRUE(s.ok());
  events_.clear();
  auto r = chat_->inject_context(s->id, "six");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->context_json, R"(["two","three","four","five","six"])");
  EXPECT_TRUE(events_.empty()) << "context is not one of the event types";
  // The legacy pause: dormant, one status.changed; pausing again changes nothing and says nothing.
  auto p = chat_->pause(s->id);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->status, "dormant");
  EXPECT_EQ(event_types(), std::vector<std::string>{"status.changed"});
  ASSERT_TRUE(chat_->pause(s->id).ok());
  EXPECT_EQ(events_.size(), 1u);
  EXPECT_FALSE(chat_->inject_context(s->id, "  ").ok());
  auto missing = chat_->inject_context("0190a6d2-0000-7000-8000-000000000000", "x");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, -ENOENT);
}

// ---------------------------------------------------------------------------------------------------------
// offer_call: chat to call and back

// The calls engine as offer_call sees it: records each request; refuses with `refuse` when set.
class FakeCalls final : public CallService {
 public:
  Result<std::string> place_call(const PlaceCallRequest& r) override {
    if (refuse) return make_error("refused", refuse);
    placed.push_back(r);
    return numbered("call-", static_cast<int>(placed.size()));
  }
  size_t idle_lines() const override { return 1; }
  int add_finished_listener(CallFinishedListener l) override {
    listeners[next] = std::move(l);
    return next++;
  }
  void remove_finished_listener(int h) override { listeners.erase(h); }
  void finished(const CallRecord& r) {
    auto copy = listeners;
    for (auto& [h, l] : copy) l(r);
  }
  std::vector<PlaceCallRequest> placed;
  int refuse = 0;
  std::map<int, CallFinishedListener> listeners;
  int next = 1;
};

class OfferCallTest : public ChatServiceTest {
 protected:
  void SetUp() override {
    ChatServiceTest::SetUp();
    AgentConfig phone = chat_agent("agent_phone");
    phone.mode = AgentMode::voice;
    phone.analysis.enabled = true;
    config_.agents.push_back(phone);
    AgentConfig offer = chat_agent("agent_offer");
    offer.chat.voice_agent = "agent_phone";
    config_.agents.push_back(offer);
    std::vector<AgentRecord> records;
    for (const AgentConfig& a : config_.agents)
      records.push_back({0, a.agent_uuid, a.name, a.mode == AgentMode::chat ? "chat" : "voice", a.active,
                         false, "{}", "", 0, 0});
    ASSERT_TRUE(store_->agents().sync(records).ok());
    config_.compliance.calling_hours_start_min = 0;  // any time, unless a test narrows it
    config_.compliance.calling_hours_end_min = 24 * 60;
    calls_ = &fake_;
    make_service();
  }

  // The service removes its listener from fake_, which dies before the base's members.
  void TearDown() override { chat_.reset(); }

  // A session of agent_offer with a little conversation in it.
  std::string chatted() {
    auto s = chat_->create_session("agent_offer", "cust-9", R"({"name":"Ravi"})", {});
    EXPECT_TRUE(s.ok());
    sim_->push_llm(say("Hello Ravi."));
    EXPECT_TRUE(send("My router keeps dropping", "agent_offer", "cust-9").ok());
    return s.ok() ? s->id : "";
  }

  Result<ChatTurn> agree(const std::string& args) {
    sim_->push_llm(use({{"c1", "offer_call", args}}));
    sim_->push_llm(say("Done, we are calling you now."));
    return send("Yes please call me", "agent_offer", "cust-9");
  }

  CallRecord ended(const std::string& id, const std::string& session_id, const std::string& status) {
    CallRecord r;
    r.call_id = id;
    r.agent_uuid = "agent_phone";
    r.phone_number = "+919876543210";
    r.status = status;
    r.duration_seconds = status == "picked" ? 95 : 0;
    r.additional_data = R"({"chat_session_id":")" + session_id + R"("})";
    return r;
  }

  std::vector<ChatMessageRow> messages(const std::string& id) {
    auto m = store_->chat().messages(id, 1, 100);
    EXPECT_TRUE(m.ok());
    return m.ok() ? m->rows : std::vector<ChatMessageRow>{};
  }

  FakeCalls fake_;
  TimeZones tz_;
};

TEST_F(OfferCallTest, TheToolIsOfferedOnlyWithAVoiceAgentAndACallsEngine) {
  auto has_offer = [](const net::ChatRequest& r) {
    return std::any_of(r.tools.begin(), r.tools.end(),
                       [](const net::ToolSpec& t) { return t.name == "offer_call"; });
  };
  sim_->push_llm(say("hi"));
  ASSERT_TRUE(send("hello", "agent_chat").ok());
  EXPECT_FALSE(has_offer(sim_->chat_requests().back()));
  sim_->push_llm(say("hi"));
  ASSERT_TRUE(send("hello", "agent_offer").ok());
  EXPECT_TRUE(has_offer(sim_->chat_requests().back()));
  calls_ = nullptr;
  make_service();
  sim_->push_llm(say("hi"));
  ASSERT_TRUE(send("hello", "agent_offer").ok());
  EXPECT_FALSE(has_offer(sim_->chat_requests().back()));
  EXPECT_TRUE(fake_.listeners.empty());
}

TEST_F(OfferCallTest, AgreedCallIsPlacedThroughTheVoiceAgentWithTheChatSummary) {
  const std::string sid = chatted();
  events_.clear();
  auto t = agree(R"({"phone_number":"9876543210","reason":"router drops"})");
  ASSERT_TRUE(t.ok()) << t.error().message;
  ASSERT_EQ(fake_.placed.size(), 1u);
  const PlaceCallRequest& req = fake_.placed[0];
  EXPECT_EQ(req.agent_uuid, "agent_phone");
  EXPECT_EQ(req.phone_e164, "+919876543210");
  EXPECT_EQ(req.person_name, "Ravi");
  EXPECT_EQ(req.source, "chat");
  net::JsonPtr data = net::json_parse(req.additional_data.value_or(""), nullptr);
  ASSERT_TRUE(cJSON_IsObject(data.get()));
  EXPECT_EQ(net::json_print(cJSON_GetObjectItem(data.get(), "chat_session_id")), "\"" + sid + "\"");
  EXPECT_EQ(std::string(cJSON_GetStringValue(cJSON_GetObjectItem(data.get(), "chat_summary"))),
            "customer: My router keeps dropping\nagent: Hello Ravi.\ncustomer: Yes please call me\n");
  EXPECT_EQ(std::string(cJSON_GetStringValue(cJSON_GetObjectItem(data.get(), "chat_reason"))),
            "router drops");
  // The tool's result went back to the model, and the customer got the model's reply.
  ASSERT_EQ(t->tools.size(), 1u);
  EXPECT_EQ(t->tools[0].result, "call call-1 placed to +919876543210: the customer's phone rings shortly");
  const net::ChatRequest& second = sim_->chat_requests().back();
  EXPECT_EQ(texts(second, "tool"), std::vector<std::string>{t->tools[0].result});
  EXPECT_EQ(t->reply, "Done, we are calling you now.");
  // The tool turn is a stored message (role tool) with its event.
  auto rows = messages(sid);
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[3].role, "tool");
  EXPECT_NE(rows[3].text.find("offer_call("), std::string::npos);
  EXPECT_EQ(event_types(),
            (std::vector<std::string>{"message.created", "message.created", "message.created"}));
}

TEST_F(OfferCallTest, TheSummaryKeepsTheNewestMessagesThatFitTwoKilobytes) {
  const std::string sid = chatted();
  for (int i = 0; i < 12; ++i) {
    sim_->push_llm(say(std::string(600, 'a')));
    ASSERT_TRUE(send(numbered("question ", i), "agent_offer", "cust-9").ok());
  }
  ASSERT_TRUE(agree(R"({"phone_number":"+14155550123"})").ok());
  ASSERT_EQ(fake_.placed.size(), 1u);
  net::JsonPtr data = net::json_parse(*fake_.placed[0].additional_data, nullptr);
  const std::string summary = cJSON_GetStringValue(cJSON_GetObjectItem(data.get(), "chat_summary"));
  EXPECT_LE(summary.size(), 2048u);
  EXPECT_EQ(summary.substr(summary.size() - 29), "customer: Yes please call me\n");
  // Newest first while they fit: 3 answers of 607 bytes and 3 questions, then the next answer does not.
  EXPECT_EQ(summary.find("question 8"), std::string::npos) << summary;
  EXPECT_EQ(summary.find("customer: question 9\n"), 0u) << summary;
  EXPECT_EQ(fake_.placed[0].phone_e164, "+14155550123");
}

TEST_F(OfferCallTest, TheSummaryHasAtMostTheLastTenMessages) {
  chatted();
  for (int i = 0; i < 6; ++i) {
    sim_->push_llm(say("ok"));
    ASSERT_TRUE(send(numbered("q", i), "agent_offer", "cust-9").ok());
  }
  ASSERT_TRUE(agree(R"({"phone_number":"+14155550123"})").ok());
  ASSERT_EQ(fake_.placed.size(), 1u);
  net::JsonPtr data = net::json_parse(*fake_.placed[0].additional_data, nullptr);
  const std::string summary = cJSON_GetStringValue(cJSON_GetObjectItem(data.get(), "chat_summary"));
  EXPECT_EQ(std::count(summary.begin(), summary.end(), '\n'), 10);
  EXPECT_EQ(summary.find("agent: ok\ncustomer: q2\n"), 0u) << summary;
}

TEST_F(OfferCallTest, ADoNotDisturbNumberIsRefusedToTheModel) {
  chatted();
  ASSERT_TRUE(
      store_->dnd().add_entry("agent_phone", "+919876543210", std::nullopt, "api", std::nullopt).ok());
  auto t = agree(R"({"phone_number":"9876543210"})");
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(fake_.placed.empty());
  ASSERT_EQ(t->tools.size(), 1u);
  EXPECT_NE(t->tools[0].result.find("may not be called"), std::string::npos) << t->tools[0].result;
  // The engine's own refusal (a number listed meanwhile) reads the same.
  fake_.refuse = -EPERM;
  t = agree(R"({"phone_number":"+14155550123"})");
  ASSERT_TRUE(t.ok());
  EXPECT_NE(t->tools[0].result.find("may not be called"), std::string::npos);
}

TEST_F(OfferCallTest, BadArgumentsAndEngineErrorsBecomeToolResults) {
  chatted();
  auto t = agree(R"({"country_code":"IN"})");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->tools[0].result, "not placed: phone_number is required; ask the customer for their number");
  t = agree(R"({"phone_number":"98x"})");
  ASSERT_TRUE(t.ok());
  EXPECT_NE(t->tools[0].result.find("digits only"), std::string::npos);
  t = agree(R"({"phone_number":"9876543210","country_code":"India"})");
  ASSERT_TRUE(t.ok());
  EXPECT_NE(t->tools[0].result.find("two-letter country code"), std::string::npos);
  fake_.refuse = -EBUSY;
  t = agree("not json");
  ASSERT_TRUE(t.ok());
  EXPECT_NE(t->tools[0].result.find("phone_number is required"), std::string::npos);
  t = agree(R"({"phone_number":"+14155550123"})");
  ASSERT_TRUE(t.ok());
  EXPECT_NE(t->tools[0].result.find("every phone line is busy"), std::string::npos);
  EXPECT_TRUE(fake_.placed.empty());
}

TEST_F(OfferCallTest, OutsideCallingHoursNothingIsDialledAndTheModelIsToldWhen) {
  chatted();
  // The site's zone (the fixed offset of the configuration): a window that opens an hour from now.
  auto zone = TimeZone::fixed("site", config_.site.utc_offset_minutes * 60);
  const LocalTime now = zone->local(vt_.clock.wall_ms());
  const int open = (now.minute_of_day / 60 + 1) % 24 * 60;
  config_.compliance.calling_hours_start_min = open;
  config_.compliance.calling_hours_end_min = (open + 120) % (24 * 60);
  config_.compliance.calling_hours = "window";
  auto t = agree(R"({"phone_number":"9876543210"})");
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(fake_.placed.empty());
  const std::string& result = t->tools[0].result;
  EXPECT_NE(result.find("outside calling hours (window"), std::string::npos) << result;
  char hhmm[8];
  std::snprintf(hhmm, sizeof hhmm, "%02d:00", open / 60);
  EXPECT_NE(result.find(std::string(" ") + hhmm + " their time"), std::string::npos) << result;
}

TEST_F(OfferCallTest, CallingHoursAreTheCalleesInTheirZone) {
  zones_ = &tz_;
  make_service();
  chatted();
  auto ny = tz_.get("America/New_York");
  ASSERT_TRUE(ny.ok());
  const int now_min = (*ny)->local(vt_.clock.wall_ms()).minute_of_day;
  // Open for the next two hours in New York: a +1 number is called, whatever the site's time.
  config_.compliance.calling_hours_start_min = now_min;
  config_.compliance.calling_hours_end_min = std::min(now_min + 120, 24 * 60);
  auto t = agree(R"({"phone_number":"+12125550123"})");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(fake_.placed.size(), 1u) << t->tools[0].result;
  // Closed until two hours from now in New York.
  const int open = (now_min / 60 + 2) % 24 * 60;
  config_.compliance.calling_hours_start_min = open;
  config_.compliance.calling_hours_end_min = open + 60;
  t = agree(R"({"phone_number":"+12125550123"})");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(fake_.placed.size(), 1u);
  char hhmm[8];
  std::snprintf(hhmm, sizeof hhmm, "%02d:00", open / 60);
  EXPECT_NE(t->tools[0].result.find("time zone America/New_York"), std::string::npos) << t->tools[0].result;
  EXPECT_NE(t->tools[0].result.find(std::string(" ") + hhmm + " their time"), std::string::npos)
      << t->tools[0].result;
}

TEST_F(OfferCallTest, AnUnpickedCallIsNotedInTheSessionOnce) {
  const std::string sid = chatted();
  ASSERT_TRUE(agree(R"({"phone_number":"9876543210"})").ok());
  events_.clear();
  chat_->set_analysis_follows(true);  // not picked: noted at once all the same
  fake_.finished(ended("call-1", sid, "not_picked"));
  fake_.finished(ended("call-1", sid, "not_picked"));  // reported again (a restart): once
  auto rows = messages(sid);
  ASSERT_EQ(rows.back().role, "system");
  EXPECT_EQ(rows.back().text, "Phone call call-1 ended: not_picked, 0s.");
  EXPECT_EQ(
      std::count_if(rows.begin(), rows.end(), [](const ChatMessageRow& m) { return m.role == "system"; }), 1);
  EXPECT_EQ(session(sid).context_json, R"(["Phone call call-1 ended: not_picked, 0s."])");
  ASSERT_EQ(event_types(), std::vector<std::string>{"message.created"});
  EXPECT_NE(events_[0].data.find("Phone call call-1 ended"), std::string::npos);
  // A call not from a chat, or naming a session that is gone, changes nothing.
  CallRecord other = ended("call-2", sid, "picked");
  other.additional_data = R"({"x":1})";
  fake_.finished(other);
  fake_.finished(ended("call-3", "no-such-session", "picked"));
  EXPECT_EQ(messages(sid).size(), rows.size());
  // The next model turn sees the note as context.
  sim_->push_llm(say("Sorry we missed you."));
  ASSERT_TRUE(send("Did you call?", "agent_offer", "cust-9").ok());
  EXPECT_NE(texts(sim_->chat_requests().back(), "system")[0].find("- Phone call call-1 ended"),
            std::string::npos);
}

TEST_F(OfferCallTest, APickedCallWithAnalysisIsNotedWithItsSummaryWhenTheAnalysisIsDone) {
  const std::string sid = chatted();
  chat_->set_analysis_follows(true);
  CallRecord r = ended("0190a0a0-0000-7000-8000-000000000001", sid, "picked");
  ASSERT_TRUE(store_->calls().insert(r).ok());
  fake_.finished(r);
  EXPECT_EQ(messages(sid).back().role, "agent");  // waits for the summary
  r.summary = "Customer's router was reset; fixed.";
  ASSERT_TRUE(store_->calls().update(r).ok());
  // A restart between the call's end and its analysis: a new service reads the linkage from the record.
  make_service();
  events_.clear();
  chat_->call_analysis_done(r.call_id);
  chat_->call_analysis_done(r.call_id);
  fake_.finished(r);
  const std::string note =
      "Phone call " + r.call_id + " ended: picked, 95s. Summary: Customer's router was reset; fixed.";
  auto rows = messages(sid);
  EXPECT_EQ(rows.back().text, note);
  EXPECT_EQ(
      std::count_if(rows.begin(), rows.end(), [](const ChatMessageRow& m) { return m.role == "system"; }), 1);
  EXPECT_EQ(event_types(), std::vector<std::string>{"message.created"});
  EXPECT_NE(session(sid).context_json.find("Summary: Customer's router"), std::string::npos);
}

TEST_F(OfferCallTest, WithoutAnalysisAPickedCallIsNotedWhenItEnds) {
  const std::string sid = chatted();
  // set_analysis_follows not called: the daemon's analysis is not running.
  CallRecord r = ended("call-7", sid, "picked");
  r.summary = "ignored? no: used when present";
  fake_.finished(r);
  EXPECT_EQ(messages(sid).back().text,
            "Phone call call-7 ended: picked, 95s. Summary: ignored? no: used when present");
}

}  // namespace
}  // namespace osvi::daemon
