// ApiTest: the OSVI API served by a real in-process HTTP server on loopback over a store in a temp dir, and
// the reply helpers the API tests share (envelope, members, shapes).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "osvi/api/api.hpp"
#include "osvi/clock.hpp"
#include "osvi/config/config.hpp"
#include "osvi/net/json.hpp"
#include "osvi/store/store.hpp"
#include "served_http.hpp"
#include "test_support.hpp"

namespace osvi::test {

inline constexpr int64_t kApiT0 = 1'780'000'000'000;           // 2026-05-29T01:56:40+05:30
inline constexpr const char* kApiToken = "TokAll0123456789";   // every agent, admin
inline constexpr const char* kApiTokenB = "TokB012345678901";  // limited to agent_b

struct ApiReply {
  long status = 0;
  std::string body;
  net::JsonPtr json;
  const cJSON* get(const char* name) const { return cJSON_GetObjectItemCaseSensitive(json.get(), name); }
  const cJSON* data() const { return get("data"); }
  std::string error() const;  // the envelope's "error", or "<none>"
};

// A member as text: its string, "<null>" or "<missing>" (so a wrong shape shows in the failure).
std::string api_str(const cJSON* o, const char* name);
// A member's number, or -1 when it is not one.
double api_num(const cJSON* o, const char* name);
// The member names of an object, in order: the shapes are compared exactly.
std::vector<std::string> api_keys(const cJSON* o);
// The box's error envelope: success false, errors [m], error m; status as given and m containing want.
void expect_api_error(const ApiReply& r, long status, const std::string& want);

class ApiTest : public ::testing::Test {
 protected:
  // Opens the store, syncs agents into it, and serves the Api with tokens kApiToken and kApiTokenB; call
  // from SetUp after setting config_.
  void start_api(const std::vector<daemon::AgentRecord>& agents = {});
  void TearDown() override { served_.stop(); }
  ApiReply request(const std::string& method, const std::string& path, const std::string& body = {},
                   const std::string& token = kApiToken);

  TempDir dir_;
  ManualClock clock_{kApiT0};
  std::unique_ptr<daemon::Store> store_;
  daemon::Config config_;
  std::vector<daemon::ApiToken> tokens_;
  daemon::ApiContext ctx_;
  std::unique_ptr<daemon::Api> api_;
  ServedHttp served_;
  uint16_t port_ = 0;
};

}  // namespace osvi::test
