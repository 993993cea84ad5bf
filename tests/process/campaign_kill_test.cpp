// A 300-contact campaign on eight simulated lines while osvid is SIGKILLed 20 times: afterwards every contact
// was called exactly once (retries off), every attempt the dialler recorded is closed and matches exactly one
// call, and no number was called twice — kill -9 at any point neither loses a contact nor redials one.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "model_server_process.hpp"
#include "osvi/net/json.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using osvi::net::JsonPtr;
using osvi::test::DaemonProcess;
using osvi::test::http_request;

namespace {

constexpr const char* kToken = "KillToken0123456";
constexpr int kLines = 8;
constexpr int kContacts = 300;
constexpr int kKills = 20;

// Reads the database file directly (after the daemon stopped): what is really there, not what the API says.
class Db {
 public:
  explicit Db(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) db_ = nullptr;
  }
  ~Db() { sqlite3_close(db_); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  bool ok() const { return db_ != nullptr; }
  // Every row of a query, each as its columns' text.
  std::vector<std::vector<std::string>> rows(const std::string& sql) {
    std::vector<std::vector<std::string>> out;
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return out;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int i = 0; i < sqlite3_column_count(st); ++i) {
        const unsigned char* t = sqlite3_column_text(st, i);
        row.emplace_back(t ? reinterpret_cast<const char*>(t) : "NULL");
      }
      out.push_back(std::move(row));
    }
    sqlite3_finalize(st);
    return out;
  }
  std::string one(const std::string& sql) {
    auto r = rows(sql);
    return r.empty() || r[0].empty() ? "" : r[0][0];
  }

 private:
  sqlite3* db_ = nullptr;
};

class CampaignKill : public ::testing::Test {
 protected:
  void SetUp() override {
    osvi::test::write_file(dir_.file("scenario.json"), R"({"stt":{"transcripts":["hello"]},
                               "llm":{"rules":[{"match":"hello","reply":"Thank you, goodbye."}]}})");
    model_ = std::make_unique<osvi::test::ModelServer>(dir_.file("scenario.json"), dir_.file("model.log"));
    ASSERT_FALSE(model_->base().empty()) << model_->error();
  }

  // Calls are short: one ring, the agent's greeting, a second of the callee saying nothing, then the callee
  // hangs up. Calling hours are the whole day so the test does not depend on when it runs (the windows have
  // their virtual-clock tests); retries are off so "exactly once" is the expected count.
  std::string config() const {
    const std::string url = model_->base() + "/v1";
    std::string cfg =
        R"({"state_dir":")" + dir_.file("state") + R"(","api":{"listen":"127.0.0.1:)" +
        std::to_string(port_) + R"(","tokens":[")" + kToken +
        R"("]},"audio":{"rt_priority":0},"compliance":{"calling_hours":"00:00-24:00",)" +
        R"("max_attempts_per_day":3},"agents":[{"agent_uuid":"agent_k","name":"K","active":true,)" +
        R"("greeting":{"text":"Hello."},"stt":{"base_url":")" + url + R"("},"llm":{"base_url":")" + url +
        R"("},"voice":{"base_url":")" + url + R"("}}],)" +
        R"("campaigns":[{"id":7,"name":"Kill test","agents":["agent_k"],)" +
        R"("max_concurrent_calls_per_agent":8}],"lines":[)";
    for (int i = 0; i < kLines; ++i) {
      cfg += std::string(i ? "," : "") + R"({"id":"sim)" + std::to_string(i) +
             R"(","type":"sim","sim":{"outcome":"answer","rings":1,"ring_interval_ms":200,"steps":[)" +
             R"({"silence_ms":1000},{"hangup":true}]}})";
    }
    return cfg + "]}";
  }

  std::unique_ptr<DaemonProcess> start() {
    // A fresh port per run: a killed daemon's socket may linger in TIME_WAIT-like states under sanitizers.
    port_ = osvi::test::free_loopback_port();
    osvi::test::write_file(dir_.file("osvid.json"), config());
    auto d = std::make_unique<DaemonProcess>(dir_.path(),
                                             std::vector<std::string>{"--config", dir_.file("osvid.json")});
    EXPECT_TRUE(d->wait_notify("READY=1", 30s)) << d->stderr_text();
    return d;
  }

  std::string api(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  // The campaign's contacts still queued or dialling, from the status endpoint; -1 when it cannot be read.
  int remaining() {
    auto r = http_request("GET", api("/v1/campaigns/7/status"), kToken);
    if (r.status != 200) return -1;
    JsonPtr j = osvi::test::parse_json(r.body);
    const cJSON* uploads = cJSON_GetObjectItem(cJSON_GetObjectItem(j.get(), "data"), "uploads");
    int left = 0;
    const cJSON* u = nullptr;
    cJSON_ArrayForEach(u, uploads) {
      const cJSON* q = nullptr;
      cJSON_ArrayForEach(q, cJSON_GetObjectItem(u, "queues")) {
        left += static_cast<int>(cJSON_GetNumberValue(cJSON_GetObjectItem(q, "total_queued")));
      }
    }
    return left;
  }

  osvi::test::TempDir dir_;
  std::unique_ptr<osvi::test::ModelServer> model_;
  int port_ = 0;
};

