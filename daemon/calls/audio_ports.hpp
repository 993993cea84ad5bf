// The production AudioPorts behind make_line_audio_port(), one per endpoint kind (private to the calls room).
#pragma once

#include <algorithm>
#include <array>
#include <memory>
#include <span>
#include <vector>

#include "osvi/audio/line_chain.hpp"
#include "osvi/base/event_loop.hpp"
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

// A hal stream (hal::AudioStream or hal::TtyAudioStream: the same interface) with the line's LineChain run on
// the loop: the stream's event fd wakes the loop, which drains events and runs the chain on each captured
// period.
template <class Stream>
class StreamAudioPort final : public AudioPort {
 public:
  StreamAudioPort(std::shared_ptr<Stream> stream, std::unique_ptr<audio::LineChain> chain, int rate,
                  AudioPort::Listener& listener)
      : stream_(std::move(stream)),
        chain_(std::move(chain)),
        listener_(listener),
        rate_(rate),
        alive_(std::make_shared<bool>(true)) {
    mic_.resize(stream_->period_frames());
    ref_.resize(stream_->period_frames());
    resample_out_.resize(chain_->max_playback_output());
  }
  ~StreamAudioPort() override {
    *alive_ = false;
    source_.reset();
    stream_->stop();
    chain_->attach_recorder(nullptr);
  }

  Status watch(EventLoop& loop) {
    auto src = loop.add_io(stream_->event_fd(), EPOLLIN, [this](uint32_t) { on_ready(); });
    if (!src) return src.error();
    source_ = std::move(*src);
    return {};
  }

  int rate() const override { return rate_; }
  bool amd_enabled() const override { return chain_->config().amd; }
  Status start() override { return stream_->start(); }
  size_t queue_playback(std::span<const int16_t> samples) override {
    return stream_->queue_playback(samples);
  }
  void resample_tts(std::span<const int16_t> in, std::vector<int16_t>& out) override {
    resample_tts_through(*chain_, resample_out_, in, out);
  }
  uint64_t played_samples() const override { return stream_->stats().played_samples; }
  uint64_t xruns() const override { return stream_->stats().xruns; }
  void stop_playback() override { stream_->stop_playback(); }
  void set_min_speech_ms(int ms) override { (void)chain_->set_min_speech_ms(ms); }
  void set_amd(bool on) override { chain_->set_amd(on); }
  void attach_recorder(audio::CallRecorder* recorder) override { chain_->attach_recorder(recorder); }

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
    // Capture and its reference come out of the stream as one unit.
    while (stream_->read_frame(mic_, ref_)) {
      const audio::CaptureOutput& out = chain_->process_capture(mic_, ref_);
      if (out.clean.empty()) continue;
      listener_.on_capture(out);
      if (!*alive) return;
    }
    listener_.on_audio_tick();
  }

  std::shared_ptr<Stream> stream_;  // shared: an RTP stream is also the SIP line's (DTMF, re-INVITE)
  std::unique_ptr<audio::LineChain> chain_;
  AudioPort::Listener& listener_;
  int rate_;
  std::shared_ptr<bool> alive_;
  EventSource source_;
  std::vector<int16_t> mic_, ref_, resample_out_;
};

// Builds the port and watches its stream on `loop`.
template <class Stream>
Result<std::unique_ptr<AudioPort>> make_stream_audio_port(EventLoop& loop, std::shared_ptr<Stream> stream,
                                                          std::unique_ptr<audio::LineChain> chain, int rate,
                                                          AudioPort::Listener& listener) {
  auto port = std::make_unique<StreamAudioPort<Stream>>(std::move(stream), std::move(chain), rate, listener);
  if (Status s = port->watch(loop); !s) return s.error();
  return std::unique_ptr<AudioPort>(std::move(port));
}
template <class Stream>
Result<std::unique_ptr<AudioPort>> make_stream_audio_port(EventLoop& loop, std::unique_ptr<Stream> stream,
                                                          std::unique_ptr<audio::LineChain> chain, int rate,
                                                          AudioPort::Listener& listener) {
  return make_stream_audio_port(loop, std::shared_ptr<Stream>(std::move(stream)), std::move(chain), rate,
                                listener);
}

// No capture from a PCM tty for this long and the stream reports it stalled (and the line hears of it).
inline constexpr int kTtyStallMs = 500;

}  // namespace osvi::daemon
