// The loopback test's measurement on synthetic signals: a known delay and attenuation, noise, polarity, no
// echo at all, and an echo later than the search window.
#include "osvi/audio/echo_measure.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace {

using osvi::audio::make_probe_burst;
using osvi::audio::measure_echo;

constexpr int kLeadMs = 200;

// The reference as the loopback plays it: lead-in silence, the burst, silence; total_ms long.
std::vector<int16_t> reference(int rate, int total_ms) {
  std::vector<int16_t> r(static_cast<size_t>(rate) * total_ms / 1000, 0);
  auto b = make_probe_burst(rate);
  std::copy(b.begin(), b.end(), r.begin() + rate * kLeadMs / 1000);
  return r;
}

// The capture: the reference delayed by delay_samples and scaled by gain_db, plus white noise of noise_rms.
std::vector<int16_t> capture(const std::vector<int16_t>& ref, size_t delay_samples, double gain_db,
                             double noise_rms, unsigned seed = 7) {
  std::vector<double> c(ref.size(), 0.0);
  const double g = std::pow(10.0, gain_db / 20.0);
  for (size_t i = 0; i + delay_samples < ref.size(); ++i) c[i + delay_samples] = g * ref[i];
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0.0, noise_rms);
  std::vector<int16_t> out(ref.size());
  for (size_t i = 0; i < c.size(); ++i)
    out[i] = static_cast<int16_t>(
        std::clamp(std::lround(c[i] + (noise_rms > 0 ? noise(rng) : 0.0)), -32768L, 32767L));
  return out;
}

TEST(EchoMeasure, ProbeBurstIsAChirpAtMinus6dBFS) {
  auto b = make_probe_burst(16000);
  ASSERT_EQ(b.size(), 2400u);
  int peak = 0;
  for (int16_t s : b) peak = std::max(peak, std::abs(static_cast<int>(s)));
  EXPECT_NEAR(peak, 16384, 200);
  EXPECT_LT(std::abs(b.front()), 50);  // the fades start and end near zero
  EXPECT_LT(std::abs(b.back()), 50);
  EXPECT_EQ(make_probe_burst(8000).size(), 1200u);
}

TEST(EchoMeasure, KnownDelayAndAttenuation) {
  for (int rate : {8000, 16000}) {
    auto ref = reference(rate, 1000);
    const size_t delay = static_cast<size_t>(rate) * 37 / 1000;  // 37 ms
    auto cap = capture(ref, delay, -12.0, 0.0);
    auto m = measure_echo(ref, cap, rate, 500);
    ASSERT_TRUE(m.echo_found) << rate;
    EXPECT_EQ(m.delay_samples, static_cast<int64_t>(delay)) << rate;
    EXPECT_NEAR(m.delay_ms, 37.0, 0.2) << rate;
    EXPECT_NEAR(m.erl_db, 12.0, 0.1) << rate;
    EXPECT_GT(m.peak_correlation, 0.99) << rate;
  }
}

TEST(EchoMeasure, NoisyAndInvertedEcho) {
  auto ref = reference(16000, 1000);
  // Echo at -25 dB (rms ~370 of a 16384 chirp) in noise of rms 150: the noise is ~8 dB under the echo.
  auto cap = capture(ref, 2000, -25.0, 150.0);
  for (auto& s : cap) s = static_cast<int16_t>(-s);  // a hybrid may invert the signal
  auto m = measure_echo(ref, cap, 16000, 500);
  ASSERT_TRUE(m.echo_found) << m.peak_correlation;
  EXPECT_EQ(m.delay_samples, 2000);
  EXPECT_NEAR(m.erl_db, 25.0, 0.5);
  EXPECT_GT(m.peak_correlation, 0.8);
  EXPECT_LE(m.peak_correlation, 1.0);
}

TEST(EchoMeasure, NoEchoIsReportedAsNone) {
  auto ref = reference(16000, 1000);
  // Noise only: nothing in the capture resembles the burst.
  auto m = measure_echo(ref, capture(ref, 0, -200.0, 300.0), 16000, 500);
  EXPECT_FALSE(m.echo_found);
  EXPECT_LT(m.peak_correlation, osvi::audio::kEchoFoundCorrelation);
  EXPECT_GT(m.peak_correlation, 0.0);
  // Digital silence: no correlation at all.
  std::vector<int16_t> silence(ref.size(), 0);
  auto s = measure_echo(ref, silence, 16000, 500);
  EXPECT_FALSE(s.echo_found);
  EXPECT_EQ(s.peak_correlation, 0.0);
  // A reference without a burst, or a capture shorter than the burst's span, measures nothing.
  EXPECT_FALSE(measure_echo(silence, ref, 16000, 500).echo_found);
  EXPECT_FALSE(measure_echo(ref, std::vector<int16_t>(100, 1000), 16000, 500).echo_found);
}

TEST(EchoMeasure, EchoLaterThanTheSearchWindowIsNotFound) {
  auto ref = reference(16000, 1500);
  auto cap = capture(ref, 16000 * 600 / 1000, -6.0, 0.0);  // 600 ms
  EXPECT_FALSE(measure_echo(ref, cap, 16000, 500).echo_found);
  auto wide = measure_echo(ref, cap, 16000, 800);
  ASSERT_TRUE(wide.echo_found);
  EXPECT_NEAR(wide.delay_ms, 600.0, 0.1);
}

}  // namespace
