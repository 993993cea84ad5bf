// WebhookReceiver: one accepting thread and one thread per connection; blocking sockets with short polls so
// stop() is prompt.
#include "webhook_receiver.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "osvi/net/http_parser.hpp"

namespace osvi::test {
namespace {

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

std::string WebhookReceiver::Request::header(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (n.size() == name.size() && strncasecmp(n.data(), name.data(), n.size()) == 0) return v;
  return {};
}

Status WebhookReceiver::start(uint16_t port) {
  if (listen_fd_ >= 0) return make_error("receiver already running", -EBUSY);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error("socket", -errno);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 128) != 0) {
    int e = errno;
    ::close(fd);
    return make_error("bind/listen on 127.0.0.1:" + std::to_string(port), -e);
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  listen_fd_ = fd;
  stopping_ = false;
  acceptor_ = std::thread([this] { accept_loop(); });
  return {};
}

void WebhookReceiver::stop() {
  if (listen_fd_ < 0) return;
  stopping_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  ::close(listen_fd_);
  listen_fd_ = -1;
  std::vector<std::thread> workers;
  {
    std::lock_guard lock(mu_);
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    workers.swap(workers_);
  }
  cv_.notify_all();
  for (auto& t : workers) t.join();
}

std::string WebhookReceiver::url(std::string_view path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
}

void WebhookReceiver::set_default(Reply reply) {
  std::lock_guard lock(mu_);
  default_ = std::move(reply);
}

void WebhookReceiver::push(Reply reply) {
  std::lock_guard lock(mu_);
  script_.push_back(std::move(reply));
}

void WebhookReceiver::set_route(const std::string& path, Reply reply) {
  std::lock_guard lock(mu_);
  routes_[path] = std::move(reply);
}

std::vector<WebhookReceiver::Request> WebhookReceiver::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

size_t WebhookReceiver::count() const {
  std::lock_guard lock(mu_);
  return requests_.size();
}

void WebhookReceiver::clear() {
  std::lock_guard lock(mu_);
  requests_.clear();
}

bool WebhookReceiver::wait_for(size_t n, int64_t timeout_ms) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return requests_.size() >= n; });
}

WebhookReceiver::Reply WebhookReceiver::choose(const std::string& target) {
  std::string path = target.substr(0, target.find('?'));
  if (auto it = routes_.find(path); it != routes_.end()) return it->second;
  if (!script_.empty()) {
    Reply r = std::move(script_.front());
    script_.pop_front();
    return r;
  }
  return default_;
}

void WebhookReceiver::accept_loop() {
  while (!stopping_) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // shut down
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::lock_guard lock(mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    open_fds_.push_back(fd);
    workers_.emplace_back([this, fd] { serve(fd); });
  }
}

void WebhookReceiver::serve(int fd) {
  std::string buf;
  bool alive = true;
  // Requests and bodies of a test are small: 16 MiB is a bound, not a limit anybody reaches.
  constexpr size_t kMax = 16u << 20;
  while (alive && !stopping_) {
    // Read one request: the head, then Content-Length bytes of body.
    size_t head_end = std::string::npos;
    size_t need = 0;
    bool have = false;
    while (!stopping_ && buf.size() < kMax) {
      if (head_end == std::string::npos) {
        head_end = buf.find("\r\n\r\n");
        if (head_end != std::string::npos) {
          need = head_end + 4;
          std::string lower = buf.substr(0, head_end);
          for (char& c : lower) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
          if (size_t p = lower.find("\r\ncontent-length:"); p != std::string::npos)
            need += std::strtoull(lower.c_str() + p + 17, nullptr, 10);
        }
      }
      if (head_end != std::string::npos && buf.size() >= need) {
        have = true;
        break;
      }
      pollfd p{fd, POLLIN, 0};
      int r = ::poll(&p, 1, 50);
      if (r == 0) continue;
      char chunk[16384];
      ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      buf.append(chunk, static_cast<size_t>(n));
    }
    if (!have) break;

    Request req;
    req.received_ms = steady_ms();
    std::string_view head(buf.data(), head_end);
    size_t eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    size_t sp1 = line.find(' ');
    size_t sp2 = line.find(' ', sp1 + 1);
    req.method = std::string(line.substr(0, sp1));
    req.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
    std::string_view rest = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
    while (!rest.empty()) {
      size_t e = rest.find("\r\n");
      std::string_view h = rest.substr(0, e);
      rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 2);
      size_t colon = h.find(':');
      if (colon == std::string_view::npos) continue;
      std::string_view value = h.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      req.headers.emplace_back(std::string(h.substr(0, colon)), std::string(value));
    }
    req.body = buf.substr(head_end + 4, need - head_end - 4);
    buf.erase(0, need);
    bool close_after = strcasecmp(req.header("Connection").c_str(), "close") == 0;

    Reply reply;
    {
      std::lock_guard lock(mu_);
      reply = choose(req.target);
      requests_.push_back(std::move(req));
    }
    cv_.notify_all();

    if (reply.delay_ms > 0 || reply.mode == Mode::hang) {
      std::unique_lock lock(mu_);
      auto stop_waiting = [this] { return stopping_.load(); };
      if (reply.mode == Mode::hang)
        cv_.wait(lock, stop_waiting);
      else
        cv_.wait_for(lock, std::chrono::milliseconds(reply.delay_ms), stop_waiting);
    }
    if (stopping_ || reply.mode == Mode::hang) break;
    if (reply.mode == Mode::reset) {
      linger l{1, 0};  // close() then sends RST instead of FIN
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      break;
    }
    if (reply.mode == Mode::close) break;
    std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " " +
                      std::string(osvi::net::http::reason_phrase(reply.status)) +
                      "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(reply.body.size()) +
                      "\r\n";
    if (!reply.location.empty()) out += "Location: " + reply.location + "\r\n";
    if (close_after) out += "Connection: close\r\n";
    out += "\r\n" + reply.body;
    if (!send_all(fd, out) || close_after) alive = false;
  }
  std::lock_guard lock(mu_);
  std::erase(open_fds_, fd);
  ::close(fd);
}

}  // namespace osvi::test
