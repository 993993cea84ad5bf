// Fleet command requests: parsing, authentication, reply topic and per-command field checks, without the
// daemon.
#include "osvi/fleet/command_request.hpp"

#include <cjson/cJSON.h>

#include "osvi/base/log.hpp"
#include "osvi/net/text.hpp"

namespace osvi::daemon {
namespace {

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Length is not secret; the content is compared without an early exit.
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

bool is_e164(std::string_view s) {
  if (s.size() < 9 || s.size() > 16 || s[0] != '+' || s[1] == '0') return false;
  for (size_t i = 1; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

// The shape of a number before normalisation: a leading '+' then digits and separators, at least one digit.
bool is_phone_text(std::string_view s) {
  if (s.empty() || s.size() > 32) return false;
  bool digit = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (!(c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || (c == '+' && i == 0))) {
      return false;
    }
  }
  return digit;
}

const char* str_member(const cJSON* o, const char* name) {
  const cJSON* v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsString(v) ? v->valuestring : nullptr;
}

// An optional member that, when present, must be a string.
void optional_string(const cJSON* o, const char* name, std::vector<std::string>& reasons) {
  const cJSON* v = cJSON_GetObjectItemCaseSensitive(o, name);
  if (v != nullptr && !cJSON_IsString(v)) reasons.push_back(std::string(name) + ": expected a string");
}

void check_fields(std::string_view name, const cJSON* r, std::vector<std::string>& reasons) {
  if (name == "ping") return;
  if (name == "log_level") {
    const char* level = str_member(r, "level");
    if (level == nullptr || !log::parse_level(level))
      reasons.emplace_back("level: expected one of err, warning, notice, info, debug");
    return;
  }
  if (name == "dnd") {
    const char* action = str_member(r, "action");
    const std::string_view act = action ? action : "";
    if (act != "add" && act != "remove") reasons.emplace_back("action: expected \"add\" or \"remove\"");
    if (str_member(r, "agent_uuid") == nullptr) reasons.emplace_back("agent_uuid: expected a string");
    // Free-form, as POST /v1/dnd_numbers takes it; the box normalises it to E.164 with the site's country.
    const char* phone = str_member(r, "phone");
    if (phone == nullptr || !is_phone_text(phone))
      reasons.emplace_back(
          "phone: expected a phone number: E.164 such as +919876543210, or a national number of the site's "
          "country (digits, spaces, - . ( ), at most 32 characters)");
    optional_string(r, "reason", reasons);
    return;
  }
  if (name == "call") {
    if (str_member(r, "agent_uuid") == nullptr) reasons.emplace_back("agent_uuid: expected a string");
    const char* phone = str_member(r, "phone_number");
    if (phone == nullptr || !is_e164(phone))
      reasons.emplace_back("phone_number: expected an E.164 number such as +919876543210");
    for (const char* f : {"person_name", "initial_greeting", "system_prompt"}) optional_string(r, f, reasons);
    const cJSON* ad = cJSON_GetObjectItemCaseSensitive(r, "additional_data");
    if (ad != nullptr && !cJSON_IsObject(ad)) reasons.emplace_back("additional_data: expected an object");
    return;
  }
  if (name == "config") {
    const cJSON* version = cJSON_GetObjectItemCaseSensitive(r, "version");
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(r, "config")))
      reasons.emplace_back("config: expected the whole configuration document (an object)");
    if (version != nullptr &&
        (!cJSON_IsNumber(version) || version->valuedouble < 0 || version->valuedouble > 9.0e15 ||
         version->valuedouble != static_cast<double>(static_cast<int64_t>(version->valuedouble))))
      reasons.emplace_back("version: expected a non-negative integer");
    return;
  }
  reasons.push_back("unknown command \"" + std::string(name) + "\"");
}

}  // namespace

std::string command_reply_prefix(std::string_view prefix) {
  return std::string(prefix) + "/reply/";
}

bool is_command_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxCommandNameBytes) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  return true;
}

bool is_allowed_reply_topic(std::string_view prefix, std::string_view topic) {
  const std::string under = command_reply_prefix(prefix);
  if (topic.size() > kMaxReplyTopicBytes || topic.size() <= under.size() || !topic.starts_with(under))
    return false;
  // Printable ASCII only: a topic the broker refuses (bad UTF-8, control characters) would lose the answer.
  for (char c : topic)
    if (c < 0x21 || c > 0x7e || c == '+' || c == '#') return false;
  return true;
}

