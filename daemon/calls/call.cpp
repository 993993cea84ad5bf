// One conversation: the state machine behind calls/include/osvi/calls/call.hpp.
#include "osvi/calls/call.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <utility>

#include "osvi/audio/page_pipe.hpp"
#include "osvi/audio/recording.hpp"
#include "osvi/base/log.hpp"
#include "osvi/base/phone.hpp"
#include "osvi/config/audio_settings.hpp"
#include "osvi/knowledge/tool.hpp"
#include "osvi/net/json.hpp"
#include "osvi/speech/speech.hpp"

namespace osvi::daemon {
namespace {

constexpr int kDefaultMinSpeechMs = 150;  // endpointer default while the agent is quiet
// Ducking while the caller talks over the agent (barge-in by words): a quarter of the amplitude, −12 dB —
// clearly lower so the caller knows they are heard, loud enough that a backchannel loses nothing.
constexpr int kDuckDivisor = 4;

// Words in a transcript: runs of letters or digits (a non-ASCII byte counts as a letter, so that every
// script counts), joined by an apostrophe or a hyphen ("uh-huh", "don't" are one word each).
size_t count_words(std::string_view text) {
  size_t words = 0;
  bool in_word = false;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    const bool letter = u >= 0x80 || std::isalnum(u) != 0;
    if (letter && !in_word) ++words;
    in_word = letter || (in_word && (c == '\'' || c == '-'));
  }
  return words;
}

constexpr int64_t kHistoryMs = 500;  // pre-roll kept for an utterance's onset
constexpr int64_t kMaxUtteranceMs = 30000;
constexpr int64_t kDtmfGatherMs = 1500;  // digits closer than this form one entry
// The same key from two sources (in-band tones and an RFC 4733 event) this close together is one press; the
// same source reporting it twice is two presses.
constexpr int64_t kDtmfDuplicateMs = 150;
constexpr int64_t kHangupGraceMs = 5000;         // the line must confirm a hang-up within this
constexpr int64_t kAudioWaitMs = 3000;           // a connected call without usable audio is given up
constexpr int64_t kLocalSpeechTimeoutMs = 1000;  // espeak renders a prompt in ~0.1-0.3 s; then the tone
constexpr int64_t kAmdMaxWaitMs = 5000;          // the AMD verdict, at the latest
// The abandonment rule dialers are held to: a person who answered hears the agent within 2 s of their
// greeting's end.
constexpr int64_t kGreetingGapLimitMs = 2000;
// The endpointer marks the end of speech a few frames after the voice stops (frame granularity, the VAD's
// smoothing of a decaying tail: 65 ms measured on espeak-ng voices, bench/README.md "Dead air"). Dead air
// counts from the voice's end, so the guard starts this much before the marked end.
constexpr int64_t kSpeechEndLagMs = 80;

using call_text::trim;

std::vector<int16_t> tone(int rate, double hz, int ms) {
  std::vector<int16_t> out(static_cast<size_t>(rate) * static_cast<size_t>(ms) / 1000);
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<int16_t>(8000.0 * std::sin(2.0 * M_PI * hz * static_cast<double>(i) / rate));
  return out;
}

// One decimal, as a raw number: the saved documents stay byte-for-byte what they were.
void add_ms(cJSON* o, const char* key, double v) {
  if (v < 0) return;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  cJSON_AddRawToObject(o, key, buf);
}

}  // namespace

std::string TurnLatency::json() const {
  net::JsonPtr o(cJSON_CreateObject());
  add_ms(o.get(), "endpointing_ms", endpointing_ms);
  add_ms(o.get(), "stt_sent_ms", stt_sent_ms);
  add_ms(o.get(), "stt_ms", stt_ms);
  add_ms(o.get(), "llm_first_token_ms", llm_first_token_ms);
  add_ms(o.get(), "tts_first_byte_ms", tts_first_byte_ms);
  add_ms(o.get(), "first_sample_ms", first_sample_ms);
  add_ms(o.get(), "voice_to_voice_ms", voice_to_voice_ms);
  return net::json_print(o.get());
}

// The stereo recording: the file, the pipe the recorder writes its pages into (on the line's audio thread,
// which must not write files) and the loop drains into the file at every audio tick, and the recorder
// (declared in that order: each writes into the one before).
struct Call::Recording {
  std::unique_ptr<RecordingFile> file;
  std::optional<audio::PagePipe> pipe;
  std::optional<audio::CallRecorder> recorder;
};

Call::Call(CallContext& ctx, hal::Line& line, CallSetup setup, Finished on_finished)
    : ctx_(ctx),
      line_(line),
      setup_(std::move(setup)),
      record_(setup_.record),
      on_finished_(std::move(on_finished)) {
  if (setup_.agent.prompt.type == PromptType::multi) prompt_state_ = setup_.agent.prompt.initial_state;
}

Call::~Call() {
  cancel_upstream();
  close_audio();
}

void Call::set_dead_air(int64_t from_us, std::optional<uint64_t> from_pos) {
  timers_.set(D::dead_air, from_us + dead_air_us());
  // The same deadline on the capture clock, the caller's: the wall-clock timer alone fires late by however
  // long capture frames take to reach the loop. The timer stays as the backstop when no frames come.
  if (!from_pos) {
    const auto ago = static_cast<uint64_t>(std::max<int64_t>(now_us() - from_us, 0));
    from_pos = pos_ - std::min<uint64_t>(pos_, ago * static_cast<uint64_t>(rate_) / 1'000'000);
  }
  dead_air_pos_ = *from_pos + static_cast<uint64_t>(dead_air_us()) * static_cast<uint64_t>(rate_) / 1'000'000;
}

int64_t Call::dead_air_us() const {
  // Aimed one period early: what the guard queues is heard from the next device period on.
  return std::max<int64_t>(static_cast<int64_t>(ctx_.calls.dead_air_ms) - ctx_.audio.frame_ms, 0) * 1000;
}

double Call::samples_to_ms(uint64_t samples) const {
  return static_cast<double>(samples) * 1000.0 / rate_;
}

size_t Call::memory_bytes() const {
  size_t n = sizeof(*this) + history_.capacity() * 2 + (utterance_ ? utterance_->memory_bytes() : 0) +
             pending_play_.capacity() * 2 + (filler_pcm_ ? filler_pcm_->capacity() * 2 : 0) +
             filler_play_.capacity() * 2 + fallback_pcm_.capacity() * 2 + duck_buf_.capacity() * 2;
  for (const auto& m : messages_) n += m.content.capacity() + sizeof(m);
  for (const auto& s : segments_) n += s.text.capacity() + sizeof(s);
  return n;
}

std::string Call::render_template(std::string_view text) const {
  return call_text::render_template(text, {setup_.person_name, setup_.additional_data, record_.phone_number});
}

std::string Call::system_prompt() const {
  const AgentConfig& a = setup_.agent;
  std::string p;
  if (setup_.system_prompt) {
    p = *setup_.system_prompt;
  } else {
    p = call_text::agent_prompt(a.prompt, prompt_state_);
  }
  p = render_template(p);
  p += "\n\nYou are speaking on a phone call: answer in short spoken "
       "sentences, no lists or markup.";
  return p;
}

std::vector<net::ToolSpec> Call::tools() const {
  const ToolsConfig& t = setup_.agent.tools;
  std::vector<net::ToolSpec> out;
  const std::string reason = call_text::string_schema({{"reason", "why, in a few words"}}, {});
  if (t.end_call) out.push_back({"end_call", "End the phone call after your last sentence.", reason});
  if (t.transfer.enabled && !t.transfer.number.empty())
    out.push_back({"transfer_call", "Transfer the caller to a human colleague.", reason});
  if (t.dtmf)
    out.push_back({"send_dtmf", "Press keys on the phone keypad (an IVR menu): digits 0-9, * and #.",
                   call_text::string_schema({{"digits", nullptr}}, {"digits"})});
  if (t.opt_out.enabled)
    out.push_back(
        {"opt_out",
         "The caller asks not to be called again (to be taken off the calling list, to stop the "
         "calls): their number is put on the do-not-call list, a goodbye is said and the call ends. "
         "Call it as soon as they ask; say nothing yourself.",
         call_text::string_schema({{"reason", "what the caller said, in a few words"}}, {})});
  if (setup_.agent.prompt.type == PromptType::multi)
    out.push_back({"switch_state", "Move the conversation to another state.",
                   call_text::switch_state_schema(setup_.agent.prompt)});
  if (knowledge_offered()) out.push_back(knowledge::search_tool_spec());
  return out;
}

// ----------------------------------------------------------------------------------------------
// lifecycle

Status Call::start() {
  auto timer = ctx_.timer ? ctx_.timer([this] { on_timer(); })
                          : make_loop_call_timer(*ctx_.loop, [this] { on_timer(); });
  if (!timer) return timer.error();
  timers_.attach(std::move(*timer));
  messages_.push_back({"system", system_prompt(), {}, {}});
  Status s = setup_.outbound ? line_.dial(record_.phone_number) : line_.answer();
  if (!s) return s;
  log::info(std::string(setup_.outbound ? "dialling " : "answering ") + record_.phone_number,
            {{"CALL_ID", record_.call_id}, {"LINE", line_.id()}, {"AGENT_UUID", setup_.agent.agent_uuid}},
            log::id::kCallStarted);
  return {};
}

void Call::on_line_event(const hal::LineEvent& e) {
  using T = hal::LineEvent::Type;
  if (state_ == State::finished) return;
  switch (e.type) {
    case T::answered:
      if (!answered_) connected();
      break;
    case T::audio:
      if (answered_ && !port_) {
        if (Status s = open_audio(); !s)
          log::warning("call audio not available yet: " + s.error().message, {{"CALL_ID", id()}});
      } else if (!answered_ && !port_ && setup_.outbound && state_ != State::ending) {
        // A SIP line's early media (183): the far end may play busy or an announcement before any answer.
        const hal::AudioEndpoint ep = line_.audio();
        if (ep.kind == hal::AudioEndpoint::Kind::rtp && ep.ready) open_early_media();
      }
      break;
    case T::busy:
      finalize("busy", "busy", "user");
      break;
    case T::no_answer:
      finalize("not_picked", "no_answer", "user");
      break;
    case T::failed:
      // Also while hanging up after another cause: the line's loss is why that cause happened.
      record_end_cause(EndCause::line_lost, e.reason.empty() ? "line_failed" : e.reason, "system");
      finalize("failed", *record_.call_ended_reason, *record_.call_ended_by);
      break;
    case T::down:
      record_end_cause(EndCause::line_lost, "line_down: " + e.reason, "system");
      finalize("failed", *record_.call_ended_reason, *record_.call_ended_by);
      break;
    case T::remote_hangup:
      if (!answered_) {
        finalize("not_picked", "caller_hung_up", "user");
      } else if (state_ == State::ending) {
        finalize(voicemail_reached_ ? "voicemail" : "picked", record_.call_ended_reason.value_or("hangup"),
                 record_.call_ended_by.value_or("agent"));
      } else {
        finalize(voicemail_reached_ ? "voicemail" : "picked", "customer-ended-call", "user");
      }
      break;
    case T::hung_up:
      // Only a call that hung up waits for this. A line that went idle at once (the simulated one) confirms
      // the hang-up of the call before this one later: a call placed on it meanwhile must not end by it.
      if (state_ != State::ending) {
        log::debug("a hang-up confirmation for an earlier call on the line: ignored", {{"CALL_ID", id()}});
        break;
      }
      finalize(answered_ ? (voicemail_reached_ ? "voicemail" : "picked") : "not_picked",
               record_.call_ended_reason.value_or("hangup"), record_.call_ended_by.value_or("agent"));
      break;
    case T::transferred:
      save_turn("tool", "transferred to " + e.number, wall_ms(), wall_ms(), false, std::nullopt);
      finalize("picked", "transferred", "agent");
      break;
    case T::transfer_failed:
      upstream_errors_.push_back("transfer failed: " + e.reason);
      messages_.push_back(
          {"system", "The transfer failed (" + e.reason + "). Tell the caller and help them.", {}, {}});
      state_ = State::thinking;
      answering_user_ = false;
      request_llm();
      break;
    case T::dtmf:
      // Modems report digits out of band; the chain hears in-band ones (sim and analog lines).
      on_dtmf(e.digit, DtmfSource::line);
      break;
    case T::incoming:
    case T::up:
      break;
  }
}

