// Local HTTP/1.1 server (the project's own: http_parser.hpp for the requests, libssl opened only for HTTPS),
// driven by the owner's event loop: no threads of its own.
//
// Threading: every member function, and every handler and HttpReply, runs on the one thread that
// calls run(). The owner watches poll_fd() for input and calls run() when it is readable or when
// timeout_ms() expires.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "osvi/result.hpp"

namespace osvi::net {

class HttpBodySink;

struct HttpRequest {
  std::string method;
  std::string path;  // without the query string; decoded by net::url_unescape (%00 arrives as 0xC0)
  std::string body;
  std::string remote;  // "ip:port" of the client
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<std::pair<std::string, std::string>> params;  // from the route pattern, e.g. {id}
  // Set when HttpServerOptions::body_sink took the body: every byte went to it as it arrived, `body` is
  // empty. The handler finishes the sink's work (and reads its verdict) before answering.
  std::shared_ptr<HttpBodySink> body_sink;
  uint64_t body_bytes = 0;  // bytes of body received (kept in `body` or given to the sink)

  // Header names compare case-insensitively, as HTTP says.
  std::optional<std::string_view> header(std::string_view name) const;
  std::optional<std::string_view> query_param(std::string_view name) const;
  std::optional<std::string_view> param(std::string_view name) const;
};

// A request body consumed as it arrives (a CSV upload parsed row by row) instead of being gathered into
// HttpRequest::body, so its size costs no memory here. Asked for by HttpServerOptions::body_sink once the
// request head is in; runs on the server's thread like the handler.
class HttpBodySink {
 public:
  static constexpr uint64_t kDefaultMaxBytes = 64ull * 1024 * 1024;
  virtual ~HttpBodySink() = default;
  // The body limit of this request, in place of HttpServerOptions::max_body_bytes: a larger Content-Length
  // is answered 413 from the head, a body that grows past it 413 once it has been read (the sink is then
  // dropped unfinished, the handler never called).
  virtual uint64_t max_bytes() const { return kDefaultMaxBytes; }
  // The next piece of the body, in order, as it arrives from the socket (any size, any split). An error
  // refuses the rest: nothing more is written, the rest of the body is read and dropped (so the client can
  // read the answer), and the handler is called as usual to answer from what the sink knows.
  virtual Status write(std::string_view data) = 0;
};

// A response body read from an open file as the socket drains (sendfile(2); read in blocks over TLS), so
// serving a file costs no memory in proportion to its size. Owns the descriptor; the server closes it when
// the response is done.
class HttpFileBody {
 public:
  HttpFileBody(int fd, uint64_t offset, uint64_t size) : fd_(fd), offset_(offset), size_(size) {}
  HttpFileBody(HttpFileBody&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), offset_(other.offset_), size_(other.size_) {}
  HttpFileBody& operator=(HttpFileBody&& other) noexcept;
  HttpFileBody(const HttpFileBody&) = delete;
  HttpFileBody& operator=(const HttpFileBody&) = delete;
  ~HttpFileBody();

  int fd() const { return fd_; }
  uint64_t offset() const { return offset_; }
  uint64_t size() const { return size_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
  uint64_t offset_, size_;
};

struct HttpResponse {
  int status = 200;
  std::string body;  // ignored when `file` is set
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::optional<HttpFileBody> file;
};

// A 200 response whose body is the whole regular file at `path`, answered from its descriptor (nothing of
// it is read here). -ENOENT when it does not exist; -EISDIR/-EINVAL when it is not a regular file.
Result<HttpResponse> file_response(const std::string& path, std::string content_type);

class HttpServer;
class HttpStream;
class UpgradedSocket;

// One-shot answer to a request. Send it at once or keep it and send later from the loop thread
// (the connection is suspended meanwhile). Dropping it unsent answers 500.
class HttpReply {
 public:
  struct Conn;
  HttpReply() = default;
  explicit HttpReply(std::shared_ptr<Conn> conn) : conn_(std::move(conn)) {}
  HttpReply(HttpReply&&) noexcept = default;
  HttpReply& operator=(HttpReply&& other) noexcept;
  HttpReply(const HttpReply&) = delete;
  HttpReply& operator=(const HttpReply&) = delete;
  ~HttpReply();

