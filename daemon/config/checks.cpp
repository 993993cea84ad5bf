// Configuration: the text checks every section shares (identifiers, E.164, language tags, URLs, listen
// addresses, UTC offsets), private to the config room.
#include "checks.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <string>

#include "osvi/net/text.hpp"
#include "reader.hpp"

namespace osvi::daemon::config_detail {
namespace {

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool is_lower_or_digit(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
}  // namespace

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool all_of(std::string_view s, bool (*pred)(char)) {
  return std::all_of(s.begin(), s.end(), pred);
}

bool is_token_char(char c) {
  return is_alnum(c) || c == '_' || c == '-';
}
bool is_site_char(char c) {
  return is_token_char(c) || c == '.';
}

// ^agent_[A-Za-z0-9_-]{1,64}$
bool is_agent_uuid(std::string_view s) {
  constexpr std::string_view kPrefix = "agent_";
  if (s.substr(0, kPrefix.size()) != kPrefix) return false;
  const std::string_view rest = s.substr(kPrefix.size());
  return !rest.empty() && rest.size() <= 64 && all_of(rest, is_token_char);
}

// ^[a-z][a-z0-9_]{0,max_rest}$: state names and extraction keys, which the model sees and the webhook
// carries.
bool is_identifier(std::string_view s, size_t max_len) {
  if (s.empty() || s.size() > max_len || !(s[0] >= 'a' && s[0] <= 'z')) return false;
  return all_of(s, [](char c) { return is_lower_or_digit(c) || c == '_'; });
}

// ^\+[1-9][0-9]{6,14}$
bool is_e164(std::string_view s) {
  if (s.size() < 8 || s.size() > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9') return false;
  return all_of(s.substr(1), [](char c) { return c >= '0' && c <= '9'; });
}

// BCP 47 as the speech providers use it: "en", "en-IN", "hi-Latn-IN".
bool is_language_tag(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && s[i] >= 'a' && s[i] <= 'z') ++i;
  if (i < 2 || i > 3) return false;
  while (i < s.size()) {
    if (s[i] != '-') return false;
    const size_t start = ++i;
    while (i < s.size() && is_alnum(s[i])) ++i;
    if (i - start < 2 || i - start > 8) return false;
  }
  return true;
}

namespace {
bool is_port(std::string_view s, uint16_t* port) {
  if (s.empty() || s.size() > 5 || !all_of(s, [](char c) { return c >= '0' && c <= '9'; })) return false;
  const long v = std::strtol(std::string(s).c_str(), nullptr, 10);
  if (v < 1 || v > 65535) return false;
  if (port) *port = static_cast<uint16_t>(v);
  return true;
}
}  // namespace

// http:// or https://, a non-empty host (name, IPv4 or [IPv6]) and an optional port; path free.
bool is_http_url(std::string_view s) {
  size_t scheme = 0;
  if (s.substr(0, 7) == "http://") scheme = 7;
  if (s.substr(0, 8) == "https://") scheme = 8;
  if (!scheme) return false;
  if (std::any_of(s.begin(), s.end(), [](char c) { return c <= ' ' || c == 0x7f; })) return false;
  std::string_view authority = s.substr(scheme);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (authority.find('@') != std::string_view::npos) return false;  // credentials belong in api_key
  std::string_view host = authority;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return false;
    host = authority.substr(0, close + 1);
    const std::string_view rest = authority.substr(close + 1);
    if (!rest.empty() && (rest[0] != ':' || !is_port(rest.substr(1), nullptr))) return false;
  } else if (const size_t colon = authority.find(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    if (!is_port(authority.substr(colon + 1), nullptr)) return false;
  }
  return !host.empty() && host != "[]";
}

// "+05:30" -> 330. Real zones span -12:00 to +14:00.
bool parse_utc_offset(std::string_view s, int* minutes) {
  if (s.size() != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':') return false;
  for (size_t i : {1, 2, 4, 5})
    if (s[i] < '0' || s[i] > '9') return false;
  const int h = (s[1] - '0') * 10 + (s[2] - '0');
  const int m = (s[4] - '0') * 10 + (s[5] - '0');
  if (m > 59) return false;
  const int total = (s[0] == '-' ? -1 : 1) * (h * 60 + m);
  if (total < -12 * 60 || total > 14 * 60) return false;
  *minutes = total;
  return true;
}

std::string one_of_text(std::span<const std::string_view> names) {
  std::string out;
  size_t i = 0;
  for (std::string_view n : names) {
    if (i++) out += i == names.size() ? " or " : ", ";
    // append() rather than operator+: GCC 12 -O2 reports a false -Wrestrict on the temporaries.
    out.append(1, '"').append(n).append(1, '"');
  }
  return out;
}

// Parses "host:port"; why names the part that is wrong.
bool parse_listen(std::string_view s, std::string* host, uint16_t* port, std::string* why) {
  std::string_view h, p;
  if (!s.empty() && s[0] == '[') {
    const size_t close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      *why = "expected \"[IPv6]:port\", got " + quote(s);
      return false;
    }
    h = s.substr(0, close + 1);
    p = s.substr(close + 2);
    const std::string inner(h.substr(1, h.size() - 2));
    in6_addr a6{};
    if (inet_pton(AF_INET6, inner.c_str(), &a6) != 1) {
      *why = "host " + quote(h) + " is not an IPv6 address";
      return false;
    }
  } else {
    const size_t colon = s.rfind(':');
    if (colon == std::string_view::npos) {
      *why = "expected \"host:port\", got " + quote(s);
      return false;
    }
    h = s.substr(0, colon);
    p = s.substr(colon + 1);
    if (h.find(':') != std::string_view::npos) {
      *why = "an IPv6 host needs brackets, as in \"[::1]:8080\", got " + quote(s);
      return false;
    }
    in_addr a4{};
    if (h != "localhost" && inet_pton(AF_INET, std::string(h).c_str(), &a4) != 1) {
      *why = "host must be an IPv4 address, an [IPv6] address or \"localhost\", got " + quote(h);
      return false;
    }
  }
  if (!is_port(p, port)) {
    *why = "port must be between 1 and 65535, got " + quote(p);
    return false;
  }
  *host = std::string(h);
  return true;
}

bool is_webhook_secret(std::string_view s, std::string* why) {
  constexpr std::string_view kPrefix = "whsec_";
  const auto fail = [&](std::string text) {
    *why = std::move(text);
    return false;
  };
  if (s.substr(0, kPrefix.size()) != kPrefix)
    return fail("expected \"whsec_\" followed by base64 of 24 to 64 random bytes (Standard Webhooks)");
  const auto key = net::base64_decode(s.substr(kPrefix.size()));
  if (!key || key->empty())
    return fail("the part after \"whsec_\" must be padded base64 (A-Z a-z 0-9 + / and '=' padding)");
  const size_t bytes = key->size();
  if (bytes < 24 || bytes > 64)
    return fail("must decode to 24 to 64 bytes, got " + std::to_string(bytes) +
                " (e.g. whsec_ + `openssl rand -base64 32`)");
  return true;
}

bool is_cidr(std::string_view s, std::string* why) {
  const auto fail = [&]() {
    *why = "expected a CIDR such as \"127.0.0.0/8\" or \"fd00::/8\", got " + quote(s);
    return false;
  };
  const size_t slash = s.find('/');
  if (slash == std::string_view::npos) return fail();
  const std::string addr(s.substr(0, slash));
  const std::string_view len = s.substr(slash + 1);
  if (len.empty() || len.size() > 3 || !all_of(len, [](char c) { return c >= '0' && c <= '9'; }))
    return fail();
  const int prefix = std::stoi(std::string(len));
  unsigned char bytes[16] = {};
  size_t n = 0;
  if (inet_pton(AF_INET, addr.c_str(), bytes) == 1)
    n = 4;
  else if (inet_pton(AF_INET6, addr.c_str(), bytes) == 1)
    n = 16;
  else
    return fail();
  if (prefix > static_cast<int>(n * 8)) return fail();
  // Host bits set ("127.0.0.1/8") usually mean a typo in the prefix; the network address is unambiguous.
  for (size_t bit = static_cast<size_t>(prefix); bit < n * 8; ++bit) {
    if (bytes[bit / 8] & (0x80 >> (bit % 8))) {
      *why = "has host bits set after the /" + std::to_string(prefix) +
             " prefix: write the network address, got " + quote(s);
      return false;
    }
  }
  return true;
}

}  // namespace osvi::daemon::config_detail
