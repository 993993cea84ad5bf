// search_knowledge_base in a voice call: a real Call and KnowledgeService on one store, the scripted
// upstream, a fake line and audio port, on a virtual clock — the tool message, the knowledge filler, results
// that come after the call ended, and the dead-air guard while a search hangs.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "fake_audio_port.hpp"
#include "fake_line.hpp"
#include "osvi/calls/call.hpp"
#include "osvi/knowledge/knowledge_service.hpp"
#include "osvi/knowledge/tool.hpp"
#include "osvi/net/json.hpp"
#include "osvi/speech/speech.hpp"
#include "test_support.hpp"
#include "upstream_sim.hpp"
#include "virtual_time.hpp"

namespace osvi::daemon {
namespace {

using audio::EndpointKind;
using net::SimLlmReply;
using test::FakeAudio;

constexpr const char* kCallId = "01890000-0000-7000-8000-000000000042";
constexpr const char* kNumber = "+919876543210";
// A CSV: one chunk per row, so bm25 has words that only some chunks have.
constexpr const char* kFacts =
    "topic,answer\n"
    "Opening hours,\"The clinic opens at 9 am and closes at 6 pm from Monday to Saturday. It is closed on "
    "Sundays and public holidays.\"\n"
    "Fees,\"A consultation with the doctor costs Rs 500, paid at the desk by card, cash or UPI.\"\n"
    "Parking,Cars park in the basement of the building; the first two hours are free for patients.\n"
    "Reports,Blood test reports are ready after 24 hours and are sent by e-mail as a PDF.\n"
    "Vaccinations,Children's vaccinations are given on Tuesday and Thursday mornings by appointment.\n"
    "Insurance,The clinic accepts cashless claims from the major insurers; bring the policy card.\n";
constexpr const char* kSundayQuery = R"({"query":"is the clinic open on Sundays"})";

SimLlmReply says(std::string text) {
  SimLlmReply r;
  r.text = std::move(text);
  return r;
}
SimLlmReply searches(std::string args, std::string text = "") {
  SimLlmReply r;
  r.text = std::move(text);
  r.tool_calls.push_back({"call_kb_1", std::string(knowledge::kSearchToolName), std::move(args)});
  return r;
}

// espeak-ng rendering at once, for the test whose dead-air filler must be heard (call_test does the same).
SpeechWorker::Ticket speak_at_once(std::string text, int rate, std::chrono::milliseconds,
                                   SpeechWorker::Done done) {
  static std::unique_ptr<Speech> speech = [] {
    auto r = Speech::create();
    return r.ok() ? std::move(r).value() : nullptr;
  }();
  if (!speech) {
    done(make_error("no espeak-ng"));
    return {};
  }
  done(speech->render(text, rate));
  return {};
}

// An embeddings client that answers only when the test says so (or never): a search of an agent with
// embeddings waits for it.
class HeldEmbedder : public knowledge::Embedder {
 public:
  void embed(const UpstreamEndpoint&, std::vector<std::string> texts, Done done) override {
    held_.push_back({texts.size(), std::move(done)});
  }
  size_t held() const { return held_.size(); }
  void release_all() {
    auto held = std::move(held_);
    held_.clear();
    for (auto& [n, done] : held) done(knowledge::Embeddings(n, std::vector<float>(8, 0.5f)));
  }

 private:
  std::vector<std::pair<size_t, Done>> held_;
};

class CallKnowledgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::open(StoreOptions{dir_.file("osvid.db"), 2000, true}, time_.clock);
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(*store);
    knowledge_ = std::make_unique<knowledge::KnowledgeService>(*store_, time_.clock, time_.schedule());
    knowledge::IngestRequest doc;
    doc.name = "Clinic facts";
    doc.content = kFacts;
    doc.format = "csv";
    ASSERT_TRUE(knowledge_->ingest(doc).ok());
    agent_.agent_uuid = "agent_a";
    agent_.name = "Reception";
    agent_.prompt.system_prompt = "You are the clinic's receptionist.";
    agent_.greeting.text = "Hello, this is the clinic.";
    agent_.stt.base_url = agent_.llm.base_url = agent_.voice.base_url = "http://sim";
    agent_.knowledge.documents = {"Clinic facts"};
    agent_.knowledge.relevance_threshold = 0.1;
    ctx_.clock = &time_.clock;
    ctx_.store = store_.get();
    ctx_.upstream = &up_;
    ctx_.speech =
        nullptr;  // no espeak: the dead-air filler cannot be said, the guard goes on to the fallback
    ctx_.audio_port = audio_.factory();
    ctx_.timer = time_.timer_factory();
    ctx_.knowledge = knowledge_.get();
    line_.set_event_handler([this](const hal::LineEvent& e) {
      if (call_) call_->on_line_event(e);
    });
  }

