// AtParser: framing, classification and the pure helpers for AT responses (no I/O).
#include "osvi/hal/at_parser.hpp"

#include <array>
#include <cctype>
#include <charconv>

namespace osvi::hal {
namespace {

bool starts_with(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::toupper(static_cast<unsigned char>(a[i])) != std::toupper(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

// URCs a module may send at any time, even in the middle of a response.
constexpr std::array<std::string_view, 26> kUrcPrefixes = {
    "RING",     "+CRING:", "+CLIP:",       "VOICE CALL:",       "+CREG:",  "+CEREG:", "+CGREG:",
    "+CPIN:",   "RDY",     "+CFUN:",       "SMS DONE",          "PB DONE", "+QIND:",  "+CMTI:",
    "+RXDTMF:", "+DTMF:",  "+QTONEDET:",   "MISSED_CALL:",      "+CCWA:",  "+CSSU:",  "+CSSI:",
    "+CUSD:",   "+QIURC:", "POWERED DOWN", "NORMAL POWER DOWN", "+CLCC:"};

bool is_urc(std::string_view line) {
  for (std::string_view p : kUrcPrefixes)
    if (starts_with(line, p)) return true;
  return false;
}

// "+CLCC" of "AT+CLCC", "AT+CREG?", "AT+CPCMREG=1": the prefix the response lines carry.
std::string response_prefix(std::string_view cmd) {
  if (cmd.size() < 3 || !iequal(cmd.substr(0, 2), "AT") || cmd[2] != '+') return {};
  std::string p = "+";
  for (size_t i = 3; i < cmd.size(); ++i) {
    const char c = cmd[i];
    if (c == '=' || c == '?' || c == ';') break;
    p += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return p;
}

bool parse_int(std::string_view s, int* out) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

// Comma-separated fields after "<prefix>: ", quotes kept (a quoted field may hold commas).
std::vector<std::string_view> split_fields(std::string_view rest) {
  std::vector<std::string_view> out;
  size_t start = 0;
  bool quoted = false;
  for (size_t i = 0; i <= rest.size(); ++i) {
    if (i == rest.size() || (rest[i] == ',' && !quoted)) {
      out.push_back(rest.substr(start, i - start));
      start = i + 1;
    } else if (rest[i] == '"') {
      quoted = !quoted;
    }
  }
  return out;
}

std::string_view unquote(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') return s.substr(1, s.size() - 2);
  return s;
}

std::optional<std::string_view> after_colon(std::string_view line, std::string_view prefix) {
  if (!starts_with(line, prefix)) return std::nullopt;
  std::string_view rest = line.substr(prefix.size());
  if (rest.empty() || rest.front() != ':') return std::nullopt;
  rest.remove_prefix(1);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  return rest;
}

}  // namespace

std::string_view to_string(AtFinal f) {
  switch (f) {
    case AtFinal::ok:
      return "OK";
    case AtFinal::error:
      return "ERROR";
    case AtFinal::cme_error:
      return "+CME ERROR";
    case AtFinal::cms_error:
      return "+CMS ERROR";
    case AtFinal::no_carrier:
      return "NO CARRIER";
    case AtFinal::busy:
      return "BUSY";
    case AtFinal::no_answer:
      return "NO ANSWER";
    case AtFinal::no_dialtone:
      return "NO DIALTONE";
    case AtFinal::connect:
      return "CONNECT";
    case AtFinal::vendor_error:
      return "vendor error";
  }
  return "?";
}

AtParser::AtParser() {
  // Finals seen on SIMCom and Quectel firmware in the field, besides the standard set.
  vendor_finals_ = {"COMMAND NOT SUPPORT", "NOT SUPPORT", "ABORTED", "+CME ERROR", "TOO MANY PARAMETERS"};
}

void AtParser::add_vendor_final(std::string prefix) {
  if (!prefix.empty()) vendor_finals_.push_back(std::move(prefix));
}

void AtParser::begin_command(std::string_view command) {
  in_flight_ = true;
  command_ = std::string(command);
  response_prefix_ = response_prefix(command);
  call_setup_ = (command.size() >= 3 && iequal(command.substr(0, 3), "ATD")) || iequal(command, "ATA");
}

void AtParser::abandon_command() {
  in_flight_ = false;
  call_setup_ = false;
  command_.clear();
  response_prefix_.clear();
}

bool AtParser::is_call_progress(AtFinal f) {
  return f == AtFinal::no_carrier || f == AtFinal::busy || f == AtFinal::no_answer ||
         f == AtFinal::no_dialtone;
}

std::optional<AtFinal> AtParser::final_code(std::string_view line, const std::vector<std::string>& vendor) {
  if (line == "OK") return AtFinal::ok;
  if (line == "ERROR") return AtFinal::error;
  if (starts_with(line, "+CME ERROR:")) return AtFinal::cme_error;
  if (starts_with(line, "+CMS ERROR:")) return AtFinal::cms_error;
  if (line == "NO CARRIER") return AtFinal::no_carrier;
  if (line == "BUSY") return AtFinal::busy;
  if (line == "NO ANSWER") return AtFinal::no_answer;
  if (line == "NO DIALTONE" || line == "NO DIAL TONE") return AtFinal::no_dialtone;
  if (line == "CONNECT" || starts_with(line, "CONNECT ")) return AtFinal::connect;
  for (const std::string& v : vendor)
    if (starts_with(line, v)) return AtFinal::vendor_error;
  return std::nullopt;
}

void AtParser::emit_line(std::string_view line) {
  while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  while (!line.empty() && line.back() == ' ') line.remove_suffix(1);
  if (line.empty()) return;
  AtLine out;
  out.text = std::string(line);
  const std::optional<AtFinal> fin = final_code(line, vendor_finals_);
  if (!in_flight_) {
    // Nothing asked: everything is unsolicited; a stray OK/ERROR (a command we gave up on) is harmless.
    out.kind = AtLineKind::unsolicited;
    if (fin && is_call_progress(*fin)) out.call_progress = fin;
  } else if (iequal(line, command_)) {
    out.kind = AtLineKind::echo;
  } else if (fin && (!is_call_progress(*fin) || call_setup_)) {
    out.kind = AtLineKind::final;
    out.final = *fin;
    abandon_command();
  } else if (fin) {
    // BUSY / NO CARRIER while AT+CLCC is in flight belongs to the call, not to the poll.
    out.kind = AtLineKind::unsolicited;
    out.call_progress = fin;
  } else if (!response_prefix_.empty() && starts_with(line, response_prefix_) &&
             line.size() > response_prefix_.size() && line[response_prefix_.size()] == ':') {
    out.kind = AtLineKind::intermediate;
  } else if (is_urc(line) || (line.front() == '+' && line.find(':') != std::string_view::npos)) {
    out.kind = AtLineKind::unsolicited;
  } else {
    out.kind = AtLineKind::intermediate;  // ATI text, bare IMEI digits
  }
  if (out_.size() >= kMaxQueued) out_.pop_front();
  out_.push_back(std::move(out));
}

void AtParser::feed(std::string_view bytes) {
  for (char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\r' || c == '\n') {
      if (!overflowed_) emit_line(partial_);
      partial_.clear();
      overflowed_ = false;
      continue;
    }
    if (c < 0x20 || c >= 0x7f) {
      ++garbage_bytes_;
      continue;
    }
    if (overflowed_) {
      ++garbage_bytes_;
      continue;
    }
    if (partial_.size() >= kMaxLine) {
      garbage_bytes_ += partial_.size() + 1;
      partial_.clear();
      overflowed_ = true;
      continue;
    }
    partial_ += ch;
  }
}

void AtParser::flush() {
  if (!overflowed_) emit_line(partial_);
  partial_.clear();
  overflowed_ = false;
}

std::optional<AtLine> AtParser::next() {
  if (out_.empty()) return std::nullopt;
  AtLine l = std::move(out_.front());
  out_.pop_front();
  return l;
}

std::optional<CallOutcome> outcome_for_final(AtFinal f, bool answered) {
  if (f == AtFinal::ok) return std::nullopt;
  if (answered) return CallOutcome::picked;
  switch (f) {
    case AtFinal::connect:
      return CallOutcome::picked;
    case AtFinal::busy:
      return CallOutcome::busy;
    case AtFinal::no_answer:
      return CallOutcome::not_picked;
    case AtFinal::ok:
      break;
    case AtFinal::no_carrier:
    case AtFinal::error:
    case AtFinal::cme_error:
    case AtFinal::cms_error:
    case AtFinal::no_dialtone:
    case AtFinal::vendor_error:
      return CallOutcome::failed;
  }
  return CallOutcome::failed;
}

std::optional<ClccEntry> parse_clcc(std::string_view line) {
  auto rest = after_colon(line, "+CLCC");
  if (!rest) return std::nullopt;
  auto f = split_fields(*rest);
  if (f.size() < 5) return std::nullopt;
  ClccEntry e;
  int dir = 0;
  if (!parse_int(f[0], &e.index) || !parse_int(f[1], &dir) || !parse_int(f[2], &e.stat) ||
      !parse_int(f[3], &e.mode))
    return std::nullopt;
  if (dir != 0 && dir != 1) return std::nullopt;
  if (e.stat < 0 || e.stat > 7) return std::nullopt;
  e.incoming = dir == 1;
  if (f.size() >= 6) e.number = std::string(unquote(f[5]));
  return e;
}

std::optional<std::string> parse_clip(std::string_view line) {
  auto rest = after_colon(line, "+CLIP");
  if (!rest) return std::nullopt;
  auto f = split_fields(*rest);
  if (f.empty()) return std::nullopt;
  return std::string(unquote(f[0]));
}

std::optional<int> parse_reg_stat(std::string_view line, bool query_answer) {
  std::optional<std::string_view> rest = after_colon(line, "+CREG");
  if (!rest) rest = after_colon(line, "+CEREG");
  if (!rest) rest = after_colon(line, "+CGREG");
  if (!rest) return std::nullopt;
  auto f = split_fields(*rest);
  const size_t i = query_answer ? 1 : 0;
  int stat = 0;
  if (f.size() <= i || !parse_int(f[i], &stat)) return std::nullopt;
  return stat;
}

}  // namespace osvi::hal
