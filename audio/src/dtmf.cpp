// DTMF detector (Goertzel + phase-based frequency check) and phase-continuous DTMF generator.
#include "osvi/audio/dtmf.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace osvi::audio {
namespace {

constexpr std::array<double, 4> kRows = {697.0, 770.0, 852.0, 941.0};
constexpr std::array<double, 4> kCols = {1209.0, 1336.0, 1477.0, 1633.0};
constexpr std::array<std::array<char, 4>, 4> kKeys = {{
    {'1', '2', '3', 'A'},
    {'4', '5', '6', 'B'},
    {'7', '8', '9', 'C'},
    {'*', '0', '#', 'D'},
}};

float db_to_power(double db) {
  return static_cast<float>(std::pow(10.0, db / 10.0));
}

bool find_key(char digit, size_t& row, size_t& col) {
  const char d = (digit >= 'a' && digit <= 'd') ? static_cast<char>(digit - 'a' + 'A') : digit;
  for (size_t r = 0; r < 4; ++r)
    for (size_t c = 0; c < 4; ++c)
      if (kKeys[r][c] == d) {
        row = r;
        col = c;
        return true;
      }
  return false;
}

}  // namespace

// ---- detector ---------------------------------------------------------------------------------------

Result<DtmfDetector> DtmfDetector::create(int rate, const DtmfDetectorConfig& config) {
  if (!valid_call_rate(rate)) return make_error("dtmf: rate must be 8000 or 16000");
  if (config.hits_to_detect < 1 || config.misses_to_end < 1)
    return make_error("dtmf: hit/miss counts must be >= 1");
  if (config.max_freq_deviation <= 0.0 || config.max_freq_deviation > 0.05)
    return make_error("dtmf: max_freq_deviation must be in (0, 0.05]");
  return DtmfDetector(rate, config);
}

DtmfDetector::DtmfDetector(int rate, const DtmfDetectorConfig& config)
    : rate_(rate), sub_(static_cast<size_t>(51 * rate / 8000)), cfg_(config) {
  const double a = dbfs_to_amplitude(cfg_.min_level_dbfs);
  min_tone_energy_ = static_cast<float>(a * a * static_cast<double>(2 * sub_) / 2.0);
  twist_lo_ = db_to_power(cfg_.max_low_over_high_db);
  twist_hi_ = db_to_power(cfg_.max_high_over_low_db);
  rel_peak_ = db_to_power(6.0);
  harm_ratio_ = db_to_power(-10.0);
  for (size_t i = 0; i < 4; ++i) {
    fund_[i] = Goertzel(kRows[i], rate, sub_);
    fund_[4 + i] = Goertzel(kCols[i], rate, sub_);
    harm_[i] = Goertzel(2.0 * kCols[i], rate, sub_);
  }
}

void DtmfDetector::reset() {
  for (auto& g : fund_) g.reset();
  for (auto& g : harm_) g.reset();
  energy_ = 0.0F;
  filled_ = 0;
  have_prev_ = false;
  pos_ = 0;
  candidate_ = active_ = 0;
  hits_ = misses_ = 0;
  ev_head_ = ev_count_ = 0;
}

void DtmfDetector::process(std::span<const int16_t> in) {
  for (int16_t s : in) {
    const float x = s;
    for (auto& g : fund_) g.push(x);
    for (auto& g : harm_) g.push(x);
    energy_ += x * x;
    ++pos_;
    if (++filled_ == sub_) end_sub_block();
  }
}

void DtmfDetector::end_sub_block() {
  prev_ = cur_;
  for (size_t i = 0; i < 8; ++i) {
    cur_.x[i] = fund_[i].result();
    fund_[i].reset();
  }
  for (size_t i = 0; i < 4; ++i) {
    cur_.h2[i] = harm_[i].result();
    harm_[i].reset();
  }
  cur_.energy = energy_;
  energy_ = 0.0F;
  filled_ = 0;
  if (!have_prev_) {
    have_prev_ = true;
    return;
  }
  on_window(evaluate_window());
}

