// The local HTTP/1.1 server: one epoll set of connections driven by the owner's loop; requests parsed by
// http_parser.hpp and answered in order on each connection; bodies gathered with a limit or streamed to a
// sink; replies sent later from the loop; streamed (chunked) bodies from a bounded buffer, parked while
// empty; upgrades; files by sendfile(2); the connection limits (per-client caps, eviction, header and
// keep-alive deadlines); HTTPS through libssl opened only when configured (tls_session.hpp).
#include "osvi/net/http_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "no_sigpipe.hpp"
#include "osvi/net/http_parser.hpp"
#include "tls_session.hpp"

namespace osvi::net {

namespace {

// Connections accepted per run(): bounds the work of one loop turn (each admission may scan the
// connections for one to evict); the rest of a burst stays in the backlog and the listen socket stays
// readable, so the next turn takes it.
constexpr int kAcceptBatch = 32;
// After EMFILE/ENFILE the listen socket stays readable: accepting pauses this long instead of spinning.
constexpr uint64_t kAcceptPauseMs = 100;
// Socket events handled per run(); level-triggered, so the rest wake the next turn.
constexpr int kEventBatch = 64;
// Bytes read per recv; and what a connection buffers ahead of the request it is on (pipelined requests wait
// in the kernel beyond this).
constexpr size_t kReadBlock = 16 * 1024;
constexpr size_t kMaxInput = 64 * 1024;
// A stream's bytes are framed into chunks of at most this much as the socket drains.
constexpr size_t kStreamBlock = 16 * 1024;
// A drained stream buffer larger than this is given back, so idle streams cost little.
constexpr size_t kKeptStreamBuffer = 16 * 1024;
// SO_SNDBUF of a stream's or upgraded socket (the kernel doubles it): what a stalled client leaves in the
// kernel.
constexpr int kStreamSendBuffer = 64 * 1024;
// Bodies larger than this are written from their own string (writev) rather than copied behind the head.
constexpr size_t kCopyBody = 16 * 1024;
// A file body is sent this much per sendfile(2), or read per block over TLS.
constexpr size_t kFileBlock = 64 * 1024;
// After a response that closes the connection, the unread rest of the request is read and dropped for at
// most this long or this much, so the client reads the answer instead of a reset (RFC 9112 section 9.6).
constexpr uint64_t kLingerMs = 2000;
constexpr size_t kLingerBytes = 1024 * 1024;
// The relay of an upgraded HTTPS connection buffers at most this much in each direction.
constexpr size_t kRelayBuffer = 64 * 1024;
// Work per pump() of one connection: bounds one loop turn for a client that sends without pause.
constexpr int kPumpRounds = 16;
// epoll data of the relay's end of a socket pair: the connection's id with this bit.
constexpr uint64_t kRelayBit = 1ull << 63;

ssize_t sendfile_nosignal(int out, int in, off_t* off, size_t count) {
  NoSigpipe guard;  // sendfile(2) has no MSG_NOSIGNAL
  return ::sendfile(out, in, off, count);
}

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

uint16_t port_of(const sockaddr_storage& sa) {
  return ntohs(sa.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&sa)->sin6_port
                                        : reinterpret_cast<const sockaddr_in*>(&sa)->sin_port);
}

std::optional<std::string_view> find_kv(const std::vector<std::pair<std::string, std::string>>& kv,
                                        std::string_view name, bool nocase) {
  for (const auto& [k, v] : kv) {
    if (k.size() != name.size()) continue;
    if (nocase ? strncasecmp(k.data(), name.data(), k.size()) == 0 : k == name) return std::string_view(v);
  }
  return std::nullopt;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

HttpResponse default_error(int status, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.content_type = "text/plain";
  r.body = std::string(message) + "\n";
  return r;
}

// Statuses whose responses carry no body and no length (RFC 9110 sections 15.2, 15.3.5, 15.4.5).
bool bodiless(int status) {
  return status < 200 || status == 204 || status == 304;
}

void set_send_buffer(int fd) {
  const int sndbuf = kStreamSendBuffer;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
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

bool http_tls_supported() {
  return tls::available().ok();
}

// One request and its answer, shared by the connection and the handles the application holds (HttpReply,
// HttpStream), so either side may go first.
struct HttpReply::Conn {
  HttpServer* server = nullptr;
  uint64_t peer = 0;  // the connection's id while it is on this request; 0 once done
  HttpRequest request;
  bool answered = false;
  bool closed = false;  // the request is over (answered and sent, or the connection gone)
  std::optional<HttpResponse> pending;

  // A streamed answer (HttpReply::stream): its head waits in stream_head until sent, its body in `out` (from
  // out_head on) until framed into the connection's output.
  bool streaming = false;
  std::optional<HttpResponse> stream_head;
  std::string out;
  size_t out_head = 0;
  size_t cap = 0;
  bool closing = false;  // close(): end the body once `out` has drained
  std::function<void(HttpStream::End)> on_closed;

  // An upgrade (HttpReply::upgrade): its head and callback wait here until the connection takes them.
  std::optional<HttpResponse> upgrade_head;
  std::function<void(UpgradedSocket)> on_upgraded;

  size_t buffered() const { return out.size() - out_head; }
};

struct UpgradedSocket::State {
  HttpServer* server = nullptr;
  uint64_t peer = 0;  // 0 once given back
  int fd = -1;
  std::string early;
  std::function<void()> on_gone;
};

struct HttpServer::Peer {
  enum class Phase { head, busy, idle };  // for deadlines and eviction, as documented in the options
  // head: reading a request head; body: reading its body; handling: the application has it; sending: an
  // answer is going out; upgraded: the socket is the application's; lingering: draining before the close.
  enum class State { head, body, handling, sending, upgraded, lingering };
  enum class Answer { none, plain, stream, upgrade };

  uint64_t id = 0;
  int fd = -1;
  std::string addr;    // client IP, for the per-client cap
  std::string remote;  // "ip:port"
  Phase phase = Phase::head;
  State state = State::head;
  uint64_t since_ms = 0;   // start of the phase
  uint64_t active_ms = 0;  // last time bytes moved
  uint64_t linger_until_ms = 0;
  size_t lingered = 0;
  bool dead = false;
  bool peer_eof = false;  // the client half-closed while its request was with the application
  uint32_t events = 0;    // registered with epoll

  std::unique_ptr<tls::Session> tls;
  bool handshaken = false;

  // Input: bytes from in_head on are unparsed.
  std::string in;
  size_t in_head = 0;
  http::HeadScanner scanner;
  http::ChunkedDecoder chunked;
  http::RequestHead head;
  uint64_t body_left = 0;  // Content-Length framing
  uint64_t limit = 0;
  bool too_large = false;
  uint64_t discarded = 0;  // body bytes read and dropped past the limit
  bool sink_refused = false;
  bool keep_alive = true;
  bool head_only = false;  // HEAD: the answer's body is not sent

  std::shared_ptr<HttpReply::Conn> req;
  Answer answer = Answer::none;
  bool close_after = false;   // close once the answer is out
  bool stream_ended = false;  // the last chunk is queued

  // Output: `out` from out_pos, then `body` from body_pos, then the file.
  std::string out;
  size_t out_pos = 0;
  std::string body;
  size_t body_pos = 0;
  std::optional<HttpFileBody> file;
  uint64_t file_pos = 0, file_end = 0;

  // An upgraded HTTPS connection: the application's end of the pair is up->fd, ours relays through TLS.
  UpgradedSocket::State* up = nullptr;
  int relay_fd = -1;
  std::string to_app, to_client;
  bool app_closed = false;     // the application gave the socket back (or closed its end)
  bool client_closed = false;  // the TLS side ended
  bool app_told_end = false;   // ... and the application's end of the pair was shut for writing
  uint32_t relay_events = 0;

  size_t input() const { return in.size() - in_head; }
  bool output_pending() const {
    return out_pos < out.size() || body_pos < body.size() || (file && file_pos < file_end);
  }
};

struct HttpServer::Impl {
  HttpServer& s;
  explicit Impl(HttpServer& server) : s(server) {}

  std::unordered_map<uint64_t, std::unique_ptr<Peer>> peers;
  std::unordered_map<std::string, unsigned> per_addr;  // live connections per client address
  size_t live = 0;
  uint64_t next_id = 1;
  std::vector<std::unique_ptr<Peer>> graveyard;         // closed during this run(): freed at its end
  std::unordered_set<uint64_t> dirty;                   // an answer or stream bytes came from the application
  std::unordered_set<HttpReply::Conn*> streams;         // streams not over
  std::unordered_set<UpgradedSocket::State*> upgraded;  // sockets the application holds
  std::unique_ptr<tls::Context> tls;
  uint64_t accept_paused_until_ms = 0;
  time_t date_sec = 0;
  std::string date;
  bool stopping = false;

  Peer* find(uint64_t id) {
    auto it = peers.find(id);
    return it == peers.end() || it->second->dead ? nullptr : it->second.get();
  }

  HttpResponse error(int status, std::string_view message) {
    return s.options_.error_response ? s.options_.error_response(status, message)
                                     : default_error(status, message);
  }

  const std::string& http_date() {
    const time_t now = time(nullptr);
    if (now != date_sec) {
      date_sec = now;
      tm t{};
      gmtime_r(&now, &t);
      char buf[64];
      const size_t n = strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &t);
      date.assign(buf, n);
    }
    return date;
  }

  // ---- socket I/O (plain or TLS). > 0 bytes; 0 would block; -1 the connection is over.
  ssize_t recv_some(Peer& p, char* buf, size_t len) {
    if (p.tls) {
      const ssize_t n = p.tls->read(buf, len);
      if (n > 0) return n;
      return n == tls::Session::kAgain ? 0 : -1;
    }
    const ssize_t n = ::recv(p.fd, buf, len, 0);
    if (n > 0) return n;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
    return -1;
  }
  ssize_t send_some(Peer& p, const char* buf, size_t len) {
    if (p.tls) {
      const ssize_t n = p.tls->write(buf, len);
      if (n > 0) return n;
      return n == tls::Session::kAgain ? 0 : -1;
    }
    const ssize_t n = ::send(p.fd, buf, len, MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
    return -1;
  }

  // ---- closing
  // Ends the connection now: the socket is closed, the request's handles see it gone (a stream's callback
  // with `why`), and the Peer itself is freed at the end of run().
  void close_peer(Peer& p, HttpStream::End why) {
    if (p.dead) return;
    p.dead = true;
    if (p.events) epoll_ctl(s.epoll_fd_, EPOLL_CTL_DEL, p.fd, nullptr);
    if (p.relay_fd >= 0) {
      epoll_ctl(s.epoll_fd_, EPOLL_CTL_DEL, p.relay_fd, nullptr);
      ::close(p.relay_fd);
      p.relay_fd = -1;
    }
    if (p.up) {
      // Still held by the application (server stopping): its handle goes dead.
      upgraded.erase(p.up);
      if (p.tls && p.up->fd >= 0) ::close(p.up->fd);
      p.up->peer = 0;
      p.up->fd = -1;
      p.up = nullptr;
    }
    p.tls.reset();
    ::close(p.fd);
    --live;
    if (auto it = per_addr.find(p.addr); it != per_addr.end() && --it->second == 0) per_addr.erase(it);
    dirty.erase(p.id);
    std::shared_ptr<HttpReply::Conn> conn = std::move(p.req);
    p.file.reset();
    p.in.clear();
    p.in.shrink_to_fit();
    auto it = peers.find(p.id);
    if (it != peers.end()) {
      graveyard.push_back(std::move(it->second));
      peers.erase(it);
    }
    if (conn) end_request(*conn, why);
  }

  // The request is over for the connection: its handles see it closed, a stream's callback runs last (it may
  // destroy the handle, or call into the server).
  void end_request(HttpReply::Conn& c, HttpStream::End why) {
    c.peer = 0;
    c.closed = true;
    c.pending.reset();
    c.stream_head.reset();
    c.upgrade_head.reset();
    c.on_upgraded = nullptr;
    if (!c.streaming) return;
    streams.erase(&c);
    c.out.clear();
    c.out.shrink_to_fit();
    auto callback = std::move(c.on_closed);
    c.on_closed = nullptr;
    if (callback) callback(why);
  }

  // Closes after the answer: plain sockets stop sending and drain what the client still sends for a while.
  void linger_or_close(Peer& p, uint64_t now) {
    if (p.tls || p.peer_eof) {
      if (p.tls && p.handshaken) p.tls->shutdown();
      close_peer(p, HttpStream::End::client_gone);
      return;
    }
    ::shutdown(p.fd, SHUT_WR);
    p.state = Peer::State::lingering;
    p.phase = Peer::Phase::idle;
    p.since_ms = 0;  // evicted before anything else
    p.linger_until_ms = now + kLingerMs;
    p.in.clear();
    p.in_head = 0;
  }

  // ---- answers
  void write_head(Peer& p, int status, const HttpResponse& r, const char* framing, uint64_t length) {
    std::string& h = p.out;
    h += "HTTP/1.1 ";
    h += std::to_string(status);
    h += ' ';
    h += http::reason_phrase(status);
    h += "\r\nDate: ";
    h += http_date();
    h += "\r\n";
    if (!r.content_type.empty() && !bodiless(status)) {
      h += "Content-Type: ";
      h += r.content_type;
      h += "\r\n";
    }
    for (const auto& [k, v] : r.headers) {
      // The framing is the server's; a value that would end the line is never sent.
      if (iequals(k, "Content-Length") || iequals(k, "Transfer-Encoding") || iequals(k, "Connection") ||
          k.find_first_of("\r\n:") != std::string::npos || v.find_first_of("\r\n") != std::string::npos)
        continue;
      h += k;
      h += ": ";
      h += v;
      h += "\r\n";
    }
    if (framing) {
      h += framing;
    } else if (!bodiless(status)) {
      h += "Content-Length: ";
      h += std::to_string(length);
      h += "\r\n";
    }
    if (status == 101)
      h += "Connection: Upgrade\r\n";
    else if (p.close_after)
      h += "Connection: close\r\n";
    else if (p.head.minor == 0)
      h += "Connection: keep-alive\r\n";
    h += "\r\n";
  }

  // Starts sending a complete answer; the request handle (if any) stays with the connection until it is out.
  void start_plain(Peer& p, HttpResponse r) {
    if (!p.keep_alive) p.close_after = true;
    p.state = Peer::State::sending;
    p.answer = Peer::Answer::plain;
    const bool send_body = !p.head_only && !bodiless(r.status);
    if (r.file) {
      const uint64_t size = r.file->size();
      write_head(p, r.status, r, nullptr, size);
      if (send_body && size) {
        p.file_pos = r.file->offset();
        p.file_end = r.file->offset() + size;
        p.file.emplace(std::move(*r.file));
      }
    } else {
      write_head(p, r.status, r, nullptr, r.body.size());
      if (send_body) {
        if (r.body.size() <= kCopyBody)
          p.out += r.body;
        else
          p.body = std::move(r.body);
      }
    }
  }

  void answer_error(Peer& p, int status, const std::string& message) {
    p.close_after = true;
    p.req.reset();  // a request the application never saw (its body sink goes with it)
    start_plain(p, error(status, message));
  }

  // The application's answer, once given: sets up what the connection sends next. False while none.
  bool take_answer(Peer& p) {
    HttpReply::Conn& c = *p.req;
    if (c.pending) {
      HttpResponse r = std::move(*c.pending);
      c.pending.reset();
      start_plain(p, std::move(r));
      return true;
    }
    if (c.stream_head) {
      HttpResponse h = std::move(*c.stream_head);
      c.stream_head.reset();
      p.state = Peer::State::sending;
      p.answer = Peer::Answer::stream;
      p.stream_ended = false;
      // HTTP/1.0 has no chunked coding: the body ends with the connection.
      if (p.head.minor == 0 || !p.keep_alive) p.close_after = true;
      write_head(p, h.status, h, p.head.minor == 0 ? "" : "Transfer-Encoding: chunked\r\n", 0);
      // The kernel's send buffer grows to megabytes on its own (tcp_wmem): for a client that stops reading it
      // would hold far more than the stream's cap, and delay telling a slow client from a fast one.
      set_send_buffer(p.fd);
      if (p.head_only) {
        c.closing = true;
        c.out.clear();
        c.out_head = 0;
        p.stream_ended = true;
      }
      return true;
    }
    if (c.upgrade_head) {
      HttpResponse h = std::move(*c.upgrade_head);
      c.upgrade_head.reset();
      p.state = Peer::State::sending;
      p.answer = Peer::Answer::upgrade;
      p.close_after = false;
      write_head(p, h.status, h, "", 0);
      return true;
    }
    return false;
  }

  // Moves the next piece of a stream's buffer into the output, framed as a chunk (or the last chunk).
  void frame_stream(Peer& p) {
    HttpReply::Conn& c = *p.req;
    const bool chunked = p.head.minor == 1;
    if (const size_t have = c.buffered()) {
      const size_t n = std::min(have, kStreamBlock);
      if (chunked) {
        char size[24];
        const int len = snprintf(size, sizeof size, "%zx\r\n", n);
        p.out.append(size, static_cast<size_t>(len));
      }
      p.out.append(c.out, c.out_head, n);
      if (chunked) p.out += "\r\n";
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
      return;
    }
    if (c.closing && !p.stream_ended) {
      p.stream_ended = true;
      if (chunked) p.out += "0\r\n\r\n";
    }
  }

  // Writes what the connection holds. False when the connection broke (closed here).
  bool flush(Peer& p, uint64_t now, bool& moved) {
    for (int round = 0; round < kPumpRounds; ++round) {
      if (p.out_pos == p.out.size() && p.body_pos == p.body.size()) {
        p.out.clear();
        p.out_pos = 0;
        if (!p.body.empty()) {
          p.body.clear();
          p.body.shrink_to_fit();
          p.body_pos = 0;
        }
        if (p.file && p.file_pos < p.file_end && p.tls) {
          // TLS cannot sendfile: the next block goes through the output buffer.
          const size_t n = static_cast<size_t>(std::min<uint64_t>(kFileBlock / 4, p.file_end - p.file_pos));
          p.out.resize(n);
          const ssize_t r = ::pread(p.file->fd(), p.out.data(), n, static_cast<off_t>(p.file_pos));
          if (r <= 0) {
            close_peer(p,
                       HttpStream::End::client_gone);  // the file shrank or failed: the length is a lie now
            return false;
          }
          p.out.resize(static_cast<size_t>(r));
          p.file_pos += static_cast<uint64_t>(r);
        } else if (p.file && p.file_pos < p.file_end) {
          off_t off = static_cast<off_t>(p.file_pos);
          const ssize_t r =
              sendfile_nosignal(p.fd, p.file->fd(), &off,
                                static_cast<size_t>(std::min<uint64_t>(kFileBlock, p.file_end - p.file_pos)));
          if (r < 0 && (errno == EAGAIN || errno == EINTR)) return true;
          if (r <= 0) {
            close_peer(p, HttpStream::End::client_gone);
            return false;
          }
          p.file_pos += static_cast<uint64_t>(r);
          p.active_ms = now;
          moved = true;
          continue;
        } else if (p.answer == Peer::Answer::stream && p.req) {
          frame_stream(p);
        }
        if (p.out.empty()) {
          if (p.file && p.file_pos >= p.file_end) p.file.reset();
          return true;
        }
      }
      ssize_t n = 0;
      if (!p.tls && p.out_pos < p.out.size() && p.body_pos < p.body.size()) {
        iovec iov[2] = {{p.out.data() + p.out_pos, p.out.size() - p.out_pos},
                        {p.body.data() + p.body_pos, p.body.size() - p.body_pos}};
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = 2;
        n = ::sendmsg(p.fd, &msg, MSG_NOSIGNAL);
        if (n < 0) n = (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
        if (n > 0) {
          const size_t first = std::min(static_cast<size_t>(n), p.out.size() - p.out_pos);
          p.out_pos += first;
          p.body_pos += static_cast<size_t>(n) - first;
        }
      } else if (p.out_pos < p.out.size()) {
        n = send_some(p, p.out.data() + p.out_pos, p.out.size() - p.out_pos);
        if (n > 0) p.out_pos += static_cast<size_t>(n);
      } else {
        n = send_some(p, p.body.data() + p.body_pos, p.body.size() - p.body_pos);
        if (n > 0) p.body_pos += static_cast<size_t>(n);
      }
      if (n < 0) {
        close_peer(p, HttpStream::End::client_gone);
        return false;
      }
      if (n == 0) return true;
      p.active_ms = now;
      moved = true;
    }
    return true;
  }

  // The answer is out: the request is over, and the connection reads the next one (or closes).
  void finish_answer(Peer& p, uint64_t now) {
    std::shared_ptr<HttpReply::Conn> conn = std::move(p.req);
    const bool stream = p.answer == Peer::Answer::stream;
    p.answer = Peer::Answer::none;
    p.file.reset();
    // An idle kept-alive connection holds no large buffers.
    if (p.out.capacity() > 2 * kCopyBody) std::string().swap(p.out);
    if (p.close_after) {
      linger_or_close(p, now);
    } else {
      p.state = Peer::State::head;
      p.phase = Peer::Phase::idle;  // a kept-alive connection now has idle_timeout_s for its next head
      p.since_ms = now;
    }
    if (conn) end_request(*conn, stream ? HttpStream::End::finished : HttpStream::End::client_gone);
  }

  void hand_over(Peer& p, uint64_t now) {
    std::shared_ptr<HttpReply::Conn> conn = std::move(p.req);
    std::function<void(UpgradedSocket)> callback = conn ? std::move(conn->on_upgraded) : nullptr;
    p.answer = Peer::Answer::none;
    p.state = Peer::State::upgraded;
    p.phase = Peer::Phase::busy;
    set_send_buffer(p.fd);
    auto state = std::make_shared<UpgradedSocket::State>();
    state->server = &s;
    state->peer = p.id;
    state->early.assign(p.in, p.in_head, std::string::npos);
    p.in.clear();
    p.in.shrink_to_fit();
    p.in_head = 0;
    if (p.tls) {
      // The application speaks plain bytes on its end of a socket pair; the relay carries them through TLS.
      int pair[2];
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) {
        close_peer(p, HttpStream::End::client_gone);
        if (conn) end_request(*conn, HttpStream::End::client_gone);
        return;
      }
      set_send_buffer(pair[0]);
      set_send_buffer(pair[1]);
      state->fd = pair[0];
      p.relay_fd = pair[1];
    } else {
      // The socket is the application's to watch now: out of this epoll set.
      if (p.events) epoll_ctl(s.epoll_fd_, EPOLL_CTL_DEL, p.fd, nullptr);
      p.events = 0;
      state->fd = p.fd;
    }
    p.up = state.get();
    upgraded.insert(state.get());
    if (conn) end_request(*conn, HttpStream::End::finished);
    // Dropped by the application at once, the handle's destructor gives the socket back.
    if (callback) callback(UpgradedSocket(std::move(state)));
    if (!p.dead && p.tls) relay(p, now);
  }

  // ---- requests
  // The head is in: a request the application sees, or an error answered here.
  void begin_request(Peer& p, size_t head_len, uint64_t now) {
    const std::string_view raw(p.in.data() + p.in_head, head_len);
    http::RequestHead& h = p.head;
    std::optional<http::ParseError> bad = http::parse_head(raw, h);
    p.in_head += head_len;
    p.scanner.reset();
    p.phase = Peer::Phase::busy;
    p.since_ms = now;
    p.active_ms = now;
    p.keep_alive = h.keep_alive;
    p.close_after = false;
    p.head_only = h.method == "HEAD";
    if (bad) {
      answer_error(p, bad->status, bad->message);
      return;
    }
    auto conn = std::make_shared<HttpReply::Conn>();
    conn->server = &s;
    conn->peer = p.id;
    HttpRequest& r = conn->request;
    r.method = h.method;
    r.path = std::move(h.path);
    r.query = std::move(h.query);
    r.headers = std::move(h.headers);
    r.remote = p.remote;
    p.req = conn;
    // The application may take the body as it arrives (with a limit of its own) instead of having it
    // gathered here.
    p.limit = s.options_.max_body_bytes;
    if (s.options_.body_sink) {
      if (std::unique_ptr<HttpBodySink> sink = s.options_.body_sink(r)) {
        p.limit = sink->max_bytes();
        r.body_sink = std::move(sink);
      }
    }
    if (!p.req || p.dead) return;
    p.too_large = false;
    p.discarded = 0;
    p.sink_refused = false;
    // An announced oversize body is refused from the head: the 413 goes out before any body byte is read and
    // instead of a "100 Continue", and the connection closes.
    if (h.framing == http::BodyFraming::length && h.content_length > p.limit) {
      answer_error(p, 413, "request body exceeds the limit of " + std::to_string(p.limit) + " bytes");
      return;
    }
    if (h.framing == http::BodyFraming::none) {
      dispatch(p);
      return;
    }
    p.state = Peer::State::body;
    p.body_left = h.content_length;
    p.chunked.reset();
    if (h.expect_continue && p.input() == 0) p.out += "HTTP/1.1 100 Continue\r\n\r\n";
  }

  void take_body(Peer& p, std::string_view piece) {
    if (piece.empty()) return;
    if (p.too_large) {
      p.discarded += piece.size();
      return;
    }
    HttpRequest& r = p.req->request;
    if (r.body_bytes + piece.size() > p.limit) {
      // Read on to the end (the client then reads a 413, not a reset); the sink's work is abandoned.
      p.too_large = true;
      p.discarded = piece.size();
      r.body.clear();
      r.body.shrink_to_fit();
      r.body_sink.reset();
      return;
    }
    r.body_bytes += piece.size();
    if (!r.body_sink)
      r.body.append(piece);
    else if (!p.sink_refused)
      p.sink_refused = !r.body_sink->write(piece);
  }

  // Consumes body bytes from the input; dispatches once the body is complete.
  void read_body(Peer& p) {
    while (p.input() && p.state == Peer::State::body && !p.dead) {
      // An oversize body is read on so the client sees the 413, but not without end.
      if (p.too_large && p.discarded > kLingerBytes) {
        body_done(p);
        return;
      }
      const std::string_view avail(p.in.data() + p.in_head, p.input());
      if (p.head.framing == http::BodyFraming::length) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(p.body_left, avail.size()));
        take_body(p, avail.substr(0, n));
        p.in_head += n;
        p.body_left -= n;
        if (p.body_left == 0) body_done(p);
        continue;
      }
      const http::ChunkedDecoder::Step step = p.chunked.feed(avail);
      p.in_head += step.consumed;
      if (step.error) {
        answer_error(p, step.error->status, step.error->message);
        return;
      }
      take_body(p, step.data);
      if (p.chunked.done()) body_done(p);
      if (step.consumed == 0) break;
    }
  }

  void body_done(Peer& p) {
    if (p.too_large) {
      answer_error(p, 413, "request body exceeds the limit of " + std::to_string(p.limit) + " bytes");
      return;
    }
    dispatch(p);
  }

  void dispatch(Peer& p) {
    p.state = Peer::State::handling;
    // A request that waits for its answer (a stream may wait for hours) keeps no read buffer.
    if (p.input() == 0) {
      std::string().swap(p.in);
      p.in_head = 0;
    }
    std::shared_ptr<HttpReply::Conn> conn = p.req;
    s.handler_(conn->request, HttpReply(conn));
  }

  // ---- the connection's work: handshake, answers, output, input, until nothing moves.
  void pump(Peer& p, uint64_t now) {
    int round = 0;
    for (; round < kPumpRounds && !p.dead; ++round) {
      bool moved = false;
      if (p.tls && !p.handshaken) {
        auto done = p.tls->handshake();
        if (!done) {
          close_peer(p, HttpStream::End::client_gone);
          return;
        }
        if (!*done) break;
        p.handshaken = true;
        moved = true;
      }
      if (p.state == Peer::State::upgraded) {
        if (p.tls) relay(p, now);
        return;
      }
      if (p.state == Peer::State::handling && p.req && take_answer(p)) {
        p.active_ms = now;  // the inactivity clock starts with the answer
        moved = true;
      }
      if (!flush(p, now, moved)) return;
      if (p.state == Peer::State::sending && !p.output_pending()) {
        if (p.answer == Peer::Answer::upgrade) {
          hand_over(p, now);
          return;
        }
        if (p.answer == Peer::Answer::plain || p.answer == Peer::Answer::none ||
            (p.answer == Peer::Answer::stream && p.stream_ended)) {
          finish_answer(p, now);
          moved = true;
          if (p.dead) return;
        }
      }
      if (p.state == Peer::State::head && p.input()) {
        const http::HeadScanner::Scan scan =
            p.scanner.scan(std::string_view(p.in.data() + p.in_head, p.input()));
        if (scan.error) {
          answer_error(p, scan.error->status, scan.error->message);
          moved = true;
          continue;
        }
        if (scan.end) {
          begin_request(p, scan.end, now);
          moved = true;
          continue;
        }
      }
      if (p.state == Peer::State::body && p.input()) {
        read_body(p);
        moved = true;
        if (p.dead) return;
        continue;
      }
      if (p.in_head == p.in.size()) {
        p.in.clear();
        p.in_head = 0;
      }
      if (wants_read(p)) {
        const int r = read_more(p, now);
        if (r < 0) return;
        if (r > 0) moved = true;
      }
      if (!moved) break;
    }
    if (p.dead) return;
    // Out of rounds with work left (pipelined requests in the buffer): the next turn goes on.
    if (round == kPumpRounds) dirty.insert(p.id);
    update_events(p);
  }

  bool wants_read(const Peer& p) const {
    if (p.tls && !p.handshaken) return false;
    switch (p.state) {
      case Peer::State::head:
      case Peer::State::body:
        return p.input() < kMaxInput;
      case Peer::State::lingering:
        return true;
      default:
        return false;
    }
  }

  // Reads once. > 0 bytes came, 0 none now, < 0 the connection is over (closed here).
  int read_more(Peer& p, uint64_t now) {
    if (p.in_head > 0 && p.in_head >= p.in.size() / 2) {
      p.in.erase(0, p.in_head);
      p.in_head = 0;
    }
    const size_t old = p.in.size();
    p.in.resize(old + kReadBlock);
    const ssize_t n = recv_some(p, p.in.data() + old, kReadBlock);
    p.in.resize(old + static_cast<size_t>(std::max<ssize_t>(n, 0)));
    if (n < 0) {
      // The client closed (or broke) the connection: whatever it was in the middle of is abandoned.
      close_peer(p, HttpStream::End::client_gone);
      return -1;
    }
    if (n == 0) return 0;
    p.active_ms = now;
    if (p.state == Peer::State::lingering) {
      p.lingered += static_cast<size_t>(n);
      p.in.clear();
      p.in_head = 0;
      if (p.lingered > kLingerBytes) {
        close_peer(p, HttpStream::End::client_gone);
        return -1;
      }
    }
    return 1;
  }

  void update_events(Peer& p) {
    if (p.state == Peer::State::upgraded) return;
    // A half-closed client is not watched for the hang-up it already gave (level-triggered, it would spin).
    uint32_t ev = p.peer_eof ? 0u : static_cast<uint32_t>(EPOLLRDHUP);
    const bool tls_read = p.tls && p.tls->want() == tls::Session::Want::read;
    const bool tls_write = p.tls && p.tls->want() == tls::Session::Want::write;
    if (wants_read(p) || tls_read || (p.tls && !p.handshaken)) ev |= EPOLLIN;
    if (p.output_pending() || tls_write) ev |= EPOLLOUT;
    set_events(p.fd, p.id, p.events, ev);
  }

  // A socket event of a connection.
  void on_event(Peer& p, uint32_t ev, uint64_t now) {
    if ((ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !(ev & EPOLLIN && wants_read(p))) {
      if (ev & (EPOLLHUP | EPOLLERR)) {
        close_peer(p, HttpStream::End::client_gone);
        return;
      }
      // A half-close while the application has the request (or a stream is waiting for bytes): a stream's
      // client has gone; a plain answer is still sent, then the connection closes.
      if (p.answer == Peer::Answer::stream || p.state == Peer::State::head) {
        close_peer(p, HttpStream::End::client_gone);
        return;
      }
      p.peer_eof = true;
      p.keep_alive = false;
    }
    pump(p, now);
  }

  // ---- the relay of an upgraded HTTPS connection
  void relay(Peer& p, uint64_t now) {
    char buf[16 * 1024];
    for (int round = 0; round < kPumpRounds && !p.dead; ++round) {
      bool moved = false;
      // Client → application.
      if (!p.client_closed && p.to_app.size() < kRelayBuffer) {
        const ssize_t n = recv_some(p, buf, std::min(sizeof buf, kRelayBuffer - p.to_app.size()));
        if (n < 0) {
          p.client_closed = true;
        } else if (n > 0) {
          p.to_app.append(buf, static_cast<size_t>(n));
          moved = true;
        }
      }
      if (!p.to_app.empty() && p.relay_fd >= 0) {
        const ssize_t n = ::send(p.relay_fd, p.to_app.data(), p.to_app.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          p.to_app.erase(0, static_cast<size_t>(n));
          moved = true;
        } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
          p.to_app.clear();
        }
      }
      // The client's end reaches the application after the bytes it sent before it.
      if (p.client_closed && p.to_app.empty() && !p.app_told_end) {
        p.app_told_end = true;
        ::shutdown(p.relay_fd, SHUT_WR);
      }
      // Application → client.
      if (!p.app_closed && p.to_client.size() < kRelayBuffer) {
        const ssize_t n =
            ::recv(p.relay_fd, buf, std::min(sizeof buf, kRelayBuffer - p.to_client.size()), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
          p.app_closed = true;
        } else if (n > 0) {
          p.to_client.append(buf, static_cast<size_t>(n));
          moved = true;
        }
      }
      if (!p.to_client.empty() && !p.client_closed) {
        const ssize_t n = send_some(p, p.to_client.data(), p.to_client.size());
        if (n > 0) {
          p.to_client.erase(0, static_cast<size_t>(n));
          p.active_ms = now;
          moved = true;
        } else if (n < 0) {
          p.client_closed = true;
          p.to_client.clear();
        }
      }
      if (!moved) break;
    }
    // Done when the application has given its end back and everything it wrote is out (or cannot be).
    if (p.app_closed && (p.to_client.empty() || p.client_closed) && !p.up) {
      if (!p.client_closed) p.tls->shutdown();
      close_peer(p, HttpStream::End::client_gone);
      return;
    }
    uint32_t ev = 0;
    const bool tls_write = p.tls->want() == tls::Session::Want::write;
    if (!p.client_closed) {
      if (p.to_app.size() < kRelayBuffer || p.tls->want() == tls::Session::Want::read) ev |= EPOLLIN;
      if (!p.to_client.empty() || tls_write) ev |= EPOLLOUT;
    }
    set_events(p.fd, p.id, p.events, ev);
    uint32_t rev = 0;
    if (!p.app_closed && p.to_client.size() < kRelayBuffer) rev |= EPOLLIN;
    if (!p.to_app.empty()) rev |= EPOLLOUT;
    set_events(p.relay_fd, p.id | kRelayBit, p.relay_events, rev);
  }

  void set_events(int fd, uint64_t data, uint32_t& current, uint32_t want) {
    if (want == current) return;
    epoll_event e{};
    e.events = want;
    e.data.u64 = data;
    if (!want)
      epoll_ctl(s.epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    else
      epoll_ctl(s.epoll_fd_, current ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &e);
    current = want;
  }

  // ---- deadlines
  std::optional<uint64_t> deadline(const Peer& p) const {
    const HttpServerOptions& o = s.options_;
    switch (p.state) {
      case Peer::State::head:
        return p.since_ms + 1000u * (p.phase == Peer::Phase::idle ? o.idle_timeout_s : o.header_timeout_s);
      case Peer::State::body:
        return p.active_ms + 1000u * o.connection_timeout_s;
      case Peer::State::sending:
        // A parked stream (nothing to send) waits for the application without limit.
        if (p.output_pending() || (p.req && (p.req->buffered() || p.req->closing)) ||
            p.answer != Peer::Answer::stream)
          return p.active_ms + 1000u * o.connection_timeout_s;
        return std::nullopt;
      case Peer::State::lingering:
        return p.linger_until_ms;
      default:
        return std::nullopt;
    }
  }

  void expire(uint64_t now) {
    std::vector<Peer*> due;
    for (auto& [id, p] : peers)
      if (auto d = deadline(*p); d && *d <= now) due.push_back(p.get());
    for (Peer* p : due)
      close_peer(
          *p, p->state == Peer::State::sending ? HttpStream::End::timed_out : HttpStream::End::client_gone);
  }

  // The oldest connection (of `addr`, when given) that may be ended to make room; nullptr when none.
  Peer* oldest_evictable(const std::string* addr) {
    Peer* best = nullptr;
    for (auto& [id, p] : peers) {
      // No request head yet (or idle in keep-alive), or closing anyway.
      const bool idle = p->state == Peer::State::lingering || p->state == Peer::State::head;
      if (p->dead || !idle || (addr && p->addr != *addr)) continue;
      if (!best || p->since_ms < best->since_ms) best = p.get();
    }
    return best;
  }

  void accept_some(uint64_t now) {
    const HttpServerOptions& o = s.options_;
    const unsigned per_client = std::min(
        o.max_connections_per_client ? o.max_connections_per_client : o.max_connections, o.max_connections);
    for (int i = 0; i < kAcceptBatch; ++i) {
      sockaddr_storage sa{};
      socklen_t len = sizeof sa;
      const int fd =
          accept4(s.listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // Out of descriptors: free one for the next try, and stop polling the listen socket meanwhile.
          if (Peer* v = oldest_evictable(nullptr)) close_peer(*v, HttpStream::End::client_gone);
          epoll_ctl(s.epoll_fd_, EPOLL_CTL_DEL, s.listen_fd_, nullptr);
          accept_paused_until_ms = now + kAcceptPauseMs;
          return;
        }
        continue;  // ECONNABORTED and the like: that one client gave up, the next may be waiting
      }
      std::string addr = address_of(sa);
      auto have = per_addr.find(addr);
      if (have != per_addr.end() && have->second >= per_client) {
        Peer* v = oldest_evictable(&addr);
        if (!v) {
          ::close(fd);  // every connection of this client is busy: the newcomer is the one refused
          continue;
        }
        close_peer(*v, HttpStream::End::client_gone);
      }
      if (live >= o.max_connections) {
        Peer* v = oldest_evictable(nullptr);
        if (!v) {
          ::close(fd);
          continue;
        }
        close_peer(*v, HttpStream::End::client_gone);
      }
      // Every write here is a whole answer, chunk or frame (a WebSocket's audio every 20 ms): Nagle's
      // algorithm would only hold a small one back behind the client's delayed ACK.
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto p = std::make_unique<Peer>();
      p->id = next_id++;
      p->fd = fd;
      p->remote = addr + ":" + std::to_string(port_of(sa));
      p->addr = std::move(addr);
      p->since_ms = p->active_ms = now;
      if (tls) {
        auto session = tls->accept(fd);
        if (!session) {
          ::close(fd);
          continue;
        }
        p->tls = std::move(*session);
      }
      ++live;
      ++per_addr[p->addr];
      Peer& ref = *p;
      peers.emplace(ref.id, std::move(p));
      pump(ref, now);
    }
  }
};

// ---- the application's handles

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
  // A closed request may have outlived its server: nothing of the server is touched then.
  if (conn_ && !conn_->answered && !conn_->closed) {
    send(conn_->server->impl_->error(500, "internal error: request was not answered"));
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
  conn_->server->impl_->dirty.insert(conn_->peer);
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
  conn_->server->impl_->streams.insert(conn_.get());
  conn_->server->impl_->dirty.insert(conn_->peer);
  return HttpStream(conn_);
}

void HttpReply::upgrade(HttpResponse head, std::function<void(UpgradedSocket)> on_upgraded) {
  if (!conn_ || conn_->answered) return;
  conn_->answered = true;
  if (conn_->closed) return;
  conn_->upgrade_head = std::move(head);
  conn_->on_upgraded = std::move(on_upgraded);
  conn_->server->impl_->dirty.insert(conn_->peer);
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
  HttpServer::Impl& impl = *c.server->impl_;
  // A parked stream's inactivity clock starts again with its first bytes, not when it last sent.
  if (c.buffered() == 0)
    if (HttpServer::Peer* p = impl.find(c.peer); p && !p->output_pending()) p->active_ms = mono_ms();
  c.out.append(bytes);
  impl.dirty.insert(c.peer);
  return true;
}

void HttpStream::close() {
  if (!connected()) return;
  conn_->closing = true;
  conn_->server->impl_->dirty.insert(conn_->peer);
}

void HttpStream::on_closed(std::function<void(End)> callback) {
  if (conn_ && conn_->streaming && !conn_->closed) conn_->on_closed = std::move(callback);
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
  return s_ && s_->peer ? s_->fd : -1;
}

std::string UpgradedSocket::take_early_bytes() {
  return s_ ? std::exchange(s_->early, {}) : std::string();
}

void UpgradedSocket::close() {
  if (!s_ || !s_->peer) return;
  s_->on_gone = nullptr;
  HttpServer::Impl& impl = *s_->server->impl_;
  impl.upgraded.erase(s_.get());
  HttpServer::Peer* p = impl.find(std::exchange(s_->peer, 0));
  const int fd = std::exchange(s_->fd, -1);
  if (!p) return;
  p->up = nullptr;
  if (p->tls) {
    // The relay sends what the application wrote before closing, then ends the TLS connection.
    ::close(fd);
    impl.dirty.insert(p->id);
    return;
  }
  impl.close_peer(*p, HttpStream::End::client_gone);
}

void UpgradedSocket::on_server_gone(std::function<void()> callback) {
  if (s_ && s_->peer) s_->on_gone = std::move(callback);
}

// ---- the server

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

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler)
    : options_(std::move(options)), handler_(std::move(handler)), impl_(std::make_unique<Impl>(*this)) {}

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
  self->port_ = port_of(bound);

  const bool tls = !o.tls_cert_pem.empty() || !o.tls_key_pem.empty();
  if (tls && (o.tls_cert_pem.empty() || o.tls_key_pem.empty()))
    return make_error("HTTPS needs both a certificate and a key");
  if (tls) {
    auto ctx = tls::Context::create(o.tls_cert_pem, o.tls_key_pem);
    if (!ctx) return ctx.error();
    self->impl_->tls = std::move(*ctx);
  }

  self->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (self->epoll_fd_ < 0) return make_error(std::string("epoll_create1: ") + std::strerror(errno), -errno);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;
  if (epoll_ctl(self->epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0)
    return make_error(std::string("epoll_ctl: ") + std::strerror(errno), -errno);
  return self;
}

