// The audio loopback's measurement (audio::measure_echo): one call = one whole loopback's search over the
// 950 ms capture, the time it holds the control loop. At 8 and 16 kHz, with an echo and with noise only.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "osvi/audio/echo_measure.hpp"

namespace {

// The loopback's reference (200 ms lead-in, the burst, silence) and a capture of `rate` samples per second
// over 950 ms: the burst 60 ms late at -10 dB in noise (echo), or noise alone.
void measure(benchmark::State& state, int rate, bool echo) {
  const size_t n = static_cast<size_t>(rate) * 950 / 1000;
  std::vector<int16_t> ref(n, 0);
  const auto burst = osvi::audio::make_probe_burst(rate);
  const size_t lead = static_cast<size_t>(rate) / 5;
  std::copy(burst.begin(), burst.end(), ref.begin() + static_cast<std::ptrdiff_t>(lead));
  std::mt19937 rng(3);
  std::normal_distribution<double> noise(0.0, 100.0);
  std::vector<int16_t> cap(n);
  const size_t delay = static_cast<size_t>(rate) * 60 / 1000;
  for (size_t i = 0; i < n; ++i) {
    double v = noise(rng);
    if (echo && i >= delay) v += 0.316 * ref[i - delay];
    cap[i] = static_cast<int16_t>(std::lround(v));
  }
  for (auto _ : state) {
    auto m = osvi::audio::measure_echo(ref, cap, rate, 500);
    benchmark::DoNotOptimize(m);
  }
}

void BM_MeasureEcho8k(benchmark::State& s) {
  measure(s, 8000, true);
}
void BM_MeasureEcho16k(benchmark::State& s) {
  measure(s, 16000, true);
}
void BM_MeasureNoEcho16k(benchmark::State& s) {
  measure(s, 16000, false);
}
BENCHMARK(BM_MeasureEcho8k)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MeasureEcho16k)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MeasureNoEcho16k)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
