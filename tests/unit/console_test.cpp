// The web console's embedded files (daemon/console): which paths it owns, types, validators, security
// headers; and GET /v1/session, the token scope the console reads at sign-in.
#include "osvi/console/console.hpp"

#include <gtest/gtest.h>

#include <string>

#include "api_harness.hpp"
#include "assets.hpp"  // the console room's private table (include path set in tests/CMakeLists.txt)

namespace {

using osvi::daemon::console_owns;
using osvi::daemon::console_response;
using osvi::daemon::kConsoleCsp;
using osvi::net::HttpRequest;
using osvi::net::HttpResponse;

HttpRequest get(const std::string& path, const std::string& method = "GET") {
  HttpRequest r;
  r.method = method;
  r.path = path;
  return r;
}

std::string header(const HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "<missing>";
}

void expect_security_headers(const HttpResponse& r) {
  EXPECT_EQ(header(r, "Content-Security-Policy"), std::string(kConsoleCsp));
  EXPECT_EQ(header(r, "X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(header(r, "Referrer-Policy"), "no-referrer");
}

TEST(Console, OwnsItsRootAndFoldersOnly) {
  for (const char* p :
       {"/", "/index.html", "/favicon.ico", "/js/app.js", "/css/x", "/img/icon.svg", "/vendor/a/b"})
    EXPECT_TRUE(console_owns(p)) << p;
  for (const char* p : {"/v1/calls", "/call", "/chat_sessions", "/js", "/index.htm", "/jsx/a.js", "", "/v1/"})
    EXPECT_FALSE(console_owns(p)) << p;
}

TEST(Console, RootIsIndexWithTypeValidatorAndHeaders) {
  const HttpResponse r = console_response(get("/"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  EXPECT_NE(r.body.find("<script type=\"module\" src=\"js/app.js\"></script>"), std::string::npos);
  EXPECT_EQ(header(r, "Cache-Control"), "no-cache");
  const std::string etag = header(r, "ETag");
  EXPECT_EQ(etag.size(), 18u) << etag;
  EXPECT_EQ(console_response(get("/index.html")).body, r.body);
  expect_security_headers(r);
}

TEST(Console, MatchingIfNoneMatchIs304WithoutBody) {
  const std::string etag = header(console_response(get("/js/app.js")), "ETag");
  for (const std::string& inm : {etag, "\"x\", " + etag, "W/" + etag, std::string("*")}) {
    HttpRequest req = get("/js/app.js");
    req.headers.emplace_back("If-None-Match", inm);
    const HttpResponse r = console_response(req);
    EXPECT_EQ(r.status, 304) << inm;
    EXPECT_TRUE(r.body.empty());
    EXPECT_EQ(header(r, "ETag"), etag);
    expect_security_headers(r);
  }
  HttpRequest stale = get("/js/app.js");
  stale.headers.emplace_back("If-None-Match", "\"0000000000000000\"");
  EXPECT_EQ(console_response(stale).status, 200);
}

TEST(Console, UnknownFileIs404AndOtherMethods405) {
  const HttpResponse missing = console_response(get("/js/nothing.js"));
  EXPECT_EQ(missing.status, 404);
  EXPECT_NE(missing.body.find("no such console file"), std::string::npos) << missing.body;
  expect_security_headers(missing);
  const HttpResponse post = console_response(get("/", "POST"));
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(header(post, "Allow"), "GET, HEAD");
  expect_security_headers(post);
  EXPECT_EQ(console_response(get("/", "HEAD")).status, 200);
}

TEST(Console, EveryEmbeddedFileIsSortedTypedAndServed) {
  const auto assets = osvi::daemon::console::embedded_assets();
  ASSERT_GE(assets.size(), 5u);
  for (size_t i = 0; i < assets.size(); ++i) {
    const auto& a = assets[i];
    if (i) {
      EXPECT_LT(assets[i - 1].path, a.path);  // the lookup is a binary search
    }
    EXPECT_TRUE(console_owns(a.path)) << a.path << " is embedded but not served";
    const HttpResponse r = console_response(get(std::string(a.path)));
    EXPECT_EQ(r.status, 200) << a.path;
    EXPECT_EQ(r.body, a.body);
    EXPECT_FALSE(a.content_type.empty());
    if (a.path.ends_with(".js")) {
      EXPECT_EQ(a.content_type, "text/javascript; charset=utf-8");
    } else if (a.path.ends_with(".css")) {
      EXPECT_EQ(a.content_type, "text/css; charset=utf-8");
    }
  }
}

class ApiSession : public osvi::test::ApiTest {
 protected:
  void SetUp() override { start_api(); }
};

TEST_F(ApiSession, TellsTheTokensScope) {
  auto all = request("GET", "/v1/session");
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(osvi::test::api_keys(all.data()), (std::vector<std::string>{"admin", "agents"}));
  EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(all.data(), "admin")));
  EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(all.data(), "agents")));
  auto limited = request("GET", "/v1/session", "", osvi::test::kApiTokenB);
  ASSERT_EQ(limited.status, 200) << limited.body;
  EXPECT_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(limited.data(), "admin")));
  const cJSON* agents = cJSON_GetObjectItem(limited.data(), "agents");
  ASSERT_TRUE(cJSON_IsArray(agents));
  ASSERT_EQ(cJSON_GetArraySize(agents), 1);
  EXPECT_STREQ(cJSON_GetArrayItem(agents, 0)->valuestring, "agent_b");
  EXPECT_EQ(request("GET", "/v1/session", "", "").status, 401);
  EXPECT_EQ(request("POST", "/v1/session", "{}").status, 405);
  osvi::test::expect_api_error(request("GET", "/v1/session?agent_uuid=agent_b"), 422,
                               "query parameter \"agent_uuid\": unknown (GET /v1/session takes none)");
}

}  // namespace
