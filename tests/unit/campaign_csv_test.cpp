// CSV contact uploads: the rows → contacts mapping (header, no_header, variables, line numbers, row cap) fed
// in every chunking, and the upload endpoint through a real HTTP server and store.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "osvi/api/api.hpp"
#include "osvi/base/time_zone.hpp"
#include "osvi/campaigns/campaigns.hpp"
#include "osvi/campaigns/csv_contacts.hpp"
#include "osvi/clock.hpp"
#include "osvi/net/http_server.hpp"
#include "osvi/net/json.hpp"
#include "osvi/store/store.hpp"
#include "served_http.hpp"
#include "test_support.hpp"

namespace osvi::daemon {
namespace {

struct Row {
  std::string phone;
  std::optional<std::string> name;
  std::optional<std::string> vars;
  int64_t line = 0;
  bool rejected = false;
  std::string reason;
};

class Recorder : public ContactRows {
 public:
  void add(std::string_view phone, std::optional<std::string_view> person_name,
           std::optional<std::string> variables_json, int64_t line) override {
    rows.push_back({std::string(phone), person_name ? std::optional<std::string>(*person_name) : std::nullopt,
                    std::move(variables_json), line, false, ""});
  }
  void reject(int64_t line, std::string_view, std::string_view reason) override {
    rows.push_back({"", std::nullopt, std::nullopt, line, true, std::string(reason)});
  }
  std::vector<Row> rows;
};

// The same input fed whole, byte by byte and in 7-byte pieces must give the same rows.
std::vector<Row> read_all(const std::string& csv, bool header, std::optional<CsvContacts::Failure>* failure,
                          int64_t max_rows = kMaxCsvRows) {
  std::vector<Row> first;
  for (size_t piece : {csv.size() + 1, size_t{1}, size_t{7}}) {
    Recorder rec;
    CsvContacts c(rec, header, max_rows);
    for (size_t at = 0; at < csv.size(); at += piece)
      if (!c.feed(std::string_view(csv).substr(at, piece))) break;
    c.finish();
    if (piece == csv.size() + 1) {
      first = rec.rows;
      *failure = c.failure();
      continue;
    }
    EXPECT_EQ(rec.rows.size(), first.size()) << "piece " << piece;
    for (size_t i = 0; i < std::min(rec.rows.size(), first.size()); ++i) {
      EXPECT_EQ(rec.rows[i].phone, first[i].phone) << piece;
      EXPECT_EQ(rec.rows[i].line, first[i].line) << piece;
      EXPECT_EQ(rec.rows[i].vars, first[i].vars) << piece;
    }
    EXPECT_EQ(c.failure().has_value(), failure->has_value()) << piece;
  }
  return first;
}

TEST(CsvContacts, HeaderMapsPhoneNameAndVariablesWithBomCrlfQuotesAndNewlines) {
  const std::string csv =
      "\xEF\xBB\xBF"
      " Phone ,Person_Name,plan,\"city, state\"\r\n"
      "9876543210,Asha,Pro,\"Pune, MH\"\r\n"
      "\r\n"
      "+919876500000,\"Ravi \"\"R\"\" Kumar\",\"Basic\nplus\",Delhi\r\n"
      "9876500001,,Free,Goa";  // no line end at the very end
  std::optional<CsvContacts::Failure> failure;
  auto rows = read_all(csv, true, &failure);
  ASSERT_FALSE(failure) << failure->message;
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].phone, "9876543210");
  EXPECT_EQ(rows[0].name, "Asha");
  EXPECT_EQ(rows[0].line, 2);
  auto v = net::json_parse(*rows[0].vars, nullptr);
  ASSERT_TRUE(v);
  EXPECT_EQ(test::json_str(v.get(), "plan"), "Pro");
  EXPECT_EQ(test::json_str(v.get(), "city, state"), "Pune, MH");
  EXPECT_EQ(rows[1].phone, "+919876500000");
  EXPECT_EQ(rows[1].name, "Ravi \"R\" Kumar");
  EXPECT_EQ(rows[1].line, 4);  // the empty line 3 is skipped
  v = net::json_parse(*rows[1].vars, nullptr);
  EXPECT_EQ(test::json_str(v.get(), "plan"), "Basic\nplus");
  EXPECT_EQ(rows[2].line, 6);  // the embedded line break counts
  EXPECT_EQ(rows[2].name, std::nullopt);
}

