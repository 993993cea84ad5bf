// The Call unit tier: a real Call against a fake line, a fake audio port, the scripted upstream and a store
// on a temporary SQLite file, all on a virtual clock — turn-taking, barge-in, limits, AMD, tools, fallback.
#include "osvi/calls/call.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "fake_audio_port.hpp"
#include "fake_line.hpp"
#include "osvi/net/json.hpp"
#include "osvi/speech/speech.hpp"
#include "test_support.hpp"
#include "upstream_sim.hpp"
#include "virtual_time.hpp"

namespace osvi::daemon {
namespace {

using audio::EndpointKind;
using call_text::trim;
using net::SimLlmReply;
using test::FakeAudio;

constexpr const char* kCallId = "01890000-0000-7000-8000-000000000001";
constexpr const char* kNumber = "+919876543210";
constexpr const char* kGreeting = "Hello Asha, this is the clinic.";

FakeAudio::Frame endpoints(std::vector<audio::EndpointEvent> events) {
  FakeAudio::Frame f;
  f.endpoints = std::move(events);
  return f;
}
FakeAudio::Frame amd(audio::AmdVerdict verdict) {
  FakeAudio::Frame f;
  f.amd = verdict;
  return f;
}
FakeAudio::Frame dtmf(char digit) {
  FakeAudio::Frame f;
  f.dtmf = digit;
  return f;
}
FakeAudio::Frame beep() {
  FakeAudio::Frame f;
  f.beep = true;
  return f;
}

FakeAudio::Frame progress(audio::ProgressTone tone) {
  FakeAudio::Frame f;
  f.tone = tone;
  return f;
}

// espeak-ng, for the tests whose local prompts (the filler) must be heard; one for the process.
Speech* local_speech() {
  static std::unique_ptr<Speech> speech = [] {
    auto r = Speech::create();
    return r.ok() ? std::move(r).value() : nullptr;
  }();
  return speech.get();
}

// The Call's local speech bound to espeak-ng rendering at once (there is no loop to run the SpeechWorker
// here; the worker's threading and timeout have their own tests in speech_test).
SpeechWorker::Ticket speak_at_once(std::string text, int rate, std::chrono::milliseconds,
                                   SpeechWorker::Done done) {
  done(local_speech()->render(text, rate));
  return {};
}

SimLlmReply says(std::string text) {
  SimLlmReply r;
  r.text = std::move(text);
  return r;
}
SimLlmReply calls_tool(std::string name, std::string args, std::string text = "") {
  SimLlmReply r;
  r.text = std::move(text);
  r.tool_calls.push_back({"tool_1", std::move(name), std::move(args)});
  return r;
}

class CallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::open(StoreOptions{dir_.file("osvid.db"), 2000, true}, time_.clock);
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(*store);
    agent_.agent_uuid = "agent_a";
    agent_.name = "Reception";
    agent_.prompt.system_prompt = "You are the clinic's receptionist.";
    agent_.greeting.text = "Hello {{person_name}}, this is the clinic.";
    agent_.stt.base_url = agent_.llm.base_url = agent_.voice.base_url = "http://sim";
    ctx_.clock = &time_.clock;
    ctx_.store = store_.get();
    ctx_.upstream = &up_;
    ctx_.speech = nullptr;  // no espeak here: local speech is the tone alone
    ctx_.audio_port = audio_.factory();
    ctx_.timer = time_.timer_factory();
    line_.set_event_handler([this](const hal::LineEvent& e) { call_->on_line_event(e); });
  }

  void start(bool outbound = false) {
    CallSetup s;
    s.agent = agent_;
    s.outbound = outbound;
    s.person_name = "Asha";
    s.record.call_id = kCallId;
    s.record.agent_uuid = agent_.agent_uuid;
    s.record.agent_name = agent_.name;
    s.record.phone_number = kNumber;
    s.record.call_type = outbound ? "outbound" : "inbound";
    s.record.created_at_ms = time_.clock.wall_ms();
    ASSERT_TRUE(store_->calls().insert(s.record).ok());
    call_ = std::make_unique<Call>(ctx_, line_, std::move(s), [this](Call&) { ++finished_; });
    ASSERT_TRUE(call_->start().ok());
  }
  void line_event(hal::LineEvent::Type type, std::string number = {}) {
    hal::LineEvent e;
    e.type = type;
    e.number = std::move(number);
    line_.deliver(e);
  }
  // The call is up and its audio device opened.
  void pick_up() {
    line_event(hal::LineEvent::Type::answered);
    audio_.event(hal::StreamEventKind::opened);
  }
  // Inbound call picked up and the greeting played to the end.
  void answer_and_greet() {
    start();
    pick_up();
    play_all();
  }
  // The upstream answers what is in flight; then the device plays everything queued.
  void play_all(int64_t settle_ms = 400) {
    time_.advance_ms(settle_ms);
    audio_.drain();
  }
  // Capture frames of 20 ms, time moving with them.
  void frame(FakeAudio::Frame f = {}) {
    audio_.capture(f);
    time_.advance_ms(20);
    audio_.complete_stop();  // a barge-in's stop completes within a period
  }
  // The caller speaks for `speech_frames` periods; the endpointer decides after 500 ms of silence.
  void caller_speaks(int speech_frames = 25) {
    const uint64_t begin = audio_.position();
    const uint64_t at = begin + 320;
    frame(endpoints({{EndpointKind::Onset, at, begin, 0, 0}, {EndpointKind::SpeechStart, at, begin, 0, 0}}));
    for (int i = 1; i < speech_frames; ++i) frame();
    const uint64_t end = audio_.position();
    for (int i = 0; i < 24; ++i) frame();
    frame(endpoints({{EndpointKind::SpeechEnd, audio_.position() + 320, begin, end, 8000}}));
  }
  void caller_says(std::string text, int speech_frames = 25) {
    up_.push_stt(std::move(text));
    caller_speaks(speech_frames);
  }
  // The line reports a problem with a reason (the modem vanished, the call failed).
  void line_problem(hal::LineEvent::Type type, std::string reason) {
    hal::LineEvent e;
    e.type = type;
    e.reason = std::move(reason);
    line_.deliver(e);
  }
  // The line confirms our hang-up.
  void confirm_hangup() {
    ASSERT_TRUE(line_.did("hangup"));
    line_event(hal::LineEvent::Type::hung_up);
  }

  CallRecord saved_record() {
    auto r = store_->calls().get(kCallId);
    EXPECT_TRUE(r.ok() && r->has_value());
    return r.ok() && r->has_value() ? **r : CallRecord{};
  }
  std::vector<TranscriptTurn> transcript() {
    auto t = store_->calls().transcript(kCallId);
    EXPECT_TRUE(t.ok());
    return t.ok() ? *t : std::vector<TranscriptTurn>{};
  }
  std::vector<std::string> turns() {  // "role: text"
    std::vector<std::string> out;
    for (const TranscriptTurn& t : transcript()) out.push_back(t.role + ": " + t.text);
    return out;
  }
  const net::ChatRequest& chat(size_t i) {
    EXPECT_GT(up_.chat_requests().size(), i);
    return up_.chat_requests().at(i);
  }
  std::vector<std::string> tts_texts() const {
    std::vector<std::string> out;
    for (const net::TtsRequest& r : up_.tts_requests()) out.push_back(r.text);
    return out;
  }
  static std::string last_content(const net::ChatRequest& r, const std::string& role) {
    for (auto it = r.messages.rbegin(); it != r.messages.rend(); ++it)
      if (it->role == role) return it->content;
    return "<none>";
  }

  // One device period (the caller's ear: FakeAudio::period), time moving with it.
  void period(FakeAudio::Frame f = {}, bool caller_voice = false) {
    audio_.period(f, caller_voice);
    time_.advance_ms(audio_.frame_ms);
    if (after_period_) after_period_();
  }
  // The caller says `text` on the device clock: `speech_frames` periods of voice, then the endpointer's
  // decision 500 ms after the voice ended.
  // `before_decision` runs once their voice has ended, before the endpointer decides (nothing transcribed).
  void caller_asks(std::string text, int speech_frames = 25,
                   const std::function<void()>& before_decision = {}) {
    up_.push_stt(std::move(text));
    const uint64_t begin = audio_.position();
    const uint64_t at = begin + 320;
    period(endpoints({{EndpointKind::Onset, at, begin, 0, 0}, {EndpointKind::SpeechStart, at, begin, 0, 0}}),
           true);
    for (int i = 1; i < speech_frames; ++i) period({}, true);
    const uint64_t end = audio_.position();
    for (int i = 0; i < 24; ++i) period();
    if (before_decision) before_decision();
    period(endpoints({{EndpointKind::SpeechEnd, audio_.position() + 320, begin, end, 8000}}));
  }
  std::vector<TranscriptTurn> agent_turns() {
    std::vector<TranscriptTurn> out;
    for (const TranscriptTurn& t : transcript())
      if (t.role == "agent") out.push_back(t);
    return out;
  }
  // No request ever carried an assistant message with nothing in it.
  void expect_no_empty_assistant_message() {
    for (size_t i = 0; i < up_.chat_requests().size(); ++i)
      for (const net::ChatMessage& m : up_.chat_requests()[i].messages)
        EXPECT_FALSE(m.role == "assistant" && m.content.empty() && m.tool_calls.empty())
            << "chat request " << i << " carries an empty assistant message";
  }

  test::TempDir dir_;
  test::VirtualTime time_;
  std::unique_ptr<Store> store_;
  net::SimUpstream up_{time_.schedule()};
  test::FakeLine line_;
  FakeAudio audio_;
  AgentConfig agent_;
  CallContext ctx_;
  std::unique_ptr<Call> call_;
  int finished_ = 0;
  std::function<void()> after_period_;  // a test's probe, run after each period()
};

