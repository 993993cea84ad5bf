// Streaming sample-rate converter for call audio (speexdsp), with exact, drift-free output counts.
//
// Real-time rules: process() never allocates, locks, logs or blocks on its success path; the speexdsp state
// is allocated once in create(). Errors are caller bugs (a wrong buffer size) and only then build an Error.
//
// Output-count bookkeeping: speexdsp keeps the fractional phase between calls, so after N input samples in
// total the converter has produced exactly ceil(N * out_rate / in_rate) output samples, however the input was
// chunked (checked at every call). Long runs therefore never drift: a 20 ms frame at 16 kHz always yields
// 160 samples at 8 kHz, and an odd chunking carries its fraction into the next call instead of rounding.
// The filter delays the signal by latency_out() output samples (silence first); nothing is ever dropped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "osvi/result.hpp"

struct SpeexResamplerState_;

namespace osvi::audio {

class Resampler {
 public:
  // speexdsp quality 0..10; 5 is its own "VoIP" default (≈0.3 % of a core per 16 kHz channel, see bench/).
  static constexpr int kDefaultQuality = 5;

  static bool supported_rate(int rate) {
    return rate == 8000 || rate == 16000 || rate == 24000 || rate == 48000;
  }

  // in_rate/out_rate: 8000, 16000, 24000 or 48000 (any pair; equal rates copy through with no delay).
  // max_input: the largest chunk process() will see (a frame); bounds the output buffer the caller sizes.
  static Result<Resampler> create(int in_rate, int out_rate, size_t max_input, int quality = kDefaultQuality);

  // Converts all of `in` (at most max_input() samples) and returns how many samples were written to `out`;
  // that count is exactly output_for(in.size()), and out.size() must be at least that.
  Result<size_t> process(std::span<const int16_t> in, std::span<int16_t> out) noexcept;

  // Samples the next process() call produces for n input samples (depends on the carried phase).
  size_t output_for(size_t n) const noexcept;
  // The most a process() call of max_input() samples can produce: size output buffers with it.
  size_t max_output() const noexcept {
    return static_cast<size_t>(div_ceil(max_input_ * out_rate_, in_rate_)) + 1;
  }
  size_t max_input() const noexcept { return max_input_; }
  int in_rate() const noexcept { return static_cast<int>(in_rate_); }
  int out_rate() const noexcept { return static_cast<int>(out_rate_); }
  // Group delay of the filter in output samples (0 when the rates are equal).
  int latency_out() const noexcept;
  uint64_t total_in() const noexcept { return total_in_; }
  uint64_t total_out() const noexcept { return total_out_; }
  // Forgets the filter history and the counters (a new call on a reused converter).
  void reset() noexcept;

 private:
  struct Deleter {
    void operator()(SpeexResamplerState_* st) const noexcept;
  };
  Resampler(std::unique_ptr<SpeexResamplerState_, Deleter> st, uint64_t in_rate, uint64_t out_rate,
            size_t max_input)
      : st_(std::move(st)), in_rate_(in_rate), out_rate_(out_rate), max_input_(max_input) {}
  static uint64_t div_ceil(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

  std::unique_ptr<SpeexResamplerState_, Deleter> st_;  // null when in_rate == out_rate
  uint64_t in_rate_;
  uint64_t out_rate_;
  size_t max_input_;
  uint64_t total_in_ = 0;
  uint64_t total_out_ = 0;
};

}  // namespace osvi::audio
