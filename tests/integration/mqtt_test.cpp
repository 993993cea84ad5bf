// osvid fleet sync against a real mosquitto broker: presence, Will, outbox durability, commands, TLS.
#include <gtest/gtest.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "mosquitto_broker.hpp"
#include "osvi/clock.hpp"
#include "osvi/net/json.hpp"
#include "osvi/store/store.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using osvi::test::DaemonProcess;
using osvi::test::TempDir;

constexpr const char* kPrefix = "osvi/v1/site1/box1";

using Broker = osvi::test::MosquittoBroker;

struct Msg {
  std::string topic, payload, correlation;
  bool retain = false;
};

// A libmosquitto subscriber on its own network thread (test side only), collecting every message.
class Subscriber {
 public:
  explicit Subscriber(int port, const std::string& pattern = std::string(kPrefix) + "/#", bool clean = true,
                      const std::string& id = "") {
    lib_init();
    m_ = mosquitto_new(id.empty() ? nullptr : id.c_str(), clean, this);
    mosquitto_int_option(m_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_message_v5_callback_set(
        m_, [](mosquitto*, void* obj, const mosquitto_message* msg, const mosquitto_property* props) {
          auto* self = static_cast<Subscriber*>(obj);
          Msg x;
          x.topic = msg->topic;
          x.payload.assign(static_cast<const char*>(msg->payload), static_cast<size_t>(msg->payloadlen));
          x.retain = msg->retain;
          void* cd = nullptr;
          uint16_t len = 0;
          if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &cd, &len, false) && cd) {
            x.correlation.assign(static_cast<const char*>(cd), len);
            free(cd);
          }
          std::lock_guard lock(self->mu_);
          self->msgs_.push_back(std::move(x));
          self->cv_.notify_all();
        });
    mosquitto_subscribe_callback_set(m_, [](mosquitto*, void* obj, int, int, const int*) {
      auto* self = static_cast<Subscriber*>(obj);
      std::lock_guard lock(self->mu_);
      self->subscribed_ = true;
      self->cv_.notify_all();
    });
    pattern_ = pattern;
    mosquitto_connect_v5_callback_set(
        m_, [](mosquitto* m, void* obj, int rc, int, const mosquitto_property*) {
          if (rc == 0)
            mosquitto_subscribe_v5(m, nullptr, static_cast<Subscriber*>(obj)->pattern_.c_str(), 1,
                                   MQTT_SUB_OPT_RETAIN_AS_PUBLISHED, nullptr);
        });
    // MQTT 5 ends a session at disconnect unless the client asks for an expiry: a persistent fleet-side
    // session (clean = false) must, or the broker drops what is published while it is away.
    mosquitto_property* connect_props = nullptr;
    if (!clean) mosquitto_property_add_int32(&connect_props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 600);
    EXPECT_EQ(mosquitto_connect_bind_v5(m_, "127.0.0.1", port, 10, nullptr, connect_props), MOSQ_ERR_SUCCESS);
    mosquitto_property_free_all(&connect_props);
    mosquitto_reconnect_delay_set(m_, 1, 1, false);
    mosquitto_loop_start(m_);
    std::unique_lock lock(mu_);
    EXPECT_TRUE(cv_.wait_for(lock, 5s, [this] { return subscribed_; }));
  }
  ~Subscriber() {
    mosquitto_disconnect(m_);
    // Not forced: cancelling the network thread mid-message leaked that message (LeakSanitizer, now and
    // then); after mosquitto_disconnect the thread ends on its own.
    mosquitto_loop_stop(m_, false);
    mosquitto_destroy(m_);
  }
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  // Waits until pred holds on the messages so far.
  bool wait(const std::function<bool(const std::vector<Msg>&)>& pred, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return pred(msgs_); });
  }
  // The first message on topic whose payload contains needle.
  std::optional<Msg> wait_for(const std::string& topic, const std::string& needle,
                              std::chrono::milliseconds timeout) {
    std::optional<Msg> found;
    wait(
        [&](const std::vector<Msg>& all) {
          for (const Msg& m : all)
            if (m.topic == topic && m.payload.find(needle) != std::string::npos) {
              found = m;
              return true;
            }
          return false;
        },
        timeout);
    return found;
  }
  std::vector<Msg> messages() {
    std::lock_guard lock(mu_);
    return msgs_;
  }
  void publish(const std::string& topic, const std::string& payload, const std::string& response_topic = "",
               const std::string& correlation = "") {
    mosquitto_property* props = nullptr;
    if (!response_topic.empty())
      mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, response_topic.c_str());
    if (!correlation.empty())
      mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, correlation.data(),
                                    static_cast<uint16_t>(correlation.size()));
    mosquitto_publish_v5(m_, nullptr, topic.c_str(), static_cast<int>(payload.size()), payload.data(), 1,
                         false, props);
    mosquitto_property_free_all(&props);
  }

 private:
  static void lib_init() {
    static std::once_flag once;
    std::call_once(once, [] { mosquitto_lib_init(); });
  }
  mosquitto* m_;
  std::string pattern_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Msg> msgs_;
  bool subscribed_ = false;
};

