// UUID v7, OSVI timestamp formats, tokens and the constant-time comparison.
#include "osvi/base/ids.hpp"

#include <gtest/gtest.h>

#include <set>

namespace {

using namespace osvi::daemon;

TEST(Ids, UuidV7IsWellFormedTimeOrderedAndUnique) {
  std::set<std::string> seen;
  std::string prev;
  for (int i = 0; i < 1000; ++i) {
    std::string u = new_uuid_v7(1'780'000'000'000 + i);
    EXPECT_TRUE(is_uuid(u)) << u;
    EXPECT_EQ(u[14], '7') << u;
    EXPECT_NE(std::string("89ab").find(u[19]), std::string::npos) << u;
    EXPECT_LT(prev, u);
    prev = u;
    seen.insert(u);
  }
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_FALSE(is_uuid("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5"));
  EXPECT_FALSE(is_uuid("0190a1b2xc3d4-7e5f-8a9b-0c1d2e3f4a5b"));
  EXPECT_FALSE(is_uuid("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5g"));
}

TEST(Ids, LocalIsoUsesTheSiteOffset) {
  // 2026-06-01T08:35:09.123Z
  const int64_t t = 1'780'302'909'123;
  EXPECT_EQ(format_local_iso(t, 330), "2026-06-01T14:05:09+05:30");
  EXPECT_EQ(format_local_iso(t, 0), "2026-06-01T08:35:09+00:00");
  EXPECT_EQ(format_local_iso(t, -300), "2026-06-01T03:35:09-05:00");
  EXPECT_EQ(format_utc_micro(t), "2026-06-01T08:35:09.123000Z");
}

TEST(Ids, RandomTokensUseTheAlphabet) {
  std::string a = random_token(16), b = random_token(16);
  EXPECT_EQ(a.size(), 16u);
  EXPECT_NE(a, b);
  for (char c : a + b) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << c;
}

TEST(Ids, ConstantTimeEqual) {
  EXPECT_TRUE(constant_time_equal("abcdefgh12345678", "abcdefgh12345678"));
  EXPECT_FALSE(constant_time_equal("abcdefgh12345678", "abcdefgh12345679"));
  EXPECT_FALSE(constant_time_equal("abcdefgh12345678", "abcdefgh1234567"));
  EXPECT_FALSE(constant_time_equal("", "a"));
  EXPECT_TRUE(constant_time_equal("", ""));
}

}  // namespace
