// TimeZone / TimeZones: offsets and local fields against glibc's localtime_r, the POSIX TZ footer, the
// calling-window search across DST changes, and the errors for unknown, malformed and unsafe zone names.
#include "osvi/base/time_zone.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

using osvi::daemon::LocalTime;
using osvi::daemon::TimeZone;
using osvi::daemon::TimeZones;

constexpr int64_t kMin = 60'000;
constexpr int64_t kHour = 60 * kMin;
constexpr int64_t kDay = 24 * kHour;

// UTC seconds of a calendar date and time (timegm, which ignores $TZ).
int64_t utc(int y, int mo, int d, int h = 0, int mi = 0, int s = 0) {
  struct tm tm {};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return timegm(&tm);
}
int64_t utc_ms(int y, int mo, int d, int h = 0, int mi = 0) {
  return utc(y, mo, d, h, mi) * 1000;
}

std::shared_ptr<const TimeZone> zone(const char* name) {
  auto tz = TimeZone::load(name);
  EXPECT_TRUE(tz.ok()) << name << ": " << (tz.ok() ? "" : tz.error().message);
  return tz.ok() ? *tz : TimeZone::fixed("broken", 0);
}

// glibc's answer for `tz` (a zone name or a POSIX TZ string) at t.
class Glibc {
 public:
  explicit Glibc(const std::string& tz) {
    const char* old = getenv("TZ");
    had_ = old != nullptr;
    if (had_) old_ = old;
    setenv("TZ", tz.c_str(), 1);
    tzset();
  }
  ~Glibc() {
    if (had_) {
      setenv("TZ", old_.c_str(), 1);
    } else {
      unsetenv("TZ");
    }
    tzset();
  }
  struct tm at(int64_t t) const {
    struct tm tm {};
    const time_t tt = static_cast<time_t>(t);
    localtime_r(&tt, &tm);
    return tm;
  }

 private:
  bool had_ = false;
  std::string old_;
};

void expect_same(const TimeZone& tz, const Glibc& g, int64_t t, const std::string& what) {
  const struct tm tm = g.at(t);
  ASSERT_EQ(tz.offset_at(t), tm.tm_gmtoff) << what << " at " << t;
  const LocalTime lt = tz.local(t * 1000 + 999);
  ASSERT_EQ(lt.year, tm.tm_year + 1900) << what << " at " << t;
  ASSERT_EQ(lt.month, tm.tm_mon + 1) << what << " at " << t;
  ASSERT_EQ(lt.day, tm.tm_mday) << what << " at " << t;
  ASSERT_EQ(lt.weekday, tm.tm_wday) << what << " at " << t;
  ASSERT_EQ(lt.minute_of_day, tm.tm_hour * 60 + tm.tm_min) << what << " at " << t;
  ASSERT_EQ(lt.second, tm.tm_sec) << what << " at " << t;
  ASSERT_EQ(lt.utc_offset_s, tm.tm_gmtoff) << what << " at " << t;
}

// Deterministic pseudo-random instants (a failure reproduces).
struct Lcg {
  uint64_t s;
  uint64_t next() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return s >> 33;
  }
  int64_t in(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo));
  }
};

const char* const kZones[] = {"Asia/Kolkata",
                              "America/New_York",
                              "America/Los_Angeles",
                              "Europe/London",
                              "Australia/Lord_Howe",
                              "America/Sao_Paulo",
                              "UTC"};

