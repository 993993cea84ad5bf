// SipTrunk's loop side: its channels (hal::Lines), their states and events, and each call's RtpStream.
// The SIP work itself happens on the SIP thread (sip_stack.cpp); this file never calls libre.
#include "osvi/hal/sip_line.hpp"

#include <arpa/inet.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <optional>

#include "sip_internal.hpp"

namespace osvi::hal {

std::string_view to_string(SipTransport t) {
  switch (t) {
    case SipTransport::udp:
      return "udp";
    case SipTransport::tcp:
      return "tcp";
    case SipTransport::tls:
      return "tls";
  }
  return "udp";
}

bool is_sip_dialable(std::string_view number) {
  if (!number.empty() && number.front() == '+') {
    const std::string_view d = number.substr(1);
    return d.size() >= 2 && d.size() <= 15 &&
           std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
  }
  return !number.empty() && number.size() <= 15 && std::all_of(number.begin(), number.end(), [](char c) {
    return (c >= '0' && c <= '9') || c == '*' || c == '#';
  });
}

namespace {

using sipi::Command;
using sipi::Report;

// A SIP user part or host as the options give it: printable, and nothing that would end a URI or header.
bool clean_token(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s)
    if (c <= ' ' || c > '~' || c == '<' || c == '>' || c == '"' || c == ';' || c == ',' || c == '@')
      return false;
  return true;
}

}  // namespace

class SipChannel;

// The trunk's loop-side state, shared with its channels.
struct TrunkCore {
  SipLineOptions options;
  const Clock& clock;
  std::shared_ptr<sipi::Shared> shared;
  std::unique_ptr<sipi::SipEngine> engine;
  std::vector<std::unique_ptr<SipChannel>> channels;
  bool started = false;
  bool up = false;
  bool settled = false;
  std::string reason = "not started";
  SipStatus status;

  TrunkCore(SipLineOptions o, const Clock& c) : options(std::move(o)), clock(c) {}
  int64_t now() const { return clock.monotonic_us(); }
  void post(Command c) { engine->post(std::move(c)); }
  void apply_registration(const Report& r);
};

class SipChannel final : public Line {
 public:
  SipChannel(TrunkCore& trunk, unsigned slot)
      : t_(trunk), slot_(slot), id_(trunk.options.id + "." + std::to_string(slot + 1)) {
    audio_.kind = AudioEndpoint::Kind::rtp;
    audio_.frame_ms = 20;
  }
  ~SipChannel() override { stop_stream(); }

  const std::string& id() const override { return id_; }
  std::string_view type() const override { return "sip"; }
  LineState state() const override { return state_; }
  std::string reason() const override { return state_ == LineState::down ? t_.reason : std::string(); }
  bool settled() const override { return t_.settled; }
  AudioEndpoint audio() const override { return audio_; }
  Status start() override { return {}; }  // the trunk starts its channels

  Status dial(std::string_view number) override {
    if (state_ != LineState::idle || call_ != 0) return busy_error();
    if (!is_sip_dialable(number))
      return make_error("not a number a SIP line can dial (E.164 or extension): \"" + std::string(number) +
                        "\"");
    if (!t_.shared->claim(slot_)) return make_error("line " + id_ + " is taken by an incoming call", -EBUSY);
    auto sockets = bind_rtp();
    if (!sockets.ok()) {
      t_.shared->release(slot_);
      return make_error("line " + id_ + ": no RTP port: " + sockets.error().message, sockets.error().code);
    }
    sockets_.emplace(std::move(sockets.value()));
    call_ = t_.shared->next_call.fetch_add(1);
    number_ = std::string(number);
    outbound_ = true;
    state_ = LineState::dialing;
    ring_deadline_ = t_.now() + static_cast<int64_t>(t_.options.ring_timeout_s) * 1'000'000;
    t_.post(Command{Command::Kind::dial, slot_, call_, number_, sockets_->rtp_port()});
    return {};
  }

  Status answer() override {
    if (state_ != LineState::ringing || outbound_ || answering_)
      return make_error("line " + id_ + ": no incoming call to answer", -EINVAL);
    auto sockets = bind_rtp();
    if (!sockets.ok())
      return make_error("line " + id_ + ": no RTP port: " + sockets.error().message, sockets.error().code);
    sockets_.emplace(std::move(sockets.value()));
    answering_ = true;
    t_.post(Command{Command::Kind::answer, slot_, call_, {}, sockets_->rtp_port()});
    return {};
  }