std::string config_json(int broker_port, const std::string& state_dir, const std::string& mqtt_extra = "") {
  return R"({"site":{"id":"site1","device":"box1"},"state_dir":")" + state_dir +
         R"(","api":{"listen":"127.0.0.1:)" + std::to_string(osvi::test::free_loopback_port()) +
         R"("},"agents":[{"agent_uuid":"agent_a","name":"A","active":true},{"agent_uuid":"agent_b","name":"B"}],)"
         R"("mqtt":{"enabled":true,"port":)" +
         std::to_string(broker_port) +
         R"(,"reconnect_min_ms":100,"reconnect_max_ms":400,"keepalive_s":5,"telemetry_interval_s":0)" +
         mqtt_extra + "}}";
}

// Calls the daemon will find in progress at start: recovery closes them and queues their records.
void seed_in_progress_calls(const std::string& state_dir, int n, int first = 0) {
  osvi::SystemClock clock;
  osvi::daemon::StoreOptions o;
  o.path = state_dir + "/osvi.db";
  auto store = osvi::daemon::Store::open(o, clock);
  ASSERT_TRUE(store.ok()) << store.error().message;
  ASSERT_TRUE((*store)
                  ->database()
                  .transaction([&]() -> osvi::Status {
                    for (int i = first; i < first + n; ++i) {
                      osvi::daemon::CallRecord c;
                      char id[64];
                      std::snprintf(id, sizeof id, "00000000-0000-7000-8000-%012d", i);
                      c.call_id = id;
                      c.agent_uuid = "agent_a";
                      c.phone_number = "+919876543210";
                      c.created_at_ms = 1'780'000'000'000 + i;
                      if (auto s = (*store)->calls().insert(c); !s) return s;
                    }
                    return {};
                  })
                  .ok());
}

std::vector<std::string> call_ids(const std::vector<Msg>& msgs) {
  std::vector<std::string> out;
  for (const Msg& m : msgs) {
    if (m.topic != std::string(kPrefix) + "/calls") continue;
    const auto p = m.payload.find("\"call_id\":\"");
    if (p != std::string::npos) out.push_back(m.payload.substr(p + 11, 36));
  }
  return out;
}

std::string call_id(int i) {
  char id[64];
  std::snprintf(id, sizeof id, "00000000-0000-7000-8000-%012d", i);
  return id;
}

class MqttTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_ = dir_.path() + "/state";
    osvi::test::write_file(dir_.file("mkdir"), "");
    std::filesystem::create_directories(state_);
  }
  std::unique_ptr<DaemonProcess> start_daemon(const std::string& cfg_text) {
    osvi::test::write_file(dir_.file("osvid.json"), cfg_text);
    auto d = std::make_unique<DaemonProcess>(dir_.path(),
                                             std::vector<std::string>{"--config", dir_.file("osvid.json")});
    EXPECT_TRUE(d->wait_notify("READY=1", 10s)) << d->stderr_text();
    return d;
  }
  TempDir dir_;
  std::string state_;
};

TEST_F(MqttTest, BirthThenWillOnKillThenNewSession) {
  Broker broker(dir_.path(), osvi::test::free_loopback_port());
  Subscriber sub(broker.port());
  auto d = start_daemon(config_json(broker.port(), state_));
  auto birth = sub.wait_for(std::string(kPrefix) + "/birth", "\"session\":1", 10s);
  ASSERT_TRUE(birth) << d->stderr_text();
  EXPECT_NE(birth->payload.find("\"lines\":[]"), std::string::npos);
  EXPECT_NE(birth->payload.find("\"config_hash\""), std::string::npos);
  ASSERT_TRUE(sub.wait_for(std::string(kPrefix) + "/status", "\"online\"", 5s));

  d->signal(SIGKILL);
  d->wait_exit(5s);
  auto will =
      sub.wait_for(std::string(kPrefix) + "/status", "\"offline\",\"session\":1,\"clean\":false", 10s);
  ASSERT_TRUE(will) << "the broker did not publish the Will";
  {
    // Retained: a subscriber arriving now still learns the box is offline.
    Subscriber late(broker.port(), std::string(kPrefix) + "/status");
    EXPECT_TRUE(late.wait_for(std::string(kPrefix) + "/status", "\"clean\":false", 5s));
  }

  d = start_daemon(config_json(broker.port(), state_));
  ASSERT_TRUE(sub.wait_for(std::string(kPrefix) + "/birth", "\"session\":2", 10s)) << d->stderr_text();

  // A clean stop publishes offline itself (clean: true) before disconnecting.
  d->signal(SIGTERM);
  EXPECT_EQ(d->wait_exit(10s), 0);
  EXPECT_TRUE(sub.wait_for(std::string(kPrefix) + "/status", "\"offline\",\"session\":2,\"clean\":true", 5s));
  // The retained status a late subscriber sees is the clean offline, not a Will.
  Subscriber late(broker.port(), std::string(kPrefix) + "/status");
  auto retained = late.wait_for(std::string(kPrefix) + "/status", "offline", 5s);
  ASSERT_TRUE(retained);
  EXPECT_NE(retained->payload.find("\"clean\":true"), std::string::npos);
}

