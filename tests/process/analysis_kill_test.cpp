// kill -9 between a call's end and its analysis: osvid is killed while the analysis request waits on the
// model; after a restart the job is picked up at start and its result lands in the call record, the API and
// the outbox.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "daemon_process.hpp"
#include "model_server_process.hpp"
#include "osvi/clock.hpp"
#include "osvi/net/json.hpp"
#include "osvi/store/store.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using osvi::test::DaemonProcess;
using osvi::test::http_request;

namespace {

// The first column of the first row of a query on the database file (read-only), "" when none.
std::string one(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  std::string out;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
      out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return out;
}

constexpr const char* kToken = "AnalysisToken012";
constexpr const char* kCall = "0190a1b2-0000-7000-8000-00000000a001";

class AnalysisKill : public ::testing::Test {
 protected:
  void SetUp() override {
    // Every chat request hangs until the test lifts the fault: the first daemon dies waiting.
    osvi::test::write_file(dir_.file("scenario.json"), R"({"llm":{"fault":{"fault":"hang"},"rules":[
      {"match_any":"analyse a finished phone call","reply_json":{"summary":"Ravi asked for the brochure.",
       "data":{"email":"ravi@example.com"},"callback":{"required":false,"requested_text":null,"local_time":null},
       "opt_out":{"requested":false}}}]}})");
    model_ = std::make_unique<osvi::test::ModelServer>(dir_.file("scenario.json"), dir_.file("model.log"));
    ASSERT_FALSE(model_->base().empty()) << model_->error();
    ::mkdir(dir_.file("state").c_str(), 0700);
  }

  std::unique_ptr<DaemonProcess> start() {
    port_ = osvi::test::free_loopback_port();
    const std::string url = model_->base() + "/v1";
    osvi::test::write_file(
        dir_.file("osvid.json"),
        R"({"state_dir":")" + dir_.file("state") + R"(","api":{"listen":"127.0.0.1:)" +
            std::to_string(port_) + R"(","tokens":[")" + kToken + R"("]},"audio":{"rt_priority":0},"lines":[],
            "agents":[{"agent_uuid":"agent_k","name":"K","active":true,"llm":{"base_url":")" +
            url + R"("},"analysis":{"enabled":true,"llm":{"base_url":")" + url + R"(","timeout_ms":60000},
            "data_extraction":[{"key":"email","type":"text","required":true}]}}]})");
    auto d = std::make_unique<DaemonProcess>(dir_.path(),
                                             std::vector<std::string>{"--config", dir_.file("osvid.json")});
    EXPECT_TRUE(d->wait_notify("READY=1", 30s)) << d->stderr_text();
    return d;
  }
  std::string api(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::string db_path() const { return dir_.file("state") + "/osvi.db"; }

  osvi::test::TempDir dir_;
  std::unique_ptr<osvi::test::ModelServer> model_;
  int port_ = 0;
};

