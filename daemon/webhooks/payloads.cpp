// Post-call webhook payloads: the per-call webhook_url body, integrations' Auto and custom bodies, URL
// placeholders, destinations and message ids (payloads.hpp).
#include "osvi/webhooks/payloads.hpp"

#include <cctype>
#include <cstdio>

#include "osvi/base/ids.hpp"

namespace osvi::daemon {
namespace {

using net::JsonPtr;

// Stored JSON text as a value; null when absent or unparsable (the store checks json_valid, so the latter
// means another tool wrote the column).
JsonPtr stored_json(const std::optional<std::string>& text) {
  if (!text) return nullptr;
  std::string why;
  return net::json_parse(*text, &why);
}

JsonPtr stored_object(const std::optional<std::string>& text) {
  JsonPtr v = stored_json(text);
  return cJSON_IsObject(v.get()) ? std::move(v) : nullptr;
}

void add_string(cJSON* o, const char* name, std::string_view value) {
  net::json_add_string(o, name, value);
}

void add_or_null(cJSON* o, const char* name, JsonPtr value) {
  cJSON_AddItemToObject(o, name, value ? value.release() : cJSON_CreateNull());
}

void add_time_or_null(cJSON* o, const char* name, const std::optional<int64_t>& ms, int offset) {
  if (ms)
    add_string(o, name, format_local_iso(*ms, offset));
  else
    cJSON_AddNullToObject(o, name);
}

// The Call Info section, shared by every body.
void add_call_info(cJSON* o, const CallRecord& c) {
  add_string(o, "call_log_id", c.call_id);
  add_string(o, "phone_number", c.phone_number);
  add_string(o, "agent_name", c.agent_name);
  add_string(o, "call_status", c.status);
  add_string(o, "call_type", c.call_type);
}

// The variable a token names: the whole name as a key first ("a.b" may be a key of additional_data), then
// as a path into objects.
const cJSON* resolve(const cJSON* variables, std::string_view name) {
  if (name.empty() || !cJSON_IsObject(variables)) return nullptr;
  const std::string whole(name);
  if (const cJSON* v = cJSON_GetObjectItemCaseSensitive(variables, whole.c_str())) return v;
  const cJSON* at = variables;
  size_t start = 0;
  while (start <= name.size()) {
    const size_t dot = name.find('.', start);
    const std::string part(
        name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (part.empty() || !cJSON_IsObject(at)) return nullptr;
    at = cJSON_GetObjectItemCaseSensitive(at, part.c_str());
    if (!at) return nullptr;
    if (dot == std::string_view::npos) return at;
    start = dot + 1;
  }
  return nullptr;
}

// A value as text inside a longer string: a string as is, anything else its compact JSON.
std::string value_text(const cJSON* v) {
  if (cJSON_IsString(v)) return v->valuestring;
  return net::json_print(v);
}

// The token at text[pos] ("{{" already seen there): its name (trimmed) and where it ends, or npos.
size_t token_end(std::string_view text, size_t pos, std::string_view* name) {
  const size_t close = text.find("}}", pos + 2);
  if (close == std::string_view::npos) return std::string_view::npos;
  std::string_view n = text.substr(pos + 2, close - pos - 2);
  while (!n.empty() && n.front() == ' ') n.remove_prefix(1);
  while (!n.empty() && n.back() == ' ') n.remove_suffix(1);
  // A name never holds braces: "{{{{x}}" is "{{" then a token, not a token named "{{x".
  if (n.find_first_of("{}") != std::string_view::npos) return std::string_view::npos;
  *name = n;
  return close + 2;
}

// Replaces every resolvable token in text with encode(value's text).
template <class Encode>
std::string substitute(std::string_view text, const cJSON* variables, Encode encode) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const size_t open = text.find("{{", i);
    if (open == std::string_view::npos) break;
    std::string_view name;
    const size_t end = token_end(text, open, &name);
    const cJSON* v = end == std::string_view::npos ? nullptr : resolve(variables, name);
    if (!v) {  // left as written; scanning goes on after this "{{"
      out.append(text.substr(i, open + 2 - i));
      i = open + 2;
      continue;
    }
    out.append(text.substr(i, open - i));
    out.append(encode(value_text(v)));
    i = end;
  }
  out.append(text.substr(i));
  return out;
}

std::string percent_encode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

JsonPtr fill_node(const cJSON* node, const cJSON* variables) {
  if (cJSON_IsString(node)) {
    const std::string_view text = node->valuestring;
    std::string_view name;
    if (text.size() >= 4 && text.substr(0, 2) == "{{" && token_end(text, 0, &name) == text.size()) {
      if (const cJSON* v = resolve(variables, name)) return JsonPtr(cJSON_Duplicate(v, true));
    }
    const std::string filled = substitute(text, variables, [](const std::string& s) { return s; });
    return JsonPtr(cJSON_CreateString(filled.c_str()));
  }
  if (cJSON_IsArray(node) || cJSON_IsObject(node)) {
    JsonPtr out(cJSON_IsArray(node) ? cJSON_CreateArray() : cJSON_CreateObject());
    const cJSON* e = nullptr;
    cJSON_ArrayForEach(e, node) {
      JsonPtr v = fill_node(e, variables);
      if (cJSON_IsArray(node))
        cJSON_AddItemToArray(out.get(), v.release());
      else
        cJSON_AddItemToObject(out.get(), e->string, v.release());
    }
    return out;
  }
  return JsonPtr(cJSON_Duplicate(node, true));
}

}  // namespace