// Birth and telemetry report the box as it is: its lines (a sim line here), live calls, xruns, breakers.
TEST_F(MqttTest, BirthAndTelemetryReportTheLines) {
  Broker broker(dir_.path(), osvi::test::free_loopback_port());
  Subscriber sub(broker.port());
  std::string cfg = config_json(broker.port(), state_);
  const std::string off = R"("telemetry_interval_s":0)";
  cfg.replace(cfg.find(off), off.size(), R"("telemetry_interval_s":1)");
  cfg.insert(cfg.size() - 1, R"(,"lines":[{"id":"sim0","type":"sim","agent_uuid":"agent_a"}])");
  auto d = start_daemon(cfg);
  auto birth = sub.wait_for(std::string(kPrefix) + "/birth", "\"session\":1", 10s);
  ASSERT_TRUE(birth) << d->stderr_text();
  osvi::net::JsonPtr b = osvi::net::json_parse(birth->payload, nullptr);
  ASSERT_TRUE(b) << birth->payload;
  const cJSON* lines = cJSON_GetObjectItemCaseSensitive(b.get(), "lines");
  ASSERT_EQ(cJSON_GetArraySize(lines), 1) << birth->payload;
  const cJSON* line = cJSON_GetArrayItem(lines, 0);
  EXPECT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(line, "id")), "sim0");
  EXPECT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(line, "type")), "sim");
  EXPECT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(line, "agent_uuid")), "agent_a");
  // The sim line reports a simulated modem identity: the birth's modem names it.
  const cJSON* modem = cJSON_GetObjectItemCaseSensitive(b.get(), "modem");
  ASSERT_TRUE(cJSON_IsObject(modem)) << birth->payload;
  EXPECT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(modem, "line")), "sim0");

  auto tel = sub.wait_for(std::string(kPrefix) + "/telemetry", "\"id\":\"sim0\"", 10s);
  ASSERT_TRUE(tel) << d->stderr_text();
  osvi::net::JsonPtr t = osvi::net::json_parse(tel->payload, nullptr);
  ASSERT_TRUE(t) << tel->payload;
  const cJSON* tl = cJSON_GetObjectItemCaseSensitive(t.get(), "lines");
  ASSERT_EQ(cJSON_GetArraySize(tl), 1) << tel->payload;
  EXPECT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(tl, 0), "id")),
               "sim0");
  EXPECT_EQ(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(t.get(), "live_calls")), 0);
  EXPECT_EQ(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(t.get(), "xruns")), 0);
  // No request went upstream yet: no provider, and libcurl is still not set up for one.
  EXPECT_EQ(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(t.get(), "upstreams")), 0);
  const cJSON* wh = cJSON_GetObjectItemCaseSensitive(t.get(), "webhooks");
  ASSERT_TRUE(cJSON_IsObject(wh)) << tel->payload;
  EXPECT_EQ(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(wh, "pending")), 0);
  EXPECT_EQ(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(wh, "dead")), 0);
  d->signal(SIGTERM);
  EXPECT_EQ(d->wait_exit(10s), 0);
}

