// Post-call analysis over real HTTP: the daemon's sd-event loop, UpstreamLoop (curl) and the real
// osvi-model-server answering the analysis with a structured-output rule; response_format checked on the
// wire.
#include <gtest/gtest.h>
#include <time.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "model_server_process.hpp"
#include "osvi/analysis/analysis.hpp"
#include "osvi/base/event_loop.hpp"
#include "osvi/base/upstream_loop.hpp"
#include "osvi/net/json.hpp"
#include "osvi/store/store.hpp"
#include "test_support.hpp"

namespace osvi::daemon {
namespace {

class NoCalls final : public CallService {
 public:
  Result<std::string> place_call(const PlaceCallRequest&) override { return make_error("no", -ENODEV); }
  size_t idle_lines() const override { return 0; }
  int add_finished_listener(CallFinishedListener) override { return 1; }
  void remove_finished_listener(int) override {}
};

TEST(AnalysisOverHttp, TheModelServerAnswersTheStructuredRequestAndTheResultLands) {
  test::TempDir dir;
  // The callback the model asks for is two days ahead in India (UTC+05:30, no DST), whatever today is: a
  // fixed date would fall into the past and be moved to "now".
  const time_t ahead = time(nullptr) + 19800 + 2 * 86400;
  tm civil{};
  gmtime_r(&ahead, &civil);
  char day_buf[32];
  std::snprintf(day_buf, sizeof day_buf, "%04d-%02d-%02d", civil.tm_year + 1900, civil.tm_mon + 1,
                civil.tm_mday);
  const std::string day = day_buf;
  civil.tm_hour = 12;  // 18:00 in Kolkata is 12:30 UTC
  civil.tm_min = 30;
  civil.tm_sec = 0;
  const int64_t due_ms = int64_t(timegm(&civil)) * 1000;
  test::write_file(dir.file("scenario.json"), R"({"llm": {"rules": [
    {"match_any": "analyse a finished phone call",
     "reply_json": {"summary": "Asha wants a call back tomorrow evening.", "data": {"name": "Asha", "seats": 3},
                    "tags": ["interested"],
                    "callback": {"required": true, "requested_text": "after six tomorrow",
                                 "local_time": ")" +
                                                  day + R"(T18:00"},
                    "opt_out": {"requested": false}}},
    {"reply": "not for the analysis"}]}})");
  test::ModelServer server(dir.file("scenario.json"), dir.file("log.jsonl"));
  ASSERT_FALSE(server.base().empty()) << server.error();

  SystemClock clock;
  auto store = Store::open(StoreOptions{dir.file("osvid.db"), 2000, true}, clock);
  ASSERT_TRUE(store.ok()) << store.error().message;
  CallRecord r;
  r.call_id = "0190a1b2-0000-7000-8000-000000000001";
  r.agent_uuid = "agent_a";
  r.phone_number = "+919876543210";
  ASSERT_TRUE((*store)->calls().insert(r).ok());
  ASSERT_TRUE((*store)
                  ->calls()
                  .add_transcript_turn({r.call_id, 0, "agent", "Shall we talk now?", {}, {}, false, {}})
                  .ok());
  ASSERT_TRUE(
      (*store)
          ->calls()
          .add_transcript_turn({r.call_id, 1, "user", "Call me after six tomorrow.", {}, {}, false, {}})
          .ok());
  r.status = "picked";
  r.ended_at_ms = clock.wall_ms();
  ASSERT_TRUE(finish_call_and_enqueue(**store, r).ok());

  Config config;
  AgentConfig a;
  a.agent_uuid = "agent_a";
  a.analysis.enabled = true;
  a.analysis.llm.base_url = server.base() + "/v1";
  a.analysis.llm.model = "osvi-sim";
  a.analysis.data_extraction = {{"name", FieldType::text, "", true}, {"seats", FieldType::number, "", false}};
  a.analysis.tags = {{7, "interested", "#00aa00"}};
  config.agents.push_back(a);

  auto loop = EventLoop::create();
  ASSERT_TRUE(loop.ok());
  auto up = UpstreamLoop::create(**loop);
  ASSERT_TRUE(up.ok());
  TimeZones zones;
  NoCalls calls;
  AnalysisContext ctx;
  ctx.clock = &clock;
  ctx.store = store->get();
  ctx.upstream = &(*up)->upstream();
  ctx.calls = &calls;
  ctx.zones = &zones;
  ctx.timer = [&](std::function<void()> fire) { return make_loop_call_timer(**loop, std::move(fire)); };
  ctx.phone_zones = [](std::string_view) { return std::vector<std::string>{"Asia/Kolkata"}; };
  auto service = AnalysisService::create(std::move(ctx));
  ASSERT_TRUE(service.ok()) << service.error().message;
  (*service)->set_config(&config);
  (*service)->add_done_listener([&](const std::string&) { (*loop)->exit(0); });
  auto guard = (*loop)->add_timer(clock.monotonic_us() + 10'000'000, [&] { (*loop)->exit(1); });
  ASSERT_TRUE(guard.ok());
  ASSERT_TRUE((*service)->start().ok());
  ASSERT_EQ((*loop)->run(), 0) << "no analysis within 10 s";

  auto c = (*store)->calls().get(r.call_id);
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->summary, "Asha wants a call back tomorrow evening.");
  EXPECT_EQ((*c)->data_captured, R"({"name":"Asha","seats":3})");
  EXPECT_EQ((*c)->tag_id, 7);
  ASSERT_TRUE((*c)->post_call_analysis.has_value());
  EXPECT_NE((*c)->post_call_analysis->find(R"("status":"done")"), std::string::npos)
      << *(*c)->post_call_analysis;
  EXPECT_NE((*c)->post_call_analysis->find("\"at\":\"" + day + "T18:00:00+05:30\""), std::string::npos);
  auto cb = (*store)->callbacks().get(1);
  ASSERT_TRUE(cb.ok() && cb->has_value());
  EXPECT_EQ((*cb)->due_at_ms, due_ms);

  // What went over the wire: one request, with the strict json_schema response_format.
  const std::string log = test::read_file(dir.file("log.jsonl"));
  std::string why;
  net::JsonPtr entry = net::json_parse(log.substr(0, log.find('\n')), &why);
  ASSERT_TRUE(entry) << why << "\n" << log;
  const cJSON* format = cJSON_GetObjectItemCaseSensitive(entry.get(), "response_format");
  ASSERT_TRUE(cJSON_IsObject(format)) << log;
  EXPECT_STREQ(cJSON_GetObjectItemCaseSensitive(format, "type")->valuestring, "json_schema");
  const cJSON* js = cJSON_GetObjectItemCaseSensitive(format, "json_schema");
  EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(js, "strict")));
  EXPECT_NE(net::json_print(js).find(R"("seats":{"type":["number","null"])"), std::string::npos);
  EXPECT_EQ(log.find("not for the analysis"), std::string::npos);
}

}  // namespace
}  // namespace osvi::daemon
