// Call: one phone conversation between an agent and the other party, from dial (or answer) to the final
// record — turn-taking, barge-in, upstream models, silence and duration limits, tools, fallback, recording.
//
// Threading: loop thread only. While connected the call owns its line's AudioPort (audio_port.hpp), which
// hands it processed capture frames and playback events on the loop. Everything else (line events, upstream
// callbacks, its one timer) arrives on the loop too.
//
// States (docs/architecture.md#calls): connecting → greeting (or listening when the greeting is empty) →
// listening ⇄ thinking → speaking → … → ending → finished. Side states: amd (outbound, the agent's speech
// held until the verdict), voicemail (leaving a message on a machine), fallback (the local message, the tone
// and the caller's voicemail when an upstream failed).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/base/event_loop.hpp"
#include "osvi/calls/audio_port.hpp"
#include "osvi/calls/call_text.hpp"
#include "osvi/calls/call_timers.hpp"
#include "osvi/clock.hpp"
#include "osvi/config/config.hpp"
#include "osvi/hal/line.hpp"
#include "osvi/net/upstream.hpp"
#include "osvi/result.hpp"
#include "osvi/speech/speech_worker.hpp"
#include "osvi/store/recordings.hpp"
#include "osvi/store/store.hpp"

struct cJSON;

namespace osvi::daemon {

namespace knowledge {
class KnowledgeService;  // osvi/knowledge/knowledge_service.hpp
struct SearchResult;
}  // namespace knowledge

// Local prompts many calls hold at once (the agent's dead-air filler, rendered when each call's audio opens
// and kept for the whole call): one copy per (rate, text) while any call holds it, and one render at a time
// of it, instead of a render and a copy per call (~45 kB each at 16 kHz, and the renders' garbage;
// bench/README.md "percall3"). Loop thread only.
class SharedPrompts {
 public:
  using Pcm = std::shared_ptr<const std::vector<int16_t>>;
  using Rendering = std::shared_ptr<const int>;
  // The copy some call holds now; null when none does.
  Pcm find(int rate, const std::string& text) const;
  // A call is rendering it: while the returned token lives (the call drops it when its render is back, or
  // when it goes), rendering() is true and other calls wait for that render rather than start their own.
  Rendering begin(int rate, const std::string& text);
  bool rendering(int rate, const std::string& text) const;
  // A render just finished: the copy already held if another call got there first (pcm is dropped), else
  // pcm, kept for the next call. An empty render (failed) is returned but not kept.
  Pcm adopt(int rate, const std::string& text, std::vector<int16_t> pcm);