TEST_F(MqttTest, RecoveredCallsDrainInOrderAndLeaveTheOutbox) {
  constexpr int kCalls = 200;
  seed_in_progress_calls(state_, kCalls);
  Broker broker(dir_.path(), osvi::test::free_loopback_port());
  Subscriber sub(broker.port());
  auto d = start_daemon(config_json(broker.port(), state_, R"(,"max_inflight":16)"));
  ASSERT_TRUE(sub.wait([](const std::vector<Msg>& m) { return call_ids(m).size() >= kCalls; }, 20s))
      << call_ids(sub.messages()).size() << " of " << kCalls << "\n"
      << d->stderr_text();
  auto ids = call_ids(sub.messages());
  for (int i = 0; i < kCalls; ++i)
    ASSERT_EQ(ids[static_cast<size_t>(i)], call_id(i)) << "order broken at " << i;
  auto msgs = sub.messages();
  for (const Msg& m : msgs) {
    if (m.topic != std::string(kPrefix) + "/calls") continue;
    EXPECT_NE(m.payload.find("\"idempotency_key\":\"call:"), std::string::npos);
    EXPECT_NE(m.payload.find("\"call_ended_reason\":\"daemon_restart\""), std::string::npos);
    EXPECT_FALSE(m.retain);
  }
  // Deleted on PUBACK: the outbox empties.
  osvi::SystemClock clock;
  osvi::daemon::StoreOptions o;
  o.path = state_ + "/osvi.db";
  o.quick_check = false;
  auto store = osvi::daemon::Store::open(o, clock);
  ASSERT_TRUE(store.ok());
  bool empty = false;
  for (int i = 0; i < 100 && !empty; ++i) {
    auto st = (*store)->outbox().stats();
    empty = st.ok() && st->queued == 0;
    if (!empty) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(empty);
}

TEST_F(MqttTest, BrokerRestartLosesNothingAndKeepsOrder) {
  const int port = osvi::test::free_loopback_port();
  const std::string persist = "persistence true\npersistence_location " + dir_.path() + "/\n";
  auto broker = std::make_unique<Broker>(dir_.path(), port, persist);
  auto sub = std::make_unique<Subscriber>(port, std::string(kPrefix) + "/calls", false, "fleet-side");
  auto d = start_daemon(config_json(port, state_));
  osvi::SystemClock clock;
  osvi::daemon::StoreOptions o;
  o.path = state_ + "/osvi.db";
  o.quick_check = false;
  auto store = osvi::daemon::Store::open(o, clock);
  ASSERT_TRUE(store.ok());
  // Records produced by "finished calls" through the store API, while the broker goes away and comes back.
  auto produce = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      osvi::daemon::CallRecord c;
      c.call_id = call_id(i);
      c.agent_uuid = "agent_a";
      c.phone_number = "+919876543210";
      c.created_at_ms = 1'780'000'000'000 + i;
      ASSERT_TRUE((*store)->calls().insert(c).ok());
      c.status = "picked";
      c.summary = "caller asked for opening hours";
      auto tx = (*store)->database().begin();
      ASSERT_TRUE(tx.ok());
      ASSERT_TRUE(osvi::daemon::finish_call_and_enqueue(*tx, (*store)->calls(), (*store)->outbox(), c).ok());
      ASSERT_TRUE(tx->commit().ok());
    }
  };
  produce(0, 20);
  ASSERT_TRUE(sub->wait([](const std::vector<Msg>& m) { return call_ids(m).size() >= 20; }, 10s));
  sub.reset();  // the fleet-side session stays on the broker (clean=false) and queues for us
  broker->stop();
  produce(20, 60);
  std::this_thread::sleep_for(600ms);  // the daemon retries against a dead port meanwhile
  broker->start();
  produce(60, 80);
  sub = std::make_unique<Subscriber>(port, std::string(kPrefix) + "/calls", false, "fleet-side");
  ASSERT_TRUE(sub->wait(
      [](const std::vector<Msg>& m) {
        // The resumed session may also redeliver records from before the outage: wait for 20..79 themselves.
        std::set<std::string> s;
        for (auto& id : call_ids(m)) s.insert(id);
        for (int i = 20; i < 80; ++i)
          if (!s.contains(call_id(i))) return false;
        return true;
      },
      20s))
      << call_ids(sub->messages()).size() << "\n"
      << d->stderr_text();
  auto ids = call_ids(sub->messages());
  // Every record after the outage arrived; the first arrival of each is in production order.
  std::vector<std::string> first;
  std::set<std::string> seen;
  for (auto& id : ids)
    if (seen.insert(id).second) first.push_back(id);
  for (int i = 20; i < 80; ++i) EXPECT_TRUE(seen.contains(call_id(i))) << call_id(i);
  for (size_t i = 1; i < first.size(); ++i) EXPECT_LT(first[i - 1], first[i]);
}

TEST_F(MqttTest, SigkillWhilePublishingThenRestartDeliversEverything) {
  constexpr int kCalls = 400;
  seed_in_progress_calls(state_, kCalls);
  Broker broker(dir_.path(), osvi::test::free_loopback_port());
  Subscriber sub(broker.port(), std::string(kPrefix) + "/calls");
  const std::string cfg = config_json(broker.port(), state_, R"(,"max_inflight":4)");
  auto d = start_daemon(cfg);
  ASSERT_TRUE(sub.wait([](const std::vector<Msg>& m) { return !call_ids(m).empty(); }, 10s));
  d->signal(SIGKILL);
  d->wait_exit(5s);
  const size_t before = call_ids(sub.messages()).size();
  d = start_daemon(cfg);
  ASSERT_TRUE(sub.wait(
      [](const std::vector<Msg>& m) {
        std::set<std::string> s;
        for (auto& id : call_ids(m)) s.insert(id);
        return s.size() >= kCalls;
      },
      30s))
      << d->stderr_text();
  // Duplicates only with the same idempotency key: the payload of a repeated call id is identical.
  std::map<std::string, std::string> by_id;
  for (const Msg& m : sub.messages()) {
    const auto p = m.payload.find("\"call_id\":\"");
    const std::string id = m.payload.substr(p + 11, 36);
    const auto k = m.payload.find("\"idempotency_key\":\"");
    const std::string key = m.payload.substr(k + 19, m.payload.find('"', k + 19) - (k + 19));
    auto [it, inserted] = by_id.emplace(id, key);
    if (!inserted) {
      EXPECT_EQ(it->second, key);
    }
  }
  EXPECT_EQ(by_id.size(), static_cast<size_t>(kCalls));
  RecordProperty("delivered_before_kill", static_cast<int>(before));
}

