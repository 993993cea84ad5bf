// PollDriver: runs an HttpClient on a bare poll() for tests and small tools (osvid drives it from sd-event).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>

#include "osvi/net/http_client.hpp"

namespace osvi::net {

class PollDriver {
 public:
  static Result<std::unique_ptr<PollDriver>> create();
  HttpClient& client() { return *client_; }

  // Turns the loop until done() holds (true) or timeout_ms passes (false). done is checked before each wait.
  bool run_until(const std::function<bool()>& done, int64_t timeout_ms);
  // Turns the loop for duration_ms.
  void run_for(int64_t duration_ms);

 private:
  PollDriver() = default;
  void turn(int64_t max_wait_ms);

  std::unique_ptr<HttpClient> client_;
  std::map<int, short> fds_;
  int64_t timer_deadline_ = -1;  // absolute steady ms
};

}  // namespace osvi::net
