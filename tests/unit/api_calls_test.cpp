// The calls API through a real in-process HTTP server and a fake CallService: every calls endpoint.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "osvi/api/api.hpp"
#include "osvi/base/secret.hpp"
#include "osvi/calls/call_service.hpp"
#include "osvi/clock.hpp"
#include "osvi/config/config.hpp"
#include "osvi/net/http_server.hpp"
#include "osvi/net/json.hpp"
#include "osvi/store/store.hpp"
#include "served_http.hpp"
#include "test_support.hpp"

namespace osvi::daemon {
namespace {

constexpr int64_t kT0 = 1'780'000'000'000;
constexpr const char* kTok = "TokAll0123456789";
constexpr const char* kTokB = "TokB012345678901";  // limited to agent_b
constexpr int64_t kMidnightJun1Ist = 1'780'252'200'000;
constexpr int64_t kMidnightJun3Ist = 1'780'425'000'000;

class FakeCalls : public CallService {
 public:
  Result<std::string> place_call(const PlaceCallRequest& request) override {
    requests.push_back(request);
    if (fail_with != 0) return make_error("fake failure", fail_with);
    return std::string("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
  }
  size_t idle_lines() const override { return 0; }
  bool dials_extensions() const override { return sip_line; }
  int add_finished_listener(CallFinishedListener) override { return 0; }
  void remove_finished_listener(int) override {}
  std::vector<PlaceCallRequest> requests;
  int fail_with = 0;
  bool sip_line = false;
};

struct Reply {
  long status = 0;
  std::string body, headers;
  net::JsonPtr json;
  const cJSON* get(const char* name) const { return cJSON_GetObjectItemCaseSensitive(json.get(), name); }
  const cJSON* data() const { return get("data"); }
  std::string error() const {
    const cJSON* e = get("error");
    return cJSON_IsString(e) ? e->valuestring : "";
  }
};

std::string str(const cJSON* o, const char* name) {
  const cJSON* v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsString(v) ? v->valuestring : (cJSON_IsNull(v) ? "<null>" : "<missing>");
}

double num(const cJSON* o, const char* name) {
  const cJSON* v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

class ApiCalls : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::open(StoreOptions{dir_.file("osvi.db")}, clock_);
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(*s);
    std::vector<AgentRecord> agents = {
        {0, "agent_a", "Alpha", "voice", true, false, "{}", "", 0, 0},
        {0, "agent_b", "Bravo", "voice", true, false, "{}", "", 0, 0},
        {0, "agent_chat", "Chat", "chat", true, false, "{}", "", 0, 0},
        {0, "agent_off", "Off", "voice", false, false, "{}", "", 0, 0},
    };
    ASSERT_TRUE(store_->agents().sync(agents).ok());
    config_.site.utc_offset_minutes = 330;
    tokens_ = {ApiToken{kTok, {}, true}, ApiToken{kTokB, {"agent_b"}, false}};
    ctx_.config = &config_;
    ctx_.tokens = &tokens_;
    ctx_.store = store_.get();
    ctx_.clock = &clock_;
    ctx_.calls = &calls_;
    ctx_.recording_key = "0123456789abcdef0123456789abcdef";
    ctx_.recordings_dir = dir_.path();
    ctx_.listen = "127.0.0.1:1";
    api_ = std::make_unique<Api>(ctx_);

    net::HttpServerOptions o;
    o.port = 0;
    Status started = served_.start(
        o, [this](net::HttpRequest& req, net::HttpReply reply) { api_->handle(req, std::move(reply)); });
    ASSERT_TRUE(started.ok()) << started.error().message;
    port_ = served_.port();
  }
  void TearDown() override { served_.stop(); }

  void locked(const std::function<void()>& fn) { served_.locked(fn); }

  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  Reply request(const std::string& method, const std::string& path, const std::string& body = {},
                const std::string& token = kTok) {
    auto r = test::http_request(method, path.starts_with("http") ? path : url(path), token, body);
    Reply out{r.status, r.body, r.headers, nullptr};
    std::string why;
    out.json = net::json_parse(out.body, &why);
    return out;
  }

  void add_call(CallRecord c) {
    locked([&] { ASSERT_TRUE(store_->calls().insert(c).ok()) << c.call_id; });
  }

