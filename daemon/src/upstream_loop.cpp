// Binds net::HttpClient's socket and timer hooks to sd-event sources.
#include "osvi/daemon/upstream_loop.hpp"

#include <poll.h>
#include <sys/epoll.h>

#include "osvi/daemon/log.hpp"

namespace osvi::daemon {

Result<std::unique_ptr<UpstreamLoop>> UpstreamLoop::create(EventLoop& loop, net::OpenAiOptions options) {
  std::unique_ptr<UpstreamLoop> u(new UpstreamLoop(loop));
  UpstreamLoop* raw = u.get();
  auto timer = loop.add_timer(UINT64_MAX, [raw] { raw->client_->on_timeout(); });
  if (!timer) return timer.error();
  u->timer_ = std::move(*timer);
  net::HttpClient::Hooks hooks;
  hooks.watch = [raw](int fd, short events) { raw->watch(fd, events); };
  hooks.timer = [raw](int64_t ms) { raw->set_timer(ms); };
  auto client = net::HttpClient::create(std::move(hooks));
  if (!client) return client.error();
  u->client_ = std::move(*client);
  u->upstream_ = net::OpenAiUpstream::create(*u->client_, std::move(options));
  return u;
}

UpstreamLoop::~UpstreamLoop() {
  upstream_.reset();
  client_.reset();  // curl closes its sockets and calls watch(fd, 0) for them while io_ still exists
  io_.clear();
}

void UpstreamLoop::watch(int fd, short events) {
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
    log::error("upstream: cannot watch a socket: " + src.error().message);
    return;
  }
  io_[fd] = std::move(*src);
}

void UpstreamLoop::set_timer(int64_t timeout_ms) {
  if (timeout_ms < 0) {
    sd_event_source_set_enabled(timer_.get(), SD_EVENT_OFF);
    return;
  }
  EventLoop::set_timer(timer_.get(), loop_.now_us() + static_cast<uint64_t>(timeout_ms) * 1000);
}

}  // namespace osvi::daemon
