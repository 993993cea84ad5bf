// osvid as a process: READY on NOTIFY_SOCKET, reload, stop, the API's auth and envelopes, call recovery.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>

#include "daemon_process.hpp"
#include "osvi/clock.hpp"
#include "osvi/net/json.hpp"
#include "osvi/store/store.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using osvi::test::DaemonProcess;
using osvi::test::http_request;

namespace {

constexpr const char* kToken = "TestToken0123456";
constexpr const char* kLimitedToken = "LimitedToken_789";

std::string agent_json(const std::string& uuid, const std::string& name, const std::string& mode,
                       bool active) {
  return R"({"agent_uuid":")" + uuid + R"(","name":")" + name + R"(","mode":")" + mode + R"(","active":)" +
         (active ? "true" : "false") + "}";
}

std::string config_json(const std::string& state_dir, int port, const std::string& agents,
                        const std::string& level = "info") {
  return R"({"state_dir":")" + state_dir + R"(","log":{"level":")" + level + R"("},)" +
         R"("api":{"listen":"127.0.0.1:)" + std::to_string(port) + R"(","tokens":[")" + kToken +
         R"(",{"token":")" + kLimitedToken + R"(","agents":["agent_b"]}]},)" + R"("agents":[)" + agents +
         "]}";
}

std::string three_agents(const std::string& b_name = "Bravo") {
  return agent_json("agent_a", "Alpha", "voice", true) + "," + agent_json("agent_b", b_name, "voice", true) +
         "," + agent_json("agent_c", "Charlie", "voice", false) + "," +
         agent_json("agent_chat", "Chatty", "chat", true);
}

osvi::net::JsonPtr parse(const std::string& text) {
  std::string why;
  auto j = osvi::net::json_parse(text, &why);
  EXPECT_TRUE(j) << why << ": " << text;
  return j;
}

// Checks the documented error envelope: {"success":false,"errors":[...],"error":"..."}.
void expect_envelope(const osvi::test::HttpResult& r, long status, const std::string& fragment) {
  EXPECT_EQ(r.status, status) << r.body;
  auto j = parse(r.body);
  ASSERT_TRUE(j);
  EXPECT_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(j.get(), "success")));
  const cJSON* errors = cJSON_GetObjectItem(j.get(), "errors");
  ASSERT_TRUE(cJSON_IsArray(errors));
  ASSERT_EQ(cJSON_GetArraySize(errors), 1);
  const cJSON* error = cJSON_GetObjectItem(j.get(), "error");
  ASSERT_TRUE(cJSON_IsString(error));
  EXPECT_STREQ(error->valuestring, cJSON_GetArrayItem(errors, 0)->valuestring);
  EXPECT_NE(std::string(error->valuestring).find(fragment), std::string::npos) << error->valuestring;
}

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = osvi::test::free_loopback_port();
    state_ = dir_.file("state");
    cfg_path_ = dir_.file("osvid.json");
  }
  void write_config(const std::string& agents, const std::string& level = "info") {
    osvi::test::write_file(cfg_path_, config_json(state_, port_, agents, level));
  }
  std::unique_ptr<DaemonProcess> start(std::map<std::string, std::string> env = {}) {
    auto d =
        std::make_unique<DaemonProcess>(dir_.path(), std::vector<std::string>{"--config", cfg_path_}, env);
    EXPECT_TRUE(d->wait_notify("READY=1", 5s)) << d->stderr_text();
    return d;
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  osvi::test::TempDir dir_;
  int port_ = 0;
  std::string state_;
  std::string cfg_path_;
};

