// What the hal streams' real-time threads share (ALSA, PCM tty, RTP): the counters behind AudioStreamStats,
// taking the real-time scheduling class, and handing a captured period on (to the processor or the capture
// ring). Private to hal.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstdint>
#include <span>

#include "osvi/hal/audio_stream.hpp"

namespace osvi::hal::detail {

// Written by the stream's thread, read by the loop at any time (relaxed: each one is a snapshot).
struct StreamCounters {
  std::atomic<uint64_t> periods{0}, played_samples{0}, fill_periods{0}, fill_samples{0}, capture_overruns{0},
      xruns{0}, suspends{0}, recoveries{0}, device_losses{0}, reopen_attempts{0}, reopens{0},
      events_dropped{0};
  std::atomic<int> sched{static_cast<int>(SchedPolicy::none)};
  std::atomic<int> sched_priority{0};
  std::atomic<bool> device_open{false};
};

inline AudioStreamStats common_stats(const StreamCounters& c) {
  auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  AudioStreamStats s;
  s.periods = get(c.periods);
  s.played_samples = get(c.played_samples);
  s.fill_periods = get(c.fill_periods);
  s.fill_samples = get(c.fill_samples);
  s.capture_overruns = get(c.capture_overruns);
  s.xruns = get(c.xruns);
  s.suspends = get(c.suspends);
  s.recoveries = get(c.recoveries);
  s.device_losses = get(c.device_losses);
  s.reopen_attempts = get(c.reopen_attempts);
  s.reopens = get(c.reopens);
  s.events_dropped = get(c.events_dropped);
  s.sched = static_cast<SchedPolicy>(c.sched.load());
  s.sched_priority = c.sched_priority.load();
  s.device_open = c.device_open.load();
  return s;
}

// On the stream's own thread, first thing: SCHED_FIFO at `priority` (1..99) when asked and allowed, else the
// thread stays SCHED_OTHER; the counters say which (health shows it).
inline void enter_rt_sched(int priority, StreamCounters& c) {
  if (priority > 0) {
    sched_param sp{};
    sp.sched_priority = priority;
    if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0) {
      c.sched.store(static_cast<int>(SchedPolicy::fifo));
      c.sched_priority.store(priority);
    }
  }
  if (c.sched.load() != static_cast<int>(SchedPolicy::fifo))
    c.sched.store(static_cast<int>(SchedPolicy::other));
}

// On the stream's thread, once per captured period: `unit` is the capture period followed by its reference.
// With a processor (the line's DSP chain) it runs here and its results reach the loop through its own rings;
// without one the unit goes into the capture ring as one entry, published by one index store, so the loop
// never sees a capture period without its reference (a full ring is an overrun, counted).
inline void deliver_period(PeriodProcessor* processor, audio::SpscRing<int16_t>& frames,
                           std::span<const int16_t> unit, StreamCounters& c) {
  if (processor) {
    const size_t period = unit.size() / 2;
    processor->process(unit.first(period), unit.subspan(period));
    c.periods.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (frames.writable() >= unit.size()) {
    frames.push(unit);
    c.periods.fetch_add(1, std::memory_order_relaxed);
  } else {
    c.capture_overruns.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace osvi::hal::detail
