// The knowledge base: chunking, FTS5-safe queries, the store's FTS5 index, ingestion, archive, threshold and
// agent scoping, hybrid search with the stand-in embedder, background embedding, config, retrieval floor.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "knowledge_eval.hpp"
#include "osvi/clock.hpp"
#include "osvi/config/config.hpp"
#include "osvi/knowledge/chunking.hpp"
#include "osvi/knowledge/knowledge_service.hpp"
#include "osvi/knowledge/query.hpp"
#include "osvi/knowledge/upstream_embedder.hpp"
#include "osvi/net/text.hpp"
#include "osvi/store/store.hpp"
#include "stand_in_embedding.hpp"
#include "test_support.hpp"
#include "upstream_sim.hpp"
#include "virtual_time.hpp"

namespace osvi::daemon::knowledge {
namespace {

using test::EvalQuestion;
using test::StandInEmbedder;

std::vector<std::string> texts(const std::vector<KnowledgeChunkText>& chunks) {
  std::vector<std::string> out;
  for (const auto& c : chunks) out.push_back(c.text);
  return out;
}

// ---- Chunking -----------------------------------------------------------------------------------------

TEST(KnowledgeChunking, MarkdownHeadingsMakeAPathOnEveryChunk) {
  auto r = chunk_txt(
      "Guide", "# Fees\n\nIntro paragraph.\n\n## Cards\n\nCard fee is 150.\n\n# Hours\n\nOpen at ten.\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].heading, "Fees");
  EXPECT_EQ((*r)[0].text, "Guide > Fees\nIntro paragraph.");
  EXPECT_EQ((*r)[1].heading, "Fees > Cards");
  EXPECT_EQ((*r)[1].text, "Guide > Fees > Cards\nCard fee is 150.");
  // A level-1 heading pops the whole path.
  EXPECT_EQ((*r)[2].heading, "Hours");
}

TEST(KnowledgeChunking, UnderlinedAndCapitalHeadingsAreRecognised) {
  auto r = chunk_txt("D", "PRICES\n\nCards\n=====\nA card costs 150.\n\nLost cards\n----------\nBlock it.\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].heading, "Cards");  // "Cards" (=) is level 1: it replaces PRICES (level 1)
  EXPECT_EQ((*r)[1].heading, "Cards > Lost cards");
  EXPECT_EQ((*r)[1].text, "D > Cards > Lost cards\nBlock it.");
}

TEST(KnowledgeChunking, ASentenceInCapitalsEndingWithAPeriodIsText) {
  auto r = chunk_txt("D", "NO SMOKING IN THE BRANCH.\n\nSecond paragraph.");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].heading, "");
  EXPECT_NE((*r)[0].text.find("NO SMOKING IN THE BRANCH."), std::string::npos);
}

TEST(KnowledgeChunking, LongSectionsArePackedWithinTheBoundWithOverlap) {
  std::string text = "# Long\n\n";
  for (int i = 0; i < 60; ++i) text += "Sentence number " + std::to_string(i) + " says something useful. ";
  ChunkLimits limits;
  limits.chunk_bytes = 300;
  limits.overlap_bytes = 60;
  auto r = chunk_txt("Doc", text, limits);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_GT(r->size(), 5u);
  const std::string lead = "Doc > Long\n";
  for (size_t i = 0; i < r->size(); ++i) {
    const std::string& t = (*r)[i].text;
    ASSERT_TRUE(t.starts_with(lead)) << t;
    EXPECT_LE(t.size() - lead.size(), limits.chunk_bytes) << t;
    if (i == 0) continue;
    // The previous chunk's last sentence opens this one.
    const std::string& prev = (*r)[i - 1].text;
    const size_t dot = prev.rfind("Sentence number ");
    ASSERT_NE(dot, std::string::npos);
    EXPECT_TRUE(t.substr(lead.size()).starts_with(prev.substr(dot))) << prev << "\n---\n" << t;
  }
  // Every sentence is somewhere.
  std::string all;
  for (const auto& c : *r) all += c.text;
  for (int i = 0; i < 60; ++i)
    EXPECT_NE(all.find("number " + std::to_string(i) + " says"), std::string::npos);
}

TEST(KnowledgeChunking, AWordLongerThanAChunkIsCutAtACharacterBoundary) {
  std::string word;
  for (int i = 0; i < 400; ++i) word += "\xE0\xA4\x95";  // क, 3 bytes
  ChunkLimits limits;
  limits.chunk_bytes = 100;
  auto r = chunk_txt("D", word, limits);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_GE(r->size(), 12u);
  for (const auto& c : *r) EXPECT_TRUE(net::utf8_valid(c.text)) << c.text.size();
}

TEST(KnowledgeChunking, TxtBoundsAndBadInputAreRefusedWithAReason) {
  ChunkLimits limits;
  limits.max_document_bytes = 100;
  auto big = chunk_txt("D", std::string(101, 'a'), limits);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code, -EFBIG);
  auto empty = chunk_txt("D", "  \n\n\t ");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().message.find("empty"), std::string::npos);
  auto bad = chunk_txt("D", std::string("ok \xC3\x28 text"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("UTF-8 (byte 3)"), std::string::npos);
  auto nul = chunk_txt("D", std::string("a\0b", 3));
  ASSERT_FALSE(nul.ok());
  EXPECT_NE(nul.error().message.find("NUL"), std::string::npos);
  ChunkLimits few;
  few.max_chunks = 2;
  auto many = chunk_txt("D", "# a\n\nx\n\n# b\n\ny\n\n# c\n\nz\n", few);
  ASSERT_FALSE(many.ok());
  EXPECT_EQ(many.error().code, -EFBIG);
  auto only_headings = chunk_txt("D", "# a\n## b\n");
  ASSERT_FALSE(only_headings.ok());
}

TEST(KnowledgeChunking, CsvWithHeaderRendersColumnValueLines) {
  auto r = chunk_csv("Branches", "Branch,City,Phone\nKothrud,Pune,020-1\n\"Wai, old\",,02167\n", true);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(texts(*r), (std::vector<std::string>{"Branches\nBranch: Kothrud\nCity: Pune\nPhone: 020-1",
                                                 "Branches\nBranch: Wai, old\nPhone: 02167"}));
  EXPECT_EQ((*r)[0].heading, "Branches");
}

TEST(KnowledgeChunking, CsvWithoutHeaderNumbersTheColumns) {
  auto r = chunk_csv("ATMs", "Kothrud,24 hours\nWai,06:00-23:00,extra\n", false);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(texts(*r),
            (std::vector<std::string>{"ATMs\ncolumn 1: Kothrud\ncolumn 2: 24 hours",
                                      "ATMs\ncolumn 1: Wai\ncolumn 2: 06:00-23:00\ncolumn 3: extra"}));
}

TEST(KnowledgeChunking, CsvExtraColumnsAndEmptyHeaderNamesGetNumbers) {
  auto r = chunk_csv("T", "a,,c\n1,2,3,4\n", true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(texts(*r), (std::vector<std::string>{"T\na: 1\ncolumn 2: 2\nc: 3\ncolumn 4: 4"}));
}

TEST(KnowledgeChunking, CsvErrorsNameTheLine) {
  auto bad = chunk_csv("T", "a,b\n1,2\n3,\"open\n", true);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("CSV line 3"), std::string::npos) << bad.error().message;
  ChunkLimits limits;
  limits.max_csv_row_bytes = 50;
  auto wide = chunk_csv("T", "a\n" + std::string(80, 'x') + "\n", true, limits);
  ASSERT_FALSE(wide.ok());
  EXPECT_NE(wide.error().message.find("CSV line 2"), std::string::npos) << wide.error().message;
  auto header_only = chunk_csv("T", "a,b\n", true);
  ASSERT_FALSE(header_only.ok());
  EXPECT_NE(header_only.error().message.find("no data rows"), std::string::npos);
  ChunkLimits few;
  few.max_chunks = 1;
  EXPECT_FALSE(chunk_csv("T", "1\n2\n", false, few).ok());
}

// ---- Queries -------------------------------------------------------------------------------------------

TEST(KnowledgeQuery, HostileTextBecomesQuotedTermsOnly) {
  EXPECT_EQ(fts_match("What is the \"fee\" for NEAR(card lost) -replacement: OR AND NOT x*"),
            "\"fee\" OR \"near\" OR \"card\" OR \"lost\" OR \"replacement\" OR \"not\" OR \"x\"");
  EXPECT_EQ(fts_match("text:secret ^start {a b}"), "\"text\" OR \"secret\" OR \"start\" OR \"b\"");
  EXPECT_EQ(fts_match("\"\"\"''' --- :::"), "");
  EXPECT_EQ(fts_match("what is it"), "\"what\" OR \"is\" OR \"it\"");  // only stop words: kept
  EXPECT_EQ(fts_match("Fees fees FEES"), "\"fees\"");
  std::string many;
  for (int i = 0; i < 100; ++i) many.append("w").append(std::to_string(i)).append(" ");
  EXPECT_EQ(query_terms(many).size(), kMaxQueryTerms);
  EXPECT_EQ(query_terms(std::string(500, 'a'))[0].size(), kMaxTermBytes);
}

// ---- Store and service ---------------------------------------------------------------------------------

class KnowledgeServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::open(StoreOptions{dir_.file("osvi.db")}, time_.clock);
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(*s);
    service_ = std::make_unique<KnowledgeService>(*store_, time_.clock, time_.schedule());
  }

  int64_t ingest(const std::string& name, const std::string& content, const std::string& format = "txt",
                 bool header = true) {
    IngestRequest r;
    r.name = name;
    r.format = format;
    r.content = content;
    r.has_header = header;
    auto res = service_->ingest(std::move(r));
    EXPECT_TRUE(res.ok()) << (res.ok() ? "" : res.error().message);
    return res.ok() ? res->document.id : -1;
  }

  SearchResult search(const AgentKnowledgeConfig& agent, const std::string& q,
                      std::optional<unsigned> k = {}) {
    std::optional<Result<SearchResult>> out;
    service_->search(agent, q, k, [&](Result<SearchResult> r) { out = std::move(r); });
    if (!out) time_.run_due();
    EXPECT_TRUE(out.has_value()) << "search did not answer";
    if (!out) return {};
    EXPECT_TRUE(out->ok()) << out->error().message;
    return out->ok() ? std::move(**out) : SearchResult{};
  }

  static AgentKnowledgeConfig agent(std::vector<std::string> docs, double threshold = 0.0, unsigned k = 3) {
    AgentKnowledgeConfig a;
    a.documents = std::move(docs);
    a.relevance_threshold = threshold;
    a.top_k = k;
    return a;
  }

  test::TempDir dir_;
  test::VirtualTime time_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<KnowledgeService> service_;
};

