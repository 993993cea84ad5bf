// The SIP test peers on their own, without osvid: baresip calls baresip through the lossy UdpRelay (the
// relay's SDP rewriting carries all RTP through it, losses and reordering counted, the speech still heard
// on the far side) and both ways of RFC 4733 keys between them; the G.711 µ-law helpers against known values.
#include "sip_peers.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <string>
#include <thread>

#include "test_support.hpp"
#include "wav.hpp"

using namespace std::chrono_literals;
using osvi::test::Baresip;

namespace {

TEST(SipPeers, UlawMatchesG711) {
  EXPECT_EQ(osvi::test::ulaw_encode(0), 0xff);
  EXPECT_EQ(osvi::test::ulaw_encode(-1), 0x7f);
  EXPECT_EQ(osvi::test::ulaw_encode(32767), 0x80);
  EXPECT_EQ(osvi::test::ulaw_encode(-32768), 0x00);
  for (int s = -32000; s <= 32000; s += 97) {
    const int back = osvi::test::ulaw_decode(osvi::test::ulaw_encode(static_cast<int16_t>(s)));
    EXPECT_LE(std::abs(back - s), std::abs(s) / 16 + 8) << s;
  }
}

class SipPeersRelay : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::mkdir(dir_.file("a").c_str(), 0700), 0);
    ASSERT_EQ(::mkdir(dir_.file("b").c_str(), 0700), 0);
    osvi::test::write_speech_wav(dir_.file("speech.wav"), "one two three four five six", 300, 30000);
  }
  osvi::test::TempDir dir_;
};

TEST_F(SipPeersRelay, CarriesSipAndRtpWithLossAndReordering) {
  osvi::test::BaresipOptions ob;
  ob.user = "b";
  Baresip b(dir_.file("b"), ob);
  ASSERT_TRUE(b.start()) << b.error();
  osvi::test::BaresipOptions oa;
  oa.user = "a";
  oa.source_wav = dir_.file("speech.wav");
  Baresip a(dir_.file("a"), oa);
  ASSERT_TRUE(a.start()) << a.error();

  osvi::test::UdpRelay relay(b.sip_port(), {0.10, 0.10, 5});
  ASSERT_TRUE(relay.start());
  ASSERT_TRUE(a.command("dial", "sip:b@127.0.0.1:" + std::to_string(relay.sip_port())));
  ASSERT_TRUE(a.wait_event("CALL_ESTABLISHED", 10s)) << a.log_text() << b.log_text();
  ASSERT_TRUE(b.wait_event("CALL_ESTABLISHED", 5s)) << b.log_text();
  std::this_thread::sleep_for(3s);
  ASSERT_TRUE(a.command("hangup"));
  ASSERT_TRUE(b.wait_event("CALL_CLOSED", 5s)) << b.log_text();  // the BYE came through the relay too

  const osvi::test::RelayStats s = relay.stats();
  EXPECT_GE(s.sip, 5u);  // INVITE, 100, 180/200, ACK, BYE, 200
  // 3 s of 20 ms packets each way, about a tenth of them lost, some sent after their successor.
  EXPECT_GT(s.rtp_to_box, 100u);
  EXPECT_GT(s.rtp_to_peer, 100u);
  EXPECT_GT(s.dropped, 10u);
  EXPECT_GT(s.reordered, 10u);
  EXPECT_LT(s.dropped, s.rtp / 5);

  // b heard a's speech through the relay.
  const auto heard = b.recordings("dec");
  ASSERT_EQ(heard.size(), 1u) << b.log_text();
  EXPECT_GT(osvi::test::rms_dbfs(osvi::test::read_wav(heard.front()).samples), -40.0);
}

TEST_F(SipPeersRelay, Rfc4733KeysBetweenTwoBaresips) {
  osvi::test::BaresipOptions ob;
  ob.user = "b";
  Baresip b(dir_.file("b"), ob);
  ASSERT_TRUE(b.start()) << b.error();
  osvi::test::BaresipOptions oa;
  oa.user = "a";
  Baresip a(dir_.file("a"), oa);
  ASSERT_TRUE(a.start()) << a.error();
  ASSERT_TRUE(a.command("dial", b.uri()));
  ASSERT_TRUE(b.wait_event("CALL_ESTABLISHED", 10s)) << b.log_text();
  ASSERT_TRUE(a.wait_event("CALL_ESTABLISHED", 5s)) << a.log_text();
  ASSERT_TRUE(a.command("sndcode", "7"));
  EXPECT_TRUE(b.wait_event("CALL_DTMF_START", 5s, "7")) << b.log_text();
  ASSERT_TRUE(b.command("sndcode", "#"));
  EXPECT_TRUE(a.wait_event("CALL_DTMF_START", 5s, "#")) << a.log_text();
  ASSERT_TRUE(b.command("hangup"));
  EXPECT_TRUE(a.wait_event("CALL_CLOSED", 5s));
}

}  // namespace
