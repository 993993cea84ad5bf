// Configuration: post-call webhooks — the agents' analysis.integrations[] (spec 4.1) and the top-level
// "webhooks" section (the delivery queue's timing, target guard exemptions, signing secret).
#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <map>
#include <string>

#include "checks.hpp"
#include "osvi/config/config.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/text.hpp"
#include "reader.hpp"
#include "sections.hpp"

namespace osvi::daemon::config_detail {
namespace {

constexpr size_t kMaxIntegrations = 20;  // per agent: each one is a request per analysed call
constexpr size_t kMaxHeaders = 32;       // per integration
constexpr size_t kMaxHeaderValueChars = 4096;
constexpr size_t kMaxUrlChars = 2048;
constexpr size_t kMaxTemplateBytes = 64 * 1024;  // compact JSON; the body is built from it per call
constexpr size_t kMaxAllowedTargets = 64;

// Headers the delivery itself owns: the framing (libcurl), the content type (application/json with a body),
// the box's User-Agent and the Standard Webhooks signature headers. A configured one would be sent twice or
// contradict the request.
constexpr std::array<std::string_view, 9> kReservedHeaders = {
    "content-type", "content-length",    "transfer-encoding", "host", "connection", "user-agent",
    "webhook-id",   "webhook-timestamp", "webhook-signature"};

bool is_header_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

// Integration names label deliveries in logs and the API, and form the queue's destination
// "agent_uuid/name": letters, digits, space, '_', '-', '.', no leading or trailing space.
bool is_integration_name(std::string_view s) {
  if (s.empty() || s.size() > 64 || s.front() == ' ' || s.back() == ' ') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == ' ' || c == '_' || c == '-' || c == '.';
  });
}

// The authority of an http(s) URL already checked by is_http_url().
std::string_view url_authority(std::string_view url) {
  const size_t start = url.find("://") + 3;
  const std::string_view rest = url.substr(start);
  return rest.substr(0, rest.find_first_of("/?#"));
}

void parse_headers(ObjectReader& r, IntegrationConfig& in) {
  const cJSON* h = r.any("headers");
  if (!h) return;
  if (!cJSON_IsObject(h)) {
    r.error("headers",
            "expected an object of header name → string value, got " + std::string(json_type_name(h)));
    return;
  }
  const std::string base = r.path_of("headers");
  std::map<std::string, std::string> seen;  // lower-case name -> name as first written
  size_t count = 0;
  const cJSON* e = nullptr;
  cJSON_ArrayForEach(e, h) {
    const std::string name = e->string ? e->string : "";
    const std::string path = base + "[" + quote(name) + "]";
    if (++count > kMaxHeaders) {
      r.problems().add(base, "at most " + std::to_string(kMaxHeaders) + " headers");
      break;
    }
    if (name.empty() || name.size() > 64 || !all_of(name, is_header_name_char)) {
      r.problems().add(path, "a header name is 1 to 64 of A-Z a-z 0-9 !#$%&'*+-.^_`|~");
      continue;
    }
    const std::string key = net::ascii_lower(name);
    if (std::find(kReservedHeaders.begin(), kReservedHeaders.end(), key) != kReservedHeaders.end()) {
      r.problems().add(path,
                       "is set by every delivery (Content-Type is always application/json; the "
                       "webhook-* headers are the signature) and cannot be configured");
      continue;
    }
    if (auto [it, inserted] = seen.emplace(key, name); !inserted) {
      r.problems().add(path,
                       "duplicate header (header names ignore case; first as " + quote(it->second) + ")");
      continue;
    }
    if (!cJSON_IsString(e)) {
      r.problems().add(path, "expected a string, got " + std::string(json_type_name(e)));
      continue;
    }
    const std::string value = e->valuestring;
    // CR or LF would end the header and start another one (request splitting); NUL ends it early.
    if (std::any_of(value.begin(), value.end(), [](char c) { return c == '\r' || c == '\n' || c == '\0'; })) {
      r.problems().add(path, "may not contain CR or LF");
      continue;
    }
    if (net::utf8_length(value) > kMaxHeaderValueChars) {
      r.problems().add(path, "at most " + std::to_string(kMaxHeaderValueChars) + " characters");
      continue;
    }
    in.headers.emplace_back(name, value);
  }
}

void parse_body(ObjectReader b, IntegrationConfig& in) {
  if (!b.present()) return;
  if (!b.valid()) return;
  const size_t before = b.problems().size();
  const std::string mode = b.str("mode", "auto");
  if (mode == "auto") {
    in.body_auto = true;
    b.forbid("template", "only allowed when mode is \"custom\"");
    ObjectReader s = b.object("sections");
    in.sections.call_info = s.boolean("call_info", in.sections.call_info);
    in.sections.summary = s.boolean("summary", in.sections.summary);
    in.sections.data_extraction = s.boolean("data_extraction", in.sections.data_extraction);
    in.sections.structured_output = s.boolean("structured_output", in.sections.structured_output);
    in.sections.trigger_data = s.boolean("trigger_data", in.sections.trigger_data);
  } else if (mode == "custom") {
    in.body_auto = false;
    b.forbid("sections", "only allowed when mode is \"auto\"");
    const cJSON* t = b.any("template");
    if (!t) {
      b.error("template", "required when mode is \"custom\"");
    } else if (!cJSON_IsObject(t) && !cJSON_IsArray(t)) {
      b.error("template", "expected a JSON object or array, got " + std::string(json_type_name(t)));
    } else {
      in.body_template = net::json_print(t);
      if (in.body_template.size() > kMaxTemplateBytes) {
        b.error("template", std::to_string(in.body_template.size()) + " bytes as compact JSON, more than " +
                                std::to_string(kMaxTemplateBytes));
        in.body_template.clear();
      }
    }
  } else if (b.problems().size() == before) {
    b.error("mode", "must be \"auto\" or \"custom\", got " + quote(mode));
    b.any("sections");
    b.any("template");
  }
}

