// ServedHttp: the API tests' server thread (served_http.hpp).
#include "served_http.hpp"

#include <poll.h>

#include <algorithm>

namespace osvi::test {

Status ServedHttp::start(net::HttpServerOptions options, net::HttpHandler handler) {
  auto server = net::HttpServer::start(std::move(options), std::move(handler));
  if (!server.ok()) return server.error();
  server_ = std::move(*server);
  stop_ = false;
  thread_ = std::thread([this] {
    while (!stop_) {
      // As the daemon's loop does: the server's own deadline (0 while an answer waits for run()).
      const int wait = static_cast<int>(std::min<uint64_t>(server_->timeout_ms().value_or(10), 10));
      pollfd p{server_->poll_fd(), POLLIN, 0};
      poll(&p, 1, wait);
      std::lock_guard<std::mutex> lock(mu_);
      server_->run();
    }
  });
  return {};
}

void ServedHttp::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

void ServedHttp::locked(const std::function<void()>& fn) {
  std::lock_guard<std::mutex> lock(mu_);
  fn();
}

}  // namespace osvi::test
