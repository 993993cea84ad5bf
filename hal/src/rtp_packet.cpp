// RTP, RTCP and telephone-event wire formats: bounded parsers and builders over caller spans.
#include "osvi/hal/rtp_packet.hpp"

#include <algorithm>
#include <cstring>

namespace osvi::hal::rtp {

namespace {

uint16_t get16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
uint32_t get32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | p[3];
}
void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void put32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

}  // namespace

std::optional<Packet> parse(std::span<const uint8_t> d) {
  if (d.size() < kHeaderSize) return std::nullopt;
  const uint8_t b0 = d[0];
  if ((b0 >> 6) != 2) return std::nullopt;
  Packet p;
  p.header.marker = (d[1] & 0x80) != 0;
  p.header.payload_type = d[1] & 0x7f;
  // 72..76 with the marker bit are RTCP SR..APP arriving on the RTP port (RFC 5761 section 4).
  if (p.header.payload_type >= 72 && p.header.payload_type <= 76) return std::nullopt;
  p.header.seq = get16(&d[2]);
  p.header.timestamp = get32(&d[4]);
  p.header.ssrc = get32(&d[8]);
  p.csrc_count = b0 & 0x0f;
  size_t off = kHeaderSize + 4u * p.csrc_count;
  if (off > d.size()) return std::nullopt;
  size_t end = d.size();
  if (b0 & 0x20) {
    const uint8_t pad = d[end - 1];
    if (pad == 0 || pad > end - off) return std::nullopt;
    end -= pad;
  }
  if (b0 & 0x10) {
    if (off + 4 > end) return std::nullopt;
    const size_t ext_words = get16(&d[off + 2]);
    off += 4;
    if (ext_words * 4 > end - off) return std::nullopt;
    off += ext_words * 4;
    p.has_extension = true;
  }
  p.payload = d.subspan(off, end - off);
  return p;
}

size_t build(const Header& h, std::span<const uint8_t> payload, std::span<uint8_t> out) {
  if (out.size() < kHeaderSize + payload.size()) return 0;
  out[0] = 0x80;
  out[1] = static_cast<uint8_t>((h.marker ? 0x80 : 0) | (h.payload_type & 0x7f));
  put16(&out[2], h.seq);
  put32(&out[4], h.timestamp);
  put32(&out[8], h.ssrc);
  if (!payload.empty()) std::memcpy(&out[kHeaderSize], payload.data(), payload.size());
  return kHeaderSize + payload.size();
}

std::optional<TelephoneEvent> parse_telephone_event(std::span<const uint8_t> p) {
  if (p.size() < kTelephoneEventSize) return std::nullopt;
  TelephoneEvent e;
  e.event = p[0];
  e.end = (p[1] & 0x80) != 0;
  e.volume = p[1] & 0x3f;
  e.duration = get16(&p[2]);
  return e;
}

size_t build_telephone_event(const TelephoneEvent& e, std::span<uint8_t> out) {
  if (out.size() < kTelephoneEventSize) return 0;
  out[0] = e.event;
  out[1] = static_cast<uint8_t>((e.end ? 0x80 : 0) | (e.volume & 0x3f));
  put16(&out[2], e.duration);
  return kTelephoneEventSize;
}

char event_digit(uint8_t event) {
  static constexpr char kDigits[] = "0123456789*#ABCD";
  return event < 16 ? kDigits[event] : 0;
}

int digit_event(char digit) {
  if (digit >= '0' && digit <= '9') return digit - '0';
  if (digit == '*') return 10;
  if (digit == '#') return 11;
  if (digit >= 'A' && digit <= 'D') return 12 + (digit - 'A');
  if (digit >= 'a' && digit <= 'd') return 12 + (digit - 'a');
  return -1;
}

// ---- RTCP ----------------------------------------------------------------------------------------------

namespace {

constexpr uint8_t kSr = 200, kRr = 201, kSdes = 202, kBye = 203;

ReportBlock read_block(const uint8_t* p) {
  ReportBlock b;
  b.ssrc = get32(p);
  b.fraction_lost = p[4];
  uint32_t lost = static_cast<uint32_t>(p[5]) << 16 | static_cast<uint32_t>(p[6]) << 8 | p[7];
  if (lost & 0x800000) lost |= 0xff000000u;  // sign-extend the 24-bit field
  b.cumulative_lost = static_cast<int32_t>(lost);
  b.highest_seq = get32(p + 8);
  b.jitter = get32(p + 12);
  b.lsr = get32(p + 16);
  b.dlsr = get32(p + 20);
  return b;
}

void write_block(uint8_t* p, const ReportBlock& b) {
  put32(p, b.ssrc);
  p[4] = b.fraction_lost;
  const int32_t lost = std::clamp<int32_t>(b.cumulative_lost, -0x800000, 0x7fffff);
  const auto u = static_cast<uint32_t>(lost);
  p[5] = static_cast<uint8_t>(u >> 16);
  p[6] = static_cast<uint8_t>(u >> 8);
  p[7] = static_cast<uint8_t>(u);
  put32(p + 8, b.highest_seq);
  put32(p + 12, b.jitter);
  put32(p + 16, b.lsr);
  put32(p + 20, b.dlsr);
}

}  // namespace

