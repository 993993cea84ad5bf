// Post-call analysis on a virtual clock with the scripted upstream and a real store: typed fields, required
// completeness, per-call fields, tags, callbacks in the callee's zone, conditional structured output,
// opt-out, the repair round, outages with backoff, skipped jobs, the outbox revision.
#include "osvi/analysis/analysis.hpp"

#include <gtest/gtest.h>

#include <ctime>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "osvi/net/json.hpp"
#include "osvi/store/store.hpp"
#include "test_support.hpp"
#include "upstream_sim.hpp"
#include "virtual_time.hpp"

namespace osvi::daemon {
namespace {

using net::JsonPtr;

int64_t utc(int year, int month, int day, int hour, int minute = 0) {
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

class NoCalls final : public CallService {
 public:
  Result<std::string> place_call(const PlaceCallRequest&) override { return make_error("no", -ENODEV); }
  size_t idle_lines() const override { return 0; }
  int add_finished_listener(CallFinishedListener l) override {
    listeners[next] = std::move(l);
    return next++;
  }
  void remove_finished_listener(int h) override { listeners.erase(h); }
  void finished(const CallRecord& r) {
    auto copy = listeners;
    for (auto& [h, l] : copy) l(r);
  }
  std::map<int, CallFinishedListener> listeners;
  int next = 1;
};

struct Pokes final : public DialerControl {
  void poke() override { ++count; }
  int count = 0;
};

// The JSON of a member of stored JSON text, compact ("" when absent).
std::string member(const std::optional<std::string>& text, const char* path0, const char* path1 = nullptr) {
  if (!text) return "";
  std::string why;
  JsonPtr doc = net::json_parse(*text, &why);
  const cJSON* v = cJSON_GetObjectItemCaseSensitive(doc.get(), path0);
  if (v && path1) v = cJSON_GetObjectItemCaseSensitive(v, path1);
  return v ? net::json_print(v) : "";
}

class AnalysisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    vt_.clock = ManualClock(utc(2026, 12, 2, 10, 0), 1'000'000);
    auto store = Store::open(StoreOptions{dir_.file("osvid.db"), 2000, true}, vt_.clock);
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(*store);
    AgentConfig a;
    a.agent_uuid = "agent_a";
    a.name = "Agent A";
    a.active = true;
    a.analysis.enabled = true;
    a.analysis.llm.model = "analysis-model";
    a.analysis.llm.base_url = "http://127.0.0.1:1/v1";
    a.analysis.prompt = "Say whether a demo was booked.";
    config_.agents.push_back(a);
    config_.site.time_zone = "Asia/Kolkata";
    config_.site.utc_offset_minutes = 330;
    up_.chunk_chars = 4096;
  }
  void TearDown() override { service_.reset(); }

  AnalysisConfig& analysis() { return config_.agents[0].analysis; }

  void start() {
    AnalysisContext ctx;
    ctx.clock = &vt_.clock;
    ctx.store = store_.get();
    ctx.upstream = &up_;
    ctx.calls = &calls_;
    ctx.dialer = &dialer_;
    ctx.zones = &zones_;
    ctx.timer = vt_.timer_factory();
    ctx.phone_zones = [](std::string_view e164) -> std::vector<std::string> {
      if (e164.starts_with("+1212")) return {"America/New_York"};
      if (e164.starts_with("+91")) return {"Asia/Kolkata"};
      return {"America/New_York", "America/Los_Angeles"};
    };
    auto s = AnalysisService::create(std::move(ctx));
    ASSERT_TRUE(s.ok()) << s.error().message;
    service_ = std::move(*s);
    service_->set_config(&config_);
    service_->add_done_listener([this](const std::string& id) { done_.push_back(id); });
    ASSERT_TRUE(service_->start().ok());
  }

