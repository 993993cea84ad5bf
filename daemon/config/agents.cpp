// Configuration: the "agents" section (prompts, speech and model endpoints, call behaviour, tools, analysis,
// chat), read with the shared strict ObjectReader.
#include <algorithm>
#include <array>
#include <cctype>
#include <map>
#include <span>
#include <string>

#include "checks.hpp"
#include "key_file.hpp"
#include "osvi/base/phone.hpp"
#include "osvi/config/config.hpp"
#include "osvi/config/output_schema.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/text.hpp"
#include "reader.hpp"
#include "sections.hpp"

namespace osvi::daemon::config_detail {
namespace {

constexpr size_t kMaxGreetingChars = 2000;
constexpr size_t kMaxOptOutMessageChars = 500;
// Providers each kind of endpoint can talk to, as net/upstream_openai.cpp implements them: a typo or a
// provider without that service (Anthropic has no speech, Gemini's OpenAI-compatible API no transcription or
// pcm speech, Groq no pcm speech) fails --check-config, not the first call.
constexpr std::array<std::string_view, 3> kSttProviders = {"openai", "azure_openai", "groq"};
constexpr std::array<std::string_view, 5> kLlmProviders = {"openai", "azure_openai", "gemini", "groq",
                                                           "anthropic"};
constexpr std::array<std::string_view, 2> kTtsProviders = {"openai", "azure_openai"};
constexpr std::array<std::string_view, 5> kAnalysisProviders = {"openai", "azure_openai", "gemini", "groq",
                                                                "anthropic"};

// Each provider's public API root, used when base_url is not given. Azure has none: the root names the
// customer's resource ("https://NAME.openai.azure.com").
std::string_view default_base_url(std::string_view provider) {
  if (provider == "gemini") return "https://generativelanguage.googleapis.com/v1beta/openai";
  if (provider == "groq") return "https://api.groq.com/openai/v1";
  if (provider == "anthropic") return "https://api.anthropic.com/v1";
  return {};
}

// "2024-10-21" or "2025-03-01-preview": a date, then an optional lower-case suffix.
bool is_api_version(std::string_view v) {
  if (v.size() < 10 || v.size() > 32) return false;
  for (size_t i = 0; i < 10; ++i) {
    const bool dash = i == 4 || i == 7;
    if (dash ? v[i] != '-' : !std::isdigit(static_cast<unsigned char>(v[i]))) return false;
  }
  if (v.size() == 10) return true;
  if (v[10] != '-' || v.size() == 11) return false;
  return std::all_of(v.begin() + 11, v.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

void parse_endpoint(ObjectReader& r, UpstreamEndpoint& e, std::span<const std::string_view> providers) {
  e.provider = r.str("provider", e.provider);
  const bool known = std::find(providers.begin(), providers.end(), e.provider) != providers.end();
  if (!known) r.error("provider", "must be " + one_of_text(providers) + ", got " + quote(e.provider));
  if (!r.has("base_url")) {
    if (std::string_view root = default_base_url(e.provider); !root.empty()) e.base_url = root;
    if (known && e.provider == "azure_openai")
      r.error("base_url",
              "required with provider \"azure_openai\" (the resource endpoint, e.g. "
              "\"https://NAME.openai.azure.com\")");
  }
  std::string url = r.str("base_url", e.base_url);
  if (!is_http_url(url)) {
    r.error("base_url", "expected an http:// or https:// URL with a host, got " + quote(url));
  } else {
    // The client appends "/chat/completions" and friends; a trailing slash would double it.
    while (url.size() > 1 && url.back() == '/') url.pop_back();
    e.base_url = url;
  }
  if (e.provider == "azure_openai") {
    e.api_version = r.str("api_version", e.api_version);
    if (!e.api_version.empty() && !is_api_version(e.api_version))
      r.error("api_version",
              "expected an Azure API version such as \"2024-10-21\", got " + quote(e.api_version));
  } else {
    r.forbid("api_version", "only allowed with provider \"azure_openai\"");
  }
  e.model = r.str("model", e.model, 1, 200);
  // With Azure the model is the deployment name, a path segment of every request.
  if (e.provider == "azure_openai" && !std::all_of(e.model.begin(), e.model.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
      }))
    r.error("model",
            "with provider \"azure_openai\" the deployment name: letters, digits, '-', '_' and '.', got " +
                quote(e.model));
  e.api_key = r.str("api_key", e.api_key);
  e.api_key_file = r.str("api_key_file", e.api_key_file);
  if (!e.api_key.empty() && !e.api_key_file.empty()) {
    r.error("api_key_file", "cannot be used together with api_key (choose one)");
  } else if (!e.api_key_file.empty()) {
    // Read with the configuration (load, --check-config, every reload) rather than per request: no file
    // system access on the loop, and a missing key is refused here instead of failing every call.
    std::string problem;
    if (!read_key_file(e.api_key_file, e.api_key, problem)) r.error("api_key_file", problem);
  }
  e.timeout_ms = static_cast<unsigned>(r.integer("timeout_ms", e.timeout_ms, 100, 120000));
}

void parse_llm(ObjectReader r, LlmConfig& llm, std::span<const std::string_view> providers) {
  parse_endpoint(r, llm, providers);
  // Anthropic's Messages API takes 0–1 where OpenAI's dialects take 0–2.
  llm.temperature = r.number("temperature", llm.temperature, 0, llm.provider == "anthropic" ? 1 : 2);
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
  // The engine plays raw pcm as it streams; an Ogg Opus answer would need a demuxer it does not have, and
  // accepting the key would play the container bytes as noise.
  if (v.format == AudioFormat::opus)
    r.error("format", "\"opus\" is not supported (the engine plays streamed \"pcm\" only); use \"pcm\"");
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
    // Endpointing and barge-in are built on the detector: a call without it could never take a turn.
    if (!c.vad.enabled)
      vad.error("enabled",
                "false is not supported: turn-taking needs voice activity detection (tune "
                "vad.sensitivity instead)");
    c.vad.sensitivity = vad.number("sensitivity", c.vad.sensitivity, 0, 1);
  }
  c.noise_cancellation = r.boolean("noise_cancellation", c.noise_cancellation);
  // Noise suppression is a property of the line's audio chain, shared by every agent on it.
  if (!c.noise_cancellation)
    r.error("noise_cancellation",
            "false is not supported per agent: noise suppression is set for every "
            "line by audio.preprocess.denoise");
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
    // An extension shape is checked against the lines later (config.cpp): only a SIP line transfers to one.
    if (!t.transfer.number.empty() && !is_e164(t.transfer.number) && !is_pbx_extension(t.transfer.number))
      x.error("number",
              "expected an E.164 number such as \"+919876543210\" (or, with a SIP line, a PBX "
              "extension such as \"200\"), got " +
                  quote(t.transfer.number));
    else if (t.transfer.enabled && t.transfer.number.empty())
      x.error("number", "required when transfer is enabled");
    t.transfer.message = x.str("message", t.transfer.message, 0, kMaxGreetingChars);
    t.transfer.mode = x.choice("mode", t.transfer.mode,
                               {{"blind", TransferMode::blind}, {"attended", TransferMode::attended}});
  }
  {
    ObjectReader o = r.object("opt_out");
    t.opt_out.enabled = o.boolean("enabled", t.opt_out.enabled);
    t.opt_out.dtmf_key = o.str("dtmf_key", t.opt_out.dtmf_key);
    const std::string& k = t.opt_out.dtmf_key;
    if (!k.empty() && !(k.size() == 1 && ((k[0] >= '0' && k[0] <= '9') || k[0] == '*' || k[0] == '#')))
      o.error("dtmf_key", "must be \"\" (no key) or one of 0-9 * #, got " + quote(k));
    t.opt_out.message = o.str("message", t.opt_out.message, 0, kMaxOptOutMessageChars);
  }
  t.language_switch = r.boolean("language_switch", t.language_switch);
  if (t.language_switch)
    r.error("language_switch",
            "true is not supported: the agent speaks and listens in its \"language\" "
            "for the whole call");
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
    if (cJSON_IsObject(schema)) {
      // Checked here (docs/configuration.md: the schema subset, simple and conditional), so the analysis
      // never meets a schema it cannot send or validate against.
      std::vector<std::string> problems;
      parse_output_schema(schema, r.path_of("output_schema"), &problems);
      for (const std::string& problem : problems) {  // "path: what"
        const size_t colon = problem.find(": ");
        p.add(problem.substr(0, colon), colon == std::string::npos ? "" : problem.substr(colon + 2));
      }
      if (problems.empty()) a.output_schema_json = net::json_print(schema);
    } else {
      r.error("output_schema",
              "expected an object, got " + std::string(config_detail::json_type_name(schema)));
    }
  }
  parse_integrations(r.array("integrations"), p, a.enabled, a.integrations);  // webhooks.cpp
}

