// UpstreamLoop: the upstream model proxy (net::HttpClient + net::OpenAiUpstream) driven by the control loop.
//
// Threading: loop thread only. The client runs on an HttpLoop (http_loop.hpp: curl's sockets and timer as
// sd-event sources, no curl thread); libcurl is set up on the first request, not at start.
#pragma once

#include <memory>

#include "osvi/base/event_loop.hpp"
#include "osvi/base/http_loop.hpp"
#include "osvi/net/http_client.hpp"
#include "osvi/net/upstream_openai.hpp"
#include "osvi/result.hpp"

namespace osvi::daemon {

class UpstreamLoop final : public net::Upstream {
 public:
  static Result<std::unique_ptr<UpstreamLoop>> create(EventLoop& loop, net::OpenAiOptions options = {});
  ~UpstreamLoop() override;
  UpstreamLoop(const UpstreamLoop&) = delete;
  UpstreamLoop& operator=(const UpstreamLoop&) = delete;

  net::Upstream& upstream() { return *this; }

  net::RequestId transcribe(net::SttRequest request, net::SttCallbacks callbacks) override;
  net::RequestId chat(net::ChatRequest request, net::ChatCallbacks callbacks) override;
  net::RequestId speak(net::TtsRequest request, net::TtsCallbacks callbacks) override;
  net::RequestId embed(net::EmbeddingsRequest request, net::EmbeddingsCallbacks callbacks) override;
  void cancel(net::RequestId id) override;
  bool breaker_open(std::string_view base_url) const override;
  // Empty until the first request: asking does not set libcurl up.
  std::vector<net::BreakerState> breakers() const override;

 private:
  UpstreamLoop(EventLoop& loop, net::OpenAiOptions options) : loop_(loop), options_(std::move(options)) {}
  // The proxy, created on first use; null when libcurl could not be initialised (logged).
  net::Upstream* ensure();

  EventLoop& loop_;
  net::OpenAiOptions options_;
  std::unique_ptr<HttpLoop> http_;
  std::unique_ptr<net::OpenAiUpstream> upstream_;
};

}  // namespace osvi::daemon