  // A call that ended now (picked unless told), its transcript and its post-call job, as the engine leaves
  // it.
  std::string finished_call(
      const std::string& id, const std::string& status = "picked",
      std::vector<std::pair<std::string, std::string>> turns = {{"agent", "Hello, Asha?"},
                                                                {"user", "Yes, speaking."}},
      const std::string& phone = "+12125550123", std::optional<std::string> extraction = std::nullopt,
      std::optional<std::string> overrides = std::nullopt) {
    CallRecord r;
    r.call_id = id;
    r.agent_uuid = "agent_a";
    r.agent_name = "Agent A";
    r.phone_number = phone;
    r.person_name = "Asha";
    r.data_extraction = std::move(extraction);
    r.call_config_overrides = std::move(overrides);
    r.webhook_url = "https://example.invalid/hook";
    EXPECT_TRUE(store_->calls().insert(r).ok());
    int64_t seq = 0;
    for (auto& [role, text] : turns) {
      TranscriptTurn t;
      t.call_id = id;
      t.seq = seq++;
      t.role = role;
      t.text = text;
      EXPECT_TRUE(store_->calls().add_transcript_turn(t).ok());
    }
    r.status = status;
    r.call_picked_at_ms = vt_.clock.wall_ms() - 60'000;
    r.ended_at_ms = vt_.clock.wall_ms();
    r.duration_seconds = 60;
    EXPECT_TRUE(finish_call_and_enqueue(*store_, r).ok());
    return id;
  }
  CallRecord call(const std::string& id) {
    auto c = store_->calls().get(id);
    EXPECT_TRUE(c.ok() && c->has_value());
    return c.ok() && *c ? **c : CallRecord{};
  }
  PostCallJob job(const std::string& id) {
    auto j = store_->post_call().get(id);
    EXPECT_TRUE(j.ok() && j->has_value());
    return j.ok() && *j ? **j : PostCallJob{};
  }
  static std::string reply(const std::string& data = "{}", const std::string& extra = "") {
    return R"({"summary":"Asha agreed to a demo.","data":)" + data +
           R"(,"callback":{"required":false,"requested_text":null,"local_time":null},"opt_out":{"requested":false})" +
           extra + "}";
  }
  void advance(int64_t ms) { vt_.advance_ms(ms); }
  void llm(const std::string& text) {
    net::SimLlmReply r;
    r.text = text;
    up_.push_llm(std::move(r));
  }

  test::TempDir dir_;
  test::VirtualTime vt_;
  std::unique_ptr<Store> store_;
  Config config_;
  TimeZones zones_;
  net::SimUpstream up_{vt_.schedule()};
  NoCalls calls_;
  Pokes dialer_;
  std::unique_ptr<AnalysisService> service_;
  std::vector<std::string> done_;
};

TEST_F(AnalysisTest, TypedFieldsAreCheckedWrongTypesDroppedAndNoted) {
  analysis().data_extraction = {{"name", FieldType::text, "the callee's name", true},
                                {"age", FieldType::number, "", false},
                                {"agreed", FieldType::boolean, "", true},
                                {"visit", FieldType::date, "the day of the visit", false},
                                {"plan", FieldType::text, "", false}};
  // Per-call fields: typed by output_format; one replaces the agent's "plan".
  const std::string id = finished_call(
      "c1", "picked", {{"agent", "Hi"}, {"user", "I'm Asha, thirty, yes, budget five thousand"}},
      "+12125550123",
      R"([{"key":"budget","description":"monthly budget","required":true,"output_format":"number"},
          {"key":"plan","description":"which plan","output_format":"yes/no"},
          {"key":"city","description":"their city"}])");
  llm(reply(R"({"name":"Asha","age":"thirty","agreed":true,"visit":"2026-13-40","budget":5000,
                          "plan":"gold","city":null,"shoe_size":42})"));
  start();
  advance(5000);

  ASSERT_EQ(up_.chat_requests().size(), 1u);
  const net::ChatRequest& req = up_.chat_requests()[0];
  EXPECT_EQ(req.endpoint.model, "analysis-model");
  std::string why;
  JsonPtr format = net::json_parse(req.response_format_json, &why);
  ASSERT_TRUE(format) << why;
  const cJSON* schema = cJSON_GetObjectItem(cJSON_GetObjectItem(format.get(), "json_schema"), "schema");
  const cJSON* data_props = cJSON_GetObjectItem(
      cJSON_GetObjectItem(cJSON_GetObjectItem(schema, "properties"), "data"), "properties");
  EXPECT_EQ(net::json_print(cJSON_GetObjectItem(cJSON_GetObjectItem(data_props, "budget"), "type")),
            R"(["number","null"])");
  EXPECT_EQ(net::json_print(cJSON_GetObjectItem(cJSON_GetObjectItem(data_props, "plan"), "type")),
            R"(["boolean","null"])");
  EXPECT_EQ(net::json_print(cJSON_GetObjectItem(cJSON_GetObjectItem(data_props, "city"), "type")),
            R"(["string","null"])");
  EXPECT_NE(req.messages[0].content.find("Say whether a demo was booked."), std::string::npos);
  EXPECT_NE(req.messages[1].content.find("user: I'm Asha"), std::string::npos);

