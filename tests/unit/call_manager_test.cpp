// CallManager with simulated lines, a fake audio port and the scripted upstream on a real sd-event loop:
// what a reload (SIGHUP or a fleet push, both CallManager::set_config) changes for the next call and what it
// leaves to the call in progress.
#include "osvi/calls/call_manager.hpp"

#include <gtest/gtest.h>
#include <systemd/sd-event.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "fake_audio_port.hpp"
#include "test_support.hpp"
#include "upstream_sim.hpp"

namespace osvi::daemon {
namespace {

using audio::EndpointKind;

// Two simulated lines that answer at once; one voice agent with a greeting. `calls` and `audio` vary.
std::string config_text(unsigned dead_air_ms, unsigned tail_ms) {
  return R"({"lines":[)"
         R"({"id":"sim0","type":"sim","sim":{"rings":0,"ring_interval_ms":10}},)"
         R"({"id":"sim1","type":"sim","sim":{"rings":0,"ring_interval_ms":10}}],)"
         R"("calls":{"dead_air_ms":)" +
         std::to_string(dead_air_ms) + R"(},"audio":{"echo":{"tail_ms":)" + std::to_string(tail_ms) +
         R"(}},"agents":[{"agent_uuid":"agent_a","name":"Reception","active":true,)"
         R"("greeting":{"text":"Hello."},"call":{"voicemail":{"detect":false}},)"
         R"("stt":{"base_url":"http://sim"},"llm":{"base_url":"http://sim"},)"
         R"("voice":{"base_url":"http://sim"}}]})";
}

class CallManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loop = EventLoop::create();
    ASSERT_TRUE(loop.ok()) << loop.error().message;
    loop_ = std::move(*loop);
    clock_ = std::make_unique<LoopClock>(*loop_);
    auto store = Store::open(StoreOptions{dir_.file("osvi.db"), 2000, true}, *clock_);
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(*store);
    up_ = std::make_unique<net::SimUpstream>([this](int64_t ms, std::function<void()> fn) {
      auto t = loop_->add_timer(loop_->now_us() + static_cast<uint64_t>(ms) * 1000, std::move(fn));
      ASSERT_TRUE(t.ok());
      timers_.push_back(std::move(*t));
    });
    up_->tts_bytes_per_char = 100;  // short greetings: the test drains them at once
  }

  // Starts lines and the manager with `text`, adjusted by `tweak` (what JSON cannot say in a unit test).
  void launch(const std::string& text, const std::function<void(Config&)>& tweak = {}) {
    auto first = parse_config(text);
    ASSERT_TRUE(first.ok()) << first.error().message;
    config_ = std::make_unique<Config>(std::move(*first));
    if (tweak) tweak(*config_);

    ctx_.loop = loop_.get();
    ctx_.clock = clock_.get();
    ctx_.store = store_.get();
    ctx_.upstream = up_.get();
    ctx_.speech = nullptr;
    ctx_.audio = config_->audio;  // as App::start_calls does
    ctx_.calls = config_->calls;
    // One fake device per call, in launch order; the settings each call opened its audio with.
    ctx_.audio_port = [this](const AudioPortSetup& setup,
                             AudioPort::Listener& l) -> Result<std::unique_ptr<AudioPort>> {
      opened_with_.push_back(setup.audio);
      return audio_[opened_with_.size() - 1].factory()(setup, l);
    };

    lines_ = std::make_unique<LineManager>(*loop_, *clock_);
    manager_ = std::make_unique<CallManager>(ctx_, *lines_);
    manager_->set_config(config_.get());
    lines_->set_event_sink([this](hal::Line& l, const hal::LineEvent& e) { manager_->on_line_event(l, e); });
    ASSERT_TRUE(lines_->start(config_->lines, [] {}).ok());
    ASSERT_TRUE(run_until([this] { return lines_->all_settled(); }));
  }
  void TearDown() override {
    manager_.reset();
    lines_.reset();
    timers_.clear();
  }

  // What App::apply does with an accepted configuration.
  void reload(const std::string& text) {
    auto next = parse_config(text);
    ASSERT_TRUE(next.ok()) << next.error().message;
    auto cfg = std::make_unique<Config>(std::move(*next));
    ctx_.audio = cfg->audio;
    ctx_.calls = cfg->calls;
    manager_->set_config(cfg.get());
    old_configs_.push_back(std::move(config_));
    config_ = std::move(cfg);
  }