TEST_F(CallTest, GreetingIsSpokenAndSaved) {
  start();
  EXPECT_EQ(line_.actions, std::vector<std::string>{"answer"});
  EXPECT_FALSE(audio_.open());  // no audio before the call is up
  pick_up();
  ASSERT_TRUE(audio_.open());
  time_.advance_ms(400);
  EXPECT_EQ(tts_texts(), std::vector<std::string>{kGreeting});
  EXPECT_GT(audio_.unplayed(), 0u);
  EXPECT_TRUE(transcript().empty());  // saved once played
  audio_.drain();
  EXPECT_EQ(turns(), std::vector<std::string>{std::string("agent: ") + kGreeting});
  // The greeting is the agent's first line of the conversation.
  ASSERT_EQ(call_->context().size(), 2u);
  EXPECT_EQ(call_->context()[1].role, "assistant");
  EXPECT_EQ(call_->context()[1].content, kGreeting);
  line_event(hal::LineEvent::Type::remote_hangup);
  EXPECT_TRUE(call_->finished());
  EXPECT_EQ(finished_, 1);
  EXPECT_FALSE(audio_.open());
  const CallRecord r = saved_record();
  EXPECT_EQ(r.status, "picked");
  EXPECT_EQ(r.call_ended_reason, "customer-ended-call");
  EXPECT_EQ(r.call_ended_by, "user");
  EXPECT_EQ(r.line, "fake0");
  EXPECT_FALSE(r.post_call_analysis.has_value());
}

TEST_F(CallTest, AudioXrunsAreCountedAfterThePortCloses) {
  answer_and_greet();
  EXPECT_EQ(call_->audio_xruns(), 0u);
  audio_.xruns = 3;
  EXPECT_EQ(call_->audio_xruns(), 3u);
  line_event(hal::LineEvent::Type::remote_hangup);
  ASSERT_TRUE(call_->finished());
  EXPECT_FALSE(audio_.open());
  audio_.xruns = 0;  // the port is gone: the call keeps what it reported
  EXPECT_EQ(call_->audio_xruns(), 3u);
}

TEST_F(CallTest, CallerTurnGoesThroughSttLlmAndTts) {
  answer_and_greet();
  up_.push_llm(says("Sure. Your table for two is booked."));
  caller_says("Book a table for two");
  ASSERT_EQ(up_.stt_requests().size(), 1u);
  EXPECT_EQ(up_.stt_requests()[0].language, "en");
  EXPECT_EQ(up_.stt_requests()[0].mime, "audio/ogg");
  EXPECT_FALSE(up_.stt_requests()[0].audio.empty());
  play_all();
  // The request carries the system prompt, the greeting and the caller's words.
  const net::ChatRequest& req = chat(0);
  ASSERT_EQ(req.messages.size(), 3u);
  EXPECT_EQ(req.messages[0].role, "system");
  EXPECT_EQ(req.messages[0].content.rfind("You are the clinic's receptionist.", 0), 0u);
  EXPECT_EQ(req.messages[1].content, kGreeting);
  EXPECT_EQ(req.messages[2].role, "user");
  EXPECT_EQ(req.messages[2].content, "Book a table for two");
  // Pipelined sentence by sentence.
  EXPECT_EQ(tts_texts(), (std::vector<std::string>{kGreeting, "Sure.", "Your table for two is booked."}));
  EXPECT_EQ(turns(),
            (std::vector<std::string>{std::string("agent: ") + kGreeting, "user: Book a table for two",
                                      "agent: Sure. Your table for two is booked."}));
  const std::vector<TranscriptTurn> t = transcript();
  ASSERT_EQ(t.size(), 3u);
  EXPECT_FALSE(t[1].latency_json.has_value());
  ASSERT_TRUE(t[2].latency_json.has_value());
  // One decimal, as before: the endpointer waited 8000 samples at 16 kHz.
  EXPECT_NE(t[2].latency_json->find("\"endpointing_ms\":500.0"), std::string::npos) << *t[2].latency_json;
  net::JsonPtr lat = net::json_parse(*t[2].latency_json, nullptr);
  ASSERT_TRUE(lat);
  for (const char* k : {"stt_sent_ms", "stt_ms", "llm_first_token_ms", "tts_first_byte_ms", "first_sample_ms",
                        "voice_to_voice_ms"})
    EXPECT_TRUE(cJSON_IsNumber(cJSON_GetObjectItem(lat.get(), k))) << k << " in " << *t[2].latency_json;
  EXPECT_GE(cJSON_GetObjectItem(lat.get(), "stt_ms")->valuedouble, 20.0);  // the sim's first_ms
  EXPECT_FALSE(t[2].interrupted);
  EXPECT_EQ(call_->context().back().content, "Sure. Your table for two is booked.");
}

TEST_F(CallTest, BargeInKeepsOnlyWhatTheCallerHeard) {
  answer_and_greet();
  up_.push_llm(says("The first sentence is here. The second sentence follows now."));
  caller_says("Tell me everything");
  time_.advance_ms(400);
  ASSERT_EQ(tts_texts().size(), 3u);
  // 27 characters of the sim's TTS: 27 × 2400 bytes at 24 kHz = 21600 samples at 16 kHz; half is heard.
  audio_.play(10800);
  up_.push_llm(says("Of course."));
  caller_says("Wait");
  EXPECT_EQ(audio_.stops, 1);
  play_all();
  const std::vector<TranscriptTurn> t = transcript();
  ASSERT_GE(t.size(), 5u);
  EXPECT_EQ(t[2].role, "agent");
  EXPECT_EQ(t[2].text, "The first");
  EXPECT_TRUE(t[2].interrupted);
  EXPECT_EQ(t[3].text, "Wait");
  // The next request carries only the heard prefix of the interrupted reply.
  const net::ChatRequest& next = chat(1);
  ASSERT_GE(next.messages.size(), 2u);
  EXPECT_EQ(next.messages[next.messages.size() - 2].role, "assistant");
  EXPECT_EQ(next.messages[next.messages.size() - 2].content, "The first");
  EXPECT_EQ(next.messages.back().content, "Wait");
  EXPECT_EQ(t.back().text, "Of course.");
}

TEST_F(CallTest, SilenceRepromptsThenHangsUp) {
  answer_and_greet();
  time_.advance_ms(7900);
  EXPECT_EQ(tts_texts().size(), 1u);  // not yet
  time_.advance_ms(100);
  EXPECT_EQ(tts_texts().back(), "Are you still there?");
  play_all();
  time_.advance_ms(8000);
  EXPECT_EQ(tts_texts().size(), 3u);
  play_all();
  EXPECT_FALSE(line_.did("hangup"));
  time_.advance_ms(8000);  // max_prompts (2) reached
  confirm_hangup();
  EXPECT_TRUE(call_->finished());
  const CallRecord r = saved_record();
  EXPECT_EQ(r.status, "picked");
  EXPECT_EQ(r.call_ended_reason, "silence_timeout");
  EXPECT_EQ(r.call_ended_by, "agent");
  EXPECT_EQ(turns(),
            (std::vector<std::string>{std::string("agent: ") + kGreeting, "agent: Are you still there?",
                                      "agent: Are you still there?"}));
  EXPECT_TRUE(up_.chat_requests().empty());
}

TEST_F(CallTest, MaxDurationEndsTheCall) {
  agent_.call.max_duration_s = 3;
  answer_and_greet();
  time_.advance_ms(2500);
  EXPECT_FALSE(line_.did("hangup"));
  time_.advance_ms(200);
  confirm_hangup();
  const CallRecord r = saved_record();
  EXPECT_EQ(r.status, "picked");
  EXPECT_EQ(r.call_ended_reason, "max_duration");
  EXPECT_EQ(r.call_ended_by, "system");
  EXPECT_EQ(r.duration_seconds, 3);
}

TEST_F(CallTest, HangupNotConfirmedClosesTheRecordAfterTheGrace) {
  agent_.call.max_duration_s = 1;
  answer_and_greet();
  time_.advance_ms(700);
  ASSERT_TRUE(line_.did("hangup"));
  EXPECT_FALSE(call_->finished());
  time_.advance_ms(5000);
  EXPECT_TRUE(call_->finished());
  EXPECT_EQ(saved_record().call_ended_reason, "max_duration");
}

TEST_F(CallTest, AmdHoldsTheAgentUntilAHumanIsHeard) {
  start(true);
  EXPECT_EQ(line_.actions, std::vector<std::string>{std::string("dial ") + kNumber});
  pick_up();
  ASSERT_TRUE(audio_.amd);
  for (int i = 0; i < 50; ++i) frame();
  EXPECT_TRUE(up_.tts_requests().empty());  // held
  frame(amd(audio::AmdVerdict::human));
  EXPECT_FALSE(audio_.amd_on);
  time_.advance_ms(400);
  EXPECT_EQ(tts_texts(), std::vector<std::string>{kGreeting});
}

TEST_F(CallTest, AmdWithoutVerdictGreetsAfterFiveSeconds) {
  start(true);
  pick_up();
  time_.advance_ms(4900);
  EXPECT_TRUE(up_.tts_requests().empty());
  time_.advance_ms(500);
  EXPECT_EQ(tts_texts(), std::vector<std::string>{kGreeting});
}

TEST_F(CallTest, AmdMachineHangsUp) {
  start(true);
  pick_up();
  frame(amd(audio::AmdVerdict::machine));
  confirm_hangup();
  EXPECT_TRUE(up_.tts_requests().empty());
  const CallRecord r = saved_record();
  EXPECT_EQ(r.status, "voicemail");
  EXPECT_EQ(r.call_ended_reason, "voicemail_detected");
  EXPECT_EQ(r.call_ended_by, "agent");
}

TEST_F(CallTest, AmdMachineGetsTheMessageAfterTheBeep) {
  agent_.call.voicemail.action = VoicemailAction::leave_message;
  agent_.call.voicemail.message = "Please call {{person_name}} back.";
  start(true);
  pick_up();
  frame(amd(audio::AmdVerdict::machine));
  for (int i = 0; i < 25; ++i) frame();
  EXPECT_TRUE(up_.tts_requests().empty());  // waiting for the beep
  frame(beep());
  play_all();
  EXPECT_EQ(tts_texts(), std::vector<std::string>{"Please call Asha back."});
  confirm_hangup();
  const CallRecord r = saved_record();
  EXPECT_EQ(r.status, "voicemail");
  EXPECT_EQ(r.call_ended_reason, "voicemail_message_left");
  EXPECT_EQ(turns(), std::vector<std::string>{"agent: Please call Asha back."});
}

