// Opus voice codec for call audio: one RAII owner each for the libopus encoder and decoder, frame by frame.
//
// Real-time rules: encode()/decode() never allocate, lock, log or block on their success path; the codec
// state is allocated once in create() and the caller provides the packet and PCM buffers. Errors (a wrong
// buffer size, a corrupt packet) build an Error, which may allocate: they are not the steady state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "osvi/result.hpp"

namespace osvi::audio {

struct OpusEncoderConfig {
  int rate = 16000;           // 8000, 12000, 16000, 24000 or 48000 Hz
  int channels = 1;           // 1 or 2 (interleaved)
  int frame_ms = 20;          // 10 or 20
  int bitrate = 24000;        // bit/s; 24 kbps is wideband speech with headroom (SILK saturates near 20–30)
  int complexity = 5;         // 0..10; 10 costs about twice 5 for little gain on speech
  bool vbr = true;            // constrained VBR is the Opus default; CBR only where a transport needs it
  bool inband_fec = false;    // LBRR: the next packet carries a coarse copy of this one (costs bitrate)
  int expected_loss_pct = 0;  // 0..100; FEC only spends bits when this is > 0
  bool dtx = false;  // during silence send a packet only every 400 ms (1–2 byte packets in between)
};

// Largest useful packet: Opus's own limit for one frame of one stream.
inline constexpr size_t kOpusMaxPacket = 1275;

class OpusEncoder {
 public:
  // Always OPUS_APPLICATION_VOIP with OPUS_SIGNAL_VOICE: the content is a telephone conversation.
  static Result<OpusEncoder> create(const OpusEncoderConfig& config);

  // Encodes exactly one frame (frame_samples() * channels interleaved samples) into `packet` and returns its
  // size in bytes. With DTX a silent frame may return 1–2 bytes (or 0: nothing needs to be sent).
  Result<size_t> encode(std::span<const int16_t> frame, std::span<uint8_t> packet) noexcept;

  size_t frame_samples() const noexcept { return frame_samples_; }  // per channel
  const OpusEncoderConfig& config() const noexcept { return config_; }
  // Encoder delay in samples at config().rate: what a decoder's output lags the input by.
  int lookahead() const noexcept;

  OpusEncoder(OpusEncoder&&) noexcept;
  OpusEncoder& operator=(OpusEncoder&&) noexcept;
  ~OpusEncoder();

 private:
  // Owns the libopus state. Defined in opus.cpp so libopus's global ::OpusEncoder never meets this class's
  // name in user code (a `using namespace osvi::audio` would otherwise make every use ambiguous).
  struct Handle;
  OpusEncoder(std::unique_ptr<Handle> st, const OpusEncoderConfig& config, size_t frame_samples);

  std::unique_ptr<Handle> st_;
  OpusEncoderConfig config_;
  size_t frame_samples_;
};

class OpusDecoder {
 public:
  // frame_ms sizes the concealment frame when a packet is missing (the sender's frame duration).
  static Result<OpusDecoder> create(int rate, int channels = 1, int frame_ms = 20);

  // Decodes one packet into `pcm` (interleaved) and returns samples per channel. An empty packet means
  // "lost": packet-loss concealment then synthesises one frame_samples() frame from the decoder's history.
  // `pcm` must hold the packet's duration (frame_samples() * channels for a matching sender; up to 120 ms).
  Result<size_t> decode(std::span<const uint8_t> packet, std::span<int16_t> pcm) noexcept;
  // Recovers a lost frame from the in-band FEC of the packet that followed it (PLC if it carries none);
  // call it for the gap, then decode(next) as usual.
  Result<size_t> decode_fec(std::span<const uint8_t> next_packet, std::span<int16_t> pcm) noexcept;

  size_t frame_samples() const noexcept { return frame_samples_; }
  int rate() const noexcept { return rate_; }
  int channels() const noexcept { return channels_; }

  OpusDecoder(OpusDecoder&&) noexcept;
  OpusDecoder& operator=(OpusDecoder&&) noexcept;
  ~OpusDecoder();

 private:
  struct Handle;  // owns the libopus state, as in OpusEncoder
  OpusDecoder(std::unique_ptr<Handle> st, int rate, int channels, size_t frame_samples);
  Result<size_t> run(std::span<const uint8_t> packet, std::span<int16_t> pcm, size_t max_frame,
                     int fec) noexcept;

  std::unique_ptr<Handle> st_;
  int rate_;
  int channels_;
  size_t frame_samples_;
};

}  // namespace osvi::audio
