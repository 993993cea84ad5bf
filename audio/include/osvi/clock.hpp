// Clock interface: the only source of time, so tests can compress hours into milliseconds.
#pragma once

#include <cstdint>

namespace osvi {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic microseconds, for timeouts and durations.
  virtual int64_t monotonic_us() const = 0;
  // Wall-clock milliseconds since the Unix epoch, for records shown to people.
  virtual int64_t wall_ms() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t monotonic_us() const override;
  int64_t wall_ms() const override;
};

// Time moves only when the test says so.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t wall_ms = 1'780'000'000'000, int64_t monotonic_us = 1'000'000)
      : wall_ms_(wall_ms), mono_us_(monotonic_us) {}
  int64_t monotonic_us() const override { return mono_us_; }
  int64_t wall_ms() const override { return wall_ms_; }
  void advance_ms(int64_t ms) {
    wall_ms_ += ms;
    mono_us_ += ms * 1000;
  }

 private:
  int64_t wall_ms_;
  int64_t mono_us_;
};

}  // namespace osvi