TEST_F(KnowledgeServiceTest, Fts5IsCompiledIntoSqlite) {
  // Without FTS5 migration 6 (CREATE VIRTUAL TABLE ... USING fts5) would have failed to open the store;
  // this also checks the index answers a MATCH and ranks with bm25().
  const int64_t id =
      ingest("d", "# A\n\nThe locker rent is paid in April.\n\n# B\n\nNothing about that here.");
  const std::vector<int64_t> ids = {id};
  auto hits = store_->knowledge().search("\"locker\" OR \"april\"", ids, 10);
  ASSERT_TRUE(hits.ok()) << hits.error().message;
  ASSERT_EQ(hits->size(), 1u);
  EXPECT_GT((*hits)[0].bm25, 0);
  EXPECT_EQ((*hits)[0].chunk.heading, "A");
}

TEST_F(KnowledgeServiceTest, Bm25RanksTheChunkWithMoreAndRarerMatchesFirst) {
  ingest("d",
         "# Cards\n\nA replacement debit card costs 200 rupees.\n\n# Cheques\n\nA cheque book costs 60.\n\n"
         "# Lockers\n\nLocker keys are kept by the customer.");
  auto r = search(agent({"d"}), "How much does a replacement debit card cost?");
  ASSERT_GE(r.hits.size(), 1u);
  EXPECT_EQ(r.hits[0].heading, "Cards");
  EXPECT_EQ(r.mode, "bm25");
  for (size_t i = 1; i < r.hits.size(); ++i) EXPECT_LE(r.hits[i].score, r.hits[i - 1].score);
  for (const auto& h : r.hits) {
    EXPECT_GT(h.score, 0);
    EXPECT_LE(h.score, 1);
  }
}