 private:
  struct Entry {
    std::weak_ptr<const std::vector<int16_t>> held;
    std::weak_ptr<const int> rendering;
  };
  std::map<std::pair<int, std::string>, Entry> entries_;
};

// What every call shares; owned by the CallManager's owner (the App).
// Renders a local prompt (espeak-ng) off the loop: `done` runs on the loop with the samples or an error
// (-ETIMEDOUT past `timeout`), never once the returned ticket is gone. The App binds its SpeechWorker; unit
// tests bind a renderer that answers at once.
using LocalSpeech = std::function<SpeechWorker::Ticket(
    std::string text, int rate, std::chrono::milliseconds timeout, SpeechWorker::Done done)>;

struct CallContext {
  EventLoop* loop = nullptr;
  const Clock* clock = nullptr;
  Store* store = nullptr;
  net::Upstream* upstream = nullptr;
  LocalSpeech speech;  // local prompts (fallback, filler, voicemail message); empty: the tone alone
  // The filler's samples, one copy for all the calls saying the same text (each call's copy of this context
  // points at the same one).
  std::shared_ptr<SharedPrompts> prompts = std::make_shared<SharedPrompts>();
  AudioConfig audio;
  CallsConfig calls;
  Recordings* recordings = nullptr;  // where calls are recorded (store/recordings.hpp); null: not recorded
  // Where a call's audio and timer come from; empty = the daemon's (LineAudioPort, an sd-event timer on
  // `loop`). Unit tests put a fake port and a virtual clock here.
  AudioPortFactory audio_port;
  CallTimerFactory timer;
  // What the search_knowledge_base tool searches; null: the tool is not offered.
  knowledge::KnowledgeService* knowledge = nullptr;
  // Told each transcript turn once it is stored (the manager sets it on a web test call's own copy, so the
  // browser shows the conversation as it happens); empty: nobody.
  std::function<void(const TranscriptTurn&)> on_turn;
};

// The per-call inputs besides the agent: overrides from POST /v1/call and the record already inserted.
struct CallSetup {
  AgentConfig agent;
  CallRecord record;  // inserted with status in_progress
  bool outbound = true;
  std::optional<std::string> system_prompt;
  std::optional<std::string> initial_greeting;
  std::optional<std::string> person_name;
  std::optional<std::string> additional_data;  // JSON object text
  std::optional<int64_t> max_duration_s;
};

// Per agent turn, in milliseconds; -1 = did not happen. Saved on the turn as latency_json.
struct TurnLatency {
  double endpointing_ms = -1;      // silence waited before the turn ended
  double stt_sent_ms = -1;         // endpoint decision → STT request on the wire
  double stt_ms = -1;              // STT request sent → transcript
  double llm_first_token_ms = -1;  // LLM request sent → first content
  double tts_first_byte_ms = -1;   // TTS request sent → first audio byte
  double first_sample_ms = -1;     // first TTS byte → first sample written to the device
  double voice_to_voice_ms = -1;   // end of caller speech → first agent sample written
  std::string json() const;
};

class Call final : private AudioPort::Listener {
 public:
  using Finished = std::function<void(Call&)>;
  Call(CallContext& ctx, hal::Line& line, CallSetup setup, Finished on_finished);
  ~Call();
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  // Dials (outbound) or answers (inbound). An error means nothing happened; the caller finishes the record.
  Status start();
  void on_line_event(const hal::LineEvent& event);
  // The daemon is stopping: hang up and write the final record now.
  void abort(std::string_view reason);

  const std::string& id() const { return record_.call_id; }
  hal::Line& line() { return line_; }
  bool finished() const { return state_ == State::finished; }
  const CallRecord& record() const { return record_; }
  // The call's audio xruns so far, kept after the port closes.
  uint64_t audio_xruns() const { return closed_xruns_ + (port_ ? port_->xruns() : 0); }
  // The chat context as the model sees it next (tests: barge-in trimming).
  const std::vector<net::ChatMessage>& context() const { return messages_; }
  size_t memory_bytes() const;  // what this call holds on the heap beyond its audio port (bench)

 private:
  enum class State {
    connecting,
    amd,
    greeting,
    listening,
    thinking,
    speaking,
    voicemail,
    fallback,
    ending,
    finished
  };
  // Why a call ends, in precedence order (the one place it is defined): when causes race, the root cause
  // outranks its symptoms. The modem vanishing takes the call's audio with it, so a line lost outranks the
  // audio cut-off it causes, and both outrank every ordinary end (hang-ups, limits, tools, the fallback).
  enum class EndCause { other, audio_lost, line_lost };
  using Segment = call_text::SpokenSegment;  // one sentence queued for playback
  // What the port's current burst of playback (since its last drain or stop) holds. A filler is a burst of
  // its own: the answer's audio waits behind it, so a caller talking over the filler stops only the filler.
  enum class Burst { none, turn, filler };
  using D = CallDeadline;
  struct ToolOutcome {
    std::string result;         // the tool message the model reads
    bool continue_llm = false;  // the model answers the result (rather than the turn ending)
  };
  struct Tool {
    const char* name;
    bool (*enabled)(const CallSetup&);
    ToolOutcome (Call::*run)(const cJSON* args);
  };
  static const Tool kTools[];  // name → handler, each enabled by the agent's configuration

