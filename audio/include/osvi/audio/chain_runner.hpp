// ChainRunner: a line's LineChain run on the stream's real-time thread (a PeriodProcessor), its results
// handed to the control loop in capture order.
//
// Real-time side, process(): LineChain::process_capture(), the attached CallRecorder's encode (its sink a
// PagePipe, page_pipe.hpp, so the file is written on the loop), then one compact
// result per frame into two SpscRings (the clean and reference samples; the frame's events: VAD, endpoints,
// DTMF, tone, AMD verdict, beep). A frame that finds either ring full is dropped whole and counted
// (dropped()), never waited for. Controls from the loop arrive through atomics and take effect before the
// next frame: set_min_speech_ms() as the last value, set_amd() as the sequence the loop called (a false
// between two trues still restarts the detector, as on LineChain).
//
// Loop side, next(): pops the frames in order and rebuilds a CaptureOutput the Call reads exactly as it read
// LineChain's; its spans point into the runner's loop-side buffers until the next call.
//
// The caller's utterances (optional, ChainRunnerOptions::utterance): the thread also keeps the last
// utterance_history_ms of clean audio and, from each Onset to its SpeechEnd, encodes the caller as the Call's
// UtteranceEncoder did on the loop (the same pre-roll, 20 ms Opus frames, the same cap, the tail and the
// codec delay flushed at the end), with one libopus state made in create() and reset per utterance. The
// packets cross to the loop through a third SpscRing (bytes, each behind a 4-byte record header); next()
// takes the frame's records before it returns the frame, and at a SpeechEnd frames the kept packets as the
// Ogg Opus blob take_utterance() hands the Call. A record that finds the ring full drops that utterance
// (counted in utterance_drops()), never waits. Per frame neither side allocates: the loop's packet buffer
// keeps its capacity across utterances; only the blob, once per utterance, allocates.
//
// What stays on the loop: LineChain::resample_playback() (the 24 kHz TTS resampler touches none of the
// capture state, so the loop may run it while the thread runs process()), LineChain::reset() and anything
// that allocates (create(), CallRecorder::create()/finish()).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "osvi/audio/line_chain.hpp"
#include "osvi/audio/period_processor.hpp"
#include "osvi/audio/recording.hpp"
#include "osvi/audio/spsc_ring.hpp"
#include "osvi/result.hpp"

namespace osvi::audio {

struct ChainRunnerOptions {
  // Processed frames that may wait for the loop. The loop reads at every period; half a second covers any
  // stall of it, as the streams' own capture rings did.
  int ring_ms = 500;
  // Set: the thread encodes the caller's utterances (audio.opus.*, see above); unset: the Call encodes them.
  std::optional<UtteranceOptions> utterance{};
  int utterance_history_ms = 500;  // pre-roll kept before an Onset's first sample (the Call's history)
  int utterance_max_ms = 30000;    // frames past this are not added (the Call's cap)
};

class ChainRunner final : public PeriodProcessor {
 public:
  static Result<std::unique_ptr<ChainRunner>> create(std::unique_ptr<LineChain> chain,
                                                     const ChainRunnerOptions& options = {});
  ~ChainRunner();
  ChainRunner(const ChainRunner&) = delete;
  ChainRunner& operator=(const ChainRunner&) = delete;

  // ---- the stream's real-time thread ----
  void process(std::span<const int16_t> capture, std::span<const int16_t> reference) noexcept override;

  // ---- the control loop ----
  // The next processed frame, in capture order; false when none waits.
  bool next(CaptureOutput& out) noexcept;
  size_t ready() const noexcept { return meta_.readable(); }
  void set_amd(bool on) noexcept;
  void set_min_speech_ms(int ms) noexcept;  // out of 0..5000 is ignored, as LineChain refuses it
  // Every later frame's (clean caller, reference) goes to `recorder` (null: none), on the real-time thread.
  // Returns once that thread is certainly out of the previous recorder's push(): it waits at most for one
  // frame's encode, yielding (the thread never waits for the loop), so the loop may finish() it at once.
  void attach_recorder(CallRecorder* recorder) noexcept;
  CallRecorder* recorder() const noexcept { return rec_.load(std::memory_order_relaxed); }
  uint64_t recorder_errors() const noexcept { return recorder_errors_.load(std::memory_order_relaxed); }

  // The chain, for what stays on the loop: resample_playback(), config().
  LineChain& chain() noexcept { return *chain_; }
  const LineChain& chain() const noexcept { return *chain_; }
  uint64_t processed() const noexcept { return processed_.load(std::memory_order_relaxed); }
  uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
  size_t frame_samples() const noexcept { return frame_; }

  // ---- the caller's utterances, when ChainRunnerOptions::utterance is set (the control loop) ----
  bool encodes_utterances() const noexcept { return utt_ != nullptr; }
  // The Ogg Opus blob of the utterance the frame next() returned last ended (its SpeechEnd), once; an error
  // when that frame ended none, or the utterance was dropped (ring full, codec error, no Onset seen).
  Result<std::vector<uint8_t>> take_utterance();
  // Utterances dropped on the thread because their records found the ring full.
  uint64_t utterance_drops() const noexcept { return utt_drops_.load(std::memory_order_relaxed); }

 private:
  // One frame's events, as they cross the ring (the samples go through samples_).
  struct Meta {
    VadFrame vad;
    EndpointEvents endpoints;
    std::optional<DtmfEvent> dtmf;
    std::optional<CallProgressEvent> tone;
    AmdVerdict amd = AmdVerdict::pending;
    std::optional<Beep> beep;
    uint64_t utt_pushed = 0;  // bytes of utterance records pushed up to and including this frame
  };
  struct Utterance;  // the thread's encoder and the loop's assembly (chain_runner.cpp)
  ChainRunner(std::unique_ptr<LineChain> chain, size_t frames);
  void apply_controls() noexcept;
  void utterance_frame(const CaptureOutput& out) noexcept;  // thread
  void take_records(uint64_t upto);                         // loop

  std::unique_ptr<LineChain> chain_;
  const size_t frame_;
  SpscRing<int16_t> samples_;  // per frame: clean, then reference (pushed before its Meta)
  SpscRing<Meta> meta_;        // published after the frame's samples: a visible Meta has its samples
  std::vector<int16_t> clean_, reference_;  // loop: the frame next() returned

  // Loop → thread controls. amd_word_: bit 0 the last value asked, bits 1..31 the count of set_amd(false)
  // calls, bits 32..63 the count of calls (both wrap); only the loop writes it.
  std::atomic<uint64_t> amd_word_{0};
  std::atomic<int> min_speech_ms_{-1};  // -1: never set
  uint64_t amd_seen_ = 0;               // thread: the word last applied
  int min_speech_seen_ = -1;            // thread
  std::atomic<CallRecorder*> rec_{nullptr};
  std::atomic<bool> rec_busy_{false};  // thread: inside the recorder's push()

  std::atomic<uint64_t> processed_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> recorder_errors_{0};

  std::unique_ptr<Utterance> utt_;  // null: utterances are the Call's
  std::atomic<uint64_t> utt_drops_{0};
};

}  // namespace osvi::audio
