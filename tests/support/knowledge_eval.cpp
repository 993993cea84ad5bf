// The knowledge retrieval set read from tests/data/knowledge/, and the stand-in embedder.
#include "knowledge_eval.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "osvi/knowledge/query.hpp"

namespace osvi::test {
namespace {

std::string data_dir() {
  return std::string(OSVI_SOURCE_DIR) + "/tests/data/knowledge/";
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::vector<EvalDocument> eval_documents() {
  std::vector<EvalDocument> out = {
      {"opening_hours", "txt", false, {}}, {"fees", "txt", false, {}},     {"product_faq", "txt", false, {}},
      {"kyc_policy", "txt", false, {}},    {"locations", "csv", true, {}}, {"prices", "csv", true, {}},
      {"atm_locations", "csv", false, {}},
  };
  for (EvalDocument& d : out) d.content = slurp(data_dir() + d.name + "." + d.format);
  return out;
}

std::vector<EvalQuestion> eval_questions() {
  std::vector<EvalQuestion> out;
  std::ifstream in(data_dir() + "questions.tsv");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t a = line.find('\t');
    const size_t b = line.find('\t', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    out.push_back({line.substr(0, a), line.substr(a + 1, b - a - 1), line.substr(b + 1)});
  }
  return out;
}

bool ingest_eval_documents(daemon::knowledge::KnowledgeService& service) {
  for (const EvalDocument& d : eval_documents()) {
    daemon::knowledge::IngestRequest r;
    r.name = d.name;
    r.format = d.format;
    r.has_header = d.header;
    r.content = d.content;
    auto res = service.ingest(std::move(r));
    if (!res.ok()) {
      ADD_FAILURE() << d.name << ": " << res.error().message;
      return false;
    }
  }
  return true;
}

bool eval_hit(const daemon::knowledge::SearchResult& result, const EvalQuestion& q, size_t k) {
  for (size_t i = 0; i < result.hits.size() && i < k; ++i) {
    const auto& h = result.hits[i];
    if (h.document_name == q.document && h.text.find(q.phrase) != std::string::npos) return true;
  }
  return false;
}

void StandInEmbedder::embed(const daemon::UpstreamEndpoint& endpoint, std::vector<std::string> texts,
                            Done done) {
  ++requests;
  models.push_back(endpoint.model);
  if (deferred) {
    queue_.emplace_back(std::move(texts), std::move(done));
    return;
  }
  if (failing) {
    done(make_error("embeddings upstream unreachable (test)", -ECONNREFUSED));
    return;
  }
  daemon::knowledge::Embeddings out;
  for (const std::string& t : texts) out.push_back(daemon::knowledge::stand_in_embedding(t, dims_));
  texts_embedded += texts.size();
  done(std::move(out));
}

void StandInEmbedder::deliver() {
  while (!queue_.empty()) {
    auto [texts, done] = std::move(queue_.front());
    queue_.pop_front();
    if (failing) {
      done(make_error("embeddings upstream unreachable (test)", -ECONNREFUSED));
      continue;
    }
    daemon::knowledge::Embeddings out;
    for (const std::string& t : texts) out.push_back(daemon::knowledge::stand_in_embedding(t, dims_));
    texts_embedded += texts.size();
    done(std::move(out));
  }
}

}  // namespace osvi::test
