// Browser test calls, in process: the web AudioPort driven frame by frame by a fake browser (pacing to the
// browser's clock, barge-in within a frame, the recorder's two channels, drained and stopped events), and the
// one-time tickets on a manual clock (one use, expiry, the web call limit, the ticket cap).
#include "osvi/calls/web_call.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "alloc_counter.hpp"
#include "osvi/audio/recording.hpp"
#include "osvi/config/config.hpp"
#include "test_support.hpp"
#include "virtual_time.hpp"

namespace osvi::daemon {
namespace {

using hal::StreamEventKind;

// The browser end of the link: what it was sent, and its clears.
class FakeLink final : public WebAudioLink {
 public:
  bool send_audio(std::span<const int16_t> s) override {
    if (refuse) return false;
    sent.insert(sent.end(), s.begin(), s.end());
    ++messages;
    return true;
  }
  void clear_playback() override { ++clears; }
  void attach(WebAudioPort* p) override { port = p; }

  std::vector<int16_t> sent;
  int messages = 0;
  int clears = 0;
  bool refuse = false;
  WebAudioPort* port = nullptr;
};

// The call's side: events, captures (their reference), ticks.
class Recorder final : public AudioPort::Listener {
 public:
  void on_stream_event(const hal::StreamEvent& e) override { events.push_back(e); }
  void on_capture(const audio::CaptureOutput& f) override {
    ++captures;
    refs.insert(refs.end(), f.reference.begin(), f.reference.end());
    for (const auto& e : f.endpoints)
      if (e.kind == audio::EndpointKind::SpeechStart) ++speech_starts;
  }
  void on_audio_tick() override { ++ticks; }
  std::vector<hal::StreamEvent> events;
  std::vector<int16_t> refs;
  int captures = 0, ticks = 0, speech_starts = 0;
  int count(StreamEventKind k) const {
    return static_cast<int>(
        std::count_if(events.begin(), events.end(), [k](const auto& e) { return e.kind == k; }));
  }
};

class WebAudioPortTest : public ::testing::Test {
 protected:
  void SetUp() override {
    link_ = std::make_shared<FakeLink>();
    AudioPortSetup setup;
    setup.endpoint.kind = hal::AudioEndpoint::Kind::web;
    auto p = WebAudioPort::create(setup, link_, calls_);
    ASSERT_TRUE(p.ok()) << p.error().message;
    port_ = std::move(*p);
    ASSERT_EQ(link_->port, port_.get());
    ASSERT_TRUE(port_->start().ok());
  }
  void frame(int16_t level = 0) {
    std::vector<int16_t> mic(kWebFrameSamples, level);
    port_->on_frame(mic);
  }
  static std::vector<int16_t> ramp(size_t n) {
    std::vector<int16_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<int16_t>(i % 30000 + 1);
    return v;
  }

