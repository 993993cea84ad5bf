// Salvage of a cut Ogg Opus stream: the longest prefix of whole pages a reader accepts, and its EOS patch.
#include <cerrno>
#include <cstring>
#include <optional>
#include <string>

#include "ogg_writer.hpp"
#include "osvi/audio/recording.hpp"

namespace osvi::audio {
namespace {

constexpr uint8_t kContinued = 0x01, kBos = 0x02, kEos = 0x04;
constexpr size_t kHeader = ogg::PageWriter::kHeaderBytes;

uint64_t get_le(const uint8_t* p, int bytes) noexcept {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// One page's extent and fields, or nullopt when `at` does not start a whole page with a valid CRC.
struct Page {
  size_t size = 0;
  uint8_t flags = 0;
  uint64_t granule = 0;
  uint32_t serial = 0, sequence = 0;
  std::span<const uint8_t> lacing, body;
};

std::optional<Page> read_page(std::span<const uint8_t> bytes, size_t at) {
  if (bytes.size() - at < kHeader) return std::nullopt;
  const uint8_t* p = bytes.data() + at;
  if (std::memcmp(p, "OggS", 4) != 0 || p[4] != 0) return std::nullopt;
  const size_t segments = p[26];
  if (bytes.size() - at < kHeader + segments) return std::nullopt;
  Page pg;
  pg.lacing = {p + kHeader, segments};
  size_t body = 0;
  for (uint8_t v : pg.lacing) body += v;
  pg.size = kHeader + segments + body;
  if (bytes.size() - at < pg.size) return std::nullopt;
  // The CRC is computed with its own field zeroed: over the header in three parts.
  const uint8_t zero[4] = {0, 0, 0, 0};
  uint32_t crc = ogg::crc32({p, 22});
  crc = ogg::crc32(zero, crc);
  crc = ogg::crc32({p + 26, pg.size - 26}, crc);
  if (crc != static_cast<uint32_t>(get_le(p + 22, 4))) return std::nullopt;
  pg.flags = p[5];
  pg.granule = get_le(p + 6, 8);
  pg.serial = static_cast<uint32_t>(get_le(p + 14, 4));
  pg.sequence = static_cast<uint32_t>(get_le(p + 18, 4));
  pg.body = {p + kHeader + segments, body};
  return pg;
}

Error unusable(const std::string& why) {
  return make_error("ogg opus salvage: " + why, -EBADMSG);
}

}  // namespace

Result<OggOpusSalvage> salvage_ogg_opus(std::span<const uint8_t> bytes) {
  OggOpusSalvage out;
  size_t at = 0;
  uint32_t serial = 0, sequence = 0;
  int packets = 0;           // completed so far
  bool open_packet = false;  // the previous page ended inside a packet
  bool headers_done = false;
  while (at < bytes.size()) {
    auto pg = read_page(bytes, at);
    if (!pg) break;  // a torn page (the crash) or garbage: the usable prefix ends here
    if (sequence == 0) {
      if (!(pg->flags & kBos)) break;
      serial = pg->serial;
    } else if (pg->serial != serial || pg->sequence != sequence || (pg->flags & kBos)) {
      break;
    }
    if (((pg->flags & kContinued) != 0) != open_packet) break;
    if (sequence == 0) {
      // OpusHead (RFC 7845 §5.1) alone on the first page.
      const auto& b = pg->body;
      if (pg->lacing.size() != 1 || b.size() < 19 || std::memcmp(b.data(), "OpusHead", 8) != 0)
        return unusable("no OpusHead page");
      out.channels = b[9];
      out.pre_skip = static_cast<int>(get_le(b.data() + 10, 2));
      out.input_rate = static_cast<int>(get_le(b.data() + 12, 4));
    }
    for (uint8_t v : pg->lacing) {
      if (v < 255) ++packets;
    }
    open_packet = !pg->lacing.empty() && pg->lacing.back() == 255;
    ++sequence;
    at += pg->size;
    if (!headers_done) {
      // OpusTags may span pages; audio starts on the page after the one that completes it.
      headers_done = packets >= 2 && !open_packet;
      if (pg->flags & kEos) break;
      continue;
    }
    // A page that completes its last packet (and so carries that packet's granule) is a clean cut.
    if (!open_packet && pg->granule != ~uint64_t{0}) {
      out.keep_bytes = at;
      out.last_page_offset = at - pg->size;
      out.last_page_bytes = pg->size;
      out.granule = static_cast<int64_t>(pg->granule);
      out.ended = (pg->flags & kEos) != 0;
    }
    if (pg->flags & kEos) break;
  }
  if (!headers_done) return unusable("no complete OpusHead and OpusTags pages");
  if (out.keep_bytes == 0) return unusable("no complete audio page");
  return out;
}

Status mark_ogg_end_of_stream(std::span<uint8_t> page) {
  auto pg = read_page(page, 0);
  if (!pg || pg->size != page.size()) return unusable("not one whole Ogg page");
  page[5] = static_cast<uint8_t>(page[5] | kEos);
  std::memset(page.data() + 22, 0, 4);
  const uint32_t crc = ogg::crc32(page);
  for (int i = 0; i < 4; ++i) page[22 + static_cast<size_t>(i)] = static_cast<uint8_t>(crc >> (8 * i));
  return {};
}

}  // namespace osvi::audio