// A SIP line's early media (183 with SDP): the port opens before the answer and only the call-progress
// detector listens; a busy tone there ends the call busy, never picked.
TEST_F(CallTest, BusyToneInEarlyMediaEndsTheCallBusy) {
  start(true);
  line_.endpoint.kind = hal::AudioEndpoint::Kind::rtp;
  line_event(hal::LineEvent::Type::audio);
  ASSERT_TRUE(audio_.open());
  EXPECT_FALSE(audio_.amd_on);  // ringback is no callee
  audio_.event(hal::StreamEventKind::opened);
  frame(dtmf('5'));  // nobody to press keys yet: ignored
  for (int i = 0; i < 5; ++i) frame();
  frame(progress(audio::ProgressTone::busy));
  EXPECT_TRUE(line_.did("hangup"));
  EXPECT_EQ(finished_, 1);
  const CallRecord r = saved_record();
  EXPECT_EQ(r.status, "busy");
  EXPECT_EQ(r.call_ended_reason, "busy");
  EXPECT_FALSE(r.call_picked_at_ms.has_value());
  EXPECT_TRUE(tts_texts().empty());
}

// After early media the answer keeps the same port: the greeting plays on it, opened once.
TEST_F(CallTest, TheAnswerAfterEarlyMediaKeepsItsPortAndGreets) {
  start(true);
  line_.endpoint.kind = hal::AudioEndpoint::Kind::rtp;
  line_event(hal::LineEvent::Type::audio);
  ASSERT_TRUE(audio_.open());
  audio_.event(hal::StreamEventKind::opened);
  for (int i = 0; i < 5; ++i) frame();
  audio_.event(hal::StreamEventKind::device_lost);  // the early media stopped: no reason to end the call
  time_.advance_ms(4000);
  EXPECT_EQ(finished_, 0);
  audio_.event(hal::StreamEventKind::device_back);
  line_event(hal::LineEvent::Type::answered);
  EXPECT_TRUE(audio_.amd_on);  // the answering-machine detector starts with the answer
  EXPECT_TRUE(up_.tts_requests().empty());
  frame(amd(audio::AmdVerdict::human));
  time_.advance_ms(400);
  EXPECT_EQ(tts_texts(), std::vector<std::string>{kGreeting});
  EXPECT_EQ(audio_.opens, 1);
  EXPECT_EQ(finished_, 0);
}

// An ALSA line's audio event before the answer opens nothing (modems have no early media).
TEST_F(CallTest, NoEarlyMediaOnAModemLine) {
  start(true);
  line_event(hal::LineEvent::Type::audio);
  EXPECT_FALSE(audio_.open());
}

// A line without network signalling reports "connected" when dialling completes; the tone detector then
// hears what the exchange said (audio.call_progress_plan).
TEST_F(CallTest, BusyToneOnAnOutboundCallEndsItAsBusy) {
  start(true);
  pick_up();
  for (int i = 0; i < 10; ++i) frame();
  frame(progress(audio::ProgressTone::busy));
  EXPECT_TRUE(line_.did("hangup"));
  EXPECT_EQ(finished_, 1);
  const CallRecord r = saved_record();
  EXPECT_EQ(r.status, "busy");
  EXPECT_EQ(r.call_ended_reason, "busy");
  EXPECT_EQ(r.call_ended_by, "user");
  EXPECT_FALSE(r.call_picked_at_ms.has_value());
  EXPECT_EQ(r.duration_seconds, 0);
  EXPECT_TRUE(up_.tts_requests().empty());  // the agent never talked to the tone
}

TEST_F(CallTest, CongestionIsBusyAndAnInformationToneIsNotPicked) {
  start(true);
  pick_up();
  frame(progress(audio::ProgressTone::reorder));
  EXPECT_EQ(saved_record().status, "busy");

  call_.reset();
  ASSERT_TRUE(store_->calls().remove(kCallId).ok());
  line_.actions.clear();
  start(true);
  pick_up();
  frame(progress(audio::ProgressTone::sit));
  EXPECT_TRUE(line_.did("hangup"));
  const CallRecord r = saved_record();
  EXPECT_EQ(r.status, "not_picked");
  EXPECT_EQ(r.call_ended_reason, "number_unreachable");
}

TEST_F(CallTest, ProgressTonesAfterTheCallerSpokeAreIgnored) {
  agent_.call.voicemail.detect = false;
  start(true);
  pick_up();
  play_all();
  up_.push_llm(says("We open at nine."));
  caller_says("Hello?");
  play_all();
  frame(progress(audio::ProgressTone::busy));
  EXPECT_FALSE(call_->finished());
  EXPECT_FALSE(line_.did("hangup"));
}

TEST_F(CallTest, ProgressTonesOnInboundCallsAreIgnored) {
  start(false);
  pick_up();
  frame(progress(audio::ProgressTone::busy));
  EXPECT_FALSE(call_->finished());
}

TEST_F(CallTest, ToolSpecsAreTheSameJson) {
  agent_.tools.transfer.enabled = true;
  agent_.tools.transfer.number = "+4930123456";
  agent_.prompt.type = PromptType::multi;
  agent_.prompt.initial_state = "intro";
  agent_.prompt.states = {{"intro", "Greet.", {{"booking", "they want a table"}}}, {"booking", "Book.", {}}};
  answer_and_greet();
  up_.push_llm(says("Hi."));
  caller_says("Hello");
  play_all();
  const std::vector<net::ToolSpec>& tools = chat(0).tools;
  ASSERT_EQ(tools.size(), 5u);
  const std::string reason =
      R"({"type":"object","properties":{"reason":{"type":"string","description":"why, in a few words"}}})";
  EXPECT_EQ(tools[0].name, "end_call");
  EXPECT_EQ(tools[0].parameters_json, reason);
  EXPECT_EQ(tools[1].name, "transfer_call");
  EXPECT_EQ(tools[1].parameters_json, reason);
  EXPECT_EQ(tools[2].name, "send_dtmf");
  EXPECT_EQ(tools[2].parameters_json,
            R"({"type":"object","properties":{"digits":{"type":"string"}},"required":["digits"]})");
  EXPECT_EQ(tools[3].name, "opt_out");
  EXPECT_EQ(tools[3].parameters_json,
            R"({"type":"object","properties":{"reason":{"type":"string","description":)"
            R"("what the caller said, in a few words"}}})");
  EXPECT_EQ(tools[4].name, "switch_state");
  EXPECT_EQ(tools[4].parameters_json,
            R"({"type":"object","properties":{"state":{"type":"string","enum":["intro","booking"]}},)"
            R"("required":["state"]})");
}

TEST_F(CallTest, EndCallToolHangsUpAfterTheLastSentence) {
  answer_and_greet();
  up_.push_llm(calls_tool("end_call", R"({"reason":"done"})", "Goodbye."));
  caller_says("That is all");
  time_.advance_ms(400);
  EXPECT_FALSE(line_.did("hangup"));  // the last sentence plays first
  audio_.drain();
  confirm_hangup();
  const CallRecord r = saved_record();
  EXPECT_EQ(r.call_ended_reason, "assistant-ended-call");
  EXPECT_EQ(r.call_ended_by, "agent");
  EXPECT_EQ(turns(), (std::vector<std::string>{std::string("agent: ") + kGreeting, "user: That is all",
                                               R"(tool: end_call {"reason":"done"})", "agent: Goodbye."}));
}

TEST_F(CallTest, TransferToolBlind) {
  agent_.tools.transfer.enabled = true;
  agent_.tools.transfer.number = "+4930123456";
  answer_and_greet();
  up_.push_llm(calls_tool("transfer_call", ""));
  caller_says("A human please");
  play_all();
  EXPECT_EQ(tts_texts().back(), "Please hold while I transfer you.");
  ASSERT_TRUE(line_.did("transfer_blind +4930123456"));
  EXPECT_FALSE(line_.did("transfer_attended +4930123456"));
  line_event(hal::LineEvent::Type::transferred, "+4930123456");
  EXPECT_TRUE(call_->finished());
  EXPECT_EQ(saved_record().call_ended_reason, "transferred");
  EXPECT_EQ(turns().back(), "tool: transferred to +4930123456");
}

TEST_F(CallTest, TransferToolAttendedAndItsFailure) {
  agent_.tools.transfer.enabled = true;
  agent_.tools.transfer.number = "+4930123456";
  agent_.tools.transfer.mode = TransferMode::attended;
  answer_and_greet();
  up_.push_llm(calls_tool("transfer_call", "{}"));
  caller_says("A human please");
  play_all();
  ASSERT_TRUE(line_.did("transfer_attended +4930123456"));
  up_.push_llm(says("Sorry, nobody is free."));
  hal::LineEvent failed;
  failed.type = hal::LineEvent::Type::transfer_failed;
  failed.reason = "busy";
  line_.deliver(failed);
  play_all();
  EXPECT_EQ(last_content(chat(1), "system"), "The transfer failed (busy). Tell the caller and help them.");
  EXPECT_EQ(turns().back(), "agent: Sorry, nobody is free.");
  line_event(hal::LineEvent::Type::remote_hangup);
  net::JsonPtr pca = net::json_parse(saved_record().post_call_analysis.value_or(""), nullptr);
  ASSERT_TRUE(pca);
  const cJSON* errors = cJSON_GetObjectItem(pca.get(), "upstream_errors");
  ASSERT_EQ(cJSON_GetArraySize(errors), 1);
  EXPECT_STREQ(cJSON_GetArrayItem(errors, 0)->valuestring, "transfer failed: busy");
  EXPECT_TRUE(cJSON_IsFalse(cJSON_GetObjectItem(pca.get(), "callback_required")));
}

