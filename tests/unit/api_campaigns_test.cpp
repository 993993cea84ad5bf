// The campaigns API through a real in-process HTTP server, a real store and CampaignService: contact uploads
// (spec 3.7), the status report (3.8) and the extensions (create, list, read, patch, contacts, enqueue).
#include <gtest/gtest.h>
#include <poll.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "osvi/api/api.hpp"
#include "osvi/base/time_zone.hpp"
#include "osvi/campaigns/campaigns.hpp"
#include "osvi/campaigns/dialer.hpp"
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

class CountingDialer : public DialerControl {
 public:
  void poke() override { ++pokes; }
  std::atomic<int> pokes{0};
};

struct Reply {
  long status = 0;
  std::string body;
  net::JsonPtr json;
  const cJSON* get(const char* name) const { return cJSON_GetObjectItemCaseSensitive(json.get(), name); }
  const cJSON* data() const { return get("data"); }
  std::string error() const {
    const cJSON* e = get("error");
    return cJSON_IsString(e) ? e->valuestring : "";
  }
};

const cJSON* at(const cJSON* o, const char* name) {
  return cJSON_GetObjectItemCaseSensitive(o, name);
}

std::string str(const cJSON* o, const char* name) {
  const cJSON* v = at(o, name);
  return cJSON_IsString(v) ? v->valuestring : (cJSON_IsNull(v) ? "<null>" : "<missing>");
}

double num(const cJSON* o, const char* name) {
  const cJSON* v = at(o, name);
  return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

// The sorted member names of an object: shapes are compared exactly.
std::vector<std::string> keys(const cJSON* o) {
  std::vector<std::string> out;
  const cJSON* item = nullptr;
  cJSON_ArrayForEach(item, o) {
    out.emplace_back(item->string);
  }
  std::sort(out.begin(), out.end());
  return out;
}

CampaignConfig config_campaign() {
  CampaignConfig c;
  c.id = 1;
  c.name = "From the file";
  c.agents = {{"agent_a", true}, {"agent_b", true}};
  c.window_start_min = 9 * 60;
  c.window_end_min = 18 * 60;
  return c;
}

class ApiCampaigns : public ::testing::Test {
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
    for (const auto& a : agents) {
      AgentConfig c;
      c.agent_uuid = a.agent_uuid;
      c.name = a.name;
      c.mode = a.mode == "chat" ? AgentMode::chat : AgentMode::voice;
      c.active = a.active;
      config_.agents.push_back(c);
    }
    config_.site.utc_offset_minutes = 330;
    config_.site.country = "IN";
    config_.campaigns = {config_campaign()};
    tokens_ = {ApiToken{kTok, {}, true}, ApiToken{kTokB, {"agent_b"}, false}};

    service_ = std::make_unique<CampaignService>(*store_, zones_);
    service_->set_dialer(&dialer_);
    service_->set_can_dial([this] { return can_dial_.load(); });
    ASSERT_TRUE(service_->sync(config_).ok());

    ctx_.config = &config_;
    ctx_.tokens = &tokens_;
    ctx_.store = store_.get();
    ctx_.clock = &clock_;
    ctx_.campaigns = service_.get();
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

  Reply request(const std::string& method, const std::string& path, const std::string& body = {},
                const std::string& token = kTok, const std::string& type = "application/json") {
    auto r =
        test::http_request(method, "http://127.0.0.1:" + std::to_string(port_) + path, token, body, type);
    Reply out{r.status, r.body, nullptr};
    std::string why;
    out.json = net::json_parse(out.body, &why);
    return out;
  }

  // A campaign of the API with agent_a (and agent_b when both).
  void create_api_campaign(int64_t id, bool both = false) {
    const std::string agents = both ? R"(["agent_a", "agent_b"])" : R"(["agent_a"])";
    Reply r = request("POST", "/v1/campaigns",
                      R"({"id": )" + std::to_string(id) + R"(, "name": "API )" + std::to_string(id) +
                          R"(", "agents": )" + agents + "}");
    ASSERT_EQ(r.status, 201) << r.body;
  }

  Reply upload(int64_t campaign, const std::string& contacts, bool enqueue = false,
               const std::string& agent = "agent_a", const std::string& token = kTok) {
    return request("POST", "/v1/campaigns/" + std::to_string(campaign) + "/contacts",
                   R"({"agent_uuid": ")" + agent + R"(", "enqueue": )" + (enqueue ? "true" : "false") +
                       R"(, "contacts": )" + contacts + "}",
                   token);
  }

  void expect_error(const Reply& r, long status, const std::string& needle) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_FALSE(cJSON_IsTrue(r.get("success"))) << r.body;
    const cJSON* errors = r.get("errors");
    ASSERT_TRUE(cJSON_IsArray(errors)) << r.body;
    ASSERT_GE(cJSON_GetArraySize(errors), 1) << r.body;
    EXPECT_EQ(std::string(cJSON_GetArrayItem(errors, 0)->valuestring), r.error());
    EXPECT_NE(r.error().find(needle), std::string::npos) << "'" << needle << "' not in: " << r.body;
  }

  test::TempDir dir_;
  ManualClock clock_{kT0};
  std::unique_ptr<Store> store_;
  TimeZones zones_;
  Config config_;
  std::vector<ApiToken> tokens_;
  CountingDialer dialer_;
  std::atomic<bool> can_dial_{true};
  std::unique_ptr<CampaignService> service_;
  ApiContext ctx_;
  std::unique_ptr<Api> api_;
  test::ServedHttp served_;
  uint16_t port_ = 0;
};

