// Ogg page framing (RFC 3533) for one logical stream into a fixed buffer: lacing, CRC, flags, granules.
//
// Private to audio/src. The buffer is sized once at construction; add()/flush() never allocate, so the
// recorder may call them on the audio thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "osvi/audio/recording.hpp"

namespace osvi::audio::ogg {

// Ogg's CRC-32: polynomial 0x04c11db7, no reflection, initial value 0, no final xor (not zlib's CRC).
uint32_t crc32(std::span<const uint8_t> bytes, uint32_t crc = 0) noexcept;

class PageWriter {
 public:
  static constexpr size_t kHeaderBytes = 27;
  static constexpr size_t kMaxSegments = 255;
  static constexpr size_t kMinBody = 255;  // one full lacing value, so every page makes progress

  // max_body: the largest page body in bytes (at least kMinBody); the buffer holds one page.
  PageWriter(uint32_t serial, size_t max_body);

  // Whether a whole packet of `bytes` still fits on the current page (lacing values and body).
  bool fits(size_t bytes) const noexcept;

  // Appends one packet whose last sample is at stream position `granule`. A packet larger than what is left
  // on the page fills it and continues on the next ones, each written to `sink` as it fills. Returns false
  // if the sink refused a page.
  bool add(std::span<const uint8_t> packet, int64_t granule, ByteSink& sink) noexcept;

  // Writes the pending page (a page with no segments too when `eos` needs one) and starts a new one.
  bool flush(ByteSink& sink, bool eos = false) noexcept;

  // Replaces the granule of the last packet on the pending page (end trimming of the final packet).
  void set_granule(int64_t granule) noexcept { granule_ = granule; }

  bool empty() const noexcept { return segments_ == 0; }
  uint32_t pages() const noexcept { return sequence_; }
  uint64_t bytes_written() const noexcept { return bytes_; }

 private:
  bool write_page(ByteSink& sink, bool eos) noexcept;

  // One page: the header is built right-aligned in front of the body, so a page leaves in one write().
  std::vector<uint8_t> buf_;
  std::array<uint8_t, kMaxSegments> lacing_{};
  size_t max_body_;
  size_t body_ = 0;         // bytes in the pending body
  size_t segments_ = 0;     // lacing values in the pending page
  int64_t granule_ = -1;    // of the last packet completed on the pending page; -1: none completes
  bool continued_ = false;  // the pending page starts with the rest of a packet
  uint32_t serial_;
  uint32_t sequence_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace osvi::audio::ogg
