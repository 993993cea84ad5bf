// Validation of what clients send to the API, as pure functions (no store, no I/O) so fuzz targets can call
// them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "osvi/calls/call_service.hpp"
#include "osvi/net/json.hpp"
#include "osvi/store/calls.hpp"

namespace osvi::daemon {

// Bounds on free-text fields (docs/api.md, "Limits"); characters are Unicode code points.
inline constexpr size_t kMaxAgentUuidChars = 64;
inline constexpr size_t kMaxPhoneNumberChars = 32;
inline constexpr size_t kMaxCountryCodeChars = 8;
inline constexpr size_t kMaxPersonNameChars = 200;
inline constexpr size_t kMaxSystemPromptChars = 20000;
inline constexpr size_t kMaxGreetingChars = 2000;
inline constexpr size_t kMaxWebhookUrlChars = 2048;
inline constexpr size_t kMaxAdditionalDataKeyChars = 64;
inline constexpr size_t kMaxOverridesBytes = 4096;  // compact JSON
inline constexpr size_t kMaxExtractionItems = 50;
inline constexpr size_t kMaxExtractionKeyChars = 64;
inline constexpr size_t kMaxExtractionDescriptionChars = 1000;
inline constexpr size_t kMaxExtractionFormatChars = 200;
inline constexpr size_t kMaxLogLevelChars = 16;
inline constexpr size_t kMaxQueryValueChars = 256;
inline constexpr int64_t kMaxPerPage = 100;

// A check that failed: the message starts with the field's name and quotes (net::quoted) whatever it repeats.
struct Invalid {
  std::string message;
};

// POST /v1/call (legacy = POST /call: 3.17, without greeting, overrides, extraction). The body is an object
// from net::json_parse_request, so its strings are already clean text. Unknown keys are ignored. With
// `extensions` (the box has a SIP line), a phone_number that does not normalise to E.164 but is a PBX
// extension (is_pbx_extension) is taken as it is.
std::optional<Invalid> parse_call_request(const cJSON* body, bool legacy, PlaceCallRequest* req,
                                          std::string* country, bool extensions = false);

// PUT|POST /v1/system/log_level: {"level": "..."}; *level is one of the names log::parse_level accepts.
std::optional<Invalid> parse_log_level_request(const cJSON* body, std::string* level);

using QueryParams = std::vector<std::pair<std::string, std::string>>;

// Every query parameter of any request: name and value clean text (no invalid UTF-8, no %00), values bounded.
std::optional<Invalid> check_query(const QueryParams& query);

// GET /v1/calls: the filter from the query, every parameter but the agent checks (which need the store).
// box_offset_minutes reads dates without a zone.
std::optional<Invalid> parse_calls_query(const QueryParams& query, int box_offset_minutes,
                                         CallFilter* filter);

// "2026-06-01" (midnight at the box's offset) or an ISO-8601 timestamp; nullopt when neither.
struct DateBound {
  int64_t ms = 0;
  bool date_only = false;
};
std::optional<DateBound> parse_date(std::string_view s, int box_offset_minutes);

// A positive decimal integer of at most 15 digits.
std::optional<int64_t> parse_positive(std::string_view s);

}  // namespace osvi::daemon
