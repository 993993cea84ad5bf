// The per-line chain: wiring of the DSP blocks, all buffers sized up front.
#include "osvi/audio/line_chain.hpp"

#include <algorithm>

namespace osvi::audio {

Result<std::unique_ptr<LineChain>> LineChain::create(const LineChainConfig& config) {
  const Format f = config.format;
  if (!valid_call_rate(f.rate) || (f.frame_ms != 10 && f.frame_ms != 20))
    return make_error("line chain: rate must be 8000 or 16000 and frames 10 or 20 ms");
  std::unique_ptr<LineChain> c(new LineChain());
  c->config_ = config;

  CaptureOptions cap = config.capture;
  cap.echo.format = f;
  auto cleaner = CaptureCleaner::create(cap);
  if (!cleaner) return cleaner.error();
  c->cleaner_ = std::move(*cleaner);

  auto vad = make_vad(config.vad, f, config.vad_options);
  if (!vad) return vad.error();
  auto ep = Endpointer::create(std::move(*vad), config.endpointer);
  if (!ep) return ep.error();
  c->endpointer_ = std::make_unique<Endpointer>(std::move(*ep));

  // Upstream PCM is handed over in pieces of up to 120 ms at playback_rate.
  const int prate = config.playback_rate;
  if (!Resampler::supported_rate(prate)) return make_error("line chain: unsupported playback_rate");
  auto rs = Resampler::create(prate, f.rate, static_cast<size_t>(prate / 1000 * 120));
  if (!rs) return rs.error();
  c->playback_resampler_.emplace(std::move(*rs));

  if (config.dtmf) {
    auto d = DtmfDetector::create(f.rate);
    if (!d) return d.error();
    c->dtmf_.emplace(std::move(*d));
  }
  if (!config.call_progress_plan.empty()) {
    CallProgressConfig pc;
    pc.plan = config.call_progress_plan;
    auto p = CallProgressDetector::create(f.rate, pc);
    if (!p) return p.error();
    c->progress_.emplace(std::move(*p));
  }
  auto amd = AnsweringMachineDetector::create(f.rate, config.amd_config);
  if (!amd) return amd.error();
  c->amd_.emplace(std::move(*amd));
  auto beep = BeepDetector::create(f.rate);
  if (!beep) return beep.error();
  c->beep_.emplace(std::move(*beep));
  c->amd_on_ = config.amd;

  c->clean_ = std::make_unique<int16_t[]>(f.frame_samples());
  return c;
}

LineChain::~LineChain() = default;

const CaptureOutput& LineChain::process_capture(std::span<const int16_t> mic,
                                                std::span<const int16_t> played) noexcept {
  const size_t n = config_.format.frame_samples();
  out_ = CaptureOutput{};
  if (mic.size() != n || played.size() != n) return out_;
  std::span<int16_t> clean(clean_.get(), n);
  cleaner_->process(mic, played, clean);
  out_.clean = clean;
  out_.reference = played;

  out_.endpoints = endpointer_->process(clean);
  out_.vad = endpointer_->last_vad();
  // Tones are searched in the cleaned signal: our own prompts never look like the caller's digits.
  if (dtmf_) {
    dtmf_->process(clean);
    out_.dtmf = dtmf_->next_event();
  }
  if (progress_) {
    progress_->process(mic);
    out_.tone = progress_->next_event();
  }
  if (amd_on_) {
    // After a "machine" verdict only the beep matters: it tells when to start a voicemail message.
    // AMD keeps its own word/silence segmentation (Asterisk's): the endpointer's hangover and endpointing
    // wait would merge a short "hello?" with the silence after it into one long word.
    out_.amd = amd_->result().verdict == AmdVerdict::pending ? amd_->process(clean) : amd_->result().verdict;
    out_.beep = beep_->process(clean);
    if (out_.amd == AmdVerdict::human || out_.amd == AmdVerdict::unsure || out_.beep) amd_on_ = false;
  }
  if (recorder_ && !recorder_->push(clean, played)) ++recorder_errors_;
  ++frames_;
  return out_;
}

Result<size_t> LineChain::resample_playback(std::span<const int16_t> in, std::span<int16_t> out) noexcept {
  return playback_resampler_->process(in, out);
}

size_t LineChain::max_playback_input() const noexcept {
  return playback_resampler_->max_input();
}
size_t LineChain::max_playback_output() const noexcept {
  return playback_resampler_->max_output();
}

void LineChain::set_amd(bool on) noexcept {
  if (on && !amd_on_) {
    amd_->reset();
    beep_->reset();
  }
  amd_on_ = on;
}

Status LineChain::reset() {
  if (auto s = cleaner_->reset(); !s) return s;
  endpointer_->reset();
  if (dtmf_) dtmf_->reset();
  if (progress_) progress_->reset();
  amd_->reset();
  playback_resampler_->reset();
  amd_on_ = config_.amd;
  frames_ = 0;
  return {};
}

}  // namespace osvi::audio