  const CallRecord c = call(id);
  EXPECT_EQ(c.summary, "Asha agreed to a demo.");
  EXPECT_EQ(c.data_captured, R"({"name":"Asha","agreed":true,"budget":5000})");
  EXPECT_EQ(member(c.post_call_analysis, "status"), R"("done")");
  EXPECT_EQ(member(c.post_call_analysis, "complete"), "true");
  const std::string dropped = member(c.post_call_analysis, "dropped_fields");
  for (const char* k : {"data.age", "data.visit", "data.plan", "data.shoe_size"})
    EXPECT_NE(dropped.find(k), std::string::npos) << k << " in " << dropped;
  EXPECT_EQ(dropped.find("data.city"), std::string::npos) << "null is 'not said', not a wrong type";
  EXPECT_EQ(job(id).analysis_state, "done");
  EXPECT_EQ(done_, std::vector<std::string>{id});
}

TEST_F(AnalysisTest, RequiredFieldsWithoutAValueMakeTheAnalysisIncomplete) {
  analysis().data_extraction = {{"name", FieldType::text, "", true},
                                {"agreed", FieldType::boolean, "", true}};
  const std::string id = finished_call("c1");
  llm(reply(R"({"name":"Asha","agreed":"yes"})"));
  start();
  advance(5000);
  const CallRecord c = call(id);
  EXPECT_EQ(member(c.post_call_analysis, "complete"), "false");
  EXPECT_EQ(member(c.post_call_analysis, "missing"), R"(["agreed"])");
  EXPECT_EQ(c.data_captured, R"({"name":"Asha"})");
}

TEST_F(AnalysisTest, TagsComeFromTheAgentsListTheFirstIsTheCallsTag) {
  analysis().tags = {{1, "interested", "#00aa00"}, {2, "callback", "#0000aa"}};
  const std::string id = finished_call("c1");
  llm(reply("{}", R"(,"tags":["callback","bogus","interested","callback"])"));
  start();
  advance(5000);
  const CallRecord c = call(id);
  EXPECT_EQ(c.tag_id, 2);
  EXPECT_EQ(c.tag_name, "callback");
  EXPECT_EQ(c.tag_color_code, "#0000aa");
  EXPECT_EQ(member(c.post_call_analysis, "tags"), R"(["callback","interested"])");
  EXPECT_NE(member(c.post_call_analysis, "dropped_fields").find("tags[1]"), std::string::npos);
  // The schema restricts the names.
  EXPECT_NE(up_.chat_requests()[0].response_format_json.find(R"("enum":["interested","callback"])"),
            std::string::npos);
}

TEST_F(AnalysisTest, AfterSixTomorrowBecomesAnAbsoluteTimeInTheCalleesZoneAndAScheduledCallback) {
  // The call ends 10:00 UTC = 05:00 in New York (the number's zone), on Wednesday 2 December.
  const std::string id = finished_call(
      "c1", "picked", {{"agent", "Is now a good time?"}, {"user", "No, call me after six tomorrow."}});
  llm(R"({"summary":"Call back later.","data":{},"callback":{"required":true,
      "requested_text":"after six tomorrow","local_time":"2026-12-03T18:00"},"opt_out":{"requested":false}})");
  start();
  advance(5000);
  const std::string& prompt = up_.chat_requests().at(0).messages[0].content;
  EXPECT_NE(prompt.find("America/New_York"), std::string::npos) << prompt;
  EXPECT_NE(prompt.find("Wednesday 2026-12-02 at 05:00"), std::string::npos) << prompt;

  const CallRecord c = call(id);
  EXPECT_TRUE(c.callback_required);
  EXPECT_EQ(member(c.post_call_analysis, "callback", "at"), R"("2026-12-03T18:00:00-05:00")");
  EXPECT_EQ(member(c.post_call_analysis, "callback", "scheduled"), "true");
  auto cb = store_->callbacks().get(1);
  ASSERT_TRUE(cb.ok() && cb->has_value());
  EXPECT_EQ((*cb)->kind, "callback");
  EXPECT_EQ((*cb)->source_call_id, id);
  EXPECT_EQ((*cb)->phone, "+12125550123");
  EXPECT_EQ((*cb)->time_zone, "America/New_York");
  EXPECT_EQ((*cb)->due_at_ms, utc(2026, 12, 3, 23, 0));  // 18:00 EST
  EXPECT_EQ((*cb)->requested_text, "after six tomorrow");
  EXPECT_NE((*cb)->request_json.find(R"("person_name":"Asha")"), std::string::npos);
  EXPECT_NE((*cb)->request_json.find(R"("webhook_url")"), std::string::npos);
  EXPECT_EQ(dialer_.count, 1);
}

