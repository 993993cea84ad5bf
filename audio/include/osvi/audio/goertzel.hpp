// Goertzel single-bin DFT: the band-energy primitive under the DTMF, call-progress and beep detectors.
//
// Real-time rules: push()/result() never allocate, lock, log or block; they run on the audio thread.
// A Goertzel filter holds two floats of state; its coefficients are fixed at construction.
#pragma once

#include <complex>
#include <cstddef>

namespace osvi::audio {

class Goertzel {
 public:
  Goertzel() = default;
  // freq in Hz at rate; block is the number of samples pushed between reset() and result(), so the
  // phase of result() can be referred to the first sample of the block (detectors compare phases).
  Goertzel(double freq, int rate, size_t block);

  void reset() { s1_ = s2_ = 0.0F; }
  void push(float x) {
    const float s0 = x + coeff_ * s1_ - s2_;
    s2_ = s1_;
    s1_ = s0;
  }
  // X(f) = sum x[n] e^{-j w n} over the block, n counted from the block's first sample.
  std::complex<float> result() const { return ref_ * (s1_ - w_ * s2_); }
  // e^{-j w block}: rotates the next block's result onto this block's phase reference, so two blocks
  // can be added coherently and the phase advance between them measures the frequency error.
  std::complex<float> block_rotation() const { return rot_; }
  double freq() const { return freq_; }

 private:
  float coeff_ = 0.0F;
  float s1_ = 0.0F, s2_ = 0.0F;
  std::complex<float> w_{1.0F, 0.0F}, ref_{1.0F, 0.0F}, rot_{1.0F, 0.0F};
  double freq_ = 0.0;
};

// Energy of a sinusoid at the bin frequency estimated from X over n samples: for A cos(w n) it is
// A^2 n / 2, the same scale as sum(x^2), so tone power divided by block energy is a purity in [0, ~1].
inline float tone_energy(std::complex<float> x, size_t n) {
  return 2.0F * std::norm(x) / static_cast<float>(n);
}

// Peak amplitude of a sine at level dbfs (0 dBFS = a full-scale s16 sine).
double dbfs_to_amplitude(double dbfs);

}  // namespace osvi::audio
