// The control loop's dispatch latency, sampled by a probe timer (loop_latency.hpp).
#include "osvi/base/loop_latency.hpp"

#include <time.h>

#include <algorithm>
#include <limits>

namespace osvi::daemon {
namespace {

uint64_t monotonic_now_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace

LoopLatency::LoopLatency(EventLoop& loop, uint32_t interval_us, uint32_t window_s)
    : loop_(loop),
      interval_us_(interval_us),
      window_s_(window_s),
      ring_(static_cast<size_t>(window_s) * 1000000u / interval_us, 0),
      scratch_(ring_.size(), 0) {}

Result<std::unique_ptr<LoopLatency>> LoopLatency::start(EventLoop& loop, uint32_t interval_us,
                                                        uint32_t window_s) {
  if (interval_us < 1000 || window_s == 0 ||
      static_cast<uint64_t>(window_s) * 1000000u / interval_us > 100000)
    return make_error("loop latency: interval 1 ms or more, at most 100000 samples in the window");
  std::unique_ptr<LoopLatency> l(new LoopLatency(loop, interval_us, window_s));
  LoopLatency* self = l.get();
  const uint64_t first = monotonic_now_us() + interval_us;
  auto t = loop.add_timer(first, [self, first] {
    // The due time is the source's own (re-armed by on_probe), read back at dispatch.
    uint64_t due = first;
    sd_event_source_get_time(self->timer_.get(), &due);
    self->on_probe(due);
  });
  if (!t) return t.error();
  l->timer_ = std::move(*t);
  sd_event_source_set_time_accuracy(l->timer_.get(), 1);
  return l;
}

void LoopLatency::on_probe(uint64_t due_us) {
  const uint64_t now = monotonic_now_us();
  const uint64_t wait = now > due_us ? now - due_us : 0;
  ring_[head_] = static_cast<uint32_t>(std::min<uint64_t>(wait, std::numeric_limits<uint32_t>::max()));
  head_ = (head_ + 1) % ring_.size();
  count_ = std::min(count_ + 1, ring_.size());
  // The next probe falls due one interval after this dispatch, not after the missed due time: a loop stuck
  // for a second yields one long sample, not fifty stale ones dispatched back to back.
  EventLoop::set_timer(timer_.get(), now + interval_us_);
}

LoopLatencySnapshot LoopLatency::snapshot() const {
  LoopLatencySnapshot s;
  s.window_s = window_s_;
  s.samples = static_cast<uint32_t>(count_);
  if (count_ == 0) return s;
  // The newest count_ samples end at head_ (the ring may not have wrapped yet).
  for (size_t i = 0; i < count_; ++i) scratch_[i] = ring_[(head_ + ring_.size() - count_ + i) % ring_.size()];
  auto b = scratch_.begin();
  auto e = b + static_cast<std::ptrdiff_t>(count_);
  auto at = [&](double q) {
    auto k = b + static_cast<std::ptrdiff_t>(std::min<double>(static_cast<double>(count_ - 1),
                                                              q * static_cast<double>(count_ - 1) + 0.5));
    std::nth_element(b, k, e);
    return *k;
  };
  s.p50_us = at(0.50);
  s.p99_us = at(0.99);
  s.max_us = *std::max_element(b, e);
  return s;
}

}  // namespace osvi::daemon
