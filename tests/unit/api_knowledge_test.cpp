// The knowledge base API extension through a real in-process HTTP server: shapes, statuses, token scoping.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "api_harness.hpp"
#include "daemon_process.hpp"
#include "osvi/knowledge/knowledge_service.hpp"
#include "osvi/net/json.hpp"

namespace osvi::daemon {
namespace {

using test::api_keys;
using test::api_num;
using test::api_str;
using test::ApiReply;
using test::expect_api_error;
using test::kApiToken;
using test::kApiTokenB;

const std::vector<std::string> kDocKeys = {"id",          "name",     "format",     "header",   "size_bytes",
                                           "chunk_count", "sha256",   "source",     "uploader", "created_at",
                                           "updated_at",  "archived", "archived_at"};

class ApiKnowledge : public test::ApiTest {
 protected:
  void SetUp() override {
    config_.site.utc_offset_minutes = 330;
    AgentConfig a;
    a.agent_uuid = "agent_a";
    a.name = "Alpha";
    a.knowledge.documents = {"fees", "branches"};
    a.knowledge.relevance_threshold = 0.0;
    AgentConfig b;
    b.agent_uuid = "agent_b";
    b.name = "Bravo";
    b.knowledge.documents = {"fees"};
    b.knowledge.relevance_threshold = 0.0;
    config_.agents = {a, b};
    start_api({{0, "agent_a", "Alpha", "voice", true, false, "{}", "", 0, 0},
               {0, "agent_b", "Bravo", "voice", true, false, "{}", "", 0, 0}});
    service_ = std::make_unique<knowledge::KnowledgeService>(*store_, clock_, nullptr);
    ctx_.knowledge = service_.get();
  }

  ApiReply raw(const std::string& path, const std::string& body, const std::string& type,
               const std::string& token = kApiToken) {
    test::HttpRequestOptions o;
    o.content_type = type;
    auto r = test::http_request("POST", "http://127.0.0.1:" + std::to_string(port_) + path, token, body, o);
    ApiReply out{r.status, r.body, nullptr};
    std::string why;
    out.json = net::json_parse(out.body, &why);
    return out;
  }