TEST(TimeZone, OffsetsAndLocalFieldsMatchLocaltimeFrom1990To2045) {
  const int64_t from = utc(1990, 1, 1), to = utc(2045, 12, 31);
  for (const char* name : kZones) {
    auto tz = zone(name);
    Glibc g(name);
    Lcg rng{static_cast<uint64_t>(std::hash<std::string>{}(name))};
    for (int i = 0; i < 5000; ++i) expect_same(*tz, g, rng.in(from, to), name);
    // Every change in the range, found from glibc's side every 6 hours and pinned to the second: the
    // seconds either side of it must agree too (the table's, and the footer's past the table's end).
    int changes = 0;
    long prev = g.at(from).tm_gmtoff;
    for (int64_t t = from + 6 * 3600; t < to; t += 6 * 3600) {
      const long now = g.at(t).tm_gmtoff;
      if (now == prev) continue;
      int64_t lo = t - 6 * 3600, hi = t;  // offset(lo) == prev, offset(hi) != prev
      while (hi - lo > 1) {
        const int64_t mid = lo + (hi - lo) / 2;
        (g.at(mid).tm_gmtoff == prev ? lo : hi) = mid;
      }
      for (int64_t d = -1; d <= 1; ++d) expect_same(*tz, g, hi + d, name);
      ++changes;
      prev = now;
    }
    if (std::string(name) == "America/New_York" || std::string(name) == "Europe/London") {
      EXPECT_EQ(changes, 2 * 56) << name;  // two a year, 1990..2045
    }
    if (std::string(name) == "Asia/Kolkata" || std::string(name) == "UTC") {
      EXPECT_EQ(changes, 0) << name;
    }
  }
}

