// osvictl's pure pieces (no I/O): aligned tables, the option parser, time arguments and exit codes.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace osvi::ctl {

// Exit codes (docs/osvictl.md): scripts tell "the daemon refused" from "the daemon is not there".
inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;      // the daemon answered with an error, or a local check failed
inline constexpr int kExitUsage = 2;        // bad command line
inline constexpr int kExitUnreachable = 3;  // no daemon at the address, no token, or the token was refused

// Rows of cells printed with each column as wide as its widest cell (counted in code points, so a name with
// "é" lines up), two spaces between columns, the last column unpadded. Cells never hold a newline or a tab:
// they are replaced by spaces, so a message cannot break the table's lines.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  void add(std::vector<std::string> row);  // shorter rows are padded with empty cells
  std::string render() const;
  size_t rows() const { return rows_.size(); }

 private:
  std::vector<std::vector<std::string>> rows_;  // the header first
};

// Code points in UTF-8 text (continuation bytes not counted).
size_t display_width(std::string_view s);

// The command line after the command words: `--name value` options, `--flag` switches and positional
// arguments. Options not in `valued` or `flags` are an error naming them, as is a valued option without a
// value or given twice; "-o" style short names are listed as written ("-o", "-n").
struct Args {
  std::map<std::string, std::string> options;
  std::set<std::string> flags;
  std::vector<std::string> positional;
  std::optional<std::string> get(const std::string& name) const;
  bool has(const std::string& name) const { return flags.count(name) > 0; }
};
// nullopt and *error set on a bad command line.
std::optional<Args> parse_args(const std::vector<std::string>& argv, const std::set<std::string>& valued,
                               const std::set<std::string>& flags, std::string* error);

// A positive integer of at most 9 digits; nullopt otherwise.
std::optional<int64_t> parse_count(std::string_view s);

// `logs --since`: "30s", "15m", "2h", "7d" (that long before now_us), or "YYYY-MM-DD",
// "YYYY-MM-DDTHH:MM[:SS]" (also with a space for the T) followed by "Z", "±HH:MM" or nothing (= UTC). Returns
// microseconds since the epoch (CLOCK_REALTIME, the journal's realtime clock); nullopt when the text is none
// of these.
std::optional<int64_t> parse_since(std::string_view s, int64_t now_us);

// "2026-12-03T10:00:00.123Z" for a CLOCK_REALTIME microsecond count.
std::string utc_iso_us(int64_t realtime_us);

// Query string from name/value pairs, each value percent-encoded (RFC 3986 unreserved bytes kept).
std::string query_string(const std::vector<std::pair<std::string, std::string>>& params);
std::string percent_encode(std::string_view s);

// "1h 02m 03s" / "4m 05s" / "12s" for a count of seconds.
std::string human_duration(int64_t seconds);

}  // namespace osvi::ctl
