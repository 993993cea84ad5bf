// FakeAudio: a test-driven AudioPort (fake_audio_port.hpp).
#include "fake_audio_port.hpp"

#include <algorithm>
#include <cstdlib>

namespace osvi::test {

class FakeAudio::Port final : public daemon::AudioPort {
 public:
  explicit Port(FakeAudio& a) : a_(a) {}
  ~Port() override { a_.listener_ = nullptr; }
  int rate() const override { return a_.rate; }
  bool amd_enabled() const override { return a_.amd; }
  Status start() override { return {}; }
  size_t queue_playback(std::span<const int16_t> samples) override {
    if (a_.stop_requested_) return 0;
    const size_t n = static_cast<size_t>(
        std::min<uint64_t>(samples.size(), a_.capacity - std::min(a_.capacity, a_.unplayed_)));
    for (size_t i = 0; i < n; ++i) a_.queued_peak = std::max(a_.queued_peak, std::abs(int{samples[i]}));
    a_.unplayed_ += n;
    a_.queued_total += n;
    return n;
  }
  void resample_tts(std::span<const int16_t> in, std::vector<int16_t>& out) override {
    const size_t n = in.size() * static_cast<size_t>(a_.rate) / 24000;
    for (size_t i = 0; i < n; ++i) out.push_back(in[i * 24000 / static_cast<size_t>(a_.rate)]);
  }
  uint64_t played_samples() const override { return a_.played_; }
  uint64_t xruns() const override { return a_.xruns; }
  void stop_playback() override {
    a_.stop_requested_ = true;
    ++a_.stops;
  }
  void set_min_speech_ms(int ms) override { a_.min_speech_ms = ms; }
  void set_amd(bool on) override { a_.amd_on = on; }
  void attach_recorder(audio::CallRecorder*) override {}

 private:
  FakeAudio& a_;
};

daemon::AudioPortFactory FakeAudio::factory() {
  return [this](const daemon::AudioPortSetup& setup,
                daemon::AudioPort::Listener& listener) -> Result<std::unique_ptr<daemon::AudioPort>> {
    if (fail_open) return make_error("audio not ready", -EAGAIN);
    ++opens;
    amd = setup.amd;
    amd_on = setup.amd;
    listener_ = &listener;
    unplayed_ = played_ = burst_played_ = pos_ = 0;
    stop_requested_ = false;
    return std::unique_ptr<daemon::AudioPort>(std::make_unique<Port>(*this));
  };
}

void FakeAudio::tick() {
  if (listener_) listener_->on_audio_tick();
}

void FakeAudio::capture(const Frame& frame) {
  if (!listener_) return;
  clean_.assign(static_cast<size_t>(rate * frame_ms / 1000), 0);
  pos_ += clean_.size();
  audio::CaptureOutput out;
  out.clean = clean_;
  for (const audio::EndpointEvent& e : frame.endpoints) out.endpoints.push(e);
  if (frame.dtmf) out.dtmf = audio::DtmfEvent{*frame.dtmf, pos_, pos_};
  out.amd = frame.amd;
  if (frame.beep) out.beep = audio::Beep{1000.0, pos_, pos_};
  if (frame.tone) out.tone = audio::CallProgressEvent{*frame.tone, pos_ > 16000 ? pos_ - 16000 : 0, pos_};
  listener_->on_capture(out);
  tick();
}

void FakeAudio::play(uint64_t n) {
  const uint64_t m = std::min(n, unplayed_);
  unplayed_ -= m;
  played_ += m;
  burst_played_ += m;
  tick();
}

void FakeAudio::drain() {
  play(unplayed_);
  if (!listener_ || burst_played_ == 0) return;
  hal::StreamEvent e;
  e.kind = hal::StreamEventKind::playback_drained;
  e.played = burst_played_;
  burst_played_ = 0;
  listener_->on_stream_event(e);
  tick();
}

void FakeAudio::complete_stop() {
  if (!listener_ || !stop_requested_) return;
  hal::StreamEvent e;
  e.kind = hal::StreamEventKind::playback_stopped;
  e.played = burst_played_;
  e.dropped = unplayed_;
  burst_played_ = 0;
  unplayed_ = 0;
  stop_requested_ = false;
  listener_->on_stream_event(e);
  tick();
}

void FakeAudio::period(const Frame& frame, bool caller_voice) {
  const uint64_t n = static_cast<uint64_t>(rate * frame_ms / 1000);
  capture(frame);  // the call may end (and drop the port) here
  if (caller_voice) last_sound_end_ = std::max(last_sound_end_, clock_ + n);
  if (listener_ && stop_requested_) complete_stop();
  const uint64_t m = listener_ ? std::min(n, unplayed_) : 0;
  if (m > 0) {
    if (last_sound_end_ < clock_) starts_.push_back({clock_, clock_ - last_sound_end_});
    last_sound_end_ = std::max(last_sound_end_, clock_ + m);
    play(m);
    if (listener_ && unplayed_ == 0) drain();
  }
  clock_ += n;
}

uint64_t FakeAudio::longest_gap() const {
  uint64_t g = 0;
  for (const Start& s : starts_) g = std::max(g, s.gap);
  return g;
}

void FakeAudio::reset_heard() {
  starts_.clear();
  last_sound_end_ = clock_;
}

void FakeAudio::event(hal::StreamEventKind kind) {
  hal::StreamEvent e;
  e.kind = kind;
  event(e);
}

void FakeAudio::event(const hal::StreamEvent& e) {
  if (!listener_) return;
  listener_->on_stream_event(e);
  tick();
}

}  // namespace osvi::test
