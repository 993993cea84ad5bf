// libmicrohttpd glue: epoll mode without internal threads, bodies accumulated with a limit or streamed to a
// sink, suspend/resume so handlers may answer later from the loop, streamed response bodies (chunked, from a
// bounded buffer, parked while empty), and the connection limits (accepting, per-client caps, eviction,
// header and keep-alive deadlines) that libmicrohttpd does not have.
#include "osvi/net/http_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "osvi/net/text.hpp"

namespace osvi::net {

namespace {

// Connections accepted per run(): bounds the work of one loop turn (each admission may scan the
// connections for one to evict); the rest of a burst stays in the backlog and the listen socket stays
// readable, so the next turn takes it.
constexpr int kAcceptBatch = 32;
// After EMFILE/ENFILE the listen socket stays readable: accepting pauses this long instead of spinning.
constexpr uint64_t kAcceptPauseMs = 100;
// The block libmicrohttpd asks a stream's reader for at most; it allocates one of this size with each
// stream's response, so it is kept small (an idle subscriber costs 38 KiB of heap, 50 with 16 KiB:
// bench/sse_bench).
constexpr size_t kStreamBlock = 4 * 1024;
// A drained stream buffer larger than this is given back, so idle streams cost little.
constexpr size_t kKeptStreamBuffer = 16 * 1024;
// SO_SNDBUF of a stream's socket (the kernel doubles it): what a stalled client leaves in the kernel.
constexpr int kStreamSendBuffer = 64 * 1024;
// Hang-ups of parked streams taken from the epoll set per run().
constexpr int kHangupBatch = 64;

uint64_t mono_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}

std::string address_of(const sockaddr_storage& sa) {
  char text[INET6_ADDRSTRLEN] = {};
  if (sa.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&sa)->sin6_addr, text, sizeof text);
  else if (sa.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&sa)->sin_addr, text, sizeof text);
  return text;
}

std::optional<std::string_view> find_kv(const std::vector<std::pair<std::string, std::string>>& kv,
                                        std::string_view name, bool nocase) {
  for (const auto& [k, v] : kv) {
    if (k.size() != name.size()) continue;
    if (nocase ? strncasecmp(k.data(), name.data(), k.size()) == 0 : k == name) return std::string_view(v);
  }
  return std::nullopt;
}

// Paths and query parameters are decoded by url_unescape (text.hpp): %00 must not cut them short.
size_t unescape(void* /*cls*/, MHD_Connection* /*connection*/, char* text) {
  return url_unescape(text);
}

HttpResponse default_error(int status, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.content_type = "text/plain";
  r.body = std::string(message) + "\n";
  return r;
}

}  // namespace

std::optional<std::string_view> HttpRequest::header(std::string_view name) const {
  return find_kv(headers, name, true);
}
std::optional<std::string_view> HttpRequest::query_param(std::string_view name) const {
  return find_kv(query, name, false);
}
std::optional<std::string_view> HttpRequest::param(std::string_view name) const {
  return find_kv(params, name, false);
}

HttpFileBody& HttpFileBody::operator=(HttpFileBody&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    offset_ = other.offset_;
    size_ = other.size_;
  }
  return *this;
}

HttpFileBody::~HttpFileBody() {
  if (fd_ >= 0) ::close(fd_);
}

Result<HttpResponse> file_response(const std::string& path, std::string content_type) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error("cannot open " + path + ": " + std::strerror(errno), -errno);
  HttpFileBody body(fd, 0, 0);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return make_error("cannot stat " + path + ": " + std::strerror(errno), -errno);
  if (!S_ISREG(st.st_mode))
    return make_error(path + " is not a regular file", S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL);
  HttpResponse r;
  r.content_type = std::move(content_type);
  r.file.emplace(body.release(), 0, static_cast<uint64_t>(st.st_size));
  return r;
}

struct HttpReply::Conn {
  HttpServer* server = nullptr;
  MHD_Connection* mhd = nullptr;
  HttpRequest request;
  bool started = false;
  bool too_large = false;
  bool sink_refused = false;  // the body sink said no: the rest of the body is dropped unread by it
  uint64_t limit = 0;         // body bytes allowed: the sink's, else max_body_bytes
  bool refused = false;       // answered by the server from the request head (400, 413)
  bool dispatched = false;
  bool suspended = false;
  bool closed = false;
  bool answered = false;
  std::optional<HttpResponse> pending;

  // A streamed answer (HttpReply::stream): its head waits in stream_head until queued, its body in `out`
  // (from out_head on) until the content reader hands it to libmicrohttpd.
  bool streaming = false;
  std::optional<HttpResponse> stream_head;
  std::string out;
  size_t out_head = 0;
  size_t cap = 0;
  bool closing = false;    // close(): end the body once `out` has drained
  bool peer_gone = false;  // the socket hung up while the stream was parked
  bool watched = false;    // the socket is in the server's epoll set (parked stream)
  int fd = -1;
  std::function<void(HttpStream::End)> on_closed;