TEST_F(DaemonTest, ReadyOnNotifySocketThenStopsOnSigtermWithinTwoSeconds) {
  write_config(three_agents());
  auto d = start();
  bool saw_status = false;
  for (const auto& m : d->notify_messages())
    saw_status |= m.find("STATUS=Ready: API on 127.0.0.1:") != std::string::npos;
  EXPECT_TRUE(saw_status);
  // READY means the API already listens.
  EXPECT_EQ(http_request("GET", url("/v1/health"), kToken).status, 200);

  auto t0 = std::chrono::steady_clock::now();
  d->signal(SIGTERM);
  auto code = d->wait_exit(2s);
  ASSERT_TRUE(code.has_value()) << "osvid did not exit within 2 s of SIGTERM";
  EXPECT_EQ(*code, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_TRUE(d->wait_notify("STOPPING=1", 100ms));
}

TEST_F(DaemonTest, SigintAlsoStopsCleanly) {
  write_config(three_agents());
  auto d = start();
  d->signal(SIGINT);
  auto code = d->wait_exit(2s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
}

TEST_F(DaemonTest, BadConfigNeverStartsAndNamesTheKey) {
  osvi::test::write_file(cfg_path_, R"({"api":{"listen":"8080"},"state_dir":")" + state_ + R"("})");
  DaemonProcess d(dir_.path(), {"--config", cfg_path_});
  auto code = d.wait_exit(5s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  EXPECT_NE(d.stderr_text().find("api.listen"), std::string::npos) << d.stderr_text();
  for (const auto& m : d.notify_messages()) EXPECT_EQ(m.find("READY=1"), std::string::npos);
}

TEST_F(DaemonTest, CheckConfigExitCodes) {
  write_config(three_agents());
  DaemonProcess ok(dir_.path(), {"--check-config", cfg_path_});
  EXPECT_EQ(ok.wait_exit(5s), std::optional<int>(0)) << ok.stderr_text();

  const std::string bad = dir_.file("bad.json");
  osvi::test::write_file(bad, R"({"log":{"level":"loud"}})");
  DaemonProcess ko(dir_.path(), {"--check-config", bad});
  EXPECT_EQ(ko.wait_exit(5s), std::optional<int>(1));
  EXPECT_NE(ko.stderr_text().find("log.level"), std::string::npos) << ko.stderr_text();
}

TEST_F(DaemonTest, UnauthorizedWithoutOrWithWrongToken) {
  write_config(three_agents());
  auto d = start();
  expect_envelope(http_request("GET", url("/v1/active_agents"), ""), 401, "API-Token");
  expect_envelope(http_request("GET", url("/v1/active_agents"), "WrongToken012345"), 401, "invalid");
  expect_envelope(http_request("GET", url("/v1/active_agents"), std::string(kToken) + "x"), 401, "invalid");
  // Unknown paths are not revealed to unauthenticated clients either.
  expect_envelope(http_request("GET", url("/v1/nothing"), ""), 401, "API-Token");
}

TEST_F(DaemonTest, ActiveAgentsListsActiveVoiceAgentsMostRecentlyUpdatedFirst) {
  write_config(three_agents());
  auto d = start();
  auto r = http_request("GET", url("/v1/active_agents"), kToken);
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = parse(r.body);
  ASSERT_TRUE(cJSON_IsArray(j.get())) << "a bare array, no envelope: " << r.body;
  ASSERT_EQ(cJSON_GetArraySize(j.get()), 2) << r.body;
  for (const cJSON* a = j->child; a; a = a->next) {
    EXPECT_STREQ(cJSON_GetObjectItem(a, "status")->valuestring, "active");
    std::string id = cJSON_GetObjectItem(a, "agent_id")->valuestring;
    EXPECT_TRUE(id == "agent_a" || id == "agent_b") << id;
  }

  // Changing agent_b makes it the most recently updated one.
  std::this_thread::sleep_for(5ms);
  write_config(three_agents("Bravo Two"));
  d->signal(SIGHUP);
  ASSERT_TRUE(d->wait_notify("READY=1", 5s));
  r = http_request("GET", url("/v1/active_agents"), kToken);
  j = parse(r.body);
  ASSERT_EQ(cJSON_GetArraySize(j.get()), 2);
  EXPECT_STREQ(cJSON_GetObjectItem(cJSON_GetArrayItem(j.get(), 0), "agent_id")->valuestring, "agent_b");
  EXPECT_STREQ(cJSON_GetObjectItem(cJSON_GetArrayItem(j.get(), 0), "name")->valuestring, "Bravo Two");

  // A token limited to agent_b sees only agent_b.
  r = http_request("GET", url("/v1/active_agents"), kLimitedToken);
  j = parse(r.body);
  ASSERT_EQ(cJSON_GetArraySize(j.get()), 1) << r.body;
  EXPECT_STREQ(cJSON_GetObjectItem(cJSON_GetArrayItem(j.get(), 0), "agent_id")->valuestring, "agent_b");
}

TEST_F(DaemonTest, ActiveAgentsIsEmptyArrayWithoutActiveVoiceAgents) {
  write_config(agent_json("agent_b", "Bravo", "voice", false) + "," +
               agent_json("agent_chat", "Chatty", "chat", true));
  auto d = start();
  auto r = http_request("GET", url("/v1/active_agents"), kToken);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "[]");
}

TEST_F(DaemonTest, ReloadWithBrokenFileKeepsOldConfigAndServing) {
  write_config(three_agents());
  auto d = start();
  auto before = http_request("GET", url("/v1/health"), kToken);
  ASSERT_EQ(before.status, 200);

  osvi::test::write_file(cfg_path_,
                         R"({"state_dir":")" + state_ + R"(","agents":[{"agent_uuid":"bad id"}]})");
  d->signal(SIGHUP);
  ASSERT_TRUE(d->wait_notify("RELOADING=1", 5s));
  ASSERT_TRUE(d->wait_notify("READY=1", 5s));
  EXPECT_TRUE(d->wait_stderr("reload rejected", 2s));
  EXPECT_NE(d->stderr_text().find("agents[0].agent_uuid"), std::string::npos) << d->stderr_text();

  // Same token, same agents, same config hash: nothing changed.
  auto after = http_request("GET", url("/v1/health"), kToken);
  ASSERT_EQ(after.status, 200);
  auto jb = parse(before.body), ja = parse(after.body);
  auto hash = [](const cJSON* j) {
    return std::string(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "data"), "config"), "hash")
            ->valuestring);
  };
  EXPECT_EQ(hash(jb.get()), hash(ja.get()));
  auto agents = parse(http_request("GET", url("/v1/active_agents"), kToken).body);
  EXPECT_EQ(cJSON_GetArraySize(agents.get()), 2);

  // Syntax errors are rejected the same way.
  osvi::test::write_file(cfg_path_, "{ this is not json");
  d->signal(SIGHUP);
  ASSERT_TRUE(d->wait_notify("READY=1", 5s));
  EXPECT_TRUE(d->wait_stderr("line 1", 2s)) << d->stderr_text();
  EXPECT_EQ(http_request("GET", url("/v1/health"), kToken).status, 200);
}

