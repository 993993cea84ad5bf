// WebhookService against a real Store in a temporary folder, on virtual time: which deliveries a finished
// call gets, the job's mark in the same transaction, replays, catch-up at start and slicing of a backlog.
#include "osvi/webhooks/webhook_service.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <set>

#include "osvi/store/unit_of_work.hpp"
#include "osvi/webhooks/payloads.hpp"
#include "test_support.hpp"
#include "virtual_time.hpp"

namespace {

using namespace osvi::daemon;

constexpr int64_t kT0 = 1'780'000'000'000;

class WebhookServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions o;
    o.path = dir_.file("osvi.db");
    auto s = Store::open(o, vt_.clock);
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(*s);

    AgentConfig a;
    a.agent_uuid = "agent_a";
    a.name = "Front desk";
    a.analysis.enabled = true;
    IntegrationConfig crm;
    crm.name = "CRM";
    crm.url = "https://crm.example/leads/{{crm_id}}";
    IntegrationConfig off;
    off.name = "old";
    off.url = "https://old.example/";
    off.active = false;
    a.analysis.integrations = {crm, off};
    config_.agents.push_back(a);
    config_.site.utc_offset_minutes = 330;
    config_.webhooks.horizon_s = 600;

    WebhookContext ctx;
    ctx.clock = &vt_.clock;
    ctx.store = store_.get();
    ctx.timer = vt_.timer_factory();
    ctx.on_queued = [this] { ++pokes_; };
    auto svc = WebhookService::create(std::move(ctx));
    ASSERT_TRUE(svc.ok()) << svc.error().message;
    service_ = std::move(*svc);
    service_->set_config(&config_);
  }

  // A call that ended with `status`, its post-call job created with its final record (as the engine does),
  // and its analysis ended with `analysis` ("" leaves it pending).
  std::string finish_call(int n, const std::string& status, const std::string& analysis,
                          bool webhook_url = true) {
    CallRecord c;
    char id[64];
    std::snprintf(id, sizeof id, "0190aaaa-0000-7000-8000-%012d", n);
    c.call_id = id;
    c.agent_uuid = "agent_a";
    c.agent_name = "Front desk";
    c.phone_number = "+919876543210";
    c.additional_data = R"({"crm_id":"L42"})";
    if (webhook_url) c.webhook_url = "http://127.0.0.1:9/hook";
    EXPECT_TRUE(store_->calls().insert(c).ok());
    c.status = status;
    c.duration_seconds = status == "picked" ? 30 : 0;
    c.ended_at_ms = vt_.clock.wall_ms();
    if (status == "picked") c.call_picked_at_ms = vt_.clock.wall_ms() - 30'000;
    EXPECT_TRUE(finish_call_and_enqueue(*store_, c).ok());
    if (status == "picked") {
      TranscriptTurn t;
      t.call_id = c.call_id;
      t.seq = 1;
      t.role = "agent";
      t.text = "Hello";
      EXPECT_TRUE(store_->calls().add_transcript_turn(t).ok());
    }
    if (!analysis.empty()) {
      EXPECT_TRUE(store_->post_call().finish_analysis(c.call_id, analysis, std::nullopt).ok());
    }
    vt_.clock.advance_ms(1);  // jobs end in distinct milliseconds (no timer fires here)
    return c.call_id;
  }

  // The queue's rows of a call, oldest first, read over a second connection (the repository's readers are
  // the dispatcher's).
  std::vector<WebhookDelivery> deliveries(const std::string& call_id) {
    std::vector<WebhookDelivery> out;
    sqlite3* raw = nullptr;
    EXPECT_EQ(sqlite3_open(dir_.file("osvi.db").c_str(), &raw), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(
        sqlite3_prepare_v2(raw,
                           "SELECT id, webhook_id, kind, integration, destination, method, url, body, state, "
                           "expires_at, created_at FROM webhook_deliveries WHERE call_id = ?1 ORDER BY id",
                           -1, &st, nullptr),
        SQLITE_OK);
    sqlite3_bind_text(st, 1, call_id.c_str(), -1, SQLITE_TRANSIENT);
    const auto text = [&](int col) {
      const unsigned char* t = sqlite3_column_text(st, col);
      return t ? std::string(reinterpret_cast<const char*>(t)) : std::string();
    };
    while (sqlite3_step(st) == SQLITE_ROW) {
      WebhookDelivery d;
      d.id = sqlite3_column_int64(st, 0);
      d.webhook_id = text(1);
      d.call_id = call_id;
      d.kind = text(2);
      d.integration = text(3);
      d.destination = text(4);
      d.method = text(5);
      d.url = text(6);
      if (sqlite3_column_type(st, 7) != SQLITE_NULL) d.body = text(7);
      d.state = text(8);
      d.expires_at_ms = sqlite3_column_int64(st, 9);
      d.created_at_ms = sqlite3_column_int64(st, 10);
      out.push_back(std::move(d));
    }
    sqlite3_finalize(st);
    sqlite3_close(raw);
    return out;
  }

  std::string webhooks_state(const std::string& call_id) {
    auto j = store_->post_call().get(call_id);
    EXPECT_TRUE(j.ok() && *j);
    return j.ok() && *j ? (*j)->webhooks_state : "";
  }

  // What a crash before the mark would leave: the job waiting again (a second connection, as a tool would).
  void reset_to_waiting(const std::string& call_id) {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(dir_.file("osvi.db").c_str(), &raw), SQLITE_OK);
    const std::string sql =
        "UPDATE post_call_jobs SET webhooks_state = 'waiting' WHERE call_id = '" + call_id + "'";
    EXPECT_EQ(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(raw);
  }

  osvi::test::TempDir dir_;
  osvi::test::VirtualTime vt_;
  std::unique_ptr<Store> store_;
  Config config_;
  std::unique_ptr<WebhookService> service_;
  int pokes_ = 0;
};

