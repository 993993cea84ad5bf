// Knowledge base figures (bench/README.md "Knowledge base"): recall@k of bm25 and hybrid search over the
// sample set, search p50/p99 over 10,000 chunks (bm25; hybrid with 256- and 1536-float vectors), ingestion
// rate and database growth per MB of text.
//
// usage: knowledge_bench [chunks (default 10000)] [searches (default 2000)]
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "knowledge_eval.hpp"
#include "osvi/clock.hpp"
#include "osvi/knowledge/knowledge_service.hpp"
#include "osvi/store/store.hpp"
#include "test_support.hpp"

namespace {

using namespace osvi;
using namespace osvi::daemon;
using namespace osvi::daemon::knowledge;
using Clock = std::chrono::steady_clock;

int64_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

SearchResult run_search(KnowledgeService& s, const AgentKnowledgeConfig& a, const std::string& q) {
  SearchResult out;
  s.search(a, q, std::nullopt, [&](Result<SearchResult> r) {
    if (!r.ok()) {
      std::fprintf(stderr, "search failed: %s\n", r.error().message.c_str());
      std::exit(1);
    }
    out = std::move(*r);
  });
  return out;
}

void embed_all(KnowledgeService& s) {
  while (s.pump()) {
  }
}

struct Percentiles {
  double p50 = 0, p99 = 0, max = 0;
};
Percentiles percentiles(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  Percentiles p;
  p.p50 = us[us.size() / 2];
  p.p99 = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  p.max = us.back();
  return p;
}

AgentKnowledgeConfig make_agent(std::vector<std::string> docs, bool hybrid, double threshold) {
  AgentKnowledgeConfig a;
  a.documents = std::move(docs);
  a.relevance_threshold = threshold;
  a.top_k = 3;
  if (hybrid) {
    a.embeddings = EmbeddingsConfig{};
    a.embeddings->model = "stand-in";
  }
  return a;
}

void retrieval() {
  test::TempDir dir;
  ManualClock clock(1'780'000'000'000);
  auto store = Store::open(StoreOptions{dir.file("kb.db")}, clock);
  if (!store.ok()) std::exit(1);
  KnowledgeService service(**store, clock, nullptr);
  if (!test::ingest_eval_documents(service)) std::exit(1);
  std::vector<std::string> names;
  int64_t chunks = 0;
  for (const auto& d : test::eval_documents()) {
    names.push_back(d.name);
    chunks += (*(*store)->knowledge().current(d.name))->chunk_count;
  }
  test::StandInEmbedder embedder;
  service.set_embedder(&embedder);
  AgentConfig agent;
  agent.knowledge = make_agent(names, true, 0);
  service.set_agents({agent});
  embed_all(service);
  const auto questions = test::eval_questions();
  std::printf("retrieval: %zu questions over %zu documents, %lld chunks\n", questions.size(), names.size(),
              static_cast<long long>(chunks));
  for (bool hybrid : {false, true}) {
    size_t at1 = 0, at3 = 0;
    double right_score = 0;
    std::vector<std::string> misses;
    for (const auto& q : questions) {
      SearchResult r = run_search(service, make_agent(names, hybrid, 0), q.question);
      if (test::eval_hit(r, q, 1)) ++at1;
      if (test::eval_hit(r, q, 3)) {
        ++at3;
      } else {
        misses.push_back(q.question);
      }
      for (const auto& h : r.hits) {
        if (h.document_name == q.document && h.text.find(q.phrase) != std::string::npos) {
          right_score += h.score;
          break;
        }
      }
    }
    const double n = static_cast<double>(questions.size());
    std::printf("  %-22s recall@1 %.3f  recall@3 %.3f  mean score of the right chunk %.3f\n",
                hybrid ? "hybrid (stand-in 256)" : "bm25", static_cast<double>(at1) / n,
                static_cast<double>(at3) / n, right_score / static_cast<double>(at3 == 0 ? 1 : at3));
    for (const auto& m : misses) std::printf("      miss: %s\n", m.c_str());
  }
  // What the threshold sees for questions the documents cannot answer.
  const char* off_topic[] = {
      "Who won the cricket match yesterday?", "What is the weather in Delhi tomorrow?",
      "Recommend a good biryani restaurant",  "How do I reset my television remote?",
      "What is the capital of France?",       "Can you book me a train ticket to Mumbai?"};
  for (bool hybrid : {false, true}) {
    double top = 0, sum = 0;
    for (const char* q : off_topic) {
      SearchResult r = run_search(service, make_agent(names, hybrid, 0), q);
      const double s = r.hits.empty() ? 0 : r.hits[0].score;
      top = std::max(top, s);
      sum += s;
    }
    std::printf("  %-22s off-topic questions: best hit score mean %.3f, max %.3f\n",
                hybrid ? "hybrid (stand-in 256)" : "bm25", sum / 6, top);
  }
}

// Sentences of the sample documents, recombined with numbers into chunk-sized paragraphs.
std::vector<std::string> sample_sentences() {
  std::vector<std::string> out;
  for (const auto& d : test::eval_documents()) {
    std::string s;
    for (char c : d.content) {
      s += c == '\n' ? ' ' : c;
      if ((c == '.' || c == '\n') && s.size() > 30) {
        out.push_back(s);
        s.clear();
      }
    }
  }
  return out;
}

// varied = false: every chunk recombines the sample's ~250 sentences, so a question's words are each in
// 4-80% of the chunks (the worst case for bm25: thousands of matches to rank). varied = true: one sample
// sentence per chunk among words of a 40,000-word made-up vocabulary, so a question's words are in tens to
// hundreds of chunks, as in a base of many different documents.
void scale(int target_chunks, int searches, bool varied) {
  test::TempDir dir;
  ManualClock clock(1'780'000'000'000);
  const std::string db = dir.file("kb.db");
  auto store = Store::open(StoreOptions{db}, clock);
  if (!store.ok()) std::exit(1);
  auto service_ptr = std::make_unique<KnowledgeService>(**store, clock, nullptr);
  const auto sentences = sample_sentences();
  std::mt19937 rng(42);
  const int per_doc = 100;
  const int docs = std::max(1, target_chunks / per_doc);
  const int64_t size0 = file_size(db) + file_size(db + "-wal");
  size_t text_bytes = 0;
  int64_t chunks = 0;
  std::vector<std::string> names;
  double ingest_s = 0;
  for (int d = 0; d < docs; ++d) {
    std::string text;
    for (int c = 0; c < per_doc; ++c) {
      text += "# Section " + std::to_string(d) + "." + std::to_string(c) + "\n\n";
      std::string para;
      if (varied) para = sentences[rng() % sentences.size()] + " ";
      while (para.size() < 650) {
        if (varied) {
          for (int w = 0; w < 12; ++w) {
            // Zipf-like: small word numbers are common, large ones rare.
            const uint32_t n = static_cast<uint32_t>(
                40000.0 * std::pow(static_cast<double>(rng() % 10000 + 1) / 10000.0, 3));
            para.append("w").append(std::to_string(n)).append(w == 11 ? ". " : " ");
          }
        } else {
          para += sentences[rng() % sentences.size()];
          para += " Ref " + std::to_string(rng() % 100000) + ". ";
        }
      }
      text += para + "\n\n";
    }
    IngestRequest r;
    r.name = "doc" + std::to_string(d);
    r.content = text;
    text_bytes += text.size();
    const auto t0 = Clock::now();
    auto res = service_ptr->ingest(std::move(r));
    ingest_s += std::chrono::duration<double>(Clock::now() - t0).count();
    if (!res.ok()) {
      std::fprintf(stderr, "ingest: %s\n", res.error().message.c_str());
      std::exit(1);
    }
    chunks += res->document.chunk_count;
    names.push_back("doc" + std::to_string(d));
  }
  // Closing the last connection checkpoints the WAL into the file: the size is then the data's.
  auto reopen = [&] {
    service_ptr.reset();
    store->reset();
    store = Store::open(StoreOptions{db}, clock);
    if (!store.ok()) std::exit(1);
    service_ptr = std::make_unique<KnowledgeService>(**store, clock, nullptr);
  };
  reopen();
  const int64_t size1 = file_size(db) + file_size(db + "-wal");
  const double mb = static_cast<double>(text_bytes) / (1024.0 * 1024.0);
  std::printf(
      "[%s corpus] ingestion: %d documents, %lld chunks, %.1f MB of text in %.2f s: %.0f chunks/s, %.2f "
      "MB/s\n",
      varied ? "varied" : "recombined", docs, static_cast<long long>(chunks), mb, ingest_s,
      static_cast<double>(chunks) / ingest_s, mb / ingest_s);
  std::printf("database growth: %.2f MB for %.2f MB of text = %.2f MB per MB of text (no vectors)\n",
              static_cast<double>(size1 - size0) / (1024.0 * 1024.0), mb,
              static_cast<double>(size1 - size0) / static_cast<double>(text_bytes));

  const auto questions = test::eval_questions();
  KnowledgeService& service = *service_ptr;
  auto cpu_us = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
  };
  // First pass: every question once, its words' match counts not cached yet (the first time a word is
  // asked after an ingestion). Then `searches` searches cycling through the questions, counts cached.
  auto timed = [&](const AgentKnowledgeConfig& a, const char* label) {
    std::vector<double> cold;
    for (const auto& q : questions) {
      const auto t0 = Clock::now();
      run_search(service, a, q.question);
      cold.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    std::vector<double> us;
    std::vector<double> cpu;
    size_t hits = 0;
    for (int i = 0; i < searches; ++i) {
      const auto t0 = Clock::now();
      const double c0 = cpu_us();
      SearchResult r = run_search(service, a, questions[static_cast<size_t>(i) % questions.size()].question);
      cpu.push_back(cpu_us() - c0);
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      hits += r.hits.size();
    }
    const Percentiles c = percentiles(cold);
    const Percentiles p = percentiles(us);
    const Percentiles q = percentiles(cpu);
    std::printf(
        "  %-30s first pass p50 %5.2f p99 %5.2f ms | repeated: wall p50 %5.2f p99 %5.2f max %5.2f ms, "
        "CPU p50 %5.2f p99 %5.2f ms (%zu searches, %.1f hits each)\n",
        label, c.p50 / 1000, c.p99 / 1000, p.p50 / 1000, p.p99 / 1000, p.max / 1000, q.p50 / 1000,
        q.p99 / 1000, us.size(), static_cast<double>(hits) / static_cast<double>(us.size()));
  };
  std::printf("search over %lld chunks (%s corpus; one agent attached to all %d documents, k=3):\n",
              static_cast<long long>(chunks), varied ? "varied" : "recombined", docs);
  timed(make_agent(names, false, 0.3), "bm25");
  for (size_t dims : {size_t(256), size_t(1536)}) {
    test::StandInEmbedder embedder(dims);
    service.set_embedder(&embedder);
    AgentConfig agent;
    agent.knowledge = make_agent(names, true, 0.3);
    agent.knowledge.embeddings->model = "stand-in-" + std::to_string(dims);
    service.set_agents({agent});
    const auto t0 = Clock::now();
    embed_all(service);
    const double embed_s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf(
        "  (embedded %zu chunks x %zu floats in %.1f s including the stand-in; database and WAL now %.1f "
        "MB)\n",
        embedder.texts_embedded, dims, embed_s,
        static_cast<double>(file_size(db) + file_size(db + "-wal")) / (1024.0 * 1024.0));
    (void)reopen;
    // The first search loads the vector cache; the timed ones run on it (the query's embedding is the
    // stand-in's, computed in the call: a real model's network time is not in these figures).
    run_search(service, agent.knowledge, "warm up");
    const std::string label = "hybrid, " + std::to_string(dims) + "-float vectors";
    timed(agent.knowledge, label.c_str());
    service.set_embedder(nullptr);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int chunks = argc > 1 ? std::atoi(argv[1]) : 10000;
  const int searches = argc > 2 ? std::atoi(argv[2]) : 2000;
  retrieval();
  scale(chunks, searches, true);
  scale(chunks, searches, false);
  return 0;
}
