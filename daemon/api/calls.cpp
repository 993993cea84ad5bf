// The calls resource (spec 3.2-3.6 and 3.17): placing calls, the call list, details, recording links.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/api/api.hpp"
#include "osvi/base/ids.hpp"
#include "osvi/base/log.hpp"
#include "osvi/base/phone.hpp"
#include "osvi/base/secret.hpp"
#include "osvi/calls/call_service.hpp"
#include "osvi/net/json.hpp"
#include "osvi/store/recordings.hpp"
#include "util.hpp"

namespace osvi::daemon {
namespace {

using net::HttpReply;
using net::HttpRequest;
using net::HttpResponse;
using net::JsonPtr;

constexpr int64_t kRecordingLinkSeconds = 900;  // spec 3.6: expires_in_seconds
constexpr size_t kMaxGreetingChars = 2000;
constexpr int64_t kMaxPerPage = 100;
constexpr std::string_view kStatuses[] = {"picked", "not_picked", "failed",
                                          "busy",   "voicemail",  "in_progress"};

bool token_allows(const ApiToken& token, std::string_view agent_uuid) {
  return token.agents.empty() ||
         std::find(token.agents.begin(), token.agents.end(), agent_uuid) != token.agents.end();
}

// --- JSON helpers ---

// An integer member printed by std::to_chars as a raw JSON number: this cJSON (1.7.15) prints every number
// with "%1.15g" and reads it back with sscanf to check the round trip, the largest share of printing a page.
// The name is a string literal: cJSON keeps the pointer (AddItemToObjectCS) instead of copying it, one
// allocation less per member of every listed call.
void add_int(cJSON* o, const char* name, int64_t value) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits - 1, value).ptr;
  *end = '\0';
  cJSON_AddItemToObjectCS(o, name, cJSON_CreateRaw(digits));
}

// A string member under a literal name; like net::json_add_string, but neither the name nor the value is
// copied on the way (the value's own terminator is used).
void add_text(cJSON* o, const char* name, const std::string& value) {
  cJSON_AddItemToObjectCS(o, name, cJSON_CreateString(value.c_str()));
}

void add_text_or_null(cJSON* o, const char* name, const std::optional<std::string>& value) {
  cJSON_AddItemToObjectCS(o, name, value ? cJSON_CreateString(value->c_str()) : cJSON_CreateNull());
}

void add_int_or_null(cJSON* o, const char* name, const std::optional<int64_t>& value) {
  if (value) {
    add_int(o, name, *value);
  } else {
    cJSON_AddItemToObjectCS(o, name, cJSON_CreateNull());
  }
}

void add_opt_time(cJSON* o, const char* name, const std::optional<int64_t>& ms, int offset) {
  if (ms) {
    net::json_add_string(o, name, format_local_iso(*ms, offset));
  } else {
    cJSON_AddNullToObject(o, name);
  }
}

// Stored JSON text as a JSON value; null when absent, or when the text is not of the expected kind (the
// store checks json_valid, but an object column could still hold an array written by another tool).
void add_stored_json(cJSON* o, const char* name, const std::optional<std::string>& text, bool want_object) {
  JsonPtr parsed;
  if (text) {
    std::string why;
    parsed = net::json_parse(*text, &why);
  }
  if (parsed && (!want_object || cJSON_IsObject(parsed.get()))) {
    cJSON_AddItemToObject(o, name, parsed.release());
  } else {
    cJSON_AddNullToObject(o, name);
  }
}

// "2026-06-01T14:05:09.123+05:30": transcript turns need sub-second order, the call fields do not.
std::string local_iso_ms(int64_t unix_ms, int offset) {
  std::string s = format_local_iso(unix_ms, offset);
  const int64_t ms = ((unix_ms % 1000) + 1000) % 1000;
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03d", static_cast<int>(ms));
  s.insert(19, frac);  // after "YYYY-MM-DDTHH:MM:SS"
  return s;
}

// --- request validation (POST /v1/call, /call) ---

// A field check that failed: the message names the field.
struct Invalid {
  std::string message;
};

