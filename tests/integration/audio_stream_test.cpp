// AudioStream against real alsa-lib: capture, playback, conversion, barge-in and recovery on file/null PCMs.
//
// There is no sound card on the build machine, so the PCMs are alsa-lib's `file` plugin over `null`
// (capture reads a raw infile, playback writes a raw file), optionally behind `plug` to force conversion.
// The configuration is added after the system one through ALSA_CONFIG_PATH, so production code opens them
// by name like any card. These devices have no clock: the stream's `pace` option runs them 20x real time.
#include "osvi/hal/audio_stream.hpp"

#include <gtest/gtest.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <numbers>
#include <span>
#include <string>
#include <vector>

#include "test_support.hpp"
#include "wav.hpp"

using namespace std::chrono_literals;
using osvi::hal::AudioStream;
using osvi::hal::AudioStreamOptions;
using osvi::hal::SchedPolicy;
using osvi::hal::StreamDirection;
using osvi::hal::StreamEvent;
using osvi::hal::StreamEventKind;

namespace {

osvi::test::TempDir* g_dir = nullptr;

std::string dir_file(const std::string& name) {
  return g_dir->file(name);
}

// One configuration for the process: alsa-lib caches its configuration, so it is written once.
class AlsaEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    g_dir = new osvi::test::TempDir();
    auto pcm_file = [](const std::string& name, const std::string& infile) {
      std::string s = "pcm." + name + " { type file; slave.pcm null; file \"" + dir_file(name + ".out") +
                      "\"; format raw";
      if (!infile.empty()) s += "; infile \"" + dir_file(infile) + "\"";
      return s + " }\n";
    };
    auto plug8k = [](const std::string& name, const std::string& slave) {
      return "pcm." + name + " { type plug; slave { pcm \"" + slave +
             "\"; rate 8000; channels 1; format S16_LE } }\n";
    };
    const std::string conf = pcm_file("osvi_cap", "cap.in") + pcm_file("osvi_play", "") +
                             pcm_file("osvi_cap2", "cap2.in") + pcm_file("osvi_play2", "") +
                             pcm_file("osvi_cap8k_raw", "cap8k.in") + pcm_file("osvi_play8k_raw", "") +
                             plug8k("osvi_cap8k", "osvi_cap8k_raw") +
                             plug8k("osvi_play8k", "osvi_play8k_raw") + pcm_file("osvi_late", "late.in");
    osvi::test::write_file(dir_file("test.conf"), conf);
    setenv("ALSA_CONFIG_PATH", ("/usr/share/alsa/alsa.conf:" + dir_file("test.conf")).c_str(), 1);
  }
  void TearDown() override {
    delete g_dir;
    g_dir = nullptr;
  }
};
[[maybe_unused]] auto* const g_env = ::testing::AddGlobalTestEnvironment(new AlsaEnvironment);

void write_raw(const std::string& name, const std::vector<int16_t>& samples) {
  osvi::test::write_file(dir_file(name),
                         std::string(reinterpret_cast<const char*>(samples.data()), samples.size() * 2));
}

std::vector<int16_t> read_raw(const std::string& name) {
  const std::string bytes = osvi::test::read_file(dir_file(name));
  std::vector<int16_t> out(bytes.size() / 2);
  std::memcpy(out.data(), bytes.data(), out.size() * 2);
  return out;
}

// Never zero, never repeating within a run: any reordering, gap or silence insertion shows.
std::vector<int16_t> ramp(size_t n) {
  std::vector<int16_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<int16_t>(1 + i % 30000);
  return v;
}

std::vector<int16_t> sine(size_t n, double freq, int rate, double amplitude = 8000) {
  std::vector<int16_t> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = static_cast<int16_t>(
        std::lround(amplitude * std::sin(2 * std::numbers::pi * freq * static_cast<double>(i) / rate + 0.3)));
  return v;
}

size_t zero_crossings(std::span<const int16_t> v) {
  size_t n = 0;
  for (size_t i = 1; i < v.size(); ++i) n += (v[i - 1] < 0) != (v[i] < 0);
  return n;
}

