// TargetGuard: the address classifier and the allowed-CIDR exemption (target_guard.hpp).
#include "osvi/net/target_guard.hpp"

#include <arpa/inet.h>

#include <cerrno>
#include <cstring>

namespace osvi::net {
namespace {

struct Refused {
  Cidr cidr;
  std::string_view why;
};

const std::vector<Refused>& refused_table() {
  static const std::vector<Refused> table = [] {
    std::vector<Refused> t;
    auto add = [&](const char* cidr, std::string_view why) { t.push_back({*Cidr::parse(cidr), why}); };
    // The metadata services first, so they are named as such rather than as "link-local".
    add("169.254.169.254", "cloud metadata");
    add("fd00:ec2::254", "cloud metadata");
    add("100.100.100.200", "cloud metadata");
    add("127.0.0.0/8", "loopback");
    add("::1", "loopback");
    add("169.254.0.0/16", "link-local");
    add("fe80::/10", "link-local");
    add("0.0.0.0/8", "unspecified");  // "this network": 0.0.0.0 reaches the box itself on Linux
    add("::", "unspecified");
    return t;
  }();
  return table;
}

}  // namespace

bool IpAddress::is_v4() const {
  static constexpr std::array<uint8_t, 12> kPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(bytes.data(), kPrefix.data(), kPrefix.size()) == 0;
}

std::string IpAddress::text() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (is_v4()) {
    inet_ntop(AF_INET, bytes.data() + 12, buf, sizeof buf);
  } else {
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
  }
  return buf;
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  std::string s(text);
  IpAddress a;
  in_addr v4addr{};
  if (inet_pton(AF_INET, s.c_str(), &v4addr) == 1) {
    a.bytes[10] = a.bytes[11] = 0xff;
    std::memcpy(a.bytes.data() + 12, &v4addr, 4);
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) return a;
  return std::nullopt;
}

std::optional<IpAddress> IpAddress::from_sockaddr(const sockaddr* sa, socklen_t len) {
  if (sa == nullptr) return std::nullopt;
  IpAddress a;
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    sockaddr_in in{};
    std::memcpy(&in, sa, sizeof in);
    a.bytes[10] = a.bytes[11] = 0xff;
    std::memcpy(a.bytes.data() + 12, &in.sin_addr, 4);
    return a;
  }
  if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, sa, sizeof in6);
    std::memcpy(a.bytes.data(), &in6.sin6_addr, 16);
    return a;
  }
  return std::nullopt;
}

bool Cidr::contains(const IpAddress& a) const {
  int bits = prefix;
  for (size_t i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((a.bytes[i] & mask) != (base.bytes[i] & mask)) return false;
  }
  return true;
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
  size_t slash = text.find('/');
  auto addr = IpAddress::parse(text.substr(0, slash));
  if (!addr) return std::nullopt;
  int max = addr->is_v4() ? 32 : 128;
  int n = max;
  if (slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) return std::nullopt;
    n = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return std::nullopt;
      n = n * 10 + (c - '0');
    }
    if (n > max) return std::nullopt;
  }
  Cidr c;
  c.base = *addr;
  c.prefix = addr->is_v4() ? 96 + n : n;
  return c;
}

std::optional<std::string_view> refused_class(const IpAddress& a) {
  // IPv4-compatible IPv6 (::a.b.c.d, deprecated but still routed to a.b.c.d by some stacks) is judged as the
  // IPv4 address it embeds; the IPv4-mapped form needs nothing: it is the 16-byte form of IPv4 already.
  IpAddress judged = a;
  bool compat = true;
  for (size_t i = 0; i < 12; ++i) compat = compat && a.bytes[i] == 0;
  if (compat && !(a.bytes[12] == 0 && a.bytes[13] == 0 && a.bytes[14] == 0 && a.bytes[15] <= 1)) {
    judged.bytes[10] = judged.bytes[11] = 0xff;
  }
  for (const Refused& r : refused_table())
    if (r.cidr.contains(judged)) return r.why;
  return std::nullopt;
}

Result<TargetGuard> TargetGuard::create(const std::vector<std::string>& allowed) {
  TargetGuard g;
  for (const std::string& text : allowed) {
    auto c = Cidr::parse(text);
    if (!c) return make_error("allowed target is not a CIDR: " + text, -EINVAL);
    g.allowed_.push_back(*c);
  }
  return g;
}

std::optional<std::string> TargetGuard::check(const IpAddress& a) const {
  auto why = refused_class(a);
  if (!why) return std::nullopt;
  for (const Cidr& c : allowed_)
    if (c.contains(a)) return std::nullopt;
  return "refused target " + a.text() + " (" + std::string(*why) + ")";
}

std::optional<std::string> TargetGuard::check(const sockaddr* sa, socklen_t len) const {
  auto a = IpAddress::from_sockaddr(sa, len);
  if (!a) return "refused target (not an IP address)";
  return check(*a);
}

}  // namespace osvi::net