  // audio
  void connected();
  Status open_audio();
  // Creates and starts the port for the line's endpoint (no recording, no conversation yet).
  Status open_port();
  // A SIP call's early media (183 with SDP) before the answer: the port opens so the call-progress detector
  // hears the far end's tones; nothing else runs on it until the answer.
  void open_early_media();
  void open_recording();
  void close_audio();
  void on_stream_event(const hal::StreamEvent& e) override;
  void on_capture(const audio::CaptureOutput& frame) override;
  void on_audio_tick() override;
  void on_endpoint(const audio::EndpointEvent& e);
  void cancel_utterance();
  void on_progress_tone(audio::ProgressTone tone);
  // Where a digit was heard: the chain's in-band detector, the line (a modem's out-of-band report), or the
  // RTP stream (an RFC 4733 telephone-event). A SIP peer may send a key both in-band and as an event.
  enum class DtmfSource : uint8_t { inband, line, rtp };
  void on_dtmf(char digit, DtmfSource source);
  void queue_agent_audio(std::span<const int16_t> samples, size_t segment);
  void reserve_pending_play(size_t more);
  void pump_playback();
  void after_burst();  // a burst drained: the turn is over, or the dead-air guard re-arms

  // conversation
  void speak_greeting();
  void speak_text(std::string text, bool interruptible);  // TTS of a fixed text as its own turn
  void start_turn(std::string user_text);
  void request_llm();
  void on_llm_delta(std::string_view delta);
  void on_llm_done(net::ChatResult result);
  void enqueue_sentence(std::string sentence);
  void next_tts();
  void on_tts_audio(std::span<const uint8_t> bytes);
  void on_tts_done();
  void barge_in();
  // Barge-in by words (call.min_interruption_words > 0): the caller's words over the agent decide.
  bool words_mode() const;
  void on_overlap_words(std::string text, int64_t started_ms, int64_t ended_ms);
  void update_duck();
  void agent_turn_finished(bool interrupted);
  bool agent_busy() const;
  void enter_listening();
  void run_tools(const std::vector<net::ToolCall>& calls);
  // After the turn's tools: the model answers their results (tools_continue_), or the turn ends.
  void finish_tools();
  // search_knowledge_base: the search runs (its result may come later, on_search_done); `filler` is what
  // knowledge.filler the turn may say while it runs.
  bool knowledge_offered() const;
  void start_search(const net::ToolCall& tc, const std::string& args_text);
  void on_search_done(uint64_t id, Result<knowledge::SearchResult> result);
  // Results still out are dropped (their tool messages say why): the turn they belonged to is over.
  void abandon_pending_tools(std::string_view why);
  void say_search_filler();
  // What the caller heard of the current turn's segments after `heard` samples (all of it when unset). A
  // knowledge filler that opened the turn is saved here as a turn of its own (kind "filler"); the text of
  // the rest and when the rest began are returned.
  struct TurnText {
    std::string text;
    int64_t started_ms = 0;
  };
  TurnText split_turn(std::optional<uint64_t> heard, bool cut);
  ToolOutcome tool_end_call(const cJSON* args);
  ToolOutcome tool_transfer_call(const cJSON* args);
  ToolOutcome tool_send_dtmf(const cJSON* args);
  ToolOutcome tool_switch_state(const cJSON* args);
  ToolOutcome tool_opt_out(const cJSON* args);
  // The caller asked not to be called again: their number goes on the agent's do-not-disturb list (with
  // `reason` and this call's id) and the call will end "opt_out" by "user". An error when the number is
  // unknown or the list cannot be written (nothing changed then).
  Status record_opt_out(const std::string& reason);
  void opt_out_by_key(char key);  // the agent's tools.opt_out.dtmf_key: stop talking, say the message, end
  void speak_opt_out();           // the message as the last turn, not interruptible, then the hang-up
  // The abandonment guard's figure (record_.greeting_gap_ms), once the agent's first audio has played and
  // the callee's first speech is known to have ended (or not begun).
  void settle_greeting_gap();
  void on_upstream_error(const net::UpstreamError& e);
  // The agent owes the caller speech: a reply (or the greeting) is being prepared or is still streaming.
  bool answer_owed() const;
  // Nothing of the reply owed has been played yet (talking now adds to the question, it interrupts nothing).
  bool answer_unheard() const;
  // The caller's words spoken over an unheard reply: merged into their turn and the reply asked again.
  void merge_and_reask(std::string text);

