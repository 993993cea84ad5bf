// Per-call DSP split by thread since issue 18: what a call costs on its stream's real-time thread and what is
// left on the control loop, per 20 ms frame at 16 kHz, with the bare library calls beside it in the same run.
//
//   RT thread = audio::ChainRunner::process(), what the hal stream's thread runs per period: the LineChain
//               (speex AEC 128 ms + preprocess + osvi VAD/endpointer + DTMF + call progress "in") + the
//               stereo CallRecorder push (32 kbit/s, audio.recording.complexity) into its PagePipe + the
//               result into the rings;
//   loop      = what the loop still does per frame and call: ChainRunner::next() (the frame out of its
//               rings), PagePipe::drain() (pages to the file; here a sink that counts them) and 20 ms of 24
//               kHz TTS resampled to 16 kHz (resample_tts stays on the loop). Not the Call's own reaction to
//               the frame (endpoint events, the utterance encoder while the caller speaks: chain_bench);
//   bare      = the library calls alone on the same audio: speex_echo_cancellation + speex_preprocess_run
//               (the chain's settings) + opus_encode of the stereo frame (the recorder's encoder settings) +
//               speex_resampler_process_int for the TTS.
//
// The RT side runs on its own std::thread (a real second thread, as in the daemon; not SCHED_FIFO), the
// loop side on main; the two go in lockstep at most 8 frames apart, so the rings never fill. Thread CPU time
// (CLOCK_THREAD_CPUTIME_ID) per frame; heap allocations counted over the measured frames of both threads
// (exit 2 if any).
//
// Usage: rt_chain_bench [seconds_of_audio=60] [recording_complexity=the shipped default]
#include <opus.h>
#include <speex/speex_echo.h>
#include <speex/speex_preprocess.h>
#include <speex/speex_resampler.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <thread>
#include <vector>

#include "alloc_counter.hpp"
#include "echo_signals.hpp"
#include "osvi/audio/chain_runner.hpp"
#include "osvi/audio/page_pipe.hpp"
#include "osvi/audio/recording.hpp"
#include "wav.hpp"

namespace {

constexpr int kRate = 16000;
constexpr size_t kFrame = 320;
constexpr int kTtsRate = 24000;
constexpr size_t kTtsFrame = 480;
constexpr size_t kWarmup = 100;

using osvi::bench::cpu_us;
using osvi::bench::Stats;
using osvi::bench::stats;

using osvi::bench::CountingSink;
void make_signals(size_t frames, std::vector<int16_t>* far, std::vector<int16_t>* mic) {
  osvi::bench::make_echo_signals(frames * kFrame, kRate, far, mic);
}

// The bare library calls of one frame, set up as the chain and the recorder set them up.
struct Bare {
  SpeexEchoState* echo = nullptr;
  SpeexPreprocessState* pre = nullptr;
  ::OpusEncoder* opus = nullptr;
  SpeexResamplerState* rs = nullptr;
  std::vector<int16_t> clean = std::vector<int16_t>(kFrame), stereo = std::vector<int16_t>(2 * kFrame),
                       tts_out = std::vector<int16_t>(kFrame + 64);
  std::vector<unsigned char> packet = std::vector<unsigned char>(1275);
  int64_t bytes = 0;  // encoded, so the encode is used

