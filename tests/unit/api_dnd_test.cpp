// The DND API (spec 3.9-3.11) through a real in-process HTTP server: every status code and the exact shapes.
#include <gtest/gtest.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api_harness.hpp"
#include "daemon_process.hpp"
#include "osvi/calls/call_service.hpp"
#include "osvi/net/json.hpp"
#include "osvi/store/store.hpp"

namespace osvi::daemon {
namespace {

using test::api_keys;
using test::api_num;
using test::api_str;
using test::ApiReply;
using test::kApiT0;
using test::kApiToken;
using test::kApiTokenB;
constexpr int64_t kT0 = kApiT0;
constexpr const char* kT0Ist = "2026-05-29T01:56:40+05:30";
constexpr const char* kTok = kApiToken;
constexpr const char* kTokB = kApiTokenB;

const std::vector<std::string> kEntryKeys = {"id", "agent_uuid", "phone", "reason", "created_at"};

class ApiDnd : public test::ApiTest {
 protected:
  void SetUp() override {
    config_.site.utc_offset_minutes = 330;
    config_.site.country = "IN";
    std::vector<AgentRecord> agents = {
        {0, "agent_a", "Alpha", "voice", true, false, "{}", "", 0, 0},
        {0, "agent_b", "Bravo", "voice", true, false, "{}", "", 0, 0},
        {0, "agent_off", "Off", "voice", false, false, "{}", "", 0, 0},
    };
    start_api(agents);
  }

  void locked(const std::function<void()>& fn) { served_.locked(fn); }

  ApiReply add(const std::string& agent, const std::string& phone, const std::string& extra = {},
               const std::string& token = kTok) {
    return request("POST", "/v1/dnd_numbers",
                   R"({"agent_uuid":")" + agent + R"(","phone":")" + phone + "\"" + extra + "}", token);
  }

