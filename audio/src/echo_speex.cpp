// The speexdsp echo canceller (MDF adaptive filter), one RAII owner of its SpeexEchoState.
#include <speex/speex_echo.h>

#include <string>
#include <vector>

#include "osvi/audio/echo.hpp"

namespace osvi::audio::detail {

void copy_through(std::span<const int16_t> mic, std::span<int16_t> out) noexcept;

namespace {

struct EchoStateDeleter {
  void operator()(SpeexEchoState* state) const noexcept { speex_echo_state_destroy(state); }
};
using EchoState = std::unique_ptr<SpeexEchoState, EchoStateDeleter>;

class SpeexEcho final : public EchoCanceller {
 public:
  SpeexEcho(Format format, EchoState state)
      : format_(format), state_(std::move(state)), scratch_(format.frame_samples()) {}

  void process(std::span<const int16_t> mic, std::span<const int16_t> ref,
               std::span<int16_t> out) noexcept override {
    const size_t n = scratch_.size();
    if (mic.size() != n || ref.size() != n || out.size() != n) return copy_through(mic, out);
    const int16_t* in = mic.data();
    if (out.data() == mic.data()) {
      // speexdsp reads the capture after it starts writing the output, so in place needs a copy.
      std::copy(mic.begin(), mic.end(), scratch_.begin());
      in = scratch_.data();
    }
    speex_echo_cancellation(state_.get(), in, ref.data(), out.data());
  }
  void reset() override { speex_echo_state_reset(state_.get()); }
  std::string_view name() const noexcept override { return "speex"; }
  const Format& format() const noexcept override { return format_; }
  SpeexEchoState_* speex_state() noexcept override { return state_.get(); }

 private:
  Format format_;
  EchoState state_;
  std::vector<int16_t> scratch_;
};

}  // namespace

Result<std::unique_ptr<EchoCanceller>> make_speex_echo(const EchoOptions& options) {
  const Format f = options.format;
  const int frame = static_cast<int>(f.frame_samples());
  const int tail = options.tail_ms * f.rate / 1000;
  EchoState state(speex_echo_state_init(frame, tail));
  if (!state) return make_error("echo: speex_echo_state_init failed", -ENOMEM);
  int rate = f.rate;
  // Without this speexdsp assumes 8 kHz and mis-tunes its adaptation at 16 kHz.
  if (speex_echo_ctl(state.get(), SPEEX_ECHO_SET_SAMPLING_RATE, &rate) != 0)
    return make_error("echo: speex refused sampling rate " + std::to_string(rate));
  return std::unique_ptr<EchoCanceller>(std::make_unique<SpeexEcho>(f, std::move(state)));
}

}  // namespace osvi::audio::detail
