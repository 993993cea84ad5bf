// The osvid configuration document: the top level, site, log, api, store and calls sections, and the
// cross-checks between sections (agents named by tokens, lines and campaigns); the other sections each have a
// file of their own beside this one.
#include "osvi/config/config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <span>

#include "checks.hpp"
#include "key_file.hpp"
#include "osvi/base/ids.hpp"
#include "osvi/base/phone.hpp"
#include "osvi/base/time_zone.hpp"
#include "osvi/net/http_server.hpp"
#include "osvi/net/json.hpp"
#include "reader.hpp"
#include "sections.hpp"

namespace osvi::daemon {
namespace {

using config_detail::Item;
using config_detail::ObjectReader;
using config_detail::Problems;
using config_detail::quote;
using namespace config_detail;  // the shared text checks (checks.hpp)

constexpr size_t kTokenLength = 16;
// Far above any sane file; stops a wrong path (a log, a disk image) from being slurped into memory.
constexpr long kMaxConfigBytes = 16L * 1024 * 1024;

// A token's agent list is checked once every agent is known.
struct AgentRef {
  std::string path;
  std::string agent_uuid;
};

void check_token_text(const std::string& token, const std::string& path, Problems& p) {
  // The token itself never appears in a message: messages end up in the journal.
  if (token.size() != kTokenLength)
    p.add(path, "must be " + std::to_string(kTokenLength) + " characters of A-Z a-z 0-9 _ -, got " +
                    std::to_string(token.size()) + " characters");
  else if (!all_of(token, is_token_char))
    p.add(path, "may contain only A-Z a-z 0-9 _ -");
}

void parse_api(ObjectReader r, ApiConfig& api, std::vector<AgentRef>& refs) {
  Problems& p = r.problems();
  api.listen = r.str("listen", api.listen);
  std::string why;
  if (!parse_listen(api.listen, &api.host, &api.port, &why)) r.error("listen", why);

  std::map<std::string, std::string> seen;  // token -> path of its first use
  for (const Item& item : r.array("tokens")) {
    ApiToken t;
    std::string token_path = item.path;
    if (cJSON_IsString(item.node)) {
      t.token = item.node->valuestring;
    } else if (cJSON_IsObject(item.node)) {
      ObjectReader o(item, &p);
      token_path = o.path_of("token");
      const size_t before = p.size();
      t.token = o.required_str("token", 0);
      const bool token_ok = p.size() == before;
      std::vector<std::string> listed;
      for (const Item& a : o.array("agents")) {
        if (!cJSON_IsString(a.node)) {
          p.add(a.path, "expected a string, got " + std::string(config_detail::json_type_name(a.node)));
          continue;
        }
        const std::string uuid = a.node->valuestring;
        if (std::find(listed.begin(), listed.end(), uuid) != listed.end()) {
          p.add(a.path, "agent " + quote(uuid) + " is listed twice");
          continue;
        }
        listed.push_back(uuid);
        refs.push_back(AgentRef{a.path, uuid});
      }
      t.agents = std::move(listed);
      // A token limited to some agents is for a branch system, not for whoever administers the box.
      t.admin = o.boolean("admin", t.agents.empty());
      // System endpoints (health details, log level) would show every agent's lines and calls.
      if (t.admin && !t.agents.empty()) o.error("admin", "a token limited to some agents cannot be admin");
      if (!token_ok) continue;
    } else {
      p.add(item.path,
            "expected a string or an object, got " + std::string(config_detail::json_type_name(item.node)));
      continue;
    }
    const size_t before = p.size();
    check_token_text(t.token, token_path, p);
    if (p.size() != before) continue;
    if (auto [it, inserted] = seen.emplace(t.token, item.path); !inserted) {
      p.add(token_path, "duplicate token (same as " + it->second + ")");
      continue;
    }
    api.tokens.push_back(std::move(t));
  }
  api.token_file = r.str("token_file", api.token_file);
  api.max_body_bytes = static_cast<size_t>(
      r.integer("max_body_bytes", static_cast<int64_t>(api.max_body_bytes), 1024, 64L * 1024 * 1024));
  api.max_connections = static_cast<unsigned>(r.integer("max_connections", api.max_connections, 1, 1024));
  api.connection_timeout_s =
      static_cast<unsigned>(r.integer("connection_timeout_s", api.connection_timeout_s, 1, 3600));
  api.max_connections_per_client =
      static_cast<unsigned>(r.integer("max_connections_per_client", api.max_connections_per_client, 1, 1024));
  // The default stays valid when only max_connections is lowered below it.
  if (!r.has("max_connections_per_client"))
    api.max_connections_per_client = std::min(api.max_connections_per_client, api.max_connections);
  else if (api.max_connections_per_client > api.max_connections)
    r.error("max_connections_per_client", "must not exceed api.max_connections (" +
                                              std::to_string(api.max_connections) + "), got " +
                                              std::to_string(api.max_connections_per_client));
  api.header_timeout_s = static_cast<unsigned>(r.integer("header_timeout_s", api.header_timeout_s, 1, 300));
  api.idle_timeout_s = static_cast<unsigned>(r.integer("idle_timeout_s", api.idle_timeout_s, 1, 300));

  api.tls_cert_file = r.str("tls_cert_file", api.tls_cert_file);
  api.tls_key_file = r.str("tls_key_file", api.tls_key_file);
  if (api.tls_cert_file.empty() != api.tls_key_file.empty()) {
    const char* missing = api.tls_cert_file.empty() ? "tls_cert_file" : "tls_key_file";
    r.error(missing, "required with api." +
                         std::string(api.tls_cert_file.empty() ? "tls_key_file" : "tls_cert_file") +
                         " (HTTPS needs both a certificate and its key)");
  } else if (!api.tls_cert_file.empty()) {
    std::string problem;
    if (!net::http_tls_supported())
      r.error("tls_cert_file", "OpenSSL's libssl.so.3 cannot be loaded, so HTTPS is not available");
    else if (!read_pem_file(api.tls_cert_file, false, api.tls_cert_pem, problem))
      r.error("tls_cert_file", problem);
    else if (!read_pem_file(api.tls_key_file, true, api.tls_key_pem, problem))
      r.error("tls_key_file", problem);
  }
}

// ---- top level ------------------------------------------------------------------------------------------

void parse_site(ObjectReader r, SiteConfig& s) {
  // Both end up in MQTT topic levels, where '/', '+' and '#' have meanings.
  s.id = r.str("id", s.id);
  if (s.id.empty() || s.id.size() > 64 || !all_of(s.id, is_site_char))
    r.error("id", "expected 1 to 64 of A-Z a-z 0-9 . _ -, got " + quote(s.id));
  s.device = r.str("device", s.device);
  if (s.device.size() > 64 || !all_of(s.device, is_site_char))
    r.error("device", "expected up to 64 of A-Z a-z 0-9 . _ - (empty = hostname), got " + quote(s.device));
  s.utc_offset = r.str("utc_offset", s.utc_offset);
  if (!parse_utc_offset(s.utc_offset, &s.utc_offset_minutes))
    r.error("utc_offset",
            "expected \"+HH:MM\" or \"-HH:MM\" between -12:00 and +14:00, got " + quote(s.utc_offset));
  s.country = r.str("country", s.country);
  if (s.country.size() != 2 ||
      !std::all_of(s.country.begin(), s.country.end(), [](char c) { return c >= 'A' && c <= 'Z'; }))
    r.error("country", "expected two upper-case letters (ISO 3166-1 alpha-2), got " + quote(s.country));
  // Loaded, not pattern-matched: a zone this box has no file for would fail at the first campaign dial.
  s.time_zone = r.str("time_zone", s.time_zone);
  if (auto tz = TimeZone::load(s.time_zone); !tz.ok())
    r.error("time_zone", tz.error().code == -ENOENT ? "unknown time zone " + quote(s.time_zone)
                                                    : tz.error().message);  // it names the zone
}

void parse_log(ObjectReader r, log::Level& level) {
  const std::string name = r.str("level", std::string(log::level_name(level)));
  if (auto l = log::parse_level(name))
    level = *l;
  else
    r.error("level", "must be \"err\", \"warning\", \"notice\", \"info\" or \"debug\", got " + quote(name));
}

void parse_store(ObjectReader r, StoreConfig& s) {
  s.busy_timeout_ms = static_cast<int>(r.integer("busy_timeout_ms", s.busy_timeout_ms, 0, 60000));
  s.quick_check = r.boolean("quick_check", s.quick_check);
}

}  // namespace

std::string_view to_string(AgentMode v) {
  return v == AgentMode::chat ? "chat" : "voice";
}
std::string_view to_string(PromptType v) {
  return v == PromptType::multi ? "multi" : "single";
}
std::string_view to_string(AudioFormat v) {
  return v == AudioFormat::opus ? "opus" : "pcm";
}
std::string_view to_string(VoicemailAction v) {
  return v == VoicemailAction::leave_message ? "leave_message" : "hangup";
}
std::string_view to_string(TransferMode v) {
  return v == TransferMode::attended ? "attended" : "blind";
}
std::string_view to_string(FieldType v) {
  switch (v) {
    case FieldType::number:
      return "number";
    case FieldType::boolean:
      return "boolean";
    case FieldType::date:
      return "date";
    case FieldType::text:
      break;
  }
  return "text";
}

std::string_view to_string(CampaignStatus v) {
  return v == CampaignStatus::inactive ? "inactive" : "active";
}

Result<Config> parse_config(std::string_view json_text) {
  Config cfg;
  cfg.source_hash = fnv1a_hex(json_text);
  std::string why;
  net::JsonPtr doc = net::json_parse(json_text, &why);
  if (!doc) return make_error(why);

  Problems p;
  {
    ObjectReader root(doc.get(), "", &p);
    if (!root.valid()) return make_error(p.joined());
    std::vector<AgentRef> refs;
    parse_site(root.object("site"), cfg.site);
    cfg.state_dir = root.str("state_dir", cfg.state_dir, 1);
    parse_log(root.object("log"), cfg.log_level);
    parse_api(root.object("api"), cfg.api, refs);
    parse_store(root.object("store"), cfg.store);
    config_detail::parse_audio(root.object("audio"), cfg.audio);
    config_detail::parse_mqtt(root.object("mqtt"), cfg.mqtt);
    {
      ObjectReader c = root.object("calls");
      cfg.calls.max_queue = static_cast<unsigned>(c.integer("max_queue", cfg.calls.max_queue, 0, 1000));
      cfg.calls.recordings_dir = c.str("recordings_dir", cfg.calls.recordings_dir);
      cfg.calls.dead_air_ms =
          static_cast<unsigned>(c.integer("dead_air_ms", cfg.calls.dead_air_ms, 500, 2900));
      c.finish();
    }
    {
      std::vector<std::pair<std::string, std::string>> line_refs;
      config_detail::parse_lines(root.array("lines"), p, cfg.lines, line_refs);
      for (auto& [path, uuid] : line_refs) refs.push_back(AgentRef{path, uuid});
      // A SIP call's media threads are audio threads: they take the audio section's priority.
      for (LineConfig& l : cfg.lines)
        if (l.type == LineType::sip) l.sip.rt_priority = cfg.audio.rt_priority;
    }

    std::map<std::string, std::string> uuids;  // agent_uuid -> path of its first agent
    for (const Item& item : root.array("agents")) {
      AgentConfig a = config_detail::parse_agent(item, p);
      if (!a.agent_uuid.empty()) {
        if (auto [it, inserted] = uuids.emplace(a.agent_uuid, item.path); !inserted)
          p.add(item.path + ".agent_uuid",
                "duplicate " + quote(a.agent_uuid) + " (first at " + it->second + ")");
      }
      cfg.agents.push_back(std::move(a));
    }
    for (const AgentRef& ref : refs)
      if (!uuids.count(ref.agent_uuid)) p.add(ref.path, "unknown agent " + quote(ref.agent_uuid));
    // A transfer to a PBX extension goes through a SIP line (REFER); a modem can only dial E.164.
    const bool sip_line = std::any_of(cfg.lines.begin(), cfg.lines.end(), [](const LineConfig& l) {
      return l.type == LineType::sip && l.enabled;
    });
    for (size_t i = 0; i < cfg.agents.size(); ++i) {
      const std::string& to = cfg.agents[i].tools.transfer.number;
      if (!sip_line && !to.empty() && is_pbx_extension(to))
        p.add("agents[" + std::to_string(i) + "].tools.transfer.number",
              quote(to) + " is a PBX extension, which needs an enabled line of type \"sip\"");
    }
    // A chat agent's offer_call places its calls through the voice agent it names.
    for (size_t i = 0; i < cfg.agents.size(); ++i) {
      const std::string& target = cfg.agents[i].chat.voice_agent;
      if (target.empty() || cfg.agents[i].mode != AgentMode::chat) continue;
      const std::string path = "agents[" + std::to_string(i) + "].chat.voice_agent";
      auto it = std::find_if(cfg.agents.begin(), cfg.agents.end(),
                             [&](const AgentConfig& a) { return a.agent_uuid == target; });
      if (it == cfg.agents.end()) {
        p.add(path, "unknown agent " + quote(target));
      } else if (it->mode != AgentMode::voice) {
        p.add(path, "agent " + quote(target) + " is not a voice agent (mode is \"chat\")");
      }
    }

    config_detail::parse_compliance(root.object("compliance"), cfg.compliance);
    config_detail::parse_webhooks(root.object("webhooks"), cfg.webhooks);
    config_detail::parse_knowledge_base(root.object("knowledge"), cfg.knowledge);
    std::map<int64_t, std::string> campaign_ids;  // id -> path of its first campaign
    for (const Item& item : root.array("campaigns")) {
      const size_t before = p.size();
      CampaignConfig c = config_detail::parse_campaign_into(item.node, nullptr, item.path, p);
      if (c.id > 0) {
        if (auto [it, inserted] = campaign_ids.emplace(c.id, item.path); !inserted)
          p.add(item.path + ".id", "duplicate id " + std::to_string(c.id) + " (first at " + it->second + ")");
      }
      if (p.size() != before) continue;  // agents[i] paths hold only for a campaign read without problems
      config_detail::check_campaign_agents(c, cfg.agents, item.path, p);
      cfg.campaigns.push_back(std::move(c));
    }
  }
  if (!p.empty()) return make_error(p.joined());
  return cfg;
}

Result<Config> load_config_file(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f) return make_error(path + ": " + std::strerror(errno), -errno);
  std::string text;
  char buf[65536];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) {
    text.append(buf, n);
    if (text.size() > static_cast<size_t>(kMaxConfigBytes))
      return make_error(path + ": larger than " + std::to_string(kMaxConfigBytes / (1024 * 1024)) + " MiB",
                        -EFBIG);
  }
  // fread() cannot tell EOF from an error such as EISDIR: ferror() can, and errno holds why.
  if (std::ferror(f.get())) return make_error(path + ": " + std::strerror(errno), -errno);
  return parse_config(text);
}

net::Endpoint to_net_endpoint(const UpstreamEndpoint& e, int64_t first_byte_timeout_ms) {
  net::Endpoint ep;
  ep.provider = e.provider;
  ep.api_version = e.api_version;
  ep.base_url = e.base_url;
  ep.api_key = e.api_key;
  ep.model = e.model;
  ep.timeout_ms = e.timeout_ms;
  ep.first_byte_timeout_ms =
      first_byte_timeout_ms > 0 ? std::min<int64_t>(first_byte_timeout_ms, e.timeout_ms) : 0;
  return ep;
}

}  // namespace osvi::daemon
