// The webhook target guard's address classifier: what is refused by default, what allowed_targets exempts,
// IPv4-mapped and -compatible forms judged as the IPv4 address they carry.
#include "osvi/net/target_guard.hpp"

#include <gtest/gtest.h>

namespace osvi::net {
namespace {

std::optional<std::string> check(const TargetGuard& g, const char* text) {
  auto a = IpAddress::parse(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a ? g.check(*a) : std::optional<std::string>("unparsable");
}

TEST(TargetGuard, RefusesLoopbackLinkLocalMetadataUnspecified) {
  TargetGuard g;
  const char* refused[] = {"127.0.0.1",
                           "127.255.0.9",
                           "::1",
                           "169.254.1.1",
                           "fe80::1",
                           "febf::1",
                           "169.254.169.254",
                           "fd00:ec2::254",
                           "100.100.100.200",
                           "0.0.0.0",
                           "0.1.2.3",
                           "::",
                           "::ffff:127.0.0.1",
                           "::ffff:169.254.169.254",
                           "::127.0.0.1",
                           "::ffff:0.0.0.0"};
  for (const char* a : refused) EXPECT_TRUE(check(g, a).has_value()) << a;
  const char* allowed[] = {"10.0.0.1",        "192.168.1.10", "8.8.8.8", "100.100.100.201",
                           "169.253.255.255", "2001:db8::1",  "fec0::1", "fd00:ec2::253",
                           "::ffff:8.8.8.8",  "172.16.0.1"};
  for (const char* a : allowed) EXPECT_FALSE(check(g, a).has_value()) << a;
}

TEST(TargetGuard, NamesTheAddressAndWhy) {
  TargetGuard g;
  EXPECT_EQ(check(g, "127.0.0.1"), "refused target 127.0.0.1 (loopback)");
  EXPECT_EQ(check(g, "169.254.169.254"), "refused target 169.254.169.254 (cloud metadata)");
  EXPECT_EQ(check(g, "fe80::1"), "refused target fe80::1 (link-local)");
  EXPECT_EQ(check(g, "::ffff:127.0.0.2"), "refused target 127.0.0.2 (loopback)");  // mapped: shown as IPv4
}

TEST(TargetGuard, AllowedTargetsExemptOnlyTheirRange) {
  auto g = TargetGuard::create({"127.0.0.0/8", "fe80::/64"});
  ASSERT_TRUE(g.ok());
  EXPECT_FALSE(check(*g, "127.0.0.1").has_value());
  EXPECT_FALSE(check(*g, "::ffff:127.0.0.1").has_value());
  EXPECT_FALSE(check(*g, "fe80::1").has_value());
  EXPECT_TRUE(check(*g, "fe80:0:0:1::1").has_value());
  EXPECT_TRUE(check(*g, "::1").has_value());
  EXPECT_TRUE(check(*g, "169.254.169.254").has_value());
  auto metadata_only = TargetGuard::create({"169.254.169.254/32"});
  ASSERT_TRUE(metadata_only.ok());
  EXPECT_FALSE(check(*metadata_only, "169.254.169.254").has_value());
  EXPECT_TRUE(check(*metadata_only, "169.254.169.253").has_value());
}

TEST(TargetGuard, CidrParsing) {
  EXPECT_TRUE(Cidr::parse("10.0.0.0/8").has_value());
  EXPECT_TRUE(Cidr::parse("::/0").has_value());
  EXPECT_TRUE(Cidr::parse("1.2.3.4").has_value());
  EXPECT_FALSE(Cidr::parse("10.0.0.0/33").has_value());
  EXPECT_FALSE(Cidr::parse("::/129").has_value());
  EXPECT_FALSE(Cidr::parse("10.0.0.0/").has_value());
  EXPECT_FALSE(Cidr::parse("10.0.0.0/8x").has_value());
  EXPECT_FALSE(Cidr::parse("example.com/8").has_value());
  auto bad = TargetGuard::create({"10.0.0.0/8", "nope"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("nope"), std::string::npos);
  // /0 of one family does not swallow the other.
  auto v4all = Cidr::parse("0.0.0.0/0");
  ASSERT_TRUE(v4all.has_value());
  EXPECT_TRUE(v4all->contains(*IpAddress::parse("127.0.0.1")));
  EXPECT_FALSE(v4all->contains(*IpAddress::parse("::1")));
}

}  // namespace
}  // namespace osvi::net
