// Line: one telephony line (LTE module, analog card, simulator) as the call engine sees it, whatever the
// hardware.
//
// Threading and loop integration: a Line lives on the control loop and never blocks, logs or owns a thread.
// Like net::HttpServer, it exposes what to wait for (poll_fd() + poll_events(), next_deadline_us()) and the
// owner calls handle_io() / handle_timer(); results come back through the event handler, called from inside
// those calls (and never from inside an action such as dial()). poll_fd() may change after any call (a modem
// that vanished is reopened as a new fd): the owner re-reads it every time.
#pragma once

#include <cerrno>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"

namespace osvi::hal {

class RtpStream;

enum class LineState { down, idle, ringing, dialing, alerting, active, ending };
std::string_view to_string(LineState s);

// The OSVI call status a finished attempt maps to.
enum class CallOutcome { picked, busy, not_picked, failed };
std::string_view to_string(CallOutcome o);

// Where the current call's PCM is, for the audio engine (hal/audio_stream.hpp). Plain data on purpose:
// the line knows the device, the engine owns the I/O.
struct AudioEndpoint {
  // web: a browser test call's PCM over a WebSocket (daemon/calls web_call.hpp), no device.
  // rtp: a SIP call's media (sip_line.hpp): `rtp` is the call's stream, made by the line once SDP is agreed.
  enum class Kind { none, alsa, tty, simulated, web, rtp };
  Kind kind = Kind::none;
  std::string device;  // ALSA PCM name ("plughw:CARD=OsviEC25") or tty path ("/dev/osvi-sim7600-audio")
  unsigned sample_rate = 8000;
  unsigned channels = 1;
  unsigned frame_ms = 20;
  bool ready = false;    // PCM is flowing for the current call
  bool stalled = false;  // the write side stopped draining (SIM7600: needs a USB reset)
  std::string error;     // why audio is unavailable or stalled; empty when fine
  // Non-empty: the ALSA configuration snippet that defines `device` (AudioStreamOptions::alsa_config).
  std::string alsa_config;
  // The PCM has no clock of its own (alsa-lib's file/null plugins): the engine paces the stream itself
  // (AudioStreamOptions::pace = one period).
  bool clockless = false;
  // Non-empty: no call on this line can carry audio (nothing configured, the device is missing, the module
  // refused to enable it), and why. The calls engine neither places nor answers calls on such a line.
  std::string unavailable;
  // Kind rtp: the current call's media stream (not started); shared by the line (DTMF, re-INVITE) and the
  // engine's port, which starts and stops it.
  std::shared_ptr<RtpStream> rtp;
};
std::string_view to_string(AudioEndpoint::Kind k);

// What the module says about itself, for /v1/health and the fleet birth message.
struct LineIdentity {
  std::string manufacturer;
  std::string model;
  std::string imei;
  std::string firmware;
  std::string registration;  // "home", "roaming", "searching", "denied", "unknown", "" = not asked yet
  // The line's own number as the SIM stores it (AT+CNUM, 3GPP TS 27.007 §7.1), as the module wrote it;
  // empty when the SIM has none or the module refused the command.
  std::string own_number;
};

// What a module answers when asked now (POST /v1/lines/{id}/test), 3GPP TS 27.007: identity (+CGMI, +CGMM,
// +CGMR, +CGSN), signal (+CSQ) and registration (+CREG?, +CEREG?). A command the module refused leaves its
// part empty and is listed in `failures`.
struct LineProbe {
  std::string manufacturer;
  std::string model;
  std::string revision;
  std::string imei;
  std::optional<int> rssi;            // +CSQ <rssi> 0..31 (99, "not known", is absent)
  std::optional<int> ber;             // +CSQ <ber> 0..7 (99 absent)
  std::string cs_registration;        // +CREG? as registration_name ("home", "roaming", ...); "" = no answer
  std::string eps_registration;       // +CEREG?
  std::vector<std::string> failures;  // "AT+CSQ: ERROR" / "AT+CSQ: no answer within 5000 ms"
};

struct LineEvent {
  enum class Type {
    incoming,         // number = caller id ("" when withheld)
    answered,         // the remote side (outbound) or we (inbound) picked up: outcome picked
    remote_hangup,    // the other side ended an established or ringing call
    busy,             // outbound: outcome busy
    no_answer,        // outbound: NO ANSWER or our ring timeout, outcome not_picked
    failed,           // reason says why (final code, +CEER text, device gone)
    hung_up,          // our hang-up completed
    transferred,      // the call left us through explicit call transfer (number = the target)
    transfer_failed,  // the call stays with us; reason says why
    dtmf,             // digit received, when the hardware reports it
    down,             // reason says why; a call in progress was ended as failed first
    up,               // the line is idle again (reason: anything worth knowing, e.g. audio problems)
    audio,            // the audio endpoint changed (ready, stalled): read audio()
  };
  Type type = Type::up;
  std::string number;
  char digit = 0;
  std::string reason;
};
std::string_view to_string(LineEvent::Type t);

class Line {
 public:
  using EventHandler = std::function<void(const LineEvent&)>;
  virtual ~Line() = default;