  std::unique_ptr<knowledge::KnowledgeService> service_;
};

TEST_F(ApiKnowledge, UploadJsonThenListViewArchive) {
  auto up =
      request("POST", "/v1/knowledge/documents",
              R"({"name":"fees","format":"txt","content":"# Cards\n\nA replacement card costs Rs 200."})");
  ASSERT_EQ(up.status, 201) << up.body;
  auto expect_keys = kDocKeys;
  expect_keys.push_back("created");
  expect_keys.push_back("replaced_id");
  EXPECT_EQ(api_keys(up.data()), expect_keys);
  EXPECT_EQ(api_str(up.data(), "name"), "fees");
  EXPECT_EQ(api_str(up.data(), "format"), "txt");
  EXPECT_EQ(api_str(up.data(), "header"), "<null>");
  EXPECT_EQ(api_num(up.data(), "chunk_count"), 1);
  EXPECT_EQ(api_num(up.data(), "size_bytes"), 41);
  EXPECT_EQ(api_str(up.data(), "uploader"), "api");
  EXPECT_EQ(api_str(up.data(), "source"), "api");
  EXPECT_EQ(api_str(up.data(), "created_at"), "2026-05-29T01:56:40+05:30");
  EXPECT_EQ(api_str(up.data(), "replaced_id"), "<null>");
  const int id = static_cast<int>(api_num(up.data(), "id"));

  // The same content again: recognised, 200, nothing new.
  auto dup = request("POST", "/v1/knowledge/documents",
                     R"({"name":"fees","content":"# Cards\n\nA replacement card costs Rs 200."})");
  ASSERT_EQ(dup.status, 200) << dup.body;
  EXPECT_EQ(api_num(dup.data(), "id"), id);
  EXPECT_FALSE(cJSON_IsTrue(cJSON_GetObjectItem(dup.data(), "created")));

  auto list = request("GET", "/v1/knowledge/documents");
  ASSERT_EQ(list.status, 200) << list.body;
  ASSERT_EQ(cJSON_GetArraySize(list.data()), 1);
  EXPECT_EQ(api_keys(cJSON_GetArrayItem(list.data(), 0)), kDocKeys);
  EXPECT_EQ(api_keys(list.get("meta")),
            (std::vector<std::string>{"current_page", "total_pages", "total_count", "per_page"}));

  auto one = request("GET", "/v1/knowledge/documents/" + std::to_string(id));
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(api_str(one.data(), "content"), "# Cards\n\nA replacement card costs Rs 200.");

  auto arch = request("POST", "/v1/knowledge/documents/" + std::to_string(id) + "/archive", "{}");
  ASSERT_EQ(arch.status, 200) << arch.body;
  EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(arch.data(), "archived")));
  EXPECT_NE(api_str(arch.data(), "archived_at"), "<null>");
  EXPECT_EQ(cJSON_GetArraySize(request("GET", "/v1/knowledge/documents").data()), 0);
  EXPECT_EQ(cJSON_GetArraySize(request("GET", "/v1/knowledge/documents?archived=true").data()), 1);
  EXPECT_EQ(cJSON_GetArraySize(request("GET", "/v1/knowledge/documents?archived=all").data()), 1);
}

TEST_F(ApiKnowledge, RawTextAndCsvBodies) {
  auto txt =
      raw("/v1/knowledge/documents?name=fees", "# Cards\n\nA card costs 150.", "text/plain; charset=utf-8");
  ASSERT_EQ(txt.status, 201) << txt.body;
  EXPECT_EQ(api_str(txt.data(), "format"), "txt");
  auto csv =
      raw("/v1/knowledge/documents?name=branches&header=false", "Kothrud,Pune\nWai,Satara\n", "text/csv");
  ASSERT_EQ(csv.status, 201) << csv.body;
  EXPECT_EQ(api_str(csv.data(), "format"), "csv");
  EXPECT_FALSE(cJSON_IsTrue(cJSON_GetObjectItem(csv.data(), "header")));
  EXPECT_EQ(api_num(csv.data(), "chunk_count"), 2);
  expect_api_error(raw("/v1/knowledge/documents", "x", "text/plain"), 422, "name: required");
  expect_api_error(raw("/v1/knowledge/documents?name=x&header=true", "x", "text/plain"), 422,
                   "header: only allowed with a text/csv body");
  expect_api_error(raw("/v1/knowledge/documents?name=x&header=maybe", "a\n1\n", "text/csv"), 422,
                   "header: must be");
  expect_api_error(raw("/v1/knowledge/documents?name=x&format=txt", "x", "text/plain"), 422,
                   "query parameter \"format\": unknown");
  expect_api_error(raw("/v1/knowledge/documents?name=x", "a,\"b\n", "text/csv"), 422, "CSV line 1");
  expect_api_error(raw("/v1/knowledge/documents?name=x", "x", "application/pdf"), 415, "Content-Type");
}

TEST_F(ApiKnowledge, ValidationErrors) {
  auto post = [&](const std::string& body) { return request("POST", "/v1/knowledge/documents", body); };
  expect_api_error(post(R"({"content":"x"})"), 422, "name: required");
  expect_api_error(post(R"({"name":"x"})"), 422, "content: required");
  expect_api_error(post(R"({"name":"x","content":"x","format":"pdf"})"), 422, "format: must be");
  expect_api_error(post(R"({"name":"x","content":"x","header":true})"), 422, "header: only allowed");
  expect_api_error(post(R"({"name":"x","content":"x","extra":1})"), 422, "\"extra\": unknown field");
  expect_api_error(post(R"({"name":"x","content":"   "})"), 422, "content: the document is empty");
  expect_api_error(post(R"({"name":"x","format":"csv","content":"a,b\n"})"), 422, "no data rows");
  expect_api_error(request("GET", "/v1/knowledge/documents?archived=maybe"), 422, "archived: must be");
  expect_api_error(request("GET", "/v1/knowledge/documents?per_page=101"), 422, "per_page");
  expect_api_error(request("GET", "/v1/knowledge/documents?sort=x"), 422, "unknown");
  expect_api_error(request("GET", "/v1/knowledge/documents/999"), 404, "no knowledge document \"999\"");
  expect_api_error(request("GET", "/v1/knowledge/documents/abc"), 404, "no knowledge document");
  expect_api_error(request("POST", "/v1/knowledge/documents/999/archive", "{}"), 404,
                   "no knowledge document");
}

TEST_F(ApiKnowledge, DocumentsNeedAnAdminToken) {
  expect_api_error(request("GET", "/v1/knowledge/documents", "", kApiTokenB), 403, "admin API token");
  expect_api_error(request("POST", "/v1/knowledge/documents", R"({"name":"x","content":"x"})", kApiTokenB),
                   403, "admin API token");
  expect_api_error(request("GET", "/v1/knowledge/documents/1", "", kApiTokenB), 403, "admin");
  expect_api_error(request("POST", "/v1/knowledge/documents/1/archive", "{}", kApiTokenB), 403, "admin");
}

TEST_F(ApiKnowledge, SearchShowsWhatTheAgentRetrievesWithinItsAttachments) {
  ASSERT_EQ(
      request(
          "POST", "/v1/knowledge/documents",
          R"({"name":"fees","content":"# Lockers\n\nA medium locker costs Rs 3000 a year.\n\n# Cards\n\nA card costs Rs 150."})")
          .status,
      201);
  ASSERT_EQ(
      request(
          "POST", "/v1/knowledge/documents",
          R"({"name":"branches","format":"csv","content":"Branch,Locker\nKothrud,Yes locker available\n"})")
          .status,
      201);
  auto r = request("GET", "/v1/knowledge/search?agent_uuid=agent_a&q=medium%20locker&k=5");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(api_keys(r.data()),
            (std::vector<std::string>{"agent_uuid", "mode", "fallback_reason", "relevance_threshold", "k",
                                      "chunks_searched", "chunks_without_vectors", "missing_documents",
                                      "results"}));
  EXPECT_EQ(api_str(r.data(), "mode"), "bm25");
  EXPECT_EQ(api_num(r.data(), "chunks_searched"), 3);
  const cJSON* results = cJSON_GetObjectItem(r.data(), "results");
  ASSERT_EQ(cJSON_GetArraySize(results), 2);
  const cJSON* first = cJSON_GetArrayItem(results, 0);
  EXPECT_EQ(api_keys(first), (std::vector<std::string>{"chunk_id", "document_id", "document_name", "ordinal",
                                                       "heading", "text", "score", "bm25", "cosine"}));
  EXPECT_EQ(api_str(first, "document_name"), "fees");
  EXPECT_EQ(api_str(first, "heading"), "Lockers");
  EXPECT_GT(api_num(first, "score"), 0);
  EXPECT_LE(api_num(first, "score"), 1);
  EXPECT_EQ(api_str(first, "cosine"), "<null>");

  // agent_b sees only "fees"; its token may search only agent_b.
  auto b = request("GET", "/v1/knowledge/search?agent_uuid=agent_b&q=locker", "", kApiTokenB);
  ASSERT_EQ(b.status, 200) << b.body;
  const cJSON* bres = cJSON_GetObjectItem(b.data(), "results");
  ASSERT_EQ(cJSON_GetArraySize(bres), 1) << b.body;
  EXPECT_EQ(api_str(cJSON_GetArrayItem(bres, 0), "document_name"), "fees");
  expect_api_error(request("GET", "/v1/knowledge/search?agent_uuid=agent_a&q=locker", "", kApiTokenB), 403,
                   "may not use agent");
  expect_api_error(request("GET", "/v1/knowledge/search?agent_uuid=agent_x&q=locker"), 404, "no agent");
  expect_api_error(request("GET", "/v1/knowledge/search?q=locker"), 422, "agent_uuid: required");
  expect_api_error(request("GET", "/v1/knowledge/search?agent_uuid=agent_a"), 422, "q: required");
  expect_api_error(request("GET", "/v1/knowledge/search?agent_uuid=agent_a&q=%22%22%22"), 422, "q: no words");
  expect_api_error(request("GET", "/v1/knowledge/search?agent_uuid=agent_a&q=x&k=11"), 422, "k: must be");
  // Hostile text is searched as words.
  auto hostile =
      request("GET", "/v1/knowledge/search?agent_uuid=agent_a&q=locker%22%20NEAR(card%2C%201)%20-x%3A");
  EXPECT_EQ(hostile.status, 200) << hostile.body;
}

TEST_F(ApiKnowledge, WithoutTheServiceTheEndpointsAnswer503) {
  ctx_.knowledge = nullptr;
  expect_api_error(request("GET", "/v1/knowledge/documents"), 503, "knowledge base is not running");
  expect_api_error(request("GET", "/v1/knowledge/search?agent_uuid=agent_a&q=x"), 503, "not running");
}

}  // namespace
}  // namespace osvi::daemon