  test::TempDir dir_;
  ManualClock clock_{kT0};
  std::unique_ptr<Store> store_;
  Config config_;
  std::vector<ApiToken> tokens_;
  FakeCalls calls_;
  ApiContext ctx_;
  std::unique_ptr<Api> api_;
  test::ServedHttp served_;
  uint16_t port_ = 0;
};

CallRecord make_call(const std::string& id, const std::string& agent, int64_t created) {
  CallRecord c;
  c.call_id = id;
  c.agent_uuid = agent;
  c.agent_name = agent == "agent_a" ? "Alpha" : "Bravo";
  c.phone_number = "+919876543210";
  c.from_number = "+918000000001";
  c.status = "picked";
  c.created_at_ms = created;
  return c;
}

std::string uuid(int n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "0190a1b2-c3d4-7e5f-8a9b-%012d", n);
  return buf;
}

// --- POST /v1/call ---

TEST_F(ApiCalls, TokenIsRequired) {
  EXPECT_EQ(request("POST", "/v1/call", "{}", "").status, 401);
  EXPECT_EQ(request("POST", "/v1/call", "{}", "WrongToken012345").status, 401);
  EXPECT_EQ(request("GET", "/v1/calls", "", "").status, 401);
  EXPECT_EQ(request("GET", "/v1/call/" + uuid(1) + "/recording", "", "").status, 401);
}

TEST_F(ApiCalls, EveryValidationFailureIs400NamingTheField) {
  const std::string base = R"("agent_uuid":"agent_a","phone_number":"9876543210","country_code":"IN")";
  const std::string big(2001, 'g');
  struct Case {
    std::string body, field;
  };
  const std::vector<Case> cases = {
      {"not json", "not valid JSON"},
      {"[1,2]", "must be a JSON object"},
      {R"({"phone_number":"9876543210","country_code":"IN"})", "agent_uuid: required"},
      {R"({"agent_uuid":"agent_a","country_code":"IN"})", "phone_number: required"},
      {R"({"agent_uuid":"agent_a","phone_number":"9876543210"})", "country_code: required"},
      {R"({"agent_uuid":5,"phone_number":"9876543210","country_code":"IN"})", "agent_uuid: must be a string"},
      {R"({"agent_uuid":"agent_a","phone_number":9876543210,"country_code":"IN"})",
       "phone_number: must be a string"},
      {R"({"agent_uuid":"agent_a","phone_number":"9876543210","country_code":"XX"})",
       "country_code: unknown country code \"XX\""},
      {R"({"agent_uuid":"agent_a","phone_number":"98765","country_code":"IN"})", "phone_number: "},
      {R"({"agent_uuid":"agent_a","phone_number":"98765abcde","country_code":"IN"})",
       "phone_number: must contain digits only"},
      {"{" + base + R"(,"initial_greeting":")" + big + "\"}", "initial_greeting: longer than 2000"},
      {"{" + base + R"(,"initial_greeting":7})", "initial_greeting: must be a string"},
      {"{" + base + R"(,"webhook_url":"ftp://x.example/h"})", "webhook_url"},
      {"{" + base + R"(,"webhook_url":"https://"})", "webhook_url"},
      {"{" + base + R"(,"webhook_url":"https:///path"})", "webhook_url"},
      {"{" + base + R"(,"webhook_url":"http://host:99999/"})", "webhook_url"},
      {"{" + base + R"(,"additional_data":[1]})", "additional_data: must be an object"},
      {"{" + base + R"(,"additional_data":"x"})", "additional_data: must be an object"},
      {"{" + base + R"(,"system_prompt":{}})", "system_prompt: must be a string"},
      {"{" + base + R"(,"person_name":1})", "person_name: must be a string"},
      {"{" + base + R"(,"call_config_overrides":[]})", "call_config_overrides: must be an object"},
      {"{" + base + R"(,"call_config_overrides":{"max_call_duration_seconds":9}})",
       "call_config_overrides.max_call_duration_seconds"},
      {"{" + base + R"(,"call_config_overrides":{"max_call_duration_seconds":3601}})",
       "call_config_overrides.max_call_duration_seconds"},
      {"{" + base + R"(,"call_config_overrides":{"max_call_duration_seconds":30.5}})",
       "call_config_overrides.max_call_duration_seconds"},
      {"{" + base + R"(,"call_config_overrides":{"max_call_duration_seconds":"60"}})",
       "call_config_overrides.max_call_duration_seconds"},
      {"{" + base + R"(,"call_config_overrides":{"enable_callback":"yes"}})",
       "call_config_overrides.enable_callback"},
      {"{" + base + R"(,"call_config_overrides":{"retry_config":true}})",
       "call_config_overrides.retry_config"},
      {"{" + base + R"(,"call_config_overrides":{"retry_config":{"enabled":1}}})",
       "call_config_overrides.retry_config.enabled"},
      {"{" + base + R"(,"call_config_overrides":{"retry_config":{"max_attempts":6}}})",
       "call_config_overrides.retry_config.max_attempts"},
      {"{" + base + R"(,"call_config_overrides":{"retry_config":{"max_attempts":0}}})",
       "call_config_overrides.retry_config.max_attempts"},
      {"{" + base + R"(,"call_config_overrides":{"retry_config":{"interval_minutes":1441}}})",
       "call_config_overrides.retry_config.interval_minutes"},
      {"{" + base + R"(,"data_extraction":{}})", "data_extraction: must be an array"},
      {"{" + base + R"(,"data_extraction":["x"]})", "data_extraction[0]: must be an object"},
      {"{" + base + R"(,"data_extraction":[{"key":""}]})", "data_extraction[0].key"},
      {"{" + base + R"(,"data_extraction":[{"description":"d"}]})", "data_extraction[0].key"},
      {"{" + base + R"(,"data_extraction":[{"key":"a","required":"yes"}]})", "data_extraction[0].required"},
      {"{" + base + R"(,"data_extraction":[{"key":"a","description":3}]})", "data_extraction[0].description"},
      {"{" + base + R"(,"data_extraction":[{"key":"a"},{"key":"b","output_format":[]}]})",
       "data_extraction[1].output_format"},
      {"{" + base + R"(,"data_extraction":[{"key":"a"},{"key":"a"}]})", "data_extraction[1].key: duplicate"},
      {R"({"agent_uuid":"agent_nope","phone_number":"9876543210","country_code":"IN"})",
       "agent_uuid: \"agent_nope\" is not an active voice agent"},
      {R"({"agent_uuid":"agent_chat","phone_number":"9876543210","country_code":"IN"})",
       "is not an active voice agent"},
      {R"({"agent_uuid":"agent_off","phone_number":"9876543210","country_code":"IN"})",
       "is not an active voice agent"},
  };
  for (const Case& c : cases) {
    Reply r = request("POST", "/v1/call", c.body);
    EXPECT_EQ(r.status, 400) << c.body.substr(0, 120) << " -> " << r.body;
    EXPECT_NE(r.error().find(c.field), std::string::npos) << c.field << " in " << r.body;
    EXPECT_EQ(cJSON_IsFalse(r.get("success")), 1) << r.body;
  }
  locked([&] { EXPECT_TRUE(calls_.requests.empty()); });
}

TEST_F(ApiCalls, SuccessPassesTheNormalisedRequestToTheEngine) {
  const std::string body =
      R"({"agent_uuid":"agent_a","phone_number":"98765 43210","country_code":"in","person_name":"Ravi",)"
      R"("system_prompt":"Be brief","initial_greeting":"Namaste","webhook_url":"https://hooks.example:8443/x?a=1",)"
      R"("additional_data":{"order":"A1"},"unknown_key":[1],"call_config_overrides":{"max_call_duration_seconds":300,)"
      R"("enable_callback":false,"retry_config":{"enabled":true,"max_attempts":2,"interval_minutes":30}},)"
      R"("data_extraction":[{"key":"email","description":"their email","required":true,"output_format":"email"}]})";
  Reply r = request("POST", "/v1/call", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(cJSON_IsTrue(r.get("success")), 1);
  EXPECT_EQ(str(r.data(), "call_id"), "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
  locked([&] {
    ASSERT_EQ(calls_.requests.size(), 1u);
    const PlaceCallRequest& p = calls_.requests[0];
    EXPECT_EQ(p.agent_uuid, "agent_a");
    EXPECT_EQ(p.phone_e164, "+919876543210");
    EXPECT_EQ(p.person_name, std::optional<std::string>("Ravi"));
    EXPECT_EQ(p.system_prompt, std::optional<std::string>("Be brief"));
    EXPECT_EQ(p.initial_greeting, std::optional<std::string>("Namaste"));
    EXPECT_EQ(p.webhook_url, std::optional<std::string>("https://hooks.example:8443/x?a=1"));
    EXPECT_EQ(p.additional_data, std::optional<std::string>(R"({"order":"A1"})"));
    EXPECT_EQ(p.max_call_duration_seconds, std::optional<int64_t>(300));
    EXPECT_EQ(p.enable_callback, std::optional<bool>(false));
    EXPECT_EQ(p.call_config_overrides,
              std::optional<std::string>(
                  R"({"max_call_duration_seconds":300,"enable_callback":false,)"
                  R"("retry_config":{"enabled":true,"max_attempts":2,"interval_minutes":30}})"));
    EXPECT_EQ(p.data_extraction, std::optional<std::string>(R"([{"key":"email","description":"their email",)"
                                                            R"("required":true,"output_format":"email"}])"));
    // The request as received, compact (unknown keys included).
    std::string why;
    auto compact = net::json_print(net::json_parse(body, &why).get());
    EXPECT_EQ(p.call_trigger_data, std::optional<std::string>(compact));
    EXPECT_EQ(p.source, "api");
  });
}

// A PBX extension (1-15 of 0-9 * #) is dialled as given when the box has a SIP line, refused with a 400 that
// says why when it has none; a number that normalises to E.164 stays E.164 either way.
TEST_F(ApiCalls, PbxExtensionsNeedASipLine) {
  auto body = [](const std::string& phone) {
    return R"({"agent_uuid":"agent_a","phone_number":")" + phone + R"(","country_code":"IN"})";
  };
  Reply r = request("POST", "/v1/call", body("201"));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.error().find("phone_number: "), std::string::npos) << r.body;
  EXPECT_NE(r.error().find("\"201\" could be a PBX extension, but this box has no SIP line to dial one"),
            std::string::npos)
      << r.body;
  locked([&] { EXPECT_TRUE(calls_.requests.empty()); });

  locked([&] { calls_.sip_line = true; });
  for (const std::string ext : {"201", "*97", "#31#", "0", "123456789012345"}) {
    r = request("POST", "/v1/call", body(ext));
    EXPECT_EQ(r.status, 200) << ext << " -> " << r.body;
  }
  // Not extensions: a '+' that is no E.164 number, letters, too long, blanks inside, empty.
  for (const std::string bad : {"+201", "20a", "1234567890123456", "2 01", "2-01"}) {
    r = request("POST", "/v1/call", body(bad));
    EXPECT_EQ(r.status, 400) << bad << " -> " << r.body;
    EXPECT_NE(r.error().find("phone_number: "), std::string::npos) << r.body;
  }
  r = request("POST", "/v1/call", body("98765 43210"));
  EXPECT_EQ(r.status, 200) << r.body;
  locked([&] {
    ASSERT_EQ(calls_.requests.size(), 6u);
    EXPECT_EQ(calls_.requests[0].phone_e164, "201");
    EXPECT_EQ(calls_.requests[1].phone_e164, "*97");
    EXPECT_EQ(calls_.requests[2].phone_e164, "#31#");
    EXPECT_EQ(calls_.requests[5].phone_e164, "+919876543210");  // still normalised, not an extension
  });
  // The engine refuses an extension when its SIP line went away meanwhile: 400 with its message.
  locked([&] { calls_.fail_with = -EPROTONOSUPPORT; });
  r = request("POST", "/v1/call", body("201"));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.error(), "fake failure");
}

TEST_F(ApiCalls, AdditionalDataAndTriggerDataAreBounded) {
  const std::string base = R"("agent_uuid":"agent_a","phone_number":"9876543210","country_code":"IN")";
  // additional_data: the limit itself passes, one byte more is a 400 naming the field.
  auto data_of = [](size_t bytes) {
    // {"k":"xxx…"} is 8 bytes of JSON around the value.
    return R"({"k":")" + std::string(bytes - 8, 'x') + "\"}";
  };
  Reply ok = request("POST", "/v1/call",
                     "{" + base + R"(,"additional_data":)" + data_of(kMaxAdditionalDataBytes) + "}");
  EXPECT_EQ(ok.status, 200) << ok.body.substr(0, 200);
  Reply big = request("POST", "/v1/call",
                      "{" + base + R"(,"additional_data":)" + data_of(kMaxAdditionalDataBytes + 1) + "}");
  EXPECT_EQ(big.status, 400) << big.body.substr(0, 200);
  EXPECT_NE(big.error().find("additional_data: 16385 bytes"), std::string::npos) << big.body.substr(0, 200);
  EXPECT_NE(big.error().find("limit of 16384"), std::string::npos) << big.body.substr(0, 200);
  // The whole request is stored as call_trigger_data: over its bound is a 413, nothing placed.
  Reply huge = request("POST", "/v1/call",
                       "{" + base + R"(,"notes":")" + std::string(kMaxTriggerDataBytes, 'n') + "\"}");
  EXPECT_EQ(huge.status, 413) << huge.body.substr(0, 200);
  EXPECT_NE(huge.error().find("call_trigger_data"), std::string::npos) << huge.body.substr(0, 200);
  EXPECT_EQ(cJSON_IsFalse(huge.get("success")), 1);
  locked([&] { EXPECT_EQ(calls_.requests.size(), 1u); });
}

TEST_F(ApiCalls, NullOptionalsCountAsAbsentAndGreetingCountsCharactersNotBytes) {
  // 2000 Devanagari characters are 6000 bytes but within the limit.
  std::string greeting;
  for (int i = 0; i < 2000; ++i) greeting += "\xe0\xa4\xa8";
  Reply r = request("POST", "/v1/call",
                    R"({"agent_uuid":"agent_a","phone_number":"9876543210","country_code":"IN",)"
                    R"("webhook_url":null,"additional_data":null,"initial_greeting":")" +
                        greeting + "\"}");
  ASSERT_EQ(r.status, 200) << r.body;
  locked([&] {
    ASSERT_EQ(calls_.requests.size(), 1u);
    EXPECT_FALSE(calls_.requests[0].webhook_url);
    EXPECT_FALSE(calls_.requests[0].additional_data);
    EXPECT_FALSE(calls_.requests[0].call_config_overrides);
  });
}

TEST_F(ApiCalls, TokenLimitedToOtherAgentsGets403) {
  const std::string body = R"({"agent_uuid":"agent_a","phone_number":"9876543210","country_code":"IN"})";
  Reply r = request("POST", "/v1/call", body, kTokB);
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_NE(r.error().find("agent_uuid"), std::string::npos);
  EXPECT_EQ(request("POST", "/call", body, kTokB).status, 403);
  Reply ok = request("POST", "/v1/call",
                     R"({"agent_uuid":"agent_b","phone_number":"9876543210","country_code":"IN"})", kTokB);
  EXPECT_EQ(ok.status, 200) << ok.body;
}

// System endpoints belong to whoever administers the box: a token limited to some agents may learn that the
// box is up and its version, nothing of its lines, database, configuration, broker or log level.
TEST_F(ApiCalls, TokenLimitedToSomeAgentsDoesNotReachSystemEndpoints) {
  Reply full = request("GET", "/v1/health");
  ASSERT_EQ(full.status, 200) << full.body;
  EXPECT_NE(full.body.find("\"database\""), std::string::npos) << full.body;
  EXPECT_NE(full.body.find("\"lines\""), std::string::npos) << full.body;
  EXPECT_NE(full.body.find("\"upstreams\":[]"), std::string::npos) << "none contacted: " << full.body;

  Reply h = request("GET", "/v1/health", {}, kTokB);
  ASSERT_EQ(h.status, 200) << h.body;
  const cJSON* data = cJSON_GetObjectItemCaseSensitive(h.json.get(), "data");
  ASSERT_TRUE(cJSON_IsObject(data)) << h.body;
  EXPECT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(data, "status")), "ok");
  EXPECT_TRUE(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(data, "version"))) << h.body;
  EXPECT_EQ(cJSON_GetArraySize(data), 2) << "only status and version: " << h.body;

  EXPECT_EQ(request("GET", "/v1/system/log_level", {}, kTokB).status, 403);
  EXPECT_EQ(request("PUT", "/v1/system/log_level", R"({"level":"debug"})", kTokB).status, 403);
  EXPECT_EQ(request("POST", "/v1/system/log_level", R"({"level":"debug"})", kTokB).status, 403);
  EXPECT_EQ(request("GET", "/v1/system/log_level").status, 200);
}