TEST(CsvContacts, NoHeaderNamesExtraColumnsByPosition) {
  std::optional<CsvContacts::Failure> failure;
  auto rows = read_all("9876543210,Asha,Pro,x\n9876500001\n", false, &failure);
  ASSERT_FALSE(failure);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].line, 1);
  EXPECT_EQ(rows[0].name, "Asha");
  auto v = net::json_parse(*rows[0].vars, nullptr);
  EXPECT_EQ(test::json_str(v.get(), "col3"), "Pro");
  EXPECT_EQ(test::json_str(v.get(), "col4"), "x");
  EXPECT_EQ(rows[1].phone, "9876500001");
  EXPECT_EQ(rows[1].vars, std::nullopt);
}

TEST(CsvContacts, BadRowsAreRejectedWithTheirLineAndTheRestLoads) {
  std::optional<CsvContacts::Failure> failure;
  auto rows = read_all("phone,person_name\n9876543210,A\n98765\"43211,B\n9876543212,C,extra\n9876543213,D\n",
                       true, &failure);
  ASSERT_FALSE(failure);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_FALSE(rows[0].rejected);
  EXPECT_TRUE(rows[1].rejected);
  EXPECT_EQ(rows[1].line, 3);
  EXPECT_TRUE(rows[2].rejected);
  EXPECT_EQ(rows[2].line, 4);
  EXPECT_NE(rows[2].reason.find("3 fields"), std::string::npos) << rows[2].reason;
  EXPECT_FALSE(rows[3].rejected);
  EXPECT_EQ(rows[3].phone, "9876543213");
  EXPECT_EQ(rows[3].line, 5);
}

TEST(CsvContacts, HeaderWithoutPhoneOrEmptyFileOrTooManyRowsFails) {
  std::optional<CsvContacts::Failure> failure;
  auto rows = read_all("name,mobile\nA,9876543210\n", true, &failure);
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->status, 422);
  EXPECT_NE(failure->message.find("phone column is required"), std::string::npos) << failure->message;
  EXPECT_NE(failure->message.find("\"mobile\""), std::string::npos) << failure->message;
  EXPECT_TRUE(rows.empty());

  rows = read_all("phone,Phone\n1\n", true, &failure);
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->status, 422);

  rows = read_all("", true, &failure);
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->status, 422);

  std::string many = "phone\n";
  for (int i = 0; i < 6; ++i) many += "98765432" + std::to_string(10 + i) + "\n";
  rows = read_all(many, true, &failure, 5);
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->status, 413);
  EXPECT_EQ(rows.size(), 5u);
}

// --- The endpoint: a real HttpServer (sinks wired as the daemon does), Api, store and ContactImport. ---

constexpr int64_t kT0 = 1'780'000'000'000;
constexpr const char* kTok = "TokAll0123456789";
constexpr const char* kTokB = "TokB012345678901";  // limited to agent_b

