// UpstreamLoop: the upstream model proxy (net::HttpClient + net::OpenAiUpstream) driven by the control loop.
//
// Threading: loop thread only. libcurl's sockets become sd-event io sources and its timeout one timer
// source, so no curl thread exists (the design note's "no hidden threads").
#pragma once

#include <map>
#include <memory>

#include "osvi/daemon/event_loop.hpp"
#include "osvi/net/http_client.hpp"
#include "osvi/net/upstream_openai.hpp"
#include "osvi/result.hpp"

namespace osvi::daemon {

class UpstreamLoop {
 public:
  static Result<std::unique_ptr<UpstreamLoop>> create(EventLoop& loop, net::OpenAiOptions options = {});
  ~UpstreamLoop();
  UpstreamLoop(const UpstreamLoop&) = delete;
  UpstreamLoop& operator=(const UpstreamLoop&) = delete;

  net::Upstream& upstream() { return *upstream_; }
  net::HttpClient& client() { return *client_; }

 private:
  explicit UpstreamLoop(EventLoop& loop) : loop_(loop) {}
  void watch(int fd, short events);
  void set_timer(int64_t timeout_ms);

  EventLoop& loop_;
  std::map<int, EventSource> io_;
  EventSource timer_;
  std::unique_ptr<net::HttpClient> client_;
  std::unique_ptr<net::OpenAiUpstream> upstream_;
};

}  // namespace osvi::daemon