std::string chat_text(const std::vector<TranscriptTurn>& turns) {
  std::string out;
  for (const TranscriptTurn& t : turns) {
    const char* who = t.role == "agent"      ? "Agent"
                      : t.role == "user"     ? "User"
                      : t.role == "operator" ? "Operator"
                                             : nullptr;
    if (!who) continue;
    if (!out.empty()) out.push_back('\n');
    out.append(who).append(": ");
    for (char c : t.text) out.push_back(c == '\n' || c == '\r' ? ' ' : c);
  }
  return out;
}

JsonPtr trigger_data(const CallRecord& call) {
  if (call.call_type != "outbound") return nullptr;
  JsonPtr o(cJSON_CreateObject());
  add_string(o.get(), "phone_number", call.phone_number);
  if (call.person_name) add_string(o.get(), "person_name", *call.person_name);
  if (JsonPtr extra = stored_object(call.additional_data)) {
    const cJSON* e = nullptr;
    cJSON_ArrayForEach(e, extra.get()) {
      if (e->string && !cJSON_GetObjectItemCaseSensitive(o.get(), e->string))
        cJSON_AddItemToObject(o.get(), e->string, cJSON_Duplicate(e, true));
    }
  }
  return o;
}

JsonPtr call_webhook_body(const CallRecord& c, const std::vector<TranscriptTurn>& turns, int offset) {
  JsonPtr body(cJSON_CreateObject());
  cJSON* o = body.get();
  add_call_info(o, c);
  if (c.summary && !c.summary->empty())
    add_string(o, "call_summary", *c.summary);
  else
    cJSON_AddNullToObject(o, "call_summary");
  add_or_null(o, "data_capture", stored_object(c.data_captured));
  add_or_null(o, "structured_output", stored_json(c.structured_output));
  add_or_null(o, "call_trigger_data", trigger_data(c));
  // The older payload's keys (spec 4.2).
  add_string(o, "agent_uuid", c.agent_uuid);
  add_string(o, "chat", chat_text(turns));
  add_string(o, "executionMode", c.execution_mode);
  // What a v1 receiver expects beside them (the GET /v1/call/{id} names).
  add_string(o, "call_id", c.call_id);
  cJSON_AddNumberToObject(o, "duration", static_cast<double>(c.duration_seconds));
  add_or_null(o, "call_ended_by",
              c.call_ended_by ? JsonPtr(cJSON_CreateString(c.call_ended_by->c_str())) : nullptr);
  add_or_null(o, "call_ended_reason",
              c.call_ended_reason ? JsonPtr(cJSON_CreateString(c.call_ended_reason->c_str())) : nullptr);
  add_string(o, "created_at", format_local_iso(c.created_at_ms, offset));
  add_time_or_null(o, "call_picked_at", c.call_picked_at_ms, offset);
  add_time_or_null(o, "ended_at", c.ended_at_ms, offset);
  if (c.tag_id) {
    cJSON* tag = cJSON_AddObjectToObject(o, "tag");
    cJSON_AddNumberToObject(tag, "id", static_cast<double>(*c.tag_id));
    add_string(tag, "name", c.tag_name.value_or(""));
    add_or_null(tag, "color_code",
                c.tag_color_code ? JsonPtr(cJSON_CreateString(c.tag_color_code->c_str())) : nullptr);
  } else {
    cJSON_AddNullToObject(o, "tag");
  }
  if (c.campaign_id)
    cJSON_AddNumberToObject(o, "campaign_id", static_cast<double>(*c.campaign_id));
  else
    cJSON_AddNullToObject(o, "campaign_id");
  return body;
}

JsonPtr template_variables(const CallRecord& call, const std::vector<TranscriptTurn>& turns, int offset) {
  JsonPtr vars = call_webhook_body(call, turns, offset);
  if (JsonPtr trigger = trigger_data(call)) {
    const cJSON* e = nullptr;
    cJSON_ArrayForEach(e, trigger.get()) {
      if (!cJSON_GetObjectItemCaseSensitive(vars.get(), e->string))
        cJSON_AddItemToObject(vars.get(), e->string, cJSON_Duplicate(e, true));
    }
  }
  return vars;
}

std::string fill_url(std::string_view url, const cJSON* variables) {
  return substitute(url, variables, percent_encode);
}

JsonPtr fill_template(const cJSON* tmpl, const cJSON* variables) {
  return fill_node(tmpl, variables);
}

