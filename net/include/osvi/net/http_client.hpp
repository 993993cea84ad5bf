// HttpClient: libcurl's multi interface driven by whoever owns the event loop (sd-event in osvid, poll() in
// tests): no threads, no loop knowledge, the owner watches the fds and the one timer the client asks for.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/net/target_guard.hpp"
#include "osvi/result.hpp"

namespace osvi::net {

class HttpClient {
 public:
  using Id = uint64_t;       // a transfer; 0 = none
  using TimerId = uint64_t;  // a one-shot timer; 0 = none

  struct Hooks {
    // Watch fd for POLLIN / POLLOUT (or both); 0 = stop watching it. Then call on_socket() when it is ready.
    std::function<void(int fd, short events)> watch;
    // Call on_timeout() once after timeout_ms (0 = as soon as possible); -1 = no timer needed. Each call
    // replaces the previous request.
    std::function<void(int64_t timeout_ms)> timer;
  };

  struct Part {  // one multipart/form-data field
    std::string name;
    std::string data;
    std::string filename;  // set for file parts
    std::string mime;      // set for file parts
  };

  struct Request {
    std::string method = "GET";
    std::string url;
    std::vector<std::string> headers;  // "Name: value"
    std::string body;                  // sent when multipart is empty and method is not GET
    std::vector<Part> multipart;       // non-empty: a multipart/form-data POST
    int64_t timeout_ms = 0;            // whole transfer; 0 = none
    int64_t connect_timeout_ms = 0;    // 0 = curl's default
    // Set: every address curl is about to connect to is checked first (refused ones are never connected:
    // Failure::refused), only http and https are spoken, and no proxy from the environment is used (it
    // would make the proxy the peer the guard checks). Redirects are never followed by the client in any
    // case; Done::redirect_url tells where a 3xx pointed.
    std::shared_ptr<const TargetGuard> guard;
  };

  enum class Failure {
    none,
    connect,  // nothing reached the server: refused, DNS, TLS handshake
    timeout,  // timeout_ms or connect_timeout_ms passed
    reset,    // the connection broke (or the server answered nothing) after the request was sent
    refused,  // the target guard refused every address of the host (Done::error names the last one)
    invalid,  // the request cannot be made at all: a malformed URL, a scheme not spoken
    other,
  };
  struct Done {
    Failure failure = Failure::none;
    int curl_code = 0;
    long status = 0;  // 0 when no response line arrived
    std::string error;
    std::string redirect_url;  // a 3xx's Location, made absolute; "" when none
  };

  struct Callbacks {
    // The request body has been handed to the socket. Fired when curl reports the whole upload sent
    // (CURLOPT_XFERINFOFUNCTION ulnow == ultotal), or, at the latest, when the first final response header
    // block is complete (bodiless requests, or an upload curl reported in one step). At most once.
    std::function<void()> on_sent;
    // The final (non-1xx) response header block is complete.
    std::function<void(long status, std::string_view content_type)> on_headers;
    std::function<void(std::string_view chunk)> on_body;
    // Terminal. Not called for a cancelled transfer.
    std::function<void(const Done&)> on_done;
  };

  // Cheap: libcurl (libcurl.so.4, opened with dlopen) is loaded by the first start(), so a box that never
  // makes an upstream request never maps it. A missing library is start()'s error (-ELIBACC), not a crash.
  static Result<std::unique_ptr<HttpClient>> create(Hooks hooks);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Starts a transfer. No callback runs from inside this call: curl only begins work in on_timeout /
  // on_socket. Safe to call from any callback.
  Result<Id> start(Request request, Callbacks callbacks);
  // Drops a transfer; none of its callbacks runs afterwards. Safe from any callback, including its own.
  void cancel(Id id);

  // One-shot timers on the same hook (watchdogs, retry delays), steady-clock based; run from on_timeout().
  TimerId schedule(int64_t delay_ms, std::function<void()> fn);
  void cancel_timer(TimerId id);

  // The owner's side of the hooks.
  void on_socket(int fd, short revents);
  void on_timeout();

  size_t active() const { return transfers_.size(); }

 private:
  struct Transfer;
  struct Impl;
  explicit HttpClient(Hooks hooks);
  void socket_action(int fd, int ev_bitmask);
  void after_action();
  void rearm();
  void release(Transfer& t);
  Status ensure_multi();  // loads libcurl once per process, then makes this client's multi handle

  Hooks hooks_;
  std::unique_ptr<Impl> impl_;
  std::map<Id, std::unique_ptr<Transfer>> transfers_;
  struct Timer {
    int64_t deadline;
    std::function<void()> fn;
  };
  std::map<TimerId, Timer> timers_;
  Id next_id_ = 1;
  TimerId next_timer_ = 1;
  int in_curl_ = 0;                    // >0 while libcurl is on the stack (its callbacks run)
  std::vector<Id> deferred_removals_;  // cancelled inside a curl callback
  std::vector<Id> deferred_adds_;      // started inside a curl callback
  int64_t curl_deadline_ = -1;         // absolute steady ms, -1 = none
  int64_t armed_ = -2;                 // the deadline last handed to hooks_.timer (-2 = never)
  bool destroying_ = false;
};

}  // namespace osvi::net