TEST_F(CallTest, SwitchStateToolChangesThePromptOfTheNextRequest) {
  agent_.prompt.type = PromptType::multi;
  agent_.prompt.initial_state = "intro";
  agent_.prompt.states = {{"intro", "Greet the caller.", {{"booking", "they want a table"}}},
                          {"booking", "Take the booking details.", {}}};
  answer_and_greet();
  up_.push_llm(calls_tool("switch_state", R"({"state":"booking"})"));
  up_.push_llm(says("For how many people?"));
  caller_says("I want a table");
  play_all();
  ASSERT_EQ(up_.chat_requests().size(), 2u);
  EXPECT_EQ(chat(0).messages[0].content.rfind("Greet the caller.", 0), 0u);
  EXPECT_NE(chat(0).messages[0].content.find("- with state \"booking\" when they want a table"),
            std::string::npos);
  EXPECT_EQ(chat(1).messages[0].content.rfind("Take the booking details.", 0), 0u);
  EXPECT_EQ(last_content(chat(1), "tool"), "now in state booking");
  EXPECT_EQ(turns().back(), "agent: For how many people?");
}

TEST_F(CallTest, SendDtmfToolPressesKeysOnTheLine) {
  answer_and_greet();
  up_.push_llm(calls_tool("send_dtmf", R"({"digits":"12#"})"));
  up_.push_llm(says("I pressed them."));
  caller_says("Press one two hash");
  play_all();
  EXPECT_TRUE(line_.did("dtmf 12#"));
  EXPECT_EQ(last_content(chat(1), "tool"), "sent 12#");
  up_.push_llm(calls_tool("send_dtmf", R"({"digits":"x"})"));
  up_.push_llm(says("That did not work."));
  caller_says("Press x");
  play_all();
  EXPECT_FALSE(line_.did("dtmf x"));
  EXPECT_EQ(last_content(chat(3), "tool"), "failed: invalid digits");
}

TEST_F(CallTest, UnknownAndDisabledToolsAreReportedToTheModel) {
  agent_.tools.end_call = false;
  agent_.tools.opt_out.enabled = false;
  answer_and_greet();
  up_.push_llm(calls_tool("book_flight", "{}"));
  up_.push_llm(calls_tool("end_call", "{}"));
  up_.push_llm(says("I cannot do that."));
  caller_says("Book me a flight");
  play_all();
  ASSERT_EQ(up_.chat_requests().size(), 3u);
  EXPECT_EQ(last_content(chat(1), "tool"), "unknown tool book_flight");
  EXPECT_EQ(last_content(chat(2), "tool"), "unknown tool end_call");
  EXPECT_FALSE(line_.did("hangup"));
  EXPECT_TRUE(chat(0).tools.size() == 1u && chat(0).tools[0].name == "send_dtmf");
  EXPECT_EQ(turns().back(), "agent: I cannot do that.");
}

TEST_F(CallTest, DeadAirFillerBuysTheLateAnswerTime) {
  up_.set_timing(net::UpstreamStage::llm, {1, 4000, 5});  // later than dead_air_ms (2500), within two
  answer_and_greet();
  up_.push_llm(says("Here is the late answer."));
  caller_says("Are you there");
  time_.advance_ms(2600);  // the filler is said (silent here: no local speech) instead of the fallback
  EXPECT_FALSE(call_->record().callback_required);
  time_.advance_ms(1700);  // the answer arrives and plays before the second dead-air interval ends
  audio_.drain();
  time_.advance_ms(3000);
  EXPECT_FALSE(call_->record().callback_required);
  EXPECT_EQ(turns().back(), "agent: Here is the late answer.");
  EXPECT_EQ(call_->context().back().content, "Here is the late answer.");
}

TEST_F(CallTest, WithoutAFillerDeadAirGoesToTheFallback) {
  agent_.fallback.filler.clear();
  up_.set_timing(net::UpstreamStage::llm, {1, 4000, 5});
  answer_and_greet();
  up_.push_llm(says("Here is the late answer."));
  caller_says("Are you there");
  // Dead air counts from the end of the caller's speech, 500 ms before the endpointer's decision (less the
  // endpointer's end lag, 80 ms, and the period the local prompt takes to be heard, 20 ms).
  time_.advance_ms(1800);
  EXPECT_FALSE(call_->record().callback_required);
  time_.advance_ms(200);
  EXPECT_TRUE(call_->record().callback_required);
  EXPECT_EQ(call_->record().call_ended_reason, "upstream_failure");
  time_.advance_ms(2000);
  EXPECT_EQ(tts_texts().size(), 1u);  // the late answer is never spoken
}

TEST_F(CallTest, OfflineFallbackPlaysTheToneAndRecordsAVoicemail) {
  answer_and_greet();
  up_.fail_next(net::UpstreamStage::llm, {net::UpstreamError::Kind::http, 503, "service unavailable"});
  caller_says("Hello?");
  time_.advance_ms(100);
  EXPECT_TRUE(call_->record().callback_required);
  const uint64_t before = audio_.played();
  audio_.drain();
  // 250 ms of gap and 400 ms of tone at 16 kHz (no local speech in this test).
  EXPECT_EQ(audio_.played() - before, 10400u);
  EXPECT_EQ(turns().back(), "agent: " + agent_.fallback.message);
  // The caller leaves a message; 3 s of silence after it ends the call.
  caller_says("Please call me back", 50);
  EXPECT_EQ(up_.stt_requests().size(), 1u);  // the voicemail is recorded, not transcribed
  time_.advance_ms(2900);
  EXPECT_FALSE(line_.did("hangup"));
  time_.advance_ms(200);
  confirm_hangup();
  const CallRecord r = saved_record();
  EXPECT_EQ(r.status, "picked");
  EXPECT_EQ(r.call_ended_reason, "upstream_failure");
  EXPECT_EQ(r.call_ended_by, "system");
  EXPECT_TRUE(r.callback_required);
  ASSERT_TRUE(r.post_call_analysis);
  EXPECT_EQ(*r.post_call_analysis,
            R"({"callback_required":true,"upstream_errors":["llm http 503: service unavailable"]})");
}

TEST_F(CallTest, FallbackEndsWhenNobodySpeaksAfterTheTone) {
  answer_and_greet();
  up_.fail_next(net::UpstreamStage::llm, {net::UpstreamError::Kind::http, 500, "boom"});
  caller_says("Hello?");
  play_all();
  time_.advance_ms(7900);
  EXPECT_FALSE(line_.did("hangup"));
  time_.advance_ms(200);
  confirm_hangup();
  EXPECT_EQ(saved_record().call_ended_reason, "upstream_failure");
}

TEST_F(CallTest, DtmfDigitsBecomeOneCallerTurn) {
  answer_and_greet();
  up_.push_llm(says("You chose billing."));
  frame(dtmf('1'));
  frame(dtmf('2'));
  frame(dtmf('#'));  // ends the entry at once
  play_all();
  EXPECT_EQ(last_content(chat(0), "user"), "[The caller pressed the keys: 12#]");
  EXPECT_EQ(turns(), (std::vector<std::string>{std::string("agent: ") + kGreeting, "user: DTMF 12#",
                                               "agent: You chose billing."}));
}

// A SIP call's RFC 4733 telephone-events count like in-band or modem digits; the same key reported both
// in-band and as an event within 150 ms is one press, while a real second press of it is kept.
TEST_F(CallTest, Rfc4733DigitsAreKeysAndDuplicatesFromTwoSourcesCountOnce) {
  answer_and_greet();
  up_.push_llm(says("You chose one, one, two."));
  auto rtp_digit = [this](char d) {
    hal::StreamEvent e;
    e.kind = hal::StreamEventKind::dtmf;
    e.digit = d;
    audio_.event(e);
  };
  frame(dtmf('1'));  // in-band first ...
  rtp_digit('1');    // ... and the same press as an event 20 ms later: dropped
  time_.advance_ms(300);
  rtp_digit('1');  // a second press, out of band only
  frame();
  frame(dtmf('1'));  // its in-band copy within 150 ms: dropped
  time_.advance_ms(200);
  rtp_digit('2');
  rtp_digit('#');  // ends the entry at once
  play_all();
  EXPECT_EQ(last_content(chat(0), "user"), "[The caller pressed the keys: 112#]");
  EXPECT_EQ(turns(), (std::vector<std::string>{std::string("agent: ") + kGreeting, "user: DTMF 112#",
                                               "agent: You chose one, one, two."}));
}

TEST_F(CallTest, Rfc4733OptOutKey) {
  agent_.tools.opt_out.dtmf_key = "9";
  answer_and_greet();
  hal::StreamEvent e;
  e.kind = hal::StreamEventKind::dtmf;
  e.digit = '9';
  audio_.event(e);
  play_all();
  EXPECT_EQ(tts_texts().back(), "You will not be called again. Goodbye.");
  confirm_hangup();
  EXPECT_EQ(saved_record().call_ended_reason, "opt_out");
}

TEST_F(CallTest, AudioThatNeverOpensEndsTheCall) {
  audio_.fail_open = true;
  start();
  line_event(hal::LineEvent::Type::answered);
  time_.advance_ms(3100);
  confirm_hangup();
  EXPECT_EQ(saved_record().call_ended_reason, "no_call_audio");
  EXPECT_EQ(audio_.opens, 0);
}

TEST_F(CallTest, HangupCancelsEveryTranscriptionStillInFlight) {
  answer_and_greet();
  // A slow recogniser: the first utterance is still being transcribed when the second one ends.
  up_.set_timing(net::UpstreamStage::stt, {1, 3000, 5});
  caller_says("I need", 5);
  caller_says("an appointment", 5);
  ASSERT_EQ(up_.stt_requests().size(), 2u);
  ASSERT_EQ(up_.in_flight(), 2u);
  line_event(hal::LineEvent::Type::remote_hangup);
  ASSERT_TRUE(call_->finished());
  call_.reset();  // the CallManager drops a finished call at once
  // Both requests were cancelled: neither transcript may call back into the freed Call (ASan sees it if one
  // does once the upstream answers below).
  EXPECT_EQ(up_.in_flight(), 0u);
  time_.advance_ms(5000);
  EXPECT_EQ(finished_, 1);
  EXPECT_EQ(saved_record().call_ended_reason, "customer-ended-call");
}

TEST_F(CallTest, ApiKeyIsTheOneLoadedWithTheConfiguration) {
  const std::string key_file = dir_.file("llm.key");
  test::write_file(key_file, "sk-loaded\n");
  auto cfg =
      parse_config(R"({"agents":[{"agent_uuid":"agent_a","name":"Reception","llm":{"base_url":"http://sim",)"
                   R"("api_key_file":")" +
                   key_file + R"("}}]})");
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;
  agent_.llm = cfg->agents[0].llm;
  // The key is rotated on disk but the configuration was not reloaded: the call uses what was loaded, and
  // reads no file of its own.
  test::write_file(key_file, "sk-rotated\n");
  answer_and_greet();
  up_.push_llm(says("Sure."));
  caller_says("Hello");
  play_all();
  EXPECT_EQ(chat(0).endpoint.api_key, "sk-loaded");
}

