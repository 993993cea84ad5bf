// libFuzzer target for the RTP media parsers: RTP header, RTCP compound, telephone-event, Opus TOC, and the
// jitter buffer driven by the parsed packets; checks the promises RtpStream's media thread relies on.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "osvi/hal/rtp_jitter.hpp"
#include "osvi/hal/rtp_packet.hpp"

namespace rtp = osvi::hal::rtp;

namespace {

bool inside(std::span<const uint8_t> outer, std::span<const uint8_t> inner) {
  if (inner.empty()) return true;
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);

  // The whole input as one datagram, for each parser.
  if (auto p = rtp::parse(in)) {
    if (!inside(in, p->payload)) std::abort();
    if (p->payload.size() + rtp::kHeaderSize + 4u * p->csrc_count > size) std::abort();
    if (p->header.payload_type >= 72 && p->header.payload_type <= 76) std::abort();
    // What we parsed rebuilds to a header that parses back to the same fields.
    uint8_t buf[2048];
    if (p->payload.size() + rtp::kHeaderSize <= sizeof buf) {
      const size_t n = rtp::build(p->header, p->payload, buf);
      auto q = rtp::parse(std::span<const uint8_t>(buf, n));
      if (!q || q->header.seq != p->header.seq || q->header.timestamp != p->header.timestamp ||
          q->header.ssrc != p->header.ssrc || q->header.marker != p->header.marker ||
          q->payload.size() != p->payload.size())
        std::abort();
    }
    if (auto e = rtp::parse_telephone_event(p->payload)) {
      if (e->volume > 63) std::abort();
      (void)rtp::event_digit(e->event);
    }
    const uint32_t d = rtp::opus_samples_48k(p->payload);
    if (d > 5760) std::abort();
  }
  const rtp::RtcpSummary s = rtp::parse_rtcp(in);
  if (s.valid && (s.packets == 0 || s.packets > size / 4)) std::abort();
  if (s.valid && !s.has_sr && !s.has_rr) std::abort();

  // The input as a stream of length-prefixed datagrams into a small jitter buffer, played as we go.
  osvi::hal::JitterBuffer jb(osvi::hal::JitterBuffer::Config{8000, 20, 200, 8, 160});
  uint32_t now = 0;
  size_t off = 0;
  while (off + 2 <= size) {
    const size_t len = data[off];
    const uint8_t ctl = data[off + 1];
    off += 2;
    if (len > size - off) break;
    const std::span<const uint8_t> dgram(data + off, len);
    off += len;
    now += static_cast<uint32_t>(ctl) * 8;
    if (auto p = rtp::parse(dgram)) {
      const uint32_t duration =
          (ctl & 1) ? rtp::opus_samples_48k(p->payload) / 6 : static_cast<uint32_t>(p->payload.size());
      if (duration > 0) (void)jb.insert(p->header.seq, p->header.timestamp, duration, p->payload, now);
    }
    for (int i = 0; i < (ctl >> 6); ++i) {
      const auto n = jb.next(now, 160);
      if (n.duration > 8000 && n.kind != osvi::hal::JitterBuffer::Kind::packet) std::abort();
      if (n.payload.size() > 160 || n.following.size() > 160) std::abort();
      switch (n.kind) {
        case osvi::hal::JitterBuffer::Kind::packet:
          jb.pop();
          break;
        case osvi::hal::JitterBuffer::Kind::gap:
        case osvi::hal::JitterBuffer::Kind::empty:
          if (n.duration == 0 || n.duration > 160) std::abort();
          jb.skip(n.duration);
          break;
        case osvi::hal::JitterBuffer::Kind::waiting:
          break;
      }
      (void)jb.adapt(160);
      if (jb.size() > 8) std::abort();
    }
  }
  return 0;
}
