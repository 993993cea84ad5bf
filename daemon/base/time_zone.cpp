// TimeZone: the TZif reader (RFC 8536, v1..v4), the POSIX TZ footer, and the calling-window search.
#include "osvi/base/time_zone.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <limits>

#include "osvi/base/civil.hpp"
#include "osvi/net/text.hpp"

namespace osvi::daemon {

namespace {

constexpr int64_t kDayS = 86400;
constexpr int64_t kDayMs = kDayS * 1000;
constexpr int64_t kForever = std::numeric_limits<int64_t>::max();

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int weekday_of(int64_t days) {
  return static_cast<int>(((days % 7) + 11) % 7);  // 1970-01-01 was a Thursday (4)
}

bool is_leap(int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int month_length(int64_t y, int m) {
  static constexpr std::array<int, 12> kLen{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kLen[static_cast<size_t>(m - 1)];
}

}  // namespace

// The POSIX TZ string of a TZif footer: "EST5EDT,M3.2.0,M11.1.0", "<+0530>-5:30", "<-03>3".
struct TimeZone::Rule {
  struct Date {
    enum Kind { kJulian1, kZeroBased, kMonthWeekDay } kind = kMonthWeekDay;
    int n = 0;                // kJulian1: 1..365 (Feb 29 never counted); kZeroBased: 0..365
    int month = 0, week = 0;  // kMonthWeekDay: 1..12, 1..5 (5 = the last)
    int weekday = 0;          // 0 = Sunday
    int64_t time_s = 7200;    // local time of day of the change, -167 h .. 167 h
  };
  int std_offset_s = 0;  // seconds east of UTC
  bool has_dst = false;
  int dst_offset_s = 0;
  Date start, end;  // into and out of DST

  // The day (since the epoch) of `date` in year y.
  static int64_t day_of(const Date& date, int64_t y) {
    const int64_t jan1 = days_from_civil(y, 1, 1);
    switch (date.kind) {
      case Date::kJulian1:
        return jan1 + date.n - 1 + (is_leap(y) && date.n >= 60 ? 1 : 0);
      case Date::kZeroBased:
        return jan1 + date.n;
      case Date::kMonthWeekDay: {
        const int64_t first = days_from_civil(y, date.month, 1);
        int64_t day = first + (date.weekday - weekday_of(first) + 7) % 7 + int64_t{7} * (date.week - 1);
        while (day >= first + month_length(y, date.month)) day -= 7;
        return day;
      }
    }
    return jan1;
  }

  // The offset in effect at t and the next instant it may change (kForever when it never does).
  void span(int64_t t, int* offset, int64_t* until) const {
    if (!has_dst) {
      *offset = std_offset_s;
      *until = kForever;
      return;
    }
    // Clamped to ±2^46 s (±2 million years): the arithmetic below then cannot overflow for any int64 t.
    const int64_t tc = std::clamp(t, -(int64_t{1} << 46), int64_t{1} << 46);
    const CivilDate date_now = civil_from_days(floor_div(tc + std_offset_s, kDayS));
    const int64_t y = date_now.year;
    // Two years back: a change late in one year (or an end spilling past Dec 31) still decides early t.
    struct Change {
      int64_t at;
      int order;
      int offset;
    };
    std::array<Change, 8> changes{};
    size_t n = 0;
    for (int64_t yy = y - 2; yy <= y + 1; ++yy) {
      const int64_t order = (yy - y + 2) * 2;
      changes[n++] = {day_of(start, yy) * kDayS + start.time_s - std_offset_s, static_cast<int>(order + 1),
                      dst_offset_s};
      changes[n++] = {day_of(end, yy) * kDayS + end.time_s - dst_offset_s, static_cast<int>(order),
                      std_offset_s};
    }
    std::sort(changes.begin(), changes.end(), [](const Change& a, const Change& b) {
      return a.at != b.at ? a.at < b.at : a.order < b.order;
    });
    *offset = std_offset_s;
    *until = kForever;
    for (const Change& c : changes) {
      if (c.at <= t) {
        *offset = c.offset;
      } else {
        *until = c.at;
        break;
      }
    }
  }
};

namespace {

using Rule = TimeZone::Rule;

// A cursor over the footer text; every parse_* returns false on text POSIX does not allow.
struct TzText {
  std::string_view s;
  size_t i = 0;
  bool done() const { return i >= s.size(); }
  char peek() const { return done() ? '\0' : s[i]; }
};

bool parse_name(TzText& p) {
  if (p.peek() == '<') {
    const size_t close = p.s.find('>', p.i);
    if (close == std::string_view::npos || close - p.i - 1 < 3) return false;
    for (size_t k = p.i + 1; k < close; ++k) {
      const char c = p.s[k];
      if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
            c == '-'))
        return false;
    }
    p.i = close + 1;
    return true;
  }
  const size_t from = p.i;
  while ((p.peek() >= 'A' && p.peek() <= 'Z') || (p.peek() >= 'a' && p.peek() <= 'z')) ++p.i;
  return p.i - from >= 3;
}

bool parse_number(TzText& p, int max, int* out) {
  if (!(p.peek() >= '0' && p.peek() <= '9')) return false;
  int v = 0;
  while (p.peek() >= '0' && p.peek() <= '9') {
    v = v * 10 + (p.peek() - '0');
    if (v > max) return false;
    ++p.i;
  }
  *out = v;
  return true;
}

// [+-]hh[:mm[:ss]] in seconds; max_hours 24 for an offset, 167 for a v3+ transition time.
bool parse_hms(TzText& p, int max_hours, int64_t* out) {
  int sign = 1;
  if (p.peek() == '+' || p.peek() == '-') {
    sign = p.peek() == '-' ? -1 : 1;
    ++p.i;
  }
  int h = 0, m = 0, s = 0;
  if (!parse_number(p, max_hours, &h)) return false;
  if (p.peek() == ':') {
    ++p.i;
    if (!parse_number(p, 59, &m)) return false;
    if (p.peek() == ':') {
      ++p.i;
      if (!parse_number(p, 59, &s)) return false;
    }
  }
  *out = sign * (int64_t{h} * 3600 + m * 60 + s);
  return true;
}

bool parse_date(TzText& p, Rule::Date* d) {
  if (p.peek() == 'J') {
    ++p.i;
    d->kind = Rule::Date::kJulian1;
    if (!parse_number(p, 365, &d->n) || d->n < 1) return false;
  } else if (p.peek() == 'M') {
    ++p.i;
    d->kind = Rule::Date::kMonthWeekDay;
    if (!parse_number(p, 12, &d->month) || d->month < 1 || p.peek() != '.') return false;
    ++p.i;
    if (!parse_number(p, 5, &d->week) || d->week < 1 || p.peek() != '.') return false;
    ++p.i;
    if (!parse_number(p, 6, &d->weekday)) return false;
  } else {
    d->kind = Rule::Date::kZeroBased;
    if (!parse_number(p, 365, &d->n)) return false;
  }
  d->time_s = 7200;
  if (p.peek() == '/') {
    ++p.i;
    if (!parse_hms(p, 167, &d->time_s)) return false;
  }
  return true;
}

// POSIX offsets count west of UTC ("EST5"); the Rule stores seconds east.
bool parse_rule(std::string_view text, Rule* r) {
  TzText p{text};
  int64_t west = 0;
  if (!parse_name(p) || !parse_hms(p, 24, &west)) return false;
  r->std_offset_s = static_cast<int>(-west);
  if (p.done()) return true;
  if (!parse_name(p)) return false;
  r->has_dst = true;
  r->dst_offset_s = r->std_offset_s + 3600;
  if (!p.done() && p.peek() != ',') {
    if (!parse_hms(p, 24, &west)) return false;
    r->dst_offset_s = static_cast<int>(-west);
  }
  if (p.done()) {
    // No rule given: POSIX leaves it to the implementation; the US rules, as glibc's default "posixrules".
    r->start = {Rule::Date::kMonthWeekDay, 0, 3, 2, 0, 7200};
    r->end = {Rule::Date::kMonthWeekDay, 0, 11, 1, 0, 7200};
    return true;
  }
  if (p.peek() != ',') return false;
  ++p.i;
  if (!parse_date(p, &r->start) || p.peek() != ',') return false;
  ++p.i;
  if (!parse_date(p, &r->end)) return false;
  return p.done();
}

struct Reader {
  std::string_view data;
  size_t pos = 0;
  bool has(size_t n) const { return n <= data.size() - pos; }
  uint32_t u32() {
    const auto* b = reinterpret_cast<const unsigned char*>(data.data() + pos);
    pos += 4;
    return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
  }
  int64_t i64() {
    const uint64_t hi = u32();
    const uint64_t lo = u32();
    return static_cast<int64_t>((hi << 32) | lo);
  }
};

struct Header {
  char version = 0;
  uint32_t isutcnt = 0, isstdcnt = 0, leapcnt = 0, timecnt = 0, typecnt = 0, charcnt = 0;
  // The data block's size for times of time_size bytes (4: v1, 8: v2+).
  uint64_t block(size_t time_size) const {
    return uint64_t{timecnt} * time_size + timecnt + uint64_t{typecnt} * 6 + charcnt +
           uint64_t{leapcnt} * (time_size + 4) + isstdcnt + isutcnt;
  }
};

bool read_header(Reader& r, Header* h, std::string* why) {
  if (!r.has(44) || r.data.substr(r.pos, 4) != "TZif") {
    *why = "bad magic";
    return false;
  }
  h->version = r.data[r.pos + 4];
  if (h->version != 0 && (h->version < '2' || h->version > '4')) {
    *why = "unknown version";
    return false;
  }
  r.pos += 20;
  h->isutcnt = r.u32();
  h->isstdcnt = r.u32();
  h->leapcnt = r.u32();
  h->timecnt = r.u32();
  h->typecnt = r.u32();
  h->charcnt = r.u32();
  if (h->typecnt == 0 || (h->isutcnt != 0 && h->isutcnt != h->typecnt) ||
      (h->isstdcnt != 0 && h->isstdcnt != h->typecnt) || h->timecnt > 100000 || h->typecnt > 256 ||
      h->leapcnt > 100000 || h->charcnt > 100000) {
    *why = "inconsistent header counts";
    return false;
  }
  return true;
}

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || name.front() == '/' || name.find("..") != std::string_view::npos)
    return false;
  for (char c : name) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '+' || c == '-' || c == '/'))
      return false;
  }
  return true;
}

}  // namespace