TEST_F(KnowledgeServiceTest, StemmingMatchesInflectedWords) {
  ingest("d", "# Hours\n\nThe branch opens at ten.");
  auto r = search(agent({"d"}), "opening");
  ASSERT_EQ(r.hits.size(), 1u);
}

TEST_F(KnowledgeServiceTest, HostileQueriesNeitherFailNorInject) {
  ingest("d", "# A\n\nThe fee is \"200\" NEAR the counter: see OR ask.");
  for (const char* q : {"\"", "fee\"", "NEAR(fee counter, 2)", "text: fee", "-fee", "fee*", "fee AND", "(((",
                        "' OR 1=1 --", "^fee", "{text}: fee", "fee + counter", "\xE0\xA4\x95 fee"}) {
    std::optional<Result<SearchResult>> out;
    service_->search(agent({"d"}), q, {}, [&](Result<SearchResult> r) { out = std::move(r); });
    ASSERT_TRUE(out.has_value()) << q;
    if (!out->ok()) {
      EXPECT_EQ(out->error().code, -EINVAL) << q << ": " << out->error().message;
      continue;
    }
    // Every query naming the fee finds it; the others find nothing rather than everything.
    EXPECT_EQ((*out)->hits.empty(), std::string_view(q).find("fee") == std::string_view::npos) << q;
  }
}

