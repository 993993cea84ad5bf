// UpstreamEmbedder: the knowledge service's embeddings requests on the upstream model client.
#include "osvi/knowledge/upstream_embedder.hpp"

#include <cerrno>
#include <memory>
#include <string>
#include <utility>

namespace osvi::daemon::knowledge {

UpstreamEmbedder::~UpstreamEmbedder() {
  for (net::RequestId id : in_flight_) upstream_.cancel(id);
}

void UpstreamEmbedder::embed(const UpstreamEndpoint& endpoint, std::vector<std::string> texts, Done done) {
  net::EmbeddingsRequest request;
  request.endpoint = to_net_endpoint(endpoint);
  request.inputs = std::move(texts);
  // The id is known once embed() returns; the upstream never answers from inside the call (upstream.hpp).
  auto id = std::make_shared<net::RequestId>(0);
  auto finish = std::make_shared<Done>(std::move(done));
  net::EmbeddingsCallbacks cb;
  cb.on_done = [this, id, finish](std::vector<std::vector<float>> vectors) {
    in_flight_.erase(*id);
    (*finish)(std::move(vectors));
  };
  cb.on_error = [this, id, finish](const net::UpstreamError& e) {
    in_flight_.erase(*id);
    (*finish)(
        make_error("embeddings: " + e.message + " (" + std::string(net::to_string(e.kind)) + ")", -EIO));
  };
  *id = upstream_.embed(std::move(request), std::move(cb));
  in_flight_.insert(*id);
}

}  // namespace osvi::daemon::knowledge
