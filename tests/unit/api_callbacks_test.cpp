// The callbacks extension (GET /v1/callbacks, GET and DELETE /v1/callbacks/{id}) through a real in-process
// HTTP server: shapes, filters, paging, the token's limit, cancel and its 404/409.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "api_harness.hpp"
#include "osvi/net/json.hpp"
#include "osvi/store/store.hpp"

namespace osvi::daemon {
namespace {

using test::api_keys;
using test::api_num;
using test::api_str;
using test::ApiReply;
using test::kApiT0;
using test::kApiTokenB;
constexpr int64_t kT0 = kApiT0;

const std::vector<std::string> kCallbackKeys = {"id",           "kind",    "source_call_id", "agent_uuid",
                                                "phone_number", "due_at",  "requested_text", "state",
                                                "call_id",      "outcome", "retry_count",    "created_at"};

class ApiCallbacks : public test::ApiTest {
 protected:
  void SetUp() override {
    config_.site.utc_offset_minutes = 330;
    start_api();
  }

  // A scheduled row, created at the clock's now (advanced 1 s per row so the order is by creation).
  int64_t schedule(const std::string& agent, const std::string& kind = "callback",
                   int64_t due = kT0 + 3'600'000, const std::string& source = "") {
    int64_t id = 0;
    served_.locked([&] {
      clock_.advance_ms(1000);
      CallbackRow r;
      r.kind = kind;
      r.source_call_id = source.empty() ? "call-" + std::to_string(++n_) : source;
      r.agent_uuid = agent;
      r.phone = "+919800000001";
      r.due_at_ms = due;
      r.requested_text = "after six tomorrow";
      auto got = store_->callbacks().schedule(r);
      ASSERT_TRUE(got.ok()) << got.error().message;
      id = *got;
    });
    return id;
  }