TEST(TimeZone, LocalFieldsOfKnownInstants) {
  auto ny = zone("America/New_York");
  const LocalTime lt = ny->local(utc_ms(2026, 7, 4, 16, 30) + 15'000);  // 12:30:15 EDT, a Saturday
  EXPECT_EQ(lt.year, 2026);
  EXPECT_EQ(lt.month, 7);
  EXPECT_EQ(lt.day, 4);
  EXPECT_EQ(lt.weekday, 6);
  EXPECT_EQ(lt.minute_of_day, 12 * 60 + 30);
  EXPECT_EQ(lt.second, 15);
  EXPECT_EQ(lt.utc_offset_s, -4 * 3600);
  EXPECT_EQ(zone("Asia/Kolkata")->offset_at(utc(2026, 1, 1)), 19800);
  EXPECT_EQ(zone("Australia/Lord_Howe")->offset_at(utc(2026, 1, 1)), 11 * 3600);  // half-hour DST
  EXPECT_EQ(zone("Australia/Lord_Howe")->offset_at(utc(2026, 7, 1)), 10 * 3600 + 1800);
  // Before 1970, negative milliseconds round down, not toward zero.
  const LocalTime early = TimeZone::fixed("UTC", 0)->local(-1);
  EXPECT_EQ(early.year, 1969);
  EXPECT_EQ(early.minute_of_day, 1439);
  EXPECT_EQ(early.second, 59);
  EXPECT_EQ(early.weekday, 3);
}

TEST(TimeZone, FixedZoneHasOneOffset) {
  auto tz = TimeZone::fixed("IST", 19800);
  EXPECT_EQ(tz->name(), "IST");
  EXPECT_EQ(tz->offset_at(0), 19800);
  EXPECT_EQ(tz->offset_at(utc(2040, 6, 1)), 19800);
  EXPECT_EQ(tz->local(utc_ms(2026, 3, 1, 18, 30)).minute_of_day, 0);
  EXPECT_EQ(tz->local(utc_ms(2026, 3, 1, 18, 30)).day, 2);
}

// ---- next_inside ----

constexpr int kAllDays = 0x7f;
constexpr int kSunday = 1 << 0, kMonday = 1 << 1, kFriday = 1 << 5, kSaturday = 1 << 6;
constexpr int kWeekdays = 0x3e;

TEST(TimeZoneNextInside, InsideReturnsTheInstantItself) {
  auto ny = zone("America/New_York");
  const int64_t t = utc_ms(2026, 6, 10, 15, 0) + 1234;  // 11:00:01.234 EDT
  EXPECT_EQ(ny->next_inside(t, 9 * 60, 21 * 60), t);
  EXPECT_EQ(ny->next_inside(t, 0, 1440), t);
  EXPECT_EQ(ny->next_inside(t, 11 * 60, 11 * 60 + 1), t);
}

TEST(TimeZoneNextInside, LaterTodayOrTomorrow) {
  auto ny = zone("America/New_York");
  // 07:00 EDT → 09:00 EDT the same day; 21:00 EDT (the window's end is excluded) → 09:00 the next day.
  EXPECT_EQ(ny->next_inside(utc_ms(2026, 6, 10, 11, 0), 540, 1260), utc_ms(2026, 6, 10, 13, 0));
  EXPECT_EQ(ny->next_inside(utc_ms(2026, 6, 10, 1, 0), 540, 1260), utc_ms(2026, 6, 10, 13, 0));
  EXPECT_EQ(ny->next_inside(utc_ms(2026, 6, 11, 1, 0), 540, 1260), utc_ms(2026, 6, 11, 13, 0));
}

TEST(TimeZoneNextInside, AcrossTheUsSpringForward) {
  for (const auto& [y, day] : {std::pair{2026, 8}, std::pair{2027, 14}}) {  // the second Sunday of March
    auto ny = zone("America/New_York");
    auto la = zone("America/Los_Angeles");
    // Saturday 22:00 EST → Sunday 09:00, now EDT (13:00 UTC, not 14:00).
    EXPECT_EQ(ny->next_inside(utc_ms(y, 3, day - 1, 22 + 5, 0), 540, 1260), utc_ms(y, 3, day, 13, 0)) << y;
    EXPECT_EQ(la->next_inside(utc_ms(y, 3, day, 6, 0), 540, 1260), utc_ms(y, 3, day, 16, 0)) << y;
    // A window opening at 02:30, which the change skips, opens at the change: 03:00 EDT = 07:00 UTC.
    EXPECT_EQ(ny->next_inside(utc_ms(y, 3, day, 6, 0), 150, 300), utc_ms(y, 3, day, 7, 0)) << y;
    EXPECT_EQ(la->next_inside(utc_ms(y, 3, day, 9, 0), 150, 300), utc_ms(y, 3, day, 10, 0)) << y;
    // A window wholly inside the skipped hour has no instant that day: next Sunday's 02:10 EDT.
    EXPECT_EQ(ny->next_inside(utc_ms(y, 3, day, 6, 0), 130, 140, kSunday), utc_ms(y, 3, day + 7, 6, 10)) << y;
    // Just before the change, inside a window that runs through it: the instant itself.
    EXPECT_EQ(ny->next_inside(utc_ms(y, 3, day, 6, 59), 60, 240), utc_ms(y, 3, day, 6, 59)) << y;
  }
}

TEST(TimeZoneNextInside, AcrossTheUsFallBack) {
  for (const auto& [y, day] : {std::pair{2026, 1}, std::pair{2027, 7}}) {  // the first Sunday of November
    auto ny = zone("America/New_York");
    // Saturday 22:00 EDT → Sunday 09:00, now EST (14:00 UTC).
    EXPECT_EQ(ny->next_inside(utc_ms(y, 11, day - 1, 22 + 4, 0), 540, 1260), utc_ms(y, 11, day, 14, 0)) << y;
    // 01:15–01:45 happens twice: from 01:00 EDT the first time, from 01:50 EDT the second (01:15 EST).
    EXPECT_EQ(ny->next_inside(utc_ms(y, 11, day, 5, 0), 75, 105), utc_ms(y, 11, day, 5, 15)) << y;
    EXPECT_EQ(ny->next_inside(utc_ms(y, 11, day, 5, 50), 75, 105), utc_ms(y, 11, day, 6, 15)) << y;
    // From 01:50 EST (after both), the next day's 01:15 EST.
    EXPECT_EQ(ny->next_inside(utc_ms(y, 11, day, 6, 50), 75, 105), utc_ms(y, 11, day + 1, 6, 15)) << y;
    auto la = zone("America/Los_Angeles");
    EXPECT_EQ(la->next_inside(utc_ms(y, 11, day, 12, 0), 540, 1260), utc_ms(y, 11, day, 17, 0)) << y;
  }
}

TEST(TimeZoneNextInside, WindowWrappingMidnight) {
  auto in = zone("Asia/Kolkata");
  // 22:00–06:00 IST. 23:00 and 05:59 are inside; 06:00 waits for 22:00.
  const int64_t d = utc_ms(2026, 5, 6, 0, 0) - 19800 * 1000;  // Wednesday 00:00 IST
  EXPECT_EQ(in->next_inside(d + 23 * kHour, 1320, 360), d + 23 * kHour);
  EXPECT_EQ(in->next_inside(d + 5 * kHour + 59 * kMin, 1320, 360), d + 5 * kHour + 59 * kMin);
  EXPECT_EQ(in->next_inside(d + 6 * kHour, 1320, 360), d + 22 * kHour);
  EXPECT_EQ(in->next_inside(d + 12 * kHour, 1320, 360), d + 22 * kHour);
  // A night window belongs to the day it opens on: Friday's runs into Saturday morning.
  const int64_t fri = d + 2 * kDay;
  EXPECT_EQ(in->next_inside(fri + kDay + 3 * kHour, 1320, 360, kFriday), fri + kDay + 3 * kHour);
  EXPECT_EQ(in->next_inside(fri + kDay + 23 * kHour, 1320, 360, kFriday), fri + 7 * kDay + 22 * kHour);
  // Thursday 03:00 belongs to Wednesday's night, not Friday's.
  EXPECT_EQ(in->next_inside(d + kDay + 3 * kHour, 1320, 360, kFriday), fri + 22 * kHour);
  // The window ending at midnight exactly: 22:00–24:00 (end 0 wraps, 1440 does not; same hours).
  EXPECT_EQ(in->next_inside(d + 12 * kHour, 1320, 0), d + 22 * kHour);
  EXPECT_EQ(in->next_inside(d + 12 * kHour, 1320, 1440), d + 22 * kHour);
  EXPECT_EQ(in->next_inside(d + kDay, 1320, 1440), d + kDay + 22 * kHour);
}

TEST(TimeZoneNextInside, DaysMask) {
  auto ny = zone("America/New_York");
  const int64_t sat = utc_ms(2026, 6, 13, 14, 0);                                     // Saturday 10:00 EDT
  EXPECT_EQ(ny->next_inside(sat, 540, 1260, kWeekdays), utc_ms(2026, 6, 15, 13, 0));  // Monday 09:00
  EXPECT_EQ(ny->next_inside(sat, 540, 1260, kSaturday), sat);
  EXPECT_EQ(ny->next_inside(sat, 540, 1260, kSunday), utc_ms(2026, 6, 14, 13, 0));
  EXPECT_EQ(ny->next_inside(sat, 540, 1260, kMonday | kSunday), utc_ms(2026, 6, 14, 13, 0));
  // Only Saturday, and already past today's window: a week later, still within the 8 days.
  EXPECT_EQ(ny->next_inside(utc_ms(2026, 6, 14, 2, 0), 540, 1260, kSaturday), utc_ms(2026, 6, 20, 13, 0));
  // Bits above Saturday mean nothing.
  EXPECT_EQ(ny->next_inside(sat, 540, 1260, kWeekdays | 0x80), utc_ms(2026, 6, 15, 13, 0));
}

TEST(TimeZoneNextInside, EmptyMaskOrWindowIsMinusOne) {
  auto ny = zone("America/New_York");
  const int64_t t = utc_ms(2026, 6, 13, 14, 0);
  EXPECT_EQ(ny->next_inside(t, 540, 1260, 0), -1);
  EXPECT_EQ(ny->next_inside(t, 540, 1260, 0x80), -1);
  EXPECT_EQ(ny->next_inside(t, 600, 600), -1);
  EXPECT_EQ(ny->next_inside(t, -1, 600), -1);
  EXPECT_EQ(ny->next_inside(t, 0, 1441), -1);
  // Absurd instants are refused, not overflowed.
  EXPECT_EQ(ny->next_inside(INT64_MAX, 0, 1440), -1);
  EXPECT_EQ(ny->next_inside(INT64_MIN, 0, 1440), -1);
  EXPECT_EQ(ny->offset_at(INT64_MAX / 1000), -5 * 3600);  // clamped to the footer rule of ~2 million years on
  EXPECT_EQ(ny->local(INT64_MIN / 2).utc_offset_s, ny->offset_at(INT64_MIN / 2000 - 1));
}

// The definition, minute by minute: what the stepping search must agree with for every zone and window.
int64_t naive_next_inside(const TimeZone& tz, int64_t t0, int start, int end, int mask) {
  auto inside = [&](int64_t t) {
    const LocalTime lt = tz.local(t);
    const int m = lt.minute_of_day;
    int opened_on = lt.weekday;  // the window belongs to the day it opens on
    bool in = false;
    if (start < end) {
      in = m >= start && m < end;
    } else if (m >= start) {
      in = true;
    } else if (m < end) {
      in = true;
      opened_on = (lt.weekday + 6) % 7;
    }
    return in && (mask & (1 << opened_on)) != 0;
  };
  if (inside(t0)) return t0;
  for (int64_t t = (t0 / kMin + 1) * kMin; t < t0 + 8 * kDay; t += kMin) {
    if (inside(t)) return t;
  }
  return -1;
}

TEST(TimeZoneNextInside, AgreesWithAMinuteByMinuteScan) {
  Lcg rng{42};
  for (const char* name : kZones) {
    auto tz = zone(name);
    for (int i = 0; i < 200; ++i) {
      // Instants near the DST changes of the northern and southern hemispheres, and anywhere; São Paulo's
      // changes (to 2019) skipped local midnight, so its day began at 01:00.
      const int y = static_cast<int>(rng.in(1995, 2045));
      static const int kMonths[] = {3, 4, 10, 11, 9, 6};
      const int64_t t = utc_ms(y, kMonths[rng.in(0, 6)], static_cast<int>(rng.in(1, 28))) + rng.in(0, kDay);
      const int start = static_cast<int>(rng.in(0, 48)) * 30;
      int end = static_cast<int>(rng.in(0, 49)) * 30;
      if (end == start) end = (start + 90) % 1440;
      const int mask = static_cast<int>(rng.in(1, 128));
      ASSERT_EQ(tz->next_inside(t, start, end, mask), naive_next_inside(*tz, t, start, end, mask))
          << name << " t=" << t << " [" << start << "," << end << ") mask=" << mask;
    }
  }
}

// ---- files: errors, and footers glibc can check ----

class TzDir : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/osvi-tz-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::string& name, const std::string& bytes) {
    const std::filesystem::path p = std::filesystem::path(dir_) / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << bytes;
  }
  std::string dir_;
};

