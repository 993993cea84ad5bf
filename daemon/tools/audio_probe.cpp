// WAV and Ogg Opus validation for osvi-model-server: a strict Ogg page walker feeding opus_decode.
#include "audio_probe.hpp"

#include <opus/opus.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace osvi::tools {
namespace {

uint32_t le32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}
uint16_t le16(const unsigned char* p) {
  return static_cast<uint16_t>(p[0] | p[1] << 8);
}

struct Energy {
  double sum = 0;
  uint64_t n = 0;
  void add(int16_t v) {
    sum += static_cast<double>(v) * v;
    ++n;
  }
  double dbfs() const {
    if (n == 0 || sum <= 0) return -120;
    return std::max(-120.0, 20 * std::log10(std::sqrt(sum / static_cast<double>(n)) / 32768.0));
  }
};

Result<AudioInfo> probe_wav(std::string_view bytes) {
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 12 || std::memcmp(b + 8, "WAVE", 4) != 0) return make_error("not a WAVE file");
  size_t pos = 12;
  int channels = 0, rate = 0, bits = 0, format = 0;
  while (pos + 8 <= bytes.size()) {
    const uint32_t size = le32(b + pos + 4);
    const unsigned char* body = b + pos + 8;
    const size_t avail = bytes.size() - pos - 8;
    if (std::memcmp(b + pos, "fmt ", 4) == 0) {
      if (size < 16 || avail < 16) return make_error("WAV fmt chunk too short");
      format = le16(body);
      channels = le16(body + 2);
      rate = static_cast<int>(le32(body + 4));
      bits = le16(body + 14);
    } else if (std::memcmp(b + pos, "data", 4) == 0) {
      if (format != 1 && format != 0xFFFE) return make_error("WAV is not PCM");
      if (bits != 16 || channels < 1 || channels > 8 || rate < 8000 || rate > 192000) {
        return make_error("WAV must be 16-bit PCM, 1..8 channels, 8..192 kHz");
      }
      // Streamed WAVs carry 0xFFFFFFFF or 0 as the size: the file's end is the data's end.
      const size_t data = (size == 0 || size > avail) ? avail : size;
      const size_t frames = data / (2u * static_cast<size_t>(channels));
      Energy e;
      for (size_t i = 0; i < frames; ++i) {
        e.add(static_cast<int16_t>(le16(body + i * 2u * static_cast<size_t>(channels))));
      }
      return AudioInfo{"wav", rate, channels, static_cast<double>(frames) / rate, e.dbfs()};
    }
    pos += 8 + static_cast<size_t>(size) + (size & 1u);
  }
  return make_error("WAV has no data chunk");
}

uint32_t ogg_crc(uint32_t crc, const unsigned char* p, size_t n) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t r = i << 24;
      for (int k = 0; k < 8; ++k) r = (r & 0x80000000u) ? (r << 1) ^ 0x04c11db7u : r << 1;
      t[i] = r;
    }
    return t;
  }();
  for (size_t i = 0; i < n; ++i) crc = (crc << 8) ^ table[((crc >> 24) ^ p[i]) & 0xffu];
  return crc;
}

struct DecoderDeleter {
  void operator()(OpusDecoder* d) const noexcept { opus_decoder_destroy(d); }
};

