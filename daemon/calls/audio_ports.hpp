// The production AudioPorts behind make_line_audio_port(), one per endpoint kind (private to the calls room).
#pragma once

#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "osvi/audio/chain_runner.hpp"
#include "osvi/audio/line_chain.hpp"
#include "osvi/base/event_loop.hpp"
#include "osvi/base/log.hpp"
#include "osvi/calls/audio_port.hpp"
#include "osvi/hal/audio_stream.hpp"

namespace osvi::daemon {

// hal::AudioStream (ALSA) + LineChain: EC25, generic ALSA PCMs, the simulated line (line_audio_port.cpp).
Result<std::unique_ptr<AudioPort>> make_alsa_audio_port(EventLoop& loop, const AudioPortSetup& setup,
                                                        AudioPort::Listener& listener);
// hal::TtyAudioStream + LineChain: SIM7600 and generic PCM ttys (tty_audio_port.cpp).
Result<std::unique_ptr<AudioPort>> make_tty_audio_port(EventLoop& loop, const AudioPortSetup& setup,
                                                       AudioPort::Listener& listener);
// hal::RtpStream (a SIP call's media, made by the line) + LineChain (rtp_audio_port.cpp).
Result<std::unique_ptr<AudioPort>> make_rtp_audio_port(EventLoop& loop, const AudioPortSetup& setup,
                                                       AudioPort::Listener& listener);

// 24 kHz TTS audio through the chain's playback resampler, in the pieces it takes at once (`scratch` holds
// max_playback_output() samples), appended to `out`: every port converts the agent's voice the same way.
inline void resample_tts_through(audio::LineChain& chain, std::vector<int16_t>& scratch,
                                 std::span<const int16_t> in, std::vector<int16_t>& out) {
  const size_t max_in = chain.max_playback_input();
  for (size_t off = 0; off < in.size(); off += max_in) {
    const size_t n = std::min(max_in, in.size() - off);
    auto r = chain.resample_playback(in.subspan(off, n), scratch);
    if (r) out.insert(out.end(), scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(*r));
  }
}

// A hal stream (hal::AudioStream, hal::TtyAudioStream or hal::RtpStream: the same interface) with the line's
// LineChain run on the stream's real-time thread: an audio::ChainRunner is the stream's PeriodProcessor, so
// echo cancellation, preprocessing, VAD/endpointing, DTMF, call progress, AMD, the recorder's encode and the
// caller's utterance encode happen there, once per period. The stream's event fd wakes the loop, which drains
// the stream's events, then the runner's processed frames (in capture order) for the Call, then the Call's
// audio tick. The loop keeps the TTS resampling (resample_tts) and the controls, which cross to the thread by
// atomics (ChainRunner).
template <class Stream>
class StreamAudioPort final : public AudioPort {
 public:
  StreamAudioPort(std::shared_ptr<Stream> stream, std::unique_ptr<audio::ChainRunner> runner, int rate,
                  AudioPort::Listener& listener)
      : stream_(std::move(stream)),
        runner_(std::move(runner)),
        listener_(listener),
        rate_(rate),
        alive_(std::make_shared<bool>(true)) {
    resample_out_.resize(runner_->chain().max_playback_output());
  }
  ~StreamAudioPort() override {
    *alive_ = false;
    source_.reset();
    // Joined: the thread runs the runner no more, so the recorder is the loop's again (the Call finishes it
    // after this) and the runner may go. An RTP stream outlives the port (its SIP line holds it): it must not
    // keep a pointer to the runner.
    stream_->stop();
    (void)stream_->set_processor(nullptr);
    runner_->attach_recorder(nullptr);
    if (runner_->dropped() > 0)
      log::warning("call audio: " + std::to_string(runner_->dropped()) +
                   " processed frames dropped: the loop fell behind the audio thread");
    if (runner_->utterance_drops() > 0)
      log::warning("call audio: " + std::to_string(runner_->utterance_drops()) +
                   " utterances dropped on the audio thread: the loop fell behind it");
  }

  Status watch(EventLoop& loop) {
    auto src = loop.add_io(stream_->event_fd(), EPOLLIN, [this](uint32_t) { on_ready(); });
    if (!src) return src.error();
    source_ = std::move(*src);
    return {};
  }