  bool blocked(const std::string& agent, const std::string& e164) {
    bool out = false;
    locked([&] {
      auto r = store_->dnd().is_active(agent, e164);
      ASSERT_TRUE(r.ok());
      out = *r;
    });
    return out;
  }
};

// --- POST /v1/dnd_numbers ---

TEST_F(ApiDnd, AddIs201WithTheEntryInE164AndTheSiteOffset) {
  EXPECT_FALSE(blocked("agent_a", "+919876543210"));
  ApiReply r = add("agent_a", "098765 43210", R"(,"reason":"asked not to be called")");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(api_keys(r.json.get()), (std::vector<std::string>{"success", "data"}));
  EXPECT_TRUE(cJSON_IsTrue(r.get("success")));
  const cJSON* d = r.data();
  EXPECT_EQ(api_keys(d), kEntryKeys);
  EXPECT_GT(api_num(d, "id"), 0);
  EXPECT_EQ(api_str(d, "agent_uuid"), "agent_a");
  EXPECT_EQ(api_str(d, "phone"), "+919876543210");
  EXPECT_EQ(api_str(d, "reason"), "asked not to be called");
  EXPECT_EQ(api_str(d, "created_at"), kT0Ist);
  // Effective at once: the check the calls engine makes at dial time sees it.
  EXPECT_TRUE(blocked("agent_a", "+919876543210"));
  EXPECT_FALSE(blocked("agent_b", "+919876543210"));

  // Without a reason (absent or null): reason is null.
  r = add("agent_a", "+14155550100");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(api_str(r.data(), "reason"), "<null>");
  EXPECT_EQ(api_str(r.data(), "phone"), "+14155550100");
  r = add("agent_a", "919811111111", R"(,"reason":null)");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(api_str(r.data(), "reason"), "<null>");
  EXPECT_EQ(api_str(r.data(), "phone"), "+919811111111");
  locked([&] {
    auto rows = store_->dnd().active("agent_a");
    ASSERT_TRUE(rows.ok());
    ASSERT_EQ(rows->size(), 3u);
    for (const DndEntry& e : *rows) EXPECT_EQ(e.source, "api");
  });
}

// A calls engine with a SIP line, for PBX extensions on the list.
class SipCalls : public CallService {
 public:
  Result<std::string> place_call(const PlaceCallRequest&) override { return make_error("not here", -EIO); }
  size_t idle_lines() const override { return 0; }
  bool dials_extensions() const override { return sip; }
  int add_finished_listener(CallFinishedListener) override { return 0; }
  void remove_finished_listener(int) override {}
  bool sip = false;
};

// An extension goes on the list as the string it is while the box has a SIP line, and is refused without.
TEST_F(ApiDnd, PbxExtensionsAreListedAsTheyAreWithASipLine) {
  SipCalls calls;
  locked([&] { ctx_.calls = &calls; });
  ApiReply r = add("agent_a", "201");
  EXPECT_EQ(r.status, 422) << r.body;
  locked([&] { calls.sip = true; });
  r = add("agent_a", "201");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(api_str(r.data(), "phone"), "201");
  EXPECT_TRUE(blocked("agent_a", "201"));
  r = add("agent_a", "98765 43210");  // a number of the country stays E.164
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(api_str(r.data(), "phone"), "+919876543210");
  EXPECT_EQ(add("agent_a", "20-1").status, 422);
  EXPECT_EQ(request("DELETE", "/v1/dnd_numbers?agent_uuid=agent_a&phone=201").status, 200);
  EXPECT_FALSE(blocked("agent_a", "201"));
  locked([&] { ctx_.calls = nullptr; });
}

TEST_F(ApiDnd, AddingANumberAlreadyOnTheListIs200WithTheExistingEntry) {
  ApiReply first = add("agent_a", "9876543210", R"(,"reason":"first")");
  ASSERT_EQ(first.status, 201) << first.body;
  clock_.advance_ms(60'000);
  // Another spelling of the same number, another reason: the entry already there, unchanged.
  ApiReply again = add("agent_a", "+91 98765-43210", R"(,"reason":"second")");
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(api_keys(again.json.get()), (std::vector<std::string>{"success", "data", "message"}));
  EXPECT_TRUE(cJSON_IsTrue(again.get("success")));
  EXPECT_EQ(api_str(again.json.get(), "message"), "Phone is already on the DND list");
  EXPECT_EQ(api_keys(again.data()), kEntryKeys);
  EXPECT_EQ(api_num(again.data(), "id"), api_num(first.data(), "id"));
  EXPECT_EQ(api_str(again.data(), "reason"), "first");
  EXPECT_EQ(api_str(again.data(), "created_at"), kT0Ist);
  ApiReply list = request("GET", "/v1/dnd_numbers?agent_uuid=agent_a");
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(api_num(cJSON_GetObjectItem(list.json.get(), "meta"), "total_count"), 1);
}

TEST_F(ApiDnd, AddValidationFailuresAre422NamingTheField) {
  const std::string reason500(500, 'r');
  const std::string reason501(501, 'r');
  struct Case {
    std::string body, want;
  };
  const std::vector<Case> cases = {
      {"[1]", "request body must be a JSON object"},
      {"not json", "request body is not valid JSON"},
      {R"({"phone":"9876543210"})", "agent_uuid: required"},
      {R"({"agent_uuid":"","phone":"9876543210"})", "agent_uuid: required (got an empty string)"},
      {R"({"agent_uuid":null,"phone":"9876543210"})", "agent_uuid: required"},
      {R"({"agent_uuid":7,"phone":"9876543210"})", "agent_uuid: must be a string"},
      {R"({"agent_uuid":"agent_a"})", "phone: required"},
      {R"({"agent_uuid":"agent_a","phone":""})", "phone: required (got an empty string)"},
      {R"({"agent_uuid":"agent_a","phone":9876543210})", "phone: must be a string"},
      {R"({"agent_uuid":"agent_a","phone":")" + std::string(33, '9') + "\"}", "phone: longer than 32"},
      {R"({"agent_uuid":"agent_a","phone":"12345"})", "phone: "},
      {R"({"agent_uuid":"agent_a","phone":"98765abcde"})", "phone: "},
      {R"({"agent_uuid":"agent_a","phone":"9876543210","reason":5})", "reason: must be a string"},
      {R"({"agent_uuid":"agent_a","phone":"9876543210","reason":")" + reason501 + "\"}",
       "reason: longer than 500 characters (501)"},
      {R"({"agent_uuid":"agent_a","phone":"9876543210","note":"x","country_code":"IN"})",
       R"(unknown field "note", "country_code" (expected agent_uuid, phone, reason))"},
      {R"({"agent_uuid":"agent_a","phone":"9876543210","a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7})",
       R"(unknown field "a", "b", "c", "d", "e" and 2 more (expected agent_uuid, phone, reason))"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body.substr(0, 100));
    test::expect_api_error(request("POST", "/v1/dnd_numbers", c.body), 422, c.want);
  }
  EXPECT_FALSE(blocked("agent_a", "+919876543210"));
  // The limit itself is fine.
  EXPECT_EQ(add("agent_a", "9876543210", R"(,"reason":")" + reason500 + "\"").status, 201);
}

