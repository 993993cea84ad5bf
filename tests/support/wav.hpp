// WAV files for audio tests: read 16-bit PCM (mono, or the first channel), write mono/stereo s16.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace osvi::test {

struct Wav {
  int rate = 0;
  int channels = 0;
  std::vector<int16_t> samples;  // the first channel only
};

// Throws std::runtime_error naming the file when it is not 16-bit PCM WAV.
Wav read_wav(const std::string& path);
void write_wav(const std::string& path, int rate, int channels, const std::vector<int16_t>& interleaved);

// The LibriVox clips of Debian's pocketsphinx-testdata (16 kHz mono read speech), concatenated in order.
std::vector<int16_t> librivox_speech();
// Speech synthesised by espeak-ng at 16 kHz (any length; espeak-ng is a test dependency).
std::vector<int16_t> espeak_speech(const std::string& text, const std::string& voice = "en");

}  // namespace osvi::test
