// JitterBuffer on a virtual clock: order, loss, lateness, wrap, timeline jumps, odd packet sizes, adaptation.
#include <gtest/gtest.h>

#include <array>
#include <vector>

#include "osvi/hal/rtp_jitter.hpp"

using osvi::hal::JitterBuffer;

namespace {

constexpr uint32_t kFrame = 160;  // 20 ms at 8 kHz

JitterBuffer make(int min_ms = 20, int max_ms = 200) {
  return JitterBuffer(JitterBuffer::Config{8000, min_ms, max_ms, 40, 400});
}

std::array<uint8_t, 1> tag(uint16_t seq) {
  return {static_cast<uint8_t>(seq)};
}

// Plays one 20 ms period at `now`: returns the sequence number played, -1 concealed gap, -2 empty, -3
// waiting.
int play(JitterBuffer& jb, uint32_t now) {
  const auto n = jb.next(now, kFrame);
  switch (n.kind) {
    case JitterBuffer::Kind::packet:
      jb.pop();
      return n.seq;
    case JitterBuffer::Kind::gap:
      jb.skip(n.duration);
      return -1;
    case JitterBuffer::Kind::empty:
      jb.skip(n.duration);
      return -2;
    case JitterBuffer::Kind::waiting:
      return -3;
  }
  return -4;
}

TEST(JitterBuffer, ReorderedPacketsPlayInOrder) {
  auto jb = make();
  const uint32_t ts0 = 1000;
  // Arrivals at t=0: seq 0; t=20: seq 2 then 1 (swapped); t=40: seq 3.
  EXPECT_EQ(jb.insert(0, ts0, kFrame, tag(0), 0), JitterBuffer::Insert::accepted);
  EXPECT_EQ(play(jb, 0), -3);  // buffering for the target delay
  EXPECT_EQ(jb.insert(2, ts0 + 2 * kFrame, kFrame, tag(2), 160), JitterBuffer::Insert::accepted);
  EXPECT_EQ(jb.insert(1, ts0 + kFrame, kFrame, tag(1), 165), JitterBuffer::Insert::accepted);
  EXPECT_EQ(play(jb, 160), 0);
  EXPECT_EQ(jb.insert(3, ts0 + 3 * kFrame, kFrame, tag(3), 320), JitterBuffer::Insert::accepted);
  EXPECT_EQ(play(jb, 320), 1);
  EXPECT_EQ(play(jb, 480), 2);
  EXPECT_EQ(play(jb, 640), 3);
  EXPECT_EQ(play(jb, 800), -2);
  // A duplicate of something still buffered is refused.
  // Seq 4 arrives after its slot was played as empty: late. Then a duplicate of something still buffered.
  EXPECT_EQ(jb.insert(4, ts0 + 4 * kFrame, kFrame, tag(4), 800), JitterBuffer::Insert::late);
  EXPECT_EQ(jb.insert(5, ts0 + 5 * kFrame, kFrame, tag(5), 810), JitterBuffer::Insert::accepted);
  EXPECT_EQ(jb.insert(5, ts0 + 5 * kFrame, kFrame, tag(5), 820), JitterBuffer::Insert::duplicate);
}

TEST(JitterBuffer, LossIsAGapAndLateIsDropped) {
  auto jb = make();
  jb.insert(0, 0, kFrame, tag(0), 0);
  jb.insert(2, 2 * kFrame, kFrame, tag(2), 320);  // seq 1 lost in transit
  EXPECT_EQ(play(jb, 400), 0);
  EXPECT_EQ(play(jb, 560), -1);  // concealed
  const uint32_t target = jb.target_ms();
  EXPECT_EQ(jb.insert(1, kFrame, kFrame, tag(1), 600), JitterBuffer::Insert::late);
  // It came one frame too late: the playout stretches by a frame (concealed) and the target remembers.
  EXPECT_EQ(play(jb, 720), -1);
  EXPECT_EQ(play(jb, 880), 2);
  EXPECT_GE(jb.target_ms(), target + 20);
}

TEST(JitterBuffer, LatePacketsGrowTheDelaySoTheNextAreInTime) {
  auto jb = make();
  // 20 ms packets; every 5th is held back 30 ms by the path (a reordering switch).
  int late = 0;
  for (uint16_t s = 0; s < 100; ++s) {
    const uint32_t ts = s * kFrame;
    const uint32_t arrival = ts + (s % 5 == 4 ? 240u : 0u);
    if (jb.insert(s, ts, kFrame, tag(s), arrival) == JitterBuffer::Insert::late) ++late;
    play(jb, ts);
    jb.adapt(kFrame);
  }
  EXPECT_LE(late, 2);  // the first one or two teach the buffer; none after
  EXPECT_GE(jb.target_ms(), 30u);
}

TEST(JitterBuffer, SequenceAndTimestampWrap) {
  auto jb = make();
  uint32_t ts = 0xffffffffu - 2 * kFrame + 1;
  uint16_t seq = 65534;
  uint32_t now = 0;
  std::vector<int> played;
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(jb.insert(seq, ts, kFrame, tag(seq), now), JitterBuffer::Insert::accepted) << i;
    played.push_back(play(jb, now));
    ++seq;
    ts += kFrame;
    now += kFrame;
  }
  for (int i = 0; i < 6; ++i) played.push_back(play(jb, now += kFrame));
  // Nothing lost or reordered over the wrap: 65534, 65535, 0, 1, 2, 3 in order after the buffering.
  std::vector<int> seqs;
  for (int p : played)
    if (p >= 0) seqs.push_back(p);
  EXPECT_EQ(seqs, (std::vector<int>{65534, 65535, 0, 1, 2, 3}));
}

