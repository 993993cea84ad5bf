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

TEST(Ids, IsoTimesAreReadWithTheirZoneOrTheDefault) {
  const int64_t t = 1'780'302'909'000;  // 2026-06-01T08:35:09Z
  auto z = parse_iso_time("2026-06-01T08:35:09Z", 330);
  ASSERT_TRUE(z);
  EXPECT_EQ(z->unix_ms, t);
  EXPECT_TRUE(z->has_zone);
  EXPECT_FALSE(z->date_only);
  EXPECT_EQ(parse_iso_time("2026-06-01T14:05:09+05:30", 0)->unix_ms, t);
  EXPECT_EQ(parse_iso_time("2026-06-01T14:05:09+0530", 0)->unix_ms, t);
  EXPECT_EQ(parse_iso_time("2026-06-01T03:35:09-05", 0)->unix_ms, t);
  EXPECT_EQ(parse_iso_time("2026-06-01 08:35:09.250z", 0)->unix_ms, t + 250);
  auto local = parse_iso_time("2026-06-01T14:05:09", 330);
  ASSERT_TRUE(local);
  EXPECT_EQ(local->unix_ms, t);
  EXPECT_FALSE(local->has_zone);
  auto day = parse_iso_time("2026-06-01", 330);
  ASSERT_TRUE(day);
  EXPECT_TRUE(day->date_only);
  EXPECT_EQ(day->unix_ms, 1'780'252'200'000);  // 2026-05-31T18:30:00Z
  EXPECT_TRUE(parse_iso_time("2028-02-29T00:00Z", 0));
  for (const char* bad : {"", "2026-6-01", "2026-13-01", "2027-02-29", "2026-06-01T24:00Z",
                          "2026-06-01T10:60Z", "2026-06-01T10:00+5:30", "2026-06-01T10:00 05:30",
                          "2026-06-01T10:00:00.Z", "2026-06-01X10:00", "2026-06-01T10:00+24:00", "yesterday"})
    EXPECT_FALSE(parse_iso_time(bad, 0)) << bad;
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