Result<std::shared_ptr<const TimeZone>> TimeZone::load(std::string_view name,
                                                       const std::string& zoneinfo_dir) {
  if (!valid_name(name)) return make_error("invalid time zone name " + net::quoted(name), -EINVAL);
  const std::string path = zoneinfo_dir + "/" + std::string(name);
  const std::string unknown = "unknown time zone " + net::quoted(name);

  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return make_error(unknown, -ENOENT);
    return make_error("time zone " + net::quoted(name) + ": " + path + ": " + std::strerror(errno), -errno);
  }
  std::string data;
  struct stat st {};
  bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  int read_errno = 0;
  if (regular && st.st_size <= (1 << 20)) {
    char buf[16384];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) read_errno = errno;
      if (n <= 0) break;
      data.append(buf, static_cast<size_t>(n));
      if (data.size() > (1 << 20)) break;
    }
  }
  ::close(fd);
  if (!regular) return make_error(unknown, -ENOENT);  // a directory such as "America"
  if (read_errno != 0) {
    return make_error("time zone " + net::quoted(name) + ": " + path + ": " + std::strerror(read_errno),
                      -read_errno);
  }
  auto bad = [&](const std::string& why) {
    return make_error("time zone " + net::quoted(name) + ": " + path + " is not a TZif file (" + why + ")",
                      -EINVAL);
  };

  Reader r{data};
  Header h;
  std::string why;
  if (!read_header(r, &h, &why)) return bad(why);
  size_t time_size = 4;
  if (h.version != 0) {
    // v2+: skip the v1 block to the 64-bit header and data, which cover the whole time range.
    const uint64_t skip = h.block(4);
    if (!r.has(skip)) return bad("truncated");
    r.pos += skip;
    if (!read_header(r, &h, &why)) return bad(why);
    time_size = 8;
  }
  if (!r.has(h.block(time_size))) return bad("truncated");

  std::shared_ptr<TimeZone> tz(new TimeZone());
  tz->name_ = std::string(name);
  std::vector<int64_t> times(h.timecnt);
  for (auto& t : times) t = time_size == 8 ? r.i64() : static_cast<int32_t>(r.u32());
  std::vector<uint8_t> idx(h.timecnt);
  for (auto& i : idx) i = static_cast<uint8_t>(r.data[r.pos++]);
  std::vector<int> offsets(h.typecnt);
  for (auto& o : offsets) {
    const auto utoff = static_cast<int32_t>(r.u32());
    if (utoff < -89999 || utoff > 93599) return bad("offset out of range");  // RFC 8536: -25:59:59..+25:59:59
    o = utoff;
    r.pos += 2;  // isdst, desigidx: the offset alone is what callers need
  }
  r.pos += h.charcnt + uint64_t{h.leapcnt} * (time_size + 4) + h.isstdcnt + h.isutcnt;
  for (size_t k = 0; k < times.size(); ++k) {
    if (idx[k] >= h.typecnt) return bad("transition type out of range");
    if (k > 0 && times[k] <= times[k - 1]) return bad("transitions out of order");
    tz->transitions_.push_back({times[k], offsets[idx[k]]});
  }
  tz->initial_offset_s_ = offsets[0];

  if (h.version != 0) {
    // The footer: "\n<POSIX TZ>\n"; empty means no rule past the last transition.
    if (!r.has(2) || r.data[r.pos] != '\n') return bad("missing footer");
    const size_t end = r.data.find('\n', r.pos + 1);
    if (end == std::string_view::npos) return bad("unterminated footer");
    const std::string_view footer = r.data.substr(r.pos + 1, end - r.pos - 1);
    if (!footer.empty()) {
      auto rule = std::make_shared<Rule>();
      if (!parse_rule(footer, rule.get())) return bad("bad TZ footer " + net::quoted(footer));
      tz->rule_ = std::move(rule);
    }
  }
  return std::shared_ptr<const TimeZone>(std::move(tz));
}

