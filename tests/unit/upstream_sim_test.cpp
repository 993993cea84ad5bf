// SimUpstream: scripted answers arrive later through the owner's timer, in order, and requests are recorded.
#include "upstream_sim.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

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

}  // namespace
}  // namespace osvi::net