TEST_F(CallTest, LineLostWhileHangingUpAfterTheAudioCutOffIsTheRecordedCause) {
  audio_.fail_open = true;
  start();
  line_event(hal::LineEvent::Type::answered);
  time_.advance_ms(3100);  // no_call_audio: the call hangs up and waits for the line to confirm...
  ASSERT_TRUE(line_.did("hangup"));
  ASSERT_FALSE(call_->finished());
  // ...and the modem turns out to be gone: that is why there was no audio.
  line_problem(hal::LineEvent::Type::down, "modem lost: read: Input/output error");
  ASSERT_TRUE(call_->finished());
  const CallRecord r = saved_record();
  EXPECT_EQ(r.status, "failed");
  EXPECT_EQ(r.call_ended_reason, "line_down: modem lost: read: Input/output error");
  EXPECT_EQ(r.call_ended_by, "system");
}

TEST_F(CallTest, ModemLostAfterTheDeviceLossTimedOutIsTheRecordedCause) {
  answer_and_greet();
  audio_.event(hal::StreamEventKind::device_lost);  // the modem's audio goes first
  time_.advance_ms(3100);                           // no_call_audio fires, the hang-up is sent
  ASSERT_TRUE(line_.did("hangup"));
  ASSERT_FALSE(call_->finished());
  line_problem(hal::LineEvent::Type::failed, "modem lost during the call: read: Input/output error");
  ASSERT_TRUE(call_->finished());
  const CallRecord r = saved_record();
  EXPECT_EQ(r.status, "failed");
  EXPECT_EQ(r.call_ended_reason, "modem lost during the call: read: Input/output error");
  EXPECT_EQ(r.call_ended_by, "system");
}

TEST_F(CallTest, LineLostBeforeTheAudioCutOffIsTheRecordedCause) {
  answer_and_greet();
  audio_.event(hal::StreamEventKind::device_lost);
  line_problem(hal::LineEvent::Type::down, "modem lost: read: Input/output error");
  ASSERT_TRUE(call_->finished());
  time_.advance_ms(3100);  // where the audio cut-off would have fired
  const CallRecord r = saved_record();
  EXPECT_EQ(r.status, "failed");
  EXPECT_EQ(r.call_ended_reason, "line_down: modem lost: read: Input/output error");
  EXPECT_EQ(r.call_ended_by, "system");
  EXPECT_EQ(finished_, 1);
}

TEST_F(CallTest, ACallerHangupWhileHangingUpKeepsTheAudioCause) {
  // Only the line's loss outranks the audio cut-off; an ordinary end arriving late does not.
  audio_.fail_open = true;
  start();
  line_event(hal::LineEvent::Type::answered);
  time_.advance_ms(3100);
  line_event(hal::LineEvent::Type::remote_hangup);
  ASSERT_TRUE(call_->finished());
  EXPECT_EQ(saved_record().call_ended_reason, "no_call_audio");
  EXPECT_EQ(saved_record().call_ended_by, "system");
}

// ---------------------------------------------------------------------------------------------------------
// Dead air, as the caller hears it: each upstream stage slowed or hung while one question is answered.

constexpr const char* kReply = "Your table for two is booked for tonight. We look forward to seeing you.";

struct Fault {
  const char* name;
  net::UpstreamStage stage;
  net::SimTiming timing;
  bool hung;
  int64_t watchdog_ms;  // what ends the stage's hung request: its first-byte watchdog or its whole timeout
};

// The stages' watchdogs with the defaults (dead_air_ms 2500): first token / first audio byte 2 × dead_air;
// STT and whole requests their endpoint's timeout_ms (stt 8000, llm 15000, voice 8000). Mid-stream stalls
// hit the first sentence's end (LLM delta 6 of 8 characters; TTS after 200 ms of audio).
const Fault kFaults[] = {
    {"stt_slowed", net::UpstreamStage::stt, {1, 3000, 5}, false, 0},
    {"stt_hung", net::UpstreamStage::stt, {1, net::kSimHang, 5}, true, 8000},
    {"llm_first_token_slowed", net::UpstreamStage::llm, {1, 4000, 5}, false, 0},
    {"llm_first_token_hung", net::UpstreamStage::llm, {1, net::kSimHang, 5}, true, 5000},
    {"llm_mid_stream_slowed", net::UpstreamStage::llm, {1, 20, 5, 6, 5000}, false, 0},
    {"llm_mid_stream_hung", net::UpstreamStage::llm, {1, 20, 5, 6, net::kSimHang}, true, 15000},
    {"tts_first_byte_slowed", net::UpstreamStage::tts, {1, 3100, 5}, false, 0},
    {"tts_first_byte_hung", net::UpstreamStage::tts, {1, net::kSimHang, 5}, true, 5000},
    {"tts_mid_stream_slowed", net::UpstreamStage::tts, {1, 20, 5, 2, 5000}, false, 0},
    {"tts_mid_stream_hung", net::UpstreamStage::tts, {1, 20, 5, 2, net::kSimHang}, true, 8000},
};

class DeadAirTest : public CallTest, public ::testing::WithParamInterface<Fault> {
 protected:
  size_t requests(net::UpstreamStage stage) const {
    switch (stage) {
      case net::UpstreamStage::stt:
        return up_.stt_requests().size();
      case net::UpstreamStage::llm:
        return up_.chat_requests().size();
      default:
        return up_.tts_requests().size();
    }
  }
};

TEST_P(DeadAirTest, EveryGapIsBoundedAndTheFallbackFollowsWithinTheWatchdog) {
  const Fault& f = GetParam();
  ASSERT_NE(local_speech(), nullptr) << "espeak-ng (osvi-speech.so) is needed to hear the filler";
  ctx_.speech = speak_at_once;
  answer_and_greet();
  up_.set_timing(f.stage, f.timing);  // after the greeting: the fault hits the answer
  up_.push_llm(says(kReply));
  audio_.reset_heard();
  // When the faulted stage's latest request went out and when the call gave up on it (period resolution).
  int64_t request_us = -1, fallback_us = -1;
  size_t seen = requests(f.stage);
  after_period_ = [&] {
    if (requests(f.stage) != seen) {
      seen = requests(f.stage);
      if (fallback_us < 0) request_us = time_.now_us();
    }
    if (fallback_us < 0 && call_->record().callback_required) fallback_us = time_.now_us();
  };
  for (int i = 0; i < 10; ++i) period();
  caller_asks("Book a table for two");
  // Until the turn is over for the caller: the reply heard to its end, or the fallback message.
  const std::string last = f.hung ? agent_.fallback.message : kReply;
  for (int i = 0; i < 1500 && call_->context().back().content != last; ++i) period();
  ASSERT_EQ(call_->context().back().content, last) << f.name;

  // Every silence the caller heard before agent audio, on the device's clock.
  const uint64_t bound =
      static_cast<uint64_t>((ctx_.calls.dead_air_ms + audio_.frame_ms) * audio_.rate / 1000);
  std::ostringstream heard;
  for (const FakeAudio::Start& s : audio_.starts())
    heard << ' ' << s.gap * 1000 / static_cast<uint64_t>(audio_.rate) << " ms at "
          << s.at * 1000 / static_cast<uint64_t>(audio_.rate);
  ASSERT_FALSE(audio_.starts().empty());
  EXPECT_LE(audio_.longest_gap(), bound) << f.name << ": gaps before agent audio:" << heard.str();

  const std::vector<TranscriptTurn> agent = agent_turns();
  const bool filler_said = std::any_of(agent.begin(), agent.end(), [&](const TranscriptTurn& t) {
    return t.kind == "filler" && t.text == agent_.fallback.filler && !t.interrupted;
  });
  if (f.hung) {
    ASSERT_GE(fallback_us, 0) << f.name;
    ASSERT_GE(request_us, 0) << f.name;
    EXPECT_LE(fallback_us - request_us, (f.watchdog_ms + audio_.frame_ms) * 1000) << f.name;
    EXPECT_TRUE(filler_said) << f.name;
    EXPECT_TRUE(std::any_of(agent.begin(), agent.end(), [&](const TranscriptTurn& t) {
      return t.kind == "fallback" && t.text == agent_.fallback.message;
    })) << f.name;
  } else {
    EXPECT_FALSE(call_->record().callback_required) << f.name;
    ASSERT_FALSE(agent.empty());
    EXPECT_EQ(agent.back().text, kReply) << f.name;
    EXPECT_FALSE(agent.back().kind.has_value());
    EXPECT_EQ(call_->context().back().content, kReply);
  }
  for (const TranscriptTurn& t : agent)
    EXPECT_FALSE(trim(t.text).empty()) << f.name << ": an empty agent turn";
  expect_no_empty_assistant_message();
}

INSTANTIATE_TEST_SUITE_P(Stages, DeadAirTest, ::testing::ValuesIn(kFaults),
                         [](const ::testing::TestParamInfo<Fault>& i) { return std::string(i.param.name); });