IntegrationConfig parse_integration(const Item& item, Problems& p, bool analysis_enabled) {
  IntegrationConfig in;
  ObjectReader r(item, &p);
  if (!r.valid()) return in;
  in.name = r.required_str("name", 1, 64);
  if (!in.name.empty() && !is_integration_name(in.name))
    r.error("name", "expected 1 to 64 of A-Z a-z 0-9 space _ - . (no leading or trailing space), got " +
                        quote(in.name));
  in.method = r.str("method", in.method);
  static constexpr std::array<std::string_view, 5> kMethods = {"POST", "PUT", "PATCH", "GET", "DELETE"};
  if (std::find(kMethods.begin(), kMethods.end(), in.method) == kMethods.end())
    r.error("method", "must be " + one_of_text(kMethods) + ", got " + quote(in.method));
  const bool bodyless = in.method == "GET" || in.method == "DELETE";

  in.url = r.required_str("url", 1, kMaxUrlChars);
  if (!in.url.empty()) {
    if (!is_http_url(in.url))
      r.error("url", "expected an http:// or https:// URL with a host, got " + quote(in.url));
    else if (url_authority(in.url).find_first_of("{}") != std::string_view::npos)
      // The host and port name the target the guard checks and the queue orders by: never call data.
      r.error("url", "{{placeholders}} are allowed only in the path and the query, got " + quote(in.url));
  }
  parse_headers(r, in);
  if (bodyless)
    r.forbid("body", "GET and DELETE send no body; remove \"body\" or use POST, PUT or PATCH");
  else
    parse_body(r.object("body"), in);

  if (const cJSON* s = r.any("secret")) {
    // The secret itself never appears in a message: messages end up in the journal.
    if (!cJSON_IsString(s))
      r.error("secret", "expected a string, got " + std::string(json_type_name(s)));
    else if (std::string why; s->valuestring[0] != '\0' && !is_webhook_secret(s->valuestring, &why))
      r.error("secret", why);
    else
      in.secret = s->valuestring;
  }
  in.active = r.boolean("active", in.active);
  // Integrations fire after the analysis (spec 4.1); without it an active one would never send anything.
  if (in.active && !analysis_enabled)
    r.error(
        "active",
        "an active integration needs analysis.enabled true (integrations fire after the call's analysis); "
        "set \"active\": false to keep it configured but off");
  return in;
}

}  // namespace

void parse_integrations(const std::vector<Item>& items, Problems& p, bool analysis_enabled,
                        std::vector<IntegrationConfig>& out) {
  std::map<std::string, std::string> names;  // name -> path of its first integration
  for (const Item& item : items) {
    if (out.size() == kMaxIntegrations) {
      p.add(item.path, "at most " + std::to_string(kMaxIntegrations) + " integrations per agent");
      break;
    }
    IntegrationConfig in = parse_integration(item, p, analysis_enabled);
    if (!in.name.empty()) {
      if (auto [it, inserted] = names.emplace(in.name, item.path); !inserted)
        p.add(item.path + ".name",
              "duplicate integration " + quote(in.name) + " (first at " + it->second + ")");
    }
    out.push_back(std::move(in));
  }
}

void parse_webhooks(ObjectReader r, WebhooksConfig& w) {
  w.timeout_ms = r.integer("timeout_ms", w.timeout_ms, 1000, 120'000);
  w.horizon_s = r.integer("horizon_s", w.horizon_s, 60, 7 * 86400);
  const size_t before = r.problems().size();
  w.initial_backoff_ms = r.integer("initial_backoff_ms", w.initial_backoff_ms, 100, 3'600'000);
  w.max_backoff_ms = r.integer("max_backoff_ms", w.max_backoff_ms, 1000, 86'400'000);
  if (r.problems().size() == before && w.max_backoff_ms < w.initial_backoff_ms)
    r.error("max_backoff_ms", "must be at least initial_backoff_ms (" + std::to_string(w.initial_backoff_ms) +
                                  "), got " + std::to_string(w.max_backoff_ms));
  w.max_in_flight = static_cast<int>(r.integer("max_in_flight", w.max_in_flight, 1, 256));
  w.max_redirects = static_cast<int>(r.integer("max_redirects", w.max_redirects, 0, 10));
  const std::vector<Item> targets = r.array("allowed_targets");
  if (targets.size() > kMaxAllowedTargets)
    r.error("allowed_targets", "at most " + std::to_string(kMaxAllowedTargets) + " entries");
  for (size_t i = 0; i < targets.size() && i < kMaxAllowedTargets; ++i) {
    const Item& t = targets[i];
    if (!cJSON_IsString(t.node)) {
      r.problems().add(t.path, "expected a string, got " + std::string(json_type_name(t.node)));
      continue;
    }
    std::string why;
    if (!is_cidr(t.node->valuestring, &why)) {
      r.problems().add(t.path, why);
      continue;
    }
    w.allowed_targets.emplace_back(t.node->valuestring);
  }
  if (const cJSON* s = r.any("signing_secret")) {
    if (!cJSON_IsString(s))
      r.error("signing_secret", "expected a string, got " + std::string(json_type_name(s)));
    else if (std::string why; s->valuestring[0] != '\0' && !is_webhook_secret(s->valuestring, &why))
      r.error("signing_secret", why);
    else
      w.signing_secret = s->valuestring;
  }
}

}  // namespace osvi::daemon::config_detail
