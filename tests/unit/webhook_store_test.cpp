// WebhookDeliveriesRepo's dispatcher side: heads per destination (paged, pending only), record_attempt's
// state changes in one transaction, counts and the dead-letter list.
#include <gtest/gtest.h>

#include <cerrno>

#include "osvi/store/store.hpp"
#include "test_support.hpp"

namespace osvi::daemon {
namespace {

class WebhookStore : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::open(StoreOptions{dir.file("osvi.db")}, clock);
    ASSERT_TRUE(s.ok()) << s.error().message;
    store = std::move(*s);
  }
  int64_t add(int n, const std::string& destination) {
    WebhookDelivery d;
    d.webhook_id = "msg_" + std::to_string(n);
    d.call_id = "call-" + std::to_string(n);
    d.destination = destination;
    d.url = "http://example.com/" + std::to_string(n);
    d.headers = {"X-A: 1", "X-B: two"};
    d.body = "{}";
    d.expires_at_ms = clock.wall_ms() + 1000;
    auto r = store->webhooks().enqueue(d);
    EXPECT_TRUE(r.ok() && *r);
    auto rows = store->webhooks().for_call(*d.call_id);
    return rows.ok() && !rows->empty() ? rows->front().id : 0;
  }
  std::vector<std::string> head_ids(std::string_view after, size_t limit) {
    auto h = store->webhooks().heads(after, limit);
    EXPECT_TRUE(h.ok());
    std::vector<std::string> out;
    if (h.ok())
      for (const auto& d : *h) out.push_back(d.destination + ":" + d.webhook_id);
    return out;
  }
  WebhookAttempt attempt(int64_t id, int64_t n, std::optional<int64_t> status) {
    WebhookAttempt a;
    a.delivery_id = id;
    a.attempt = n;
    a.started_at_ms = clock.wall_ms();
    a.status_code = status;
    a.latency_ms = 5;
    if (!status || *status >= 300) a.error = "failed";
    return a;
  }

  test::TempDir dir;
  ManualClock clock;
  std::unique_ptr<Store> store;
};

TEST_F(WebhookStore, HeadsAreTheOldestPendingOfEachDestinationPaged) {
  const int64_t b1 = add(1, "b");
  add(2, "a");
  add(3, "b");
  add(4, "c");
  add(5, "a");
  EXPECT_EQ(head_ids("", 10), (std::vector<std::string>{"a:msg_2", "b:msg_1", "c:msg_4"}));
  EXPECT_EQ(head_ids("", 2), (std::vector<std::string>{"a:msg_2", "b:msg_1"}));
  EXPECT_EQ(head_ids("b", 2), (std::vector<std::string>{"c:msg_4"}));
  EXPECT_TRUE(head_ids("c", 2).empty());
  // Delivered: the next of its destination is the head.
  ASSERT_TRUE(store->webhooks().record_attempt(attempt(b1, 1, 200), "delivered", std::nullopt).ok());
  EXPECT_EQ(head_ids("", 10), (std::vector<std::string>{"a:msg_2", "b:msg_3", "c:msg_4"}));
  auto h = store->webhooks().heads("", 1);
  ASSERT_TRUE(h.ok() && h->size() == 1);
  EXPECT_EQ((*h)[0].headers, (std::vector<std::string>{"X-A: 1", "X-B: two"}));
  EXPECT_EQ((*h)[0].body, "{}");
}

TEST_F(WebhookStore, RecordAttemptMovesTheStateOnceWithItsLog) {
  const int64_t id = add(1, "a");
  ASSERT_TRUE(store->webhooks().record_attempt(attempt(id, 1, 500), "pending", clock.wall_ms() + 700).ok());
  auto d = store->webhooks().get(id);
  ASSERT_TRUE(d.ok() && d->has_value());
  EXPECT_EQ((*d)->state, "pending");
  EXPECT_EQ((*d)->attempts, 1);
  EXPECT_EQ((*d)->last_status, 500);
  EXPECT_EQ((*d)->last_error, "failed");
  EXPECT_EQ((*d)->next_attempt_at_ms, clock.wall_ms() + 700);
  EXPECT_EQ((*d)->finished_at_ms, std::nullopt);
  clock.advance_ms(700);
  ASSERT_TRUE(store->webhooks().record_attempt(attempt(id, 2, std::nullopt), "dead", std::nullopt).ok());
  d = store->webhooks().get(id);
  EXPECT_EQ((*d)->state, "dead");
  EXPECT_EQ((*d)->last_status, std::nullopt);
  EXPECT_EQ((*d)->finished_at_ms, clock.wall_ms());
  // Not pending any more: refused, and nothing written (no third attempt row).
  Status again = store->webhooks().record_attempt(attempt(id, 3, 200), "delivered", std::nullopt);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, -ENOENT);
  auto log = store->webhooks().attempts_for_call("call-1");
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 2u);
  EXPECT_EQ((*log)[0].attempt, 1);
  EXPECT_EQ((*log)[0].status_code, 500);
  EXPECT_EQ((*log)[1].status_code, std::nullopt);
  EXPECT_TRUE(head_ids("", 10).empty());
}

TEST_F(WebhookStore, CountsAndDeadLetters) {
  auto c = store->webhooks().counts();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->pending, 0);
  EXPECT_EQ(c->oldest_pending_ms, 0);
  const int64_t t0 = clock.wall_ms();
  const int64_t a = add(1, "a");
  clock.advance_ms(10);
  const int64_t b = add(2, "b");
  add(3, "c");
  ASSERT_TRUE(store->webhooks().record_attempt(attempt(a, 1, 404), "dead", std::nullopt).ok());
  clock.advance_ms(10);
  ASSERT_TRUE(store->webhooks().record_attempt(attempt(b, 1, 404), "dead", std::nullopt).ok());
  c = store->webhooks().counts();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->pending, 1);
  EXPECT_EQ(c->dead, 2);
  EXPECT_EQ(c->oldest_pending_ms, t0 + 10);
  int64_t total = 0;
  auto dead = store->webhooks().dead(1, 1, &total);
  ASSERT_TRUE(dead.ok());
  EXPECT_EQ(total, 2);
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].webhook_id, "msg_2");  // newest first
  dead = store->webhooks().dead(2, 1, nullptr);
  ASSERT_TRUE(dead.ok() && dead->size() == 1);
  EXPECT_EQ((*dead)[0].webhook_id, "msg_1");
}

}  // namespace
}  // namespace osvi::daemon