// The filler and the fallback are agent turns with their text, marked, in the transcript and in the context.
TEST_F(CallTest, TheFillerIsAnAgentTurnWithItsText) {
  ASSERT_NE(local_speech(), nullptr);
  ctx_.speech = speak_at_once;
  up_.set_timing(net::UpstreamStage::llm, {1, 4000, 5});
  answer_and_greet();
  up_.push_llm(says("Here is the late answer."));
  caller_asks("Are you there");
  for (int i = 0; i < 400; ++i) period();
  const std::vector<TranscriptTurn> agent = agent_turns();
  ASSERT_EQ(agent.size(), 3u);
  EXPECT_EQ(agent[1].text, "One moment, please.");
  EXPECT_EQ(agent[1].kind, "filler");
  EXPECT_FALSE(agent[1].interrupted);
  EXPECT_EQ(agent[2].text, "Here is the late answer.");
  EXPECT_FALSE(agent[2].kind.has_value());
  // The model's history is what the caller heard, in order.
  const auto& ctx = call_->context();
  ASSERT_GE(ctx.size(), 3u);
  EXPECT_EQ(ctx[ctx.size() - 3].content, "Are you there");
  EXPECT_EQ(ctx[ctx.size() - 2].role, "assistant");
  EXPECT_EQ(ctx[ctx.size() - 2].content, "One moment, please.");
  EXPECT_EQ(ctx.back().content, "Here is the late answer.");
}

// Calls of one agent hold one copy of the rendered filler (ctx.prompts): a call that finds the copy another
// holds, or another call's render of it under way, renders nothing and still says the filler.
class SharedFillerTest : public CallTest, public ::testing::WithParamInterface<bool> {};

TEST_P(SharedFillerTest, ACallTakesTheCopyAnotherCallHoldsOrRenders) {
  const bool other_is_rendering = GetParam();
  ASSERT_NE(local_speech(), nullptr);
  std::vector<std::string> rendered;
  ctx_.speech = [&rendered](std::string text, int rate, std::chrono::milliseconds, SpeechWorker::Done done) {
    rendered.push_back(text);
    done(local_speech()->render(text, rate));
    return SpeechWorker::Ticket{};
  };
  auto pcm = local_speech()->render(agent_.fallback.filler, audio_.rate);
  ASSERT_TRUE(pcm.ok());
  SharedPrompts::Pcm held;
  SharedPrompts::Rendering other = ctx_.prompts->begin(audio_.rate, agent_.fallback.filler);
  if (!other_is_rendering) {
    held = ctx_.prompts->adopt(audio_.rate, agent_.fallback.filler, std::move(*pcm));
    other.reset();
  }
  up_.set_timing(net::UpstreamStage::llm, {1, 4000, 5});
  answer_and_greet();
  if (other_is_rendering) {  // the other call's render comes back after this call's audio opened
    held = ctx_.prompts->adopt(audio_.rate, agent_.fallback.filler, std::move(*pcm));
    other.reset();
  }
  up_.push_llm(says("Here is the late answer."));
  caller_asks("Are you there");
  for (int i = 0; i < 400; ++i) period();
  EXPECT_EQ(std::count(rendered.begin(), rendered.end(), agent_.fallback.filler), 0);
  const std::vector<TranscriptTurn> agent = agent_turns();
  ASSERT_EQ(agent.size(), 3u);
  EXPECT_EQ(agent[1].kind, "filler");
  EXPECT_EQ(agent[1].text, agent_.fallback.filler);
  EXPECT_FALSE(agent[1].interrupted);
  EXPECT_EQ(held.use_count(), 2);  // this test's and the call's: one copy (ctx.prompts keeps a weak one)
}

INSTANTIATE_TEST_SUITE_P(Other, SharedFillerTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return std::string(i.param ? "Rendering" : "Holding");
                         });

TEST(SharedPrompts, OneCopyWhileAnyCallHoldsIt) {
  SharedPrompts p;
  EXPECT_EQ(p.find(16000, "One moment"), nullptr);
  SharedPrompts::Pcm a = p.adopt(16000, "One moment", {1, 2, 3});
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(p.find(16000, "One moment"), a);
  SharedPrompts::Pcm b = p.adopt(16000, "One moment", {4, 5});  // a render that finished second is dropped
  EXPECT_EQ(b, a);
  EXPECT_EQ(*b, (std::vector<int16_t>{1, 2, 3}));
  EXPECT_EQ(p.find(8000, "One moment"), nullptr);  // another rate is another prompt
  SharedPrompts::Pcm failed = p.adopt(16000, "Hold on", {});
  ASSERT_NE(failed, nullptr);
  EXPECT_TRUE(failed->empty());
  EXPECT_EQ(p.find(16000, "Hold on"), nullptr);  // a failed render is not kept for the next call
  a.reset();
  b.reset();
  EXPECT_EQ(p.find(16000, "One moment"), nullptr);  // no call holds it: gone
  SharedPrompts::Pcm c = p.adopt(16000, "One moment", {7});
  EXPECT_EQ(*c, (std::vector<int16_t>{7}));
}

TEST_F(CallTest, TheFallbackIsAnAgentTurnMarkedAsSuch) {
  answer_and_greet();
  up_.fail_next(net::UpstreamStage::llm, {net::UpstreamError::Kind::http, 503, "service unavailable"});
  caller_says("Hello?");
  play_all();
  const std::vector<TranscriptTurn> t = transcript();
  ASSERT_FALSE(t.empty());
  EXPECT_EQ(t.back().role, "agent");
  EXPECT_EQ(t.back().text, agent_.fallback.message);
  EXPECT_EQ(t.back().kind, "fallback");
  EXPECT_EQ(call_->context().back().content, agent_.fallback.message);
}

// A caller talking over the filler interrupts nothing they heard: the question stands, their new words are
// added, and the reply answers both.
TEST_F(CallTest, TalkingOverTheFillerAddsToTheQuestion) {
  ASSERT_NE(local_speech(), nullptr);
  ctx_.speech = speak_at_once;
  up_.set_timing(net::UpstreamStage::llm, {1, 4000, 5});
  answer_and_greet();
  up_.push_llm(says("The first draft."));
  up_.push_llm(says("A table for two with a high chair, booked."));
  auto filler = local_speech()->render("One moment, please.", audio_.rate);
  ASSERT_TRUE(filler.ok());
  caller_asks("Book a table for two");
  // The filler starts 2.5 s after the question; the caller cuts in when 80 % of it was heard (two words).
  while (audio_.starts().size() < 1) period();
  const uint64_t cut = audio_.played() + filler->size() * 8 / 10;
  while (audio_.played() < cut) period();
  caller_asks("and a high chair");
  EXPECT_EQ(audio_.stops, 1);  // the filler gave way
  for (int i = 0; i < 400; ++i) period();
  ASSERT_EQ(up_.chat_requests().size(), 2u);
  // The second request holds the question, what was heard of the filler and the new words.
  const auto& m = chat(1).messages;
  ASSERT_GE(m.size(), 3u);
  EXPECT_EQ(m[m.size() - 3].role, "user");
  EXPECT_EQ(m[m.size() - 3].content, "Book a table for two");
  EXPECT_EQ(m[m.size() - 2].role, "assistant");
  EXPECT_EQ(m[m.size() - 2].content, "One moment,");
  EXPECT_EQ(m.back().role, "user");
  EXPECT_EQ(m.back().content, "and a high chair");
  EXPECT_EQ(turns(),
            (std::vector<std::string>{std::string("agent: ") + kGreeting, "user: Book a table for two",
                                      "agent: One moment,", "user: and a high chair",
                                      "agent: One moment, please.",  // the re-asked reply is late too
                                      "agent: A table for two with a high chair, booked."}));
  const std::vector<TranscriptTurn> agent = agent_turns();
  EXPECT_EQ(agent[1].kind, "filler");
  EXPECT_TRUE(agent[1].interrupted);
  EXPECT_FALSE(call_->record().callback_required);
  expect_no_empty_assistant_message();
}

// A noise over the filler (no words) costs the caller nothing: the reply being prepared is the one they get.
TEST_F(CallTest, NoiseOverTheFillerKeepsTheReplyBeingPrepared) {
  ASSERT_NE(local_speech(), nullptr);
  ctx_.speech = speak_at_once;
  up_.set_timing(net::UpstreamStage::llm, {1, 4000, 5});
  answer_and_greet();
  up_.push_llm(says("Here is the answer."));
  caller_asks("Book a table for two");
  while (audio_.starts().size() < 1) period();
  for (int i = 0; i < 10; ++i) period();
  caller_asks("", 5);  // a cough: transcribed to nothing
  for (int i = 0; i < 400; ++i) period();
  EXPECT_EQ(up_.chat_requests().size(), 1u);
  EXPECT_EQ(turns().back(), "agent: Here is the answer.");
  EXPECT_FALSE(call_->record().callback_required);
  for (const TranscriptTurn& t : agent_turns()) EXPECT_FALSE(trim(t.text).empty());
  expect_no_empty_assistant_message();
}

// A reply with no words leaves no trace: nothing was heard, and no empty assistant message goes upstream.
TEST_F(CallTest, AnEmptyReplyIsNotSentBackAsAnEmptyAssistantMessage) {
  answer_and_greet();
  up_.push_llm(says(""));
  caller_says("Hello");
  play_all();
  up_.push_llm(says("Yes?"));
  caller_says("Anyone there");
  play_all();
  ASSERT_EQ(up_.chat_requests().size(), 2u);
  expect_no_empty_assistant_message();
  EXPECT_EQ(turns().back(), "agent: Yes?");
}

// A barge-in before a word of the reply was heard leaves no empty interrupted turn and no empty message.
TEST_F(CallTest, ABargeInBeforeAnyWordLeavesNoEmptyTurn) {
  answer_and_greet();
  up_.push_llm(says("The first sentence is here. The second sentence follows now."));
  caller_says("Tell me everything");
  time_.advance_ms(400);
  audio_.play(100);  // a few milliseconds: not one word
  up_.push_llm(says("Of course."));
  caller_says("Wait");
  EXPECT_EQ(audio_.stops, 1);
  play_all();
  for (const TranscriptTurn& t : agent_turns()) EXPECT_FALSE(trim(t.text).empty());
  EXPECT_EQ(turns(), (std::vector<std::string>{std::string("agent: ") + kGreeting, "user: Tell me everything",
                                               "user: Wait", "agent: Of course."}));
  expect_no_empty_assistant_message();
}