TEST_F(MqttTest, CommandsAnswerAcceptedOrRejectedNeverCrash) {
  Broker broker(dir_.path(), osvi::test::free_loopback_port());
  Subscriber sub(broker.port());
  auto d = start_daemon(config_json(
      broker.port(), state_, R"(,"commands":{"max_request_bytes":2048,"token":"Fleet-cmd-token-01"})"));
  ASSERT_TRUE(sub.wait_for(std::string(kPrefix) + "/birth", "online", 10s));
  const std::string p = kPrefix;
  // Every request carries the command token (the pad keeps the oversized one below over the limit).
  auto publish = [&sub](const std::string& topic, std::string payload, const std::string& response_topic = "",
                        const std::string& correlation = "") {
    if (payload.starts_with("{") && payload != "{not json")
      payload.insert(
          1, payload == "{}" ? R"("token":"Fleet-cmd-token-01")" : R"("token":"Fleet-cmd-token-01",)");
    sub.publish(topic, payload, response_topic, correlation);
  };

  // MQTT v5 request/response: response topic (under <prefix>/reply/) + correlation data.
  publish(p + "/cmd/ping/req", "{}", p + "/reply/1", "corr-1");
  auto r = sub.wait_for(p + "/reply/1", "\"accepted\"", 5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->correlation, "corr-1");

  // 3.1.1-style: reply_to and correlation_id in the payload.
  publish(p + "/cmd/ping/req", R"({"reply_to":")" + p + R"(/reply/2","correlation_id":"c2"})");
  ASSERT_TRUE(sub.wait_for(p + "/reply/2", "\"correlation_id\":\"c2\"", 5s));

  // A free-form number is normalised with the site's country (IN); adding it again is idempotent and says so.
  publish(p + "/cmd/dnd/req", R"({"action":"add","agent_uuid":"agent_a","phone":"098000 00001"})");
  auto added = sub.wait_for(p + "/cmd/dnd/res", "\"created\":true", 5s);
  ASSERT_TRUE(added);
  EXPECT_NE(added->payload.find("\"accepted\""), std::string::npos) << added->payload;
  EXPECT_NE(added->payload.find("\"phone\":\"+919800000001\""), std::string::npos) << added->payload;
  publish(p + "/cmd/dnd/req", R"({"action":"add","agent_uuid":"agent_a","phone":"+919800000001"})");
  auto dup = sub.wait_for(p + "/cmd/dnd/res", "already on", 5s);
  ASSERT_TRUE(dup);
  EXPECT_NE(dup->payload.find("\"accepted\""), std::string::npos) << dup->payload;
  EXPECT_NE(dup->payload.find("\"created\":false"), std::string::npos) << dup->payload;
  publish(p + "/cmd/dnd/req", R"({"action":"remove","agent_uuid":"agent_zz","phone":"12"})");
  auto bad = sub.wait_for(p + "/cmd/dnd/res", "unknown agent", 5s);
  ASSERT_TRUE(bad);
  EXPECT_NE(bad->payload.find("E.164"), std::string::npos);

  // The call command reaches the calls engine: DND first, then this box has no line to call on.
  publish(p + "/cmd/call/req", R"({"agent_uuid":"agent_a","phone_number":"+919800000001"})");
  ASSERT_TRUE(sub.wait_for(p + "/cmd/call/res", "do-not-disturb", 5s));
  publish(p + "/cmd/call/req", R"({"agent_uuid":"agent_a","phone_number":"+919876543210"})");
  ASSERT_TRUE(sub.wait_for(p + "/cmd/call/res", "no telephony line", 5s));
  publish(p + "/cmd/call/req", R"({"agent_uuid":"agent_b","phone_number":"+919876543210"})");
  ASSERT_TRUE(sub.wait_for(p + "/cmd/call/res", "not an active voice agent", 5s));

  publish(p + "/cmd/log_level/req", R"({"level":"debug"})");
  ASSERT_TRUE(sub.wait_for(p + "/cmd/log_level/res", "\"level\":\"debug\"", 5s));
  publish(p + "/cmd/log_level/req", R"({"level":"loud"})");
  ASSERT_TRUE(sub.wait_for(p + "/cmd/log_level/res", "rejected", 5s));

  publish(p + "/cmd/reboot/req", "{}");
  ASSERT_TRUE(sub.wait_for(p + "/cmd/reboot/res", "unknown command", 5s));
  publish(p + "/cmd/ping/req", "{not json");
  ASSERT_TRUE(sub.wait_for(p + "/cmd/ping/res", "malformed", 5s));
  publish(p + "/cmd/ping/req", "[1,2]");
  ASSERT_TRUE(sub.wait_for(p + "/cmd/ping/res", "expected a JSON object", 5s));
  publish(p + "/cmd/ping/req", "{\"pad\":\"" + std::string(4000, 'x') + "\"}");
  ASSERT_TRUE(sub.wait_for(p + "/cmd/ping/res", "too large", 5s));

  // Configuration push: invalid → rejected with reasons, nothing changes; valid → applied and persisted.
  sub.publish(
      p + "/cfg/desired",
      R"({"token":"Fleet-cmd-token-01","version":7,"config":{"site":{"id":"site1","device":"box1"},"agents":[{"name":"x"}]}})");
  auto rej = sub.wait_for(p + "/cfg/reported", "\"rejected\"", 5s);
  ASSERT_TRUE(rej);
  EXPECT_NE(rej->payload.find("agent_uuid"), std::string::npos) << rej->payload;
  const std::string before = osvi::test::read_file(dir_.file("osvid.json"));
  EXPECT_NE(before.find("\"mqtt\""), std::string::npos);

  // The pushed document keeps the mqtt section (otherwise the box would disconnect itself: also valid).
  std::string pushed = config_json(broker.port(), state_);
  pushed.replace(pushed.find("\"name\":\"B\""), 10, "\"name\":\"Bee\"");
  sub.publish(p + "/cfg/desired", R"({"token":"Fleet-cmd-token-01","version":8,"config":)" + pushed + "}");
  auto ok = sub.wait_for(p + "/cfg/reported", "\"applied\"", 5s);
  ASSERT_TRUE(ok) << d->stderr_text();
  EXPECT_NE(ok->payload.find("\"version\":8"), std::string::npos);
  EXPECT_NE(osvi::test::read_file(dir_.file("osvid.json")).find("\"Bee\""), std::string::npos);
  EXPECT_TRUE(d->wait_stderr("configuration reloaded", 5s));

  d->signal(SIGTERM);
  EXPECT_EQ(d->wait_exit(10s), 0);
}

