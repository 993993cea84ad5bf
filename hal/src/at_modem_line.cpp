// AtModemLine: AT command queue, modem init, call tracking and reopen-with-backoff on a serial tty.
#include "osvi/hal/at_modem_line.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace osvi::hal {
namespace {

speed_t baud_constant(unsigned baud) {
  switch (baud) {
    case 9600:
      return B9600;
    case 19200:
      return B19200;
    case 38400:
      return B38400;
    case 57600:
      return B57600;
    case 230400:
      return B230400;
    case 460800:
      return B460800;
    case 921600:
      return B921600;
    default:
      return B115200;
  }
}

std::string errno_text(int e) {
  return std::strerror(e);
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "+CGMR: LE11B14SIM7600M22" -> "LE11B14SIM7600M22"; "Revision: EC25EFAR06A06M4G" -> "EC25EFAR06A06M4G".
std::string value_after_colon(const std::string& line) {
  auto c = line.find(':');
  if (c == std::string::npos) return line;
  std::string v = line.substr(c + 1);
  while (!v.empty() && v.front() == ' ') v.erase(v.begin());
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  return v;
}

std::string first_line(const std::vector<std::string>& lines) {
  return lines.empty() ? std::string() : value_after_colon(lines.front());
}

// The first number of an AT+CNUM answer (3GPP TS 27.007 §7.1):
//   +CNUM: [<alpha1>],<number1>,<type1>[,<speed>,<service>[,<itc>]]
// one line per number. <alpha> is a quoted phonebook text that may hold commas, so it is skipped as a
// quoted string, not split on. Type 145 is international: a module that drops the "+" gets it back.
// Empty when no line carries a number.
std::string own_number_of(const std::vector<std::string>& lines) {
  for (const std::string& line : lines) {
    if (line.rfind("+CNUM:", 0) != 0) continue;
    std::string_view rest(line);
    rest.remove_prefix(6);
    auto skip_spaces = [&rest] {
      while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    };
    // One field: a quoted string (its quotes removed) or bare text up to the next comma.
    auto field = [&rest, &skip_spaces]() -> std::optional<std::string> {
      skip_spaces();
      std::string out;
      if (!rest.empty() && rest.front() == '"') {
        const size_t close = rest.find('"', 1);
        if (close == std::string_view::npos) return std::nullopt;
        out = std::string(rest.substr(1, close - 1));
        rest.remove_prefix(close + 1);
        skip_spaces();
      } else {
        const size_t comma = rest.find(',');
        out = std::string(rest.substr(0, comma));
        rest.remove_prefix(comma == std::string_view::npos ? rest.size() : comma);
        while (!out.empty() && out.back() == ' ') out.pop_back();
      }
      if (!rest.empty()) {
        if (rest.front() != ',') return std::nullopt;
        rest.remove_prefix(1);
      }
      return out;
    };
    const auto alpha = field();
    const auto number = field();
    const auto type = field();
    if (!alpha || !number || number->empty()) continue;
    std::string n = *number;
    if (type && *type == "145" && n.front() != '+') n.insert(n.begin(), '+');
    return n;
  }
  return {};
}

std::string registration_name(int stat) {
  switch (stat) {
    case 1:
      return "home";
    case 5:
      return "roaming";
    case 2:
      return "searching";
    case 3:
      return "denied";
    case 0:
      return "not searching";
    default:
      return "unknown";
  }
}

// Why a PCM tty cannot be used, or "" when it looks usable. stat() and access() only: opening a modem's
// audio port outside a call can upset its firmware, and the engine reports a failing open at call time.
std::string tty_problem(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "audio tty " + path + ": " + errno_text(errno);
  if (!S_ISCHR(st.st_mode)) return "audio tty " + path + " is not a character device";
  if (::access(path.c_str(), R_OK | W_OK) != 0) return "audio tty " + path + ": " + errno_text(errno);
  return {};
}

}  // namespace

std::string_view to_string(ModemVendor v) {
  switch (v) {
    case ModemVendor::quectel_ec25:
      return "quectel_ec25";
    case ModemVendor::simcom_sim7600:
      return "simcom_sim7600";
    case ModemVendor::generic:
      break;
  }
  return "generic";
}

std::string AtModemLine::Response::why() const {
  if (timed_out) return "no answer from the modem (timeout)";
  return final_text.empty() ? std::string(to_string(final)) : final_text;
}

AudioEndpoint::Kind at_audio_kind(const AtModemOptions& o) {
  if (o.vendor == ModemVendor::quectel_ec25) return AudioEndpoint::Kind::alsa;
  if (o.vendor == ModemVendor::simcom_sim7600) return AudioEndpoint::Kind::tty;
  // Generic: a path is a PCM tty (raw s16le), anything else an ALSA PCM name.
  if (o.audio_device.empty()) return AudioEndpoint::Kind::none;
  return o.audio_device.front() == '/' ? AudioEndpoint::Kind::tty : AudioEndpoint::Kind::alsa;
}

AtModemLine::AtModemLine(AtModemOptions options, const Clock& clock)
    : opt_(std::move(options)), clock_(clock) {
  for (const std::string& v : opt_.vendor_finals) parser_.add_vendor_final(v);
  audio_.clockless = opt_.audio_clockless;
  audio_.kind = at_audio_kind(opt_);
  if (opt_.vendor == ModemVendor::quectel_ec25) {
    audio_.device = opt_.audio_device.empty() ? "plughw:CARD=OsviEC25,DEV=0" : opt_.audio_device;
  } else if (opt_.vendor == ModemVendor::simcom_sim7600) {
    audio_.device = opt_.audio_device.empty() ? "/dev/osvi-sim7600-audio" : opt_.audio_device;
  } else if (!opt_.audio_device.empty()) {
    // Generic: narrowband either way, flowing as soon as the call is active (no vendor command to enable it).
    audio_.device = opt_.audio_device;
    audio_.sample_rate = 8000;
  }
}

AtModemLine::~AtModemLine() = default;

Status AtModemLine::start() {
  if (opt_.device.empty()) return make_error("line " + opt_.id + ": no device configured");
  open_device();
  return {};
}

void AtModemLine::post(LineEvent e) {
  posted_.push_back(std::move(e));
}

bool AtModemLine::in_call() const {
  return call_.has_value();
}

// --- device ------------------------------------------------------------------------------------------------

void AtModemLine::open_device() {
  reopen_deadline_ = -1;
  ++generation_;
  int fd = ::open(opt_.device.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    reason_ = "cannot open " + opt_.device + ": " + errno_text(e);
    state_ = LineState::down;
    settled_ = true;
    schedule_reopen();
    return;
  }
  UniqueFd owned(fd);
  termios tio{};
  if (tcgetattr(fd, &tio) != 0) {
    reason_ = opt_.device + " is not a serial tty: " + errno_text(errno);
    state_ = LineState::down;
    settled_ = true;
    schedule_reopen();
    return;
  }
  cfmakeraw(&tio);
  tio.c_cflag |= CLOCAL | CREAD;
  // VMIN=1: with VMIN=0 an empty read returns 0, which would be indistinguishable from the hang-up EOF;
  // O_NONBLOCK makes it EAGAIN instead.
  tio.c_cc[VMIN] = 1;
  tio.c_cc[VTIME] = 0;
  cfsetispeed(&tio, baud_constant(opt_.baud));
  cfsetospeed(&tio, baud_constant(opt_.baud));
  if (tcsetattr(fd, TCSANOW, &tio) != 0) {
    reason_ = "cannot configure " + opt_.device + ": " + errno_text(errno);
    state_ = LineState::down;
    settled_ = true;
    schedule_reopen();
    return;
  }
  tcflush(fd, TCIOFLUSH);
  fd_ = std::move(owned);
  parser_ = AtParser();
  for (const std::string& v : opt_.vendor_finals) parser_.add_vendor_final(v);
  out_.clear();
  queue_.clear();
  inflight_.reset();
  inflight_deadline_ = -1;
  reason_ = "initialising the modem";
  run_init();
}

void AtModemLine::schedule_reopen() {
  backoff_ms_ = backoff_ms_ == 0 ? opt_.reopen_min_ms : std::min(backoff_ms_ * 2, opt_.reopen_max_ms);
  reopen_deadline_ = now() + backoff_ms_ * 1000;
}

void AtModemLine::lost(const std::string& why) {
  fd_.reset();
  queue_.clear();
  fail_probes("modem lost: " + why);
  inflight_.reset();
  inflight_deadline_ = -1;
  poll_deadline_ = ring_deadline_ = pcm_deadline_ = -1;
  out_.clear();
  ++generation_;
  if (call_) {
    // The call cannot survive its modem: the call engine records it as failed, with the reason.
    post(LineEvent{LineEvent::Type::failed, call_->number, 0, "modem lost during the call: " + why});
    call_.reset();
  }
  audio_.ready = false;
  const bool news = state_ != LineState::down || !settled_;
  state_ = LineState::down;
  reason_ = "modem lost: " + why;
  settled_ = true;
  if (news) post(LineEvent{LineEvent::Type::down, {}, 0, reason_});
  schedule_reopen();
}

short AtModemLine::poll_events() const {
  if (!fd_.valid()) return 0;
  return static_cast<short>(POLLIN | (out_.empty() ? 0 : POLLOUT));
}

void AtModemLine::handle_io(short revents) {
  if (!fd_.valid()) return;
  if (revents & (POLLIN | POLLHUP | POLLERR)) read_input();
  if (fd_.valid() && (revents & POLLOUT)) flush_out();
  if (fd_.valid() && (revents & (POLLHUP | POLLERR)) && !(revents & POLLIN))
    lost("hang-up on " + opt_.device);
  handle_timer();  // delivers what the input produced
}

void AtModemLine::read_input() {
  char buf[1024];
  for (;;) {
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n > 0) {
      last_rx_us_ = now();
      parser_.feed(std::string_view(buf, static_cast<size_t>(n)));
      process_lines();
      if (!fd_.valid()) return;
      continue;
    }
    if (n == 0) {
      lost("end of file on " + opt_.device);
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    lost(errno_text(errno) + " on " + opt_.device);
    return;
  }
}

void AtModemLine::flush_out() {
  while (!out_.empty() && fd_.valid()) {
    ssize_t n = ::write(fd_.get(), out_.data(), out_.size());
    if (n > 0) {
      out_.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    lost(errno_text(errno) + " writing to " + opt_.device);
    return;
  }
}

// --- command queue -----------------------------------------------------------------------------------------

void AtModemLine::enqueue(std::string text, int64_t timeout_ms, std::function<void(const Response&)> done) {
  if (!fd_.valid()) return;
  queue_.push_back(Command{std::move(text), timeout_ms, std::move(done)});
  if (!inflight_) send_next();
}

void AtModemLine::send_next() {
  if (inflight_ || queue_.empty() || !fd_.valid()) return;
  inflight_ = std::move(queue_.front());
  queue_.pop_front();
  pending_ = Response{};
  parser_.begin_command(inflight_->text);
  inflight_deadline_ = now() + inflight_->timeout_ms * 1000;
  out_ += inflight_->text;
  out_ += '\r';
  flush_out();
}

void AtModemLine::finish_command(Response r) {
  if (!inflight_) return;
  Command c = std::move(*inflight_);
  inflight_.reset();
  inflight_deadline_ = -1;
  const uint64_t gen = generation_;
  if (c.done) c.done(r);
  if (gen == generation_) send_next();
}

void AtModemLine::process_lines() {
  const uint64_t gen = generation_;
  while (auto l = parser_.next()) {
    if (gen != generation_) return;
    switch (l->kind) {
      case AtLineKind::echo:
        break;
      case AtLineKind::intermediate:
        if (inflight_) pending_.lines.push_back(l->text);
        break;
      case AtLineKind::final: {
        Response r = std::move(pending_);
        pending_ = Response{};
        r.final = l->final;
        r.final_text = l->text;
        finish_command(std::move(r));
        break;
      }
      case AtLineKind::unsolicited:
        on_unsolicited(*l);
        break;
    }
  }
}

// --- probe (POST /v1/lines/{id}/test)
// ------------------------------------------------------------------------

struct AtModemLine::ProbeState {
  LineProbe probe;
  ProbeDone done;
};

Status AtModemLine::probe(ProbeDone done) {
  if (!fd_.valid() || state_ == LineState::down)
    return make_error("line " + opt_.id + " is down: " + reason_, -ENODEV);
  // +CSQ and friends do not disturb a call, but a call's own commands (+CLCC polls, hang-up) must not wait
  // behind seven diagnostics.
  if (call_ || state_ != LineState::idle)
    return make_error("line " + opt_.id + " is busy (" + std::string(to_string(state_)) + ")", -EBUSY);
  auto st = std::make_shared<ProbeState>();
  st->done = std::move(done);
  probes_.push_back(st);
  const int64_t t = opt_.command_timeout_ms;
  auto failed = [st](const std::string& cmd, const Response& r) {
    if (!r.ok()) st->probe.failures.push_back(cmd + ": " + r.why());
    return !r.ok();
  };
  enqueue("AT+CGMI", t, [st, failed](const Response& r) {
    if (!failed("AT+CGMI", r)) st->probe.manufacturer = first_line(r.lines);
  });
  enqueue("AT+CGMM", t, [st, failed](const Response& r) {
    if (!failed("AT+CGMM", r)) st->probe.model = first_line(r.lines);
  });
  enqueue("AT+CGMR", t, [st, failed](const Response& r) {
    if (!failed("AT+CGMR", r)) st->probe.revision = first_line(r.lines);
  });
  enqueue("AT+CGSN", t, [st, failed](const Response& r) {
    if (failed("AT+CGSN", r)) return;
    for (const std::string& l : r.lines)
      if (std::string v = value_after_colon(l); all_digits(v)) st->probe.imei = v;
  });
  enqueue("AT+CSQ", t, [st, failed](const Response& r) {
    if (failed("AT+CSQ", r)) return;
    // +CSQ: <rssi>,<ber>
    for (const std::string& l : r.lines) {
      if (l.rfind("+CSQ:", 0) != 0) continue;
      const std::string v = value_after_colon(l);
      const auto comma = v.find(',');
      const int rssi = std::atoi(v.substr(0, comma).c_str());
      const int ber = comma == std::string::npos ? 99 : std::atoi(v.substr(comma + 1).c_str());
      if (rssi >= 0 && rssi <= 31) st->probe.rssi = rssi;
      if (ber >= 0 && ber <= 7) st->probe.ber = ber;
    }
  });
  enqueue("AT+CREG?", t, [st, failed](const Response& r) {
    if (failed("AT+CREG?", r)) return;
    for (const std::string& l : r.lines)
      if (auto s = parse_reg_stat(l, true)) st->probe.cs_registration = registration_name(*s);
  });
  enqueue("AT+CEREG?", t, [this, st, failed](const Response& r) {
    if (!failed("AT+CEREG?", r)) {
      for (const std::string& l : r.lines)
        if (auto s = parse_reg_stat(l, true)) st->probe.eps_registration = registration_name(*s);
    }
    // The answers refresh what health shows, as the start-up ones did (LTE registration wins).
    if (!st->probe.manufacturer.empty()) identity_.manufacturer = st->probe.manufacturer;
    if (!st->probe.model.empty()) identity_.model = st->probe.model;
    if (!st->probe.revision.empty()) identity_.firmware = st->probe.revision;
    if (!st->probe.imei.empty()) identity_.imei = st->probe.imei;
    const std::string& eps = st->probe.eps_registration;
    if (eps == "home" || eps == "roaming")
      identity_.registration = eps;
    else if (!st->probe.cs_registration.empty())
      identity_.registration = st->probe.cs_registration;
    probes_.erase(std::remove(probes_.begin(), probes_.end(), st), probes_.end());
    if (st->done) {
      auto finish = std::move(st->done);
      finish(st->probe);
    }
  });
  return {};
}

void AtModemLine::fail_probes(const std::string& why) {
  auto waiting = std::move(probes_);
  probes_.clear();
  for (auto& st : waiting) {
    if (!st->done) continue;
    auto finish = std::move(st->done);
    finish(make_error(why, -ENODEV));
  }
}

// --- init --------------------------------------------------------------------------------------------------

void AtModemLine::run_init() {
  const uint64_t gen = generation_;
  auto alive = [this, gen] { return gen == generation_; };
  const int64_t t = opt_.command_timeout_ms;
  identity_ = LineIdentity{};
  enqueue("ATE0", t, [this, alive](const Response& r) {
    if (!alive() || r.ok()) return;
    // A modem that does not answer the first command is not usable: close and try again later.
    const std::string why = "modem does not answer AT on " + opt_.device + ": " + r.why();
    fd_.reset();
    queue_.clear();
    fail_probes(why);
    ++generation_;
    state_ = LineState::down;
    // The first failure settles the line (the daemon's READY waits for it); a repeat is not news.
    const bool announce = !settled_ || reason_ != why;
    reason_ = why;
    settled_ = true;
    if (announce) post(LineEvent{LineEvent::Type::down, {}, 0, reason_});
    schedule_reopen();
  });
  enqueue("AT+CMEE=2", t);
  enqueue("AT+CLIP=1", t);
  enqueue("AT+CRC=1", t);
  enqueue("AT+CGMI", t, [this](const Response& r) {
    if (r.ok()) identity_.manufacturer = first_line(r.lines);
  });
  enqueue("AT+CGMM", t, [this](const Response& r) {
    if (r.ok()) identity_.model = first_line(r.lines);
  });
  enqueue("AT+CGSN", t, [this](const Response& r) {
    if (!r.ok()) return;
    for (const std::string& l : r.lines) {
      std::string v = value_after_colon(l);
      if (all_digits(v)) identity_.imei = v;
    }
  });
  enqueue("AT+CGMR", t, [this, t](const Response& r) {
    if (r.ok() && !r.lines.empty()) {
      identity_.firmware = first_line(r.lines);
      return;
    }
    enqueue("ATI", t, [this](const Response& ri) {
      for (const std::string& l : ri.lines)
        if (l.rfind("Revision:", 0) == 0) identity_.firmware = value_after_colon(l);
    });
  });
  // The line's own number: many SIMs store none and some modules refuse the command; either way it stays
  // unknown (an ERROR here is not a reason to call the modem broken).
  enqueue("AT+CNUM", t, [this](const Response& r) {
    if (r.ok()) identity_.own_number = own_number_of(r.lines);
  });
  enqueue("AT+CREG?", t, [this](const Response& r) {
    for (const std::string& l : r.lines)
      if (auto s = parse_reg_stat(l, true)) identity_.registration = registration_name(*s);
  });
  enqueue("AT+CEREG?", t, [this](const Response& r) {
    // LTE registration wins over circuit-switched "searching": VoLTE-only networks report it here.
    for (const std::string& l : r.lines)
      if (auto s = parse_reg_stat(l, true); s && (*s == 1 || *s == 5))
        identity_.registration = registration_name(*s);
  });
  audio_problem_.clear();
  if (opt_.vendor == ModemVendor::quectel_ec25) {
    enqueue("AT+QPCMV=1,2", t, [this](const Response& r) {
      if (r.ok()) return;
      audio_problem_ = "the EC25 firmware refused AT+QPCMV=1,2 (" + r.why() +
                       "): no USB audio class voice; flash a UAC-capable firmware or enable it with "
                       "AT+QCFG=\"USBCFG\"";
    });
  } else if (opt_.vendor == ModemVendor::generic && audio_.kind == AudioEndpoint::Kind::none) {
    audio_problem_ =
        "no audio_device configured: the generic AT profile carries call audio only on a configured ALSA PCM "
        "or PCM tty";
  }
  if (audio_.kind == AudioEndpoint::Kind::tty && audio_problem_.empty())
    audio_problem_ = tty_problem(audio_.device);
  if (opt_.vendor == ModemVendor::simcom_sim7600) {
    audio_.sample_rate = 8000;
    if (opt_.pcm_16k) {
      enqueue("AT+CPCMFRM=1", t, [this](const Response& r) {
        if (r.ok()) audio_.sample_rate = 16000;
      });
    }
  }
  enqueue("AT", t, [this, alive](const Response& r) {
    if (!alive()) return;
    if (!r.ok()) return lost("modem stopped answering during init: " + r.why());
    backoff_ms_ = 0;
    audio_.error = audio_problem_;
    audio_.unavailable = audio_problem_;
    audio_.stalled = false;
    state_ = LineState::idle;
    reason_ = audio_problem_.empty() ? std::string() : "audio unavailable: " + audio_problem_;
    settled_ = true;
    post(LineEvent{LineEvent::Type::up, {}, 0, reason_});
  });
}

// --- unsolicited codes and call tracking -------------------------------------------------------------------

void AtModemLine::on_unsolicited(const AtLine& l) {
  const std::string& s = l.text;
  if (l.call_progress) return on_call_progress(*l.call_progress, s);
  if (s == "RING" || s.rfind("+CRING:", 0) == 0) {
    if (state_ == LineState::idle && !call_) {
      call_ = Call{};
      state_ = LineState::ringing;
      poll_deadline_ = now() + opt_.poll_interval_ms * 1000;
    }
    if (call_ && state_ == LineState::ringing && !call_->outbound) {
      ++call_->rings;
      // Caller id normally follows the first RING; without it by the second, the number is withheld.
      if (!call_->incoming_reported && call_->rings >= 2) {
        call_->incoming_reported = true;
        post(LineEvent{LineEvent::Type::incoming, {}, 0, {}});
      }
    }
    return;
  }
  if (auto number = parse_clip(s)) {
    if (state_ == LineState::idle && !call_) {
      call_ = Call{};
      state_ = LineState::ringing;
      poll_deadline_ = now() + opt_.poll_interval_ms * 1000;
    }
    if (call_ && !call_->outbound && !call_->incoming_reported) {
      call_->incoming_reported = true;
      call_->number = *number;
      post(LineEvent{LineEvent::Type::incoming, *number, 0, {}});
    }
    return;
  }
  if (s.rfind("VOICE CALL: BEGIN", 0) == 0) {
    if (call_ && !call_->answered && (call_->outbound || state_ == LineState::active)) on_connected();
    return;
  }
  if (s.rfind("VOICE CALL: END", 0) == 0 || s.rfind("MISSED_CALL:", 0) == 0) {
    if (!call_ || state_ == LineState::ending) return;
    if (call_->answered || !call_->outbound)
      end_call(LineEvent::Type::remote_hangup, "remote side hung up (" + s + ")");
    else
      end_call(LineEvent::Type::failed, s);
    return;
  }
  if (s.rfind("+RXDTMF:", 0) == 0 || s.rfind("+DTMF:", 0) == 0) {
    std::string v = value_after_colon(s);
    if (!v.empty() && is_dtmf(v.substr(0, 1))) post(LineEvent{LineEvent::Type::dtmf, {}, v[0], {}});
    return;
  }
  if (s.rfind("+QTONEDET:", 0) == 0) {
    // Quectel reports the digit as its ASCII code.
    int code = std::atoi(value_after_colon(s).c_str());
    if (code > 0 && code < 128 && is_dtmf(std::string(1, static_cast<char>(code))))
      post(LineEvent{LineEvent::Type::dtmf, {}, static_cast<char>(code), {}});
    return;
  }
  if (auto st = parse_reg_stat(s, false); st && (s.rfind("+CREG:", 0) == 0 || s.rfind("+CEREG:", 0) == 0)) {
    identity_.registration = registration_name(*st);
  }
}

void AtModemLine::on_call_progress(AtFinal f, const std::string& text) {
  if (!call_ || state_ == LineState::ending) return;
  if (call_->answered || (!call_->outbound && f == AtFinal::no_carrier)) {
    end_call(LineEvent::Type::remote_hangup, "remote side hung up (" + text + ")");
    return;
  }
  const std::optional<CallOutcome> o = outcome_for_final(f, false);
  if (!o) return;
  if (*o == CallOutcome::busy) return end_call(LineEvent::Type::busy, text);
  if (*o == CallOutcome::not_picked) return end_call(LineEvent::Type::no_answer, text);
  if (*o == CallOutcome::picked) return on_connected();
  end_call(LineEvent::Type::failed, text);
}

void AtModemLine::on_connected() {
  if (!call_ || call_->answered) return;
  call_->answered = true;
  state_ = LineState::active;
  ring_deadline_ = -1;
  poll_deadline_ = now() + opt_.poll_interval_ms * 1000;
  post(LineEvent{LineEvent::Type::answered, call_->number, 0, {}});
  if (opt_.vendor == ModemVendor::simcom_sim7600) {
    // The module drops PCM registration requested before the voice channel is up: wait a little.
    pcm_deadline_ = now() + opt_.pcm_enable_delay_ms * 1000;
  } else if (audio_.kind != AudioEndpoint::Kind::none && audio_problem_.empty()) {
    // EC25 (UAC voice enabled at init) and generic lines: the PCM flows once the call is active.
    audio_.ready = true;
    audio_.stalled = false;
    audio_.error.clear();
    post(LineEvent{LineEvent::Type::audio, {}, 0, {}});
  }
}

void AtModemLine::end_call(LineEvent::Type type, std::string reason) {
  if (!call_) return;
  state_ = LineState::ending;
  ring_deadline_ = pcm_deadline_ = poll_deadline_ = -1;
  const uint64_t gen = generation_;
  const int64_t t = opt_.command_timeout_ms;
  LineEvent e{type, call_->number, 0, std::move(reason)};
  if (call_->pcm_enabled) enqueue("AT+CPCMREG=0", t);
  if (type == LineEvent::Type::failed && ceer_supported_) {
    enqueue("AT+CEER", t, [this, gen, e](const Response& r) mutable {
      if (gen != generation_) return;
      if (r.ok()) {
        for (const std::string& l : r.lines) {
          std::string v = value_after_colon(l);
          if (!v.empty()) e.reason += "; " + v;
        }
      } else if (r.final == AtFinal::error) {
        ceer_supported_ = false;
      }
      finish_to_idle(std::move(e));
    });
    return;
  }
  if (!fd_.valid()) return finish_to_idle(std::move(e));
  enqueue("AT", t, [this, gen, e](const Response&) mutable {
    if (gen == generation_) finish_to_idle(std::move(e));
  });
}

void AtModemLine::finish_to_idle(LineEvent e) {
  call_.reset();
  audio_.ready = false;
  if (state_ != LineState::down) state_ = LineState::idle;
  post(std::move(e));
}

void AtModemLine::poll_calls() {
  poll_deadline_ = -1;
  if (!call_ || state_ == LineState::ending) return;
  const uint64_t gen = generation_;
  enqueue("AT+CLCC", opt_.command_timeout_ms, [this, gen](const Response& r) {
    if (gen != generation_) return;
    on_clcc(r);
    if (call_ && state_ != LineState::ending) poll_deadline_ = now() + opt_.poll_interval_ms * 1000;
  });
}

void AtModemLine::on_clcc(const Response& r) {
  if (!call_ || state_ == LineState::ending || !r.ok()) return;
  std::vector<ClccEntry> voice;
  for (const std::string& l : r.lines)
    if (auto e = parse_clcc(l); e && e->mode == 0) voice.push_back(*e);
  const ClccEntry* ours = nullptr;
  const ClccEntry* other = nullptr;
  for (const ClccEntry& e : voice) {
    if (call_->index < 0 && e.incoming != call_->outbound) call_->index = e.index;
    if (e.index == call_->index)
      ours = &e;
    else if (!e.incoming)
      other = &e;
  }
  if (call_->xfer_dialled && other) {
    // Blind: transfer once the target rings; attended: once it answered.
    if (other->stat == 0 || (!call_->xfer_attended && other->stat == 3)) {
      call_->xfer_dialled = false;
      const uint64_t gen = generation_;
      enqueue("AT+CHLD=4", opt_.command_timeout_ms, [this, gen](const Response& x) {
        if (gen != generation_) return;
        if (!x.ok()) return transfer_failed("explicit call transfer refused: " + x.why());
        const std::string to = call_ ? call_->xfer_number : std::string();
        call_.reset();
        audio_.ready = false;
        state_ = LineState::idle;
        poll_deadline_ = -1;
        post(LineEvent{LineEvent::Type::transferred, to, 0, {}});
      });
    }
  }
  if (!ours) {
    if (call_->seen_in_list || ++call_->empty_polls >= 3) {
      if (call_->answered || !call_->outbound)
        end_call(LineEvent::Type::remote_hangup, "the call is gone from the module's call list");
      else
        end_call(LineEvent::Type::failed, "the call ended without a result code");
    }
    return;
  }
  call_->seen_in_list = true;
  if (call_->number.empty()) call_->number = ours->number;
  switch (ours->stat) {
    case 0:
      if (!call_->answered && call_->outbound) on_connected();
      break;
    case 2:
      if (!call_->answered) state_ = LineState::dialing;
      break;
    case 3:
      if (!call_->answered) state_ = LineState::alerting;
      break;
    default:
      break;
  }
}

void AtModemLine::transfer_failed(const std::string& why) {
  if (call_) {
    call_->xfer_number.clear();
    call_->xfer_dialled = false;
  }
  // Take the held caller back so the agent can say the transfer did not work.
  enqueue("AT+CHLD=1", opt_.command_timeout_ms);
  post(LineEvent{LineEvent::Type::transfer_failed, {}, 0, why});
}

// --- actions -----------------------------------------------------------------------------------------------

Status AtModemLine::dial(std::string_view e164) {
  if (state_ != LineState::idle || call_)
    return make_error("line " + opt_.id + " is " + std::string(to_string(state_)), -EBUSY);
  if (!is_e164(e164)) return make_error("not an E.164 number: \"" + std::string(e164) + "\"");
  call_ = Call{};
  call_->outbound = true;
  call_->number = std::string(e164);
  state_ = LineState::dialing;
  ring_deadline_ = now() + opt_.ring_timeout_ms * 1000;
  const uint64_t gen = generation_;
  enqueue("ATD" + call_->number + ";", opt_.dial_timeout_ms, [this, gen](const Response& r) {
    if (gen != generation_ || !call_ || state_ == LineState::ending) return;
    if (r.timed_out) return end_call(LineEvent::Type::failed, "ATD: " + r.why());
    if (r.final == AtFinal::ok) {
      // Proceeding: the module reports progress through +CLCC (and URCs on some firmware).
      if (poll_deadline_ < 0) poll_deadline_ = now() + opt_.poll_interval_ms * 1000;
      return;
    }
    on_call_progress(r.final, r.final_text);
  });
  return {};
}

Status AtModemLine::answer() {
  if (state_ != LineState::ringing || !call_ || call_->outbound)
    return make_error("line " + opt_.id + ": no incoming call to answer", -EINVAL);
  const uint64_t gen = generation_;
  enqueue("ATA", opt_.dial_timeout_ms, [this, gen](const Response& r) {
    if (gen != generation_ || !call_ || state_ == LineState::ending) return;
    if (r.ok() || r.final == AtFinal::connect) {
      call_->outbound = false;
      // on_connected() only acts on unanswered calls: mark it ours, answered now.
      on_connected();
      return;
    }
    if (r.final == AtFinal::no_carrier)
      return end_call(LineEvent::Type::remote_hangup, "caller hung up before the answer");
    end_call(LineEvent::Type::failed, "ATA: " + r.why());
  });
  return {};
}

Status AtModemLine::hangup() {
  if (!call_ || state_ == LineState::ending)
    return make_error("line " + opt_.id + ": no call to hang up", -EINVAL);
  state_ = LineState::ending;
  ring_deadline_ = pcm_deadline_ = poll_deadline_ = -1;
  const uint64_t gen = generation_;
  const int64_t t = opt_.command_timeout_ms;
  if (call_->pcm_enabled) enqueue("AT+CPCMREG=0", t);
  enqueue("AT+CHUP", t, [this, gen, t](const Response& r) {
    if (gen != generation_) return;
    LineEvent e{LineEvent::Type::hung_up, call_ ? call_->number : std::string(), 0, {}};
    if (r.ok()) return finish_to_idle(std::move(e));
    // Older firmware knows only ATH.
    enqueue("ATH", t, [this, gen, e](const Response&) mutable {
      if (gen == generation_) finish_to_idle(std::move(e));
    });
  });
  return {};
}

Status AtModemLine::send_dtmf(std::string_view digits) {
  if (state_ != LineState::active) return make_error("line " + opt_.id + ": no active call", -EINVAL);
  if (!is_dtmf(digits)) return make_error("not DTMF digits: \"" + std::string(digits) + "\"");
  for (char d : digits) enqueue(std::string("AT+VTS=") + d, opt_.command_timeout_ms);
  return {};
}

Status AtModemLine::transfer_blind(std::string_view e164) {
  if (!is_e164(e164)) return make_error("not an E.164 number: \"" + std::string(e164) + "\"");
  if (state_ == LineState::ringing && call_ && !call_->outbound) {
    // Not answered yet: deflect (27.007 +CTFR); the call never reaches us.
    const uint64_t gen = generation_;
    const std::string to(e164);
    enqueue("AT+CTFR=" + to, opt_.command_timeout_ms, [this, gen, to](const Response& r) {
      if (gen != generation_) return;
      if (!r.ok()) return post(LineEvent{LineEvent::Type::transfer_failed, {}, 0, "AT+CTFR: " + r.why()});
      call_.reset();
      state_ = LineState::idle;
      poll_deadline_ = -1;
      post(LineEvent{LineEvent::Type::transferred, to, 0, {}});
    });
    return {};
  }
  return transfer_attended_impl(e164, false);
}

Status AtModemLine::transfer_attended(std::string_view e164) {
  if (!is_e164(e164)) return make_error("not an E.164 number: \"" + std::string(e164) + "\"");
  return transfer_attended_impl(e164, true);
}

Status AtModemLine::transfer_attended_impl(std::string_view e164, bool attended) {
  if (state_ != LineState::active || !call_)
    return make_error("line " + opt_.id + ": no active call to transfer", -EINVAL);
  if (!call_->xfer_number.empty())
    return make_error("line " + opt_.id + ": a transfer is already in progress", -EBUSY);
  call_->xfer_number = std::string(e164);
  call_->xfer_attended = attended;
  const uint64_t gen = generation_;
  const int64_t t = opt_.command_timeout_ms;
  enqueue("AT+CHLD=2", t, [this, gen](const Response& r) {
    if (gen != generation_ || !call_) return;
    if (!r.ok()) return transfer_failed("hold refused: " + r.why());
    enqueue("ATD" + call_->xfer_number + ";", opt_.dial_timeout_ms, [this, gen](const Response& d) {
      if (gen != generation_ || !call_) return;
      if (!d.ok()) return transfer_failed("dialling the transfer target failed: " + d.why());
      call_->xfer_dialled = true;
    });
  });
  return {};
}

void AtModemLine::report_audio_stalled(std::string reason) {
  audio_.stalled = true;
  audio_.ready = false;
  audio_.error = std::move(reason);
  if (opt_.vendor == ModemVendor::simcom_sim7600)
    audio_.error += " (the SIM7600 audio tty needs a USB reset)";
  post(LineEvent{LineEvent::Type::audio, {}, 0, audio_.error});
}

// --- time --------------------------------------------------------------------------------------------------

int64_t AtModemLine::next_deadline_us() const {
  if (!posted_.empty()) return now();
  int64_t d = -1;
  auto take = [&d](int64_t t) {
    if (t >= 0 && (d < 0 || t < d)) d = t;
  };
  take(inflight_deadline_);
  take(poll_deadline_);
  take(ring_deadline_);
  take(pcm_deadline_);
  take(reopen_deadline_);
  if (parser_.has_partial()) take(last_rx_us_ + opt_.quiet_flush_ms * 1000);
  return d;
}

void AtModemLine::handle_timer() {
  const int64_t t = now();
  if (reopen_deadline_ >= 0 && t >= reopen_deadline_) open_device();
  if (fd_.valid() && parser_.has_partial() && t >= last_rx_us_ + opt_.quiet_flush_ms * 1000) {
    parser_.flush();
    process_lines();
  }
  if (inflight_deadline_ >= 0 && t >= inflight_deadline_) {
    parser_.abandon_command();
    Response r;
    r.timed_out = true;
    finish_command(std::move(r));
  }
  if (ring_deadline_ >= 0 && t >= ring_deadline_) {
    ring_deadline_ = -1;
    if (call_ && call_->outbound && !call_->answered && state_ != LineState::ending) {
      // Our ring timeout: hang up ourselves and report not_picked.
      const std::string why = "no answer within " + std::to_string(opt_.ring_timeout_ms / 1000) + " s";
      state_ = LineState::ending;
      poll_deadline_ = -1;
      const uint64_t gen = generation_;
      enqueue("AT+CHUP", opt_.command_timeout_ms, [this, gen, why](const Response&) {
        if (gen == generation_) finish_to_idle(LineEvent{LineEvent::Type::no_answer, {}, 0, why});
      });
    }
  }
  if (pcm_deadline_ >= 0 && t >= pcm_deadline_) {
    pcm_deadline_ = -1;
    if (call_ && state_ == LineState::active) {
      const uint64_t gen = generation_;
      enqueue("AT+CPCMREG=1", opt_.command_timeout_ms, [this, gen](const Response& r) {
        if (gen != generation_ || !call_) return;
        if (r.ok()) {
          call_->pcm_enabled = true;
          audio_.ready = true;
          audio_.stalled = false;
          audio_.error.clear();
        } else {
          audio_.error = "AT+CPCMREG=1 refused: " + r.why();
        }
        post(LineEvent{LineEvent::Type::audio, {}, 0, audio_.error});
      });
    }
  }
  if (poll_deadline_ >= 0 && t >= poll_deadline_) poll_calls();
  // Events go out last, after the state they describe is complete; a handler may call actions.
  while (!posted_.empty()) {
    LineEvent e = std::move(posted_.front());
    posted_.pop_front();
    emit(e);
  }
}

}  // namespace osvi::hal
