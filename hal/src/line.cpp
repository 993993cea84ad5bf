// Line vocabulary: names of states, outcomes and events as the API and the journal spell them.
#include "osvi/hal/line.hpp"

namespace osvi::hal {

std::string_view to_string(LineState s) {
  switch (s) {
    case LineState::down:
      return "down";
    case LineState::idle:
      return "idle";
    case LineState::ringing:
      return "ringing";
    case LineState::dialing:
      return "dialing";
    case LineState::alerting:
      return "alerting";
    case LineState::active:
      return "active";
    case LineState::ending:
      return "ending";
  }
  return "down";
}

std::string_view to_string(CallOutcome o) {
  switch (o) {
    case CallOutcome::picked:
      return "picked";
    case CallOutcome::busy:
      return "busy";
    case CallOutcome::not_picked:
      return "not_picked";
    case CallOutcome::failed:
      return "failed";
  }
  return "failed";
}

std::string_view to_string(AudioEndpoint::Kind k) {
  switch (k) {
    case AudioEndpoint::Kind::none:
      return "none";
    case AudioEndpoint::Kind::alsa:
      return "alsa";
    case AudioEndpoint::Kind::tty:
      return "tty";
    case AudioEndpoint::Kind::simulated:
      return "simulated";
    case AudioEndpoint::Kind::web:
      return "web";
    case AudioEndpoint::Kind::rtp:
      return "rtp";
  }
  return "none";
}

std::string_view to_string(LineEvent::Type t) {
  switch (t) {
    case LineEvent::Type::incoming:
      return "incoming";
    case LineEvent::Type::answered:
      return "answered";
    case LineEvent::Type::remote_hangup:
      return "remote_hangup";
    case LineEvent::Type::busy:
      return "busy";
    case LineEvent::Type::no_answer:
      return "no_answer";
    case LineEvent::Type::failed:
      return "failed";
    case LineEvent::Type::hung_up:
      return "hung_up";
    case LineEvent::Type::transferred:
      return "transferred";
    case LineEvent::Type::transfer_failed:
      return "transfer_failed";
    case LineEvent::Type::dtmf:
      return "dtmf";
    case LineEvent::Type::down:
      return "down";
    case LineEvent::Type::up:
      return "up";
    case LineEvent::Type::audio:
      return "audio";
  }
  return "?";
}

bool is_e164(std::string_view n) {
  if (n.size() < 3 || n.size() > 16 || n[0] != '+' || n[1] == '0') return false;
  for (size_t i = 1; i < n.size(); ++i)
    if (n[i] < '0' || n[i] > '9') return false;
  return true;
}

bool is_dtmf(std::string_view digits) {
  if (digits.empty()) return false;
  for (char c : digits) {
    const bool ok = (c >= '0' && c <= '9') || c == '*' || c == '#' || (c >= 'A' && c <= 'D');
    if (!ok) return false;
  }
  return true;
}

}  // namespace osvi::hal