TEST_F(AnalysisTest, ACallWithCallbacksOffRecordsTheRequestButSchedulesNothing) {
  const std::string id = finished_call("c1", "picked", {{"agent", "Hi"}, {"user", "Call me at six tomorrow"}},
                                       "+919876543210", std::nullopt, R"({"enable_callback":false})");
  llm(R"({"summary":"s","data":{},"callback":{"required":true,"requested_text":"at six tomorrow",
      "local_time":"2026-12-03T18:00"},"opt_out":{"requested":false}})");
  start();
  advance(5000);
  const CallRecord c = call(id);
  EXPECT_TRUE(c.callback_required);
  EXPECT_EQ(member(c.post_call_analysis, "callback", "at"), R"("2026-12-03T18:00:00+05:30")");
  EXPECT_EQ(member(c.post_call_analysis, "callback", "scheduled"), "false");
  auto none = store_->callbacks().get(1);  // the first id a schedule would take
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_EQ(dialer_.count, 0);
}

TEST_F(AnalysisTest, ConditionalStructuredOutputTakesTheChosenCasesSchema) {
  analysis().output_schema_json =
      R"({"mode":"conditional","when":[{"if":"booked","description":"a demo was booked","schema":{"type":"object",
      "properties":{"day":{"type":"string"},"seats":{"type":"integer"}},"required":["day"]}},
      {"if":"declined","schema":{"type":"object","properties":{"reason":{"type":"string","enum":["price","timing"]}},
      "required":["reason"]}}]})";
  const std::string a = finished_call("a");
  const std::string b = finished_call("b");
  llm(reply("{}", R"(,"structured_output":{"case":"booked","output":{"day":"Friday","seats":null}})"));
  llm(reply("{}", R"(,"structured_output":{"case":"declined","output":{"reason":"weather"}})"));
  start();
  advance(10000);
  EXPECT_NE(up_.chat_requests()[0].response_format_json.find("anyOf"), std::string::npos);
  EXPECT_EQ(call(a).structured_output, R"({"case":"booked","output":{"day":"Friday"}})");
  const CallRecord cb = call(b);
  EXPECT_FALSE(cb.structured_output.has_value()) << *cb.structured_output;
  EXPECT_NE(member(cb.post_call_analysis, "dropped_fields").find("structured_output.output.reason"),
            std::string::npos);
}

TEST_F(AnalysisTest, OptOutPutsTheNumberOnTheAgentsDndList) {
  const std::string id = finished_call("c1", "picked", {{"agent", "Hi"}, {"user", "Never call me again."}});
  llm(R"({"summary":"s","data":{},"callback":{"required":false,"requested_text":null,"local_time":null},
      "opt_out":{"requested":true}})");
  start();
  advance(5000);
  auto active = store_->dnd().is_active("agent_a", "+12125550123");
  ASSERT_TRUE(active.ok());
  EXPECT_TRUE(*active);
  auto entries = store_->dnd().active("agent_a");
  ASSERT_TRUE(entries.ok() && entries->size() == 1);
  EXPECT_EQ((*entries)[0].call_id, id);
  EXPECT_EQ((*entries)[0].source, "opt_out");
  EXPECT_EQ(member(call(id).post_call_analysis, "opt_out", "dnd_added"), "true");
}

