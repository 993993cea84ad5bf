// KnowledgeService: ingesting, listing, archiving and searching knowledge documents on the loop thread;
// embeds new chunks in the background when an agent names an embeddings model (docs/api.md "Knowledge base").
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "osvi/clock.hpp"
#include "osvi/config/config.hpp"
#include "osvi/knowledge/chunking.hpp"
#include "osvi/knowledge/embedder.hpp"
#include "osvi/result.hpp"
#include "osvi/store/store.hpp"

namespace osvi::daemon::knowledge {

struct IngestRequest {
  std::string name;
  std::string format = "txt";  // txt | csv
  std::string content;
  bool has_header = true;      // csv only
  std::string source = "api";  // api | config:<path>
  std::string uploader = "api";
};

struct IngestResult {
  KnowledgeDocument document;
  bool created = true;                 // false: the current version already had this content
  std::optional<int64_t> replaced_id;  // the version this one archived
};

struct SearchHit {
  int64_t chunk_id = 0;
  int64_t document_id = 0;
  std::string document_name;
  int64_t ordinal = 0;
  std::string heading;
  std::string text;
  double score = 0;              // normalised, [0, 1]
  std::optional<double> bm25;    // -bm25() when the chunk matched the words
  std::optional<double> cosine;  // when the chunk and the query have vectors
};

struct SearchResult {
  // "bm25": no embeddings configured; "hybrid": bm25 and vectors fused; "bm25_fallback": embeddings
  // configured but the query could not be embedded (fallback_reason says why).
  std::string mode = "bm25";
  std::string fallback_reason;
  int64_t chunks_searched = 0;         // chunks of the agent's current documents
  int64_t chunks_without_vectors = 0;  // hybrid: of those, ranked by bm25 only (not embedded yet)
  double relevance_threshold = 0;
  unsigned k = 0;
  std::vector<std::string> missing_documents;  // attached names with no current version
  std::vector<SearchHit> hits;                 // best first, score >= threshold, at most k
};

// Score normalisation (docs/api.md "Knowledge search scores"): a chunk's relevance in each ranking is
// bm25: s/(s + kBm25Half) with s = -bm25(); vectors: max(0, cosine). Each ranking contributes
// relevance × (kRrfK + 1)/(kRrfK + rank) (rank from 1), and the score is the mean over the rankings the
// chunk takes part in (both when it has a vector and hybrid search runs, else bm25 alone). A chunk ranked
// first everywhere with relevance 1 scores 1.
inline constexpr double kRrfK = 60;
inline constexpr double kBm25Half = 4;      // the -bm25() at which the bm25 relevance is 0.5
inline constexpr int64_t kCandidates = 50;  // bm25 candidates per search
inline constexpr size_t kMaxQueryBytes = 1000;
inline constexpr size_t kEmbedBatch = 32;                      // chunks per embeddings request
inline constexpr size_t kVectorCacheBytes = 32 * 1024 * 1024;  // 20,000 chunks of 1536 dims
// bm25 costs a few microseconds per matching chunk (FTS5 reads each one's size), so a question of common
// words over a large base would rank thousands. Once the index holds more than this many chunks, a search
// ranks with its rarest words whose matches add up to at most this many (at least one word), and leaves
// out words found in more than half the chunks (FTS5's bm25 gives them an IDF of 1e-6: they cannot change
// the order). docs/api.md "Knowledge search".
inline constexpr int64_t kMatchBudget = 1000;
inline constexpr size_t kMaxCachedTerms = 10000;

class KnowledgeService {
 public:
  // Runs fn once, delay_ms later, on the loop; the service keeps at most one pending.
  using Schedule = std::function<void(int64_t delay_ms, std::function<void()> fn)>;
  using SearchDone = std::function<void(Result<SearchResult>)>;

  KnowledgeService(Store& store, const Clock& clock, Schedule schedule, ChunkLimits limits = {});
  ~KnowledgeService();
  KnowledgeService(const KnowledgeService&) = delete;
  KnowledgeService& operator=(const KnowledgeService&) = delete;

  // Null: no embeddings client (searches of agents with embeddings fall back to bm25, nothing is embedded).
  void set_embedder(Embedder* embedder);
  // The agents (their attachments and embeddings models) the background embedding works for.
  void set_agents(const std::vector<AgentConfig>& agents);

