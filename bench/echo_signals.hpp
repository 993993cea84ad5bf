// The chain benches' audio: a far end (what the box plays) and the mic hearing its echo plus a talking
// caller.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "osvi/audio/recording.hpp"
#include "wav.hpp"

namespace osvi::bench {

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

}  // namespace osvi::bench
