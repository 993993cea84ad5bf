// LoopLatency: a callback that holds the loop shows up as the probe's wait; an idle loop's waits stay small.
#include "osvi/base/loop_latency.hpp"

#include <gtest/gtest.h>
#include <time.h>

#include <cstdint>

namespace osvi::daemon {
namespace {

uint64_t now_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000u + uint64_t(ts.tv_nsec) / 1000u;
}

// Runs the loop until `until_us`, then exits.
void run_until(EventLoop& loop, uint64_t until_us) {
  auto stop = loop.add_timer(until_us, [&loop] { loop.exit(0); });
  ASSERT_TRUE(stop.ok());
  loop.run();
}

TEST(LoopLatency, AStuckCallbackIsTheMaximumAndOneSample) {
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop.ok());
  auto lat = LoopLatency::start(**loop, 5000, 2);
  ASSERT_TRUE(lat.ok());
  EXPECT_EQ((*lat)->snapshot().samples, 0u);
  // A callback that spins for 80 ms, well after the first probes: every probe due meanwhile waits for it.
  const uint64_t t0 = now_us();
  auto hog = (*loop)->add_timer(t0 + 30000, [] {
    const uint64_t until = now_us() + 80000;
    while (now_us() < until) {
    }
  });
  ASSERT_TRUE(hog.ok());
  run_until(**loop, t0 + 200000);
  const LoopLatencySnapshot s = (*lat)->snapshot();
  EXPECT_EQ(s.window_s, 2u);
  // A probe fell due during the 80 ms spin and waited for its end: at least the spin minus one interval.
  EXPECT_GE(s.max_us, 75000u - 5000u);
  // The stall is one sample, not a burst of stale probes: the median stays an idle loop's.
  EXPECT_LT(s.p50_us, 20000u);
  // ~200 ms at one probe per 5 ms, less the stall's missed slots.
  EXPECT_GE(s.samples, 15u);
  EXPECT_LE(s.samples, 41u);
}

TEST(LoopLatency, TheWindowForgetsOldSamples) {
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop.ok());
  // 1 s window at 2 ms: 500 samples kept.
  auto lat = LoopLatency::start(**loop, 2000, 1);
  ASSERT_TRUE(lat.ok());
  const uint64_t t0 = now_us();
  auto hog = (*loop)->add_timer(t0 + 10000, [] {
    const uint64_t until = now_us() + 150000;
    while (now_us() < until) {
    }
  });
  ASSERT_TRUE(hog.ok());
  // Sampled from inside the loop (an exited sd-event cannot run again): just after the stall, and 1.3 s on.
  LoopLatencySnapshot after_stall, later;
  auto look = (*loop)->add_timer(t0 + 200000, [&] { after_stall = (*lat)->snapshot(); });
  ASSERT_TRUE(look.ok());
  run_until(**loop, t0 + 1500000);
  later = (*lat)->snapshot();
  EXPECT_GE(after_stall.max_us, 140000u);
  // The stall has left the 1 s window (at most 500 newer samples replaced it).
  const LoopLatencySnapshot& s = later;
  EXPECT_LT(s.max_us, 140000u);
  EXPECT_LE(s.samples, 500u);
}

TEST(LoopLatency, RefusesAWindowItCannotHold) {
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop.ok());
  EXPECT_FALSE(LoopLatency::start(**loop, 500, 60).ok());     // under 1 ms
  EXPECT_FALSE(LoopLatency::start(**loop, 1000, 3600).ok());  // 3.6 M samples
  EXPECT_FALSE(LoopLatency::start(**loop, 20000, 0).ok());
}

}  // namespace
}  // namespace osvi::daemon
