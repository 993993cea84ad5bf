// KnowledgeRepo: document versions, their chunks, the FTS5 index over the chunks and the chunks' vectors.
#include "osvi/store/knowledge.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "osvi/store/database.hpp"
#include "sqlite.hpp"

namespace osvi::daemon {
namespace {

using sql::run;
using sql::wrap;

constexpr const char* kDocColumns =
    "id, name, format, csv_header, size_bytes, sha256, source, uploader, chunk_count, created_at, "
    "updated_at, "
    "archived_at";

KnowledgeDocument read_document(const sql::Stmt& s, bool with_content) {
  KnowledgeDocument d;
  d.id = s.int64(0);
  d.name = s.text(1);
  d.format = s.text(2);
  d.csv_header = s.int64(3) != 0;
  d.size_bytes = s.int64(4);
  d.sha256 = s.text(5);
  d.source = s.text(6);
  d.uploader = s.text(7);
  d.chunk_count = s.int64(8);
  d.created_at_ms = s.int64(9);
  d.updated_at_ms = s.int64(10);
  d.archived_at_ms = s.opt_int64(11);
  if (with_content) d.content = s.text(12);
  return d;
}

KnowledgeChunk read_chunk(const sql::Stmt& s) {
  KnowledgeChunk c;
  c.id = s.int64(0);
  c.document_id = s.int64(1);
  c.ordinal = s.int64(2);
  c.heading = s.text(3);
  c.text = s.text(4);
  return c;
}

// A JSON array of integers for json_each(): digits and commas only, nothing from a client.
std::string id_array(std::span<const int64_t> ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(ids[i]);
  }
  out += ']';
  return out;
}

}  // namespace

Result<int64_t> KnowledgeRepo::insert(const KnowledgeDocument& doc,
                                      std::span<const KnowledgeChunkText> chunks) {
  const std::string what = "storing knowledge document " + doc.name;
  const int64_t now = db_.clock().wall_ms();
  Status s =
      run(db_.sql(),
          "INSERT INTO knowledge_documents (name, format, csv_header, content, size_bytes, sha256, source, "
          "uploader, chunk_count, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
          "?10)",
          doc.name, doc.format, doc.csv_header, doc.content, static_cast<int64_t>(doc.content.size()),
          doc.sha256, doc.source, doc.uploader, static_cast<int64_t>(chunks.size()), now);
  if (!s.ok()) return wrap(what, s.error());
  const int64_t id = sqlite3_last_insert_rowid(db_.sql().handle());
  auto stmt = db_.sql().cached(
      "INSERT INTO knowledge_chunks (document_id, ordinal, heading, text) VALUES (?1, ?2, ?3, ?4)");
  if (!stmt.ok()) return wrap(what, stmt.error());
  int64_t ordinal = 0;
  for (const KnowledgeChunkText& c : chunks) {
    (*stmt)->bind_all(id, ordinal++, c.heading, c.text);
    if (Status r = (*stmt)->run(); !r.ok()) return wrap(what, r.error());
    (*stmt)->reset();
  }
  return id;
}

Result<std::optional<KnowledgeDocument>> KnowledgeRepo::get(int64_t id, bool with_content) {
  const std::string sql = std::string("SELECT ") + kDocColumns + (with_content ? ", content" : "") +
                          " FROM knowledge_documents WHERE id = ?1";
  auto stmt = db_.sql().cached(sql);
  if (!stmt.ok()) return wrap("reading a knowledge document", stmt.error());
  (*stmt)->bind(1, id);
  auto row = (*stmt)->step();
  if (!row.ok()) return wrap("reading a knowledge document", row.error());
  if (!*row) return std::optional<KnowledgeDocument>();
  return std::optional<KnowledgeDocument>(read_document(**stmt, with_content));
}

Result<std::optional<KnowledgeDocument>> KnowledgeRepo::current(std::string_view name) {
  auto stmt = db_.sql().cached(std::string("SELECT ") + kDocColumns +
                               " FROM knowledge_documents WHERE name = ?1 AND archived_at IS NULL");
  if (!stmt.ok()) return wrap("reading a knowledge document", stmt.error());
  (*stmt)->bind(1, name);
  auto row = (*stmt)->step();
  if (!row.ok()) return wrap("reading a knowledge document", row.error());
  if (!*row) return std::optional<KnowledgeDocument>();
  return std::optional<KnowledgeDocument>(read_document(**stmt, false));
}

Result<std::vector<KnowledgeDocument>> KnowledgeRepo::current(std::span<const std::string> names) {
  // One bound lookup per name (an agent attaches a handful): names are client text, kept out of any SQL.
  std::vector<KnowledgeDocument> out;
  for (const std::string& n : names) {
    auto d = current(n);
    if (!d.ok()) return d.error();
    if (*d) out.push_back(std::move(**d));
  }
  return out;
}

