// Ogg Opus stream writer over libopus: header packets, one encoder at the input rate, page flush policy.
#include "ogg_opus.hpp"

#include <opus.h>

#include <algorithm>
#include <cstring>

namespace osvi::audio {
namespace {

constexpr size_t kMaxPacket = 1500;  // a 20 ms frame at 256 kbit/s is 640 bytes; Opus fits its output to this

Error opus_error(const char* what, int code) {
  return make_error(std::string(what) + ": " + opus_strerror(code),
                    code == OPUS_ALLOC_FAIL ? -ENOMEM : -EINVAL);
}

void put_le(std::vector<uint8_t>& out, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_str(std::vector<uint8_t>& out, const std::string& s) {
  put_le(out, static_cast<uint32_t>(s.size()), 4);
  out.insert(out.end(), s.begin(), s.end());
}

// RFC 7845 §5.1, channel mapping family 0: plain mono/stereo, so every player opens the file.
std::vector<uint8_t> opus_head(int channels, int pre_skip, int rate) {
  std::vector<uint8_t> h{'O', 'p', 'u', 's', 'H', 'e', 'a', 'd', 1, static_cast<uint8_t>(channels)};
  put_le(h, static_cast<uint32_t>(pre_skip), 2);
  put_le(h, static_cast<uint32_t>(rate), 4);  // the real capture rate, for players that want it back
  put_le(h, 0, 2);                            // output gain
  h.push_back(0);                             // mapping family
  return h;
}

// RFC 7845 §5.2: vendor string (the libopus that encoded), then KEY=value comments.
std::vector<uint8_t> opus_tags(const std::vector<std::pair<std::string, std::string>>& tags) {
  std::vector<uint8_t> t{'O', 'p', 'u', 's', 'T', 'a', 'g', 's'};
  put_str(t, opus_get_version_string());
  const auto count =
      std::count_if(tags.begin(), tags.end(), [](const auto& kv) { return !kv.second.empty(); });
  put_le(t, static_cast<uint32_t>(count), 4);
  for (const auto& [key, value] : tags) {
    if (!value.empty()) put_str(t, key + "=" + value);
  }
  return t;
}

// A stable serial from the comments (the call id makes it unique per call); one stream per file, so it only
// has to be reproducible, which keeps test output byte-identical run to run.
uint32_t serial_of(const std::vector<std::pair<std::string, std::string>>& tags) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (const auto& [key, value] : tags) {
    for (char c : key + "=" + value) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
  }
  return h;
}

}  // namespace

// Allocated before the libopus state, so the state has its owner the moment it exists.
struct OggOpusWriter::Encoder {
  Encoder() = default;
  ~Encoder() {
    if (st) opus_encoder_destroy(st);
  }
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;
  ::OpusEncoder* st = nullptr;
};

OggOpusWriter::OggOpusWriter(ByteSink& sink, const OggOpusSpec& s, std::unique_ptr<Encoder> enc,
                             int lookahead)
    : enc_(std::move(enc)),
      sink_(&sink),
      pages_(serial_of(s.tags), s.max_page_body),
      head_(opus_head(s.channels, lookahead * (48000 / s.rate), s.rate)),
      tags_(opus_tags(s.tags)),
      packet_(kMaxPacket),
      silence_(static_cast<size_t>(s.rate / 1000 * s.frame_ms * s.channels), 0),
      frame_(static_cast<size_t>(s.rate / 1000 * s.frame_ms)),
      channels_(s.channels),
      scale_(48000 / s.rate),
      lookahead_(lookahead),
      page_granules_(int64_t{48} * s.page_ms) {}

OggOpusWriter::OggOpusWriter(OggOpusWriter&&) noexcept = default;
OggOpusWriter& OggOpusWriter::operator=(OggOpusWriter&&) noexcept = default;
OggOpusWriter::~OggOpusWriter() = default;

namespace {
Status check_spec(const OggOpusSpec& s) {
  if (s.rate != 8000 && s.rate != 12000 && s.rate != 16000 && s.rate != 24000 && s.rate != 48000) {
    return make_error("ogg opus: unsupported rate");
  }
  if (s.channels != 1 && s.channels != 2) return make_error("ogg opus: channels must be 1 or 2");
  if (s.frame_ms != 10 && s.frame_ms != 20) return make_error("ogg opus: frame_ms must be 10 or 20");
  if (s.page_ms < 20) return make_error("ogg opus: page_ms must be at least one frame");
  return {};
}
}  // namespace

Result<OggOpusWriter> OggOpusWriter::create_muxer(ByteSink& sink, const OggOpusSpec& s, int lookahead) {
  if (Status st = check_spec(s); !st) return st.error();
  if (lookahead < 0) return make_error("ogg opus: lookahead must be >= 0");
  return OggOpusWriter(sink, s, nullptr, lookahead);
}

Result<OggOpusWriter> OggOpusWriter::create(ByteSink& sink, const OggOpusSpec& s) {
  if (Status st = check_spec(s); !st) return st.error();
  int err = OPUS_OK;
  auto enc = std::make_unique<Encoder>();
  enc->st = opus_encoder_create(s.rate, s.channels, OPUS_APPLICATION_VOIP, &err);
  if (!enc->st || err != OPUS_OK) return opus_error("opus_encoder_create", err);
  const int requests[][2] = {
      {OPUS_SET_SIGNAL_REQUEST, OPUS_SIGNAL_VOICE},
      {OPUS_SET_BITRATE_REQUEST, s.bitrate},
      {OPUS_SET_COMPLEXITY_REQUEST, s.complexity},
  };
  for (const auto& r : requests) {
    // The macros only add type checks; the variadic ctl takes (request, opus_int32).
    if (err = opus_encoder_ctl(enc->st, r[0], static_cast<opus_int32>(r[1])); err != OPUS_OK) {
      return opus_error("opus_encoder_ctl", err);
    }
  }
  opus_int32 lookahead = 0;
  if (err = opus_encoder_ctl(enc->st, OPUS_GET_LOOKAHEAD_REQUEST, &lookahead); err != OPUS_OK) {
    return opus_error("opus_encoder_ctl", err);
  }
  return OggOpusWriter(sink, s, std::move(enc), lookahead);
}

Status OggOpusWriter::write_headers() noexcept {
  headers_written_ = true;
  // RFC 7845 §3: OpusHead alone on the first page, OpusTags ending its page, both at granule 0.
  if (!pages_.add(head_, 0, *sink_) || !pages_.flush(*sink_) || !pages_.add(tags_, 0, *sink_) ||
      !pages_.flush(*sink_)) {
    return sink_failed();
  }
  return {};
}

Status OggOpusWriter::sink_failed() noexcept {
  failed_ = true;  // sticky: a stream with a hole is not worth continuing
  return make_error("ogg opus: sink write failed", -EIO);
}

Status OggOpusWriter::encode(std::span<const int16_t> pcm, int64_t granule) noexcept {
  if (!enc_) return make_error("ogg opus: a muxer has no codec", -EINVAL);
  const opus_int32 n = opus_encode(enc_->st, pcm.data(), static_cast<int>(frame_), packet_.data(),
                                   static_cast<opus_int32>(packet_.size()));
  if (n < 0) return opus_error("opus_encode", n);
  return add_packet({packet_.data(), static_cast<size_t>(n)}, granule);
}

Result<size_t> OggOpusWriter::encode_packet(std::span<const int16_t> interleaved,
                                            std::span<uint8_t> out) noexcept {
  if (finished_) return make_error("ogg opus: already finished", -EBADF);
  if (interleaved.size() != frame_ * static_cast<size_t>(channels_))
    return make_error("ogg opus: frame size");
  if (!enc_) return make_error("ogg opus: a muxer has no codec", -EINVAL);
  const opus_int32 n = opus_encode(enc_->st, interleaved.data(), static_cast<int>(frame_), out.data(),
                                   static_cast<opus_int32>(std::min<size_t>(out.size(), kMaxPacket)));
  if (n < 0) return opus_error("opus_encode", n);
  return static_cast<size_t>(n);
}

Status OggOpusWriter::write_packet(std::span<const uint8_t> packet) noexcept {
  if (finished_) return make_error("ogg opus: already finished", -EBADF);
  if (failed_) return make_error("ogg opus: sink write failed", -EIO);
  if (!headers_written_) {
    if (auto st = write_headers(); !st) return st;
  }
  return add_packet(packet, static_cast<int64_t>(encoded_ + frame_) * scale_);
}

Status OggOpusWriter::add_packet(std::span<const uint8_t> packet, int64_t granule) noexcept {
  const size_t bytes = packet.size();
  // Pages are cut before a packet, never after it, so the packet finish() may end-trim is still pending.
  if (!pages_.empty() && (!pages_.fits(bytes) || granule - flushed_at_ > page_granules_)) {
    if (!pages_.flush(*sink_)) return sink_failed();
    flushed_at_ = static_cast<int64_t>(encoded_) * scale_;
  }
  if (!pages_.add(packet, granule, *sink_)) {
    return sink_failed();
  }
  encoded_ += frame_;
  return {};
}

Status OggOpusWriter::write_frame(std::span<const int16_t> interleaved) noexcept {
  if (finished_) return make_error("ogg opus: already finished", -EBADF);
  if (failed_) return make_error("ogg opus: sink write failed", -EIO);
  if (interleaved.size() != frame_ * static_cast<size_t>(channels_))
    return make_error("ogg opus: frame size");
  if (!headers_written_) {
    if (auto st = write_headers(); !st) return st;
  }
  return encode(interleaved, static_cast<int64_t>(encoded_ + frame_) * scale_);
}

Status OggOpusWriter::finish(uint64_t samples) noexcept {
  if (finished_) return make_error("ogg opus: already finished", -EBADF);
  finished_ = true;
  if (failed_) return make_error("ogg opus: sink write failed", -EIO);
  if (!headers_written_) {
    if (auto st = write_headers(); !st) return st;
  }
  // The decoder's output lags by the lookahead: encode silence until the last real sample is out.
  const auto end = static_cast<uint64_t>(lookahead_) + samples;
  while (encoded_ < end) {
    if (auto st = encode(silence_, static_cast<int64_t>(encoded_ + frame_) * scale_); !st) return st;
  }
  // End trimming (RFC 7845 §4.4): the final granule stops playback at the last real sample.
  pages_.set_granule(static_cast<int64_t>(end) * scale_);
  if (!pages_.flush(*sink_, true)) return sink_failed();
  return {};
}

}  // namespace osvi::audio