// The console's Box page shows each model service's breaker from /v1/health (as the fleet's telemetry does).
TEST_F(ApiCalls, HealthListsTheUpstreamBreakers) {
  locked([&] {
    ctx_.upstreams = [] {
      return std::vector<net::BreakerState>{{"http://127.0.0.1:8090/v1", "open", 5},
                                            {"http://10.0.0.2/v1", "closed", 0}};
    };
  });
  Reply r = request("GET", "/v1/health");
  ASSERT_EQ(r.status, 200) << r.body;
  const cJSON* ups =
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r.json.get(), "data"), "upstreams");
  ASSERT_EQ(cJSON_GetArraySize(ups), 2) << r.body;
  const cJSON* first = cJSON_GetArrayItem(ups, 0);
  EXPECT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "base_url")),
               "http://127.0.0.1:8090/v1");
  EXPECT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "breaker")), "open");
  EXPECT_EQ(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(first, "failures")), 5);
  // A token limited to some agents learns nothing of them.
  Reply limited = request("GET", "/v1/health", {}, kTokB);
  EXPECT_EQ(limited.body.find("upstreams"), std::string::npos) << limited.body;
  locked([&] { ctx_.upstreams = nullptr; });
}

// The control loop's dispatch latency (base/loop_latency.hpp) is in health, in ms, with its window.
TEST_F(ApiCalls, HealthShowsTheLoopLatency) {
  Reply none = request("GET", "/v1/health");
  ASSERT_EQ(none.status, 200) << none.body;
  EXPECT_EQ(none.body.find("\"loop\""), std::string::npos) << "no probe, no object: " << none.body;
  locked([&] { ctx_.loop_latency = [] { return LoopLatencySnapshot{2950, 180, 4250, 31000, 60}; }; });
  Reply r = request("GET", "/v1/health");
  ASSERT_EQ(r.status, 200) << r.body;
  const cJSON* loop =
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r.json.get(), "data"), "loop");
  ASSERT_NE(loop, nullptr) << r.body;
  const cJSON* lat = cJSON_GetObjectItemCaseSensitive(loop, "latency_ms");
  EXPECT_DOUBLE_EQ(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(lat, "p50")), 0.18);
  EXPECT_DOUBLE_EQ(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(lat, "p99")), 4.25);
  EXPECT_DOUBLE_EQ(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(lat, "max")), 31.0);
  EXPECT_EQ(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(loop, "window_s")), 60);
  EXPECT_EQ(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(loop, "samples")), 2950);
  EXPECT_EQ(request("GET", "/v1/health", {}, kTokB).body.find("\"loop\""), std::string::npos);
  locked([&] { ctx_.loop_latency = nullptr; });
}

// The calls engine's live calls, queue and audio xruns (the telemetry's live_calls/xruns) are in health.
TEST_F(ApiCalls, HealthShowsCallsAndXruns) {
  Reply none = request("GET", "/v1/health");
  ASSERT_EQ(none.status, 200) << none.body;
  EXPECT_EQ(none.body.find("\"xruns\""), std::string::npos) << "no engine, no object: " << none.body;
  locked([&] { ctx_.calls_health = [] { return CallsHealth{3, 1, 8, 7}; }; });
  Reply r = request("GET", "/v1/health");
  ASSERT_EQ(r.status, 200) << r.body;
  const cJSON* c =
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r.json.get(), "data"), "calls");
  ASSERT_NE(c, nullptr) << r.body;
  EXPECT_EQ(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(c, "live")), 3);
  EXPECT_EQ(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(c, "queued")), 1);
  EXPECT_EQ(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(c, "xruns")), 7);
  EXPECT_EQ(request("GET", "/v1/health", {}, kTokB).body.find("\"xruns\""), std::string::npos);
  locked([&] { ctx_.calls_health = nullptr; });
}

TEST_F(ApiCalls, EngineErrorsAreMapped) {
  const std::string body = R"({"agent_uuid":"agent_a","phone_number":"9876543210","country_code":"IN"})";
  struct Case {
    int code;
    long status;
    std::string text;
  };
  for (const Case& c :
       {Case{-EPERM, 400, "phone_number is on the do-not-disturb list of this agent"},
        Case{-ENOENT, 400, "agent_uuid: \"agent_a\" is not an active voice agent"}, Case{-EBUSY, 503, "busy"},
        Case{-ENODEV, 503, "no line"}, Case{-EIO, 500, "could not"}}) {
    locked([&] { calls_.fail_with = c.code; });
    Reply r = request("POST", "/v1/call", body);
    EXPECT_EQ(r.status, c.status) << c.code << " " << r.body;
    EXPECT_NE(r.error().find(c.text), std::string::npos) << r.body;
    const bool retry_after = r.headers.find("Retry-After: 30") != std::string::npos;
    EXPECT_EQ(retry_after, c.code == -EBUSY) << r.headers;
  }
  locked([&] { ctx_.calls = nullptr; });
  Reply r = request("POST", "/v1/call", body);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.error(), "calls engine not available");
}