  std::shared_ptr<FakeLink> link_;
  Recorder calls_;
  std::unique_ptr<WebAudioPort> port_;
};

constexpr size_t kAhead = (WebAudioPort::kCushionFrames + 1) * kWebFrameSamples;

TEST_F(WebAudioPortTest, OpenedAtTheFirstFrameAndPacedToTheBrowsersClock) {
  frame();
  ASSERT_EQ(calls_.count(StreamEventKind::opened), 1);
  EXPECT_EQ(calls_.captures, 1);
  EXPECT_EQ(calls_.ticks, 1);

  // Two seconds of speech: one second is accepted (the queue), the cushion goes out at once.
  const auto speech = ramp(2 * kWebRate);
  EXPECT_EQ(port_->queue_playback(speech), static_cast<size_t>(kWebRate));
  EXPECT_EQ(link_->sent.size(), kAhead);
  // Then one frame out per frame in: never more than the cushion ahead of what the browser played.
  for (int i = 0; i < 20; ++i) {
    frame();
    EXPECT_EQ(port_->sent_samples() - port_->played_samples(), kAhead) << i;
    EXPECT_EQ(port_->played_samples(), (i + 1) * kWebFrameSamples);
  }
  EXPECT_EQ(link_->sent.size(), kAhead + 20 * kWebFrameSamples);
  // What was sent is the speech, in order, in whole frames.
  EXPECT_TRUE(std::equal(link_->sent.begin(), link_->sent.end(), speech.begin()));
  EXPECT_EQ(link_->messages, static_cast<int>(link_->sent.size() / kWebFrameSamples));
}

TEST_F(WebAudioPortTest, ReferenceAndRecorderGetWhatTheBrowserPlayedFrameByFrame) {
  audio::MemorySink sink;
  audio::RecordingConfig rc;
  auto rec = audio::CallRecorder::create(sink, rc);
  ASSERT_TRUE(rec.ok()) << rec.error().message;
  port_->attach_recorder(&*rec);
  frame();
  const auto speech = ramp(3 * kWebFrameSamples + 100);
  ASSERT_EQ(port_->queue_playback(speech), speech.size());
  for (int i = 0; i < 6; ++i) frame();
  port_->attach_recorder(nullptr);
  // Frame 1 had nothing playing; frames 2..5 carry the speech (its last frame short, padded with silence).
  ASSERT_EQ(calls_.refs.size(), 7 * kWebFrameSamples);
  EXPECT_TRUE(std::all_of(calls_.refs.begin(), calls_.refs.begin() + kWebFrameSamples,
                          [](int16_t s) { return s == 0; }));
  EXPECT_TRUE(std::equal(speech.begin(), speech.end(), calls_.refs.begin() + kWebFrameSamples));
  EXPECT_TRUE(std::all_of(calls_.refs.begin() + static_cast<std::ptrdiff_t>(kWebFrameSamples + speech.size()),
                          calls_.refs.end(), [](int16_t s) { return s == 0; }));
  // The recorder took one stereo frame per browser frame.
  auto summary = rec->finish();
  ASSERT_TRUE(summary.ok());
  EXPECT_EQ(summary->frames, 7u);
  EXPECT_EQ(summary->samples, 7 * kWebFrameSamples);
  // The burst drained: reported at the next frame with what was heard.
  frame();
  ASSERT_EQ(calls_.count(StreamEventKind::playback_drained), 1);
  EXPECT_EQ(calls_.events.back().played, speech.size());
}

// The loop's half of a web call's audio, frame by frame: a browser frame in (chain, reference, the Call's
// capture and tick), the agent's speech resampled and queued, a frame out on the link. Once warm, nothing
// on it allocates (issue 18's rule; the socket's half is websocket_test's).
TEST_F(WebAudioPortTest, SteadyFramesAllocateNothing) {
  link_->sent.reserve(1 << 20);
  calls_.refs.reserve(1 << 20);
  calls_.events.reserve(1024);
  std::vector<int16_t> mic(kWebFrameSamples, 100);
  std::vector<int16_t> tts(480, 1000);  // 20 ms of 24 kHz TTS
  std::vector<int16_t> resampled;
  resampled.reserve(4096);
  uint64_t news = 0, mallocs = 0;
  for (int i = 0; i < 80; ++i) {
    const osvi::test::AllocSnapshot snap;
    resampled.clear();
    port_->resample_tts(tts, resampled);
    port_->queue_playback(resampled);
    port_->on_frame(mic);
    if (i >= 20) {
      news += snap.new_delta();
      mallocs += snap.malloc_delta();
    }
  }
  EXPECT_EQ(news, 0u);
  EXPECT_EQ(mallocs, 0u);
  EXPECT_EQ(calls_.captures, 80);
  EXPECT_GT(link_->messages, 60);
}

TEST_F(WebAudioPortTest, BargeInStopsWithinAFrame) {
  frame();
  ASSERT_EQ(port_->queue_playback(ramp(kWebRate)), static_cast<size_t>(kWebRate));
  for (int i = 0; i < 10; ++i) frame();
  const size_t sent_before = link_->sent.size();
  port_->stop_playback();
  // The browser is told to drop its queue at once; nothing more is sent.
  EXPECT_EQ(link_->clears, 1);
  EXPECT_EQ(port_->queued(), 0u);
  EXPECT_EQ(port_->in_flight(), 0u);
  frame();
  ASSERT_EQ(calls_.count(StreamEventKind::playback_stopped), 1);
  const hal::StreamEvent& stopped = calls_.events.back();
  EXPECT_EQ(stopped.played, 10 * kWebFrameSamples);
  EXPECT_EQ(stopped.played + stopped.dropped, static_cast<uint64_t>(kWebRate));
  for (int i = 0; i < 10; ++i) frame();
  EXPECT_EQ(link_->sent.size(), sent_before);
  // The next burst starts afresh.
  port_->queue_playback(ramp(kWebFrameSamples));
  EXPECT_EQ(link_->sent.size(), sent_before + kWebFrameSamples);
}

TEST_F(WebAudioPortTest, ALinkThatFailsStopsSending) {
  frame();
  link_->refuse = true;
  port_->queue_playback(ramp(kWebRate));
  EXPECT_TRUE(link_->sent.empty());
  link_->refuse = false;
  for (int i = 0; i < 5; ++i) frame();
  EXPECT_TRUE(link_->sent.empty());  // the link ends the call; the port does not retry
}

TEST_F(WebAudioPortTest, ForeignFramesAreIgnored) {
  std::vector<int16_t> odd(100, 1000);
  port_->on_frame(odd);
  EXPECT_EQ(calls_.captures, 0);
  EXPECT_EQ(calls_.ticks, 0);
  frame();
  EXPECT_EQ(calls_.captures, 1);
}

TEST_F(WebAudioPortTest, DestroyedPortDetachesFromTheLink) {
  port_.reset();
  EXPECT_EQ(link_->port, nullptr);
}

// ---- tickets

class WebTicketsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loop = EventLoop::create();
    ASSERT_TRUE(loop.ok());
    loop_ = std::move(*loop);
    auto store = Store::open(StoreOptions{dir_.file("osvi.db"), 2000, true}, vt_.clock);
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(*store);
    auto cfg = parse_config(
        R"({"agents":[{"agent_uuid":"agent_a","name":"A","active":true},{"agent_uuid":"agent_off","name":"B"},)"
        R"({"agent_uuid":"agent_chat","name":"C","active":true,"mode":"chat"}]})");
    ASSERT_TRUE(cfg.ok()) << cfg.error().message;
    config_ = std::make_unique<Config>(std::move(*cfg));
    ctx_.loop = loop_.get();
    ctx_.clock = &vt_.clock;
    ctx_.store = store_.get();
    ctx_.timer = vt_.timer_factory();
    lines_ = std::make_unique<LineManager>(*loop_, vt_.clock);
    manager_ = std::make_unique<CallManager>(ctx_, *lines_);
    manager_->set_config(config_.get());
  }
  std::unique_ptr<WebCalls> make(size_t max_calls, size_t max_tickets = 16) {
    WebCallsOptions o;
    o.max_calls = max_calls;
    o.max_tickets = max_tickets;
    return std::make_unique<WebCalls>(ctx_, *manager_, o);
  }

