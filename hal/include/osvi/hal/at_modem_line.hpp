// AtModemLine: a Line on an LTE module driven by AT commands over a USB serial tty (Quectel EC25, SIMCom
// SIM7600).
//
// Loop-driven like every Line (see line.hpp): one command in flight with its own timeout, a queue behind it,
// +CLCC polling while a call exists, and the tty reopened with backoff when the module vanishes (USB reset,
// unplug). The PCM itself (ALSA card or audio tty) belongs to the audio engine; this class only says where
// it is and when it flows (audio()).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "osvi/clock.hpp"
#include "osvi/hal/at_parser.hpp"
#include "osvi/hal/fd.hpp"
#include "osvi/hal/line.hpp"

namespace osvi::hal {

enum class ModemVendor { generic, quectel_ec25, simcom_sim7600 };
std::string_view to_string(ModemVendor v);

struct AtModemOptions {
  std::string id;
  std::string device;  // the AT tty, e.g. /dev/osvi-ec25-at (udev symlink)
  unsigned baud = 115200;
  ModemVendor vendor = ModemVendor::generic;
  // EC25: ALSA PCM of the USB audio class card; SIM7600: the raw PCM tty. Empty = the vendor default.
  std::string audio_device;
  bool pcm_16k = true;  // SIM7600: ask for 16 kHz (AT+CPCMFRM=1)
  // The audio PCM has no clock of its own (a file-backed PCM on a test bench): the engine paces it
  // (AudioEndpoint::clockless).
  bool audio_clockless = false;
  int64_t command_timeout_ms = 5000;
  int64_t dial_timeout_ms = 30000;  // ATD / ATA final result
  int64_t ring_timeout_ms = 45000;  // outbound: no answer within this -> not_picked
  int64_t poll_interval_ms = 1000;  // +CLCC while a call exists
  int64_t reopen_min_ms = 1000;     // backoff after the tty vanished or init failed
  int64_t reopen_max_ms = 30000;
  int64_t pcm_enable_delay_ms = 100;       // SIM7600: AT+CPCMREG=1 this long after the call is active
  int64_t quiet_flush_ms = 300;            // a line without CR/LF is taken as complete after this silence
  std::vector<std::string> vendor_finals;  // extra final-result prefixes
  bool operator==(const AtModemOptions&) const = default;
};

// The audio path a modem with these options has: ALSA (EC25, a generic modem's PCM name), a PCM tty
// (SIM7600, a generic modem's /dev path) or none (a generic modem without audio_device). The configuration
// check uses it to know whether the line needs alsa-lib.
AudioEndpoint::Kind at_audio_kind(const AtModemOptions& options);

class AtModemLine final : public Line {
 public:
  AtModemLine(AtModemOptions options, const Clock& clock);
  ~AtModemLine() override;

  const std::string& id() const override { return opt_.id; }
  std::string_view type() const override { return "at"; }
  LineState state() const override { return state_; }
  std::string reason() const override { return reason_; }
  bool settled() const override { return settled_; }
  LineIdentity identity() const override { return identity_; }
  AudioEndpoint audio() const override { return audio_; }

  Status start() override;
  Status dial(std::string_view e164) override;
  Status answer() override;
  Status hangup() override;
  Status send_dtmf(std::string_view digits) override;
  Status transfer_blind(std::string_view e164) override;
  Status transfer_attended(std::string_view e164) override;
  void report_audio_stalled(std::string reason) override;
  // Queued behind the commands already waiting (the one AT command queue): refused while a call exists or
  // the tty is closed.
  Status probe(ProbeDone done) override;

  int poll_fd() const override { return fd_.get(); }
  short poll_events() const override;
  void handle_io(short revents) override;
  int64_t next_deadline_us() const override;
  void handle_timer() override;

  size_t garbage_bytes() const { return parser_.garbage_bytes(); }

 private:
  struct Response {
    bool timed_out = false;
    AtFinal final = AtFinal::ok;
    std::string final_text;
    std::vector<std::string> lines;
    bool ok() const { return !timed_out && final == AtFinal::ok; }
    std::string why() const;
  };
  struct Command {
    std::string text;
    int64_t timeout_ms = 0;
    std::function<void(const Response&)> done;
  };
  struct Call {
    bool outbound = false;
    bool answered = false;
    bool incoming_reported = false;
    bool seen_in_list = false;
    int empty_polls = 0;
    int index = -1;  // +CLCC index of our call
    unsigned rings = 0;
    std::string number;
    bool pcm_enabled = false;
    // Transfer in progress: the number, whether to wait for the target to answer, and the stage.
    std::string xfer_number;
    bool xfer_attended = false;
    bool xfer_dialled = false;
  };

  void enqueue(std::string text, int64_t timeout_ms, std::function<void(const Response&)> done = {});
  void send_next();
  void finish_command(Response r);
  void flush_out();
  void read_input();
  void process_lines();
  void on_unsolicited(const AtLine& l);

  void open_device();
  void run_init();
  void lost(const std::string& why);
  void schedule_reopen();
  void post(LineEvent e);

  void on_connected();
  void on_call_progress(AtFinal f, const std::string& text);
  // Ends the call: `type` is the event; failed attempts get the module's +CEER text appended.
  void end_call(LineEvent::Type type, std::string reason);
  void finish_to_idle(LineEvent e);
  void poll_calls();
  void on_clcc(const Response& r);
  void transfer_failed(const std::string& why);
  // Every probe still waiting gets this error (the tty was lost: its queued commands are gone).
  void fail_probes(const std::string& why);
  Status transfer_attended_impl(std::string_view e164, bool attended);
  bool in_call() const;
  int64_t now() const { return clock_.monotonic_us(); }

  AtModemOptions opt_;
  const Clock& clock_;
  UniqueFd fd_;
  AtParser parser_;
  std::string out_;
  std::deque<Command> queue_;
  std::optional<Command> inflight_;
  Response pending_;
  int64_t inflight_deadline_ = -1;

  LineState state_ = LineState::down;
  std::string reason_ = "starting";
  bool settled_ = false;
  LineIdentity identity_;
  AudioEndpoint audio_;
  std::string audio_problem_;  // init-time audio failure, kept across calls
  bool ceer_supported_ = true;
  std::optional<Call> call_;
  std::deque<LineEvent> posted_;
  struct ProbeState;
  std::vector<std::shared_ptr<ProbeState>> probes_;  // asked and not yet answered

  int64_t poll_deadline_ = -1;
  int64_t ring_deadline_ = -1;
  int64_t pcm_deadline_ = -1;
  int64_t reopen_deadline_ = -1;
  int64_t last_rx_us_ = 0;
  int64_t backoff_ms_ = 0;
  uint64_t generation_ = 0;  // bumped on every (re)open: callbacks of a previous connection are void
};

}  // namespace osvi::hal
