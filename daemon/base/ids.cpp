// UUIDs, timestamps and tokens.
#include "osvi/base/ids.hpp"

#include <sys/random.h>

#include <array>
#include <cstdio>
#include <ctime>

#include "osvi/base/civil.hpp"

namespace osvi::daemon {
namespace {

void fill_random(unsigned char* buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = getrandom(buf + got, len - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
}

void civil(int64_t unix_s, tm* out) {
  time_t t = static_cast<time_t>(unix_s);
  gmtime_r(&t, out);
}

bool digits_at(std::string_view s, size_t pos, size_t n, int64_t* out) {
  if (pos + n > s.size()) return false;
  int64_t v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

}  // namespace

std::string new_uuid_v7(int64_t unix_ms) {
  std::array<unsigned char, 16> b{};
  fill_random(b.data(), b.size());
  uint64_t ms = static_cast<uint64_t>(unix_ms);
  for (int i = 0; i < 6; ++i) b[static_cast<size_t>(i)] = static_cast<unsigned char>(ms >> (40 - 8 * i));
  b[6] = static_cast<unsigned char>(0x70 | (b[6] & 0x0F));
  b[8] = static_cast<unsigned char>(0x80 | (b[8] & 0x3F));
  char out[37];
  std::snprintf(out, sizeof out, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out;
}

bool is_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

std::string format_local_iso(int64_t unix_ms, int offset_minutes) {
  int64_t secs = unix_ms / 1000 - (unix_ms % 1000 < 0 ? 1 : 0);
  tm t{};
  civil(secs + offset_minutes * 60, &t);
  char sign = offset_minutes < 0 ? '-' : '+';
  int off = offset_minutes < 0 ? -offset_minutes : offset_minutes;
  const int year = t.tm_year + 1900;
  if (year < 0 || year > 9999 || off / 60 > 99) {
    char out[96];
    std::snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", year, t.tm_mon + 1, t.tm_mday,
                  t.tm_hour, t.tm_min, t.tm_sec, sign, off / 60, off % 60);
    return out;
  }
  // Every listed call formats two of these: digits by hand skip snprintf's format parsing.
  std::string out = "0000-00-00T00:00:00+00:00";
  auto put2 = [&out](size_t at, int v) {
    out[at] = static_cast<char>('0' + v / 10);
    out[at + 1] = static_cast<char>('0' + v % 10);
  };
  put2(0, year / 100);
  put2(2, year % 100);
  put2(5, t.tm_mon + 1);
  put2(8, t.tm_mday);
  put2(11, t.tm_hour);
  put2(14, t.tm_min);
  put2(17, t.tm_sec);
  out[19] = sign;
  put2(20, off / 60);
  put2(23, off % 60);
  return out;
}

std::string format_utc_micro(int64_t unix_ms) {
  int64_t ms = ((unix_ms % 1000) + 1000) % 1000;
  int64_t secs = (unix_ms - ms) / 1000;
  tm t{};
  civil(secs, &t);
  char out[96];
  std::snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d.%03d000Z", t.tm_year + 1900, t.tm_mon + 1,
                t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, static_cast<int>(ms));
  return out;
}

std::optional<IsoTime> parse_iso_time(std::string_view s, int default_offset_minutes) {
  int64_t y = 0, mo = 0, d = 0;
  if (!digits_at(s, 0, 4, &y) || s.size() < 10 || s[4] != '-' || !digits_at(s, 5, 2, &mo) || s[7] != '-' ||
      !digits_at(s, 8, 2, &d)) {
    return std::nullopt;
  }
  static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo < 1 || mo > 12 || d < 1 || d > kDays[mo - 1] || (mo == 2 && d == 29 && !leap)) return std::nullopt;
  const int64_t day_ms = days_from_civil(y, static_cast<int>(mo), static_cast<int>(d)) * 86'400'000;
  if (s.size() == 10) return IsoTime{day_ms - default_offset_minutes * 60'000LL, true, false};

  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return std::nullopt;
  int64_t h = 0, mi = 0, sec = 0, frac_ms = 0;
  if (!digits_at(s, 11, 2, &h) || s.size() < 16 || s[13] != ':' || !digits_at(s, 14, 2, &mi))
    return std::nullopt;
  size_t pos = 16;
  if (pos < s.size() && s[pos] == ':') {
    if (!digits_at(s, pos + 1, 2, &sec)) return std::nullopt;
    pos += 3;
    if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
      ++pos;
      int64_t scale = 100;
      size_t first = pos;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        frac_ms += (s[pos] - '0') * scale;
        scale /= 10;
        ++pos;
      }
      if (pos == first) return std::nullopt;
    }
  }
  if (h > 23 || mi > 59 || sec > 60) return std::nullopt;
  int64_t offset = default_offset_minutes;
  const std::string_view zone = s.substr(pos);
  if (zone == "Z" || zone == "z") {
    offset = 0;
  } else if (!zone.empty()) {
    const char sign = zone[0];
    if (sign != '+' && sign != '-') return std::nullopt;
    int64_t zh = 0, zm = 0;
    if (!digits_at(zone, 1, 2, &zh)) return std::nullopt;
    if (zone.size() == 6 && zone[3] == ':' && digits_at(zone, 4, 2, &zm)) {
    } else if (zone.size() == 5 && digits_at(zone, 3, 2, &zm)) {
    } else if (zone.size() != 3) {
      return std::nullopt;
    }
    if (zh > 23 || zm > 59) return std::nullopt;
    offset = (sign == '-' ? -1 : 1) * (zh * 60 + zm);
  }
  return IsoTime{day_ms + ((h * 60 + mi) * 60 + sec) * 1000 + frac_ms - offset * 60'000, false,
                 !zone.empty()};
}

std::string random_token(size_t length) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string out;
  out.reserve(length);
  while (out.size() < length) {
    unsigned char b[32];
    fill_random(b, sizeof b);
    for (unsigned char c : b) {
      // 248 = 4 * 62: rejecting the rest keeps every character equally likely.
      if (c < 248 && out.size() < length) out += kAlphabet[c % kAlphabet.size()];
    }
  }
  return out;
}

std::string fnv1a_hex(std::string_view text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  unsigned diff = static_cast<unsigned>(a.size() ^ b.size());
  size_t n = a.size() < b.size() ? a.size() : b.size();
  for (size_t i = 0; i < n; ++i)
    diff |= static_cast<unsigned>(static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]));
  return diff == 0;
}

}  // namespace osvi::daemon
