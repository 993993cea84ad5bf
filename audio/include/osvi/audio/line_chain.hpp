// The per-line processing chain: capture (echo cancellation, preprocessing, VAD/endpointing, DTMF, call
// progress, AMD, the stereo recording) and playback (resampling TTS to the line rate), clock-free. The
// caller's words go upstream as whole utterances (UtteranceEncoder, fed by the Call), so nothing here
// encodes per frame.
//
// Real-time rules: process_capture() and resample_playback() run on the line's audio
// thread or on the loop with the same guarantees: they never allocate, lock, log or block. Everything is
// sized in create(). Results are returned in buffers the chain owns, valid until the next call.
// The two sides share no mutable state, so one thread may run process_capture() (the stream's, through
// ChainRunner: chain_runner.hpp) while another runs resample_playback() (the loop, for the TTS).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "osvi/audio/amd.hpp"
#include "osvi/audio/call_progress.hpp"
#include "osvi/audio/dtmf.hpp"
#include "osvi/audio/endpointer.hpp"
#include "osvi/audio/format.hpp"
#include "osvi/audio/preprocessor.hpp"
#include "osvi/audio/recording.hpp"
#include "osvi/audio/resampler.hpp"
#include "osvi/audio/vad.hpp"
#include "osvi/result.hpp"

namespace osvi::audio {

struct LineChainConfig {
  Format format{16000, 20};  // the line's rate and frame
  CaptureOptions capture;    // echo backend + tail, preprocessing; its format is set from `format`
  std::string vad = "osvi";  // "osvi" or "webrtc"
  VadOptions vad_options;
  EndpointerConfig endpointer;
  int playback_rate = 24000;  // what the TTS upstream sends (OpenAI pcm is 24 kHz)
  bool dtmf = true;
  std::string call_progress_plan;  // "", "us", "eu" or "in"; empty = off
  bool amd = false;                // outbound calls turn it on until the verdict
  AmdConfig amd_config;
};

// What one capture frame produced.
struct CaptureOutput {
  std::span<const int16_t> clean;      // the caller after echo cancellation and preprocessing
  std::span<const int16_t> reference;  // the agent samples the canceller took as playing during the frame
  VadFrame vad;
  EndpointEvents endpoints;
  std::optional<DtmfEvent> dtmf;
  std::optional<CallProgressEvent> tone;
  AmdVerdict amd = AmdVerdict::pending;  // pending while AMD runs or when it is off
  std::optional<Beep> beep;
};

class LineChain {
 public:
  static Result<std::unique_ptr<LineChain>> create(const LineChainConfig& config);
  ~LineChain();
  LineChain(const LineChain&) = delete;
  LineChain& operator=(const LineChain&) = delete;

  // mic: the captured frame; played: the playback samples aligned to it (hal::AudioStream's reference).
  // Frames of the wrong size are refused by returning an output with an empty `clean` span.
  const CaptureOutput& process_capture(std::span<const int16_t> mic,
                                       std::span<const int16_t> played) noexcept;

  // Raw upstream PCM at playback_rate → the line rate; in.size() <= max_playback_input().
  Result<size_t> resample_playback(std::span<const int16_t> in, std::span<int16_t> out) noexcept;
  size_t max_playback_input() const noexcept;
  size_t max_playback_output() const noexcept;

  // The stereo recording gets (clean caller, played agent) for every capture frame while attached.
  void attach_recorder(CallRecorder* recorder) noexcept { recorder_ = recorder; }
  uint64_t recorder_errors() const noexcept { return recorder_errors_; }

  void set_amd(bool on) noexcept;
  // Barge-in uses a shorter minimum while the agent talks (the agent's min_interruption_s).
  Status set_min_speech_ms(int ms) noexcept { return endpointer_->set_min_speech_ms(ms); }
  // Between calls: fresh adaptive state (may allocate inside the libraries: not for the audio thread).
  Status reset();

  const LineChainConfig& config() const noexcept { return config_; }
  uint64_t frames() const noexcept { return frames_; }

 private:
  LineChain() = default;
  LineChainConfig config_;
  std::unique_ptr<CaptureCleaner> cleaner_;
  std::unique_ptr<Endpointer> endpointer_;
  std::optional<Resampler> playback_resampler_;
  std::optional<DtmfDetector> dtmf_;
  std::optional<CallProgressDetector> progress_;
  std::optional<AnsweringMachineDetector> amd_;
  std::optional<BeepDetector> beep_;
  bool amd_on_ = false;
  CallRecorder* recorder_ = nullptr;
  uint64_t recorder_errors_ = 0;
  uint64_t frames_ = 0;
  std::unique_ptr<int16_t[]> clean_;
  CaptureOutput out_;
};

}  // namespace osvi::audio
