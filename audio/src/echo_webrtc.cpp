// WebRTC's audio processing module (Debian libwebrtc-audio-processing 0.3) as an echo canceller/cleaner.
#include <webrtc/modules/audio_processing/include/audio_processing.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "osvi/audio/echo.hpp"
#include "osvi/audio/preprocessor.hpp"

namespace osvi::audio {

namespace detail {
void copy_through(std::span<const int16_t> mic, std::span<int16_t> out) noexcept;
}

namespace {

constexpr float kScale = 32768.0f;

void to_float(std::span<const int16_t> in, float* out) noexcept {
  for (size_t i = 0; i < in.size(); ++i) out[i] = static_cast<float>(in[i]) / kScale;
}

void to_s16(const float* in, std::span<int16_t> out) noexcept {
  for (size_t i = 0; i < out.size(); ++i) {
    const float v = std::nearbyint(in[i] * kScale);
    out[i] = static_cast<int16_t>(std::clamp(v, -32768.0f, 32767.0f));
  }
}

webrtc::NoiseSuppression::Level ns_level(int db) {
  // APM's levels attenuate roughly 6, 10, 15 and 20 dB; pick the one nearest the requested ceiling.
  if (db >= -8) return webrtc::NoiseSuppression::kLow;
  if (db >= -12) return webrtc::NoiseSuppression::kModerate;
  if (db >= -17) return webrtc::NoiseSuppression::kHigh;
  return webrtc::NoiseSuppression::kVeryHigh;
}

webrtc::EchoCancellation::SuppressionLevel nlp_level(int db) {
  if (db <= -30) return webrtc::EchoCancellation::kHighSuppression;
  if (db <= -20) return webrtc::EchoCancellation::kModerateSuppression;
  return webrtc::EchoCancellation::kLowSuppression;
}

class WebrtcApm final : public EchoCanceller {
 public:
  WebrtcApm(Format format, const PreprocessOptions& pre, std::unique_ptr<webrtc::AudioProcessing> apm)
      : format_(format),
        pre_(pre),
        apm_(std::move(apm)),
        stream_(format.rate, 1),
        chunk_(static_cast<size_t>(format.rate / 100)),
        mic_(chunk_),
        ref_(chunk_),
        out_(chunk_),
        ref_out_(chunk_) {}

  Status configure() {
    const webrtc::StreamConfig s = stream_;
    const webrtc::ProcessingConfig pc = {{s, s, s, s}};
    if (int e = apm_->Initialize(pc); e != 0)
      return make_error("echo: webrtc Initialize failed: " + std::to_string(e));
    int e = 0;
    // The line has DC and mains hum; the high-pass keeps them out of the echo estimate.
    e |= apm_->high_pass_filter()->Enable(true);
    auto* aec = apm_->echo_cancellation();
    e |= aec->enable_drift_compensation(false);
    e |= aec->set_suppression_level(nlp_level(pre_.echo_suppress_db));
    e |= aec->Enable(true);
    if (pre_.denoise) {
      e |= apm_->noise_suppression()->set_level(ns_level(pre_.noise_suppress_db));
      e |= apm_->noise_suppression()->Enable(true);
    }
    if (pre_.agc) {
      auto* agc = apm_->gain_control();
      e |= agc->set_mode(webrtc::GainControl::kAdaptiveDigital);
      e |= agc->set_target_level_dbfs(-pre_.agc_level_dbfs);
      e |= agc->enable_limiter(true);
      e |= agc->Enable(true);
    }
    if (e != 0) return make_error("echo: webrtc refused its configuration");
    return {};
  }

  void process(std::span<const int16_t> mic, std::span<const int16_t> ref,
               std::span<int16_t> out) noexcept override {
    const size_t n = format_.frame_samples();
    if (mic.size() != n || ref.size() != n || out.size() != n) return detail::copy_through(mic, out);
    // APM works in 10 ms chunks; chunk by chunk, the mic chunk is read before the same range of out is
    // written, so in place is safe.
    for (size_t off = 0; off < n; off += chunk_) {
      to_float(ref.subspan(off, chunk_), ref_.data());
      const float* rsrc[1] = {ref_.data()};
      float* rdst[1] = {ref_out_.data()};
      apm_->ProcessReverseStream(rsrc, stream_, stream_, rdst);
      // played_ref is aligned with the capture, so the device delay is already accounted for; the echo
      // path's own delay is found by the delay-agnostic estimator.
      apm_->set_stream_delay_ms(0);
      to_float(mic.subspan(off, chunk_), mic_.data());
      const float* src[1] = {mic_.data()};
      float* dst[1] = {out_.data()};
      if (apm_->ProcessStream(src, stream_, stream_, dst) != 0) {
        std::copy_n(mic.begin() + static_cast<std::ptrdiff_t>(off), chunk_,
                    out.begin() + static_cast<std::ptrdiff_t>(off));
        continue;
      }
      to_s16(out_.data(), out.subspan(off, chunk_));
    }
  }

  void reset() override { (void)configure(); }
  std::string_view name() const noexcept override { return "webrtc"; }
  const Format& format() const noexcept override { return format_; }
  bool cleans_capture() const noexcept override { return true; }

 private:
  Format format_;
  PreprocessOptions pre_;
  std::unique_ptr<webrtc::AudioProcessing> apm_;
  webrtc::StreamConfig stream_;
  size_t chunk_;
  std::vector<float> mic_, ref_, out_, ref_out_;
};

}  // namespace

Result<std::unique_ptr<EchoCanceller>> make_webrtc_apm(const EchoOptions& options,
                                                       const PreprocessOptions& pre) {
  const Format f = options.format;
  if (!valid_call_rate(f.rate) || (f.frame_ms != 10 && f.frame_ms != 20))
    return make_error("echo: webrtc needs 8/16 kHz and 10/20 ms frames");
  if (Status s = validate(pre); !s) return s.error();
  webrtc::Config config;
  // The extended (128 ms) filter with delay-agnostic alignment suits a line whose echo delay nobody reports.
  config.Set<webrtc::ExtendedFilter>(new webrtc::ExtendedFilter(true));
  config.Set<webrtc::DelayAgnostic>(new webrtc::DelayAgnostic(true));
  // The experimental AGC drives an analog mic volume we do not have.
  config.Set<webrtc::ExperimentalAgc>(new webrtc::ExperimentalAgc(false));
  std::unique_ptr<webrtc::AudioProcessing> apm(webrtc::AudioProcessing::Create(config));
  if (!apm) return make_error("echo: webrtc AudioProcessing::Create failed", -ENOMEM);
  auto echo = std::make_unique<WebrtcApm>(f, pre, std::move(apm));
  if (Status s = echo->configure(); !s) return s.error();
  return std::unique_ptr<EchoCanceller>(std::move(echo));
}

}  // namespace osvi::audio