TEST_F(AnalysisTest, AMalformedReplyIsRepairedOnceThenFailsCleanly) {
  const std::string a = finished_call("a");
  llm("Sure! Here is the analysis: summary: fine");
  llm("```json\n" + reply() + "\n```");
  start();
  advance(10000);
  ASSERT_EQ(up_.chat_requests().size(), 2u);
  const auto& repair = up_.chat_requests()[1].messages;
  ASSERT_EQ(repair.size(), 4u);
  EXPECT_EQ(repair[2].role, "assistant");
  EXPECT_EQ(repair[2].content, "Sure! Here is the analysis: summary: fine");
  EXPECT_NE(repair[3].content.find("no JSON object"), std::string::npos);
  EXPECT_EQ(member(call(a).post_call_analysis, "status"), R"("done")");

  const std::string b = finished_call("b");
  llm(R"({"summary":"x"})");
  llm(R"({"summary":"x","data":[]})");
  calls_.finished(call(b));
  advance(10000);
  ASSERT_EQ(up_.chat_requests().size(), 4u);
  const CallRecord c = call(b);
  EXPECT_EQ(member(c.post_call_analysis, "status"), R"("failed")");
  EXPECT_NE(member(c.post_call_analysis, "error").find("after one repair"), std::string::npos);
  EXPECT_FALSE(c.summary.has_value());
  EXPECT_EQ(job(b).analysis_state, "failed");
  EXPECT_EQ(done_, (std::vector<std::string>{a, b}));
}

