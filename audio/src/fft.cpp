// Radix-2 real FFT: n real samples packed as n/2 complex ones, one complex FFT, then split into n/2+1 bins.
#include "fft.hpp"

#include <cmath>
#include <map>
#include <mutex>
#include <numbers>
#include <utility>

namespace osvi::audio::detail {

std::shared_ptr<const RealFft::Tables> RealFft::tables_for(size_t n) {
  // Instances are made off the audio thread (a chain's create()), possibly on several threads in tests.
  static std::mutex mu;
  static std::map<size_t, std::weak_ptr<const Tables>> made;
  const std::lock_guard<std::mutex> lock(mu);
  if (auto t = made[n].lock()) return t;
  auto t = std::make_shared<Tables>();
  const size_t half = n / 2;
  const size_t quarter = half / 2 > 0 ? half / 2 : 1;
  t->tw_re.resize(quarter);
  t->tw_im.resize(quarter);
  for (size_t k = 0; k < quarter; ++k) {
    const double a = -2.0 * std::numbers::pi * static_cast<double>(k) / static_cast<double>(half);
    t->tw_re[k] = static_cast<float>(std::cos(a));
    t->tw_im[k] = static_cast<float>(std::sin(a));
  }
  t->split_re.resize(half + 1);
  t->split_im.resize(half + 1);
  for (size_t k = 0; k <= half; ++k) {
    const double a = -2.0 * std::numbers::pi * static_cast<double>(k) / static_cast<double>(n);
    t->split_re[k] = static_cast<float>(std::cos(a));
    t->split_im[k] = static_cast<float>(std::sin(a));
  }
  t->bitrev.resize(half);
  size_t bits = 0;
  while ((size_t{1} << bits) < half) ++bits;
  for (size_t i = 0; i < half; ++i) {
    size_t r = 0;
    for (size_t b = 0; b < bits; ++b)
      if (i & (size_t{1} << b)) r |= size_t{1} << (bits - 1 - b);
    t->bitrev[i] = r;
  }
  made[n] = t;
  return t;
}

RealFft::RealFft(size_t n) : n_(n), tables_(tables_for(n)), zr_(n / 2), zi_(n / 2) {}

void RealFft::complex_fft() noexcept {
  const size_t m = zr_.size();
  float* re = zr_.data();
  float* im = zi_.data();
  const std::vector<size_t>& bitrev = tables_->bitrev;
  const float* tw_re = tables_->tw_re.data();
  const float* tw_im = tables_->tw_im.data();
  for (size_t i = 0; i < m; ++i) {
    if (i < bitrev[i]) {
      std::swap(re[i], re[bitrev[i]]);
      std::swap(im[i], im[bitrev[i]]);
    }
  }
  for (size_t len = 2; len <= m; len <<= 1) {
    const size_t step = m / len;  // stride into the twiddle table of the whole half-size transform
    const size_t h = len / 2;
    for (size_t start = 0; start < m; start += len) {
      for (size_t j = 0; j < h; ++j) {
        const float wr = tw_re[j * step], wi = tw_im[j * step];
        const size_t a = start + j, b = a + h;
        const float br = re[b] * wr - im[b] * wi;
        const float bi = re[b] * wi + im[b] * wr;
        re[b] = re[a] - br;
        im[b] = im[a] - bi;
        re[a] += br;
        im[a] += bi;
      }
    }
  }
}

void RealFft::forward(std::span<const float> in, std::span<float> re, std::span<float> im) noexcept {
  const size_t half = n_ / 2;
  for (size_t i = 0; i < half; ++i) {
    zr_[i] = in[2 * i];
    zi_[i] = in[2 * i + 1];
  }
  complex_fft();
  const float* split_re = tables_->split_re.data();
  const float* split_im = tables_->split_im.data();
  // Z = E + iO where E, O are the spectra of the even and odd samples; X[k] = E[k] + w^k O[k].
  for (size_t k = 0; k <= half; ++k) {
    const size_t a = k % half, b = (half - k) % half;
    const float er = 0.5f * (zr_[a] + zr_[b]), ei = 0.5f * (zi_[a] - zi_[b]);  // E = (Z[k] + conj Z[-k]) / 2
    const float orr = 0.5f * (zi_[a] + zi_[b]),
                oi = -0.5f * (zr_[a] - zr_[b]);  // O = (Z[k] - conj Z[-k]) / 2i
    re[k] = er + split_re[k] * orr - split_im[k] * oi;
    im[k] = ei + split_re[k] * oi + split_im[k] * orr;
  }
}

}  // namespace osvi::audio::detail
