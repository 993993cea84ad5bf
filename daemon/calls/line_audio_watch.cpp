// make_line_audio_port: picks the port for the line's endpoint kind and tells the line what its audio path
// really does (open, lost, a PCM tty gone silent), so health and the journal see the engine's truth.
#include <cerrno>
#include <cstring>

#include "audio_ports.hpp"

namespace osvi::daemon {
namespace {

// Sits between the real port and the Call: forwards everything, reporting stream events to the line first.
class LineWatchPort final : public AudioPort, private AudioPort::Listener {
 public:
  LineWatchPort(hal::Line& line, const hal::AudioEndpoint& endpoint, AudioPort::Listener& outer)
      : line_(line),
        tty_(endpoint.kind == hal::AudioEndpoint::Kind::tty),
        device_(endpoint.device),
        outer_(outer) {}
  ~LineWatchPort() override {
    inner_.reset();
    line_.report_audio_open(false);
  }
  AudioPort::Listener& as_listener() { return *this; }
  void set_inner(std::unique_ptr<AudioPort> inner) { inner_ = std::move(inner); }

  int rate() const override { return inner_->rate(); }
  bool amd_enabled() const override { return inner_->amd_enabled(); }
  Status start() override { return inner_->start(); }
  size_t queue_playback(std::span<const int16_t> samples) override { return inner_->queue_playback(samples); }
  void resample_tts(std::span<const int16_t> in, std::vector<int16_t>& out) override {
    inner_->resample_tts(in, out);
  }
  uint64_t played_samples() const override { return inner_->played_samples(); }
  void stop_playback() override { inner_->stop_playback(); }
  uint64_t xruns() const override { return inner_->xruns(); }
  void set_min_speech_ms(int ms) override { inner_->set_min_speech_ms(ms); }
  void set_amd(bool on) override { inner_->set_amd(on); }
  void attach_recorder(audio::CallRecorder* recorder) override { inner_->attach_recorder(recorder); }
  bool encodes_utterances() const override { return inner_->encodes_utterances(); }
  Result<std::vector<uint8_t>> take_utterance() override { return inner_->take_utterance(); }

 private:
  // Each forward may destroy this object (the call ended): nothing touches a member after one.
  void on_stream_event(const hal::StreamEvent& e) override {
    using K = hal::StreamEventKind;
    if (e.kind == K::opened || e.kind == K::device_back) line_.report_audio_open(true);
    if (e.kind == K::device_lost) {
      line_.report_audio_open(false);
      // A PCM tty is the one endpoint whose stall only the engine can see (no driver reports it). Once per
      // call, and only while the call is up: a module stops its PCM when we hang up (AT+CPCMREG=0), which is
      // no stall. The Call ends it as audio lost unless the audio is back within its wait.
      if (tty_ && !stall_reported_ && line_.state() == hal::LineState::active) {
        stall_reported_ = true;
        line_.report_audio_stalled(e.error == -ETIMEDOUT ? "no audio from " + device_ + " for " +
                                                               std::to_string(kTtyStallMs) + " ms"
                                                         : device_ + ": " + std::strerror(-e.error));
      }
    }
    outer_.on_stream_event(e);
  }
  void on_capture(const audio::CaptureOutput& frame) override { outer_.on_capture(frame); }
  void on_audio_tick() override { outer_.on_audio_tick(); }

  hal::Line& line_;
  const bool tty_;
  const std::string device_;
  AudioPort::Listener& outer_;
  std::unique_ptr<AudioPort> inner_;
  bool stall_reported_ = false;
};

Result<std::unique_ptr<AudioPort>> make_port(EventLoop& loop, const AudioPortSetup& setup,
                                             AudioPort::Listener& listener) {
  switch (setup.endpoint.kind) {
    case hal::AudioEndpoint::Kind::alsa:
      return make_alsa_audio_port(loop, setup, listener);
    case hal::AudioEndpoint::Kind::tty:
      return make_tty_audio_port(loop, setup, listener);
    case hal::AudioEndpoint::Kind::rtp:
      return make_rtp_audio_port(loop, setup, listener);
    case hal::AudioEndpoint::Kind::none:
    case hal::AudioEndpoint::Kind::simulated:
    case hal::AudioEndpoint::Kind::web:  // its port comes with the call (WebCalls), never from here
      break;
  }
  return make_error(
      setup.endpoint.unavailable.empty() ? "the line has no audio endpoint" : setup.endpoint.unavailable,
      -ENOTSUP);
}

}  // namespace

Result<std::unique_ptr<AudioPort>> make_line_audio_port(EventLoop& loop, const AudioPortSetup& setup,
                                                        AudioPort::Listener& listener) {
  if (!setup.line) return make_port(loop, setup, listener);
  auto watch = std::make_unique<LineWatchPort>(*setup.line, setup.endpoint, listener);
  auto inner = make_port(loop, setup, watch->as_listener());
  if (!inner) return inner.error();
  watch->set_inner(std::move(*inner));
  return std::unique_ptr<AudioPort>(std::move(watch));
}

}  // namespace osvi::daemon
