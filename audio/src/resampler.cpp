// speexdsp resampler wrapper: validation at creation, exact cumulative counts on every call.
#include "osvi/audio/resampler.hpp"

#include <speex/speex_resampler.h>

#include <algorithm>
#include <string>

namespace osvi::audio {

void Resampler::Deleter::operator()(SpeexResamplerState_* st) const noexcept {
  speex_resampler_destroy(st);
}

Result<Resampler> Resampler::create(int in_rate, int out_rate, size_t max_input, int quality) {
  if (!supported_rate(in_rate) || !supported_rate(out_rate)) {
    return make_error("resampler: rates must be 8000, 16000, 24000 or 48000 Hz (got " +
                      std::to_string(in_rate) + " -> " + std::to_string(out_rate) + ")");
  }
  if (quality < 0 || quality > 10) return make_error("resampler: quality must be 0..10");
  // speexdsp counts in spx_uint32_t; a frame is a few thousand samples, so this only rejects nonsense.
  if (max_input == 0 || max_input > (1u << 20)) return make_error("resampler: max_input must be 1..1048576");
  std::unique_ptr<SpeexResamplerState_, Deleter> st;
  if (in_rate != out_rate) {
    int err = RESAMPLER_ERR_SUCCESS;
    st.reset(speex_resampler_init(1, static_cast<spx_uint32_t>(in_rate), static_cast<spx_uint32_t>(out_rate),
                                  quality, &err));
    if (!st || err != RESAMPLER_ERR_SUCCESS) {
      return make_error(std::string("resampler: ") + speex_resampler_strerror(err), -ENOMEM);
    }
  }
  return Resampler(std::move(st), static_cast<uint64_t>(in_rate), static_cast<uint64_t>(out_rate), max_input);
}

size_t Resampler::output_for(size_t n) const noexcept {
  return static_cast<size_t>(div_ceil((total_in_ + n) * out_rate_, in_rate_) - total_out_);
}

Result<size_t> Resampler::process(std::span<const int16_t> in, std::span<int16_t> out) noexcept {
  const size_t want = output_for(in.size());
  if (in.size() > max_input_ || out.size() < want) return make_error("resampler: buffer size");
  if (!st_) {
    std::copy(in.begin(), in.end(), out.begin());
  } else {
    auto in_len = static_cast<spx_uint32_t>(in.size());
    auto out_len = static_cast<spx_uint32_t>(out.size());
    const int err = speex_resampler_process_int(st_.get(), 0, in.data(), &in_len, out.data(), &out_len);
    // Both checks guard the drift-free promise: all input consumed, and the phase agrees with our count.
    if (err != RESAMPLER_ERR_SUCCESS || in_len != in.size() || out_len != want) {
      return make_error("resampler: count mismatch", -EIO);
    }
  }
  total_in_ += in.size();
  total_out_ += want;
  return want;
}

int Resampler::latency_out() const noexcept {
  return st_ ? speex_resampler_get_output_latency(st_.get()) : 0;
}

void Resampler::reset() noexcept {
  if (st_) speex_resampler_reset_mem(st_.get());
  total_in_ = 0;
  total_out_ = 0;
}

}  // namespace osvi::audio
