// The search_knowledge_base tool's pieces (osvi/knowledge/tool.hpp): spec, arguments, the bounded tool
// message.
#include <gtest/gtest.h>

#include <string>

#include "osvi/knowledge/tool.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/text.hpp"

namespace osvi::daemon::knowledge {
namespace {

SearchHit hit(std::string doc, std::string heading, std::string text) {
  SearchHit h;
  h.document_name = std::move(doc);
  h.heading = std::move(heading);
  h.text = std::move(text);
  h.score = 0.5;
  return h;
}

TEST(KnowledgeTool, SpecHasOneRequiredStringQuery) {
  const net::ToolSpec spec = search_tool_spec();
  EXPECT_EQ(spec.name, "search_knowledge_base");
  EXPECT_NE(spec.description.find("instead of guessing"), std::string::npos);
  net::JsonPtr schema = net::json_parse(spec.parameters_json, nullptr);
  ASSERT_TRUE(schema);
  EXPECT_EQ(net::json_print(cJSON_GetObjectItemCaseSensitive(schema.get(), "required")), R"(["query"])");
  const cJSON* q =
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(schema.get(), "properties"), "query");
  ASSERT_TRUE(cJSON_IsObject(q));
  EXPECT_STREQ(cJSON_GetObjectItemCaseSensitive(q, "type")->valuestring, "string");
}

TEST(KnowledgeTool, OfferedOnlyWithAttachedDocuments) {
  AgentKnowledgeConfig a;
  EXPECT_FALSE(search_tool_offered(a));
  a.documents = {"Prices"};
  EXPECT_TRUE(search_tool_offered(a));
}

TEST(KnowledgeTool, ArgumentsAreCheckedWithClearErrors) {
  auto ok = parse_search_arguments(R"({"query":"  opening hours \n"})");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, "opening hours");
  const std::pair<std::string, std::string> bad[] = {
      {"{", "not valid JSON"},
      {"[1]", "must be a JSON object"},
      {"{}", "\"query\" is required"},
      {R"({"query":5})", "\"query\" must be a string"},
      {R"({"query":"   "})", "\"query\" is empty"},
      {R"({"query":")" + std::string(1001, 'a') + "\"}", "longer than 1000 bytes"},
      {std::string(5000, ' '), "more than 4096"},
  };
  for (const auto& [args, message] : bad) {
    auto r = parse_search_arguments(args);
    ASSERT_FALSE(r.ok()) << args;
    EXPECT_NE(r.error().message.find(message), std::string::npos) << r.error().message;
  }
  EXPECT_TRUE(parse_search_arguments("").ok() == false);  // no arguments: the query is missing
}

TEST(KnowledgeTool, NoHitSaysSoAndAsksNotToGuess) {
  SearchResult r;
  r.relevance_threshold = 0.3;
  EXPECT_EQ(render_search_result(r), kToolNoResult);
  EXPECT_NE(std::string(kToolNoResult).find("do not know"), std::string::npos);
  EXPECT_EQ(summarize_search(r), "no hit above the threshold 0.30");
}

TEST(KnowledgeTool, HitsCarryTheirTextHeadingAndSources) {
  SearchResult r;
  r.k = 3;
  r.hits = {hit("Clinic facts", "Opening hours", "Closed on Sundays."),
            hit("Prices", "", "A visit is Rs 500."), hit("Clinic facts", "Fees", "Pay at the desk.")};
  const std::string m = render_search_result(r);
  EXPECT_EQ(m,
            "Knowledge base results, best first. Answer from them only:\n"
            "[1] Clinic facts — Opening hours:\nClosed on Sundays.\n"
            "[2] Prices:\nA visit is Rs 500.\n"
            "[3] Clinic facts — Fees:\nPay at the desk.\n"
            "Sources: Clinic facts, Prices");
  EXPECT_EQ(summarize_search(r), "3 hits (Clinic facts, Prices)");
  r.k = 1;
  EXPECT_EQ(render_search_result(r).find("[2]"), std::string::npos);  // at most k
}

TEST(KnowledgeTool, TheMessageStaysBoundedAndValidUtf8) {
  SearchResult r;
  r.k = 10;
  std::string big;
  while (big.size() < 5000) big += "Le café coûte trois euros ✓. ";
  for (int i = 0; i < 10; ++i) r.hits.push_back(hit("Doc " + std::to_string(i), "Heading", big));
  const std::string m = render_search_result(r);
  EXPECT_LE(m.size(), kToolMaxBytes);
  EXPECT_TRUE(net::utf8_valid(m));
  EXPECT_NE(m.find("[1] Doc 0"), std::string::npos);
  EXPECT_NE(m.find("…"), std::string::npos);  // trimmed, and says so
  EXPECT_NE(m.find("Sources: "), std::string::npos);
  // Each chunk at most kToolMaxChunkBytes: the first excerpt ends well before 1.6 KB into the message.
  EXPECT_LT(m.find("[2]"), 1700u);
}

TEST(KnowledgeTool, SearchErrorsAskTheModelNotToGuess) {
  const std::string m = render_search_error(make_error("embedding timed out", -ETIMEDOUT));
  EXPECT_NE(m.find("embedding timed out"), std::string::npos);
  EXPECT_NE(m.find("rather than guessing"), std::string::npos);
}

}  // namespace
}  // namespace osvi::daemon::knowledge