TEST_F(KnowledgeServiceTest, ThresholdFiltersAndKBounds) {
  std::string doc;
  for (int i = 0; i < 8; ++i)
    doc += "# S" + std::to_string(i) + "\n\nlocker rent detail " + std::to_string(i) + ".\n\n";
  doc += "# Other\n\nA locker.\n";
  ingest("d", doc);
  auto all = search(agent({"d"}, 0.0, 10), "locker rent");
  EXPECT_EQ(all.hits.size(), 9u);
  auto two = search(agent({"d"}, 0.0, 10), "locker rent", 2u);
  EXPECT_EQ(two.hits.size(), 2u);
  EXPECT_EQ(two.k, 2u);
  // The chunk with only "locker" scores lower than those with both words; a threshold between drops it.
  const double weak = all.hits.back().score;
  const double strong = all.hits.front().score;
  ASSERT_LT(weak, strong);
  auto filtered = search(agent({"d"}, (weak + strong) / 2, 10), "locker rent");
  EXPECT_EQ(filtered.hits.size(), 8u);
  for (const auto& h : filtered.hits) EXPECT_GE(h.score, (weak + strong) / 2);
  auto none = search(agent({"d"}, 1.0, 10), "locker rent");
  EXPECT_TRUE(none.hits.empty());
}

TEST_F(KnowledgeServiceTest, OnALargeBaseCommonWordsAreLeftOutAndRareOnesRank) {
  // 2000 rows: "branch" in every one (IDF ~0), "pune" in 900, "gold" in 800, "locker" in 3.
  std::string csv = "name,city,note\n";
  for (int i = 0; i < 2000; ++i) {
    csv += "branch " + std::to_string(i) + "," + (i % 20 < 9 ? "pune" : "satara") + "," +
           (i % 700 == 5 ? "locker available"
            : i % 5 < 2  ? "gold loans"
                         : "none") +
           "\n";
  }
  ingest("big", csv, "csv", true);
  // locker (3) + gold (800) fit the budget of 1000 matches, pune (900) would not: it is left out.
  auto r = search(agent({"big"}, 0.0, 10), "pune branch with gold or a locker");
  ASSERT_EQ(r.hits.size(), 10u);
  for (size_t i = 0; i < 3; ++i) EXPECT_NE(r.hits[i].text.find("note: locker available"), std::string::npos);
  for (size_t i = 3; i < 10; ++i) EXPECT_NE(r.hits[i].text.find("note: gold loans"), std::string::npos);
  // A question of only words in more than half the rows has no bm25 evidence at all.
  EXPECT_TRUE(search(agent({"big"}, 0.0, 5), "branch").hits.empty());
  // The rarest word is always searched, even over the budget's share.
  EXPECT_EQ(search(agent({"big"}, 0.0, 5), "pune").hits.size(), 5u);
}

TEST_F(KnowledgeServiceTest, AnAgentSearchesOnlyItsAttachedCurrentDocuments) {
  ingest("mine", "# A\n\nLocker rent is 1500.");
  ingest("theirs", "# A\n\nLocker rent is 9999.");
  auto r = search(agent({"mine", "missing"}), "locker rent");
  ASSERT_EQ(r.hits.size(), 1u);
  EXPECT_EQ(r.hits[0].document_name, "mine");
  EXPECT_EQ(r.missing_documents, std::vector<std::string>{"missing"});
  EXPECT_EQ(r.chunks_searched, 1);
  auto nothing = search(agent({}), "locker rent");
  EXPECT_TRUE(nothing.hits.empty());
}

TEST_F(KnowledgeServiceTest, ArchiveKeepsTheDocumentButStopsSearchingIt) {
  const int64_t id = ingest("d", "# A\n\nLocker rent is 1500.");
  ASSERT_EQ(search(agent({"d"}), "locker").hits.size(), 1u);
  auto a = service_->archive(id);
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(*a);
  auto again = service_->archive(id);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  EXPECT_EQ(service_->archive(id + 100).error().code, -ENOENT);
  auto r = search(agent({"d"}), "locker");
  EXPECT_TRUE(r.hits.empty());
  EXPECT_EQ(r.missing_documents, std::vector<std::string>{"d"});
  auto kept = service_->get(id);
  ASSERT_TRUE(kept.ok() && *kept);
  EXPECT_TRUE((*kept)->archived_at_ms.has_value());
  EXPECT_EQ((*kept)->content, "# A\n\nLocker rent is 1500.");
}

TEST_F(KnowledgeServiceTest, ANewVersionArchivesTheOldAndTheSameContentIsRecognised) {
  const int64_t v1 = ingest("d", "# A\n\nLocker rent is 1500.");
  IngestRequest same{"d", "txt", "# A\n\nLocker rent is 1500.", true, "api", "api"};
  auto dup = service_->ingest(same);
  ASSERT_TRUE(dup.ok());
  EXPECT_FALSE(dup->created);
  EXPECT_EQ(dup->document.id, v1);
  time_.advance_ms(1000);
  IngestRequest next{"d", "txt", "# A\n\nLocker rent is 1800.", true, "api", "api"};
  auto v2 = service_->ingest(next);
  ASSERT_TRUE(v2.ok());
  EXPECT_TRUE(v2->created);
  EXPECT_EQ(v2->replaced_id, v1);
  auto r = search(agent({"d"}), "locker rent");
  ASSERT_EQ(r.hits.size(), 1u);
  EXPECT_NE(r.hits[0].text.find("1800"), std::string::npos);
  int64_t total = 0;
  auto all = service_->list(std::nullopt, 1, 10, &total);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(total, 2);
  EXPECT_EQ((*all)[0].id, v2->document.id);  // newest first
  auto current = service_->list(false, 1, 10, &total);
  EXPECT_EQ(total, 1);
  auto archived = service_->list(true, 1, 10, &total);
  EXPECT_EQ(total, 1);
  EXPECT_EQ((*archived)[0].id, v1);
}