// Barge-in by words (call.min_interruption_words): the reply is playing through a short ring (so that
// what is queued after the caller starts talking shows the ducking), the caller talks over it.
class WordsBargeInTest : public CallTest {
 protected:
  static constexpr const char* kReply = "The first sentence is here. The second sentence follows now.";
  // The reply to "Tell me everything" is playing at full level; returns that level (peak sample).
  int reply_playing() {
    answer_and_greet();
    audio_.capacity = 1600;  // 100 ms: the Call holds the rest and queues it period by period
    up_.push_llm(says(kReply));
    caller_asks("Tell me everything");
    audio_.queued_peak = 0;
    for (int i = 0; i < 20; ++i) period();
    EXPECT_GT(audio_.played(), 0u);
    return audio_.queued_peak;
  }
  // Periods until the agent's turn is over (or the limit).
  void play_out(int periods = 300) {
    for (int i = 0; i < periods; ++i) period();
  }
};

TEST_F(WordsBargeInTest, ABackchannelDucksTheReplyWhichThenCarriesOnAtFullLevel) {
  agent_.call.min_interruption_words = 3;
  const int full = reply_playing();
  ASSERT_GT(full, 8000);  // the sim's tone at 0.3 of full scale
  int while_talking = 0, stops_before_words = -1;
  audio_.queued_peak = 0;
  caller_asks("Uh-huh, okay.", 10, [&] {
    while_talking = audio_.queued_peak;
    stops_before_words = audio_.stops;
    audio_.queued_peak = 0;
  });
  // Ducked while the caller talked (−12 dB: a quarter), never stopped.
  EXPECT_EQ(stops_before_words, 0);
  EXPECT_GT(while_talking, 0);  // the reply kept playing
  EXPECT_LE(while_talking, full / 4 + 1);
  // Two words < 3: a backchannel. Full level again, the reply plays to its end.
  audio_.queued_peak = 0;
  for (int i = 0; i < 10; ++i) period();
  EXPECT_GT(audio_.queued_peak, full * 3 / 4);
  play_out();
  EXPECT_EQ(audio_.stops, 0);
  EXPECT_EQ(turns(), (std::vector<std::string>{std::string("agent: ") + kGreeting, "user: Tell me everything",
                                               "user: Uh-huh, okay.", std::string("agent: ") + kReply}));
  EXPECT_FALSE(agent_turns().back().interrupted);
  // Not a question: nothing more was asked, and the model's history has the whole reply, no backchannel.
  EXPECT_EQ(up_.chat_requests().size(), 1u);
  ASSERT_FALSE(call_->context().empty());
  EXPECT_EQ(call_->context().back().role, "assistant");
  EXPECT_EQ(call_->context().back().content, kReply);
  for (const net::ChatMessage& m : call_->context()) EXPECT_NE(m.content, "Uh-huh, okay.");
}

TEST_F(WordsBargeInTest, EnoughWordsStopTheReplyAndAreAnswered) {
  agent_.call.min_interruption_words = 3;
  reply_playing();
  up_.push_llm(says("Of course."));
  int stops_before_words = -1;
  caller_asks("Wait, I have another question", 25, [&] { stops_before_words = audio_.stops; });
  EXPECT_EQ(stops_before_words, 0);  // ducked, not stopped, while the words were unknown
  play_out(60);
  EXPECT_EQ(audio_.stops, 1);
  const std::vector<std::string> t = turns();
  ASSERT_EQ(t.size(), 5u);
  const std::vector<TranscriptTurn> agent = agent_turns();
  ASSERT_EQ(agent.size(), 3u);
  // The cut reply keeps what was heard (more than the 20 periods before the caller began, less than all).
  EXPECT_TRUE(agent[1].interrupted);
  EXPECT_FALSE(trim(agent[1].text).empty());
  EXPECT_LT(agent[1].text.size(), std::string(kReply).size());
  EXPECT_EQ(std::string(kReply).rfind(agent[1].text, 0), 0u) << agent[1].text;
  EXPECT_EQ(t[3], "user: Wait, I have another question");
  EXPECT_EQ(t[4], "agent: Of course.");
  // The model is asked again with the heard prefix and the caller's words.
  ASSERT_EQ(up_.chat_requests().size(), 2u);
  const net::ChatRequest& next = chat(1);
  ASSERT_GE(next.messages.size(), 2u);
  EXPECT_EQ(next.messages[next.messages.size() - 2].content, agent[1].text);
  EXPECT_EQ(next.messages.back().content, "Wait, I have another question");
}

// Words over the reply whose transcript comes back after the reply has ended interrupt nothing: they are
// an ordinary caller turn (answered), and the reply was heard whole.
TEST_F(WordsBargeInTest, WordsKnownAfterTheReplyEndedAreAnOrdinaryTurn) {
  agent_.call.min_interruption_words = 3;
  reply_playing();
  up_.set_timing(net::UpstreamStage::stt, {1, 4000, 5});  // the reply ends before the words come
  up_.push_llm(says("Yes?"));
  caller_asks("Okay.", 10);
  play_out(250);
  EXPECT_EQ(audio_.stops, 0);
  EXPECT_EQ(turns(),
            (std::vector<std::string>{std::string("agent: ") + kGreeting, "user: Tell me everything",
                                      std::string("agent: ") + kReply, "user: Okay.", "agent: Yes?"}));
  EXPECT_EQ(up_.chat_requests().size(), 2u);
}

// The same backchannel without words mode is a barge-in as soon as it lasts min_interruption_s.
TEST_F(WordsBargeInTest, WithoutWordsModeABackchannelStopsTheReply) {
  ASSERT_EQ(agent_.call.min_interruption_words, 0u);
  reply_playing();
  up_.push_llm(says("Yes?"));
  int stops_before_words = -1;
  caller_asks("Uh-huh, okay.", 10, [&] { stops_before_words = audio_.stops; });
  EXPECT_EQ(stops_before_words, 1);
  play_out(60);
  EXPECT_TRUE(agent_turns().at(1).interrupted);
  EXPECT_EQ(up_.chat_requests().size(), 2u);
}

// The backchannel set against true interruptions, each spoken over the reply, with barge-in by duration
// (min_interruption_words 0) and by words (2, 3): which stop the agent. The transcripts are scripted (a
// perfect STT), so this checks the decision, not recognition. The tally is printed at the end of the suite
// (bench/README.md, "Barge-in by words").
struct BargeInCase {
  const char* phrase;
  unsigned words;  // counted by hand: "uh-huh" is one
  bool backchannel;
  unsigned min_words;
};
class BargeInSetTest : public WordsBargeInTest, public ::testing::WithParamInterface<BargeInCase> {
 public:
  struct Tally {
    int backchannels = 0, false_stops = 0, interruptions = 0, true_stops = 0;
  };
  static std::map<unsigned, Tally>& tallies() {
    static std::map<unsigned, Tally> t;
    return t;
  }
  static void TearDownTestSuite() {
    for (const auto& [n, t] : tallies())
      std::printf(
          "barge-in set, min_interruption_words=%u: false barge-ins %d/%d backchannels, "
          "interruptions stopped %d/%d\n",
          n, t.false_stops, t.backchannels, t.true_stops, t.interruptions);
  }
};

TEST_P(BargeInSetTest, SpokenOverTheReply) {
  const BargeInCase c = GetParam();
  agent_.call.min_interruption_words = c.min_words;
  reply_playing();
  up_.push_llm(says("Yes?"));
  caller_asks(c.phrase, 15);
  play_out(200);
  const bool stopped = audio_.stops > 0;
  Tally& t = tallies()[c.min_words];
  (c.backchannel ? t.backchannels : t.interruptions) += 1;
  (c.backchannel ? t.false_stops : t.true_stops) += stopped ? 1 : 0;
  // Stopped means interrupted and answered; not stopped means the whole reply was heard, nothing asked.
  ASSERT_GE(agent_turns().size(), 2u);
  EXPECT_EQ(agent_turns()[1].interrupted, stopped);
  EXPECT_EQ(up_.chat_requests().size(), stopped ? 2u : 1u);
  // By duration any speech over the reply stops it; by words, exactly the phrases with enough words do.
  if (c.min_words == 0) {
    EXPECT_TRUE(stopped) << c.phrase;
  } else {
    EXPECT_EQ(stopped, c.words >= c.min_words) << c.phrase;
  }
}

std::vector<BargeInCase> barge_in_set() {
  struct Phrase {
    const char* text;
    unsigned words;
  };
  const Phrase backchannels[] = {{"Uh-huh.", 1},     {"Okay.", 1},          {"Yes.", 1},   {"Mm-hmm.", 1},
                                 {"Right.", 1},      {"Yeah, sure.", 2},    {"I see.", 2}, {"Got it.", 2},
                                 {"Okay, okay.", 2}, {"Alright, I see.", 3}};
  const Phrase interruptions[] = {
      {"Wait, stop please.", 3},        {"No, that's not what I asked.", 6},
      {"Can you repeat the time?", 5},  {"Actually I want Tuesday.", 4},
      {"Hold on a second.", 4},         {"Sorry, what was that?", 4},
      {"I need to cancel instead.", 5}, {"That is wrong, the address changed.", 6},
      {"Let me speak to a person.", 6}, {"No no no, the other clinic.", 6}};
  std::vector<BargeInCase> out;
  for (unsigned n : {0u, 2u, 3u}) {
    for (const Phrase& p : backchannels) out.push_back({p.text, p.words, true, n});
    for (const Phrase& p : interruptions) out.push_back({p.text, p.words, false, n});
  }
  return out;
}
INSTANTIATE_TEST_SUITE_P(Phrases, BargeInSetTest, ::testing::ValuesIn(barge_in_set()));

