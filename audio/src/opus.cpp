// libopus encoder/decoder wrappers: VoIP settings applied once at creation, no allocation per frame.
#include "osvi/audio/opus.hpp"

#include <opus.h>

#include <algorithm>
#include <string>

namespace osvi::audio {
namespace {

bool opus_rate(int rate) {
  return rate == 8000 || rate == 12000 || rate == 16000 || rate == 24000 || rate == 48000;
}

Error opus_error(const char* what, int code) {
  return make_error(std::string(what) + ": " + opus_strerror(code),
                    code == OPUS_ALLOC_FAIL ? -ENOMEM : -EINVAL);
}

}  // namespace

// Allocated before the libopus state, so the state has its owner the moment it exists.
struct OpusEncoder::Handle {
  Handle() = default;
  ~Handle() {
    if (st) opus_encoder_destroy(st);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ::OpusEncoder* st = nullptr;
};

OpusEncoder::OpusEncoder(std::unique_ptr<Handle> st, const OpusEncoderConfig& config, size_t frame_samples)
    : st_(std::move(st)), config_(config), frame_samples_(frame_samples) {}
OpusEncoder::OpusEncoder(OpusEncoder&&) noexcept = default;
OpusEncoder& OpusEncoder::operator=(OpusEncoder&&) noexcept = default;
OpusEncoder::~OpusEncoder() = default;

Result<OpusEncoder> OpusEncoder::create(const OpusEncoderConfig& c) {
  if (!opus_rate(c.rate)) return make_error("opus encoder: rate must be 8000/12000/16000/24000/48000");
  if (c.channels != 1 && c.channels != 2) return make_error("opus encoder: channels must be 1 or 2");
  if (c.frame_ms != 10 && c.frame_ms != 20) return make_error("opus encoder: frame_ms must be 10 or 20");
  if (c.bitrate < 6000 || c.bitrate > 256000) return make_error("opus encoder: bitrate must be 6000..256000");
  if (c.complexity < 0 || c.complexity > 10) return make_error("opus encoder: complexity must be 0..10");
  if (c.expected_loss_pct < 0 || c.expected_loss_pct > 100) {
    return make_error("opus encoder: expected_loss_pct must be 0..100");
  }
  int err = OPUS_OK;
  auto st = std::make_unique<Handle>();
  st->st = opus_encoder_create(c.rate, c.channels, OPUS_APPLICATION_VOIP, &err);
  if (!st->st || err != OPUS_OK) return opus_error("opus_encoder_create", err);
  const int requests[][2] = {
      {OPUS_SET_SIGNAL_REQUEST, OPUS_SIGNAL_VOICE},
      {OPUS_SET_BITRATE_REQUEST, c.bitrate},
      {OPUS_SET_COMPLEXITY_REQUEST, c.complexity},
      {OPUS_SET_VBR_REQUEST, c.vbr ? 1 : 0},
      {OPUS_SET_INBAND_FEC_REQUEST, c.inband_fec ? 1 : 0},
      {OPUS_SET_PACKET_LOSS_PERC_REQUEST, c.expected_loss_pct},
      {OPUS_SET_DTX_REQUEST, c.dtx ? 1 : 0},
  };
  for (const auto& r : requests) {
    // The macros only add type checks; the variadic ctl takes (request, opus_int32).
    err = opus_encoder_ctl(st->st, r[0], static_cast<opus_int32>(r[1]));
    if (err != OPUS_OK) return opus_error("opus_encoder_ctl", err);
  }
  const auto frame = static_cast<size_t>(c.rate / 1000 * c.frame_ms);
  return OpusEncoder(std::move(st), c, frame);
}

Result<size_t> OpusEncoder::encode(std::span<const int16_t> frame, std::span<uint8_t> packet) noexcept {
  if (frame.size() != frame_samples_ * static_cast<size_t>(config_.channels) || packet.empty()) {
    return make_error("opus encode: buffer size");
  }
  const auto cap = static_cast<opus_int32>(std::min(packet.size(), size_t{kOpusMaxPacket * 3}));
  const opus_int32 n =
      opus_encode(st_->st, frame.data(), static_cast<int>(frame_samples_), packet.data(), cap);
  if (n < 0) return opus_error("opus_encode", n);
  return static_cast<size_t>(n);
}

int OpusEncoder::lookahead() const noexcept {
  opus_int32 v = 0;
  // The OPUS_GET_LOOKAHEAD macro's pointer check is an old-style cast; the request id is the same call.
  opus_encoder_ctl(st_->st, OPUS_GET_LOOKAHEAD_REQUEST, &v);
  return v;
}

// Allocated before the libopus state, so the state has its owner the moment it exists.
struct OpusDecoder::Handle {
  Handle() = default;
  ~Handle() {
    if (st) opus_decoder_destroy(st);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ::OpusDecoder* st = nullptr;
};

OpusDecoder::OpusDecoder(std::unique_ptr<Handle> st, int rate, int channels, size_t frame_samples)
    : st_(std::move(st)), rate_(rate), channels_(channels), frame_samples_(frame_samples) {}
OpusDecoder::OpusDecoder(OpusDecoder&&) noexcept = default;
OpusDecoder& OpusDecoder::operator=(OpusDecoder&&) noexcept = default;
OpusDecoder::~OpusDecoder() = default;

Result<OpusDecoder> OpusDecoder::create(int rate, int channels, int frame_ms) {
  if (!opus_rate(rate)) return make_error("opus decoder: rate must be 8000/12000/16000/24000/48000");
  if (channels != 1 && channels != 2) return make_error("opus decoder: channels must be 1 or 2");
  if (frame_ms != 10 && frame_ms != 20 && frame_ms != 40 && frame_ms != 60) {
    return make_error("opus decoder: frame_ms must be 10, 20, 40 or 60");
  }
  int err = OPUS_OK;
  auto st = std::make_unique<Handle>();
  st->st = opus_decoder_create(rate, channels, &err);
  if (!st->st || err != OPUS_OK) return opus_error("opus_decoder_create", err);
  return OpusDecoder(std::move(st), rate, channels, static_cast<size_t>(rate / 1000 * frame_ms));
}

Result<size_t> OpusDecoder::run(std::span<const uint8_t> packet, std::span<int16_t> pcm, size_t max_frame,
                                int fec) noexcept {
  const auto ch = static_cast<size_t>(channels_);
  if (pcm.size() < max_frame * ch) return make_error("opus decode: buffer size");
  const int n =
      opus_decode(st_->st, packet.empty() ? nullptr : packet.data(), static_cast<opus_int32>(packet.size()),
                  pcm.data(), static_cast<int>(max_frame), fec);
  if (n < 0) return opus_error("opus_decode", n);
  return static_cast<size_t>(n);
}

Result<size_t> OpusDecoder::decode(std::span<const uint8_t> packet, std::span<int16_t> pcm) noexcept {
  // Concealment must produce exactly one sender frame; a real packet may be any duration up to what fits.
  const size_t max_frame = packet.empty() ? frame_samples_ : pcm.size() / static_cast<size_t>(channels_);
  return run(packet, pcm, max_frame, 0);
}

Result<size_t> OpusDecoder::decode_fec(std::span<const uint8_t> next_packet,
                                       std::span<int16_t> pcm) noexcept {
  // FEC decoding must ask for exactly the lost duration, which is one sender frame.
  return run(next_packet, pcm, frame_samples_, next_packet.empty() ? 0 : 1);
}

}  // namespace osvi::audio
