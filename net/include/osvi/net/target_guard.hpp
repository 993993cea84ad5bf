// TargetGuard: which peer addresses an outgoing request (a webhook) may connect to. Loopback, link-local,
// unspecified and the cloud metadata addresses are refused unless an allowed CIDR covers them; the check runs
// on the address actually being connected (HttpClient's open-socket hook), so DNS rebinding cannot bypass it.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"

namespace osvi::net {

// An address as 16 bytes: IPv4 as its IPv4-mapped IPv6 form (::ffff:a.b.c.d), so one table covers both and
// a mapped address is judged as the IPv4 address it is.
struct IpAddress {
  std::array<uint8_t, 16> bytes{};
  bool is_v4() const;  // ::ffff:0:0/96
  std::string text() const;
  static std::optional<IpAddress> parse(std::string_view text);
  static std::optional<IpAddress> from_sockaddr(const sockaddr* sa, socklen_t len);
};

struct Cidr {
  IpAddress base;
  int prefix = 128;  // over the 16-byte form: an IPv4 /n is 96 + n
  bool contains(const IpAddress& a) const;
  // "10.0.0.0/8", "fd00::/8", or a bare address (a /32 or /128).
  static std::optional<Cidr> parse(std::string_view text);
};

// Why a is refused by default ("loopback", "link-local", "cloud metadata", "unspecified"); nullopt: allowed.
std::optional<std::string_view> refused_class(const IpAddress& a);

class TargetGuard {
 public:
  // allowed: CIDR texts exempt from the refusal; an unparsable one is an error naming it.
  static Result<TargetGuard> create(const std::vector<std::string>& allowed);
  TargetGuard() = default;
  // nullopt when connecting to a is fine; otherwise the failure text: "refused target 127.0.0.1 (loopback)".
  std::optional<std::string> check(const IpAddress& a) const;
  std::optional<std::string> check(const sockaddr* sa, socklen_t len) const;

 private:
  std::vector<Cidr> allowed_;
};

}  // namespace osvi::net