TEST_F(ApiCalls, LegacyCallAnswersBothShapesAndIgnoresV1OnlyFields) {
  Reply r = request("POST", "/call",
                    R"({"agent_uuid":"agent_a","phone_number":"9876543210","country_code":"IN",)"
                    R"("initial_greeting":7,"call_config_overrides":"x","additional_data":{"k":1}})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(cJSON_IsTrue(r.get("success")), 1);
  EXPECT_EQ(str(r.data(), "call_id"), "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
  EXPECT_EQ(str(r.json.get(), "status"), "success");
  EXPECT_EQ(str(r.json.get(), "message"), "Call initiated successfully");
  EXPECT_EQ(str(r.json.get(), "call_id"), "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
  locked([&] {
    ASSERT_EQ(calls_.requests.size(), 1u);
    EXPECT_EQ(calls_.requests[0].source, "legacy_api");
    EXPECT_FALSE(calls_.requests[0].initial_greeting);
    EXPECT_FALSE(calls_.requests[0].call_config_overrides);
    EXPECT_EQ(calls_.requests[0].additional_data, std::optional<std::string>(R"({"k":1})"));
  });
  Reply bad = request("POST", "/call", R"({"agent_uuid":"agent_a","country_code":"IN"})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.error(), "phone_number: required");
  EXPECT_EQ(request("POST", "/call", "nope").status, 400);
  // Elsewhere a bad body stays 422.
  EXPECT_EQ(request("PUT", "/v1/system/log_level", "nope").status, 422);
}

// --- GET /v1/calls ---

std::vector<std::string> ids_of(const Reply& r) {
  std::vector<std::string> out;
  const cJSON* item = nullptr;
  cJSON_ArrayForEach(item, r.data()) out.push_back(str(item, "call_id"));
  return out;
}

TEST_F(ApiCalls, ListFiltersAndSummaryShape) {
  CallRecord c1 = make_call(uuid(1), "agent_a", kT0 + 1000);
  c1.tag_id = 3;
  c1.tag_name = "Hot lead";
  c1.tag_color_code = "#22c55e";
  c1.call_picked_at_ms = kT0 + 2000;
  c1.call_ended_by = "agent";
  c1.call_ended_reason = "assistant-ended-call";
  c1.duration_seconds = 42;
  c1.campaign_id = 7;
  c1.campaign_upload_id = 70;
  add_call(c1);
  CallRecord c2 = make_call(uuid(2), "agent_b", kT0 + 2000);
  c2.status = "not_picked";
  c2.phone_number = "+12015550123";
  add_call(c2);
  CallRecord c3 = make_call(uuid(3), "agent_a", kT0 + 3000);
  c3.status = "busy";
  c3.call_type = "inbound";
  add_call(c3);

  Reply all = request("GET", "/v1/calls");
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(ids_of(all), (std::vector<std::string>{uuid(3), uuid(2), uuid(1)}));
  const cJSON* s1 = cJSON_GetArrayItem(all.data(), 2);
  EXPECT_EQ(str(s1, "agent_uuid"), "agent_a");
  EXPECT_EQ(str(s1, "agent_name"), "Alpha");
  EXPECT_EQ(str(s1, "phone_number"), "+919876543210");
  EXPECT_EQ(str(s1, "from_number"), "+918000000001");
  EXPECT_EQ(str(s1, "status"), "picked");
  EXPECT_EQ(str(s1, "call_type"), "outbound");
  EXPECT_EQ(num(s1, "duration_seconds"), 42);
  EXPECT_EQ(str(s1, "call_ended_by"), "agent");
  EXPECT_EQ(str(s1, "call_ended_reason"), "assistant-ended-call");
  EXPECT_EQ(num(s1, "campaign_id"), 7);
  EXPECT_EQ(num(s1, "campaign_upload_id"), 70);
  const cJSON* tag = cJSON_GetObjectItemCaseSensitive(s1, "tag");
  EXPECT_EQ(num(tag, "id"), 3);
  EXPECT_EQ(str(tag, "name"), "Hot lead");
  EXPECT_EQ(str(tag, "color_code"), "#22c55e");
  EXPECT_EQ(str(s1, "created_at"), "2026-05-29T01:56:41+05:30");
  EXPECT_EQ(str(s1, "call_picked_at"), "2026-05-29T01:56:42+05:30");
  const cJSON* s2 = cJSON_GetArrayItem(all.data(), 1);
  EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(s2, "tag")));
  EXPECT_EQ(str(s2, "call_picked_at"), "<null>");
  EXPECT_EQ(str(s2, "call_ended_by"), "<null>");
  EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(s2, "campaign_id")));

  EXPECT_EQ(ids_of(request("GET", "/v1/calls?status=busy,not_picked")),
            (std::vector<std::string>{uuid(3), uuid(2)}));
  EXPECT_EQ(ids_of(request("GET", "/v1/calls?status=picked")), (std::vector<std::string>{uuid(1)}));
  EXPECT_EQ(ids_of(request("GET", "/v1/calls?phone_number=55501")), (std::vector<std::string>{uuid(2)}));
  EXPECT_EQ(ids_of(request("GET", "/v1/calls?phone_number=98765%2043210")),
            (std::vector<std::string>{uuid(3), uuid(1)}));
  EXPECT_EQ(ids_of(request("GET", "/v1/calls?call_type=inbound")), (std::vector<std::string>{uuid(3)}));
  EXPECT_EQ(ids_of(request("GET", "/v1/calls?agent_uuid=agent_b")), (std::vector<std::string>{uuid(2)}));
  EXPECT_EQ(ids_of(request("GET", "/v1/calls?campaign_id=7&campaign_upload_id=70")),
            (std::vector<std::string>{uuid(1)}));
  EXPECT_EQ(ids_of(request("GET", "/v1/calls?campaign_upload_id=71")), std::vector<std::string>{});

  // A limited token sees only its agents' calls, and may not ask for another agent.
  EXPECT_EQ(ids_of(request("GET", "/v1/calls", "", kTokB)), (std::vector<std::string>{uuid(2)}));
  EXPECT_EQ(request("GET", "/v1/calls?agent_uuid=agent_a", "", kTokB).status, 403);

  struct Bad {
    std::string query, field;
    long status;
  };
  for (const Bad& b :
       {Bad{"status=picked,answered", "status", 422}, Bad{"agent_uuid=agent_zz", "agent_uuid", 404},
        Bad{"call_type=web", "call_type", 422}, Bad{"campaign_id=x", "campaign_id", 422},
        Bad{"start_date=2026-13-01", "start_date", 422}, Bad{"end_date=yesterday", "end_date", 422},
        Bad{"start_date=2026-06-02&end_date=2026-06-01", "start_date", 422}, Bad{"page=0", "page", 422},
        Bad{"per_page=101", "per_page", 422}, Bad{"per_page=-1", "per_page", 422}}) {
    Reply r = request("GET", "/v1/calls?" + b.query);
    EXPECT_EQ(r.status, b.status) << b.query << " " << r.body;
    EXPECT_EQ(r.error().rfind(b.field, 0), 0u) << b.query << " " << r.body;
  }
}

TEST_F(ApiCalls, DateFiltersAreInclusiveInTheBoxOffset) {
  auto picked = [&](int n, int64_t at) {
    CallRecord c = make_call(uuid(n), "agent_a", kT0 + n);
    c.call_picked_at_ms = at;
    add_call(c);
  };
  picked(1, kMidnightJun1Ist - 1000);                // 2026-05-31 23:59:59 IST: before
  picked(2, kMidnightJun1Ist);                       // the first instant of June 1st IST
  picked(3, kMidnightJun3Ist - 1);                   // the last millisecond of June 2nd IST
  picked(4, kMidnightJun3Ist);                       // June 3rd: after
  add_call(make_call(uuid(5), "agent_a", kT0 + 5));  // never picked

  using V = std::vector<std::string>;
  EXPECT_EQ(ids_of(request("GET", "/v1/calls?start_date=2026-06-01&end_date=2026-06-02")),
            (V{uuid(3), uuid(2)}));
  EXPECT_EQ(ids_of(request("GET", "/v1/calls?start_date=2026-06-01")), (V{uuid(4), uuid(3), uuid(2)}));
  EXPECT_EQ(ids_of(request("GET", "/v1/calls?end_date=2026-05-31")), (V{uuid(1)}));
  // Full timestamps: Z, an explicit offset (%2B = '+'), a bare '+' decoded as a space, no zone = the box's.
  EXPECT_EQ(ids_of(request("GET", "/v1/calls?start_date=2026-05-31T18:30:00Z&end_date=2026-05-31T18:30:00Z")),
            (V{uuid(2)}));
  EXPECT_EQ(
      ids_of(request(
          "GET", "/v1/calls?start_date=2026-06-01T00:00:00%2B05:30&end_date=2026-06-01T00:00:00%2B05:30")),
      (V{uuid(2)}));
  EXPECT_EQ(
      ids_of(request("GET", "/v1/calls?start_date=2026-06-01T00:00:00+05:30&end_date=2026-06-01T00:00")),
      (V{uuid(2)}));
  EXPECT_EQ(ids_of(request("GET", "/v1/calls?start_date=2026-06-02T23:59:59.999%2B0530")),
            (V{uuid(4), uuid(3)}));
}

