// Ogg Opus in memory: stereo call recordings (left caller, right agent as played) and STT utterance blobs.
//
// Real-time rules for CallRecorder::push(): it never allocates, locks, logs or blocks on its success path —
// libopus encodes 20 ms packets (two pushes each with 10 ms capture frames) at the capture rate (8 or 16 kHz,
// nothing is resampled) and our Ogg muxer (audio/src/ogg_writer.hpp) frames them into one page buffer sized
// in create(). Finished pages (about one second of audio each, so a crash loses little) go to the ByteSink on
// the calling thread; the sink decides whether that is real-time safe (an SpscRing<uint8_t> drained by the
// loop is; a file write is not).
// Allocation measured in codec_test: none from the first push() to finish()
// (Allocations.RecorderAllocatesNothingFromTheFirstPushToFinish). create() allocates ~60 KB, most of it
// libopus's stereo encoder state (bench/recorder_bench), and belongs to the control loop.
// encode_utterance_ogg_opus() and make_wav() run on the control loop and allocate freely.
//
// Intended use (files are the caller's business: audio/ does no I/O):
//
//   struct FdSink final : osvi::audio::ByteSink {        // in hal/ or daemon/
//     int fd;
//     bool write(std::span<const uint8_t> b) noexcept override { return write_all(fd, b); }
//   };
//   FdSink sink{open("/var/lib/osvi/rec/<call>.opus.part", O_WRONLY | O_CREAT | O_EXCL, 0640)};
//   auto rec = CallRecorder::create(sink, {.rate = 16000, .frame_ms = 20, .call_id = id, .agent = name});
//   per capture frame:  rec->push(caller_after_aec, samples_played_during_this_frame);  // {} if none
//   at hang-up:         auto summary = rec->finish();  fsync, rename .part → .opus, store summary->seconds()
//
// The daemon's sink is store/recordings.hpp (RecordingFile; the fsync and rename run on its worker thread).
// A .part a crash left behind is closed with salvage_ogg_opus() + mark_ogg_end_of_stream() below.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "osvi/result.hpp"

namespace osvi::audio {

// Where Ogg pages go. write() gets whole pages in stream order; returning false marks the recording failed
// (push()/finish() then report it, and nothing more is written).
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual bool write(std::span<const uint8_t> bytes) noexcept = 0;
};

// Collects the stream in memory (tests, STT blobs). Reserve enough to keep write() from reallocating.
class MemorySink final : public ByteSink {
 public:
  explicit MemorySink(size_t reserve_bytes = 0) { bytes_.reserve(reserve_bytes); }
  bool write(std::span<const uint8_t> bytes) noexcept override;
  const std::vector<uint8_t>& bytes() const { return bytes_; }
  std::vector<uint8_t> take() { return std::move(bytes_); }

 private:
  std::vector<uint8_t> bytes_;
};

struct RecordingConfig {
  int rate = 16000;     // the call's capture rate: 8000 or 16000 (encoded natively; OpusHead records it)
  int frame_ms = 20;    // the capture frame: 10 or 20; every push() is exactly one frame per channel
  int bitrate = 32000;  // bit/s for both channels together; two voices, mostly one at a time
  int complexity = 1;   // 0..10; audio.recording.complexity (docs/configuration.md: cost and quality)
  // Opus comments: TITLE, CALL_ID, AGENT, plus ENCODER=osvid <version>; the vendor string names libopus.
  std::string title{};
  std::string call_id{};
  std::string agent{};
};

struct RecordingSummary {
  uint64_t frames = 0;   // push() calls
  uint64_t samples = 0;  // per channel, at the input rate
  int rate = 0;
  uint64_t bytes = 0;  // written to the sink, headers included
  double seconds() const { return rate ? static_cast<double>(samples) / rate : 0.0; }
};

// One call's stereo recording on one sample clock: the capture clock. Each push() advances the recording by
// exactly one capture frame, so silences, gaps and double talk line up as they happened.
class CallRecorder {
 public:
  // `sink` must outlive the recorder. Nothing is written until the first push() (or finish()).
  static Result<CallRecorder> create(ByteSink& sink, const RecordingConfig& config);
  CallRecorder(CallRecorder&&) noexcept;
  CallRecorder& operator=(CallRecorder&&) noexcept;
  // Without finish() the stream stays unterminated (no end-of-stream page): treat it as a crashed call.
  ~CallRecorder();