class CsvUpload : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::open(StoreOptions{dir_.file("osvi.db")}, clock_);
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(*s);
    std::vector<AgentRecord> agents = {
        {0, "agent_a", "Alpha", "voice", true, false, "{}", "", 0, 0},
        {0, "agent_b", "Bravo", "voice", true, false, "{}", "", 0, 0},
    };
    ASSERT_TRUE(store_->agents().sync(agents).ok());
    CampaignRow c;
    c.id = 7;
    c.name = "December";
    c.agents = {{"agent_a", true}, {"agent_b", true}};
    ASSERT_TRUE(store_->campaigns().upsert(c).ok());
    tokens_ = {ApiToken{kTok, {}, true}, ApiToken{kTokB, {"agent_b"}, false}};
    ctx_.config = &config_;
    ctx_.tokens = &tokens_;
    ctx_.store = store_.get();
    ctx_.clock = &clock_;
    campaigns_ = std::make_unique<CampaignService>(*store_, zones_);
    campaigns_->set_config(&config_);
    ctx_.campaigns = campaigns_.get();
    ctx_.listen = "127.0.0.1:1";
    api_ = std::make_unique<Api>(ctx_);
    net::HttpServerOptions o;
    o.port = 0;
    // Far below the files uploaded here: only a body streamed to the upload's sink gets through.
    o.max_body_bytes = 64 * 1024;
    o.error_response = [](int status, std::string_view message) { return Api::error(status, message); };
    o.body_sink = [this](const net::HttpRequest& head) { return api_->body_sink(head); };
    Status started = served_.start(
        o, [this](net::HttpRequest& req, net::HttpReply reply) { api_->handle(req, std::move(reply)); });
    ASSERT_TRUE(started.ok()) << started.error().message;
  }
  void TearDown() override { served_.stop(); }

  struct Answer {
    long status = 0;
    std::string body;
    net::JsonPtr json;
    const cJSON* data() const { return cJSON_GetObjectItemCaseSensitive(json.get(), "data"); }
    std::string error() const { return test::json_str(json.get(), "error"); }
  };
  Answer post(const std::string& path, const std::string& body, const std::string& type = "text/csv",
              bool chunked = false, const char* token = kTok) {
    test::HttpRequestOptions ro;
    ro.content_type = type;
    ro.chunked = chunked;
    ro.timeout_ms = 20000;
    auto r = test::http_request("POST", "http://127.0.0.1:" + std::to_string(served_.port()) + path, token,
                                body, ro);
    Answer a;
    a.status = r.status;
    a.body = r.body;
    a.json = test::parse_json(r.body);
    return a;
  }
  int64_t contacts_in(int64_t campaign) {
    int64_t total = 0;
    served_.locked([&] { EXPECT_TRUE(store_->campaigns().contacts(campaign, "", 1, 100, &total).ok()); });
    return total;
  }
  std::vector<ContactRow> contacts(int64_t campaign) {
    Result<std::vector<ContactRow>> page = std::vector<ContactRow>{};
    served_.locked([&] {
      int64_t total = 0;
      page = store_->campaigns().contacts(campaign, "", 1, 100, &total);
    });
    EXPECT_TRUE(page.ok());
    return page.ok() ? *page : std::vector<ContactRow>{};
  }

  test::TempDir dir_;
  ManualClock clock_{kT0};
  std::unique_ptr<Store> store_;
  Config config_;
  std::vector<ApiToken> tokens_;
  TimeZones zones_;
  std::unique_ptr<CampaignService> campaigns_;
  ApiContext ctx_;
  std::unique_ptr<Api> api_;
  test::ServedHttp served_;
};

double num(const cJSON* o, const char* name) {
  const cJSON* v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

TEST_F(CsvUpload, LoadsAFileWithBomCrlfQuotesNewlinesAndReportsBadRowsByLine) {
  const std::string csv =
      "\xEF\xBB\xBFphone,person_name,plan\r\n"
      "9876543210,Asha,\"Pro, yearly\"\r\n"
      "98765\"43211,Bad,x\r\n"
      "9876543212,\"Ravi\nKumar\",Basic\r\n"
      "12,Short,x\r\n"
      "9876543213,Meera,Free\r\n";
  auto a = post("/v1/campaigns/7/contacts?agent_uuid=agent_a&file_name=../../dec%20list.csv", csv,
                "text/csv; charset=UTF-8");
  ASSERT_EQ(a.status, 200) << a.body;
  const cJSON* d = a.data();
  EXPECT_EQ(num(d, "contacts_accepted"), 3) << a.body;
  EXPECT_EQ(test::json_str(d, "file_name"), "dec_list.csv");
  const cJSON* invalid = cJSON_GetObjectItemCaseSensitive(d, "invalid");
  ASSERT_EQ(cJSON_GetArraySize(invalid), 2) << a.body;
  EXPECT_EQ(num(cJSON_GetArrayItem(invalid, 0), "line"), 3);
  EXPECT_EQ(num(cJSON_GetArrayItem(invalid, 1), "line"), 6);  // the quoted line break counts
  auto rows = contacts(7);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].phone, "+919876543210");
  ASSERT_TRUE(rows[0].variables_json);
  EXPECT_NE(rows[0].variables_json->find("Pro, yearly"), std::string::npos) << *rows[0].variables_json;
  EXPECT_EQ(rows[1].person_name, "Ravi\nKumar");
}

TEST_F(CsvUpload, CsvPathWithoutHeaderChunkedBeyondTheJsonLimit) {
  std::string csv;
  for (int i = 0; i < 12000; ++i)
    csv += "98" + std::to_string(10000000 + i) + ",Name " + std::to_string(i) + ",v\n";
  auto a = post("/v1/campaigns/7/contacts.csv?agent_uuid=agent_b&no_header=true", csv, "text/csv", true);
  ASSERT_EQ(a.status, 200) << a.body.substr(0, 400);
  EXPECT_EQ(num(a.data(), "contacts_accepted"), 12000);
  EXPECT_EQ(contacts_in(7), 12000);
  auto rows = contacts(7);
  ASSERT_FALSE(rows.empty());
  ASSERT_TRUE(rows[0].variables_json);
  EXPECT_NE(rows[0].variables_json->find("\"col3\""), std::string::npos);
}

