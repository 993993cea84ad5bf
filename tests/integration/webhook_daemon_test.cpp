// osvid with a webhook delivery left pending by a previous run: the App's Dispatcher (on its sd-event
// HttpLoop) picks it up at start, the target guard refuses the loopback receiver (no allowed_targets), the
// delivery is dead-lettered with one journal entry, and the API shows it in the call's log and in /v1/health.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <string>
#include <thread>

#include "daemon_process.hpp"
#include "osvi/clock.hpp"
#include "osvi/net/json.hpp"
#include "osvi/store/store.hpp"
#include "test_support.hpp"
#include "webhook_receiver.hpp"

using namespace std::chrono_literals;

namespace osvi::daemon {
namespace {

constexpr const char* kToken = "TestToken0123456";
constexpr const char* kCallId = "0190a1b2-c3d4-7e5f-8a9b-000000000001";

TEST(WebhookDaemon, PendingDeliveryFromAPreviousRunIsSentAndGuarded) {
  test::TempDir dir;
  const std::string state = dir.file("state");
  ASSERT_EQ(::mkdir(state.c_str(), 0700), 0);
  const int port = test::free_loopback_port();
  test::write_file(
      dir.file("osvid.json"),
      R"({"state_dir":")" + state + R"(","api":{"listen":"127.0.0.1:)" + std::to_string(port) +
          R"(","tokens":[")" + kToken +
          R"("]},"agents":[{"agent_uuid":"agent_a","name":"Alpha","mode":"voice","active":true}]})");
  test::WebhookReceiver rx;
  ASSERT_TRUE(rx.start().ok());
  {
    SystemClock clock;
    auto store = Store::open(StoreOptions{state + "/osvi.db"}, clock);
    ASSERT_TRUE(store.ok()) << store.error().message;
    ASSERT_TRUE(
        (*store)->agents().sync({{0, "agent_a", "Alpha", "voice", true, false, "{}", "", 0, 0}}).ok());
    CallRecord c;
    c.call_id = kCallId;
    c.agent_uuid = "agent_a";
    c.agent_name = "Alpha";
    c.phone_number = "+919876543210";
    c.status = "picked";
    c.created_at_ms = clock.wall_ms();
    ASSERT_TRUE((*store)->calls().insert(c).ok());
    WebhookDelivery d;
    d.webhook_id = "msg_0000000000000000000000000a";
    d.call_id = kCallId;
    d.destination = "http://127.0.0.1:" + std::to_string(rx.port());
    d.url = rx.url("/hook");
    d.body = R"({"call_id":"0190a1b2-c3d4-7e5f-8a9b-000000000001"})";
    d.expires_at_ms = clock.wall_ms() + 3'600'000;
    auto queued = (*store)->webhooks().enqueue(d);
    ASSERT_TRUE(queued.ok() && *queued);
  }

  test::DaemonProcess osvid(dir.path(), {"--config", dir.file("osvid.json")});
  ASSERT_TRUE(osvid.wait_notify("READY=1", 5s)) << osvid.stderr_text();
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  std::string state_seen;
  net::JsonPtr j;
  for (int i = 0; i < 100 && state_seen != "dead"; ++i) {
    auto r = test::http_request("GET", base + "/v1/call/" + kCallId + "/deliveries", kToken);
    ASSERT_EQ(r.status, 200) << r.body;
    j = test::parse_json(r.body);
    const cJSON* list = cJSON_GetObjectItem(cJSON_GetObjectItem(j.get(), "data"), "deliveries");
    ASSERT_EQ(cJSON_GetArraySize(list), 1);
    state_seen = test::json_str(cJSON_GetArrayItem(list, 0), "state");
    if (state_seen != "dead") std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(state_seen, "dead");
  const cJSON* d =
      cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j.get(), "data"), "deliveries"), 0);
  EXPECT_EQ(test::json_str(d, "last_error"), "refused target 127.0.0.1 (loopback)");
  EXPECT_EQ(test::json_str(d, "webhook_id"), "msg_0000000000000000000000000a");
  EXPECT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(d, "attempt_log")), 1);
  EXPECT_EQ(rx.count(), 0u);  // never connected
  EXPECT_TRUE(osvid.wait_stderr("is dead after 1 attempt(s): refused target 127.0.0.1", 2s))
      << osvid.stderr_text();

  auto health = test::http_request("GET", base + "/v1/health", kToken);
  auto h = test::parse_json(health.body);
  const cJSON* wh = cJSON_GetObjectItem(cJSON_GetObjectItem(h.get(), "data"), "webhooks");
  ASSERT_NE(wh, nullptr) << health.body;
  EXPECT_EQ(cJSON_GetObjectItem(wh, "dead")->valueint, 1);
  EXPECT_EQ(cJSON_GetObjectItem(wh, "pending")->valueint, 0);
  // The delivery was signed (before its connect was refused) with the box's own secret, created then, 0600.
  struct stat st {};
  ASSERT_EQ(::stat((state + "/webhook_secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  osvid.signal(SIGTERM);
  EXPECT_EQ(osvid.wait_exit(5s), 0);
}

}  // namespace
}  // namespace osvi::daemon
