// The SSE hub end to end over a loopback HttpServer: wire format, slow consumers dropped with a reason while
// fast ones keep every event, Last-Event-ID replay and reset, heartbeats on virtual time, filters and the
// cap.
#include "osvi/api/event_hub.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "chunked_client.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/sse.hpp"
#include "served_http.hpp"
#include "virtual_time.hpp"

namespace {

using osvi::daemon::EventHub;
using osvi::daemon::EventHubOptions;
using osvi::daemon::format_sse_event;
using osvi::net::HttpReply;
using osvi::net::HttpRequest;
using osvi::net::JsonPtr;
using osvi::net::SseEvent;
using Client = osvi::test::ChunkedClient;

std::vector<SseEvent> parse(const std::string& body) {
  osvi::net::SseParser p;
  std::vector<SseEvent> out;
  EXPECT_TRUE(p.feed(body, out).ok());
  return out;
}

TEST(SseFormat, DataSplitsAtEveryLineBreakAndRoundTrips) {
  EXPECT_EQ(format_sse_event("7-1", "message.created", "{\"a\":1}"),
            "id: 7-1\nevent: message.created\ndata: {\"a\":1}\n\n");
  EXPECT_EQ(format_sse_event("", "x", "a\nb\r\nc\rd"), "event: x\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
  EXPECT_EQ(format_sse_event("", "", ""), "data: \n\n");
  const auto events = parse(format_sse_event("1-2", "t", "one\r\ntwo\n") + format_sse_event("1-3", "u", "x"));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0], (SseEvent{"t", "one\ntwo\n", "1-2"}));
  EXPECT_EQ(events[1], (SseEvent{"u", "x", "1-3"}));
}

class EventHubTest : public ::testing::Test {
 protected:
  void SetUp() override {}
  void TearDown() override { served_.stop(); }

  void serve(EventHubOptions o) {
    auto hub = EventHub::create(vt_.clock, vt_.timer_factory(), o);
    ASSERT_TRUE(hub.ok());
    hub_ = std::move(*hub);
    osvi::net::HttpServerOptions so;
    so.port = 0;
    auto started = served_.start(so, [this](HttpRequest& req, HttpReply reply) {
      // /inbox or /session/<id>; ?agents=a,b limits the stream to those agents (an agent-limited token).
      std::optional<std::set<std::string>> agents;
      if (auto a = req.query_param("agents")) {
        agents.emplace();
        std::string list(*a);
        for (size_t start = 0; start <= list.size();) {
          const size_t comma = std::min(list.find(',', start), list.size());
          agents->insert(list.substr(start, comma - start));
          start = comma + 1;
        }
      }
      const std::string key =
          req.path == "/inbox" ? "inbox" : "session:" + req.path.substr(req.path.rfind('/') + 1);
      hub_->subscribe(req, std::move(reply), key, std::move(agents));
    });
    ASSERT_TRUE(started.ok()) << started.error().message;
  }
  void on_loop(const std::function<void()>& fn) { served_.locked(fn); }
  bool wait_for(const std::function<bool()>& cond, int ms = 3000) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < end) {
      bool ok = false;
      on_loop([&] { ok = cond(); });
      if (ok) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  }
  size_t subscribers() {
    size_t n = 0;
    on_loop([&] { n = hub_->stats().subscribers; });
    return n;
  }
  // Publishes on the loop; returns the exact bytes a subscriber of it receives.
  std::string publish(const std::vector<std::string>& keys, const std::string& event, int n,
                      const std::string& agent = "agent-a", size_t pad = 0) {
    JsonPtr data(cJSON_CreateObject());
    cJSON_AddNumberToObject(data.get(), "n", n);
    if (pad) osvi::net::json_add_string(data.get(), "pad", std::string(pad, 'p'));
    std::string id;
    on_loop([&] { id = hub_->publish(keys, event, data.get(), agent); });
    EXPECT_FALSE(id.empty());
    return format_sse_event(id, event, osvi::net::json_print(data.get()));
  }

  osvi::test::VirtualTime vt_;
  std::unique_ptr<EventHub> hub_;
  osvi::test::ServedHttp served_;
};

constexpr const char* kRetry = "retry: 3000\n\n";

