// Unit tests of the Store outbox: enqueue in the record's transaction, order, delete, quota policy, stats.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "osvi/clock.hpp"
#include "osvi/store/store.hpp"
#include "test_support.hpp"

namespace osvi::daemon {
namespace {

constexpr int64_t kT0 = 1'780'000'000'000;

class OutboxTest : public ::testing::Test {
 protected:
  void SetUp() override { open(); }
  void open() {
    store_.reset();
    StoreOptions o;
    o.path = dir_.file("osvi.db");
    auto s = Store::open(o, clock_);
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(*s);
  }
  CallRecord call(const std::string& suffix) {
    CallRecord c;
    c.call_id = "0190aaaa-0000-7000-8000-" + suffix;
    c.agent_uuid = "agent_a";
    c.phone_number = "+919876543210";
    return c;
  }
  // The calls engine's final write: the update and its outbox record in one transaction.
  Status finish(const CallRecord& c) { return finish_call_and_enqueue(*store_, c); }
  test::TempDir dir_;
  ManualClock clock_{kT0};
  std::unique_ptr<Store> store_;
};

TEST_F(OutboxTest, FinishCallQueuesTheRecordWithItsRevision) {
  CallRecord c = call("000000000001");
  ASSERT_TRUE(store_->calls().insert(c).ok());
  c.status = "picked";
  c.summary = "booked a demo";
  c.post_call_analysis = R"({"interested":true})";
  ASSERT_TRUE(finish(c).ok());
  auto rows = store_->outbox().pending(0, 10);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  const OutboxRow& r = rows->front();
  EXPECT_EQ(r.kind, "call");
  EXPECT_EQ(r.topic, "calls");
  EXPECT_EQ(r.idempotency_key, "call:" + c.call_id + ":2");
  EXPECT_NE(r.payload.find("\"summary\":\"booked a demo\""), std::string::npos);
  EXPECT_NE(r.payload.find("\"post_call_analysis\":{\"interested\":true}"), std::string::npos);
  EXPECT_NE(r.payload.find("\"idempotency_key\":\"call:"), std::string::npos);
}

TEST_F(OutboxTest, FailedFinishLeavesNeitherUpdateNorRow) {
  CallRecord c = call("000000000002");
  ASSERT_TRUE(store_->calls().insert(c).ok());
  c.status = "bogus";  // CHECK constraint
  EXPECT_FALSE(finish(c).ok());
  auto rows = store_->outbox().pending(0, 10);
  ASSERT_TRUE(rows.ok());
  EXPECT_TRUE(rows->empty());
  EXPECT_EQ((*store_->calls().get(c.call_id))->status, "in_progress");
}

TEST_F(OutboxTest, RecoveryQueuesClosedCallsInTheSameTransaction) {
  for (int i = 0; i < 3; ++i) {
    CallRecord c = call("00000000001" + std::to_string(i));
    c.created_at_ms = kT0 + i;
    ASSERT_TRUE(store_->calls().insert(c).ok());
  }
  open();  // a restart: recovery closes the three calls
  auto rows = store_->outbox().pending(0, 10);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NE((*rows)[static_cast<size_t>(i)].payload.find("00000000001" + std::to_string(i)),
              std::string::npos);
    EXPECT_NE((*rows)[static_cast<size_t>(i)].payload.find("daemon_restart"), std::string::npos);
  }
  open();  // nothing more to recover, nothing queued twice
  EXPECT_EQ(store_->outbox().pending(0, 10)->size(), 3u);
}

TEST_F(OutboxTest, OrderAfterIdLimitAndDelete) {
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(
        store_->outbox()
            .enqueue("event", "events", "{\"n\":" + std::to_string(i) + "}", "ev:" + std::to_string(i))
            .ok());
  auto dup = store_->outbox().enqueue("event", "events", "{}", "ev:0");
  ASSERT_TRUE(dup.ok());
  EXPECT_FALSE(*dup);
  auto first = store_->outbox().pending(0, 2);
  ASSERT_EQ(first->size(), 2u);
  auto next = store_->outbox().pending(first->back().id, 10);
  ASSERT_EQ(next->size(), 3u);
  EXPECT_LT(first->back().id, next->front().id);
  ASSERT_TRUE(store_->outbox().remove({first->front().id, next->back().id}).ok());
  auto st = store_->outbox().stats();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->queued, 3);
  EXPECT_EQ(st->oldest_created_at_ms, kT0);
  EXPECT_EQ(st->dropped, 0);
}

TEST_F(OutboxTest, QuotaDropsEventsOldestFirstButNeverCallRecords) {
  store_->outbox().set_limits({100, 1024 * 1024});
  CallRecord c = call("000000000020");
  ASSERT_TRUE(store_->calls().insert(c).ok());
  c.status = "failed";
  ASSERT_TRUE(finish(c).ok());
  for (int i = 0; i < 150; ++i)
    ASSERT_TRUE(store_->outbox().enqueue("event", "events", "{}", "ev:" + std::to_string(i)).ok());
  auto st = store_->outbox().stats();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->queued, 100);
  EXPECT_EQ(st->dropped, 51);
  EXPECT_FALSE(st->over_quota);
  auto rows = store_->outbox().pending(0, 1);
  EXPECT_EQ(rows->front().kind, "call");  // the oldest row, a call record, survived
  auto rest = store_->outbox().pending(rows->front().id, 1);
  EXPECT_EQ(rest->front().idempotency_key, "ev:51");  // events 0..50 went first

  // Only call records left and still over: kept, alarm raised.
  store_->outbox().set_limits({100, 1024 * 1024});
  std::vector<int64_t> events;
  // Kept in a local: a range-for over *temporary would iterate a vector the temporary Result already freed.
  auto all = store_->outbox().pending(0, 1000);
  ASSERT_TRUE(all.ok());
  for (const OutboxRow& r : *all)
    if (r.kind != "call") events.push_back(r.id);
  ASSERT_TRUE(store_->outbox().remove(events).ok());
  for (int i = 0; i < 120; ++i) {
    CallRecord x = call("0000000010" + std::to_string(10 + i));
    ASSERT_TRUE(store_->calls().insert(x).ok());
    ASSERT_TRUE(finish(x).ok());
  }
  st = store_->outbox().stats();
  EXPECT_EQ(st->queued, 121);
  EXPECT_TRUE(st->over_quota);
  EXPECT_EQ(st->dropped, 51);

  // The dropped counter is persisted.
  open();
  EXPECT_EQ(store_->outbox().stats()->dropped, 51);
}

TEST_F(OutboxTest, DataVersionMovesWhenAnotherConnectionCommits) {
  const int64_t v0 = store_->database().data_version();
  StoreOptions o;
  o.path = dir_.file("osvi.db");
  o.quick_check = false;
  auto other = Store::open(o, clock_);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->outbox().enqueue("event", "events", "{}", "ev:x").ok());
  EXPECT_NE(store_->database().data_version(), v0);
}

}  // namespace
}  // namespace osvi::daemon
