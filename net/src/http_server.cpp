// libmicrohttpd glue: epoll mode without internal threads, bodies accumulated with a limit,
// suspend/resume so handlers may answer later from the loop.
#include "osvi/net/http_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "osvi/net/text.hpp"

namespace osvi::net {

namespace {

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
  bool dispatched = false;
  bool suspended = false;
  bool closed = false;
  bool answered = false;
  std::optional<HttpResponse> pending;
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
  if (conn_ && !conn_->answered) {
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
  if (conn_->suspended) {
    conn_->suspended = false;
    MHD_resume_connection(conn_->mhd);
    conn_->server->resume_pending_ = true;
  }
}

struct HttpServer::Glue {
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

  static MHD_Result access(void* cls, MHD_Connection* connection, const char* url, const char* method,
                           const char* /*version*/, const char* upload_data, size_t* upload_data_size,
                           void** con_cls) {
    auto* self = static_cast<HttpServer*>(cls);
    auto* holder = static_cast<std::shared_ptr<HttpReply::Conn>*>(*con_cls);
    if (!holder) {
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
      // Refuse an announced oversize body before reading a byte of it.
      if (auto cl = c.request.header("Content-Length")) {
        unsigned long long n = std::strtoull(std::string(*cl).c_str(), nullptr, 10);
        if (n > self->options_.max_body_bytes) c.too_large = true;
      }
      return MHD_YES;
    }
    HttpReply::Conn& c = **holder;
    if (*upload_data_size != 0) {
      if (!c.too_large) {
        if (c.request.body.size() + *upload_data_size > self->options_.max_body_bytes) {
          c.too_large = true;
          c.request.body.clear();
          c.request.body.shrink_to_fit();
        } else {
          c.request.body.append(upload_data, *upload_data_size);
        }
      }
      *upload_data_size = 0;
      return MHD_YES;
    }
    if (c.too_large) {
      c.answered = true;
      HttpResponse r = error(
          self, 413,
          "request body exceeds the limit of " + std::to_string(self->options_.max_body_bytes) + " bytes");
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
    if (!c.answered && !c.suspended) {
      c.suspended = true;
      MHD_suspend_connection(connection);
    }
    return MHD_YES;
  }

  static void completed(void* /*cls*/, MHD_Connection*, void** con_cls, MHD_RequestTerminationCode) {
    auto* holder = static_cast<std::shared_ptr<HttpReply::Conn>*>(*con_cls);
    if (!holder) return;
    (*holder)->closed = true;
    delete holder;
    *con_cls = nullptr;
  }
};

Result<std::unique_ptr<HttpServer>> HttpServer::start(HttpServerOptions options, HttpHandler handler) {
  std::unique_ptr<HttpServer> self(new HttpServer(std::move(options), std::move(handler)));
  const HttpServerOptions& o = self->options_;

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
  if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 64) != 0) {
    int e = errno;
    close(fd);
    return make_error("cannot listen on " + o.host + ":" + port + ": " + std::strerror(e), -e);
  }
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &blen);
  self->port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                  : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);

  unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
  self->daemon_ =
      MHD_start_daemon(flags, 0, nullptr, nullptr, &Glue::access, self.get(), MHD_OPTION_LISTEN_SOCKET, fd,
                       MHD_OPTION_CONNECTION_LIMIT, o.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                       o.connection_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, &Glue::completed, self.get(),
                       MHD_OPTION_UNESCAPE_CALLBACK, &unescape, nullptr, MHD_OPTION_END);
  if (!self->daemon_) {
    close(fd);
    return make_error("libmicrohttpd failed to start on " + o.host + ":" + port);
  }
  return self;
}

HttpServer::~HttpServer() {
  if (daemon_) MHD_stop_daemon(daemon_);
  // MHD closes its listen socket on stop, unless quiesce() took it back: then it is ours to close.
  if (listen_fd_ >= 0) close(listen_fd_);
}

int HttpServer::poll_fd() const {
  const MHD_DaemonInfo* info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_EPOLL_FD);
  return info ? info->epoll_fd : -1;
}

std::optional<uint64_t> HttpServer::timeout_ms() const {
  if (resume_pending_) return 0;
  MHD_UNSIGNED_LONG_LONG t = 0;
  if (MHD_get_timeout(daemon_, &t) != MHD_YES) return std::nullopt;
  return static_cast<uint64_t>(t);
}

void HttpServer::run() {
  resume_pending_ = false;
  MHD_run(daemon_);
}

void HttpServer::quiesce() {
  if (!daemon_ || listen_fd_ >= 0) return;
  MHD_socket fd = MHD_quiesce_daemon(daemon_);
  if (fd != MHD_INVALID_SOCKET) listen_fd_ = fd;
}

}  // namespace osvi::net
