// Endpointing on a Vad: speech onset (barge-in), confirmed start and end of utterance, in samples.
#pragma once

// Real-time rules: process() runs on the audio thread next to the Vad it owns and, like it, never allocates,
// locks, logs, throws or blocks; create() allocates nothing beyond what the caller's Vad already holds.
// The endpointer has no clock: time is the count of samples it has been given, so every event carries exact
// sample positions (since creation or the last reset()) and latencies can be measured sample-accurately.
//
// Events, in the order a caller sees them for one utterance:
//   Onset          the first speech frame (begin = its first sample): duck the agent's audio for barge-in
//   now; OnsetRejected  the speech stopped before min_speech_ms of it were heard (a cough, "mm", a click):
//   undo; SpeechStart    min_speech_ms of speech heard: the caller is talking (begin = the Onset's begin);
//   SpeechEnd      silence lasted the endpointing delay: the turn is over (end = one past the last speech
//                  sample, at - end = the delay actually waited).
//
// How the endpointing delay adapts (computed after every speech frame, fixed once silence starts):
//   wait = min + u * (max - min), u = max(u_short, u_tail) in 0..1, rounded to whole frames within [min,
//   max]. u_short = 1 for an utterance of min_speech_ms, falling linearly to 0 at short_utterance_ms: a lone
//   "so",
//             "um" or "the" is more often a hesitation than a finished turn, so it waits longer.
//   u_tail  = 1 when the last ~100 ms of speech were as loud as the utterance's average, 0 when they were
//             6 dB quieter or more: turns end on falling energy (final lengthening, trailing off), so speech
//             that stops at full level was probably cut mid-word (a pause to think, a breath), not finished.
//   A normal sentence ending therefore ends after min silence; nothing ever waits longer than max.
// Within the wait, speech lasting resume_ms continues the utterance (the silence is forgotten); shorter blips
// do not reset the silence count.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "osvi/audio/vad.hpp"
#include "osvi/result.hpp"

namespace osvi::audio {

struct EndpointerConfig {
  int min_speech_ms = 150;  // speech before SpeechStart (the engine uses min_interruption_s while talking)
  int min_endpointing_ms = 500;   // agent min_endpointing_s
  int max_endpointing_ms = 2000;  // agent max_endpointing_s
  int short_utterance_ms = 1000;  // utterances shorter than this wait longer (see above)
  int resume_ms = 60;             // speech within the wait that continues the utterance
};

// min_speech_ms 0..5000, 0 < min_endpointing_ms <= max_endpointing_ms <= 10000, short_utterance_ms 0..10000,
// resume_ms 0..1000.
Status validate(const EndpointerConfig& config);

enum class EndpointKind : uint8_t { Onset, OnsetRejected, SpeechStart, SpeechEnd };

struct EndpointEvent {
  EndpointKind kind = EndpointKind::Onset;
  uint64_t at = 0;     // sample position where the event was decided: the end of the frame that caused it
  uint64_t begin = 0;  // first sample of the speech
  uint64_t end = 0;    // OnsetRejected, SpeechEnd: one past the last speech sample; otherwise 0
  uint64_t wait = 0;   // SpeechEnd: the silence this utterance required, in samples (min..max endpointing)
};

// At most three events come out of one frame (SpeechEnd, then Onset and SpeechStart of the next utterance).
class EndpointEvents {
 public:
  void push(const EndpointEvent& e) noexcept {
    if (n_ < events_.size()) events_[n_++] = e;
  }
  size_t size() const noexcept { return n_; }
  bool empty() const noexcept { return n_ == 0; }
  const EndpointEvent& operator[](size_t i) const noexcept { return events_[i]; }
  const EndpointEvent* begin() const noexcept { return events_.data(); }
  const EndpointEvent* end() const noexcept { return events_.data() + n_; }

 private:
  std::array<EndpointEvent, 3> events_{};
  size_t n_ = 0;
};

class Endpointer {
 public:
  static Result<Endpointer> create(std::unique_ptr<Vad> vad, const EndpointerConfig& config);

  // One frame of vad().format().frame_samples() samples; a frame of another length is ignored (no events).
  EndpointEvents process(std::span<const int16_t> frame) noexcept;
  // The engine raises this to min_interruption_s while the agent speaks; it applies to a candidate in
  // progress.
  Status set_min_speech_ms(int ms) noexcept;
  // A new stream: sample positions restart at 0 and the Vad forgets its noise estimate.
  void reset() noexcept;

  uint64_t position() const noexcept { return pos_; }
  bool in_utterance() const noexcept { return state_ == State::Speech; }
  const EndpointerConfig& config() const noexcept { return config_; }
  Vad& vad() noexcept { return *vad_; }
  // The VAD's verdict on the last frame process() saw (the chain reports it with the frame).
  const VadFrame& last_vad() const noexcept { return last_; }

 private:
  enum class State : uint8_t { Idle, Candidate, Speech };
  Endpointer(std::unique_ptr<Vad> vad, const EndpointerConfig& config);
  uint64_t ms_to_samples(int ms) const noexcept;
  void start_candidate(uint64_t begin, uint64_t active, EndpointEvents& out) noexcept;
  void note_speech_frame(uint64_t frame_end, float level_db) noexcept;
  void update_wait() noexcept;

  static constexpr size_t kTailFrames = 10;  // ~100 ms at 10 ms frames

  std::unique_ptr<Vad> vad_;
  VadFrame last_;
  EndpointerConfig config_;
  uint64_t frame_ = 0;
  uint64_t pos_ = 0;
  State state_ = State::Idle;
  uint64_t begin_ = 0;        // first sample of the current candidate/utterance
  uint64_t active_ = 0;       // candidate: active samples heard so far
  uint64_t last_end_ = 0;     // one past the last active sample of the utterance
  uint64_t resume_run_ = 0;   // Speech: contiguous active samples after a gap
  uint64_t resume_from_ = 0;  // where that run began
  uint64_t wait_ = 0;         // the silence the utterance currently needs
  double level_sum_ = 0.0;    // utterance: sum of active frames' levels (dB) and their count
  uint64_t level_count_ = 0;
  std::array<float, kTailFrames> tail_{};
  size_t tail_len_ = 0, tail_pos_ = 0, tail_size_ = 1;
};

}  // namespace osvi::audio