char DtmfDetector::evaluate_window() const {
  const size_t n = 2 * sub_;
  const float total = prev_.energy + cur_.energy;
  if (total < 2.0F * min_tone_energy_) return 0;
  std::array<float, 8> p{};
  for (size_t i = 0; i < 8; ++i) p[i] = tone_energy(prev_.x[i] + cur_.x[i] * fund_[i].block_rotation(), n);
  const auto best = [&](size_t base) {
    size_t b = base;
    for (size_t i = base + 1; i < base + 4; ++i)
      if (p[i] > p[b]) b = i;
    return b;
  };
  const size_t r = best(0), c = best(4);
  if (p[r] < min_tone_energy_ || p[c] < min_tone_energy_) return 0;
  for (size_t i = 0; i < 4; ++i) {
    if (i != r && p[r] < rel_peak_ * p[i]) return 0;
    if (4 + i != c && p[c] < rel_peak_ * p[4 + i]) return 0;
  }
  // Frequency from the phase advance between the halves; the same estimate undoes the Goertzel's
  // scalloping loss, so an in-tolerance tone off the bin centre still counts at its full energy.
  std::array<float, 2> corrected{};
  const std::array<size_t, 2> idx = {r, c};
  for (size_t k = 0; k < 2; ++k) {
    const size_t i = idx[k];
    const float a = std::norm(prev_.x[i]), b = std::norm(cur_.x[i]);
    // 5 dB, not less: the other group leaks ~-16 dB into a half-window filter and moves its level.
    if (std::min(a, b) < 0.3F * std::max(a, b)) return 0;
    const std::complex<float> adv = cur_.x[i] * std::conj(prev_.x[i]) * fund_[i].block_rotation();
    const double df =
        static_cast<double>(std::arg(adv)) * rate_ / (2.0 * std::numbers::pi * static_cast<double>(sub_));
    if (std::abs(df) > cfg_.max_freq_deviation * fund_[i].freq()) return 0;
    const double delta = std::abs(df) * static_cast<double>(n) / rate_;
    const double sinc = delta < 1e-6 ? 1.0 : std::sin(std::numbers::pi * delta) / (std::numbers::pi * delta);
    corrected[k] = p[i] / static_cast<float>(std::max(sinc * sinc, 0.3));
  }
  if (corrected[0] > twist_lo_ * corrected[1] || corrected[1] > twist_hi_ * corrected[0]) return 0;
  const size_t hc = c - 4;
  if (tone_energy(prev_.h2[hc] + cur_.h2[hc] * harm_[hc].block_rotation(), n) > harm_ratio_ * p[c]) return 0;
  if (corrected[0] + corrected[1] < static_cast<float>(cfg_.min_energy_ratio) * total) return 0;
  return kKeys[r][hc];
}

void DtmfDetector::on_window(char digit) {
  const uint64_t window_start = pos_ - 2 * sub_;
  if (digit != 0 && digit == candidate_) {
    ++hits_;
  } else {
    candidate_ = digit;
    hits_ = digit != 0 ? 1 : 0;
    candidate_start_ = window_start;
  }
  if (active_ != 0) {
    misses_ = digit == active_ ? 0 : misses_ + 1;
    if (misses_ >= cfg_.misses_to_end) active_ = 0;
  }
  if (active_ == 0 && candidate_ != 0 && hits_ >= cfg_.hits_to_detect) {
    push_event({candidate_, candidate_start_, pos_});
    active_ = candidate_;
    misses_ = 0;
  }
}

void DtmfDetector::push_event(const DtmfEvent& e) {
  if (ev_count_ == events_.size()) {
    ++overruns_;
    return;
  }
  events_[(ev_head_ + ev_count_) % events_.size()] = e;
  ++ev_count_;
}

std::optional<DtmfEvent> DtmfDetector::next_event() {
  if (ev_count_ == 0) return std::nullopt;
  const DtmfEvent e = events_[ev_head_];
  ev_head_ = (ev_head_ + 1) % events_.size();
  --ev_count_;
  return e;
}

