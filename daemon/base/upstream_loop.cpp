// Binds net::HttpClient's socket and timer hooks to sd-event sources.
#include "osvi/base/upstream_loop.hpp"

#include <poll.h>
#include <sys/epoll.h>

#include "osvi/base/log.hpp"

namespace osvi::daemon {

Result<std::unique_ptr<UpstreamLoop>> UpstreamLoop::create(EventLoop& loop, net::OpenAiOptions options) {
  std::unique_ptr<UpstreamLoop> u(new UpstreamLoop(loop, std::move(options)));
  UpstreamLoop* raw = u.get();
  auto timer = loop.add_timer(UINT64_MAX, [raw] {
    if (raw->client_) raw->client_->on_timeout();
  });
  if (!timer) return timer.error();
  u->timer_ = std::move(*timer);
  sd_event_source_set_enabled(u->timer_.get(), SD_EVENT_OFF);
  return u;
}

net::Upstream* UpstreamLoop::ensure() {
  if (upstream_) return upstream_.get();
  net::HttpClient::Hooks hooks;
  hooks.watch = [this](int fd, short events) { watch(fd, events); };
  hooks.timer = [this](int64_t ms) { set_timer(ms); };
  auto client = net::HttpClient::create(std::move(hooks));
  if (!client) {
    log::error("upstream: cannot initialise libcurl: " + client.error().message);
    return nullptr;
  }
  client_ = std::move(*client);
  upstream_ = net::OpenAiUpstream::create(*client_, options_);
  return upstream_.get();
}

// Without libcurl every request fails at once; OpenAiUpstream reports errors on a later loop turn, so do
// we (a zero-delay timer), never from inside the call that made the request.
namespace {
template <class Callbacks>
net::RequestId fail_later(EventLoop& loop, net::UpstreamStage stage, Callbacks cb) {
  auto src = std::make_shared<EventSource>();
  auto t = loop.add_timer(loop.now_us(), [src, stage, cb = std::move(cb)] {
    net::UpstreamError e;
    e.stage = stage;
    e.kind = net::UpstreamError::Kind::connect;
    e.message = "libcurl is not available";
    if (cb.on_error) cb.on_error(e);
    src->reset();
  });
  if (t) *src = std::move(*t);
  return 0;
}
}  // namespace

net::RequestId UpstreamLoop::transcribe(net::SttRequest request, net::SttCallbacks callbacks) {
  if (net::Upstream* u = ensure()) return u->transcribe(std::move(request), std::move(callbacks));
  return fail_later(loop_, net::UpstreamStage::stt, std::move(callbacks));
}

net::RequestId UpstreamLoop::chat(net::ChatRequest request, net::ChatCallbacks callbacks) {
  if (net::Upstream* u = ensure()) return u->chat(std::move(request), std::move(callbacks));
  return fail_later(loop_, net::UpstreamStage::llm, std::move(callbacks));
}

net::RequestId UpstreamLoop::speak(net::TtsRequest request, net::TtsCallbacks callbacks) {
  if (net::Upstream* u = ensure()) return u->speak(std::move(request), std::move(callbacks));
  return fail_later(loop_, net::UpstreamStage::tts, std::move(callbacks));
}

void UpstreamLoop::cancel(net::RequestId id) {
  if (upstream_) upstream_->cancel(id);
}

std::vector<net::BreakerState> UpstreamLoop::breakers() const {
  return upstream_ ? upstream_->breakers() : std::vector<net::BreakerState>{};
}

bool UpstreamLoop::breaker_open(std::string_view base_url) const {
  return upstream_ && upstream_->breaker_open(base_url);
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
