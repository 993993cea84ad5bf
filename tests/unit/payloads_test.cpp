// Post-call webhook payloads: the webhook_url body, Auto and custom integration bodies, placeholders,
// destinations, message ids and which deliveries a call owes.
#include "osvi/webhooks/payloads.hpp"

#include <gtest/gtest.h>

#include <set>

#include "osvi/net/json.hpp"
#include "test_support.hpp"

namespace {

using namespace osvi::daemon;
using osvi::net::JsonPtr;

constexpr int64_t kT0 = 1'780'000'000'000;  // 2026-05-28T20:26:40Z

JsonPtr parse(const std::string& text) {
  std::string why;
  JsonPtr v = osvi::net::json_parse(text, &why);
  EXPECT_TRUE(v) << why << ": " << text;
  return v;
}

std::string print(const JsonPtr& v) {
  return osvi::net::json_print(v.get());
}

CallRecord picked_call() {
  CallRecord c;
  c.call_id = "0190aaaa-0000-7000-8000-000000000001";
  c.agent_uuid = "agent_a";
  c.agent_name = "Front desk";
  c.phone_number = "+919876543210";
  c.status = "picked";
  c.call_type = "outbound";
  c.duration_seconds = 42;
  c.call_ended_by = "agent";
  c.call_ended_reason = "assistant-ended-call";
  c.campaign_id = 7;
  c.tag_id = 3;
  c.tag_name = "Hot lead";
  c.tag_color_code = "#22c55e";
  c.created_at_ms = kT0;
  c.call_picked_at_ms = kT0 + 6'000;
  c.ended_at_ms = kT0 + 48'000;
  c.person_name = "Ravi Kumar";
  c.summary = "Wants a demo on Friday.";
  c.data_captured = R"({"email":"ravi@example.com","confirmed":true})";
  c.structured_output = R"({"appointment":{"day":"friday"}})";
  c.additional_data = R"({"crm_id":"L 42/x","campaign":"spring","score":9,"phone_number":"+10000000000"})";
  c.webhook_url = "https://Hooks.Example.com/call?x=1";
  c.execution_mode = "prod";
  return c;
}

TranscriptTurn turn(int64_t seq, const std::string& role, const std::string& text) {
  TranscriptTurn t;
  t.call_id = "c";
  t.seq = seq;
  t.role = role;
  t.text = text;
  return t;
}

std::vector<TranscriptTurn> turns() {
  return {turn(1, "agent", "Hello, this is the front desk."), turn(2, "user", "Hi,\nI want a demo."),
          turn(3, "tool", "opt_out recorded"), turn(4, "operator", "Taking over.")};
}

TEST(Payloads, ChatStringIsTheLegacyFormat) {
  EXPECT_EQ(chat_text(turns()),
            "Agent: Hello, this is the front desk.\nUser: Hi, I want a demo.\nOperator: Taking over.");
  EXPECT_EQ(chat_text({}), "");
}

TEST(Payloads, CallWebhookBodyHasEveryKey) {
  const JsonPtr body = call_webhook_body(picked_call(), turns(), 330);
  EXPECT_EQ(
      print(body),
      print(parse(
          R"({"call_log_id":"0190aaaa-0000-7000-8000-000000000001","phone_number":"+919876543210",)"
          R"("agent_name":"Front desk","call_status":"picked","call_type":"outbound",)"
          R"("call_summary":"Wants a demo on Friday.",)"
          R"("data_capture":{"email":"ravi@example.com","confirmed":true},)"
          R"("structured_output":{"appointment":{"day":"friday"}},)"
          R"("call_trigger_data":{"phone_number":"+919876543210","person_name":"Ravi Kumar",)"
          R"("crm_id":"L 42/x","campaign":"spring","score":9},)"
          R"("agent_uuid":"agent_a",)"
          R"("chat":"Agent: Hello, this is the front desk.\nUser: Hi, I want a demo.\nOperator: Taking over.",)"
          R"("executionMode":"prod","call_id":"0190aaaa-0000-7000-8000-000000000001","duration":42,)"
          R"("call_ended_by":"agent","call_ended_reason":"assistant-ended-call",)"
          R"("created_at":"2026-05-29T01:56:40+05:30","call_picked_at":"2026-05-29T01:56:46+05:30",)"
          R"("ended_at":"2026-05-29T01:57:28+05:30",)"
          R"("tag":{"id":3,"name":"Hot lead","color_code":"#22c55e"},"campaign_id":7})")));
}

// A call nobody answered: the same keys, absent values null, chat "".
TEST(Payloads, CallWebhookBodyOfAnUnansweredInboundCallHoldsNulls) {
  CallRecord c;
  c.call_id = "0190aaaa-0000-7000-8000-000000000002";
  c.agent_uuid = "agent_a";
  c.agent_name = "Front desk";
  c.phone_number = "+919876543210";
  c.status = "not_picked";
  c.call_type = "inbound";
  c.created_at_ms = kT0;
  c.execution_mode = "test";
  c.summary = "";  // an empty summary is no summary
  const JsonPtr body = call_webhook_body(c, {}, 0);
  EXPECT_EQ(print(body),
            print(parse(
                R"({"call_log_id":"0190aaaa-0000-7000-8000-000000000002","phone_number":"+919876543210",)"
                R"("agent_name":"Front desk","call_status":"not_picked","call_type":"inbound",)"
                R"("call_summary":null,"data_capture":null,"structured_output":null,)"
                R"("call_trigger_data":null,"agent_uuid":"agent_a","chat":"","executionMode":"test",)"
                R"("call_id":"0190aaaa-0000-7000-8000-000000000002","duration":0,"call_ended_by":null,)"
                R"("call_ended_reason":null,"created_at":"2026-05-28T20:26:40+00:00","call_picked_at":null,)"
                R"("ended_at":null,"tag":null,"campaign_id":null})")));
}

TEST(Payloads, AutoBodyEverySectionAndOmissions) {
  const CallRecord c = picked_call();
  IntegrationConfig::Sections all;
  EXPECT_EQ(
      print(auto_body(all, c)),
      print(parse(R"({"call_log_id":"0190aaaa-0000-7000-8000-000000000001","phone_number":"+919876543210",)"
                  R"("agent_name":"Front desk","call_status":"picked","call_type":"outbound",)"
                  R"("call_summary":"Wants a demo on Friday.",)"
                  R"("data_capture":{"email":"ravi@example.com","confirmed":true},)"
                  R"("structured_output":{"appointment":{"day":"friday"}},)"
                  R"("call_trigger_data":{"phone_number":"+919876543210","person_name":"Ravi Kumar",)"
                  R"("crm_id":"L 42/x","campaign":"spring","score":9}})")));
  // Each section on its own.
  const auto only = [](int i) {
    IntegrationConfig::Sections s{false, false, false, false, false};
    bool* flags[] = {&s.call_info, &s.summary, &s.data_extraction, &s.structured_output, &s.trigger_data};
    *flags[i] = true;
    return s;
  };
  EXPECT_EQ(print(auto_body(only(0), c)),
            R"({"call_log_id":"0190aaaa-0000-7000-8000-000000000001","phone_number":"+919876543210",)"
            R"("agent_name":"Front desk","call_status":"picked","call_type":"outbound"})");
  EXPECT_EQ(print(auto_body(only(1), c)), R"({"call_summary":"Wants a demo on Friday."})");
  EXPECT_EQ(print(auto_body(only(2), c)),
            R"({"data_capture":{"email":"ravi@example.com","confirmed":true}})");
  EXPECT_EQ(print(auto_body(only(3), c)), R"({"structured_output":{"appointment":{"day":"friday"}}})");
  EXPECT_EQ(print(auto_body(only(4), c)),
            R"({"call_trigger_data":{"phone_number":"+919876543210","person_name":"Ravi Kumar",)"
            R"("crm_id":"L 42/x","campaign":"spring","score":9}})");
  // Enabled sections without data are left out: no summary, an empty extraction, no output, inbound.
  CallRecord bare = c;
  bare.summary.reset();
  bare.data_captured = "{}";
  bare.structured_output = "null";
  bare.call_type = "inbound";
  EXPECT_EQ(print(auto_body(all, bare)),
            R"({"call_log_id":"0190aaaa-0000-7000-8000-000000000001","phone_number":"+919876543210",)"
            R"("agent_name":"Front desk","call_status":"picked","call_type":"inbound"})");
  IntegrationConfig::Sections none{false, false, false, false, false};
  EXPECT_EQ(print(auto_body(none, c)), "{}");
}

TEST(Payloads, UrlPlaceholdersResolvedEncodedOrLeft) {
  const JsonPtr vars = template_variables(picked_call(), turns(), 330);
  EXPECT_EQ(
      fill_url("https://crm.example/leads/{{crm_id}}/calls?p={{phone_number}}&s={{ score }}", vars.get()),
      "https://crm.example/leads/L%2042%2Fx/calls?p=%2B919876543210&s=9");
  // Unknown names, unclosed and odd tokens stay as written.
  EXPECT_EQ(fill_url("https://x.example/{{nope}}/{{crm_id", vars.get()),
            "https://x.example/{{nope}}/{{crm_id");
  EXPECT_EQ(fill_url("https://x.example/{{{{campaign}}", vars.get()), "https://x.example/{{spring");
  // Call fields and paths into objects resolve too; a call field wins over a trigger key of the same name.
  EXPECT_EQ(fill_url("https://x.example/{{call_log_id}}/{{data_capture.email}}/{{tag.id}}", vars.get()),
            "https://x.example/0190aaaa-0000-7000-8000-000000000001/ravi%40example.com/3");
}

TEST(Payloads, CustomTemplateValuesAndText) {
  const JsonPtr vars = template_variables(picked_call(), turns(), 330);
  const JsonPtr tmpl = parse(
      R"({"id":"{{call_log_id}}","capture":"{{data_capture}}","score":"{{score}}","ok":"{{data_capture.confirmed}}",)"
      R"("line":"{{person_name}} ({{phone_number}}) scored {{score}}","missing":"{{nope}}","mixed":"x {{nope}} y",)"
      R"("list":[1,"{{campaign}}",{"{{crm_id}}":"{{tag}}"}],"n":5,"b":false,"z":null})");
  EXPECT_EQ(
      print(fill_template(tmpl.get(), vars.get())),
      R"({"id":"0190aaaa-0000-7000-8000-000000000001","capture":{"email":"ravi@example.com","confirmed":true},)"
      R"("score":9,"ok":true,"line":"Ravi Kumar (+919876543210) scored 9","missing":"{{nope}}",)"
      R"("mixed":"x {{nope}} y","list":[1,"spring",{"{{crm_id}}":{"id":3,"name":"Hot lead",)"
      R"("color_code":"#22c55e"}}],"n":5,"b":false,"z":null})");
}

TEST(Payloads, DestinationsAndIds) {
  EXPECT_EQ(url_destination("https://Hooks.Example.com/call?x=1"), "https://hooks.example.com:443");
  EXPECT_EQ(url_destination("http://user:pw@10.0.0.5:8080"), "http://10.0.0.5:8080");
  EXPECT_EQ(url_destination("http://[::1]:9000/x"), "http://[::1]:9000");
  EXPECT_EQ(url_destination("http://h.example#f"), "http://h.example:80");
  EXPECT_EQ(url_destination("ftp://h.example/"), std::nullopt);
  EXPECT_EQ(url_destination("https:///x"), std::nullopt);
  std::set<std::string> ids;
  std::string previous;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = new_webhook_id(kT0 + i);
    ASSERT_EQ(id.size(), 30u);
    ASSERT_EQ(id.substr(0, 4), "msg_");
    ASSERT_EQ(id.find_first_not_of("0123456789ABCDEFGHJKMNPQRSTVWXYZ", 4), std::string::npos) << id;
    ASSERT_GT(id, previous);  // time-ordered
    previous = id;
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 1000u);
}

AgentConfig agent_with(std::vector<IntegrationConfig> integrations) {
  AgentConfig a;
  a.agent_uuid = "agent_a";
  a.name = "Front desk";
  a.analysis.enabled = true;
  a.analysis.integrations = std::move(integrations);
  return a;
}

TEST(Payloads, DeliveriesOfACall) {
  IntegrationConfig crm;
  crm.name = "CRM";
  crm.method = "PATCH";
  crm.url = "https://crm.example/leads/{{crm_id}}";
  crm.headers = {{"Authorization", "Bearer t"}};
  IntegrationConfig ping;
  ping.name = "ping";
  ping.method = "GET";
  ping.url = "https://ping.example/{{call_log_id}}";
  IntegrationConfig off;
  off.name = "off";
  off.url = "https://off.example/";
  off.active = false;
  IntegrationConfig custom;
  custom.name = "custom";
  custom.method = "DELETE";
  custom.url = "https://c.example/";
  custom.body_auto = false;
  custom.body_template = R"({"a":"{{crm_id}}"})";
  const AgentConfig agent = agent_with({crm, ping, off, custom});
  PayloadOptions opt{330, kT0, 3600};

  const CallRecord c = picked_call();
  const std::vector<WebhookDelivery> ds = deliveries_for_call(c, turns(), &agent, true, opt);
  ASSERT_EQ(ds.size(), 4u);  // webhook_url, CRM, ping, custom (off is inactive)
  EXPECT_EQ(ds[0].kind, "call_webhook");
  EXPECT_EQ(ds[0].integration, "");
  EXPECT_EQ(ds[0].destination, "https://hooks.example.com:443");
  EXPECT_EQ(ds[0].method, "POST");
  EXPECT_EQ(ds[0].url, "https://Hooks.Example.com/call?x=1");
  EXPECT_EQ(ds[0].body, print(call_webhook_body(c, turns(), 330)));
  EXPECT_EQ(ds[1].kind, "integration");
  EXPECT_EQ(ds[1].integration, "CRM");
  EXPECT_EQ(ds[1].destination, "agent_a/CRM");
  EXPECT_EQ(ds[1].method, "PATCH");
  EXPECT_EQ(ds[1].url, "https://crm.example/leads/L%2042%2Fx");
  EXPECT_EQ(ds[1].headers, std::vector<std::string>{"Authorization: Bearer t"});
  EXPECT_EQ(ds[1].body, print(auto_body(IntegrationConfig::Sections{}, c)));
  EXPECT_EQ(ds[2].method, "GET");
  EXPECT_EQ(ds[2].url, "https://ping.example/0190aaaa-0000-7000-8000-000000000001");
  EXPECT_EQ(ds[2].body, std::nullopt);  // GET sends no body
  EXPECT_EQ(ds[3].method, "DELETE");
  EXPECT_EQ(ds[3].body, std::nullopt);  // nor does DELETE
  std::set<std::string> ids;
  for (const WebhookDelivery& d : ds) {
    EXPECT_EQ(d.call_id, c.call_id);
    EXPECT_EQ(d.agent_uuid, "agent_a");
    EXPECT_EQ(d.created_at_ms, kT0);
    EXPECT_EQ(d.next_attempt_at_ms, kT0);
    EXPECT_EQ(d.expires_at_ms, kT0 + 3600 * 1000);
    ids.insert(d.webhook_id);
  }
  EXPECT_EQ(ids.size(), ds.size());

  // A custom template with POST is filled.
  custom.method = "POST";
  const AgentConfig agent2 = agent_with({custom});
  const auto ds2 = deliveries_for_call(c, turns(), &agent2, true, opt);
  ASSERT_EQ(ds2.size(), 2u);
  EXPECT_EQ(ds2[1].body, R"({"a":"L 42/x"})");

  // Integrations need a picked call whose analysis ran, and a configured agent; webhook_url fires anyway.
  CallRecord missed = c;
  missed.status = "not_picked";
  EXPECT_EQ(deliveries_for_call(missed, {}, &agent, true, opt).size(), 1u);
  EXPECT_EQ(deliveries_for_call(c, turns(), &agent, false, opt).size(), 1u);
  EXPECT_EQ(deliveries_for_call(c, turns(), nullptr, true, opt).size(), 1u);
  CallRecord no_url = c;
  no_url.webhook_url.reset();
  EXPECT_EQ(deliveries_for_call(no_url, turns(), &agent, true, opt).size(), 3u);
  no_url.webhook_url = "not a url";
  EXPECT_EQ(deliveries_for_call(no_url, turns(), &agent, true, opt).size(), 3u);
}

}  // namespace