  // fallback, timers, end
  // Renders `text` on the speech worker; `done` gets the samples, empty when it failed or was too slow.
  void render_local(std::string text, std::function<void(std::vector<int16_t>)> done);
  // The filler's samples into filler_pcm_: the copy another call holds, that call's render when it is back,
  // or this call's own render (ctx_.prompts).
  void want_filler(const std::string& text);
  std::vector<int16_t> with_tone(std::vector<int16_t> pcm) const;  // appends the gap and the 1 kHz beep
  // Plays `text` as the current turn once rendered; the tone alone (or after it) when `tone` or it failed.
  void play_local(std::string_view text, bool tone);
  void play_local_pcm(std::string_view text, std::vector<int16_t> pcm);
  void enter_fallback(std::string why);
  // Dead air: re-arms the guard dead_air_ms after `from_us` while a reply is owed and nothing plays.
  void guard_silence(int64_t from_us);
  void on_dead_air();
  void play_filler();
  void finish_filler(bool cut, uint64_t played);  // saves the filler turn (what was heard of it)
  void arm() { timers_.arm(); }
  void set_in(D d, int64_t delay_us) { timers_.set(d, now_us() + delay_us); }
  void on_timer();
  void end_call(std::string reason, std::string ended_by, EndCause cause = EndCause::other);
  // Records why the call ends unless an end already decided ranks as high or higher (EndCause).
  void record_end_cause(EndCause cause, std::string reason, std::string ended_by);
  void finalize(std::string_view status, std::string_view reason, std::string_view ended_by);
  void save_turn(std::string role, std::string text, int64_t started_ms, int64_t ended_ms, bool interrupted,
                 std::optional<std::string> latency, std::optional<std::string> kind = std::nullopt);
  std::string system_prompt() const;
  std::vector<net::ToolSpec> tools() const;
  std::string render_template(std::string_view text) const;
  void set_min_speech_ms(int ms);
  int64_t now_us() const { return ctx_.clock->monotonic_us(); }
  int64_t wall_ms() const { return ctx_.clock->wall_ms(); }
  double samples_to_ms(uint64_t samples) const;
  int64_t dead_air_us() const;  // when the dead-air guard fires after the silence began
  // Arms the guard for a silence that began at `from_us` (at capture position `from_pos`, when known).
  void set_dead_air(int64_t from_us, std::optional<uint64_t> from_pos = std::nullopt);
  // Every request a call starts is registered under a call-local key its terminal callbacks carry, so ending
  // the call cancels all of them (several STT requests may overlap), not only the latest of each stage.
  uint64_t next_request_key() { return ++request_key_; }
  net::RequestId own(uint64_t key, net::RequestId id);
  void release(uint64_t key) { requests_.erase(key); }
  void cancel_request(net::RequestId& id);  // cancels one owned request and forgets it
  void cancel_upstream();

  CallContext& ctx_;
  hal::Line& line_;
  CallSetup setup_;
  CallRecord record_;
  Finished on_finished_;
  State state_ = State::connecting;
  bool answered_ = false;
  bool early_media_ = false;  // the port was opened for early media and the answer has not come yet
  bool voicemail_reached_ = false;
  EndCause end_cause_ = EndCause::other;   // of the recorded call_ended_reason
  bool opted_out_ = false;                 // the caller's number is on the DND list; the call is ending
  bool opt_out_speak_after_stop_ = false;  // the message waits for the stop of what was playing
  std::string prompt_state_;               // multi-prompt: the current state's name