TEST_F(KnowledgeServiceTest, IngestValidatesNameFormatAndContent) {
  auto fail = [&](IngestRequest r, const std::string& want) {
    auto res = service_->ingest(std::move(r));
    ASSERT_FALSE(res.ok()) << want;
    EXPECT_NE(res.error().message.find(want), std::string::npos) << res.error().message;
  };
  fail({"", "txt", "x", true, "api", "api"}, "name: required");
  fail({std::string(201, 'n'), "txt", "x", true, "api", "api"}, "name: longer than 200");
  fail({"a\nb", "txt", "x", true, "api", "api"}, "control character");
  fail({"d", "pdf", "x", true, "api", "api"}, "format: must be");
  fail({"d", "txt", "", true, "api", "api"}, "content: the document is empty");
  fail({"d", "txt", "\xFF", true, "api", "api"}, "not valid UTF-8");
  fail({"d", "csv", "a,b\n", true, "api", "api"}, "no data rows");
  fail({"d", "txt", std::string(8 * 1024 * 1024 + 1, 'a'), true, "api", "api"}, "8 MiB");
}

TEST_F(KnowledgeServiceTest, ConfigDocumentsLoadOnceReloadOnChangeAndRetireWhenRemoved) {
  const std::string path = dir_.file("hours.txt");
  test::write_file(path, "# Hours\n\nOpen at ten.");
  KnowledgeBaseConfig cfg;
  cfg.documents.push_back({"hours", path, "txt", true});
  ASSERT_TRUE(service_->sync_documents(cfg).ok());
  auto v1 = store_->knowledge().current("hours");
  ASSERT_TRUE(v1.ok() && *v1);
  EXPECT_EQ((*v1)->source, "config:" + path);
  EXPECT_EQ((*v1)->uploader, "config");
  ASSERT_TRUE(service_->sync_documents(cfg).ok());  // unchanged: not re-ingested
  EXPECT_EQ((*store_->knowledge().current("hours"))->id, (*v1)->id);
  // The API cannot replace a configured document.
  auto api = service_->ingest({"hours", "txt", "# Hours\n\nOpen at nine.", true, "api", "api"});
  ASSERT_FALSE(api.ok());
  EXPECT_EQ(api.error().code, -EPERM);
  test::write_file(path, "# Hours\n\nOpen at nine.");
  ASSERT_TRUE(service_->sync_documents(cfg).ok());
  auto v2 = store_->knowledge().current("hours");
  ASSERT_TRUE(v2.ok() && *v2);
  EXPECT_NE((*v2)->id, (*v1)->id);
  auto old = store_->knowledge().get((*v1)->id, false);
  EXPECT_TRUE((*old)->archived_at_ms.has_value());
  // A file that vanished is reported; the document stays as it was.
  cfg.documents.push_back({"gone", dir_.file("nope.txt"), "txt", true});
  auto s = service_->sync_documents(cfg);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("nope.txt"), std::string::npos);
  // Removed from the configuration: archived.
  cfg.documents.clear();
  ASSERT_TRUE(service_->sync_documents(cfg).ok());
  auto none = store_->knowledge().current("hours");
  EXPECT_FALSE(*none);
}

// ---- Hybrid ---------------------------------------------------------------------------------------------

class KnowledgeHybridTest : public KnowledgeServiceTest {
 protected:
  AgentKnowledgeConfig hybrid_agent(std::vector<std::string> docs, double threshold = 0.0) {
    AgentKnowledgeConfig a = agent(std::move(docs), threshold);
    a.embeddings = EmbeddingsConfig{};
    a.embeddings->model = "stand-in";
    return a;
  }
  void attach(const AgentKnowledgeConfig& k) {
    AgentConfig a;
    a.agent_uuid = "agent_a";
    a.knowledge = k;
    service_->set_agents({a});
  }
  StandInEmbedder embedder_;
};