void Call::connected() {
  answered_ = true;
  connected_ms_ = wall_ms();
  if (setup_.outbound) {
    gap_open_ = true;
    answered_us_ = now_us();
  }
  record_.call_picked_at_ms = connected_ms_;
  record_.status = "in_progress";
  // Written now, not only at the end: a daemon killed mid-call must still know the call was answered.
  if (Status s = ctx_.store->calls().set_picked(id(), connected_ms_); !s)
    log::error("cannot save the answer time: " + s.error().message, {{"CALL_ID", id()}});
  const int64_t max_s = setup_.max_duration_s.value_or(setup_.agent.call.max_duration_s);
  set_in(D::max_duration, max_s * 1'000'000);
  if (Status s = open_audio(); !s) {
    // SIM7600-style lines turn audio on a little after the call is active: wait for the audio event.
    set_in(D::audio_wait, kAudioWaitMs * 1000);
    log::info("waiting for call audio: " + s.error().message, {{"CALL_ID", id()}});
  }
  arm();
}

Status Call::open_port() {
  AudioPortSetup ps{line_.audio(), ctx_.audio, &setup_.agent,
                    setup_.outbound && setup_.agent.call.voicemail.detect, &line_};
  auto port = ctx_.audio_port ? ctx_.audio_port(ps, *this) : make_line_audio_port(*ctx_.loop, ps, *this);
  if (!port) return port.error();
  port_ = std::move(*port);
  rate_ = port_->rate();
  utterance_open_ = false;
  if (port_->encodes_utterances()) {
    // The stream's thread encodes them (audio.opus.*) and hands over each blob at its SpeechEnd.
    history_ = {};
    utterance_.reset();
  } else {
    history_.assign(static_cast<size_t>(rate_ * kHistoryMs / 1000), 0);
    // audio.opus.* shape the utterances sent to STT; the call keeps one encoder, restarted per utterance.
    auto enc = audio::UtteranceEncoder::create(rate_, utterance_options(ctx_.audio));
    if (!enc) return enc.error();
    utterance_.emplace(std::move(*enc));
  }
  if (Status s = port_->start(); !s) return s;
  // The device must actually open: a PCM that never delivers would leave the caller in silence.
  set_in(D::audio_wait, kAudioWaitMs * 1000);
  return {};
}

void Call::open_early_media() {
  if (Status s = open_port(); !s) {
    // Only the tone detector misses it; the answer opens the audio again.
    log::info("early media not opened: " + s.error().message, {{"CALL_ID", id()}});
    port_.reset();
    timers_.clear(D::audio_wait);
    return;
  }
  early_media_ = true;
  // Ringback or an announcement is no callee: the answering-machine detector starts with the answer.
  port_->set_amd(false);
  log::debug("early media: listening for call-progress tones", {{"CALL_ID", id()}});
  arm();
}

Status Call::open_audio() {
  if (!port_) {
    if (Status s = open_port(); !s) return s;
  } else if (early_media_) {
    early_media_ = false;
    if (port_->amd_enabled()) port_->set_amd(true);  // fresh: what it heard before the answer is dropped
  }
  open_recording();

  if (port_->amd_enabled()) {
    state_ = State::amd;
    set_in(D::amd_wait, kAmdMaxWaitMs * 1000);
  } else {
    speak_greeting();
  }
  // Rendered now, not when the answer is late: the filler must be heard by the dead-air deadline.
  // Calls of one agent say the same filler: one render and one copy for all (want_filler()).
  if (!setup_.agent.fallback.filler.empty()) want_filler(render_template(setup_.agent.fallback.filler));
  arm();
  return {};
}

void Call::open_recording() {
  if (!ctx_.audio.recording.enabled || !ctx_.recordings) return;
  auto file = ctx_.recordings->open(id());
  if (!file) {
    log::warning("cannot record the call: " + file.error().message, {{"CALL_ID", id()}});
    return;
  }
  auto rec = std::make_unique<Recording>();
  rec->file = std::move(*file);
  audio::RecordingConfig rc;
  rc.rate = rate_;
  rc.frame_ms = ctx_.audio.frame_ms;
  rc.bitrate = ctx_.audio.recording.bitrate;
  rc.complexity = ctx_.audio.recording.complexity;
  rc.call_id = id();
  rc.agent = setup_.agent.name;
  rc.title = "osvi call " + id();
  rec->pipe.emplace(*rec->file, audio::PagePipe::ring_bytes_for(rc.bitrate));
  auto r = audio::CallRecorder::create(*rec->pipe, rc);
  if (!r) {
    log::warning("cannot record the call: " + r.error().message, {{"CALL_ID", id()}});
    ctx_.recordings->discard(std::move(rec->file));
    return;
  }
  rec->recorder.emplace(std::move(*r));
  recording_ = std::move(rec);
  port_->attach_recorder(&*recording_->recorder);
}

void Call::close_audio() {
  if (port_) {
    // Returns once the audio thread is out of the recorder; the port's end joins that thread anyway.
    port_->attach_recorder(nullptr);
    closed_xruns_ += port_->xruns();
  }
  port_.reset();
  // A call destroyed unfinished (shut-down) still leaves every encoded page in its .part for the salvage.
  if (recording_) recording_->pipe->drain();
}

void Call::set_min_speech_ms(int ms) {
  if (port_) port_->set_min_speech_ms(ms);
}

// ----------------------------------------------------------------------------------------------
// audio

void Call::on_audio_tick() {
  // The pages the audio thread encoded since the last tick reach the file here, on the loop.
  if (recording_) recording_->pipe->drain();
  const uint64_t played = port_->played_samples();
  if (played > seen_played_) {
    seen_played_ = played;
    // The caller hears the agent: no dead air while it lasts (the guard re-arms when the burst ends).
    if (timers_.armed(D::dead_air)) {
      timers_.clear(D::dead_air);
      arm();
    }
    if (burst_ == Burst::turn) filler_used_ = false;  // the reply moves on: a later stall gets its own filler
    if (gap_open_ && agent_first_audio_us_ < 0) {
      agent_first_audio_us_ = now_us();
      // Their greeting still going on (as far as the endpointer knows): its end decides, when it comes.
      if (!callee_in_speech_) settle_greeting_gap();
    }
  }
  if (awaiting_first_sample_ && burst_ == Burst::turn && played > turn_burst_mark_) {
    awaiting_first_sample_ = false;
    const int64_t now = now_us();
    if (tts_first_byte_us_ >= 0)
      latency_.first_sample_ms = static_cast<double>(now - tts_first_byte_us_) / 1000.0;
    if (speech_end_us_ >= 0) latency_.voice_to_voice_ms = static_cast<double>(now - speech_end_us_) / 1000.0;
    turn_started_ms_ = wall_ms();
  }
  pump_playback();
}

void Call::on_stream_event(const hal::StreamEvent& e) {
  using K = hal::StreamEventKind;
  switch (e.kind) {
    case K::playback_drained:
      if (burst_ == Burst::filler)
        finish_filler(false, e.played);
      else
        heard_samples_ += e.played;
      burst_queued_ = 0;
      burst_ = Burst::none;
      after_burst();
      break;
    case K::playback_stopped:
      if (burst_ == Burst::filler)
        finish_filler(true, e.played);
      else
        heard_samples_ += e.played;
      burst_queued_ = 0;
      burst_ = Burst::none;
      stop_pending_ = false;
      if (barging_) {
        barging_ = false;
        agent_turn_finished(true);
      } else {
        // Only a filler was talked over: the reply goes on (held while the caller's words are unknown).
        after_burst();
      }
      break;
    case K::opened:
      timers_.clear(D::audio_wait);
      arm();
      break;
    case K::device_lost:
      // Early media that stops is no lost call: the answer brings the media back (device_back).
      if (early_media_) break;
      log::warning("call audio device lost (" + std::string(std::strerror(-e.error)) + "), reopening",
                   {{"CALL_ID", id()}, {"LINE", line_.id()}});
      // Back within the wait, or the call ends rather than sit in silence.
      if (!timers_.armed(D::audio_wait)) {
        set_in(D::audio_wait, kAudioWaitMs * 1000);
        arm();
      }
      break;
    case K::device_back:
      log::info("call audio device back", {{"CALL_ID", id()}, {"LINE", line_.id()}});
      timers_.clear(D::audio_wait);
      arm();
      break;
    case K::dtmf:
      // A SIP call's RFC 4733 telephone-event: a key like any other.
      on_dtmf(e.digit, DtmfSource::rtp);
      break;
    default:
      break;
  }
}

