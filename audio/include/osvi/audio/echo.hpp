// Acoustic/line echo cancellation, one frame at a time: the EchoCanceller interface and its factory.
//
// Real-time rule: process() runs on the audio thread. It never allocates, locks, logs or blocks; every
// buffer is sized at construction (make_echo_canceller), which is the only place that can fail. reset() is
// for call boundaries and may allocate (WebRTC re-initialises its APM): keep it off the per-frame path.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "osvi/audio/format.hpp"
#include "osvi/result.hpp"

// speexdsp's opaque state, declared here so the speex preprocessor can bind its residual echo suppressor to
// the canceller's state without this header pulling in speexdsp.
struct SpeexEchoState_;

namespace osvi::audio {

enum class EchoBackend { speex, webrtc, null };

struct EchoOptions {
  Format format;  // 8 or 16 kHz, 10 or 20 ms frames
  // The echo path length the adaptive filter covers (speex only; WebRTC's extended filter is fixed).
  // 128 ms covers line/hybrid echo plus modem buffering; longer tails cost CPU and converge more slowly.
  int tail_ms = 128;
};

class EchoCanceller {
 public:
  virtual ~EchoCanceller() = default;
  EchoCanceller(const EchoCanceller&) = delete;
  EchoCanceller& operator=(const EchoCanceller&) = delete;

  // mic: one captured frame (echo of what we played, plus the caller); played_ref: the playback samples
  // that left the speaker/line while that frame was being captured; out: the cleaned frame. All three
  // hold exactly format().frame_samples() samples (a mismatch copies mic through untouched, since the
  // audio thread has nobody to report to). out may be the very same span as mic (in place); any other
  // overlap is not allowed.
  virtual void process(std::span<const int16_t> mic, std::span<const int16_t> played_ref,
                       std::span<int16_t> out) noexcept = 0;
  // Forget the learned echo path (new call, or the line was re-routed).
  virtual void reset() = 0;
  virtual std::string_view name() const noexcept = 0;
  virtual const Format& format() const noexcept = 0;

  // True when the backend already suppresses noise, residual echo and levels gain itself (WebRTC APM), so
  // a separate preprocessor would only double the processing.
  virtual bool cleans_capture() const noexcept { return false; }
  // The speexdsp state for the preprocessor's residual echo suppressor; null for other backends.
  virtual SpeexEchoState_* speex_state() noexcept { return nullptr; }

 protected:
  EchoCanceller() = default;
};

std::string_view to_string(EchoBackend backend);
// "speex", "webrtc" or "null".
Result<EchoBackend> parse_echo_backend(std::string_view name);

// The backend chosen by measurement (bench/README.md, "Echo cancellation").
inline constexpr EchoBackend kDefaultEchoBackend = EchoBackend::speex;

// Errors: a format other than 8/16 kHz and 10/20 ms, a tail outside 10..1000 ms, or a library failure.
Result<std::unique_ptr<EchoCanceller>> make_echo_canceller(EchoBackend backend, const EchoOptions& options);
Result<std::unique_ptr<EchoCanceller>> make_echo_canceller(std::string_view backend,
                                                           const EchoOptions& options);

}  // namespace osvi::audio