AudioStreamOptions test_options(const std::string& capture, const std::string& playback) {
  AudioStreamOptions o;
  o.capture_device = capture;
  o.playback_device = playback;
  o.rate = 16000;
  o.pace = 1ms;  // 20 ms periods at 20x real time
  o.capture_ring_ms = 20000;
  o.playback_ring_ms = 10000;
  o.reopen_backoff_min = 10ms;
  o.reopen_backoff_max = 200ms;
  return o;
}

// The loop side of a test: waits on the eventfd like the daemon's loop, keeps every event and sample.
struct Loop {
  explicit Loop(AudioStream& s) : stream(s) {}
  AudioStream& stream;
  std::vector<StreamEvent> events;
  std::vector<int16_t> capture;
  std::vector<int16_t> reference;

  void turn(int timeout_ms) {
    pollfd pfd{stream.event_fd(), POLLIN, 0};
    poll(&pfd, 1, timeout_ms);
    StreamEvent buf[16];
    size_t n = 0;
    while ((n = stream.drain_events(buf)) > 0) events.insert(events.end(), buf, buf + n);
    std::vector<int16_t> cap(stream.period_frames()), ref(stream.period_frames());
    while (stream.read_frame(cap, ref)) {
      capture.insert(capture.end(), cap.begin(), cap.end());
      reference.insert(reference.end(), ref.begin(), ref.end());
    }
  }
  // Turns the loop until pred() holds; false after `timeout`.
  bool until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      turn(20);
    }
    return true;
  }
  const StreamEvent* find(StreamEventKind kind) const {
    for (const auto& e : events)
      if (e.kind == kind) return &e;
    return nullptr;
  }
  size_t count(StreamEventKind kind) const {
    size_t n = 0;
    for (const auto& e : events) n += e.kind == kind;
    return n;
  }
};

std::unique_ptr<AudioStream> make(const AudioStreamOptions& o) {
  auto s = AudioStream::create(o);
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
  return s.ok() ? std::move(s.value()) : nullptr;
}

// Index of the first non-zero sample (the prefill cushion comes first on the playback side).
size_t first_nonzero(const std::vector<int16_t>& v) {
  size_t i = 0;
  while (i < v.size() && v[i] == 0) ++i;
  return i;
}

}  // namespace

TEST(AudioStreamOptionsTest, RejectsWhatTheLinesCannotUse) {
  auto bad = [](auto mutate) {
    AudioStreamOptions o;
    mutate(o);
    return !AudioStream::create(o).ok();
  };
  EXPECT_TRUE(bad([](AudioStreamOptions& o) { o.rate = 44100; }));
  EXPECT_TRUE(bad([](AudioStreamOptions& o) { o.period_ms = 25; }));
  EXPECT_TRUE(bad([](AudioStreamOptions& o) { o.period_ms = 5; }));
  EXPECT_TRUE(bad([](AudioStreamOptions& o) { o.buffer_periods = 4; }));
  EXPECT_TRUE(bad([](AudioStreamOptions& o) { o.channel = 1; }));
  EXPECT_TRUE(bad([](AudioStreamOptions& o) { o.rt_priority = 100; }));
  EXPECT_TRUE(bad([](AudioStreamOptions& o) { o.capture_device.clear(); }));
  EXPECT_FALSE(bad([](AudioStreamOptions& o) { o.rate = 8000, o.period_ms = 10, o.buffer_periods = 2; }));
  auto ok = AudioStream::create(AudioStreamOptions{});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)->period_frames(), 320u);
}

TEST(PlaybackHistoryTest, ReferenceFollowsPlaybackAndCaptureDelays) {
  osvi::hal::PlaybackHistory h(64);
  const auto s = ramp(40);
  h.append(s);  // written = 40
  std::vector<int16_t> ref(10);
  h.reference(0, 0, ref);  // nothing queued: the frame is the last 10 written
  EXPECT_EQ(ref, std::vector<int16_t>(s.begin() + 30, s.end()));
  h.reference(12, 3, ref);  // 15 frames of delay in all
  EXPECT_EQ(ref, std::vector<int16_t>(s.begin() + 15, s.begin() + 25));
  h.reference(35, 0, ref);  // reaches before the first write: silence there
  EXPECT_EQ(ref, (std::vector<int16_t>{0, 0, 0, 0, 0, 1, 2, 3, 4, 5}));
  h.reference(-5, -5, ref);  // negative delays (xrun) count as none
  EXPECT_EQ(ref, std::vector<int16_t>(s.begin() + 30, s.end()));
  const auto more = ramp(100);
  h.append(more);  // 140 written, capacity 64: the oldest are gone
  h.reference(70, 0, ref);
  EXPECT_EQ(ref, std::vector<int16_t>(10, 0));
}

