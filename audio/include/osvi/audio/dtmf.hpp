// DTMF (ITU-T Q.23/Q.24) detector and generator for call audio at 8 or 16 kHz.
//
// Real-time rules: DtmfDetector::process()/next_event() and DtmfGenerator::generate() never allocate,
// lock, log or block; they run on the audio thread. All state is sized at construction (create()/start()).
// Time is sample counts since construction or reset(); nothing here reads a clock.
//
// Detection: the signal is cut in sub-blocks of 6.375 ms (51 samples at 8 kHz, 102 at 16 kHz); every
// pair of adjacent sub-blocks (12.75 ms, hop 6.375 ms) is one analysis window, evaluated with Goertzel
// filters on the 8 DTMF frequencies and the 2nd harmonics of the column group. A window is a hit for a
// digit when, for its best row and column:
//   - each tone is above min_level_dbfs and both halves of the window carry it (no edge windows);
//   - the frequency error measured from the phase advance between the two halves is within
//     max_freq_deviation (Q.24: accept +-1.5 %, reject +-3.5 %; default 2.5 %), which a magnitude-only
//     detector cannot resolve at this window length;
//   - twist is within limits (default: low group up to 8 dB above high, high up to 6 dB above low;
//     Q.24's 8/4 dB plus a margin so that signals at the limit survive noise);
//   - each tone is >= 6 dB above the other frequencies of its group, the column's 2nd harmonic is
//     >= 10 dB below it, and the two tones hold >= min_energy_ratio of the window's energy (speech
//     spreads its energy over many harmonics, so this check is what keeps talk-off away).
// A digit is reported after 4 consecutive hits (>= ~32 ms of tone: 40 ms tones always pass, 20-23 ms
// tones never do) and must be followed by 5 consecutive misses (a pause; gaps of <= 10 ms are bridged)
// before another digit is reported.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "osvi/audio/format.hpp"
#include "osvi/audio/goertzel.hpp"
#include "osvi/result.hpp"

namespace osvi::audio {

struct DtmfDetectorConfig {
  double min_level_dbfs = -38.0;      // per tone, 0 dBFS = full-scale sine
  double max_freq_deviation = 0.025;  // fraction of the nominal frequency
  double max_low_over_high_db = 8.0;  // "normal" twist: the line attenuates the high group
  double max_high_over_low_db = 6.0;  // "reverse" twist
  double min_energy_ratio = 0.80;     // (row + column energy) / window energy
  int hits_to_detect = 4;             // consecutive hit windows
  int misses_to_end = 5;              // consecutive non-hit windows that end a digit
};

struct DtmfEvent {
  char digit = 0;            // one of 0-9 * # A-D
  uint64_t start = 0;        // sample position where the tone was first seen (start of the first hit window)
  uint64_t detected_at = 0;  // sample position at which the digit became certain
};

class DtmfDetector {
 public:
  static Result<DtmfDetector> create(int rate, const DtmfDetectorConfig& config = {});

  // Any number of samples; digits found are queued for next_event().
  void process(std::span<const int16_t> in);
  std::optional<DtmfEvent> next_event();
  // Digits dropped because next_event() was not called often enough (the queue holds 16).
  uint64_t overruns() const { return overruns_; }
  uint64_t position() const { return pos_; }
  void reset();

 private:
  DtmfDetector(int rate, const DtmfDetectorConfig& config);
  void end_sub_block();
  char evaluate_window() const;
  void on_window(char digit);
  void push_event(const DtmfEvent& e);

  struct Half {
    std::array<std::complex<float>, 8> x{};   // 4 rows then 4 columns
    std::array<std::complex<float>, 4> h2{};  // 2nd harmonics of the columns
    float energy = 0.0F;
  };

  int rate_;
  size_t sub_;  // samples per sub-block
  DtmfDetectorConfig cfg_;
  float min_tone_energy_;  // per window
  float twist_lo_, twist_hi_, rel_peak_, harm_ratio_;
  std::array<Goertzel, 8> fund_{};
  std::array<Goertzel, 4> harm_{};
  float energy_ = 0.0F;
  size_t filled_ = 0;
  Half prev_{}, cur_{};
  bool have_prev_ = false;
  uint64_t pos_ = 0;

  char candidate_ = 0;
  int hits_ = 0;
  uint64_t candidate_start_ = 0;
  char active_ = 0;
  int misses_ = 0;

  std::array<DtmfEvent, 16> events_{};
  size_t ev_head_ = 0, ev_count_ = 0;
  uint64_t overruns_ = 0;
};

struct DtmfGeneratorConfig {
  int on_ms = 70;
  int off_ms = 70;
  double level_dbfs = -10.0;  // level of the low-group tone
  double twist_db = 0.0;      // high group relative to low group (positive: high group louder)
  double ramp_ms = 1.0;       // raised-cosine on/off ramps, so tone edges do not click
};

class DtmfGenerator {
 public:
  static constexpr size_t kMaxDigits = 64;
  static Result<DtmfGenerator> create(int rate, const DtmfGeneratorConfig& config = {});

  // Queues digits (0-9 * # A-D, case-insensitive; ',' is one extra pause of on_ms + off_ms).
  // Copies into fixed storage (no allocation unless the input is invalid and an error is built).
  Status start(std::string_view digits);
  // Writes up to out.size() samples (tone, then pause, per digit); returns how many were written.
  size_t generate(std::span<int16_t> out);
  bool done() const { return index_ >= count_; }

 private:
  DtmfGenerator(int rate, const DtmfGeneratorConfig& config);

  int rate_;
  DtmfGeneratorConfig cfg_;
  size_t on_samples_, off_samples_, ramp_samples_;
  std::array<char, kMaxDigits> digits_{};
  size_t count_ = 0, index_ = 0, offset_ = 0;
  double phase_lo_ = 0.0, phase_hi_ = 0.0;
};

// Convenience for tests and tools (allocates): the whole rendering of a digit string.
Result<std::vector<int16_t>> dtmf_render(int rate, std::string_view digits,
                                         const DtmfGeneratorConfig& config = {});

}  // namespace osvi::audio
