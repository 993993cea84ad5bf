// Goertzel filter coefficients (computed once at construction, in double for accuracy).
#include "osvi/audio/goertzel.hpp"

#include <cmath>
#include <numbers>

namespace osvi::audio {

Goertzel::Goertzel(double freq, int rate, size_t block) : freq_(freq) {
  const double w = 2.0 * std::numbers::pi * freq / rate;
  coeff_ = static_cast<float>(2.0 * std::cos(w));
  w_ = std::complex<float>(std::polar(1.0, -w));
  // The recursion's output is referred to the last sample; rotate it back to the block's first sample.
  ref_ = std::complex<float>(std::polar(1.0, -w * (static_cast<double>(block) - 1.0)));
  rot_ = std::complex<float>(std::polar(1.0, -w * static_cast<double>(block)));
}

double dbfs_to_amplitude(double dbfs) {
  return 32767.0 * std::pow(10.0, dbfs / 20.0);
}

}  // namespace osvi::audio