// The history holds exactly what it was asked for (16 periods of 20 ms is 5120 samples, not a power of two):
// wrapped round several times, the reference is still the samples at their delays, and one sample older than
// the capacity is silence.
TEST(PlaybackHistoryTest, ACapacityNotAPowerOfTwoWrapsExactly) {
  osvi::hal::PlaybackHistory h(100);
  const auto s = ramp(1000);
  for (size_t at = 0; at < s.size(); at += 30)
    h.append(std::span<const int16_t>(s).subspan(at, std::min<size_t>(30, s.size() - at)));
  std::vector<int16_t> ref(10);
  h.reference(0, 0, ref);
  EXPECT_EQ(ref, std::vector<int16_t>(s.end() - 10, s.end()));
  h.reference(50, 40, ref);  // begins 100 samples back: the oldest the history still holds
  EXPECT_EQ(ref, std::vector<int16_t>(s.end() - 100, s.end() - 90));
  h.reference(51, 40, ref);  // one further back: that first sample is gone
  std::vector<int16_t> want(s.end() - 101, s.end() - 91);
  want[0] = 0;
  EXPECT_EQ(ref, want);
}

TEST(AudioStreamTest, CaptureIsBitExactAndReferenceSilentWithoutPlayback) {
  auto speech = osvi::test::librivox_speech();
  ASSERT_GE(speech.size(), 32000u);
  speech.resize(32000);  // 2 s
  write_raw("cap.in", speech);
  auto o = test_options("osvi_cap", "osvi_play");
  o.rt_priority = 10;
  auto s = make(o);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->start().ok());
  Loop loop(*s);
  ASSERT_TRUE(loop.until([&] { return loop.capture.size() >= speech.size(); }));
  const auto st = s->stats();
  ::testing::Test::RecordProperty("sched", st.sched == SchedPolicy::fifo ? "fifo" : "other");
  EXPECT_NE(st.sched, SchedPolicy::none);  // fifo as root with CAP_SYS_NICE, other in a container without
  EXPECT_TRUE(st.device_open);
  s->stop();
  EXPECT_EQ(s->stats().sched, SchedPolicy::none);
  ASSERT_NE(loop.find(StreamEventKind::opened), nullptr);
  EXPECT_EQ(std::vector<int16_t>(loop.capture.begin(), loop.capture.begin() + 32000), speech);
  EXPECT_EQ(loop.reference, std::vector<int16_t>(loop.reference.size(), 0));
  EXPECT_GT(st.fill_periods, 0u);  // nothing queued: every period was silence
  EXPECT_EQ(st.played_samples, 0u);
  EXPECT_EQ(st.capture_overruns, 0u);
  EXPECT_EQ(st.hw_period_frames, 320u);
  EXPECT_EQ(st.hw_buffer_frames, 960u);
}