  // caller: the captured frame after echo cancellation, exactly frame_samples() samples.
  // played: the agent samples that left the speaker during this capture frame, 0..frame_samples() of them;
  // a short frame (playback underrun, agent silent) is completed with silence at its end.
  Status push(std::span<const int16_t> caller, std::span<const int16_t> played) noexcept;

  // Drains the encoder (end-of-stream page) and returns what was recorded; an empty call still yields a
  // valid Ogg Opus stream of zero duration. Later push()/finish() calls fail.
  Result<RecordingSummary> finish();

  size_t frame_samples() const noexcept;
  uint64_t samples() const noexcept;  // per channel so far

 private:
  struct Impl;
  explicit CallRecorder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// What is usable of an Ogg Opus stream a crash cut short (a call recording's .part file): the longest prefix
// of whole, CRC-checked pages of one logical stream that starts with both header packets and ends after a
// page that completes its last packet, with at least one audio page. Pure: the caller reads the bytes (a
// mapping of the file) and does the truncation; nothing here allocates per page.
struct OggOpusSalvage {
  size_t keep_bytes = 0;        // the usable prefix; anything after it is a torn or foreign tail
  size_t last_page_offset = 0;  // where the prefix's last page starts
  size_t last_page_bytes = 0;
  bool ended = false;   // that page already carries end-of-stream: the file was complete
  int channels = 0;     // from OpusHead
  int input_rate = 0;   // OpusHead's original rate (the call's capture rate)
  int64_t granule = 0;  // of the last page, 48 kHz units
  int pre_skip = 0;     // 48 kHz samples
  int64_t duration_ms() const { return granule > pre_skip ? (granule - pre_skip) / 48 : 0; }
};
// An error (-EBADMSG) when no usable prefix exists: no complete OpusHead/OpusTags pages, or no complete audio
// page after them. Such a file holds nothing a listener could play.
Result<OggOpusSalvage> salvage_ogg_opus(std::span<const uint8_t> bytes);
// Turns a whole page (as salvage_ogg_opus() delimits it) into the stream's last: sets the end-of-stream
// flag and recomputes the CRC. -EBADMSG when `page` is not one whole Ogg page.
Status mark_ogg_end_of_stream(std::span<uint8_t> page);

// A whole endpointed utterance as a mono Ogg Opus blob (what STT providers accept). Control loop only.
struct UtteranceOptions {
  int bitrate = 24000;
  int complexity = 5;
};
Result<std::vector<uint8_t>> encode_utterance_ogg_opus(std::span<const int16_t> pcm, int rate,
                                                       const UtteranceOptions& options = {});

// An utterance encoded while the caller speaks (what the Call uses): push() runs the codec on each whole
// 20 ms frame as it completes; finish() keeps the packets that cover the first `samples` samples (the
// endpointer trims the trailing silence only at its decision) and frames them as Ogg pages. The decision
// then costs at most one frame of encoding (the tail) plus copying the packets into pages, whatever the
// utterance's length. Control loop only.
class UtteranceEncoder {
 public:
  // rate: 8000, 12000, 16000, 24000 or 48000 (encoded natively).
  static Result<UtteranceEncoder> create(int rate, const UtteranceOptions& options = {});
  UtteranceEncoder(UtteranceEncoder&&) noexcept;
  UtteranceEncoder& operator=(UtteranceEncoder&&) noexcept;
  ~UtteranceEncoder();

  // Starts a new utterance (a fresh codec state), dropping any unfinished one.
  Status begin();
  // Appends the caller's samples, any count; fails outside begin()..finish() or past 10 minutes.
  Status push(std::span<const int16_t> pcm);
  // Ends the utterance after its first `samples` samples (<= samples()): the blob decodes to exactly that
  // many. The encoder is idle again until begin().
  Result<std::vector<uint8_t>> finish(uint64_t samples);
  // Drops the unfinished utterance.
  void cancel() noexcept;

  bool active() const noexcept;
  uint64_t samples() const noexcept;         // pushed since begin()
  uint64_t frames_encoded() const noexcept;  // codec runs since begin(), finish()'s included
  size_t memory_bytes() const noexcept;      // held for the utterance so far (packets and buffers)

 private:
  struct Impl;
  explicit UtteranceEncoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A canonical 44-byte-header PCM WAV (s16le) of interleaved samples. Control loop only.
std::vector<uint8_t> make_wav(std::span<const int16_t> interleaved, int rate, int channels = 1);

}  // namespace osvi::audio
