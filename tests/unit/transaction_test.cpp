// The store's Transaction: commit, rollback on destruction, nested savepoints, errors in the body.
#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include "osvi/clock.hpp"
#include "osvi/store/store.hpp"
#include "test_support.hpp"

namespace osvi::daemon {
namespace {

constexpr int64_t kT0 = 1'780'000'000'000;

class TransactionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::open(StoreOptions{dir_.file("osvid.db")}, clock_);
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(*s);
  }
  Database& db() { return store_->database(); }
  MetaRepo& meta() { return store_->meta(); }

  test::TempDir dir_;
  ManualClock clock_{kT0};
  std::unique_ptr<Store> store_;
};

TEST_F(TransactionTest, CommitKeepsTheWrites) {
  {
    auto tx = db().begin();
    ASSERT_TRUE(tx.ok()) << tx.error().message;
    EXPECT_TRUE(tx->active());
    EXPECT_FALSE(tx->nested());
    EXPECT_TRUE(db().in_transaction());
    ASSERT_TRUE(meta().set("k", "v").ok());
    ASSERT_TRUE(tx->commit().ok());
    EXPECT_FALSE(tx->active());
    EXPECT_FALSE(db().in_transaction());
    // A second commit is a caller bug, reported rather than ignored.
    Status again = tx->commit();
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code, -EINVAL);
  }
  EXPECT_EQ(meta().get("k"), "v");
}

TEST_F(TransactionTest, DestructionWithoutCommitRollsBack) {
  {
    auto tx = db().begin();
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE(meta().set("k", "v").ok());
    EXPECT_EQ(meta().get("k"), "v");  // visible inside
  }
  EXPECT_FALSE(db().in_transaction());
  EXPECT_FALSE(meta().get("k").has_value());
}

TEST_F(TransactionTest, ExplicitRollbackAndMoveEndOnce) {
  auto tx = db().begin();
  ASSERT_TRUE(tx.ok());
  ASSERT_TRUE(meta().set("k", "v").ok());
  Transaction moved = std::move(*tx);
  EXPECT_FALSE(tx->active());  // the moved-from object owns nothing and rolls nothing back
  EXPECT_TRUE(moved.active());
  moved.rollback();
  EXPECT_FALSE(moved.active());
  EXPECT_FALSE(db().in_transaction());
  moved.rollback();  // harmless
  EXPECT_FALSE(meta().get("k").has_value());
}

TEST_F(TransactionTest, NestedRollbackKeepsTheOuterWork) {
  {
    auto outer = db().begin();
    ASSERT_TRUE(outer.ok());
    ASSERT_TRUE(meta().set("outer", "1").ok());
    {
      auto inner = db().begin();
      ASSERT_TRUE(inner.ok()) << inner.error().message;
      EXPECT_TRUE(inner->nested());
      ASSERT_TRUE(meta().set("inner", "1").ok());
      // destroyed without commit: only the savepoint is undone
    }
    EXPECT_TRUE(db().in_transaction());
    EXPECT_FALSE(meta().get("inner").has_value());
    {
      auto inner = db().begin();
      ASSERT_TRUE(inner.ok()) << inner.error().message;
      ASSERT_TRUE(meta().set("inner2", "1").ok());
      ASSERT_TRUE(inner->commit().ok());
    }
    ASSERT_TRUE(outer->commit().ok());
  }
  EXPECT_EQ(meta().get("outer"), "1");
  EXPECT_FALSE(meta().get("inner").has_value());
  EXPECT_EQ(meta().get("inner2"), "1");
}

TEST_F(TransactionTest, OuterRollbackUndoesCommittedInnerWork) {
  {
    auto outer = db().begin();
    ASSERT_TRUE(outer.ok());
    auto inner = db().begin();
    ASSERT_TRUE(inner.ok());
    ASSERT_TRUE(meta().set("inner", "1").ok());
    ASSERT_TRUE(inner->commit().ok());
  }
  EXPECT_FALSE(db().in_transaction());
  EXPECT_FALSE(meta().get("inner").has_value());
}

TEST_F(TransactionTest, ErrorInTheBodyRollsBack) {
  // A writer that fails midway returns before commit(); the transaction undoes its first writes.
  auto write_two = [&](bool fail_second) -> Status {
    auto tx = db().begin();
    if (!tx.ok()) return tx.error();
    if (Status s = meta().set("first", "1"); !s.ok()) return s;
    if (fail_second) return make_error("second write failed");
    if (Status s = meta().set("second", "1"); !s.ok()) return s;
    return tx->commit();
  };
  Status s = write_two(true);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message, "second write failed");
  EXPECT_FALSE(meta().get("first").has_value());
  EXPECT_FALSE(db().in_transaction());

  // An SQL error inside a transaction (a CHECK constraint) leaves it usable and still rolls back on exit.
  {
    auto tx = db().begin();
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE(meta().set("first", "1").ok());
    CallRecord bad;
    bad.call_id = "0190f5a2-9999-7000-8000-000000000000";
    bad.status = "bogus";
    EXPECT_FALSE(store_->calls().insert(bad).ok());
  }
  EXPECT_FALSE(meta().get("first").has_value());

  // An exception unwinds through the destructor, which rolls back.
  EXPECT_THROW(
      {
        auto tx = db().begin();
        ASSERT_TRUE(tx.ok());
        (void)meta().set("first", "1");
        throw std::runtime_error("boom");
      },
      std::runtime_error);
  EXPECT_FALSE(db().in_transaction());
  EXPECT_FALSE(meta().get("first").has_value());

  ASSERT_TRUE(write_two(false).ok());
  EXPECT_EQ(meta().get("first"), "1");
  EXPECT_EQ(meta().get("second"), "1");
}

TEST_F(TransactionTest, BodyFormContainsExceptionsAndNests) {
  Status s = db().transaction([&]() -> Status {
    if (Status m = meta().set("outer", "1"); !m.ok()) return m;
    Status inner = db().transaction([&]() -> Status {
      (void)meta().set("inner", "1");
      throw std::runtime_error("boom");
    });
    EXPECT_FALSE(inner.ok());
    EXPECT_NE(inner.error().message.find("boom"), std::string::npos);
    return {};
  });
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(meta().get("outer"), "1");
  EXPECT_FALSE(meta().get("inner").has_value());
}

TEST_F(TransactionTest, FinishCallAndEnqueueCommitsBothOrNeither) {
  CallRecord c;
  c.call_id = "0190f5a2-aaaa-7000-8000-000000000000";
  c.agent_uuid = "agent_a";
  c.phone_number = "+919876543210";
  ASSERT_TRUE(store_->calls().insert(c).ok());
  c.status = "picked";
  {
    auto tx = db().begin();
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE(finish_call_and_enqueue(*tx, store_->calls(), store_->outbox(), c).ok());
    // not committed
  }
  EXPECT_EQ((*store_->calls().get(c.call_id))->status, "in_progress");
  EXPECT_TRUE(store_->outbox().pending(0, 10)->empty());

  auto tx = db().begin();
  ASSERT_TRUE(tx.ok());
  ASSERT_TRUE(finish_call_and_enqueue(*tx, store_->calls(), store_->outbox(), c).ok());
  ASSERT_TRUE(tx->commit().ok());
  EXPECT_EQ((*store_->calls().get(c.call_id))->status, "picked");
  auto rows = store_->outbox().pending(0, 10);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ(rows->front().idempotency_key, "call:" + c.call_id + ":2");
}

}  // namespace
}  // namespace osvi::daemon
