// KnowledgeService: ingestion in one transaction, bm25 and hybrid (bm25 + vectors, fused by rank) search,
// background embedding of new chunks, the configuration's documents.
#include "osvi/knowledge/knowledge_service.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "osvi/base/log.hpp"
#include "osvi/knowledge/query.hpp"
#include "osvi/net/digest.hpp"
#include "osvi/net/text.hpp"

namespace osvi::daemon::knowledge {
namespace {

constexpr int64_t kFirstBackoffMs = 30'000;
constexpr int64_t kMaxBackoffMs = 600'000;

double bm25_relevance(double raw) {
  return raw <= 0 ? 0 : raw / (raw + kBm25Half);
}

double rank_weight(size_t rank0) {
  return (kRrfK + 1) / (kRrfK + static_cast<double>(rank0 + 1));
}

Status check_name(std::string_view name) {
  if (name.empty()) return make_error("name: required", -EINVAL);
  if (!net::clean_text(name)) return make_error("name: not valid UTF-8 text", -EINVAL);
  if (net::utf8_length(name) > kKnowledgeMaxNameChars)
    return make_error("name: longer than " + std::to_string(kKnowledgeMaxNameChars) + " characters", -EINVAL);
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) return make_error("name: contains a control character", -EINVAL);
  }
  return {};
}

Result<std::string> read_file(const std::string& path, size_t max) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f) return make_error(path + ": " + std::strerror(errno), -errno);
  std::string text;
  char buf[65536];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) {
    text.append(buf, n);
    if (text.size() > max)
      return make_error(path + ": larger than " + std::to_string(max / (1024 * 1024)) + " MiB", -EFBIG);
  }
  if (std::ferror(f.get())) return make_error(path + ": " + std::strerror(errno), -errno);
  return text;
}

}  // namespace

Result<std::string> sha256_hex(std::string_view bytes) {
  auto md = net::digest::sha256(bytes);
  if (!md) return md.error();
  return net::digest::hex(*md);
}

// What a hybrid search carries from its bm25 half to the arrival of the query's vector.
struct KnowledgeService::Prepared {
  SearchResult result;
  std::vector<KnowledgeHit> bm25;
  std::vector<KnowledgeDocument> documents;
  std::string model;
};

KnowledgeService::KnowledgeService(Store& store, const Clock& clock, Schedule schedule, ChunkLimits limits)
    : store_(store), clock_(clock), schedule_(std::move(schedule)), limits_(limits) {}

KnowledgeService::~KnowledgeService() {
  *alive_ = false;
}

void KnowledgeService::set_embedder(Embedder* embedder) {
  embedder_ = embedder;
  schedule_pump(0);
}

void KnowledgeService::set_agents(const std::vector<AgentConfig>& agents) {
  agents_.clear();
  for (const AgentConfig& a : agents) {
    if (a.knowledge.embeddings && !a.knowledge.documents.empty()) agents_.push_back(a.knowledge);
  }
  schedule_pump(0);
}

