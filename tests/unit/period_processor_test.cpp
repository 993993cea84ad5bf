// The streams' PeriodProcessor hook (issue 18), on an RtpStream over loopback: set, the media thread hands it
// every period with its reference instead of queueing it (and still wakes the loop); it can only change
// while the thread is stopped; unset again, the periods go back into the capture ring.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "osvi/hal/rtp_stream.hpp"

namespace osvi::hal {
namespace {

using namespace std::chrono_literals;

// Runs on the media thread: keeps what it is given in buffers sized up front (the real-time rules).
class Collect final : public PeriodProcessor {
 public:
  explicit Collect(size_t max_samples) { reference.reserve(max_samples); }
  void process(std::span<const int16_t> capture, std::span<const int16_t> ref) noexcept override {
    if (capture.size() != ref.size()) bad = true;
    period = capture.size();
    for (int16_t s : ref)
      if (reference.size() < reference.capacity()) reference.push_back(s);
    calls.fetch_add(1);
  }
  std::vector<int16_t> reference;  // read by the test only after stop() joined the thread
  size_t period = 0;
  bool bad = false;
  std::atomic<int> calls{0};
};

TEST(PeriodProcessor, TheMediaThreadRunsItOnEveryPeriodInsteadOfQueueingIt) {
  auto sockets = RtpSockets::bind("127.0.0.1", 0, 0);
  ASSERT_TRUE(sockets) << sockets.error().message;
  RtpStreamOptions o;
  o.codec = RtpCodec::pcmu;
  o.rate = 8000;
  o.remote_ip = "127.0.0.1";
  o.remote_rtp_port = 9;  // discard: nobody answers, the stream sends and ticks all the same
  o.media_timeout_ms = 0;
  auto made = RtpStream::create(o, std::move(*sockets));
  ASSERT_TRUE(made) << made.error().message;
  RtpStream& s = **made;

  Collect proc(8000);
  ASSERT_TRUE(s.set_processor(&proc));
  // The agent's speech: a ramp, so the reference shows it went by in order, period by period.
  std::vector<int16_t> speech(1600);
  for (size_t i = 0; i < speech.size(); ++i) speech[i] = static_cast<int16_t>(1 + i);
  ASSERT_EQ(s.queue_playback(speech), speech.size());
  ASSERT_TRUE(s.start());
  EXPECT_EQ(s.set_processor(nullptr).error().code, -EBUSY);  // not while the thread runs

  // The loop is still woken per period, though nothing waits in the capture ring.
  pollfd pfd{s.event_fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 1000), 1);
  std::vector<int16_t> cap(s.period_frames()), ref(s.period_frames());
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (proc.calls.load() < 15 && std::chrono::steady_clock::now() < deadline) {
    EXPECT_FALSE(s.read_frame(cap, ref));
    std::this_thread::sleep_for(10ms);
  }
  s.stop();
  ASSERT_GE(proc.calls.load(), 15);
  EXPECT_FALSE(proc.bad);
  EXPECT_EQ(proc.period, s.period_frames());
  EXPECT_EQ(s.stats().periods, static_cast<uint64_t>(proc.calls.load()));
  EXPECT_EQ(s.stats().capture_overruns, 0u);
  // The reference of each tick is what was sent in it: the speech in order, then silence.
  ASSERT_GE(proc.reference.size(), speech.size());
  EXPECT_TRUE(std::equal(speech.begin(), speech.end(), proc.reference.begin()));

  // Unset (stopped: allowed), the periods go into the capture ring again.
  ASSERT_TRUE(s.set_processor(nullptr));
  const int before = proc.calls.load();
  ASSERT_TRUE(s.start());
  bool got = false;
  const auto deadline2 = std::chrono::steady_clock::now() + 2s;
  while (!got && std::chrono::steady_clock::now() < deadline2) {
    got = s.read_frame(cap, ref);
    if (!got) std::this_thread::sleep_for(10ms);
  }
  s.stop();
  EXPECT_TRUE(got);
  EXPECT_EQ(proc.calls.load(), before);
}

}  // namespace
}  // namespace osvi::hal