  // An upgrade (HttpReply::upgrade): its head waits here until queued; the callback in Parked::upgrades.
  std::optional<HttpResponse> upgrade_head;
  std::function<void(UpgradedSocket)> on_upgraded;

  size_t buffered() const { return out.size() - out_head; }
};

// Why the server accepts connections itself (MHD_USE_NO_LISTEN_SOCKET + MHD_add_connection): at its
// connection limit libmicrohttpd stops accepting, so a few dozen idle or half-sent connections lock every
// other client out until its inactivity timeout, which any byte resets. Here a connection is tracked from
// accept to close in one of three phases; at a cap the oldest connection that costs nobody anything (no
// request head yet, or idle in keep-alive) makes room for the new one, and the header and keep-alive
// deadlines are absolute. A connection is ended by shutdown(2) of its socket: libmicrohttpd sees the
// hang-up on its next run and cleans up (callbacks, descriptor) as for any client that went away.
struct HttpServer::Conns {
  enum class Phase { head, busy, idle };  // busy: a request is being read, handled (maybe suspended) or sent
  struct Track {
    int fd = -1;
    std::string addr;
    Phase phase = Phase::head;
    uint64_t since_ms = 0;  // start of the phase
    bool ended = false;     // shut down by us, libmicrohttpd has yet to close it
    bool upgraded = false;  // switched protocols: busy until closed, no HTTP deadline
  };
  std::unordered_map<int, Track> by_fd;
  std::unordered_map<std::string, unsigned> per_addr;  // connections not ended, per client address
  size_t live = 0;

  void forget(Track& t) {
    if (t.ended) return;
    t.ended = true;
    --live;
    if (auto it = per_addr.find(t.addr); it != per_addr.end() && --it->second == 0) per_addr.erase(it);
  }
  void end(Track& t) {
    ::shutdown(t.fd, SHUT_RDWR);
    forget(t);
  }
  // The oldest connection (of `addr`, when given) that may be ended to make room; nullptr when none.
  Track* oldest_evictable(const std::string* addr) {
    Track* best = nullptr;
    for (auto& [fd, t] : by_fd) {
      if (t.ended || t.phase == Phase::busy || (addr && t.addr != *addr)) continue;
      if (!best || t.since_ms < best->since_ms) best = &t;
    }
    return best;
  }
  std::optional<uint64_t> deadline(const Track& t, const HttpServerOptions& o) const {
    if (t.ended || t.phase == Phase::busy) return std::nullopt;
    return t.since_ms + 1000u * (t.phase == Phase::head ? o.header_timeout_s : o.idle_timeout_s);
  }
};

struct HttpServer::Parked {
  std::unordered_set<HttpReply::Conn*> suspended;     // every suspended connection
  std::unordered_map<int, HttpReply::Conn*> watched;  // parked streams by socket, in epoll_fd_
  std::unordered_set<HttpReply::Conn*> streams;       // streams not over
  // Upgrade responses queued, by connection, until libmicrohttpd hands over the socket.
  std::unordered_map<MHD_Connection*, std::function<void(UpgradedSocket)>> upgrades;
  std::unordered_set<UpgradedSocket::State*> upgraded;  // sockets the application holds
};

struct UpgradedSocket::State {
  HttpServer* server = nullptr;
  MHD_UpgradeResponseHandle* urh = nullptr;  // null once given back
  int fd = -1;
  std::string early;
  std::function<void()> on_gone;
};

bool http_tls_supported() {
  return MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES;
}

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler)
    : options_(std::move(options)),
      handler_(std::move(handler)),
      conns_(std::make_unique<Conns>()),
      parked_(std::make_unique<Parked>()) {}