void Call::on_capture(const audio::CaptureOutput& out) {
  if (state_ == State::finished || out.clean.empty()) return;
  if (early_media_) {
    // Before the answer only the call-progress detector listens: no utterances, keys or verdicts.
    if (out.tone) on_progress_tone(out.tone->tone);
    return;
  }
  if (utterance_) {
    // Keep the cleaned caller for the utterance (and its pre-roll), indexed by the endpointer's clock.
    for (int16_t s : out.clean) history_[(pos_++) % history_.size()] = s;
    if (in_utterance_ && utterance_->active()) {
      const size_t cap = static_cast<size_t>(rate_ * kMaxUtteranceMs / 1000);
      if (utterance_->samples() + out.clean.size() <= cap && !utterance_->push(out.clean))
        utterance_->cancel();
    }
  } else {
    pos_ += out.clean.size();  // the port's thread keeps the audio and encodes (same pre-roll and cap)
  }
  if (out.dtmf) on_dtmf(out.dtmf->digit, DtmfSource::inband);
  if (out.tone) {
    on_progress_tone(out.tone->tone);
    if (state_ == State::finished) return;
  }
  if (state_ == State::amd && out.amd != audio::AmdVerdict::pending) {
    timers_.clear(D::amd_wait);
    port_->set_amd(false);
    if (out.amd == audio::AmdVerdict::machine) {
      voicemail_reached_ = true;
      log::info("answering machine detected", {{"CALL_ID", id()}});
      if (setup_.agent.call.voicemail.action == VoicemailAction::hangup) {
        end_call("voicemail_detected", "agent");
        return;
      }
      state_ = State::voicemail;  // wait for the beep, then leave the message
      timers_.set(D::voicemail_end, now_us() + 20'000'000);
      arm();
    } else {
      speak_greeting();
    }
  }
  if (state_ == State::voicemail && out.beep && timers_.armed(D::voicemail_end)) {
    timers_.clear(D::voicemail_end);
    speak_text(render_template(setup_.agent.call.voicemail.message), false);
    hangup_after_turn_ = true;
    record_.call_ended_reason = "voicemail_message_left";
  }
  for (const audio::EndpointEvent& e : out.endpoints) on_endpoint(e);
  if (state_ != State::finished && timers_.armed(D::dead_air) && pos_ >= dead_air_pos_) {
    timers_.clear(D::dead_air);
    on_dead_air();
    arm();
  }
}

// Lines without network signalling (an analog line, a module that reports the call connected when dialling
// completes) learn what the exchange did only from the audio: the call-progress detector
// (audio.call_progress_plan) hears it. A busy or congestion tone, or a special information tone, on an
// outbound call before the other side has said anything means no person was reached: the call ends as
// busy (busy, reorder) or not_picked (SIT: the number cannot be reached) instead of the agent talking to a
// tone until the silence limit. A network that signals the answer never plays these before the first words.
void Call::on_progress_tone(audio::ProgressTone tone) {
  using T = audio::ProgressTone;
  if (!setup_.outbound || state_ == State::ending || state_ == State::finished) return;
  if (tone != T::busy && tone != T::reorder && tone != T::sit) return;
  if (std::any_of(messages_.begin(), messages_.end(), [](const auto& m) { return m.role == "user"; })) return;
  const bool busy = tone != T::sit;
  const std::string reason = busy ? "busy" : "number_unreachable";
  log::info(std::string("call-progress tone on the line: ") + audio::to_string(tone) + ", the call ends " +
                (busy ? "busy" : "not_picked"),
            {{"CALL_ID", id()}});
  // Never picked: the line's early "connected" was the exchange, not the other party.
  answered_ = false;
  record_.call_picked_at_ms.reset();
  record_end_cause(EndCause::other, reason, "user");
  (void)line_.hangup();
  finalize(busy ? "busy" : "not_picked", reason, "user");
}

void Call::cancel_utterance() {
  if (utterance_) utterance_->cancel();
  utterance_open_ = false;  // the port's blob, if one comes, is not ours
}

void Call::on_endpoint(const audio::EndpointEvent& e) {
  using K = audio::EndpointKind;
  const int rate = rate_;
  switch (e.kind) {
    case K::Onset: {
      in_utterance_ = true;
      if (gap_open_ && greeting_end_us_ < 0) callee_in_speech_ = true;
      utterance_begin_ = e.begin;
      if (!utterance_) {
        utterance_open_ = true;  // the port's thread took the same pre-roll
      } else {
        // Copy the pre-roll: [begin, pos_) from the history ring.
        const uint64_t avail = std::min<uint64_t>(pos_ - std::min(pos_, e.begin), history_.size());
        const size_t start = static_cast<size_t>((pos_ - avail) % history_.size());
        const size_t first = std::min<size_t>(static_cast<size_t>(avail), history_.size() - start);
        const std::span<const int16_t> ring(history_);
        if (!utterance_->begin() || !utterance_->push(ring.subspan(start, first)) ||
            !utterance_->push(ring.first(static_cast<size_t>(avail) - first)))
          utterance_->cancel();
      }
      timers_.clear(D::silence);
      arm();
      break;
    }
    case K::OnsetRejected:
      in_utterance_ = false;
      if (gap_open_ && callee_in_speech_) {
        callee_in_speech_ = false;  // noise, not their greeting
        if (agent_first_audio_us_ >= 0) settle_greeting_gap();
      }
      talkover_ = false;
      overlap_ = false;
      update_duck();
      cancel_utterance();
      if (state_ == State::listening) enter_listening();  // restart the silence clock
      break;
    case K::SpeechStart:
      silence_prompts_ = 0;
      user_turn_started_ms_ = wall_ms() - static_cast<int64_t>((pos_ - e.begin) * 1000 / rate);
      if (state_ == State::fallback || state_ == State::voicemail) break;
      // The caller is talking: not dead air (the guard re-arms from the end of their speech).
      if (timers_.armed(D::dead_air)) {
        timers_.clear(D::dead_air);
        arm();
      }
      if (answer_owed() && answer_unheard()) {
        // Nothing of the reply was heard yet: the caller adds to their question, they interrupt nothing. The
        // reply being prepared is kept (their words may be noise); only the filler, if playing, gives way.
        talkover_ = true;
        if (!filler_play_.empty() || burst_ == Burst::filler) {
          filler_play_.clear();
          if (burst_ == Burst::filler && port_ && !stop_pending_) {
            stop_pending_ = true;
            port_->stop_playback();
          } else if (burst_ != Burst::filler) {
            finish_filler(true, 0);
          }
        }
      } else if (agent_busy() && setup_.agent.call.barge_in && turn_interruptible_) {
        if (words_mode() && !stop_pending_) {
          // Their words decide: the agent goes on, quieter, until the transcript is known.
          overlap_ = true;
          update_duck();
        } else {
          barge_in();
        }
      }
      break;
    case K::SpeechEnd: {
      in_utterance_ = false;
      const bool over_agent = std::exchange(overlap_, false);  // spoken over the agent's turn (words mode)
      const uint64_t keep = e.end > utterance_begin_ ? e.end - utterance_begin_ : 0;
      const int64_t now = now_us();
      speech_end_us_ = now - static_cast<int64_t>((pos_ - e.end) * 1'000'000 / static_cast<uint64_t>(rate));
      last_caller_speech_us_ = speech_end_us_;
      if (gap_open_ && callee_in_speech_ && greeting_end_us_ < 0) {
        // The endpointer marks the end a few frames after the voice stopped (kSpeechEndLagMs): counted from
        // the voice's end, the figure errs long, never short, of what the callee heard.
        greeting_end_us_ = speech_end_us_ - kSpeechEndLagMs * 1000;
        callee_in_speech_ = false;
        if (agent_first_audio_us_ >= 0) settle_greeting_gap();
      }
      if (state_ == State::fallback) {
        // The caller paused in their message: 3 s more of silence and the voicemail is complete (speech
        // resumes → Onset clears it). Before the tone was played there is no voicemail timer yet.
        if (timers_.armed(D::voicemail_end)) timers_.set(D::silence, now + 3'000'000);
        cancel_utterance();
        update_duck();
        arm();
        break;
      }
      if (state_ == State::voicemail || state_ == State::amd || state_ == State::ending) {
        cancel_utterance();
        update_duck();
        break;
      }
      decision_us_ = now;
      latency_ = {};
      latency_.endpointing_ms = samples_to_ms(e.wait);
      // Encoded while the caller spoke: only the tail frame and the page framing are left for now.
      auto blob = utterance_ && utterance_->active()
                      ? utterance_->finish(std::min(keep, utterance_->samples()))
                  : !utterance_ && std::exchange(utterance_open_, false)
                      ? port_->take_utterance()
                      : Result<std::vector<uint8_t>>(make_error("the utterance was dropped", -EIO));
      const int64_t speech_started_ms = user_turn_started_ms_;
      const int64_t speech_ended_ms =
          wall_ms() - static_cast<int64_t>((pos_ - e.end) * 1000 / static_cast<uint64_t>(rate));
      if (!blob) {
        log::warning("cannot encode the utterance: " + blob.error().message, {{"CALL_ID", id()}});
        update_duck();
        break;
      }
      net::SttRequest req;
      req.endpoint = to_net_endpoint(setup_.agent.stt);
      req.audio = std::move(*blob);
      req.mime = "audio/ogg";
      req.language = call_text::language_code(setup_.agent);
      const bool over_reply = talkover_;  // spoken over a reply not yet heard
      talkover_ = false;
      if (over_reply) ++talkover_stt_;
      if (over_agent) ++overlap_stt_;
      if (!agent_busy()) state_ = State::thinking;
      filler_used_ = false;  // the caller spoke: a new wait, which may have its filler
      ++stt_in_flight_;
      // Dead air counts from the end of the caller's speech whenever the agent is not talking.
      if (burst_ == Burst::none) {
        const uint64_t lag = std::min<uint64_t>(e.end, static_cast<uint64_t>(kSpeechEndLagMs * rate / 1000));
        set_dead_air(speech_end_us_ - kSpeechEndLagMs * 1000, e.end - lag);
      }
      const uint64_t key = next_request_key();
      net::SttCallbacks cb{
          .on_sent =
              [this] {
                stt_sent_us_ = now_us();
                latency_.stt_sent_ms = static_cast<double>(stt_sent_us_ - decision_us_) / 1000.0;
              },
          .on_done =
              [this, key, speech_started_ms, speech_ended_ms, over_reply, over_agent](std::string text) {
                release(key);
                --stt_in_flight_;
                if (over_reply) --talkover_stt_;
                if (stt_sent_us_ >= 0)
                  latency_.stt_ms = static_cast<double>(now_us() - stt_sent_us_) / 1000.0;
                text = trim(text);
                if (over_agent) {
                  --overlap_stt_;
                  update_duck();
                  // Still speaking: the words decide. Otherwise the turn ended (or was stopped) first and
                  // they are an ordinary caller turn.
                  if (agent_busy() && !stop_pending_ && turn_interruptible_) {
                    on_overlap_words(std::move(text), speech_started_ms, speech_ended_ms);
                    return;
                  }
                }
                if (text.empty()) {
                  // Noise: a reply in preparation goes on (its held audio plays).
                  if (state_ == State::thinking && !agent_busy() && stt_in_flight_ == 0) enter_listening();
                  pump_playback();
                  return;
                }
                save_turn("user", text, speech_started_ms, speech_ended_ms, false, std::nullopt);
                if (over_reply && answer_owed() && answer_unheard()) {
                  merge_and_reask(std::move(text));
                  return;
                }
                if (agent_busy()) {
                  pending_user_text_ += (pending_user_text_.empty() ? "" : " ") + text;
                  return;
                }
                start_turn(std::move(text));
              },
          .on_error =
              [this, key, over_reply, over_agent](const net::UpstreamError& err) {
                release(key);
                --stt_in_flight_;
                if (over_reply) --talkover_stt_;
                if (over_agent) {
                  --overlap_stt_;
                  update_duck();
                }
                on_upstream_error(err);
              }};
      own(key, ctx_.upstream->transcribe(std::move(req), std::move(cb)));
      arm();
      break;
    }
  }
}