TEST_F(WebhookServiceTest, AnalysedCallGetsItsWebhookAndActiveIntegrations) {
  ASSERT_TRUE(service_->start().ok());
  const std::string id = finish_call(1, "picked", "done");
  EXPECT_TRUE(deliveries(id).empty());
  service_->wake();                     // what the analysis listener does
  EXPECT_TRUE(deliveries(id).empty());  // never inside the caller: on the next loop turn
  vt_.run_due();
  const auto ds = deliveries(id);
  ASSERT_EQ(ds.size(), 2u);  // webhook_url and CRM; "old" is inactive
  EXPECT_EQ(ds[0].kind, "call_webhook");
  EXPECT_EQ(ds[0].destination, "http://127.0.0.1:9");
  EXPECT_EQ(ds[0].state, "pending");
  EXPECT_EQ(ds[1].kind, "integration");
  EXPECT_EQ(ds[1].integration, "CRM");
  EXPECT_EQ(ds[1].url, "https://crm.example/leads/L42");
  EXPECT_EQ(ds[1].expires_at_ms, ds[1].created_at_ms + 600'000);
  auto body = osvi::test::parse_json(ds[0].body.value_or(""));
  ASSERT_TRUE(body);
  EXPECT_EQ(osvi::test::json_str(body.get(), "call_log_id"), id);
  EXPECT_EQ(osvi::test::json_str(body.get(), "chat"), "Agent: Hello");
  EXPECT_EQ(webhooks_state(id), "queued");
  EXPECT_EQ(pokes_, 1);
  EXPECT_EQ(service_->counters().deliveries, 2);
}

TEST_F(WebhookServiceTest, ReplayQueuesNothingTwice) {
  ASSERT_TRUE(service_->start().ok());
  const std::string id = finish_call(1, "picked", "failed");  // a failed analysis still fires integrations
  vt_.run_due();
  const auto first = deliveries(id);
  ASSERT_EQ(first.size(), 2u);
  reset_to_waiting(id);
  service_->wake();
  vt_.run_due();
  EXPECT_EQ(webhooks_state(id), "queued");
  const auto again = deliveries(id);
  EXPECT_EQ(again, first);  // same rows, same webhook ids
  EXPECT_EQ(pokes_, 1);     // nothing new to send
  // Asked directly, a queued job is not waiting.
  EXPECT_EQ(service_->queue_call(id).error().code, -ENOENT);
}

TEST_F(WebhookServiceTest, UnansweredOrUnanalysedCallsGetOnlyTheirWebhookUrl) {
  ASSERT_TRUE(service_->start().ok());
  const std::string missed = finish_call(1, "not_picked", "skipped");
  const std::string busy_no_url = finish_call(2, "busy", "skipped", false);
  const std::string pending = finish_call(3, "picked", "");  // analysis not over: not yet
  const std::string skipped = finish_call(4, "picked", "skipped");
  vt_.run_due();
  const auto m = deliveries(missed);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].kind, "call_webhook");
  auto body = osvi::test::parse_json(m[0].body.value_or(""));
  EXPECT_EQ(osvi::test::json_str(body.get(), "call_status"), "not_picked");
  EXPECT_TRUE(deliveries(busy_no_url).empty());
  EXPECT_EQ(webhooks_state(busy_no_url), "queued");  // owes nothing, done with
  EXPECT_TRUE(deliveries(pending).empty());
  EXPECT_EQ(webhooks_state(pending), "waiting");
  ASSERT_EQ(deliveries(skipped).size(), 1u);
  // The pending one is queued once its analysis ends.
  ASSERT_TRUE(store_->post_call().finish_analysis(pending, "done", std::nullopt).ok());
  service_->wake();
  vt_.run_due();
  EXPECT_EQ(deliveries(pending).size(), 2u);
}