struct HttpServer::Glue {
  // Every suspension goes through park/unpark so the server knows what to resume before it stops.
  static void park(HttpReply::Conn& c) {
    if (c.suspended) return;
    c.suspended = true;
    MHD_suspend_connection(c.mhd);
    c.server->parked_->suspended.insert(&c);
  }
  static void unpark(HttpReply::Conn& c) {
    if (!c.suspended || c.closed) return;
    c.suspended = false;
    unwatch(c);
    c.server->parked_->suspended.erase(&c);
    MHD_resume_connection(c.mhd);
    // libmicrohttpd's epoll fd does not wake for a resume: timeout_ms() says 0 until the next run().
    c.server->resume_pending_ = true;
  }
  // A suspended connection is not polled by libmicrohttpd, so a client that leaves would go unnoticed
  // until the next write: the socket joins the server's own epoll set for its hang-up meanwhile.
  static void watch(HttpReply::Conn& c) {
    if (c.watched || c.fd < 0) return;
    epoll_event ev{};
    ev.events = EPOLLRDHUP;  // EPOLLHUP and EPOLLERR are always reported
    ev.data.fd = c.fd;
    if (epoll_ctl(c.server->epoll_fd_, EPOLL_CTL_ADD, c.fd, &ev) != 0) return;
    c.watched = true;
    c.server->parked_->watched[c.fd] = &c;
  }
  static void unwatch(HttpReply::Conn& c) {
    if (!c.watched) return;
    c.watched = false;
    epoll_ctl(c.server->epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
    c.server->parked_->watched.erase(c.fd);
  }

  // The content reader of a stream: what is buffered, else the end once closed, else park until written.
  static ssize_t read_stream(void* cls, uint64_t /*pos*/, char* buf, size_t max) {
    HttpReply::Conn& c = **static_cast<std::shared_ptr<HttpReply::Conn>*>(cls);
    if (c.peer_gone) return MHD_CONTENT_READER_END_WITH_ERROR;
    if (const size_t have = c.buffered()) {
      const size_t n = std::min(have, max);
      std::memcpy(buf, c.out.data() + c.out_head, n);
      c.out_head += n;
      if (c.out_head == c.out.size()) {
        c.out.clear();
        c.out_head = 0;
        // A burst may have grown the buffer to its cap: an idle stream should not keep that much.
        if (c.out.capacity() > kKeptStreamBuffer) c.out.shrink_to_fit();
      } else if (c.out_head >= c.out.size() / 2) {
        c.out.erase(0, c.out_head);
        c.out_head = 0;
      }
      return static_cast<ssize_t>(n);
    }
    if (c.closing) return MHD_CONTENT_READER_END_OF_STREAM;
    // Zero with the connection suspended is libmicrohttpd's "nothing yet": it asks again once resumed.
    park(c);
    watch(c);
    return 0;
  }
  static void free_stream(void* cls) { delete static_cast<std::shared_ptr<HttpReply::Conn>*>(cls); }

  static MHD_Result queue_stream(MHD_Connection* connection, std::shared_ptr<HttpReply::Conn>& conn) {
    HttpResponse head = std::move(*conn->stream_head);
    conn->stream_head.reset();
    if (const MHD_ConnectionInfo* info =
            MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD)) {
      conn->fd = info->connect_fd;
      // The kernel's send buffer grows to megabytes on its own (tcp_wmem): for a client that stops reading it
      // would hold far more than the stream's cap, and delay telling a slow client from a fast one.
      const int sndbuf = kStreamSendBuffer;
      setsockopt(conn->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    }
    auto* reader = new std::shared_ptr<HttpReply::Conn>(conn);
    // Unknown size: chunked transfer encoding, the last chunk when the reader says end of stream.
    MHD_Response* resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, kStreamBlock, &read_stream, reader, &free_stream);
    if (!resp) {
      delete reader;
      return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, head.content_type.c_str());
    for (const auto& [k, v] : head.headers) MHD_add_response_header(resp, k.c_str(), v.c_str());
    MHD_Result ret = MHD_queue_response(connection, static_cast<unsigned>(head.status), resp);
    MHD_destroy_response(resp);
    return ret;
  }

  static MHD_Result queue_upgrade(MHD_Connection* connection, HttpReply::Conn& c) {
    HttpResponse head = std::move(*c.upgrade_head);
    c.upgrade_head.reset();
    MHD_Response* resp = MHD_create_response_for_upgrade(&upgraded, c.server);
    if (!resp) return MHD_NO;
    for (const auto& [k, v] : head.headers) MHD_add_response_header(resp, k.c_str(), v.c_str());
    c.server->parked_->upgrades[connection] = std::move(c.on_upgraded);
    c.on_upgraded = nullptr;
    MHD_Result ret = MHD_queue_response(connection, static_cast<unsigned>(head.status), resp);
    MHD_destroy_response(resp);
    return ret;
  }

