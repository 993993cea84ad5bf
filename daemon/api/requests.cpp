// Validation of what clients send to the API (requests.hpp): pure functions shared by the handlers and fuzz
// targets.
#include "requests.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <iterator>
#include <string>

#include "osvi/base/ids.hpp"
#include "osvi/base/phone.hpp"
#include "osvi/net/text.hpp"

namespace osvi::daemon {
namespace {

using net::quoted;

constexpr std::string_view kStatuses[] = {"picked", "not_picked", "failed",
                                          "busy",   "voicemail",  "in_progress"};
constexpr std::string_view kLogLevels[] = {"err", "error", "warning", "warn", "notice", "info", "debug"};

// A query parameter's name as messages show it: bare when it is a plain word, quoted otherwise.
std::string param_name(std::string_view name) {
  const bool plain = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
  return plain ? std::string(name) : quoted(name);
}

std::optional<Invalid> too_long(const std::string& name, std::string_view value, size_t max_chars) {
  const size_t n = net::utf8_length(value);
  if (n <= max_chars) return std::nullopt;
  return Invalid{name + ": longer than " + std::to_string(max_chars) + " characters (" + std::to_string(n) +
                 ")"};
}

// JSON null counts as absent, as most clients send null for "not given".
const cJSON* member(const cJSON* object, const char* name) {
  const cJSON* v = cJSON_GetObjectItemCaseSensitive(object, name);
  return cJSON_IsNull(v) ? nullptr : v;
}

// The body came through net::json_parse_request, so strings are clean text; checked again here because
// these functions are the promise the fuzz target holds them to, whoever calls them.
std::optional<Invalid> string_value(const cJSON* v, const std::string& name, size_t max_chars,
                                    std::string* out) {
  if (!cJSON_IsString(v)) return Invalid{name + ": must be a string"};
  const std::string_view s = v->valuestring;
  if (!net::clean_text(s)) return Invalid{name + ": must be valid UTF-8 without NUL"};
  if (auto bad = too_long(name, s, max_chars)) return bad;
  *out = s;
  return std::nullopt;
}

std::optional<Invalid> optional_string(const cJSON* body, const char* name, size_t max_chars,
                                       std::optional<std::string>* out) {
  const cJSON* v = member(body, name);
  if (!v) return std::nullopt;
  std::string s;
  if (auto bad = string_value(v, name, max_chars, &s)) return bad;
  *out = std::move(s);
  return std::nullopt;
}

std::optional<Invalid> required_string(const cJSON* body, const char* name, size_t max_chars,
                                       std::string* out) {
  const cJSON* v = member(body, name);
  if (!v) return Invalid{std::string(name) + ": required"};
  if (auto bad = string_value(v, name, max_chars, out)) return bad;
  if (out->empty()) return Invalid{std::string(name) + ": required (got an empty string)"};
  return std::nullopt;
}

// Every string in a JSON value (member names included) is clean text; the first that is not is named.
std::optional<Invalid> clean_tree(const cJSON* item, const std::string& path) {
  if (cJSON_IsString(item) && !net::clean_text(item->valuestring))
    return Invalid{path + ": must be valid UTF-8 without NUL"};
  size_t index = 0;
  for (const cJSON* c = item->child; c; c = c->next, ++index) {
    std::string child;
    if (cJSON_IsObject(item)) {
      const std::string_view name = c->string ? c->string : "";
      if (!net::clean_text(name)) return Invalid{path + ": member names must be valid UTF-8 without NUL"};
      child = net::json_path_member(path, name);
    } else {
      child = net::json_path_index(path, index);
    }
    if (auto bad = clean_tree(c, child)) return bad;
  }
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
  // Other keys are kept as given (stored on the call), so the whole object is bounded.
  if (auto bad = clean_tree(o, "call_config_overrides")) return bad;
  const std::string text = net::json_print(o);
  if (text.size() > kMaxOverridesBytes) {
    return Invalid{"call_config_overrides: " + std::to_string(text.size()) +
                   " bytes as compact JSON, more than the limit of " + std::to_string(kMaxOverridesBytes)};
  }
  req->call_config_overrides = text;
  return std::nullopt;
}

std::optional<Invalid> check_extraction(const cJSON* a, PlaceCallRequest* req) {
  if (!cJSON_IsArray(a))
    return Invalid{"data_extraction: must be an array of {key, description, required, output_format}"};
  std::vector<std::string> keys;
  size_t i = 0;
  for (const cJSON* item = a->child; item; item = item->next, ++i) {
    const std::string at = "data_extraction[" + std::to_string(i) + "]";
    if (i >= kMaxExtractionItems)
      return Invalid{"data_extraction: more than " + std::to_string(kMaxExtractionItems) + " items"};
    if (!cJSON_IsObject(item)) return Invalid{at + ": must be an object"};
    const cJSON* key = member(item, "key");
    if (!cJSON_IsString(key) || key->valuestring[0] == '\0')
      return Invalid{at + ".key: required, a non-empty string"};
    std::string k;
    if (auto bad = string_value(key, at + ".key", kMaxExtractionKeyChars, &k)) return bad;
    if (std::find(keys.begin(), keys.end(), k) != keys.end())
      return Invalid{at + ".key: duplicate " + quoted(k)};
    keys.push_back(std::move(k));
    for (auto [name, max] : {std::pair{"description", kMaxExtractionDescriptionChars},
                             std::pair{"output_format", kMaxExtractionFormatChars}}) {
      std::string ignored;
      if (const cJSON* v = member(item, name)) {
        if (auto bad = string_value(v, at + "." + name, max, &ignored)) return bad;
      }
    }
    if (const cJSON* v = member(item, "required"); v && !cJSON_IsBool(v))
      return Invalid{at + ".required: must be a boolean"};
    if (auto bad = clean_tree(item, at)) return bad;
  }
  req->data_extraction = net::json_print(a);
  return std::nullopt;
}

std::optional<Invalid> check_additional_data(const cJSON* v, PlaceCallRequest* req) {
  if (!cJSON_IsObject(v)) return Invalid{"additional_data: must be an object"};
  // Member names become {{variables}} of the prompt.
  for (const cJSON* c = v->child; c; c = c->next) {
    const std::string_view name = c->string ? c->string : "";
    if (net::utf8_length(name) > kMaxAdditionalDataKeyChars) {
      return Invalid{"additional_data: member name " + quoted(name) + " longer than " +
                     std::to_string(kMaxAdditionalDataKeyChars) + " characters"};
    }
  }
  if (auto bad = clean_tree(v, "additional_data")) return bad;
  std::string text = net::json_print(v);
  if (text.size() > kMaxAdditionalDataBytes)
    return Invalid{"additional_data: " + std::to_string(text.size()) +
                   " bytes as compact JSON, more than the limit of " +
                   std::to_string(kMaxAdditionalDataBytes)};
  req->additional_data = std::move(text);
  return std::nullopt;
}

}  // namespace

// Every check of spec 3.2 (legacy: 3.17, without greeting/overrides/extraction), in the order a person would
// fix them: required fields, then types and ranges.
std::optional<Invalid> parse_call_request(const cJSON* body, bool legacy, PlaceCallRequest* req,
                                          std::string* country, bool extensions) {
  if (!cJSON_IsObject(body)) return Invalid{"request body must be a JSON object"};
  if (auto bad = required_string(body, "agent_uuid", kMaxAgentUuidChars, &req->agent_uuid)) return bad;
  std::string phone;
  if (auto bad = required_string(body, "phone_number", kMaxPhoneNumberChars, &phone)) return bad;
  if (auto bad = required_string(body, "country_code", kMaxCountryCodeChars, country)) return bad;
  if (!valid_country(*country)) return Invalid{"country_code: unknown country code " + quoted(*country)};
  auto e164 = normalize_phone(phone, *country);
  if (e164.ok()) {
    req->phone_e164 = *e164;
  } else if (e164.error().code == -EINVAL && is_pbx_extension(phone)) {
    // Not a number of the country, but the shape of an extension: only a SIP line can dial it.
    if (!extensions)
      return Invalid{"phone_number: " + e164.error().message + "; " + quoted(phone) +
                     " could be a PBX extension, but this box has no SIP line to dial one"};
    req->phone_e164 = phone;
  } else {
    return Invalid{"phone_number: " + e164.error().message};
  }

  if (auto bad = optional_string(body, "system_prompt", kMaxSystemPromptChars, &req->system_prompt))
    return bad;
  if (auto bad = optional_string(body, "person_name", kMaxPersonNameChars, &req->person_name)) return bad;
  if (auto bad = optional_string(body, "webhook_url", kMaxWebhookUrlChars, &req->webhook_url)) return bad;
  if (req->webhook_url && !valid_webhook_url(*req->webhook_url)) {
    return Invalid{"webhook_url: must be an http or https URL with a host"};
  }
  if (const cJSON* v = member(body, "additional_data")) {
    if (auto bad = check_additional_data(v, req)) return bad;
  }
  if (legacy) return std::nullopt;

  if (auto bad = optional_string(body, "initial_greeting", kMaxGreetingChars, &req->initial_greeting))
    return bad;
  if (const cJSON* v = member(body, "call_config_overrides")) {
    if (auto bad = check_overrides(v, req)) return bad;
  }
  if (const cJSON* v = member(body, "data_extraction")) {
    if (auto bad = check_extraction(v, req)) return bad;
  }
  return std::nullopt;
}

std::optional<Invalid> parse_log_level_request(const cJSON* body, std::string* level) {
  const cJSON* v = cJSON_IsObject(body) ? cJSON_GetObjectItemCaseSensitive(body, "level") : nullptr;
  if (!cJSON_IsString(v)) return Invalid{"level: required, one of err, warning, notice, info, debug"};
  const std::string_view s = v->valuestring;
  if (std::find(std::begin(kLogLevels), std::end(kLogLevels), s) == std::end(kLogLevels)) {
    return Invalid{"level: expected one of err, warning, notice, info, debug, got " +
                   quoted(s, kMaxLogLevelChars)};
  }
  *level = s;
  return std::nullopt;
}

std::optional<Invalid> check_query(const QueryParams& query) {
  for (const auto& [name, value] : query) {
    if (!net::clean_text(name))
      return Invalid{"query parameter " + quoted(name) + ": name must be valid UTF-8 without NUL (%00)"};
    if (!net::clean_text(value)) return Invalid{param_name(name) + ": must be valid UTF-8 without NUL (%00)"};
    if (auto bad = too_long(param_name(name), value, kMaxQueryValueChars)) return bad;
  }
  return std::nullopt;
}

std::optional<Invalid> parse_calls_query(const QueryParams& query, int box_offset_minutes, CallFilter* f) {
  if (auto bad = check_query(query)) return bad;
  auto param = [&](std::string_view name) -> std::optional<std::string_view> {
    for (const auto& [k, v] : query) {
      if (k == name) return v.empty() ? std::nullopt : std::optional<std::string_view>(v);
    }
    return std::nullopt;
  };
  if (auto v = param("status")) {
    std::string_view rest = *v;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
      while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
      if (item.empty()) continue;
      if (std::find(std::begin(kStatuses), std::end(kStatuses), item) == std::end(kStatuses)) {
        return Invalid{"status: unknown value " + quoted(item) +
                       " (expected picked, not_picked, failed, busy, voicemail, in_progress)"};
      }
      f->statuses.emplace_back(item);
    }
  }
  if (auto v = param("agent_uuid")) {
    if (auto bad = too_long("agent_uuid", *v, kMaxAgentUuidChars)) return bad;
    f->agent_uuid = std::string(*v);
  }
  for (auto [name, field] :
       {std::pair{"campaign_id", &f->campaign_id}, std::pair{"campaign_upload_id", &f->campaign_upload_id}}) {
    if (auto v = param(name)) {
      auto n = parse_positive(*v);
      if (!n) return Invalid{std::string(name) + ": must be a positive integer"};
      *field = *n;
    }
  }
  if (auto v = param("phone_number")) {
    if (auto bad = too_long("phone_number", *v, kMaxPhoneNumberChars)) return bad;
    // Separators are dropped so "98765 43210" matches the stored E.164 text.
    std::string needle;
    for (char c : *v) {
      if (c != ' ' && c != '-' && c != '.' && c != '(' && c != ')') needle += c;
    }
    if (!needle.empty()) f->phone_contains = needle;
  }
  if (auto v = param("call_type")) {
    if (*v != "inbound" && *v != "outbound") return Invalid{"call_type: expected inbound or outbound"};
    f->call_type = std::string(*v);
  }
  if (auto v = param("start_date")) {
    auto d = parse_date(*v, box_offset_minutes);
    if (!d) return Invalid{"start_date: expected YYYY-MM-DD or an ISO-8601 timestamp"};
    f->picked_from_ms = d->ms;
  }
  if (auto v = param("end_date")) {
    auto d = parse_date(*v, box_offset_minutes);
    if (!d) return Invalid{"end_date: expected YYYY-MM-DD or an ISO-8601 timestamp"};
    // A bare date includes the whole day.
    f->picked_to_ms = d->date_only ? d->ms + 86'400'000 - 1 : d->ms;
  }
  if (f->picked_from_ms && f->picked_to_ms && *f->picked_from_ms > *f->picked_to_ms) {
    return Invalid{"start_date: after end_date"};
  }
  if (auto v = param("page")) {
    auto n = parse_positive(*v);
    if (!n) return Invalid{"page: must be a positive integer"};
    f->page = *n;
  }
  if (auto v = param("per_page")) {
    auto n = parse_positive(*v);
    if (!n || *n > kMaxPerPage)
      return Invalid{"per_page: must be an integer in 1.." + std::to_string(kMaxPerPage)};
    f->per_page = *n;
  }
  return std::nullopt;
}

std::optional<int64_t> parse_positive(std::string_view s) {
  if (s.empty() || s.size() > 15) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v >= 1 ? std::optional<int64_t>(v) : std::nullopt;
}

// "2026-06-01" (midnight at the box's offset) or "2026-06-01T14:05[:09[.123]][Z|+05:30|+0530]" (no zone: the
// box's offset). A '+' in a query string may arrive decoded as a space: past the date's separator, a space
// can only be the zone's sign.
std::optional<DateBound> parse_date(std::string_view s, int box_offset_minutes) {
  std::string text(s);
  for (size_t i = 11; i < text.size(); ++i)
    if (text[i] == ' ') text[i] = '+';
  const auto t = parse_iso_time(text, box_offset_minutes);
  if (!t) return std::nullopt;
  return DateBound{t->unix_ms, t->date_only};
}

}  // namespace osvi::daemon
