// TtyAudioStream against the modem simulator's PCM pty: capture sample-exact, playback paced by the
// module's capture, the reference paired with its capture, a stalled port reported and recovered.
#include "osvi/hal/tty_audio_stream.hpp"

#include <gtest/gtest.h>
#include <poll.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "modem_sim.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using osvi::hal::StreamEvent;
using osvi::hal::StreamEventKind;
using osvi::hal::TtyAudioOptions;
using osvi::hal::TtyAudioStream;
using osvi::test::ModemSim;

namespace {

constexpr int kRate = 8000;
constexpr size_t kPeriod = kRate / 50;

// Never 0, so every sample of it is told apart from the engine's silence.
std::vector<int16_t> ramp(size_t n, int base) {
  std::vector<int16_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<int16_t>(base + static_cast<int>(i % 997));
  return v;
}

class TtyAudioStreamTest : public ::testing::Test {
 protected:
  void SetUp() override { sim_.enable_audio(dir_.file("modem-audio"), kRate); }

  std::unique_ptr<TtyAudioStream> make(int stall_periods = 10) {
    TtyAudioOptions o;
    o.device = dir_.file("modem-audio");
    o.rate = kRate;
    o.stall_periods = stall_periods;
    auto s = TtyAudioStream::create(o);
    EXPECT_TRUE(s.ok());
    return s.ok() ? std::move(*s) : nullptr;
  }

  // Drains the stream like the loop does, for `t`, or until `until` returns true.
  bool pump(TtyAudioStream& s, std::chrono::milliseconds t, const std::function<bool()>& until = {}) {
    const auto end = std::chrono::steady_clock::now() + t;
    std::vector<int16_t> cap(kPeriod), ref(kPeriod);
    while (std::chrono::steady_clock::now() < end) {
      pollfd p{s.event_fd(), POLLIN, 0};
      ::poll(&p, 1, 20);
      std::array<StreamEvent, 16> ev;
      const size_t n = s.drain_events(ev);
      events_.insert(events_.end(), ev.begin(), ev.begin() + static_cast<std::ptrdiff_t>(n));
      while (s.read_frame(cap, ref)) {
        capture_.insert(capture_.end(), cap.begin(), cap.end());
        reference_.insert(reference_.end(), ref.begin(), ref.end());
      }
      if (until && until()) return true;
    }
    return !until;
  }
  const StreamEvent* find(StreamEventKind k) const {
    for (const StreamEvent& e : events_)
      if (e.kind == k) return &e;
    return nullptr;
  }

  osvi::test::TempDir dir_;
  ModemSim sim_{dir_.file("modem-at")};
  std::vector<StreamEvent> events_;
  std::vector<int16_t> capture_, reference_;
};

TEST_F(TtyAudioStreamTest, BothDirectionsSampleExactAndPacedByTheModule) {
  const std::vector<int16_t> caller = ramp(kRate * 2, 1000);
  const std::vector<int16_t> agent = ramp(kRate, -5000);
  sim_.set_audio_source(caller);
  auto s = make();
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->start().ok());
  ASSERT_TRUE(pump(*s, 3s, [&] { return find(StreamEventKind::opened) != nullptr; }));
  ASSERT_EQ(s->queue_playback(agent), agent.size());
  sim_.set_audio_streaming(true);
  ASSERT_TRUE(pump(*s, 5s, [&] { return capture_.size() >= caller.size() + kRate / 2; }));
  sim_.set_audio_streaming(false);
  pump(*s, 200ms);

  // Module → engine: every sample, in order, from the first one the module sent.
  ASSERT_GE(capture_.size(), caller.size());
  for (size_t i = 0; i < caller.size(); ++i) ASSERT_EQ(capture_[i], caller[i]) << "capture sample " << i;

  // Engine → module: the silence cushion (2 periods), then the queued speech, exactly.
  const std::vector<int16_t> got = sim_.audio_received();
  ASSERT_GE(got.size(), 2 * kPeriod + agent.size());
  for (size_t i = 0; i < 2 * kPeriod; ++i) ASSERT_EQ(got[i], 0) << "cushion sample " << i;
  for (size_t i = 0; i < agent.size(); ++i) ASSERT_EQ(got[2 * kPeriod + i], agent[i]) << "playback " << i;
  // Paced by the module's capture: one period written back per period received, never ahead of it.
  EXPECT_EQ(got.size(), 2 * kPeriod + capture_.size());
  EXPECT_EQ(s->stats().played_samples, agent.size());
  ASSERT_TRUE(find(StreamEventKind::playback_drained));
  EXPECT_EQ(find(StreamEventKind::playback_drained)->played, agent.size());

  // The reference is the agent's speech as it was playing while the capture was taken: the same samples,
  // delayed by what was queued ahead of them (the cushion, and what the tty held).
  ASSERT_EQ(reference_.size(), capture_.size());
  size_t first = 0;
  while (first < reference_.size() && reference_[first] == 0) ++first;
  ASSERT_LT(first + agent.size(), reference_.size());
  EXPECT_GE(first, 2 * kPeriod - kPeriod);  // never before the cushion was heard (one period of slack)
  EXPECT_LE(first, 4 * kPeriod);
  for (size_t i = 0; i < agent.size(); ++i) ASSERT_EQ(reference_[first + i], agent[i]) << "reference " << i;
  s->stop();
}

TEST_F(TtyAudioStreamTest, StalledPortIsReportedAndItsReturnToo) {
  auto s = make(5);  // 100 ms
  ASSERT_TRUE(s);
  sim_.set_audio_streaming(true);
  ASSERT_TRUE(s->start().ok());
  ASSERT_TRUE(pump(*s, 3s, [&] { return capture_.size() >= kRate / 2; }));
  EXPECT_FALSE(find(StreamEventKind::device_lost));

  sim_.stall_audio(true);
  const auto stalled_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(pump(*s, 3s, [&] { return find(StreamEventKind::device_lost) != nullptr; }));
  const auto after = std::chrono::steady_clock::now() - stalled_at;
  EXPECT_EQ(find(StreamEventKind::device_lost)->error, -ETIMEDOUT);
  EXPECT_EQ(find(StreamEventKind::device_lost)->direction, osvi::hal::StreamDirection::capture);
  EXPECT_GE(after, 80ms);               // not before the stall window
  EXPECT_TRUE(s->stats().device_open);  // still listening

  sim_.stall_audio(false);
  ASSERT_TRUE(pump(*s, 3s, [&] { return find(StreamEventKind::device_back) != nullptr; }));
  const size_t before = capture_.size();
  ASSERT_TRUE(pump(*s, 3s, [&] { return capture_.size() >= before + kRate / 4; }));
  s->stop();
}

TEST_F(TtyAudioStreamTest, MissingPortIsLostAndRetried) {
  TtyAudioOptions o;
  o.device = dir_.file("no-such-tty");
  o.rate = kRate;
  o.reopen_backoff_min = 20ms;
  o.reopen_backoff_max = 40ms;
  auto s = TtyAudioStream::create(o);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE((*s)->start().ok());
  ASSERT_TRUE(pump(**s, 3s, [&] { return find(StreamEventKind::device_lost) != nullptr; }));
  EXPECT_EQ(find(StreamEventKind::device_lost)->error, -ENOENT);
  ASSERT_TRUE(pump(**s, 3s, [&] { return (*s)->stats().reopen_attempts >= 2; }));
  EXPECT_EQ(std::count_if(events_.begin(), events_.end(),
                          [](const StreamEvent& e) { return e.kind == StreamEventKind::device_lost; }),
            1);  // once, not per attempt
  (*s)->stop();
}

}  // namespace