  // libmicrohttpd sent the 101 head: the socket is the application's from here.
  static void upgraded(void* cls, MHD_Connection* connection, void* /*con_cls*/, const char* extra_in,
                       size_t extra_in_size, MHD_socket sock, MHD_UpgradeResponseHandle* urh) {
    auto* self = static_cast<HttpServer*>(cls);
    auto it = self->parked_->upgrades.find(connection);
    if (it == self->parked_->upgrades.end()) {
      MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
      return;
    }
    std::function<void(UpgradedSocket)> callback = std::move(it->second);
    self->parked_->upgrades.erase(it);
    if (auto* t = track_of(connection)) {
      t->upgraded = true;
      t->phase = Conns::Phase::busy;
    }
    // As for streams: what a peer that stops reading leaves in the kernel stays small, and the application's
    // own bounded buffer is what fills.
    const int sndbuf = kStreamSendBuffer;
    setsockopt(sock, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    auto state = std::make_shared<UpgradedSocket::State>();
    state->server = self;
    state->urh = urh;
    state->fd = sock;
    if (extra_in_size) state->early.assign(extra_in, extra_in_size);
    self->parked_->upgraded.insert(state.get());
    if (callback) callback(UpgradedSocket(std::move(state)));
  }

  static MHD_Result queue(MHD_Connection* connection, HttpResponse& r) {
    MHD_Response* resp = nullptr;
    if (r.file) {
      // libmicrohttpd takes the descriptor (closed with the response) and reads it as the socket drains.
      resp = MHD_create_response_from_fd_at_offset64(r.file->size(), r.file->fd(), r.file->offset());
      if (resp) r.file->release();
    } else {
      resp = MHD_create_response_from_buffer(r.body.size(), const_cast<char*>(r.body.data()),
                                             MHD_RESPMEM_MUST_COPY);
    }
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type.c_str());
    for (const auto& [k, v] : r.headers) MHD_add_response_header(resp, k.c_str(), v.c_str());
    MHD_Result ret = MHD_queue_response(connection, static_cast<unsigned>(r.status), resp);
    MHD_destroy_response(resp);
    return ret;
  }

  static MHD_Result collect(void* cls, MHD_ValueKind, const char* key, const char* value) {
    auto* out = static_cast<std::vector<std::pair<std::string, std::string>>*>(cls);
    out->emplace_back(key ? key : "", value ? value : "");
    return MHD_YES;
  }

  static HttpResponse error(HttpServer* self, int status, std::string_view message) {
    return self->options_.error_response ? self->options_.error_response(status, message)
                                         : default_error(status, message);
  }

  static HttpServer::Conns::Track* track_of(MHD_Connection* connection) {
    const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? static_cast<HttpServer::Conns::Track*>(info->socket_context) : nullptr;
  }