std::shared_ptr<const TimeZone> TimeZone::fixed(std::string name, int utc_offset_s) {
  std::shared_ptr<TimeZone> tz(new TimeZone());
  tz->name_ = std::move(name);
  tz->initial_offset_s_ = utc_offset_s;
  return tz;
}

namespace {

// The offset at t and until when it holds: the table's, then the footer's past the last transition.
void span_of(const std::vector<TimeZone::Transition>& transitions, int initial, const Rule* rule, int64_t t,
             int* offset, int64_t* until) {
  if (transitions.empty() || t >= transitions.back().at_s) {
    if (rule != nullptr) {
      rule->span(t, offset, until);
    } else {
      *offset = transitions.empty() ? initial : transitions.back().offset_s;
      *until = kForever;
    }
    return;
  }
  const auto it = std::upper_bound(transitions.begin(), transitions.end(), t,
                                   [](int64_t v, const TimeZone::Transition& tr) { return v < tr.at_s; });
  *offset = it == transitions.begin() ? initial : std::prev(it)->offset_s;
  *until = it->at_s;
}

}  // namespace

int TimeZone::offset_at(int64_t utc_s) const {
  int offset = 0;
  int64_t until = 0;
  span_of(transitions_, initial_offset_s_, rule_.get(), utc_s, &offset, &until);
  return offset;
}

