// SimLine: a Line whose remote party follows a small script, so the call engine and the demo box work without
// a modem.
//
// Control side only: the script's "say" and "play" steps describe what the remote party would speak; the
// audio engine (calls issue) will voice them. Until then they take their `ms` and produce no sound.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "osvi/clock.hpp"
#include "osvi/hal/line.hpp"

namespace osvi::hal {

struct SimStep {
  enum class Kind {
    wait,     // ms of nothing in particular
    dtmf,     // text = digits pressed, one every 100 ms
    say,      // text = a sentence (espeak-ng, later), ms = how long it lasts
    play,     // text = a WAV file (later), ms = how long it lasts
    silence,  // ms of the remote party saying nothing (silence handling tests)
    hangup,   // the remote party hangs up
  };
  Kind kind = Kind::wait;
  int64_t ms = 0;
  std::string text;
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
  bool operator==(const SimScript&) const = default;
};

class SimLine final : public Line {
 public:
  SimLine(std::string id, SimScript script, const Clock& clock);

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

  int64_t next_deadline_us() const override;
  void handle_timer() override;

  // Test and demo hook: a caller rings now.
  Status ring(std::string caller);
  // Digits we sent, for tests.
  const std::string& sent_dtmf() const { return sent_dtmf_; }

 private:
  void connect();
  void run_steps();
  void to_idle(LineEvent e);
  int64_t now() const { return clock_.monotonic_us(); }

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
};

}  // namespace osvi::hal
