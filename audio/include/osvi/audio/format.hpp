// Audio format vocabulary: call audio is s16 mono at 8 or 16 kHz in frames of 10 or 20 ms.
#pragma once

#include <cstddef>
#include <cstdint>

namespace osvi::audio {

struct Format {
  int rate = 16000;   // Hz: 8000 or 16000 for call audio
  int frame_ms = 20;  // 10 or 20
  size_t frame_samples() const { return static_cast<size_t>(rate / 1000 * frame_ms); }
  bool operator==(const Format&) const = default;
};

inline constexpr bool valid_call_rate(int rate) {
  return rate == 8000 || rate == 16000;
}

}  // namespace osvi::audio
