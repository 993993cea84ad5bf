// PagePipe: Ogg pages from the recorder on the audio thread to the file on the loop, through a byte ring.
#include "osvi/audio/page_pipe.hpp"

#include <algorithm>
#include <array>
#include <vector>

#include "ogg_opus.hpp"
#include "ogg_writer.hpp"

namespace osvi::audio {

namespace {
constexpr size_t kLenBytes = 4;
// The largest page the recorder's muxer writes: header, a full lacing table, the body bound.
size_t max_page() {
  return ogg::PageWriter::kHeaderBytes + ogg::PageWriter::kMaxSegments + OggOpusSpec{}.max_page_body;
}
}  // namespace

size_t PagePipe::ring_bytes_for(int bitrate) {
  // One largest page, not two: the ring is a power of two, and two (17 kB) made it 32 kB for every call at
  // the default 32 kbit/s, where four seconds of pages are 16 kB (bench/README.md "percall3").
  return std::max(max_page() + kLenBytes, static_cast<size_t>(std::max(bitrate, 0)) / 8 * 4);
}

PagePipe::PagePipe(ByteSink& out, size_t ring_bytes)
    : out_(out), ring_(std::max(ring_bytes, max_page() + kLenBytes)) {}

bool PagePipe::write(std::span<const uint8_t> bytes) noexcept {
  if (bytes.size() > max_page() || ring_.writable() < kLenBytes + bytes.size()) {
    overruns_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  const auto n = static_cast<uint32_t>(bytes.size());
  const std::array<uint8_t, kLenBytes> len{static_cast<uint8_t>(n), static_cast<uint8_t>(n >> 8),
                                           static_cast<uint8_t>(n >> 16), static_cast<uint8_t>(n >> 24)};
  ring_.push(len);
  ring_.push(bytes);
  return true;
}

void PagePipe::drain() noexcept {
  // One page buffer per draining thread (the loop), not one per call (8.5 kB each): drain() pops a page and
  // hands it to `out` before the next, and only the loop drains. Sized once, at the thread's first drain.
  thread_local std::vector<uint8_t> page_buf;
  if (page_buf.size() < max_page()) page_buf.resize(max_page());
  for (;;) {
    if (pending_len_ == 0) {
      // The length and its page are two publications: a length whose page is not visible yet waits here.
      if (ring_.readable() < kLenBytes) return;
      std::array<uint8_t, kLenBytes> len{};
      ring_.pop(len);
      pending_len_ = size_t{len[0]} | size_t{len[1]} << 8 | size_t{len[2]} << 16 | size_t{len[3]} << 24;
    }
    if (ring_.readable() < pending_len_) return;
    const std::span<uint8_t> page(page_buf.data(), pending_len_);
    ring_.pop(page);
    pending_len_ = 0;
    if (!out_failed_ && !out_.write(page)) out_failed_ = true;
  }
}

}  // namespace osvi::audio
