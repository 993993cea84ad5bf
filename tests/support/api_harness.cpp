// ApiTest and the API tests' reply helpers (api_harness.hpp).
#include "api_harness.hpp"

#include "daemon_process.hpp"

namespace osvi::test {

std::string ApiReply::error() const {
  const cJSON* e = get("error");
  return cJSON_IsString(e) ? e->valuestring : "<none>";
}

std::string api_str(const cJSON* o, const char* name) {
  const cJSON* v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsString(v) ? v->valuestring : (cJSON_IsNull(v) ? "<null>" : "<missing>");
}

double api_num(const cJSON* o, const char* name) {
  const cJSON* v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

std::vector<std::string> api_keys(const cJSON* o) {
  std::vector<std::string> out;
  for (const cJSON* c = o ? o->child : nullptr; c; c = c->next) out.emplace_back(c->string ? c->string : "");
  return out;
}

void expect_api_error(const ApiReply& r, long status, const std::string& want) {
  EXPECT_EQ(r.status, status) << r.body;
  EXPECT_EQ(api_keys(r.json.get()), (std::vector<std::string>{"success", "errors", "error"})) << r.body;
  EXPECT_TRUE(cJSON_IsFalse(r.get("success"))) << r.body;
  const cJSON* errors = r.get("errors");
  ASSERT_EQ(cJSON_GetArraySize(errors), 1) << r.body;
  EXPECT_EQ(std::string(cJSON_GetArrayItem(errors, 0)->valuestring), r.error());
  EXPECT_NE(r.error().find(want), std::string::npos) << want << " in " << r.body;
}

void ApiTest::start_api(const std::vector<daemon::AgentRecord>& agents) {
  auto s = daemon::Store::open(daemon::StoreOptions{dir_.file("osvi.db")}, clock_);
  ASSERT_TRUE(s.ok()) << s.error().message;
  store_ = std::move(*s);
  if (!agents.empty()) {
    ASSERT_TRUE(store_->agents().sync(agents).ok());
  }
  tokens_ = {daemon::ApiToken{kApiToken, {}, true}, daemon::ApiToken{kApiTokenB, {"agent_b"}, false}};
  ctx_.config = &config_;
  ctx_.tokens = &tokens_;
  ctx_.store = store_.get();
  ctx_.clock = &clock_;
  ctx_.listen = "127.0.0.1:1";
  api_ = std::make_unique<daemon::Api>(ctx_);
  net::HttpServerOptions o;
  o.port = 0;
  Status started = served_.start(
      o, [this](net::HttpRequest& req, net::HttpReply reply) { api_->handle(req, std::move(reply)); });
  ASSERT_TRUE(started.ok()) << started.error().message;
  port_ = served_.port();
}

ApiReply ApiTest::request(const std::string& method, const std::string& path, const std::string& body,
                          const std::string& token) {
  auto r = http_request(method, "http://127.0.0.1:" + std::to_string(port_) + path, token, body);
  ApiReply out{r.status, r.body, nullptr};
  std::string why;
  out.json = net::json_parse(out.body, &why);
  return out;
}

}  // namespace osvi::test