  void send(HttpResponse response);
  // Answers with a streamed body instead (status and headers now, the body as the handle writes it),
  // buffering at most max_buffered bytes. Counts as the answer: a later send() is a no-op. When the reply
  // was already answered, or the client has gone, the handle comes back closed.
  HttpStream stream(int status, std::string content_type,
                    std::vector<std::pair<std::string, std::string>> headers, size_t max_buffered);
  // False once the client has gone away; sending is then a no-op.
  bool connected() const;
  // Switches the connection to another protocol (a WebSocket): `head` (status 101 and the protocol's
  // headers; its body is ignored) is sent, then `on_upgraded` gets the socket, from inside run(). When the
  // client goes before the head is sent, `on_upgraded` is never called. Counts as the answer.
  void upgrade(HttpResponse head, std::function<void(UpgradedSocket)> on_upgraded);

 private:
  std::shared_ptr<Conn> conn_;
};

// The socket of a connection switched to another protocol (HttpReply::upgrade). The server keeps the
// descriptor (it closes it itself): this handle reads and writes it and gives it back by close() or by
// being destroyed. The connection still counts against the server's caps while the handle lives; no HTTP
// deadline applies to it any more (the protocol on top keeps its own). Its send buffer is small (64 KiB, as
// a stream's), so a peer that stops reading fills the application's bounded buffer soon. Loop thread only.
class UpgradedSocket {
 public:
  struct State;
  UpgradedSocket() = default;
  explicit UpgradedSocket(std::shared_ptr<State> state) : s_(std::move(state)) {}
  UpgradedSocket(UpgradedSocket&&) noexcept = default;
  UpgradedSocket& operator=(UpgradedSocket&& other) noexcept;
  UpgradedSocket(const UpgradedSocket&) = delete;
  UpgradedSocket& operator=(const UpgradedSocket&) = delete;
  ~UpgradedSocket();

  // The non-blocking socket to read and write (for HTTPS, the application's end of a socket pair the server
  // relays through TLS); -1 once closed.
  int fd() const;
  // Bytes the client sent after its request head that the server had already read: they come first.
  std::string take_early_bytes();
  // Gives the socket back (the server closes it; over HTTPS once the relay has sent what it holds).
  // Idempotent.
  void close();
  // Called once when the server is destroyed with this socket open, just before it closes it: stop watching
  // fd() now. Not called after close() or the handle's destruction.
  void on_server_gone(std::function<void()> callback);

 private:
  std::shared_ptr<State> s_;
};

// A response body written piece by piece while the connection stays open (server-sent events), sent with
// chunked transfer encoding. The handle is the application's; the bytes it writes wait in a buffer of its
// own, bounded by the cap given at creation, until the socket takes them. While the buffer is empty the
// connection is parked (no loop work, no timeout) and its socket watched for a hang-up, so a client that
// goes away is noticed at once. While the buffer holds bytes the connection is sending, and the inactivity
// timeout (HttpServerOptions::connection_timeout_s) ends it when the client
// takes nothing for that long; a client that reads, but more slowly than the application writes, is
// bounded by the cap instead: write() refuses what would not fit and the application decides (drop it).
// Loop thread only, like everything here.
class HttpStream {
 public:
  // Why a stream ended, for on_closed.
  enum class End {
    finished,       // close() and every byte written was sent
    client_gone,    // the client closed the connection or it broke
    timed_out,      // nothing taken by the client for connection_timeout_s with bytes waiting
    server_stopped  // the server was destroyed
  };

  HttpStream() = default;
  HttpStream(HttpStream&& other) noexcept = default;
  HttpStream& operator=(HttpStream&& other) noexcept;
  HttpStream(const HttpStream&) = delete;
  HttpStream& operator=(const HttpStream&) = delete;
  // Closes the stream (the bytes buffered are still sent) and forgets on_closed.
  ~HttpStream();

  // Appends all of `bytes` to the buffer, or nothing: false when the stream is closed (by close(), the
  // client or the server) or when the buffer would exceed its cap, so an event is never sent in part.
  bool write(std::string_view bytes);
  // Ends the body once the buffer has drained (the last chunk, then the connection may be kept alive).
  // Idempotent; write() fails from then on.
  void close();
  // False once closed by close(), by the client or by the server.
  bool connected() const;
  // Bytes written and not yet handed to the socket.
  size_t buffered() const;
  // The cap of buffered(), fixed at creation.
  size_t capacity() const;
  // Called once, from the loop, when the connection is done with the stream (see End); not called after
  // the handle is destroyed, nor when the stream was already over when it was set (check connected()).
  // It may destroy this handle.
  void on_closed(std::function<void(End)> callback);

