// The control loop's glue for the local HTTP server (osvi/base/http_on_loop.hpp).
#include "osvi/base/http_on_loop.hpp"

#include <sys/epoll.h>

#include <cstdint>
#include <utility>

namespace osvi::daemon {

Result<std::vector<EventSource>> serve_http_on_loop(EventLoop& loop, net::HttpServer& server) {
  net::HttpServer* srv = &server;
  auto timer = loop.add_timer(UINT64_MAX, [srv] { srv->run(); });
  if (!timer) return timer.error();
  sd_event_source* timer_src = timer->get();
  // sd-event may fire a timer anywhere within its accuracy; the default (1 ms here) delays each reply sent
  // outside the server's run() (timeout_ms() 0) by up to that, once per resume. 1 µs: at once.
  if (int r = sd_event_source_set_time_accuracy(timer_src, 1); r < 0)
    return make_error("sd_event_source_set_time_accuracy failed", r);
  auto rearm = [&loop, srv, timer_src] {
    if (auto t = srv->timeout_ms()) EventLoop::set_timer(timer_src, loop.now_us() + *t * 1000);
  };
  auto io = loop.add_io(srv->poll_fd(), EPOLLIN, [srv, rearm](uint32_t) {
    srv->run();
    rearm();
  });
  if (!io) return io.error();
  auto post = loop.add_post(rearm);
  if (!post) return post.error();
  std::vector<EventSource> sources;
  sources.push_back(std::move(*io));
  sources.push_back(std::move(*timer));
  sources.push_back(std::move(*post));
  return sources;
}

}  // namespace osvi::daemon