Result<AudioInfo> probe_ogg(std::string_view bytes) {
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t pos = 0;
  std::vector<std::vector<unsigned char>> packets;
  std::vector<unsigned char> partial;
  int64_t last_granule = -1;
  uint32_t serial = 0;
  bool first = true, ended = false;
  while (pos < bytes.size()) {
    if (ended) return make_error("Ogg: data after the end-of-stream page");
    if (bytes.size() - pos < 27 || std::memcmp(b + pos, "OggS", 4) != 0) {
      return make_error("Ogg: bad capture pattern at byte " + std::to_string(pos));
    }
    const unsigned char* h = b + pos;
    if (h[4] != 0) return make_error("Ogg: unknown stream structure version");
    const unsigned char type = h[5];
    const int nseg = h[26];
    if (bytes.size() - pos < 27u + static_cast<size_t>(nseg)) return make_error("Ogg: truncated page header");
    size_t body_len = 0;
    for (int i = 0; i < nseg; ++i) body_len += h[27 + i];
    const size_t page_len = 27u + static_cast<size_t>(nseg) + body_len;
    if (bytes.size() - pos < page_len) return make_error("Ogg: truncated page");
    // The CRC is computed with its own field zeroed.
    static constexpr unsigned char kZero[4] = {0, 0, 0, 0};
    uint32_t crc = ogg_crc(0, h, 22);
    crc = ogg_crc(crc, kZero, 4);
    crc = ogg_crc(crc, h + 26, page_len - 26);
    if (crc != le32(h + 22)) return make_error("Ogg: page CRC mismatch");
    if (first) {
      serial = le32(h + 14);
      if (!(type & 0x02)) return make_error("Ogg: first page lacks beginning-of-stream flag");
    } else if (le32(h + 14) != serial) {
      return make_error("Ogg: more than one logical stream");
    }
    first = false;
    int64_t granule = 0;
    std::memcpy(&granule, h + 6, 8);
    if (granule != -1) last_granule = granule;
    const unsigned char* body = h + 27 + nseg;
    size_t off = 0;
    for (int i = 0; i < nseg; ++i) {
      partial.insert(partial.end(), body + off, body + off + h[27 + i]);
      off += h[27 + i];
      if (h[27 + i] < 255) packets.push_back(std::move(partial)), partial.clear();
    }
    ended = (type & 0x04) != 0;
    pos += page_len;
  }
  if (packets.size() < 2) return make_error("Ogg: fewer than two packets (no Opus headers)");
  const auto& head = packets[0];
  if (head.size() < 19 || std::memcmp(head.data(), "OpusHead", 8) != 0) {
    return make_error("Ogg: first packet is not OpusHead");
  }
  const int channels = head[9];
  const int pre_skip = le16(head.data() + 10);
  if (channels < 1 || channels > 2 || head[18] != 0)
    return make_error("Ogg Opus: only mono/stereo mapping 0");
  if (packets[1].size() < 8 || std::memcmp(packets[1].data(), "OpusTags", 8) != 0) {
    return make_error("Ogg: second packet is not OpusTags");
  }
  int err = OPUS_OK;
  std::unique_ptr<OpusDecoder, DecoderDeleter> dec(opus_decoder_create(48000, channels, &err));
  if (!dec || err != OPUS_OK) return make_error("opus_decoder_create failed", -ENOMEM);
  std::vector<int16_t> pcm(5760u * static_cast<size_t>(channels));
  Energy e;
  int64_t decoded = 0;
  for (size_t i = 2; i < packets.size(); ++i) {
    const int n = opus_decode(dec.get(), packets[i].data(), static_cast<opus_int32>(packets[i].size()),
                              pcm.data(), 5760, 0);
    if (n < 0) return make_error("Opus packet " + std::to_string(i) + ": " + opus_strerror(n));
    for (int k = 0; k < n; ++k) e.add(pcm[static_cast<size_t>(k * channels)]);
    decoded += n;
  }
  const int64_t end = last_granule >= 0 ? std::min(last_granule, decoded) : decoded;
  const double seconds = static_cast<double>(std::max<int64_t>(0, end - pre_skip)) / 48000.0;
  return AudioInfo{"ogg_opus", 48000, channels, seconds, e.dbfs()};
}

}  // namespace

Result<AudioInfo> probe_audio(std::string_view bytes) {
  if (bytes.size() >= 4 && bytes.substr(0, 4) == "RIFF") return probe_wav(bytes);
  if (bytes.size() >= 4 && bytes.substr(0, 4) == "OggS") return probe_ogg(bytes);
  return make_error("audio is neither WAV (RIFF) nor Ogg Opus (OggS)");
}

}  // namespace osvi::tools