void be32(std::string* s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// A TZif file with no transitions, one type of offset `first_offset` and the given footer (v2+).
std::string tzif(char version, int32_t first_offset, const std::string& footer) {
  std::string out;
  for (int pass = 0; pass < (version == 0 ? 1 : 2); ++pass) {
    out += "TZif";
    out.push_back(version);
    out.append(15, '\0');
    for (uint32_t c : {0u, 0u, 0u, 0u, 1u, 4u}) be32(&out, c);  // isut, isstd, leap, time, type, char
    be32(&out, static_cast<uint32_t>(first_offset));
    out.push_back('\0');
    out.push_back('\0');
    out.append("ZZZ", 4);
  }
  if (version != 0) out += "\n" + footer + "\n";
  return out;
}

TEST_F(TzDir, FootersAgreeWithGlibcsReadingOfTheSameString) {
  const char* const kFooters[] = {
      "EST5EDT,M3.2.0,M11.1.0",
      "<+0530>-5:30",
      "<-03>3",
      "CET-1CEST,M3.5.0,M10.5.0/3",
      "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
      "AAA3BBB,J60/2,J300/2",
      "AAA-2BBB,59/3,299/1:30",
      "NZST-12NZDT,M9.5.0,M4.1.0/3",
      "<-02>2<-01>,M3.5.0/-1,M10.5.0/0",

      "XXX-1YYY,M3.5.0/-25,M10.5.0/26",
      "AAA5BBB4,M4.1.0/1:30:15,M10.5.6/23:59:59",
  };
  Lcg rng{7};
  for (const char* footer : kFooters) {
    write("Test/Zone", tzif('3', 0, footer));
    auto tz = TimeZone::load("Test/Zone", dir_);
    ASSERT_TRUE(tz.ok()) << footer << ": " << tz.error().message;
    Glibc g(footer);
    for (int i = 0; i < 3000; ++i) expect_same(**tz, g, rng.in(utc(1990, 1, 1), utc(2045, 12, 31)), footer);
  }
}

// RFC 8536's example of DST all year: the end (Dec 31, 25:00 DST) falls after the next start (Jan 1, 00:00
// standard), so no instant is standard time. glibc decides per UTC year and reads the last hours of each year
// as standard; this is the RFC's reading, hence no comparison with glibc here.
TEST_F(TzDir, DstAllYearFooter) {
  write("Test/AllYear", tzif('3', 0, "EST5EDT,0/0,J365/25"));
  auto tz = TimeZone::load("Test/AllYear", dir_);
  ASSERT_TRUE(tz.ok()) << tz.error().message;
  Lcg rng{11};
  for (int i = 0; i < 2000; ++i) {
    const int64_t t = rng.in(utc(1990, 1, 1), utc(2045, 12, 31));
    ASSERT_EQ((*tz)->offset_at(t), -4 * 3600) << t;
  }
  for (int y = 1990; y < 2046; ++y) {
    for (int64_t d = -3600; d <= 3600; d += 600)
      ASSERT_EQ((*tz)->offset_at(utc(y, 1, 1, 5) + d), -4 * 3600) << y;
  }
}

TEST_F(TzDir, VersionOneFileAndEmptyFooter) {
  write("V1/Zone", tzif(0, 19800, ""));
  auto v1 = TimeZone::load("V1/Zone", dir_);
  ASSERT_TRUE(v1.ok()) << v1.error().message;
  EXPECT_EQ((*v1)->offset_at(utc(2030, 1, 1)), 19800);
  write("V2/Zone", tzif('2', -3600, ""));
  auto v2 = TimeZone::load("V2/Zone", dir_);
  ASSERT_TRUE(v2.ok()) << v2.error().message;
  EXPECT_EQ((*v2)->offset_at(utc(2030, 1, 1)), -3600);
  write("V4/Zone", tzif('4', 0, "<+04>-4"));
  auto v4 = TimeZone::load("V4/Zone", dir_);
  ASSERT_TRUE(v4.ok()) << v4.error().message;
  EXPECT_EQ((*v4)->offset_at(utc(2030, 1, 1)), 4 * 3600);
}

TEST_F(TzDir, UnknownZoneIsENOENTNamingIt) {
  auto r = TimeZone::load("Mars/Olympus");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, -ENOENT);
  EXPECT_EQ(r.error().message, "unknown time zone \"Mars/Olympus\"");
  // A directory of zones is not a zone.
  auto d = TimeZone::load("America");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, -ENOENT);
  auto e = TimeZone::load("Asia/Kolkata", dir_);  // the empty directory
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code, -ENOENT);
}