  static void notify_connection(void* cls, MHD_Connection* connection, void** socket_context,
                                MHD_ConnectionNotificationCode code) {
    auto* self = static_cast<HttpServer*>(cls);
    Conns& conns = *self->conns_;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
      const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
      auto it = info ? conns.by_fd.find(info->connect_fd) : conns.by_fd.end();
      *socket_context = it != conns.by_fd.end() ? &it->second : nullptr;
      return;
    }
    if (auto* t = static_cast<Conns::Track*>(*socket_context)) {
      conns.forget(*t);
      conns.by_fd.erase(t->fd);
      *socket_context = nullptr;
    }
  }

  static MHD_Result access(void* cls, MHD_Connection* connection, const char* url, const char* method,
                           const char* version, const char* upload_data, size_t* upload_data_size,
                           void** con_cls) {
    auto* self = static_cast<HttpServer*>(cls);
    auto* holder = static_cast<std::shared_ptr<HttpReply::Conn>*>(*con_cls);
    if (!holder) {
      // The request head is in: the header/keep-alive deadline no longer applies to this connection.
      if (auto* t = track_of(connection)) {
        t->phase = Conns::Phase::busy;
        t->since_ms = mono_ms();
      }
      holder = new std::shared_ptr<HttpReply::Conn>(std::make_shared<HttpReply::Conn>());
      *con_cls = holder;
      HttpReply::Conn& c = **holder;
      c.server = self;
      c.mhd = connection;
      c.request.method = method;
      c.request.path = url;
      MHD_get_connection_values(connection, MHD_HEADER_KIND, &collect, &c.request.headers);
      MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, &collect, &c.request.query);
      if (const MHD_ConnectionInfo* info =
              MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS)) {
        char host[INET6_ADDRSTRLEN + 8] = {};
        char port[8] = {};
        socklen_t len = info->client_addr->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
        if (getnameinfo(info->client_addr, len, host, sizeof host, port, sizeof port,
                        NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
          c.request.remote = std::string(host) + ":" + port;
        }
      }
      // RFC 9112 section 3.2: a server must answer 400 to an HTTP/1.1 request without Host.
      if (version && std::strcmp(version, MHD_HTTP_VERSION_1_1) == 0 && !c.request.header("Host")) {
        c.answered = c.refused = true;
        HttpResponse r = error(self, 400, "an HTTP/1.1 request must carry a Host header");
        return queue(connection, r);
      }
      // The application may take the body as it arrives (with a limit of its own) instead of having it
      // gathered here.
      c.limit = self->options_.max_body_bytes;
      if (self->options_.body_sink) {
        if (std::unique_ptr<HttpBodySink> sink = self->options_.body_sink(c.request)) {
          c.limit = sink->max_bytes();
          c.request.body_sink = std::move(sink);
        }
      }
      // An announced oversize body is refused from the headers: queued now, the 413 goes out before any
      // body byte is read and instead of a "100 Continue" (libmicrohttpd then closes the connection).
      if (auto cl = c.request.header("Content-Length")) {
        unsigned long long n = std::strtoull(std::string(*cl).c_str(), nullptr, 10);
        if (n > c.limit) {
          c.answered = c.refused = true;
          c.request.body_sink.reset();
          HttpResponse r =
              error(self, 413, "request body exceeds the limit of " + std::to_string(c.limit) + " bytes");
          return queue(connection, r);
        }
      }
      return MHD_YES;
    }
    HttpReply::Conn& c = **holder;
    if (c.refused) {
      *upload_data_size = 0;
      return MHD_YES;
    }
    if (*upload_data_size != 0) {
      const size_t n = *upload_data_size;
      *upload_data_size = 0;
      if (c.too_large) return MHD_YES;
      if (c.request.body_bytes + n > c.limit) {
        // Read on to the end (the client then reads a 413, not a reset); the sink's work is abandoned.
        c.too_large = true;
        c.request.body.clear();
        c.request.body.shrink_to_fit();
        c.request.body_sink.reset();
        return MHD_YES;
      }
      c.request.body_bytes += n;
      if (!c.request.body_sink) {
        c.request.body.append(upload_data, n);
      } else if (!c.sink_refused) {
        c.sink_refused = !c.request.body_sink->write(std::string_view(upload_data, n));
      }
      return MHD_YES;
    }
    if (c.too_large) {
      c.answered = true;
      HttpResponse r =
          error(self, 413, "request body exceeds the limit of " + std::to_string(c.limit) + " bytes");
      return queue(connection, r);
    }
    if (!c.dispatched) {
      c.dispatched = true;
      self->handler_(c.request, HttpReply(*holder));
    }
    if (c.pending) {
      HttpResponse r = std::move(*c.pending);
      c.pending.reset();
      return queue(connection, r);
    }
    if (c.stream_head) return queue_stream(connection, *holder);
    if (c.upgrade_head) return queue_upgrade(connection, c);
    if (!c.answered) park(c);
    return MHD_YES;
  }

  static void completed(void* cls, MHD_Connection* connection, void** con_cls,
                        MHD_RequestTerminationCode code) {
    auto* self = static_cast<HttpServer*>(cls);
    self->parked_->upgrades.erase(connection);
    // The response is out: a kept-alive connection now has idle_timeout_s to send its next request head.
    if (auto* t = track_of(connection); t && !t->upgraded) {
      t->phase = Conns::Phase::idle;
      t->since_ms = mono_ms();
    }
    auto* holder = static_cast<std::shared_ptr<HttpReply::Conn>*>(*con_cls);
    if (!holder) return;
    std::shared_ptr<HttpReply::Conn> conn = std::move(*holder);
    delete holder;
    *con_cls = nullptr;
    HttpReply::Conn& c = *conn;
    unwatch(c);
    if (c.suspended) {
      c.suspended = false;
      self->parked_->suspended.erase(&c);
    }
    c.closed = true;
    if (!c.streaming) return;
    self->parked_->streams.erase(&c);
    c.out.clear();
    c.out.shrink_to_fit();
    HttpStream::End end = HttpStream::End::client_gone;
    if (code == MHD_REQUEST_TERMINATED_COMPLETED_OK) end = HttpStream::End::finished;
    if (code == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED) end = HttpStream::End::timed_out;
    if (code == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN) end = HttpStream::End::server_stopped;
    // Moved out first: the callback may destroy the handle, and with it what it would be called through.
    auto callback = std::move(c.on_closed);
    c.on_closed = nullptr;
    if (callback) callback(end);
  }
};

HttpReply& HttpReply::operator=(HttpReply&& other) noexcept {
  if (this != &other) {
    if (conn_ && !conn_->answered) {
      HttpReply dropped(std::move(conn_));
    }
    conn_ = std::move(other.conn_);
  }
  return *this;
}

HttpReply::~HttpReply() {
  // A closed connection may have outlived its server: nothing of the server is touched then.
  if (conn_ && !conn_->answered && !conn_->closed) {
    const auto& make = conn_->server->options_.error_response;
    send(make ? make(500, "internal error: request was not answered") : default_error(500, "internal error"));
  }
}

bool HttpReply::connected() const {
  return conn_ && !conn_->closed;
}

void HttpReply::send(HttpResponse response) {
  if (!conn_ || conn_->answered) return;
  conn_->answered = true;
  if (conn_->closed) return;
  conn_->pending = std::move(response);
  HttpServer::Glue::unpark(*conn_);
}

