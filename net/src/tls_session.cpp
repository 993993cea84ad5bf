// Server TLS sessions over libssl/libcrypto opened with dlopen (tls_session.hpp): the function table,
// contexts from PEM text, non-blocking handshake, read and write.
#include "tls_session.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <climits>

#include "no_sigpipe.hpp"
#include "osvi/shared_library.hpp"

namespace osvi::net::tls {
namespace {

// libssl's and libcrypto's C API is their ABI (sonames .so.3), so functions are bound directly, as
// digest.cpp does. The macros used (SSL_CTX_set_mode, SSL_CTX_add_extra_chain_cert,
// SSL_CTX_set_min_proto_version) are SSL_CTX_ctrl calls, written out below.
struct Api {
  decltype(&::TLS_server_method) server_method = nullptr;
  decltype(&::SSL_CTX_new) ctx_new = nullptr;
  decltype(&::SSL_CTX_free) ctx_free = nullptr;
  decltype(&::SSL_CTX_ctrl) ctx_ctrl = nullptr;
  decltype(&::SSL_CTX_use_certificate) use_certificate = nullptr;
  decltype(&::SSL_CTX_use_PrivateKey) use_private_key = nullptr;
  decltype(&::SSL_CTX_check_private_key) check_private_key = nullptr;
  decltype(&::SSL_new) ssl_new = nullptr;
  decltype(&::SSL_free) ssl_free = nullptr;
  decltype(&::SSL_set_fd) set_fd = nullptr;
  decltype(&::SSL_accept) accept = nullptr;
  decltype(&::SSL_read) read = nullptr;
  decltype(&::SSL_write) write = nullptr;
  decltype(&::SSL_get_error) get_error = nullptr;
  decltype(&::SSL_pending) pending = nullptr;
  decltype(&::SSL_shutdown) shutdown = nullptr;
  decltype(&::BIO_new_mem_buf) bio_new_mem_buf = nullptr;
  decltype(&::BIO_free) bio_free = nullptr;
  decltype(&::PEM_read_bio_X509) read_x509 = nullptr;
  decltype(&::PEM_read_bio_PrivateKey) read_key = nullptr;
  decltype(&::X509_free) x509_free = nullptr;
  decltype(&::EVP_PKEY_free) pkey_free = nullptr;
  decltype(&::ERR_clear_error) err_clear = nullptr;
};

using Loaded = dl::Table<Api>;

Loaded open_tls() {
  Loaded l = dl::load_table<Api>("libssl.so.3", "the TLS library (OpenSSL libssl)", [](void* h, Api& a) {
    return dl::bind(h, "TLS_server_method", a.server_method) && dl::bind(h, "SSL_CTX_new", a.ctx_new) &&
           dl::bind(h, "SSL_CTX_free", a.ctx_free) && dl::bind(h, "SSL_CTX_ctrl", a.ctx_ctrl) &&
           dl::bind(h, "SSL_CTX_use_certificate", a.use_certificate) &&
           dl::bind(h, "SSL_CTX_use_PrivateKey", a.use_private_key) &&
           dl::bind(h, "SSL_CTX_check_private_key", a.check_private_key) &&
           dl::bind(h, "SSL_new", a.ssl_new) && dl::bind(h, "SSL_free", a.ssl_free) &&
           dl::bind(h, "SSL_set_fd", a.set_fd) && dl::bind(h, "SSL_accept", a.accept) &&
           dl::bind(h, "SSL_read", a.read) && dl::bind(h, "SSL_write", a.write) &&
           dl::bind(h, "SSL_get_error", a.get_error) && dl::bind(h, "SSL_pending", a.pending) &&
           dl::bind(h, "SSL_shutdown", a.shutdown);
  });
  if (!l.status) return l;
  l.status = dl::load_library("libcrypto.so.3", "the cryptography library", [&a = l.api](void* h) {
    return dl::bind(h, "BIO_new_mem_buf", a.bio_new_mem_buf) && dl::bind(h, "BIO_free", a.bio_free) &&
           dl::bind(h, "PEM_read_bio_X509", a.read_x509) &&
           dl::bind(h, "PEM_read_bio_PrivateKey", a.read_key) && dl::bind(h, "X509_free", a.x509_free) &&
           dl::bind(h, "EVP_PKEY_free", a.pkey_free) && dl::bind(h, "ERR_clear_error", a.err_clear);
  });
  return l;
}

const Loaded& loaded() {
  static const Loaded l = open_tls();  // thread-safe static: the first caller opens
  return l;
}

const Api& api() {
  return loaded().api;
}

Error rejected(const std::string& what) {
  api().err_clear();
  return make_error(what, -EKEYREJECTED);
}

}  // namespace

Status available() {
  return loaded().status;
}

Result<std::unique_ptr<Context>> Context::create(const std::string& cert_pem, const std::string& key_pem) {
  if (auto s = available(); !s) return s.error();
  const Api& a = api();
  if (cert_pem.size() > INT_MAX || key_pem.size() > INT_MAX)
    return rejected("TLS certificate or key too large");
  SSL_CTX* ctx = a.ctx_new(a.server_method());
  if (!ctx) return make_error("SSL_CTX_new failed", -ENOMEM);
  std::unique_ptr<Context> self(new Context(ctx));
  // TLS 1.2 at least; partial writes so a full socket takes what it can; buffers released while idle.
  a.ctx_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_2_VERSION, nullptr);
  a.ctx_ctrl(ctx, SSL_CTRL_MODE,
             SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS,
             nullptr);

