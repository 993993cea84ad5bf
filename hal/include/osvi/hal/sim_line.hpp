// SimLine: a Line whose remote party follows a small script, so the call engine and the demo box work without
// a modem.
//
// Audio (SimScript::audio, the default): while a call is connected the line is an ALSA PCM that alsa-lib
// opens like a card, so the call engine runs the same AudioStream + LineChain path as on hardware. The PCM
// (AudioEndpoint::alsa_config) is an `asym` of two `file` plugins over FIFOs in a private folder:
//   <dir>/caller.fifo  the party writes caller audio, capture reads it (`infile`);
//   <dir>/agent.fifo   playback writes the agent's voice (`file`), the party reads it.
// The PCM has no clock (clockless: the engine paces it). The party runs on the owner's loop: every 20 ms it
// tops the caller FIFO up to ~160 ms ahead of the reader (the step's audio, else silence) in whole 20 ms
// granules (alsa-lib's file plugin makes up the rest of a period it finds only partly there), and poll_fd()
// is the agent FIFO, whose audio feeds an energy detector (agent talking / stopped) for `after_agent` steps.
// The script therefore advances with the audio the engine actually reads: a call nobody listens to stalls.
// With audio off the steps only take their time and DTMF is reported as LineEvent::dtmf.
//
// One sample clock for measurements (party_events(), SimScript::party_log): capture positions = caller
// samples written since the call connected, which are exactly the positions of the engine's capture stream.
// agent_start/agent_stop are in playback positions (agent samples read since the connect, counting the
// stream's silence). AudioStream writes its playback cushion of (buffer_periods - 1) periods before the
// first capture period, so capture position = playback position - (buffer_periods - 1) * period_frames
// (640 at 16 kHz with the default 3 x 20 ms), as long as the stream was opened once during the call.
//
// Stop the AudioStream before the line hangs up for good or is destroyed: the agent FIFO is kept open after a
// hang-up until alsa-lib closes its end (a writer without reader would get SIGPIPE), but not past ~SimLine().
#pragma once

#include <array>
#include <climits>
#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/clock.hpp"
#include "osvi/hal/fd.hpp"
#include "osvi/hal/line.hpp"

namespace osvi::hal {

struct SimStep {
  enum class Kind {
    wait,  // ms of nothing in particular
    dtmf,  // text = digits pressed: in-band tones (70 ms on, 70 ms off) with audio, else events 100 ms apart
    say,   // text = a sentence (the injected Voice); ms = minimum length (silence pads a shorter sentence)
    play,  // text = a 16-bit PCM WAV file (first channel, resampled to the line rate); ms as for say
    silence,  // ms of the remote party saying nothing (silence handling tests)
    hangup,   // the remote party hangs up
  };
  Kind kind = Kind::wait;
  int64_t ms = 0;
  std::string text;
  // Audio only: start once the agent has talked (since the previous step ended) and then stopped, i.e. was
  // quiet for SimScript::agent_quiet_ms; after timeout_ms of waiting the step starts anyway.
  bool after_agent = false;
  int64_t timeout_ms = 15000;
  bool operator==(const SimStep&) const = default;
};

struct SimScript {
  // What the remote side does with our outbound call.
  enum class Outcome { answer, busy, no_answer, fail };
  Outcome outcome = Outcome::answer;
  unsigned rings = 2;               // rings before answering (or before giving up with no_answer)
  int64_t ring_interval_ms = 1000;  // time per ring
  // Inbound: a caller rings this long after start (0 = never), and hangs up after max_rings unanswered.
  int64_t incoming_after_ms = 0;
  std::string caller = "+919800000001";
  unsigned max_rings = 10;
  // What the remote party does once the call is connected (both directions).
  std::vector<SimStep> steps;
  // Audio path (see the top of this file); false = control side only, the steps just take their time.
  bool audio = true;
  unsigned rate = 16000;  // 8000 or 16000
  // Where the line's FIFO folder (osvi-sim-<id>-XXXXXX) is made; "" = $RUNTIME_DIRECTORY, $XDG_RUNTIME_DIR or
  // /tmp.
  std::string audio_dir;
  // Non-empty: every party event is appended to this file as one JSON line.
  std::string party_log;
  // Agent voice detector on the playback side: 20 ms frames above this level are talk; the agent has
  // stopped after agent_quiet_ms of frames below it.
  double agent_threshold_dbfs = -45.0;
  int64_t agent_quiet_ms = 600;
  bool operator==(const SimScript&) const = default;
};

// What the simulated party did and heard, with sample positions (see "One sample clock" above).
struct SimPartyEvent {
  enum class Kind {
    step_start,    // a step's first caller sample (capture position)
    step_end,      // the end of its speech / tones / silence, before any `ms` padding (capture position)
    step_skipped,  // detail says why (a WAV that cannot be read, a voice that failed)
    dtmf,          // a digit's tone starts (capture position)
    agent_start,   // first loud 20 ms frame of the agent (playback position)
    agent_stop,    // end of the last loud frame, logged once agent_quiet_ms of quiet followed (playback)
    hangup,        // the party hangs up (capture position)
  };
  Kind kind = Kind::step_start;
  unsigned call = 0;  // 1 = the line's first connected call
  int step = -1;      // index into SimScript::steps; agent events: the step running or awaited (-1: none)
  uint64_t sample = 0;
  char digit = 0;
  std::string detail;
};
std::string_view to_string(SimPartyEvent::Kind k);

class SimLine final : public Line {
 public:
  // Renders a sentence at the line's sample rate (the daemon injects espeak-ng; hal does not link it).
  using Voice = std::function<Result<std::vector<int16_t>>(std::string_view text, int sample_rate)>;

