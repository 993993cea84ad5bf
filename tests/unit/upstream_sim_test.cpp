// SimUpstream: scripted answers arrive later through the owner's timer, in order, and requests are recorded.
#include "upstream_sim.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "stand_in_embedding.hpp"

namespace osvi::net {
namespace {

// A manual timer queue standing in for the daemon's loop.
struct FakeLoop {
  int64_t now = 0;
  uint64_t seq = 0;
  std::multimap<std::pair<int64_t, uint64_t>, std::function<void()>> queue;
  SimUpstream::Schedule schedule() {
    return [this](int64_t delay, std::function<void()> fn) {
      queue.emplace(std::pair{now + delay, seq++}, std::move(fn));
    };
  }
  void run(int64_t until_ms = 1'000'000) {
    while (!queue.empty() && queue.begin()->first.first <= until_ms) {
      auto node = queue.extract(queue.begin());
      now = node.key().first;
      node.mapped()();
    }
  }
};

TEST(UpstreamSim, ChatStreamsTheScriptAndRecordsTheContext) {
  FakeLoop loop;
  SimUpstream sim(loop.schedule());
  sim.chunk_chars = 4;
  sim.push_llm({"Hello there", {{"c1", "book", R"({"day":"mon"})"}}, "", std::nullopt, false});
  ChatRequest req;
  req.endpoint.base_url = "http://sim";
  req.messages = {{"system", "be brief", {}, {}}, {"user", "hi", {}, {}}};
  std::vector<std::string> deltas;
  std::optional<ChatResult> result;
  bool sent = false;
  sim.chat(req, {[&] { sent = true; }, [&](std::string_view d) { deltas.emplace_back(d); },
                 [&](ChatResult r) { result = std::move(r); }, [&](const UpstreamError&) { FAIL(); }});
  EXPECT_FALSE(sent);  // nothing from inside chat()
  loop.run();
  EXPECT_TRUE(sent);
  EXPECT_EQ(deltas, (std::vector<std::string>{"Hell", "o th", "ere"}));
  ASSERT_TRUE(result);
  EXPECT_EQ(result->text, "Hello there");
  EXPECT_EQ(result->finish_reason, "tool_calls");
  ASSERT_EQ(result->tool_calls.size(), 1u);
  EXPECT_EQ(result->tool_calls[0].name, "book");
  ASSERT_EQ(sim.chat_requests().size(), 1u);
  EXPECT_EQ(sim.chat_requests()[0].messages, req.messages);
  EXPECT_EQ(sim.in_flight(), 0u);
}

TEST(UpstreamSim, EmptyScriptAndFailuresAreErrors) {
  FakeLoop loop;
  SimUpstream sim(loop.schedule());
  std::vector<UpstreamError> errors;
  ChatCallbacks cb{{}, {}, [](ChatResult) { FAIL(); }, [&](const UpstreamError& e) { errors.push_back(e); }};
  sim.chat({}, cb);
  sim.fail_next(UpstreamStage::llm, {UpstreamError::Kind::http, 503, "busy"});
  sim.push_llm({"unused", {}, "", std::nullopt, false});
  sim.chat({}, cb);
  loop.run();
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].kind, UpstreamError::Kind::protocol);
  EXPECT_EQ(errors[1].kind, UpstreamError::Kind::http);
  EXPECT_EQ(errors[1].http_status, 503);
}

TEST(UpstreamSim, SttQueueTtsBytesAndTiming) {
  FakeLoop loop;
  SimUpstream sim(loop.schedule());
  sim.set_timing(UpstreamStage::stt, {1, 100, 0});
  sim.push_stt("book a table");
  std::string text = "unset";
  sim.transcribe({}, {{}, [&](std::string t) { text = std::move(t); }, {}});
  loop.run(50);
  EXPECT_EQ(text, "unset");
  loop.run();
  EXPECT_EQ(text, "book a table");

  sim.tts_bytes_per_char = 100;
  sim.tts_chunk_bytes = 64;
  size_t bytes = 0, chunks = 0;
  bool done = false;
  TtsRequest tts;
  tts.text = "abc";
  sim.speak(tts,
            {{}, [&](std::span<const uint8_t> b) { bytes += b.size(), ++chunks; }, [&] { done = true; }, {}});
  loop.run();
  EXPECT_TRUE(done);
  EXPECT_EQ(bytes, 300u);
  EXPECT_EQ(chunks, 5u);
}

TEST(UpstreamSim, CancelStopsEveryCallback) {
  FakeLoop loop;
  SimUpstream sim(loop.schedule());
  sim.push_llm({std::string(100, 'x'), {}, "", std::nullopt, false});
  int calls = 0;
  RequestId id = 0;
  id = sim.chat({}, {{},
                     [&](std::string_view) {
                       ++calls;
                       sim.cancel(id);
                     },
                     [&](ChatResult) { ++calls; },
                     [&](const UpstreamError&) { ++calls; }});
  loop.run();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(sim.in_flight(), 0u);
}