// campaign_contacts: the API's import over MQTT, and a repeated idempotency key replays the first result
// without importing again (a scheduler that lost the answer resends the same request).
TEST_F(MqttTest, CampaignContactsImportsOnceAndReplaysARepeatedKey) {
  Broker broker(dir_.path(), osvi::test::free_loopback_port());
  Subscriber sub(broker.port());
  std::string cfg = config_json(broker.port(), state_,
                                R"(,"commands":{"max_request_bytes":1048576,"token":"Fleet-cmd-token-01"})");
  cfg.insert(cfg.size() - 1, R"(,"campaigns":[{"id":7,"name":"December","agents":["agent_a"]}])");
  auto d = start_daemon(cfg);
  ASSERT_TRUE(sub.wait_for(std::string(kPrefix) + "/birth", "online", 10s)) << d->stderr_text();
  const std::string p = kPrefix;
  auto send = [&](const std::string& body, const std::string& corr) {
    sub.publish(p + "/cmd/campaign_contacts/req",
                R"({"token":"Fleet-cmd-token-01","correlation_id":")" + corr + "\"," + body + "}");
    return sub.wait_for(p + "/cmd/campaign_contacts/res", "\"correlation_id\":\"" + corr + "\"", 10s);
  };

  auto first = send(
      R"("campaign_id":7,"agent_uuid":"agent_a","idempotency_key":"sched-2026-12-02:7:001",)"
      R"("contacts":[{"phone":"9876543210","person_name":"Asha","plan":"Pro"},{"phone":"+919876500000"},{"phone":"12"}])",
      "c1");
  ASSERT_TRUE(first) << d->stderr_text();
  auto j = osvi::test::parse_json(first->payload);
  ASSERT_TRUE(j);
  EXPECT_EQ(osvi::test::json_str(j.get(), "status"), "accepted") << first->payload;
  const cJSON* result = cJSON_GetObjectItemCaseSensitive(j.get(), "result");
  ASSERT_TRUE(cJSON_IsObject(result)) << first->payload;
  EXPECT_EQ(cJSON_GetObjectItemCaseSensitive(result, "contacts_accepted")->valueint, 2) << first->payload;
  const cJSON* invalid = cJSON_GetObjectItemCaseSensitive(result, "invalid");
  ASSERT_EQ(cJSON_GetArraySize(invalid), 1) << first->payload;
  EXPECT_EQ(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(invalid, 0), "index")->valueint, 2);
  const int upload = cJSON_GetObjectItemCaseSensitive(result, "campaign_upload_id")->valueint;
  EXPECT_GT(upload, 0);
  EXPECT_EQ(cJSON_GetObjectItemCaseSensitive(result, "replayed"), nullptr);

  // The same key again, whatever the contacts: the first result, nothing imported.
  auto again = send(R"("campaign_id":7,"agent_uuid":"agent_a","idempotency_key":"sched-2026-12-02:7:001",)"
                    R"("contacts":[{"phone":"9876511111"}])",
                    "c2");
  ASSERT_TRUE(again);
  j = osvi::test::parse_json(again->payload);
  EXPECT_EQ(osvi::test::json_str(j.get(), "status"), "accepted") << again->payload;
  result = cJSON_GetObjectItemCaseSensitive(j.get(), "result");
  ASSERT_TRUE(cJSON_IsObject(result)) << again->payload;
  EXPECT_EQ(cJSON_GetObjectItemCaseSensitive(result, "campaign_upload_id")->valueint, upload);
  EXPECT_EQ(cJSON_GetObjectItemCaseSensitive(result, "contacts_accepted")->valueint, 2);
  EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "replayed"))) << again->payload;

  // Checked before anything is imported.
  auto bad = send(
      R"("campaign_id":7,"agent_uuid":"agent_a","idempotency_key":"short","contacts":[{"phone":"9876522222"}])",
      "c3");
  ASSERT_TRUE(bad);
  EXPECT_NE(bad->payload.find("\"rejected\""), std::string::npos);
  EXPECT_NE(bad->payload.find("idempotency_key: expected 8 to 128"), std::string::npos) << bad->payload;
  std::string many =
      R"("campaign_id":7,"agent_uuid":"agent_a","idempotency_key":"sched-many-0001","contacts":[)";
  for (int i = 0; i < 10001; ++i) many += i ? ",{}" : "{}";
  bad = send(many + "]", "c4");
  ASSERT_TRUE(bad);
  EXPECT_NE(bad->payload.find("contacts: expected an array of 1 to 10000"), std::string::npos)
      << bad->payload;
  bad = send(
      R"("campaign_id":99,"agent_uuid":"agent_a","idempotency_key":"sched-2026-12-02:99","contacts":[{"phone":"9876533333"}])",
      "c5");
  ASSERT_TRUE(bad);
  EXPECT_NE(bad->payload.find("\"rejected\""), std::string::npos) << bad->payload;
  EXPECT_NE(bad->payload.find("campaign_id"), std::string::npos) << bad->payload;

  d->signal(SIGTERM);
  EXPECT_EQ(d->wait_exit(10s), 0);
  // Two contacts in all: the replay imported nothing, the refused requests nothing either.
  osvi::SystemClock clock;
  osvi::daemon::StoreOptions o;
  o.path = state_ + "/osvi.db";
  auto store = osvi::daemon::Store::open(o, clock);
  ASSERT_TRUE(store.ok()) << store.error().message;
  int64_t total = -1;
  ASSERT_TRUE((*store)->campaigns().contacts(7, "", 1, 100, &total).ok());
  EXPECT_EQ(total, 2);
}