// Embeddings endpoints: the providers whose OpenAI-compatible API has POST {base_url}/embeddings.
constexpr std::array<std::string_view, 2> kEmbeddingsProviders = {"openai", "azure_openai"};
constexpr size_t kMaxAttachedDocuments = 50;

void parse_knowledge(ObjectReader r, AgentKnowledgeConfig& k) {
  std::vector<std::string> seen;
  for (const Item& item : r.array("documents")) {
    if (!cJSON_IsString(item.node)) {
      r.problems().add(item.path,
                       "expected a document name (string), got " + std::string(json_type_name(item.node)));
      continue;
    }
    std::string name = item.node->valuestring;
    if (name.empty() || net::utf8_length(name) > kKnowledgeMaxNameChars || !net::clean_text(name)) {
      r.problems().add(item.path, "a document name is 1 to " + std::to_string(kKnowledgeMaxNameChars) +
                                      " characters of UTF-8 text, got " + quote(name));
      continue;
    }
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
      r.problems().add(item.path, "duplicate document " + quote(name));
      continue;
    }
    seen.push_back(name);
  }
  if (seen.size() > kMaxAttachedDocuments)
    r.error("documents", "at most " + std::to_string(kMaxAttachedDocuments) + " documents per agent");
  k.documents = std::move(seen);
  k.relevance_threshold = r.number("relevance_threshold", k.relevance_threshold, 0, 1);
  k.top_k = static_cast<unsigned>(r.integer("top_k", k.top_k, 1, 10));
  if (r.has("embeddings")) {
    EmbeddingsConfig e;
    ObjectReader er = r.object("embeddings");
    if (er.valid()) {
      parse_endpoint(er, e, kEmbeddingsProviders);
      k.embeddings = std::move(e);
    }
  }
  ObjectReader f = r.object("filler");
  k.filler.enabled = f.boolean("enabled", k.filler.enabled);
  k.filler.text = f.str("text", k.filler.text, 0, kMaxGreetingChars);
}