TEST_F(ApiCalls, PaginationMeta) {
  for (int i = 1; i <= 5; ++i) add_call(make_call(uuid(i), "agent_a", kT0 + i));
  Reply r = request("GET", "/v1/calls?per_page=2&page=3");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(ids_of(r), (std::vector<std::string>{uuid(1)}));
  const cJSON* meta = r.get("meta");
  EXPECT_EQ(num(meta, "current_page"), 3);
  EXPECT_EQ(num(meta, "total_pages"), 3);
  EXPECT_EQ(num(meta, "total_count"), 5);
  EXPECT_EQ(num(meta, "per_page"), 2);
  Reply d = request("GET", "/v1/calls");
  EXPECT_EQ(num(d.get("meta"), "per_page"), 25);
  EXPECT_EQ(num(d.get("meta"), "current_page"), 1);
  EXPECT_EQ(num(d.get("meta"), "total_pages"), 1);
  EXPECT_EQ(request("GET", "/v1/calls?per_page=100").status, 200);
}

// --- GET /v1/call/{id}, transcript ---

TEST_F(ApiCalls, CallDetail) {
  EXPECT_EQ(request("GET", "/v1/call/not-a-uuid").status, 404);
  EXPECT_EQ(request("GET", "/v1/call/" + uuid(9)).status, 404);
  CallRecord c = make_call(uuid(1), "agent_a", kT0);
  c.caller_name = "Ravi Kumar";
  c.retry_count = 1;
  c.summary = "Asked for a callback";
  c.data_captured = R"({"email":"r@example.com","confirmed":true})";
  c.post_call_analysis = R"({"sentiment":"positive"})";
  c.ended_at_ms = kT0 + 60'000;
  c.line = "sim0";
  c.callback_required = true;
  c.person_name = "Ravi";
  c.additional_data = R"({"order":"A1"})";
  c.greeting_gap_ms = 740;
  add_call(c);
  add_call(make_call(uuid(2), "agent_a", kT0));

  Reply r = request("GET", "/v1/call/" + uuid(1));
  ASSERT_EQ(r.status, 200) << r.body;
  const cJSON* d = r.data();
  EXPECT_EQ(str(d, "call_id"), uuid(1));
  EXPECT_EQ(str(d, "agent_name"), "Alpha");
  EXPECT_EQ(str(d, "caller_name"), "Ravi Kumar");
  EXPECT_EQ(num(d, "retry_count"), 1);
  EXPECT_EQ(str(d, "summary"), "Asked for a callback");
  EXPECT_EQ(str(cJSON_GetObjectItemCaseSensitive(d, "data_captured"), "email"), "r@example.com");
  EXPECT_EQ(str(cJSON_GetObjectItemCaseSensitive(d, "post_call_analysis"), "sentiment"), "positive");
  EXPECT_EQ(str(d, "ended_at"), "2026-05-29T01:57:40+05:30");
  EXPECT_EQ(str(d, "line"), "sim0");
  EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "callback_required")));
  EXPECT_EQ(str(d, "person_name"), "Ravi");
  EXPECT_EQ(str(cJSON_GetObjectItemCaseSensitive(d, "additional_data"), "order"), "A1");
  EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(d, "tag")));
  EXPECT_EQ(num(d, "greeting_gap_ms"), 740);

  Reply bare = request("GET", "/v1/call/" + uuid(2));
  EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(bare.data(), "greeting_gap_ms")));
  EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(bare.data(), "data_captured")));
  EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(bare.data(), "post_call_analysis")));
  EXPECT_EQ(str(bare.data(), "summary"), "<null>");

  // Another agent's call does not exist for a limited token.
  EXPECT_EQ(request("GET", "/v1/call/" + uuid(1), "", kTokB).status, 404);
  EXPECT_EQ(request("GET", "/v1/call/" + uuid(1) + "/transcript", "", kTokB).status, 404);
}

TEST_F(ApiCalls, TranscriptShape) {
  EXPECT_EQ(request("GET", "/v1/call/bad/transcript").status, 404);
  EXPECT_EQ(request("GET", "/v1/call/" + uuid(1) + "/transcript").status, 404);
  add_call(make_call(uuid(1), "agent_a", kT0));
  Reply empty = request("GET", "/v1/call/" + uuid(1) + "/transcript");
  ASSERT_EQ(empty.status, 200) << empty.body;
  EXPECT_EQ(str(empty.data(), "call_id"), uuid(1));
  EXPECT_EQ(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(empty.data(), "transcript")), 0);

  locked([&] {
    ASSERT_TRUE(store_->calls()
                    .add_transcript_turn(TranscriptTurn{uuid(1), 1, "agent", "Namaste!", kT0 + 1000,
                                                        kT0 + 2500, true, R"({"ttfb_ms":420})"})
                    .ok());
    ASSERT_TRUE(store_->calls()
                    .add_transcript_turn(TranscriptTurn{uuid(1), 2, "user", "Hello", kT0 + 2600, std::nullopt,
                                                        false, std::nullopt})
                    .ok());
    ASSERT_TRUE(
        store_->calls()
            .add_transcript_turn(TranscriptTurn{uuid(1), 3, "agent", "One moment, please.", kT0 + 5000,
                                                kT0 + 6000, false, std::nullopt, "filler"})
            .ok());
  });
  Reply r = request("GET", "/v1/call/" + uuid(1) + "/transcript");
  ASSERT_EQ(r.status, 200) << r.body;
  const cJSON* t = cJSON_GetObjectItemCaseSensitive(r.data(), "transcript");
  ASSERT_EQ(cJSON_GetArraySize(t), 3);
  const cJSON* a = cJSON_GetArrayItem(t, 0);
  EXPECT_EQ(str(a, "role"), "agent");
  EXPECT_EQ(str(a, "text"), "Namaste!");
  EXPECT_EQ(str(a, "started_at"), "2026-05-29T01:56:41.000+05:30");
  EXPECT_EQ(str(a, "ended_at"), "2026-05-29T01:56:42.500+05:30");
  EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "interrupted")));
  EXPECT_EQ(num(cJSON_GetObjectItemCaseSensitive(a, "latency"), "ttfb_ms"), 420);
  const cJSON* u = cJSON_GetArrayItem(t, 1);
  EXPECT_EQ(str(u, "role"), "user");
  EXPECT_EQ(str(u, "ended_at"), "<null>");
  EXPECT_TRUE(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(u, "interrupted")));
  EXPECT_FALSE(cJSON_HasObjectItem(u, "latency"));
  EXPECT_FALSE(cJSON_HasObjectItem(a, "kind"));  // the model's words: no kind
  const cJSON* filler = cJSON_GetArrayItem(t, 2);
  EXPECT_EQ(str(filler, "text"), "One moment, please.");
  EXPECT_EQ(str(filler, "kind"), "filler");
}

// --- recordings ---

