// CallsRepo::list filters, order and paging; recordings upsert; the DND lookup.
#include <gtest/gtest.h>

#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "osvi/clock.hpp"
#include "osvi/store/store.hpp"
#include "test_support.hpp"

namespace osvi::daemon {
namespace {

constexpr int64_t kT0 = 1'780'000'000'000;

class CallsQuery : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::open(StoreOptions{dir_.file("osvi.db")}, clock_);
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(*s);
  }

  CallRecord& add(std::string id, int64_t created_offset_ms) {
    CallRecord c;
    c.call_id = std::move(id);
    c.agent_uuid = "agent_a";
    c.phone_number = "+919876543210";
    c.status = "picked";
    c.created_at_ms = kT0 + created_offset_ms;
    calls_.push_back(c);
    return calls_.back();
  }
  void insert_all() {
    for (const CallRecord& c : calls_) ASSERT_TRUE(store_->calls().insert(c).ok()) << c.call_id;
  }
  std::vector<std::string> ids(const CallFilter& f, int64_t* total = nullptr) {
    auto page = store_->calls().list(f);
    EXPECT_TRUE(page.ok()) << (page.ok() ? "" : page.error().message);
    std::vector<std::string> out;
    if (!page.ok()) return out;
    for (const CallRecord& c : page->calls) out.push_back(c.call_id);
    if (total) *total = page->total_count;
    return out;
  }

  test::TempDir dir_;
  ManualClock clock_{kT0};
  std::unique_ptr<Store> store_;
  std::vector<CallRecord> calls_;
};

using Ids = std::vector<std::string>;

// The list carries the CallSummary columns only (GET /v1/calls); the rest of a call is get()'s.
TEST_F(CallsQuery, NewestFirstWithTiesByIdAndSummaryColumns) {
  add("c1", 1000).person_name = "Ravi";
  add("c3", 3000);
  add("c2b", 2000);
  add("c2a", 2000);
  insert_all();
  int64_t total = 0;
  EXPECT_EQ(ids({}, &total), (Ids{"c3", "c2a", "c2b", "c1"}));
  EXPECT_EQ(total, 4);
  auto page = store_->calls().list({});
  ASSERT_TRUE(page.ok());
  const CallRecord full = *store_->calls().get("c1").value();
  ASSERT_EQ(full.person_name, std::optional<std::string>("Ravi"));
  CallRecord summary;
  summary.call_id = full.call_id;
  summary.agent_uuid = full.agent_uuid;
  summary.agent_name = full.agent_name;
  summary.phone_number = full.phone_number;
  summary.from_number = full.from_number;
  summary.status = full.status;
  summary.call_type = full.call_type;
  summary.duration_seconds = full.duration_seconds;
  summary.created_at_ms = full.created_at_ms;
  summary.revision = CallRecord{}.revision;
  summary.updated_at_ms = 0;
  EXPECT_EQ(page->calls.back(), summary);  // person_name, updated_at... not read
}

TEST_F(CallsQuery, EveryFilter) {
  add("s_np", 1).status = "not_picked";
  add("s_busy", 2).status = "busy";
  add("agent_b", 3).agent_uuid = "agent_b";
  {
    auto& c = add("camp", 4);
    c.campaign_id = 7;
    c.campaign_upload_id = 70;
  }
  {
    auto& c = add("camp2", 5);
    c.campaign_id = 7;
    c.campaign_upload_id = 71;
  }
  add("phone", 6).phone_number = "+12015550123";
  add("inbound", 7).call_type = "inbound";
  add("pct", 8).phone_number = "+91%_98";
  insert_all();

  CallFilter f;
  f.statuses = {"not_picked", "busy"};
  EXPECT_EQ(ids(f), (Ids{"s_busy", "s_np"}));

  f = {};
  f.agent_uuid = "agent_b";
  EXPECT_EQ(ids(f), (Ids{"agent_b"}));
  f = {};
  f.agent_uuids = {"agent_b", "agent_zzz"};
  EXPECT_EQ(ids(f), (Ids{"agent_b"}));
  f.agent_uuid = "agent_a";  // both apply: nothing left
  EXPECT_EQ(ids(f), Ids{});

  f = {};
  f.campaign_id = 7;
  EXPECT_EQ(ids(f), (Ids{"camp2", "camp"}));
  f.campaign_upload_id = 70;
  EXPECT_EQ(ids(f), (Ids{"camp"}));

  f = {};
  f.phone_contains = "555";
  EXPECT_EQ(ids(f), (Ids{"phone"}));
  // LIKE wildcards in the text are literal characters.
  f.phone_contains = "%_";
  EXPECT_EQ(ids(f), (Ids{"pct"}));
  f.phone_contains = "_";
  EXPECT_EQ(ids(f), (Ids{"pct"}));

  f = {};
  f.call_type = "inbound";
  EXPECT_EQ(ids(f), (Ids{"inbound"}));

  // An injection attempt is only a value that matches nothing.
  f = {};
  f.agent_uuid = "x' OR '1'='1";
  EXPECT_EQ(ids(f), Ids{});
}