Result<IngestResult> KnowledgeService::ingest(IngestRequest req) {
  if (Status s = check_name(req.name); !s.ok()) return s.error();
  if (req.format != "txt" && req.format != "csv")
    return make_error("format: must be \"txt\" or \"csv\", got " + net::quoted(req.format), -EINVAL);
  if (req.format == "txt") req.has_header = false;
  if (req.content.size() > limits_.max_document_bytes)
    return make_error("content: " + std::to_string(req.content.size()) + " bytes, more than the " +
                          std::to_string(limits_.max_document_bytes / (1024 * 1024)) + " MiB limit",
                      -EFBIG);
  KnowledgeRepo& repo = store_.knowledge();
  auto hashed = sha256_hex(req.content);
  if (!hashed) return hashed.error();
  const std::string& sha = *hashed;
  auto cur = repo.current(req.name);
  if (!cur.ok()) return cur.error();
  if (*cur && (*cur)->sha256 == sha && (*cur)->format == req.format && (*cur)->csv_header == req.has_header) {
    IngestResult same;
    same.document = **cur;
    same.created = false;
    return same;
  }
  if (*cur && (*cur)->source.starts_with("config:") && !req.source.starts_with("config:"))
    return make_error("document " + net::quoted(req.name) + " comes from the configuration (" +
                          (*cur)->source.substr(7) + "): change that file instead",
                      -EPERM);
  auto chunks = req.format == "csv" ? chunk_csv(req.name, req.content, req.has_header, limits_)
                                    : chunk_txt(req.name, req.content, limits_);
  if (!chunks.ok()) return make_error("content: " + chunks.error().message, chunks.error().code);

  KnowledgeDocument doc;
  doc.name = req.name;
  doc.format = req.format;
  doc.csv_header = req.has_header;
  doc.content = std::move(req.content);
  doc.sha256 = sha;
  doc.source = req.source;
  doc.uploader = req.uploader;
  IngestResult out;
  auto tx = store_.database().begin();
  if (!tx.ok()) return tx.error();
  if (*cur) {
    auto archived = repo.archive((*cur)->id, clock_.wall_ms());
    if (!archived.ok()) return archived.error();
    out.replaced_id = (*cur)->id;
  }
  auto id = repo.insert(doc, *chunks);
  if (!id.ok()) return id.error();
  if (Status s = tx->commit(); !s.ok()) return s.error();
  indexed_chunks_ = -1;
  term_counts_.clear();
  current_.clear();
  if (out.replaced_id) drop_vectors(*out.replaced_id);
  auto stored = repo.get(*id, false);
  if (!stored.ok()) return stored.error();
  if (!*stored) return make_error("knowledge document " + std::to_string(*id) + " vanished", -EIO);
  out.document = std::move(**stored);
  schedule_pump(0);
  return out;
}

Result<bool> KnowledgeService::archive(int64_t id) {
  current_.clear();
  auto r = store_.knowledge().archive(id, clock_.wall_ms());
  if (r.ok() && *r) drop_vectors(id);
  return r;
}

Status KnowledgeService::sync_documents(const KnowledgeBaseConfig& config) {
  std::string problems;
  auto note = [&](const std::string& what) {
    log::warning("knowledge: " + what);
    if (!problems.empty()) problems += "; ";
    problems += what;
  };
  for (const KnowledgeDocumentConfig& d : config.documents) {
    auto text = read_file(d.path, limits_.max_document_bytes);
    if (!text.ok()) {
      note("document " + d.name + ": " + text.error().message);
      continue;
    }
    IngestRequest req;
    req.name = d.name;
    req.format = d.format;
    req.content = std::move(*text);
    req.has_header = d.format == "csv" && d.header;
    req.source = "config:" + d.path;
    req.uploader = "config";
    auto r = ingest(std::move(req));
    if (!r.ok()) {
      note("document " + d.name + " (" + d.path + "): " + r.error().message);
    } else if (r->created) {
      log::notice("knowledge: loaded " + d.name + " from " + d.path + " (" +
                  std::to_string(r->document.chunk_count) + " chunks)");
    }
  }
  // Documents of configuration entries that are gone are retired, as if the technician archived them.
  std::vector<int64_t> retire;
  for (int64_t page = 1;; ++page) {
    int64_t total = 0;
    auto docs = store_.knowledge().list(false, page, 500, &total);
    if (!docs.ok()) return docs.error();
    for (const KnowledgeDocument& doc : *docs) {
      if (!doc.source.starts_with("config:")) continue;
      const bool listed = std::any_of(config.documents.begin(), config.documents.end(),
                                      [&](const KnowledgeDocumentConfig& c) { return c.name == doc.name; });
      if (!listed) retire.push_back(doc.id);
    }
    if (page * 500 >= total) break;
  }
  for (int64_t id : retire) {
    if (auto r = archive(id); !r.ok())
      note("archiving document " + std::to_string(id) + ": " + r.error().message);
  }
  if (!problems.empty()) return make_error(problems, -EINVAL);
  return {};
}

