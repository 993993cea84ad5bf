// Call-progress tone detector (dial, ringback, busy, reorder/congestion, SIT) for the US, EU and IN plans.
//
// Real-time rules: process()/next_event() never allocate, lock, log or block; they run on the audio
// thread. create() sizes every buffer (filters, history) from the plan table. Time is sample counts.
//
// How it decides: every 20 ms block, Goertzel filters on the plan's frequencies (each at f and
// f*(1 +- freq_tolerance), the strongest counts, so +-1-2 % off-nominal tones keep their energy) give each
// tone "signature" of the plan a purity = energy in its bands / energy of the block. The block is
// "tone X" when the best signature holds >= min_purity of the energy, is above min_level_dbfs and, for
// dual tones, both components are present. Speech never holds most of its energy in one or two narrow
// bands for long, which is why it is never taken for a tone. Runs of equal blocks become on-segments;
// a segment whose interior level swings more than max_level_swing_db is marked unstable (speech-like) and
// breaks any cadence. A table-driven matcher then compares the last on/off durations with each tone's
// cadence (any rotation of the pattern, tolerance cadence_tolerance_ms + cadence_tolerance * nominal):
//   dial: continuous >= dial_min_ms;  ringback: 1 full cycle;  busy: 2 cycles;  reorder: 3 cycles;
//   SIT: three consecutive single-tone segments of 200-450 ms in the plan's frequency order.
// The classification is emitted once, with the sample position at which it became certain.
//
// Plans (nominal values; tolerance covers national variants):
//   "us": dial 350+440 continuous; ringback 440+480 2 s/4 s; busy 480+620 0.5/0.5; reorder 480+620
//         0.25/0.25 (some exchanges use 0.3/0.2, inside tolerance); SIT 913.8|985.2, 1370.6|1428.5, 1776.7.
//   "eu": ETSI/CEPT 425 Hz: dial continuous; ringback 1 s/4 s; busy 0.5/0.5; congestion 0.25/0.25
//         (ETSI ES 201 970; national variants such as 0.2/0.3 or 0.24/0.24 fall inside the tolerance,
//         0.7/0.7 or 0.2/0.6 patterns do not); SIT 950, 1400, 1800.
//   "in": 400 Hz; dial and ringback are "400*25" (400 Hz amplitude-modulated by 25 Hz): their band is
//         400 Hz plus the 375/425 Hz side bands over 40 ms windows (one modulation period), which
//         also accepts an unmodulated 400 Hz; the carrier must hold >= 40 % of the band, so a 425 Hz
//         European tone is not taken for it. dial continuous; ringback 0.4/0.2/0.4/2.0; busy 0.75/0.75;
//         congestion 0.25/0.25; SIT 950, 1400, 1800.
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

enum class ProgressTone : uint8_t { none, dial, ringback, busy, reorder, sit };
const char* to_string(ProgressTone tone);

struct CallProgressConfig {
  std::string plan = "us";          // "us", "eu" or "in"
  double min_level_dbfs = -42.0;    // the tone's total level (0 dBFS = full-scale sine)
  double min_purity = 0.70;         // share of the block's energy inside the tone's bands
  double freq_tolerance = 0.012;    // side filters at f*(1 +- this)
  int dial_min_ms = 1500;           // continuous tone before it is called dial tone
  int cadence_tolerance_ms = 50;    // absolute part of the cadence tolerance
  double cadence_tolerance = 0.10;  // relative part (of the nominal duration)
  double max_level_swing_db = 6.0;  // within one on-segment
};

struct CallProgressEvent {
  ProgressTone tone = ProgressTone::none;
  uint64_t started_at = 0;  // sample position where the first segment of the matched pattern began
  uint64_t certain_at = 0;  // sample position at which the classification became certain
};

class CallProgressDetector {
 public:
  static Result<CallProgressDetector> create(int rate, const CallProgressConfig& config = {});

  void process(std::span<const int16_t> in);
  std::optional<CallProgressEvent> next_event();
  // The last classification (none until one is certain; back to none after 7 s without any tone).
  ProgressTone current() const { return current_; }
  uint64_t position() const { return pos_; }
  void reset();

  // Plan table types (public so the table in the .cpp can name them).
  struct Component {
    std::array<uint16_t, 3> filters{};  // f*(1-t), f, f*(1+t)
  };
  struct Signature {
    std::array<Component, 3> comps{};  // modulated: carrier, lower and upper side band
    int ncomps = 0;
    bool modulated = false;
    int sit_index = -1;  // 0, 1, 2 for the SIT segments
  };
  struct Cadence {
    ProgressTone tone = ProgressTone::none;
    int sig = 0;
    std::array<std::array<int, 2>, 2> pattern{};  // {on_ms, off_ms} pairs
    int npairs = 0;                               // 0: continuous
    int cycles = 1;
  };

 private:
  CallProgressDetector(int rate, const CallProgressConfig& config);
  void end_block();
  float component_power(const Component& c, bool window) const;
  void on_block(int sig, float power);
  void close_run();
  void check_cadences(uint64_t next_start);
  void check_sit();
  void classify(ProgressTone tone, uint64_t started_at);
  bool near(uint64_t measured, int nominal_ms) const;

  struct Segment {
    int sig = -1;
    uint64_t start = 0, end = 0;
    bool stable = true;
  };

  int rate_;
  size_t block_;
  CallProgressConfig cfg_;
  float min_mean_square_, swing_;
  std::vector<Goertzel> filters_;
  std::vector<std::complex<float>> x_prev_, x_cur_;
  std::vector<Signature> sigs_;
  std::vector<Cadence> cadences_;
  float energy_ = 0.0F, e_prev_ = 0.0F, e_cur_ = 0.0F;
  size_t filled_ = 0;
  bool have_prev_ = false;
  uint64_t pos_ = 0;

  int run_sig_ = -1;
  uint64_t run_start_ = 0;
  int run_blocks_ = 0;
  float run_min_ = 0.0F, run_max_ = 0.0F, run_last_ = 0.0F;
  std::array<Segment, 8> hist_{};  // newest at (hist_head_ + hist_count_ - 1) % 8
  size_t hist_head_ = 0, hist_count_ = 0;
  uint64_t last_tone_end_ = 0;

  ProgressTone current_ = ProgressTone::none;
  std::array<CallProgressEvent, 8> events_{};
  size_t ev_head_ = 0, ev_count_ = 0;
};

}  // namespace osvi::audio
