// Speech: text-to-speech on libespeak-ng, rendered synchronously into 16-bit mono PCM at a chosen rate.
//
// libespeak-ng keeps all of its state in process globals (one voice, one rate, one synth callback) and its
// waveform generator carries state from one utterance to the next (pitch flutter index, glottal phase), so
// two renders of the same text in one process differ. Hence:
//  - the first successful create() initialises espeak for the rest of the process (it loads the phoneme
//    data once; espeak-ng 1.51 hangs after espeak_Terminate + espeak_Initialize, so it is never terminated);
//    a later create() with a different data_path is refused (-EBUSY); any number of Speech objects with
//    different voices and rates may live at once;
//  - render() forks: the child synthesises from the parent's pristine, never-used espeak state and pipes the
//    samples back, so the same text, voice, rate and output rate always give bit-identical samples, in
//    any process and after any history. The cost is one fork per utterance (about a millisecond for a
//    small process; it copies page tables, so keep it off real-time threads). render() is thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"

namespace osvi::daemon {

struct SpeechOptions {
  std::string voice = "en-us";  // an espeak-ng voice name ("en-us", "en", "fr", "de", ...)
  int rate_wpm = 165;           // 80..450 words per minute
  std::string data_path;        // folder holding espeak-ng-data; empty = the system location
};

class Speech {
 public:
  // Longest text render() accepts; a phone agent's turn is a few sentences, this only stops accidents.
  static constexpr size_t kMaxTextBytes = 64 * 1024;

  // Fails (never exits) when espeak-ng's data is missing, the voice is unknown or the rate out of range, or
  // when osvi-speech.so (which carries libespeak-ng, dlopened by the first call) cannot be loaded (-ELIBACC).
  static Result<std::unique_ptr<Speech>> create(SpeechOptions options = {});
  ~Speech();
  Speech(const Speech&) = delete;
  Speech& operator=(const Speech&) = delete;

  // Synthesises UTF-8 `text` and returns mono s16 samples at sample_rate (8000..48000 Hz). Empty or
  // all-whitespace text returns an empty vector (not an error): there is nothing to say.
  Result<std::vector<int16_t>> render(std::string_view text, int sample_rate);

  // espeak-ng's own output rate (22050 Hz for the standard voices).
  int native_rate() const { return native_rate_; }
  const SpeechOptions& options() const { return options_; }

 private:
  Speech(SpeechOptions options, int native_rate) : options_(std::move(options)), native_rate_(native_rate) {}
  SpeechOptions options_;
  int native_rate_;
};

}  // namespace osvi::daemon