void KnowledgeService::search(const AgentKnowledgeConfig& agent, std::string_view query,
                              std::optional<unsigned> k, SearchDone done) {
  if (query.size() > kMaxQueryBytes) {
    done(make_error("q: longer than " + std::to_string(kMaxQueryBytes) + " bytes", -EINVAL));
    return;
  }
  if (!net::clean_text(query)) {
    done(make_error("q: not valid UTF-8 text", -EINVAL));
    return;
  }
  auto p = std::make_shared<Prepared>();
  SearchResult& res = p->result;
  res.relevance_threshold = agent.relevance_threshold;
  res.k = std::clamp<unsigned>(k.value_or(agent.top_k), 1, 10);
  KnowledgeRepo& repo = store_.knowledge();
  auto docs = current_documents(agent.documents);
  if (!docs.ok()) {
    done(docs.error());
    return;
  }
  p->documents = std::move(*docs);
  std::vector<int64_t> ids;
  for (const std::string& name : agent.documents) {
    auto it = std::find_if(p->documents.begin(), p->documents.end(),
                           [&](const KnowledgeDocument& d) { return d.name == name; });
    if (it == p->documents.end()) res.missing_documents.push_back(name);
  }
  for (const KnowledgeDocument& d : p->documents) {
    ids.push_back(d.id);
    res.chunks_searched += d.chunk_count;
  }
  const std::vector<std::string> terms = query_terms(query);
  if (terms.empty()) {
    done(make_error("q: no words to search for", -EINVAL));
    return;
  }
  auto match = bm25_match(terms);
  if (!match.ok()) {
    done(match.error());
    return;
  }
  auto hits = repo.search(*match, ids, kCandidates);
  if (!hits.ok()) {
    done(hits.error());
    return;
  }
  p->bm25 = std::move(*hits);
  if (agent.embeddings && embedder_ != nullptr && !ids.empty()) {
    p->model = agent.embeddings->model;
    std::weak_ptr<bool> alive = alive_;
    embedder_->embed(*agent.embeddings, {std::string(query)}, [this, alive, p, done](Result<Embeddings> v) {
      if (alive.expired() || !*alive.lock()) {
        done(make_error("knowledge service stopped", -ECANCELED));
        return;
      }
      finish_hybrid(p, std::move(v), done);
    });
    return;
  }
  if (agent.embeddings) {
    res.mode = "bm25_fallback";
    res.fallback_reason = ids.empty() ? "no documents to search" : "no embeddings client on this box";
  }
  finish_hybrid(p, Embeddings{}, done);  // no model: the vectors are not looked at
}

Result<std::vector<KnowledgeDocument>> KnowledgeService::current_documents(
    const std::vector<std::string>& names) {
  std::vector<KnowledgeDocument> out;
  for (const std::string& name : names) {
    auto it = current_.find(name);
    if (it == current_.end()) {
      auto d = store_.knowledge().current(name);
      if (!d.ok()) return d.error();
      if (current_.size() >= kMaxCachedTerms) current_.clear();
      it = current_.emplace(name, std::move(*d)).first;
    }
    if (it->second) out.push_back(*it->second);
  }
  return out;
}

Result<std::string> KnowledgeService::bm25_match(const std::vector<std::string>& terms) {
  KnowledgeRepo& repo = store_.knowledge();
  if (indexed_chunks_ < 0) {
    auto n = repo.indexed_chunks();
    if (!n.ok()) return n.error();
    indexed_chunks_ = *n;
  }
  std::string match;
  if (indexed_chunks_ <= kMatchBudget) {  // small: every word, the cost is bounded by the base's size
    for (const std::string& t : terms) match += (match.empty() ? "" : " OR ") + quote_term(t);
    return match;
  }
  const int64_t half = indexed_chunks_ / 2;
  // A count costs up to its cap in rows: first capped just over the budget (enough to choose among the
  // words that fit), counted further (to half the base) only when no word fits.
  auto count = [&](const std::string& t, int64_t cap) -> Result<int64_t> {
    auto it = term_counts_.find(t);
    // A cached count below its cap is exact; one at its cap is a lower bound, good for a cap no higher.
    if (it != term_counts_.end() && (it->second.first < it->second.second || cap <= it->second.second))
      return std::min(it->second.first, cap);
    auto c = store_.knowledge().match_count(quote_term(t), cap);
    if (!c.ok()) return c.error();
    if (term_counts_.size() >= kMaxCachedTerms) term_counts_.clear();
    term_counts_[t] = {*c, cap};
    return *c;
  };
  std::vector<std::pair<int64_t, const std::string*>> fits;
  std::vector<const std::string*> over;
  for (const std::string& t : terms) {
    auto n = count(t, kMatchBudget + 1);
    if (!n.ok()) return n.error();
    if (*n == 0) continue;
    if (*n > kMatchBudget) {
      over.push_back(&t);
    } else if (*n <= half) {
      fits.emplace_back(*n, &t);
    }
  }
  if (fits.empty()) {
    // Only words over the budget: the rarest of them that is in at most half the base, alone.
    for (const std::string* t : over) {
      auto n = count(*t, half + 1);
      if (!n.ok()) return n.error();
      if (*n <= half) fits.emplace_back(*n, t);
    }
    if (fits.empty()) return match;
  }
  std::sort(fits.begin(), fits.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : *a.second < *b.second;
  });
  if (fits.front().first > kMatchBudget) fits.resize(1);
  int64_t total = 0;
  for (const auto& [n, t] : fits) {
    if (!match.empty() && total + n > kMatchBudget) break;
    total += n;
    match += (match.empty() ? "" : " OR ") + quote_term(*t);
  }
  return match;
}