TEST_F(TzDir, MalformedFilesAreEINVALNotATzifFile) {
  std::string real;
  {
    std::ifstream f("/usr/share/zoneinfo/America/New_York", std::ios::binary);
    real.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  ASSERT_GT(real.size(), 200U);
  std::string bad_footer = tzif('2', 0, "EST5EDT,M3.2.0");
  std::string bad_version = real;
  bad_version[4] = '9';
  const std::pair<const char*, std::string> kCases[] = {
      {"Junk/Text", "this is not a zone file at all, just words\n"},
      {"Junk/Empty", ""},
      {"Junk/Truncated", real.substr(0, 200)},
      {"Junk/NoFooter", real.substr(0, real.rfind('\n', real.size() - 2))},
      {"Junk/BadFooter", bad_footer},
      {"Junk/BadFooter2", tzif('2', 0, "EST")},
      {"Junk/BadFooter3", tzif('2', 0, "EST5EDT,M13.1.0,M11.1.0")},
      {"Junk/BadFooter4", tzif('2', 0, "<+0530-5:30")},
      {"Junk/Version", bad_version},
  };
  for (const auto& [name, bytes] : kCases) {
    write(name, bytes);
    auto r = TimeZone::load(name, dir_);
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_EQ(r.error().code, -EINVAL) << name;
    EXPECT_NE(r.error().message.find("not a TZif file"), std::string::npos)
        << name << ": " << r.error().message;
    EXPECT_NE(r.error().message.find(name), std::string::npos) << r.error().message;
  }
  // The same bytes, intact, load.
  write("Good/Zone", real);
  EXPECT_TRUE(TimeZone::load("Good/Zone", dir_).ok());
}

TEST_F(TzDir, UnsafeOrMalformedNamesAreRefused) {
  write("Good/Zone", tzif('2', 0, "UTC0"));
  for (const char* name : {"../etc/passwd", "Good/../Good/Zone", "..", "/etc/localtime", "", "Good/Zone ",
                           "Good\\Zone", "Good/Zone;rm", "Good/Zone\n", "Asia/K\xc3\xb6lkata"}) {
    auto r = TimeZone::load(name, dir_);
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_EQ(r.error().code, -EINVAL) << name;
    EXPECT_EQ(r.error().message.find("invalid time zone name"), 0U) << r.error().message;
  }
  for (const char* name :
       {"Good/Zone", "Etc/GMT+5", "Etc/GMT-14", "America/Port-au-Prince", "America/Argentina/Buenos_Aires"}) {
    const std::string dir = std::string(name) == "Good/Zone" ? dir_ : "/usr/share/zoneinfo";
    auto r = TimeZone::load(name, dir);
    EXPECT_TRUE(r.ok()) << name << ": " << (r.ok() ? "" : r.error().message);
  }
  EXPECT_EQ((*TimeZone::load("Etc/GMT+5"))->offset_at(0), -5 * 3600);  // POSIX sign: GMT+5 is west
}

TEST_F(TzDir, TimeZonesReadsEachNameOnce) {
  write("A/Zone", tzif('2', 0, "<+0530>-5:30"));
  TimeZones zones(dir_);
  auto a = zones.get("A/Zone");
  ASSERT_TRUE(a.ok()) << a.error().message;
  auto missing = zones.get("B/Zone");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, -ENOENT);
  // Changed or created on disk afterwards: the cache answers as before, without reading again.
  write("A/Zone", tzif('2', 0, "<+01>-1"));
  write("B/Zone", tzif('2', 0, "UTC0"));
  auto again = zones.get("A/Zone");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->get(), a->get());
  EXPECT_EQ((*again)->offset_at(0), 19800);
  EXPECT_FALSE(zones.get("B/Zone").ok());
  EXPECT_EQ(zones.get("../x").error().code, -EINVAL);
  // A fresh cache sees the new files.
  TimeZones fresh(dir_);
  EXPECT_EQ((*fresh.get("A/Zone"))->offset_at(0), 3600);
  EXPECT_TRUE(fresh.get("B/Zone").ok());
}

}  // namespace
