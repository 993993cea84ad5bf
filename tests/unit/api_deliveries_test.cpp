// The webhook delivery log through a real in-process HTTP server: GET /v1/call/{id}/deliveries (shape, token
// scoping, 404), GET /v1/webhooks/dead (paging, limited tokens) and the webhook counts of /v1/health.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "api_harness.hpp"
#include "daemon_process.hpp"
#include "osvi/api/api.hpp"
#include "osvi/clock.hpp"
#include "osvi/net/json.hpp"
#include "osvi/store/store.hpp"
#include "served_http.hpp"
#include "test_support.hpp"

namespace osvi::daemon {
namespace {

constexpr int64_t kT0 = test::kApiT0;
constexpr const char* kTok = test::kApiToken;
constexpr const char* kTokB = test::kApiTokenB;  // limited to agent_b

std::string uuid(int n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "0190a1b2-c3d4-7e5f-8a9b-%012d", n);
  return buf;
}

class ApiDeliveries : public test::ApiTest {
 protected:
  void SetUp() override {
    config_.site.utc_offset_minutes = 0;
    start_api({{0, "agent_a", "Alpha", "voice", true, false, "{}", "", 0, 0},
               {0, "agent_b", "Bravo", "voice", true, false, "{}", "", 0, 0}});
    for (int n = 1; n <= 2; ++n) {
      CallRecord c;
      c.call_id = uuid(n);
      c.agent_uuid = n == 1 ? "agent_a" : "agent_b";
      c.agent_name = "A";
      c.phone_number = "+919876543210";
      c.status = "picked";
      c.created_at_ms = kT0;
      ASSERT_TRUE(store_->calls().insert(c).ok());
    }
  }

  net::JsonPtr get(const std::string& path, long* status, const std::string& token = kTok) {
    auto r =
        test::http_request("GET", "http://127.0.0.1:" + std::to_string(served_.port()) + path, token, "");
    *status = r.status;
    std::string why;
    return net::json_parse(r.body, &why);
  }

  int64_t enqueue(const std::string& call_id, const std::string& kind, const std::string& integration) {
    WebhookDelivery d;
    d.webhook_id = "msg_" + call_id.substr(call_id.size() - 6) + kind.substr(0, 3) + integration;
    d.call_id = call_id;
    d.kind = kind;
    d.agent_uuid = "agent_a";
    d.integration = integration;
    d.destination = "http://example.com:80";
    d.url = "http://example.com/hook";
    d.body = "{}";
    d.expires_at_ms = kT0 + 86'400'000;
    int64_t id = 0;
    served_.locked([&] {
      ASSERT_TRUE(store_->webhooks().enqueue(d).ok());
      auto rows = store_->webhooks().for_call(call_id);
      ASSERT_TRUE(rows.ok());
      id = rows->back().id;
    });
    return id;
  }
};

TEST_F(ApiDeliveries, CallLogShowsEveryDeliveryAndItsAttempts) {
  const int64_t a = enqueue(uuid(1), "call_webhook", "");
  const int64_t b = enqueue(uuid(1), "integration", "crm");
  served_.locked([&] {
    WebhookAttempt at;
    at.delivery_id = a;
    at.attempt = 1;
    at.started_at_ms = kT0 + 1000;
    at.status_code = 500;
    at.latency_ms = 12;
    at.error = "HTTP 500";
    ASSERT_TRUE(store_->webhooks().record_attempt(at, "pending", kT0 + 6000).ok());
    at.attempt = 2;
    at.started_at_ms = kT0 + 6000;
    at.status_code = 204;
    at.error.reset();
    clock_.advance_ms(6000);
    ASSERT_TRUE(store_->webhooks().record_attempt(at, "delivered", std::nullopt).ok());
  });
  long status = 0;
  auto j = get("/v1/call/" + uuid(1) + "/deliveries", &status);
  ASSERT_EQ(status, 200);
  const cJSON* data = cJSON_GetObjectItem(j.get(), "data");
  EXPECT_EQ(std::string(cJSON_GetObjectItem(data, "call_id")->valuestring), uuid(1));
  const cJSON* list = cJSON_GetObjectItem(data, "deliveries");
  ASSERT_EQ(cJSON_GetArraySize(list), 2);
  const cJSON* first = cJSON_GetArrayItem(list, 0);
  EXPECT_STREQ(cJSON_GetObjectItem(first, "kind")->valuestring, "call_webhook");
  EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(first, "integration")));
  EXPECT_STREQ(cJSON_GetObjectItem(first, "state")->valuestring, "delivered");
  EXPECT_EQ(cJSON_GetObjectItem(first, "attempts")->valueint, 2);
  EXPECT_EQ(cJSON_GetObjectItem(first, "last_status")->valueint, 204);
  EXPECT_STREQ(cJSON_GetObjectItem(first, "delivered_at")->valuestring,
               cJSON_GetObjectItem(first, "finished_at")->valuestring);
  EXPECT_STREQ(cJSON_GetObjectItem(first, "method")->valuestring, "POST");
  EXPECT_STREQ(cJSON_GetObjectItem(first, "url")->valuestring, "http://example.com/hook");
  const cJSON* log = cJSON_GetObjectItem(first, "attempt_log");
  ASSERT_EQ(cJSON_GetArraySize(log), 2);
  const cJSON* a1 = cJSON_GetArrayItem(log, 0);
  EXPECT_EQ(cJSON_GetObjectItem(a1, "attempt")->valueint, 1);
  EXPECT_EQ(cJSON_GetObjectItem(a1, "status_code")->valueint, 500);
  EXPECT_EQ(cJSON_GetObjectItem(a1, "latency_ms")->valueint, 12);
  EXPECT_STREQ(cJSON_GetObjectItem(a1, "error")->valuestring, "HTTP 500");
  EXPECT_TRUE(cJSON_IsString(cJSON_GetObjectItem(a1, "started_at")));
  EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(log, 1), "error")));
  const cJSON* second = cJSON_GetArrayItem(list, 1);
  EXPECT_STREQ(cJSON_GetObjectItem(second, "integration")->valuestring, "crm");
  EXPECT_STREQ(cJSON_GetObjectItem(second, "state")->valuestring, "pending");
  EXPECT_TRUE(cJSON_IsString(cJSON_GetObjectItem(second, "next_attempt_at")));
  EXPECT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(second, "attempt_log")), 0);
  (void)b;
}