Result<std::vector<KnowledgeDocument>> KnowledgeRepo::list(std::optional<bool> archived, int64_t page,
                                                           int64_t per_page, int64_t* total_count) {
  if (page < 1 || per_page < 1)
    return make_error("store: listing knowledge documents: page and per_page start at 1", -EINVAL);
  const int64_t offset = page - 1 > INT64_MAX / per_page ? INT64_MAX : (page - 1) * per_page;
  const std::string where = !archived   ? ""
                            : *archived ? " WHERE archived_at IS NOT NULL"
                                        : " WHERE archived_at IS NULL";
  if (total_count != nullptr) {
    auto count = db_.sql().cached("SELECT count(*) FROM knowledge_documents" + where);
    if (!count.ok()) return wrap("counting knowledge documents", count.error());
    auto row = (*count)->step();
    if (!row.ok()) return wrap("counting knowledge documents", row.error());
    *total_count = *row ? (*count)->int64(0) : 0;
  }
  auto stmt = db_.sql().cached(std::string("SELECT ") + kDocColumns + " FROM knowledge_documents" + where +
                               " ORDER BY updated_at DESC, id DESC LIMIT ?1 OFFSET ?2");
  if (!stmt.ok()) return wrap("listing knowledge documents", stmt.error());
  (*stmt)->bind_all(per_page, offset);
  std::vector<KnowledgeDocument> out;
  for (;;) {
    auto row = (*stmt)->step();
    if (!row.ok()) return wrap("listing knowledge documents", row.error());
    if (!*row) break;
    out.push_back(read_document(**stmt, false));
  }
  return out;
}

Result<bool> KnowledgeRepo::archive(int64_t id, int64_t now_ms) {
  Status s =
      run(db_.sql(),
          "UPDATE knowledge_documents SET archived_at = ?2, updated_at = ?2 WHERE id = ?1 AND archived_at "
          "IS NULL",
          id, now_ms);
  if (!s.ok()) return wrap("archiving knowledge document " + std::to_string(id), s.error());
  if (db_.sql().changes() == 1) return true;
  auto d = get(id, false);
  if (!d.ok()) return d.error();
  if (!*d) return make_error("store: no knowledge document " + std::to_string(id), -ENOENT);
  return false;
}

Result<std::vector<KnowledgeHit>> KnowledgeRepo::search(std::string_view match,
                                                        std::span<const int64_t> document_ids,
                                                        int64_t limit) {
  std::vector<KnowledgeHit> out;
  if (match.empty() || document_ids.empty() || limit <= 0) return out;
  // First the index alone, best first (FTS5 sorts by rank itself; no chunk row is read per match), then
  // the owners of those few: when the agent has most of the base, the best `limit` of its own are among
  // the best 4 × limit of all. Otherwise (the agent has a small part of a large base) the join below
  // filters every match by its document.
  const int64_t wide = limit * 4;
  std::vector<int64_t> ids;
  std::vector<double> scores;
  {
    auto stmt = db_.sql().cached(
        "SELECT rowid, -rank FROM knowledge_fts WHERE knowledge_fts MATCH ?1 ORDER BY rank LIMIT ?2");
    if (!stmt.ok()) return wrap("searching the knowledge base", stmt.error());
    (*stmt)->bind_all(match, wide);
    for (;;) {
      auto row = (*stmt)->step();
      if (!row.ok()) return wrap("searching the knowledge base", row.error());
      if (!*row) break;
      ids.push_back((*stmt)->int64(0));
      scores.push_back((*stmt)->real(1));
    }
  }
  auto texts = chunks(ids);
  if (!texts.ok()) return texts.error();
  for (size_t i = 0, j = 0; i < ids.size() && j < texts->size() && static_cast<int64_t>(out.size()) < limit;
       ++i) {
    if ((*texts)[j].id != ids[i]) continue;
    KnowledgeChunk& c = (*texts)[j++];
    if (std::find(document_ids.begin(), document_ids.end(), c.document_id) == document_ids.end()) continue;
    out.push_back(KnowledgeHit{std::move(c), scores[i]});
  }
  if (static_cast<int64_t>(out.size()) >= limit || static_cast<int64_t>(ids.size()) < wide) return out;

  out.clear();
  ids.clear();
  scores.clear();
  auto stmt = db_.sql().cached(
      "SELECT c.id, -bm25(knowledge_fts) AS score "
      "FROM knowledge_fts JOIN knowledge_chunks c ON c.id = knowledge_fts.rowid "
      "WHERE knowledge_fts MATCH ?1 AND c.document_id IN (SELECT value FROM json_each(?2)) "
      "ORDER BY score DESC, c.id LIMIT ?3");
  if (!stmt.ok()) return wrap("searching the knowledge base", stmt.error());
  (*stmt)->bind_all(match, id_array(document_ids), limit);
  for (;;) {
    auto row = (*stmt)->step();
    if (!row.ok()) return wrap("searching the knowledge base", row.error());
    if (!*row) break;
    ids.push_back((*stmt)->int64(0));
    scores.push_back((*stmt)->real(1));
  }
  texts = chunks(ids);
  if (!texts.ok()) return texts.error();
  for (size_t i = 0, j = 0; i < ids.size() && j < texts->size(); ++i) {
    if ((*texts)[j].id != ids[i]) continue;
    out.push_back(KnowledgeHit{std::move((*texts)[j++]), scores[i]});
  }
  return out;
}