// --- POST /v1/campaigns/{id}/contacts ---

TEST_F(ApiCampaigns, UploadReportsEveryCountAndKeepsTheOtherKeysAsVariables) {
  create_api_campaign(7);
  const int pokes = dialer_.pokes;
  Reply r = upload(7, R"([
      {"phone": "9876543210", "person_name": "Ravi", "plan": "Pro", "due": 1200},
      {"phone": "+91 98765 00000", "person_name": "Asha"},
      {"phone": "09876511111"}])");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(cJSON_IsTrue(r.get("success")));
  const cJSON* d = r.data();
  EXPECT_EQ(keys(d),
            (std::vector<std::string>{"campaign_upload_id", "contacts_accepted", "contacts_received",
                                      "dnd_skipped", "dnd_skipped_count", "duplicates_removed", "enqueued",
                                      "file_name", "invalid", "invalid_count", "queued_calls"}));
  EXPECT_GE(num(d, "campaign_upload_id"), 1);
  EXPECT_EQ(num(d, "contacts_received"), 3);
  EXPECT_EQ(num(d, "contacts_accepted"), 3);
  EXPECT_EQ(num(d, "duplicates_removed"), 0);
  EXPECT_TRUE(cJSON_IsFalse(at(d, "enqueued")));
  EXPECT_EQ(num(d, "queued_calls"), 0);
  EXPECT_EQ(cJSON_GetArraySize(at(d, "dnd_skipped")), 0);
  EXPECT_EQ(cJSON_GetArraySize(at(d, "invalid")), 0);
  // "<unix seconds>-api_contacts_<16 lower hex>.csv" (checked by hand: std::regex trips GCC 12's
  // -Wmaybe-uninitialized in sanitizer builds).
  const std::string file = str(d, "file_name");
  const std::string prefix = "1780000000-api_contacts_";
  ASSERT_EQ(file.size(), prefix.size() + 16 + 4) << file;
  EXPECT_EQ(file.substr(0, prefix.size()), prefix);
  EXPECT_EQ(file.substr(file.size() - 4), ".csv");
  EXPECT_TRUE(std::all_of(file.begin() + static_cast<long>(prefix.size()), file.end() - 4, [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  })) << file;
  EXPECT_EQ(dialer_.pokes, pokes);  // held: nothing became due

  Reply list = request("GET", "/v1/campaigns/7/contacts");
  ASSERT_EQ(list.status, 200) << list.body;
  ASSERT_EQ(cJSON_GetArraySize(list.data()), 3);
  const cJSON* first = cJSON_GetArrayItem(list.data(), 0);
  EXPECT_EQ(str(first, "phone"), "+919876543210");
  EXPECT_EQ(str(first, "person_name"), "Ravi");
  EXPECT_EQ(net::json_print(at(first, "variables")), R"({"plan":"Pro","due":1200})");
  EXPECT_EQ(str(first, "state"), "held");
  // libphonenumber's name for India's zone (a tzdata alias of Asia/Kolkata).
  EXPECT_EQ(str(first, "time_zone"), "Asia/Calcutta");
  EXPECT_EQ(str(first, "next_attempt_at"), "<null>");
  EXPECT_EQ(num(first, "campaign_upload_id"), num(d, "campaign_upload_id"));
  EXPECT_EQ(str(cJSON_GetArrayItem(list.data(), 1), "phone"), "+919876500000");
  EXPECT_EQ(str(cJSON_GetArrayItem(list.data(), 2), "phone"), "+919876511111");
  EXPECT_EQ(str(cJSON_GetArrayItem(list.data(), 2), "variables"), "<null>");
}

TEST_F(ApiCampaigns, DuplicatesWithinTheRequestAndAgainstTheCampaignKeepTheLongerName) {
  create_api_campaign(7);
  Reply r = upload(7, R"([
      {"phone": "9876543210", "person_name": "Ravi"},
      {"phone": "+919876543210", "person_name": "Ravi Kumar"},
      {"phone": "09876543210", "person_name": "R"},
      {"phone": "9876500000"}])");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(num(r.data(), "contacts_received"), 4);
  EXPECT_EQ(num(r.data(), "contacts_accepted"), 2);
  EXPECT_EQ(num(r.data(), "duplicates_removed"), 2);

  // A later upload: one number already there with a shorter name, one with a longer name, one new.
  Reply again = upload(7, R"([
      {"phone": "9876543210", "person_name": "Ravi Kumar Sharma"},
      {"phone": "9876500000", "person_name": "Asha"},
      {"phone": "9876522222", "person_name": "Meena"}])");
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(num(again.data(), "contacts_accepted"), 1);
  EXPECT_EQ(num(again.data(), "duplicates_removed"), 2);

  Reply list = request("GET", "/v1/campaigns/7/contacts");
  ASSERT_EQ(list.status, 200) << list.body;
  ASSERT_EQ(cJSON_GetArraySize(list.data()), 3);
  EXPECT_EQ(str(cJSON_GetArrayItem(list.data(), 0), "person_name"), "Ravi Kumar Sharma");
  EXPECT_EQ(str(cJSON_GetArrayItem(list.data(), 1), "person_name"), "Asha");
  EXPECT_EQ(str(cJSON_GetArrayItem(list.data(), 2), "person_name"), "Meena");

  // Another campaign is separate: the same number is new there.
  create_api_campaign(8);
  Reply other = upload(8, R"([{"phone": "9876543210", "person_name": "X"}])");
  ASSERT_EQ(other.status, 200) << other.body;
  EXPECT_EQ(num(other.data(), "contacts_accepted"), 1);
}