TEST_F(CallsQuery, PickedRangeIsInclusiveAndSkipsUnpickedCalls) {
  add("early", 1).call_picked_at_ms = kT0 + 100;
  add("lo", 2).call_picked_at_ms = kT0 + 200;
  add("hi", 3).call_picked_at_ms = kT0 + 300;
  add("late", 4).call_picked_at_ms = kT0 + 400;
  add("never", 5).status = "not_picked";
  insert_all();
  CallFilter f;
  f.picked_from_ms = kT0 + 200;
  f.picked_to_ms = kT0 + 300;
  EXPECT_EQ(ids(f), (Ids{"hi", "lo"}));
  f.picked_to_ms.reset();
  EXPECT_EQ(ids(f), (Ids{"late", "hi", "lo"}));
}

TEST_F(CallsQuery, PagesAndTotalCount) {
  for (int i = 0; i < 7; ++i) add("c" + std::to_string(i), i);
  insert_all();
  CallFilter f;
  f.per_page = 3;
  int64_t total = 0;
  EXPECT_EQ(ids(f, &total), (Ids{"c6", "c5", "c4"}));
  EXPECT_EQ(total, 7);
  f.page = 3;
  EXPECT_EQ(ids(f, &total), (Ids{"c0"}));
  EXPECT_EQ(total, 7);
  f.page = 4;
  EXPECT_EQ(ids(f, &total), Ids{});
  EXPECT_EQ(total, 7);
  f.page = INT64_MAX;  // no overflow, just empty
  EXPECT_EQ(ids(f), Ids{});
  f.page = 0;  // clamped to 1
  EXPECT_EQ(ids(f), (Ids{"c6", "c5", "c4"}));
}

TEST_F(CallsQuery, RecordingUpsertAndLookup) {
  add("c1", 0);
  insert_all();
  auto none = store_->calls().recording("c1");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  ASSERT_TRUE(store_->calls().save_recording("c1", "/r/c1.opus", "ogg_opus", 4200, 1234).ok());
  clock_.advance_ms(5);
  ASSERT_TRUE(store_->calls().save_recording("c1", "/r/c1b.opus", "ogg_opus", 5000, 2000).ok());
  auto r = store_->calls().recording("c1");
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->path, "/r/c1b.opus");
  EXPECT_EQ((*r)->format, "ogg_opus");
  EXPECT_EQ((*r)->duration_ms, 5000);
  EXPECT_EQ((*r)->bytes, 2000);
  EXPECT_EQ((*r)->created_at_ms, kT0 + 5);

  Status orphan = store_->calls().save_recording("nope", "/r/x", "ogg_opus", 0, 0);
  ASSERT_FALSE(orphan.ok());
  EXPECT_EQ(orphan.error().code, -EINVAL);

  // The recording row goes with its call.
  ASSERT_TRUE(store_->calls().remove("c1").ok());
  EXPECT_FALSE(store_->calls().recording("c1")->has_value());
}

TEST_F(CallsQuery, DndActive) {
  EXPECT_FALSE(*store_->dnd().is_active("agent_a", "+919876543210"));
  ASSERT_TRUE(store_->dnd().add_entry("agent_a", "+919876543210", std::nullopt, "api", std::nullopt).ok());
  EXPECT_TRUE(*store_->dnd().is_active("agent_a", "+919876543210"));
  EXPECT_FALSE(*store_->dnd().is_active("agent_b", "+919876543210"));
  EXPECT_FALSE(*store_->dnd().is_active("agent_a", "+919876543211"));
  ASSERT_TRUE(store_->dnd().remove("agent_a", "+919876543210").ok());
  EXPECT_FALSE(*store_->dnd().is_active("agent_a", "+919876543210"));
}

}  // namespace
}  // namespace osvi::daemon