void KnowledgeService::finish_hybrid(const std::shared_ptr<Prepared>& p, Result<Embeddings> query_vector,
                                     const SearchDone& done) {
  SearchResult& res = p->result;
  struct Candidate {
    int64_t chunk_id = 0;
    const KnowledgeHit* hit = nullptr;
    size_t bm25_rank = 0;
    std::optional<double> cosine;
    size_t cosine_rank = 0;
  };
  std::vector<Candidate> cands;
  std::unordered_map<int64_t, size_t> by_chunk;  // chunk id → index in cands
  for (size_t i = 0; i < p->bm25.size(); ++i) {
    by_chunk.emplace(p->bm25[i].chunk.id, cands.size());
    cands.push_back(Candidate{p->bm25[i].chunk.id, &p->bm25[i], i, std::nullopt, 0});
  }
  bool hybrid = false;
  if (!p->model.empty()) {
    if (!query_vector.ok()) {
      res.mode = "bm25_fallback";
      res.fallback_reason = "the query could not be embedded: " + query_vector.error().message;
    } else if (query_vector->size() != 1 || (*query_vector)[0].empty()) {
      res.mode = "bm25_fallback";
      res.fallback_reason =
          "the embeddings client answered " + std::to_string(query_vector->size()) + " vectors for one query";
    } else {
      const std::vector<float>& q = (*query_vector)[0];
      double qn = 0;
      for (float x : q) qn += static_cast<double>(x) * x;
      qn = std::sqrt(qn);
      std::vector<std::pair<double, int64_t>> all;  // (cosine, chunk id)
      // The query is quantised like the chunks: an integer dot product vectorises (a float sum does not
      // without reassociation), 4-8 times faster at 1536 dimensions.
      float peak = 0;
      for (float x : q) peak = std::max(peak, std::fabs(x));
      const double qscale = qn > 0 && peak > 0 ? peak / qn / 127.0 : 1.0;
      std::vector<int8_t> qv(q.size());
      for (size_t i = 0; i < q.size(); ++i)
        qv[i] = qn > 0 ? static_cast<int8_t>(std::lround(static_cast<double>(q[i]) / qn / qscale)) : 0;
      for (const KnowledgeDocument& d : p->documents) {
        auto vs = vectors(p->model, d.id);
        if (!vs.ok()) {
          done(vs.error());
          return;
        }
        const DocVectors& dv = **vs;
        if (dv.dims != q.size()) continue;  // another model's size: as if not embedded
        for (size_t r = 0; r < dv.chunk_ids.size(); ++r) {
          const int8_t* v = dv.values.data() + r * dv.dims;
          int32_t dot = 0;
          for (size_t i = 0; i < dv.dims; ++i)
            dot += static_cast<int32_t>(qv[i]) * static_cast<int32_t>(v[i]);
          all.emplace_back(static_cast<double>(dot) * qscale * static_cast<double>(dv.scales[r]),
                           dv.chunk_ids[r]);
        }
      }
      hybrid = true;
      res.mode = "hybrid";
      res.chunks_without_vectors =
          std::max<int64_t>(0, res.chunks_searched - static_cast<int64_t>(all.size()));
      std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first > b.first : a.second < b.second;
      });
      for (size_t r = 0; r < all.size(); ++r) {
        auto it = by_chunk.find(all[r].second);
        if (it != by_chunk.end()) {
          cands[it->second].cosine = all[r].first;
          cands[it->second].cosine_rank = r;
        } else if (r < static_cast<size_t>(kCandidates)) {
          by_chunk.emplace(all[r].second, cands.size());
          cands.push_back(Candidate{all[r].second, nullptr, 0, all[r].first, r});
        }
      }
    }
  }
  // Scores (see the header): the mean of each ranking's relevance × rank weight.
  std::vector<std::pair<double, size_t>> scored;  // (score, index in cands)
  for (size_t i = 0; i < cands.size(); ++i) {
    const Candidate& c = cands[i];
    double sum = 0;
    if (c.hit != nullptr) sum += bm25_relevance(c.hit->bm25) * rank_weight(c.bm25_rank);
    int rankings = 1;
    if (hybrid && c.cosine) {
      sum += std::max(0.0, *c.cosine) * rank_weight(c.cosine_rank);
      rankings = 2;
    }
    const double score = std::clamp(sum / rankings, 0.0, 1.0);
    if (score >= res.relevance_threshold && score > 0) scored.emplace_back(score, i);
  }
  std::sort(scored.begin(), scored.end(), [&](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : cands[a.second].chunk_id < cands[b.second].chunk_id;
  });
  if (scored.size() > res.k) scored.resize(res.k);
  // Chunks only the vectors found have no text yet.
  std::vector<int64_t> need;
  for (const auto& [score, i] : scored) {
    if (cands[i].hit == nullptr) need.push_back(cands[i].chunk_id);
  }
  std::vector<KnowledgeChunk> fetched;
  if (!need.empty()) {
    auto r = store_.knowledge().chunks(need);
    if (!r.ok()) {
      done(r.error());
      return;
    }
    fetched = std::move(*r);
  }
  for (const auto& [score, i] : scored) {
    const Candidate& c = cands[i];
    const KnowledgeChunk* chunk = c.hit != nullptr ? &c.hit->chunk : nullptr;
    if (chunk == nullptr) {
      auto it = std::find_if(fetched.begin(), fetched.end(),
                             [&](const KnowledgeChunk& k) { return k.id == c.chunk_id; });
      if (it == fetched.end()) continue;  // archived between the two reads
      chunk = &*it;
    }
    SearchHit h;
    h.chunk_id = chunk->id;
    h.document_id = chunk->document_id;
    for (const KnowledgeDocument& d : p->documents) {
      if (d.id == chunk->document_id) h.document_name = d.name;
    }
    h.ordinal = chunk->ordinal;
    h.heading = chunk->heading;
    h.text = chunk->text;
    h.score = score;
    if (c.hit != nullptr) h.bm25 = c.hit->bm25;
    if (hybrid) h.cosine = c.cosine;
    res.hits.push_back(std::move(h));
  }
  done(std::move(res));
}

