// LineAudioPort: the production AudioPort, a hal::AudioStream with the line's LineChain run on the loop.
#include <array>
#include <cerrno>

#include "audio_ports.hpp"
#include "osvi/config/audio_settings.hpp"

namespace osvi::daemon {
namespace {

class LineAudioPort final : public AudioPort {
 public:
  LineAudioPort(std::unique_ptr<hal::AudioStream> stream, std::unique_ptr<audio::LineChain> chain, int rate,
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
  ~LineAudioPort() override {
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
    const size_t max_in = chain_->max_playback_input();
    for (size_t off = 0; off < in.size(); off += max_in) {
      const size_t n = std::min(max_in, in.size() - off);
      auto r = chain_->resample_playback(in.subspan(off, n), resample_out_);
      if (r)
        out.insert(out.end(), resample_out_.begin(), resample_out_.begin() + static_cast<std::ptrdiff_t>(*r));
    }
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
    while (stream_->read_frame(mic_, ref_)) {
      const audio::CaptureOutput& out = chain_->process_capture(mic_, ref_);
      if (out.clean.empty()) continue;
      listener_.on_capture(out);
      if (!*alive) return;
    }
    listener_.on_audio_tick();
  }

  std::unique_ptr<hal::AudioStream> stream_;
  std::unique_ptr<audio::LineChain> chain_;
  AudioPort::Listener& listener_;
  int rate_;
  std::shared_ptr<bool> alive_;
  EventSource source_;
  std::vector<int16_t> mic_, ref_, resample_out_;
};

}  // namespace

Result<std::unique_ptr<AudioPort>> make_alsa_audio_port(EventLoop& loop, const AudioPortSetup& setup,
                                                        AudioPort::Listener& listener) {
  const hal::AudioEndpoint& ep = setup.endpoint;
  if (ep.kind != hal::AudioEndpoint::Kind::alsa) return make_error("not an ALSA endpoint", -EINVAL);
  if (!ep.ready) return make_error(ep.error.empty() ? "audio not ready" : ep.error, -EAGAIN);
  AudioConfig ac = setup.audio;
  ac.rate = static_cast<int>(ep.sample_rate);
  hal::AudioStreamOptions o =
      audio_stream_options(ac, ep.device, ep.device, static_cast<int>(ep.channels), 0);
  o.alsa_config = ep.alsa_config;
  if (ep.clockless) o.pace = std::chrono::milliseconds(ac.frame_ms);
  o.playback_ring_ms = 1000;  // TTS arriving faster than real time waits in the Call (sized to fit)
  o.capture_ring_ms = 500;    // the loop reads every period; half a second covers any stall of it
  auto stream = hal::AudioStream::create(o);
  if (!stream) return stream.error();
  audio::LineChainConfig cc = line_chain_config(ac, setup.agent);
  cc.amd = setup.amd;
  return make_line_audio_port(loop, std::move(*stream), cc, listener);
}

Result<std::unique_ptr<AudioPort>> make_line_audio_port(EventLoop& loop,
                                                        std::unique_ptr<hal::AudioStream> stream,
                                                        const audio::LineChainConfig& chain_config,
                                                        AudioPort::Listener& listener) {
  if (!stream) return make_error("line audio port: no stream", -EINVAL);
  audio::LineChainConfig cc = chain_config;
  cc.format = {stream->options().rate, stream->options().period_ms};
  auto chain = audio::LineChain::create(cc);
  if (!chain) return chain.error();
  const int rate = stream->options().rate;
  auto port = std::make_unique<LineAudioPort>(std::move(stream), std::move(*chain), rate, listener);
  if (Status s = port->watch(loop); !s) return s.error();
  return std::unique_ptr<AudioPort>(std::move(port));
}

}  // namespace osvi::daemon
