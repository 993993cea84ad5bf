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

 private:
  // One frame's events, as they cross the ring (the samples go through samples_).
  struct Meta {
    VadFrame vad;
    EndpointEvents endpoints;
    std::optional<DtmfEvent> dtmf;
    std::optional<CallProgressEvent> tone;
    AmdVerdict amd = AmdVerdict::pending;
    std::optional<Beep> beep;
  };
  ChainRunner(std::unique_ptr<LineChain> chain, size_t frames);
  void apply_controls() noexcept;

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
};

}  // namespace osvi::audio