  BIO* cert_bio = a.bio_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  if (!cert_bio) return make_error("BIO_new_mem_buf failed", -ENOMEM);
  std::unique_ptr<BIO, decltype(a.bio_free)> cert_owner(cert_bio, a.bio_free);
  X509* leaf = a.read_x509(cert_bio, nullptr, nullptr, nullptr);
  if (!leaf) return rejected("the TLS certificate is not a PEM certificate");
  const int used = a.use_certificate(ctx, leaf);
  a.x509_free(leaf);  // the context holds its own reference
  if (used != 1) return rejected("the TLS certificate was refused");
  // The rest of the PEM is the chain, in order; the context takes each certificate it accepts.
  while (X509* extra = a.read_x509(cert_bio, nullptr, nullptr, nullptr)) {
    if (a.ctx_ctrl(ctx, SSL_CTRL_EXTRA_CHAIN_CERT, 0, extra) != 1) {
      a.x509_free(extra);
      return rejected("a chain certificate was refused");
    }
  }
  a.err_clear();  // the end of the PEM is reported as an error

  BIO* key_bio = a.bio_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  if (!key_bio) return make_error("BIO_new_mem_buf failed", -ENOMEM);
  std::unique_ptr<BIO, decltype(a.bio_free)> key_owner(key_bio, a.bio_free);
  EVP_PKEY* key = a.read_key(key_bio, nullptr, nullptr, nullptr);
  if (!key) return rejected("the TLS key is not a PEM private key");
  const int key_used = a.use_private_key(ctx, key);
  a.pkey_free(key);
  if (key_used != 1 || a.check_private_key(ctx) != 1)
    return rejected("the TLS certificate and key were refused (not a matching certificate and private key)");
  return self;
}

Context::~Context() {
  api().ctx_free(static_cast<SSL_CTX*>(ctx_));
}

Result<std::unique_ptr<Session>> Context::accept(int fd) {
  const Api& a = api();
  SSL* ssl = a.ssl_new(static_cast<SSL_CTX*>(ctx_));
  if (!ssl) return make_error("SSL_new failed", -ENOMEM);
  std::unique_ptr<Session> s(new Session(ssl));
  if (a.set_fd(ssl, fd) != 1) return make_error("SSL_set_fd failed", -EIO);
  return s;
}

Session::~Session() {
  api().ssl_free(static_cast<SSL*>(ssl_));
}

ssize_t Session::io_result(int r) {
  const Api& a = api();
  if (r > 0) {
    want_ = Want::nothing;
    return r;
  }
  const int e = a.get_error(static_cast<SSL*>(ssl_), r);
  if (e == SSL_ERROR_WANT_READ) {
    want_ = Want::read;
    return kAgain;
  }
  if (e == SSL_ERROR_WANT_WRITE) {
    want_ = Want::write;
    return kAgain;
  }
  want_ = Want::nothing;
  a.err_clear();  // the error queue is per thread: leave nothing for the next user of OpenSSL
  return e == SSL_ERROR_ZERO_RETURN ? kClosed : kFailed;
}

Result<bool> Session::handshake() {
  NoSigpipe guard;  // OpenSSL writes through its socket BIO, without MSG_NOSIGNAL
  const int r = api().accept(static_cast<SSL*>(ssl_));
  if (r == 1) {
    want_ = Want::nothing;
    return true;
  }
  if (io_result(r) == kAgain) return false;
  return make_error("TLS handshake failed", -EPROTO);
}

ssize_t Session::read(char* buf, size_t len) {
  NoSigpipe guard;
  return io_result(
      api().read(static_cast<SSL*>(ssl_), buf, static_cast<int>(std::min<size_t>(len, INT_MAX))));
}

ssize_t Session::write(const char* buf, size_t len) {
  NoSigpipe guard;
  return io_result(
      api().write(static_cast<SSL*>(ssl_), buf, static_cast<int>(std::min<size_t>(len, INT_MAX))));
}

size_t Session::pending() const {
  const int n = api().pending(static_cast<SSL*>(ssl_));
  return n > 0 ? static_cast<size_t>(n) : 0;
}

void Session::shutdown() {
  NoSigpipe guard;
  api().shutdown(static_cast<SSL*>(ssl_));
  api().err_clear();
}

}  // namespace osvi::net::tls