size_t utf8_chars(std::string_view s) {
  // Continuation bytes (10xxxxxx) do not start a character.
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// JSON null counts as absent, as most clients send null for "not given".
const cJSON* member(const cJSON* object, const char* name) {
  const cJSON* v = cJSON_GetObjectItemCaseSensitive(object, name);
  return cJSON_IsNull(v) ? nullptr : v;
}

std::optional<Invalid> optional_string(const cJSON* body, const char* name, std::optional<std::string>* out) {
  const cJSON* v = member(body, name);
  if (!v) return std::nullopt;
  if (!cJSON_IsString(v)) return Invalid{std::string(name) + ": must be a string"};
  *out = v->valuestring;
  return std::nullopt;
}

std::optional<Invalid> required_string(const cJSON* body, const char* name, std::string* out) {
  const cJSON* v = member(body, name);
  if (!v) return Invalid{std::string(name) + ": required"};
  if (!cJSON_IsString(v)) return Invalid{std::string(name) + ": must be a string"};
  *out = v->valuestring;
  if (out->empty()) return Invalid{std::string(name) + ": required (got an empty string)"};
  return std::nullopt;
}

// An integral JSON number (10, 10.0), not a string or a fraction; cJSON keeps numbers as doubles.
std::optional<int64_t> integer_of(const cJSON* v) {
  if (!cJSON_IsNumber(v)) return std::nullopt;
  const double d = v->valuedouble;
  if (!std::isfinite(d) || std::floor(d) != d || std::fabs(d) > 9.0e15) return std::nullopt;
  return static_cast<int64_t>(d);
}

std::optional<Invalid> int_in_range(const cJSON* v, const std::string& name, int64_t lo, int64_t hi,
                                    int64_t* out) {
  auto i = integer_of(v);
  const std::string range = std::to_string(lo) + ".." + std::to_string(hi);
  if (!i) return Invalid{name + ": must be an integer in " + range};
  if (*i < lo || *i > hi) return Invalid{name + ": " + std::to_string(*i) + " is out of range " + range};
  *out = *i;
  return std::nullopt;
}

// http or https, then a non-empty host (optional userinfo and port), no spaces or control characters.
bool valid_webhook_url(std::string_view url) {
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;
  }
  std::string lower(url.substr(0, 8));
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; });
  size_t start = 0;
  if (lower.starts_with("http://")) {
    start = 7;
  } else if (lower.starts_with("https://")) {
    start = 8;
  } else {
    return false;
  }
  std::string_view authority = url.substr(start);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (size_t at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  std::string_view host = authority;
  std::string_view port;
  if (authority.starts_with("[")) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    host = authority.substr(0, close + 1);
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return false;
      port = rest.substr(1);
    }
  } else if (size_t colon = authority.find(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    if (port.empty()) return false;
  }
  if (host.empty()) return false;
  if (!port.empty()) {
    if (port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return false;
    const long p = std::stol(std::string(port));
    if (p < 1 || p > 65535) return false;
  }
  return true;
}

std::optional<Invalid> check_overrides(const cJSON* o, PlaceCallRequest* req) {
  if (!cJSON_IsObject(o)) return Invalid{"call_config_overrides: must be an object"};
  if (const cJSON* v = member(o, "max_call_duration_seconds")) {
    int64_t secs = 0;
    if (auto bad = int_in_range(v, "call_config_overrides.max_call_duration_seconds", 10, 3600, &secs))
      return bad;
    req->max_call_duration_seconds = secs;
  }
  if (const cJSON* v = member(o, "enable_callback")) {
    if (!cJSON_IsBool(v)) return Invalid{"call_config_overrides.enable_callback: must be a boolean"};
    req->enable_callback = cJSON_IsTrue(v) != 0;
  }
  if (const cJSON* r = member(o, "retry_config")) {
    if (!cJSON_IsObject(r)) return Invalid{"call_config_overrides.retry_config: must be an object"};
    if (const cJSON* v = member(r, "enabled"); v && !cJSON_IsBool(v)) {
      return Invalid{"call_config_overrides.retry_config.enabled: must be a boolean"};
    }
    int64_t ignored = 0;
    if (const cJSON* v = member(r, "max_attempts")) {
      if (auto bad = int_in_range(v, "call_config_overrides.retry_config.max_attempts", 1, 5, &ignored))
        return bad;
    }
    if (const cJSON* v = member(r, "interval_minutes")) {
      if (auto bad =
              int_in_range(v, "call_config_overrides.retry_config.interval_minutes", 1, 1440, &ignored))
        return bad;
    }
  }
  return std::nullopt;
}

std::optional<Invalid> check_extraction(const cJSON* a) {
  if (!cJSON_IsArray(a))
    return Invalid{"data_extraction: must be an array of {key, description, required, output_format}"};
  std::vector<std::string> keys;
  int i = 0;
  for (const cJSON* item = a->child; item; item = item->next, ++i) {
    const std::string at = "data_extraction[" + std::to_string(i) + "]";
    if (!cJSON_IsObject(item)) return Invalid{at + ": must be an object"};
    const cJSON* key = member(item, "key");
    if (!cJSON_IsString(key) || key->valuestring[0] == '\0')
      return Invalid{at + ".key: required, a non-empty string"};
    if (std::find(keys.begin(), keys.end(), key->valuestring) != keys.end()) {
      return Invalid{at + ".key: duplicate \"" + std::string(key->valuestring) + "\""};
    }
    keys.emplace_back(key->valuestring);
    for (const char* name : {"description", "output_format"}) {
      if (const cJSON* v = member(item, name); v && !cJSON_IsString(v))
        return Invalid{at + "." + name + ": must be a string"};
    }
    if (const cJSON* v = member(item, "required"); v && !cJSON_IsBool(v))
      return Invalid{at + ".required: must be a boolean"};
  }
  return std::nullopt;
}

// Every check of spec 3.2 (legacy: 3.17, without greeting/overrides/extraction), in the order a person would
// fix them: required fields, then types and ranges. Unknown keys are ignored.
std::optional<Invalid> parse_call_request(const cJSON* body, bool legacy, PlaceCallRequest* req,
                                          std::string* country) {
  if (auto bad = required_string(body, "agent_uuid", &req->agent_uuid)) return bad;
  std::string phone;
  if (auto bad = required_string(body, "phone_number", &phone)) return bad;
  if (auto bad = required_string(body, "country_code", country)) return bad;
  if (!valid_country(*country)) return Invalid{"country_code: unknown country code \"" + *country + "\""};
  auto e164 = normalize_phone(phone, *country);
  if (!e164.ok()) return Invalid{"phone_number: " + e164.error().message};
  req->phone_e164 = *e164;

  if (auto bad = optional_string(body, "system_prompt", &req->system_prompt)) return bad;
  if (auto bad = optional_string(body, "person_name", &req->person_name)) return bad;
  if (auto bad = optional_string(body, "webhook_url", &req->webhook_url)) return bad;
  if (req->webhook_url && !valid_webhook_url(*req->webhook_url)) {
    return Invalid{"webhook_url: must be an http or https URL with a host"};
  }
  if (const cJSON* v = member(body, "additional_data")) {
    if (!cJSON_IsObject(v)) return Invalid{"additional_data: must be an object"};
    req->additional_data = net::json_print(v);
    if (req->additional_data->size() > kMaxAdditionalDataBytes)
      return Invalid{"additional_data: " + std::to_string(req->additional_data->size()) +
                     " bytes as compact JSON, more than the limit of " +
                     std::to_string(kMaxAdditionalDataBytes)};
  }
  if (legacy) return std::nullopt;

  if (auto bad = optional_string(body, "initial_greeting", &req->initial_greeting)) return bad;
  if (req->initial_greeting && utf8_chars(*req->initial_greeting) > kMaxGreetingChars) {
    return Invalid{"initial_greeting: longer than " + std::to_string(kMaxGreetingChars) + " characters (" +
                   std::to_string(utf8_chars(*req->initial_greeting)) + ")"};
  }
  if (const cJSON* v = member(body, "call_config_overrides")) {
    if (auto bad = check_overrides(v, req)) return bad;
    req->call_config_overrides = net::json_print(v);
  }
  if (const cJSON* v = member(body, "data_extraction")) {
    if (auto bad = check_extraction(v)) return bad;
    req->data_extraction = net::json_print(v);
  }
  return std::nullopt;
}

// --- GET /v1/calls query parsing ---

std::optional<int64_t> parse_positive(std::string_view s) {
  if (s.empty() || s.size() > 15) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v >= 1 ? std::optional<int64_t>(v) : std::nullopt;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
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

struct DateBound {
  int64_t ms = 0;
  bool date_only = false;
};

// "2026-06-01" (midnight at the box's offset) or "2026-06-01T14:05[:09[.123]][Z|+05:30|+0530]" (no zone: the
// box's offset). A '+' in a query string may arrive decoded as a space, so a space before the zone is taken
// as '+'.
std::optional<DateBound> parse_date(std::string_view s, int box_offset_minutes) {
  int64_t y = 0, mo = 0, d = 0;
  if (!digits_at(s, 0, 4, &y) || s.size() < 10 || s[4] != '-' || !digits_at(s, 5, 2, &mo) || s[7] != '-' ||
      !digits_at(s, 8, 2, &d)) {
    return std::nullopt;
  }
  static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo < 1 || mo > 12 || d < 1 || d > kDays[mo - 1] || (mo == 2 && d == 29 && !leap)) return std::nullopt;
  const int64_t day_ms = days_from_civil(y, mo, d) * 86'400'000;
  if (s.size() == 10) return DateBound{day_ms - box_offset_minutes * 60'000LL, true};

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
  int64_t offset = box_offset_minutes;
  std::string_view zone = s.substr(pos);
  if (zone == "Z" || zone == "z") {
    offset = 0;
  } else if (!zone.empty()) {
    const char sign = zone[0];
    if (sign != '+' && sign != '-' && sign != ' ') return std::nullopt;
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
  return DateBound{day_ms + ((h * 60 + mi) * 60 + sec) * 1000 + frac_ms - offset * 60'000, false};
}

// --- responses ---

void add_summary_fields(cJSON* o, const CallRecord& c, int offset) {
  add_text(o, "call_id", c.call_id);
  add_text(o, "agent_uuid", c.agent_uuid);
  add_text(o, "agent_name", c.agent_name);
  add_text(o, "phone_number", c.phone_number);
  add_text_or_null(o, "from_number", c.from_number);
  add_text(o, "status", c.status);
  add_text(o, "call_type", c.call_type);
  add_int(o, "duration_seconds", c.duration_seconds);
  add_text_or_null(o, "call_ended_by", c.call_ended_by);
  add_text_or_null(o, "call_ended_reason", c.call_ended_reason);
  add_int_or_null(o, "campaign_id", c.campaign_id);
  add_int_or_null(o, "campaign_upload_id", c.campaign_upload_id);
  if (c.tag_id) {
    cJSON* tag = cJSON_AddObjectToObject(o, "tag");
    add_int(tag, "id", *c.tag_id);
    add_text(tag, "name", c.tag_name ? *c.tag_name : std::string());
    add_text_or_null(tag, "color_code", c.tag_color_code);
  } else {
    cJSON_AddItemToObjectCS(o, "tag", cJSON_CreateNull());
  }
  add_text(o, "created_at", format_local_iso(c.created_at_ms, offset));
  if (c.call_picked_at_ms) {
    add_text(o, "call_picked_at", format_local_iso(*c.call_picked_at_ms, offset));
  } else {
    cJSON_AddItemToObjectCS(o, "call_picked_at", cJSON_CreateNull());
  }
}

// A limited token sees only its agents' calls; any other call looks absent (404), as on another account.
const char* kNoSuchCall = "no call with this id";

}  // namespace

void Api::post_call(HttpRequest& request, HttpReply reply) {
  place(request, std::move(reply), false);
}

void Api::post_call_legacy(HttpRequest& request, HttpReply reply) {
  place(request, std::move(reply), true);
}

void Api::place(HttpRequest&, HttpReply reply, bool legacy) {
  PlaceCallRequest req;
  std::string country;
  // The agent check comes before the rest so a limited token learns nothing about other agents' rules.
  const cJSON* agent = member(body_.get(), "agent_uuid");
  if (cJSON_IsString(agent) && agent->valuestring[0] != '\0' && !token_allows(*caller_, agent->valuestring)) {
    reply.send(error(403, std::string("agent_uuid: this API token may not use agent ") + agent->valuestring));
    return;
  }
  if (auto bad = parse_call_request(body_.get(), legacy, &req, &country)) {
    reply.send(error(400, bad->message));
    return;
  }
  auto agents = ctx_.store->agents().active_voice();
  if (!agents) {
    log::error("cannot list agents for a call request: " + agents.error().message);
    reply.send(error(500, "database error"));
    return;
  }
  const std::string not_active = "agent_uuid: " + req.agent_uuid + " is not an active voice agent";
  if (std::none_of(agents->begin(), agents->end(),
                   [&](const AgentRecord& a) { return a.agent_uuid == req.agent_uuid; })) {
    reply.send(error(400, not_active));
    return;
  }
  if (!ctx_.calls) {
    reply.send(error(503, "calls engine not available"));
    return;
  }
  req.call_trigger_data = net::json_print(body_.get());
  if (req.call_trigger_data->size() > kMaxTriggerDataBytes) {
    reply.send(error(413, "request body: " + std::to_string(req.call_trigger_data->size()) +
                              " bytes as compact JSON, more than the " +
                              std::to_string(kMaxTriggerDataBytes) +
                              " stored with a call (call_trigger_data)"));
    return;
  }
  req.source = legacy ? "legacy_api" : "api";

  auto placed = ctx_.calls->place_call(req);
  if (!placed.ok()) {
    const Error& e = placed.error();
    switch (e.code) {
      case -EPERM:
        reply.send(error(400, "phone_number is on the do-not-disturb list of this agent"));
        return;
      case -ENOENT:
        reply.send(error(400, not_active));
        return;
      case -EBUSY: {
        HttpResponse r = error(503, "every line is busy and the call queue is full; retry later");
        r.headers.emplace_back("Retry-After", "30");
        reply.send(std::move(r));
        return;
      }
      case -ENODEV:
        reply.send(error(503, "this box has no line that can place calls"));
        return;
      case -ENOMEDIUM:
        // Nothing will change by retrying: the configuration or the hardware has to (409, not 503).
        reply.send(error(409, e.message));
        return;
      case -EMSGSIZE:
        reply.send(error(413, e.message));
        return;
      default:
        log::error("placing a call failed: " + e.message, {{"AGENT_UUID", req.agent_uuid}});
        reply.send(error(500, "could not place the call"));
        return;
    }
  }
  JsonPtr root(cJSON_CreateObject());
  cJSON_AddBoolToObject(root.get(), "success", true);
  net::json_add_string(cJSON_AddObjectToObject(root.get(), "data"), "call_id", *placed);
  if (legacy) {
    // The older docs' shape next to the newer one, so clients of either generation read it.
    cJSON_AddStringToObject(root.get(), "status", "success");
    cJSON_AddStringToObject(root.get(), "message", "Call initiated successfully");
    net::json_add_string(root.get(), "call_id", *placed);
  }
  reply.send(json_response(200, root.get()));
}

void Api::list_calls(HttpRequest& request, HttpReply reply) {
  const int offset = ctx_.config->site.utc_offset_minutes;
  CallFilter f;
  if (auto v = request.query_param("status"); v && !v->empty()) {
    std::string_view rest = *v;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
      while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
      if (item.empty()) continue;
      if (std::find(std::begin(kStatuses), std::end(kStatuses), item) == std::end(kStatuses)) {
        reply.send(error(422, "status: unknown value \"" + std::string(item) +
                                  "\" (expected picked, not_picked, failed, busy, voicemail, in_progress)"));
        return;
      }
      f.statuses.emplace_back(item);
    }
  }
  if (auto v = request.query_param("agent_uuid"); v && !v->empty()) {
    auto agents = ctx_.store->agents().all();
    if (!agents) {
      log::error("cannot list agents: " + agents.error().message);
      reply.send(error(500, "database error"));
      return;
    }
    if (std::none_of(agents->begin(), agents->end(),
                     [&](const AgentRecord& a) { return a.agent_uuid == *v; })) {
      reply.send(error(404, "agent_uuid: no agent " + std::string(*v) + " on this box"));
      return;
    }
    if (!token_allows(*caller_, *v)) {
      reply.send(error(403, "agent_uuid: this API token may not use agent " + std::string(*v)));
      return;
    }
    f.agent_uuid = std::string(*v);
  }
  f.agent_uuids = caller_->agents;
  for (auto [name, field] :
       {std::pair{"campaign_id", &f.campaign_id}, std::pair{"campaign_upload_id", &f.campaign_upload_id}}) {
    if (auto v = request.query_param(name); v && !v->empty()) {
      auto n = parse_positive(*v);
      if (!n) {
        reply.send(error(422, std::string(name) + ": must be a positive integer"));
        return;
      }
      *field = *n;
    }
  }
  if (auto v = request.query_param("phone_number"); v && !v->empty()) {
    // Separators are dropped so "98765 43210" matches the stored E.164 text.
    std::string needle;
    for (char c : *v) {
      if (c != ' ' && c != '-' && c != '.' && c != '(' && c != ')') needle += c;
    }
    if (!needle.empty()) f.phone_contains = needle;
  }
  if (auto v = request.query_param("call_type"); v && !v->empty()) {
    if (*v != "inbound" && *v != "outbound") {
      reply.send(error(422, "call_type: expected inbound or outbound"));
      return;
    }
    f.call_type = std::string(*v);
  }
  if (auto v = request.query_param("start_date"); v && !v->empty()) {
    auto d = parse_date(*v, offset);
    if (!d) {
      reply.send(error(422, "start_date: expected YYYY-MM-DD or an ISO-8601 timestamp"));
      return;
    }
    f.picked_from_ms = d->ms;
  }
  if (auto v = request.query_param("end_date"); v && !v->empty()) {
    auto d = parse_date(*v, offset);
    if (!d) {
      reply.send(error(422, "end_date: expected YYYY-MM-DD or an ISO-8601 timestamp"));
      return;
    }
    // A bare date includes the whole day.
    f.picked_to_ms = d->date_only ? d->ms + 86'400'000 - 1 : d->ms;
  }
  if (f.picked_from_ms && f.picked_to_ms && *f.picked_from_ms > *f.picked_to_ms) {
    reply.send(error(422, "start_date: after end_date"));
    return;
  }
  if (auto v = request.query_param("page"); v && !v->empty()) {
    auto n = parse_positive(*v);
    if (!n) {
      reply.send(error(422, "page: must be a positive integer"));
      return;
    }
    f.page = *n;
  }
  if (auto v = request.query_param("per_page"); v && !v->empty()) {
    auto n = parse_positive(*v);
    if (!n || *n > kMaxPerPage) {
      reply.send(error(422, "per_page: must be an integer in 1.." + std::to_string(kMaxPerPage)));
      return;
    }
    f.per_page = *n;
  }

  auto page = ctx_.store->calls().list(f);
  if (!page) {
    log::error("cannot list calls: " + page.error().message);
    reply.send(error(500, "database error"));
    return;
  }
  JsonPtr root(cJSON_CreateObject());
  cJSON_AddBoolToObject(root.get(), "success", true);
  cJSON* data = cJSON_AddArrayToObject(root.get(), "data");
  for (const CallRecord& c : page->calls) {
    cJSON* o = cJSON_CreateObject();
    add_summary_fields(o, c, offset);
    cJSON_AddItemToArray(data, o);
  }
  cJSON* meta = cJSON_AddObjectToObject(root.get(), "meta");
  add_int(meta, "current_page", f.page);
  add_int(meta, "total_pages", (page->total_count + f.per_page - 1) / f.per_page);
  add_int(meta, "total_count", page->total_count);
  add_int(meta, "per_page", f.per_page);
  reply.send(json_response(200, root.get()));
}

namespace {

// The call named by {id} when it exists and the token may see it; otherwise the reply is sent.
std::optional<CallRecord> find_call(Store& store, const ApiToken& caller, const HttpRequest& request,
                                    HttpReply& reply) {
  const std::string id(request.param("id").value_or(""));
  if (!is_uuid(id)) {
    reply.send(Api::error(404, kNoSuchCall));
    return std::nullopt;
  }
  auto c = store.calls().get(id);
  if (!c) {
    log::error("cannot read call: " + c.error().message, {{"CALL_ID", id}});
    reply.send(Api::error(500, "database error"));
    return std::nullopt;
  }
  if (!*c || !token_allows(caller, (*c)->agent_uuid)) {
    reply.send(Api::error(404, kNoSuchCall));
    return std::nullopt;
  }
  return std::move(**c);
}

bool regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Rows hold the absolute path the file was written at (docs/store.md). Rows of older daemons may hold a path
// relative to the working directory they ran in ("./state/recordings/<id>.opus"), and a box's state folder
// may have moved since: the daemon only ever writes <call_id>.opus directly in the recordings folder, so the
// row's file name in today's folder is the fallback. The stored path is never joined to the folder.
std::string recording_path(const ApiContext& ctx, const RecordingRow& row) {
  if (row.path.starts_with('/') && (ctx.recordings_dir.empty() || regular_file(row.path))) return row.path;
  if (ctx.recordings_dir.empty()) return row.path;
  const size_t slash = row.path.find_last_of('/');
  const std::string name = slash == std::string::npos ? row.path : row.path.substr(slash + 1);
  const std::string in_folder = ctx.recordings_dir + "/" + name;
  if (row.path.starts_with('/') && !regular_file(in_folder)) return row.path;
  return in_folder;
}

std::string signature(std::string_view key, std::string_view call_id, int64_t expires) {
  return hmac_sha256_hex(key, std::string(call_id) + "\n" + std::to_string(expires));
}

// The Host header names the address the client reached us at (which may differ from the bound one behind
// NAT or on 0.0.0.0). It is only used if it looks like host[:port], so a crafted header cannot bend the URL.
std::string public_host(const HttpRequest& request, const std::string& fallback) {
  auto host = request.header("Host");
  if (!host || host->empty() || host->size() > 255) return fallback;
  for (char c : *host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '-' || c == ':' || c == '[' || c == ']';
    if (!ok) return fallback;
  }
  return std::string(*host);
}

}  // namespace

void Api::get_call(HttpRequest& request, HttpReply reply) {
  auto c = find_call(*ctx_.store, *caller_, request, reply);
  if (!c) return;
  const int offset = ctx_.config->site.utc_offset_minutes;
  JsonPtr data(cJSON_CreateObject());
  cJSON* o = data.get();
  add_summary_fields(o, *c, offset);
  net::json_add_string_or_null(o, "caller_name", c->caller_name);
  cJSON_AddNumberToObject(o, "retry_count", static_cast<double>(c->retry_count));
  net::json_add_string_or_null(o, "summary", c->summary);
  add_stored_json(o, "data_captured", c->data_captured, true);
  add_stored_json(o, "post_call_analysis", c->post_call_analysis, true);
  // Extensions (docs/api.md): what the box knows beyond the published V1CallDetail.
  add_opt_time(o, "ended_at", c->ended_at_ms, offset);
  net::json_add_string_or_null(o, "line", c->line);
  cJSON_AddBoolToObject(o, "callback_required", c->callback_required);
  net::json_add_string_or_null(o, "person_name", c->person_name);
  add_stored_json(o, "additional_data", c->additional_data, true);
  add_stored_json(o, "structured_output", c->structured_output, false);
  net::json_add_string(o, "execution_mode", c->execution_mode);
  reply.send(success(std::move(data)));
}

void Api::get_transcript(HttpRequest& request, HttpReply reply) {
  auto c = find_call(*ctx_.store, *caller_, request, reply);
  if (!c) return;
  auto turns = ctx_.store->calls().transcript(c->call_id);
  if (!turns) {
    log::error("cannot read transcript: " + turns.error().message, {{"CALL_ID", c->call_id}});
    reply.send(error(500, "database error"));
    return;
  }
  const int offset = ctx_.config->site.utc_offset_minutes;
  JsonPtr data(cJSON_CreateObject());
  net::json_add_string(data.get(), "call_id", c->call_id);
  cJSON* arr = cJSON_AddArrayToObject(data.get(), "transcript");
  for (const TranscriptTurn& t : *turns) {
    cJSON* o = cJSON_CreateObject();
    net::json_add_string(o, "role", t.role);
    net::json_add_string(o, "text", t.text);
    if (t.started_at_ms) {
      net::json_add_string(o, "started_at", local_iso_ms(*t.started_at_ms, offset));
    } else {
      cJSON_AddNullToObject(o, "started_at");
    }
    if (t.ended_at_ms) {
      net::json_add_string(o, "ended_at", local_iso_ms(*t.ended_at_ms, offset));
    } else {
      cJSON_AddNullToObject(o, "ended_at");
    }
    cJSON_AddBoolToObject(o, "interrupted", t.interrupted);
    if (t.kind) net::json_add_string(o, "kind", *t.kind);
    if (t.latency_json) {
      std::string why;
      if (JsonPtr lat = net::json_parse(*t.latency_json, &why); lat && cJSON_IsObject(lat.get())) {
        cJSON_AddItemToObject(o, "latency", lat.release());
      }
    }
    cJSON_AddItemToArray(arr, o);
  }
  reply.send(success(std::move(data)));
}

namespace {

// The recording link of a call the caller may see, once its recording is registered (or known absent).
void send_recording_link(const ApiContext& ctx, const std::string& call_id, const std::string& host,
                         HttpReply reply) {
  auto row = ctx.store->calls().recording(call_id);
  if (!row) {
    log::error("cannot read recording row: " + row.error().message, {{"CALL_ID", call_id}});
    reply.send(Api::error(500, "database error"));
    return;
  }
  if (!*row || !regular_file(recording_path(ctx, **row))) {
    reply.send(Api::error(404, "this call has no recording"));
    return;
  }
  if (ctx.recording_key.empty()) {
    reply.send(Api::error(503, "recording links are not available (no signing key)"));
    return;
  }
  const int64_t expires = ctx.clock->wall_ms() / 1000 + kRecordingLinkSeconds;
  const std::string url = "http://" + host + "/v1/recordings/" + call_id +
                          ".opus?expires=" + std::to_string(expires) +
                          "&sig=" + signature(ctx.recording_key, call_id, expires);
  JsonPtr data(cJSON_CreateObject());
  net::json_add_string(data.get(), "call_id", call_id);
  net::json_add_string(data.get(), "recording_url", url);
  cJSON_AddNumberToObject(data.get(), "expires_in_seconds", static_cast<double>(kRecordingLinkSeconds));
  reply.send(success(std::move(data)));
}

}  // namespace

void Api::get_recording(HttpRequest& request, HttpReply reply) {
  auto c = find_call(*ctx_.store, *caller_, request, reply);
  if (!c) return;
  std::string host = public_host(request, ctx_.listen);
  // A call that just ended has its recording on the way to disk (store/recordings.hpp): answer once it is
  // registered (a sync takes milliseconds) rather than 404 a recording that is about to exist. The token
  // check is done; only the lookup waits.
  if (ctx_.recordings && ctx_.recordings->pending_for(c->call_id)) {
    auto held = std::make_shared<HttpReply>(std::move(reply));
    ctx_.recordings->when_settled(c->call_id, [ctx = &ctx_, id = c->call_id, host = std::move(host), held] {
      if (held->connected()) send_recording_link(*ctx, id, host, std::move(*held));
    });
    return;
  }
  send_recording_link(ctx_, c->call_id, host, std::move(reply));
}

void Api::serve_recording(HttpRequest& request, HttpReply reply) {
  // The signature is checked before anything is looked up, so an unsigned client cannot probe which calls
  // exist. Every refusal of the link itself is the same 403.
  if (ctx_.recording_key.empty()) {
    reply.send(error(503, "recording links are not available (no signing key)"));
    return;
  }
  std::string_view file = request.param("file").value_or("");
  std::string call_id;
  if (file.ends_with(".opus")) call_id = std::string(file.substr(0, file.size() - 5));
  auto expires_text = request.query_param("expires");
  auto sig = request.query_param("sig");
  std::optional<int64_t> expires;
  if (expires_text) expires = parse_positive(*expires_text);
  if (!is_uuid(call_id) || !expires || !sig) {
    reply.send(error(403, "invalid or expired recording link"));
    return;
  }
  const std::string expected = signature(ctx_.recording_key, call_id, *expires);
  const bool signed_ok = constant_time_equal(expected, *sig);
  if (!signed_ok || ctx_.clock->wall_ms() / 1000 > *expires) {
    reply.send(error(403, "invalid or expired recording link"));
    return;
  }
  auto row = ctx_.store->calls().recording(call_id);
  if (!row) {
    log::error("cannot read recording row: " + row.error().message, {{"CALL_ID", call_id}});
    reply.send(error(500, "database error"));
    return;
  }
  if (!*row) {
    reply.send(error(404, "this call has no recording"));
    return;
  }
  const std::string path = recording_path(ctx_, **row);
  // Answered from the file descriptor: a long call's recording costs the box no memory to serve.
  auto served = net::file_response(path, "audio/ogg");
  if (!served) {
    const int code = served.error().code;
    if (code != -ENOENT && code != -EISDIR && code != -EINVAL) {
      log::error("cannot serve recording file: " + served.error().message, {{"CALL_ID", call_id}});
      reply.send(error(500, "recording file cannot be served"));
    } else {
      reply.send(error(404, "this call has no recording"));
    }
    return;
  }
  HttpResponse& r = *served;
  r.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + call_id + ".opus\"");
  // The link is a capability: caches between the box and the client must not keep the audio.
  r.headers.emplace_back("Cache-Control", "private, no-store");
  reply.send(std::move(r));
}

}  // namespace osvi::daemon
