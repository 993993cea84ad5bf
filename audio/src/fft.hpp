// Private radix-2 real FFT for the VAD's spectral features (speexdsp keeps its kiss_fft internal).
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

namespace osvi::audio::detail {

// Forward real FFT of a power-of-two length n (4..4096) through one complex FFT of n/2 points.
// All tables and scratch space are allocated by the constructor; forward() never allocates, so it may run on
// the audio thread. Not thread-safe (one instance per stream); the constant tables (twiddles, bit reversal)
// are shared, read-only, by every instance of a size (one VAD per call: ~5 kB each at n = 512,
// bench/README.md "percall3"), and live while an instance does. Plain float arrays rather than std::complex:
// complex multiplication goes through NaN-checking library calls unless built with -ffast-math.
class RealFft {
 public:
  explicit RealFft(size_t n);

  size_t size() const { return n_; }
  // in: n samples; re, im: n/2 + 1 bins (DC .. Nyquist), unnormalised (X[k] = sum x[t] e^{-2 pi i k t / n}).
  void forward(std::span<const float> in, std::span<float> re, std::span<float> im) noexcept;

 private:
  void complex_fft() noexcept;

  struct Tables {
    std::vector<float> tw_re, tw_im;        // e^{-2 pi i k / (n/2)}, k < n/4: the half-size FFT's twiddles
    std::vector<float> split_re, split_im;  // e^{-2 pi i k / n}, k <= n/2: to split the real spectrum
    std::vector<size_t> bitrev;
  };
  static std::shared_ptr<const Tables> tables_for(size_t n);

  size_t n_;
  std::shared_ptr<const Tables> tables_;
  std::vector<float> zr_, zi_;
};

}  // namespace osvi::audio::detail