TEST_F(KnowledgeHybridTest, WithoutAnEmbedderAHybridAgentFallsBackToBm25AndSaysWhy) {
  ingest("d", "# A\n\nLocker rent is 1500.");
  auto r = search(hybrid_agent({"d"}), "locker");
  EXPECT_EQ(r.mode, "bm25_fallback");
  EXPECT_EQ(r.fallback_reason, "no embeddings client on this box");
  EXPECT_EQ(r.hits.size(), 1u);
}

TEST_F(KnowledgeHybridTest, ChunksAreEmbeddedInTheBackgroundInBatchesAndRetriedWhenTheUpstreamIsDown) {
  std::string doc;
  for (int i = 0; i < 40; ++i)
    doc += "# S" + std::to_string(i) + "\n\nParagraph " + std::to_string(i) + ".\n\n";
  ingest("d", doc);
  embedder_.failing = true;
  service_->set_embedder(&embedder_);
  attach(hybrid_agent({"d"}));
  time_.run_due();
  EXPECT_EQ(embedder_.requests, 1u);
  EXPECT_EQ(embedder_.texts_embedded, 0u);
  // Retried after the back-off, not before.
  time_.advance_ms(29'000);
  EXPECT_EQ(embedder_.requests, 1u);
  embedder_.failing = false;
  time_.advance_ms(1'000);
  time_.run_due();
  time_.run_due();
  EXPECT_EQ(embedder_.texts_embedded, 40u);
  EXPECT_EQ(embedder_.requests, 3u);  // the failure, then 32 + 8
  EXPECT_EQ(embedder_.models.back(), "stand-in");
  auto missing = store_->knowledge().missing_embeddings("stand-in", std::vector<int64_t>{1}, 100);
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->empty());
  auto r = search(hybrid_agent({"d"}), "paragraph 7");
  EXPECT_EQ(r.mode, "hybrid");
  EXPECT_EQ(r.chunks_without_vectors, 0);
  ASSERT_FALSE(r.hits.empty());
  EXPECT_EQ(r.hits[0].heading, "S7");
  ASSERT_TRUE(r.hits[0].cosine.has_value());
}

TEST_F(KnowledgeHybridTest, ChunksWithoutVectorsAreRankedByBm25AndCounted) {
  ingest("d", "# A\n\nLocker rent is 1500.\n\n# B\n\nCheque books cost 60.");
  service_->set_embedder(&embedder_);  // no agent with embeddings yet: nothing is embedded
  auto r = search(hybrid_agent({"d"}), "locker rent");
  EXPECT_EQ(r.mode, "hybrid");
  EXPECT_EQ(r.chunks_without_vectors, 2);
  ASSERT_EQ(r.hits.size(), 1u);
  EXPECT_FALSE(r.hits[0].cosine.has_value());
  // Its score is its bm25 score alone, as in a bm25-only search.
  auto plain = search(agent({"d"}), "locker rent");
  EXPECT_DOUBLE_EQ(r.hits[0].score, plain.hits[0].score);
}

TEST_F(KnowledgeHybridTest, AFailedQueryEmbeddingFallsBackToBm25) {
  ingest("d", "# A\n\nLocker rent is 1500.");
  embedder_.failing = true;
  service_->set_embedder(&embedder_);
  auto r = search(hybrid_agent({"d"}), "locker");
  EXPECT_EQ(r.mode, "bm25_fallback");
  EXPECT_NE(r.fallback_reason.find("unreachable"), std::string::npos);
  EXPECT_EQ(r.hits.size(), 1u);
}

TEST_F(KnowledgeHybridTest, TheSearchAnswersWhenTheQueryVectorArrives) {
  ingest("d", "# A\n\nLocker rent is 1500.");
  embedder_.deferred = true;
  service_->set_embedder(&embedder_);
  bool answered = false;
  service_->search(hybrid_agent({"d"}), "locker", {}, [&](Result<SearchResult> r) {
    answered = true;
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->mode, "hybrid");
  });
  EXPECT_FALSE(answered);
  embedder_.deliver();
  EXPECT_TRUE(answered);
}

TEST_F(KnowledgeHybridTest, AVectorOnlyMatchIsFoundAndScoresMatchTheDocumentedFormula) {
  // "lokers" (misspelt) shares no word with any chunk, but trigrams with "Lockers": only the vectors find it.
  ingest("d", "# A\n\nCharges are in rupees.\n\n# B\n\nLockers are in the basement.");
  service_->set_embedder(&embedder_);
  attach(hybrid_agent({"d"}));
  time_.run_due();
  auto r = search(hybrid_agent({"d"}), "lokers");
  EXPECT_EQ(r.mode, "hybrid");
  ASSERT_FALSE(r.hits.empty());
  EXPECT_EQ(r.hits[0].heading, "B");
  EXPECT_FALSE(r.hits[0].bm25.has_value());
  ASSERT_TRUE(r.hits[0].cosine.has_value());
  // Ranked first by cosine, absent from bm25: (cos × 61/61 + 0) / 2.
  EXPECT_NEAR(r.hits[0].score, std::max(0.0, *r.hits[0].cosine) / 2, 1e-9);
}