HttpStream HttpReply::stream(int status, std::string content_type,
                             std::vector<std::pair<std::string, std::string>> headers, size_t max_buffered) {
  if (!conn_ || conn_->answered) return HttpStream();
  conn_->answered = true;
  if (conn_->closed) return HttpStream(conn_);
  HttpResponse head;
  head.status = status;
  head.content_type = std::move(content_type);
  head.headers = std::move(headers);
  conn_->stream_head = std::move(head);
  conn_->streaming = true;
  conn_->cap = max_buffered;
  conn_->server->parked_->streams.insert(conn_.get());
  HttpServer::Glue::unpark(*conn_);
  return HttpStream(conn_);
}

HttpStream& HttpStream::operator=(HttpStream&& other) noexcept {
  if (this != &other) {
    HttpStream dropped(std::move(conn_));
    conn_ = std::move(other.conn_);
  }
  return *this;
}

HttpStream::~HttpStream() {
  if (!conn_) return;
  conn_->on_closed = nullptr;
  close();
}

bool HttpStream::connected() const {
  return conn_ && conn_->streaming && !conn_->closed && !conn_->closing;
}

size_t HttpStream::buffered() const {
  return conn_ ? conn_->buffered() : 0;
}

size_t HttpStream::capacity() const {
  return conn_ ? conn_->cap : 0;
}

bool HttpStream::write(std::string_view bytes) {
  if (!connected()) return false;
  HttpReply::Conn& c = *conn_;
  if (bytes.size() > c.cap - c.buffered()) return false;
  if (bytes.empty()) return true;
  c.out.append(bytes);
  HttpServer::Glue::unpark(c);
  return true;
}

void HttpReply::upgrade(HttpResponse head, std::function<void(UpgradedSocket)> on_upgraded) {
  if (!conn_ || conn_->answered) return;
  conn_->answered = true;
  if (conn_->closed) return;
  conn_->upgrade_head = std::move(head);
  conn_->on_upgraded = std::move(on_upgraded);
  HttpServer::Glue::unpark(*conn_);
}

UpgradedSocket& UpgradedSocket::operator=(UpgradedSocket&& other) noexcept {
  if (this != &other) {
    close();
    s_ = std::move(other.s_);
  }
  return *this;
}

UpgradedSocket::~UpgradedSocket() {
  close();
}

int UpgradedSocket::fd() const {
  return s_ && s_->urh ? s_->fd : -1;
}

std::string UpgradedSocket::take_early_bytes() {
  return s_ ? std::exchange(s_->early, {}) : std::string();
}

void UpgradedSocket::close() {
  if (!s_ || !s_->urh) return;
  s_->on_gone = nullptr;
  s_->server->parked_->upgraded.erase(s_.get());
  MHD_upgrade_action(std::exchange(s_->urh, nullptr), MHD_UPGRADE_ACTION_CLOSE);
  s_->fd = -1;
  // libmicrohttpd cleans the connection up in its next run, which its epoll fd does not ask for.
  s_->server->resume_pending_ = true;
}

void UpgradedSocket::on_server_gone(std::function<void()> callback) {
  if (s_ && s_->urh) s_->on_gone = std::move(callback);
}

void HttpStream::close() {
  if (!connected()) return;
  conn_->closing = true;
  HttpServer::Glue::unpark(*conn_);
}

void HttpStream::on_closed(std::function<void(End)> callback) {
  if (conn_ && conn_->streaming && !conn_->closed) conn_->on_closed = std::move(callback);
}