JsonPtr auto_body(const IntegrationConfig::Sections& s, const CallRecord& c) {
  JsonPtr body(cJSON_CreateObject());
  cJSON* o = body.get();
  if (s.call_info) add_call_info(o, c);
  if (s.summary && c.summary && !c.summary->empty()) add_string(o, "call_summary", *c.summary);
  if (s.data_extraction) {
    JsonPtr d = stored_object(c.data_captured);
    if (d && d->child) cJSON_AddItemToObject(o, "data_capture", d.release());
  }
  if (s.structured_output) {
    JsonPtr so = stored_json(c.structured_output);
    const bool empty = !so || cJSON_IsNull(so.get()) ||
                       ((cJSON_IsObject(so.get()) || cJSON_IsArray(so.get())) && !so->child);
    if (!empty) cJSON_AddItemToObject(o, "structured_output", so.release());
  }
  if (s.trigger_data) {
    if (JsonPtr t = trigger_data(c)) cJSON_AddItemToObject(o, "call_trigger_data", t.release());
  }
  return body;
}

std::optional<std::string> url_destination(std::string_view url) {
  std::string scheme;
  if (url.substr(0, 7) == "http://")
    scheme = "http";
  else if (url.substr(0, 8) == "https://")
    scheme = "https";
  else
    return std::nullopt;
  std::string_view authority = url.substr(scheme.size() + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  std::string_view host = authority, port;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = authority.substr(0, close + 1);
    const std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return std::nullopt;
      port = rest.substr(1);
    }
  } else if (const size_t colon = authority.find(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty() || host == "[]") return std::nullopt;
  std::string out = scheme + "://";
  for (char ch : host) out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
  out.push_back(':');
  out.append(port.empty() ? (scheme == "https" ? "443" : "80") : std::string(port));
  return out;
}

std::string new_webhook_id(int64_t now_ms) {
  // The UUID's 128 bits as 26 Crockford base32 digits (2 leading zero bits), the ULID text form.
  const std::string uuid = new_uuid_v7(now_ms);
  unsigned char bytes[16] = {};
  size_t n = 0;
  for (size_t i = 0; i + 1 < uuid.size() && n < 16; ++i) {
    if (uuid[i] == '-') continue;
    const auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    bytes[n++] = static_cast<unsigned char>(nibble(uuid[i]) << 4 | nibble(uuid[i + 1]));
    ++i;
  }
  static const char* kDigits = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  std::string out = "msg_";
  for (int d = 25; d >= 0; --d) {
    // Digit d (from the right) holds bits [5d, 5d + 5) of the 128-bit number.
    int v = 0;
    for (int b = 4; b >= 0; --b) {
      const int bit = 5 * d + b;
      int set = 0;
      if (bit < 128) set = (bytes[15 - bit / 8] >> (bit % 8)) & 1;
      v = v << 1 | set;
    }
    out.push_back(kDigits[v]);
  }
  return out;
}

std::vector<WebhookDelivery> deliveries_for_call(const CallRecord& call,
                                                 const std::vector<TranscriptTurn>& turns,
                                                 const AgentConfig* agent, bool analysis_ran,
                                                 const PayloadOptions& opt) {
  std::vector<WebhookDelivery> out;
  const auto base = [&](std::string kind) {
    WebhookDelivery d;
    d.webhook_id = new_webhook_id(opt.now_ms);
    d.call_id = call.call_id;
    d.kind = std::move(kind);
    d.agent_uuid = call.agent_uuid;
    d.next_attempt_at_ms = opt.now_ms;
    d.created_at_ms = opt.now_ms;
    d.expires_at_ms = opt.now_ms + opt.horizon_s * 1000;
    return d;
  };
  if (call.webhook_url && !call.webhook_url->empty()) {
    // The API checked the URL; a row from elsewhere (an older daemon, a fleet push) is still guarded here.
    if (std::optional<std::string> dest = url_destination(*call.webhook_url)) {
      WebhookDelivery d = base("call_webhook");
      d.destination = *dest;
      d.url = *call.webhook_url;
      d.body = net::json_print(call_webhook_body(call, turns, opt.utc_offset_minutes).get());
      out.push_back(std::move(d));
    }
  }
  if (agent == nullptr || !analysis_ran || call.status != "picked") return out;
  JsonPtr vars;
  for (const IntegrationConfig& in : agent->analysis.integrations) {
    if (!in.active) continue;
    if (!vars) vars = template_variables(call, turns, opt.utc_offset_minutes);
    WebhookDelivery d = base("integration");
    d.integration = in.name;
    d.destination = call.agent_uuid + "/" + in.name;
    d.method = in.method;
    d.url = fill_url(in.url, vars.get());
    for (const auto& [name, value] : in.headers) d.headers.push_back(name + ": " + value);
    if (in.method != "GET" && in.method != "DELETE") {
      if (in.body_auto) {
        d.body = net::json_print(auto_body(in.sections, call).get());
      } else {
        std::string why;
        JsonPtr tmpl = net::json_parse(in.body_template, &why);  // the configuration printed it: it parses
        d.body = tmpl ? net::json_print(fill_template(tmpl.get(), vars.get()).get()) : std::string("{}");
      }
    }
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace osvi::daemon