TEST_F(ApiCampaigns, DndNumbersAreSkippedAndReported) {
  create_api_campaign(7);
  locked([&] {
    ASSERT_TRUE(store_->dnd()
                    .add_entry("agent_a", "+919876543210", "asked not to be called", "api", std::nullopt)
                    .ok());
    ASSERT_TRUE(store_->dnd().add_entry("agent_a", "+919876500000", std::nullopt, "api", std::nullopt).ok());
    ASSERT_TRUE(
        store_->dnd().add_entry("agent_b", "+919876511111", "other agent's list", "api", std::nullopt).ok());
  });
  Reply r = upload(7, R"([{"phone": "9876543210"}, {"phone": "9876500000"}, {"phone": "9876511111"},
                          {"phone": "+919876543210"}])");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(num(r.data(), "contacts_received"), 4);
  EXPECT_EQ(num(r.data(), "contacts_accepted"), 1);   // agent_b's list does not apply to agent_a
  EXPECT_EQ(num(r.data(), "duplicates_removed"), 1);  // the same DND number again, reported once
  const cJSON* dnd = at(r.data(), "dnd_skipped");
  ASSERT_EQ(cJSON_GetArraySize(dnd), 2) << r.body;
  EXPECT_EQ(keys(cJSON_GetArrayItem(dnd, 0)), (std::vector<std::string>{"phone", "reason"}));
  EXPECT_EQ(str(cJSON_GetArrayItem(dnd, 0), "phone"), "+919876543210");
  EXPECT_EQ(str(cJSON_GetArrayItem(dnd, 0), "reason"), "asked not to be called");
  EXPECT_EQ(str(cJSON_GetArrayItem(dnd, 1), "phone"), "+919876500000");
  EXPECT_EQ(str(cJSON_GetArrayItem(dnd, 1), "reason"), "on the do-not-disturb list");
}

TEST_F(ApiCampaigns, InvalidContactsAreReportedOneByOne) {
  create_api_campaign(7);
  std::string many_keys = R"({"phone": "9876500001")";
  for (int i = 0; i < 51; ++i) many_keys += ", \"k" + std::to_string(i) + "\": 1";
  many_keys += "}";
  const std::string big_value(4100, 'x');
  Reply r =
      upload(7, R"([{"phone": "12"}, {"phone": "98765abcde"}, {"person_name": "No phone"}, 42,
                          {"phone": 9876543210}, {"phone": "9876500002", "person_name": ")" +
                    std::string(201, 'n') + R"("}, )" + many_keys + R"(, {"phone": "9876500003", "note": ")" +
                    big_value + R"("}, {"phone": "9876500004", "person_name": 5}, {"phone": "9876543210"}])");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(num(r.data(), "contacts_received"), 10);
  EXPECT_EQ(num(r.data(), "contacts_accepted"), 1);
  const cJSON* invalid = at(r.data(), "invalid");
  ASSERT_EQ(cJSON_GetArraySize(invalid), 9) << r.body;
  const struct {
    int index;
    const char* phone;
    const char* reason;
  } want[] = {{0, "12", "phone: "},
              {1, "98765abcde", "phone: "},
              {2, "", "phone: required"},
              {3, "", "must be a JSON object"},
              {4, "", "phone: must be a string"},
              {5, "9876500002", "person_name: longer than 200 characters"},
              {6, "9876500001", "51 prompt variables, more than the 50"},
              {7, "9876500003", "more than the 4096"},
              {8, "9876500004", "person_name: must be a string"}};
  for (int i = 0; i < 9; ++i) {
    const cJSON* item = cJSON_GetArrayItem(invalid, i);
    EXPECT_EQ(keys(item), (std::vector<std::string>{"index", "phone", "reason"}));
    EXPECT_EQ(num(item, "index"), want[i].index) << i;
    EXPECT_EQ(str(item, "phone"), want[i].phone) << i;
    EXPECT_NE(str(item, "reason").find(want[i].reason), std::string::npos)
        << i << ": " << str(item, "reason");
  }
}

// A file of bad rows must not become an answer (and a stored result) of the same size: the lists stop at
// 1,000 items, the counts do not.
TEST_F(ApiCampaigns, ProblemListsStopAtAThousandWithCompleteCounts) {
  create_api_campaign(7);
  std::string body = "[";
  for (int i = 0; i < 1500; ++i) body += std::string(i ? "," : "") + R"({"phone": "12"})";
  body += "]";
  Reply r = upload(7, body);
  ASSERT_EQ(r.status, 200) << r.body.substr(0, 300);
  EXPECT_EQ(num(r.data(), "contacts_received"), 1500);
  EXPECT_EQ(num(r.data(), "invalid_count"), 1500);
  EXPECT_EQ(num(r.data(), "dnd_skipped_count"), 0);
  const cJSON* invalid = at(r.data(), "invalid");
  ASSERT_EQ(cJSON_GetArraySize(invalid), 1000);
  EXPECT_EQ(num(cJSON_GetArrayItem(invalid, 999), "index"), 999);
}

