// SimLine: the scripted remote party, stepped by deadlines on the owner's loop.
#include "osvi/hal/sim_line.hpp"

#include <algorithm>
#include <cerrno>

namespace osvi::hal {

SimLine::SimLine(std::string id, SimScript script, const Clock& clock)
    : id_(std::move(id)), script_(std::move(script)), clock_(clock) {}

LineIdentity SimLine::identity() const {
  LineIdentity i;
  i.manufacturer = "osvi";
  i.model = "simulated line";
  i.registration = "home";
  return i;
}

AudioEndpoint SimLine::audio() const {
  AudioEndpoint a;
  a.kind = AudioEndpoint::Kind::simulated;
  a.device = "sim:" + id_;
  a.sample_rate = 16000;
  a.ready = state_ == LineState::active && !stalled_;
  a.stalled = stalled_;
  if (stalled_) a.error = "audio write side stalled (reported by the audio engine)";
  return a;
}

Status SimLine::start() {
  started_ = true;
  state_ = LineState::idle;
  reason_.clear();
  if (script_.incoming_after_ms > 0) incoming_at_ = now() + script_.incoming_after_ms * 1000;
  posted_.push_back(LineEvent{LineEvent::Type::up, {}, 0, {}});
  return {};
}

Status SimLine::ring(std::string caller) {
  if (state_ != LineState::idle)
    return make_error("line " + id_ + " is " + std::string(to_string(state_)), -EBUSY);
  state_ = LineState::ringing;
  outbound_ = false;
  number_ = std::move(caller);
  rings_ = 1;
  deadline_ = now() + script_.ring_interval_ms * 1000;
  posted_.push_back(LineEvent{LineEvent::Type::incoming, number_, 0, {}});
  return {};
}

Status SimLine::dial(std::string_view e164) {
  if (state_ != LineState::idle)
    return make_error("line " + id_ + " is " + std::string(to_string(state_)), -EBUSY);
  if (!is_e164(e164)) return make_error("not an E.164 number: \"" + std::string(e164) + "\"");
  state_ = LineState::dialing;
  outbound_ = true;
  number_ = std::string(e164);
  rings_ = 0;
  // Call setup takes one ring interval before the remote side starts ringing (or is found busy).
  deadline_ = now() + script_.ring_interval_ms * 1000;
  return {};
}

Status SimLine::answer() {
  if (state_ != LineState::ringing || outbound_)
    return make_error("line " + id_ + ": no incoming call to answer");
  connect();
  return {};
}

Status SimLine::hangup() {
  if (state_ == LineState::idle || state_ == LineState::down)
    return make_error("line " + id_ + ": no call to hang up");
  to_idle(LineEvent{LineEvent::Type::hung_up, number_, 0, {}});
  return {};
}

Status SimLine::send_dtmf(std::string_view digits) {
  if (state_ != LineState::active) return make_error("line " + id_ + ": no active call");
  if (!is_dtmf(digits)) return make_error("not DTMF digits: \"" + std::string(digits) + "\"");
  sent_dtmf_ += digits;
  return {};
}

Status SimLine::transfer_blind(std::string_view e164) {
  if (state_ != LineState::active && state_ != LineState::ringing)
    return make_error("line " + id_ + ": no call");
  if (!is_e164(e164)) return make_error("not an E.164 number: \"" + std::string(e164) + "\"");
  to_idle(LineEvent{LineEvent::Type::transferred, std::string(e164), 0, {}});
  return {};
}

Status SimLine::transfer_attended(std::string_view e164) {
  if (state_ != LineState::active) return make_error("line " + id_ + ": no active call");
  return transfer_blind(e164);
}

void SimLine::report_audio_stalled(std::string reason) {
  stalled_ = true;
  posted_.push_back(LineEvent{LineEvent::Type::audio, {}, 0, std::move(reason)});
}

void SimLine::connect() {
  state_ = LineState::active;
  stalled_ = false;
  step_ = 0;
  dtmf_left_.clear();
  posted_.push_back(LineEvent{LineEvent::Type::answered, number_, 0, {}});
  posted_.push_back(LineEvent{LineEvent::Type::audio, {}, 0, {}});
  deadline_ = now();
}

void SimLine::to_idle(LineEvent e) {
  state_ = LineState::idle;
  deadline_ = -1;
  dtmf_left_.clear();
  posted_.push_back(std::move(e));
}

void SimLine::run_steps() {
  deadline_ = -1;
  if (!dtmf_left_.empty()) {
    posted_.push_back(LineEvent{LineEvent::Type::dtmf, {}, dtmf_left_.front(), {}});
    dtmf_left_.erase(0, 1);
    deadline_ = now() + 100'000;
    return;
  }
  if (step_ >= script_.steps.size()) return;  // the remote party stays on until we hang up
  const SimStep& s = script_.steps[step_++];
  switch (s.kind) {
    case SimStep::Kind::hangup:
      return to_idle(LineEvent{LineEvent::Type::remote_hangup, number_, 0, "the simulated party hung up"});
    case SimStep::Kind::dtmf:
      dtmf_left_ = s.text;
      deadline_ = now();
      return;
    case SimStep::Kind::wait:
    case SimStep::Kind::say:
    case SimStep::Kind::play:
    case SimStep::Kind::silence:
      deadline_ = now() + s.ms * 1000;
      return;
  }
}

int64_t SimLine::next_deadline_us() const {
  if (!posted_.empty()) return now();
  if (deadline_ >= 0 && incoming_at_ >= 0) return std::min(deadline_, incoming_at_);
  return deadline_ >= 0 ? deadline_ : incoming_at_;
}

void SimLine::handle_timer() {
  const int64_t t = now();
  if (incoming_at_ >= 0 && t >= incoming_at_) {
    incoming_at_ = -1;
    (void)ring(script_.caller);  // busy with another call: this caller is simply lost
  }
  if (deadline_ >= 0 && t >= deadline_) {
    deadline_ = -1;
    const int64_t interval = script_.ring_interval_ms * 1000;
    switch (state_) {
      case LineState::dialing:
        if (script_.outcome == SimScript::Outcome::busy) {
          to_idle(LineEvent{LineEvent::Type::busy, number_, 0, "BUSY"});
        } else if (script_.outcome == SimScript::Outcome::fail) {
          to_idle(LineEvent{LineEvent::Type::failed, number_, 0, "simulated network failure"});
        } else {
          state_ = LineState::alerting;
          rings_ = 0;
          deadline_ = t;
        }
        break;
      case LineState::alerting:
        if (script_.outcome == SimScript::Outcome::answer && rings_ >= script_.rings) {
          connect();
        } else if (script_.outcome == SimScript::Outcome::no_answer && rings_ >= script_.rings) {
          to_idle(LineEvent{LineEvent::Type::no_answer, number_, 0, "NO ANSWER"});
        } else {
          ++rings_;
          deadline_ = t + interval;
        }
        break;
      case LineState::ringing:
        if (++rings_ > script_.max_rings) {
          to_idle(
              LineEvent{LineEvent::Type::remote_hangup, number_, 0, "the caller gave up before the answer"});
        } else {
          deadline_ = t + interval;
        }
        break;
      case LineState::active:
        run_steps();
        break;
      default:
        break;
    }
  }
  while (!posted_.empty()) {
    LineEvent e = std::move(posted_.front());
    posted_.pop_front();
    emit(e);
  }
}

}  // namespace osvi::hal
