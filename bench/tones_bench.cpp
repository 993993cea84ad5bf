// Per-20 ms-frame cost (one iteration = one frame) of the DTMF, call-progress, AMD and beep detectors at 8
// and 16 kHz.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>
#include <vector>

#include "osvi/audio/amd.hpp"
#include "osvi/audio/call_progress.hpp"
#include "osvi/audio/dtmf.hpp"

namespace {

// 10 s of noise with a 697+1209 Hz burst every second: the detectors do their full per-window work.
std::vector<int16_t> signal(int rate) {
  std::mt19937 rng(1);
  std::normal_distribution<double> n(0.0, 300.0);
  std::vector<int16_t> x(static_cast<size_t>(rate) * 10);
  for (size_t i = 0; i < x.size(); ++i) {
    const double t = static_cast<double>(i) / rate;
    const double tone =
        std::fmod(t, 1.0) < 0.1
            ? 4000.0 * (std::sin(2 * std::numbers::pi * 697 * t) + std::sin(2 * std::numbers::pi * 1209 * t))
            : 0.0;
    x[i] = static_cast<int16_t>(std::lround(tone + n(rng)));
  }
  return x;
}

template <class F>
void run_frames(benchmark::State& state, int rate, F&& process) {
  const auto x = signal(rate);
  const size_t frame = static_cast<size_t>(rate / 50);
  size_t i = 0;
  for (auto _ : state) {
    process(std::span(x).subspan(i, frame));
    i = i + 2 * frame > x.size() ? 0 : i + frame;
  }
}

void BM_Dtmf(benchmark::State& state) {
  const int rate = static_cast<int>(state.range(0));
  auto det = osvi::audio::DtmfDetector::create(rate);
  run_frames(state, rate, [&](std::span<const int16_t> f) {
    det->process(f);
    while (auto e = det->next_event()) benchmark::DoNotOptimize(e);
  });
}

void BM_CallProgress(benchmark::State& state) {
  const int rate = static_cast<int>(state.range(0));
  osvi::audio::CallProgressConfig cfg;
  cfg.plan = state.range(1) == 0 ? "us" : state.range(1) == 1 ? "eu" : "in";
  auto det = osvi::audio::CallProgressDetector::create(rate, cfg);
  run_frames(state, rate, [&](std::span<const int16_t> f) {
    det->process(f);
    while (auto e = det->next_event()) benchmark::DoNotOptimize(e);
  });
}

void BM_Amd(benchmark::State& state) {
  const int rate = static_cast<int>(state.range(0));
  osvi::audio::AmdConfig cfg;
  cfg.decision_window_ms = cfg.total_analysis_time_ms = 1 << 30;  // never decide: measure the steady state
  cfg.initial_silence_ms = cfg.greeting_ms = cfg.after_greeting_silence_ms = cfg.maximum_word_length_ms =
      1 << 30;
  cfg.maximum_number_of_words = 1 << 30;
  auto amd = osvi::audio::AnsweringMachineDetector::create(rate, cfg);
  run_frames(state, rate, [&](std::span<const int16_t> f) { benchmark::DoNotOptimize(amd->process(f)); });
}

void BM_Beep(benchmark::State& state) {
  const int rate = static_cast<int>(state.range(0));
  auto det = osvi::audio::BeepDetector::create(rate);
  run_frames(state, rate, [&](std::span<const int16_t> f) { benchmark::DoNotOptimize(det->process(f)); });
}

BENCHMARK(BM_Dtmf)->Arg(8000)->Arg(16000);
BENCHMARK(BM_CallProgress)->ArgsProduct({{8000, 16000}, {0, 1, 2}});
BENCHMARK(BM_Amd)->Arg(8000)->Arg(16000);
BENCHMARK(BM_Beep)->Arg(8000)->Arg(16000);

}  // namespace

BENCHMARK_MAIN();