TEST_F(DaemonTest, ReloadAppliesLogLevelAndNewListenAddress) {
  write_config(three_agents());
  auto d = start();
  int old_port = port_;
  port_ = osvi::test::free_loopback_port();
  write_config(three_agents(), "debug");
  d->signal(SIGHUP);
  ASSERT_TRUE(d->wait_notify("READY=1", 5s));
  ASSERT_TRUE(d->wait_stderr("configuration reloaded", 2s)) << d->stderr_text();
  auto r = http_request("GET", url("/v1/system/log_level"), kToken);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("\"debug\""), std::string::npos);
  EXPECT_EQ(http_request("GET", "http://127.0.0.1:" + std::to_string(old_port) + "/v1/health", kToken).status,
            0)
      << "the old address must be closed";
}

TEST_F(DaemonTest, ReloadChangingApiLimitsOnTheSameAddressKeepsServing) {
  write_config(three_agents());
  auto d = start();
  ASSERT_EQ(http_request("GET", url("/v1/health"), kToken).status, 200);
  // Same listen address, other limits: the new server takes over the listening socket instead of binding
  // it a second time (which failed with "address in use" and left the old limits in force).
  std::string cfg = config_json(state_, port_, three_agents());
  cfg.replace(cfg.find(R"("api":{)"), 7, R"("api":{"max_connections":32,"idle_timeout_s":3,)");
  osvi::test::write_file(cfg_path_, cfg);
  d->signal(SIGHUP);
  ASSERT_TRUE(d->wait_notify("READY=1", 5s));
  ASSERT_TRUE(d->wait_stderr("configuration reloaded", 2s)) << d->stderr_text();
  EXPECT_EQ(d->stderr_text().find("reload rejected"), std::string::npos) << d->stderr_text();
  EXPECT_EQ(http_request("GET", url("/v1/health"), kToken).status, 200);
}

TEST_F(DaemonTest, ErrorEnvelopes) {
  write_config(three_agents());
  auto d = start();
  expect_envelope(http_request("GET", url("/v1/no_such_thing"), kToken), 404, "no such endpoint");
  auto r = http_request("POST", url("/v1/active_agents"), kToken, "{}");
  expect_envelope(r, 405, "not allowed");
  EXPECT_NE(r.headers.find("Allow: GET"), std::string::npos) << r.headers;
  expect_envelope(http_request("POST", url("/v1/system/log_level"), kToken, "{\"level\": "), 422,
                  "not valid JSON");
  expect_envelope(http_request("POST", url("/v1/system/log_level"), kToken, "[1,2]"), 422, "JSON object");
  expect_envelope(http_request("POST", url("/v1/system/log_level"), kToken, "{\"level\":\"loud\"}"), 422,
                  "level");
  // A bad request changes nothing.
  EXPECT_NE(http_request("GET", url("/v1/system/log_level"), kToken).body.find("\"info\""),
            std::string::npos);
  // Limited tokens may not change system settings.
  expect_envelope(http_request("PUT", url("/v1/system/log_level"), kLimitedToken, "{\"level\":\"debug\"}"),
                  403, "may not");
  // Bodies above api.max_body_bytes (default 4 MiB) are refused with 413 before they are read.
  expect_envelope(
      http_request("POST", url("/v1/system/log_level"), kToken, std::string(5 * 1024 * 1024, ' ')), 413,
      "limit");
  // And the valid request works.
  r = http_request("PUT", url("/v1/system/log_level"), kToken, "{\"level\":\"debug\"}");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("\"previous\":\"info\""), std::string::npos) << r.body;
}