int64_t TimeZone::utc_ms_of(int year, int month, int day, int minute_of_day) const {
  const int64_t wall_s = days_from_civil(year, month, day) * 86400 + int64_t{minute_of_day} * 60;
  // The offset depends on the instant: a guess with the offset a day before, settled twice. A time skipped
  // by a DST change gets its wall-clock successor's offset, a repeated one the first.
  int64_t utc_s = wall_s - offset_at(wall_s - 86400);
  utc_s = wall_s - offset_at(utc_s);
  utc_s = wall_s - offset_at(utc_s);
  return utc_s * 1000;
}

LocalTime TimeZone::local(int64_t utc_ms) const {
  const int64_t utc_s = floor_div(utc_ms, 1000);
  LocalTime lt;
  lt.utc_offset_s = offset_at(utc_s);
  const int64_t wall = utc_s + lt.utc_offset_s;
  const int64_t days = floor_div(wall, kDayS);
  const int64_t sod = wall - days * kDayS;
  const CivilDate date = civil_from_days(days);
  lt.year = static_cast<int>(date.year);
  lt.month = date.month;
  lt.day = date.day;
  lt.weekday = weekday_of(days);
  lt.minute_of_day = static_cast<int>(sod / 60);
  lt.second = static_cast<int>(sod % 60);
  return lt;
}

