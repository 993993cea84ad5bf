// PeriodProcessor: what a hal stream's real-time thread runs on each captured period when one is set (the
// line's DSP chain: audio::ChainRunner), instead of handing the raw period to the loop.
//
// It lives in audio/ (the bottom library) so hal's streams can call it and audio's runner can implement it
// without hal knowing about LineChain or audio knowing about devices.
#pragma once

#include <cstdint>
#include <span>

namespace osvi::audio {

class PeriodProcessor {
 public:
  // On the stream's real-time thread, once per captured period, in capture order: `capture` is the period,
  // `reference` the playback samples aligned to it (both period_frames() long). Must follow the real-time
  // rules of hal/audio_stream.hpp: no allocation, no lock shared with the loop, no logging, no blocking.
  virtual void process(std::span<const int16_t> capture, std::span<const int16_t> reference) noexcept = 0;

 protected:
  ~PeriodProcessor() = default;
};

}  // namespace osvi::audio