  test::TempDir dir_;
  test::VirtualTime vt_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Config> config_;
  CallContext ctx_;
  std::unique_ptr<LineManager> lines_;
  std::unique_ptr<CallManager> manager_;
};

TEST_F(WebTicketsTest, OneUseExpiryAndAgentChecks) {
  auto web = make(4);
  EXPECT_EQ(web->issue("nobody").error().code, -ENOENT);
  EXPECT_EQ(web->issue("agent_off").error().code, -ENOENT);
  EXPECT_EQ(web->issue("agent_chat").error().code, -ENOENT);

  auto t = web->issue("agent_a");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->ticket.size(), 32u);
  EXPECT_EQ(t->ws_path, "/v1/web_calls/ws?ticket=" + t->ticket);
  EXPECT_EQ(t->expires_at_ms, vt_.clock.wall_ms() + 30'000);
  auto again = web->issue("agent_a");
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->ticket, t->ticket);

  auto agent = web->redeem(t->ticket);
  ASSERT_TRUE(agent.ok()) << agent.error().message;
  EXPECT_EQ(*agent, "agent_a");
  EXPECT_EQ(web->redeem(t->ticket).error().code, -ENOENT);  // one use
  EXPECT_EQ(web->redeem("").error().code, -ENOENT);

  // Valid for 30 s, not a millisecond more; an expired ticket is spent too.
  vt_.clock.advance_ms(30'000);
  EXPECT_EQ(web->redeem(again->ticket).error().code, -ETIMEDOUT);
  EXPECT_EQ(web->redeem(again->ticket).error().code, -ENOENT);
  EXPECT_EQ(web->tickets(), 0u);
}

TEST_F(WebTicketsTest, LimitsCountLiveCallsAndUnusedTickets) {
  auto web = make(2);
  ASSERT_TRUE(web->issue("agent_a").ok());
  ASSERT_TRUE(web->issue("agent_a").ok());
  EXPECT_EQ(web->issue("agent_a").error().code, -EBUSY);
  // Unused tickets stop counting once expired.
  vt_.clock.advance_ms(30'001);
  EXPECT_TRUE(web->issue("agent_a").ok());

  auto many = make(100, 3);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(many->issue("agent_a").ok());
  EXPECT_EQ(many->issue("agent_a").error().code, -ENOSPC);
}

}  // namespace
}  // namespace osvi::daemon