TEST_F(AnalysisKill, AnAnalysisCutByKillNineLandsAfterTheRestart) {
  {
    // The daemon's first start creates the database; a call that ended while it was down is then written the
    // way the engine writes it (final record + post-call job in one transaction).
    auto first = start();
    ASSERT_FALSE(HasFailure());
    first->signal(SIGTERM);
    ASSERT_TRUE(first->wait_exit(20s).has_value());
    osvi::SystemClock clock;
    auto store = osvi::daemon::Store::open(osvi::daemon::StoreOptions{db_path(), 2000, true}, clock);
    ASSERT_TRUE(store.ok()) << store.error().message;
    osvi::daemon::CallRecord r;
    r.call_id = kCall;
    r.agent_uuid = "agent_k";
    r.agent_name = "K";
    r.phone_number = "+919876543210";
    ASSERT_TRUE((*store)->calls().insert(r).ok());
    ASSERT_TRUE(
        (*store)->calls().add_transcript_turn({kCall, 0, "agent", "Hello Ravi.", {}, {}, false, {}}).ok());
    ASSERT_TRUE((*store)
                    ->calls()
                    .add_transcript_turn({kCall, 1, "user", "Mail me at ravi@example.com", {}, {}, false, {}})
                    .ok());
    r.status = "picked";
    r.call_picked_at_ms = clock.wall_ms() - 30'000;
    r.ended_at_ms = clock.wall_ms();
    ASSERT_TRUE(osvi::daemon::finish_call_and_enqueue(**store, r).ok());
  }
  {
    auto second = start();  // picks the job at start; the model hangs
    ASSERT_FALSE(HasFailure());
    bool asked = false;
    for (int i = 0; i < 200 && !asked; ++i) {
      asked = osvi::test::read_file(dir_.file("model.log")).find("analyse a finished phone call") !=
              std::string::npos;
      if (!asked) std::this_thread::sleep_for(50ms);
    }
    ASSERT_TRUE(asked) << "the analysis request never reached the model\n" << second->stderr_text();
    second->signal(SIGKILL);
    ASSERT_TRUE(second->wait_exit(10s).has_value());
  }
  // Killed mid-request: nothing of the analysis was written, the job waits.
  EXPECT_EQ(one(db_path(),
                std::string("SELECT analysis_state FROM post_call_jobs WHERE call_id = '") + kCall + "'"),
            "pending");
  EXPECT_EQ(one(db_path(), std::string("SELECT summary FROM calls WHERE call_id = '") + kCall + "'"), "");
  auto lifted =
      http_request("POST", model_->base() + "/control/faults", "", R"({"stage":"llm","fault":"none"})");
  ASSERT_EQ(lifted.status, 200) << lifted.body;

  auto third = start();
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(third->wait_stderr("post-call analysis done", 20s)) << third->stderr_text();
  auto call = http_request("GET", api(std::string("/v1/call/") + kCall), kToken);
  ASSERT_EQ(call.status, 200) << call.body;
  osvi::net::JsonPtr j = osvi::test::parse_json(call.body);
  const cJSON* data = cJSON_GetObjectItem(j.get(), "data");
  EXPECT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(data, "summary")), "Ravi asked for the brochure.");
  EXPECT_EQ(osvi::net::json_print(cJSON_GetObjectItem(data, "data_captured")),
            R"({"email":"ravi@example.com"})");
  const cJSON* pca = cJSON_GetObjectItem(data, "post_call_analysis");
  EXPECT_STREQ(cJSON_GetStringValue(cJSON_GetObjectItem(pca, "status")), "done");
  EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(pca, "complete")));
  auto transcript = http_request("GET", api(std::string("/v1/call/") + kCall + "/transcript"), kToken);
  ASSERT_EQ(transcript.status, 200);
  osvi::net::JsonPtr t = osvi::test::parse_json(transcript.body);
  EXPECT_STREQ(
      cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(t.get(), "data"), "analysis_status")),
      "done");
  third->signal(SIGTERM);
  ASSERT_TRUE(third->wait_exit(20s).has_value());

  // One analysis result, one new revision of the record queued for the fleet.
  EXPECT_EQ(one(db_path(),
                std::string("SELECT analysis_state FROM post_call_jobs WHERE call_id = '") + kCall + "'"),
            "done");
  const std::string rev =
      one(db_path(), std::string("SELECT revision FROM calls WHERE call_id = '") + kCall + "'");
  EXPECT_EQ(one(db_path(), "SELECT count(*) FROM outbox WHERE idempotency_key = 'call:" + std::string(kCall) +
                               ":" + rev + "'"),
            "1");
  EXPECT_NE(one(db_path(), "SELECT payload FROM outbox WHERE idempotency_key = 'call:" + std::string(kCall) +
                               ":" + rev + "'")
                .find("Ravi asked for the brochure."),
            std::string::npos);
}

}  // namespace