TEST(AudioStreamTest, PlaybackIsInOrderAndReferenceAlignsWithIt) {
  write_raw("cap.in", std::vector<int16_t>(16000 * 4, 7));
  const auto signal = ramp(16000);  // 1 s, queued before start
  auto s = make(test_options("osvi_cap", "osvi_play"));
  ASSERT_TRUE(s);
  ASSERT_EQ(s->queue_playback(signal), signal.size());
  ASSERT_TRUE(s->start().ok());
  Loop loop(*s);
  ASSERT_TRUE(loop.until([&] { return loop.find(StreamEventKind::playback_drained) != nullptr; }));
  ASSERT_TRUE(loop.until([&] { return loop.reference.size() >= signal.size() + 2 * 320; }));
  s->stop();
  loop.turn(0);

  EXPECT_EQ(loop.find(StreamEventKind::playback_drained)->played, signal.size());
  EXPECT_EQ(loop.count(StreamEventKind::playback_drained), 1u);
  EXPECT_EQ(s->stats().played_samples, signal.size());
  const auto out = read_raw("osvi_play.out");
  const size_t start = first_nonzero(out);
  EXPECT_EQ(start, 2u * 320u) << "two periods of silence cushion, then the queue";
  ASSERT_GE(out.size(), start + signal.size() + 320);
  EXPECT_EQ(std::vector<int16_t>(out.begin() + static_cast<long>(start),
                                 out.begin() + static_cast<long>(start + signal.size())),
            signal);
  EXPECT_EQ(
      first_nonzero(std::vector<int16_t>(out.begin() + static_cast<long>(start + signal.size()), out.end())),
      out.size() - start - signal.size())
      << "only silence after the queue ran empty";
  // The file/null devices report no delay: capture period k pairs with the period written before it.
  EXPECT_EQ(std::vector<int16_t>(loop.reference.begin(), loop.reference.begin() + 320),
            std::vector<int16_t>(320, 0));
  EXPECT_EQ(std::vector<int16_t>(loop.reference.begin() + 320, loop.reference.begin() + 320 + 16000), signal);
  EXPECT_EQ(loop.capture[0], 7);
}

TEST(AudioStreamTest, MultichannelDevicePicksAndFillsOurChannel) {
  const auto signal = ramp(8000);
  std::vector<int16_t> stereo;
  for (int16_t v : ramp(16000)) stereo.insert(stereo.end(), {int16_t{-1}, static_cast<int16_t>(-v)});
  write_raw("cap2.in", stereo);
  auto o = test_options("osvi_cap2", "osvi_play2");
  o.channels = 2;
  o.channel = 1;
  auto s = make(o);
  ASSERT_TRUE(s);
  ASSERT_EQ(s->queue_playback(signal), signal.size());
  ASSERT_TRUE(s->start().ok());
  Loop loop(*s);
  ASSERT_TRUE(loop.until([&] {
    return loop.capture.size() >= 16000 && loop.find(StreamEventKind::playback_drained) != nullptr;
  }));
  s->stop();
  std::vector<int16_t> want;
  for (int16_t v : ramp(16000)) want.push_back(static_cast<int16_t>(-v));
  EXPECT_EQ(std::vector<int16_t>(loop.capture.begin(), loop.capture.begin() + 16000), want);

  const auto out = read_raw("osvi_play2.out");
  std::vector<int16_t> ch0, ch1;
  for (size_t i = 0; i + 1 < out.size(); i += 2) ch0.push_back(out[i]), ch1.push_back(out[i + 1]);
  EXPECT_EQ(first_nonzero(ch0), ch0.size()) << "the other line's channel stays silent";
  const size_t start = first_nonzero(ch1);
  ASSERT_GE(ch1.size(), start + signal.size());
  EXPECT_EQ(std::vector<int16_t>(ch1.begin() + static_cast<long>(start),
                                 ch1.begin() + static_cast<long>(start + signal.size())),
            signal);
}

TEST(AudioStreamTest, PlugConvertsAnEightKilohertzDeviceForSixteenKilohertz) {
  write_raw("cap8k.in", sine(8000 * 3, 1000, 8000));
  const auto tone = sine(16000, 1000, 16000);
  auto s = make(test_options("osvi_cap8k", "osvi_play8k"));
  ASSERT_TRUE(s);
  ASSERT_EQ(s->queue_playback(tone), tone.size());
  ASSERT_TRUE(s->start().ok());
  Loop loop(*s);
  ASSERT_TRUE(loop.until([&] {
    return loop.capture.size() >= 20000 && loop.find(StreamEventKind::playback_drained) != nullptr;
  }));
  s->stop();
  // Capture: 1 s at 16 kHz after the resampler settled carries the 1 kHz tone: ~2000 zero crossings.
  const std::span<const int16_t> second(loop.capture.data() + 1600, 16000);
  EXPECT_NEAR(static_cast<double>(zero_crossings(second)), 2000.0, 20.0);
  EXPECT_EQ(loop.find(StreamEventKind::playback_drained)->played, tone.size());

  // Playback: the 8 kHz file holds ~8000 samples of tone (1 s), still 1 kHz.
  const auto out = read_raw("osvi_play8k_raw.out");
  size_t first = 0, last = 0;
  for (size_t i = 0; i < out.size(); ++i)
    if (std::abs(out[i]) > 200) {
      if (first == 0) first = i;
      last = i;
    }
  ASSERT_GT(last, first);
  EXPECT_NEAR(static_cast<double>(last - first + 1), 8000.0, 8.0);
  EXPECT_NEAR(static_cast<double>(zero_crossings(std::span<const int16_t>(out.data() + first, last - first))),
              2000.0, 20.0);
}

