// Ogg Opus (RFC 7845) from libopus at the input rate: OpusHead/OpusTags, 48 kHz granules, end trimming.
//
// Private to audio/src. Everything is allocated in create(); write_frame() and finish() do not allocate
// on success, so the call recorder can run them on the audio thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ogg_writer.hpp"
#include "osvi/audio/recording.hpp"
#include "osvi/result.hpp"

namespace osvi::audio {

struct OggOpusSpec {
  int rate = 16000;  // 8000, 12000, 16000, 24000 or 48000: Opus encodes these natively, nothing resamples
  int channels = 1;
  int frame_ms = 20;  // 10 or 20
  int bitrate = 24000;
  int complexity = 5;
  std::vector<std::pair<std::string, std::string>> tags;  // empty values are left out
  // A page leaves for the sink once it holds this much audio, so a crash loses at most about that much.
  int page_ms = 1000;
  size_t max_page_body = 8192;  // bounds the one page buffer whatever the bitrate
};

class OggOpusWriter {
 public:
  static Result<OggOpusWriter> create(ByteSink& sink, const OggOpusSpec& spec);
  // A writer without a codec, for packets encoded elsewhere (ChainRunner's utterances) by an encoder of this
  // spec with this lookahead: write_packet() and finish() only, and finish() fails when the packets do not
  // cover the lookahead (there is no codec to flush it). Saves the 44 kB libopus state create() makes.
  static Result<OggOpusWriter> create_muxer(ByteSink& sink, const OggOpusSpec& spec, int lookahead);
  OggOpusWriter(OggOpusWriter&&) noexcept;
  OggOpusWriter& operator=(OggOpusWriter&&) noexcept;
  ~OggOpusWriter();

  // Encodes one frame: frame_samples() * channels interleaved samples. Writes the header pages first.
  Status write_frame(std::span<const int16_t> interleaved) noexcept;

  // Split form of write_frame() for writers that decide later which packets the stream keeps (the
  // utterance encoder): encode_packet() runs the codec on one frame without muxing it; write_packet() then
  // muxes such packets, in order, each as the next frame of the stream.
  Result<size_t> encode_packet(std::span<const int16_t> interleaved, std::span<uint8_t> out) noexcept;
  Status write_packet(std::span<const uint8_t> packet) noexcept;

  // Ends the stream after `samples` real samples per channel (write_frame() may have been given padding):
  // encodes silence until the codec delay is flushed, sets the end-trimmed final granule, writes EOS.
  Status finish(uint64_t samples) noexcept;

  size_t frame_samples() const noexcept { return frame_; }
  int64_t lookahead() const noexcept { return lookahead_; }  // encoder delay, input samples
  uint64_t bytes_written() const noexcept { return pages_.bytes_written(); }

 private:
  struct Encoder;
  OggOpusWriter(ByteSink& sink, const OggOpusSpec& spec, std::unique_ptr<Encoder> enc, int lookahead);
  Status write_headers() noexcept;
  Status encode(std::span<const int16_t> interleaved, int64_t granule) noexcept;
  Status add_packet(std::span<const uint8_t> packet, int64_t granule) noexcept;
  Status sink_failed() noexcept;

  std::unique_ptr<Encoder> enc_;
  ByteSink* sink_;
  ogg::PageWriter pages_;
  std::vector<uint8_t> head_, tags_;  // the two header packets, built in create()
  std::vector<uint8_t> packet_;
  std::vector<int16_t> silence_;
  size_t frame_;
  int channels_;
  int64_t scale_;      // 48 kHz granule units per input sample
  int64_t lookahead_;  // encoder delay, input samples
  int64_t page_granules_;
  uint64_t encoded_ = 0;    // samples per channel given to the encoder
  int64_t flushed_at_ = 0;  // granule of the last page flushed for time
  bool headers_written_ = false;
  bool failed_ = false;
  bool finished_ = false;
};

}  // namespace osvi::audio