// ---- generator --------------------------------------------------------------------------------------

Result<DtmfGenerator> DtmfGenerator::create(int rate, const DtmfGeneratorConfig& config) {
  if (!valid_call_rate(rate)) return make_error("dtmf: rate must be 8000 or 16000");
  if (config.on_ms <= 0 || config.off_ms < 0) return make_error("dtmf: on_ms must be > 0 and off_ms >= 0");
  if (config.ramp_ms < 0.0 || 2.0 * config.ramp_ms > config.on_ms)
    return make_error("dtmf: ramp_ms must fit twice in on_ms");
  return DtmfGenerator(rate, config);
}

DtmfGenerator::DtmfGenerator(int rate, const DtmfGeneratorConfig& config)
    : rate_(rate),
      cfg_(config),
      on_samples_(static_cast<size_t>(config.on_ms) * static_cast<size_t>(rate) / 1000),
      off_samples_(static_cast<size_t>(config.off_ms) * static_cast<size_t>(rate) / 1000),
      ramp_samples_(static_cast<size_t>(config.ramp_ms * rate / 1000.0)) {}

Status DtmfGenerator::start(std::string_view digits) {
  if (digits.size() > kMaxDigits) return make_error("dtmf: at most 64 digits at a time");
  for (char d : digits) {
    size_t r = 0, c = 0;
    if (d != ',' && !find_key(d, r, c)) return make_error(std::string("dtmf: not a DTMF digit: ") + d);
  }
  std::copy(digits.begin(), digits.end(), digits_.begin());
  count_ = digits.size();
  index_ = offset_ = 0;
  return {};
}

size_t DtmfGenerator::generate(std::span<int16_t> out) {
  const double a_lo = dbfs_to_amplitude(cfg_.level_dbfs);
  const double a_hi = a_lo * std::pow(10.0, cfg_.twist_db / 20.0);
  const size_t period = on_samples_ + off_samples_;
  size_t written = 0;
  while (written < out.size() && index_ < count_) {
    const char d = digits_[index_];
    size_t r = 0, c = 0;
    const bool tone = d != ',' && find_key(d, r, c);
    const double w_lo = tone ? 2.0 * std::numbers::pi * kRows[r] / rate_ : 0.0;
    const double w_hi = tone ? 2.0 * std::numbers::pi * kCols[c] / rate_ : 0.0;
    const size_t length = period;  // ',' is a pause of the same length
    for (; written < out.size() && offset_ < length; ++written, ++offset_) {
      double v = 0.0;
      if (tone && offset_ < on_samples_) {
        double g = 1.0;
        const size_t edge = std::min(offset_, on_samples_ - 1 - offset_);
        if (edge < ramp_samples_)
          g = 0.5 - 0.5 * std::cos(std::numbers::pi * (static_cast<double>(edge) + 0.5) /
                                   static_cast<double>(ramp_samples_));
        v = g * (a_lo * std::sin(phase_lo_) + a_hi * std::sin(phase_hi_));
        phase_lo_ = std::fmod(phase_lo_ + w_lo, 2.0 * std::numbers::pi);
        phase_hi_ = std::fmod(phase_hi_ + w_hi, 2.0 * std::numbers::pi);
      }
      out[written] = static_cast<int16_t>(std::clamp(std::lround(v), -32768L, 32767L));
    }
    if (offset_ == length) {
      ++index_;
      offset_ = 0;
    }
  }
  return written;
}

Result<std::vector<int16_t>> dtmf_render(int rate, std::string_view digits,
                                         const DtmfGeneratorConfig& config) {
  auto gen = DtmfGenerator::create(rate, config);
  if (!gen) return gen.error();
  if (auto s = gen->start(digits); !s) return s.error();
  std::vector<int16_t> out;
  std::array<int16_t, 256> buf{};
  while (!gen->done()) {
    const size_t n = gen->generate(buf);
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
  }
  return out;
}

}  // namespace osvi::audio
