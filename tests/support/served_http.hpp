// ServedHttp: an HttpServer on a thread of its own, standing in for the daemon's loop in the API tests.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "osvi/net/http_server.hpp"
#include "osvi/result.hpp"

namespace osvi::test {

class ServedHttp {
 public:
  ServedHttp() = default;
  ~ServedHttp() { stop(); }
  ServedHttp(const ServedHttp&) = delete;
  ServedHttp& operator=(const ServedHttp&) = delete;

  // Starts the server (port 0 in the options: any free one) and the thread that runs it. The thread is the
  // loop thread: handlers run there, under the lock that locked() takes.
  Status start(net::HttpServerOptions options, net::HttpHandler handler);
  // Joins the thread and closes the server; harmless when not started.
  void stop();
  uint16_t port() const { return server_ ? server_->port() : 0; }
  // The server itself, to be touched only inside locked() (or after stop()).
  net::HttpServer* server() const { return server_.get(); }
  // Runs fn while no handler runs: the test's way to touch what the handlers share (the store, fakes).
  void locked(const std::function<void()>& fn);

 private:
  std::unique_ptr<net::HttpServer> server_;
  std::mutex mu_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace osvi::test
