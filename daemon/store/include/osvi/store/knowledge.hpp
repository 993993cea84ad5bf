// Repository of the knowledge base tables: documents (one row per version), chunks, their FTS5 index and
// their embeddings.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"

namespace osvi::daemon {

class Database;

struct KnowledgeDocument {
  int64_t id = 0;
  std::string name;
  std::string format = "txt";  // txt | csv
  bool csv_header = false;
  std::string content;  // empty in listings (KnowledgeRepo::list does not read it)
  int64_t size_bytes = 0;
  std::string sha256;          // of content, 64 lower-case hex digits
  std::string source = "api";  // api | config:<path>
  std::string uploader;        // who sent it: "api" (an admin token) or "config"
  int64_t chunk_count = 0;
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
  std::optional<int64_t> archived_at_ms;
};

// A chunk as chunking makes it: the heading path it sits under and its text (which repeats that path, so
// the chunk reads on its own and the index sees the headings' words).
struct KnowledgeChunkText {
  std::string heading;
  std::string text;
};

struct KnowledgeChunk {
  int64_t id = 0;
  int64_t document_id = 0;
  int64_t ordinal = 0;
  std::string heading;
  std::string text;
};

struct KnowledgeHit {
  KnowledgeChunk chunk;
  double bm25 = 0;  // -bm25(): >= 0, larger is better
};

struct KnowledgeVector {
  int64_t chunk_id = 0;
  std::vector<float> values;
};

class KnowledgeRepo {
 public:
  explicit KnowledgeRepo(Database& db) : db_(db) {}

  // Writes the document (its id, chunk_count and timestamps are the repository's) and its chunks, in the
  // caller's transaction; a current document of the same name must have been archived first (-EEXIST).
  Result<int64_t> insert(const KnowledgeDocument& doc, std::span<const KnowledgeChunkText> chunks);
  // One version by id; content read only when asked for.
  Result<std::optional<KnowledgeDocument>> get(int64_t id, bool with_content);
  // The current (non-archived) version of a name.
  Result<std::optional<KnowledgeDocument>> current(std::string_view name);
  // The current versions of these names (missing names are absent from the result).
  Result<std::vector<KnowledgeDocument>> current(std::span<const std::string> names);
  // Newest first (updated_at, id). archived: nullopt = every version, false = current ones, true = archived
  // ones. total_count: every match.
  Result<std::vector<KnowledgeDocument>> list(std::optional<bool> archived, int64_t page, int64_t per_page,
                                              int64_t* total_count);
  // Sets archived_at; false when the document was already archived, -ENOENT when there is none.
  Result<bool> archive(int64_t id, int64_t now_ms);

  // FTS5 search over the chunks of the given documents, best first (bm25), at most limit rows. `match` is
  // an FTS5 MATCH expression the caller built from quoted terms (never user text as given).
  Result<std::vector<KnowledgeHit>> search(std::string_view match, std::span<const int64_t> document_ids,
                                           int64_t limit);
  // How many indexed chunks match `match`, counting at most cap (a capped count costs at most cap rows).
  Result<int64_t> match_count(std::string_view match, int64_t cap);
  // Chunks in the index, archived documents' included (the N of bm25's IDF).
  Result<int64_t> indexed_chunks();
  // Chunks of the given documents with no vector for model, in document and ordinal order, at most limit.
  Result<std::vector<KnowledgeChunk>> missing_embeddings(std::string_view model,
                                                         std::span<const int64_t> document_ids,
                                                         int64_t limit);
  Status put_embedding(int64_t chunk_id, std::string_view model, std::span<const float> values);
  // Every vector of one document for model, in chunk order.
  Result<std::vector<KnowledgeVector>> embeddings(int64_t document_id, std::string_view model);
  // Chunk texts by id (the hits of a vector search), in the order asked; unknown ids are skipped.
  Result<std::vector<KnowledgeChunk>> chunks(std::span<const int64_t> ids);

 private:
  Database& db_;
};

}  // namespace osvi::daemon