Result<std::shared_ptr<const KnowledgeService::DocVectors>> KnowledgeService::vectors(
    const std::string& model, int64_t document_id) {
  for (auto it = cache_.begin(); it != cache_.end(); ++it) {
    if ((*it)->document_id == document_id && (*it)->model == model) {
      cache_.splice(cache_.begin(), cache_, it);
      return cache_.front();
    }
  }
  auto vs = store_.knowledge().embeddings(document_id, model);
  if (!vs.ok()) return vs.error();
  auto dv = std::make_shared<DocVectors>();
  dv->model = model;
  dv->document_id = document_id;
  dv->dims = vs->empty() ? 0 : vs->front().values.size();
  for (const KnowledgeVector& v : *vs) {
    if (v.values.size() != dv->dims || dv->dims == 0) continue;
    double norm = 0;
    float peak = 0;
    for (float x : v.values) {
      norm += static_cast<double>(x) * x;
      peak = std::max(peak, std::fabs(x));
    }
    norm = std::sqrt(norm);
    if (norm <= 0 || peak <= 0) continue;
    // value ≈ q × scale, with |q| <= 127 for the largest component of the normalised vector.
    const double scale = peak / norm / 127.0;
    dv->chunk_ids.push_back(v.chunk_id);
    dv->scales.push_back(static_cast<float>(scale));
    for (float x : v.values)
      dv->values.push_back(static_cast<int8_t>(std::lround(static_cast<double>(x) / norm / scale)));
  }
  dv->bytes = sizeof(DocVectors) + model.size() + dv->values.size() +
              dv->chunk_ids.size() * (sizeof(int64_t) + sizeof(float));
  // A document too large for the cache is read for each search instead of evicting everything else.
  if (dv->bytes > kVectorCacheBytes) return std::shared_ptr<const DocVectors>(std::move(dv));
  cache_.push_front(dv);
  cache_bytes_ += dv->bytes;
  while (cache_bytes_ > kVectorCacheBytes && !cache_.empty()) {
    cache_bytes_ -= cache_.back()->bytes;
    cache_.pop_back();
  }
  return std::shared_ptr<const DocVectors>(std::move(dv));
}

