// Answering-machine detection (app_amd-style word/silence counting) and voicemail beep detection.
//
// Real-time rules: AnsweringMachineDetector::process() and BeepDetector::process() never allocate, lock,
// log or block; they run on the audio thread. All state is fixed at create(). Time is sample counts from
// the moment the call was answered (construction or reset()).
//
// AMD follows Asterisk's app_amd state machine, on 10 ms analysis blocks. A block is voice when its mean
// absolute amplitude is >= silence_threshold (Asterisk's ast_dsp_silence semantics: the "256" is a mean
// |sample|, not an energy), unless the caller passes its own speech flag for the frame (hook for an
// external VAD). Verdicts, first match wins:
//   MACHINE "INITIALSILENCE"  silence for initial_silence_ms before any word (Asterisk semantics: a line
//                             that stays silent is taken for a machine, e.g. one waiting for its beep;
//                             the call engine may treat this reason as "unknown" if it prefers);
//   MACHINE "MAXWORDLENGTH"   one word longer than maximum_word_length_ms;
//   MACHINE "MAXWORDS"        maximum_number_of_words words counted;
//   MACHINE "LONGGREETING"    voice in the greeting totals greeting_ms;
//   HUMAN   "HUMAN"           after_greeting_silence_ms of silence once the greeting began;
//   UNSURE  "TOOLONG"         no verdict within min(decision_window_ms, total_analysis_time_ms).
// A word is min_word_length_ms of consecutive voice after >= between_words_silence_ms of silence.
// As in Asterisk, the detector starts "in a word", so speech from the very first block is counted as a
// word only after a pause; that keeps the answer click and line noise from counting.
//
// BeepDetector: a bank of Goertzel filters every 25 Hz over [min_hz, max_hz], on 20 ms windows with a
// 10 ms hop. A window is tonal when its strongest filter holds >= min_purity of the window's energy
// (a single sine does, speech and noise do not), is above min_level_dbfs, and its frequency — refined from
// the phase advance between the window's halves — stays within max_freq_drift of the beep's first window.
// A beep is >= min_duration_ms of consecutive tonal windows; it is reported when it ends (the voicemail
// recording starts there) with its frequency and start/end sample positions. The edges are placed inside
// the 10 ms sub-block where the tone starts/stops from that sub-block's energy relative to the tone's
// level, to a few ms when the tone is followed by something quieter (<= 10 ms otherwise).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "osvi/audio/goertzel.hpp"
#include "osvi/result.hpp"

namespace osvi::audio {

struct AmdConfig {
  int initial_silence_ms = 2500;
  int greeting_ms = 1500;
  int after_greeting_silence_ms = 800;
  int total_analysis_time_ms = 5000;
  int decision_window_ms = 3000;  // the product wants a verdict this soon; the tighter of the two applies
  int min_word_length_ms = 100;
  int between_words_silence_ms = 50;
  int maximum_number_of_words = 3;
  int maximum_word_length_ms = 5000;
  int silence_threshold = 256;  // mean |sample| of a 10 ms block (s16)
};

enum class AmdVerdict : uint8_t { pending, human, machine, unsure };
const char* to_string(AmdVerdict verdict);

struct AmdResult {
  AmdVerdict verdict = AmdVerdict::pending;
  const char* reason =
      "";  // "HUMAN", "INITIALSILENCE", "MAXWORDS", "MAXWORDLENGTH", "LONGGREETING", "TOOLONG"
  uint64_t decided_at = 0;  // sample position of the verdict
  int words = 0;
  int voice_ms = 0;    // total voice so far
  int silence_ms = 0;  // the silence run at decision time
};

// Asterisk-style cause string, e.g. "LONGGREETING-1500-1500" (allocates: not for the audio thread).
std::string describe(const AmdResult& result, const AmdConfig& config);

class AnsweringMachineDetector {
 public:
  static Result<AnsweringMachineDetector> create(int rate, const AmdConfig& config = {});

  // speech: an external VAD's decision for this frame; without it the built-in energy test is used.
  // Returns the verdict so far (pending until decided; frames after the verdict are ignored).
  AmdVerdict process(std::span<const int16_t> frame, std::optional<bool> speech = std::nullopt);
  const AmdResult& result() const { return result_; }
  void reset();

 private:
  AnsweringMachineDetector(int rate, const AmdConfig& config);
  void on_block(bool voice);
  void decide(AmdVerdict verdict, const char* reason);

  int rate_;
  size_t block_;
  AmdConfig cfg_;
  size_t filled_ = 0;
  int64_t abs_sum_ = 0;
  uint64_t pos_ = 0;
  std::optional<bool> ext_;

  bool in_word_ = true;  // Asterisk starts in STATE_IN_WORD
  bool in_initial_silence_ = true;
  bool in_greeting_ = false;
  int elapsed_ms_ = 0, silence_ms_ = 0, voice_ms_ = 0, consecutive_voice_ms_ = 0, words_ = 0;
  AmdResult result_{};
};

struct BeepConfig {
  double min_hz = 400.0;
  double max_hz = 2000.0;
  int min_duration_ms = 150;
  double min_purity = 0.6;       // strongest filter's share of the window energy
  double max_freq_drift = 0.02;  // relative to the beep's first window
  double min_level_dbfs = -40.0;
};

struct Beep {
  double freq_hz = 0.0;
  uint64_t start = 0;  // sample position of the first tonal sample (block resolution, refined)
  uint64_t end = 0;    // sample position just after the last tonal sample
};

class BeepDetector {
 public:
  static Result<BeepDetector> create(int rate, const BeepConfig& config = {});
  // Returns a beep when one has just ended inside this frame's processing.
  std::optional<Beep> process(std::span<const int16_t> frame);
  uint64_t position() const { return pos_; }
  void reset();

 private:
  BeepDetector(int rate, const BeepConfig& config);
  std::optional<Beep> end_sub_block();
  uint64_t edge_samples(float energy) const;

  int rate_;
  size_t sub_;  // 10 ms
  BeepConfig cfg_;
  float min_mean_square_;
  std::vector<Goertzel> filters_;
  std::vector<std::complex<float>> x_prev_, x_cur_;
  std::array<float, 3> e_{};  // energies of the last three sub-blocks, newest last
  float energy_ = 0.0F;
  size_t filled_ = 0;
  int subs_seen_ = 0;
  uint64_t pos_ = 0;

  int run_windows_ = 0;
  double run_freq_ = 0.0, run_freq_sum_ = 0.0;
  float run_mean_square_ = 0.0F;
  uint64_t run_start_ = 0;
};

}  // namespace osvi::audio
