// The osvi VAD: band SNR over a tracked noise floor plus harmonicity, combined logistically, with hangover.
//
// Why this design: speech differs from stationary noise in level against a slowly moving floor and in having
// a pitch, and differs from babble mostly in level (a single near talker dominates several far ones). Each
// feature alone fails somewhere (energy in loud noise, pitch in unvoiced consonants, both in babble), so they
// vote.
#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <vector>

#include "fft.hpp"
#include "osvi/audio/vad.hpp"

namespace osvi::audio {
namespace {

// Band edges in Hz, roughly critical bands; 8 kHz audio stops at 3.7 kHz (the telephone band's top).
constexpr std::array<float, 21> kEdgesHz = {100,  200,  300,  400,  510,  630,  770,  920,  1080, 1270, 1480,
                                            1720, 2000, 2320, 2700, 3150, 3700, 4400, 5300, 6400, 7700};
constexpr size_t kMaxBands = kEdgesHz.size() - 1;
constexpr size_t kMinWindows = 8;    // minimum statistics: 8 sub-windows of ~200 ms, a 1.6 s memory
constexpr float kMinBias = 1.5f;     // the minimum of a smoothed periodogram sits ~2 dB under the noise mean
constexpr float kMaxBias = 8.0f;     // the recursive noise estimate stays within 9 dB over the minimum
constexpr float kRiseDbPerS = 1.0f;  // how fast the estimate creeps up while frames look like speech
// The decision. Tuned on the LibriVox clips of tests/unit/vad_test.cpp in white, pink and babble noise at
// 5-20 dB SNR: the same material the test scores, so the figures there are optimistic for other voices.
constexpr float kLevelThresholdDb = 1.8f;  // over the floor at sensitivity 0.5, before the noise's own spread
constexpr float kSpreadWeight = 1.2f;      // how many "typical noise excesses" the threshold adds
constexpr float kLevelWeight = 1.5f;       // logit per dB of level over the threshold
constexpr float kPitchWeight = 8.0f;       // logit per unit of harmonicity over the noise's own
constexpr int kHangMs = 160;               // speech continues this long after a burst of >= 40 ms

class OsviVad final : public Vad {
 public:
  OsviVad(Format format, float sensitivity)
      : format_(format),
        frame_(format.frame_samples()),
        n_(format.rate == 16000 ? 512 : 256),  // 32 ms: resolves the harmonics of pitches down to ~80 Hz
        fft_(n_),
        hist_(n_, 0.0f),
        windowed_(n_, 0.0f),
        window_(n_, 0.0f),
        re_(n_ / 2 + 1, 0.0f),
        im_(n_ / 2 + 1, 0.0f),
        power_(n_ / 2 + 1, 0.0f),
        clean_(n_, 0.0f),
        window_ac_(n_ / 2 + 1, 0.0f) {
    const float bin_hz = static_cast<float>(format.rate) / static_cast<float>(n_);
    for (size_t i = 0; i < kEdgesHz.size(); ++i) {
      if (kEdgesHz[i] > 0.5f * static_cast<float>(format.rate) - 250.0f) break;
      edges_[i] = static_cast<size_t>(std::lround(kEdgesHz[i] / bin_hz));
      bands_ = i;  // number of complete bands so far
    }
    for (size_t i = 0; i < n_; ++i)
      window_[i] = 0.5f - 0.5f * std::cos(2.0f * std::numbers::pi_v<float> * (static_cast<float>(i) + 0.5f) /
                                          static_cast<float>(n_));
    // The window's own autocorrelation, to undo its taper from the signal's (Boersma's normalisation).
    for (size_t lag = 0; lag < window_ac_.size(); ++lag) {
      double acc = 0.0;
      for (size_t i = 0; i + lag < n_; ++i) acc += static_cast<double>(window_[i]) * window_[i + lag];
      window_ac_[lag] = static_cast<float>(acc);
    }
    for (size_t lag = 1; lag < window_ac_.size(); ++lag) window_ac_[lag] /= window_ac_[0];
    window_ac_[0] = 1.0f;
    lag_min_ = static_cast<size_t>(format.rate / 400);  // 400 Hz pitch
    lag_max_ = static_cast<size_t>(format.rate / 80);   // 80 Hz pitch
    pitch_lo_ = static_cast<size_t>(std::lround(80.0f / bin_hz));
    pitch_hi_ =
        static_cast<size_t>(std::lround(std::min(3500.0f, 0.5f * static_cast<float>(format.rate)) / bin_hz));
    // Time constants are in seconds; convert them to per-frame factors once.
    const float dt = static_cast<float>(format.frame_ms) / 1000.0f;
    smooth_ = std::exp(-dt / 0.04f);
    noise_rate_ = 1.0f - std::exp(-dt / 0.3f);
    stat_rate_ = 1.0f - std::exp(-dt / 1.0f);
    rise_ = std::pow(10.0f, kRiseDbPerS * dt / 10.0f);
    frames_per_window_ = static_cast<size_t>(std::max(1, 200 / format.frame_ms));
    hang_frames_ = static_cast<int>(std::max(1, kHangMs / format.frame_ms));
    burst_frames_ = static_cast<int>(std::max(1, 40 / format.frame_ms));
    // Sensitivity moves the level threshold by ±2 dB around the tuned point.
    threshold_ = kLevelThresholdDb + (0.5f - sensitivity) * 4.0f;
    reset();
  }

