// IANA time zones read from the system's TZif files (/usr/share/zoneinfo): UTC offsets at any instant, DST
// included, and the local calendar fields the dialler's calling windows need. GCC 12's libstdc++ has no
// std::chrono::tzdb, and localtime_r through $TZ is process-global state; this reader is neither.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"

namespace osvi::daemon {

// A broken-down local time.
struct LocalTime {
  int year = 1970, month = 1, day = 1;  // month 1..12, day 1..31
  int weekday = 4;                      // 0 = Sunday .. 6 = Saturday
  int minute_of_day = 0;                // 0..1439
  int second = 0;                       // of the minute
  int utc_offset_s = 0;                 // in effect at that instant
};

class TimeZone {
 public:
  // Reads <zoneinfo_dir>/<name> (TZif v1..v4, the POSIX TZ footer for instants past the last transition).
  // The name must look like an IANA zone ("Asia/Kolkata", "UTC"): no "..", no leading '/'. Errors name the
  // zone: 'unknown time zone "Mars/Olympus"' (-ENOENT), 'not a TZif file' (-EINVAL).
  static Result<std::shared_ptr<const TimeZone>> load(
      std::string_view name, const std::string& zoneinfo_dir = "/usr/share/zoneinfo");
  // A fixed offset (tests, and a fallback that never fails).
  static std::shared_ptr<const TimeZone> fixed(std::string name, int utc_offset_s);

  const std::string& name() const { return name_; }
  // The offset from UTC (seconds east) in effect at utc_s.
  int offset_at(int64_t utc_s) const;
  LocalTime local(int64_t utc_ms) const;
  // The instant (Unix ms) of a local wall time. In a gap (clocks forward) or an overlap (clocks back) it
  // follows the offset in effect around that time.
  int64_t utc_ms_of(int year, int month, int day, int minute_of_day) const;
  // The UTC instant (ms) of the first moment >= utc_ms whose local time is inside [start_min, end_min) of a
  // day whose weekday bit is set in days_mask (bit 0 = Sunday); the window wraps past midnight when
  // start_min > end_min, and [0, 1440) is the whole day. A local time skipped by a DST change counts as its
  // wall-clock successor. Returns utc_ms itself when it is already inside; -1 when no such day exists within
  // 8 days (an empty mask or window).
  int64_t next_inside(int64_t utc_ms, int start_min, int end_min, int days_mask = 0x7f) const;

  struct Transition {
    int64_t at_s;  // UTC seconds
    int offset_s;  // the offset from then on
  };
  struct Rule;  // the POSIX TZ footer, parsed (time_zone.cpp)

 private:
  TimeZone() = default;
  std::string name_;
  std::vector<Transition> transitions_;  // ascending
  int initial_offset_s_ = 0;             // before the first transition
  std::shared_ptr<const Rule> rule_;     // after the last transition; null = the last offset forever
};

// Zones by name, loaded once each (the dialler asks per contact). Loop thread only.
class TimeZones {
 public:
  explicit TimeZones(std::string zoneinfo_dir = "/usr/share/zoneinfo") : dir_(std::move(zoneinfo_dir)) {}
  // The zone, or an error for an unknown name (the error is remembered too: asked again, no second read).
  Result<std::shared_ptr<const TimeZone>> get(std::string_view name);

 private:
  std::string dir_;
  struct Entry;
  std::vector<std::shared_ptr<Entry>> entries_;
};

}  // namespace osvi::daemon