// The case: a client that reads slowly is dropped with the reason once its buffer is full, while a
// fast client on the same topic receives every event, in order.
TEST_F(EventHubTest, SlowConsumerIsDroppedWithTheReasonWhileAFastOneGetsEveryEvent) {
  EventHubOptions o;
  o.buffer_bytes = 16 * 1024;
  serve(o);
  Client fast(served_.port());
  Client slow(served_.port(), 4096);
  ASSERT_TRUE(fast.get("/inbox"));
  ASSERT_TRUE(slow.get("/inbox"));
  ASSERT_TRUE(fast.read_head());
  EXPECT_NE(fast.head().find("Content-Type: text/event-stream"), std::string::npos) << fast.head();
  EXPECT_NE(fast.head().find("Cache-Control: no-cache"), std::string::npos) << fast.head();
  ASSERT_TRUE(wait_for([&] { return hub_->stats().subscribers == 2; }));

  std::string expected = kRetry;
  int n = 0;
  int rounds_after_drop = 0;
  for (int round = 0; round < 200 && rounds_after_drop < 5; ++round) {
    for (int i = 0; i < 10; ++i)
      expected += publish({"inbox", "session:s1"}, "message.created", ++n, "agent-a", 900);
    ASSERT_TRUE(fast.read_body(expected.size())) << "round " << round;
    uint64_t dropped = 0;
    on_loop([&] { dropped = hub_->stats().dropped_slow_consumers; });
    if (dropped) ++rounds_after_drop;
  }
  ASSERT_EQ(rounds_after_drop, 5) << "the slow client was never dropped";
  EXPECT_EQ(fast.body(), expected);
  on_loop([&] {
    EXPECT_EQ(hub_->stats().subscribers, 1u);
    EXPECT_EQ(hub_->stats().dropped_slow_consumers, 1u);
    EXPECT_EQ(hub_->stats().events_published, static_cast<uint64_t>(n));
  });

  // The slow client, reading at last, finds a gapless prefix of the events, the reason, and the end.
  ASSERT_TRUE(slow.read_end(10000));
  const auto events = parse(slow.body());
  ASSERT_GE(events.size(), 2u);
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    ASSERT_EQ(events[i].event, "message.created");
    EXPECT_EQ(events[i].id, hub_->instance() + "-" + std::to_string(i + 1));
  }
  EXPECT_LT(events.size(), static_cast<size_t>(n));
  EXPECT_EQ(events.back().event, "dropped");
  JsonPtr reason = osvi::net::json_parse(events.back().data, nullptr);
  ASSERT_TRUE(reason);
  const std::string why = cJSON_GetStringValue(cJSON_GetObjectItem(reason.get(), "reason"));
  EXPECT_EQ(why.rfind("slow consumer: ", 0), 0u) << why;
  const size_t unread = std::stoul(why.substr(15));
  EXPECT_LE(unread, o.buffer_bytes);
  EXPECT_GT(unread, o.buffer_bytes - 1100);
  EXPECT_EQ(why.substr(why.size() - 13), " bytes unread");
}

TEST_F(EventHubTest, LastEventIdReplaysWhatIsStillKeptElseResets) {
  EventHubOptions o;
  o.replay_events = 4;
  serve(o);
  std::vector<std::string> frames;
  for (int i = 1; i <= 3; ++i) frames.push_back(publish({"inbox"}, "status.changed", i));
  const std::string id1 = hub_->instance() + "-1";
  {
    Client c(served_.port());
    ASSERT_TRUE(c.get("/inbox", "Last-Event-ID: " + id1 + "\r\n"));
    const std::string want = kRetry + frames[1] + frames[2];
    ASSERT_TRUE(c.read_body(want.size()));
    EXPECT_EQ(c.body(), want);
  }
  for (int i = 4; i <= 8; ++i) frames.push_back(publish({"inbox"}, "status.changed", i));
  const std::string id8 = hub_->instance() + "-8";
  // Event 3 has left the ring (it keeps 5..8): what was missed cannot be told, the client must refetch.
  for (const std::string& last :
       {hub_->instance() + "-2", std::string("12345-1"), hub_->instance() + "-99", hub_->instance() + "-x"}) {
    Client c(served_.port());
    ASSERT_TRUE(c.get("/inbox", "Last-Event-ID: " + last + "\r\n"));
    ASSERT_TRUE(c.read_until(3000, [&] { return parse(c.body()).size() == 1; })) << last << ": " << c.body();
    const SseEvent reset = parse(c.body())[0];
    EXPECT_EQ(reset.event, "reset") << last;
    EXPECT_EQ(reset.id, id8) << last;  // the next reconnection starts from now
    EXPECT_NE(reset.data.find("refetch"), std::string::npos) << reset.data;
  }
  // Up to date: nothing replayed. Replay follows the topic: a session's event reaches only its stream.
  const std::string s1 = publish({"session:s1"}, "mode.changed", 9);
  {
    Client inbox(served_.port()), session(served_.port());
    ASSERT_TRUE(inbox.get("/inbox", "Last-Event-ID: " + id8 + "\r\n"));
    ASSERT_TRUE(session.get("/session/s1", "Last-Event-ID: " + id8 + "\r\n"));
    ASSERT_TRUE(session.read_body(std::string(kRetry).size() + s1.size()));
    EXPECT_EQ(session.body(), kRetry + s1);
    ASSERT_TRUE(inbox.read_body(std::string(kRetry).size()));
    EXPECT_FALSE(inbox.read_body(std::string(kRetry).size() + 1, 100));
    EXPECT_EQ(inbox.body(), kRetry);
  }
  on_loop([&] { EXPECT_EQ(hub_->stats().resets, 4u); });
}