  void with_embeddings() {
    EmbeddingsConfig e;
    e.base_url = "http://sim";
    agent_.knowledge.embeddings = e;
    knowledge_->set_embedder(&embedder_);
  }

  void answer_and_greet() {
    CallSetup s;
    s.agent = agent_;
    s.outbound = false;
    s.record.call_id = kCallId;
    s.record.agent_uuid = agent_.agent_uuid;
    s.record.agent_name = agent_.name;
    s.record.phone_number = kNumber;
    s.record.call_type = "inbound";
    s.record.created_at_ms = time_.clock.wall_ms();
    ASSERT_TRUE(store_->calls().insert(s.record).ok());
    call_ = std::make_unique<Call>(ctx_, line_, std::move(s), [this](Call&) { ++finished_; });
    ASSERT_TRUE(call_->start().ok());
    line_event(hal::LineEvent::Type::answered);
    audio_.event(hal::StreamEventKind::opened);
    play_all();
  }
  void line_event(hal::LineEvent::Type type) {
    hal::LineEvent e;
    e.type = type;
    line_.deliver(e);
  }
  void play_all(int64_t settle_ms = 400) {
    time_.advance_ms(settle_ms);
    audio_.drain();
  }
  void frame(FakeAudio::Frame f = {}) {
    audio_.capture(f);
    time_.advance_ms(20);
    audio_.complete_stop();
  }
  static FakeAudio::Frame endpoints(std::vector<audio::EndpointEvent> events) {
    FakeAudio::Frame f;
    f.endpoints = std::move(events);
    return f;
  }
  // The caller says `text`: 0.5 s of speech, then the endpointer's decision after 500 ms of silence.
  void caller_says(std::string text) {
    up_.push_stt(std::move(text));
    const uint64_t begin = audio_.position();
    const uint64_t at = begin + 320;
    frame(endpoints({{EndpointKind::Onset, at, begin, 0, 0}, {EndpointKind::SpeechStart, at, begin, 0, 0}}));
    for (int i = 1; i < 25; ++i) frame();
    const uint64_t end = audio_.position();
    for (int i = 0; i < 24; ++i) frame();
    frame(endpoints({{EndpointKind::SpeechEnd, audio_.position() + 320, begin, end, 8000}}));
  }

  std::vector<TranscriptTurn> transcript() {
    auto t = store_->calls().transcript(kCallId);
    EXPECT_TRUE(t.ok());
    return t.ok() ? *t : std::vector<TranscriptTurn>{};
  }
  std::vector<std::string> turns() {  // "role[kind]: text"
    std::vector<std::string> out;
    for (const TranscriptTurn& t : transcript())
      out.push_back(t.role + (t.kind ? "[" + *t.kind + "]" : "") + ": " + t.text);
    return out;
  }
  std::vector<std::string> tts_texts() const {
    std::vector<std::string> out;
    for (const net::TtsRequest& r : up_.tts_requests()) out.push_back(r.text);
    return out;
  }
  static const net::ChatMessage* tool_message(const net::ChatRequest& r) {
    for (auto it = r.messages.rbegin(); it != r.messages.rend(); ++it)
      if (it->role == "tool") return &*it;
    return nullptr;
  }
  static bool offers_search(const net::ChatRequest& r) {
    return std::any_of(r.tools.begin(), r.tools.end(),
                       [](const net::ToolSpec& t) { return t.name == knowledge::kSearchToolName; });
  }
  bool tts_said(std::string_view text) const {
    const auto said = tts_texts();
    return std::find(said.begin(), said.end(), text) != said.end();
  }

  test::TempDir dir_;
  test::VirtualTime time_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<knowledge::KnowledgeService> knowledge_;
  HeldEmbedder embedder_;
  net::SimUpstream up_{time_.schedule()};
  test::FakeLine line_;
  FakeAudio audio_;
  AgentConfig agent_;
  CallContext ctx_;
  std::unique_ptr<Call> call_;
  int finished_ = 0;
};

