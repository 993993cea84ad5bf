// The live calls' heartbeat: a periodic "still alive" moment in the store, so a daemon killed mid-call
// leaves behind how long its calls really lasted (start-up recovery reads it).
#pragma once

#include <cstdint>
#include <memory>

#include "osvi/base/event_loop.hpp"
#include "osvi/clock.hpp"
#include "osvi/result.hpp"

namespace osvi::daemon {

class Store;

// Loop thread only. Each period runs mark_calls_alive() (unit_of_work.hpp): one indexed probe, and one small
// upsert only while a call is live — nothing near the audio path, nothing written on an idle box. A
// failure is logged once per run of failures and retried at the next period.
class CallsHeartbeat {
 public:
  static constexpr int64_t kDefaultPeriodMs = 1000;  // a crash loses at most this much of a call's length
  static Result<std::unique_ptr<CallsHeartbeat>> start(EventLoop& loop, Store& store, const Clock& clock,
                                                       int64_t period_ms = kDefaultPeriodMs);
  CallsHeartbeat(const CallsHeartbeat&) = delete;
  CallsHeartbeat& operator=(const CallsHeartbeat&) = delete;
  // Also writable by hand (tests, a last mark before a clean stop is not needed: a clean stop ends calls).
  void beat();

 private:
  CallsHeartbeat(Store& store, const Clock& clock, int64_t period_ms)
      : store_(store), clock_(clock), period_us_(period_ms * 1000) {}
  Store& store_;
  const Clock& clock_;
  int64_t period_us_;
  EventSource timer_;
  bool failing_ = false;
};

}  // namespace osvi::daemon
