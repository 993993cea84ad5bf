// CallManager with simulated lines, a fake audio port and the scripted upstream on a real sd-event loop:
// what a reload (SIGHUP or a fleet push, both CallManager::set_config) changes for the next call and what it
// leaves to the call in progress; what the dialler relies on (caller-chosen call ids, idle lines, finished
// listeners); the do-not-disturb list checked again when a queued call reaches a line.
#include "osvi/calls/call_manager.hpp"

#include <gtest/gtest.h>
#include <systemd/sd-event.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "fake_audio_port.hpp"
#include "osvi/base/ids.hpp"
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
    lines_->set_event_sink([this](hal::Line& l, const hal::LineEvent& e) {
      if (e.type == hal::LineEvent::Type::answered) ++answered_;
      manager_->on_line_event(l, e);
    });
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

  std::string place(const std::string& phone = "+919876543210") {
    PlaceCallRequest r;
    r.agent_uuid = "agent_a";
    r.phone_e164 = phone;
    auto id = manager_->place_call(r);
    EXPECT_TRUE(id.ok()) << id.error().message;
    return id.ok() ? *id : std::string();
  }
  CallRecord stored(const std::string& id) {
    auto r = store_->calls().get(id);
    EXPECT_TRUE(r.ok() && r->has_value()) << id;
    return r.ok() && r->has_value() ? **r : CallRecord{};
  }
  // Both lines busy with a connected call each.
  void fill_lines() {
    place();
    place();
    ASSERT_TRUE(run_until([&] { return opened_with_.size() == 2; })) << "the two calls never connected";
    EXPECT_EQ(manager_->idle_lines(), 0u);
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
  test::FakeAudio audio_[4];  // more than the lines: a call dialled by mistake must not crash the test
  int answered_ = 0;          // answered line events (calls the remote side picked up)
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

TEST_F(CallManagerTest, QueuedCallPutOnTheDndListWhileWaitingIsNeverDialled) {
  ASSERT_NO_FATAL_FAILURE(launch(config_text(2500, 128)));
  std::vector<CallRecord> finished;
  manager_->add_finished_listener([&](const CallRecord& r) { finished.push_back(r); });
  ASSERT_NO_FATAL_FAILURE(fill_lines());
  const std::string phone = "+919800000042";
  const std::string queued = place(phone);
  EXPECT_EQ(manager_->health().queued, 1u);
  // On the list while the call waits for a line.
  ASSERT_TRUE(
      store_->dnd().add_entry("agent_a", phone, std::string("asked by email"), "api", std::nullopt).ok());
  // A line frees up: the queue drains, and the number is checked again before it is dialled.
  manager_->call_on(*lines_->find("sim0"))->abort("test");
  ASSERT_TRUE(run_until([&] { return finished.size() == 2; }));
  EXPECT_EQ(manager_->health().queued, 0u);
  const CallRecord r = stored(queued);
  EXPECT_EQ(r.status, "failed");
  EXPECT_EQ(r.call_ended_reason, "do_not_disturb");
  EXPECT_EQ(r.call_ended_by, "system");
  EXPECT_TRUE(r.ended_at_ms.has_value());
  EXPECT_FALSE(r.line.has_value());
  EXPECT_EQ(finished[1].call_id, queued) << "the listener hears of the call closed before a line";
  // Nothing was dialled for it: still the two calls of the start, and sim0 is free again.
  run_until([] { return false; }, 300);
  EXPECT_EQ(answered_, 2);
  EXPECT_EQ(opened_with_.size(), 2u);
  EXPECT_EQ(manager_->idle_lines(), 1u);
  // At request time the list refuses at once, without a record.
  PlaceCallRequest again;
  again.agent_uuid = "agent_a";
  again.phone_e164 = phone;
  auto refused = manager_->place_call(again);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, -EPERM);
}

TEST_F(CallManagerTest, AQueuedCallNotOnTheListIsDialledWhenALineFrees) {
  ASSERT_NO_FATAL_FAILURE(launch(config_text(2500, 128)));
  ASSERT_NO_FATAL_FAILURE(fill_lines());
  const std::string queued = place("+919800000043");
  ASSERT_TRUE(store_->dnd()
                  .add_entry("agent_a", "+919800000044", std::nullopt, "api", std::nullopt)
                  .ok());  // another number
  manager_->call_on(*lines_->find("sim1"))->abort("test");
  ASSERT_TRUE(run_until([&] { return answered_ == 3; })) << "the queued call was not dialled";
  const Call* c = manager_->call_on(*lines_->find("sim1"));
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->id(), queued);
}

TEST_F(CallManagerTest, ACallerChosenCallIdIsTheCallsIdAndIsNeverUsedTwice) {
  ASSERT_NO_FATAL_FAILURE(launch(config_text(2500, 128)));
  PlaceCallRequest r;
  r.agent_uuid = "agent_a";
  r.phone_e164 = "+919876543210";
  r.call_id = new_uuid_v7(clock_->wall_ms());
  r.retry_count = 2;  // a retry_config retry, as the dialler places it
  auto id = manager_->place_call(r);
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_EQ(*id, *r.call_id);
  EXPECT_EQ(stored(*id).phone_number, "+919876543210");
  EXPECT_EQ(stored(*id).retry_count, 2) << "the record says which retry it is";
  ASSERT_TRUE(run_until([&] { return answered_ == 1; }));

  // The same id again (a dialler retrying after a restart): refused, nothing dialled.
  auto twice = manager_->place_call(r);
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().code, -EEXIST);
  EXPECT_NE(twice.error().message.find("call_id"), std::string::npos) << twice.error().message;
  r.call_id = "not-a-uuid";
  auto bad = manager_->place_call(r);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, -EINVAL);
  run_until([] { return false; }, 200);
  EXPECT_EQ(answered_, 1);
  auto count = store_->calls().count();
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 1);
}