  VadFrame process(std::span<const int16_t> frame) noexcept override {
    if (frame.size() != frame_) return {};
    // Slide the analysis window and take the spectrum of the newest n_ samples.
    std::move(hist_.begin() + static_cast<std::ptrdiff_t>(frame_), hist_.end(), hist_.begin());
    for (size_t i = 0; i < frame_; ++i)
      hist_[n_ - frame_ + i] = static_cast<float>(frame[i]) * (1.0f / 32768.0f);
    // Until the analysis window is full its spectrum is a fraction of the sound's: a floor seeded from it
    // sits dB under the real one and the first full window reads as speech (a false start on a steady
    // hiss at the beginning of every call).
    if (filled_ < n_) {
      filled_ += frame_;
      if (filled_ < n_) return {};
    }
    for (size_t i = 0; i < n_; ++i) windowed_[i] = hist_[i] * window_[i];
    fft_.forward(windowed_, re_, im_);
    for (size_t k = 0; k < power_.size(); ++k) power_[k] = re_[k] * re_[k] + im_[k] * im_[k];

    std::array<float, kMaxBands> band{};
    for (size_t b = 0; b < bands_; ++b) {
      float e = 0.0f;
      for (size_t k = edges_[b]; k < edges_[b + 1]; ++k) e += power_[k];
      band[b] = e + 1e-10f;  // a floor so digital silence stays finite in the ratios below
    }
    track_noise(band);

    // Voice metric: mean band SNR in dB, each band clipped to 0..20 dB so one loud band cannot outvote the
    // rest.
    float metric = 0.0f, sum_band = 0.0f, sum_noise = 0.0f;
    for (size_t b = 0; b < bands_; ++b) {
      metric += std::clamp(10.0f * std::log10(band[b] / noise_[b]), 0.0f, 20.0f);
      sum_band += band[b];
      sum_noise += noise_[b];
    }
    metric /= static_cast<float>(bands_);
    // Whole-band SNR: averaging over bands cancels much of a noise's per-band fluctuation.
    const float snr = 10.0f * std::log10(sum_band / sum_noise);
    const float level = 0.5f * (metric + snr);

    const float pitch = harmonicity();

    // Both thresholds adapt to what the noise itself looks like: its typical excess over the floor (babble
    // keeps poking above it) and its own harmonicity (babble is voiced), learnt from frames judged noise.
    const float level_thr = threshold_ + kSpreadWeight * spread_;
    const float pitch_thr = std::max(0.45f, pitch_noise_ + 0.15f);
    float z = kLevelWeight * (level - level_thr) + kPitchWeight * (pitch - pitch_thr);
    if (active_) z += 1.0f;  // hysteresis: continuing speech needs less evidence than starting it
    const float p = 1.0f / (1.0f + std::exp(-std::clamp(z, -30.0f, 30.0f)));
    const bool now_active = p > 0.5f;

    if (!now_active || frames_seen_ < 10) {
      spread_ += stat_rate_ * (std::abs(level) - spread_);
      pitch_noise_ += stat_rate_ * (pitch - pitch_noise_);
    }
    // The floor learns from frames whose level is below the threshold, whatever their pitch, so a harmonic
    // noise (hum, babble) is still learnt; otherwise it creeps up slowly, so a fluctuating noise that always
    // pokes a little above the floor (babble) ends at its typical level rather than its dips. Minimum
    // statistics bound it from both sides (track_noise).
    if (level < level_thr || frames_seen_ < 10) {
      for (size_t b = 0; b < bands_; ++b) noise_rec_[b] += noise_rate_ * (band[b] - noise_rec_[b]);
    } else {
      for (size_t b = 0; b < bands_; ++b) noise_rec_[b] *= rise_;
    }

    if (now_active) {
      ++burst_;
      if (burst_ >= burst_frames_) hang_ = hang_frames_;
    } else {
      burst_ = 0;
      if (hang_ > 0) --hang_;
    }
    active_ = now_active;
    ++frames_seen_;
    return {p, now_active, now_active || hang_ > 0};
  }

