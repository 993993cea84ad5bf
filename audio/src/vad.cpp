// The VAD factory: chooses a backend by its configuration name after validating the shared options.
#include "osvi/audio/vad.hpp"

#include <string>

namespace osvi::audio {

Result<std::unique_ptr<Vad>> make_vad(std::string_view name, Format format, VadOptions options) {
  if (!valid_call_rate(format.rate) || (format.frame_ms != 10 && format.frame_ms != 20))
    return make_error("vad: format must be 8 or 16 kHz with 10 or 20 ms frames");
  if (!(options.sensitivity >= 0.0f && options.sensitivity <= 1.0f))
    return make_error("vad: sensitivity must be within 0..1");
  if (name == "osvi") return make_osvi_vad(format, options);
  if (name == "webrtc") return make_webrtc_vad(format, options);
  return make_error("vad: unknown backend '" + std::string(name) + "' (osvi, webrtc)");
}

}  // namespace osvi::audio