TEST_F(DaemonTest, HealthReportsVersionUptimeAndDatabase) {
  write_config(three_agents());
  auto d = start();
  auto r = http_request("GET", url("/v1/health"), kToken);
  ASSERT_EQ(r.status, 200);
  auto j = parse(r.body);
  EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(j.get(), "success")));
  const cJSON* data = cJSON_GetObjectItem(j.get(), "data");
  EXPECT_TRUE(cJSON_IsString(cJSON_GetObjectItem(data, "version")));
  EXPECT_TRUE(cJSON_IsNumber(cJSON_GetObjectItem(data, "uptime_seconds")));
  const cJSON* db = cJSON_GetObjectItem(data, "database");
  EXPECT_STREQ(cJSON_GetObjectItem(db, "state")->valuestring, "ok");
  EXPECT_EQ(cJSON_GetObjectItem(db, "schema_version")->valueint,
            osvi::daemon::Database::latest_schema_version());
  EXPECT_EQ(std::string(cJSON_GetObjectItem(db, "path")->valuestring), state_ + "/osvi.db");
}

TEST_F(DaemonTest, GeneratesPrivateTokenFileWhenNoTokensConfigured) {
  osvi::test::write_file(cfg_path_, R"({"state_dir":")" + state_ + R"(","api":{"listen":"127.0.0.1:)" +
                                        std::to_string(port_) + R"("}})");
  std::string token;
  {
    auto d = start();
    token = osvi::test::read_file(state_ + "/api-token");
    while (!token.empty() && token.back() == '\n') token.pop_back();
    ASSERT_EQ(token.size(), 16u);
    struct stat st {};
    ASSERT_EQ(stat((state_ + "/api-token").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(http_request("GET", url("/v1/health"), token).status, 200);
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait_exit(2s), std::optional<int>(0));
  }
  // The token survives restarts.
  auto d = start();
  EXPECT_EQ(http_request("GET", url("/v1/health"), token).status, 200);
}

TEST_F(DaemonTest, CallsLeftInProgressAreClosedAtStart) {
  write_config(three_agents());
  ::mkdir(state_.c_str(), 0750);
  osvi::ManualClock clock;
  {
    osvi::daemon::StoreOptions o;
    o.path = state_ + "/osvi.db";
    auto store = osvi::daemon::Store::open(o, clock);
    ASSERT_TRUE(store) << store.error().message;
    osvi::daemon::CallRecord c;
    c.call_id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    c.agent_uuid = "agent_a";
    c.agent_name = "Alpha";
    c.phone_number = "+919876543210";
    c.status = "in_progress";
    c.call_type = "outbound";
    c.created_at_ms = clock.wall_ms();
    ASSERT_TRUE((*store)->calls().insert(c));
  }
  {
    auto d = start();
    EXPECT_TRUE(d->wait_stderr("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", 2s)) << d->stderr_text();
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait_exit(2s), std::optional<int>(0));
  }
  osvi::daemon::StoreOptions o;
  o.path = state_ + "/osvi.db";
  auto store = osvi::daemon::Store::open(o, clock);
  ASSERT_TRUE(store);
  auto call = (*store)->calls().get("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
  ASSERT_TRUE(call && call->has_value());
  EXPECT_EQ((*call)->status, "failed");
  EXPECT_EQ((*call)->call_ended_reason, std::optional<std::string>("daemon_restart"));
}

TEST_F(DaemonTest, WatchdogIsPingedWhenRequested) {
  write_config(three_agents());
  auto d = start({{"WATCHDOG_USEC", "200000"}, {"WATCHDOG_PID", "self"}});
  EXPECT_TRUE(d->wait_notify("WATCHDOG=1", 2s));
}

}  // namespace
