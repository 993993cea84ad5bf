// Checks uploaded speech files for osvi-model-server: WAV headers, and Ogg Opus pages decoded with libopus.
#pragma once

#include <string>
#include <string_view>

#include "osvi/result.hpp"

namespace osvi::tools {

struct AudioInfo {
  std::string format;   // "wav" or "ogg_opus"
  int sample_rate = 0;  // the stream's rate (48000 for Opus, whatever was coded for its input)
  int channels = 0;
  double duration_s = 0;   // playable length (Opus: last granule position minus pre-skip)
  double rms_dbfs = -120;  // loudness over the whole file, first channel; -120 for digital silence
};

// Accepts 16-bit PCM WAV and Ogg Opus (mono or stereo, one logical stream, CRCs checked, every packet
// decoded). Anything else, or a truncated/corrupt file, is an error naming the problem.
Result<AudioInfo> probe_audio(std::string_view bytes);

}  // namespace osvi::tools