TEST_F(WebhookServiceTest, AnAgentNoLongerConfiguredGetsNoIntegrations) {
  config_.agents.clear();
  ASSERT_TRUE(service_->start().ok());
  const std::string id = finish_call(1, "picked", "done");
  vt_.run_due();
  ASSERT_EQ(deliveries(id).size(), 1u);
  EXPECT_EQ(deliveries(id)[0].kind, "call_webhook");
}

TEST_F(WebhookServiceTest, NothingBeforeStartOrWithoutConfiguration) {
  const std::string id = finish_call(1, "picked", "done");
  service_->wake();
  vt_.run_due();
  EXPECT_TRUE(deliveries(id).empty());  // not started
  service_->set_config(nullptr);
  ASSERT_TRUE(service_->start().ok());
  vt_.run_due();
  EXPECT_TRUE(deliveries(id).empty());  // no configuration: the job waits
  EXPECT_EQ(webhooks_state(id), "waiting");
  service_->set_config(&config_);
  vt_.run_due();
  EXPECT_EQ(deliveries(id).size(), 2u);
}

// A backlog (a crash between analysis and queueing, or thousands of calls at once) is caught up at start in
// slices of kSlice jobs per loop turn, in the order the analyses ended.
TEST_F(WebhookServiceTest, BacklogCaughtUpInSlicesInOrder) {
  constexpr int kCalls = 3 * static_cast<int>(WebhookService::kSlice) + 5;
  std::vector<std::string> ids;
  for (int i = 0; i < kCalls; ++i) ids.push_back(finish_call(i, "picked", "done"));
  ASSERT_TRUE(service_->start().ok());
  auto first = service_->run_slice();  // one turn's worth, by hand
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(*first, WebhookService::kSlice);
  auto counts = store_->post_call().counts();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->webhooks_waiting, kCalls - static_cast<int64_t>(WebhookService::kSlice));
  vt_.run_due();  // the timer's turns, one after another
  counts = store_->post_call().counts();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->webhooks_waiting, 0);
  // Queued in completion order: each call's webhook row comes after the previous call's.
  int64_t previous = 0;
  for (const std::string& id : ids) {
    const auto ds = deliveries(id);
    ASSERT_EQ(ds.size(), 2u) << id;
    EXPECT_GT(ds[0].id, previous) << id;
    previous = ds[1].id;
  }
  EXPECT_GE(pokes_, 4);  // one per slice that queued something
}

}  // namespace