TEST_F(ApiCampaigns, RequestValidationIs422WithBothErrorShapes) {
  create_api_campaign(7);
  expect_error(request("POST", "/v1/campaigns/7/contacts", R"({"contacts": [{"phone": "9876543210"}]})"), 422,
               "agent_uuid: required");
  expect_error(request("POST", "/v1/campaigns/7/contacts", R"({"agent_uuid": 5, "contacts": []})"), 422,
               "agent_uuid: must be a non-empty string");
  expect_error(request("POST", "/v1/campaigns/7/contacts", R"({"agent_uuid": "agent_a"})"), 422,
               "contacts: required");
  expect_error(request("POST", "/v1/campaigns/7/contacts", R"({"agent_uuid": "agent_a", "contacts": {}})"),
               422, "contacts: must be an array");
  expect_error(upload(7, "[]"), 422, "contacts: must not be empty");
  expect_error(
      request("POST", "/v1/campaigns/7/contacts",
              R"({"agent_uuid": "agent_a", "contacts": [{"phone": "9876543210"}], "enqueue": "yes"})"),
      422, "enqueue: must be a boolean");
  expect_error(request("POST", "/v1/campaigns/7/contacts",
                       R"({"agent_uuid": "agent_a", "contacts": [{"phone": "9876543210"}], "campaign": 7})"),
               422, "\"campaign\": unknown field");
  // The agent must be one of the campaign's, and an active voice agent.
  expect_error(upload(7, R"([{"phone": "9876543210"}])", false, "agent_b"), 422,
               "is not an agent of campaign 7");
  Reply patched = request("PATCH", "/v1/campaigns/7", R"({"agents": ["agent_a", "agent_off"]})");
  ASSERT_EQ(patched.status, 200) << patched.body;
  expect_error(upload(7, R"([{"phone": "9876543210"}])", false, "agent_off"), 422,
               "not an active voice agent");
  // Nothing was stored by the refused requests.
  Reply status = request("GET", "/v1/campaigns/7/status");
  EXPECT_EQ(cJSON_GetArraySize(at(status.data(), "uploads")), 0) << status.body;
}

TEST_F(ApiCampaigns, MoreThan10000ContactsIs422TellingToSplit) {
  create_api_campaign(7);
  std::string contacts = "[";
  for (int i = 0; i < 10001; ++i)
    contacts += std::string(i ? "," : "") + R"({"phone":"98765)" + std::to_string(10000 + i) + "\"}";
  contacts += "]";
  Reply r = upload(7, contacts);
  expect_error(r, 422, "10001 items, more than the 10000");
  EXPECT_NE(r.error().find("split"), std::string::npos);
}

TEST_F(ApiCampaigns, UnknownOrMalformedCampaignIdIs404) {
  for (const char* id : {"99", "0", "-1", "abc", "1.5", "9999999999999999"}) {
    expect_error(request("POST", std::string("/v1/campaigns/") + id + "/contacts",
                         R"({"agent_uuid": "agent_a", "contacts": [{"phone": "9876543210"}]})"),
                 404, "campaign");
    expect_error(request("GET", std::string("/v1/campaigns/") + id + "/status"), 404, "campaign");
    expect_error(request("GET", std::string("/v1/campaigns/") + id), 404, "campaign");
  }
}

TEST_F(ApiCampaigns, EnqueueNeedsALineQueuesAndPokesTheDialler) {
  create_api_campaign(7);
  can_dial_ = false;
  expect_error(upload(7, R"([{"phone": "9876543210"}])", true), 409, "no active outbound line");
  can_dial_ = true;
  const int before = dialer_.pokes;
  Reply r = upload(7, R"([{"phone": "9876543210"}, {"phone": "9876500000"}])", true);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(cJSON_IsTrue(at(r.data(), "enqueued")));
  EXPECT_EQ(num(r.data(), "queued_calls"), 2);
  EXPECT_EQ(dialer_.pokes, before + 1);
  Reply list = request("GET", "/v1/campaigns/7/contacts?state=queued");
  ASSERT_EQ(list.status, 200) << list.body;
  ASSERT_EQ(cJSON_GetArraySize(list.data()), 2);
  EXPECT_EQ(str(cJSON_GetArrayItem(list.data(), 0), "next_attempt_at"), "2026-05-29T01:56:40+05:30");

  Reply status = request("GET", "/v1/campaigns/7/status");
  ASSERT_EQ(status.status, 200) << status.body;
  const cJSON* up = cJSON_GetArrayItem(at(status.data(), "uploads"), 0);
  const cJSON* q = cJSON_GetArrayItem(at(up, "queues"), 0);
  EXPECT_EQ(str(q, "agent_uuid"), "agent_a");
  EXPECT_EQ(num(q, "total_queued"), 2);
  EXPECT_TRUE(cJSON_IsFalse(at(q, "completed")));
}

TEST_F(ApiCampaigns, HeldUploadIsEnqueuedLater) {
  create_api_campaign(7);
  create_api_campaign(8);
  Reply r = upload(7, R"([{"phone": "9876543210"}, {"phone": "9876500000"}])");
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string id = std::to_string(static_cast<int64_t>(num(r.data(), "campaign_upload_id")));
  expect_error(request("POST", "/v1/campaigns/8/uploads/" + id + "/enqueue", "{}"), 404, "has no upload");
  expect_error(request("POST", "/v1/campaigns/7/uploads/x/enqueue", "{}"), 404, "upload");
  expect_error(request("POST", "/v1/campaigns/7/uploads/" + id + "/enqueue", R"({"now": true})"), 422,
               "unknown field");
  can_dial_ = false;
  expect_error(request("POST", "/v1/campaigns/7/uploads/" + id + "/enqueue", "{}"), 409,
               "no active outbound");
  can_dial_ = true;
  const int before = dialer_.pokes;
  Reply e = request("POST", "/v1/campaigns/7/uploads/" + id + "/enqueue", "{}");
  ASSERT_EQ(e.status, 200) << e.body;
  EXPECT_EQ(num(e.data(), "contacts_enqueued"), 2);
  EXPECT_EQ(num(e.data(), "queued_calls"), 2);
  EXPECT_EQ(dialer_.pokes, before + 1);
  Reply again = request("POST", "/v1/campaigns/7/uploads/" + id + "/enqueue", "{}");
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(num(again.data(), "contacts_enqueued"), 0);
}

