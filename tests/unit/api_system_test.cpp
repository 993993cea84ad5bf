// GET /v1/system/errors (the ring of recent warnings and errors), POST /v1/system/reload (through the App's
// callback) and the line diagnostics' refusals, through the real API on loopback.
#include <gtest/gtest.h>

#include <string>

#include "api_harness.hpp"
#include "osvi/base/log.hpp"

namespace {

using osvi::test::api_keys;
using osvi::test::api_str;
using osvi::test::expect_api_error;
using osvi::test::kApiTokenB;

class ApiSystemTest : public osvi::test::ApiTest {
 protected:
  void SetUp() override {
    config_.site.utc_offset_minutes = 330;
    start_api();
    osvi::log::clear_recent_problems();
  }
  void TearDown() override {
    osvi::log::clear_recent_problems();
    osvi::test::ApiTest::TearDown();
  }
};

TEST_F(ApiSystemTest, ErrorsNewestFirstWithFieldsAndLimit) {
  osvi::log::notice("not a problem");
  osvi::log::warning("line gsm0 down", {{"LINE", "gsm0"}}, osvi::log::id::kLineDown);
  osvi::log::error("upstream failed", {{"CALL_ID", "0190aaaa"}, {"LINE", "sim0"}});
  auto r = request("GET", "/v1/system/errors");
  ASSERT_EQ(r.status, 200) << r.body;
  const cJSON* data = r.data();
  ASSERT_EQ(cJSON_GetArraySize(data), 2) << r.body;
  const cJSON* first = cJSON_GetArrayItem(data, 0);
  EXPECT_EQ(api_keys(first), (std::vector<std::string>{"at", "priority", "message", "message_id", "fields"}));
  EXPECT_EQ(api_str(first, "priority"), "err");
  EXPECT_EQ(api_str(first, "message"), "upstream failed");
  EXPECT_EQ(api_str(first, "message_id"), "<null>");
  EXPECT_EQ(api_str(cJSON_GetObjectItem(first, "fields"), "CALL_ID"), "0190aaaa");
  EXPECT_EQ(api_str(cJSON_GetObjectItem(first, "fields"), "LINE"), "sim0");
  // ISO-8601 with the site's offset.
  EXPECT_EQ(api_str(first, "at").substr(19, 6), "+05:30") << api_str(first, "at");
  const cJSON* second = cJSON_GetArrayItem(data, 1);
  EXPECT_EQ(api_str(second, "priority"), "warning");
  EXPECT_EQ(api_str(second, "message_id"), std::string(osvi::log::id::kLineDown));

  auto one = request("GET", "/v1/system/errors?limit=1");
  ASSERT_EQ(cJSON_GetArraySize(one.data()), 1);
  EXPECT_EQ(api_str(cJSON_GetArrayItem(one.data(), 0), "message"), "upstream failed");
  expect_api_error(request("GET", "/v1/system/errors?limit=0"), 422, "limit: must be an integer in 1..200");
  expect_api_error(request("GET", "/v1/system/errors?limit=201"), 422, "limit:");
  expect_api_error(request("GET", "/v1/system/errors?limit=5x"), 422, "limit:");
  expect_api_error(request("GET", "/v1/system/errors?since=1"), 422, "unknown query parameter");
  expect_api_error(request("GET", "/v1/system/errors", {}, kApiTokenB), 403, "may not read the system log");
}

TEST_F(ApiSystemTest, ErrorsTextThatIsNotUtf8StaysValidJson) {
  osvi::log::error(std::string("bad bytes \xff\xfe from a modem"));
  auto r = request("GET", "/v1/system/errors");
  ASSERT_EQ(r.status, 200);
  ASSERT_TRUE(r.json) << r.body;
  EXPECT_NE(api_str(cJSON_GetArrayItem(r.data(), 0), "message").find("from a modem"), std::string::npos);
}

TEST_F(ApiSystemTest, ReloadGoesThroughTheAppAndReportsItsReasons) {
  expect_api_error(request("POST", "/v1/system/reload", "{}"), 503, "not available");
  int calls = 0;
  osvi::Status outcome;
  ctx_.reload = [&](std::function<void(const osvi::Status&)> done) {
    ++calls;
    done(outcome);
  };
  auto ok = request("POST", "/v1/system/reload", "{}");
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(ok.data(), "applied")));
  EXPECT_EQ(api_keys(ok.data()),
            (std::vector<std::string>{"applied", "config_hash", "source", "loaded_at", "agents"}));

  outcome =
      osvi::make_error("/etc/osvi/osvid.json:\nagents[0].colour: unknown key\napi.port: must be 1..65535");
  auto bad = request("POST", "/v1/system/reload", "{}");
  ASSERT_EQ(bad.status, 422) << bad.body;
  const cJSON* errors = bad.get("errors");
  ASSERT_EQ(cJSON_GetArraySize(errors), 2) << bad.body;
  EXPECT_STREQ(cJSON_GetArrayItem(errors, 0)->valuestring,
               "/etc/osvi/osvid.json: agents[0].colour: unknown key");
  EXPECT_STREQ(cJSON_GetArrayItem(errors, 1)->valuestring,
               "/etc/osvi/osvid.json: api.port: must be 1..65535");

  expect_api_error(request("POST", "/v1/system/reload", R"({"file":"/tmp/x.json"})"), 422,
                   "\"file\": unknown field");
  expect_api_error(request("POST", "/v1/system/reload", "{}", kApiTokenB), 403, "may not reload");
  EXPECT_EQ(calls, 2);  // neither refusal reached the App
}

TEST_F(ApiSystemTest, LineDiagnosticsRefusals) {
  // No lines in this harness: 503, after the token and body checks.
  expect_api_error(request("POST", "/v1/lines/sim0/test", "{}"), 503, "not available");
  expect_api_error(request("POST", "/v1/lines/sim0/loopback", "{}"), 503, "not available");
  expect_api_error(request("POST", "/v1/lines/sim0/test", "{}", kApiTokenB), 403, "may not test lines");
  expect_api_error(request("POST", "/v1/lines/sim0/loopback", R"({"ms":5})"), 422, "\"ms\": unknown field");
  expect_api_error(request("GET", "/v1/lines/sim0/test"), 405, "allowed: POST");
}

}  // namespace
