// WebRTC's GMM voice activity detector (libwebrtc-audio-processing 0.3) as the baseline Vad.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "osvi/audio/vad.hpp"
#include "osvi/shared_library.hpp"

// Debian installs the shared object but not webrtc/common_audio/vad/include/webrtc_vad.h. These prototypes
// are the post-2014 API this build exports: Create() returns the instance (checked with objdump: it mallocs
// and returns it, taking no argument) and Process() takes the length as size_t. Declared only for their
// types: the functions are bound from the library opened on first use, not linked.
extern "C" {
struct WebRtcVadInst;
WebRtcVadInst* WebRtcVad_Create();
void WebRtcVad_Free(WebRtcVadInst* handle);
int WebRtcVad_Init(WebRtcVadInst* handle);
int WebRtcVad_set_mode(WebRtcVadInst* handle, int mode);
int WebRtcVad_Process(WebRtcVadInst* handle, int fs, const int16_t* audio_frame, size_t frame_length);
}

namespace osvi::audio {
namespace {

// libwebrtc-audio-processing (with the shared libstdc++ it needs) is opened by the first "webrtc" VAD, so a
// box on the "osvi" detector never maps it. Its VAD is a C API, so no module is needed: opened by soname,
// once per process, never closed (RTLD_NODELETE).
struct VadApi {
  decltype(&WebRtcVad_Create) create = nullptr;
  decltype(&WebRtcVad_Free) free = nullptr;
  decltype(&WebRtcVad_Init) init = nullptr;
  decltype(&WebRtcVad_set_mode) set_mode = nullptr;
  decltype(&WebRtcVad_Process) process = nullptr;
};

const dl::Table<VadApi>& loaded_vad() {
  // thread-safe static: the first webrtc VAD loads
  static const dl::Table<VadApi> t =
      dl::load_table<VadApi>("libwebrtc_audio_processing.so.1", "the WebRTC library", [](void* h, VadApi& a) {
        return dl::bind(h, "WebRtcVad_Create", a.create) && dl::bind(h, "WebRtcVad_Free", a.free) &&
               dl::bind(h, "WebRtcVad_Init", a.init) && dl::bind(h, "WebRtcVad_set_mode", a.set_mode) &&
               dl::bind(h, "WebRtcVad_Process", a.process);
      });
  return t;
}

// Only called once loaded_vad() succeeded (WebRtcVad::create checks it).
const VadApi& vad_api() {
  return loaded_vad().api;
}

struct VadInstFree {
  void operator()(WebRtcVadInst* h) const noexcept { vad_api().free(h); }
};
using VadHandle = std::unique_ptr<WebRtcVadInst, VadInstFree>;

class WebRtcVad final : public Vad {
 public:
  WebRtcVad(VadHandle handle, Format format, int mode)
      : handle_(std::move(handle)), format_(format), mode_(mode) {}

  VadFrame process(std::span<const int16_t> frame) noexcept override {
    if (frame.size() != format_.frame_samples()) return {};
    const int r = vad_api().process(handle_.get(), format_.rate, frame.data(), frame.size());
    const bool speech = r == 1;
    return {speech ? 1.0f : 0.0f, speech, speech};
  }

  void reset() noexcept override {
    // Init only fails for a null handle; set_mode only for a mode out of range, both ruled out at creation.
    (void)vad_api().init(handle_.get());
    (void)vad_api().set_mode(handle_.get(), mode_);
  }

  std::string_view name() const noexcept override { return "webrtc"; }
  Format format() const noexcept override { return format_; }

 private:
  VadHandle handle_;
  Format format_;
  int mode_;
};

}  // namespace

Status load_webrtc_vad() {
  if (const Status& s = loaded_vad().status; !s) return s.error();
  return {};
}

Result<std::unique_ptr<Vad>> make_webrtc_vad(Format format, VadOptions options) {
  if (!valid_call_rate(format.rate) || (format.frame_ms != 10 && format.frame_ms != 20))
    return make_error("webrtc vad: format must be 8/16 kHz with 10/20 ms frames");
  int mode = options.webrtc_mode;
  if (mode < 0) mode = 3 - static_cast<int>(std::lround(3.0f * std::clamp(options.sensitivity, 0.0f, 1.0f)));
  if (mode > 3) return make_error("webrtc vad: mode must be 0..3");
  if (const Status& s = loaded_vad().status; !s)
    return make_error("webrtc vad: " + s.error().message, s.error().code);
  const VadApi& api = vad_api();
  VadHandle h(api.create());
  if (!h) return make_error("webrtc vad: out of memory", -ENOMEM);
  if (api.init(h.get()) != 0) return make_error("webrtc vad: init failed");
  if (api.set_mode(h.get(), mode) != 0) return make_error("webrtc vad: set_mode failed");
  return std::unique_ptr<Vad>(std::make_unique<WebRtcVad>(std::move(h), format, mode));
}

}  // namespace osvi::audio