  bool run_until(const std::function<bool()>& done, int ms = 5000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      if (sd_event_run(loop_->get(), 10'000) < 0) return false;
    }
    return true;
  }

  std::string place() {
    PlaceCallRequest r;
    r.agent_uuid = "agent_a";
    r.phone_e164 = "+919876543210";
    auto id = manager_->place_call(r);
    EXPECT_TRUE(id.ok()) << id.error().message;
    return id.ok() ? *id : std::string();
  }

  test::TempDir dir_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<LoopClock> clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<net::SimUpstream> up_;
  std::vector<EventSource> timers_;
  std::unique_ptr<Config> config_;
  std::vector<std::unique_ptr<Config>> old_configs_;
  CallContext ctx_;
  test::FakeAudio audio_[2];
  std::vector<AudioConfig> opened_with_;
  std::unique_ptr<LineManager> lines_;
  std::unique_ptr<CallManager> manager_;
};

TEST_F(CallManagerTest, AReloadAppliesToTheNextCallAndTheLiveCallKeepsItsOwn) {
  ASSERT_NO_FATAL_FAILURE(launch(config_text(2500, 128)));
  place();
  ASSERT_TRUE(run_until([&] { return up_->tts_requests().size() == 1; })) << "no greeting for call 1";
  ASSERT_EQ(opened_with_.size(), 1u);
  EXPECT_EQ(opened_with_[0].echo_tail_ms, 128);
  // The stage watchdogs follow calls.dead_air_ms: twice it, within the endpoint's timeout.
  EXPECT_EQ(up_->tts_requests()[0].endpoint.first_byte_timeout_ms, 5000);

  reload(config_text(1000, 256));

  place();
  ASSERT_TRUE(run_until([&] { return up_->tts_requests().size() == 2; })) << "no greeting for call 2";
  ASSERT_EQ(opened_with_.size(), 2u);
  EXPECT_EQ(opened_with_[1].echo_tail_ms, 256) << "the next call must open its audio with the new settings";
  EXPECT_EQ(up_->tts_requests()[1].endpoint.first_byte_timeout_ms, 2000)
      << "the next call must use the new calls.dead_air_ms";

  // Call 1, still live, finishes its greeting and hears the caller: its model request keeps the
  // dead-air budget it started with.
  ASSERT_TRUE(run_until([&] { return up_->in_flight() == 0; }));
  audio_[0].drain();
  up_->push_stt("What are your opening hours?");
  const uint64_t at = audio_[0].position() + 320;
  test::FakeAudio::Frame start;
  start.endpoints = {{EndpointKind::Onset, at, at, 0, 0}, {EndpointKind::SpeechStart, at, at, 0, 0}};
  audio_[0].capture(start);
  for (int i = 0; i < 30; ++i) audio_[0].capture({});
  test::FakeAudio::Frame end;
  end.endpoints = {{EndpointKind::SpeechEnd, audio_[0].position(), at, audio_[0].position() - 320, 8000}};
  audio_[0].capture(end);
  ASSERT_TRUE(run_until([&] { return !up_->chat_requests().empty(); })) << "call 1 never asked the model";
  EXPECT_EQ(up_->chat_requests().back().endpoint.first_byte_timeout_ms, 5000)
      << "a reload must not change the call in progress";
  EXPECT_EQ(manager_->health().live, 2u);
}

TEST_F(CallManagerTest, InboundCallerIdsBecomeE164WithTheSiteCountry) {
  std::string text = config_text(2500, 128);
  text.insert(1, R"("site":{"country":"GB"},)");
  launch(text, [](Config& c) {
    c.lines[0].agent_uuid = "agent_a";
    c.lines[0].sim.incoming_after_ms = 20;
    c.lines[0].sim.caller = "07400123456";  // national format, as a network sends it
  });
  Call* call = nullptr;
  ASSERT_TRUE(run_until([&] { return (call = manager_->call_on(*lines_->find("sim0"))) != nullptr; }));
  EXPECT_EQ(call->record().call_type, "inbound");
  EXPECT_EQ(call->record().phone_number, "+447400123456");
}

}  // namespace
}  // namespace osvi::daemon
