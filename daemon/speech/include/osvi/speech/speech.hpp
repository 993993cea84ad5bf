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
//  - start() is render() as a stream: the child's samples come back while it still speaks (espeak hands
//    them over in 60 ms buffers), resampled piece by piece, so a server can send the first audio before the
//    sentence is done. The streamed samples are the ones render() returns (speech_test checks it).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "osvi/result.hpp"

namespace osvi::daemon {

// One render in progress (Speech::start): owns the forked child and the read end of its pipe. Destroying an
// unfinished stream kills and reaps the child. Use from one thread at a time.
class SpeechStream {
 public:
  ~SpeechStream();
  SpeechStream(const SpeechStream&) = delete;
  SpeechStream& operator=(const SpeechStream&) = delete;

  // Blocks until the child hands over more samples and appends them (resampled) to `out`. true: more may
  // follow; false: the utterance is complete (`out` may have got its last samples). An error when the child
  // failed or died; the stream is finished then too.
  Result<bool> next(std::vector<int16_t>& out);

 private:
  friend class Speech;
  struct Impl;
  explicit SpeechStream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

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

  // Starts rendering `text` and returns at once (after the fork); the samples come through the stream. Same
  // checks and same samples as render(); blank text gives a stream that ends at once.
  Result<std::unique_ptr<SpeechStream>> start(std::string_view text, int sample_rate);

  // espeak-ng's own output rate (22050 Hz for the standard voices).
  int native_rate() const { return native_rate_; }
  const SpeechOptions& options() const { return options_; }

 private:
  Speech(SpeechOptions options, int native_rate) : options_(std::move(options)), native_rate_(native_rate) {}
  Result<std::pair<int, int>> spawn(const std::string& text);  // {pid, read fd} of a rendering child
  SpeechOptions options_;
  int native_rate_;
};

}  // namespace osvi::daemon
