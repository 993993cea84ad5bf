// SipTrunk: a SIP line — the box as an extension of the office PBX, or on a SIP trunk — carrying up to
// `max_calls` calls at once, each on its own channel (a hal::Line) with its own RTP session (rtp_stream.hpp).
//
// Threading: the SIP stack (libre) runs on the trunk's own thread, which owns every libre object. The loop
// never calls libre: it posts commands to that thread (libre's mqueue), and the thread posts what happened
// back through a queue and an eventfd (poll_fd()); handle_io() applies it to the channels on the loop and
// emits their LineEvents from there. No call state is touched from two threads. libre is used only in
// hal/src/sip_stack.cpp, which opens it (and libssl) with dlopen when the first trunk starts (issue 18).
//
// Channels: ids "<id>.1" … "<id>.<max_calls>". A channel behaves like a modem line (line.hpp): idle, then
// ringing/dialing/alerting/active/ending, with the same events; its audio() is an endpoint of kind rtp
// whose `rtp` stream the channel creates once SDP is agreed (early media included). Channels have no fd or
// deadline of their own: the trunk's poll_fd()/next_deadline_us() drive them all. A channel is down while
// the trunk is (not registered), with the trunk's reason.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "osvi/clock.hpp"
#include "osvi/hal/line.hpp"
#include "osvi/hal/rtp_stream.hpp"
#include "osvi/result.hpp"

namespace osvi::hal {

// Opens libre and libssl (once per process; the first trunk does too) for the configuration check of a line
// of type "sip". -ELIBACC when either is missing.
Status load_sip_library();

enum class SipTransport : uint8_t { udp, tcp, tls };
std::string_view to_string(SipTransport t);

struct SipLineOptions {
  std::string id;         // the configured line id ("pbx")
  std::string registrar;  // host[:port] of the PBX or trunk: where REGISTER goes, and the domain of our URIs
  std::string user;       // our extension or trunk user (From, Contact, the To of REGISTER)
  std::string auth_user;  // the digest username; empty = user
  std::string password;   // from the password file (read by the configuration)
  SipTransport transport = SipTransport::udp;
  std::string tls_ca_file;  // tls: the CA bundle the registrar's certificate is verified against
  std::string
      outbound_proxy;    // host[:port]: every request is routed through it (a loose route); empty = none
  std::string local_ip;  // bind and advertise (Contact, SDP c=); empty = the address routing to the registrar
  uint16_t local_port = 5060;     // the SIP socket; 0 = any free port
  uint16_t rtp_port_min = 16384;  // each call's RTP/RTCP pair comes from [min, max]
  uint16_t rtp_port_max = 16999;
  std::vector<RtpCodec> codecs{RtpCodec::opus, RtpCodec::pcmu, RtpCodec::pcma};  // preference order
  unsigned register_expires_s = 600;  // 0 = no registration (a trunk that routes to us by address)
  unsigned keepalive_s =
      25;                  // NAT keep-alive while registered (CRLF ping on TCP/TLS, OPTIONS on UDP); 0 = off
  unsigned max_calls = 4;  // 1..64 channels
  unsigned ring_timeout_s = 60;  // outbound: no final answer in time = CANCEL, no_answer
  int rt_priority = 0;           // the RTP media threads' SCHED_FIFO priority (audio.rt_priority)
  bool operator==(const SipLineOptions&) const = default;
};

// The trunk as /v1/health shows it.
struct SipStatus {
  std::string registration;       // "registered", "registering", "failed", "disabled" (register_expires_s 0)
  uint16_t last_code = 0;         // the registrar's last final answer (200, 401, 403, 503, ...); 0 = none yet
  std::string last_reason;        // its reason phrase, or the transport error
  int64_t registered_at_us = -1;  // Clock::monotonic_us() of the last successful registration
  unsigned expires_s = 0;         // what the registrar granted
  std::string contact;            // our Contact URI as registered
  unsigned calls_active = 0;
  unsigned max_calls = 0;
};

class SipTrunk {
 public:
  // Validates the options; creates the channels (down, "not started"); no socket yet.
  static Result<std::unique_ptr<SipTrunk>> create(SipLineOptions options, const Clock& clock);
  ~SipTrunk();  // ends every call (BYE/CANCEL), unregisters, joins the SIP thread within ~1 s
  SipTrunk(const SipTrunk&) = delete;
  SipTrunk& operator=(const SipTrunk&) = delete;

  const std::string& id() const;
  const SipLineOptions& options() const;
  // Starts the SIP thread: binds the transport, then registers (or goes idle at once without registration).
  // Only a bad option fails here; an unreachable registrar is a down line with a reason, retried with
  // backoff (5 s doubling up to 5 min, and the registrar's Retry-After).
  Status start();
  std::vector<Line*> channels();
  LineState state() const;  // down (not registered / transport failed), idle (no call), active (any call)
  std::string reason() const;
  bool settled() const;  // the first registration attempt concluded (or no registration)
  SipStatus status() const;

  // Loop integration, as a Line's (line.hpp): the owner watches poll_fd() and the deadline, and calls
  // handle_io()/handle_timer(); channel events are emitted from inside them.
  int poll_fd() const;
  short poll_events() const;
  void handle_io(short revents);
  int64_t next_deadline_us() const;
  void handle_timer();

 private:
  struct Impl;
  explicit SipTrunk(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "sip:<number>@<registrar host>" for an E.164 number or an extension ("+4930…", "201", "*97"): what
// dial() puts in the Request-URI; exposed for tests and the API's number check.
bool is_sip_dialable(std::string_view number);

}  // namespace osvi::hal
