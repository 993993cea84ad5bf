// HttpLoop: a net::HttpClient (libcurl multi) driven by the control loop: curl's sockets become sd-event io
// sources and its timeout one timer source, so no curl thread exists.
//
// Threading: loop thread only. libcurl (and the TLS library it initialises) is set up on the first client()
// call, not at create(): an idle box does not pay for it. Shared by the upstream proxy and the webhook
// dispatcher, each with its own instance (their transfers never share a multi handle's limits).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "osvi/base/event_loop.hpp"
#include "osvi/net/http_client.hpp"
#include "osvi/result.hpp"

namespace osvi::daemon {

class HttpLoop {
 public:
  // what names the user in the log ("upstream", "webhooks").
  static Result<std::unique_ptr<HttpLoop>> create(EventLoop& loop, std::string what);
  ~HttpLoop();
  HttpLoop(const HttpLoop&) = delete;
  HttpLoop& operator=(const HttpLoop&) = delete;

  // The client, created on first use; null when libcurl could not be initialised (logged; the next call tries
  // again).
  net::HttpClient* client();

 private:
  HttpLoop(EventLoop& loop, std::string what) : loop_(loop), what_(std::move(what)) {}
  void watch(int fd, short events);
  void set_timer(int64_t timeout_ms);

  EventLoop& loop_;
  std::string what_;
  std::map<int, EventSource> io_;
  EventSource timer_;
  std::unique_ptr<net::HttpClient> client_;
};

}  // namespace osvi::daemon