// The line confirms the hang-up of the call before this one (it went idle at once and the next call was
// placed on it): not this call's end.
TEST_F(CallTest, AnEarlierCallsHangupConfirmationDoesNotEndANewCall) {
  start(true);
  line_event(hal::LineEvent::Type::hung_up, kNumber);
  EXPECT_FALSE(call_->finished());
  pick_up();
  play_all();
  line_event(hal::LineEvent::Type::hung_up, kNumber);
  EXPECT_FALSE(call_->finished());
  line_event(hal::LineEvent::Type::remote_hangup);
  ASSERT_TRUE(call_->finished());
  EXPECT_EQ(saved_record().status, "picked");
}

// --- opt-out: the caller asks not to be called again ---

TEST_F(CallTest, OptOutToolPutsTheNumberOnTheListSaysTheMessageAndEnds) {
  answer_and_greet();
  up_.push_llm(calls_tool("opt_out", R"({"reason":"not interested"})"));
  caller_says("Please never call me again");
  time_.advance_ms(400);
  // On the list before the goodbye is even heard.
  auto on = store_->dnd().is_active("agent_a", kNumber);
  ASSERT_TRUE(on.ok());
  EXPECT_TRUE(*on);
  EXPECT_EQ(tts_texts().back(), "You will not be called again. Goodbye.");
  EXPECT_FALSE(line_.did("hangup"));  // the message plays first
  // The caller talking over the goodbye does not stop it.
  caller_says("Wait");
  EXPECT_FALSE(audio_.stop_requested());
  audio_.drain();
  confirm_hangup();
  ASSERT_TRUE(call_->finished());
  const CallRecord r = saved_record();
  EXPECT_EQ(r.status, "picked");
  EXPECT_EQ(r.call_ended_reason, "opt_out");
  EXPECT_EQ(r.call_ended_by, "user");
  const std::vector<std::string> t = turns();
  ASSERT_GE(t.size(), 4u);
  EXPECT_EQ(t[2], R"(tool: opt_out {"reason":"not interested"})");
  EXPECT_EQ(t[3], std::string("tool: opt_out: ") + kNumber +
                      " added to the do-not-disturb list (caller opted out during the call: not interested)");
  EXPECT_NE(std::find(t.begin(), t.end(), "agent: You will not be called again. Goodbye."), t.end());
  EXPECT_EQ(up_.chat_requests().size(), 1u) << "nothing is asked of the model after the opt-out";
  int64_t total = 0;
  auto page = store_->dnd().list("agent_a", "", 1, 25, &total);
  ASSERT_TRUE(page.ok()) << page.error().message;
  ASSERT_EQ(page->size(), 1u);
  EXPECT_EQ((*page)[0].source, "opt_out");
  EXPECT_EQ((*page)[0].call_id, kCallId);
  EXPECT_EQ((*page)[0].reason, "caller opted out during the call: not interested");
}

TEST_F(CallTest, TheOptOutToolIsOfferedOnlyWhenEnabled) {
  agent_.tools.opt_out.enabled = false;
  answer_and_greet();
  up_.push_llm(calls_tool("opt_out", "{}"));
  up_.push_llm(says("Noted."));
  caller_says("Stop calling me");
  play_all();
  for (const net::ToolSpec& t : chat(0).tools) EXPECT_NE(t.name, "opt_out");
  EXPECT_EQ(last_content(chat(1), "tool"), "unknown tool opt_out");
  auto on = store_->dnd().is_active("agent_a", kNumber);
  ASSERT_TRUE(on.ok());
  EXPECT_FALSE(*on);
  EXPECT_FALSE(line_.did("hangup"));
}

TEST_F(CallTest, OptOutKeyStopsTheAgentMidReplyAndEndsWithTheMessage) {
  agent_.tools.opt_out.dtmf_key = "9";
  agent_.tools.opt_out.message = "Removed. Goodbye.";
  answer_and_greet();
  up_.push_llm(says("We have a great offer on loans this month, with rates lower than ever before."));
  caller_says("What is this about");
  time_.advance_ms(400);
  audio_.play(3200);  // 200 ms of the reply heard
  ASSERT_TRUE(audio_.unplayed() > 0);
  frame(dtmf('9'));  // the stop completes within the frame
  auto on = store_->dnd().is_active("agent_a", kNumber);
  ASSERT_TRUE(on.ok());
  EXPECT_TRUE(*on);
  EXPECT_EQ(audio_.stops, 1);
  play_all();
  EXPECT_EQ(tts_texts().back(), "Removed. Goodbye.");
  confirm_hangup();
  const CallRecord r = saved_record();
  EXPECT_EQ(r.call_ended_reason, "opt_out");
  EXPECT_EQ(r.call_ended_by, "user");
  const std::vector<std::string> t = turns();
  EXPECT_NE(std::find(t.begin(), t.end(),
                      std::string("tool: opt_out: ") + kNumber +
                          " added to the do-not-disturb list (caller pressed 9 to opt out)"),
            t.end());
  EXPECT_EQ(t.back(), "agent: Removed. Goodbye.");
  for (const std::string& turn : t) EXPECT_EQ(turn.find("DTMF"), std::string::npos) << turn;
  int64_t total = 0;
  auto page = store_->dnd().list("agent_a", "", 1, 25, &total);
  ASSERT_TRUE(page.ok()) << page.error().message;
  ASSERT_EQ(page->size(), 1u);
  EXPECT_EQ((*page)[0].reason, "caller pressed 9 to opt out");
  EXPECT_EQ((*page)[0].source, "opt_out");
  EXPECT_EQ((*page)[0].call_id, kCallId);
}

TEST_F(CallTest, OptOutKeyFromTheLineAndOtherKeysStayDigits) {
  agent_.tools.opt_out.dtmf_key = "*";
  answer_and_greet();
  up_.push_llm(says("You chose one."));
  frame(dtmf('1'));
  frame(dtmf('#'));
  play_all();
  EXPECT_EQ(last_content(chat(0), "user"), "[The caller pressed the keys: 1#]");
  // A modem reports the key out of band.
  hal::LineEvent e;
  e.type = hal::LineEvent::Type::dtmf;
  e.digit = '*';
  line_.deliver(e);
  play_all();
  EXPECT_EQ(tts_texts().back(), "You will not be called again. Goodbye.");
  confirm_hangup();
  EXPECT_EQ(saved_record().call_ended_reason, "opt_out");
  auto on = store_->dnd().is_active("agent_a", kNumber);
  ASSERT_TRUE(on.ok());
  EXPECT_TRUE(*on);
}

// --- the abandonment guard: greeting_gap_ms ---

TEST_F(CallTest, GreetingGapCountsFromTheEndOfTheCalleesHello) {
  start(true);  // AMD holds the agent until the verdict
  pick_up();
  // "Hello?": after it the time is 520 ms past the endpointer's end of their voice, 600 ms past the voice's
  // end (the endpointer marks it kSpeechEndLagMs, 80 ms, late).
  caller_speaks(15);
  frame(amd(audio::AmdVerdict::human));
  time_.advance_ms(100);  // the greeting's first audio is queued
  ASSERT_GT(audio_.unplayed(), 0u);
  audio_.play(320);  // ...and its first sample reaches the line: 720 ms after their hello
  line_event(hal::LineEvent::Type::remote_hangup);
  const CallRecord r = saved_record();
  ASSERT_TRUE(r.greeting_gap_ms.has_value());
  EXPECT_EQ(*r.greeting_gap_ms, 720);
}

TEST_F(CallTest, GreetingGapCountsFromTheAnswerWhenTheAgentSpeaksFirst) {
  agent_.call.voicemail.detect = false;
  start(true);
  pick_up();  // the greeting is requested at once
  time_.advance_ms(2300);
  audio_.play(320);
  for (int i = 0; i < 5; ++i) frame();
  audio_.drain();
  line_event(hal::LineEvent::Type::remote_hangup);
  const CallRecord r = saved_record();
  ASSERT_TRUE(r.greeting_gap_ms.has_value());
  EXPECT_EQ(*r.greeting_gap_ms, 2300);  // over the 2 s rule: measured as it is (and logged)
}

TEST_F(CallTest, GreetingGapIsZeroWhenTheCalleeStillSpokeAsTheAgentBegan) {
  agent_.call.voicemail.detect = false;
  agent_.greeting.interruptible = false;  // they talk over it
  start(true);
  pick_up();
  const uint64_t at = audio_.position() + 320;
  frame(endpoints({{EndpointKind::Onset, at, 0, 0, 0}, {EndpointKind::SpeechStart, at, 0, 0, 0}}));
  time_.advance_ms(100);
  audio_.play(320);  // the agent's first sample while they talk
  for (int i = 0; i < 10; ++i) frame();
  const uint64_t end = audio_.position();
  for (int i = 0; i < 24; ++i) frame();
  frame(endpoints({{EndpointKind::SpeechEnd, audio_.position() + 320, 0, end, 8000}}));
  line_event(hal::LineEvent::Type::remote_hangup);
  const CallRecord r = saved_record();
  ASSERT_TRUE(r.greeting_gap_ms.has_value());
  EXPECT_EQ(*r.greeting_gap_ms, 0);
}

TEST_F(CallTest, NoGreetingGapForInboundCallsMachinesOrSilentAgents) {
  answer_and_greet();  // inbound
  line_event(hal::LineEvent::Type::remote_hangup);
  EXPECT_FALSE(saved_record().greeting_gap_ms.has_value());
}

TEST_F(CallTest, NoGreetingGapForAnAnsweringMachine) {
  agent_.call.voicemail.action = VoicemailAction::leave_message;
  start(true);
  pick_up();
  frame(amd(audio::AmdVerdict::machine));
  frame(beep());
  play_all();
  confirm_hangup();
  const CallRecord r = saved_record();
  EXPECT_EQ(r.status, "voicemail");
  EXPECT_FALSE(r.greeting_gap_ms.has_value());
}

}  // namespace
}  // namespace osvi::daemon