TEST(JitterBuffer, TimestampJumpRestarts) {
  auto jb = make();
  jb.insert(0, 5000, kFrame, tag(0), 0);
  EXPECT_EQ(play(jb, 200), 0);
  // The far end restarted with a timeline 10 s away: a new anchor, not ten seconds of concealment.
  EXPECT_EQ(jb.insert(1, 5000 + 80000, kFrame, tag(1), 360), JitterBuffer::Insert::restarted);
  EXPECT_FALSE(jb.playing());
  EXPECT_EQ(play(jb, 600), 1);
}

TEST(JitterBuffer, LongerPacketsThanOurPeriod) {
  auto jb = make();
  // 40 ms packets (320 units): each covers two of our periods.
  jb.insert(0, 0, 320, tag(0), 0);
  jb.insert(1, 320, 320, tag(1), 320);
  auto n = jb.next(400, kFrame);
  ASSERT_EQ(n.kind, JitterBuffer::Kind::packet);
  EXPECT_EQ(n.duration, 320u);
  jb.pop();
  n = jb.next(560, kFrame);
  ASSERT_EQ(n.kind, JitterBuffer::Kind::packet);
  EXPECT_EQ(n.seq, 1);
}

TEST(JitterBuffer, TargetFollowsJitterAndShrinksBack) {
  auto jb = make(20, 200);
  // Packets every 20 ms on the sender's clock, arriving with +-15 ms alternating jitter.
  uint16_t seq = 0;
  uint32_t now = 0;
  for (int i = 0; i < 200; ++i, ++seq) {
    const uint32_t ts = seq * kFrame;
    const uint32_t arrival = ts + ((i % 2) ? 240u : 0u);
    jb.insert(seq, ts, kFrame, tag(seq), arrival);
    now = ts;
    play(jb, now);
    jb.adapt(kFrame);
  }
  EXPECT_GT(jb.jitter_ms(), 10u);
  EXPECT_GT(jb.target_ms(), 30u);
  EXPECT_LE(jb.target_ms(), 200u);
  // A smooth path again: the estimate decays and the target falls back towards the minimum.
  for (int i = 0; i < 400; ++i, ++seq) {
    jb.insert(seq, seq * kFrame, kFrame, tag(seq), seq * kFrame);
    play(jb, seq * kFrame);
    jb.adapt(kFrame);
  }
  EXPECT_LT(jb.target_ms(), 30u);
}

TEST(JitterBuffer, OverfullBufferDropsTowardsTarget) {
  auto jb = make(20, 100);
  // A burst of 20 packets at once (a stalled path releasing): far more than the target.
  for (uint16_t s = 0; s < 20; ++s) jb.insert(s, s * kFrame, kFrame, tag(s), 0);
  int dropped = 0;
  uint32_t now = 200;
  for (int i = 0; i < 60; ++i) {
    play(jb, now);
    dropped += static_cast<int>(jb.adapt(kFrame));
    now += kFrame;
  }
  EXPECT_GT(dropped, 0);
  EXPECT_EQ(jb.insert(100, 100 * kFrame, kFrame, tag(100), now), JitterBuffer::Insert::accepted);
}

TEST(JitterBuffer, OversizedPayloadRefused) {
  auto jb = make();
  std::vector<uint8_t> big(401);
  EXPECT_EQ(jb.insert(0, 0, kFrame, big, 0), JitterBuffer::Insert::too_big);
  EXPECT_EQ(jb.insert(0, 0, 0, tag(0), 0), JitterBuffer::Insert::too_big);
}

}  // namespace