  void set_event_handler(EventHandler handler) { handler_ = std::move(handler); }

  virtual const std::string& id() const = 0;
  virtual std::string_view type() const = 0;  // "at", "sim", "web"
  virtual LineState state() const = 0;
  // Why the line is down (or anything a technician should know about an idle line); empty when fine.
  virtual std::string reason() const = 0;
  // True once the first bring-up attempt has concluded (idle, or down with a reason): the daemon's READY.
  virtual bool settled() const = 0;
  virtual LineIdentity identity() const { return {}; }
  virtual AudioEndpoint audio() const = 0;

  // Starts bringing the line up. Only configuration errors fail; an absent device is a down line with a
  // reason.
  virtual Status start() = 0;
  // Actions: an error means "not possible now" (wrong state, bad number); outcomes arrive as events.
  virtual Status dial(std::string_view e164) = 0;
  virtual Status answer() = 0;
  virtual Status hangup() = 0;
  virtual Status send_dtmf(std::string_view digits) = 0;
  virtual Status transfer_blind(std::string_view e164) = 0;
  // Hold, dial the target, explicit call transfer once it answers; an error where the hardware cannot.
  virtual Status transfer_attended(std::string_view e164) = 0;
  // The audio engine says the PCM stopped flowing (the write side stopped draining, or a tty stopped
  // delivering capture).
  virtual void report_audio_stalled(std::string reason) = 0;
  // The audio engine has the current call's endpoint open and samples flow (true), or no longer (false).
  // audio().ready stays the line's own statement (the module offers PCM); health says the audio path is
  // ready only when both hold, so a PCM the engine could not open never shows as ready.
  void report_audio_open(bool open) { audio_open_ = open; }
  bool audio_open() const { return audio_open_; }

  // Asks the hardware now (identity, signal, registration). `done` runs later, from handle_io() or
  // handle_timer() (never from inside probe()), exactly once while the line lives: with the answers, or an
  // error when the device went away meanwhile. An error now when the line cannot be asked (down, on a call,
  // no hardware to ask).
  using ProbeDone = std::function<void(Result<LineProbe>)>;
  virtual Status probe(ProbeDone done) {
    (void)done;
    return make_error("this line has no hardware to ask", -ENOTSUP);
  }
  // A diagnostic (the audio loopback) holds the idle line: the calls engine places no call on it and answers
  // none until it is released.
  void set_held(bool held) { held_ = held; }
  bool held() const { return held_; }

  // Loop integration (see the top of this file). poll_fd() is -1 when there is nothing to watch.
  virtual int poll_fd() const { return -1; }
  virtual short poll_events() const { return 0; }  // POLLIN / POLLOUT
  virtual void handle_io(short revents) { (void)revents; }
  // Absolute Clock::monotonic_us() of the next deadline, or -1 for none.
  virtual int64_t next_deadline_us() const = 0;
  virtual void handle_timer() = 0;

 protected:
  void emit(const LineEvent& e) const {
    if (handler_) handler_(e);
  }

 private:
  EventHandler handler_;
  bool audio_open_ = false;
  bool held_ = false;
};

// "+" then 2 to 15 digits, first digit not 0 (ITU-T E.164).
bool is_e164(std::string_view number);
// DTMF digits that can be sent: 0-9 * # A-D.
bool is_dtmf(std::string_view digits);

}  // namespace osvi::hal