// A body that is not JSON goes to the CSV importer (campaign_csv.cpp, its own tests in campaign_csv_test): a
// CSV file is imported there, anything else is 415 naming both types the path takes.
TEST_F(ApiCampaigns, NonJsonBodiesGoToTheCsvImporter) {
  create_api_campaign(7);
  Reply csv = request("POST", "/v1/campaigns/7/contacts?agent_uuid=agent_a",
                      "phone,person_name\n9876543210,Ravi\n", kTok, "text/csv");
  ASSERT_EQ(csv.status, 200) << csv.body;
  EXPECT_EQ(num(csv.data(), "contacts_accepted"), 1);
  expect_error(request("POST", "/v1/campaigns/7/contacts", "phone\n9876543211\n", kTok, "text/plain"), 415,
               "text/csv or application/json");
  expect_error(request("POST", "/v1/campaigns/7/contacts.csv", "{}", kTok, "application/json"), 415,
               "expected text/csv");
  expect_error(
      request("POST", "/v1/campaigns/99/contacts.csv?agent_uuid=agent_a", "phone\n1\n", kTok, "text/csv"),
      404, "campaign");
}

// --- GET /v1/campaigns/{id}/status ---

TEST_F(ApiCampaigns, StatusHasExactlyTheDocumentedShape) {
  create_api_campaign(7);
  Reply r = upload(7, R"([{"phone": "9876543210"}])");
  ASSERT_EQ(r.status, 200) << r.body;
  const int64_t upload_id = static_cast<int64_t>(num(r.data(), "campaign_upload_id"));
  int n = 0;
  for (const char* status : {"picked", "picked", "not_picked"}) {
    CallRecord c;
    c.call_id = "0190a1b2-c3d4-7e5f-8a9b-00000000000" + std::to_string(n++);
    c.agent_uuid = "agent_a";
    c.agent_name = "Alpha";
    c.phone_number = "+919876543210";
    c.status = status;
    c.created_at_ms = kT0;
    c.campaign_id = 7;
    c.campaign_upload_id = upload_id;
    locked([&] { ASSERT_TRUE(store_->calls().insert(c).ok()); });
  }
  Reply s = request("GET", "/v1/campaigns/7/status");
  ASSERT_EQ(s.status, 200) << s.body;
  const cJSON* d = s.data();
  EXPECT_EQ(keys(d), (std::vector<std::string>{"calls", "campaign", "uploads"}));
  const cJSON* c = at(d, "campaign");
  EXPECT_EQ(keys(c), (std::vector<std::string>{"created_at", "id", "is_retry_enabled", "name", "retry_delay",
                                               "retry_threshold", "status"}));
  EXPECT_EQ(num(c, "id"), 7);
  EXPECT_EQ(str(c, "name"), "API 7");
  EXPECT_EQ(str(c, "status"), "active");
  EXPECT_TRUE(cJSON_IsFalse(at(c, "is_retry_enabled")));
  EXPECT_EQ(num(c, "retry_threshold"), 2);
  EXPECT_EQ(num(c, "retry_delay"), 1800);
  EXPECT_EQ(str(c, "created_at"), "2026-05-29T01:56:40+05:30");
  const cJSON* calls = at(d, "calls");
  EXPECT_EQ(keys(calls), (std::vector<std::string>{"by_status", "total"}));
  EXPECT_EQ(num(calls, "total"), 3);
  EXPECT_EQ(net::json_print(at(calls, "by_status")), R"({"not_picked":1,"picked":2})");
  const cJSON* up = cJSON_GetArrayItem(at(d, "uploads"), 0);
  EXPECT_EQ(keys(up), (std::vector<std::string>{"agent_uuid", "campaign_upload_id", "created_at", "file_name",
                                                "queues"}));
  EXPECT_EQ(num(up, "campaign_upload_id"), upload_id);
  EXPECT_EQ(str(up, "file_name"), str(r.data(), "file_name"));
  EXPECT_EQ(str(up, "agent_uuid"), "agent_a");
  const cJSON* q = cJSON_GetArrayItem(at(up, "queues"), 0);
  EXPECT_EQ(keys(q), (std::vector<std::string>{"agent_uuid", "completed", "total_queued"}));
  EXPECT_EQ(num(q, "total_queued"), 0);
  EXPECT_TRUE(cJSON_IsFalse(at(q, "completed")));  // held, not enqueued

  // The upload id filters the call list too (spec 3.7).
  Reply filtered = request("GET", "/v1/calls?campaign_id=7&campaign_upload_id=" + std::to_string(upload_id));
  ASSERT_EQ(filtered.status, 200) << filtered.body;
  EXPECT_EQ(cJSON_GetArraySize(filtered.data()), 3);
  Reply none = request("GET", "/v1/calls?campaign_id=7&campaign_upload_id=" + std::to_string(upload_id + 1));
  ASSERT_EQ(none.status, 200) << none.body;
  EXPECT_EQ(cJSON_GetArraySize(none.data()), 0);
  Reply other = request("GET", "/v1/calls?campaign_id=8");
  EXPECT_EQ(cJSON_GetArraySize(other.data()), 0);
}

