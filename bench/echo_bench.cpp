// Per-frame cost of echo cancellation + capture clean-up (CaptureCleaner) at 16 kHz, 20 ms frames.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "osvi/audio/preprocessor.hpp"

namespace {

using namespace osvi::audio;

// Ten seconds of speech-like signal (noise bursts with syllable-rate envelope) and its echo, so the filter
// adapts and the suppressor works as in a call rather than idling on silence.
struct Material {
  std::vector<int16_t> ref, mic;
  explicit Material(int rate) {
    const auto n = static_cast<size_t>(rate * 10);
    std::mt19937 rng(1);
    std::normal_distribution<double> g(0, 3000);
    std::vector<double> far(n);
    for (size_t i = 0; i < n; ++i) {
      const double env = 0.5 + 0.5 * std::sin(2 * 3.14159265 * 4.0 * static_cast<double>(i) / rate);
      far[i] = g(rng) * env;
    }
    ref.resize(n);
    mic.resize(n);
    const auto d = static_cast<size_t>(rate / 25);  // 40 ms line delay, then a short decaying response
    for (size_t i = 0; i < n; ++i) {
      ref[i] = static_cast<int16_t>(std::clamp(far[i], -32768.0, 32767.0));
      double e = 0;
      for (size_t k = 0; k < 64 && k + d <= i; ++k)
        e += far[i - d - k] * 0.3 * std::exp(-0.08 * static_cast<double>(k));
      mic[i] = static_cast<int16_t>(std::clamp(e, -32768.0, 32767.0));
    }
  }
};

void run(benchmark::State& state, EchoBackend backend, int tail_ms) {
  CaptureOptions o;
  o.backend = backend;
  o.echo.format = Format{16000, 20};
  o.echo.tail_ms = tail_ms;
  auto c = CaptureCleaner::create(o);
  if (!c) {
    state.SkipWithError(c.error().message.c_str());
    return;
  }
  static const Material m(16000);
  const size_t n = o.echo.format.frame_samples();
  std::vector<int16_t> out(n);
  size_t off = 0;
  for (auto _ : state) {
    (*c)->process(std::span(m.mic).subspan(off, n), std::span(m.ref).subspan(off, n), out);
    benchmark::DoNotOptimize(out.data());
    off = off + 2 * n <= m.mic.size() ? off + n : 0;
  }
  // A 20 ms frame per iteration: the percentage of one core a channel needs in real time.
  state.counters["core_pct"] = benchmark::Counter(static_cast<double>(state.iterations()) * 0.02 / 100.0,
                                                  benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_Speex128(benchmark::State& s) {
  run(s, EchoBackend::speex, 128);
}
void BM_Speex256(benchmark::State& s) {
  run(s, EchoBackend::speex, 256);
}
void BM_Webrtc(benchmark::State& s) {
  run(s, EchoBackend::webrtc, 128);
}
void BM_Null(benchmark::State& s) {
  run(s, EchoBackend::null, 128);
}

BENCHMARK(BM_Speex128)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Speex256)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Webrtc)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Null)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