TEST_F(AnalysisTest, AnUnreachableModelIsRetriedWithBackoffThenTheResultLands) {
  EXPECT_EQ(analysis_backoff_ms(1), 30'000);
  EXPECT_EQ(analysis_backoff_ms(2), 60'000);
  EXPECT_EQ(analysis_backoff_ms(6), 15 * 60'000);
  EXPECT_EQ(analysis_backoff_ms(60), 15 * 60'000);
  const std::string id = finished_call("c1");
  up_.fail_next(net::UpstreamStage::llm, {net::UpstreamError::Kind::connect, 0, "connection refused"});
  up_.fail_next(net::UpstreamStage::llm, {net::UpstreamError::Kind::http, 503, "overloaded"});
  llm(reply());
  start();
  advance(1000);
  ASSERT_EQ(up_.chat_requests().size(), 1u);
  EXPECT_EQ(job(id).analysis_state, "pending");
  EXPECT_EQ(job(id).attempts, 1);
  EXPECT_EQ(member(call(id).post_call_analysis, "status"), "") << "an outage is not a result";
  advance(28'000);  // 29 s after the failure: not yet
  EXPECT_EQ(up_.chat_requests().size(), 1u);
  advance(2'000);
  ASSERT_EQ(up_.chat_requests().size(), 2u);
  EXPECT_EQ(job(id).attempts, 2);
  EXPECT_NE(job(id).last_error->find("503"), std::string::npos);
  advance(58'000);
  EXPECT_EQ(up_.chat_requests().size(), 2u);
  advance(3'000);
  ASSERT_EQ(up_.chat_requests().size(), 3u);
  EXPECT_EQ(member(call(id).post_call_analysis, "status"), R"("done")");
  EXPECT_EQ(job(id).analysis_state, "done");
}

TEST_F(AnalysisTest, ARefusedRequestFailsAndAnOutagePast24HoursGivesUp) {
  const std::string a = finished_call("a");
  up_.fail_next(net::UpstreamStage::llm, {net::UpstreamError::Kind::http, 400, "bad model"});
  start();
  advance(1000);
  EXPECT_EQ(job(a).analysis_state, "failed");
  EXPECT_NE(member(call(a).post_call_analysis, "error").find("refused"), std::string::npos);

  const std::string b = finished_call("b");
  for (int i = 0; i < 200; ++i)
    up_.fail_next(net::UpstreamStage::llm, {net::UpstreamError::Kind::timeout, 0, "no answer"});
  calls_.finished(call(b));
  advance(25LL * 3'600'000);
  EXPECT_EQ(job(b).analysis_state, "failed");
  EXPECT_NE(member(call(b).post_call_analysis, "error").find("24 h"), std::string::npos);
  // 30 s, 1, 2, 4, 8 min, then every 15 min for a day: about a hundred tries, not thousands.
  EXPECT_LT(up_.chat_requests().size(), 110u);
  EXPECT_GT(up_.chat_requests().size(), 90u);
}

TEST_F(AnalysisTest, CallsNotPickedWithoutTranscriptOrWithAnalysisOffAreSkippedUntouched) {
  config_.agents.push_back(config_.agents[0]);
  config_.agents[1].agent_uuid = "agent_off";
  config_.agents[1].analysis.enabled = false;
  const std::string busy = finished_call("busy", "busy", {});
  const std::string silent = finished_call("silent", "picked", {{"tool", "opt_out: noted"}});
  const std::string off = finished_call("off");
  {
    CallRecord r = call(off);
    r.agent_uuid = "agent_off";
    ASSERT_TRUE(store_->calls().update(r).ok());
  }
  const std::string gone = finished_call("gone");
  {
    CallRecord r = call(gone);
    r.agent_uuid = "agent_deleted";
    ASSERT_TRUE(store_->calls().update(r).ok());
  }
  std::map<std::string, int64_t> revisions;
  for (const auto& id : {busy, silent, off, gone}) revisions[id] = call(id).revision;
  start();
  advance(1000);
  EXPECT_TRUE(up_.chat_requests().empty());
  for (const auto& id : {busy, silent, off, gone}) {
    EXPECT_EQ(job(id).analysis_state, "skipped") << id;
    EXPECT_EQ(call(id).revision, revisions[id]) << id;
  }
  EXPECT_NE(job(busy).last_error->find("not picked"), std::string::npos);
  EXPECT_EQ(job(silent).last_error, "no transcript");
  EXPECT_EQ(job(off).last_error, "analysis is off for the agent");
  EXPECT_NE(job(gone).last_error->find("agent_deleted"), std::string::npos);
  EXPECT_EQ(done_.size(), 4u);
}

TEST_F(AnalysisTest, TheResultIsANewRevisionOnTheOutboxAndKeepsTheEnginesKeys) {
  const std::string id = finished_call("c1");
  {
    CallRecord r = call(id);
    r.post_call_analysis = R"({"callback_required":true,"upstream_errors":["llm timeout"]})";
    r.callback_required = true;
    ASSERT_TRUE(store_->calls().update(r).ok());
  }
  const int64_t before = call(id).revision;
  llm(reply());
  start();
  advance(5000);
  const CallRecord c = call(id);
  EXPECT_EQ(c.revision, before + 1);
  EXPECT_EQ(member(c.post_call_analysis, "upstream_errors"), R"(["llm timeout"])");
  EXPECT_EQ(member(c.post_call_analysis, "callback_required"), "true");
  EXPECT_TRUE(c.callback_required);
  auto rows = store_->outbox().pending(0, 100);
  ASSERT_TRUE(rows.ok());
  const std::string key = "call:" + id + ":" + std::to_string(c.revision);
  bool found = false;
  for (const OutboxRow& r : *rows) {
    if (r.idempotency_key != key) continue;
    found = true;
    EXPECT_NE(r.payload.find("Asha agreed to a demo."), std::string::npos);
  }
  EXPECT_TRUE(found) << "no outbox row " << key;
}

TEST_F(AnalysisTest, AnthropicGetsTheSchemaInThePromptAndNoResponseFormat) {
  analysis().llm.provider = "anthropic";
  analysis().data_extraction = {{"email", FieldType::text, "", true}};
  const std::string id = finished_call("c1");
  llm(reply(R"({"email":"asha@example.com"})"));
  start();
  advance(5000);
  ASSERT_EQ(up_.chat_requests().size(), 1u);
  EXPECT_TRUE(up_.chat_requests()[0].response_format_json.empty());
  const std::string& prompt = up_.chat_requests()[0].messages[0].content;
  EXPECT_NE(prompt.find("must match this JSON Schema"), std::string::npos) << prompt;
  EXPECT_NE(prompt.find(R"("email":{"type":["string","null"]})"), std::string::npos) << prompt;
  EXPECT_EQ(call(id).data_captured, R"({"email":"asha@example.com"})");
}

TEST_F(AnalysisTest, AtMostTwoAnalysesWaitOnTheModelOldestFirst) {
  for (const char* id : {"a", "b", "c"}) {
    finished_call(id);
    vt_.clock.advance_ms(1000);
  }
  up_.set_timing(net::UpstreamStage::llm, {1, 2000, 5});
  for (int i = 0; i < 3; ++i) llm(reply());
  start();
  advance(100);
  EXPECT_EQ(service_->in_flight(), 2u);
  EXPECT_EQ(up_.chat_requests().size(), 2u);
  advance(5000);
  EXPECT_EQ(up_.chat_requests().size(), 3u);
  advance(5000);
  EXPECT_EQ(done_, (std::vector<std::string>{"a", "b", "c"}));
}

}  // namespace
}  // namespace osvi::daemon