// --- extensions: campaigns ---

TEST_F(ApiCampaigns, CreateListGetAndPatchApiCampaigns) {
  Reply r = request("POST", "/v1/campaigns", R"({"id": 12, "name": "Renewals", "agents": ["agent_a"],
      "schedule": {"window": "09:30-18:00", "days": ["mon", "tue"]}, "is_retry_enabled": true,
      "retry_threshold": 3, "retry_delay": 600})");
  ASSERT_EQ(r.status, 201) << r.body;
  const cJSON* d = r.data();
  EXPECT_EQ(keys(d), (std::vector<std::string>{"agents", "created_at", "id", "is_retry_enabled",
                                               "max_concurrent_calls_per_agent", "name", "queued_contacts",
                                               "retry_delay", "retry_on", "retry_threshold", "schedule",
                                               "source", "status", "updated_at"}));
  EXPECT_EQ(str(d, "source"), "api");
  EXPECT_EQ(num(d, "queued_contacts"), 0);
  EXPECT_EQ(net::json_print(at(d, "agents")), R"([{"agent_uuid":"agent_a","active":true}])");
  EXPECT_EQ(net::json_print(at(d, "schedule")),
            R"({"starts_at":null,"ends_at":null,"window":"09:30-18:00","days":["mon","tue"]})");
  EXPECT_EQ(num(d, "retry_delay"), 600);

  expect_error(request("POST", "/v1/campaigns", R"({"id": 12, "name": "Again", "agents": ["agent_a"]})"), 409,
               "already exists");
  expect_error(request("POST", "/v1/campaigns", R"({"id": 1, "name": "Taken", "agents": ["agent_a"]})"), 409,
               "defined by the configuration");
  expect_error(
      request("POST", "/v1/campaigns", R"({"id": 13, "name": "X", "agents": ["agent_a"], "colour": 1})"), 422,
      "colour");
  expect_error(request("POST", "/v1/campaigns", R"({"id": 13, "name": "X", "agents": ["agent_chat"]})"), 422,
               "agent_chat");
  expect_error(request("POST", "/v1/campaigns", R"({"id": 13, "name": "X", "agents": ["agent_zz"]})"), 422,
               "agent_zz");

  Reply list = request("GET", "/v1/campaigns");
  ASSERT_EQ(list.status, 200) << list.body;
  ASSERT_EQ(cJSON_GetArraySize(list.data()), 2);
  EXPECT_EQ(num(cJSON_GetArrayItem(list.data(), 0), "id"), 1);
  EXPECT_EQ(str(cJSON_GetArrayItem(list.data(), 0), "source"), "config");
  EXPECT_EQ(num(cJSON_GetArrayItem(list.data(), 1), "id"), 12);

  clock_.advance_ms(60'000);
  Reply p = request("PATCH", "/v1/campaigns/12",
                    R"({"name": "Renewals Q3", "schedule": {"window": "10:00-12:00"}})");
  ASSERT_EQ(p.status, 200) << p.body;
  EXPECT_EQ(str(p.data(), "name"), "Renewals Q3");
  EXPECT_EQ(str(at(p.data(), "schedule"), "window"), "10:00-12:00");
  EXPECT_EQ(net::json_print(at(at(p.data(), "schedule"), "days")), R"(["mon","tue"])");  // kept
  EXPECT_EQ(num(p.data(), "retry_threshold"), 3);
  EXPECT_EQ(str(p.data(), "created_at"), "2026-05-29T01:56:40+05:30");
  EXPECT_EQ(str(p.data(), "updated_at"), "2026-05-29T01:57:40+05:30");
  expect_error(request("PATCH", "/v1/campaigns/12", R"({"id": 13})"), 422, "id");
  expect_error(request("PATCH", "/v1/campaigns/12", R"({"retry_delay": "soon"})"), 422, "retry_delay");
  expect_error(request("PATCH", "/v1/campaigns/99", R"({"name": "x"})"), 404, "no campaign 99");

  Reply g = request("GET", "/v1/campaigns/12");
  ASSERT_EQ(g.status, 200) << g.body;
  EXPECT_EQ(str(g.data(), "name"), "Renewals Q3");

  const int before = dialer_.pokes;
  Reply off = request("PATCH", "/v1/campaigns/12", R"({"status": "inactive"})");
  ASSERT_EQ(off.status, 200) << off.body;
  EXPECT_EQ(dialer_.pokes, before);
  Reply on = request("PATCH", "/v1/campaigns/12", R"({"status": "active"})");
  ASSERT_EQ(on.status, 200) << on.body;
  EXPECT_EQ(dialer_.pokes, before + 1);  // activation: the dialler looks again
}

