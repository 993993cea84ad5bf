// RTP (RFC 3550), RTCP (SR, RR, SDES, BYE) and telephone-event (RFC 4733) wire formats: pure parse/build.
//
// Everything here works on caller-provided spans: no allocation, no state, never a read or write outside
// the span (the parsers are fuzzed: tests/fuzz/rtp_fuzz.cpp). Used by RtpStream's media thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace osvi::hal::rtp {

inline constexpr size_t kHeaderSize = 12;
inline constexpr uint8_t kComfortNoisePt = 13;  // RFC 3389

struct Header {
  bool marker = false;
  uint8_t payload_type = 0;
  uint16_t seq = 0;
  uint32_t timestamp = 0;
  uint32_t ssrc = 0;
};

struct Packet {
  Header header;
  uint8_t csrc_count = 0;
  bool has_extension = false;
  std::span<const uint8_t> payload;  // after CSRCs and the extension, before the padding
};

// A valid RTP packet (version 2, CSRC list, extension and padding inside the datagram, payload type not in
// the RTCP range 72..76) or nothing.
std::optional<Packet> parse(std::span<const uint8_t> datagram);

// Writes a 12-byte header and the payload into out; returns the size, 0 when out is too small.
size_t build(const Header& h, std::span<const uint8_t> payload, std::span<uint8_t> out);

// ---- RFC 4733 telephone-event ----------------------------------------------------------------------------

struct TelephoneEvent {
  uint8_t event = 0;  // 0-9, 10 '*', 11 '#', 12-15 'A'-'D'
  bool end = false;
  uint8_t volume = 0;  // -dBm0, 0..63
  uint16_t duration = 0;
};
inline constexpr size_t kTelephoneEventSize = 4;

// The first event of the payload (redundant blocks behind it are ignored); nothing when shorter than 4.
std::optional<TelephoneEvent> parse_telephone_event(std::span<const uint8_t> payload);
size_t build_telephone_event(const TelephoneEvent& e, std::span<uint8_t> out);
// DTMF digit <-> event code; 0 / -1 when not a DTMF digit.
char event_digit(uint8_t event);
int digit_event(char digit);

// ---- RTCP ------------------------------------------------------------------------------------------------

struct ReportBlock {
  uint32_t ssrc = 0;
  uint8_t fraction_lost = 0;
  int32_t cumulative_lost = 0;  // 24-bit signed on the wire
  uint32_t highest_seq = 0;     // extended
  uint32_t jitter = 0;          // RTP timestamp units
  uint32_t lsr = 0;
  uint32_t dlsr = 0;
};

struct SenderInfo {
  uint64_t ntp = 0;
  uint32_t rtp_timestamp = 0;
  uint32_t packets = 0;
  uint32_t octets = 0;
};

// What one compound RTCP datagram said (the first report block per SR/RR, the first BYE source).
struct RtcpSummary {
  bool valid = false;
  bool has_sr = false;
  bool has_rr = false;
  bool has_bye = false;
  uint32_t sender_ssrc = 0;  // of the first SR/RR
  SenderInfo sender;         // when has_sr
  uint32_t report_count = 0;
  ReportBlock first_report;
  uint32_t bye_ssrc = 0;
  uint32_t packets = 0;  // RTCP packets in the compound
};

// Walks a compound packet: every packet version 2 with its length inside the datagram (RFC 3550 A.2:
// the first must be SR or RR; padding only on the last). An invalid datagram gives valid = false.
RtcpSummary parse_rtcp(std::span<const uint8_t> datagram);

// Appends to out at offset `at`; each returns the new offset, or 0 when out is too small.
size_t build_sr(uint32_t ssrc, const SenderInfo& info, const ReportBlock* report, std::span<uint8_t> out,
                size_t at);
size_t build_rr(uint32_t ssrc, const ReportBlock* report, std::span<uint8_t> out, size_t at);
// SDES with one CNAME item (cname at most 255 bytes).
size_t build_sdes_cname(uint32_t ssrc, std::span<const char> cname, std::span<uint8_t> out, size_t at);
size_t build_bye(uint32_t ssrc, std::span<uint8_t> out, size_t at);

// ---- Opus (RFC 6716 3.1) ---------------------------------------------------------------------------------

// Samples at 48 kHz one Opus packet carries (from its TOC byte and frame count); 0 when malformed.
uint32_t opus_samples_48k(std::span<const uint8_t> packet);

}  // namespace osvi::hal::rtp
