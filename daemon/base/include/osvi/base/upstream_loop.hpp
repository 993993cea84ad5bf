// UpstreamLoop: the upstream model proxy (net::HttpClient + net::OpenAiUpstream) driven by the control loop.
//
// Threading: loop thread only. libcurl's sockets become sd-event io sources and its timeout one timer
// source, so no curl thread exists (the design note's "no hidden threads"). libcurl (and the TLS library it
// initialises) is set up on the first request, not at start: an idle box does not pay for it.
#pragma once

#include <map>
#include <memory>

#include "osvi/base/event_loop.hpp"
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
  void cancel(net::RequestId id) override;
  bool breaker_open(std::string_view base_url) const override;
  // Empty until the first request: asking does not set libcurl up.
  std::vector<net::BreakerState> breakers() const override;

 private:
  UpstreamLoop(EventLoop& loop, net::OpenAiOptions options) : loop_(loop), options_(std::move(options)) {}
  // The proxy, created on first use; null when libcurl could not be initialised (logged).
  net::Upstream* ensure();
  void watch(int fd, short events);
  void set_timer(int64_t timeout_ms);

  EventLoop& loop_;
  net::OpenAiOptions options_;
  std::map<int, EventSource> io_;
  EventSource timer_;
  std::unique_ptr<net::HttpClient> client_;
  std::unique_ptr<net::OpenAiUpstream> upstream_;
};

}  // namespace osvi::daemon
