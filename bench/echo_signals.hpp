// The chain benches' audio: a far end (what the box plays) and the mic hearing its echo plus a talking
// caller.
#pragma once

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "osvi/audio/recording.hpp"
#include "wav.hpp"

namespace osvi::bench {

// CPU time of this thread: the DSP's cost per frame, not the wall time a shared machine's preemption adds
// (the build machine's 2 cores are shared; a per-channel share of a core is a CPU figure).
inline double cpu_us() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

struct Stats {
  double p50 = 0, p99 = 0, mean = 0;
};
inline Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  Stats s;
  s.p50 = v[v.size() / 2];
  s.p99 = v[std::min(v.size() - 1, v.size() * 99 / 100)];
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  return s;
}

// Counts what a recorder writes and keeps nothing, so the sink costs nothing beside the encode.
class CountingSink final : public osvi::audio::ByteSink {
 public:
  bool write(std::span<const uint8_t> bytes) noexcept override {
    bytes_ += bytes.size();
    return true;
  }
  uint64_t bytes() const { return bytes_; }

 private:
  uint64_t bytes_ = 0;
};

// `samples` of LibriVox speech as the far end, and the mic: its echo through a 40 ms decaying path (at 16
// kHz) plus a caller who talks every other 4 s over it (double talk included).
inline void make_echo_signals(size_t samples, int rate, std::vector<int16_t>* far,
                              std::vector<int16_t>* mic) {
  std::vector<int16_t> speech = osvi::test::librivox_speech();
  far->assign(samples, 0);
  mic->assign(samples, 0);
  const size_t half = speech.size() / 2;
  std::vector<double> ir(800, 0.0);
  std::srand(7);
  for (size_t i = 0; i < 400; ++i)
    ir[640 + i % 160] += 0.25 * std::exp(-static_cast<double>(i) / 80.0) * ((std::rand() % 2) ? 1 : -1);
  for (size_t i = 0; i < samples; ++i) (*far)[i] = speech[i % half];
  const size_t talk = 4 * static_cast<size_t>(rate);
  for (size_t i = 0; i < samples; ++i) {
    double e = 0;
    for (size_t k = 640; k < ir.size() && k <= i; ++k) e += ir[k] * (*far)[i - k];
    double near = ((i / talk) % 2) ? 0.6 * speech[half + i % (speech.size() - half)] : 0.0;
    (*mic)[i] = static_cast<int16_t>(std::clamp(e + near, -32768.0, 32767.0));
  }
}

// The same speech and echo path as make_echo_signals, but as a call goes, in turns: the far end (the agent)
// talks 0–4 s of every 8 s and is digital silence for the rest, and the caller answers from 3.5 s (half a
// second of barge-in over the agent's end) to 8 s.
inline void make_turn_signals(size_t samples, int rate, std::vector<int16_t>* far,
                              std::vector<int16_t>* mic) {
  make_echo_signals(samples, rate, far, mic);
  std::vector<int16_t> speech = osvi::test::librivox_speech();
  const size_t half = speech.size() / 2, cycle = 8 * static_cast<size_t>(rate);
  const size_t agent_end = 4 * static_cast<size_t>(rate), caller_start = 7 * static_cast<size_t>(rate) / 2;
  for (size_t i = 0; i < samples; ++i)
    if (i % cycle >= agent_end) (*far)[i] = 0;
  std::vector<double> ir(800, 0.0);  // make_echo_signals' path, drawn again from the same seed
  std::srand(7);
  for (size_t i = 0; i < 400; ++i)
    ir[640 + i % 160] += 0.25 * std::exp(-static_cast<double>(i) / 80.0) * ((std::rand() % 2) ? 1 : -1);
  for (size_t i = 0; i < samples; ++i) {
    double e = 0;
    for (size_t k = 640; k < ir.size() && k <= i; ++k) e += ir[k] * (*far)[i - k];
    const double near = i % cycle >= caller_start ? 0.6 * speech[half + i % (speech.size() - half)] : 0.0;
    (*mic)[i] = static_cast<int16_t>(std::clamp(e + near, -32768.0, 32767.0));
  }
}

}  // namespace osvi::bench
