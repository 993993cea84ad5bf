// osvictl's pure pieces: aligned tables, the option parser, --since, query strings.
#include "osvictl_text.hpp"

#include <gtest/gtest.h>

namespace {

using namespace osvi::ctl;

TEST(OsvictlText, TableAlignsColumnsByCodePoints) {
  Table t({"ID", "NAME", "STATE"});
  t.add({"sim0", "Réception", "idle"});
  t.add({"gsm10", "x"});  // a short row gets empty cells
  t.add({"a\tb", "line\nbreak", "ok"});
  EXPECT_EQ(t.render(),
            "ID     NAME        STATE\n"
            "sim0   Réception   idle\n"
            "gsm10  x\n"
            "a b    line break  ok\n");
  EXPECT_EQ(display_width("Réception"), 9u);
}

TEST(OsvictlText, ArgsKnownOptionsFlagsAndPositionals) {
  std::string why;
  auto a = parse_args({"list", "--agent", "agent_a", "--page=2", "-o", "x.opus", "--all"},
                      {"--agent", "--page", "-o"}, {"--all"}, &why);
  ASSERT_TRUE(a) << why;
  EXPECT_EQ(a->positional, std::vector<std::string>{"list"});
  EXPECT_EQ(a->get("--agent"), "agent_a");
  EXPECT_EQ(a->get("--page"), "2");
  EXPECT_EQ(a->get("-o"), "x.opus");
  EXPECT_TRUE(a->has("--all"));
  EXPECT_FALSE(a->get("--missing"));

  EXPECT_FALSE(parse_args({"--agnet", "a"}, {"--agent"}, {}, &why));
  EXPECT_EQ(why, "unknown option --agnet");
  EXPECT_FALSE(parse_args({"--agent"}, {"--agent"}, {}, &why));
  EXPECT_EQ(why, "--agent needs a value");
  EXPECT_FALSE(parse_args({"--agent", "a", "--agent", "b"}, {"--agent"}, {}, &why));
  EXPECT_EQ(why, "--agent given twice");
  EXPECT_FALSE(parse_args({"--all=yes"}, {}, {"--all"}, &why));
  // After "--" everything is positional, even what looks like an option.
  auto b = parse_args({"--", "--agent"}, {"--agent"}, {}, &why);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->positional, std::vector<std::string>{"--agent"});
}

TEST(OsvictlText, SinceRelativeAndAbsolute) {
  const int64_t now = 1'780'000'000'000'000;
  EXPECT_EQ(parse_since("30s", now), now - 30'000'000);
  EXPECT_EQ(parse_since("15m", now), now - 900'000'000);
  EXPECT_EQ(parse_since("2h", now), now - 7'200'000'000);
  EXPECT_EQ(parse_since("7d", now), now - 604'800'000'000);
  EXPECT_EQ(parse_since("2026-12-03", now), 1'796'256'000'000'000);
  EXPECT_EQ(parse_since("2026-12-03T10:00:00Z", now), 1'796'292'000'000'000);
  EXPECT_EQ(parse_since("2026-12-03 10:00", now), 1'796'292'000'000'000);
  EXPECT_EQ(parse_since("2026-12-03T15:30:00+05:30", now), 1'796'292'000'000'000);
  EXPECT_FALSE(parse_since("yesterday", now));
  EXPECT_FALSE(parse_since("0m", now));
  EXPECT_FALSE(parse_since("2026-13-01", now));
  EXPECT_FALSE(parse_since("2026-12-03T10:00+0530", now));
  EXPECT_EQ(utc_iso_us(1'796'292'000'123'456), "2026-12-03T10:00:00.123Z");
}

TEST(OsvictlText, QueryStringEncodesValues) {
  EXPECT_EQ(query_string({}), "");
  EXPECT_EQ(query_string({{"status", "picked,busy"}, {"phone", "+91 98"}}),
            "?status=picked%2Cbusy&phone=%2B91%2098");
  EXPECT_EQ(percent_encode("a-b_c.d~é"), "a-b_c.d~%C3%A9");
}

TEST(OsvictlText, CountsAndDurations) {
  EXPECT_EQ(parse_count("25"), 25);
  EXPECT_FALSE(parse_count("0"));
  EXPECT_FALSE(parse_count("-1"));
  EXPECT_FALSE(parse_count("12a"));
  EXPECT_FALSE(parse_count("1234567890"));
  EXPECT_EQ(human_duration(12), "12s");
  EXPECT_EQ(human_duration(245), "4m 05s");
  EXPECT_EQ(human_duration(3723), "1h 02m 03s");
}

}  // namespace
