// Post-call webhooks through a real osvid: calls that finished (and were analysed) before the daemon started
// — what a crash between analysis and queueing leaves — are queued by the WebhookService at start and
// delivered by the Dispatcher to a loopback receiver, signed (checked with python3's hmac) with the box's key
// and the integration's own; and a delivery on the wire when osvid is SIGKILLed arrives after the restart
// with the same webhook-id.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "model_server_process.hpp"
#include "osvi/clock.hpp"
#include "osvi/net/json.hpp"
#include "osvi/store/store.hpp"
#include "osvi/store/unit_of_work.hpp"
#include "test_support.hpp"
#include "webhook_receiver.hpp"

using namespace std::chrono_literals;
using osvi::test::DaemonProcess;
using osvi::test::WebhookReceiver;

namespace {

constexpr const char* kToken = "HookToken0123456";
constexpr const char* kBoxSecret = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";  // 32 bytes
constexpr const char* kCrmSecret = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";              // 24 bytes

// python3 computes the signature header value from the same inputs (the body through a file: no quoting).
std::string python_signature(const std::string& secret, const std::string& id, const std::string& ts,
                             const std::string& body, const osvi::test::TempDir& dir) {
  const std::string body_path = dir.file("body");
  osvi::test::write_file(body_path, body);
  const std::string cmd =
      "python3 -c 'import base64,hashlib,hmac,sys; k=base64.b64decode(sys.argv[1][6:]); "
      "b=open(sys.argv[4],\"rb\").read(); m=sys.argv[2].encode()+b\".\"+sys.argv[3].encode()+b\".\"+b; "
      "print(\"v1,\"+base64.b64encode(hmac.new(k,m,hashlib.sha256).digest()).decode())' " +
      secret + " " + id + " " + ts + " " + body_path;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return {};
  std::string out;
  char buf[256];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  EXPECT_EQ(::pclose(p), 0);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class WebhooksProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(receiver_.start().ok());
    ASSERT_EQ(::mkdir(dir_.file("state").c_str(), 0700), 0);
  }

  // Finished calls in the daemon's database before it starts: as the calls engine and the analysis leave
  // them (final record, post-call job, analysis over), the webhooks not queued yet.
  void seed(int n, const std::string& status, const std::string& analysis, bool webhook_url = true) {
    osvi::SystemClock clock;
    osvi::daemon::StoreOptions so;
    so.path = dir_.file("state/osvi.db");
    auto store = osvi::daemon::Store::open(so, clock);
    ASSERT_TRUE(store.ok()) << store.error().message;
    osvi::daemon::CallRecord c;
    char id[64];
    std::snprintf(id, sizeof id, "0190aaaa-0000-7000-8000-%012d", n);
    c.call_id = id;
    c.agent_uuid = "agent_a";
    c.agent_name = "Front desk";
    c.phone_number = "+919876543210";
    c.person_name = "Caller " + std::to_string(n);
    c.additional_data = R"({"crm_id":"L)" + std::to_string(n) + R"("})";
    if (webhook_url) c.webhook_url = receiver_.url("/call");
    ASSERT_TRUE((*store)->calls().insert(c).ok());
    c.status = status;
    c.ended_at_ms = clock.wall_ms();
    if (status == "picked") {
      c.duration_seconds = 20;
      c.call_picked_at_ms = clock.wall_ms() - 20'000;
      c.summary = "Summary of call " + std::to_string(n);
    }
    ASSERT_TRUE(osvi::daemon::finish_call_and_enqueue(**store, c).ok());
    if (status == "picked") {
      osvi::daemon::TranscriptTurn t;
      t.call_id = c.call_id;
      t.role = "agent";
      t.text = "Hello, front desk.";
      ASSERT_TRUE((*store)->calls().add_transcript_turn(t).ok());
      t.seq = 1;
      t.role = "user";
      t.text = "Mail me the brochure at ravi@example.com";
      ASSERT_TRUE((*store)->calls().add_transcript_turn(t).ok());
    }
    // "": the analysis is left to the daemon.
    if (!analysis.empty()) {
      ASSERT_TRUE((*store)->post_call().finish_analysis(c.call_id, analysis, std::nullopt).ok());
    }
    ids_.push_back(c.call_id);
  }

