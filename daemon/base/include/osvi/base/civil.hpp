// Proleptic Gregorian calendar arithmetic (H. Hinnant's algorithms), header-only so the fuzz targets that
// compile single sources of base need nothing else.
#pragma once

#include <cstdint>

namespace osvi::daemon {

// Days since 1970-01-01 of a date; month 1..12.
constexpr int64_t days_from_civil(int64_t year, int month, int day) {
  year -= month <= 2 ? 1 : 0;
  const int64_t era = (year >= 0 ? year : year - 399) / 400;
  const int64_t yoe = year - era * 400;
  const int64_t doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

}  // namespace osvi::daemon
