// osvictl's pure pieces: tables, the option parser, time arguments (osvictl_text.hpp).
#include "osvictl_text.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <ctime>

namespace osvi::ctl {

size_t display_width(std::string_view s) {
  size_t n = 0;
  for (char c : s)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  return n;
}

Table::Table(std::vector<std::string> headers) {
  add(std::move(headers));
}

void Table::add(std::vector<std::string> row) {
  for (std::string& cell : row)
    for (char& c : cell)
      if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  rows_.push_back(std::move(row));
}

std::string Table::render() const {
  size_t cols = 0;
  for (const auto& r : rows_) cols = std::max(cols, r.size());
  std::vector<size_t> width(cols, 0);
  for (const auto& r : rows_)
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], display_width(r[i]));
  std::string out;
  for (const auto& r : rows_) {
    std::string line;
    for (size_t i = 0; i < cols; ++i) {
      const std::string empty;
      const std::string& cell = i < r.size() ? r[i] : empty;
      line += cell;
      if (i + 1 < cols) line.append(width[i] - display_width(cell) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  }
  return out;
}

std::optional<std::string> Args::get(const std::string& name) const {
  auto it = options.find(name);
  if (it == options.end()) return std::nullopt;
  return it->second;
}

std::optional<Args> parse_args(const std::vector<std::string>& argv, const std::set<std::string>& valued,
                               const std::set<std::string>& flags, std::string* error) {
  Args a;
  for (size_t i = 0; i < argv.size(); ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      for (++i; i < argv.size(); ++i) a.positional.push_back(argv[i]);
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      a.positional.push_back(arg);
      continue;
    }
    std::string value;
    bool inline_value = false;
    if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
      inline_value = true;
    }
    if (flags.count(arg)) {
      if (inline_value) {
        *error = arg + " takes no value";
        return std::nullopt;
      }
      a.flags.insert(arg);
      continue;
    }
    if (!valued.count(arg)) {
      *error = "unknown option " + arg;
      return std::nullopt;
    }
    if (!inline_value) {
      if (i + 1 >= argv.size()) {
        *error = arg + " needs a value";
        return std::nullopt;
      }
      value = argv[++i];
    }
    if (a.options.count(arg)) {
      *error = arg + " given twice";
      return std::nullopt;
    }
    a.options[arg] = value;
  }
  return a;
}

std::optional<int64_t> parse_count(std::string_view s) {
  if (s.empty() || s.size() > 9) return std::nullopt;
  int64_t n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end != s.data() + s.size() || n < 1) return std::nullopt;
  return n;
}

namespace {

bool digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

}  // namespace

std::optional<int64_t> parse_since(std::string_view s, int64_t now_us) {
  if (s.empty()) return std::nullopt;
  // Relative: a count and a unit.
  if (const char unit = s.back(); unit == 's' || unit == 'm' || unit == 'h' || unit == 'd') {
    if (auto n = parse_count(s.substr(0, s.size() - 1))) {
      const int64_t per = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : 86400;
      return now_us - *n * per * 1'000'000;
    }
  }
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (!digits(s, 0, 4, &y) || s.size() < 10 || s[4] != '-' || !digits(s, 5, 2, &mo) || s[7] != '-' ||
      !digits(s, 8, 2, &d))
    return std::nullopt;
  size_t pos = 10;
  if (pos < s.size() && (s[pos] == 'T' || s[pos] == ' ')) {
    if (!digits(s, pos + 1, 2, &h) || pos + 3 >= s.size() || s[pos + 3] != ':' || !digits(s, pos + 4, 2, &mi))
      return std::nullopt;
    pos += 6;
    if (pos < s.size() && s[pos] == ':') {
      if (!digits(s, pos + 1, 2, &sec)) return std::nullopt;
      pos += 3;
    }
  }
  int offset_min = 0;
  if (pos < s.size()) {
    const std::string_view zone = s.substr(pos);
    if (zone == "Z") {
      offset_min = 0;
    } else if ((zone[0] == '+' || zone[0] == '-') && zone.size() == 6 && zone[3] == ':') {
      int zh = 0, zm = 0;
      if (!digits(zone, 1, 2, &zh) || !digits(zone, 4, 2, &zm)) return std::nullopt;
      offset_min = (zh * 60 + zm) * (zone[0] == '-' ? -1 : 1);
    } else {
      return std::nullopt;
    }
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  const time_t t = timegm(&tm);
  return (static_cast<int64_t>(t) - offset_min * 60) * 1'000'000;
}

std::string utc_iso_us(int64_t realtime_us) {
  const time_t secs = static_cast<time_t>(realtime_us / 1'000'000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>((realtime_us / 1000) % 1000));
  return buf;
}

std::string percent_encode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string query_string(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string q;
  for (const auto& [name, value] : params) {
    q += q.empty() ? '?' : '&';
    q += percent_encode(name);
    q += '=';
    q += percent_encode(value);
  }
  return q;
}

std::string human_duration(int64_t seconds) {
  if (seconds < 0) seconds = 0;
  char buf[64];
  if (seconds >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh %02lldm %02llds", static_cast<long long>(seconds / 3600),
                  static_cast<long long>(seconds / 60 % 60), static_cast<long long>(seconds % 60));
  else if (seconds >= 60)
    std::snprintf(buf, sizeof buf, "%lldm %02llds", static_cast<long long>(seconds / 60),
                  static_cast<long long>(seconds % 60));
  else
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(seconds));
  return buf;
}

}  // namespace osvi::ctl