TEST_F(CallKnowledgeTest, TheSearchResultReachesTheNextRequestAndTheReplyIsSpoken) {
  answer_and_greet();
  up_.push_llm(searches(kSundayQuery));
  up_.push_llm(says("Sorry, we are closed on Sundays."));
  caller_says("Are you open on Sunday");
  play_all();
  play_all();
  ASSERT_EQ(up_.chat_requests().size(), 2u);
  EXPECT_TRUE(offers_search(up_.chat_requests()[0]));
  const net::ChatMessage* tool = tool_message(up_.chat_requests()[1]);
  ASSERT_NE(tool, nullptr);
  EXPECT_EQ(tool->tool_call_id, "call_kb_1");
  EXPECT_NE(tool->content.find("closed on Sundays and public holidays"), std::string::npos) << tool->content;
  EXPECT_NE(tool->content.find("Sources: Clinic facts"), std::string::npos) << tool->content;
  // The turn had no words of its own: the knowledge filler was said, on the model's behalf.
  EXPECT_EQ(tts_texts(), (std::vector<std::string>{"Hello, this is the clinic.", "Let me check that for you.",
                                                   "Sorry, we are closed on Sundays."}));
  const auto& ctx = call_->context();
  const auto asked = std::find_if(ctx.begin(), ctx.end(), [](const net::ChatMessage& m) {
    return m.role == "assistant" && !m.tool_calls.empty();
  });
  ASSERT_NE(asked, ctx.end());
  EXPECT_EQ(asked->content, "Let me check that for you.");
  EXPECT_EQ(ctx.back().content, "Sorry, we are closed on Sundays.");
  EXPECT_EQ(turns(),
            (std::vector<std::string>{
                "agent: Hello, this is the clinic.", "user: Are you open on Sunday",
                std::string("tool: search_knowledge_base ") + kSundayQuery + " -> 1 hit (Clinic facts)",
                "agent[filler]: Let me check that for you.", "agent: Sorry, we are closed on Sundays."}));
  const std::vector<TranscriptTurn> t = transcript();
  ASSERT_TRUE(t[2].latency_json.has_value());
  net::JsonPtr latency = net::json_parse(*t[2].latency_json, nullptr);
  ASSERT_TRUE(latency);
  EXPECT_TRUE(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(latency.get(), "knowledge_search_ms")));
  EXPECT_LE(t[3].ended_at_ms, t[4].started_at_ms);  // the reply begins where the filler ended
}

TEST_F(CallKnowledgeTest, NoFillerWhenTheTurnSaidSomethingOrItIsDisabled) {
  answer_and_greet();
  up_.push_llm(searches(kSundayQuery, "One second, I am looking."));
  up_.push_llm(says("We are closed on Sundays."));
  caller_says("Are you open on Sunday");
  play_all();
  play_all();
  EXPECT_FALSE(tts_said("Let me check that for you."));
  EXPECT_TRUE(tts_said("We are closed on Sundays."));
  for (const TranscriptTurn& t : transcript()) EXPECT_FALSE(t.kind.has_value()) << t.text;
}

TEST_F(CallKnowledgeTest, NoKnowledgeFillerRightAfterTheDeadAirFiller) {
  ctx_.speech = speak_at_once;
  up_.set_timing(net::UpstreamStage::llm, {1, 4000, 5});  // the tool call comes after dead_air_ms (2500)
  answer_and_greet();
  up_.push_llm(searches(kSundayQuery));
  up_.push_llm(says("We are closed on Sundays."));
  caller_says("Are you open on Sunday");
  time_.advance_ms(200);  // the transcript; the model's request is out
  ASSERT_EQ(up_.chat_requests().size(), 1u);
  up_.set_timing(net::UpstreamStage::llm, {1, 20, 5});  // the follow-up is quick
  for (int i = 0; i < 300; ++i) {
    time_.advance_ms(20);
    audio_.drain();
  }
  ASSERT_EQ(up_.chat_requests().size(), 2u);
  EXPECT_FALSE(tts_said("Let me check that for you."));  // the caller just heard "One moment, please."
  EXPECT_TRUE(tts_said("We are closed on Sundays."));
  const std::vector<std::string> t = turns();
  EXPECT_NE(std::find(t.begin(), t.end(), "agent[filler]: One moment, please."), t.end());
  EXPECT_EQ(t.back(), "agent: We are closed on Sundays.");
  EXPECT_FALSE(call_->record().callback_required);
}

TEST_F(CallKnowledgeTest, ADisabledFillerIsNeverSaid) {
  agent_.knowledge.filler.enabled = false;
  answer_and_greet();
  up_.push_llm(searches(kSundayQuery));
  up_.push_llm(says("We are closed on Sundays."));
  caller_says("Are you open on Sunday");
  play_all();
  play_all();
  EXPECT_EQ(tts_texts(),
            (std::vector<std::string>{"Hello, this is the clinic.", "We are closed on Sundays."}));
}

