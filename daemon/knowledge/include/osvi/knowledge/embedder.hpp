// The embeddings client the knowledge service calls: an interface, so the daemon plugs in the upstream's
// POST {base_url}/embeddings and the tests a deterministic fake.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "osvi/config/config.hpp"
#include "osvi/result.hpp"

namespace osvi::daemon::knowledge {

using Embeddings = std::vector<std::vector<float>>;

class Embedder {
 public:
  using Done = std::function<void(Result<Embeddings>)>;
  virtual ~Embedder() = default;
  // On the loop thread. done is called once, on the loop, with one vector per text in the order given
  // (the service checks the count and that every vector has the same, non-zero length); it may be called
  // before embed() returns. The endpoint names the model (endpoint.model), where and how to reach it; it is
  // valid only during the call (an implementation copies what it keeps).
  virtual void embed(const UpstreamEndpoint& endpoint, std::vector<std::string> texts, Done done) = 0;
};

}  // namespace osvi::daemon::knowledge
