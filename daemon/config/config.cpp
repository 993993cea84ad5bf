// The osvid configuration schema: every section, its defaults and its checks, on top of config_reader.
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

#include "reader.hpp"
#include "osvi/base/ids.hpp"
#include "osvi/net/json.hpp"

namespace osvi::daemon {
namespace {

using config_detail::Item;
using config_detail::ObjectReader;
using config_detail::Problems;
using config_detail::quote;

constexpr size_t kTokenLength = 16;
constexpr size_t kMaxGreetingChars = 2000;
// Far above any sane file; stops a wrong path (a log, a disk image) from being slurped into memory.
constexpr long kMaxConfigBytes = 16L * 1024 * 1024;

// Providers each kind of endpoint can talk to (spec 7.6): a typo fails --check-config, not the first call.
constexpr std::array<std::string_view, 1> kSttProviders = {"openai"};
constexpr std::array<std::string_view, 4> kLlmProviders = {"openai", "azure_openai", "gemini", "groq"};
constexpr std::array<std::string_view, 1> kTtsProviders = {"openai"};
constexpr std::array<std::string_view, 3> kAnalysisProviders = {"openai", "azure_openai", "anthropic"};

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool is_lower_or_digit(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool all_of(std::string_view s, bool (*pred)(char)) {
  return std::all_of(s.begin(), s.end(), pred);
}

bool is_token_char(char c) {
  return is_alnum(c) || c == '_' || c == '-';
}
bool is_site_char(char c) {
  return is_token_char(c) || c == '.';
}

// ^agent_[A-Za-z0-9_-]{1,64}$
bool is_agent_uuid(std::string_view s) {
  constexpr std::string_view kPrefix = "agent_";
  if (s.substr(0, kPrefix.size()) != kPrefix) return false;
  const std::string_view rest = s.substr(kPrefix.size());
  return !rest.empty() && rest.size() <= 64 && all_of(rest, is_token_char);
}

// ^[a-z][a-z0-9_]{0,max_rest}$: state names and extraction keys, which the model sees and the webhook
// carries.
bool is_identifier(std::string_view s, size_t max_len) {
  if (s.empty() || s.size() > max_len || !(s[0] >= 'a' && s[0] <= 'z')) return false;
  return all_of(s, [](char c) { return is_lower_or_digit(c) || c == '_'; });
}

// ^\+[1-9][0-9]{6,14}$
bool is_e164(std::string_view s) {
  if (s.size() < 8 || s.size() > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9') return false;
  return all_of(s.substr(1), [](char c) { return c >= '0' && c <= '9'; });
}

// BCP 47 as the speech providers use it: "en", "en-IN", "hi-Latn-IN".
bool is_language_tag(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && s[i] >= 'a' && s[i] <= 'z') ++i;
  if (i < 2 || i > 3) return false;
  while (i < s.size()) {
    if (s[i] != '-') return false;
    const size_t start = ++i;
    while (i < s.size() && is_alnum(s[i])) ++i;
    if (i - start < 2 || i - start > 8) return false;
  }
  return true;
}

bool is_port(std::string_view s, uint16_t* port) {
  if (s.empty() || s.size() > 5 || !all_of(s, [](char c) { return c >= '0' && c <= '9'; })) return false;
  const long v = std::strtol(std::string(s).c_str(), nullptr, 10);
  if (v < 1 || v > 65535) return false;
  if (port) *port = static_cast<uint16_t>(v);
  return true;
}

// http:// or https://, a non-empty host (name, IPv4 or [IPv6]) and an optional port; path free.
bool is_http_url(std::string_view s) {
  size_t scheme = 0;
  if (s.substr(0, 7) == "http://") scheme = 7;
  if (s.substr(0, 8) == "https://") scheme = 8;
  if (!scheme) return false;
  if (std::any_of(s.begin(), s.end(), [](char c) { return c <= ' ' || c == 0x7f; })) return false;
  std::string_view authority = s.substr(scheme);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (authority.find('@') != std::string_view::npos) return false;  // credentials belong in api_key
  std::string_view host = authority;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return false;
    host = authority.substr(0, close + 1);
    const std::string_view rest = authority.substr(close + 1);
    if (!rest.empty() && (rest[0] != ':' || !is_port(rest.substr(1), nullptr))) return false;
  } else if (const size_t colon = authority.find(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    if (!is_port(authority.substr(colon + 1), nullptr)) return false;
  }
  return !host.empty() && host != "[]";
}

// "+05:30" -> 330. Real zones span -12:00 to +14:00.
bool parse_utc_offset(std::string_view s, int* minutes) {
  if (s.size() != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':') return false;
  for (size_t i : {1, 2, 4, 5})
    if (s[i] < '0' || s[i] > '9') return false;
  const int h = (s[1] - '0') * 10 + (s[2] - '0');
  const int m = (s[4] - '0') * 10 + (s[5] - '0');
  if (m > 59) return false;
  const int total = (s[0] == '-' ? -1 : 1) * (h * 60 + m);
  if (total < -12 * 60 || total > 14 * 60) return false;
  *minutes = total;
  return true;
}

std::string one_of_text(std::span<const std::string_view> names) {
  std::string out;
  size_t i = 0;
  for (std::string_view n : names) {
    if (i++) out += i == names.size() ? " or " : ", ";
    out += "\"" + std::string(n) + "\"";
  }
  return out;
}

// ---- api ------------------------------------------------------------------------------------------------

// Parses "host:port"; why names the part that is wrong.
bool parse_listen(std::string_view s, std::string* host, uint16_t* port, std::string* why) {
  std::string_view h, p;
  if (!s.empty() && s[0] == '[') {
    const size_t close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      *why = "expected \"[IPv6]:port\", got " + quote(s);
      return false;
    }
    h = s.substr(0, close + 1);
    p = s.substr(close + 2);
    const std::string inner(h.substr(1, h.size() - 2));
    in6_addr a6{};
    if (inet_pton(AF_INET6, inner.c_str(), &a6) != 1) {
      *why = "host " + quote(h) + " is not an IPv6 address";
      return false;
    }
  } else {
    const size_t colon = s.rfind(':');
    if (colon == std::string_view::npos) {
      *why = "expected \"host:port\", got " + quote(s);
      return false;
    }
    h = s.substr(0, colon);
    p = s.substr(colon + 1);
    if (h.find(':') != std::string_view::npos) {
      *why = "an IPv6 host needs brackets, as in \"[::1]:8080\", got " + quote(s);
      return false;
    }
    in_addr a4{};
    if (h != "localhost" && inet_pton(AF_INET, std::string(h).c_str(), &a4) != 1) {
      *why = "host must be an IPv4 address, an [IPv6] address or \"localhost\", got " + quote(h);
      return false;
    }
  }
  if (!is_port(p, port)) {
    *why = "port must be between 1 and 65535, got " + quote(p);
    return false;
  }
  *host = std::string(h);
  return true;
}

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
}

// ---- agents ---------------------------------------------------------------------------------------------

void parse_endpoint(ObjectReader& r, UpstreamEndpoint& e, std::span<const std::string_view> providers) {
  e.provider = r.str("provider", e.provider);
  if (std::find(providers.begin(), providers.end(), e.provider) == providers.end()) {
    r.error("provider", "must be " + one_of_text(providers) + ", got " + quote(e.provider));
  }
  std::string url = r.str("base_url", e.base_url);
  if (!is_http_url(url)) {
    r.error("base_url", "expected an http:// or https:// URL with a host, got " + quote(url));
  } else {
    // The client appends "/chat/completions" and friends; a trailing slash would double it.
    while (url.size() > 1 && url.back() == '/') url.pop_back();
    e.base_url = url;
  }
  e.model = r.str("model", e.model, 1, 200);
  e.api_key = r.str("api_key", e.api_key);
  e.api_key_file = r.str("api_key_file", e.api_key_file);
  if (!e.api_key.empty() && !e.api_key_file.empty())
    r.error("api_key_file", "cannot be used together with api_key (choose one)");
  e.timeout_ms = static_cast<unsigned>(r.integer("timeout_ms", e.timeout_ms, 100, 120000));
}

void parse_llm(ObjectReader r, LlmConfig& llm, std::span<const std::string_view> providers) {
  parse_endpoint(r, llm, providers);
  llm.temperature = r.number("temperature", llm.temperature, 0, 2);
  llm.max_tokens = static_cast<unsigned>(r.integer("max_tokens", llm.max_tokens, 1, 32768));
}

void parse_stt(ObjectReader r, SttConfig& stt) {
  parse_endpoint(r, stt, kSttProviders);
  stt.language = r.str("language", stt.language);
  if (!stt.language.empty() && !is_language_tag(stt.language))
    r.error("language", "expected a language tag such as \"en\" or \"hi-IN\", got " + quote(stt.language));
}

void parse_voice(ObjectReader r, VoiceConfig& v) {
  parse_endpoint(r, v, kTtsProviders);
  v.voice = r.str("voice", v.voice, 1, 100);
  v.speed = r.number("speed", v.speed, 0.25, 4);
  v.format = r.choice("format", v.format, {{"pcm", AudioFormat::pcm}, {"opus", AudioFormat::opus}});
}

void parse_prompt(ObjectReader r, PromptConfig& pc) {
  Problems& p = r.problems();
  const size_t before = p.size();
  pc.type = r.choice("type", pc.type, {{"single", PromptType::single}, {"multi", PromptType::multi}});
  if (p.size() != before) {
    // With the type unknown, every other key would be reported as misplaced: one problem is enough.
    for (const char* k : {"system_prompt", "initial_state", "states"}) r.any(k);
    return;
  }
  if (pc.type == PromptType::single) {
    pc.system_prompt = r.str("system_prompt", pc.system_prompt);
    r.forbid("initial_state", "only allowed when type is \"multi\"");
    r.forbid("states", "only allowed when type is \"multi\"");
    return;
  }
  r.forbid("system_prompt", "only allowed when type is \"single\" (a multi prompt has one prompt per state)");
  std::map<std::string, std::string> names;                  // state name -> path of the state
  std::vector<std::pair<std::string, std::string>> targets;  // (path of "to", state name)
  const cJSON* raw_states = cJSON_GetObjectItemCaseSensitive(r.node(), "states");
  const std::vector<Item> states = r.array("states");
  if (!raw_states)
    r.error("states", "required when type is \"multi\"");
  else if (cJSON_IsArray(raw_states) && states.empty())
    r.error("states", "a multi prompt needs at least one state");
  for (const Item& item : states) {
    ObjectReader s(item, &p);
    if (!s.valid()) continue;
    PromptState st;
    st.name = s.required_str("name");
    if (!st.name.empty()) {
      if (!is_identifier(st.name, 40)) {
        s.error("name",
                "expected lower-case letters, digits and '_', starting with a letter, at most 40, got " +
                    quote(st.name));
      } else if (auto [it, inserted] = names.emplace(st.name, item.path); !inserted) {
        s.error("name", "duplicate state " + quote(st.name) + " (first at " + it->second + ")");
      }
    }
    st.prompt = s.str("prompt", st.prompt);
    for (const Item& t_item : s.array("transitions")) {
      ObjectReader t(t_item, &p);
      if (!t.valid()) continue;
      PromptTransition tr;
      tr.to = t.required_str("to");
      tr.when = t.required_str("when");
      if (!tr.to.empty()) targets.emplace_back(t.path_of("to"), tr.to);
      st.transitions.push_back(std::move(tr));
    }
    pc.states.push_back(std::move(st));
  }
  for (const auto& [path, to] : targets)
    if (!names.count(to)) p.add(path, "unknown state " + quote(to));
  pc.initial_state = r.str("initial_state", pc.initial_state);
  if (pc.initial_state.empty()) {
    if (!pc.states.empty()) pc.initial_state = pc.states.front().name;
  } else if (!names.count(pc.initial_state)) {
    r.error("initial_state", "unknown state " + quote(pc.initial_state));
  }
}

void parse_greeting(ObjectReader r, GreetingConfig& g) {
  g.text = r.str("text", g.text, 0, kMaxGreetingChars);
  g.interruptible = r.boolean("interruptible", g.interruptible);
}

void parse_call(ObjectReader r, CallConfig& c) {
  c.barge_in = r.boolean("barge_in", c.barge_in);
  c.min_interruption_s = r.number("min_interruption_s", c.min_interruption_s, 0.1, 2.0);
  c.min_interruption_words =
      static_cast<unsigned>(r.integer("min_interruption_words", c.min_interruption_words, 0, 20));
  const size_t before = r.problems().size();
  c.min_endpointing_s = r.number("min_endpointing_s", c.min_endpointing_s, 0.1, 5);
  c.max_endpointing_s = r.number("max_endpointing_s", c.max_endpointing_s, 0.2, 10);
  // Compared only when both values are valid; otherwise the range problem is the one to fix first.
  if (r.problems().size() == before && c.max_endpointing_s < c.min_endpointing_s) {
    r.error("max_endpointing_s", "must be >= min_endpointing_s (" +
                                     config_detail::format_number(c.min_endpointing_s) + "), got " +
                                     config_detail::format_number(c.max_endpointing_s));
  }
  {
    ObjectReader vad = r.object("vad");
    c.vad.enabled = vad.boolean("enabled", c.vad.enabled);
    c.vad.sensitivity = vad.number("sensitivity", c.vad.sensitivity, 0, 1);
  }
  c.noise_cancellation = r.boolean("noise_cancellation", c.noise_cancellation);
  {
    ObjectReader s = r.object("silence");
    c.silence.timeout_s = s.number("timeout_s", c.silence.timeout_s, 1, 120);
    c.silence.message = s.str("message", c.silence.message, 0, kMaxGreetingChars);
    c.silence.max_prompts = static_cast<unsigned>(s.integer("max_prompts", c.silence.max_prompts, 0, 10));
  }
  c.max_duration_s = static_cast<unsigned>(r.integer("max_duration_s", c.max_duration_s, 10, 14400));
  {
    ObjectReader v = r.object("voicemail");
    c.voicemail.detect = v.boolean("detect", c.voicemail.detect);
    c.voicemail.action =
        v.choice("action", c.voicemail.action,
                 {{"hangup", VoicemailAction::hangup}, {"leave_message", VoicemailAction::leave_message}});
    c.voicemail.message = v.str("message", c.voicemail.message, 0, kMaxGreetingChars);
    if (c.voicemail.action == VoicemailAction::leave_message && c.voicemail.message.empty())
      v.error("message", "required when action is \"leave_message\"");
  }
}

void parse_tools(ObjectReader r, ToolsConfig& t) {
  t.end_call = r.boolean("end_call", t.end_call);
  t.dtmf = r.boolean("dtmf", t.dtmf);
  {
    ObjectReader x = r.object("transfer");
    t.transfer.enabled = x.boolean("enabled", t.transfer.enabled);
    t.transfer.number = x.str("number", t.transfer.number);
    if (!t.transfer.number.empty() && !is_e164(t.transfer.number))
      x.error("number",
              "expected an E.164 number such as \"+919876543210\", got " + quote(t.transfer.number));
    else if (t.transfer.enabled && t.transfer.number.empty())
      x.error("number", "required when transfer is enabled");
    t.transfer.message = x.str("message", t.transfer.message, 0, kMaxGreetingChars);
    t.transfer.mode = x.choice("mode", t.transfer.mode,
                               {{"blind", TransferMode::blind}, {"attended", TransferMode::attended}});
  }
  t.language_switch = r.boolean("language_switch", t.language_switch);
}

void parse_analysis(ObjectReader r, AnalysisConfig& a) {
  Problems& p = r.problems();
  a.enabled = r.boolean("enabled", a.enabled);
  parse_llm(r.object("llm"), a.llm, kAnalysisProviders);
  a.prompt = r.str("prompt", a.prompt);

  std::map<std::string, std::string> keys;
  for (const Item& item : r.array("data_extraction")) {
    ObjectReader f(item, &p);
    if (!f.valid()) continue;
    ExtractionField field;
    field.key = f.required_str("key");
    if (!field.key.empty()) {
      if (!is_identifier(field.key, 64))
        f.error("key",
                "expected lower-case letters, digits and '_', starting with a letter, at most 64, got " +
                    quote(field.key));
      else if (auto [it, inserted] = keys.emplace(field.key, item.path); !inserted)
        f.error("key", "duplicate key " + quote(field.key) + " (first at " + it->second + ")");
    }
    field.type = f.choice("type", field.type,
                          {{"text", FieldType::text},
                           {"number", FieldType::number},
                           {"boolean", FieldType::boolean},
                           {"date", FieldType::date}});
    field.hint = f.str("hint", field.hint);
    field.required = f.boolean("required", field.required);
    a.data_extraction.push_back(std::move(field));
  }

  std::map<int64_t, std::string> ids;
  for (const Item& item : r.array("tags")) {
    ObjectReader t(item, &p);
    if (!t.valid()) continue;
    CallTag tag;
    if (!t.has("id")) t.error("id", "required key is missing");
    const int64_t id = t.integer("id", 0, 1, INT32_MAX);
    if (id > 0) {
      if (auto [it, inserted] = ids.emplace(id, item.path); !inserted)
        t.error("id", "duplicate tag id " + std::to_string(id) + " (first at " + it->second + ")");
    }
    tag.id = static_cast<int>(id);
    tag.name = t.required_str("name", 1, 40);
    tag.color_code = t.str("color_code", tag.color_code);
    if (!(tag.color_code.size() == 7 && tag.color_code[0] == '#' && all_of(tag.color_code.substr(1), is_hex)))
      t.error("color_code", "expected \"#rrggbb\", got " + quote(tag.color_code));
    a.tags.push_back(std::move(tag));
  }

  {
    ObjectReader cb = r.object("callback_detection");
    a.callback_detection.enabled = cb.boolean("enabled", a.callback_detection.enabled);
    a.callback_detection.prompt = cb.str("prompt", a.callback_detection.prompt);
  }
  if (const cJSON* schema = r.any("output_schema")) {
    if (cJSON_IsObject(schema))
      a.output_schema_json = net::json_print(schema);
    else
      r.error("output_schema",
              "expected an object, got " + std::string(config_detail::json_type_name(schema)));
  }
}

void parse_chat(ObjectReader r, ChatConfig& c) {
  c.takeover = r.boolean("takeover", c.takeover);
  c.tell = r.boolean("tell", c.tell);
  c.whisper = r.boolean("whisper", c.whisper);
}

AgentConfig parse_agent(const Item& item, Problems& p) {
  AgentConfig a;
  ObjectReader r(item, &p);
  if (!r.valid()) return a;
  a.definition_json = net::json_print(item.node);
  a.agent_uuid = r.required_str("agent_uuid");
  if (!a.agent_uuid.empty() && !is_agent_uuid(a.agent_uuid))
    r.error("agent_uuid", "expected \"agent_\" and 1 to 64 of A-Z a-z 0-9 _ -, got " + quote(a.agent_uuid));
  a.name = r.required_str("name", 1, 50);
  a.description = r.str("description", a.description);
  a.mode = r.choice("mode", a.mode, {{"voice", AgentMode::voice}, {"chat", AgentMode::chat}});
  a.active = r.boolean("active", a.active);
  a.archived = r.boolean("archived", a.archived);
  if (a.active && a.archived) r.error("active", "an archived agent cannot be active");
  a.language = r.str("language", a.language);
  if (!is_language_tag(a.language))
    r.error("language", "expected a language tag such as \"en-IN\", got " + quote(a.language));
  parse_prompt(r.object("prompt"), a.prompt);
  parse_greeting(r.object("greeting"), a.greeting);
  parse_stt(r.object("stt"), a.stt);
  parse_llm(r.object("llm"), a.llm, kLlmProviders);
  parse_voice(r.object("voice"), a.voice);
  parse_call(r.object("call"), a.call);
  parse_tools(r.object("tools"), a.tools);
  {
    ObjectReader f = r.object("fallback");
    a.fallback.message = f.str("message", a.fallback.message, 1, kMaxGreetingChars);
    a.fallback.filler = f.str("filler", a.fallback.filler, 0, kMaxGreetingChars);
    a.fallback.voicemail_max_s = f.number("voicemail_max_s", a.fallback.voicemail_max_s, 5, 600);
    f.finish();
  }
  parse_analysis(r.object("analysis"), a.analysis);
  parse_chat(r.object("chat"), a.chat);
  if (a.mode == AgentMode::chat && a.call.voicemail.action == VoicemailAction::leave_message)
    p.add(item.path + ".call.voicemail.action", "\"leave_message\" needs a voice agent (mode is \"chat\")");
  return a;
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

namespace config_detail {
void parse_mqtt(ObjectReader r, MqttConfig& m);    // mqtt.cpp
void parse_audio(ObjectReader r, AudioConfig& a);  // audio.cpp
// lines.cpp; agent_refs gets (path, agent_uuid) pairs to check against the agents
void parse_lines(const std::vector<Item>& items, Problems& p, std::vector<LineConfig>& lines,
                 std::vector<std::pair<std::string, std::string>>& agent_refs);
}  // namespace config_detail

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
    }

    std::map<std::string, std::string> uuids;  // agent_uuid -> path of its first agent
    for (const Item& item : root.array("agents")) {
      AgentConfig a = parse_agent(item, p);
      if (!a.agent_uuid.empty()) {
        if (auto [it, inserted] = uuids.emplace(a.agent_uuid, item.path); !inserted)
          p.add(item.path + ".agent_uuid",
                "duplicate " + quote(a.agent_uuid) + " (first at " + it->second + ")");
      }
      cfg.agents.push_back(std::move(a));
    }
    for (const AgentRef& ref : refs)
      if (!uuids.count(ref.agent_uuid)) p.add(ref.path, "unknown agent " + quote(ref.agent_uuid));
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

}  // namespace osvi::daemon