TEST(AudioStreamTest, StopPlaybackDropsQueueAndBufferAndReportsWhatWasPlayed) {
  write_raw("cap.in", std::vector<int16_t>(16000 * 20, 1));
  const auto speech = ramp(80000);  // 5 s queued
  auto s = make(test_options("osvi_cap", "osvi_play"));
  ASSERT_TRUE(s);
  ASSERT_EQ(s->queue_playback(speech), speech.size());
  ASSERT_TRUE(s->start().ok());
  Loop loop(*s);
  ASSERT_TRUE(loop.until([&] { return s->stats().played_samples >= 16000; }));
  s->stop_playback();
  ASSERT_TRUE(loop.until([&] { return loop.find(StreamEventKind::playback_stopped) != nullptr; }));
  const StreamEvent stopped = *loop.find(StreamEventKind::playback_stopped);
  EXPECT_EQ(s->playback_queued(), 0u);
  EXPECT_GE(stopped.played, 16000u);
  EXPECT_LT(stopped.played, speech.size());
  EXPECT_EQ(stopped.played + stopped.dropped, speech.size());
  EXPECT_EQ(s->stats().played_samples, stopped.played);
  // Afterwards the line stays silent.
  const uint64_t periods = s->stats().periods;
  ASSERT_TRUE(loop.until([&] { return s->stats().periods >= periods + 20; }));
  s->stop();
  EXPECT_EQ(loop.find(StreamEventKind::playback_drained), nullptr);
  const auto out = read_raw("osvi_play.out");
  const size_t start = first_nonzero(out);
  ASSERT_GE(out.size(), start + stopped.played + 20 * 320);
  EXPECT_EQ(std::vector<int16_t>(out.begin() + static_cast<long>(start),
                                 out.begin() + static_cast<long>(start + stopped.played)),
            std::vector<int16_t>(speech.begin(), speech.begin() + static_cast<long>(stopped.played)));
  const std::vector<int16_t> after(out.begin() + static_cast<long>(start + stopped.played), out.end());
  EXPECT_EQ(first_nonzero(after), after.size());
}

TEST(AudioStreamTest, QueueIsRefusedUntilAPendingStopPlaybackIsDone) {
  write_raw("cap.in", std::vector<int16_t>(16000 * 4, 1));
  auto s = make(test_options("osvi_cap", "osvi_play"));
  ASSERT_TRUE(s);
  const auto old = ramp(3200);
  ASSERT_EQ(s->queue_playback(old), old.size());
  s->stop_playback();  // the thread is not running: the request stays pending
  EXPECT_TRUE(s->stop_playback_pending());
  EXPECT_EQ(s->queue_playback(ramp(320)), 0u);
  ASSERT_TRUE(s->start().ok());
  Loop loop(*s);
  ASSERT_TRUE(loop.until([&] { return loop.find(StreamEventKind::playback_stopped) != nullptr; }));
  EXPECT_EQ(loop.find(StreamEventKind::playback_stopped)->played, 0u);
  EXPECT_EQ(loop.find(StreamEventKind::playback_stopped)->dropped, old.size());
  EXPECT_FALSE(s->stop_playback_pending());
  const auto next = ramp(640);
  EXPECT_EQ(s->queue_playback(next), next.size());
  ASSERT_TRUE(loop.until([&] { return loop.find(StreamEventKind::playback_drained) != nullptr; }));
  EXPECT_EQ(loop.find(StreamEventKind::playback_drained)->played, next.size());
}

