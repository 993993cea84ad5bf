// RTP/RTCP/telephone-event wire formats: round trips, every optional header part, bounds on hostile input.
#include "osvi/hal/rtp_packet.hpp"

#include <gtest/gtest.h>

#include <array>
#include <vector>

namespace rtp = osvi::hal::rtp;

namespace {

std::vector<uint8_t> header(uint8_t b0, uint8_t b1) {
  return {b0, b1, 0x12, 0x34, 0, 0, 0x01, 0x00, 0xde, 0xad, 0xbe, 0xef};
}

TEST(RtpPacket, BuildParseRoundTrip) {
  rtp::Header h;
  h.marker = true;
  h.payload_type = 111;
  h.seq = 65535;
  h.timestamp = 0xfffffff0u;
  h.ssrc = 0x01020304;
  const std::array<uint8_t, 3> payload{1, 2, 3};
  std::array<uint8_t, 64> buf{};
  const size_t n = rtp::build(h, payload, buf);
  ASSERT_EQ(n, 15u);
  auto p = rtp::parse(std::span<const uint8_t>(buf.data(), n));
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->header.marker);
  EXPECT_EQ(p->header.payload_type, 111);
  EXPECT_EQ(p->header.seq, 65535);
  EXPECT_EQ(p->header.timestamp, 0xfffffff0u);
  EXPECT_EQ(p->header.ssrc, 0x01020304u);
  ASSERT_EQ(p->payload.size(), 3u);
  EXPECT_EQ(p->payload[2], 3);
  EXPECT_EQ(rtp::build(h, payload, std::span<uint8_t>(buf.data(), 14)), 0u);  // too small: nothing written
}

TEST(RtpPacket, CsrcExtensionAndPaddingAreSkipped) {
  // V=2 P=1 X=1 CC=2
  auto d = header(0x80 | 0x20 | 0x10 | 2, 0);
  for (int i = 0; i < 8; ++i) d.push_back(0xcc);            // two CSRCs
  d.insert(d.end(), {0xbe, 0xde, 0x00, 0x01, 1, 2, 3, 4});  // extension of one word
  d.insert(d.end(), {0xaa, 0xbb});                          // payload
  d.insert(d.end(), {0, 0, 3});                             // three bytes of padding
  auto p = rtp::parse(d);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->csrc_count, 2);
  EXPECT_TRUE(p->has_extension);
  ASSERT_EQ(p->payload.size(), 2u);
  EXPECT_EQ(p->payload[0], 0xaa);
}

TEST(RtpPacket, HostileHeadersAreRefused) {
  EXPECT_FALSE(rtp::parse(std::vector<uint8_t>{0x80, 0, 1}));
  EXPECT_FALSE(rtp::parse(header(0x40, 0)));       // version 1
  EXPECT_FALSE(rtp::parse(header(0x80, 200)));     // RTCP SR on the RTP port
  EXPECT_FALSE(rtp::parse(header(0x80 | 15, 0)));  // 15 CSRCs announced, none present
  auto ext = header(0x90, 0);
  ext.insert(ext.end(), {0xbe, 0xde, 0xff, 0xff});  // extension longer than the datagram
  EXPECT_FALSE(rtp::parse(ext));
  auto pad = header(0xa0, 0);
  pad.push_back(200);  // padding count beyond the packet
  EXPECT_FALSE(rtp::parse(pad));
  auto zero_pad = header(0xa0, 0);
  zero_pad.push_back(0);
  EXPECT_FALSE(rtp::parse(zero_pad));
  EXPECT_TRUE(rtp::parse(header(0x80, 0)));  // a bare header is an empty payload
}

TEST(RtpPacket, TelephoneEvent) {
  rtp::TelephoneEvent e;
  e.event = 11;
  e.end = true;
  e.volume = 10;
  e.duration = 800;
  std::array<uint8_t, 4> b{};
  ASSERT_EQ(rtp::build_telephone_event(e, b), 4u);
  auto back = rtp::parse_telephone_event(b);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->event, 11);
  EXPECT_TRUE(back->end);
  EXPECT_EQ(back->volume, 10);
  EXPECT_EQ(back->duration, 800);
  EXPECT_FALSE(rtp::parse_telephone_event(std::span<const uint8_t>(b.data(), 3)));
  EXPECT_EQ(rtp::event_digit(11), '#');
  EXPECT_EQ(rtp::event_digit(10), '*');
  EXPECT_EQ(rtp::event_digit(15), 'D');
  EXPECT_EQ(rtp::event_digit(16), 0);
  EXPECT_EQ(rtp::digit_event('7'), 7);
  EXPECT_EQ(rtp::digit_event('x'), -1);
}