// ---- Retrieval floor over the sample set ---------------------------------------------------------------

TEST_F(KnowledgeHybridTest, RecallAtThreeOnTheSampleSetStaysAboveTheMeasuredFloor) {
  ASSERT_TRUE(test::ingest_eval_documents(*service_));
  const auto questions = test::eval_questions();
  ASSERT_GE(questions.size(), 40u);
  std::vector<std::string> names;
  for (const auto& d : test::eval_documents()) names.push_back(d.name);
  service_->set_embedder(&embedder_);
  attach(hybrid_agent(names));
  for (int i = 0; i < 20 && embedder_.texts_embedded == 0; ++i) time_.run_due();
  for (int i = 0; i < 50; ++i) time_.run_due();
  size_t bm25_hits = 0;
  size_t hybrid_hits = 0;
  std::string misses;
  for (const EvalQuestion& q : questions) {
    if (test::eval_hit(search(agent(names, 0.0, 3), q.question), q, 3)) {
      ++bm25_hits;
    } else {
      misses += "\n  bm25 miss: " + q.question;
    }
    auto h = search(hybrid_agent(names), q.question);
    EXPECT_EQ(h.mode, "hybrid");
    EXPECT_EQ(h.chunks_without_vectors, 0);
    if (test::eval_hit(h, q, 3)) ++hybrid_hits;
  }
  const double bm25 = static_cast<double>(bm25_hits) / static_cast<double>(questions.size());
  const double hybrid = static_cast<double>(hybrid_hits) / static_cast<double>(questions.size());
  std::printf("recall@3 over %zu questions: bm25 %.3f, hybrid (stand-in) %.3f%s\n", questions.size(), bm25,
              hybrid, misses.c_str());
  // Floors a little under the figures measured when the set was written (bench/README.md).
  EXPECT_GE(bm25, 0.90);
  EXPECT_GE(hybrid, 0.90);
}

// ---- Configuration ------------------------------------------------------------------------------------

std::string config_with(const std::string& agent_knowledge, const std::string& top = "") {
  return R"({"agents":[{"agent_uuid":"agent_a","name":"A","knowledge":)" + agent_knowledge + "}]" + top + "}";
}

TEST(KnowledgeConfig, AgentKnowledgeIsParsedWithDefaults) {
  auto c = parse_config(config_with(R"({"documents":["fees","hours"]})"));
  ASSERT_TRUE(c.ok()) << c.error().message;
  const AgentKnowledgeConfig& k = c->agents[0].knowledge;
  EXPECT_EQ(k.documents, (std::vector<std::string>{"fees", "hours"}));
  EXPECT_DOUBLE_EQ(k.relevance_threshold, 0.3);
  EXPECT_EQ(k.top_k, 3u);
  EXPECT_FALSE(k.embeddings.has_value());
  auto e = parse_config(config_with(
      R"({"documents":["fees"],"relevance_threshold":0.5,"top_k":10,"embeddings":{"model":"nomic-embed","base_url":"http://127.0.0.1:8090/v1/"}})"));
  ASSERT_TRUE(e.ok()) << e.error().message;
  ASSERT_TRUE(e->agents[0].knowledge.embeddings.has_value());
  EXPECT_EQ(e->agents[0].knowledge.embeddings->model, "nomic-embed");
  EXPECT_EQ(e->agents[0].knowledge.embeddings->base_url, "http://127.0.0.1:8090/v1");
  auto d = parse_config(config_with(R"({"embeddings":{}})"));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->agents[0].knowledge.embeddings->model, "text-embedding-3-small");
}

TEST(KnowledgeConfig, ErrorsNameTheKey) {
  auto expect = [](const std::string& json, const std::string& want) {
    auto c = parse_config(json);
    ASSERT_FALSE(c.ok()) << json;
    EXPECT_NE(c.error().message.find(want), std::string::npos) << c.error().message;
  };
  expect(config_with(R"({"relevance_threshold":1.5})"), "agents[0].knowledge.relevance_threshold");
  expect(config_with(R"({"top_k":11})"), "agents[0].knowledge.top_k");
  expect(config_with(R"({"documents":["a","a"]})"), "agents[0].knowledge.documents[1]: duplicate");
  expect(config_with(R"({"documents":[3]})"), "agents[0].knowledge.documents[0]");
  expect(config_with(R"({"filler":{"txt":"x"}})"), "agents[0].knowledge.filler.txt");
  expect(config_with(R"({"filler":{"enabled":"yes"}})"), "agents[0].knowledge.filler.enabled");
  expect(config_with(R"({"filler":"Hold on"})"), "agents[0].knowledge.filler");
  expect(config_with(R"({"embeddings":{"provider":"groq"}})"), "agents[0].knowledge.embeddings.provider");
  expect(config_with(R"({"embeddings":{"modle":"x"}})"), "agents[0].knowledge.embeddings.modle");
  expect(config_with("{}", R"(,"knowledge":{"documents":[{"name":"x","path":"rel.txt"}]})"),
         "knowledge.documents[0].path: expected an absolute path");
  expect(config_with("{}", R"(,"knowledge":{"documents":[{"name":"x","path":"/nonexistent/x.txt"}]})"),
         "knowledge.documents[0].path");
  expect(config_with("{}", R"(,"knowledge":{"documents":[{"path":"/etc/hostname"}]})"),
         "knowledge.documents[0].name");
  expect(
      config_with("{}", R"(,"knowledge":{"documents":[{"name":"x","path":"/etc/hostname","header":true}]})"),
      "knowledge.documents[0].header: only allowed when format is \"csv\"");
  expect(
      config_with("{}", R"(,"knowledge":{"documents":[{"name":"x","path":"/etc/hostname","format":"pdf"}]})"),
      "knowledge.documents[0].format");
  expect(config_with("{}", R"(,"knowledge":{"documents":[{"name":"x","path":"/etc"}]})"),
         "not a regular file");
  expect(
      config_with(
          "{}",
          R"(,"knowledge":{"documents":[{"name":"x","path":"/etc/hostname"},{"name":"x","path":"/etc/hostname"}]})"),
      "knowledge.documents[1].name: duplicate");
  expect(config_with("{}", R"(,"knowledge":{"docs":[]})"), "knowledge.docs");
}

TEST(KnowledgeConfig, TopLevelDocumentsAreParsed) {
  test::TempDir dir;
  test::write_file(dir.file("p.csv"), "a,b\n1,2\n");
  auto c = parse_config(config_with("{}", R"(,"knowledge":{"documents":[{"name":"prices","path":")" +
                                              dir.file("p.csv") + R"(","format":"csv","header":false}]})"));
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_EQ(c->knowledge.documents.size(), 1u);
  EXPECT_EQ(c->knowledge.documents[0].format, "csv");
  EXPECT_FALSE(c->knowledge.documents[0].header);
}

