// The knowledge base retrieval set (tests/data/knowledge/) and the embedders the tests and the bench use.
#pragma once

#include <cstddef>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "osvi/knowledge/embedder.hpp"
#include "osvi/knowledge/knowledge_service.hpp"

namespace osvi::test {

struct EvalDocument {
  std::string name;  // the file's stem
  std::string format;
  bool header = false;
  std::string content;
};

struct EvalQuestion {
  std::string question;
  std::string document;  // the name of the document holding the answer
  std::string phrase;    // the right chunk contains it
};

// The sample documents (seven files) and the questions of tests/data/knowledge/questions.tsv.
std::vector<EvalDocument> eval_documents();
std::vector<EvalQuestion> eval_questions();

// Ingests every sample document; false (with a gtest failure) on an error.
bool ingest_eval_documents(daemon::knowledge::KnowledgeService& service);

// True when one of the first k hits is in the question's document and contains its phrase.
bool eval_hit(const daemon::knowledge::SearchResult& result, const EvalQuestion& q, size_t k);

// Answers with daemon::knowledge::stand_in_embedding (a hashed bag of words and trigrams, NOT a semantic
// model). Synchronous by default; queued until deliver() when deferred; fails every request while failing.
class StandInEmbedder : public daemon::knowledge::Embedder {
 public:
  explicit StandInEmbedder(size_t dims = 256) : dims_(dims) {}
  void embed(const daemon::UpstreamEndpoint& endpoint, std::vector<std::string> texts, Done done) override;
  void deliver();  // answers every deferred request, in order
  bool deferred = false;
  bool failing = false;
  size_t requests = 0;
  size_t texts_embedded = 0;
  std::vector<std::string> models;  // endpoint.model of each request

 private:
  size_t dims_;
  std::deque<std::pair<std::vector<std::string>, Done>> queue_;
};

}  // namespace osvi::test