TEST_F(ApiCalls, SignedRecordingLink) {
  const std::string path = dir_.file("rec1.opus");
  std::string audio = "OggS";
  for (int i = 0; i < 70000; ++i) audio += static_cast<char>(i * 31 % 256);
  add_call(make_call(uuid(1), "agent_a", kT0));
  add_call(make_call(uuid(2), "agent_a", kT0));
  EXPECT_EQ(request("GET", "/v1/call/" + uuid(1) + "/recording").status, 404);  // no row
  locked([&] {
    ASSERT_TRUE(store_->calls()
                    .save_recording(uuid(1), path, "ogg_opus", 4000, static_cast<int64_t>(audio.size()))
                    .ok());
    ASSERT_TRUE(store_->calls().save_recording(uuid(2), "missing.opus", "ogg_opus", 0, 0).ok());
  });
  EXPECT_EQ(request("GET", "/v1/call/" + uuid(1) + "/recording").status, 404);  // no file yet
  EXPECT_EQ(request("GET", "/v1/call/" + uuid(2) + "/recording").status, 404);
  test::write_file(path, audio);

  Reply r = request("GET", "/v1/call/" + uuid(1) + "/recording");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(str(r.data(), "call_id"), uuid(1));
  EXPECT_EQ(num(r.data(), "expires_in_seconds"), 900);
  const std::string link = str(r.data(), "recording_url");
  const std::string prefix = url("/v1/recordings/" + uuid(1) + ".opus?expires=");
  ASSERT_EQ(link.rfind(prefix, 0), 0u) << link;
  const int64_t expires = kT0 / 1000 + 900;
  auto signed1 = hmac_sha256_hex(ctx_.recording_key, uuid(1) + "\n" + std::to_string(expires));
  ASSERT_TRUE(signed1) << signed1.error().message;
  const std::string sig = *signed1;
  EXPECT_EQ(link, prefix + std::to_string(expires) + "&sig=" + sig);

  // Served without the API token, byte-identical.
  test::HttpResult got = test::http_request("GET", link, "");
  ASSERT_EQ(got.status, 200) << got.body.substr(0, 200);
  EXPECT_EQ(got.body, audio);
  EXPECT_NE(got.headers.find("Content-Type: audio/ogg"), std::string::npos) << got.headers;
  EXPECT_NE(got.headers.find("filename=\"" + uuid(1) + ".opus\""), std::string::npos) << got.headers;

  // Tampering with any part is refused.
  std::string tampered = link;
  tampered.back() = tampered.back() == '0' ? '1' : '0';
  EXPECT_EQ(test::http_request("GET", tampered, "").status, 403);
  std::string later = link;
  later.replace(later.find("expires=") + 8, std::to_string(expires).size(), std::to_string(expires + 3600));
  EXPECT_EQ(test::http_request("GET", later, "").status, 403);
  const std::string other =
      url("/v1/recordings/" + uuid(2) + ".opus?expires=" + std::to_string(expires) + "&sig=" + sig);
  EXPECT_EQ(test::http_request("GET", other, "").status, 403);
  EXPECT_EQ(test::http_request("GET", url("/v1/recordings/" + uuid(1) + ".opus"), "").status, 403);
  EXPECT_EQ(test::http_request("GET", url("/v1/recordings/x.opus?expires=1&sig=00"), "").status, 403);
  // Only this route skips the token.
  EXPECT_EQ(test::http_request("GET", url("/v1/calls"), "").status, 401);

  // A valid link to a recording whose file vanished: 404.
  const int64_t e2 = kT0 / 1000 + 10;
  auto signed2 = hmac_sha256_hex(ctx_.recording_key, uuid(2) + "\n" + std::to_string(e2));
  ASSERT_TRUE(signed2) << signed2.error().message;
  const std::string link2 =
      url("/v1/recordings/" + uuid(2) + ".opus?expires=" + std::to_string(e2) + "&sig=" + *signed2);
  EXPECT_EQ(test::http_request("GET", link2, "").status, 404);

  // Still valid at the expiry second, refused after it.
  locked([&] { clock_.advance_ms(900'000); });
  EXPECT_EQ(test::http_request("GET", link, "").status, 200);
  locked([&] { clock_.advance_ms(1000); });
  test::HttpResult expired = test::http_request("GET", link, "");
  EXPECT_EQ(expired.status, 403);
  EXPECT_NE(expired.body.find("expired"), std::string::npos);

  // No key: links can be neither made nor checked.
  locked([&] { ctx_.recording_key.clear(); });
  EXPECT_EQ(request("GET", "/v1/call/" + uuid(1) + "/recording").status, 503);
}

// The status line and headers of a GET, read from a raw socket that is closed before the body: how a test
// asks for a file far larger than it wants to receive.
std::string response_head(uint16_t port, const std::string& target) {
  const int fd = osvi::test::connect_loopback(port, 10);
  std::string head;
  if (fd >= 0) {
    const std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[4096];
      while (head.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        head.append(buf, static_cast<size_t>(n));
      }
    }
  }
  ::close(fd);
  return head.substr(0, head.find("\r\n\r\n"));
}

// Rows written by older daemons: a path relative to their working directory (`--state-dir ./state` stored
// "./state/recordings/<id>.opus", which was then joined to the folder again) and the absolute path of a
// state folder since moved. Both are served from today's recordings folder.
TEST_F(ApiCalls, LegacyRecordingPathsResolveInTheRecordingsFolder) {
  const std::vector<std::string> stored = {"./state/recordings/" + uuid(1) + ".opus",
                                           "/var/lib/osvi-moved/recordings/" + uuid(2) + ".opus"};
  for (int i = 1; i <= 2; ++i) {
    add_call(make_call(uuid(i), "agent_a", kT0));
    const std::string audio = "OggS" + std::string(5000, static_cast<char>('a' + i));
    test::write_file(dir_.file(uuid(i) + ".opus"), audio);
    locked([&] {
      ASSERT_TRUE(store_->calls()
                      .save_recording(uuid(i), stored[static_cast<size_t>(i - 1)], "ogg_opus", 1000,
                                      static_cast<int64_t>(audio.size()))
                      .ok());
    });
    Reply r = request("GET", "/v1/call/" + uuid(i) + "/recording");
    ASSERT_EQ(r.status, 200) << stored[static_cast<size_t>(i - 1)] << ": " << r.body;
    test::HttpResult got = test::http_request("GET", str(r.data(), "recording_url"), "");
    EXPECT_EQ(got.status, 200);
    EXPECT_EQ(got.body, audio);
  }
}

// A call whose line has no known number: from_number is null in the list and the detail, never "".
TEST_F(ApiCalls, UnknownFromNumberIsNull) {
  CallRecord c = make_call(uuid(1), "agent_a", kT0);
  c.from_number = std::nullopt;
  add_call(c);
  Reply list = request("GET", "/v1/calls");
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(str(cJSON_GetArrayItem(list.data(), 0), "from_number"), "<null>");
  Reply detail = request("GET", "/v1/call/" + uuid(1));
  ASSERT_EQ(detail.status, 200);
  EXPECT_EQ(str(detail.data(), "from_number"), "<null>");
  // The store refuses "" for it: unknown is NULL.
  c.call_id = uuid(2);
  c.from_number = "";
  locked([&] { EXPECT_FALSE(store_->calls().insert(c).ok()); });
}

// Recordings are answered from the file descriptor: a large one comes back byte-identical, and one far
// beyond what a process would read into memory (a sparse 3 GiB file: the old path refused anything over
// 256 MiB with a 500 rather than buffer it) is answered 200 with its whole length.
TEST_F(ApiCalls, RecordingsAreServedFromTheFileDescriptor) {
  add_call(make_call(uuid(1), "agent_a", kT0));
  add_call(make_call(uuid(2), "agent_a", kT0));
  const std::string big = dir_.file("big.opus");
  std::string audio(20u << 20, '\0');
  uint32_t x = 7;
  for (char& c : audio) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  test::write_file(big, audio);
  const std::string huge = dir_.file("huge.opus");
  constexpr off_t kHuge = off_t{3} << 30;
  {
    const int fd = ::open(huge.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, kHuge), 0);
    ::close(fd);
  }
  locked([&] {
    ASSERT_TRUE(store_->calls().save_recording(uuid(1), big, "ogg_opus", 1000, 0).ok());
    ASSERT_TRUE(store_->calls().save_recording(uuid(2), huge, "ogg_opus", 1000, 0).ok());
  });
  auto link = [&](const std::string& id) {
    Reply r = request("GET", "/v1/call/" + id + "/recording");
    EXPECT_EQ(r.status, 200) << r.body;
    return str(r.data(), "recording_url");
  };
  test::HttpResult got = test::http_request("GET", link(uuid(1)), "");
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.body.size(), audio.size());
  EXPECT_TRUE(got.body == audio);

  const std::string url2 = link(uuid(2));
  const std::string head = response_head(port_, url2.substr(url2.find("/v1/")));
  EXPECT_EQ(head.rfind("HTTP/1.1 200", 0), 0u) << head;
  EXPECT_NE(head.find("Content-Length: " + std::to_string(kHuge)), std::string::npos) << head;
}

TEST(Secret, HmacKnownAnswerAndKeyFile) {
  // RFC 4231 test case 2.
  auto mac = hmac_sha256_hex("Jefe", "what do ya want for nothing?");
  ASSERT_TRUE(mac) << mac.error().message;
  EXPECT_EQ(*mac, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  test::TempDir dir;
  const std::string path = dir.file("recording-key");
  auto k1 = load_or_create_secret(path, 32);
  ASSERT_TRUE(k1.ok()) << k1.error().message;
  EXPECT_EQ(k1->size(), 32u);
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto k2 = load_or_create_secret(path, 32);
  ASSERT_TRUE(k2.ok());
  EXPECT_EQ(*k1, *k2);
  auto wrong = load_or_create_secret(path, 16);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code, -EINVAL);
  EXPECT_NE(wrong.error().message.find(path), std::string::npos);
  auto nodir = load_or_create_secret(dir.file("no/such/key"), 32);
  ASSERT_FALSE(nodir.ok());
  EXPECT_EQ(nodir.error().code, -ENOENT);
}

// --- strict strings (issue 12) ---

// One whole exchange on a raw socket, so a test chooses every header (libcurl adds Content-Type for a body).
Reply raw_exchange(uint16_t port, const std::string& head, const std::string& body) {
  Reply out;
  const int fd = osvi::test::connect_loopback(port, 5);
  if (fd < 0) return out;
  std::string text;
  {
    const std::string req =
        head + "Host: 127.0.0.1\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n" + body;
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[4096];
      ssize_t n = 0;
      while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) text.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  if (text.size() > 12) out.status = std::atol(text.substr(9, 3).c_str());
  const size_t end = text.find("\r\n\r\n");
  out.headers = text.substr(0, end);
  if (end != std::string::npos) out.body = text.substr(end + 4);
  std::string why;
  out.json = net::json_parse(out.body, &why);
  return out;
}