  int rate() const override { return rate_; }
  bool amd_enabled() const override { return runner_->chain().config().amd; }
  Status start() override {
    if (Status s = stream_->set_processor(runner_.get()); !s) return s;
    return stream_->start();
  }
  size_t queue_playback(std::span<const int16_t> samples) override {
    return stream_->queue_playback(samples);
  }
  // On the loop: the chain's playback resampler shares no state with the capture side the thread runs.
  void resample_tts(std::span<const int16_t> in, std::vector<int16_t>& out) override {
    resample_tts_through(runner_->chain(), resample_out_, in, out);
  }
  uint64_t played_samples() const override { return stream_->stats().played_samples; }
  uint64_t xruns() const override { return stream_->stats().xruns; }
  void stop_playback() override { stream_->stop_playback(); }
  void set_min_speech_ms(int ms) override { runner_->set_min_speech_ms(ms); }
  void set_amd(bool on) override { runner_->set_amd(on); }
  // Returns once the audio thread is out of the previous recorder (ChainRunner::attach_recorder).
  void attach_recorder(audio::CallRecorder* recorder) override { runner_->attach_recorder(recorder); }
  bool encodes_utterances() const override { return runner_->encodes_utterances(); }
  Result<std::vector<uint8_t>> take_utterance() override { return runner_->take_utterance(); }

  const audio::ChainRunner& runner() const { return *runner_; }

 private:
  // Every listener call may destroy this port: `alive` (a copy) says whether members are still there.
  void on_ready() {
    const std::shared_ptr<bool> alive = alive_;
    std::array<hal::StreamEvent, 16> events;
    const size_t n = stream_->drain_events(events);
    for (size_t i = 0; i < n; ++i) {
      listener_.on_stream_event(events[i]);
      if (!*alive) return;
    }
    // Processed on the audio thread; the frame's spans stay valid until the next next().
    while (runner_->next(out_)) {
      listener_.on_capture(out_);
      if (!*alive) return;
    }
    listener_.on_audio_tick();
  }

  std::shared_ptr<Stream> stream_;  // shared: an RTP stream is also the SIP line's (DTMF, re-INVITE)
  std::unique_ptr<audio::ChainRunner> runner_;
  AudioPort::Listener& listener_;
  int rate_;
  std::shared_ptr<bool> alive_;
  EventSource source_;
  audio::CaptureOutput out_;
  std::vector<int16_t> resample_out_;
};

// Builds the port (the chain wrapped in its runner) and watches its stream on `loop`. `utterance` set (the
// production ports: audio.opus.*), the runner also encodes the caller's utterances on the stream's thread.
template <class Stream>
Result<std::unique_ptr<AudioPort>> make_stream_audio_port(
    EventLoop& loop, std::shared_ptr<Stream> stream, std::unique_ptr<audio::LineChain> chain, int rate,
    AudioPort::Listener& listener, std::optional<audio::UtteranceOptions> utterance = std::nullopt) {
  // The ring is written round in half a second, so its size is what every live call holds (32 kB at 16 kHz
  // for 500 ms): the loop reads it every period, and a quarter second covers a stall ~50 times its p99
  // (bench/README.md, issue 18).
  audio::ChainRunnerOptions ro;
  ro.ring_ms = 250;
  ro.utterance = utterance;
  auto runner = audio::ChainRunner::create(std::move(chain), ro);
  if (!runner) return runner.error();
  auto port =
      std::make_unique<StreamAudioPort<Stream>>(std::move(stream), std::move(*runner), rate, listener);
  if (Status s = port->watch(loop); !s) return s.error();
  return std::unique_ptr<AudioPort>(std::move(port));
}
template <class Stream>
Result<std::unique_ptr<AudioPort>> make_stream_audio_port(
    EventLoop& loop, std::unique_ptr<Stream> stream, std::unique_ptr<audio::LineChain> chain, int rate,
    AudioPort::Listener& listener, std::optional<audio::UtteranceOptions> utterance = std::nullopt) {
  return make_stream_audio_port(loop, std::shared_ptr<Stream>(std::move(stream)), std::move(chain), rate,
                                listener, utterance);
}

// No capture from a PCM tty for this long and the stream reports it stalled (and the line hears of it).
inline constexpr int kTtyStallMs = 500;

}  // namespace osvi::daemon