// Walks the spans of constant offset from utc_ms; within one, wall time is utc + offset, so the first window
// (in wall-clock terms) that meets the span's wall range gives the answer in one step. A window belongs to
// the day it opens on: a Friday 22:00–06:00 window runs into Saturday morning on Friday's bit. A window
// opening in a DST gap opens at the change (its wall-clock successor); one in a repeated hour is inside both
// times.
int64_t TimeZone::next_inside(int64_t utc_ms, int start_min, int end_min, int days_mask) const {
  days_mask &= 0x7f;
  if (days_mask == 0 || start_min < 0 || start_min > 1440 || end_min < 0 || end_min > 1440 ||
      start_min == end_min)
    return -1;
  const bool wraps = start_min > end_min;
  const int64_t open_ms = int64_t{start_min} * 60000;
  const int64_t close_ms = (wraps ? int64_t{end_min} + 1440 : int64_t{end_min}) * 60000;
  if (utc_ms > (int64_t{1} << 55) || utc_ms < -(int64_t{1} << 55)) return -1;  // ±1 million years
  const int64_t limit = utc_ms + 8 * kDayMs;

  int64_t a = utc_ms;
  while (a < limit) {
    int offset_s = 0;
    int64_t until_s = 0;
    span_of(transitions_, initial_offset_s_, rule_.get(), floor_div(a, 1000), &offset_s, &until_s);
    const int64_t b = until_s >= kForever / 1000 ? limit : std::min(limit, until_s * 1000);
    const int64_t off_ms = int64_t{offset_s} * 1000;
    const int64_t wall_a = a + off_ms;
    const int64_t wall_b = b + off_ms;
    for (int64_t day = floor_div(wall_a, kDayMs) - 1; day * kDayMs + open_ms < wall_b; ++day) {
      if ((days_mask & (1 << weekday_of(day))) == 0) continue;
      const int64_t w_open = day * kDayMs + open_ms;
      const int64_t w_close = day * kDayMs + close_ms;
      if (w_close <= wall_a) continue;
      return std::max(wall_a, w_open) - off_ms;
    }
    if (b <= a) break;  // defensive: spans always move forward
    a = b;
  }
  return -1;
}

struct TimeZones::Entry {
  std::string name;
  Result<std::shared_ptr<const TimeZone>> zone;
};

Result<std::shared_ptr<const TimeZone>> TimeZones::get(std::string_view name) {
  for (const auto& e : entries_) {
    if (e->name == name) return e->zone;
  }
  auto entry = std::make_shared<Entry>(Entry{std::string(name), TimeZone::load(name, dir_)});
  entries_.push_back(entry);
  return entry->zone;
}

}  // namespace osvi::daemon