// A line held by the audio loopback (LineDiagnostics) is not dialled: calls go to the other line or wait, and
// LineManager::release hands the held line back so a waiting call is placed at once.
TEST_F(CallManagerTest, AHeldLineIsNotDialledAndItsReleasePlacesTheWaitingCall) {
  ASSERT_NO_FATAL_FAILURE(launch(config_text(2500, 128)));
  hal::Line* sim0 = lines_->find("sim0");
  sim0->set_held(true);
  EXPECT_EQ(manager_->idle_lines(), 1u);
  place();
  ASSERT_TRUE(run_until([&] { return answered_ == 1; }));
  EXPECT_EQ(manager_->call_on(*sim0), nullptr);
  ASSERT_NE(manager_->call_on(*lines_->find("sim1")), nullptr);
  const std::string waiting = place("+919800000045");
  run_until([] { return false; }, 200);
  EXPECT_EQ(manager_->health().queued, 1u) << "dialled on the held line";
  lines_->release(*sim0);
  EXPECT_FALSE(sim0->held());
  ASSERT_TRUE(run_until([&] { return answered_ == 2; })) << "the waiting call was not placed on release";
  ASSERT_NE(manager_->call_on(*sim0), nullptr);
  EXPECT_EQ(manager_->call_on(*sim0)->id(), waiting);
}

TEST_F(CallManagerTest, IdleLinesCountsTheLinesThatCouldDialNow) {
  ASSERT_NO_FATAL_FAILURE(launch(config_text(2500, 128)));
  EXPECT_EQ(manager_->idle_lines(), 2u);
  place();
  EXPECT_EQ(manager_->idle_lines(), 1u);
  place();
  EXPECT_EQ(manager_->idle_lines(), 0u);
  place();  // queued: the count stays at 0, never negative
  EXPECT_EQ(manager_->idle_lines(), 0u);
  EXPECT_EQ(manager_->health().queued, 1u);
}

TEST_F(CallManagerTest, EveryFinishedListenerHearsEachCallAfterTheEventThatEndedIt) {
  ASSERT_NO_FATAL_FAILURE(launch(config_text(2500, 128)));
  std::vector<std::string> a, b;
  const int ha = manager_->add_finished_listener([&](const CallRecord& r) {
    EXPECT_NE(r.status, "in_progress");
    a.push_back(r.call_id);
  });
  manager_->add_finished_listener([&](const CallRecord& r) { b.push_back(r.call_id + "/" + r.status); });
  const std::string first = place();
  ASSERT_TRUE(run_until([&] { return answered_ == 1; }));
  manager_->call_on(*lines_->find("sim0"))->abort("test");
  EXPECT_TRUE(a.empty()) << "told from inside the event that ended the call";
  ASSERT_TRUE(run_until([&] { return !a.empty() && !b.empty(); }));
  EXPECT_EQ(a, std::vector<std::string>{first});
  EXPECT_EQ(b, std::vector<std::string>{first + "/" + stored(first).status});

  // A removed listener hears nothing more; the other goes on.
  manager_->remove_finished_listener(ha);
  const std::string second = place();
  ASSERT_TRUE(run_until([&] { return answered_ == 2; }));
  Call* c = manager_->call_on(*lines_->find("sim0"));
  if (!c) c = manager_->call_on(*lines_->find("sim1"));
  ASSERT_NE(c, nullptr);
  c->abort("test");
  ASSERT_TRUE(run_until([&] { return b.size() == 2; }));
  EXPECT_EQ(a.size(), 1u);
  EXPECT_EQ(b[1].rfind(second, 0), 0u);
}

}  // namespace
}  // namespace osvi::daemon

namespace osvi::daemon {
namespace {

// Without a SIP line a PBX extension is refused before anything is recorded or queued, whatever the source
// (callbacks and the dialler reach place_call without the API's check).
TEST_F(CallManagerTest, AnExtensionWithoutASipLineIsRefusedAndNothingIsRecorded) {
  ASSERT_NO_FATAL_FAILURE(launch(config_text(2500, 128)));
  EXPECT_FALSE(manager_->dials_extensions());
  PlaceCallRequest r;
  r.agent_uuid = "agent_a";
  r.phone_e164 = "201";
  auto id = manager_->place_call(r);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.error().code, -EPROTONOSUPPORT);
  EXPECT_EQ(id.error().message,
            "phone_number: 201 is a PBX extension, and this box has no SIP line to dial one");
  auto page = store_->calls().list(CallFilter{});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->total_count, 0);
  EXPECT_EQ(manager_->health().queued, 0u);
}

}  // namespace
}  // namespace osvi::daemon
