// LoopLatency: how long a source that became ready waits for the control loop to dispatch it, measured by a
// probe timer, as p50/p99/max over the last minute (health and fleet telemetry).
//
// Why a probe: sd-event does not say when an fd became ready, only when the loop woke. A timer due at T and
// dispatched at D waited D - T, and it waited behind exactly what any other source ready at T waited behind
// (the callback running when it fell due, then the sources ahead of it in that iteration). The probe's
// accuracy is 1 µs, so sd-event does not coalesce it into a later wake-up on purpose.
//
// Threading: loop thread only. No allocation after construction (a fixed ring of the last minute's samples).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "osvi/base/event_loop.hpp"
#include "osvi/result.hpp"

namespace osvi::daemon {

struct LoopLatencySnapshot {
  uint32_t samples = 0;  // probes in the window (fewer while the daemon is younger than the window)
  uint32_t p50_us = 0;
  uint32_t p99_us = 0;
  uint32_t max_us = 0;
  uint32_t window_s = 0;
};

class LoopLatency {
 public:
  // Probes every `interval_us` (20 ms: one audio period), keeps `window_s` seconds of samples.
  static Result<std::unique_ptr<LoopLatency>> start(EventLoop& loop, uint32_t interval_us = 20000,
                                                    uint32_t window_s = 60);
  LoopLatency(const LoopLatency&) = delete;
  LoopLatency& operator=(const LoopLatency&) = delete;

  // The last window's figures (sorts a copy: for health and telemetry requests, not per frame).
  LoopLatencySnapshot snapshot() const;

 private:
  LoopLatency(EventLoop& loop, uint32_t interval_us, uint32_t window_s);
  void on_probe(uint64_t due_us);

  EventLoop& loop_;
  const uint32_t interval_us_;
  const uint32_t window_s_;
  EventSource timer_;
  std::vector<uint32_t> ring_;  // waits in µs, newest at head_ - 1
  size_t head_ = 0;
  size_t count_ = 0;
  mutable std::vector<uint32_t> scratch_;
};

}  // namespace osvi::daemon