TEST_F(ApiDnd, AddForAnUnknownAgentIs404AndOutsideTheTokenIs403) {
  test::expect_api_error(add("agent_nope", "9876543210"), 404,
                         R"(agent_uuid: no agent "agent_nope" on this box)");
  // An inactive agent still has a list: opt-outs outlive an agent's pause.
  EXPECT_EQ(add("agent_off", "9876543210").status, 201);
  test::expect_api_error(add("agent_a", "9876543210", "", kTokB), 403,
                         R"(agent_uuid: this API token may not use agent "agent_a")");
  // Checked before the rest, so a limited token learns nothing about the agent or its rules.
  test::expect_api_error(add("agent_nope", "x", R"(,"bogus":1)", kTokB), 403, "may not use agent");
  EXPECT_FALSE(blocked("agent_a", "+919876543210"));
  EXPECT_EQ(add("agent_b", "9876543210", "", kTokB).status, 201);
  EXPECT_EQ(request("POST", "/v1/dnd_numbers", "{}", "").status, 401);
}

// --- GET /v1/dnd_numbers ---

TEST_F(ApiDnd, ListIsNewestFirstWithMetaAndSearch) {
  const std::vector<std::string> phones = {"9876543210", "9876543211", "+14155550100", "9812345678"};
  for (const std::string& p : phones) {
    ASSERT_EQ(add("agent_a", p).status, 201);
    clock_.advance_ms(60'000);
  }
  ASSERT_EQ(add("agent_b", "9876543210").status, 201);
  ASSERT_EQ(add("agent_a", "9800000000").status, 201);
  ASSERT_EQ(request("DELETE", "/v1/dnd_numbers?agent_uuid=agent_a&phone=9800000000").status, 200);

  ApiReply r = request("GET", "/v1/dnd_numbers?agent_uuid=agent_a");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(api_keys(r.json.get()), (std::vector<std::string>{"success", "data", "meta"}));
  const cJSON* data = r.data();
  ASSERT_EQ(cJSON_GetArraySize(data), 4) << r.body;
  EXPECT_EQ(api_str(cJSON_GetArrayItem(data, 0), "phone"), "+919812345678");
  EXPECT_EQ(api_str(cJSON_GetArrayItem(data, 3), "phone"), "+919876543210");
  EXPECT_EQ(api_str(cJSON_GetArrayItem(data, 3), "created_at"), kT0Ist);
  EXPECT_EQ(api_str(cJSON_GetArrayItem(data, 2), "created_at"), "2026-05-29T01:57:40+05:30");
  for (const cJSON* e = data->child; e; e = e->next) {
    EXPECT_EQ(api_keys(e), kEntryKeys);
    EXPECT_EQ(api_str(e, "agent_uuid"), "agent_a");
  }
  const cJSON* meta = r.get("meta");
  EXPECT_EQ(api_keys(meta),
            (std::vector<std::string>{"current_page", "total_pages", "total_count", "per_page"}));
  EXPECT_EQ(api_num(meta, "current_page"), 1);
  EXPECT_EQ(api_num(meta, "total_pages"), 1);
  EXPECT_EQ(api_num(meta, "total_count"), 4);
  EXPECT_EQ(api_num(meta, "per_page"), 25);

  r = request("GET", "/v1/dnd_numbers?agent_uuid=agent_a&page=2&per_page=3");
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(cJSON_GetArraySize(r.data()), 1);
  EXPECT_EQ(api_str(cJSON_GetArrayItem(r.data(), 0), "phone"), "+919876543210");
  meta = r.get("meta");
  EXPECT_EQ(api_num(meta, "current_page"), 2);
  EXPECT_EQ(api_num(meta, "total_pages"), 2);
  EXPECT_EQ(api_num(meta, "total_count"), 4);
  EXPECT_EQ(api_num(meta, "per_page"), 3);
  r = request("GET", "/v1/dnd_numbers?agent_uuid=agent_a&page=9");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(cJSON_GetArraySize(r.data()), 0);
  EXPECT_EQ(api_num(r.get("meta"), "total_count"), 4);

  // Search: a substring of the E.164 number; separators dropped; '+' escaped or not.
  r = request("GET", "/v1/dnd_numbers?agent_uuid=agent_a&search=98765");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(api_num(r.get("meta"), "total_count"), 2);
  EXPECT_EQ(api_str(cJSON_GetArrayItem(r.data(), 0), "phone"), "+919876543211");
  r = request("GET", "/v1/dnd_numbers?agent_uuid=agent_a&search=%2B1415");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(api_num(r.get("meta"), "total_count"), 1);
  EXPECT_EQ(api_str(cJSON_GetArrayItem(r.data(), 0), "phone"), "+14155550100");
  r = request("GET", "/v1/dnd_numbers?agent_uuid=agent_a&search=98765%2043211");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(api_num(r.get("meta"), "total_count"), 1);
  r = request("GET", "/v1/dnd_numbers?agent_uuid=agent_a&search=555");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(api_num(r.get("meta"), "total_count"), 1);
  r = request("GET", "/v1/dnd_numbers?agent_uuid=agent_a&search=000000");
  ASSERT_EQ(r.status, 200);  // the removed number is not active
  EXPECT_EQ(api_num(r.get("meta"), "total_count"), 0);
  EXPECT_EQ(api_num(r.get("meta"), "total_pages"), 0);
  EXPECT_EQ(cJSON_GetArraySize(r.data()), 0);
  r = request("GET", "/v1/dnd_numbers?agent_uuid=agent_b", "", kTokB);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(api_num(r.get("meta"), "total_count"), 1);
}

TEST_F(ApiDnd, ListRefusesBadQueries) {
  struct Case {
    std::string query;
    long status;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"", 422, "agent_uuid: required"},
      {"?agent_uuid=", 422, "agent_uuid: required"},
      {"?search=9876", 422, "agent_uuid: required"},
      {"?agent_uuid=agent_a&per_page=101", 422, "per_page: must be an integer in 1..100"},
      {"?agent_uuid=agent_a&per_page=0", 422, "per_page: must be an integer in 1..100"},
      {"?agent_uuid=agent_a&page=0", 422, "page: must be a positive integer"},
      {"?agent_uuid=agent_a&page=abc", 422, "page: must be a positive integer"},
      {"?agent_uuid=agent_a&search=98%25", 422, "search: digits and '+' only"},
      {"?agent_uuid=agent_a&search=abc", 422, "search: digits and '+' only"},
      {"?agent_uuid=agent_a&phone=9876543210", 422, R"(query parameter "phone": unknown)"},
      {"?agent_uuid=agent_a&agent_uuid=agent_b", 422, "agent_uuid: given more than once"},
      {"?agent_uuid=agent_nope", 404, R"(agent_uuid: no agent "agent_nope" on this box)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.query);
    test::expect_api_error(request("GET", "/v1/dnd_numbers" + c.query), c.status, c.want);
  }
  test::expect_api_error(request("GET", "/v1/dnd_numbers?agent_uuid=agent_a", "", kTokB), 403,
                         R"(agent_uuid: this API token may not use agent "agent_a")");
  EXPECT_EQ(request("GET", "/v1/dnd_numbers?agent_uuid=agent_a", "", "").status, 401);
  EXPECT_EQ(request("PUT", "/v1/dnd_numbers", "{}").status, 405);
}

// --- DELETE /v1/dnd_numbers ---

TEST_F(ApiDnd, DeleteRemovesTheNormalisedNumber) {
  ASSERT_EQ(add("agent_a", "9876543210").status, 201);
  ASSERT_EQ(add("agent_b", "9876543210").status, 201);
  ASSERT_EQ(add("agent_a", "+14155550100").status, 201);
  ApiReply r = request("DELETE", "/v1/dnd_numbers?agent_uuid=agent_a&phone=098765%2043210");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(api_keys(r.json.get()), (std::vector<std::string>{"success", "message"}));
  EXPECT_TRUE(cJSON_IsTrue(r.get("success")));
  EXPECT_EQ(api_str(r.json.get(), "message"), "Phone removed from DND list");
  // The dialler may call it again at once; the other agent's list is untouched.
  EXPECT_FALSE(blocked("agent_a", "+919876543210"));
  EXPECT_TRUE(blocked("agent_b", "+919876543210"));
  test::expect_api_error(request("DELETE", "/v1/dnd_numbers?agent_uuid=agent_a&phone=9876543210"), 404,
                         "phone: not on the DND list of this agent");

  // A foreign number: '+' escaped, or sent raw (which may arrive as a space).
  r = request("DELETE", "/v1/dnd_numbers?agent_uuid=agent_a&phone=+14155550100");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(blocked("agent_a", "+14155550100"));
  ASSERT_EQ(add("agent_a", "+14155550100").status, 201);
  r = request("DELETE", "/v1/dnd_numbers?agent_uuid=agent_a&phone=%2B14155550100");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(blocked("agent_a", "+14155550100"));

  // Back on the list: a new entry (history is kept).
  r = add("agent_a", "9876543210");
  EXPECT_EQ(r.status, 201) << r.body;
}

TEST_F(ApiDnd, DeleteWithAMissingParamIs400InThePublishedShape) {
  for (const auto& [query, name] :
       std::vector<std::pair<std::string, std::string>>{{"?agent_uuid=agent_a", "phone"},
                                                        {"?agent_uuid=agent_a&phone=", "phone"},
                                                        {"?phone=9876543210", "agent_uuid"},
                                                        {"", "agent_uuid"},
                                                        {"?agent_uuid=&phone=9876543210", "agent_uuid"}}) {
    SCOPED_TRACE(query);
    ApiReply r = request("DELETE", "/v1/dnd_numbers" + query);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(api_keys(r.json.get()), (std::vector<std::string>{"success", "error", "details", "errors"}));
    EXPECT_TRUE(cJSON_IsFalse(r.get("success")));
    EXPECT_EQ(r.error(), "param is missing or the value is empty: " + name);
    EXPECT_TRUE(cJSON_IsNull(r.get("details")));
    ASSERT_EQ(cJSON_GetArraySize(r.get("errors")), 1);
    EXPECT_EQ(std::string(cJSON_GetArrayItem(r.get("errors"), 0)->valuestring), r.error());
  }
}

TEST_F(ApiDnd, DeleteRefusesOtherMistakes) {
  ASSERT_EQ(add("agent_b", "9876543210").status, 201);
  test::expect_api_error(request("DELETE", "/v1/dnd_numbers?agent_uuid=agent_b&phone=12345"), 400, "phone: ");
  test::expect_api_error(request("DELETE", "/v1/dnd_numbers?agent_uuid=agent_b&phone=98765abcde"), 400,
                         "phone: ");
  test::expect_api_error(request("DELETE", "/v1/dnd_numbers?agent_uuid=agent_b&phone=9876543210&reason=x"),
                         400, R"(query parameter "reason": unknown (expected agent_uuid, phone))");
  test::expect_api_error(request("DELETE", "/v1/dnd_numbers?agent_uuid=agent_nope&phone=9876543210"), 404,
                         R"(agent_uuid: no agent "agent_nope" on this box)");
  test::expect_api_error(request("DELETE", "/v1/dnd_numbers?agent_uuid=agent_a&phone=9876543210", "", kTokB),
                         403, R"(agent_uuid: this API token may not use agent "agent_a")");
  EXPECT_EQ(request("DELETE", "/v1/dnd_numbers?agent_uuid=agent_b&phone=9876543210", "", "").status, 401);
  EXPECT_TRUE(blocked("agent_b", "+919876543210"));
  EXPECT_EQ(request("DELETE", "/v1/dnd_numbers?agent_uuid=agent_b&phone=9876543210", "", kTokB).status, 200);
  EXPECT_FALSE(blocked("agent_b", "+919876543210"));
}

}  // namespace
}  // namespace osvi::daemon
