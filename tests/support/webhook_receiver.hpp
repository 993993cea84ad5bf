// WebhookReceiver: a threaded HTTP/1.1 receiver on loopback for webhook tests: answers 2xx, an error status,
// hangs, resets, redirects or answers slowly, as scripted, and records every request it read.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "osvi/result.hpp"

namespace osvi::test {

class WebhookReceiver {
 public:
  enum class Mode {
    reply,  // status + body after delay_ms (delay_ms > 0: "answers slowly")
    hang,   // reads the request and never answers (until stop()): the sender times out
    reset,  // reads the request and resets the connection (SO_LINGER 0 then close: RST, no answer)
    close,  // reads the request and closes cleanly without an answer (the sender sees an empty reply)
  };
  struct Reply {
    Mode mode = Mode::reply;
    int status = 200;
    std::string body = "ok";
    std::string location;  // sent as Location when not empty (redirects: status 301/302/303/307/308)
    int64_t delay_ms = 0;  // before the answer (reply) or before the reset / close

    static Reply with_status(int status, int64_t delay_ms = 0) {
      Reply r;
      r.status = status;
      r.delay_ms = delay_ms;
      return r;
    }
    static Reply slow(int64_t delay_ms) { return with_status(200, delay_ms); }
    static Reply redirect(int status, std::string location) {
      Reply r = with_status(status);
      r.location = std::move(location);
      return r;
    }
    static Reply of(Mode mode, int64_t delay_ms = 0) {
      Reply r;
      r.mode = mode;
      r.delay_ms = delay_ms;
      return r;
    }
  };
  struct Request {
    std::string method;
    std::string target;                                        // the request-target, e.g. "/hook?x=1"
    std::vector<std::pair<std::string, std::string>> headers;  // in order, names as sent
    std::string body;
    int64_t received_ms = 0;  // steady clock, when the whole request was read
    // The first header of that name (case-insensitive); "" when absent.
    std::string header(std::string_view name) const;
  };

  WebhookReceiver() = default;
  ~WebhookReceiver() { stop(); }
  WebhookReceiver(const WebhookReceiver&) = delete;
  WebhookReceiver& operator=(const WebhookReceiver&) = delete;

  // Listens on 127.0.0.1:port (0: any free port; a port used before: the same one again after stop(), for
  // "the receiver is down, then back").
  Status start(uint16_t port = 0);
  // Closes the listener and every connection (hanging ones too) and joins the threads. Requests stay
  // recorded.
  void stop();
  bool running() const { return listen_fd_ >= 0; }
  uint16_t port() const { return port_; }
  // "http://127.0.0.1:<port><path>".
  std::string url(std::string_view path = "/hook") const;

  // How requests are answered, first match wins: the reply set for the request's path (set_route, the path
  // without the query), then the next scripted reply (push, one per request), then the default.
  void set_default(Reply reply);
  void push(Reply reply);
  void set_route(const std::string& path, Reply reply);

  std::vector<Request> requests() const;
  size_t count() const;
  void clear();
  // Waits until at least n requests are recorded; false after timeout_ms.
  bool wait_for(size_t n, int64_t timeout_ms) const;

 private:
  void accept_loop();
  void serve(int fd);
  Reply choose(const std::string& target);

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<std::thread> workers_;
  std::vector<int> open_fds_;
  std::vector<Request> requests_;
  std::deque<Reply> script_;
  std::map<std::string, Reply> routes_;
  Reply default_;
};

}  // namespace osvi::test