TEST_F(ApiCampaigns, ConfigCampaignsTakeOnlyRuntimeSwitchesThatSurviveReloads) {
  Reply bad = request("PATCH", "/v1/campaigns/1", R"({"name": "Renamed"})");
  expect_error(bad, 409, "name: campaign 1 is defined by the configuration");
  expect_error(request("PATCH", "/v1/campaigns/1", R"({"agents": ["agent_a"]})"), 409,
               "not added or removed");
  Reply off =
      request("PATCH", "/v1/campaigns/1",
              R"({"status": "inactive", "agents": [{"agent_uuid": "agent_a", "active": false}, "agent_b"]})");
  ASSERT_EQ(off.status, 200) << off.body;
  EXPECT_EQ(str(off.data(), "status"), "inactive");
  EXPECT_EQ(str(off.data(), "source"), "config");

  // A reload with the same definition keeps the switches.
  locked([&] { ASSERT_TRUE(service_->sync(config_).ok()); });
  Reply kept = request("GET", "/v1/campaigns/1");
  ASSERT_EQ(kept.status, 200) << kept.body;
  EXPECT_EQ(str(kept.data(), "status"), "inactive");
  EXPECT_EQ(net::json_print(at(kept.data(), "agents")),
            R"([{"agent_uuid":"agent_a","active":false},{"agent_uuid":"agent_b","active":true}])");

  // A changed definition is applied as the configuration says, switches included.
  config_.campaigns[0].name = "From the file, edited";
  locked([&] { ASSERT_TRUE(service_->sync(config_).ok()); });
  Reply applied = request("GET", "/v1/campaigns/1");
  EXPECT_EQ(str(applied.data(), "name"), "From the file, edited");
  EXPECT_EQ(str(applied.data(), "status"), "active");
  EXPECT_EQ(net::json_print(at(applied.data(), "agents")),
            R"([{"agent_uuid":"agent_a","active":true},{"agent_uuid":"agent_b","active":true}])");

  // An API campaign whose id the configuration takes is the configuration's from then on.
  create_api_campaign(2);
  CampaignConfig two = config_campaign();
  two.id = 2;
  two.name = "Now in the file";
  config_.campaigns.push_back(two);
  locked([&] { ASSERT_TRUE(service_->sync(config_).ok()); });
  Reply taken = request("GET", "/v1/campaigns/2");
  EXPECT_EQ(str(taken.data(), "source"), "config");
  EXPECT_EQ(str(taken.data(), "name"), "Now in the file");

  // Gone from the configuration: paused, its queue kept.
  config_.campaigns.clear();
  locked([&] { ASSERT_TRUE(service_->sync(config_).ok()); });
  Reply gone = request("GET", "/v1/campaigns/1");
  ASSERT_EQ(gone.status, 200) << gone.body;
  EXPECT_EQ(str(gone.data(), "status"), "inactive");
}

TEST_F(ApiCampaigns, LimitedTokensSeeAndTouchOnlyTheirAgentsCampaigns) {
  create_api_campaign(7);  // agent_a only
  ASSERT_EQ(request("POST", "/v1/campaigns", R"({"id": 9, "name": "B", "agents": ["agent_b"]})").status, 201);
  Reply list = request("GET", "/v1/campaigns", "", kTokB);
  ASSERT_EQ(list.status, 200) << list.body;
  ASSERT_EQ(cJSON_GetArraySize(list.data()), 1);  // campaign 1 has agent_a too
  EXPECT_EQ(num(cJSON_GetArrayItem(list.data(), 0), "id"), 9);
  for (const char* path :
       {"/v1/campaigns/7", "/v1/campaigns/7/status", "/v1/campaigns/7/contacts", "/v1/campaigns/1/status"}) {
    expect_error(request("GET", path, "", kTokB), 403, "may not use campaign");
  }
  expect_error(request("PATCH", "/v1/campaigns/7", R"({"status": "inactive"})", kTokB), 403, "may not use");
  expect_error(upload(7, R"([{"phone": "9876543210"}])", false, "agent_b", kTokB), 403, "may not use");
  expect_error(upload(9, R"([{"phone": "9876543210"}])", false, "agent_a", kTokB), 403, "agent_a");
  expect_error(request("POST", "/v1/campaigns", R"({"id": 10, "name": "A", "agents": ["agent_a"]})", kTokB),
               403, "agent_a");
  expect_error(request("PATCH", "/v1/campaigns/9", R"({"agents": ["agent_b", "agent_a"]})", kTokB), 403,
               "agent_a");
  Reply own = upload(9, R"([{"phone": "9876543210"}])", false, "agent_b", kTokB);
  EXPECT_EQ(own.status, 200) << own.body;
  EXPECT_EQ(request("GET", "/v1/campaigns/9/status", "", kTokB).status, 200);
}

TEST_F(ApiCampaigns, ContactListPagesAndFilters) {
  create_api_campaign(7);
  std::string contacts = "[";
  for (int i = 0; i < 30; ++i)
    contacts += std::string(i ? "," : "") + R"({"phone":"98765)" + std::to_string(10000 + i) + "\"}";
  contacts += "]";
  ASSERT_EQ(upload(7, contacts).status, 200);
  Reply p2 = request("GET", "/v1/campaigns/7/contacts?page=2&per_page=20");
  ASSERT_EQ(p2.status, 200) << p2.body;
  EXPECT_EQ(cJSON_GetArraySize(p2.data()), 10);
  EXPECT_EQ(net::json_print(p2.get("meta")),
            R"({"current_page":2,"total_pages":2,"total_count":30,"per_page":20})");
  Reply def = request("GET", "/v1/campaigns/7/contacts?state=held");
  EXPECT_EQ(cJSON_GetArraySize(def.data()), 25);
  Reply none = request("GET", "/v1/campaigns/7/contacts?state=queued");
  EXPECT_EQ(cJSON_GetArraySize(none.data()), 0);
  EXPECT_EQ(num(none.get("meta"), "total_count"), 0);
  expect_error(request("GET", "/v1/campaigns/7/contacts?state=sleeping"), 422, "state");
  expect_error(request("GET", "/v1/campaigns/7/contacts?per_page=101"), 422, "per_page");
  expect_error(request("GET", "/v1/campaigns/7/contacts?page=0"), 422, "page");
  expect_error(request("GET", "/v1/campaigns/7/contacts?sort=id"), 422, "unknown query parameter");
}

