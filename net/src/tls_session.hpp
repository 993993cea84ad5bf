// Server-side TLS for the local HTTP server: OpenSSL's libssl opened with dlopen only when HTTPS is
// configured.
//
// The same TLS stack libcurl and libmosquitto already use, so HTTPS adds no library of its own to the box,
// and a plain-HTTP daemon (the shipped configuration) maps none of it (docs/architecture.md, issue 18).
// Sessions are non-blocking: every call says whether it needs the socket readable or writable before trying
// again.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "osvi/result.hpp"

namespace osvi::net::tls {

// Whether libssl.so.3 and every function used here can be loaded (opens it on the first call).
Status available();

class Session;

// A certificate (with its chain, in PEM order) and its private key, checked to be a pair.
class Context {
 public:
  // -EKEYREJECTED when the PEM does not parse or the key is not the certificate's; kLibraryMissing when
  // libssl is not there.
  static Result<std::unique_ptr<Context>> create(const std::string& cert_pem, const std::string& key_pem);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // A server session on the connected, non-blocking socket `fd` (not owned).
  Result<std::unique_ptr<Session>> accept(int fd);

 private:
  explicit Context(void* ctx) : ctx_(ctx) {}
  void* ctx_;  // SSL_CTX*
};

class Session {
 public:
  // What a call needs before it can make progress, when it returned none.
  enum class Want { nothing, read, write };
  // Results of read()/write(): bytes moved (> 0), or one of these.
  static constexpr ssize_t kAgain = -1;  // see want()
  static constexpr ssize_t kClosed = 0;  // the peer closed (read), or the session broke (either)
  static constexpr ssize_t kFailed = -2;

  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Runs the handshake: true once it is complete; false while it needs I/O (want()); an error when it failed.
  Result<bool> handshake();
  ssize_t read(char* buf, size_t len);
  ssize_t write(const char* buf, size_t len);
  // Decrypted bytes waiting inside the session: the socket may not wake the loop for them.
  size_t pending() const;
  Want want() const { return want_; }
  // Sends close_notify once, without waiting for the peer's.
  void shutdown();

 private:
  friend class Context;
  explicit Session(void* ssl) : ssl_(ssl) {}
  ssize_t io_result(int r);
  void* ssl_;  // SSL*
  Want want_ = Want::nothing;
};

}  // namespace osvi::net::tls
