// Per-frame cost of the codec path: Opus encode/decode, resampling, and the stereo call recorder.
//
// Usage: codec_bench [--benchmark_repetitions=N ...]
// "x_realtime" is seconds of call audio processed per second of CPU; 100 / x_realtime is the share of one
// core a single channel needs (what edge-notes §7 budgets: Opus VoIP c5 ≈ 0.6 %).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <span>
#include <vector>

#include "osvi/audio/opus.hpp"
#include "osvi/audio/recording.hpp"
#include "osvi/audio/resampler.hpp"
#include "wav.hpp"

namespace {

using namespace osvi::audio;

const std::vector<int16_t>& speech() {
  static const std::vector<int16_t> s = [] {
    auto v = osvi::test::librivox_speech();
    v.resize(16000 * 20);  // 20 s keeps the frames varied without repeating too soon
    return v;
  }();
  return s;
}

// One 20 ms frame of real speech per iteration, cycling through the clip.
std::span<const int16_t> frame(size_t i, size_t n) {
  const auto& s = speech();
  return std::span(s).subspan((i * n) % (s.size() - n), n);
}

void set_realtime(benchmark::State& state, double frame_seconds) {
  state.counters["x_realtime"] =
      benchmark::Counter(frame_seconds, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_OpusEncode16k(benchmark::State& state) {
  auto enc = OpusEncoder::create({.complexity = static_cast<int>(state.range(0))});
  std::vector<uint8_t> packet(kOpusMaxPacket);
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(enc->encode(frame(i++, 320), packet));
  set_realtime(state, 0.02);
}
BENCHMARK(BM_OpusEncode16k)->Arg(5)->Arg(10);

void BM_OpusDecode16k(benchmark::State& state) {
  auto enc = OpusEncoder::create({});
  auto dec = OpusDecoder::create(16000);
  std::vector<std::vector<uint8_t>> packets;
  std::vector<uint8_t> packet(kOpusMaxPacket);
  for (size_t i = 0; i < 500; ++i) {
    auto n = enc->encode(frame(i, 320), packet);
    packets.emplace_back(packet.begin(), packet.begin() + static_cast<std::ptrdiff_t>(*n));
  }
  std::vector<int16_t> pcm(320);
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(dec->decode(packets[i++ % packets.size()], pcm));
  set_realtime(state, 0.02);
}
BENCHMARK(BM_OpusDecode16k);

void BM_Resample(benchmark::State& state) {
  const int in_rate = static_cast<int>(state.range(0)), out_rate = static_cast<int>(state.range(1));
  const auto n = static_cast<size_t>(in_rate / 50);
  auto r = Resampler::create(in_rate, out_rate, n);
  std::vector<int16_t> out(r->max_output());
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(r->process(frame(i++, n), out));
  set_realtime(state, 0.02);
}
BENCHMARK(BM_Resample)->Args({16000, 8000})->Args({24000, 16000})->Args({8000, 16000});

class NullSink final : public ByteSink {
 public:
  bool write(std::span<const uint8_t> bytes) noexcept override {
    bytes_ += bytes.size();
    return true;
  }
  uint64_t bytes_ = 0;
};

void BM_RecorderPush16kStereo(benchmark::State& state) {
  NullSink sink;
  auto rec = CallRecorder::create(sink, {});
  size_t i = 0;
  for (auto _ : state) {
    // Double talk on every frame: the worst case for the encoder.
    benchmark::DoNotOptimize(rec->push(frame(i, 320), frame(i + 250, 320)));
    ++i;
  }
  set_realtime(state, 0.02);
}
BENCHMARK(BM_RecorderPush16kStereo);

}  // namespace

BENCHMARK_MAIN();
