// Endpointer state machine: Idle, Candidate (Onset), Speech (SpeechStart), back to Idle (SpeechEnd).
#include "osvi/audio/endpointer.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

namespace osvi::audio {

Status validate(const EndpointerConfig& c) {
  if (c.min_speech_ms < 0 || c.min_speech_ms > 5000)
    return make_error("endpointer: min_speech_ms must be 0..5000");
  if (c.min_endpointing_ms <= 0 || c.min_endpointing_ms > c.max_endpointing_ms ||
      c.max_endpointing_ms > 10000)
    return make_error("endpointer: need 0 < min_endpointing_ms <= max_endpointing_ms <= 10000");
  if (c.short_utterance_ms < 0 || c.short_utterance_ms > 10000)
    return make_error("endpointer: short_utterance_ms must be 0..10000");
  if (c.resume_ms < 0 || c.resume_ms > 1000) return make_error("endpointer: resume_ms must be 0..1000");
  return {};
}

Result<Endpointer> Endpointer::create(std::unique_ptr<Vad> vad, const EndpointerConfig& config) {
  if (!vad) return make_error("endpointer: no vad");
  if (Status s = validate(config); !s) return s.error();
  return Endpointer(std::move(vad), config);
}

Endpointer::Endpointer(std::unique_ptr<Vad> vad, const EndpointerConfig& config)
    : vad_(std::move(vad)), config_(config), frame_(vad_->format().frame_samples()) {
  tail_size_ = std::clamp<size_t>(static_cast<size_t>(100 / vad_->format().frame_ms), 1, kTailFrames);
}

uint64_t Endpointer::ms_to_samples(int ms) const noexcept {
  return static_cast<uint64_t>(vad_->format().rate / 1000) * static_cast<uint64_t>(std::max(ms, 0));
}

Status Endpointer::set_min_speech_ms(int ms) noexcept {
  if (ms < 0 || ms > 5000) return Error{-EINVAL, {}};  // an empty message: building one could allocate
  config_.min_speech_ms = ms;
  return {};
}

void Endpointer::reset() noexcept {
  vad_->reset();
  last_ = VadFrame{};
  pos_ = 0;
  state_ = State::Idle;
  begin_ = active_ = last_end_ = resume_run_ = resume_from_ = wait_ = 0;
  level_sum_ = 0.0;
  level_count_ = 0;
  tail_len_ = tail_pos_ = 0;
}

void Endpointer::note_speech_frame(uint64_t frame_end, float level_db) noexcept {
  last_end_ = frame_end;
  level_sum_ += level_db;
  ++level_count_;
  tail_[tail_pos_] = level_db;
  tail_pos_ = (tail_pos_ + 1) % tail_size_;
  tail_len_ = std::min(tail_len_ + 1, tail_size_);
  update_wait();
}

void Endpointer::update_wait() noexcept {
  const double dur = static_cast<double>(last_end_ - begin_);
  const double shortest = static_cast<double>(ms_to_samples(config_.min_speech_ms));
  const double short_len = static_cast<double>(ms_to_samples(config_.short_utterance_ms));
  const double u_short =
      short_len > shortest ? std::clamp((short_len - dur) / (short_len - shortest), 0.0, 1.0) : 0.0;
  double tail = 0.0;
  for (size_t i = 0; i < tail_len_; ++i) tail += tail_[i];
  tail /= static_cast<double>(std::max<size_t>(tail_len_, 1));
  const double mean = level_sum_ / static_cast<double>(std::max<uint64_t>(level_count_, 1));
  const double u_tail = std::clamp((tail - (mean - 6.0)) / 6.0, 0.0, 1.0);
  const double u = std::max(u_short, u_tail);

  const auto lo = ms_to_samples(config_.min_endpointing_ms), hi = ms_to_samples(config_.max_endpointing_ms);
  const auto want = static_cast<uint64_t>(static_cast<double>(lo) + u * static_cast<double>(hi - lo));
  // Whole frames, never below min nor above max (unless min and max fall within one frame of each other).
  const uint64_t lo_frames = (lo + frame_ - 1) / frame_, hi_frames = std::max(hi / frame_, lo_frames);
  wait_ = std::clamp((want + frame_ - 1) / frame_, lo_frames, hi_frames) * frame_;
}

void Endpointer::start_candidate(uint64_t begin, uint64_t active, EndpointEvents& out) noexcept {
  state_ = State::Candidate;
  begin_ = begin;
  active_ = active;
  out.push({EndpointKind::Onset, pos_, begin_, 0, 0});
}

EndpointEvents Endpointer::process(std::span<const int16_t> frame) noexcept {
  EndpointEvents out;
  if (frame.size() != frame_) return out;
  const VadFrame v = last_ = vad_->process(frame);
  const uint64_t start = pos_;
  pos_ += frame_;
  double energy = 0.0;
  for (int16_t s : frame) energy += static_cast<double>(s) * s;
  const auto level = static_cast<float>(10.0 * std::log10(energy / static_cast<double>(frame_) + 1.0));

  auto confirm_if_heard = [&] {
    if (state_ == State::Candidate && active_ >= ms_to_samples(config_.min_speech_ms)) {
      state_ = State::Speech;
      out.push({EndpointKind::SpeechStart, pos_, begin_, 0, 0});
    }
  };
  auto new_utterance_stats = [&] {
    level_sum_ = 0.0;
    level_count_ = 0;
    tail_len_ = tail_pos_ = 0;
  };

  switch (state_) {
    case State::Idle:
      if (v.active) {
        start_candidate(start, frame_, out);
        new_utterance_stats();
        note_speech_frame(pos_, level);
        confirm_if_heard();
      }
      break;
    case State::Candidate:
      if (v.active) {
        active_ += frame_;
        note_speech_frame(pos_, level);
        confirm_if_heard();
      } else if (!v.speech) {
        out.push({EndpointKind::OnsetRejected, pos_, begin_, last_end_, 0});
        state_ = State::Idle;
      }
      break;
    case State::Speech:
      if (v.active) {
        if (last_end_ == start) {
          note_speech_frame(pos_, level);
        } else {
          if (resume_run_ == 0) resume_from_ = start;
          resume_run_ += frame_;
          if (resume_run_ >= ms_to_samples(config_.resume_ms)) {
            note_speech_frame(pos_, level);
            resume_run_ = 0;
          }
        }
      } else {
        resume_run_ = 0;
      }
      if (pos_ - last_end_ >= wait_) {
        out.push({EndpointKind::SpeechEnd, pos_, begin_, last_end_, wait_});
        state_ = State::Idle;
        if (resume_run_ > 0) {
          // Speech had started again but was not yet long enough to bridge the pause: it opens the next one.
          start_candidate(resume_from_, resume_run_, out);
          new_utterance_stats();
          note_speech_frame(pos_, level);
          confirm_if_heard();
          resume_run_ = 0;
        }
      }
      break;
  }
  return out;
}

}  // namespace osvi::audio