TEST_F(ApiDeliveries, UnknownOrForeignCallIs404AndACallWithoutDeliveriesIsEmpty) {
  long status = 0;
  get("/v1/call/" + uuid(9) + "/deliveries", &status);
  EXPECT_EQ(status, 404);
  get("/v1/call/not-a-uuid/deliveries", &status);
  EXPECT_EQ(status, 404);
  enqueue(uuid(1), "call_webhook", "");
  get("/v1/call/" + uuid(1) + "/deliveries", &status, kTokB);  // agent_a's call, token of agent_b
  EXPECT_EQ(status, 404);
  auto j = get("/v1/call/" + uuid(2) + "/deliveries", &status, kTokB);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(j.get(), "data"), "deliveries")), 0);
  get("/v1/call/" + uuid(1) + "/deliveries", &status, "");
  EXPECT_EQ(status, 401);
}

TEST_F(ApiDeliveries, DeadLettersArePagedNewestFirstAndCountedInHealth) {
  for (int n = 1; n <= 2; ++n) {
    const int64_t id = enqueue(uuid(n), "call_webhook", "");
    served_.locked([&] {
      clock_.advance_ms(1000);
      WebhookAttempt at;
      at.delivery_id = id;
      at.started_at_ms = clock_.wall_ms();
      at.error = "refused target 127.0.0.1 (loopback)";
      ASSERT_TRUE(store_->webhooks().record_attempt(at, "dead", std::nullopt).ok());
    });
  }
  enqueue(uuid(1), "integration", "crm");  // pending
  long status = 0;
  auto j = get("/v1/webhooks/dead?per_page=1", &status);
  ASSERT_EQ(status, 200);
  const cJSON* data = cJSON_GetObjectItem(j.get(), "data");
  ASSERT_EQ(cJSON_GetArraySize(data), 1);
  EXPECT_STREQ(cJSON_GetObjectItem(cJSON_GetArrayItem(data, 0), "call_id")->valuestring, uuid(2).c_str());
  const cJSON* meta = cJSON_GetObjectItem(j.get(), "meta");
  EXPECT_EQ(cJSON_GetObjectItem(meta, "total_count")->valueint, 2);
  EXPECT_EQ(cJSON_GetObjectItem(meta, "total_pages")->valueint, 2);
  j = get("/v1/webhooks/dead?page=2&per_page=1", &status);
  EXPECT_STREQ(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j.get(), "data"), 0), "call_id")
                   ->valuestring,
               uuid(1).c_str());
  get("/v1/webhooks/dead?per_page=0", &status);
  EXPECT_EQ(status, 422);
  get("/v1/webhooks/dead?sort=x", &status);
  EXPECT_EQ(status, 422);
  get("/v1/webhooks/dead", &status, kTokB);
  EXPECT_EQ(status, 403);

  served_.locked([&] { clock_.advance_ms(5000); });
  j = get("/v1/health", &status);
  ASSERT_EQ(status, 200);
  const cJSON* wh = cJSON_GetObjectItem(cJSON_GetObjectItem(j.get(), "data"), "webhooks");
  ASSERT_NE(wh, nullptr);
  EXPECT_EQ(cJSON_GetObjectItem(wh, "pending")->valueint, 1);
  EXPECT_EQ(cJSON_GetObjectItem(wh, "dead")->valueint, 2);
  EXPECT_EQ(cJSON_GetObjectItem(wh, "oldest_pending_age_s")->valueint, 5);
}

}  // namespace
}  // namespace osvi::daemon
