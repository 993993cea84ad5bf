// Per-frame cost of the VADs (osvi vs WebRTC) and the endpointer on real speech in white noise at 10 dB.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "osvi/audio/endpointer.hpp"
#include "osvi/audio/vad.hpp"
#include "wav.hpp"

namespace {

const std::vector<int16_t>& noisy_speech() {
  static const std::vector<int16_t> audio = [] {
    std::vector<int16_t> x = osvi::test::librivox_speech();
    double p = 0;
    for (int16_t s : x) p += double(s) * s;
    const double sigma = std::sqrt(p / double(x.size()) / 10.0);  // 10 dB under the mean speech power
    std::mt19937 rng(7);
    std::normal_distribution<double> g(0.0, sigma);
    for (auto& s : x) s = int16_t(std::clamp(double(s) + g(rng), -32768.0, 32767.0));
    return x;
  }();
  return audio;
}

void run_vad(benchmark::State& state, const char* name, int rate, int frame_ms) {
  const osvi::audio::Format fmt{rate, frame_ms};
  auto vad = osvi::audio::make_vad(name, fmt);
  if (!vad.ok()) {
    state.SkipWithError(vad.error().message.c_str());
    return;
  }
  // 8 kHz runs on the 16 kHz speech taken every other sample: the cost does not depend on the content's band.
  std::vector<int16_t> x;
  const auto& src = noisy_speech();
  for (size_t i = 0; i < src.size(); i += size_t(16000 / rate)) x.push_back(src[i]);
  const size_t n = fmt.frame_samples();
  size_t pos = 0, speech = 0;
  for (auto _ : state) {
    if (pos + n > x.size()) pos = 0;
    const auto r = (*vad)->process(std::span(x).subspan(pos, n));
    speech += r.speech;
    benchmark::DoNotOptimize(speech);
    pos += n;
  }
  state.counters["frame_ms"] = frame_ms;
  state.SetItemsProcessed(state.iterations());
}

void BM_Vad_Osvi_16k_20ms(benchmark::State& s) {
  run_vad(s, "osvi", 16000, 20);
}
void BM_Vad_WebRtc_16k_20ms(benchmark::State& s) {
  run_vad(s, "webrtc", 16000, 20);
}
void BM_Vad_Osvi_8k_20ms(benchmark::State& s) {
  run_vad(s, "osvi", 8000, 20);
}
void BM_Vad_WebRtc_8k_20ms(benchmark::State& s) {
  run_vad(s, "webrtc", 8000, 20);
}
void BM_Vad_Osvi_16k_10ms(benchmark::State& s) {
  run_vad(s, "osvi", 16000, 10);
}

void BM_Endpointer_Osvi_16k_20ms(benchmark::State& state) {
  auto vad = osvi::audio::make_vad("osvi", {16000, 20});
  auto ep = osvi::audio::Endpointer::create(std::move(*vad), {});
  const auto& x = noisy_speech();
  size_t pos = 0, events = 0;
  for (auto _ : state) {
    if (pos + 320 > x.size()) pos = 0;
    events += ep->process(std::span(x).subspan(pos, 320)).size();
    benchmark::DoNotOptimize(events);
    pos += 320;
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_Vad_Osvi_16k_20ms);
BENCHMARK(BM_Vad_WebRtc_16k_20ms);
BENCHMARK(BM_Vad_Osvi_8k_20ms);
BENCHMARK(BM_Vad_WebRtc_8k_20ms);
BENCHMARK(BM_Vad_Osvi_16k_10ms);
BENCHMARK(BM_Endpointer_Osvi_16k_20ms);

}  // namespace

BENCHMARK_MAIN();
