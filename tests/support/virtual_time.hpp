// VirtualTime: a ManualClock with the timers and scheduled callbacks that run on it, for unit tests that
// drive loop code (a Call, SimUpstream) without sd-event and without waiting: time moves only in
// advance_ms().
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "osvi/calls/call_timers.hpp"
#include "osvi/clock.hpp"

namespace osvi::test {

class VirtualTime {
 public:
  ManualClock clock;

  // For CallContext::timer.
  daemon::CallTimerFactory timer_factory();
  // For SimUpstream: runs fn delay_ms later (never from inside the scheduling call).
  std::function<void(int64_t delay_ms, std::function<void()> fn)> schedule();

  // Fires everything due within the next `ms`, in time order, the clock moved to each (rounded up to the
  // millisecond); ends with the clock exactly `ms` later.
  void advance_ms(int64_t ms);
  // Fires what is due now (callbacks scheduled with delay 0, timers at or before now).
  void run_due() { advance_ms(0); }
  int64_t now_us() const { return clock.monotonic_us(); }

 private:
  struct Slot {
    int64_t at = -1;
    std::function<void()> fire;
  };
  class Timer;
  std::vector<std::weak_ptr<Slot>> timers_;
  std::multimap<std::pair<int64_t, uint64_t>, std::function<void()>> queue_;
  uint64_t seq_ = 0;
};

}  // namespace osvi::test