TEST(RtpPacket, RtcpCompoundSrSdesBye) {
  std::array<uint8_t, 256> buf{};
  rtp::SenderInfo info;
  info.ntp = 0x0102030405060708ull;
  info.rtp_timestamp = 99;
  info.packets = 7;
  info.octets = 1120;
  rtp::ReportBlock rb;
  rb.ssrc = 42;
  rb.fraction_lost = 12;
  rb.cumulative_lost = -3;
  rb.highest_seq = 70000;
  rb.jitter = 17;
  size_t at = rtp::build_sr(1, info, &rb, buf, 0);
  ASSERT_EQ(at, 52u);
  const char cname[] = "osvi-test";
  at = rtp::build_sdes_cname(1, std::span<const char>(cname, 9), buf, at);
  ASSERT_GT(at, 52u);
  EXPECT_EQ(at % 4, 0u);
  at = rtp::build_bye(1, buf, at);
  ASSERT_GT(at, 0u);
  auto s = rtp::parse_rtcp(std::span<const uint8_t>(buf.data(), at));
  ASSERT_TRUE(s.valid);
  EXPECT_TRUE(s.has_sr);
  EXPECT_TRUE(s.has_bye);
  EXPECT_EQ(s.packets, 3u);
  EXPECT_EQ(s.sender_ssrc, 1u);
  EXPECT_EQ(s.sender.ntp, info.ntp);
  EXPECT_EQ(s.sender.packets, 7u);
  EXPECT_EQ(s.report_count, 1u);
  EXPECT_EQ(s.first_report.ssrc, 42u);
  EXPECT_EQ(s.first_report.cumulative_lost, -3);
  EXPECT_EQ(s.first_report.highest_seq, 70000u);
  EXPECT_EQ(s.first_report.jitter, 17u);
  EXPECT_EQ(s.bye_ssrc, 1u);
  // Every truncation of the compound is refused, never read past.
  for (size_t n = 0; n < at; ++n) {
    auto t = rtp::parse_rtcp(std::span<const uint8_t>(buf.data(), n));
    if (n == 52 || n == 52 + (at - 52 - 8)) continue;  // whole-packet boundaries are valid compounds
    EXPECT_FALSE(t.valid) << n;
  }
}

TEST(RtpPacket, RtcpRrAndRefusals) {
  std::array<uint8_t, 64> buf{};
  const size_t at = rtp::build_rr(5, nullptr, buf, 0);
  ASSERT_EQ(at, 8u);
  auto s = rtp::parse_rtcp(std::span<const uint8_t>(buf.data(), at));
  EXPECT_TRUE(s.valid);
  EXPECT_TRUE(s.has_rr);
  EXPECT_EQ(s.report_count, 0u);
  // A BYE alone is not a valid compound (it must start with SR or RR).
  const size_t bye = rtp::build_bye(5, buf, 0);
  EXPECT_FALSE(rtp::parse_rtcp(std::span<const uint8_t>(buf.data(), bye)).valid);
  // A report count the length cannot hold.
  std::array<uint8_t, 8> bad{0x81, 201, 0, 1, 0, 0, 0, 5};
  EXPECT_FALSE(rtp::parse_rtcp(bad).valid);
  EXPECT_FALSE(rtp::build_rr(5, nullptr, std::span<uint8_t>(buf.data(), 7), 0));
}

TEST(RtpPacket, OpusDurations) {
  EXPECT_EQ(rtp::opus_samples_48k(std::vector<uint8_t>{static_cast<uint8_t>(9 << 3)}), 960u);  // SILK 20 ms
  EXPECT_EQ(rtp::opus_samples_48k(std::vector<uint8_t>{static_cast<uint8_t>(8 << 3)}), 480u);  // SILK 10 ms
  EXPECT_EQ(rtp::opus_samples_48k(std::vector<uint8_t>{static_cast<uint8_t>(9 << 3 | 1)}),
            1920u);  // 2 frames
  EXPECT_EQ(rtp::opus_samples_48k(std::vector<uint8_t>{static_cast<uint8_t>(31 << 3 | 3), 3}), 2880u);
  EXPECT_EQ(rtp::opus_samples_48k(std::vector<uint8_t>{static_cast<uint8_t>(11 << 3 | 3), 3}), 0u);  // 180 ms
  EXPECT_EQ(rtp::opus_samples_48k(std::vector<uint8_t>{static_cast<uint8_t>(9 << 3 | 3)}), 0u);  // no count
  EXPECT_EQ(rtp::opus_samples_48k({}), 0u);
}

}  // namespace