  // model: the analysis model's base URL ("" = the default, never asked: every seeded analysis is over).
  std::unique_ptr<DaemonProcess> start(const std::string& model = "") {
    port_ = osvi::test::free_loopback_port();
    const std::string llm =
        model.empty() ? "" : R"("llm":{"base_url":")" + model + R"("},"data_extraction":[{"key":"email"}],)";
    const std::string cfg =
        R"({"state_dir":")" + dir_.file("state") + R"(","api":{"listen":"127.0.0.1:)" +
        std::to_string(port_) + R"(","tokens":[")" + kToken + R"("]},"audio":{"rt_priority":0},)" +
        R"("agents":[{"agent_uuid":"agent_a","name":"Front desk","active":true,"analysis":{"enabled":true,)" +
        llm + R"("integrations":[{"name":"CRM","method":"PUT","url":")" + receiver_.url("/crm/{{crm_id}}") +
        R"(","headers":{"X-Tenant":"7"},"secret":")" + kCrmSecret + R"("}]}}],)" +
        R"("webhooks":{"allowed_targets":["127.0.0.0/8"],"signing_secret":")" + kBoxSecret +
        R"(","timeout_ms":1000,"initial_backoff_ms":200,"max_backoff_ms":1000}})";
    osvi::test::write_file(dir_.file("osvid.json"), cfg);
    auto d = std::make_unique<DaemonProcess>(dir_.path(),
                                             std::vector<std::string>{"--config", dir_.file("osvid.json")});
    EXPECT_TRUE(d->wait_notify("READY=1", 30s)) << d->stderr_text();
    return d;
  }

  void stop(DaemonProcess& d) {
    d.signal(SIGTERM);
    EXPECT_EQ(d.wait_exit(30s), 0) << d.stderr_text();
  }

  // The state of every delivery of the database (after the daemon stopped), by webhook_id.
  std::map<std::string, std::string> delivery_states() {
    std::map<std::string, std::string> out;
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(dir_.file("state/osvi.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
              SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, "SELECT webhook_id, state FROM webhook_deliveries", -1, &st, nullptr),
              SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW)
      out[reinterpret_cast<const char*>(sqlite3_column_text(st, 0))] =
          reinterpret_cast<const char*>(sqlite3_column_text(st, 1));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
  }

  // Waits until the daemon recorded n deliveries, all delivered (the receiver records a request before it
  // answers, so its count alone runs ahead of the daemon's log).
  bool all_delivered(size_t n, std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto states = delivery_states();
      size_t delivered = 0;
      for (const auto& [id, state] : states) delivered += state == "delivered" ? 1 : 0;
      if (states.size() == n && delivered == n) return true;
      if (std::chrono::steady_clock::now() > until) return false;
      std::this_thread::sleep_for(20ms);
    }
  }

  osvi::test::TempDir dir_;
  WebhookReceiver receiver_;
  std::vector<std::string> ids_;
  int port_ = 0;
};

