// Echo path measurement (echo_measure.hpp): the chirp probe and a normalised cross-correlation search.
#include "osvi/audio/echo_measure.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace osvi::audio {

std::vector<int16_t> make_probe_burst(int sample_rate) {
  const size_t n = static_cast<size_t>(sample_rate) * kProbeBurstMs / 1000;
  const size_t fade = static_cast<size_t>(sample_rate) * 5 / 1000;
  const double f0 = 300.0, f1 = 3400.0;
  const double dur = static_cast<double>(n) / sample_rate;
  const double k = (f1 - f0) / dur;
  std::vector<int16_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    const double t = static_cast<double>(i) / sample_rate;
    double gain = 0.5;  // -6 dBFS
    if (i < fade)
      gain *= 0.5 - 0.5 * std::cos(std::numbers::pi * static_cast<double>(i) / static_cast<double>(fade));
    if (n - 1 - i < fade)
      gain *=
          0.5 - 0.5 * std::cos(std::numbers::pi * static_cast<double>(n - 1 - i) / static_cast<double>(fade));
    const double phase = 2.0 * std::numbers::pi * (f0 * t + 0.5 * k * t * t);
    out[i] = static_cast<int16_t>(std::lround(32767.0 * gain * std::sin(phase)));
  }
  return out;
}

EchoMeasurement measure_echo(std::span<const int16_t> reference, std::span<const int16_t> capture,
                             int sample_rate, int max_delay_ms) {
  EchoMeasurement m;
  // The burst's span in the reference.
  auto first = std::find_if(reference.begin(), reference.end(), [](int16_t s) { return s != 0; });
  if (first == reference.end() || sample_rate <= 0) return m;
  auto last = std::find_if(reference.rbegin(), reference.rend(), [](int16_t s) { return s != 0; }).base();
  const size_t b0 = static_cast<size_t>(first - reference.begin());
  const size_t len = static_cast<size_t>(last - first);
  if (b0 + len > capture.size()) return m;
  // Integer products summed in 64 bits: exact, and a reduction the compiler vectorises (a float sum it may
  // not reorder), which keeps the whole search to a few ms on the loop.
  const int16_t* t = reference.data() + b0;
  double et = 0.0;
  for (size_t i = 0; i < len; ++i) et += static_cast<double>(t[i]) * t[i];
  std::span<const int16_t> y = capture.subspan(b0);
  const size_t max_lag =
      std::min(static_cast<size_t>(std::max(0, max_delay_ms)) * static_cast<size_t>(sample_rate) / 1000,
               y.size() - len);
  // Energy of the capture window at each lag, slid along.
  double ey = 0.0;
  for (size_t i = 0; i < len; ++i) ey += static_cast<double>(y[i]) * y[i];
  double best = 0.0;
  double best_dot = 0.0;
  size_t best_lag = 0;
  for (size_t lag = 0; lag <= max_lag; ++lag) {
    if (lag > 0) {
      const double out = y[lag - 1], in = y[lag + len - 1];
      ey += in * in - out * out;
      if (ey < 0) ey = 0;  // rounding of the sliding sum
    }
    int64_t acc = 0;
    const int16_t* w = y.data() + lag;
    for (size_t i = 0; i < len; ++i) acc += static_cast<int32_t>(t[i]) * w[i];
    const double dot = static_cast<double>(acc);
    // A window of (near) digital silence correlates with nothing.
    if (ey < 1.0) continue;
    const double c = std::fabs(static_cast<double>(dot)) / std::sqrt(et * ey);
    if (c > best) {
      best = c;
      best_dot = dot;
      best_lag = lag;
    }
  }
  m.peak_correlation = std::min(1.0, best);
  if (best < kEchoFoundCorrelation) return m;
  m.echo_found = true;
  m.delay_samples = static_cast<int64_t>(best_lag);
  m.delay_ms = 1000.0 * static_cast<double>(best_lag) / sample_rate;
  const double gain = std::fabs(best_dot) / et;
  m.erl_db = gain > 0 ? -20.0 * std::log10(gain) : 0.0;
  return m;
}

}  // namespace osvi::audio
