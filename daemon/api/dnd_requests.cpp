// Validation of the DND endpoints (dnd_requests.hpp): pure functions.
#include "dnd_requests.hpp"

#include <algorithm>
#include <string_view>
#include <vector>

#include "osvi/net/text.hpp"

namespace osvi::daemon {
namespace {

using net::quoted;

std::optional<Invalid> too_long(std::string_view name, std::string_view value, size_t max_chars) {
  const size_t n = net::utf8_length(value);
  if (n <= max_chars) return std::nullopt;
  return Invalid{std::string(name) + ": longer than " + std::to_string(max_chars) + " characters (" +
                 std::to_string(n) + ")"};
}

// A body member as a string: absent (or null) leaves *out alone and returns nullopt with *present false.
std::optional<Invalid> string_member(const cJSON* body, const char* name, size_t max_chars, std::string* out,
                                     bool* present) {
  const cJSON* v = cJSON_GetObjectItemCaseSensitive(body, name);
  *present = v != nullptr && !cJSON_IsNull(v);
  if (!*present) return std::nullopt;
  if (!cJSON_IsString(v)) return Invalid{std::string(name) + ": must be a string"};
  const std::string_view s = v->valuestring;
  if (!net::clean_text(s)) return Invalid{std::string(name) + ": must be valid UTF-8 without NUL"};
  if (auto bad = too_long(name, s, max_chars)) return bad;
  *out = s;
  return std::nullopt;
}

std::optional<Invalid> required_member(const cJSON* body, const char* name, size_t max_chars,
                                       std::string* out) {
  bool present = false;
  if (auto bad = string_member(body, name, max_chars, out, &present)) return bad;
  if (!present) return Invalid{std::string(name) + ": required"};
  if (out->empty()) return Invalid{std::string(name) + ": required (got an empty string)"};
  return std::nullopt;
}

// Query parameters a DND endpoint knows; any other, or one given twice, is refused by name.
std::optional<Invalid> known_params(const QueryParams& query, std::initializer_list<std::string_view> known) {
  std::vector<std::string_view> seen;
  for (const auto& [name, value] : query) {
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      std::string list;
      for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      return Invalid{"query parameter " + quoted(name) + ": unknown (expected " + list + ")"};
    }
    if (std::find(seen.begin(), seen.end(), name) != seen.end())
      return Invalid{std::string(name) + ": given more than once"};
    seen.push_back(name);
  }
  return std::nullopt;
}

std::optional<std::string_view> param(const QueryParams& query, std::string_view name) {
  for (const auto& [k, v] : query) {
    if (k == name) return v;
  }
  return std::nullopt;
}

}  // namespace

std::optional<Invalid> parse_dnd_add_request(const cJSON* body, DndAddRequest* out) {
  if (!cJSON_IsObject(body)) return Invalid{"request body must be a JSON object"};
  // The first few unknown names, then a count: a body of thousands of keys must not make a message of them.
  constexpr int kNamed = 5;
  std::string unknown;
  int count = 0;
  for (const cJSON* c = body->child; c; c = c->next) {
    const std::string_view name = c->string ? c->string : "";
    if (name == "agent_uuid" || name == "phone" || name == "reason") continue;
    if (++count <= kNamed) unknown += (unknown.empty() ? "" : ", ") + quoted(name);
  }
  if (count > kNamed) unknown += " and " + std::to_string(count - kNamed) + " more";
  if (count > 0) return Invalid{"unknown field " + unknown + " (expected agent_uuid, phone, reason)"};
  if (auto bad = required_member(body, "agent_uuid", kMaxAgentUuidChars, &out->agent_uuid)) return bad;
  if (auto bad = required_member(body, "phone", kMaxPhoneNumberChars, &out->phone)) return bad;
  std::string reason;
  bool present = false;
  if (auto bad = string_member(body, "reason", kMaxDndReasonChars, &reason, &present)) return bad;
  if (present) out->reason = std::move(reason);
  return std::nullopt;
}

std::optional<Invalid> parse_dnd_list_query(const QueryParams& query, DndListQuery* out) {
  if (auto bad = check_query(query)) return bad;
  if (auto bad = known_params(query, {"agent_uuid", "search", "page", "per_page"})) return bad;
  auto agent = param(query, "agent_uuid");
  if (!agent || agent->empty()) return Invalid{"agent_uuid: required"};
  if (auto bad = too_long("agent_uuid", *agent, kMaxAgentUuidChars)) return bad;
  out->agent_uuid = std::string(*agent);
  if (auto v = param(query, "search")) {
    if (auto bad = too_long("search", *v, kMaxPhoneNumberChars)) return bad;
    // As GET /v1/calls' phone_number: separators dropped so "98765 43210" matches the stored E.164 text (a
    // '+' sent unescaped arrives as a space and is dropped too, which still matches).
    std::string needle;
    for (char c : *v) {
      if (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')') continue;
      if ((c < '0' || c > '9') && c != '+')
        return Invalid{"search: digits and '+' only (separators allowed), got " + quoted(*v)};
      needle += c;
    }
    out->search = std::move(needle);
  }
  if (auto v = param(query, "page"); v && !v->empty()) {
    auto n = parse_positive(*v);
    if (!n) return Invalid{"page: must be a positive integer"};
    out->page = *n;
  }
  if (auto v = param(query, "per_page"); v && !v->empty()) {
    auto n = parse_positive(*v);
    if (!n || *n > kMaxPerPage)
      return Invalid{"per_page: must be an integer in 1.." + std::to_string(kMaxPerPage)};
    out->per_page = *n;
  }
  return std::nullopt;
}

std::optional<Invalid> parse_dnd_delete_query(const QueryParams& query, DndDeleteQuery* out, bool* missing) {
  *missing = false;
  if (auto bad = check_query(query)) return bad;
  if (auto bad = known_params(query, {"agent_uuid", "phone"})) return bad;
  for (const char* name : {"agent_uuid", "phone"}) {
    auto v = param(query, name);
    if (!v || v->empty()) {
      *missing = true;
      return Invalid{std::string("param is missing or the value is empty: ") + name};
    }
  }
  const std::string_view agent = *param(query, "agent_uuid");
  const std::string_view phone = *param(query, "phone");
  if (auto bad = too_long("agent_uuid", agent, kMaxAgentUuidChars)) return bad;
  if (auto bad = too_long("phone", phone, kMaxPhoneNumberChars)) return bad;
  out->agent_uuid = std::string(agent);
  out->phone = std::string(phone);
  // "?phone=+1415…" sent without escaping the '+' may arrive decoded as a space (form encoding): a lone
  // leading space before a digit can only have been that '+', and read as a national number it would be
  // another country's.
  if (out->phone.size() > 1 && out->phone[0] == ' ' && out->phone[1] >= '0' && out->phone[1] <= '9')
    out->phone[0] = '+';
  return std::nullopt;
}

}  // namespace osvi::daemon
