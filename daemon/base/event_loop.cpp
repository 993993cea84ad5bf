// sd-event wrappers: callbacks live in heap boxes freed by sd-event's destroy callback.
#include "osvi/base/event_loop.hpp"

#include <signal.h>

#include <cstring>
#include <string>

namespace osvi::daemon {
namespace {

template <class F>
struct Box {
  F fn;
};

template <class F>
void destroy_box(void* userdata) {
  delete static_cast<Box<F>*>(userdata);
}

Error sd_error(const char* what, int r) {
  return make_error(std::string(what) + ": " + std::strerror(-r), r);
}

}  // namespace

Result<std::unique_ptr<EventLoop>> EventLoop::create() {
  sd_event* e = nullptr;
  int r = sd_event_new(&e);
  if (r < 0) return sd_error("sd_event_new", r);
  return std::unique_ptr<EventLoop>(new EventLoop(e));
}

EventLoop::~EventLoop() {
  sd_event_unref(event_);
}

Result<EventSource> EventLoop::add_io(int fd, uint32_t events, std::function<void(uint32_t)> cb) {
  using F = std::function<void(uint32_t)>;
  auto* box = new Box<F>{std::move(cb)};
  sd_event_source* s = nullptr;
  int r = sd_event_add_io(
      event_, &s, fd, events,
      [](sd_event_source*, int, uint32_t revents, void* ud) -> int {
        static_cast<Box<F>*>(ud)->fn(revents);
        return 0;
      },
      box);
  if (r < 0) {
    delete box;
    return sd_error("sd_event_add_io", r);
  }
  sd_event_source_set_destroy_callback(s, &destroy_box<F>);
  return EventSource(s);
}

Result<EventSource> EventLoop::add_timer(uint64_t when_us, std::function<void()> cb) {
  using F = std::function<void()>;
  auto* box = new Box<F>{std::move(cb)};
  sd_event_source* s = nullptr;
  int r = sd_event_add_time(
      event_, &s, CLOCK_MONOTONIC, when_us, 1000,
      [](sd_event_source*, uint64_t, void* ud) -> int {
        static_cast<Box<F>*>(ud)->fn();
        return 0;
      },
      box);
  if (r < 0) {
    delete box;
    return sd_error("sd_event_add_time", r);
  }
  sd_event_source_set_destroy_callback(s, &destroy_box<F>);
  return EventSource(s);
}

void EventLoop::set_timer(sd_event_source* timer, uint64_t when_us) {
  sd_event_source_set_time(timer, when_us);
  sd_event_source_set_enabled(timer, SD_EVENT_ONESHOT);
}

Result<EventSource> EventLoop::add_signal(int signo, std::function<void()> cb) {
  using F = std::function<void()>;
  auto* box = new Box<F>{std::move(cb)};
  sd_event_source* s = nullptr;
  int r = sd_event_add_signal(
      event_, &s, signo,
      [](sd_event_source*, const signalfd_siginfo*, void* ud) -> int {
        static_cast<Box<F>*>(ud)->fn();
        return 0;
      },
      box);
  if (r < 0) {
    delete box;
    return sd_error("sd_event_add_signal", r);
  }
  sd_event_source_set_destroy_callback(s, &destroy_box<F>);
  return EventSource(s);
}

Result<EventSource> EventLoop::add_post(std::function<void()> cb) {
  using F = std::function<void()>;
  auto* box = new Box<F>{std::move(cb)};
  sd_event_source* s = nullptr;
  int r = sd_event_add_post(
      event_, &s,
      [](sd_event_source*, void* ud) -> int {
        static_cast<Box<F>*>(ud)->fn();
        return 0;
      },
      box);
  if (r < 0) {
    delete box;
    return sd_error("sd_event_add_post", r);
  }
  sd_event_source_set_destroy_callback(s, &destroy_box<F>);
  return EventSource(s);
}

Status EventLoop::enable_watchdog() {
  int r = sd_event_set_watchdog(event_, 1);
  if (r < 0) return sd_error("sd_event_set_watchdog", r);
  return {};
}

bool EventLoop::watchdog_enabled() const {
  return sd_event_get_watchdog(event_) > 0;
}

int EventLoop::run() {
  return sd_event_loop(event_);
}
void EventLoop::exit(int code) {
  sd_event_exit(event_, code);
}

uint64_t EventLoop::now_us() const {
  uint64_t now = 0;
  sd_event_now(event_, CLOCK_MONOTONIC, &now);
  return now;
}

Status EventLoop::block_signals(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : signals) sigaddset(&set, s);
  int r = pthread_sigmask(SIG_BLOCK, &set, nullptr);
  if (r != 0) return make_error(std::string("pthread_sigmask: ") + std::strerror(r), -r);
  return {};
}

int64_t LoopClock::monotonic_us() const {
  return static_cast<int64_t>(loop_.now_us());
}

int64_t LoopClock::wall_ms() const {
  uint64_t now = 0;
  sd_event_now(loop_.get(), CLOCK_REALTIME, &now);
  return static_cast<int64_t>(now / 1000);
}

}  // namespace osvi::daemon