RtcpSummary parse_rtcp(std::span<const uint8_t> d) {
  RtcpSummary s;
  size_t off = 0;
  while (off < d.size()) {
    if (d.size() - off < 4) return RtcpSummary{};
    const uint8_t* h = &d[off];
    if ((h[0] >> 6) != 2) return RtcpSummary{};
    const uint8_t count = h[0] & 0x1f;
    const uint8_t pt = h[1];
    const size_t len = (static_cast<size_t>(get16(h + 2)) + 1) * 4;
    if (len > d.size() - off) return RtcpSummary{};
    const bool padded = (h[0] & 0x20) != 0;
    if (padded && off + len != d.size()) return RtcpSummary{};  // padding only on the last packet
    size_t body = len;
    if (padded) {
      const uint8_t pad = h[len - 1];
      if (pad == 0 || pad > len - 4) return RtcpSummary{};
      body -= pad;
    }
    if (s.packets == 0 && pt != kSr && pt != kRr) return RtcpSummary{};
    if (pt == kSr || pt == kRr) {
      const size_t fixed = pt == kSr ? 28 : 8;
      if (body < fixed + 24u * count) return RtcpSummary{};
      if (!s.has_sr && !s.has_rr) {
        s.sender_ssrc = get32(h + 4);
        if (pt == kSr) {
          s.sender.ntp = static_cast<uint64_t>(get32(h + 8)) << 32 | get32(h + 12);
          s.sender.rtp_timestamp = get32(h + 16);
          s.sender.packets = get32(h + 20);
          s.sender.octets = get32(h + 24);
        }
        s.report_count = count;
        if (count > 0) s.first_report = read_block(h + fixed);
      }
      (pt == kSr ? s.has_sr : s.has_rr) = true;
    } else if (pt == kBye) {
      if (body < 4u + 4u * count) return RtcpSummary{};
      if (!s.has_bye && count > 0) s.bye_ssrc = get32(h + 4);
      s.has_bye = true;
    }
    // SDES, APP, XR, feedback: walked over by their length.
    ++s.packets;
    off += len;
  }
  s.valid = s.packets > 0;
  return s;
}

size_t build_sr(uint32_t ssrc, const SenderInfo& info, const ReportBlock* report, std::span<uint8_t> out,
                size_t at) {
  const size_t len = 28 + (report ? 24 : 0);
  if (at > out.size() || out.size() - at < len) return 0;
  uint8_t* p = &out[at];
  p[0] = static_cast<uint8_t>(0x80 | (report ? 1 : 0));
  p[1] = kSr;
  put16(p + 2, static_cast<uint16_t>(len / 4 - 1));
  put32(p + 4, ssrc);
  put32(p + 8, static_cast<uint32_t>(info.ntp >> 32));
  put32(p + 12, static_cast<uint32_t>(info.ntp));
  put32(p + 16, info.rtp_timestamp);
  put32(p + 20, info.packets);
  put32(p + 24, info.octets);
  if (report) write_block(p + 28, *report);
  return at + len;
}

size_t build_rr(uint32_t ssrc, const ReportBlock* report, std::span<uint8_t> out, size_t at) {
  const size_t len = 8 + (report ? 24 : 0);
  if (at > out.size() || out.size() - at < len) return 0;
  uint8_t* p = &out[at];
  p[0] = static_cast<uint8_t>(0x80 | (report ? 1 : 0));
  p[1] = kRr;
  put16(p + 2, static_cast<uint16_t>(len / 4 - 1));
  put32(p + 4, ssrc);
  if (report) write_block(p + 8, *report);
  return at + len;
}

size_t build_sdes_cname(uint32_t ssrc, std::span<const char> cname, std::span<uint8_t> out, size_t at) {
  const size_t n = std::min<size_t>(cname.size(), 255);
  // SSRC, CNAME item (type, length, text), then at least one zero byte ending the item list, to a word.
  const size_t len = (4 + 4 + 2 + n + 1 + 3) / 4 * 4;
  if (at > out.size() || out.size() - at < len) return 0;
  uint8_t* p = &out[at];
  std::memset(p, 0, len);
  p[0] = 0x81;
  p[1] = kSdes;
  put16(p + 2, static_cast<uint16_t>(len / 4 - 1));
  put32(p + 4, ssrc);
  p[8] = 1;  // CNAME
  p[9] = static_cast<uint8_t>(n);
  if (n > 0) std::memcpy(p + 10, cname.data(), n);
  return at + len;
}

size_t build_bye(uint32_t ssrc, std::span<uint8_t> out, size_t at) {
  if (at > out.size() || out.size() - at < 8) return 0;
  uint8_t* p = &out[at];
  p[0] = 0x81;
  p[1] = kBye;
  put16(p + 2, 1);
  put32(p + 4, ssrc);
  return at + 8;
}

// ---- Opus ----------------------------------------------------------------------------------------------

uint32_t opus_samples_48k(std::span<const uint8_t> p) {
  if (p.empty()) return 0;
  const uint8_t toc = p[0];
  const unsigned config = toc >> 3;
  uint32_t frame = 0;  // samples at 48 kHz per frame
  if (config < 12) {   // SILK: 10, 20, 40, 60 ms
    static constexpr uint32_t kSilk[] = {480, 960, 1920, 2880};
    frame = kSilk[config & 3];
  } else if (config < 16) {  // hybrid: 10, 20 ms
    frame = (config & 1) ? 960 : 480;
  } else {  // CELT: 2.5, 5, 10, 20 ms
    static constexpr uint32_t kCelt[] = {120, 240, 480, 960};
    frame = kCelt[config & 3];
  }
  uint32_t frames = 0;
  switch (toc & 3) {
    case 0:
      frames = 1;
      break;
    case 1:
    case 2:
      frames = 2;
      break;
    default:
      if (p.size() < 2) return 0;
      frames = p[1] & 0x3f;
      break;
  }
  const uint32_t total = frames * frame;
  return total == 0 || total > 5760 ? 0 : total;  // at most 120 ms (RFC 6716 3.2.5)
}

}  // namespace osvi::hal::rtp
