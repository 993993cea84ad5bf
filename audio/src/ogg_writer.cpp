// Ogg page framing: packets laced into one preallocated page, CRC-32 and header filled in at flush.
#include "ogg_writer.hpp"

#include <algorithm>
#include <cstring>

namespace osvi::audio::ogg {
namespace {

constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t r = i << 24;
    for (int k = 0; k < 8; ++k) r = (r & 0x80000000u) ? (r << 1) ^ 0x04c11db7u : r << 1;
    t[i] = r;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrcTable = make_crc_table();

void put_le(uint8_t* p, uint64_t v, int bytes) noexcept {
  for (int i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

constexpr uint8_t kContinued = 0x01, kBos = 0x02, kEos = 0x04;
constexpr size_t kBodyAt = PageWriter::kHeaderBytes + PageWriter::kMaxSegments;

}  // namespace

uint32_t crc32(std::span<const uint8_t> bytes, uint32_t crc) noexcept {
  for (uint8_t b : bytes) crc = (crc << 8) ^ kCrcTable[((crc >> 24) ^ b) & 0xff];
  return crc;
}

PageWriter::PageWriter(uint32_t serial, size_t max_body)
    : buf_(kBodyAt + std::max(max_body, kMinBody)),
      max_body_(std::max(max_body, kMinBody)),
      serial_(serial) {}

bool PageWriter::fits(size_t bytes) const noexcept {
  return segments_ + bytes / 255 + 1 <= kMaxSegments && body_ + bytes <= max_body_;
}

bool PageWriter::add(std::span<const uint8_t> packet, int64_t granule, ByteSink& sink) noexcept {
  size_t left = packet.size();
  const uint8_t* src = packet.data();
  for (;;) {
    if (fits(left)) {
      std::memcpy(buf_.data() + kBodyAt + body_, src, left);
      body_ += left;
      for (size_t i = 0; i < left / 255; ++i) lacing_[segments_++] = 255;
      lacing_[segments_++] = static_cast<uint8_t>(left % 255);
      granule_ = granule;
      return true;
    }
    // Only whole 255-byte segments may end a page mid-packet (a shorter lacing value ends the packet).
    const size_t chunks = std::min(kMaxSegments - segments_, (max_body_ - body_) / 255);
    const size_t take = std::min(chunks * 255, left / 255 * 255);
    std::memcpy(buf_.data() + kBodyAt + body_, src, take);
    body_ += take;
    for (size_t i = 0; i < take / 255; ++i) lacing_[segments_++] = 255;
    src += take;
    left -= take;
    const bool started = take > 0 || left < packet.size();
    if (!write_page(sink, false)) return false;
    continued_ = started;
  }
}

bool PageWriter::flush(ByteSink& sink, bool eos) noexcept {
  if (empty() && !eos) return true;
  return write_page(sink, eos);
}

bool PageWriter::write_page(ByteSink& sink, bool eos) noexcept {
  uint8_t* page = buf_.data() + kBodyAt - segments_ - kHeaderBytes;
  std::memcpy(page, "OggS", 4);
  page[4] = 0;  // stream structure version
  page[5] =
      static_cast<uint8_t>((continued_ ? kContinued : 0) | (sequence_ == 0 ? kBos : 0) | (eos ? kEos : 0));
  put_le(page + 6, static_cast<uint64_t>(granule_), 8);
  put_le(page + 14, serial_, 4);
  put_le(page + 18, sequence_, 4);
  put_le(page + 22, 0, 4);  // the CRC covers the page with its own field zeroed
  page[26] = static_cast<uint8_t>(segments_);
  std::memcpy(page + kHeaderBytes, lacing_.data(), segments_);
  const size_t size = kHeaderBytes + segments_ + body_;
  put_le(page + 22, crc32({page, size}), 4);
  const bool ok = sink.write({page, size});
  if (ok) bytes_ += size;
  ++sequence_;
  body_ = 0;
  segments_ = 0;
  granule_ = -1;
  continued_ = false;
  return ok;
}

}  // namespace osvi::audio::ogg