// Binds and listens on options.host:port; the descriptor is the caller's.
static Result<int> listen_on(const HttpServerOptions& o) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
  std::string host = o.host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo* res = nullptr;
  std::string port = std::to_string(o.port);
  int gai = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (gai != 0) return make_error("cannot resolve listen address " + o.host + ": " + gai_strerror(gai));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> res_owner(res, &freeaddrinfo);

  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return make_error(std::string("socket: ") + std::strerror(errno), -errno);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, std::max(o.listen_backlog, 16)) != 0) {
    int e = errno;
    close(fd);
    return make_error("cannot listen on " + o.host + ":" + port + ": " + std::strerror(e), -e);
  }
  return fd;
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(HttpServerOptions options, HttpHandler handler) {
  std::unique_ptr<HttpServer> self(new HttpServer(std::move(options), std::move(handler)));
  const HttpServerOptions& o = self->options_;

  if (o.adopt_listen_fd >= 0) {
    self->listen_fd_ = o.adopt_listen_fd;
    self->options_.adopt_listen_fd = -1;
  } else if (auto bound = listen_on(o); !bound) {
    return bound.error();
  } else {
    self->listen_fd_ = *bound;
  }
  const int fd = self->listen_fd_;
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &blen);
  self->port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                  : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);

  const bool tls = !o.tls_cert_pem.empty() || !o.tls_key_pem.empty();
  if (tls && (o.tls_cert_pem.empty() || o.tls_key_pem.empty()))
    return make_error("HTTPS needs both a certificate and a key");
  if (tls && !http_tls_supported()) return make_error("this libmicrohttpd was built without TLS");
  // Connections we ended linger in libmicrohttpd until its next run: its own limit leaves room for them
  // (at most every held connection plus one batch of evictions), ours is max_connections.
  const unsigned mhd_limit = 2 * o.max_connections + kAcceptBatch;
  std::vector<MHD_OptionItem> opts = {
      {MHD_OPTION_CONNECTION_LIMIT, mhd_limit, nullptr},
      {MHD_OPTION_CONNECTION_TIMEOUT, o.connection_timeout_s, nullptr},
      {MHD_OPTION_NOTIFY_COMPLETED, reinterpret_cast<intptr_t>(&Glue::completed), self.get()},
      {MHD_OPTION_NOTIFY_CONNECTION, reinterpret_cast<intptr_t>(&Glue::notify_connection), self.get()},
      {MHD_OPTION_UNESCAPE_CALLBACK, reinterpret_cast<intptr_t>(&unescape), nullptr},
  };
  if (tls) {
    opts.push_back({MHD_OPTION_HTTPS_MEM_KEY, 0, const_cast<char*>(o.tls_key_pem.c_str())});
    opts.push_back({MHD_OPTION_HTTPS_MEM_CERT, 0, const_cast<char*>(o.tls_cert_pem.c_str())});
  }
  opts.push_back({MHD_OPTION_END, 0, nullptr});
  unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_NO_LISTEN_SOCKET | MHD_ALLOW_UPGRADE;
  if (tls) flags |= MHD_USE_TLS;
  self->daemon_ = MHD_start_daemon(flags, 0, nullptr, nullptr, &Glue::access, self.get(), MHD_OPTION_ARRAY,
                                   opts.data(), MHD_OPTION_END);
  if (!self->daemon_) {
    // With TLS the usual cause is the certificate and key (not PEM gnutls reads, or not a pair): the code
    // tells the caller to name those keys rather than the address.
    if (tls)
      return make_error(
          "the TLS certificate and key were refused (not a matching certificate and private key)",
          -EKEYREJECTED);
    return make_error("libmicrohttpd failed to start on " + o.host + ":" + std::to_string(self->port_));
  }

  self->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (self->epoll_fd_ < 0) return make_error(std::string("epoll_create1: ") + std::strerror(errno), -errno);
  const MHD_DaemonInfo* info = MHD_get_daemon_info(self->daemon_, MHD_DAEMON_INFO_EPOLL_FD);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (!info || epoll_ctl(self->epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0)
    return make_error(std::string("epoll_ctl: ") + std::strerror(errno), -errno);
  ev.data.fd = info->epoll_fd;
  if (epoll_ctl(self->epoll_fd_, EPOLL_CTL_ADD, info->epoll_fd, &ev) != 0)
    return make_error(std::string("epoll_ctl: ") + std::strerror(errno), -errno);
  return self;
}