  SimLine(std::string id, SimScript script, const Clock& clock);
  ~SimLine() override;
  SimLine(const SimLine&) = delete;
  SimLine& operator=(const SimLine&) = delete;

  const std::string& id() const override { return id_; }
  std::string_view type() const override { return "sim"; }
  LineState state() const override { return state_; }
  std::string reason() const override { return reason_; }
  bool settled() const override { return started_; }
  LineIdentity identity() const override;
  AudioEndpoint audio() const override;

  Status start() override;
  Status dial(std::string_view e164) override;
  Status answer() override;
  Status hangup() override;
  Status send_dtmf(std::string_view digits) override;
  Status transfer_blind(std::string_view e164) override;
  Status transfer_attended(std::string_view e164) override;
  void report_audio_stalled(std::string reason) override;

  int poll_fd() const override { return agent_in_.get(); }
  short poll_events() const override;
  void handle_io(short revents) override;
  int64_t next_deadline_us() const override;
  void handle_timer() override;

  // Without a voice, `say` is `ms` of silence.
  void set_voice(Voice voice) { voice_ = std::move(voice); }
  // The current (or last) call's party events; cleared when a call connects.
  const std::vector<SimPartyEvent>& party_events() const { return party_events_; }
  // Caller samples written (or staged: under 20 ms, see pump_caller) / agent samples read in the current (or
  // last) call.
  uint64_t caller_samples() const { return written_; }
  uint64_t agent_samples() const { return read_; }

  // Test and demo hook: a caller rings now.
  Status ring(std::string caller);
  // Digits we sent, for tests.
  const std::string& sent_dtmf() const { return sent_dtmf_; }

 private:
  void connect();
  void run_steps();
  void to_idle(LineEvent e);
  int64_t now() const { return clock_.monotonic_us(); }

  // Audio side (active only while audio_on_).
  Status open_audio();
  void close_audio();
  void party_tick();
  void pump_agent();
  void agent_frame(std::span<const int16_t> frame);
  void pump_caller();
  bool flush_caller(bool all);
  size_t stage_cap() const;  // caller samples that may be staged (whole granules, at most PIPE_BUF bytes)  //
                             // writes the staged whole granules (all: padded to one); false on EAGAIN
  void begin_steps();        // starts steps until one has audio to write, waits, or the party hangs up
  bool start_step(const SimStep& s);  // false: nothing to write (skipped or empty)
  void end_step();
  void log_event(SimPartyEvent::Kind kind, uint64_t sample, char digit = 0, std::string detail = {});
  std::string device_name() const { return "osvi_sim_" + id_; }

  std::string id_;
  SimScript script_;
  const Clock& clock_;
  bool started_ = false;
  LineState state_ = LineState::down;
  std::string reason_ = "starting";
  std::string number_;
  bool outbound_ = false;
  unsigned rings_ = 0;
  size_t step_ = 0;
  std::string dtmf_left_;
  bool stalled_ = false;
  int64_t deadline_ = -1;
  int64_t incoming_at_ = -1;
  std::string sent_dtmf_;
  std::deque<LineEvent> posted_;

  Voice voice_;
  std::string audio_error_;  // why the audio path could not be made; the call runs control-only
  std::string dir_;          // the FIFO folder, made at the first connect, removed by ~SimLine()
  std::string alsa_config_;
  UniqueFd caller_out_;  // caller.fifo, O_RDWR so alsa-lib's blocking open and reads never see "no writer"
  UniqueFd agent_in_;    // agent.fifo, read end; outlives the call until alsa-lib closes (see the top)
  bool audio_on_ = false;
  bool agent_writer_seen_ = false;
  int64_t agent_close_at_ = -1;  // after a hang-up: stop waiting for alsa-lib to close its end
  unsigned call_ = 0;
  uint64_t written_ = 0;  // capture clock (caller samples committed: written, or staged to be)
  uint64_t read_ = 0;     // playback clock
  // Caller samples not yet in the FIFO: less than one 20 ms granule between ticks (see flush_caller()).
  std::array<int16_t, PIPE_BUF / sizeof(int16_t)> stage_{};
  size_t staged_ = 0;
  // The running step's caller audio: out_[out_pos_..] still to write; speech ends at speech_end_.
  std::vector<int16_t> out_;  // the step's sound; silence after it up to out_len_ is not stored
  size_t out_len_ = 0;
  size_t out_pos_ = 0;
  size_t speech_end_ = 0;
  std::vector<std::pair<size_t, char>> digit_marks_;  // (offset in out_, digit) still to log
  bool step_running_ = false;
  bool waiting_agent_ = false;
  int64_t wait_until_ = -1;
  int current_step_ = -1;
  // Agent detector.
  std::vector<int16_t> frame_;
  size_t frame_fill_ = 0;
  bool odd_byte_ = false;
  uint8_t odd_low_ = 0;
  bool agent_talking_ = false;
  bool agent_heard_ = false;  // talked since the previous step ended
  uint64_t quiet_samples_ = 0;
  uint64_t last_loud_end_ = 0;
  std::vector<SimPartyEvent> party_events_;
  UniqueFd party_log_;
};

}  // namespace osvi::hal