  // Validates (name, format, UTF-8, size), chunks and stores in one transaction. A current version of the
  // same name is archived by it (-EPERM when that version came from the configuration and this one does
  // not); the same content as the current version is recognised and nothing is written (created false).
  // Errors: -EINVAL (validation, the message says what), -EFBIG (limits), -EPERM, store errors.
  Result<IngestResult> ingest(IngestRequest request);
  Result<std::optional<KnowledgeDocument>> get(int64_t id) { return store_.knowledge().get(id, true); }
  Result<std::vector<KnowledgeDocument>> list(std::optional<bool> archived, int64_t page, int64_t per_page,
                                              int64_t* total) {
    return store_.knowledge().list(archived, page, per_page, total);
  }
  // False when it was already archived; -ENOENT when there is no such document.
  Result<bool> archive(int64_t id);

  // The configuration's documents: each file read and ingested unless its current version has the same
  // content, format and header; current documents from a configuration entry no longer there are archived.
  // A file that cannot be read or ingested is logged and reported in the error (the others still load).
  Status sync_documents(const KnowledgeBaseConfig& config);

  // What the agent would retrieve for query: its current attached documents only, at most k (the agent's
  // top_k when k is unset) hits at or above its relevance threshold. Without embeddings done is called
  // before search() returns; with, after the query's embedding arrives.
  void search(const AgentKnowledgeConfig& agent, std::string_view query, std::optional<unsigned> k,
              SearchDone done);

  // Sends the next batch of chunks that have no vector yet; false when none was sent (nothing missing, no
  // client, or a batch already out). The timer calls it; tests and the bench may too.
  bool pump();
  bool embedding_in_flight() const { return in_flight_; }

 private:
  // One document's vectors for one model, normalised and quantised to int8 (one scale per vector): a
  // quarter of float32's memory, and the cosine's error (< 1% of its range) is far below what separates
  // chunks in a ranking.
  struct DocVectors {
    std::string model;
    int64_t document_id = 0;
    size_t dims = 0;
    std::vector<int64_t> chunk_ids;
    std::vector<int8_t> values;  // chunk_ids.size() × dims
    std::vector<float> scales;
    size_t bytes = 0;
  };
  struct Prepared;  // a search between its bm25 half and its vector half

  void schedule_pump(int64_t delay_ms);
  // The current versions of these names (cached until the next ingestion or archive: one read per name
  // per search would cost more than the search over a hundred documents).
  Result<std::vector<KnowledgeDocument>> current_documents(const std::vector<std::string>& names);
  // The MATCH expression a search ranks with (kMatchBudget); empty when no word is left.
  Result<std::string> bm25_match(const std::vector<std::string>& terms);
  Result<std::shared_ptr<const DocVectors>> vectors(const std::string& model, int64_t document_id);
  void drop_vectors(int64_t document_id);
  void finish_hybrid(const std::shared_ptr<Prepared>& p, Result<Embeddings> query_vector,
                     const SearchDone& done);

  Store& store_;
  const Clock& clock_;
  Schedule schedule_;
  ChunkLimits limits_;
  Embedder* embedder_ = nullptr;
  std::vector<AgentKnowledgeConfig> agents_;  // those with embeddings
  bool pump_pending_ = false;
  bool in_flight_ = false;
  int64_t backoff_ms_ = 0;
  // Most recently used first; bounded by kVectorCacheBytes.
  std::list<std::shared_ptr<const DocVectors>> cache_;
  size_t cache_bytes_ = 0;
  // Per word: how many chunks match it (capped); both reset when an ingestion changes the index.
  std::map<std::string, std::pair<int64_t, int64_t>, std::less<>> term_counts_;  // (count, its cap)
  int64_t indexed_chunks_ = -1;
  std::map<std::string, std::optional<KnowledgeDocument>, std::less<>> current_;
  // Callbacks still out (an embeddings request) check it before touching the service.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// 64 lower-case hex digits of SHA-256. An error (-ELIBACC) only when libcrypto, opened at the first digest
// (net/digest.hpp), is missing.
Result<std::string> sha256_hex(std::string_view bytes);

}  // namespace osvi::daemon::knowledge