TEST(UpstreamSim, BreakerOpenFailsAtOnceButLater) {
  FakeLoop loop;
  SimUpstream sim(loop.schedule());
  sim.set_breaker_open("http://down", true);
  EXPECT_TRUE(sim.breaker_open("http://down"));
  std::optional<UpstreamError> err;
  TtsRequest tts;
  tts.endpoint.base_url = "http://down";
  sim.speak(tts, {{}, {}, {}, [&](const UpstreamError& e) { err = e; }});
  EXPECT_FALSE(err);
  loop.run();
  ASSERT_TRUE(err);
  EXPECT_EQ(err->kind, UpstreamError::Kind::breaker_open);
  EXPECT_EQ(err->stage, UpstreamStage::tts);
}

TEST(UpstreamSim, EmbeddingsAreTheStandInUnlessScriptedAndFailAsScripted) {
  FakeLoop loop;
  SimUpstream sim(loop.schedule());
  sim.set_timing(UpstreamStage::embeddings, {1, 30, 0});
  EmbeddingsRequest req;
  req.endpoint.base_url = "http://sim";
  req.inputs = {"opening hours", "refund policy"};
  std::vector<std::vector<std::vector<float>>> answers;
  std::vector<UpstreamError> errors;
  bool sent = false;
  EmbeddingsCallbacks cb{[&] { sent = true; },
                         [&](std::vector<std::vector<float>> v) { answers.push_back(std::move(v)); },
                         [&](const UpstreamError& e) { errors.push_back(e); }};
  sim.embed(req, cb);
  EXPECT_FALSE(sent);  // nothing from inside embed()
  loop.run(30);
  EXPECT_TRUE(sent);
  EXPECT_TRUE(answers.empty());  // first_ms after on_sent
  loop.run();
  ASSERT_EQ(answers.size(), 1u);
  ASSERT_EQ(answers[0].size(), 2u);
  EXPECT_EQ(answers[0][0], tools::stand_in_embedding("opening hours", 256));
  EXPECT_EQ(answers[0][1], tools::stand_in_embedding("refund policy", 256));

  req.dimensions = 16;
  sim.embed(req, cb);
  sim.push_embeddings({{1.0f, 0.0f}});  // scripted: passed on as given, even when it does not fit
  sim.embed(req, cb);
  sim.fail_next(UpstreamStage::embeddings, {UpstreamError::Kind::http, 429, "slow down"});
  sim.embed(req, cb);
  loop.run();
  ASSERT_EQ(answers.size(), 3u);
  EXPECT_EQ(answers[1][0].size(), 16u);
  EXPECT_EQ(answers[2], (std::vector<std::vector<float>>{{1.0f, 0.0f}}));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].stage, UpstreamStage::embeddings);
  EXPECT_EQ(errors[0].http_status, 429);
  EXPECT_EQ(sim.embed_requests().size(), 4u);

  // The whole-request watchdog and the breaker apply as to the other stages.
  sim.set_timing(UpstreamStage::embeddings, {1, kSimHang, 0});
  req.endpoint.timeout_ms = 500;
  sim.embed(req, cb);
  loop.run(loop.now + 1000);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[1].kind, UpstreamError::Kind::timeout);
  sim.set_breaker_open("http://sim", true);
  sim.embed(req, cb);
  loop.run(loop.now + 10);
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[2].kind, UpstreamError::Kind::breaker_open);
}

TEST(StandInEmbedding, IsUnitLengthDeterministicAndCloserForSharedWords) {
  const auto a = tools::stand_in_embedding("How do I get a refund for my order?");
  ASSERT_EQ(a.size(), tools::kStandInDimensions);
  double norm = 0;
  for (float x : a) norm += double(x) * x;
  EXPECT_NEAR(norm, 1.0, 1e-6);
  EXPECT_EQ(a, tools::stand_in_embedding("How do I get a refund for my order?"));
  EXPECT_EQ(tools::stand_in_embedding("x", 48).size(), 48u);
  // Case, punctuation and light suffixes do not matter; shared words bring texts together.
  EXPECT_EQ(tools::stand_in_embedding("Refunds, ORDERS!"), tools::stand_in_embedding("refund order"));
  const double related = tools::stand_in_cosine(a, tools::stand_in_embedding("refunds for orders"));
  const double unrelated =
      tools::stand_in_cosine(a, tools::stand_in_embedding("The weather in Pune is sunny"));
  EXPECT_GT(related, unrelated + 0.3) << related << " vs " << unrelated;
  // No words at all: still a unit vector.
  const auto none = tools::stand_in_embedding("?!");
  EXPECT_EQ(none[0], 1.0f);
  EXPECT_EQ(tools::stand_in_tokens("?!"), 1u);
  EXPECT_EQ(tools::stand_in_tokens("one two, three"), 3u);
}

}  // namespace
}  // namespace osvi::net