HttpServer::~HttpServer() {
  Impl& m = *impl_;
  m.stopping = true;
  // Holders of upgraded sockets are told first, while the socket is still open.
  for (UpgradedSocket::State* u : std::vector<UpgradedSocket::State*>(m.upgraded.begin(), m.upgraded.end())) {
    if (!m.upgraded.count(u)) continue;  // an earlier holder's callback closed it
    if (auto gone = std::move(u->on_gone)) gone();
  }
  // Every connection closes; replies and streams held by the application see the end.
  std::vector<uint64_t> ids;
  for (const auto& [id, p] : m.peers) ids.push_back(id);
  for (uint64_t id : ids)
    if (Peer* p = m.find(id)) m.close_peer(*p, HttpStream::End::server_stopped);
  m.graveyard.clear();
  if (listen_fd_ >= 0) close(listen_fd_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

int HttpServer::poll_fd() const {
  return epoll_fd_;
}

size_t HttpServer::connection_count() const {
  return impl_->live;
}

size_t HttpServer::stream_count() const {
  return impl_->streams.size();
}

size_t HttpServer::upgraded_count() const {
  return impl_->upgraded.size();
}

std::optional<uint64_t> HttpServer::timeout_ms() const {
  // An answer or stream bytes from the application wait for the next run().
  if (!impl_->dirty.empty()) return 0;
  std::optional<uint64_t> best;
  const uint64_t now = mono_ms();
  auto consider = [&](uint64_t deadline) {
    const uint64_t in = deadline > now ? deadline - now : 0;
    if (!best || in < *best) best = in;
  };
  for (const auto& [id, p] : impl_->peers)
    if (auto d = impl_->deadline(*p)) consider(*d);
  if (impl_->accept_paused_until_ms) consider(impl_->accept_paused_until_ms);
  return best;
}

void HttpServer::run() {
  Impl& m = *impl_;
  uint64_t now = mono_ms();
  epoll_event evs[kEventBatch];
  const int n = epoll_wait(epoll_fd_, evs, kEventBatch, 0);
  bool listen_ready = false;
  for (int i = 0; i < n; ++i) {
    const uint64_t data = evs[i].data.u64;
    if (data == 0) {
      listen_ready = true;
      continue;
    }
    Peer* p = m.find(data & ~kRelayBit);
    if (!p) continue;  // closed earlier in this turn
    if (p->state == Peer::State::upgraded) {
      if (p->tls) m.relay(*p, now);
    } else {
      m.on_event(*p, evs[i].events, now);
    }
  }
  // Answers and stream bytes the application gave since the last turn (or during this one).
  for (int round = 0; round < 4 && !m.dirty.empty(); ++round) {
    std::vector<uint64_t> ids(m.dirty.begin(), m.dirty.end());
    m.dirty.clear();
    for (uint64_t id : ids)
      if (Peer* p = m.find(id)) m.pump(*p, now);
  }
  now = mono_ms();
  m.expire(now);
  if (listen_fd_ >= 0) {
    if (m.accept_paused_until_ms && now >= m.accept_paused_until_ms) {
      m.accept_paused_until_ms = 0;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = 0;
      epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
      listen_ready = true;
    }
    if (listen_ready && !m.accept_paused_until_ms) m.accept_some(now);
  }
  m.graveyard.clear();
}

void HttpServer::quiesce() {
  Impl& m = *impl_;
  // Streams never end by themselves: closed here, each finishes sending what it holds while the loop runs.
  for (HttpReply::Conn* c : std::vector<HttpReply::Conn*>(m.streams.begin(), m.streams.end())) {
    if (c->closing || c->closed) continue;
    c->closing = true;
    m.dirty.insert(c->peer);
  }
  // New connections are refused at once rather than left unanswered in the backlog.
  if (listen_fd_ < 0) return;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
  close(listen_fd_);
  listen_fd_ = -1;
  m.accept_paused_until_ms = 0;
}

}  // namespace osvi::net