// Every error body must stay valid JSON whose strings are valid UTF-8: the old handlers echoed raw bytes.
void expect_clean_error(const Reply& r, const std::string& context) {
  ASSERT_TRUE(r.json) << context << ": body is not JSON: " << r.body;
  for (unsigned char c : r.body) EXPECT_TRUE(c >= 0x20 && c != 0x7f) << context << ": raw control byte";
  std::string why;
  EXPECT_FALSE(r.error().empty()) << context;
  EXPECT_LE(r.error().size(), 300u) << context << ": " << r.error();
}

// Invalid UTF-8 anywhere in a JSON body is refused naming the field; before, person_name "\xff\xfe" was
// stored and served back as invalid JSON (and the other cases were accepted too).
TEST_F(ApiCalls, InvalidUtf8AnywhereInABodyIsRefusedNamingTheField) {
  const std::string base = R"("agent_uuid":"agent_a","phone_number":"9876543210","country_code":"IN")";
  struct Case {
    std::string path, body, message;
    long status;
  };
  const std::vector<Case> cases = {
      {"/v1/call", "{" + base + ",\"person_name\":\"\xff\xfe\"}", "person_name: invalid UTF-8", 400},
      {"/call", "{" + base + ",\"person_name\":\"ab\xc3\"}", "person_name: invalid UTF-8", 400},
      // Overlong "/", a UTF-8-encoded surrogate, a code point above U+10FFFF, a stray continuation byte.
      {"/v1/call", "{" + base + ",\"additional_data\":{\"name\":\"\xc0\xaf\"}}",
       "additional_data.name: invalid UTF-8", 400},
      {"/v1/call", "{" + base + ",\"system_prompt\":\"x\xed\xa0\x80y\"}", "system_prompt: invalid UTF-8",
       400},
      {"/v1/call",
       "{" + base + ",\"data_extraction\":[{\"key\":\"a\",\"description\":\"\xf4\x90\x80\x80\"}]}",
       "data_extraction[0].description: invalid UTF-8", 400},
      {"/v1/call", "{" + base + ",\"additional_data\":{\"list\":[1,{\"deep\":\"\x80\"}]}}",
       "additional_data.list[1].deep: invalid UTF-8", 400},
      // A member name, and unknown keys: every string of the body, not only the fields the box reads.
      {"/v1/call", "{" + base + ",\"additional_data\":{\"\xff\":\"x\"}}", "additional_data: member name",
       400},
      {"/v1/call", "{" + base + ",\"unknown\":{\"k\":\"\xfe\"}}", "unknown.k: invalid UTF-8", 400},
      // Escapes that name no character: unpaired surrogates.
      {"/v1/call", "{" + base + R"(,"person_name":"a\ud800"})",
       "person_name: unpaired surrogate escape \\ud800", 400},
      {"/v1/call", "{" + base + R"(,"person_name":"\udc00x"})",
       "person_name: unpaired surrogate escape \\udc00", 400},
      {"/v1/system/log_level", "{\"level\":\"\xff\"}", "level: invalid UTF-8", 422},
  };
  for (const Case& c : cases) {
    Reply r = request(c.path.starts_with("/v1/system") ? "PUT" : "POST", c.path, c.body);
    EXPECT_EQ(r.status, c.status) << c.body << " -> " << r.body;
    EXPECT_EQ(r.error().rfind(c.message, 0), 0u) << c.body << " -> " << r.error();
    expect_clean_error(r, c.body);
  }
  locked([&] { EXPECT_TRUE(calls_.requests.empty()); });

  // A surrogate pair escape is a character like any other.
  Reply ok = request("POST", "/v1/call", "{" + base + R"(,"person_name":"\ud83d\ude00 \u00e9"})");
  ASSERT_EQ(ok.status, 200) << ok.body;
  locked([&] {
    ASSERT_EQ(calls_.requests.size(), 1u);
    EXPECT_EQ(calls_.requests[0].person_name, std::optional<std::string>("\xf0\x9f\x98\x80 \xc3\xa9"));
  });
}

// \u0000 is refused naming the field; before, cJSON cut the string there and "a\u0000b" was stored as "a".
TEST_F(ApiCalls, NulEscapeIsRefusedNamingTheField) {
  const std::string base = R"("agent_uuid":"agent_a","phone_number":"9876543210","country_code":"IN")";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{" + base + R"(,"person_name":"a\u0000b"})", "person_name: contains NUL (\\u0000)"},
      {"{" + base + R"(,"additional_data":{"x":{"y":"\u0000"}}})", "additional_data.x.y: contains NUL"},
      {"{" + base + R"(,"additional_data":{"k\u0000ey":1}})", "additional_data: member name beginning \"k\""},
      {"{" + base + R"(,"initial_greeting":"hi\u0000"})", "initial_greeting: contains NUL"},
  };
  for (const auto& [body, message] : cases) {
    Reply r = request("POST", "/v1/call", body);
    EXPECT_EQ(r.status, 400) << body << " -> " << r.body;
    EXPECT_EQ(r.error().rfind(message, 0), 0u) << body << " -> " << r.error();
    expect_clean_error(r, body);
  }
  Reply r = request("PUT", "/v1/system/log_level", R"({"level":"info\u0000junk"})");
  EXPECT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(r.error().rfind("level: contains NUL", 0), 0u) << r.error();
  locked([&] { EXPECT_TRUE(calls_.requests.empty()); });
}

// %00 in a path is 404: before, the server's decoder made it a NUL that cut the path, so
// /v1/call/<id>%00/transcript answered the call record. Query parameters with %00 or invalid UTF-8 are
// refused naming the parameter (before: accepted, or echoed raw into an invalid JSON error).
TEST_F(ApiCalls, NulAndInvalidUtf8InPathsAndQueriesAreRefused) {
  add_call(make_call(uuid(1), "agent_a", kT0));
  ASSERT_EQ(request("GET", "/v1/call/" + uuid(1)).status, 200);
  for (const std::string& path : std::vector<std::string>{
           "/v1/call/" + uuid(1) + "%00/transcript", "/v1/call/" + uuid(1) + "%00",
           "/v1/call/" + uuid(1) + "%ff", "/v1/calls%00", "/v1/calls%00/x", "/v1/health%00"}) {
    Reply r = request("GET", path);
    EXPECT_EQ(r.status, 404) << path << " -> " << r.body;
    expect_clean_error(r, path);
  }
  // The signed recording route is dispatched before the token check, but not with a %00 in its path: that
  // path then goes through the token check like any other, and names nothing.
  EXPECT_EQ(request("GET", "/v1/recordings/" + uuid(1) + ".opus%00?expires=1&sig=x", "", "").status, 401);
  EXPECT_EQ(request("GET", "/v1/recordings/" + uuid(1) + ".opus%00?expires=1&sig=x").status, 404);

  struct Case {
    std::string method, target, message;
    long status;
  };
  const std::vector<Case> cases = {
      {"GET", "/v1/calls?phone_number=98%00", "phone_number: must be valid UTF-8 without NUL (%00)", 422},
      {"GET", "/v1/calls?status=picked%ff", "status: must be valid UTF-8 without NUL (%00)", 422},
      {"GET", "/v1/calls?agent_uuid=agent_a%00", "agent_uuid: must be valid UTF-8 without NUL (%00)", 422},
      {"GET", "/v1/calls?x%ff=1", "query parameter \"x\\xff\": name must be valid UTF-8", 422},
      {"GET", "/v1/health?a=%c0%80", "a: must be valid UTF-8 without NUL (%00)", 422},
      {"POST", "/v1/call?note=%00", "note: must be valid UTF-8 without NUL (%00)", 400},
  };
  for (const Case& c : cases) {
    Reply r = request(c.method, c.target, c.method == "POST" ? "{}" : "");
    EXPECT_EQ(r.status, c.status) << c.target << " -> " << r.body;
    EXPECT_EQ(r.error().rfind(c.message, 0), 0u) << c.target << " -> " << r.error();
    expect_clean_error(r, c.target);
  }
  // Clean percent-encoded UTF-8 still works.
  EXPECT_EQ(request("GET", "/v1/calls?phone_number=%39%38").status, 200);
}

