// osvi-webrtc.so: WebRTC's audio processing module (Debian libwebrtc-audio-processing 0.3) behind the plain C
// ABI of osvi_webrtc.h, loaded by osvi_audio only when audio.echo.backend is "webrtc".
#include <webrtc/modules/audio_processing/include/audio_processing.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "osvi_webrtc.h"

#define OSVI_WEBRTC_EXPORT extern "C" __attribute__((visibility("default")))

struct osvi_webrtc_apm {
  osvi_webrtc_apm_options options;
  std::unique_ptr<webrtc::AudioProcessing> apm;
  webrtc::StreamConfig stream;
  std::vector<float> ref_out;  // ProcessReverseStream's output, unused but required; sized once
};

namespace {

void copy_out(const std::string& s, char* buf, size_t len) {
  if (buf == nullptr || len == 0) return;
  const size_t n = s.size() < len - 1 ? s.size() : len - 1;
  std::memcpy(buf, s.data(), n);
  buf[n] = '\0';
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

int configure(osvi_webrtc_apm& a) {
  const webrtc::StreamConfig s = a.stream;
  const webrtc::ProcessingConfig pc = {{s, s, s, s}};
  if (int e = a.apm->Initialize(pc); e != 0) return e;
  int e = 0;
  // The line has DC and mains hum; the high-pass keeps them out of the echo estimate.
  e |= a.apm->high_pass_filter()->Enable(true);
  auto* aec = a.apm->echo_cancellation();
  e |= aec->enable_drift_compensation(false);
  e |= aec->set_suppression_level(nlp_level(a.options.echo_suppress_db));
  e |= aec->Enable(true);
  if (a.options.denoise) {
    e |= a.apm->noise_suppression()->set_level(ns_level(a.options.noise_suppress_db));
    e |= a.apm->noise_suppression()->Enable(true);
  }
  if (a.options.agc) {
    auto* agc = a.apm->gain_control();
    e |= agc->set_mode(webrtc::GainControl::kAdaptiveDigital);
    e |= agc->set_target_level_dbfs(-a.options.agc_level_dbfs);
    e |= agc->enable_limiter(true);
    e |= agc->Enable(true);
  }
  return e;
}

}  // namespace

OSVI_WEBRTC_EXPORT int osvi_webrtc_abi_version(void) {
  return OSVI_WEBRTC_ABI_VERSION;
}

OSVI_WEBRTC_EXPORT osvi_webrtc_apm* osvi_webrtc_apm_create(const osvi_webrtc_apm_options* options, char* err,
                                                           size_t err_len) {
  // No exception may leave a C function.
  try {
    if (options == nullptr) {
      copy_out("null options", err, err_len);
      return nullptr;
    }
    webrtc::Config config;
    // The extended (128 ms) filter with delay-agnostic alignment suits a line whose echo delay nobody
    // reports.
    config.Set<webrtc::ExtendedFilter>(new webrtc::ExtendedFilter(true));
    config.Set<webrtc::DelayAgnostic>(new webrtc::DelayAgnostic(true));
    // The experimental AGC drives an analog mic volume we do not have.
    config.Set<webrtc::ExperimentalAgc>(new webrtc::ExperimentalAgc(false));
    std::unique_ptr<webrtc::AudioProcessing> apm(webrtc::AudioProcessing::Create(config));
    if (!apm) {
      copy_out("AudioProcessing::Create failed", err, err_len);
      return nullptr;
    }
    auto a = std::unique_ptr<osvi_webrtc_apm>(
        new osvi_webrtc_apm{*options, std::move(apm), webrtc::StreamConfig(options->rate, 1),
                            std::vector<float>(static_cast<size_t>(options->rate / 100))});
    if (int e = configure(*a); e != 0) {
      copy_out("refused its configuration (" + std::to_string(e) + ")", err, err_len);
      return nullptr;
    }
    return a.release();
  } catch (const std::exception& e) {
    copy_out(e.what(), err, err_len);
    return nullptr;
  } catch (...) {
    copy_out("unknown error", err, err_len);
    return nullptr;
  }
}

OSVI_WEBRTC_EXPORT void osvi_webrtc_apm_free(osvi_webrtc_apm* apm) {
  delete apm;
}

OSVI_WEBRTC_EXPORT int osvi_webrtc_apm_reset(osvi_webrtc_apm* apm) {
  return apm == nullptr ? -EINVAL : configure(*apm);
}

OSVI_WEBRTC_EXPORT int osvi_webrtc_apm_process(osvi_webrtc_apm* apm, const float* ref, const float* mic,
                                               float* out) {
  const float* rsrc[1] = {ref};
  float* rdst[1] = {apm->ref_out.data()};
  apm->apm->ProcessReverseStream(rsrc, apm->stream, apm->stream, rdst);
  // played_ref is aligned with the capture, so the device delay is already accounted for; the echo path's
  // own delay is found by the delay-agnostic estimator.
  apm->apm->set_stream_delay_ms(0);
  const float* src[1] = {mic};
  float* dst[1] = {out};
  return apm->apm->ProcessStream(src, apm->stream, apm->stream, dst);
}