  // audio (while connected)
  int rate_ = 16000;  // the line's sample rate (lines of one box may differ: EC25 8 kHz, sim 16 kHz)
  std::unique_ptr<AudioPort> port_;
  uint64_t closed_xruns_ = 0;  // of ports already closed
  struct Recording;
  std::unique_ptr<Recording> recording_;
  uint64_t pos_ = 0;              // capture samples processed (the endpointer's clock)
  std::vector<int16_t> history_;  // the last ~1.5 s of cleaned capture, a ring indexed by pos_
  // Encodes the caller's utterance as it is spoken, on the loop: only for a port that does not encode it on
  // its audio thread (AudioPort::encodes_utterances(): the web call, test doubles).
  std::optional<audio::UtteranceEncoder> utterance_;
  std::vector<SpeechWorker::Ticket> local_speech_;  // prompts being rendered; destroyed = cancelled
  uint64_t utterance_begin_ = 0;
  bool in_utterance_ = false;
  bool utterance_open_ =
      false;  // the port encodes: an Onset seen, not cancelled (its blob is ours at the end)
  std::vector<int16_t> pending_play_;  // line-rate samples not yet accepted by the stream's ring
  size_t pending_play_segment_ = 0;
  std::array<int16_t, 480> tts_piece_{};  // 20 ms of 24 kHz TTS, decoded from the byte stream in place
  uint8_t odd_byte_ = 0;
  bool have_odd_byte_ = false;

  // the agent's current turn
  std::vector<Segment> segments_;
  uint64_t heard_samples_ = 0;    // of this turn, from playback_drained / playback_stopped
  uint64_t queued_samples_ = 0;   // of this turn, accepted by the port
  uint64_t burst_queued_ = 0;     // since the port's last drain/stop (what its `played` counts)
  Burst burst_ = Burst::none;     // what that burst is
  bool stop_pending_ = false;     // barge-in (or a filler talked over): waiting for playback_stopped
  bool barging_ = false;          // that stop interrupts the agent's turn, not only the filler
  uint64_t seen_played_ = 0;      // the port's played_samples() at the last tick
  uint64_t turn_burst_mark_ = 0;  // the port's played_samples() when the turn's current burst began
  bool turn_interruptible_ = true;
  bool turn_is_llm_ = false;       // the turn's text came from the model (goes into the context)
  bool turn_is_fallback_ = false;  // the turn is the local fallback message (saved with kind "fallback")
  bool hangup_after_turn_ = false;
  std::optional<std::string> transfer_after_turn_;
  int64_t turn_started_ms_ = 0;
  bool awaiting_first_sample_ = false;  // the turn's first sample is yet to play (latency, turn start)
  bool answering_user_ = false;  // the turn answers the caller's words (not a greeting, prompt or check-in)
  TurnLatency latency_;
  int64_t speech_end_us_ = -1;  // when the caller's last utterance ended (sample-derived)
  int64_t decision_us_ = -1;
  int64_t stt_sent_us_ = -1, llm_sent_us_ = -1, tts_sent_us_ = -1, tts_first_byte_us_ = -1;
  bool first_tts_byte_seen_ = false;

  // Tools whose results come later (search_knowledge_base with embeddings): each fills its tool message,
  // already in messages_ so the order of the turn's tool messages is the model's; the next model request
  // waits for all of them.
  struct PendingTool {
    uint64_t id = 0;
    size_t message = 0;     // index in messages_
    std::string call_text;  // the transcript's "name {arguments}"
    int64_t started_ms = 0, started_us = 0;
  };
  std::vector<PendingTool> pending_tools_;
  uint64_t pending_tool_id_ = 0;
  bool tools_continue_ = false;   // the model answers the results once all are in
  bool in_run_tools_ = false;     // a result that arrives synchronously does not continue the turn itself
  bool search_started_ = false;   // this response's tools started a search (the knowledge filler)
  size_t tool_call_message_ = 0;  // the assistant message carrying the current response's tool calls
  size_t filler_segments_ = 0;    // the turn's first segments are the knowledge filler
  // Search callbacks hold it weakly: a result arriving after the Call is gone is dropped.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