HttpServer::~HttpServer() {
  // libmicrohttpd must not be stopped with connections suspended: resumed, they are closed by the stop like
  // the others (NOTIFY_COMPLETED, so replies and streams held by the application see the end).
  if (daemon_) {
    // Upgraded sockets must be given back before the stop; their holders are told first.
    for (UpgradedSocket::State* u :
         std::vector<UpgradedSocket::State*>(parked_->upgraded.begin(), parked_->upgraded.end())) {
      if (!parked_->upgraded.count(u)) continue;  // an earlier holder's callback closed it
      if (auto gone = std::move(u->on_gone)) gone();
      if (!parked_->upgraded.count(u)) continue;  // the callback closed it
      parked_->upgraded.erase(u);
      MHD_upgrade_action(std::exchange(u->urh, nullptr), MHD_UPGRADE_ACTION_CLOSE);
      u->fd = -1;
    }
    for (HttpReply::Conn* c :
         std::vector<HttpReply::Conn*>(parked_->suspended.begin(), parked_->suspended.end()))
      Glue::unpark(*c);
  }
  // Callbacks run during the stop and still use conns_ and parked_, destroyed after this body.
  if (daemon_) MHD_stop_daemon(daemon_);
  if (listen_fd_ >= 0) close(listen_fd_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

int HttpServer::poll_fd() const {
  return epoll_fd_;
}

size_t HttpServer::connection_count() const {
  return conns_->live;
}

std::optional<uint64_t> HttpServer::timeout_ms() const {
  if (resume_pending_) return 0;
  std::optional<uint64_t> best;
  MHD_UNSIGNED_LONG_LONG t = 0;
  if (MHD_get_timeout(daemon_, &t) == MHD_YES) best = static_cast<uint64_t>(t);
  const uint64_t now = mono_ms();
  auto consider = [&](uint64_t deadline) {
    const uint64_t in = deadline > now ? deadline - now : 0;
    if (!best || in < *best) best = in;
  };
  for (const auto& [fd, track] : conns_->by_fd)
    if (auto d = conns_->deadline(track, options_)) consider(*d);
  if (accept_paused_until_ms_) consider(accept_paused_until_ms_);
  return best;
}

size_t HttpServer::stream_count() const {
  return parked_->streams.size();
}

size_t HttpServer::upgraded_count() const {
  return parked_->upgraded.size();
}

void HttpServer::reap_hangups() {
  epoll_event evs[kHangupBatch];
  const int n = epoll_wait(epoll_fd_, evs, kHangupBatch, 0);
  for (int i = 0; i < n; ++i) {
    auto it = parked_->watched.find(evs[i].data.fd);
    if (it == parked_->watched.end()) continue;  // the listen socket or libmicrohttpd's epoll fd
    HttpReply::Conn& c = *it->second;
    // Resumed, its reader ends the body with an error and libmicrohttpd closes the connection.
    c.peer_gone = true;
    Glue::unpark(c);
  }
}

void HttpServer::run() {
  resume_pending_ = false;
  if (!parked_->watched.empty()) reap_hangups();
  MHD_run(daemon_);
  const uint64_t now = mono_ms();
  expire(now);
  if (listen_fd_ < 0) return;
  if (accept_paused_until_ms_) {
    if (now < accept_paused_until_ms_) return;
    accept_paused_until_ms_ = 0;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listen_fd_;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  }
  accept_some(now);
}

void HttpServer::expire(uint64_t now_ms) {
  for (auto& [fd, track] : conns_->by_fd) {
    auto d = conns_->deadline(track, options_);
    if (d && *d <= now_ms) conns_->end(track);
  }
}

void HttpServer::accept_some(uint64_t now_ms) {
  Conns& c = *conns_;
  const unsigned per_client = std::min(
      options_.max_connections_per_client ? options_.max_connections_per_client : options_.max_connections,
      options_.max_connections);
  for (int i = 0; i < kAcceptBatch; ++i) {
    sockaddr_storage sa{};
    socklen_t len = sizeof sa;
    const int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: free one for the next try, and stop polling the listen socket meanwhile.
        if (Conns::Track* v = c.oldest_evictable(nullptr)) c.end(*v);
        epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
        accept_paused_until_ms_ = now_ms + kAcceptPauseMs;
        return;
      }
      continue;  // ECONNABORTED and the like: that one client gave up, the next may be waiting
    }
    std::string addr = address_of(sa);
    auto have = c.per_addr.find(addr);
    if (have != c.per_addr.end() && have->second >= per_client) {
      Conns::Track* v = c.oldest_evictable(&addr);
      if (!v) {
        close(fd);  // every connection of this client is busy: the newcomer is the one refused
        continue;
      }
      c.end(*v);
    }
    if (c.live >= options_.max_connections) {
      Conns::Track* v = c.oldest_evictable(nullptr);
      if (!v) {
        close(fd);
        continue;
      }
      c.end(*v);
    }
    if (auto stale = c.by_fd.find(fd); stale != c.by_fd.end()) {
      c.forget(stale->second);
      c.by_fd.erase(stale);
    }
    Conns::Track& t = c.by_fd[fd];
    t.fd = fd;
    t.addr = addr;
    t.since_ms = now_ms;
    ++c.live;
    ++c.per_addr[std::move(addr)];
    if (MHD_add_connection(daemon_, fd, reinterpret_cast<sockaddr*>(&sa), len) != MHD_YES) {
      // libmicrohttpd has closed the socket (and reported it closed if it got that far).
      if (auto it = c.by_fd.find(fd); it != c.by_fd.end()) {
        c.forget(it->second);
        c.by_fd.erase(it);
      }
    }
  }
}

void HttpServer::quiesce() {
  // Streams never end by themselves: closed here, each finishes sending what it holds while the loop runs.
  for (HttpReply::Conn* c : std::vector<HttpReply::Conn*>(parked_->streams.begin(), parked_->streams.end())) {
    if (c->closing || c->closed) continue;
    c->closing = true;
    Glue::unpark(*c);
  }
  // New connections are refused at once rather than left unanswered in the backlog.
  if (listen_fd_ < 0) return;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
  close(listen_fd_);
  listen_fd_ = -1;
  accept_paused_until_ms_ = 0;
}

}  // namespace osvi::net