namespace osvi::daemon {
namespace {

// The list's helpers kept by triggers (migration 3) follow every write: call_counts (meta.total_count) and
// the phone_number trigram index, through update, status change and removal. The list reads only the
// summary columns.
TEST_F(CallsQuery, CountsAndPhoneIndexFollowEveryWrite) {
  add("a", 1).phone_number = "+911111122222";
  add("b", 2).phone_number = "+913333344444";
  add("c", 3).campaign_id = 7;
  calls_[2].system_prompt = std::string(100'000, 'p');
  insert_all();
  CallFilter picked;
  picked.statuses = {"picked"};
  int64_t total = 0;
  EXPECT_EQ(ids(picked, &total), (Ids{"c", "b", "a"}));
  EXPECT_EQ(total, 3);
  CallFilter phone;
  phone.phone_contains = "33333";
  EXPECT_EQ(ids(phone, &total), (Ids{"b"}));
  EXPECT_EQ(total, 1);

  CallRecord b = calls_[1];
  b.status = "busy";
  b.phone_number = "+915555566666";
  ASSERT_TRUE(store_->calls().update(b).ok());
  EXPECT_EQ(ids(picked, &total), (Ids{"c", "a"}));
  EXPECT_EQ(total, 2);
  EXPECT_EQ(ids(phone, &total), Ids{});
  EXPECT_EQ(total, 0);
  phone.phone_contains = "55555";
  EXPECT_EQ(ids(phone, &total), (Ids{"b"}));
  EXPECT_EQ(total, 1);
  phone.statuses = {"picked"};  // with another filter: no match
  EXPECT_EQ(ids(phone, &total), Ids{});
  EXPECT_EQ(total, 0);

  CallFilter campaign;
  campaign.campaign_id = 7;
  auto page = store_->calls().list(campaign);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->calls.size(), 1u);
  EXPECT_EQ(page->total_count, 1);
  EXPECT_FALSE(page->calls[0].system_prompt.has_value());  // summary columns only

  ASSERT_TRUE(store_->calls().remove("a").ok());
  EXPECT_EQ(ids(picked, &total), (Ids{"c"}));
  EXPECT_EQ(total, 1);
  CallFilter all;
  EXPECT_EQ(ids(all, &total), (Ids{"c", "b"}));
  EXPECT_EQ(total, 2);
}

// The list's statements are kept prepared per filter shape (a bounded cache): a shape used again after
// writes and after more shapes than the cache holds must still see the current rows, bound afresh.
TEST_F(CallsQuery, CachedShapesSeeWritesAndSurviveEviction) {
  add("a", 1).phone_number = "+911111122222";
  add("b", 2).agent_uuid = "agent_b";
  insert_all();
  CallFilter by_agent;
  by_agent.agent_uuid = "agent_a";
  CallFilter phone;
  phone.phone_contains = "11111";
  CallFilter second;
  second.per_page = 1;
  second.page = 2;
  int64_t total = 0;
  EXPECT_EQ(ids(by_agent, &total), Ids{"a"});
  EXPECT_EQ(ids(phone, &total), Ids{"a"});
  EXPECT_EQ(ids(second, &total), Ids{"a"});
  EXPECT_EQ(total, 2);

  CallRecord c;
  c.call_id = "c";
  c.agent_uuid = "agent_a";
  c.phone_number = "+911111100000";
  c.status = "picked";
  c.created_at_ms = kT0 + 3;
  ASSERT_TRUE(store_->calls().insert(c).ok());
  EXPECT_EQ(ids(by_agent, &total), (Ids{"c", "a"}));
  EXPECT_EQ(total, 2);
  EXPECT_EQ(ids(phone, &total), (Ids{"c", "a"}));
  EXPECT_EQ(total, 2);
  EXPECT_EQ(ids(second, &total), Ids{"b"});
  EXPECT_EQ(total, 3);

  // Forty more shapes (an agents list of each length is its own SQL text), each answered right, evict the
  // first ones; they are prepared again and still right.
  for (size_t n = 1; n <= 40; ++n) {
    CallFilter many;
    many.agent_uuids.assign(n, "agent_b");
    many.agent_uuids.back() = "agent_a";
    EXPECT_EQ(ids(many, &total), n == 1 ? (Ids{"c", "a"}) : (Ids{"c", "b", "a"})) << n;
    EXPECT_EQ(total, n == 1 ? 2 : 3) << n;
  }
  ASSERT_TRUE(store_->calls().remove("a").ok());
  EXPECT_EQ(ids(by_agent, &total), Ids{"c"});
  EXPECT_EQ(total, 1);
  EXPECT_EQ(ids(phone, &total), Ids{"c"});
  EXPECT_EQ(total, 1);
  second.page = 1;
  EXPECT_EQ(ids(second, &total), Ids{"c"});
  EXPECT_EQ(total, 2);
}

}  // namespace
}  // namespace osvi::daemon
