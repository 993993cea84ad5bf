// The knowledge base through a real osvid and osvi-model-server: a configured document is ingested at start,
// embedded in the background through POST /v1/embeddings, and searched in hybrid mode.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <string>
#include <thread>

#include "daemon_process.hpp"
#include "model_server_process.hpp"
#include "osvi/net/json.hpp"
#include "test_support.hpp"

namespace osvi::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kToken = "TestToken0123456";

TEST(KnowledgeDaemon, AConfiguredDocumentIsEmbeddedThroughTheModelServerAndSearchedHybrid) {
  TempDir dir;
  write_file(dir.file("scenario.json"), "{}");
  ModelServer server(dir.file("scenario.json"), dir.file("log.jsonl"));
  ASSERT_FALSE(server.base().empty()) << server.error();
  const std::string state = dir.file("state");
  ASSERT_EQ(::mkdir(state.c_str(), 0700), 0);
  const int port = free_loopback_port();
  const std::string fees = std::string(OSVI_SOURCE_DIR) + "/tests/data/knowledge/fees.txt";
  write_file(dir.file("osvid.json"),
             R"({"state_dir":")" + state + R"(","api":{"listen":"127.0.0.1:)" + std::to_string(port) +
                 R"(","tokens":[")" + kToken + R"("]},)" +
                 R"("knowledge":{"documents":[{"name":"fees","path":")" + fees + R"("}]},)" +
                 R"("agents":[{"agent_uuid":"agent_chat","name":"Chat","mode":"chat","active":true,)"
                 R"("prompt":{"system_prompt":"Be brief."},"llm":{"base_url":")" +
                 server.base() + R"(/v1","model":"osvi-sim"},)" +
                 R"("knowledge":{"documents":["fees"],"embeddings":{"base_url":")" + server.base() +
                 R"(/v1","model":"stand-in"}}}]})");
  DaemonProcess osvid(dir.path(), {"--config", dir.file("osvid.json")});
  ASSERT_TRUE(osvid.wait_notify("READY=1", 10s)) << osvid.stderr_text();
  const std::string url =
      "http://127.0.0.1:" + std::to_string(port) +
      "/v1/knowledge/search?agent_uuid=agent_chat&q=how%20much%20is%20a%20medium%20locker";

  // Background embedding runs in batches after start; the search says hybrid once every chunk has a vector.
  std::string mode, body;
  double without = -1;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    HttpResult r = http_request("GET", url, kToken);
    ASSERT_EQ(r.status, 200) << r.body;
    body = r.body;
    net::JsonPtr j = parse_json(r.body);
    const cJSON* d = cJSON_GetObjectItem(j.get(), "data");
    mode = json_str(d, "mode");
    without = cJSON_GetNumberValue(cJSON_GetObjectItem(d, "chunks_without_vectors"));
    if (mode == "hybrid" && without == 0) break;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(mode, "hybrid") << body;
  EXPECT_EQ(without, 0) << body;
  net::JsonPtr j = parse_json(body);
  const cJSON* results = cJSON_GetObjectItem(cJSON_GetObjectItem(j.get(), "data"), "results");
  ASSERT_GT(cJSON_GetArraySize(results), 0) << body;
  const cJSON* top = cJSON_GetArrayItem(results, 0);
  EXPECT_NE(json_str(top, "text").find("medium locker"), std::string::npos) << body;
  EXPECT_TRUE(cJSON_IsNumber(cJSON_GetObjectItem(top, "cosine"))) << body;
  // The vectors came over HTTP from the model server.
  EXPECT_NE(read_file(dir.file("log.jsonl")).find("/v1/embeddings"), std::string::npos);
}

}  // namespace
}  // namespace osvi::test