  bool init(int tail_ms, int complexity) {
    echo = speex_echo_state_init(static_cast<int>(kFrame), kRate * tail_ms / 1000);
    int rate = kRate;
    speex_echo_ctl(echo, SPEEX_ECHO_SET_SAMPLING_RATE, &rate);
    pre = speex_preprocess_state_init(static_cast<int>(kFrame), kRate);
    int on = 1, off = 0, noise = -25, sup = -40, sup_active = -15;
    speex_preprocess_ctl(pre, SPEEX_PREPROCESS_SET_DENOISE, &on);
    speex_preprocess_ctl(pre, SPEEX_PREPROCESS_SET_NOISE_SUPPRESS, &noise);
    speex_preprocess_ctl(pre, SPEEX_PREPROCESS_SET_AGC, &off);
    speex_preprocess_ctl(pre, SPEEX_PREPROCESS_SET_ECHO_STATE, echo);
    speex_preprocess_ctl(pre, SPEEX_PREPROCESS_SET_ECHO_SUPPRESS, &sup);
    speex_preprocess_ctl(pre, SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE, &sup_active);
    int err = 0;
    opus = opus_encoder_create(kRate, 2, OPUS_APPLICATION_VOIP, &err);
    if (!opus || err != OPUS_OK) return false;
    opus_encoder_ctl(opus, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE));
    opus_encoder_ctl(opus, OPUS_SET_BITRATE(32000));
    opus_encoder_ctl(opus, OPUS_SET_COMPLEXITY(complexity));
    rs = speex_resampler_init(1, kTtsRate, kRate, 3, &err);
    return echo && pre && rs;
  }
  void frame(std::span<const int16_t> mic, std::span<const int16_t> ref, std::span<const int16_t> tts) {
    speex_echo_cancellation(echo, mic.data(), ref.data(), clean.data());
    speex_preprocess_run(pre, clean.data());
    for (size_t i = 0; i < kFrame; ++i) {
      stereo[2 * i] = clean[i];
      stereo[2 * i + 1] = ref[i];
    }
    bytes += opus_encode(opus, stereo.data(), static_cast<int>(kFrame), packet.data(),
                         static_cast<opus_int32>(packet.size()));
    spx_uint32_t in_len = static_cast<spx_uint32_t>(tts.size());
    spx_uint32_t out_len = static_cast<spx_uint32_t>(tts_out.size());
    speex_resampler_process_int(rs, 0, tts.data(), &in_len, tts_out.data(), &out_len);
  }
  ~Bare() {
    if (echo) speex_echo_state_destroy(echo);
    if (pre) speex_preprocess_state_destroy(pre);
    if (opus) opus_encoder_destroy(opus);
    if (rs) speex_resampler_destroy(rs);
  }
};

}  // namespace

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::atoi(argv[1]) : 60;
  const int rec_cx = argc > 2 ? std::atoi(argv[2]) : osvi::audio::RecordingConfig{}.complexity;
  if (seconds < 8 || rec_cx < 0 || rec_cx > 10) {
    std::fprintf(stderr, "usage: rt_chain_bench [seconds_of_audio>=8] [recording_complexity 0..10]\n");
    return 1;
  }
  const int tail_ms = 128;
  const size_t frames = static_cast<size_t>(seconds) * 50;
  std::vector<int16_t> far, mic;
  make_signals(frames, &far, &mic);
  std::vector<int16_t> tts(frames * kTtsFrame);
  for (size_t i = 0; i < tts.size(); ++i) tts[i] = far[(i * 2 / 3) % far.size()];

  // The call as StreamAudioPort builds it (shipped configuration, replicated: the bench links audio only).
  osvi::audio::LineChainConfig cfg;
  cfg.format = {kRate, 20};
  cfg.capture.echo.tail_ms = tail_ms;
  cfg.vad = "osvi";
  cfg.dtmf = true;
  cfg.call_progress_plan = "in";
  cfg.playback_rate = kTtsRate;
  auto chain = osvi::audio::LineChain::create(cfg);
  if (!chain) return 1;
  auto made = osvi::audio::ChainRunner::create(std::move(*chain));
  if (!made) return 1;
  osvi::audio::ChainRunner& runner = **made;
  CountingSink file;
  osvi::audio::RecordingConfig rc;
  rc.rate = kRate;
  rc.frame_ms = 20;
  rc.bitrate = 32000;
  rc.complexity = rec_cx;
  rc.call_id = "rt-chain-bench";
  osvi::audio::PagePipe pipe(file, osvi::audio::PagePipe::ring_bytes_for(rc.bitrate));
  auto rec = osvi::audio::CallRecorder::create(pipe, rc);
  if (!rec) return 1;
  runner.attach_recorder(&*rec);
  std::vector<int16_t> resampled(runner.chain().max_playback_output());

  std::vector<double> rt_us, loop_us, bare_us;
  rt_us.reserve(frames);
  loop_us.reserve(frames);
  bare_us.reserve(frames);
  std::atomic<size_t> consumed{0};
  std::optional<osvi::test::AllocSnapshot> counted;

  std::thread rt([&] {
    for (size_t f = 0; f < frames; ++f) {
      while (f >= consumed.load(std::memory_order_acquire) + 8) std::this_thread::yield();
      const double t0 = cpu_us();
      runner.process({mic.data() + f * kFrame, kFrame}, {far.data() + f * kFrame, kFrame});
      const double t = cpu_us() - t0;
      if (f >= kWarmup) rt_us.push_back(t);
    }
  });
  osvi::audio::CaptureOutput out;
  for (size_t f = 0; f < frames; ++f) {
    if (f == kWarmup) counted.emplace();
    while (runner.ready() == 0) std::this_thread::yield();
    const double t0 = cpu_us();
    if (!runner.next(out) || out.clean.size() != kFrame) return 3;
    pipe.drain();
    auto got = runner.chain().resample_playback(std::span(tts).subspan(f * kTtsFrame, kTtsFrame), resampled);
    const double t = cpu_us() - t0;
    if (!got) return 3;
    if (f >= kWarmup) loop_us.push_back(t);
    consumed.store(f + 1, std::memory_order_release);
  }
  rt.join();
  const uint64_t allocs = counted->new_delta() + counted->malloc_delta();
  runner.attach_recorder(nullptr);
  pipe.drain();
  if (!rec->finish()) return 4;
  pipe.drain();
  if (pipe.failed() || runner.dropped() != 0 || runner.recorder_errors() != 0) return 4;

  // The bare library calls, same audio, same thread kind (main), after the runner so neither warms the other.
  Bare bare;
  if (!bare.init(tail_ms, rec_cx)) return 1;
  for (size_t f = 0; f < frames; ++f) {
    const double t0 = cpu_us();
    bare.frame({mic.data() + f * kFrame, kFrame}, {far.data() + f * kFrame, kFrame},
               std::span<const int16_t>(tts).subspan(f * kTtsFrame, kTtsFrame));
    const double t = cpu_us() - t0;
    if (f >= kWarmup) bare_us.push_back(t);
  }

  if (bare.bytes <= 0) return 3;
  const Stats r = stats(rt_us), l = stats(loop_us), b = stats(bare_us);
  std::printf(
      "frames measured: %zu of %zu (16 kHz, 20 ms; speex AEC %d ms, call progress \"in\", DTMF on, "
      "stereo recorder 32 kbit/s c%d, %.1f kbit/s reached the file; TTS 24 kHz)\n",
      rt_us.size(), frames, tail_ms, rec_cx, static_cast<double>(file.bytes()) * 8 / 1000 / seconds);
  std::printf("%-62s %8s %8s %8s %8s\n", "CPU us per 20 ms frame, per call", "p50", "p99", "mean", "% core");
  auto row = [](const char* name, const Stats& s) {
    std::printf("%-62s %8.1f %8.1f %8.1f %7.2f%%\n", name, s.p50, s.p99, s.mean, s.mean / 200.0);
  };
  row("RT thread: ChainRunner::process (chain + recorder + rings)", r);
  row("loop: next() + page drain + TTS resample", l);
  row("bare library calls (speex AEC+pre, opus stereo, resampler)", b);
  std::printf("total per call (RT + loop mean): %.1f us = %.2f %% of a core; loop share %.1f %%\n",
              r.mean + l.mean, (r.mean + l.mean) / 200.0, 100.0 * l.mean / (r.mean + l.mean));
  std::printf("heap allocations during the measured frames (both threads): %llu\n",
              static_cast<unsigned long long>(allocs));
  return allocs == 0 ? 0 : 2;
}
