// Per-call DSP cost per frame (20 ms, or 10 ms with --frame-ms 10) at 16 kHz, what a call runs with the
// shipped configuration:
//
//   capture   = LineChain::process_capture, which is what LineAudioPort runs on every captured period:
//               speex AEC (128 ms tail) + preprocess (denoise, residual echo suppression) + osvi
//               VAD/endpointer + DTMF + call progress ("in", the default plan, run on the raw mic) + the
//               stereo CallRecorder push (32 kbit/s, audio.recording.complexity) that the Call attaches for
//               the whole call. No
//               per-frame Opus encoder any more (issue 11 removed the one whose output was discarded);
//   outbound  = the same chain with AMD + beep detection on (outbound calls, until the verdict);
//   playback  = LineChain::resample_playback of 20 ms of 24 kHz TTS PCM to the line rate (what
//               Call::on_tts_audio → LineAudioPort::resample_tts runs; TTS arrives as PCM, never Opus);
//   utterance = UtteranceEncoder::push of the cleaned frame (audio.opus: c5, 24 kbit/s), which the Call
//               runs only while the caller speaks (between the endpointer's onset and its decision).
//
// Not timed: ALSA, the ring copies, the recorder's page write() to its file (one per ~1 s of audio; the sink
// here keeps nothing) and the Call's byte→sample conversion of TTS chunks. p50/p99/mean of thread CPU time
// per frame; heap allocations counted over the measured chain frames (exit 2 if any; the utterance encoder
// runs on the loop, where its packet buffer may grow, and is timed in a pass of its own).
//
// Bare library calls (issue 18), in the same run over the same signals: speexdsp's echo canceller and
// preprocessor configured as the chain configures them, the osvi VAD alone, libopus encoding the stereo
// recording frame (32 kbit/s, the recorder's complexity, VOIP) and speexdsp's resampler for the playback.
// Their sum beside the chain says how much the chain adds around them (endpointer, DTMF, call progress, Ogg
// framing, copies). Then, in a pass of their own so they do not crowd the bare calls' caches, the levers:
// the Opus encode at complexities 0..5 (what audio.recording.complexity buys; its quality cost is
// recording_quality_bench's), echo tails of 32/64/256 ms, and the preprocessor with denoise off, AGC on or
// dereverb on (cost only: it is bound to the bare canceller's final state).
//
// Signals: "stress" (the default) = the far end talks all the time and the caller talks over it every other
// 4 s (echo_signals.hpp make_echo_signals); "turns" = a call in turns, the agent 4 s then the caller 4.5 s
// with 0.5 s of barge-in (make_turn_signals). TTS is resampled on every frame in both (an upper bound).
//
// --frame-ms 10 prices audio.frame_ms 10 (the single-call latency lever of issue 18): the chain, the
// recorder's Opus frames, the VAD and the bare calls all run 10 ms frames, twice as many per second; the
// "% of a core" divides by the frame's length.
//
// Usage: chain_bench [seconds_of_audio=120] [echo_tail_ms=128] [recording_complexity=the shipped default]
//                    [signal=stress|turns] [--frame-ms 10|20]
#include <opus/opus.h>
#include <speex/speex_echo.h>
#include <speex/speex_preprocess.h>
#include <speex/speex_resampler.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "alloc_counter.hpp"
#include "echo_signals.hpp"
#include "osvi/audio/line_chain.hpp"
#include "osvi/audio/recording.hpp"
#include "osvi/audio/vad.hpp"
#include "wav.hpp"