TEST_F(ApiCampaigns, AStoreFailureMidImportLeavesNoUpload) {
  create_api_campaign(7);
  {
    // A second connection adds a trigger that fails the 551st contact: the first batch of 500 is committed
    // by then, so the import must take it back.
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(dir_.file("osvi.db").c_str(), &raw), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(raw,
                           "CREATE TRIGGER fail_one BEFORE INSERT ON campaign_contacts "
                           "WHEN new.phone = '+919876510550' BEGIN SELECT RAISE(ABORT, 'disk says no'); END",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(raw);
  }
  std::string contacts = "[";
  for (int i = 0; i < 600; ++i)
    contacts += std::string(i ? "," : "") + R"({"phone":"98765)" + std::to_string(10000 + i) + "\"}";
  contacts += "]";
  expect_error(upload(7, contacts), 500, "database error");
  Reply status = request("GET", "/v1/campaigns/7/status");
  ASSERT_EQ(status.status, 200) << status.body;
  EXPECT_EQ(cJSON_GetArraySize(at(status.data(), "uploads")), 0) << status.body;
  Reply list = request("GET", "/v1/campaigns/7/contacts");
  EXPECT_EQ(num(list.get("meta"), "total_count"), 0) << list.body;
}

TEST_F(ApiCampaigns, AnImportWithAKnownIdempotencyKeyReplaysTheFirstResult) {
  create_api_campaign(7);
  net::JsonPtr contacts(cJSON_CreateArray());
  for (const char* phone : {"9876543210", "9876543210", "12"}) {
    cJSON* c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "phone", phone);
    cJSON_AddItemToArray(contacts.get(), c);
  }
  ImportOptions options;
  options.campaign_id = 7;
  options.agent_uuid = "agent_a";
  options.source = "mqtt";
  options.idempotency_key = "cmd-42";
  Result<ImportResult> first = make_error("unset", -1), second = make_error("unset", -1);
  locked([&] {
    first = service_->import_json(options, contacts.get());
    second = service_->import_json(options, contacts.get());
  });
  ASSERT_TRUE(first.ok()) << first.error().message;
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_FALSE(first->replayed);
  EXPECT_TRUE(second->replayed);
  EXPECT_EQ(second->campaign_upload_id, first->campaign_upload_id);
  EXPECT_EQ(second->contacts_received, 3);
  EXPECT_EQ(second->contacts_accepted, 1);
  EXPECT_EQ(second->duplicates_removed, 1);
  ASSERT_EQ(second->invalid.size(), 1u);
  EXPECT_EQ(second->invalid[0].index, 2);
  EXPECT_EQ(second->file_name, first->file_name);
  Reply status = request("GET", "/v1/campaigns/7/status");
  EXPECT_EQ(cJSON_GetArraySize(at(status.data(), "uploads")), 1) << status.body;
}

TEST_F(ApiCampaigns, SeparatedFieldsAndRejectedRowsGoThroughTheSameRules) {
  create_api_campaign(7);
  ImportOptions options;
  options.campaign_id = 7;
  options.agent_uuid = "agent_a";
  options.source = "csv";
  options.file_name = "leads.csv";
  Result<ImportResult> result = make_error("unset", -1);
  locked([&] {
    std::optional<ImportResult> replay;
    auto import = service_->begin_import(options, &replay);
    ASSERT_TRUE(import.ok()) << import.error().message;
    ASSERT_TRUE(*import);
    (*import)->add("98765 43210", "Ravi", std::string(R"({"city":"Pune"})"), 2);
    (*import)->add("9876500000", std::nullopt, "{\"x\":\"" + std::string(4100, 'y') + "\"}", 3);
    (*import)->reject(4, "a,\"b", "line 4: unterminated quote");
    (*import)->add("9876543210", "Ravi Kumar", std::nullopt, 5);
    result = (*import)->finish();
  });
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->file_name, "leads.csv");
  EXPECT_EQ(result->contacts_received, 4);
  EXPECT_EQ(result->contacts_accepted, 1);
  EXPECT_EQ(result->duplicates_removed, 1);
  ASSERT_EQ(result->invalid.size(), 2u);
  EXPECT_EQ(result->invalid[0].index, 3);
  EXPECT_NE(result->invalid[0].reason.find("more than the 4096"), std::string::npos);
  EXPECT_EQ(result->invalid[1].index, 4);
  EXPECT_EQ(result->invalid[1].phone, "a,\"b");
  Reply list = request("GET", "/v1/campaigns/7/contacts");
  ASSERT_EQ(cJSON_GetArraySize(list.data()), 1) << list.body;
  EXPECT_EQ(str(cJSON_GetArrayItem(list.data(), 0), "person_name"), "Ravi Kumar");
  EXPECT_EQ(net::json_print(at(cJSON_GetArrayItem(list.data(), 0), "variables")), R"({"city":"Pune"})");
  Reply status = request("GET", "/v1/campaigns/7/status");
  EXPECT_EQ(str(cJSON_GetArrayItem(at(status.data(), "uploads"), 0), "file_name"), "leads.csv");
}

}  // namespace
}  // namespace osvi::daemon