  // upstream
  net::RequestId llm_id_ = 0, tts_id_ = 0;       // the current reply's (turn-taking state)
  std::map<uint64_t, net::RequestId> requests_;  // every request in flight, by key (ownership)
  uint64_t request_key_ = 0;
  std::deque<std::string> tts_queue_;
  std::string llm_pending_text_;  // streamed text not yet cut into a sentence
  std::string llm_text_;          // the whole reply so far
  bool llm_done_ = true;
  std::string pending_user_text_;  // transcripts waiting for the agent to finish (no barge-in)
  std::vector<net::ChatMessage> messages_;
  std::vector<std::string> upstream_errors_;
  int stt_in_flight_ = 0;

  // timers
  CallTimers timers_;
  unsigned silence_prompts_ = 0;
  bool filler_used_ = false;  // since the caller's last words or the reply's last progress (one per stall)
  SharedPrompts::Pcm filler_pcm_;  // the filler, rendered when the audio opened (shared: ctx_.prompts)
  SharedPrompts::Rendering filler_rendering_;  // this call renders the filler for all (ctx_.prompts)
  std::vector<int16_t> fallback_pcm_;          // the fallback message + tone, rendered during the first stall
  bool fallback_rendering_ = false;            // that render has been asked for
  std::vector<int16_t> filler_play_;           // the filler's line-rate samples not yet accepted by the port
  std::string filler_text_;                    // the filler being played ("" = none)
  uint64_t filler_samples_ = 0;
  uint64_t filler_mark_ = 0;   // the port's played_samples() when the filler began
  uint64_t dead_air_pos_ = 0;  // the dead-air deadline on the capture clock (while D::dead_air is armed)
  int64_t filler_started_ms_ = 0;
  // The caller talks while the reply is unheard: its audio is held until their words are known (then merged
  // into their turn and asked again, or — no words — played as it is).
  bool talkover_ = false;  // during the utterance
  int talkover_stt_ = 0;   // their transcriptions in flight
  // Barge-in by words: the caller talks over the agent's audible turn; playback is ducked until their words
  // are known (enough of them stop the agent, fewer are a backchannel and it goes on at full level).
  bool overlap_ = false;  // during the utterance
  int overlap_stt_ = 0;   // their transcriptions in flight
  bool ducked_ = false;   // turn audio is queued at kDuckGain
  std::vector<int16_t> duck_buf_;
  // Words that stopped the agent: answered once the stop has completed (after the cut turn is saved).
  struct Interruption {
    std::string text;
    int64_t started_ms = 0, ended_ms = 0;
  };
  std::optional<Interruption> words_interruption_;
  std::string dtmf_digits_;
  // The last digit taken and when, for dropping the same key reported by a second source (kDtmfDuplicateMs).
  char last_dtmf_ = 0;
  DtmfSource last_dtmf_source_ = DtmfSource::inband;
  int64_t last_dtmf_us_ = 0;
  int64_t connected_ms_ = 0;
  // Greeting gap (outbound): open from the answer until measured.
  bool gap_open_ = false;
  int64_t answered_us_ = -1;
  bool callee_in_speech_ = false;      // their first speech began (Onset) and has not ended
  int64_t greeting_end_us_ = -1;       // the end of their first speech (sample-derived)
  int64_t agent_first_audio_us_ = -1;  // the agent's first sample played
  int64_t last_caller_speech_us_ = -1;
  int64_t user_turn_started_ms_ = 0;
  int64_t seq_ = 0;
};

}  // namespace osvi::daemon
