// The daemon's Embedder: the knowledge service's embeddings through the upstream model client
// (POST {base_url}/embeddings of the agent's knowledge.embeddings endpoint).
#pragma once

#include <set>
#include <string>
#include <vector>

#include "osvi/knowledge/embedder.hpp"
#include "osvi/net/upstream.hpp"

namespace osvi::daemon::knowledge {

// Loop thread only, like the upstream it calls. Requests still out when it is destroyed are cancelled, so
// no `done` runs after that.
class UpstreamEmbedder final : public Embedder {
 public:
  explicit UpstreamEmbedder(net::Upstream& upstream) : upstream_(upstream) {}
  ~UpstreamEmbedder() override;
  UpstreamEmbedder(const UpstreamEmbedder&) = delete;
  UpstreamEmbedder& operator=(const UpstreamEmbedder&) = delete;

  void embed(const UpstreamEndpoint& endpoint, std::vector<std::string> texts, Done done) override;

 private:
  net::Upstream& upstream_;
  std::set<net::RequestId> in_flight_;
};

}  // namespace osvi::daemon::knowledge
