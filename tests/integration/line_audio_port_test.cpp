// LineAudioPort over a real hal::AudioStream (alsa-lib file/null PCMs): each capture frame reaches the
// line's echo canceller with the reference of the same period, even when the audio thread is preempted
// half-way through handing a period over while the loop is reading.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "osvi/audio/echo.hpp"
#include "osvi/base/event_loop.hpp"
#include "osvi/calls/audio_port.hpp"
#include "osvi/hal/audio_stream.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kRate = 16000;
constexpr size_t kFrame = 320;
constexpr int kCaptureFrames = 150;
constexpr int kPlayFrames = 100;   // sample values 1..32000 fit s16
constexpr int kStallAtFrame = 30;  // the hiccup, well after the reference has started carrying the pattern

// Records, per capture frame in arrival order, the reference the line's canceller was given with it.
class Recorder final : public osvi::daemon::AudioPort::Listener {
 public:
  Recorder(osvi::daemon::EventLoop& loop, osvi::hal::AudioStream* stream) : loop_(loop), stream_(stream) {}
  void on_stream_event(const osvi::hal::StreamEvent&) override {}
  void on_capture(const osvi::audio::CaptureOutput& out) override {
    clean.emplace_back(out.clean.begin(), out.clean.end());
    reference.emplace_back(out.reference.begin(), out.reference.end());
    if (clean.size() == kStallAtFrame) {
      // The thread stalls in its next hand-over (after its capture is out) while this loop is still busy
      // here: when the loop looks again, that period's capture may be visible before its reference.
      stream_->inject_handover_stall(100ms);
      std::this_thread::sleep_for(30ms);
    }
    if (clean.size() >= static_cast<size_t>(kCaptureFrames - 10)) loop_.exit(0);
  }
  void on_audio_tick() override {}

  std::vector<std::vector<int16_t>> clean, reference;

 private:
  osvi::daemon::EventLoop& loop_;
  osvi::hal::AudioStream* stream_;
};

TEST(LineAudioPort, EveryCaptureFrameMeetsItsOwnReferenceAcrossAHandoverStall) {
  osvi::test::TempDir dir;
  // Played sample n holds the value 1 + n, so reference sample i of the k-th capture frame (the ring drops
  // nothing here) names the played sample it was, and n - (k * frame + i) is the alignment: one value for
  // the whole call exactly when every capture frame stays paired with its own period's reference.
  std::vector<int16_t> cap(kFrame * kCaptureFrames);
  for (size_t i = 0; i < cap.size(); ++i) cap[i] = static_cast<int16_t>(100 + i / kFrame);
  std::vector<int16_t> play(kFrame * kPlayFrames);
  for (size_t i = 0; i < play.size(); ++i) play[i] = static_cast<int16_t>(1 + i);
  osvi::test::write_file(dir.file("cap.in"),
                         std::string(reinterpret_cast<const char*>(cap.data()), cap.size() * 2));
  osvi::hal::AudioStreamOptions o;
  o.capture_device = "port_cap";
  o.playback_device = "port_play";
  o.rate = kRate;
  o.pace = 20ms;  // these PCMs have no clock: paced like a real line
  // The private tree has no global "null" PCM: the slaves are inline.
  o.alsa_config = "pcm.port_cap { type file slave.pcm { type null } file \"" + dir.file("cap.out") +
                  "\" format raw infile \"" + dir.file("cap.in") + "\" }\n" +
                  "pcm.port_play { type file slave.pcm { type null } file \"" + dir.file("play.out") +
                  "\" format raw }\n";
  auto stream = osvi::hal::AudioStream::create(o);
  ASSERT_TRUE(stream) << stream.error().message;
  osvi::hal::AudioStream* raw = stream->get();

  auto loop = osvi::daemon::EventLoop::create();
  ASSERT_TRUE(loop);
  Recorder rec(**loop, raw);
  osvi::audio::LineChainConfig cc;
  cc.capture.backend = osvi::audio::EchoBackend::null;
  cc.capture.preprocess.denoise = false;
  cc.dtmf = false;
  auto port = osvi::daemon::make_line_audio_port(**loop, std::move(*stream), cc, rec);
  ASSERT_TRUE(port) << port.error().message;
  ASSERT_EQ((*port)->queue_playback(play), play.size());
  ASSERT_TRUE((*port)->start());
  auto guard = (*loop)->add_timer((*loop)->now_us() + 10'000'000, [&] { (*loop)->exit(1); });
  ASSERT_TRUE(guard);
  ASSERT_EQ((*loop)->run(), 0) << "timed out after " << rec.clean.size() << " frames";
  port->reset();

  ASSERT_GE(rec.clean.size(), static_cast<size_t>(kStallAtFrame + 20));
  int pattern_frames = 0;
  int offset = 0;
  for (size_t k = 0; k < rec.clean.size(); ++k) {
    ASSERT_EQ(rec.clean[k].size(), kFrame);
    ASSERT_EQ(rec.reference[k].size(), kFrame);
    for (size_t i = 0; i < kFrame; ++i) {
      const int r = rec.reference[k][i];
      if (r == 0) continue;  // the playback cushion, before the queued audio
      const int d = (r - 1) - static_cast<int>(k * kFrame + i);
      if (pattern_frames++ == 0) offset = d;
      ASSERT_EQ(d, offset) << "capture frame " << k << " sample " << i
                           << " met the reference of another period";
    }
  }
  EXPECT_GT(pattern_frames, static_cast<int>(kFrame) * 40);
}

}  // namespace