  int n_ = 0;
};

TEST_F(ApiCallbacks, GetShowsTheRowWithTimesAtTheBoxOffset) {
  const int64_t id = schedule("agent_a", "callback", kT0 + 16 * 3'600'000);  // 17:56:40 IST
  ApiReply r = request("GET", "/v1/callbacks/" + std::to_string(id));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(cJSON_IsTrue(r.get("success")));
  const cJSON* d = r.data();
  EXPECT_EQ(api_keys(d), kCallbackKeys);
  EXPECT_EQ(api_num(d, "id"), static_cast<double>(id));
  EXPECT_EQ(api_str(d, "kind"), "callback");
  EXPECT_EQ(api_str(d, "source_call_id"), "call-1");
  EXPECT_EQ(api_str(d, "agent_uuid"), "agent_a");
  EXPECT_EQ(api_str(d, "phone_number"), "+919800000001");
  EXPECT_EQ(api_str(d, "due_at"), "2026-05-29T17:56:40+05:30");
  EXPECT_EQ(api_str(d, "requested_text"), "after six tomorrow");
  EXPECT_EQ(api_str(d, "state"), "scheduled");
  EXPECT_EQ(api_str(d, "call_id"), "<null>");
  EXPECT_EQ(api_str(d, "outcome"), "<null>");
  EXPECT_EQ(api_num(d, "retry_count"), 0);
  EXPECT_EQ(api_str(d, "created_at"), "2026-05-29T01:56:41+05:30");
}

TEST_F(ApiCallbacks, UnknownIdsAre404) {
  test::expect_api_error(request("GET", "/v1/callbacks/999"), 404, "no callback");
  test::expect_api_error(request("GET", "/v1/callbacks/abc"), 404, "no callback");
  test::expect_api_error(request("DELETE", "/v1/callbacks/999"), 404, "no callback");
  test::expect_api_error(request("DELETE", "/v1/callbacks/0"), 404, "no callback");
}

TEST_F(ApiCallbacks, DeleteCancelsAScheduledCallbackOnce) {
  const int64_t id = schedule("agent_a");
  const std::string path = "/v1/callbacks/" + std::to_string(id);
  ApiReply r = request("DELETE", path);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(api_keys(r.data()), kCallbackKeys);
  EXPECT_EQ(api_str(r.data(), "state"), "cancelled");
  served_.locked([&] {
    auto row = store_->callbacks().get(id);
    ASSERT_TRUE(row.ok() && row->has_value());
    EXPECT_EQ((*row)->state, "cancelled");
    auto due = store_->callbacks().next_due(kT0 + 86'400'000, {"agent_a"});
    ASSERT_TRUE(due.ok());
    EXPECT_FALSE(due->has_value()) << "a cancelled callback is never due";
  });
  test::expect_api_error(request("DELETE", path), 409, "is cancelled, not scheduled");
}

TEST_F(ApiCallbacks, DeleteOfADialingOrDoneCallbackIs409) {
  const int64_t dialing = schedule("agent_a"), done = schedule("agent_a");
  served_.locked([&] {
    ASSERT_TRUE(store_->callbacks().open(dialing, "0190f000-0000-7000-8000-000000000001").ok());
    ASSERT_TRUE(store_->callbacks().open(done, "0190f000-0000-7000-8000-000000000002").ok());
    auto closed = store_->callbacks().close("0190f000-0000-7000-8000-000000000002", "picked");
    ASSERT_TRUE(closed.ok() && closed->has_value());
  });
  test::expect_api_error(request("DELETE", "/v1/callbacks/" + std::to_string(dialing)), 409, "is dialing");
  test::expect_api_error(request("DELETE", "/v1/callbacks/" + std::to_string(done)), 409, "is done");
  ApiReply r = request("GET", "/v1/callbacks/" + std::to_string(done));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(api_str(r.data(), "state"), "done");
  EXPECT_EQ(api_str(r.data(), "outcome"), "picked");
  EXPECT_EQ(api_str(r.data(), "call_id"), "0190f000-0000-7000-8000-000000000002");
}

TEST_F(ApiCallbacks, ListIsNewestFirstFilteredAndPaged) {
  std::vector<int64_t> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(schedule("agent_a", i % 2 ? "retry" : "callback"));
  ids.push_back(schedule("agent_b"));
  served_.locked([&] { ASSERT_TRUE(store_->callbacks().cancel(ids[0]).ok()); });

  ApiReply all = request("GET", "/v1/callbacks?per_page=4");
  ASSERT_EQ(all.status, 200) << all.body;
  ASSERT_EQ(cJSON_GetArraySize(all.data()), 4);
  EXPECT_EQ(api_num(cJSON_GetArrayItem(all.data(), 0), "id"), static_cast<double>(ids[5]));
  EXPECT_EQ(api_num(cJSON_GetArrayItem(all.data(), 3), "id"), static_cast<double>(ids[2]));
  const cJSON* meta = all.get("meta");
  EXPECT_EQ(api_keys(meta),
            (std::vector<std::string>{"current_page", "total_pages", "total_count", "per_page"}));
  EXPECT_EQ(api_num(meta, "current_page"), 1);
  EXPECT_EQ(api_num(meta, "total_pages"), 2);
  EXPECT_EQ(api_num(meta, "total_count"), 6);
  EXPECT_EQ(api_num(meta, "per_page"), 4);

  ApiReply page2 = request("GET", "/v1/callbacks?per_page=4&page=2");
  ASSERT_EQ(page2.status, 200);
  ASSERT_EQ(cJSON_GetArraySize(page2.data()), 2);
  EXPECT_EQ(api_num(cJSON_GetArrayItem(page2.data(), 1), "id"), static_cast<double>(ids[0]));
  ApiReply past = request("GET", "/v1/callbacks?page=9");
  ASSERT_EQ(past.status, 200);
  EXPECT_EQ(cJSON_GetArraySize(past.data()), 0);
  EXPECT_EQ(api_num(past.get("meta"), "total_count"), 6);

  ApiReply retries = request("GET", "/v1/callbacks?kind=retry&agent_uuid=agent_a");
  ASSERT_EQ(retries.status, 200);
  EXPECT_EQ(api_num(retries.get("meta"), "total_count"), 2);
  ApiReply cancelled = request("GET", "/v1/callbacks?state=cancelled");
  ASSERT_EQ(cancelled.status, 200);
  ASSERT_EQ(cJSON_GetArraySize(cancelled.data()), 1);
  EXPECT_EQ(api_num(cJSON_GetArrayItem(cancelled.data(), 0), "id"), static_cast<double>(ids[0]));
  ApiReply b = request("GET", "/v1/callbacks?agent_uuid=agent_b&state=scheduled");
  ASSERT_EQ(b.status, 200);
  ASSERT_EQ(cJSON_GetArraySize(b.data()), 1);
  EXPECT_EQ(api_str(cJSON_GetArrayItem(b.data(), 0), "agent_uuid"), "agent_b");
}

TEST_F(ApiCallbacks, ListRefusesBadQueriesNamingTheParameter) {
  test::expect_api_error(request("GET", "/v1/callbacks?state=waiting"), 422, "state:");
  test::expect_api_error(request("GET", "/v1/callbacks?kind=later"), 422, "kind:");
  test::expect_api_error(request("GET", "/v1/callbacks?page=0"), 422, "page:");
  test::expect_api_error(request("GET", "/v1/callbacks?per_page=101"), 422, "per_page:");
  test::expect_api_error(request("GET", "/v1/callbacks?colour=red"), 422, "colour");
  test::expect_api_error(request("GET", "/v1/callbacks?kind=retry&kind=callback"), 422, "more than once");
}

TEST_F(ApiCallbacks, ALimitedTokenSeesOnlyItsAgents) {
  const int64_t a = schedule("agent_a"), b = schedule("agent_b");
  ApiReply list = request("GET", "/v1/callbacks", {}, kApiTokenB);
  ASSERT_EQ(list.status, 200) << list.body;
  ASSERT_EQ(cJSON_GetArraySize(list.data()), 1);
  EXPECT_EQ(api_num(cJSON_GetArrayItem(list.data(), 0), "id"), static_cast<double>(b));
  EXPECT_EQ(api_num(list.get("meta"), "total_count"), 1);
  test::expect_api_error(request("GET", "/v1/callbacks?agent_uuid=agent_a", {}, kApiTokenB), 403,
                         "may not use agent");
  // Another agent's callback is not there for this token, and it cannot cancel it.
  test::expect_api_error(request("GET", "/v1/callbacks/" + std::to_string(a), {}, kApiTokenB), 404,
                         "no callback");
  test::expect_api_error(request("DELETE", "/v1/callbacks/" + std::to_string(a), {}, kApiTokenB), 404,
                         "no callback");
  served_.locked([&] { EXPECT_EQ((*store_->callbacks().get(a))->state, "scheduled"); });
  EXPECT_EQ(request("DELETE", "/v1/callbacks/" + std::to_string(b), {}, kApiTokenB).status, 200);
  EXPECT_EQ(request("GET", "/v1/callbacks", {}, "wrong-token").status, 401);
}

}  // namespace
}  // namespace osvi::daemon
