// The echo canceller factory, backend names, and the null backend (a pass-through for lines without echo).
#include "osvi/audio/echo.hpp"

#include <algorithm>
#include <string>

#include "osvi/audio/preprocessor.hpp"

namespace osvi::audio {

namespace detail {
// Defined in echo_speex.cpp; declared here rather than in a public header because only the factory calls it.
Result<std::unique_ptr<EchoCanceller>> make_speex_echo(const EchoOptions& options);
void copy_through(std::span<const int16_t> mic, std::span<int16_t> out) noexcept;
}  // namespace detail

namespace {

class NullEcho final : public EchoCanceller {
 public:
  explicit NullEcho(Format format) : format_(format) {}
  void process(std::span<const int16_t> mic, std::span<const int16_t>,
               std::span<int16_t> out) noexcept override {
    detail::copy_through(mic, out);
  }
  void reset() override {}
  std::string_view name() const noexcept override { return "null"; }
  const Format& format() const noexcept override { return format_; }

 private:
  Format format_;
};

Status validate(const EchoOptions& options) {
  const Format& f = options.format;
  if (!valid_call_rate(f.rate))
    return make_error("echo: rate must be 8000 or 16000 Hz, not " + std::to_string(f.rate));
  if (f.frame_ms != 10 && f.frame_ms != 20)
    return make_error("echo: frame must be 10 or 20 ms, not " + std::to_string(f.frame_ms));
  if (options.tail_ms < 10 || options.tail_ms > 1000)
    return make_error("echo: tail_ms must be in 10..1000, not " + std::to_string(options.tail_ms));
  return {};
}

}  // namespace

namespace detail {
void copy_through(std::span<const int16_t> mic, std::span<int16_t> out) noexcept {
  const size_t n = std::min(mic.size(), out.size());
  // memmove semantics: out may be mic itself.
  if (out.data() != mic.data()) std::copy_n(mic.begin(), n, out.begin());
  std::fill(out.begin() + static_cast<std::ptrdiff_t>(n), out.end(), int16_t{0});
}
}  // namespace detail

std::string_view to_string(EchoBackend backend) {
  switch (backend) {
    case EchoBackend::speex:
      return "speex";
    case EchoBackend::webrtc:
      return "webrtc";
    case EchoBackend::null:
      return "null";
  }
  return "unknown";
}

Result<EchoBackend> parse_echo_backend(std::string_view name) {
  for (EchoBackend b : {EchoBackend::speex, EchoBackend::webrtc, EchoBackend::null})
    if (name == to_string(b)) return b;
  return make_error("echo: unknown backend '" + std::string(name) + "' (speex, webrtc or null)");
}

Result<std::unique_ptr<EchoCanceller>> make_echo_canceller(EchoBackend backend, const EchoOptions& options) {
  if (Status s = validate(options); !s) return s.error();
  switch (backend) {
    case EchoBackend::speex:
      return detail::make_speex_echo(options);
    case EchoBackend::webrtc: {
      // Echo cancellation only: the caller adds its own clean-up, or uses CaptureCleaner for the full APM.
      PreprocessOptions pre;
      pre.denoise = false;
      pre.agc = false;
      return make_webrtc_apm(options, pre);
    }
    case EchoBackend::null:
      return std::unique_ptr<EchoCanceller>(std::make_unique<NullEcho>(options.format));
  }
  return make_error("echo: unknown backend");
}

Result<std::unique_ptr<EchoCanceller>> make_echo_canceller(std::string_view backend,
                                                           const EchoOptions& options) {
  Result<EchoBackend> b = parse_echo_backend(backend);
  if (!b) return b.error();
  return make_echo_canceller(*b, options);
}

}  // namespace osvi::audio
