// Per-line DSP cost: the LineChain (capture: AEC 256 ms + preprocess + VAD/endpointer + DTMF + Opus c5;
// playback: Opus decode + 24→16 kHz resampling) against the bare sum of the same library calls, per 20 ms
// frame at 16 kHz, with p50/p99 and heap allocations counted during the measured frames.
//
// Usage: chain_bench [seconds_of_audio=120]
#include <opus/opus.h>
#include <speex/speex_echo.h>
#include <speex/speex_preprocess.h>
#include <speex/speex_resampler.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <vector>

#include "alloc_counter.hpp"
#include "osvi/audio/line_chain.hpp"
#include "osvi/audio/vad.hpp"
#include "wav.hpp"

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kRate = 16000;
constexpr size_t kFrame = 320;  // 20 ms
constexpr int kTailMs = 256;    // the required benchmark tail
constexpr int kPlaybackRate = 24000;

struct Stats {
  double p50 = 0, p99 = 0, mean = 0;
};

Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  Stats s;
  s.p50 = v[v.size() / 2];
  s.p99 = v[std::min(v.size() - 1, v.size() * 99 / 100)];
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  return s;
}

double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

// Far end (what we play) and mic (its echo through a 40 ms decaying path plus a talking caller).
void make_signals(size_t frames, std::vector<int16_t>* far, std::vector<int16_t>* mic) {
  std::vector<int16_t> speech = osvi::test::librivox_speech();
  const size_t n = frames * kFrame;
  far->assign(n, 0);
  mic->assign(n, 0);
  const size_t half = speech.size() / 2;
  std::vector<double> ir(800, 0.0);
  std::srand(7);
  for (size_t i = 0; i < 400; ++i)
    ir[640 + i % 160] += 0.25 * std::exp(-static_cast<double>(i) / 80.0) * ((std::rand() % 2) ? 1 : -1);
  for (size_t i = 0; i < n; ++i) (*far)[i] = speech[i % half];
  for (size_t i = 0; i < n; ++i) {
    double e = 0;
    for (size_t k = 640; k < ir.size() && k <= i; ++k) e += ir[k] * (*far)[i - k];
    // The caller talks every other 4 s, overlapping the far end (double talk included).
    double near = ((i / (4 * kRate)) % 2) ? 0.6 * speech[half + i % (speech.size() - half)] : 0.0;
    (*mic)[i] = static_cast<int16_t>(std::clamp(e + near, -32768.0, 32767.0));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::atoi(argv[1]) : 120;
  const size_t frames = static_cast<size_t>(seconds) * 50;
  const size_t warmup = 100;
  std::vector<int16_t> far, mic;
  make_signals(frames, &far, &mic);

  // Upstream playback: the far-end speech as 24 kHz Opus packets, encoded once up front.
  std::vector<std::vector<uint8_t>> packets;
  {
    int err = 0;
    ::OpusEncoder* enc = opus_encoder_create(kPlaybackRate, 1, OPUS_APPLICATION_VOIP, &err);
    std::vector<int16_t> up(480);
    std::vector<uint8_t> pkt(1275);
    for (size_t f = 0; f < frames; ++f) {
      for (size_t i = 0; i < 480; ++i) up[i] = far[(f * kFrame + i * 2 / 3) % far.size()];
      int len = opus_encode(enc, up.data(), 480, pkt.data(), static_cast<opus_int32>(pkt.size()));
      packets.emplace_back(pkt.begin(), pkt.begin() + std::max(len, 0));
    }
    opus_encoder_destroy(enc);
  }

  // --- the chain ---
  osvi::audio::LineChainConfig cfg;
  cfg.format = {kRate, 20};
  cfg.capture.echo.tail_ms = kTailMs;
  cfg.playback_rate = kPlaybackRate;
  auto chain = osvi::audio::LineChain::create(cfg);
  if (!chain) {
    std::fprintf(stderr, "chain: %s\n", chain.error().message.c_str());
    return 1;
  }
  std::vector<int16_t> pcm((*chain)->max_playback_output());
  std::vector<double> cap_us, play_us;
  cap_us.reserve(frames);
  play_us.reserve(frames);
  std::optional<osvi::test::AllocSnapshot> counted;
  for (size_t f = 0; f < frames; ++f) {
    if (f == warmup) counted.emplace();
    auto t0 = Clock::now();
    const auto& out =
        (*chain)->process_capture({mic.data() + f * kFrame, kFrame}, {far.data() + f * kFrame, kFrame});
    double c = us_since(t0);
    if (out.clean.empty()) return 2;
    t0 = Clock::now();
    auto n = (*chain)->decode_playback(packets[f], pcm);
    double p = us_since(t0);
    if (!n) return 3;
    if (f >= warmup) {
      cap_us.push_back(c);
      play_us.push_back(p);
    }
  }
  const uint64_t chain_allocs = counted->new_delta() + counted->malloc_delta();

  // --- the bare library calls, same data ---
  SpeexEchoState* echo = speex_echo_state_init(kFrame, kRate * kTailMs / 1000);
  int rate = kRate;
  speex_echo_ctl(echo, SPEEX_ECHO_SET_SAMPLING_RATE, &rate);
  SpeexPreprocessState* pre = speex_preprocess_state_init(kFrame, kRate);
  int on = 1, ns = -25;
  speex_preprocess_ctl(pre, SPEEX_PREPROCESS_SET_DENOISE, &on);
  speex_preprocess_ctl(pre, SPEEX_PREPROCESS_SET_NOISE_SUPPRESS, &ns);
  speex_preprocess_ctl(pre, SPEEX_PREPROCESS_SET_ECHO_STATE, echo);
  auto vad = osvi::audio::make_vad("osvi", {kRate, 20});
  int err = 0;
  ::OpusEncoder* enc = opus_encoder_create(kRate, 1, OPUS_APPLICATION_VOIP, &err);
  opus_encoder_ctl(enc, OPUS_SET_COMPLEXITY(5));
  opus_encoder_ctl(enc, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE));
  opus_encoder_ctl(enc, OPUS_SET_BITRATE(24000));
  ::OpusDecoder* dec = opus_decoder_create(kPlaybackRate, 1, &err);
  SpeexResamplerState* rs = speex_resampler_init(1, kPlaybackRate, kRate, 5, &err);
  std::vector<int16_t> clean(kFrame), dpcm(5760), rpcm(4000);
  std::vector<uint8_t> pkt(1275);
  std::vector<double> bare_cap, bare_play;
  for (size_t f = 0; f < frames; ++f) {
    auto t0 = Clock::now();
    speex_echo_cancellation(echo, mic.data() + f * kFrame, far.data() + f * kFrame, clean.data());
    speex_preprocess_run(pre, clean.data());
    (*vad)->process(clean);
    if (opus_encode(enc, clean.data(), static_cast<int>(kFrame), pkt.data(), 1275) < 0) return 4;
    double c = us_since(t0);
    t0 = Clock::now();
    int n =
        opus_decode(dec, packets[f].data(), static_cast<opus_int32>(packets[f].size()), dpcm.data(), 5760, 0);
    spx_uint32_t in_len = static_cast<spx_uint32_t>(std::max(n, 0)), out_len = 4000;
    speex_resampler_process_int(rs, 0, dpcm.data(), &in_len, rpcm.data(), &out_len);
    double p = us_since(t0);
    if (f >= warmup) {
      bare_cap.push_back(c);
      bare_play.push_back(p);
    }
  }
  speex_resampler_destroy(rs);
  opus_decoder_destroy(dec);
  opus_encoder_destroy(enc);
  speex_preprocess_state_destroy(pre);
  speex_echo_state_destroy(echo);

  const Stats cs = stats(cap_us), ps = stats(play_us), bc = stats(bare_cap), bp = stats(bare_play);
  std::vector<double> total(cap_us.size());
  for (size_t i = 0; i < total.size(); ++i) total[i] = cap_us[i] + play_us[i];
  const Stats ts = stats(total);
  const double core_pct = ts.mean / 20000.0 * 100.0;
  std::printf(
      "frames measured: %zu (16 kHz, 20 ms, AEC tail %d ms, Opus c5, playback 24 kHz Opus -> 16 kHz)\n",
      cap_us.size(), kTailMs);
  std::printf("%-28s %9s %9s %9s\n", "us per frame", "p50", "p99", "mean");
  std::printf("%-28s %9.1f %9.1f %9.1f\n", "chain capture", cs.p50, cs.p99, cs.mean);
  std::printf("%-28s %9.1f %9.1f %9.1f\n", "chain playback", ps.p50, ps.p99, ps.mean);
  std::printf("%-28s %9.1f %9.1f %9.1f\n", "chain total", ts.p50, ts.p99, ts.mean);
  std::printf("%-28s %9.1f %9.1f %9.1f\n", "bare libs capture", bc.p50, bc.p99, bc.mean);
  std::printf("%-28s %9.1f %9.1f %9.1f\n", "bare libs playback", bp.p50, bp.p99, bp.mean);
  std::printf("chain/bare (mean): capture %.2f, playback %.2f\n", cs.mean / bc.mean, ps.mean / bp.mean);
  std::printf("core per channel: %.2f %%  -> %.0f channels per core;  p99/p50 total %.2f\n", core_pct,
              100.0 / core_pct, ts.p99 / ts.p50);
  std::printf("heap allocations during %zu measured frames: %llu\n", cap_us.size(),
              static_cast<unsigned long long>(chain_allocs));
  return 0;
}