TEST_F(CallKnowledgeTest, AnEmptyFillerIsNeverSaid) {
  agent_.knowledge.filler.text = "";
  answer_and_greet();
  up_.push_llm(searches(kSundayQuery));
  up_.push_llm(says("We are closed on Sundays."));
  caller_says("Are you open on Sunday");
  play_all();
  play_all();
  EXPECT_EQ(tts_texts(),
            (std::vector<std::string>{"Hello, this is the clinic.", "We are closed on Sundays."}));
}

TEST_F(CallKnowledgeTest, NotOfferedWithoutDocuments) {
  agent_.knowledge.documents.clear();
  answer_and_greet();
  up_.push_llm(searches(kSundayQuery));
  up_.push_llm(says("I do not know."));
  caller_says("Are you open on Sunday");
  play_all();
  ASSERT_EQ(up_.chat_requests().size(), 2u);
  EXPECT_FALSE(offers_search(up_.chat_requests()[0]));
  ASSERT_NE(tool_message(up_.chat_requests()[1]), nullptr);
  EXPECT_EQ(tool_message(up_.chat_requests()[1])->content, "unknown tool search_knowledge_base");
  EXPECT_FALSE(tts_said("Let me check that for you."));
}

TEST_F(CallKnowledgeTest, NotOfferedWithoutTheService) {
  ctx_.knowledge = nullptr;
  answer_and_greet();
  up_.push_llm(says("Hello."));
  caller_says("Hi");
  play_all();
  ASSERT_EQ(up_.chat_requests().size(), 1u);
  EXPECT_FALSE(offers_search(up_.chat_requests()[0]));
}

TEST_F(CallKnowledgeTest, NothingAboveTheThresholdTellsTheModelItDoesNotKnow) {
  agent_.knowledge.relevance_threshold = 0.99;
  answer_and_greet();
  up_.push_llm(searches(R"({"query":"bicycle parking"})"));
  up_.push_llm(says("I am afraid I do not know."));
  caller_says("Where can I park my bicycle");
  play_all();
  play_all();
  ASSERT_EQ(up_.chat_requests().size(), 2u);
  ASSERT_NE(tool_message(up_.chat_requests()[1]), nullptr);
  EXPECT_EQ(tool_message(up_.chat_requests()[1])->content, knowledge::kToolNoResult);
  EXPECT_EQ(turns()[2],
            R"(tool: search_knowledge_base {"query":"bicycle parking"} -> no hit above the threshold 0.99)");
}

TEST_F(CallKnowledgeTest, InvalidArgumentsAreReportedToTheModel) {
  answer_and_greet();
  up_.push_llm(searches(R"({"q":"sunday"})"));
  up_.push_llm(says("Let me try again."));
  caller_says("Are you open on Sunday");
  play_all();
  ASSERT_EQ(up_.chat_requests().size(), 2u);
  ASSERT_NE(tool_message(up_.chat_requests()[1]), nullptr);
  EXPECT_EQ(tool_message(up_.chat_requests()[1])
                ->content.rfind("Invalid arguments: the argument \"query\" is "
                                "required",
                                0),
            0u);
  EXPECT_FALSE(tts_said("Let me check that for you."));  // nothing was searched
}

TEST_F(CallKnowledgeTest, ASlowSearchHoldsTheNextRequestUntilItsResult) {
  with_embeddings();
  answer_and_greet();
  up_.push_llm(searches(kSundayQuery));
  up_.push_llm(says("We are closed on Sundays."));
  caller_says("Are you open on Sunday");
  play_all();
  ASSERT_EQ(embedder_.held(), 1u);  // the query's embedding
  EXPECT_EQ(up_.chat_requests().size(), 1u);
  EXPECT_TRUE(tts_said("Let me check that for you."));  // said while the search runs
  embedder_.release_all();
  play_all();
  play_all();
  ASSERT_EQ(up_.chat_requests().size(), 2u);
  ASSERT_NE(tool_message(up_.chat_requests()[1]), nullptr);
  EXPECT_NE(tool_message(up_.chat_requests()[1])->content.find("closed on Sundays"), std::string::npos);
  EXPECT_TRUE(tts_said("We are closed on Sundays."));
  EXPECT_FALSE(call_->record().callback_required);
}