Result<int64_t> KnowledgeRepo::match_count(std::string_view match, int64_t cap) {
  auto stmt = db_.sql().cached(
      "SELECT count(*) FROM (SELECT 1 FROM knowledge_fts WHERE knowledge_fts MATCH ?1 LIMIT ?2)");
  if (!stmt.ok()) return wrap("counting knowledge matches", stmt.error());
  (*stmt)->bind_all(match, cap);
  auto row = (*stmt)->step();
  if (!row.ok()) return wrap("counting knowledge matches", row.error());
  return *row ? (*stmt)->int64(0) : 0;
}

Result<int64_t> KnowledgeRepo::indexed_chunks() {
  auto stmt = db_.sql().cached("SELECT coalesce(sum(chunk_count), 0) FROM knowledge_documents");
  if (!stmt.ok()) return wrap("counting knowledge chunks", stmt.error());
  auto row = (*stmt)->step();
  if (!row.ok()) return wrap("counting knowledge chunks", row.error());
  return *row ? (*stmt)->int64(0) : 0;
}

Result<std::vector<KnowledgeChunk>> KnowledgeRepo::missing_embeddings(std::string_view model,
                                                                      std::span<const int64_t> document_ids,
                                                                      int64_t limit) {
  std::vector<KnowledgeChunk> out;
  if (document_ids.empty() || limit <= 0) return out;
  auto stmt = db_.sql().cached(
      "SELECT c.id, c.document_id, c.ordinal, c.heading, c.text FROM knowledge_chunks c "
      "WHERE c.document_id IN (SELECT value FROM json_each(?1)) AND NOT EXISTS "
      "(SELECT 1 FROM knowledge_embeddings e WHERE e.chunk_id = c.id AND e.model = ?2) "
      "ORDER BY c.document_id, c.ordinal LIMIT ?3");
  if (!stmt.ok()) return wrap("finding chunks to embed", stmt.error());
  (*stmt)->bind_all(id_array(document_ids), model, limit);
  for (;;) {
    auto row = (*stmt)->step();
    if (!row.ok()) return wrap("finding chunks to embed", row.error());
    if (!*row) break;
    out.push_back(read_chunk(**stmt));
  }
  return out;
}

Status KnowledgeRepo::put_embedding(int64_t chunk_id, std::string_view model, std::span<const float> values) {
  auto stmt = db_.sql().cached(
      "INSERT INTO knowledge_embeddings (chunk_id, model, dims, vector, created_at) VALUES (?1, ?2, ?3, ?4, "
      "?5) "
      "ON CONFLICT (chunk_id, model) DO UPDATE SET dims = excluded.dims, vector = excluded.vector, "
      "created_at = excluded.created_at");
  if (!stmt.ok()) return wrap("storing an embedding", stmt.error());
  (*stmt)->bind(1, chunk_id);
  (*stmt)->bind(2, model);
  (*stmt)->bind(3, static_cast<int64_t>(values.size()));
  (*stmt)->bind_blob(4, values.data(), values.size() * sizeof(float));
  (*stmt)->bind(5, db_.clock().wall_ms());
  if (Status s = (*stmt)->run(); !s.ok()) return wrap("storing an embedding", s.error());
  return {};
}

Result<std::vector<KnowledgeVector>> KnowledgeRepo::embeddings(int64_t document_id, std::string_view model) {
  auto stmt = db_.sql().cached(
      "SELECT e.chunk_id, e.vector FROM knowledge_chunks c JOIN knowledge_embeddings e ON e.chunk_id = c.id "
      "AND e.model = ?2 WHERE c.document_id = ?1 ORDER BY c.ordinal");
  if (!stmt.ok()) return wrap("reading embeddings", stmt.error());
  (*stmt)->bind_all(document_id, model);
  std::vector<KnowledgeVector> out;
  for (;;) {
    auto row = (*stmt)->step();
    if (!row.ok()) return wrap("reading embeddings", row.error());
    if (!*row) break;
    KnowledgeVector v;
    v.chunk_id = (*stmt)->int64(0);
    std::string_view bytes = (*stmt)->blob(1);
    v.values.resize(bytes.size() / sizeof(float));
    if (!v.values.empty()) std::memcpy(v.values.data(), bytes.data(), v.values.size() * sizeof(float));
    out.push_back(std::move(v));
  }
  return out;
}

Result<std::vector<KnowledgeChunk>> KnowledgeRepo::chunks(std::span<const int64_t> ids) {
  std::vector<KnowledgeChunk> out;
  if (ids.empty()) return out;
  auto stmt = db_.sql().cached(
      "SELECT c.id, c.document_id, c.ordinal, c.heading, c.text FROM json_each(?1) j "
      "JOIN knowledge_chunks c ON c.id = j.value ORDER BY j.key");
  if (!stmt.ok()) return wrap("reading chunks", stmt.error());
  (*stmt)->bind(1, id_array(ids));
  for (;;) {
    auto row = (*stmt)->step();
    if (!row.ok()) return wrap("reading chunks", row.error());
    if (!*row) break;
    out.push_back(read_chunk(**stmt));
  }
  return out;
}

}  // namespace osvi::daemon