std::optional<std::string> check_command_token(std::string_view configured, const cJSON* doc) {
  if (configured.empty())
    return std::string("unauthorized: no command token configured (mqtt.commands.token)");
  const char* tok = str_member(doc, "token");
  if (tok == nullptr || !constant_time_equal(tok, configured))
    return std::string("unauthorized: missing or wrong token");
  return std::nullopt;
}

std::string json_refusal_reason(const net::JsonRefusal& refusal) {
  // Reasons are printable ASCII (docs/mqtt.md): a field path or member name the refusal repeats may hold
  // any UTF-8, so every other byte is written as \xNN.
  std::string why;
  const std::string raw = refusal.field.empty() ? refusal.message : refusal.field + ": " + refusal.message;
  for (const char c : raw) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      why.push_back(c);
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      why += {'\\', 'x', kHex[u >> 4], kHex[u & 15]};
    }
  }
  return why;
}

CommandRequest check_command_request(const CommandPolicy& policy, std::string_view name,
                                     std::string_view payload, std::string_view response_topic) {
  CommandRequest q;
  const bool named = is_command_name(name);
  q.name = named ? std::string(name) : std::string();
  if (named) q.reply_topic = policy.prefix + "/cmd/" + q.name + "/res";
  if (payload.size() > policy.max_request_bytes) {
    q.reasons.push_back("request too large: " + std::to_string(payload.size()) + " bytes, the limit is " +
                        std::to_string(policy.max_request_bytes));
    return q;
  }
  // The same strict gate as API bodies: a string that is not clean UTF-8 (or holds \u0000) never reaches a
  // command, the store or a reply.
  net::JsonRefusal refusal;
  net::JsonPtr req = net::json_parse_request(payload, &refusal);
  if (!req) {
    std::string why = json_refusal_reason(refusal);
    if (why.size() > kMaxCommandReasonBytes - 32) why.resize(kMaxCommandReasonBytes - 32);
    q.reasons.push_back("malformed request: " + why);
    return q;
  }
  if (!cJSON_IsObject(req.get())) {
    q.reasons.emplace_back("malformed request: expected a JSON object");
    return q;
  }
  if (const char* c = str_member(req.get(), "correlation_id");
      c && std::string_view(c).size() <= kMaxCorrelationIdBytes)
    q.correlation_id = c;
  if (auto denied = check_command_token(policy.token, req.get())) {
    q.reasons.push_back(std::move(*denied));
    return q;  // an unauthenticated request chooses nothing, not even where its answer goes
  }
  q.authenticated = true;
  // Every copy: a duplicate "token" member would otherwise survive into what is stored.
  while (cJSON_GetObjectItemCaseSensitive(req.get(), "token") != nullptr)
    cJSON_DeleteItemFromObjectCaseSensitive(req.get(), "token");

  if (const cJSON* c = cJSON_GetObjectItemCaseSensitive(req.get(), "correlation_id");
      c != nullptr &&
      (!cJSON_IsString(c) || std::string_view(c->valuestring).size() > kMaxCorrelationIdBytes))
    q.reasons.push_back("correlation_id: expected a string of at most " +
                        std::to_string(kMaxCorrelationIdBytes) + " bytes");
  if (!named) {
    // No topic can carry the answer back under this name, so no requested one does either: logged only.
    q.reasons.emplace_back("unknown command (a name is 1 to 64 of A-Z a-z 0-9 _ -)");
    q.body = std::move(req);
    return q;
  }
  // The v5 response topic wins over reply_to, as the protocol's own field; either must lie under the reply
  // prefix, so a token holder cannot make the box publish into another box's (or the fleet's) topics.
  const cJSON* reply_to = cJSON_GetObjectItemCaseSensitive(req.get(), "reply_to");
  if (!response_topic.empty()) {
    if (is_allowed_reply_topic(policy.prefix, response_topic))
      q.reply_topic = response_topic;
    else
      q.reasons.push_back("response topic: must lie under " + command_reply_prefix(policy.prefix) +
                          " (printable ASCII, no wildcards, at most " + std::to_string(kMaxReplyTopicBytes) +
                          " bytes)");
  } else if (reply_to != nullptr) {
    if (cJSON_IsString(reply_to) && is_allowed_reply_topic(policy.prefix, reply_to->valuestring))
      q.reply_topic = reply_to->valuestring;
    else
      q.reasons.push_back("reply_to: must lie under " + command_reply_prefix(policy.prefix) +
                          " (printable ASCII, no wildcards, at most " + std::to_string(kMaxReplyTopicBytes) +
                          " bytes)");
  }
  check_fields(q.name, req.get(), q.reasons);
  q.body = std::move(req);
  return q;
}

}  // namespace osvi::daemon