TEST_F(CampaignKill, TwentyKillsNeverLoseOrRedialAContact) {
  auto daemon = start();
  ASSERT_FALSE(HasFailure());

  // 300 distinct valid Indian mobile numbers, uploaded and enqueued at once.
  JsonPtr body(cJSON_CreateObject());
  cJSON_AddStringToObject(body.get(), "agent_uuid", "agent_k");
  cJSON_AddBoolToObject(body.get(), "enqueue", true);
  cJSON* contacts = cJSON_AddArrayToObject(body.get(), "contacts");
  for (int i = 0; i < kContacts; ++i) {
    cJSON* c = cJSON_CreateObject();
    char phone[32];
    std::snprintf(phone, sizeof phone, "98765%05d", i);
    cJSON_AddStringToObject(c, "phone", phone);
    cJSON_AddStringToObject(c, "person_name", ("Person " + std::to_string(i)).c_str());
    cJSON_AddItemToArray(contacts, c);
  }
  const std::string text = osvi::net::json_print(body.get());
  auto up = http_request("POST", api("/v1/campaigns/7/contacts"), kToken, text);
  ASSERT_EQ(up.status, 200) << up.body;
  JsonPtr upj = osvi::test::parse_json(up.body);
  const cJSON* data = cJSON_GetObjectItem(upj.get(), "data");
  ASSERT_EQ(cJSON_GetNumberValue(cJSON_GetObjectItem(data, "contacts_accepted")), kContacts) << up.body;

  // Kills at random moments (a fixed seed: a failure reproduces), 0.4-2.0 s after each start, so they land
  // while calls ring, talk, end, and while the dialler records attempts.
  std::mt19937 rng(20261202);
  std::uniform_int_distribution<int> pause_ms(400, 2000);
  for (int k = 0; k < kKills; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
    daemon->signal(SIGKILL);
    ASSERT_TRUE(daemon->wait_exit(10s).has_value());
    daemon.reset();
    daemon = start();
    ASSERT_FALSE(HasFailure()) << "restart " << k + 1;
  }

  // Then the campaign runs to its end.
  int left = -1;
  const auto deadline = std::chrono::steady_clock::now() + 150s;
  while (std::chrono::steady_clock::now() < deadline) {
    left = remaining();
    if (left == 0) break;
    std::this_thread::sleep_for(250ms);
  }
  ASSERT_EQ(left, 0) << daemon->stderr_text();
  daemon->signal(SIGTERM);
  const auto code = daemon->wait_exit(15s);
  const std::string log = daemon->stderr_text();
  EXPECT_EQ(code, 0) << log.substr(log.size() > 8000 ? log.size() - 8000 : 0);
  daemon.reset();

  Db db(dir_.file("state") + "/osvi.db");
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(db.one("SELECT count(*) FROM campaign_contacts WHERE campaign_id = 7"),
            std::to_string(kContacts));
  EXPECT_EQ(db.one("SELECT count(*) FROM campaign_contacts WHERE campaign_id = 7 AND state <> 'done'"), "0");
  EXPECT_EQ(db.one("SELECT count(*) FROM campaign_attempts WHERE ended_at IS NULL"), "0");
  // Every contact: exactly one placed attempt and exactly one call to its number in the campaign.
  for (const auto& row :
       db.rows("SELECT c.phone, c.attempts, "
               " (SELECT count(*) FROM campaign_attempts a WHERE a.contact_id = c.id AND a.outcome <> "
               "'not_placed'),"
               " (SELECT count(*) FROM calls k WHERE k.phone_number = c.phone AND k.campaign_id = 7) "
               "FROM campaign_contacts c WHERE c.campaign_id = 7")) {
    SCOPED_TRACE(row[0]);
    EXPECT_EQ(row[1], "1") << "attempts counted on the contact";
    EXPECT_EQ(row[2], "1") << "placed attempts recorded";
    EXPECT_EQ(row[3], "1") << "calls placed to the number";
  }
  // Every placed attempt is exactly one call, with that call's final status as its outcome.
  EXPECT_EQ(db.one("SELECT count(*) FROM campaign_attempts a LEFT JOIN calls k ON k.call_id = a.call_id "
                   "WHERE a.outcome <> 'not_placed' AND (k.call_id IS NULL OR k.status <> a.outcome)"),
            "0");
  EXPECT_EQ(db.one("SELECT count(*) FROM calls WHERE campaign_id = 7 AND status = 'in_progress'"), "0");
  std::printf("[campaign-kill] outcomes: ");
  for (const auto& row : db.rows("SELECT last_outcome, count(*) FROM campaign_contacts GROUP BY 1"))
    std::printf("%s=%s ", row[0].c_str(), row[1].c_str());
  std::printf("; calls ended by a restart: %s\n",
              db.one("SELECT count(*) FROM calls WHERE call_ended_reason = 'daemon_restart'").c_str());
}

}  // namespace