// The daemon's embedder: the request carries the agent's endpoint and every text, the answer comes back in
// order, an upstream failure is an error, and a request still out when it is destroyed never answers.
TEST(UpstreamEmbedder, AsksTheUpstreamAndCancelsWhatIsOutWhenDestroyed) {
  test::VirtualTime vt;
  net::SimUpstream sim(vt.schedule());
  EmbeddingsConfig ep;
  ep.model = "text-embedding-3-small";
  ep.base_url = "http://127.0.0.1:9/v1";
  std::vector<Result<Embeddings>> answers;
  auto done = [&](Result<Embeddings> r) { answers.push_back(std::move(r)); };
  {
    UpstreamEmbedder embedder(sim);
    embedder.embed(ep, {"locker rent", "opening hours"}, done);
    EXPECT_TRUE(answers.empty()) << "answered from inside embed()";
    vt.advance_ms(100);
    ASSERT_EQ(answers.size(), 1u);
    ASSERT_TRUE(answers[0].ok()) << answers[0].error().message;
    ASSERT_EQ(answers[0]->size(), 2u);
    EXPECT_EQ((*answers[0])[1], tools::stand_in_embedding("opening hours", 256));
    ASSERT_EQ(sim.embed_requests().size(), 1u);
    EXPECT_EQ(sim.embed_requests()[0].endpoint.model, "text-embedding-3-small");
    EXPECT_EQ(sim.embed_requests()[0].endpoint.base_url, "http://127.0.0.1:9/v1");
    EXPECT_EQ(sim.embed_requests()[0].inputs, (std::vector<std::string>{"locker rent", "opening hours"}));

    sim.fail_next(net::UpstreamStage::embeddings, {net::UpstreamError::Kind::http, 503, "busy"});
    embedder.embed(ep, {"x"}, done);
    vt.advance_ms(100);
    ASSERT_EQ(answers.size(), 2u);
    ASSERT_FALSE(answers[1].ok());
    EXPECT_NE(answers[1].error().message.find("embeddings:"), std::string::npos)
        << answers[1].error().message;

    sim.set_timing(net::UpstreamStage::embeddings, {1, 1000, 5});
    embedder.embed(ep, {"late"}, done);
    EXPECT_EQ(sim.in_flight(), 1u);
  }
  EXPECT_EQ(sim.in_flight(), 0u) << "the destroyed embedder left its request running";
  vt.advance_ms(5000);
  EXPECT_EQ(answers.size(), 2u);
}

}  // namespace
}  // namespace osvi::daemon::knowledge
