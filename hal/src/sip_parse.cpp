// Parsers for the SIP bodies the SIP line reads itself: NOTIFY sipfrag status lines and DTMF INFO bodies.
#include "osvi/hal/sip_parse.hpp"

#include <cctype>

namespace osvi::hal {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::string_view first_line(std::string_view body) {
  const size_t eol = body.find('\n');
  return eol == std::string_view::npos ? body : body.substr(0, eol);
}

std::optional<char> digit_of(std::string_view v) {
  v = trim(v);
  if (v == "10") return '*';
  if (v == "11") return '#';
  if (v.size() != 1) return std::nullopt;
  const char c = static_cast<char>(std::toupper(static_cast<unsigned char>(v[0])));
  if ((c >= '0' && c <= '9') || c == '*' || c == '#' || (c >= 'A' && c <= 'D')) return c;
  return std::nullopt;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

}  // namespace

std::optional<SipFragStatus> parse_sipfrag(std::string_view body) {
  std::string_view line = trim(first_line(body));
  constexpr std::string_view kVersion = "SIP/2.0 ";
  if (line.size() < kVersion.size() + 3 || !iequals(line.substr(0, kVersion.size()), kVersion))
    return std::nullopt;
  line.remove_prefix(kVersion.size());
  unsigned code = 0;
  for (size_t i = 0; i < 3; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(line[i]))) return std::nullopt;
    code = code * 10 + static_cast<unsigned>(line[i] - '0');
  }
  if (code < 100 || code > 699) return std::nullopt;
  line.remove_prefix(3);
  if (!line.empty() && line.front() != ' ') return std::nullopt;
  SipFragStatus s;
  s.code = static_cast<uint16_t>(code);
  // Cut to 128 first, then trim: the cut may end on a space.
  line = trim(trim(line).substr(0, 128));
  s.reason.reserve(line.size());
  for (char c : line) s.reason += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
  return s;
}

std::optional<char> parse_dtmf_info(std::string_view body, bool dtmf_relay) {
  if (body.size() > 1024) return std::nullopt;
  if (!dtmf_relay) return digit_of(first_line(body));
  while (!body.empty()) {
    const size_t eol = body.find('\n');
    std::string_view line = eol == std::string_view::npos ? body : body.substr(0, eol);
    body = eol == std::string_view::npos ? std::string_view{} : body.substr(eol + 1);
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    if (iequals(trim(line.substr(0, eq)), "signal")) return digit_of(line.substr(eq + 1));
  }
  return std::nullopt;
}

}  // namespace osvi::hal