void parse_chat(ObjectReader r, ChatConfig& c) {
  c.takeover = r.boolean("takeover", c.takeover);
  c.tell = r.boolean("tell", c.tell);
  c.whisper = r.boolean("whisper", c.whisper);
  c.dormant_after_s = static_cast<unsigned>(r.integer("dormant_after_s", c.dormant_after_s, 60, 30 * 86400));
  c.voice_agent = r.str("voice_agent", c.voice_agent);  // that it names a voice agent: config.cpp
}

}  // namespace

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
  parse_knowledge(r.object("knowledge"), a.knowledge);
  if (a.mode == AgentMode::chat && a.call.voicemail.action == VoicemailAction::leave_message)
    p.add(item.path + ".call.voicemail.action", "\"leave_message\" needs a voice agent (mode is \"chat\")");
  if (a.mode == AgentMode::chat && !a.tools.opt_out.dtmf_key.empty())
    p.add(item.path + ".tools.opt_out.dtmf_key", "a keypad key needs a voice agent (mode is \"chat\")");
  if (a.mode != AgentMode::chat && !a.chat.voice_agent.empty())
    p.add(item.path + ".chat.voice_agent", "offer_call needs a chat agent (mode is \"voice\")");
  return a;
}

}  // namespace osvi::daemon::config_detail