  void reset() noexcept override {
    std::fill(hist_.begin(), hist_.end(), 0.0f);
    smoothed_.fill(0.0f);
    noise_.fill(0.0f);
    noise_rec_.fill(0.0f);
    cur_min_.fill(0.0f);
    for (auto& w : win_min_) w.fill(0.0f);
    frames_seen_ = 0;
    filled_ = 0;
    spread_ = 0.0f;
    pitch_noise_ = 0.0f;
    win_frame_ = 0;
    win_index_ = 0;
    active_ = false;
    burst_ = 0;
    hang_ = 0;
  }

  std::string_view name() const noexcept override { return "osvi"; }
  Format format() const noexcept override { return format_; }

 private:
  void track_noise(const std::array<float, kMaxBands>& band) noexcept {
    if (frames_seen_ == 0) {
      for (size_t b = 0; b < bands_; ++b) {
        smoothed_[b] = cur_min_[b] = noise_rec_[b] = band[b];
        for (auto& w : win_min_) w[b] = band[b];
      }
    }
    for (size_t b = 0; b < bands_; ++b) {
      smoothed_[b] = smooth_ * smoothed_[b] + (1.0f - smooth_) * band[b];
      cur_min_[b] = std::min(cur_min_[b], smoothed_[b]);
      float m = cur_min_[b];
      for (const auto& w : win_min_) m = std::min(m, w[b]);
      // The recursive estimate may not sink below the floor's minimum nor climb more than 6 dB over it, so
      // speech that leaks into it (or a stale low value after the noise rose) is corrected within 1.6 s.
      noise_[b] = std::clamp(noise_rec_[b], kMinBias * m, kMaxBias * m);
    }
    if (++win_frame_ >= frames_per_window_) {
      win_min_[win_index_] = cur_min_;
      win_index_ = (win_index_ + 1) % kMinWindows;
      for (size_t b = 0; b < bands_; ++b) cur_min_[b] = smoothed_[b];
      win_frame_ = 0;
    }
  }

  // Pitch strength: the normalised autocorrelation peak over 80..400 Hz of the noise-subtracted power
  // spectrum (80 Hz..3.5 kHz), i.e. how much of the excess energy is harmonic.
  float harmonicity() noexcept {
    std::fill(clean_.begin(), clean_.end(), 0.0f);
    for (size_t k = pitch_lo_; k < pitch_hi_; ++k) clean_[k] = clean_[n_ - k] = power_[k];
    // The power spectrum is real and even, so its forward transform is the (circular) autocorrelation.
    fft_.forward(clean_, re_, im_);
    const float r0 = re_[0];
    if (r0 <= 1e-12f) return 0.0f;
    float best = 0.0f;
    for (size_t lag = lag_min_; lag <= lag_max_; ++lag) best = std::max(best, re_[lag] / window_ac_[lag]);
    return std::clamp(best / r0, 0.0f, 1.0f);
  }

  Format format_;
  size_t frame_;
  size_t n_;
  detail::RealFft fft_;
  std::vector<float> hist_, windowed_, window_;
  std::vector<float> re_, im_, power_;
  std::vector<float> clean_, window_ac_;
  std::array<size_t, kEdgesHz.size()> edges_{};
  size_t bands_ = 0;
  size_t lag_min_ = 0, lag_max_ = 0, pitch_lo_ = 0, pitch_hi_ = 0;
  float smooth_ = 0.0f, noise_rate_ = 0.0f, stat_rate_ = 0.0f, spread_ = 0.0f, pitch_noise_ = 0.0f,
        rise_ = 1.0f, threshold_ = 0.0f;
  size_t frames_per_window_ = 1;
  int hang_frames_ = 1, burst_frames_ = 1;

  std::array<float, kMaxBands> smoothed_{}, noise_{}, noise_rec_{}, cur_min_{};
  std::array<std::array<float, kMaxBands>, kMinWindows> win_min_{};
  size_t frames_seen_ = 0, win_frame_ = 0, win_index_ = 0;
  size_t filled_ = 0;  // samples of the analysis window filled since reset(), up to n_
  bool active_ = false;
  int burst_ = 0, hang_ = 0;
};

}  // namespace

Result<std::unique_ptr<Vad>> make_osvi_vad(Format format, VadOptions options) {
  if (!valid_call_rate(format.rate) || (format.frame_ms != 10 && format.frame_ms != 20))
    return make_error("osvi vad: format must be 8/16 kHz with 10/20 ms frames");
  if (!(options.sensitivity >= 0.0f && options.sensitivity <= 1.0f))
    return make_error("osvi vad: sensitivity must be within 0..1");
  return std::unique_ptr<Vad>(std::make_unique<OsviVad>(format, options.sensitivity));
}

}  // namespace osvi::audio
