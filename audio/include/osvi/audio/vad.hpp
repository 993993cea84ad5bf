// Voice activity detection for call audio: per-frame speech decisions, two backends and a factory.
#pragma once

// Real-time rules (process() and reset() run on a line's audio thread):
//  - they never allocate, lock, log, throw or block: every buffer is sized when the Vad is made;
//  - make_vad() allocates and may fail: call it on the control loop and hand the object to the audio thread;
//  - one Vad per stream, used by one thread at a time; frames are exactly format().frame_samples() long
//    (a frame of another length is a caller bug and is answered with "no speech" without touching state).

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "osvi/audio/format.hpp"
#include "osvi/result.hpp"

namespace osvi::audio {

struct VadFrame {
  float probability = 0.0f;  // 0..1, this frame alone (backends without a soft output report 0 or 1)
  bool active = false;       // this frame alone is speech: probability over the backend's threshold
  bool speech = false;       // active, or within the hangover after a speech burst: use this for gating
};

class Vad {
 public:
  virtual ~Vad() = default;
  virtual VadFrame process(std::span<const int16_t> frame) noexcept = 0;
  // Forget the noise estimate and hangover (a new call on the same line).
  virtual void reset() noexcept = 0;
  virtual std::string_view name() const noexcept = 0;
  virtual Format format() const noexcept = 0;
};

struct VadOptions {
  // 0..1 (call.vad.sensitivity): higher finds quieter speech and accepts more false alarms.
  float sensitivity = 0.5f;
  // webrtc only: aggressiveness 0..3 overriding the one derived from sensitivity (-1: derive it).
  int webrtc_mode = -1;
};

// "osvi": our detector. Per 32 ms Hann window (hop = frame, own radix-2 FFT): 20 sub-bands (16 at 8 kHz)
// against a noise floor tracked by minimum statistics and, between them, a recursive estimate that learns
// during pauses and creeps up during apparent speech; a level feature (mean clipped band SNR and whole-band
// SNR); harmonicity (normalised autocorrelation peak over 80..400 Hz pitch, from the power spectrum);
// thresholds that adapt to the noise's own spread and harmonicity (so babble, which is voiced and
// fluctuating, is held to a higher bar); a logistic combination with hysteresis; a 160 ms hangover after
// bursts of 40 ms or more. Sensitivity moves the level threshold by +-2 dB. About 20 KB per instance at 16
// kHz.
Result<std::unique_ptr<Vad>> make_osvi_vad(Format format, VadOptions options = {});
// "webrtc": WebRTC's GMM VAD from libwebrtc-audio-processing, the baseline. Mode = 3 - round(3 * sensitivity)
// unless options.webrtc_mode is set; it has its own internal hangover, so active == speech.
// Opens libwebrtc_audio_processing.so.1 (once per process; make_webrtc_vad does too) for the configuration
// check of audio.vad "webrtc". -ELIBACC when it is missing.
Status load_webrtc_vad();
Result<std::unique_ptr<Vad>> make_webrtc_vad(Format format, VadOptions options = {});
// By name: "osvi" or "webrtc". Validates format (8/16 kHz, 10/20 ms) and sensitivity (0..1).
Result<std::unique_ptr<Vad>> make_vad(std::string_view name, Format format, VadOptions options = {});

}  // namespace osvi::audio