  Status hangup() override {
    if (call_ == 0 || state_ == LineState::ending)
      return make_error("line " + id_ + ": no call to hang up", -EINVAL);
    end_ours(LineEvent::Type::hung_up, {});
    return {};
  }

  Status send_dtmf(std::string_view digits) override {
    if (state_ != LineState::active) return make_error("line " + id_ + ": no active call", -EINVAL);
    if (!is_dtmf(digits)) return make_error("not DTMF digits: \"" + std::string(digits) + "\"");
    if (stream_ && stream_->options().dtmf_payload_type != 0) return stream_->send_dtmf(digits);
    t_.post(Command{Command::Kind::info_dtmf, slot_, call_, std::string(digits), 0});
    return {};
  }

  Status transfer_blind(std::string_view number) override { return transfer(number, Command::Kind::refer); }

  // Consultation call to the target on the SIP thread (no channel of ours: it carries no audio), then REFER
  // with Replaces once it answers.
  Status transfer_attended(std::string_view number) override {
    return transfer(number, Command::Kind::refer_attended);
  }

  void report_audio_stalled(std::string reason) override {
    audio_.stalled = true;
    audio_.error = std::move(reason);
  }

  // The trunk drives every channel: these are never watched on their own.
  int64_t next_deadline_us() const override { return ring_deadline_; }
  void handle_timer() override {
    if (ring_deadline_ >= 0 && t_.now() >= ring_deadline_) {
      ring_deadline_ = -1;
      if (state_ == LineState::dialing || state_ == LineState::alerting)
        end_ours(LineEvent::Type::no_answer,
                 "no answer within " + std::to_string(t_.options.ring_timeout_s) + " s (CANCEL sent)");
    }
  }

  bool in_call() const { return call_ != 0; }

  void set_trunk(bool up) {
    if (call_ != 0) return;  // a call in progress keeps going; the channel follows the trunk when it ends
    if (up && state_ == LineState::down) {
      state_ = LineState::idle;
      emit(LineEvent{LineEvent::Type::up, {}, 0, {}});
    } else if (!up && state_ != LineState::down) {
      state_ = LineState::down;
      emit(LineEvent{LineEvent::Type::down, {}, 0, t_.reason});
    }
  }

  void apply(const Report& r) {
    if (r.kind == Report::Kind::incoming) {
      // The SIP thread claimed this slot, so no call of ours is on it.
      call_ = r.call;
      number_ = r.text;
      outbound_ = false;
      answering_ = false;
      state_ = LineState::ringing;
      emit(LineEvent{LineEvent::Type::incoming, number_, 0, {}});
      return;
    }
    if (r.call != call_ || call_ == 0) return;  // a call this channel already finished
    switch (r.kind) {
      case Report::Kind::alerting:
        if (state_ == LineState::dialing) state_ = LineState::alerting;
        return;
      case Report::Kind::media:
        if (state_ != LineState::ending) use_media(r.media);
        return;
      case Report::Kind::answered:
        if (state_ == LineState::ending) return;
        ring_deadline_ = -1;
        state_ = LineState::active;
        emit(LineEvent{LineEvent::Type::answered, number_, 0, {}});
        return;
      case Report::Kind::dtmf:
        if (state_ == LineState::active) emit(LineEvent{LineEvent::Type::dtmf, {}, r.digit, {}});
        return;
      case Report::Kind::transfer_failed:
        transferring_ = false;
        emit(LineEvent{LineEvent::Type::transfer_failed, {}, 0, r.reason});
        return;
      case Report::Kind::ended: {
        LineEvent e{r.end, r.end == LineEvent::Type::transferred ? r.text : number_, 0, r.reason};
        if (r.ours && pending_end_) e = *pending_end_;
        finish(std::move(e));
        return;
      }
      case Report::Kind::incoming:
      case Report::Kind::registration:
        return;
    }
  }

 private:
  Status transfer(std::string_view number, Command::Kind kind) {
    if (!is_sip_dialable(number))
      return make_error("not a number a SIP line can dial (E.164 or extension): \"" + std::string(number) +
                        "\"");
    if (state_ != LineState::active)
      return make_error("line " + id_ + ": no active call to transfer", -EINVAL);
    if (transferring_) return make_error("line " + id_ + ": a transfer is already in progress", -EBUSY);
    transferring_ = true;
    t_.post(Command{kind, slot_, call_, std::string(number), 0});
    return {};
  }

  Status busy_error() const {
    if (state_ == LineState::down) return make_error("line " + id_ + " is down: " + t_.reason, -ENODEV);
    return make_error("line " + id_ + " is " + std::string(to_string(state_)), -EBUSY);
  }