TEST_F(MqttTest, CommandTokenRejectsUnauthorizedRequests) {
  Broker broker(dir_.path(), osvi::test::free_loopback_port());
  Subscriber sub(broker.port());
  auto d = start_daemon(config_json(broker.port(), state_, R"(,"commands":{"token":"s3cret-token-0001"})"));
  ASSERT_TRUE(sub.wait_for(std::string(kPrefix) + "/birth", "online", 10s));
  const std::string p = kPrefix;
  sub.publish(p + "/cmd/dnd/req", R"({"action":"add","agent_uuid":"agent_a","phone":"+919800000002"})");
  ASSERT_TRUE(sub.wait_for(p + "/cmd/dnd/res", "unauthorized", 5s));
  sub.publish(p + "/cmd/ping/req", R"({"token":"s3cret-token-0001","correlation_id":"t"})");
  ASSERT_TRUE(sub.wait_for(p + "/cmd/ping/res", "\"accepted\"", 5s));
}

// No mqtt.commands.token: the box still reports (birth, telemetry, call records) but obeys no one, and an
// unauthenticated request cannot choose where the box publishes its answer.
TEST_F(MqttTest, WithoutACommandTokenCommandsAreRefusedAndRepliesStayHome) {
  Broker broker(dir_.path(), osvi::test::free_loopback_port());
  Subscriber sub(broker.port(), "#");
  seed_in_progress_calls(state_, 1);
  auto d = start_daemon(config_json(broker.port(), state_));
  ASSERT_TRUE(sub.wait_for(std::string(kPrefix) + "/birth", "online", 10s)) << d->stderr_text();
  ASSERT_TRUE(sub.wait([](const std::vector<Msg>& m) { return call_ids(m).size() == 1; }, 10s));
  const std::string p = kPrefix;

  sub.publish(p + "/cmd/log_level/req",
              R"({"level":"debug","reply_to":"elsewhere/inbox","correlation_id":"a"})", "elsewhere/v5",
              "corr-a");
  auto r = sub.wait_for(p + "/cmd/log_level/res", "\"correlation_id\":\"a\"", 5s);
  ASSERT_TRUE(r) << d->stderr_text();
  EXPECT_NE(r->payload.find("\"rejected\""), std::string::npos) << r->payload;
  EXPECT_NE(r->payload.find("unauthorized: no command token configured (mqtt.commands.token)"),
            std::string::npos)
      << r->payload;
  EXPECT_EQ(r->correlation, "corr-a");
  // A token in the request does not help when the box has none to compare it with.
  sub.publish(p + "/cmd/ping/req", R"({"token":"","correlation_id":"b"})");
  auto r2 = sub.wait_for(p + "/cmd/ping/res", "\"correlation_id\":\"b\"", 5s);
  ASSERT_TRUE(r2);
  EXPECT_NE(r2->payload.find("unauthorized"), std::string::npos) << r2->payload;
  // A desired configuration is a command too.
  sub.publish(p + "/cfg/desired", R"({"version":3,"config":{"site":{"id":"site1","device":"box1"}}})");
  auto rep = sub.wait_for(p + "/cfg/reported", "\"rejected\"", 5s);
  ASSERT_TRUE(rep);
  EXPECT_NE(rep->payload.find("unauthorized"), std::string::npos) << rep->payload;
  for (const Msg& m : sub.messages()) EXPECT_FALSE(m.topic.starts_with("elsewhere/")) << m.topic;
  EXPECT_FALSE(d->wait_stderr("log level set to debug", 200ms));
  d->signal(SIGTERM);
  EXPECT_EQ(d->wait_exit(10s), 0);
}