TEST(AudioStreamTest, MissingDeviceIsReportedAndRetriedAndStopStaysPrompt) {
  auto o = test_options("osvi_no_such_pcm", "osvi_play");
  auto s = make(o);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->start().ok());
  Loop loop(*s);
  ASSERT_TRUE(loop.until([&] { return s->stats().reopen_attempts >= 3; }));
  s->stop();
  ASSERT_NE(loop.find(StreamEventKind::device_lost), nullptr);
  EXPECT_LT(loop.find(StreamEventKind::device_lost)->error, 0);
  EXPECT_EQ(loop.count(StreamEventKind::device_lost), 1u) << "one report per loss, not per attempt";
  EXPECT_EQ(loop.find(StreamEventKind::opened), nullptr);
  EXPECT_FALSE(s->stats().device_open);
  EXPECT_EQ(s->stats().device_losses, 1u);

  // Stop while the thread waits out a long backoff step: the stop eventfd ends the wait.
  o.reopen_backoff_min = 5s;
  o.reopen_backoff_max = 5s;
  auto slow = make(o);
  ASSERT_TRUE(slow);
  ASSERT_TRUE(slow->start().ok());
  Loop slow_loop(*slow);
  ASSERT_TRUE(slow_loop.until([&] { return slow_loop.find(StreamEventKind::device_lost) != nullptr; }));
  const auto t0 = std::chrono::steady_clock::now();
  slow->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s) << "stop() must not wait for the 5 s backoff";
}

TEST(AudioStreamTest, DeviceThatAppearsLaterIsOpenedAndReportedBack) {
  std::remove(dir_file("late.in").c_str());
  auto s = make(test_options("osvi_late", "osvi_play"));
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->start().ok());
  Loop loop(*s);
  ASSERT_TRUE(loop.until([&] { return loop.find(StreamEventKind::device_lost) != nullptr; }));
  const auto speech = ramp(3200);
  write_raw("late.in", speech);
  ASSERT_TRUE(loop.until([&] {
    return loop.find(StreamEventKind::device_back) != nullptr && loop.capture.size() >= speech.size();
  }));
  s->stop();
  EXPECT_EQ(s->stats().reopens, 1u);
  EXPECT_GE(s->stats().reopen_attempts, 1u);
  EXPECT_EQ(std::vector<int16_t>(loop.capture.begin(), loop.capture.begin() + 3200), speech);
}

TEST(AudioStreamTest, XrunSuspendAndLossAreRecoveredCountedAndReported) {
  write_raw("cap.in", std::vector<int16_t>(16000 * 20, 3));
  auto s = make(test_options("osvi_cap", "osvi_play"));
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->start().ok());
  Loop loop(*s);
  ASSERT_TRUE(loop.until([&] { return loop.find(StreamEventKind::opened) != nullptr; }));

  s->inject_error(StreamDirection::capture, -EPIPE);
  ASSERT_TRUE(loop.until([&] { return loop.count(StreamEventKind::xrun) == 1; }));
  EXPECT_EQ(loop.find(StreamEventKind::xrun)->direction, StreamDirection::capture);
  s->inject_error(StreamDirection::playback, -EPIPE);
  ASSERT_TRUE(loop.until([&] { return loop.count(StreamEventKind::xrun) == 2; }));
  EXPECT_EQ(loop.events.back().kind, StreamEventKind::xrun);
  s->inject_error(StreamDirection::capture, -ESTRPIPE);
  ASSERT_TRUE(loop.until([&] { return loop.find(StreamEventKind::suspended) != nullptr; }));
  auto st = s->stats();
  EXPECT_EQ(st.xruns, 2u);
  EXPECT_EQ(st.suspends, 1u);
  EXPECT_EQ(st.recoveries, 3u);

  s->inject_error(StreamDirection::playback, -ENODEV);
  ASSERT_TRUE(loop.until([&] { return loop.find(StreamEventKind::device_back) != nullptr; }));
  EXPECT_EQ(loop.find(StreamEventKind::device_lost)->error, -ENODEV);
  const uint64_t periods = s->stats().periods;
  ASSERT_TRUE(loop.until([&] { return s->stats().periods >= periods + 10; })) << "audio flows again";
  s->stop();
  st = s->stats();
  EXPECT_EQ(st.device_losses, 1u);
  EXPECT_EQ(st.reopens, 1u);
  EXPECT_EQ(st.events_dropped, 0u);
  EXPECT_EQ(loop.capture.back(), 3);
}