  Result<RtpSockets> bind_rtp() const {
    const std::string& ip = t_.options.local_ip.empty() ? std::string("0.0.0.0") : t_.options.local_ip;
    return RtpSockets::bind(ip, t_.options.rtp_port_min, t_.options.rtp_port_max);
  }

  // We end the call (hang-up, ring timeout): the SIP thread sends BYE/CANCEL/603 and confirms with an
  // `ended` report; the event we emit then is ours, whatever raced with it.
  void end_ours(LineEvent::Type type, std::string reason) {
    state_ = LineState::ending;
    ring_deadline_ = -1;
    pending_end_ = LineEvent{type, number_, 0, std::move(reason)};
    t_.post(Command{Command::Kind::hangup, slot_, call_, {}, 0});
  }

  void finish(LineEvent e) {
    stop_stream();
    sockets_.reset();
    call_ = 0;
    answering_ = transferring_ = false;
    pending_end_.reset();
    ring_deadline_ = -1;
    audio_ = AudioEndpoint{};
    audio_.kind = AudioEndpoint::Kind::rtp;
    t_.shared->release(slot_);
    const bool down = !t_.up;
    state_ = down ? LineState::down : LineState::idle;
    emit(e);
    if (down) emit(LineEvent{LineEvent::Type::down, {}, 0, t_.reason});
  }

  void stop_stream() {
    if (stream_) stream_->stop();
    stream_.reset();
  }

  void use_media(const sipi::Media& m) {
    if (stream_) {
      // A re-INVITE (or the answer after early media): same stream, new address or direction.
      stream_->set_remote(m.remote_ip, m.remote_rtp_port, m.remote_rtcp_port);
      stream_->set_hold(m.hold);
      return;
    }
    if (!sockets_) return;
    RtpStreamOptions o;
    o.codec = m.codec;
    o.payload_type = m.payload_type;
    o.dtmf_payload_type = m.dtmf_payload_type;
    o.rate = m.codec == RtpCodec::opus ? 16000 : 8000;
    o.ptime_ms = 20;
    o.remote_ip = m.remote_ip;
    o.remote_rtp_port = m.remote_rtp_port;
    o.remote_rtcp_port = m.remote_rtcp_port;
    o.rt_priority = t_.options.rt_priority;
    auto s = RtpStream::create(o, std::move(*sockets_));
    sockets_.reset();
    audio_.sample_rate = static_cast<unsigned>(o.rate);
    if (!s.ok()) {
      audio_.ready = false;
      audio_.error = "RTP stream: " + s.error().message;
      emit(LineEvent{LineEvent::Type::audio, {}, 0, audio_.error});
      return;
    }
    stream_ = std::shared_ptr<RtpStream>(std::move(s.value()));
    if (m.hold) stream_->set_hold(true);
    audio_.rtp = stream_;
    audio_.ready = true;
    audio_.error.clear();
    emit(LineEvent{LineEvent::Type::audio, {}, 0, {}});
  }

  TrunkCore& t_;
  unsigned slot_;
  std::string id_;
  LineState state_ = LineState::down;
  uint64_t call_ = 0;
  std::string number_;
  bool outbound_ = false;
  bool answering_ = false;
  bool transferring_ = false;
  std::optional<LineEvent> pending_end_;
  int64_t ring_deadline_ = -1;
  std::optional<RtpSockets> sockets_;
  std::shared_ptr<RtpStream> stream_;
  AudioEndpoint audio_;
};

struct SipTrunk::Impl : TrunkCore {
  using TrunkCore::TrunkCore;
};

void TrunkCore::apply_registration(const Report& r) {
  status.registration = r.registration;
  status.last_code = r.code;
  status.last_reason = r.reason;
  status.expires_s = r.expires_s;
  if (!r.contact.empty()) status.contact = r.contact;
  if (r.registration == "registering") return;  // in flight: the line keeps what it was
  settled = true;
  if (r.up && r.registration == "registered") status.registered_at_us = now();
  reason = r.up ? std::string() : r.reason;
  up = r.up;
  for (auto& c : channels) c->set_trunk(up);
}

// ---------------------------------------------------------------------------------------------------------

