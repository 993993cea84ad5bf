// WebRTC's audio processing module (in osvi-webrtc.so, opened on first use) as an echo canceller/cleaner.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "osvi/audio/echo.hpp"
#include "osvi/audio/preprocessor.hpp"
#include "osvi/shared_library.hpp"
#include "osvi_webrtc.h"

namespace osvi::audio {

namespace detail {
void copy_through(std::span<const int16_t> mic, std::span<int16_t> out) noexcept;
}

namespace {

constexpr float kScale = 32768.0f;

void to_float(std::span<const int16_t> in, float* out) noexcept {
  for (size_t i = 0; i < in.size(); ++i) out[i] = static_cast<float>(in[i]) / kScale;
}

void to_s16(const float* in, std::span<int16_t> out) noexcept {
  for (size_t i = 0; i < out.size(); ++i) {
    const float v = std::nearbyint(in[i] * kScale);
    out[i] = static_cast<int16_t>(std::clamp(v, -32768.0f, 32767.0f));
  }
}

// The module osvi-webrtc.so (osvi_webrtc.h) carries libwebrtc-audio-processing and, through it, the shared
// libstdc++ (~1.2 MB resident together): opened by the first APM, so a box on the speex backend never maps
// them. Opened once per process, never closed (RTLD_NODELETE), so the pointers stay valid.
struct WebrtcModule {
  decltype(&osvi_webrtc_abi_version) abi_version = nullptr;
  decltype(&osvi_webrtc_apm_create) create = nullptr;
  decltype(&osvi_webrtc_apm_free) free = nullptr;
  decltype(&osvi_webrtc_apm_reset) reset = nullptr;
  decltype(&osvi_webrtc_apm_process) process = nullptr;
  std::string error;  // empty once loaded and of our ABI version
};

WebrtcModule load_module() {
  WebrtcModule m;
  auto opened = dl::open_module("osvi-webrtc.so", "OSVI_WEBRTC_MODULE", OSVI_WEBRTC_MODULE_INSTALLED);
  if (!opened) {
    m.error = "the WebRTC module is not available (" + opened.error().message + ")";
    return m;
  }
  void* h = opened->get();
  if (!dl::bind(h, "osvi_webrtc_abi_version", m.abi_version) ||
      !dl::bind(h, "osvi_webrtc_apm_create", m.create) || !dl::bind(h, "osvi_webrtc_apm_free", m.free) ||
      !dl::bind(h, "osvi_webrtc_apm_reset", m.reset) || !dl::bind(h, "osvi_webrtc_apm_process", m.process)) {
    m.error = "osvi-webrtc.so lacks a function osvi uses";
    return m;
  }
  if (m.abi_version() != OSVI_WEBRTC_ABI_VERSION)
    m.error = "osvi-webrtc.so is of ABI version " + std::to_string(m.abi_version()) + ", osvi needs " +
              std::to_string(OSVI_WEBRTC_ABI_VERSION) + " (a stale install)";
  return m;
}

const WebrtcModule& module() {
  static const WebrtcModule m = load_module();  // thread-safe static: the first APM loads
  return m;
}

struct ApmFree {
  void operator()(osvi_webrtc_apm* a) const noexcept { module().free(a); }
};
using ApmPtr = std::unique_ptr<osvi_webrtc_apm, ApmFree>;

class WebrtcApm final : public EchoCanceller {
 public:
  WebrtcApm(Format format, ApmPtr apm)
      : format_(format),
        apm_(std::move(apm)),
        chunk_(static_cast<size_t>(format.rate / 100)),
        mic_(chunk_),
        ref_(chunk_),
        out_(chunk_) {}

  void process(std::span<const int16_t> mic, std::span<const int16_t> ref,
               std::span<int16_t> out) noexcept override {
    const size_t n = format_.frame_samples();
    if (mic.size() != n || ref.size() != n || out.size() != n) return detail::copy_through(mic, out);
    // APM works in 10 ms chunks; chunk by chunk, the mic chunk is read before the same range of out is
    // written, so in place is safe.
    const WebrtcModule& m = module();
    for (size_t off = 0; off < n; off += chunk_) {
      to_float(ref.subspan(off, chunk_), ref_.data());
      to_float(mic.subspan(off, chunk_), mic_.data());
      if (m.process(apm_.get(), ref_.data(), mic_.data(), out_.data()) != 0) {
        std::copy_n(mic.begin() + static_cast<std::ptrdiff_t>(off), chunk_,
                    out.begin() + static_cast<std::ptrdiff_t>(off));
        continue;
      }
      to_s16(out_.data(), out.subspan(off, chunk_));
    }
  }

  void reset() override { (void)module().reset(apm_.get()); }
  std::string_view name() const noexcept override { return "webrtc"; }
  const Format& format() const noexcept override { return format_; }
  bool cleans_capture() const noexcept override { return true; }

 private:
  Format format_;
  ApmPtr apm_;
  size_t chunk_;
  std::vector<float> mic_, ref_, out_;
};

}  // namespace

Status load_webrtc_apm() {
  if (const WebrtcModule& m = module(); !m.error.empty()) return make_error(m.error, dl::kLibraryMissing);
  return {};
}

Result<std::unique_ptr<EchoCanceller>> make_webrtc_apm(const EchoOptions& options,
                                                       const PreprocessOptions& pre) {
  const Format f = options.format;
  if (!valid_call_rate(f.rate) || (f.frame_ms != 10 && f.frame_ms != 20))
    return make_error("echo: webrtc needs 8/16 kHz and 10/20 ms frames");
  if (Status s = validate(pre); !s) return s.error();
  const WebrtcModule& m = module();
  if (!m.error.empty()) return make_error("echo: webrtc: " + m.error, dl::kLibraryMissing);
  const osvi_webrtc_apm_options o{
      f.rate,          pre.echo_suppress_db, pre.denoise ? 1 : 0, pre.noise_suppress_db,
      pre.agc ? 1 : 0, pre.agc_level_dbfs};
  char err[256] = {};
  ApmPtr apm(m.create(&o, err, sizeof err));
  if (!apm) return make_error(std::string("echo: webrtc: ") + err, -ENOMEM);
  auto echo = std::make_unique<WebrtcApm>(f, std::move(apm));
  return std::unique_ptr<EchoCanceller>(std::move(echo));
}

}  // namespace osvi::audio