// What an error repeats from the request is quoted, escaped and capped: before, the 404 echoed the raw
// path (newlines, invalid bytes, any length) and the 403 the raw agent_uuid.
TEST_F(ApiCalls, ErrorMessagesQuoteEscapeAndCapWhatTheyRepeat) {
  Reply r = request("GET", "/v1/no%0Aw%ff%22here");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.error(), R"(no such endpoint: "GET" "/v1/no\nw\xff\"here")");
  expect_clean_error(r, "404");

  Reply longpath = request("GET", "/v1/" + std::string(5000, 'z'));
  EXPECT_EQ(longpath.status, 404);
  EXPECT_NE(longpath.error().find("zzz\"\xE2\x80\xA6"), std::string::npos) << longpath.error();
  expect_clean_error(longpath, "long 404");

  Reply m = request("DELETE", "/v1/calls%0d");
  EXPECT_EQ(m.status, 404);
  EXPECT_EQ(m.error(), R"(no such endpoint: "DELETE" "/v1/calls\r")");
  Reply m405 = request("DELETE", "/v1/calls");
  EXPECT_EQ(m405.error(), R"(method "DELETE" not allowed on "/v1/calls" (allowed: GET))");

  const std::string other(3000, 'q');
  Reply forbidden =
      request("POST", "/v1/call",
              R"({"agent_uuid":")" + other + R"(\n","phone_number":"1","country_code":"IN"})", kTokB);
  EXPECT_EQ(forbidden.status, 403);
  EXPECT_EQ(forbidden.error().rfind("agent_uuid: this API token may not use agent \"qqq", 0), 0u);
  expect_clean_error(forbidden, "403");

  Reply status = request("GET", "/v1/calls?status=%0A" + std::string(300, 'p'));
  EXPECT_EQ(status.status, 422);
  EXPECT_EQ(status.error().rfind("status: longer than 256 characters", 0), 0u) << status.error();
  Reply status2 = request("GET", "/v1/calls?status=%0Ap%22");
  EXPECT_EQ(status2.error().rfind(R"(status: unknown value "\np\"")", 0), 0u) << status2.error();

  Reply level = request("PUT", "/v1/system/log_level", R"({"level":"\u0001)" + std::string(100, 'v') + "\"}");
  EXPECT_EQ(level.status, 422);
  EXPECT_NE(level.error().find(R"(got "\u0001vvv)"), std::string::npos) << level.error();
  expect_clean_error(level, "level");

  Reply country =
      request("POST", "/v1/call", R"({"agent_uuid":"agent_a","phone_number":"1","country_code":"Z\t"})");
  EXPECT_EQ(country.status, 400);
  EXPECT_EQ(country.error(), R"(country_code: unknown country code "Z\t")");
}

// Bodies that are not JSON are 415 with the envelope; before, a form post or text/plain was parsed as JSON.
TEST_F(ApiCalls, BodiesThatAreNotJsonGet415) {
  const std::string body = R"({"agent_uuid":"agent_a","phone_number":"9876543210","country_code":"IN"})";
  const std::string auth = std::string("API-Token: ") + kTok + "\r\n";
  struct Case {
    std::string method, path, content_type;
    long status;
  };
  const std::vector<Case> cases = {
      {"POST", "/v1/call", "Content-Type: text/plain\r\n", 415},
      {"POST", "/v1/call", "Content-Type: application/x-www-form-urlencoded\r\n", 415},
      {"POST", "/call", "Content-Type: text/json\r\n", 415},
      {"POST", "/v1/call", "", 415},  // no Content-Type at all
      {"PUT", "/v1/system/log_level", "Content-Type: application/jsonx\r\n", 415},
      {"POST", "/v1/system/log_level", "Content-Type: application/+json\r\n", 415},
      {"POST", "/v1/call", "Content-Type: application/json\r\n", 200},
      {"POST", "/v1/call", "Content-Type: Application/JSON; charset=utf-8\r\n", 200},
      {"POST", "/call", "Content-Type: application/vnd.osvi+json\r\n", 200},
  };
  for (const Case& c : cases) {
    const std::string b = c.path == "/v1/system/log_level" ? R"({"level":"info"})" : body;
    Reply r = raw_exchange(port_, c.method + " " + c.path + " HTTP/1.1\r\n" + auth + c.content_type, b);
    EXPECT_EQ(r.status, c.status) << c.method << " " << c.path << " " << c.content_type << " -> " << r.body;
    if (c.status == 415) {
      EXPECT_EQ(cJSON_IsFalse(r.get("success")), 1) << r.body;
      EXPECT_EQ(r.error().rfind("Content-Type: ", 0), 0u) << r.error();
    }
  }
  Reply text =
      raw_exchange(port_, "POST /v1/call HTTP/1.1\r\n" + auth + "Content-Type: text/pl\xff\r\n", body);
  EXPECT_EQ(text.status, 415);
  EXPECT_EQ(text.error(), R"(Content-Type: expected application/json, got "text/pl\xff")");
  // Unauthenticated clients learn nothing: 401 first.
  EXPECT_EQ(raw_exchange(port_, "POST /v1/call HTTP/1.1\r\nContent-Type: text/plain\r\n", body).status, 401);
  // GET has no body to type.
  EXPECT_EQ(raw_exchange(port_, "GET /v1/calls HTTP/1.1\r\n" + auth, "").status, 200);
}

// A body of many tiny values is refused from its shape with 413, before cJSON turns ~2 MB of text into
// tens of MB of nodes (bench/api_soak_bench's peak).
TEST_F(ApiCalls, BodyOfTooManyJsonValuesGets413) {
  const std::string auth = std::string("API-Token: ") + kTok + "\r\nContent-Type: application/json\r\n";
  std::string body = R"({"agent_uuid":"agent_a","phone_number":"9876543210","country_code":"IN","x":[0)";
  for (int i = 0; i < 100000; ++i) body += ",0";
  body += "]}";
  Reply r = raw_exchange(port_, "POST /v1/call HTTP/1.1\r\n" + auth, body);
  EXPECT_EQ(r.status, 413) << r.body;
  EXPECT_EQ(r.error(), "request body is too large: more than 100000 JSON values");
}

// Every free-text field of a write endpoint has a bound, refused naming the field (docs/api.md, Limits);
// before, only initial_greeting and additional_data were bounded.
TEST_F(ApiCalls, FreeTextFieldsAreBoundedNamingTheField) {
  const std::string base = R"("agent_uuid":"agent_a","phone_number":"9876543210","country_code":"IN")";
  auto s = [](size_t n, const char* unit = "x") {
    std::string out;
    for (size_t i = 0; i < n; ++i) out += unit;
    return out;
  };
  std::string items;
  for (int i = 0; i < 51; ++i)
    items += std::string(i ? "," : "") + R"({"key":"k)" + std::to_string(i) + "\"}";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"agent_uuid":")" + s(65) + R"(","phone_number":"9876543210","country_code":"IN"})",
       "agent_uuid: longer than 64 characters (65)"},
      {R"({"agent_uuid":"agent_a","phone_number":")" + s(33, "1") + R"(","country_code":"IN"})",
       "phone_number: longer than 32 characters (33)"},
      {R"({"agent_uuid":"agent_a","phone_number":"1","country_code":")" + s(9, "A") + "\"}",
       "country_code: longer than 8 characters (9)"},
      {"{" + base + R"(,"system_prompt":")" + s(20001) + "\"}",
       "system_prompt: longer than 20000 characters"},
      {"{" + base + R"(,"person_name":")" + s(201, "\xc3\xa9") + "\"}",
       "person_name: longer than 200 characters"},
      {"{" + base + R"(,"webhook_url":"https://h/)" + s(2040) + "\"}",
       "webhook_url: longer than 2048 characters"},
      {"{" + base + R"(,"initial_greeting":")" + s(2001) + "\"}",
       "initial_greeting: longer than 2000 characters"},
      {"{" + base + R"(,"additional_data":{")" + s(65) + R"(":1}})", "additional_data: member name \"xxx"},
      {"{" + base + R"(,"call_config_overrides":{"note":")" + s(5000) + "\"}}",
       "call_config_overrides: 5011 bytes as compact JSON, more than the limit of 4096"},
      {"{" + base + R"(,"data_extraction":[)" + items + "]}", "data_extraction: more than 50 items"},
      {"{" + base + R"(,"data_extraction":[{"key":")" + s(65) + R"("}]})",
       "data_extraction[0].key: longer than 64 characters"},
      {"{" + base + R"(,"data_extraction":[{"key":"a","description":")" + s(1001) + R"("}]})",
       "data_extraction[0].description: longer than 1000 characters"},
      {"{" + base + R"(,"data_extraction":[{"key":"a","output_format":")" + s(201) + R"("}]})",
       "data_extraction[0].output_format: longer than 200 characters"},
  };
  for (const auto& [body, message] : cases) {
    Reply r = request("POST", "/v1/call", body);
    EXPECT_EQ(r.status, 400) << message << " -> " << r.body.substr(0, 300);
    EXPECT_EQ(r.error().rfind(message, 0), 0u) << r.error();
  }
  locked([&] { EXPECT_TRUE(calls_.requests.empty()); });
  // At the limit, in characters not bytes: accepted.
  Reply ok = request("POST", "/v1/call", "{" + base + R"(,"person_name":")" + s(200, "\xc3\xa9") + "\"}");
  EXPECT_EQ(ok.status, 200) << ok.body;
}

}  // namespace
}  // namespace osvi::daemon
