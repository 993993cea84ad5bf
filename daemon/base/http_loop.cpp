// Binds net::HttpClient's socket and timer hooks to sd-event sources (http_loop.hpp).
#include "osvi/base/http_loop.hpp"

#include <poll.h>
#include <sys/epoll.h>

#include "osvi/base/log.hpp"

namespace osvi::daemon {

Result<std::unique_ptr<HttpLoop>> HttpLoop::create(EventLoop& loop, std::string what) {
  std::unique_ptr<HttpLoop> h(new HttpLoop(loop, std::move(what)));
  HttpLoop* raw = h.get();
  auto timer = loop.add_timer(UINT64_MAX, [raw] {
    if (raw->client_) raw->client_->on_timeout();
  });
  if (!timer) return timer.error();
  h->timer_ = std::move(*timer);
  sd_event_source_set_enabled(h->timer_.get(), SD_EVENT_OFF);
  return h;
}

net::HttpClient* HttpLoop::client() {
  if (client_) return client_.get();
  net::HttpClient::Hooks hooks;
  hooks.watch = [this](int fd, short events) { watch(fd, events); };
  hooks.timer = [this](int64_t ms) { set_timer(ms); };
  auto client = net::HttpClient::create(std::move(hooks));
  if (!client) {
    log::error(what_ + ": cannot initialise libcurl: " + client.error().message);
    return nullptr;
  }
  client_ = std::move(*client);
  return client_.get();
}

HttpLoop::~HttpLoop() {
  client_.reset();  // curl closes its sockets and calls watch(fd, 0) for them while io_ still exists
  io_.clear();
}

void HttpLoop::watch(int fd, short events) {
  if (events == 0) {
    io_.erase(fd);
    return;
  }
  uint32_t ev = 0;
  if (events & POLLIN) ev |= EPOLLIN;
  if (events & POLLOUT) ev |= EPOLLOUT;
  if (auto it = io_.find(fd); it != io_.end()) {
    sd_event_source_set_io_events(it->second.get(), ev);
    return;
  }
  auto src = loop_.add_io(fd, ev, [this, fd](uint32_t revents) {
    short r = 0;
    if (revents & EPOLLIN) r |= POLLIN;
    if (revents & EPOLLOUT) r |= POLLOUT;
    if (revents & EPOLLERR) r |= POLLERR;
    if (revents & EPOLLHUP) r |= POLLHUP;
    client_->on_socket(fd, r);
  });
  if (!src) {
    log::error(what_ + ": cannot watch a socket: " + src.error().message);
    return;
  }
  io_[fd] = std::move(*src);
}

void HttpLoop::set_timer(int64_t timeout_ms) {
  if (timeout_ms < 0) {
    sd_event_source_set_enabled(timer_.get(), SD_EVENT_OFF);
    return;
  }
  EventLoop::set_timer(timer_.get(), loop_.now_us() + static_cast<uint64_t>(timeout_ms) * 1000);
}

}  // namespace osvi::daemon