TEST_F(CsvUpload, RefusalsImportNothing) {
  auto a = post("/v1/campaigns/7/contacts?agent_uuid=agent_a", "mobile,person_name\n9876543210,A\n");
  EXPECT_EQ(a.status, 422) << a.body;
  EXPECT_NE(a.error().find("phone column is required"), std::string::npos) << a.body;
  a = post("/v1/campaigns/7/contacts.csv?agent_uuid=agent_a", "phone\n9876543210\n", "application/json");
  EXPECT_EQ(a.status, 415) << a.body;
  a = post("/v1/campaigns/7/contacts?agent_uuid=agent_a", "phone\n9876543210\n", "text/plain");
  EXPECT_EQ(a.status, 415) << a.body;
  a = post("/v1/campaigns/7/contacts?agent_uuid=agent_a", "phone\n9876543210\n", "text/csv; charset=latin1");
  EXPECT_EQ(a.status, 415) << a.body;
  a = post("/v1/campaigns/7/contacts.csv", "phone\n9876543210\n");
  EXPECT_EQ(a.status, 422) << a.body;
  a = post("/v1/campaigns/7/contacts.csv?agent_uuid=agent_a&color=red", "phone\n9876543210\n");
  EXPECT_EQ(a.status, 422) << a.body;
  a = post("/v1/campaigns/7/contacts.csv?agent_uuid=agent_a", "phone\n9876543210\n", "text/csv", false,
           kTokB);
  EXPECT_EQ(a.status, 403) << a.body;
  a = post("/v1/campaigns/99/contacts.csv?agent_uuid=agent_a", "phone\n9876543210\n");
  EXPECT_EQ(a.status, 404) << a.body;
  EXPECT_EQ(contacts_in(7), 0);
  EXPECT_EQ(contacts_in(99), 0);
}

TEST_F(CsvUpload, BodyOverTheLimitIs413FromTheHead) {
  const int fd = test::connect_loopback(served_.port(), 5);
  ASSERT_GE(fd, 0);
  const std::string head =
      "POST /v1/campaigns/7/contacts.csv?agent_uuid=agent_a HTTP/1.1\r\nHost: x\r\nAPI-Token: " +
      std::string(kTok) + "\r\nContent-Type: text/csv\r\nContent-Length: 67108865\r\n\r\nphone\n";
  ASSERT_EQ(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  char buf[2048];
  const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  ::close(fd);
  ASSERT_GT(n, 0);
  const std::string got(buf, static_cast<size_t>(n));
  EXPECT_EQ(got.rfind("HTTP/1.1 413", 0), 0u) << got;
  EXPECT_NE(got.find("67108864"), std::string::npos) << got;
  EXPECT_EQ(contacts_in(7), 0);
}

// A client that goes away in the middle of its file leaves nothing: the batches already stored are removed
// with the upload when the server drops the unfinished import.
TEST_F(CsvUpload, AClientGoneMidBodyLeavesNoUpload) {
  std::string rows = "phone,person_name\n";
  for (int i = 0; i < 1200; ++i) rows += "98" + std::to_string(20000000 + i) + ",P\n";
  const int fd = test::connect_loopback(served_.port(), 5);
  ASSERT_GE(fd, 0);
  const std::string head =
      "POST /v1/campaigns/7/contacts.csv?agent_uuid=agent_a HTTP/1.1\r\nHost: x\r\nAPI-Token: " +
      std::string(kTok) + "\r\nContent-Type: text/csv\r\nContent-Length: 1000000\r\n\r\n";
  const std::string sent = head + rows;
  ASSERT_EQ(::send(fd, sent.data(), sent.size(), MSG_NOSIGNAL), static_cast<ssize_t>(sent.size()));
  // At least one batch of the import is in the store before the client leaves.
  int64_t stored = 0;
  for (int i = 0; i < 500 && stored == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    stored = contacts_in(7);
  }
  EXPECT_GT(stored, 0);
  ::close(fd);
  int64_t left = -1;
  size_t uploads = 1;
  for (int i = 0; i < 500 && (left != 0 || uploads != 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    left = contacts_in(7);
    served_.locked([&] {
      auto report = store_->campaigns().report(7);
      ASSERT_TRUE(report.ok());
      uploads = report->has_value() ? (*report)->uploads.size() : 0;
    });
  }
  EXPECT_EQ(left, 0);
  EXPECT_EQ(uploads, 0u);
}

}  // namespace
}  // namespace osvi::daemon