TEST_F(CallKnowledgeTest, TalkingOverTheFillerAbandonsTheSearchAndAnswersTheNewWords) {
  with_embeddings();
  answer_and_greet();
  up_.push_llm(searches(kSundayQuery));
  caller_says("Are you open on Sunday");
  time_.advance_ms(400);  // the tool call, then the filler's audio queued
  ASSERT_EQ(embedder_.held(), 1u);
  ASSERT_TRUE(tts_said("Let me check that for you."));
  audio_.play(4000);  // a quarter of a second of it heard
  up_.push_llm(says("Of course, go ahead."));
  caller_says("Actually wait a moment");
  EXPECT_EQ(audio_.stops, 1);
  play_all();
  embedder_.release_all();  // the abandoned search's result: nobody waits for it
  play_all();
  ASSERT_EQ(up_.chat_requests().size(), 2u);
  const net::ChatRequest& next = up_.chat_requests()[1];
  EXPECT_EQ(next.messages.back().content, "Actually wait a moment");
  ASSERT_NE(tool_message(next), nullptr);
  EXPECT_EQ(tool_message(next)->content, "The search was abandoned: the caller interrupted.");
  const std::vector<std::string> t = turns();
  EXPECT_NE(std::find(t.begin(), t.end(),
                      std::string("tool: search_knowledge_base ") + kSundayQuery +
                          " -> abandoned: the caller interrupted"),
            t.end());
  const std::vector<TranscriptTurn> turns_saved = transcript();
  const auto filler = std::find_if(turns_saved.begin(), turns_saved.end(),
                                   [](const TranscriptTurn& x) { return x.kind == "filler"; });
  ASSERT_NE(filler, turns_saved.end());
  EXPECT_TRUE(filler->interrupted);
  EXPECT_EQ(t.back(), "agent: Of course, go ahead.");
}

TEST_F(CallKnowledgeTest, ASearchFinishingAfterTheCallEndedIsDropped) {
  with_embeddings();
  answer_and_greet();
  up_.push_llm(searches(kSundayQuery));
  caller_says("Are you open on Sunday");
  time_.advance_ms(300);  // the transcript, then the model's tool call
  ASSERT_EQ(embedder_.held(), 1u);
  line_event(hal::LineEvent::Type::remote_hangup);  // the caller hangs up mid-search
  ASSERT_TRUE(call_->finished());
  embedder_.release_all();  // the Call is finished: the result goes nowhere
  EXPECT_EQ(up_.chat_requests().size(), 1u);
  const std::vector<std::string> t = turns();
  EXPECT_NE(
      std::find(t.begin(), t.end(),
                std::string("tool: search_knowledge_base ") + kSundayQuery + " -> abandoned: the call ended"),
      t.end());
}

TEST_F(CallKnowledgeTest, ASearchFinishingAfterTheCallWasDestroyedTouchesNothing) {
  with_embeddings();
  answer_and_greet();
  up_.push_llm(searches(kSundayQuery));
  caller_says("Are you open on Sunday");
  time_.advance_ms(300);  // the transcript, then the model's tool call
  ASSERT_EQ(embedder_.held(), 1u);
  call_->abort("shutdown");
  call_.reset();
  embedder_.release_all();  // ASan would see a use after free of the Call
  time_.advance_ms(1000);
  EXPECT_EQ(up_.chat_requests().size(), 1u);
}

TEST_F(CallKnowledgeTest, TheDeadAirGuardStillActsWhenTheSearchNeverCompletes) {
  with_embeddings();
  answer_and_greet();
  up_.push_llm(searches(kSundayQuery));
  caller_says("Are you open on Sunday");
  play_all(200);  // the knowledge filler plays
  ASSERT_TRUE(tts_said("Let me check that for you."));
  EXPECT_FALSE(call_->record().callback_required);
  for (int i = 0; i < 400 && !call_->record().callback_required; ++i) time_.advance_ms(20);
  EXPECT_TRUE(call_->record().callback_required);  // the fallback: the caller is not left in silence
  EXPECT_EQ(call_->record().call_ended_reason, "upstream_failure");
  EXPECT_EQ(up_.chat_requests().size(), 1u);
  embedder_.release_all();  // too late: dropped
  time_.advance_ms(1000);
  EXPECT_EQ(up_.chat_requests().size(), 1u);
  const std::vector<std::string> t = turns();
  EXPECT_NE(std::find(t.begin(), t.end(),
                      std::string("tool: search_knowledge_base ") + kSundayQuery +
                          " -> abandoned: the call went to the fallback"),
            t.end());
}

}  // namespace
}  // namespace osvi::daemon