// An authenticated request may choose its reply topic only under <prefix>/reply/; anything else is refused
// (nothing acts) and answered on <prefix>/cmd/<name>/res saying why. A wrong token never redirects.
TEST_F(MqttTest, ReplyTopicsAreHonouredOnlyUnderTheBoxReplyPrefixAfterAuthentication) {
  Broker broker(dir_.path(), osvi::test::free_loopback_port());
  Subscriber sub(broker.port(), "#");
  auto d = start_daemon(config_json(broker.port(), state_, R"(,"commands":{"token":"s3cret-token-0001"})"));
  ASSERT_TRUE(sub.wait_for(std::string(kPrefix) + "/birth", "online", 10s));
  const std::string p = kPrefix;
  const std::string other = "osvi/v1/site1/box2";  // another box's tree: never written by this one

  sub.publish(p + "/cmd/log_level/req",
              R"({"token":"s3cret-token-0001","level":"debug","correlation_id":"r1","reply_to":")" + other +
                  R"(/cmd/log_level/req"})");
  auto r1 = sub.wait_for(p + "/cmd/log_level/res", "\"correlation_id\":\"r1\"", 5s);
  ASSERT_TRUE(r1) << d->stderr_text();
  EXPECT_NE(r1->payload.find("\"rejected\""), std::string::npos) << r1->payload;
  EXPECT_NE(r1->payload.find("reply_to: must lie under " + p + "/reply/"), std::string::npos) << r1->payload;

  sub.publish(p + "/cmd/ping/req", R"({"token":"s3cret-token-0001","correlation_id":"r2"})",
              other + "/status", "c");
  auto r2 = sub.wait_for(p + "/cmd/ping/res", "\"correlation_id\":\"r2\"", 5s);
  ASSERT_TRUE(r2);
  EXPECT_NE(r2->payload.find("response topic: must lie under"), std::string::npos) << r2->payload;
  // The prefix itself, a topic beside it and wildcards are not "under the reply prefix".
  int i = 0;
  for (const std::string& bad : {p + "/reply/", p + "/replyx/1", p + "/reply/+", p + "/cfg/reported"}) {
    const std::string corr = "r3-" + std::to_string(i++);
    sub.publish(p + "/cmd/ping/req", R"({"token":"s3cret-token-0001","correlation_id":")" + corr +
                                         R"(","reply_to":")" + bad + "\"}");
    auto r3 = sub.wait_for(p + "/cmd/ping/res", "\"correlation_id\":\"" + corr + "\"", 5s);
    ASSERT_TRUE(r3) << bad;
    EXPECT_NE(r3->payload.find("reply_to: must lie under"), std::string::npos) << bad << ": " << r3->payload;
  }
  // Wrong token: the answer stays on the default topic even though the reply topic would be allowed.
  sub.publish(p + "/cmd/ping/req",
              R"({"token":"wrong","correlation_id":"r4","reply_to":")" + p + R"(/reply/x"})");
  auto r4 = sub.wait_for(p + "/cmd/ping/res", "\"correlation_id\":\"r4\"", 5s);
  ASSERT_TRUE(r4);
  EXPECT_NE(r4->payload.find("unauthorized: missing or wrong token"), std::string::npos) << r4->payload;
  // The right token and an allowed topic: honoured.
  sub.publish(p + "/cmd/ping/req",
              R"({"token":"s3cret-token-0001","correlation_id":"r5","reply_to":")" + p + R"(/reply/x"})");
  auto r5 = sub.wait_for(p + "/reply/x", "\"correlation_id\":\"r5\"", 5s);
  ASSERT_TRUE(r5);
  EXPECT_NE(r5->payload.find("\"accepted\""), std::string::npos) << r5->payload;

  for (const Msg& m : sub.messages()) {
    EXPECT_FALSE(m.topic.starts_with(other)) << m.topic;
    if (m.topic == p + "/reply/x") {
      EXPECT_EQ(m.payload.find("\"r4\""), std::string::npos) << m.payload;
    }
  }
  EXPECT_FALSE(d->wait_stderr("log level set to debug", 200ms));
  d->signal(SIGTERM);
  EXPECT_EQ(d->wait_exit(10s), 0);
}

TEST_F(MqttTest, TlsWithClientCertificate) {
  if (system("command -v openssl >/dev/null 2>&1") != 0) GTEST_SKIP() << "openssl not installed";
  const std::string d0 = dir_.path();
  const std::string gen =
      "cd " + d0 +
      " && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout ca.key -out ca.crt "
      ">/dev/null 2>&1"
      " && openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout srv.key -out srv.csr >/dev/null "
      "2>&1"
      " && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost' > san.ext"
      " && openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext "
      "-out "
      "srv.crt >/dev/null 2>&1"
      " && openssl req -newkey rsa:2048 -nodes -subj /CN=box1 -keyout cli.key -out cli.csr >/dev/null 2>&1"
      " && openssl x509 -req -in cli.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -out cli.crt "
      ">/dev/null 2>&1";
  ASSERT_EQ(system(gen.c_str()), 0);
  const int plain = osvi::test::free_loopback_port();
  const int tls = osvi::test::free_loopback_port();
  Broker broker(d0, plain,
                "listener " + std::to_string(tls) + " 127.0.0.1\ncafile " + d0 + "/ca.crt\ncertfile " + d0 +
                    "/srv.crt\nkeyfile " + d0 + "/srv.key\nrequire_certificate true\n");
  Subscriber sub(plain);
  ASSERT_FALSE(HasFailure()) << osvi::test::read_file(d0 + "/broker.log");
  auto d =
      start_daemon(config_json(tls, state_,
                               R"(,"tls":{"enabled":true,"ca_file":")" + d0 + R"(/ca.crt","cert_file":")" +
                                   d0 + R"(/cli.crt","key_file":")" + d0 + R"(/cli.key"})"));
  ASSERT_TRUE(sub.wait_for(std::string(kPrefix) + "/birth", "online", 10s)) << d->stderr_text();
}

}  // namespace
