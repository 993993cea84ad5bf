// The control loop: sd-event with RAII sources and std::function callbacks, and the loop-backed clock.
//
// Threading: everything here runs on the loop thread. Other threads reach the loop only through an
// eventfd watched with add_io().
#pragma once

#include <systemd/sd-event.h>

#include <cstdint>
#include <functional>
#include <memory>

#include "osvi/clock.hpp"
#include "osvi/result.hpp"

namespace osvi::daemon {

struct EventSourceUnref {
  void operator()(sd_event_source* s) const { sd_event_source_disable_unref(s); }
};
// Destroying the pointer disables the source and frees its callback.
using EventSource = std::unique_ptr<sd_event_source, EventSourceUnref>;

class EventLoop {
 public:
  static Result<std::unique_ptr<EventLoop>> create();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  sd_event* get() const { return event_; }

  Result<EventSource> add_io(int fd, uint32_t events, std::function<void(uint32_t revents)> cb);
  // One-shot timer at an absolute CLOCK_MONOTONIC time in µs; re-arm with set_timer().
  Result<EventSource> add_timer(uint64_t when_us, std::function<void()> cb);
  static void set_timer(sd_event_source* timer, uint64_t when_us);
  // The signal must already be blocked in every thread (see block_signals()).
  Result<EventSource> add_signal(int signo, std::function<void()> cb);
  // Runs once per loop iteration before sleeping.
  Result<EventSource> add_post(std::function<void()> cb);

  // Pings the systemd watchdog at half of WATCHDOG_USEC when the service manager asked for it.
  Status enable_watchdog();
  bool watchdog_enabled() const;

  int run();
  void exit(int code);
  uint64_t now_us() const;  // the loop's cached CLOCK_MONOTONIC now

  static Status block_signals(std::initializer_list<int> signals);

 private:
  explicit EventLoop(sd_event* e) : event_(e) {}
  sd_event* event_;
};

// Clock backed by the loop's cached "now", so every handler in one iteration sees the same time.
class LoopClock final : public Clock {
 public:
  explicit LoopClock(const EventLoop& loop) : loop_(loop) {}
  int64_t monotonic_us() const override;
  int64_t wall_ms() const override;

 private:
  const EventLoop& loop_;
};

}  // namespace osvi::daemon