void Call::on_dtmf(char digit, DtmfSource source) {
  if (state_ == State::ending || state_ == State::finished) return;
  const int64_t now = now_us();
  if (digit == last_dtmf_ && source != last_dtmf_source_ && now - last_dtmf_us_ < kDtmfDuplicateMs * 1000) {
    log::debug("DTMF " + std::string(1, digit) + " reported twice (in-band and out of band): taken once",
               {{"CALL_ID", id()}});
    return;
  }
  last_dtmf_ = digit;
  last_dtmf_source_ = source;
  last_dtmf_us_ = now;
  const std::string& key = setup_.agent.tools.opt_out.dtmf_key;
  if (key.size() == 1 && digit == key[0] && !opted_out_) {
    opt_out_by_key(digit);
    return;
  }
  if (state_ == State::fallback) return;
  dtmf_digits_ += digit;
  timers_.clear(D::silence);
  timers_.set(D::dtmf_gather, now_us() + kDtmfGatherMs * 1000);
  if (digit == '#') timers_.set(D::dtmf_gather, now_us());
  arm();
}

void Call::reserve_pending_play(size_t more) {
  const size_t need = pending_play_.size() + more;
  if (need <= pending_play_.capacity()) return;
  // Agent audio arrives faster than it plays (a sentence at once): grown by doubling from small sizes, the
  // buffer left a trail of freed heap chunks per turn that, interleaved with other calls' allocations, stayed
  // resident (~100 kB per live call, bench/README.md issue 18). Reserved at least this big, glibc maps it on
  // its own (osvid's fixed mmap threshold, daemon/main.cpp): pages are touched only as filled, and go back
  // to the system when the burst has drained (shrink_to_fit in pump_playback).
  constexpr size_t kMinReserve = 160 * 1024;  // samples: 320 KB, 10 s at 16 kHz
  pending_play_.reserve(std::max({need, kMinReserve, 2 * pending_play_.capacity()}));
}

void Call::queue_agent_audio(std::span<const int16_t> samples, size_t segment) {
  if (samples.empty()) return;
  if (segment < segments_.size()) segments_[segment].samples += samples.size();
  reserve_pending_play(samples.size());
  pending_play_.insert(pending_play_.end(), samples.begin(), samples.end());
  pump_playback();
}

void Call::pump_playback() {
  if (!port_ || stop_pending_) return;
  if (burst_ != Burst::turn && !filler_play_.empty()) {
    const size_t n = port_->queue_playback(filler_play_);
    if (n == 0) return;
    burst_ = Burst::filler;
    burst_queued_ += n;
    filler_play_.erase(filler_play_.begin(), filler_play_.begin() + static_cast<std::ptrdiff_t>(n));
    return;
  }
  // The reply waits for the filler to end (so that talking over the filler stops only the filler), and does
  // not start while the caller's words spoken over it are not known yet.
  if (burst_ == Burst::filler || pending_play_.empty()) return;
  if (burst_ == Burst::none && (talkover_ || talkover_stt_ > 0) && state_ != State::fallback) return;
  std::span<const int16_t> out(pending_play_);
  if (ducked_ && state_ != State::fallback) {
    // The held copy stays at full level: what is queued after the caller's words are known is not ducked.
    duck_buf_.resize(std::min(pending_play_.size(), static_cast<size_t>(rate_)));
    for (size_t i = 0; i < duck_buf_.size(); ++i)
      duck_buf_[i] = static_cast<int16_t>(pending_play_[i] / kDuckDivisor);
    out = duck_buf_;
  }
  const size_t n = port_->queue_playback(out);
  if (n == 0) return;
  if (burst_ == Burst::none) {
    burst_ = Burst::turn;
    turn_burst_mark_ = port_->played_samples();
  }
  queued_samples_ += n;
  burst_queued_ += n;
  pending_play_.erase(pending_play_.begin(), pending_play_.begin() + static_cast<std::ptrdiff_t>(n));
  if (pending_play_.empty()) pending_play_.shrink_to_fit();
}

void Call::after_burst() {
  pump_playback();  // the reply's audio that waited behind a filler
  if (burst_ != Burst::none) return;
  if (!agent_busy()) {
    agent_turn_finished(false);
    return;
  }
  guard_silence(now_us());  // more of the turn is owed: dead air counts from the end of this audio
}

// ----------------------------------------------------------------------------------------------
// conversation

bool Call::agent_busy() const {
  return tts_id_ != 0 || !tts_queue_.empty() || !llm_done_ || !pending_play_.empty() || burst_queued_ > 0 ||
         stop_pending_ || !filler_play_.empty() || !pending_tools_.empty();
}

bool Call::answer_owed() const {
  if (state_ == State::thinking) return true;
  if (state_ != State::greeting && state_ != State::speaking) return false;
  return agent_busy() || stt_in_flight_ > 0 || !pending_user_text_.empty();
}

bool Call::answer_unheard() const {
  return answering_user_ && queued_samples_ == 0 && heard_samples_ == 0 && burst_ != Burst::turn;
}