void KnowledgeService::drop_vectors(int64_t document_id) {
  for (auto it = cache_.begin(); it != cache_.end();) {
    if ((*it)->document_id == document_id) {
      cache_bytes_ -= (*it)->bytes;
      it = cache_.erase(it);
    } else {
      ++it;
    }
  }
}

void KnowledgeService::schedule_pump(int64_t delay_ms) {
  if (pump_pending_ || !schedule_ || embedder_ == nullptr || agents_.empty()) return;
  pump_pending_ = true;
  std::weak_ptr<bool> alive = alive_;
  schedule_(delay_ms, [this, alive] {
    if (alive.expired() || !*alive.lock()) return;
    pump_pending_ = false;
    pump();
  });
}

bool KnowledgeService::pump() {
  if (in_flight_ || embedder_ == nullptr) return false;
  KnowledgeRepo& repo = store_.knowledge();
  for (const AgentKnowledgeConfig& agent : agents_) {
    auto docs = current_documents(agent.documents);
    if (!docs.ok()) {
      log::warning("knowledge: embedding: " + docs.error().message);
      schedule_pump(kFirstBackoffMs);
      return false;
    }
    std::vector<int64_t> ids;
    for (const KnowledgeDocument& d : *docs) ids.push_back(d.id);
    const std::string model = agent.embeddings->model;
    auto missing = repo.missing_embeddings(model, ids, static_cast<int64_t>(kEmbedBatch));
    if (!missing.ok()) {
      log::warning("knowledge: embedding: " + missing.error().message);
      schedule_pump(kFirstBackoffMs);
      return false;
    }
    if (missing->empty()) continue;
    std::vector<std::string> texts;
    std::vector<std::pair<int64_t, int64_t>> chunk_docs;  // (chunk id, document id)
    for (KnowledgeChunk& c : *missing) {
      chunk_docs.emplace_back(c.id, c.document_id);
      texts.push_back(std::move(c.text));
    }
    in_flight_ = true;
    std::weak_ptr<bool> alive = alive_;
    embedder_->embed(
        *agent.embeddings, std::move(texts), [this, alive, model, chunk_docs](Result<Embeddings> r) {
          if (alive.expired() || !*alive.lock()) return;
          in_flight_ = false;
          std::string why;
          if (!r.ok()) {
            why = r.error().message;
          } else if (r->size() != chunk_docs.size()) {
            why = "got " + std::to_string(r->size()) + " vectors for " + std::to_string(chunk_docs.size()) +
                  " texts";
          } else {
            for (const auto& v : *r) {
              if (v.empty() || v.size() != r->front().size()) why = "vectors of different sizes";
            }
          }
          if (why.empty()) {
            Status s = store_.database().transaction([&]() -> Status {
              for (size_t i = 0; i < chunk_docs.size(); ++i) {
                if (Status w = store_.knowledge().put_embedding(chunk_docs[i].first, model, (*r)[i]); !w.ok())
                  return w;
              }
              return {};
            });
            if (!s.ok()) why = s.error().message;
          }
          if (!why.empty()) {
            backoff_ms_ = backoff_ms_ == 0 ? kFirstBackoffMs : std::min(backoff_ms_ * 2, kMaxBackoffMs);
            log::warning("knowledge: embedding " + std::to_string(chunk_docs.size()) + " chunks with " +
                         model + " failed, retrying in " + std::to_string(backoff_ms_ / 1000) + " s: " + why);
            schedule_pump(backoff_ms_);
            return;
          }
          backoff_ms_ = 0;
          for (const auto& [chunk, doc] : chunk_docs) drop_vectors(doc);
          schedule_pump(0);
        });
    return true;
  }
  return false;
}

}  // namespace osvi::daemon::knowledge