namespace {

constexpr int kRate = 16000;
int g_frame_ms = 20;  // --frame-ms: audio.frame_ms
size_t kFrame = 320;  // samples per frame at kRate (320 = 20 ms)
constexpr int kTtsRate = 24000;
size_t kTtsFrame = 480;  // one frame of TTS at 24 kHz

using osvi::bench::cpu_us;
using osvi::bench::Stats;
using osvi::bench::stats;

std::vector<double> sum(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> s(a.size());
  for (size_t i = 0; i < s.size(); ++i) s[i] = a[i] + b[i];
  return s;
}

double us_since(double t0) {
  return cpu_us() - t0;
}

// The daemon writes pages to the .opus.part file; here they are counted and dropped (no I/O in the timing).
using osvi::bench::CountingSink;
void make_signals(size_t frames, bool turns, std::vector<int16_t>* far, std::vector<int16_t>* mic) {
  if (turns) return osvi::bench::make_turn_signals(frames * kFrame, kRate, far, mic);
  osvi::bench::make_echo_signals(frames * kFrame, kRate, far, mic);
}

// The chain LineAudioPort builds from the shipped AudioConfig (daemon/config/audio_settings.cpp
// line_chain_config with the defaults of docs/configuration.md "audio"), and the recorder
// Call::open_recording attaches. Replicated here because the bench links the audio library only.
struct CallDsp {
  std::unique_ptr<osvi::audio::LineChain> chain;
  CountingSink sink;
  std::optional<osvi::audio::CallRecorder> recorder;
};

bool make_call_dsp(CallDsp& d, int tail_ms, bool amd, int rec_complexity) {
  osvi::audio::LineChainConfig cfg;
  cfg.format = {kRate, g_frame_ms};
  cfg.capture.echo.tail_ms = tail_ms;  // audio.echo.tail_ms
  cfg.vad = "osvi";                    // audio.vad
  cfg.dtmf = true;                     // audio.dtmf
  cfg.call_progress_plan = "in";       // audio.call_progress_plan
  cfg.playback_rate = kTtsRate;
  cfg.amd = amd;  // call.voicemail.detect, outbound
  auto chain = osvi::audio::LineChain::create(cfg);
  if (!chain) {
    std::fprintf(stderr, "chain: %s\n", chain.error().message.c_str());
    return false;
  }
  d.chain = std::move(*chain);
  osvi::audio::RecordingConfig rc;  // audio.recording.bitrate 32000
  rc.rate = kRate;
  rc.frame_ms = g_frame_ms;  // the call's recorder uses audio.frame_ms (call.cpp)
  rc.bitrate = 32000;
  rc.complexity = rec_complexity;  // audio.recording.complexity
  rc.call_id = "chain-bench";
  auto rec = osvi::audio::CallRecorder::create(d.sink, rc);
  if (!rec) {
    std::fprintf(stderr, "recorder: %s\n", rec.error().message.c_str());
    return false;
  }
  d.recorder.emplace(std::move(*rec));
  d.chain->attach_recorder(&*d.recorder);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<const char*> pos;
  bool bad = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--frame-ms" && i + 1 < argc) {
      g_frame_ms = std::atoi(argv[++i]);
      bad = bad || (g_frame_ms != 10 && g_frame_ms != 20);
    } else {
      pos.push_back(argv[i]);
    }
  }
  const int seconds = pos.size() > 0 ? std::atoi(pos[0]) : 120;
  const int tail_ms = pos.size() > 1 ? std::atoi(pos[1]) : 128;  // the shipped audio.echo.tail_ms
  const int rec_cx = pos.size() > 2 ? std::atoi(pos[2]) : osvi::audio::RecordingConfig{}.complexity;
  const std::string signal = pos.size() > 3 ? pos[3] : "stress";
  if (bad || pos.size() > 4 || seconds < 8 || tail_ms < 10 || rec_cx < 0 || rec_cx > 10 ||
      (signal != "stress" && signal != "turns")) {
    std::fprintf(stderr,
                 "usage: chain_bench [seconds_of_audio>=8] [echo_tail_ms>=10] [recording_complexity 0..10] "
                 "[stress|turns] [--frame-ms 10|20]\n");
    return 1;
  }
  kFrame = static_cast<size_t>(kRate * g_frame_ms / 1000);
  kTtsFrame = static_cast<size_t>(kTtsRate * g_frame_ms / 1000);
  const size_t frames = static_cast<size_t>(seconds) * 1000 / static_cast<size_t>(g_frame_ms);
  const size_t warmup = 100;
  std::vector<int16_t> far, mic;
  make_signals(frames, signal == "turns", &far, &mic);
  // TTS as it arrives: 24 kHz PCM (the far-end speech stretched onto 24 kHz by sample repetition).
  std::vector<int16_t> tts(frames * kTtsFrame);
  for (size_t i = 0; i < tts.size(); ++i) tts[i] = far[(i * 2 / 3) % far.size()];

  CallDsp inbound, outbound;
  if (!make_call_dsp(inbound, tail_ms, false, rec_cx) || !make_call_dsp(outbound, tail_ms, true, rec_cx))
    return 1;
  std::vector<int16_t> pcm(inbound.chain->max_playback_output());
  if (inbound.chain->max_playback_input() < kTtsFrame) return 1;

  std::vector<double> cap_us, out_us, play_us;
  for (auto* v : {&cap_us, &out_us, &play_us}) v->reserve(frames);
  std::vector<int16_t> clean(frames * kFrame);  // for the utterance pass
  size_t amd_rearmed = 0, amd_frames = 0;
  std::optional<osvi::test::AllocSnapshot> counted;
  for (size_t f = 0; f < frames; ++f) {
    if (f == warmup) counted.emplace();
    const std::span<const int16_t> m(mic.data() + f * kFrame, kFrame), r(far.data() + f * kFrame, kFrame);

    double t0 = cpu_us();
    const auto& a = inbound.chain->process_capture(m, r);
    const double c = us_since(t0);
    if (a.clean.empty()) return 3;
    std::copy(a.clean.begin(), a.clean.end(), clean.begin() + static_cast<std::ptrdiff_t>(f * kFrame));

    t0 = cpu_us();
    const auto& b = outbound.chain->process_capture(m, r);
    const double o = us_since(t0);
    if (b.clean.empty()) return 3;

    t0 = cpu_us();
    auto got = inbound.chain->resample_playback(std::span(tts).subspan(f * kTtsFrame, kTtsFrame), pcm);
    const double p = us_since(t0);
    if (!got) return 3;

    // AMD switches itself off at its verdict; re-arm it (untimed) so every outbound frame runs the detectors,
    // as the first seconds of an outbound call do. set_amd(true) resets AMD and the beep detector, no
    // allocation.
    if (f >= warmup) ++amd_frames;
    if (b.amd != osvi::audio::AmdVerdict::pending || b.beep) {
      outbound.chain->set_amd(false);
      outbound.chain->set_amd(true);
      ++amd_rearmed;
    }
    if (f >= warmup) {
      cap_us.push_back(c);
      out_us.push_back(o);
      play_us.push_back(p);
    }
  }
  const uint64_t allocs = counted->new_delta() + counted->malloc_delta();
  for (CallDsp* d : {&inbound, &outbound}) {
    d->chain->attach_recorder(nullptr);
    if (!d->recorder->finish()) return 4;
    if (d->chain->recorder_errors() != 0) return 4;
  }

  // The utterance encoder over the caller's 4 s turns (every other 4 s of the signal), one utterance each,
  // as the Call feeds it between onset and decision.
  auto utt = osvi::audio::UtteranceEncoder::create(kRate, {.bitrate = 24000, .complexity = 5});
  if (!utt) return 1;
  std::vector<double> utt_us, finish_us;
  const size_t turn = 4 * kRate / kFrame;
  for (size_t f = turn; f + turn <= frames; f += 2 * turn) {
    if (!utt->begin()) return 3;
    for (size_t k = f; k < f + turn; ++k) {
      const double t0 = cpu_us();
      if (!utt->push(std::span<const int16_t>(clean).subspan(k * kFrame, kFrame))) return 3;
      if (k >= warmup) utt_us.push_back(us_since(t0));
    }
    const double t0 = cpu_us();
    auto blob = utt->finish(utt->samples() - 8000);  // the endpointer trims its 0.5 s wait
    finish_us.push_back(us_since(t0));
    if (!blob) return 3;
  }

  // --- The bare library calls over the same frames. ---
  constexpr int kOpus = 6;
  std::vector<double> b_echo, b_pre, b_vad, b_res, b_opus[kOpus];
  const int opus_cx[kOpus] = {rec_cx, 5, 3, 2, 1, 0};  // the first is the recorder's, in the bare sum
  // Levers (not in the bare sum), timed in a pass of their own after the bare one so they do not crowd its
  // caches: the recorder's encode at other complexities, other echo tails on the same frames, and the
  // preprocessor with each feature switched on the bare canceller's output.
  constexpr int kTails = 3;
  const int tails[kTails] = {32, 64, 256};
  constexpr int kPres = 3;
  const char* pre_names[kPres] = {"denoise off (echo suppression only)", "+ AGC", "+ dereverb"};
  std::vector<double> b_tail[kTails], b_prev[kPres];
  {
    const int frame = static_cast<int>(kFrame);
    SpeexEchoState* echo = speex_echo_state_init(frame, kRate * tail_ms / 1000);
    int rate = kRate;
    speex_echo_ctl(echo, SPEEX_ECHO_SET_SAMPLING_RATE, &rate);
    SpeexPreprocessState* pre = speex_preprocess_state_init(frame, kRate);
    int on = 1, off = 0, ns = -25, es = -40, esa = -15;
    speex_preprocess_ctl(pre, SPEEX_PREPROCESS_SET_DENOISE, &on);
    speex_preprocess_ctl(pre, SPEEX_PREPROCESS_SET_NOISE_SUPPRESS, &ns);
    speex_preprocess_ctl(pre, SPEEX_PREPROCESS_SET_DEREVERB, &off);
    speex_preprocess_ctl(pre, SPEEX_PREPROCESS_SET_AGC, &off);
    speex_preprocess_ctl(pre, SPEEX_PREPROCESS_SET_ECHO_STATE, echo);
    speex_preprocess_ctl(pre, SPEEX_PREPROCESS_SET_ECHO_SUPPRESS, &es);
    speex_preprocess_ctl(pre, SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE, &esa);
    SpeexEchoState* echo_t[kTails];
    for (int k = 0; k < kTails; ++k) {
      echo_t[k] = speex_echo_state_init(frame, kRate * tails[k] / 1000);
      speex_echo_ctl(echo_t[k], SPEEX_ECHO_SET_SAMPLING_RATE, &rate);
    }
    SpeexPreprocessState* pre_v[kPres];
    for (int k = 0; k < kPres; ++k) {
      pre_v[k] = speex_preprocess_state_init(frame, kRate);
      int denoise = k == 0 ? 0 : 1, agc = k == 1 ? 1 : 0, dereverb = k == 2 ? 1 : 0;
      speex_preprocess_ctl(pre_v[k], SPEEX_PREPROCESS_SET_DENOISE, &denoise);
      speex_preprocess_ctl(pre_v[k], SPEEX_PREPROCESS_SET_NOISE_SUPPRESS, &ns);
      speex_preprocess_ctl(pre_v[k], SPEEX_PREPROCESS_SET_DEREVERB, &dereverb);
      speex_preprocess_ctl(pre_v[k], SPEEX_PREPROCESS_SET_AGC, &agc);
      speex_preprocess_ctl(pre_v[k], SPEEX_PREPROCESS_SET_ECHO_STATE, echo);
      speex_preprocess_ctl(pre_v[k], SPEEX_PREPROCESS_SET_ECHO_SUPPRESS, &es);
      speex_preprocess_ctl(pre_v[k], SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE, &esa);
    }
    std::vector<int16_t> lever_out(kFrame), aec_all(frames * kFrame), clean_all(frames * kFrame);
    auto vad = osvi::audio::make_osvi_vad({kRate, g_frame_ms});
    if (!vad) return 1;
    int err = 0;
    SpeexResamplerState* rs =
        speex_resampler_init(1, kTtsRate, kRate, osvi::audio::Resampler::kDefaultQuality, &err);
    OpusEncoder* enc[kOpus];
    for (int k = 0; k < kOpus; ++k) {
      enc[k] = opus_encoder_create(kRate, 2, OPUS_APPLICATION_VOIP, &err);
      if (!enc[k] || err != OPUS_OK) return 1;
      opus_encoder_ctl(enc[k], OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE));
      opus_encoder_ctl(enc[k], OPUS_SET_BITRATE(32000));
      opus_encoder_ctl(enc[k], OPUS_SET_COMPLEXITY(opus_cx[k]));
    }
    std::vector<int16_t> out(kFrame), stereo(2 * kFrame), res(kFrame * 2);
    std::vector<unsigned char> packet(4000);
    for (auto* v : {&b_echo, &b_pre, &b_vad, &b_res}) v->reserve(frames);
    for (auto& v : b_opus) v.reserve(frames);
    for (auto& v : b_tail) v.reserve(frames);
    for (auto& v : b_prev) v.reserve(frames);
    for (size_t f = 0; f < frames; ++f) {
      const int16_t* m = mic.data() + f * kFrame;
      const int16_t* r = far.data() + f * kFrame;
      double t0 = cpu_us();
      speex_echo_cancellation(echo, m, r, out.data());
      const double e = us_since(t0);
      std::copy(out.begin(), out.end(), aec_all.begin() + static_cast<std::ptrdiff_t>(f * kFrame));
      t0 = cpu_us();
      speex_preprocess_run(pre, out.data());
      const double pr = us_since(t0);
      std::copy(out.begin(), out.end(), clean_all.begin() + static_cast<std::ptrdiff_t>(f * kFrame));
      t0 = cpu_us();
      const auto vf = (*vad)->process(out);
      const double v = us_since(t0);
      for (size_t i = 0; i < kFrame; ++i) stereo[2 * i] = out[i], stereo[2 * i + 1] = r[i];
      t0 = cpu_us();
      const opus_int32 bytes = opus_encode(enc[0], stereo.data(), frame, packet.data(), 4000);
      const double o = us_since(t0);
      if (bytes < 0) return 3;
      spx_uint32_t in_len = static_cast<spx_uint32_t>(kTtsFrame),
                   out_len = static_cast<spx_uint32_t>(res.size());
      t0 = cpu_us();
      speex_resampler_process_int(rs, 0, tts.data() + f * kTtsFrame, &in_len, res.data(), &out_len);
      const double rr = us_since(t0);
      (void)vf;
      if (f >= warmup) {
        b_echo.push_back(e), b_pre.push_back(pr), b_vad.push_back(v), b_res.push_back(rr);
        b_opus[0].push_back(o);
      }
    }
    for (size_t f = 0; f < frames; ++f) {
      const int16_t* m = mic.data() + f * kFrame;
      const int16_t* r = far.data() + f * kFrame;
      for (int k = 0; k < kTails; ++k) {
        const double t0 = cpu_us();
        speex_echo_cancellation(echo_t[k], m, r, lever_out.data());
        if (f >= warmup) b_tail[k].push_back(us_since(t0));
      }
      for (int k = 0; k < kPres; ++k) {
        std::copy_n(aec_all.begin() + static_cast<std::ptrdiff_t>(f * kFrame), kFrame, lever_out.begin());
        const double t0 = cpu_us();
        speex_preprocess_run(pre_v[k], lever_out.data());
        if (f >= warmup) b_prev[k].push_back(us_since(t0));
      }
      for (size_t i = 0; i < kFrame; ++i) stereo[2 * i] = clean_all[f * kFrame + i], stereo[2 * i + 1] = r[i];
      for (int k = 1; k < kOpus; ++k) {
        const double t0 = cpu_us();
        const opus_int32 bytes = opus_encode(enc[k], stereo.data(), frame, packet.data(), 4000);
        if (f >= warmup) b_opus[k].push_back(us_since(t0));
        if (bytes < 0) return 3;
      }
    }
    for (auto* p : pre_v) speex_preprocess_state_destroy(p);
    for (auto* t : echo_t) speex_echo_state_destroy(t);
    for (auto* e : enc) opus_encoder_destroy(e);
    speex_resampler_destroy(rs);
    speex_preprocess_state_destroy(pre);
    speex_echo_state_destroy(echo);
  }

  const Stats cs = stats(cap_us), os = stats(out_us), ps = stats(play_us), us = stats(utt_us),
              fs = stats(finish_us);
  const Stats ts = stats(sum(cap_us, play_us)), tos = stats(sum(out_us, play_us));
  std::printf(
      "frames measured: %zu of %zu, signal %s (16 kHz, %d ms; speex AEC tail %d ms, call progress \"in\", "
      "DTMF on, "
      "stereo recorder 32 kbit/s c%d %.1f kbit/s written; TTS 24 kHz PCM; utterances c5 24 kbit/s)\n",
      cap_us.size(), frames, signal.c_str(), g_frame_ms, tail_ms, rec_cx,
      static_cast<double>(inbound.sink.bytes()) * 8 / 1000 / seconds);
  std::printf("AMD re-armed %zu times at its verdicts over %zu frames\n", amd_rearmed, amd_frames);
  std::printf("CPU us per %d ms frame%36s %9s %9s %9s\n", g_frame_ms, "", "p50", "p99", "mean");
  auto row = [](const char* name, const Stats& s) {
    std::printf("%-58s %9.1f %9.1f %9.1f\n", name, s.p50, s.p99, s.mean);
  };
  row("capture (AEC+pre+VAD+DTMF+CPD+stereo recorder)", cs);
  row("capture, outbound with AMD+beep running", os);
  row("playback: 24 kHz TTS -> 16 kHz resample", ps);
  row("utterance encoder push, while the caller speaks", us);
  row("total inbound (capture + playback)", ts);
  row("total outbound while AMD runs", tos);
  std::printf("%-58s %9.1f %9.1f %9.1f\n", "total inbound while the caller speaks (+ utterance), approx",
              ts.p50 + us.p50, ts.p99 + us.p99, ts.mean + us.mean);
  row("utterance finish at the decision (per 4 s utterance)", fs);
  std::printf(
      "core per channel (mean total / %d ms): %.2f %% (%.0f per core); p99/p50 %.2f; target <= 1.00 %%: %s\n",
      g_frame_ms, ts.mean / (10.0 * g_frame_ms), 1000.0 * g_frame_ms / ts.mean, ts.p99 / ts.p50,
      ts.mean / (10.0 * g_frame_ms) <= 1.0 ? "PASS" : "MISS");
  std::printf("\nbare library calls, same run, same frames:\n");
  std::printf("CPU us per %d ms frame%36s %9s %9s %9s\n", g_frame_ms, "", "p50", "p99", "mean");
  row("speex_echo_cancellation (tail as above)", stats(b_echo));
  row("speex_preprocess_run (denoise -25, echo suppress -40/-15)", stats(b_pre));
  row("osvi VAD process (the endpointer's detector)", stats(b_vad));
  {
    char name[96];
    std::snprintf(name, sizeof name, "opus_encode stereo 16 kHz 32 kbit/s VOIP, complexity %d", opus_cx[0]);
    row(name, stats(b_opus[0]));
  }
  row("speex_resampler_process_int 24 -> 16 kHz", stats(b_res));
  const Stats bare = stats(sum(sum(sum(b_echo, b_pre), sum(b_vad, b_opus[0])), b_res));
  char bare_name[96];
  std::snprintf(bare_name, sizeof bare_name, "bare sum (echo + preprocess + VAD + opus c%d + resampler)",
                rec_cx);
  row(bare_name, bare);
  std::printf("chain (capture + playback) minus bare sum, mean: %.1f us (%.0f %% of the chain)\n",
              ts.mean - bare.mean, 100.0 * (ts.mean - bare.mean) / ts.mean);
  std::printf("\nlevers, same run, a pass of their own (not in the bare sum):\n");
  for (int k = 1; k < kOpus; ++k) {
    char name[96];
    std::snprintf(name, sizeof name, "opus_encode stereo 16 kHz 32 kbit/s VOIP, complexity %d", opus_cx[k]);
    row(name, stats(b_opus[k]));
  }
  for (int k = 0; k < kTails; ++k) {
    char name[96];
    std::snprintf(name, sizeof name, "speex_echo_cancellation, %d ms tail", tails[k]);
    row(name, stats(b_tail[k]));
  }
  for (int k = 0; k < kPres; ++k) {
    char name[96];
    std::snprintf(name, sizeof name, "speex_preprocess_run, %s", pre_names[k]);
    row(name, stats(b_prev[k]));
  }
  std::printf("heap allocations during %zu measured frames (both chains + recorders + playback): %llu\n",
              cap_us.size(), static_cast<unsigned long long>(allocs));
  return allocs == 0 ? 0 : 2;
}