void Call::merge_and_reask(std::string text) {
  if (!pending_user_text_.empty()) {
    text = pending_user_text_ + " " + text;
    pending_user_text_.clear();
  }
  if (!agent_busy()) {
    start_turn(std::move(text));
    return;
  }
  log::debug("the caller added to their question before hearing the reply: asking again",
             {{"CALL_ID", id()}});
  // The draft nobody heard is dropped; the caller gets one reply to everything they said.
  cancel_request(tts_id_);
  cancel_request(llm_id_);
  llm_done_ = true;
  tts_queue_.clear();
  pending_play_.clear();
  segments_.clear();
  heard_samples_ = queued_samples_ = 0;
  first_tts_byte_seen_ = false;
  awaiting_first_sample_ = false;
  if (!messages_.empty() && messages_.back().role == "user")
    messages_.back().content += " " + text;
  else
    messages_.push_back({"user", std::move(text), {}, {}});
  state_ = State::thinking;
  answering_user_ = true;
  request_llm();
  if (!timers_.armed(D::dead_air)) guard_silence(std::max(speech_end_us_, now_us() - 500'000));
}

void Call::speak_greeting() {
  const std::string greeting = render_template(setup_.initial_greeting.value_or(setup_.agent.greeting.text));
  if (trim(greeting).empty()) {
    enter_listening();
    return;
  }
  state_ = State::greeting;
  latency_ = {};
  speech_end_us_ = -1;
  speak_text(greeting, setup_.agent.greeting.interruptible);
  turn_is_llm_ = true;  // the greeting is the agent's first line of the conversation
  set_dead_air(now_us());
  filler_used_ = false;
  arm();
}

void Call::speak_text(std::string text, bool interruptible) {
  segments_.clear();
  filler_segments_ = 0;
  heard_samples_ = queued_samples_ = 0;
  turn_interruptible_ = interruptible;
  turn_is_llm_ = false;
  turn_is_fallback_ = false;
  answering_user_ = false;
  llm_text_ = text;
  turn_started_ms_ = wall_ms();
  if (state_ != State::voicemail && state_ != State::greeting) state_ = State::speaking;
  enqueue_sentence(std::move(text));
  if (setup_.agent.call.barge_in && interruptible)
    set_min_speech_ms(static_cast<int>(std::lround(setup_.agent.call.min_interruption_s * 1000)));
}

void Call::start_turn(std::string user_text) {
  if (!pending_user_text_.empty()) {
    user_text = pending_user_text_ + " " + user_text;
    pending_user_text_.clear();
  }
  messages_.push_back({"user", std::move(user_text), {}, {}});
  state_ = State::thinking;
  answering_user_ = true;
  if (!timers_.armed(D::dead_air) && speech_end_us_ >= 0)
    guard_silence(std::max(speech_end_us_, now_us() - 500'000));
  request_llm();
}

void Call::request_llm() {
  // A request made while results are still out answers something newer (the caller spoke again).
  if (!pending_tools_.empty()) abandon_pending_tools("the caller spoke again before it finished");
  segments_.clear();
  filler_segments_ = 0;
  heard_samples_ = queued_samples_ = 0;
  llm_text_.clear();
  llm_pending_text_.clear();
  turn_is_llm_ = true;
  turn_is_fallback_ = false;
  turn_interruptible_ = true;
  llm_done_ = false;
  if (setup_.agent.call.barge_in)
    set_min_speech_ms(static_cast<int>(std::lround(setup_.agent.call.min_interruption_s * 1000)));
  messages_[0].content = system_prompt();
  net::ChatRequest req;
  // The watchdogs are the hard limit; the dead-air guard (filler, then fallback) acts for the caller first.
  req.endpoint = to_net_endpoint(setup_.agent.llm, 2 * static_cast<int64_t>(ctx_.calls.dead_air_ms));
  req.messages = messages_;
  req.tools = tools();
  req.temperature = setup_.agent.llm.temperature;
  req.max_tokens = setup_.agent.llm.max_tokens;
  llm_sent_us_ = now_us();
  const uint64_t key = next_request_key();
  net::ChatCallbacks cb{.on_sent = [this] { llm_sent_us_ = now_us(); },
                        .on_delta = [this](std::string_view d) { on_llm_delta(d); },
                        .on_done =
                            [this, key](net::ChatResult r) {
                              release(key);
                              on_llm_done(std::move(r));
                            },
                        .on_error =
                            [this, key](const net::UpstreamError& e) {
                              release(key);
                              llm_id_ = 0;
                              llm_done_ = true;
                              on_upstream_error(e);
                            }};
  llm_id_ = own(key, ctx_.upstream->chat(std::move(req), std::move(cb)));
}

void Call::on_llm_delta(std::string_view delta) {
  if (latency_.llm_first_token_ms < 0)
    latency_.llm_first_token_ms = static_cast<double>(now_us() - llm_sent_us_) / 1000.0;
  llm_text_ += delta;
  llm_pending_text_ += delta;
  // Pipelining: each finished sentence goes to TTS while the rest still streams.
  while (size_t end = call_text::sentence_end(llm_pending_text_, false)) {
    std::string s = trim(std::string_view(llm_pending_text_).substr(0, end));
    llm_pending_text_.erase(0, end);
    if (!s.empty()) enqueue_sentence(std::move(s));
  }
}

void Call::on_llm_done(net::ChatResult result) {
  llm_id_ = 0;
  llm_done_ = true;
  if (std::string rest = trim(llm_pending_text_); !rest.empty()) enqueue_sentence(std::move(rest));
  llm_pending_text_.clear();
  if (!result.tool_calls.empty()) {
    tool_call_message_ = messages_.size();
    messages_.push_back({"assistant", llm_text_, result.tool_calls, {}});
    run_tools(result.tool_calls);
    return;
  }
  // Nothing more to say (the model said nothing, or what the turn said before its tools has played): listen
  // again rather than leave the caller waiting. An empty reply goes nowhere near the context: the caller
  // heard nothing (and an empty assistant message is refused by some providers).
  if (!agent_busy()) agent_turn_finished(false);
}

void Call::enqueue_sentence(std::string sentence) {
  segments_.push_back({sentence, 0});
  tts_queue_.push_back(std::move(sentence));
  if (tts_id_ == 0) next_tts();
}

void Call::next_tts() {
  if (tts_queue_.empty() || state_ == State::ending || state_ == State::finished) return;
  const size_t segment = segments_.size() - tts_queue_.size();
  std::string text = std::move(tts_queue_.front());
  tts_queue_.pop_front();
  net::TtsRequest req;
  req.endpoint = to_net_endpoint(setup_.agent.voice, 2 * static_cast<int64_t>(ctx_.calls.dead_air_ms));
  req.text = std::move(text);
  req.voice = setup_.agent.voice.voice;
  req.speed = setup_.agent.voice.speed;
  req.format = "pcm";
  tts_sent_us_ = now_us();
  have_odd_byte_ = false;
  pending_play_segment_ = segment;
  const uint64_t key = next_request_key();
  net::TtsCallbacks cb{.on_sent = [this] { tts_sent_us_ = now_us(); },
                       .on_audio = [this](std::span<const uint8_t> b) { on_tts_audio(b); },
                       .on_done =
                           [this, key] {
                             release(key);
                             on_tts_done();
                           },
                       .on_error =
                           [this, key](const net::UpstreamError& e) {
                             release(key);
                             tts_id_ = 0;
                             on_upstream_error(e);
                           }};
  tts_id_ = own(key, ctx_.upstream->speak(std::move(req), std::move(cb)));
}

void Call::on_tts_audio(std::span<const uint8_t> bytes) {
  if (!port_ || bytes.empty()) return;
  if (!first_tts_byte_seen_) {
    first_tts_byte_seen_ = true;
    tts_first_byte_us_ = now_us();
    latency_.tts_first_byte_ms = static_cast<double>(tts_first_byte_us_ - tts_sent_us_) / 1000.0;
    awaiting_first_sample_ = true;
  }
  // s16le at 24 kHz, split anywhere by the network: keep an odd byte for the next chunk. Decoded 20 ms at a
  // time into a member array and resampled straight onto the pending audio: no buffer per chunk.
  const size_t before = pending_play_.size();
  // The line rate is at most the TTS rate: what the chunk resamples to fits in its own sample count.
  reserve_pending_play(bytes.size() / 2 + 1);
  size_t i = 0;
  for (;;) {
    size_t k = 0;
    if (have_odd_byte_) {
      tts_piece_[k++] = static_cast<int16_t>(odd_byte_ | (bytes[0] << 8));
      have_odd_byte_ = false;
      i = 1;
    }
    for (; k < tts_piece_.size() && i + 1 < bytes.size(); i += 2)
      tts_piece_[k++] = static_cast<int16_t>(bytes[i] | (bytes[i + 1] << 8));
    if (k == 0) break;
    port_->resample_tts(std::span<const int16_t>(tts_piece_.data(), k), pending_play_);
  }
  if (i < bytes.size()) {
    odd_byte_ = bytes[i];
    have_odd_byte_ = true;
  }
  if (const size_t added = pending_play_.size() - before; added > 0) {
    if (pending_play_segment_ < segments_.size()) segments_[pending_play_segment_].samples += added;
    pump_playback();
  }
  if (state_ == State::thinking || state_ == State::greeting) state_ = State::speaking;
}

void Call::on_tts_done() {
  tts_id_ = 0;
  if (!tts_queue_.empty()) {
    next_tts();
    return;
  }
  // Nothing to play at all (an empty answer): the turn is over.
  if (!agent_busy()) agent_turn_finished(false);
}

void Call::barge_in() {
  log::debug("barge-in", {{"CALL_ID", id()}});
  abandon_pending_tools("the caller interrupted");
  cancel_request(tts_id_);
  cancel_request(llm_id_);
  llm_done_ = true;
  tts_queue_.clear();
  pending_play_.clear();
  hangup_after_turn_ = false;
  transfer_after_turn_.reset();
  filler_play_.clear();
  if (port_ && burst_queued_ > 0) {
    stop_pending_ = true;
    barging_ = true;
    port_->stop_playback();  // playback_stopped says how much was heard
  } else {
    if (burst_ != Burst::filler) finish_filler(true, 0);
    agent_turn_finished(true);
  }
}

bool Call::words_mode() const {
  return setup_.agent.call.barge_in && setup_.agent.call.min_interruption_words > 0;
}

void Call::update_duck() {
  const bool duck = overlap_ || overlap_stt_ > 0;
  if (duck == ducked_) return;
  ducked_ = duck;
  if (!duck) duck_buf_ = {};
  log::debug(duck ? "the caller talks over the agent: playback ducked" : "playback back at full level",
             {{"CALL_ID", id()}});
}

void Call::on_overlap_words(std::string text, int64_t started_ms, int64_t ended_ms) {
  if (text.empty()) return;  // noise: the turn goes on
  if (count_words(text) < setup_.agent.call.min_interruption_words) {
    // A backchannel ("uh-huh", "okay"): the caller listens. It stays in the transcript, but it asks
    // nothing: the model is not given it and the agent carries on.
    save_turn("user", text, started_ms, ended_ms, false, std::nullopt);
    return;
  }
  log::debug("barge-in by words", {{"CALL_ID", id()}});
  words_interruption_ = Interruption{std::move(text), started_ms, ended_ms};
  barge_in();
}

void Call::agent_turn_finished(bool interrupted) {
  if (state_ == State::finished) return;
  if (!interrupted && agent_busy()) return;
  // Cut off: what the caller actually heard. Played to the end: every sentence spoken.
  const bool any = !segments_.empty();
  const auto [heard, started_ms] =
      split_turn(interrupted ? std::optional<uint64_t>(heard_samples_) : std::nullopt, interrupted);
  // A turn cut before any of its words were heard never happened, for the caller as for the model.
  if (any && !trim(heard).empty()) {
    save_turn("agent", heard, started_ms, wall_ms(), interrupted, latency_.json(),
              turn_is_fallback_ ? std::optional<std::string>("fallback") : std::nullopt);
    // The model keeps only what the caller heard; the rest of an interrupted reply never happened.
    if (turn_is_llm_ || turn_is_fallback_) messages_.push_back({"assistant", heard, {}, {}});
  }
  segments_.clear();
  heard_samples_ = queued_samples_ = 0;
  llm_text_.clear();
  first_tts_byte_seen_ = false;
  awaiting_first_sample_ = false;
  set_min_speech_ms(kDefaultMinSpeechMs);
  if (interrupted) {
    state_ = State::listening;
    if (std::exchange(opt_out_speak_after_stop_, false)) {
      speak_opt_out();
      return;
    }
    if (words_interruption_) {
      // Stopped by the caller's words, already transcribed: they are the next question.
      Interruption w = std::move(*words_interruption_);
      words_interruption_.reset();
      save_turn("user", w.text, w.started_ms, w.ended_ms, false, std::nullopt);
      start_turn(std::move(w.text));
    }
    return;
  }
  if (state_ == State::fallback) {
    // The message and the tone were played: the caller's voicemail is recorded until they stop.
    timers_.set(D::voicemail_end,
                now_us() + static_cast<int64_t>(setup_.agent.fallback.voicemail_max_s * 1e6));
    if (!in_utterance_) timers_.set(D::silence, now_us() + 8'000'000);  // nobody speaks: end after 8 s
    arm();
    return;
  }
  if (hangup_after_turn_) {
    end_call(record_.call_ended_reason.value_or("assistant-ended-call"), "agent");
    return;
  }
  if (transfer_after_turn_) {
    const std::string to = *transfer_after_turn_;
    transfer_after_turn_.reset();
    Status s = setup_.agent.tools.transfer.mode == TransferMode::attended ? line_.transfer_attended(to)
                                                                          : line_.transfer_blind(to);
    if (!s) {
      upstream_errors_.push_back("transfer: " + s.error().message);
      messages_.push_back({"system", "The transfer is not possible: " + s.error().message, {}, {}});
      request_llm();
    }
    return;
  }
  if (!pending_user_text_.empty()) {
    std::string text = std::move(pending_user_text_);
    pending_user_text_.clear();
    start_turn(std::move(text));
    return;
  }
  if (stt_in_flight_ > 0) {
    state_ = State::thinking;
    guard_silence(now_us());
    return;
  }
  enter_listening();
}

void Call::enter_listening() {
  if (state_ == State::ending || state_ == State::finished || state_ == State::fallback) return;
  state_ = State::listening;
  timers_.clear(D::dead_air);
  if (!in_utterance_)
    timers_.set(D::silence, now_us() + static_cast<int64_t>(setup_.agent.call.silence.timeout_s * 1e6));
  arm();
}

// A tool the agent's configuration does not enable is answered as unknown.
const Call::Tool Call::kTools[] = {
    {"end_call", [](const CallSetup& c) { return c.agent.tools.end_call; }, &Call::tool_end_call},
    {"transfer_call", [](const CallSetup& c) { return c.agent.tools.transfer.enabled; },
     &Call::tool_transfer_call},
    {"send_dtmf", [](const CallSetup& c) { return c.agent.tools.dtmf; }, &Call::tool_send_dtmf},
    {"switch_state", [](const CallSetup& c) { return c.agent.prompt.type == PromptType::multi; },
     &Call::tool_switch_state},
    {"opt_out", [](const CallSetup& c) { return c.agent.tools.opt_out.enabled; }, &Call::tool_opt_out},
};

namespace {
std::string string_arg(const cJSON* args, const char* key) {
  const cJSON* v = args ? cJSON_GetObjectItemCaseSensitive(args, key) : nullptr;
  return cJSON_IsString(v) ? v->valuestring : "";
}
}  // namespace

Call::ToolOutcome Call::tool_end_call(const cJSON*) {
  hangup_after_turn_ = true;
  record_.call_ended_reason = "assistant-ended-call";
  return {"ok", false};
}

Call::ToolOutcome Call::tool_transfer_call(const cJSON*) {
  transfer_after_turn_ = setup_.agent.tools.transfer.number;
  if (segments_.empty()) enqueue_sentence(render_template(setup_.agent.tools.transfer.message));
  return {"ok", false};
}

Call::ToolOutcome Call::tool_send_dtmf(const cJSON* args) {
  const std::string digits = string_arg(args, "digits");
  Status s = hal::is_dtmf(digits) ? line_.send_dtmf(digits) : Status(make_error("invalid digits"));
  return {s ? "sent " + digits : "failed: " + s.error().message, true};
}

Call::ToolOutcome Call::tool_switch_state(const cJSON* args) {
  const std::string to = string_arg(args, "state");
  const bool known = std::any_of(setup_.agent.prompt.states.begin(), setup_.agent.prompt.states.end(),
                                 [&](const PromptState& s) { return s.name == to; });
  if (!known) return {"unknown state " + to, true};
  log::info("conversation state " + prompt_state_ + " → " + to, {{"CALL_ID", id()}});
  prompt_state_ = to;
  return {"now in state " + to, true};
}

Call::ToolOutcome Call::tool_opt_out(const cJSON* args) {
  const std::string why = trim(string_arg(args, "reason"));
  Status s = record_opt_out("caller opted out during the call" + (why.empty() ? "" : ": " + why));
  if (!s)
    return {"failed: " + s.error().message + ". Tell the caller you cannot note it on this call.", true};
  const std::string msg = trim(render_template(setup_.agent.tools.opt_out.message));
  if (!msg.empty()) enqueue_sentence(msg);
  // The goodbye is the last thing said: not cut by the caller's words, nothing asked of the model after it.
  turn_interruptible_ = false;
  answering_user_ = false;
  hangup_after_turn_ = true;
  return {"ok: the number is on the do-not-call list; the call ends after the goodbye", false};
}

Status Call::record_opt_out(const std::string& reason) {
  if (opted_out_) return {};
  const std::string& phone = record_.phone_number;
  // A PBX extension is a number too (a SIP call): the do-not-disturb list holds it as it is.
  if (!hal::is_e164(phone) && !is_pbx_extension(phone)) {
    log::warning("the caller asked not to be called again, but their number is unknown (" +
                     (phone.empty() ? std::string("withheld") : phone) + ")",
                 {{"CALL_ID", id()}, {"AGENT_UUID", setup_.agent.agent_uuid}});
    save_turn("tool", "opt_out: not recorded, the caller's number is unknown", wall_ms(), wall_ms(), false,
              std::nullopt);
    return make_error("the caller's number is unknown", -ENODATA);
  }
  auto added = ctx_.store->dnd().add_entry(setup_.agent.agent_uuid, phone, reason, "opt_out", id());
  if (!added) {
    log::error("cannot put the caller on the do-not-disturb list: " + added.error().message,
               {{"CALL_ID", id()}, {"AGENT_UUID", setup_.agent.agent_uuid}});
    save_turn("tool", "opt_out: not recorded (" + added.error().message + ")", wall_ms(), wall_ms(), false,
              std::nullopt);
    return added.error();
  }
  opted_out_ = true;
  log::notice(phone + (added->created ? " put on" : " already on") + " the do-not-disturb list of " +
                  setup_.agent.agent_uuid + ": " + reason,
              {{"CALL_ID", id()}, {"AGENT_UUID", setup_.agent.agent_uuid}});
  save_turn("tool",
            "opt_out: " + phone + (added->created ? " added to" : " was already on") +
                " the do-not-disturb list (" + reason + ")",
            wall_ms(), wall_ms(), false, std::nullopt);
  // Whatever ends the call from now on (the goodbye, the caller hanging up) ends it as their opt-out; a line
  // lost still outranks it (record_end_cause).
  record_.call_ended_reason = "opt_out";
  record_.call_ended_by = "user";
  return {};
}

void Call::opt_out_by_key(char key) {
  if (!record_opt_out("caller pressed " + std::string(1, key) + " to opt out")) return;
  dtmf_digits_.clear();
  timers_.clear(D::dtmf_gather);
  timers_.clear(D::silence);
  timers_.clear(D::dead_air);
  timers_.clear(D::amd_wait);
  timers_.clear(D::voicemail_end);
  arm();
  if (!port_ || state_ == State::fallback || state_ == State::connecting) {
    end_call("opt_out", "user");  // nothing to say it with (or the local message is playing): end now
    return;
  }
  if (state_ == State::amd) port_->set_amd(false);
  // Whatever the agent says or prepares stops: nothing it brings matters any more.
  cancel_upstream();
  llm_done_ = true;
  tts_queue_.clear();
  pending_play_.clear();
  filler_play_.clear();
  pending_user_text_.clear();
  transfer_after_turn_.reset();
  words_interruption_.reset();
  talkover_ = overlap_ = false;
  talkover_stt_ = overlap_stt_ = 0;
  update_duck();
  if (stop_pending_ || burst_queued_ > 0) {
    // The goodbye follows once the device has stopped (the cut turn is saved with what was heard).
    opt_out_speak_after_stop_ = true;
    barging_ = true;
    if (!stop_pending_) {
      stop_pending_ = true;
      port_->stop_playback();
    }
    return;
  }
  if (burst_ != Burst::filler) finish_filler(true, 0);
  opt_out_speak_after_stop_ = true;
  agent_turn_finished(true);
}

void Call::speak_opt_out() {
  const std::string msg = trim(render_template(setup_.agent.tools.opt_out.message));
  if (msg.empty()) {
    end_call("opt_out", "user");
    return;
  }
  latency_ = {};
  speech_end_us_ = -1;
  speak_text(msg, false);
  hangup_after_turn_ = true;
}

void Call::settle_greeting_gap() {
  gap_open_ = false;
  if (voicemail_reached_ || !answered_ || agent_first_audio_us_ < 0) return;  // the rule is about people
  int64_t gap_us = 0;
  if (greeting_end_us_ >= 0)
    gap_us = agent_first_audio_us_ - greeting_end_us_;  // negative: they still spoke when the agent began
  else if (!callee_in_speech_)
    gap_us = agent_first_audio_us_ - answered_us_;  // the agent spoke first
  const int64_t gap_ms = std::max<int64_t>(gap_us, 0) / 1000;
  record_.greeting_gap_ms = gap_ms;
  if (gap_ms > kGreetingGapLimitMs)
    log::warning("abandonment guard: the agent's first audio reached the line " + std::to_string(gap_ms) +
                     " ms after the callee's greeting, more than " + std::to_string(kGreetingGapLimitMs) +
                     " ms",
                 {{"CALL_ID", id()}, {"LINE", line_.id()}, {"AGENT_UUID", setup_.agent.agent_uuid}});
}

void Call::run_tools(const std::vector<net::ToolCall>& calls) {
  bool continue_llm = false;
  search_started_ = false;
  in_run_tools_ = true;
  for (const net::ToolCall& tc : calls) {
    const std::string& args_text = tc.arguments_json.empty() ? std::string("{}") : tc.arguments_json;
    if (tc.name == knowledge::kSearchToolName && knowledge_offered()) {
      continue_llm = true;
      start_search(tc, args_text);
      continue;
    }
    net::JsonPtr args = net::json_parse(args_text, nullptr);
    save_turn("tool", tc.name + " " + args_text, wall_ms(), wall_ms(), false, std::nullopt);
    ToolOutcome outcome{"unknown tool " + tc.name, true};
    for (const Tool& tool : kTools) {
      if (tc.name == tool.name && tool.enabled(setup_)) {
        outcome = (this->*tool.run)(args.get());
        break;
      }
    }
    continue_llm = continue_llm || outcome.continue_llm;
    messages_.push_back({"tool", std::move(outcome.result), {}, tc.id});
  }
  in_run_tools_ = false;
  tools_continue_ = continue_llm;
  if (hangup_after_turn_ || transfer_after_turn_) abandon_pending_tools("the call is ending");
  if (search_started_) say_search_filler();
  if (!pending_tools_.empty()) return;  // on_search_done continues the turn
  finish_tools();
}

void Call::finish_tools() {
  if (tools_continue_ && !hangup_after_turn_ && !transfer_after_turn_) {
    tools_continue_ = false;
    // The spoken part of this reply (if any) is still playing; the follow-up streams behind it.
    const std::vector<Segment> keep = segments_;
    const size_t filler = filler_segments_;
    const uint64_t heard = heard_samples_, queued = queued_samples_;
    const std::string text = llm_text_;
    request_llm();
    segments_ = keep;
    filler_segments_ = filler;
    heard_samples_ = heard;
    queued_samples_ = queued;
    llm_text_ = text.empty() ? "" : text + " ";
    return;
  }
  tools_continue_ = false;
  if (!agent_busy()) agent_turn_finished(false);
}

// ----------------------------------------------------------------------------------------------
// search_knowledge_base

bool Call::knowledge_offered() const {
  return ctx_.knowledge != nullptr && knowledge::search_tool_offered(setup_.agent.knowledge);
}

void Call::start_search(const net::ToolCall& tc, const std::string& args_text) {
  std::string call_text = tc.name + " " + args_text;
  auto query = knowledge::parse_search_arguments(args_text);
  if (!query) {
    save_turn("tool", std::move(call_text) + " -> invalid arguments: " + query.error().message, wall_ms(),
              wall_ms(), false, std::nullopt);
    std::string message = "Invalid arguments: " + query.error().message;
    message += ". Call it again with a JSON object {\"query\": \"what to look up\"}.";
    messages_.push_back({"tool", std::move(message), {}, tc.id});
    return;
  }
  search_started_ = true;
  PendingTool p;
  p.id = ++pending_tool_id_;
  p.message = messages_.size();
  p.call_text = std::move(call_text);
  p.started_ms = wall_ms();
  p.started_us = now_us();
  messages_.push_back({"tool", "", {}, tc.id});
  pending_tools_.push_back(std::move(p));
  // Without embeddings the result comes before search() returns; with, once the query is embedded (the
  // Call may be gone by then: the weak token says so).
  ctx_.knowledge->search(
      setup_.agent.knowledge, *query, std::nullopt,
      [this, alive = std::weak_ptr<bool>(alive_), id = pending_tool_id_](Result<knowledge::SearchResult> r) {
        if (alive.expired()) return;
        on_search_done(id, std::move(r));
      });
}

void Call::on_search_done(uint64_t search_id, Result<knowledge::SearchResult> r) {
  auto it = std::find_if(pending_tools_.begin(), pending_tools_.end(),
                         [search_id](const PendingTool& p) { return p.id == search_id; });
  if (it == pending_tools_.end() || state_ == State::finished) return;  // abandoned: nobody waits for it
  const double ms = static_cast<double>(now_us() - it->started_us) / 1000.0;
  net::JsonPtr latency(cJSON_CreateObject());
  cJSON_AddNumberToObject(latency.get(), "knowledge_search_ms", std::round(ms * 10) / 10);
  std::string summary;
  if (r) {
    messages_[it->message].content = knowledge::render_search_result(*r);
    summary = knowledge::summarize_search(*r);
    if (r->mode == "bm25_fallback") summary += ", bm25 only: " + r->fallback_reason;
  } else {
    messages_[it->message].content = knowledge::render_search_error(r.error());
    summary = "failed: " + r.error().message;
    log::warning("knowledge search failed: " + r.error().message, {{"CALL_ID", id()}});
  }
  save_turn("tool", it->call_text + " -> " + summary, it->started_ms, wall_ms(), false,
            net::json_print(latency.get()));
  pending_tools_.erase(it);
  if (pending_tools_.empty() && !in_run_tools_) finish_tools();
}

void Call::abandon_pending_tools(std::string_view why) {
  for (const PendingTool& p : pending_tools_) {
    messages_[p.message].content = "The search was abandoned: " + std::string(why) + ".";
    save_turn("tool", p.call_text + " -> abandoned: " + std::string(why), p.started_ms, wall_ms(), false,
              std::nullopt);
  }
  pending_tools_.clear();
  tools_continue_ = false;
}

void Call::say_search_filler() {
  const auto& f = setup_.agent.knowledge.filler;
  // Only when the turn has said nothing (the caller would hear silence through the search and the next
  // reply), and not right after the dead-air filler of the same wait: two fillers in a row.
  if (!f.enabled || !segments_.empty() || filler_used_ || !filler_text_.empty()) return;
  if (state_ != State::thinking && state_ != State::speaking) return;
  if (!tools_continue_ && pending_tools_.empty()) return;  // nothing is coming after it
  std::string text = trim(render_template(f.text));
  if (text.empty()) return;
  // It was said on the model's behalf, before its tools: the model's message carries it.
  if (tool_call_message_ < messages_.size() && messages_[tool_call_message_].content.empty())
    messages_[tool_call_message_].content = text;
  enqueue_sentence(std::move(text));
  filler_segments_ = segments_.size();
  // Agent audio is on its way: the dead-air guard counts from now (its TTS gets the whole interval), and
  // re-arms from the end of the filler while the search and the reply are still owed.
  if (timers_.armed(D::dead_air) && burst_ == Burst::none) {
    set_dead_air(now_us());
    arm();
  }
}

Call::TurnText Call::split_turn(std::optional<uint64_t> heard, bool cut) {
  std::span<const Segment> rest(segments_);
  int64_t started_ms = turn_started_ms_;
  if (filler_segments_ > 0 && filler_segments_ <= segments_.size()) {
    const std::span<const Segment> filler = rest.first(filler_segments_);
    rest = rest.subspan(filler_segments_);
    uint64_t samples = 0;
    for (const Segment& seg : filler) samples += seg.samples;
    const uint64_t played = heard ? std::min(*heard, samples) : samples;
    const std::string said = heard ? call_text::heard_text(filler, *heard) : call_text::spoken_text(filler);
    started_ms = turn_started_ms_ + static_cast<int64_t>(samples_to_ms(played));
    if (!trim(said).empty())
      save_turn("agent", said, turn_started_ms_, started_ms, cut && played < samples, std::nullopt, "filler");
    if (heard) *heard -= played;
    filler_segments_ = 0;
  }
  return {heard ? call_text::heard_text(rest, *heard) : call_text::spoken_text(rest), started_ms};
}

void Call::on_upstream_error(const net::UpstreamError& e) {
  const std::string what = std::string(net::to_string(e.stage)) + " " + std::string(net::to_string(e.kind)) +
                           (e.http_status ? " " + std::to_string(e.http_status) : "") + ": " + e.message;
  upstream_errors_.push_back(what);
  log::warning("upstream failed: " + what, {{"CALL_ID", id()}, {"AGENT_UUID", setup_.agent.agent_uuid}});
  if (state_ == State::ending || state_ == State::finished || state_ == State::fallback) return;
  if (state_ == State::voicemail) {
    // The machine's message could not be rendered upstream: say it locally.
    play_local(render_template(setup_.agent.call.voicemail.message), false);
    return;
  }
  enter_fallback(what);
}

// ----------------------------------------------------------------------------------------------
// fallback

SharedPrompts::Pcm SharedPrompts::find(int rate, const std::string& text) const {
  const auto it = entries_.find({rate, text});
  return it == entries_.end() ? nullptr : it->second.held.lock();
}

bool SharedPrompts::rendering(int rate, const std::string& text) const {
  const auto it = entries_.find({rate, text});
  return it != entries_.end() && !it->second.rendering.expired();
}

SharedPrompts::Rendering SharedPrompts::begin(int rate, const std::string& text) {
  auto token = std::make_shared<const int>(0);
  entries_[{rate, text}].rendering = token;
  return token;
}

SharedPrompts::Pcm SharedPrompts::adopt(int rate, const std::string& text, std::vector<int16_t> pcm) {
  if (Pcm held = find(rate, text)) return held;
  auto fresh = std::make_shared<const std::vector<int16_t>>(std::move(pcm));
  if (fresh->empty()) return fresh;
  // Texts no call holds or renders any more go.
  std::erase_if(entries_,
                [](const auto& e) { return e.second.held.expired() && e.second.rendering.expired(); });
  entries_[{rate, text}].held = fresh;
  return fresh;
}

void Call::want_filler(const std::string& text) {
  if (!ctx_.prompts) {
    render_local(text, [this](std::vector<int16_t> pcm) {
      filler_pcm_ = std::make_shared<const std::vector<int16_t>>(std::move(pcm));
    });
    return;
  }
  filler_pcm_ = ctx_.prompts->find(rate_, text);
  // Another call's render of it is on its way: this call takes that copy when it needs the filler.
  if (filler_pcm_ || ctx_.prompts->rendering(rate_, text)) return;
  filler_rendering_ = ctx_.prompts->begin(rate_, text);
  render_local(text, [this, text](std::vector<int16_t> pcm) {
    filler_pcm_ = ctx_.prompts->adopt(rate_, text, std::move(pcm));
    filler_rendering_.reset();
  });
}

void Call::render_local(std::string text, std::function<void(std::vector<int16_t>)> done) {
  std::erase_if(local_speech_, [](const SpeechWorker::Ticket& t) { return !t.pending(); });
  if (!ctx_.speech) {
    done({});
    return;
  }
  // espeak renders on the worker; one that is slow or wedged gives up at the timeout, so the caller hears the
  // tone rather than waiting on it.
  local_speech_.push_back(
      ctx_.speech(std::move(text), rate_, std::chrono::milliseconds(kLocalSpeechTimeoutMs),
                  [this, done = std::move(done)](Result<std::vector<int16_t>> pcm) {
                    if (state_ == State::finished) return;
                    if (!pcm)
                      log::warning("local speech failed: " + pcm.error().message, {{"CALL_ID", id()}});
                    done(pcm ? std::move(*pcm) : std::vector<int16_t>{});
                  }));
}

std::vector<int16_t> Call::with_tone(std::vector<int16_t> pcm) const {
  auto gap = std::vector<int16_t>(static_cast<size_t>(rate_ / 4), 0);
  auto beep = tone(rate_, 1000.0, 400);
  pcm.insert(pcm.end(), gap.begin(), gap.end());
  pcm.insert(pcm.end(), beep.begin(), beep.end());
  return pcm;
}

void Call::play_local(std::string_view text, bool tone) {
  render_local(std::string(text), [this, said = std::string(text), tone](std::vector<int16_t> pcm) {
    const bool failed = pcm.empty();
    play_local_pcm(said, tone || failed ? with_tone(std::move(pcm)) : std::move(pcm));
  });
}

void Call::play_local_pcm(std::string_view text, std::vector<int16_t> pcm) {
  segments_.push_back({std::string(text), 0});
  awaiting_first_sample_ = true;
  queue_agent_audio(pcm, segments_.size() - 1);
}

void Call::play_filler() {
  filler_used_ = true;
  const std::string text = trim(render_template(setup_.agent.fallback.filler));
  // Another call rendered it after this call's audio opened (see want_filler()); if no call holds it now
  // (that render failed, or its call went first), a render starts for the next stall.
  if (!filler_pcm_ && ctx_.prompts && !setup_.agent.fallback.filler.empty()) {
    const std::string key = render_template(setup_.agent.fallback.filler);  // as open_audio() asked for it
    filler_pcm_ = ctx_.prompts->find(rate_, key);
    if (!filler_pcm_ && !filler_rendering_) want_filler(key);
  }
  std::vector<int16_t> pcm = filler_pcm_ ? *filler_pcm_ : std::vector<int16_t>{};
  if (pcm.empty() || !port_) {
    // Nothing to say it with (no local speech, or its render failed or is not back yet): the reply gets one
    // more interval before the fallback.
    guard_silence(now_us());
    return;
  }
  filler_text_ = text;
  filler_samples_ = pcm.size();
  filler_started_ms_ = wall_ms();
  filler_mark_ = port_->played_samples();
  filler_play_ = std::move(pcm);
  pump_playback();
  // A stall: the fallback may follow the filler, and must then be heard as promptly. Rendered while the
  // filler plays (the ring holds the filler's audio), once per call.
  if (fallback_pcm_.empty() && !fallback_rendering_) {
    fallback_rendering_ = true;
    render_local(render_template(setup_.agent.fallback.message),
                 [this](std::vector<int16_t> said) { fallback_pcm_ = with_tone(std::move(said)); });
  }
}

void Call::finish_filler(bool cut, uint64_t played) {
  if (filler_text_.empty()) return;
  const Segment seg{filler_text_, filler_samples_};
  const std::string heard = cut ? call_text::heard_text({&seg, 1}, played) : filler_text_;
  if (!heard.empty()) {
    // What the caller heard, in the transcript and in the model's context (it was said on its behalf).
    save_turn("agent", heard, filler_started_ms_, wall_ms(), cut, std::nullopt, "filler");
    messages_.push_back({"assistant", heard, {}, {}});
  }
  filler_text_.clear();
  filler_samples_ = 0;
  filler_play_.clear();
}

void Call::guard_silence(int64_t from_us) {
  if (!answer_owed() || burst_ != Burst::none) return;
  set_dead_air(from_us);
  arm();
}

void Call::on_dead_air() {
  // Something plays (or is about to): that is not dead air; the guard re-arms when it ends.
  if (!answer_owed() || burst_ != Burst::none || !filler_play_.empty()) return;
  if (!filler_used_ && !setup_.agent.fallback.filler.empty() && port_)
    play_filler();  // the answer is late: say something now, and give the upstream one more interval
  else
    enter_fallback("no answer within the dead-air limit");
}

void Call::enter_fallback(std::string why) {
  if (opted_out_) {
    // The number is on the list already; without the upstream the goodbye cannot be said: the call ends.
    log::notice("the opt-out message cannot be said (" + why + "); ending the call", {{"CALL_ID", id()}});
    end_call("opt_out", "user");
    return;
  }
  talkover_ = false;
  talkover_stt_ = 0;
  overlap_ = false;
  // What the caller hears of a reply cut by the failure (its queued audio still plays) stays in the record.
  abandon_pending_tools("the call went to the fallback");
  if (!segments_.empty() && !turn_is_fallback_) {
    const auto [heard, started_ms] = split_turn(queued_samples_ + pending_play_.size(), true);
    if (!heard.empty()) {
      save_turn("agent", heard, started_ms, wall_ms(), true, latency_.json());
      if (turn_is_llm_) messages_.push_back({"assistant", heard, {}, {}});
    }
  }
  cancel_upstream();
  tts_queue_.clear();
  llm_done_ = true;
  state_ = State::fallback;
  timers_.clear(D::dead_air);
  timers_.clear(D::silence);
  record_.callback_required = true;
  record_.call_ended_reason = "upstream_failure";
  log::notice(
      "upstream unavailable, playing the local message and recording a "
      "voicemail (" +
          why + ")",
      {{"CALL_ID", id()}, {"AGENT_UUID", setup_.agent.agent_uuid}});
  if (!port_) {
    end_call("upstream_failure", "system");
    return;
  }
  // Whatever was still queued of the agent's speech plays first; the message follows it.
  segments_.clear();
  filler_segments_ = 0;
  heard_samples_ = queued_samples_ = 0;
  const std::string msg = render_template(setup_.agent.fallback.message);
  llm_text_ = msg;
  turn_is_llm_ = false;
  turn_is_fallback_ = true;
  answering_user_ = false;
  turn_started_ms_ = wall_ms();
  if (!fallback_pcm_.empty())
    play_local_pcm(msg, std::exchange(fallback_pcm_, {}));
  else
    play_local(msg, true);  // not rendered in advance (no filler played) or still rendering
}

// ----------------------------------------------------------------------------------------------
// timers

void Call::on_timer() {
  const int64_t now = now_us();
  auto due = [&](D d) { return timers_.take_due(d, now); };
  if (due(D::ending)) {
    log::warning("the line did not confirm the hang-up; closing the call record", {{"CALL_ID", id()}});
    finalize(answered_ ? (voicemail_reached_ ? "voicemail" : "picked") : "failed",
             record_.call_ended_reason.value_or("hangup"), record_.call_ended_by.value_or("agent"));
    return;
  }
  if (due(D::max_duration)) {
    end_call("max_duration", "system");
    return;
  }
  if (due(D::audio_wait)) {
    end_call("no_call_audio", "system", EndCause::audio_lost);
    return;
  }
  if (due(D::amd_wait) && state_ == State::amd) {
    if (port_) port_->set_amd(false);
    speak_greeting();
  }
  if (due(D::voicemail_end)) {
    if (state_ == State::voicemail) {
      // No beep heard: speak anyway.
      speak_text(render_template(setup_.agent.call.voicemail.message), false);
      hangup_after_turn_ = true;
      record_.call_ended_reason = "voicemail_message_left";
    } else if (state_ == State::fallback) {
      end_call("upstream_failure", "system");
      return;
    }
  }
  if (due(D::dtmf_gather) && !dtmf_digits_.empty()) {
    std::string digits = std::move(dtmf_digits_);
    dtmf_digits_.clear();
    save_turn("user", "DTMF " + digits, wall_ms(), wall_ms(), false, std::nullopt);
    const std::string text = "[The caller pressed the keys: " + digits + "]";
    if (agent_busy()) {
      pending_user_text_ += (pending_user_text_.empty() ? "" : " ") + text;
    } else if (state_ != State::fallback && state_ != State::ending) {
      speech_end_us_ = now;
      latency_ = {};
      set_dead_air(now);
      start_turn(text);
    }
  }
  if (due(D::dead_air)) on_dead_air();
  if (due(D::silence)) {
    if (state_ == State::fallback) {
      end_call("upstream_failure", "system");
      return;
    }
    if (state_ == State::listening) {
      const CallConfig::Silence& s = setup_.agent.call.silence;
      if (silence_prompts_ >= s.max_prompts) {
        end_call("silence_timeout", "agent");
        return;
      }
      ++silence_prompts_;
      latency_ = {};
      speech_end_us_ = -1;
      if (!s.message.empty()) {
        speak_text(render_template(s.message), true);
        turn_is_llm_ = true;  // the model should know it asked
        set_dead_air(now);
      } else {
        messages_.push_back({"system", "The caller has been silent for a while. Check in briefly.", {}, {}});
        state_ = State::thinking;
        answering_user_ = false;
        set_dead_air(now);
        request_llm();
      }
    }
  }
  arm();
}

// ----------------------------------------------------------------------------------------------
// end

net::RequestId Call::own(uint64_t key, net::RequestId id) {
  if (id) requests_.emplace(key, id);
  return id;
}

void Call::cancel_request(net::RequestId& id) {
  if (id == 0) return;
  for (auto it = requests_.begin(); it != requests_.end(); ++it) {
    if (it->second == id) {
      requests_.erase(it);
      break;
    }
  }
  if (ctx_.upstream) ctx_.upstream->cancel(id);
  id = 0;
}

void Call::cancel_upstream() {
  // All of them: an older STT request still in flight would otherwise call back into a freed Call.
  if (ctx_.upstream)
    for (const auto& [key, id] : requests_) ctx_.upstream->cancel(id);
  requests_.clear();
  llm_id_ = tts_id_ = 0;
  stt_in_flight_ = 0;
}

void Call::record_end_cause(EndCause cause, std::string reason, std::string ended_by) {
  // call_ended_by is set once an end was decided (a reason alone may be preset, e.g. by the end_call tool,
  // and is replaced by the decision as before).
  if (record_.call_ended_by && cause <= end_cause_) return;
  end_cause_ = cause;
  record_.call_ended_reason = std::move(reason);
  record_.call_ended_by = std::move(ended_by);
}

void Call::end_call(std::string reason, std::string ended_by, EndCause cause) {
  if (state_ == State::ending || state_ == State::finished) return;
  state_ = State::ending;
  record_end_cause(cause, std::move(reason), std::move(ended_by));
  cancel_upstream();
  timers_.clear_all_but(D::ending);
  if (Status s = line_.hangup(); !s) {
    finalize(answered_ ? (voicemail_reached_ ? "voicemail" : "picked") : "failed", *record_.call_ended_reason,
             *record_.call_ended_by);
    return;
  }
  timers_.set(D::ending, now_us() + kHangupGraceMs * 1000);
  arm();
}

void Call::abort(std::string_view reason) {
  if (state_ == State::finished) return;
  record_.call_ended_reason = std::string(reason);
  record_.call_ended_by = "system";
  (void)line_.hangup();
  finalize(answered_ ? (voicemail_reached_ ? "voicemail" : "picked") : "failed", reason, "system");
}

void Call::save_turn(std::string role, std::string text, int64_t started_ms, int64_t ended_ms,
                     bool interrupted, std::optional<std::string> latency, std::optional<std::string> kind) {
  TranscriptTurn t;
  t.call_id = id();
  t.seq = ++seq_;
  t.role = std::move(role);
  t.text = std::move(text);
  t.started_at_ms = started_ms;
  t.ended_at_ms = ended_ms;
  t.interrupted = interrupted;
  t.latency_json = std::move(latency);
  t.kind = std::move(kind);
  if (Status s = ctx_.store->calls().add_transcript_turn(t); !s)
    log::error("cannot save a transcript turn: " + s.error().message, {{"CALL_ID", id()}});
  if (ctx_.on_turn) ctx_.on_turn(t);
}

void Call::finalize(std::string_view status, std::string_view reason, std::string_view ended_by) {
  if (state_ == State::finished) return;
  state_ = State::finished;
  cancel_upstream();
  timers_.detach();
  // A turn cut by the hang-up still belongs in the transcript: what the caller heard of it.
  abandon_pending_tools("the call ended");
  if (port_ && burst_ == Burst::filler) finish_filler(true, port_->played_samples() - filler_mark_);
  if (!segments_.empty()) {
    const uint64_t playing = port_ && burst_ == Burst::turn ? port_->played_samples() - turn_burst_mark_ : 0;
    const auto [heard, started_ms] = split_turn(heard_samples_ + playing, true);
    if (!heard.empty())
      save_turn("agent", heard, started_ms, wall_ms(), true, latency_.json(),
                turn_is_fallback_ ? std::optional<std::string>("fallback") : std::nullopt);
    segments_.clear();
  }
  close_audio();
  if (gap_open_ && agent_first_audio_us_ >= 0) settle_greeting_gap();
  const int64_t now_ms = wall_ms();
  record_.status = std::string(status);
  if (!record_.call_ended_reason) record_.call_ended_reason = std::string(reason);
  if (!record_.call_ended_by) record_.call_ended_by = std::string(ended_by);
  record_.ended_at_ms = now_ms;
  if (record_.call_picked_at_ms)
    record_.duration_seconds = (now_ms - *record_.call_picked_at_ms + 500) / 1000;
  record_.line = line_.id();
  if (!upstream_errors_.empty()) {
    // post_call_analysis carries what the box knows without analysis: the upstream errors and the callback.
    net::JsonPtr doc(cJSON_CreateObject());
    cJSON_AddBoolToObject(doc.get(), "callback_required", record_.callback_required);
    cJSON* errors = cJSON_AddArrayToObject(doc.get(), "upstream_errors");
    for (const std::string& e : upstream_errors_) cJSON_AddItemToArray(errors, cJSON_CreateString(e.c_str()));
    record_.post_call_analysis = net::json_print(doc.get());
  }
  if (recording_ && recording_->recorder) {
    // close_audio() took the recorder back from the audio thread (the port is gone): the loop is the only
    // writer of the pipe now. What the thread left in it goes first, then the stream's last pages.
    recording_->pipe->drain();
    auto summary = recording_->recorder->finish();
    recording_->pipe->drain();
    recording_->recorder.reset();
    if (summary && !recording_->pipe->failed() && !recording_->file->failed()) {
      // Synced, renamed and registered off the loop: the call's end does not wait for the disk.
      ctx_.recordings->commit(std::move(recording_->file), static_cast<int64_t>(summary->seconds() * 1000.0));
    } else {
      log::warning("the call recording failed", {{"CALL_ID", id()}});
      ctx_.recordings->discard(std::move(recording_->file));
    }
  }
  recording_.reset();
  if (Status s = finish_call_and_enqueue(*ctx_.store, record_); !s)
    log::error("cannot write the final call record: " + s.error().message, {{"CALL_ID", id()}});
  log::info("call ended: " + record_.status + " (" + record_.call_ended_reason.value_or("") + ", " +
                std::to_string(record_.duration_seconds) + " s)",
            {{"CALL_ID", id()},
             {"LINE", line_.id()},
             {"AGENT_UUID", setup_.agent.agent_uuid},
             {"CALL_STATUS", record_.status}},
            log::id::kCallEnded);
  if (on_finished_) on_finished_(*this);
}

}  // namespace osvi::daemon
