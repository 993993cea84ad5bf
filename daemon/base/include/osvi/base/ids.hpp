// Identifiers and timestamps as the OSVI API shows them: UUIDs, ISO-8601 with the site's offset, tokens.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace osvi::daemon {

// RFC 9562 UUID v7 (time-ordered, so newer calls sort after older ones), lower-case.
std::string new_uuid_v7(int64_t unix_ms);
bool is_uuid(std::string_view text);

// "2026-06-01T14:05:09+05:30" — calls, campaigns, DND.
std::string format_local_iso(int64_t unix_ms, int offset_minutes);
// "2026-06-01T08:35:09.123000Z" — chat endpoints, as documented.
std::string format_utc_micro(int64_t unix_ms);

// An ISO-8601 (RFC 3339) date or date-time: "2026-06-01", or "2026-06-01T14:05[:09[.123]]" ('T', 't' or a
// space before the time) with "Z", "+05:30", "+0530", "+05" or no zone. The API's date filters and the
// configuration's campaign schedules read times with it.
struct IsoTime {
  int64_t unix_ms = 0;  // a date alone is its midnight; a time without a zone is read at the default offset
  bool date_only = false;  // "2026-06-01"
  bool has_zone = false;   // "Z" or an offset was given
};
std::optional<IsoTime> parse_iso_time(std::string_view text, int default_offset_minutes);

// Random text from [A-Za-z0-9] read from getrandom(); the API token format.
std::string random_token(size_t length);

// FNV-1a 64 as 16 lower-case hex digits: change detection (config hash, agent definitions), not security.
std::string fnv1a_hex(std::string_view text);

// Compares without an early exit, so response time does not reveal how much of a token matched.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace osvi::daemon