 private:
  friend class HttpReply;
  explicit HttpStream(std::shared_ptr<HttpReply::Conn> conn) : conn_(std::move(conn)) {}
  std::shared_ptr<HttpReply::Conn> conn_;
};

using HttpHandler = std::function<void(HttpRequest&, HttpReply)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";  // IPv4/IPv6 literal or "localhost"
  uint16_t port = 8080;            // 0 picks a free port (tests)
  size_t max_body_bytes = 4 * 1024 * 1024;
  // Connections held at once. At either cap a new connection evicts the oldest one that has not yet sent
  // a request head or sits idle in keep-alive; when there is none, the new connection is closed.
  unsigned max_connections = 64;
  unsigned max_connections_per_client = 16;  // per client IP address; <= max_connections
  // Inactivity while a request body or a response is in transfer: no byte moved for this long ends it.
  unsigned connection_timeout_s = 30;
  // Absolute deadlines: a new connection must deliver its whole request head within header_timeout_s of
  // being accepted, and a kept-alive one its next request head within idle_timeout_s of the last response.
  // Bytes dribbled meanwhile do not extend them. A request being handled (or suspended) has neither.
  unsigned header_timeout_s = 10;
  unsigned idle_timeout_s = 5;
  int listen_backlog = 1024;  // the kernel caps it at net.core.somaxconn
  // A listening socket to serve instead of binding host:port (the server owns it from then on, even when
  // start fails). A reload that keeps the address hands the old server's socket on (a dup of listen_fd()):
  // a second bind of a listening port would fail, and the connections queued on it would be lost.
  int adopt_listen_fd = -1;
  // PEM text (the certificate followed by its chain; the private key); both set = HTTPS only (OpenSSL's
  // libssl, opened when a server starts with them), both empty = plain HTTP.
  std::string tls_cert_pem;
  std::string tls_key_pem;
  // Asked once per request when its head is in (method, path, query and headers set, no params, no body):
  // a sink takes the body as it arrives, with its own limit; null keeps the usual gathered body.
  std::function<std::unique_ptr<HttpBodySink>(const HttpRequest& head)> body_sink;
  // Builds the body of the errors the server answers itself (400, 413, 500, 503), so they carry the
  // application's envelope.
  std::function<HttpResponse(int status, std::string_view message)> error_response;
};

// Whether HTTPS can be served (HttpServerOptions::tls_*): libssl.so.3 loads. Opens it, so call it only when
// TLS is configured.
bool http_tls_supported();

class HttpServer {
 public:
  // Binds and listens at once, so "address in use" is an error here and not a silent later failure.
  static Result<std::unique_ptr<HttpServer>> start(HttpServerOptions options, HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int poll_fd() const;
  // Milliseconds until run() must be called even without input; nullopt = no deadline.
  std::optional<uint64_t> timeout_ms() const;
  void run();
  uint16_t port() const { return port_; }
  // The listening socket (still owned here); -1 after quiesce().
  int listen_fd() const { return listen_fd_; }
  const HttpServerOptions& options() const { return options_; }

  // Connections held now (not counting those evicted and not yet cleaned up), for tests and health.
  size_t connection_count() const;

  // Streams open now (HttpReply::stream, not yet over), for tests and health.
  size_t stream_count() const;
  // Upgraded sockets held by the application now (HttpReply::upgrade), for tests.
  size_t upgraded_count() const;

  // Stops accepting (new connections are refused) and closes every open stream (its buffered bytes are
  // still sent while the loop runs); open connections are closed when the object dies.
  void quiesce();

 private:
  friend class HttpReply;
  friend class HttpStream;
  friend class UpgradedSocket;
  HttpServer(HttpServerOptions options, HttpHandler handler);

  HttpServerOptions options_;
  HttpHandler handler_;
  int listen_fd_ = -1;  // connections are accepted here
  int epoll_fd_ = -1;   // poll_fd(): the listen socket and every connection's socket
  uint16_t port_ = 0;

  // Connections, their parser and output state, and what the application holds (http_server.cpp).
  struct Peer;
  struct Impl;
  friend struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace osvi::net
