// CallTimers: a call's deadlines in one place, behind one timer whose host is sd-event in the daemon and a
// virtual clock in unit tests.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>

#include "osvi/base/event_loop.hpp"
#include "osvi/result.hpp"

namespace osvi::daemon {

// One re-armable one-shot timer on Clock::monotonic_us() time.
class CallTimer {
 public:
  virtual ~CallTimer() = default;
  virtual void arm(int64_t at_us) = 0;  // -1 = off
};
// Builds the timer that calls `fire` when it is due (never from inside arm()).
using CallTimerFactory = std::function<Result<std::unique_ptr<CallTimer>>(std::function<void()> fire)>;
// The daemon's: an sd-event CLOCK_MONOTONIC timer on `loop`.
Result<std::unique_ptr<CallTimer>> make_loop_call_timer(EventLoop& loop, std::function<void()> fire);

enum class CallDeadline : uint8_t {
  ending,         // the line must confirm our hang-up
  max_duration,   // the agent's (or the request's) limit
  audio_wait,     // a connected call without usable audio is given up
  amd_wait,       // the AMD verdict, at the latest
  voicemail_end,  // the beep (voicemail) or the caller's message (fallback) is over
  dtmf_gather,    // digits closer than this form one entry
  dead_air,       // the answer is late: filler, then fallback
  silence,        // the caller said nothing: reprompt, then hang up
  count_
};

class CallTimers {
 public:
  static constexpr size_t kCount = static_cast<size_t>(CallDeadline::count_);

  // Without a timer (before attach, after detach) deadlines are kept but nothing fires.
  void attach(std::unique_ptr<CallTimer> timer) { timer_ = std::move(timer); }
  void detach() { timer_.reset(); }

  void set(CallDeadline d, int64_t at_us) { at_[index(d)] = at_us; }
  void clear(CallDeadline d) { at_[index(d)] = -1; }
  bool armed(CallDeadline d) const { return at_[index(d)] >= 0; }
  int64_t at(CallDeadline d) const { return at_[index(d)]; }
  // Clears every deadline but `keep`.
  void clear_all_but(CallDeadline keep) {
    for (size_t i = 0; i < kCount; ++i)
      if (i != index(keep)) at_[i] = -1;
  }
  // Whether `d` is due at `now`; a due deadline is cleared (it fires once).
  bool take_due(CallDeadline d, int64_t now) {
    int64_t& a = at_[index(d)];
    if (a < 0 || a > now) return false;
    a = -1;
    return true;
  }
  // The earliest deadline, or -1.
  int64_t next() const {
    int64_t n = -1;
    for (int64_t a : at_)
      if (a >= 0 && (n < 0 || a < n)) n = a;
    return n;
  }
  // Points the timer at next(); call after any change.
  void arm() {
    if (timer_) timer_->arm(next());
  }

 private:
  static size_t index(CallDeadline d) { return static_cast<size_t>(d); }
  std::array<int64_t, kCount> at_ = [] {
    std::array<int64_t, kCount> a{};
    a.fill(-1);
    return a;
  }();
  std::unique_ptr<CallTimer> timer_;
};

}  // namespace osvi::daemon
