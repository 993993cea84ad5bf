// Answering-machine detection (Asterisk app_amd state machine) and the Goertzel-bank beep detector.
#include "osvi/audio/amd.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numbers>

#include "osvi/audio/format.hpp"

namespace osvi::audio {

const char* to_string(AmdVerdict verdict) {
  switch (verdict) {
    case AmdVerdict::pending:
      return "pending";
    case AmdVerdict::human:
      return "human";
    case AmdVerdict::machine:
      return "machine";
    case AmdVerdict::unsure:
      return "unsure";
  }
  return "?";
}

std::string describe(const AmdResult& r, const AmdConfig& c) {
  const std::string reason = r.reason;
  const auto join = [&](int a, int b) { return reason + "-" + std::to_string(a) + "-" + std::to_string(b); };
  if (reason == "HUMAN") return join(r.silence_ms, c.after_greeting_silence_ms);
  if (reason == "INITIALSILENCE") return join(r.silence_ms, c.initial_silence_ms);
  if (reason == "MAXWORDS") return join(r.words, c.maximum_number_of_words);
  if (reason == "LONGGREETING") return join(r.voice_ms, c.greeting_ms);
  if (reason == "MAXWORDLENGTH") return reason + "-" + std::to_string(c.maximum_word_length_ms);
  return reason;
}

// ---- AMD ----------------------------------------------------------------------------------------------

Result<AnsweringMachineDetector> AnsweringMachineDetector::create(int rate, const AmdConfig& c) {
  if (!valid_call_rate(rate)) return make_error("amd: rate must be 8000 or 16000");
  if (c.initial_silence_ms <= 0 || c.greeting_ms <= 0 || c.after_greeting_silence_ms <= 0 ||
      c.total_analysis_time_ms <= 0 || c.decision_window_ms <= 0 || c.min_word_length_ms <= 0 ||
      c.between_words_silence_ms <= 0 || c.maximum_number_of_words <= 0 || c.maximum_word_length_ms <= 0 ||
      c.silence_threshold <= 0)
    return make_error("amd: every duration, count and threshold must be > 0");
  return AnsweringMachineDetector(rate, c);
}

AnsweringMachineDetector::AnsweringMachineDetector(int rate, const AmdConfig& config)
    : rate_(rate), block_(static_cast<size_t>(rate / 100)), cfg_(config) {}

void AnsweringMachineDetector::reset() {
  *this = AnsweringMachineDetector(rate_, cfg_);
}

AmdVerdict AnsweringMachineDetector::process(std::span<const int16_t> frame, std::optional<bool> speech) {
  ext_ = speech;
  for (int16_t s : frame) {
    if (result_.verdict != AmdVerdict::pending) break;
    abs_sum_ += std::abs(static_cast<int>(s));
    ++pos_;
    if (++filled_ == block_) {
      const bool voice =
          ext_ ? *ext_
               : abs_sum_ >= static_cast<int64_t>(cfg_.silence_threshold) * static_cast<int64_t>(block_);
      filled_ = 0;
      abs_sum_ = 0;
      on_block(voice);
    }
  }
  return result_.verdict;
}

void AnsweringMachineDetector::on_block(bool voice) {
  constexpr int kMs = 10;
  elapsed_ms_ += kMs;
  if (!voice) {
    silence_ms_ += kMs;
    if (silence_ms_ >= cfg_.between_words_silence_ms) {
      in_word_ = false;
      consecutive_voice_ms_ = 0;
    }
    if (in_initial_silence_ && silence_ms_ >= cfg_.initial_silence_ms)
      return decide(AmdVerdict::machine, "INITIALSILENCE");
    if (in_greeting_ && silence_ms_ >= cfg_.after_greeting_silence_ms)
      return decide(AmdVerdict::human, "HUMAN");
  } else {
    consecutive_voice_ms_ += kMs;
    voice_ms_ += kMs;
    if (consecutive_voice_ms_ >= cfg_.min_word_length_ms && !in_word_) {
      ++words_;
      in_word_ = true;
    }
    if (consecutive_voice_ms_ >= cfg_.maximum_word_length_ms)
      return decide(AmdVerdict::machine, "MAXWORDLENGTH");
    if (words_ >= cfg_.maximum_number_of_words) return decide(AmdVerdict::machine, "MAXWORDS");
    if (in_greeting_ && voice_ms_ >= cfg_.greeting_ms) return decide(AmdVerdict::machine, "LONGGREETING");
    // Asterisk's silence counter is the DSP's run of silent frames, which any voiced frame restarts.
    silence_ms_ = 0;
    if (consecutive_voice_ms_ >= cfg_.min_word_length_ms) {
      in_initial_silence_ = false;
      in_greeting_ = true;
    }
  }
  if (elapsed_ms_ >= std::min(cfg_.decision_window_ms, cfg_.total_analysis_time_ms))
    decide(AmdVerdict::unsure, "TOOLONG");
}

void AnsweringMachineDetector::decide(AmdVerdict verdict, const char* reason) {
  result_.verdict = verdict;
  result_.reason = reason;
  result_.decided_at = pos_;
  result_.words = words_;
  result_.voice_ms = voice_ms_;
  result_.silence_ms = silence_ms_;
}

// ---- beep ---------------------------------------------------------------------------------------------

Result<BeepDetector> BeepDetector::create(int rate, const BeepConfig& c) {
  if (!valid_call_rate(rate)) return make_error("beep: rate must be 8000 or 16000");
  if (c.min_hz < 100.0 || c.max_hz <= c.min_hz || c.max_hz >= rate / 2.0 - 100.0)
    return make_error("beep: need 100 <= min_hz < max_hz < rate/2 - 100");
  if (c.min_duration_ms < 30 || c.min_purity <= 0.0 || c.min_purity > 1.0)
    return make_error("beep: min_duration_ms >= 30 and min_purity in (0, 1]");
  return BeepDetector(rate, c);
}

BeepDetector::BeepDetector(int rate, const BeepConfig& config)
    : rate_(rate), sub_(static_cast<size_t>(rate / 100)), cfg_(config) {
  const double a = dbfs_to_amplitude(cfg_.min_level_dbfs);
  min_mean_square_ = static_cast<float>(a * a / 2.0);
  // 25 Hz spacing on 20 ms windows (50 Hz bins): a tone between two filters loses <= 1 dB.
  for (double f = cfg_.min_hz - 25.0; f <= cfg_.max_hz + 25.0; f += 25.0)
    filters_.emplace_back(f, rate, sub_);
  x_prev_.assign(filters_.size(), {});
  x_cur_.assign(filters_.size(), {});
}

void BeepDetector::reset() {
  for (auto& g : filters_) g.reset();
  e_ = {};
  energy_ = 0.0F;
  filled_ = 0;
  subs_seen_ = 0;
  pos_ = 0;
  run_windows_ = 0;
}

std::optional<Beep> BeepDetector::process(std::span<const int16_t> frame) {
  std::optional<Beep> found;
  for (int16_t s : frame) {
    const float x = s;
    for (auto& g : filters_) g.push(x);
    energy_ += x * x;
    ++pos_;
    if (++filled_ == sub_) {
      if (auto b = end_sub_block()) found = b;
    }
  }
  return found;
}

uint64_t BeepDetector::edge_samples(float energy) const {
  const double n = run_mean_square_ > 0.0F ? energy / run_mean_square_ : 0.0;
  return static_cast<uint64_t>(std::clamp(n, 0.0, static_cast<double>(sub_)));
}

std::optional<Beep> BeepDetector::end_sub_block() {
  std::swap(x_prev_, x_cur_);  // swaps storage only: no allocation
  for (size_t i = 0; i < filters_.size(); ++i) {
    x_cur_[i] = filters_[i].result();
    filters_[i].reset();
  }
  e_ = {e_[1], e_[2], energy_};
  energy_ = 0.0F;
  filled_ = 0;
  if (++subs_seen_ < 2) return std::nullopt;

  const size_t n = 2 * sub_;
  const float total = e_[1] + e_[2];
  size_t best = 0;
  float best_p = 0.0F;
  for (size_t i = 0; i < filters_.size(); ++i) {
    const float p = tone_energy(x_prev_[i] + x_cur_[i] * filters_[i].block_rotation(), n);
    if (p > best_p) {
      best_p = p;
      best = i;
    }
  }
  bool tonal = best_p >= static_cast<float>(cfg_.min_purity) * total &&
               best_p / static_cast<float>(n) >= min_mean_square_;
  double freq = 0.0;
  if (tonal) {
    const float a = std::norm(x_prev_[best]), b = std::norm(x_cur_[best]);
    const std::complex<float> adv = x_cur_[best] * std::conj(x_prev_[best]) * filters_[best].block_rotation();
    freq = filters_[best].freq() +
           static_cast<double>(std::arg(adv)) * rate_ / (2.0 * std::numbers::pi * static_cast<double>(sub_));
    tonal = std::min(a, b) >= 0.5F * std::max(a, b) && freq >= cfg_.min_hz && freq <= cfg_.max_hz &&
            (run_windows_ == 0 || std::abs(freq - run_freq_) <= cfg_.max_freq_drift * run_freq_);
  }
  const uint64_t sub1_start = pos_ - n, sub1_end = pos_ - sub_;  // the older half of the window
  if (tonal) {
    if (run_windows_ == 0) {
      run_freq_ = freq;
      run_freq_sum_ = 0.0;
      run_mean_square_ = best_p / static_cast<float>(n);
      // The tone began in the older half, or (when that half is full of it) in the sub-block before.
      const uint64_t full = sub_ * 9 / 10;
      run_start_ =
          edge_samples(e_[1]) >= full ? sub1_start - edge_samples(e_[0]) : sub1_end - edge_samples(e_[1]);
    }
    ++run_windows_;
    run_freq_sum_ += freq;
    return std::nullopt;
  }
  if (run_windows_ == 0) return std::nullopt;
  // The last tonal window ended at sub1_end; the tone stopped in the older half or in the newer one.
  const uint64_t full = sub_ * 9 / 10;
  const uint64_t end =
      edge_samples(e_[1]) >= full ? sub1_end + edge_samples(e_[2]) : sub1_start + edge_samples(e_[1]);
  const Beep beep{run_freq_sum_ / run_windows_, run_start_, end};
  run_windows_ = 0;
  if (end - beep.start < static_cast<uint64_t>(cfg_.min_duration_ms) * static_cast<uint64_t>(rate_) / 1000)
    return std::nullopt;
  return beep;
}

}  // namespace osvi::audio
