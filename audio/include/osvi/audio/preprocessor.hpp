// Capture clean-up after echo cancellation: noise suppression, AGC and residual echo suppression.
//
// Two ways in. Preprocessor is speexdsp's preprocessor alone (bound to a speex canceller when given one, so
// it can suppress the echo the linear filter leaves). CaptureCleaner is what the audio chain uses: canceller
// plus clean-up for any backend — speex AEC + speex preprocessor, or WebRTC's APM doing all of it at once.
//
// Real-time rule: process() never allocates, locks, logs or blocks (it runs on the audio thread); create()
// and reset() may allocate and belong to call set-up/tear-down.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "osvi/audio/echo.hpp"
#include "osvi/audio/format.hpp"
#include "osvi/result.hpp"

struct SpeexPreprocessState_;

namespace osvi::audio {

struct PreprocessOptions {
  bool denoise = true;
  int noise_suppress_db = -25;  // maximum attenuation of noise (negative dB)
  // Off by default: the line level is fixed and AGC pumps the residual echo back up between words.
  bool agc = false;
  int agc_level_dbfs = -18;  // target speech level when agc is on
  // Residual echo attenuation (negative dB) while only the far end talks, and while both talk (kept milder
  // so the caller's barge-in survives). WebRTC maps these onto its NLP suppression levels.
  int echo_suppress_db = -40;
  int echo_suppress_active_db = -15;
};

// Errors: out-of-range options (dB values must be in -90..0, agc level in -31..0 dBFS).
Status validate(const PreprocessOptions& options);

class Preprocessor {
 public:
  // echo: optional; when it is a speex canceller its state drives the residual echo suppressor, and it
  // must outlive the preprocessor. Other backends are accepted and only denoise/AGC apply.
  static Result<std::unique_ptr<Preprocessor>> create(Format format, const PreprocessOptions& options,
                                                      EchoCanceller* echo = nullptr);
  ~Preprocessor();
  Preprocessor(const Preprocessor&) = delete;
  Preprocessor& operator=(const Preprocessor&) = delete;

  // In place; frame holds format().frame_samples() samples (otherwise it is left untouched).
  void process(std::span<int16_t> frame) noexcept;
  // speexdsp has no reset for its preprocessor, so this builds a fresh state (allocates).
  Status reset();
  const Format& format() const noexcept { return format_; }
  bool suppresses_residual_echo() const noexcept { return echo_ != nullptr; }

 private:
  struct StateDeleter {
    void operator()(SpeexPreprocessState_* state) const noexcept;
  };
  using State = std::unique_ptr<SpeexPreprocessState_, StateDeleter>;
  Preprocessor(Format format, const PreprocessOptions& options, SpeexEchoState_* echo, State state);
  static Result<State> make_state(Format format, const PreprocessOptions& options, SpeexEchoState_* echo);

  Format format_;
  PreprocessOptions options_;
  SpeexEchoState_* echo_;  // borrowed from the canceller
  State state_;
};

struct CaptureOptions {
  EchoBackend backend = kDefaultEchoBackend;
  EchoOptions echo;
  PreprocessOptions preprocess;
};

class CaptureCleaner {
 public:
  static Result<std::unique_ptr<CaptureCleaner>> create(const CaptureOptions& options);

  // Same contract as EchoCanceller::process (out may be the same span as mic).
  void process(std::span<const int16_t> mic, std::span<const int16_t> played_ref,
               std::span<int16_t> out) noexcept;
  Status reset();
  std::string_view name() const noexcept { return echo_->name(); }
  const Format& format() const noexcept { return echo_->format(); }

 private:
  CaptureCleaner(std::unique_ptr<EchoCanceller> echo, std::unique_ptr<Preprocessor> pre);
  // Declared first so it is destroyed last: the preprocessor borrows its speex state.
  std::unique_ptr<EchoCanceller> echo_;
  std::unique_ptr<Preprocessor> pre_;  // null when the backend cleans the capture itself
};

// WebRTC's APM as a whole capture processor: AEC (extended filter, delay-agnostic) with its own NLP, noise
// suppression and AGC set from `pre`. make_echo_canceller("webrtc") is this with denoise and AGC off.
// Opens osvi-webrtc.so (once per process; make_webrtc_apm does too) for the configuration check of
// audio.echo.backend "webrtc". -ELIBACC when the module or libwebrtc-audio-processing is missing.
Status load_webrtc_apm();
Result<std::unique_ptr<EchoCanceller>> make_webrtc_apm(const EchoOptions& options,
                                                       const PreprocessOptions& pre);

}  // namespace osvi::audio