TEST_F(EventHubTest, HeartbeatEveryIntervalOnTheHubsClock) {
  serve({});
  Client c(served_.port());
  ASSERT_TRUE(c.get("/inbox"));
  ASSERT_TRUE(c.read_body(std::string(kRetry).size()));
  ASSERT_TRUE(wait_for([&] { return hub_->stats().subscribers == 1; }));
  on_loop([&] { vt_.advance_ms(14'999); });
  EXPECT_FALSE(c.read_body(std::string(kRetry).size() + 1, 100));
  on_loop([&] { vt_.advance_ms(1); });
  const std::string one = std::string(kRetry) + ": keep-alive\n\n";
  ASSERT_TRUE(c.read_body(one.size()));
  EXPECT_EQ(c.body(), one);
  on_loop([&] { vt_.advance_ms(15'000); });
  ASSERT_TRUE(c.read_body(one.size() + 14));
  EXPECT_EQ(c.body(), one + ": keep-alive\n\n");
  // A comment dispatches nothing.
  EXPECT_TRUE(parse(c.body()).empty());
}

TEST_F(EventHubTest, AgentFilterAndTheSubscriberCap) {
  EventHubOptions o;
  o.max_subscribers = 2;
  serve(o);
  auto limited = std::make_unique<Client>(served_.port());
  Client all(served_.port());
  ASSERT_TRUE(limited->get("/inbox?agents=agent-b,agent-c"));
  ASSERT_TRUE(all.get("/inbox"));
  ASSERT_TRUE(wait_for([&] { return hub_->stats().subscribers == 2; }));
  {
    Client refused(served_.port());
    ASSERT_TRUE(refused.get("/inbox"));
    ASSERT_TRUE(refused.read_until(3000, [&] { return refused.body().find('}') != std::string::npos; }));
    EXPECT_EQ(refused.head().rfind("HTTP/1.1 503", 0), 0u) << refused.head();
    EXPECT_NE(refused.head().find("Retry-After: 3"), std::string::npos) << refused.head();
    EXPECT_NE(refused.body().find("\"success\":false"), std::string::npos) << refused.body();
    EXPECT_NE(refused.body().find("too many event streams open (at most 2)"), std::string::npos)
        << refused.body();
  }
  const std::string a = publish({"inbox"}, "message.created", 1, "agent-a");
  const std::string b = publish({"inbox"}, "message.created", 2, "agent-b");
  const std::string none = publish({"inbox"}, "help.requested", 3, "");
  ASSERT_TRUE(all.read_body(std::string(kRetry).size() + a.size() + b.size() + none.size()));
  EXPECT_EQ(all.body(), kRetry + a + b + none);
  ASSERT_TRUE(limited->read_body(std::string(kRetry).size() + b.size()));
  EXPECT_FALSE(limited->read_body(std::string(kRetry).size() + b.size() + 1, 100));
  EXPECT_EQ(limited->body(), kRetry + b);

  // A subscriber that leaves frees its place.
  limited.reset();
  ASSERT_TRUE(wait_for([&] { return hub_->stats().subscribers == 1; }));
  Client next(served_.port());
  ASSERT_TRUE(next.get("/inbox"));
  ASSERT_TRUE(next.read_body(std::string(kRetry).size()));
  EXPECT_EQ(next.head().rfind("HTTP/1.1 200", 0), 0u) << next.head();
  osvi::daemon::ApiToken all_agents, some;
  some.agents = {"agent-b", "agent-c"};
  EXPECT_EQ(EventHub::agents_of(all_agents), std::nullopt);
  EXPECT_EQ(EventHub::agents_of(some), (std::set<std::string>{"agent-b", "agent-c"}));
  on_loop([&] {
    EXPECT_EQ(hub_->stats().refused_at_cap, 1u);
    EXPECT_EQ(hub_->publish({"inbox"}, "bad\nname", nullptr, ""), "");
    EXPECT_EQ(hub_->publish({"inbox"}, "", nullptr, ""), "");
  });
}

}  // namespace