TEST_F(WebhooksProcess, FinishedCallsDeliveriesArriveSignedInOrder) {
  seed(1, "picked", "done");
  seed(2, "not_picked", "skipped");
  seed(3, "picked", "failed");       // a failed analysis still fires the integration
  seed(4, "picked", "done", false);  // no webhook_url: the integration only
  auto daemon = start();
  ASSERT_FALSE(HasFailure());
  // 3 webhook_url deliveries (calls 1-3) and 3 integration ones (the picked calls 1, 3, 4).
  ASSERT_TRUE(receiver_.wait_for(6, 20'000)) << receiver_.count() << " requests\n" << daemon->stderr_text();
  EXPECT_TRUE(all_delivered(6, 10s));
  stop(*daemon);

  std::vector<std::string> call_order, crm_targets;
  for (const WebhookReceiver::Request& r : receiver_.requests()) {
    const std::string id = r.header("webhook-id");
    const std::string ts = r.header("webhook-timestamp");
    const bool crm = r.target.rfind("/crm/", 0) == 0;
    EXPECT_EQ(r.header("webhook-signature"),
              python_signature(crm ? kCrmSecret : kBoxSecret, id, ts, r.body, dir_))
        << r.target;
    EXPECT_EQ(r.header("Content-Type"), "application/json");
    osvi::net::JsonPtr body = osvi::test::parse_json(r.body);
    ASSERT_TRUE(body) << r.body;
    if (crm) {
      EXPECT_EQ(r.method, "PUT");
      EXPECT_EQ(r.header("X-Tenant"), "7");
      crm_targets.push_back(r.target);
      EXPECT_EQ(osvi::test::json_str(body.get(), "call_status"), "picked");
      EXPECT_EQ(cJSON_GetObjectItem(body.get(), "chat"), nullptr);  // Auto body: the sections only
    } else {
      EXPECT_EQ(r.method, "POST");
      EXPECT_EQ(r.target, "/call");
      call_order.push_back(osvi::test::json_str(body.get(), "call_log_id"));
      EXPECT_NE(cJSON_GetObjectItem(body.get(), "executionMode"), nullptr);
    }
  }
  // One destination each: the calls' order of completion is kept.
  EXPECT_EQ(call_order, (std::vector<std::string>{ids_[0], ids_[1], ids_[2]}));
  EXPECT_EQ(crm_targets, (std::vector<std::string>{"/crm/L1", "/crm/L3", "/crm/L4"}));
}

TEST_F(WebhooksProcess, DeliveryOnTheWireAtKillArrivesAfterRestartWithItsId) {
  seed(1, "busy", "skipped");  // one delivery: the webhook_url
  receiver_.set_default(WebhookReceiver::Reply::of(WebhookReceiver::Mode::hang));
  auto daemon = start();
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(receiver_.wait_for(1, 20'000)) << daemon->stderr_text();
  daemon->signal(SIGKILL);  // the request is on the wire, unanswered
  daemon->wait_exit(10s);
  daemon.reset();
  const WebhookReceiver::Request first = receiver_.requests().at(0);

  receiver_.set_default(WebhookReceiver::Reply::with_status(204));
  daemon = start();
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(receiver_.wait_for(2, 20'000)) << daemon->stderr_text();
  EXPECT_TRUE(all_delivered(1, 10s));
  stop(*daemon);
  const auto requests = receiver_.requests();
  const WebhookReceiver::Request& again = requests.back();
  EXPECT_EQ(again.header("webhook-id"), first.header("webhook-id"));  // the receiver can deduplicate
  EXPECT_EQ(again.body, first.body);
  EXPECT_EQ(again.header("webhook-signature"),
            python_signature(kBoxSecret, again.header("webhook-id"), again.header("webhook-timestamp"),
                             again.body, dir_));
  osvi::net::JsonPtr body = osvi::test::parse_json(again.body);
  EXPECT_EQ(osvi::test::json_str(body.get(), "call_status"), "busy");
}

// The whole path on a live daemon: a finished call's analysis runs against the model, its done listener wakes
// the webhook service, and both deliveries carry the analysis' results.
TEST_F(WebhooksProcess, AnalysisResultsReachTheReceiver) {
  osvi::test::write_file(dir_.file("scenario.json"), R"({"llm":{"rules":[
      {"match_any":"analyse a finished phone call","reply_json":{"summary":"Ravi asked for the brochure.",
       "data":{"email":"ravi@example.com"},"callback":{"required":false,"requested_text":null,"local_time":null},
       "opt_out":{"requested":false}}}]}})");
  osvi::test::ModelServer model(dir_.file("scenario.json"), dir_.file("model.log"));
  ASSERT_FALSE(model.base().empty()) << model.error();
  seed(5, "picked", "");  // analysis pending
  auto daemon = start(model.base() + "/v1");
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(receiver_.wait_for(2, 20'000)) << receiver_.count() << " requests\n" << daemon->stderr_text();
  EXPECT_TRUE(all_delivered(2, 10s));
  stop(*daemon);
  for (const WebhookReceiver::Request& r : receiver_.requests()) {
    osvi::net::JsonPtr body = osvi::test::parse_json(r.body);
    ASSERT_TRUE(body) << r.body;
    EXPECT_EQ(osvi::test::json_str(body.get(), "call_summary"), "Ravi asked for the brochure.") << r.target;
    EXPECT_EQ(osvi::test::json_str(cJSON_GetObjectItem(body.get(), "data_capture"), "email"),
              "ravi@example.com")
        << r.body;
    if (r.target == "/call") {
      EXPECT_EQ(osvi::test::json_str(body.get(), "chat"),
                "Agent: Hello, front desk.\nUser: Mail me the brochure at ravi@example.com");
    } else {
      EXPECT_EQ(r.target, "/crm/L5");
    }
  }
}

// A real call on a simulated line, placed through the API with a webhook_url: the engine's final record, the
// analysis (off for this agent: skipped), the webhook service and the dispatcher, all in the live daemon.
TEST_F(WebhooksProcess, PlacedCallFiresItsWebhookUrl) {
  osvi::test::write_file(
      dir_.file("scenario.json"),
      R"({"stt":{"transcripts":["hello"]},"llm":{"rules":[{"match":"hello","reply":"Goodbye."}]}})");
  osvi::test::ModelServer model(dir_.file("scenario.json"), dir_.file("model.log"));
  ASSERT_FALSE(model.base().empty()) << model.error();
  port_ = osvi::test::free_loopback_port();
  const std::string url = model.base() + "/v1";
  osvi::test::write_file(
      dir_.file("osvid.json"),
      R"({"state_dir":")" + dir_.file("state") + R"(","api":{"listen":"127.0.0.1:)" + std::to_string(port_) +
          R"(","tokens":[")" + kToken + R"("]},"audio":{"rt_priority":0},)" +
          R"("agents":[{"agent_uuid":"agent_k","name":"K","active":true,"greeting":{"text":"Hello."},)" +
          R"("stt":{"base_url":")" + url + R"("},"llm":{"base_url":")" + url + R"("},"voice":{"base_url":")" +
          url + R"("}}],"lines":[{"id":"sim0","type":"sim","sim":{"outcome":"answer","rings":1,)" +
          R"("ring_interval_ms":200,"steps":[{"say":"Hello?","ms":800},{"silence_ms":300,"after_agent":true},)" +
          R"({"hangup":true}]}}],)" + R"("webhooks":{"allowed_targets":["127.0.0.0/8"],"signing_secret":")" +
          kBoxSecret + R"("}})");
  DaemonProcess daemon(dir_.path(), {"--config", dir_.file("osvid.json")});
  ASSERT_TRUE(daemon.wait_notify("READY=1", 30s)) << daemon.stderr_text();
  const std::string req = R"({"agent_uuid":"agent_k","phone_number":"9876543210","country_code":"IN",)"
                          R"("person_name":"Ravi","additional_data":{"crm_id":"X9"},"webhook_url":")" +
                          receiver_.url("/placed") + R"("})";
  auto placed =
      osvi::test::http_request("POST", "http://127.0.0.1:" + std::to_string(port_) + "/v1/call", kToken, req);
  ASSERT_EQ(placed.status, 200) << placed.body;
  osvi::net::JsonPtr answer = osvi::test::parse_json(placed.body);
  const std::string call_id = osvi::test::json_str(cJSON_GetObjectItem(answer.get(), "data"), "call_id");
  ASSERT_TRUE(receiver_.wait_for(1, 30'000)) << daemon.stderr_text();
  EXPECT_TRUE(all_delivered(1, 10s));
  stop(daemon);
  const WebhookReceiver::Request r = receiver_.requests().at(0);
  EXPECT_EQ(r.target, "/placed");
  EXPECT_EQ(r.header("webhook-signature"), python_signature(kBoxSecret, r.header("webhook-id"),
                                                            r.header("webhook-timestamp"), r.body, dir_));
  osvi::net::JsonPtr body = osvi::test::parse_json(r.body);
  ASSERT_TRUE(body) << r.body;
  EXPECT_EQ(osvi::test::json_str(body.get(), "call_log_id"), call_id);
  EXPECT_EQ(osvi::test::json_str(body.get(), "call_status"), "picked");
  EXPECT_EQ(osvi::test::json_str(body.get(), "call_type"), "outbound");
  EXPECT_EQ(osvi::test::json_str(body.get(), "phone_number"), "+919876543210");
  EXPECT_NE(osvi::test::json_str(body.get(), "chat").find("Agent: Hello."), std::string::npos) << r.body;
  const cJSON* trigger = cJSON_GetObjectItem(body.get(), "call_trigger_data");
  EXPECT_EQ(osvi::test::json_str(trigger, "crm_id"), "X9");
  EXPECT_EQ(osvi::test::json_str(trigger, "person_name"), "Ravi");
  EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(body.get(), "call_summary")));  // no analysis for this agent
}

}  // namespace