Result<std::unique_ptr<SipTrunk>> SipTrunk::create(SipLineOptions o, const Clock& clock) {
  auto bad = [&o](const std::string& what) { return make_error("line " + o.id + ": " + what); };
  if (o.id.empty()) return make_error("a SIP line needs an id");
  if (!clean_token(o.registrar) && !(o.registrar.size() > 2 && o.registrar.front() == '['))
    return bad("registrar must be host[:port], got \"" + o.registrar + "\"");
  if (!clean_token(o.user)) return bad("user must be a SIP user part without spaces, <>;,@\"");
  if (!o.auth_user.empty() && !clean_token(o.auth_user))
    return bad("auth_user has characters a SIP user cannot");
  if (o.password.find_first_of("\r\n") != std::string::npos) return bad("the password holds a line break");
  if (!o.outbound_proxy.empty() && !clean_token(o.outbound_proxy))
    return bad("outbound_proxy must be host[:port]");
  if (!o.local_ip.empty()) {
    in_addr a4{};
    in6_addr a6{};
    if (inet_pton(AF_INET, o.local_ip.c_str(), &a4) != 1 && inet_pton(AF_INET6, o.local_ip.c_str(), &a6) != 1)
      return bad("local_ip must be an IP address of this box, got \"" + o.local_ip + "\"");
  }
  if (o.max_calls < 1 || o.max_calls > 64) return bad("max_calls must be 1..64");
  if (o.rtp_port_min == 0 || o.rtp_port_min > o.rtp_port_max)
    return bad("rtp_port_min..rtp_port_max is empty");
  if (o.codecs.empty()) return bad("codecs is empty");
  if (o.ring_timeout_s == 0) return bad("ring_timeout_s must be at least 1");
  auto efd = EventFd::create();
  if (!efd.ok()) return efd.error();
  auto impl = std::make_unique<Impl>(std::move(o), clock);
  impl->shared = std::make_shared<sipi::Shared>(impl->options.max_calls, std::move(efd.value()));
  impl->status.registration = impl->options.register_expires_s == 0 ? "disabled" : "registering";
  impl->status.max_calls = impl->options.max_calls;
  auto engine = sipi::SipEngine::create(impl->options, impl->shared);
  if (!engine.ok()) return engine.error();
  impl->engine = std::move(engine.value());
  for (unsigned i = 0; i < impl->options.max_calls; ++i)
    impl->channels.push_back(std::make_unique<SipChannel>(*impl, i));
  return std::unique_ptr<SipTrunk>(new SipTrunk(std::move(impl)));
}

SipTrunk::SipTrunk(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SipTrunk::~SipTrunk() {
  // The engine ends every call and unregisters on the SIP thread before the channels go.
  impl_->engine.reset();
}

const std::string& SipTrunk::id() const {
  return impl_->options.id;
}
const SipLineOptions& SipTrunk::options() const {
  return impl_->options;
}

Status SipTrunk::start() {
  if (impl_->started) return {};
  impl_->started = true;
  impl_->reason = impl_->options.register_expires_s == 0 ? "binding the SIP transport" : "registering";
  impl_->post(Command{Command::Kind::start, 0, 0, {}, 0});
  return {};
}

std::vector<Line*> SipTrunk::channels() {
  std::vector<Line*> out;
  for (auto& c : impl_->channels) out.push_back(c.get());
  return out;
}

LineState SipTrunk::state() const {
  for (auto& c : impl_->channels)
    if (c->in_call()) return LineState::active;
  return impl_->up ? LineState::idle : LineState::down;
}

std::string SipTrunk::reason() const {
  return impl_->up ? std::string() : impl_->reason;
}

bool SipTrunk::settled() const {
  return impl_->settled;
}

SipStatus SipTrunk::status() const {
  SipStatus s = impl_->status;
  s.calls_active = 0;
  for (auto& c : impl_->channels) s.calls_active += c->in_call() ? 1 : 0;
  return s;
}

int SipTrunk::poll_fd() const {
  return impl_->shared->inbox.fd();
}

short SipTrunk::poll_events() const {
  return POLLIN;
}

void SipTrunk::handle_io(short) {
  for (Report& r : impl_->shared->inbox.take()) {
    if (r.kind == Report::Kind::registration) {
      impl_->apply_registration(r);
      continue;
    }
    if (r.slot < impl_->channels.size()) impl_->channels[r.slot]->apply(r);
  }
}

int64_t SipTrunk::next_deadline_us() const {
  int64_t next = -1;
  for (auto& c : impl_->channels) {
    const int64_t d = c->next_deadline_us();
    if (d >= 0 && (next < 0 || d < next)) next = d;
  }
  return next;
}

void SipTrunk::handle_timer() {
  for (auto& c : impl_->channels) c->handle_timer();
}

}  // namespace osvi::hal
