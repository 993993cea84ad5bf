// The call's pure text helpers (calls/include/osvi/calls/call_text.hpp).
#include "osvi/calls/call_text.hpp"

#include <cctype>
#include <cmath>
#include <vector>

#include "osvi/net/json.hpp"

namespace osvi::daemon::call_text {

size_t sentence_end(std::string_view text, bool final) {
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n' && i > 0) return i + 1;
    if ((c == '.' || c == '!' || c == '?') && i + 1 < text.size() &&
        (text[i + 1] == ' ' || text[i + 1] == '\n')) {
      // A word of one or two letters before the dot followed by a lower-case word is an abbreviation.
      size_t w = i;
      while (w > 0 && std::isalpha(static_cast<unsigned char>(text[w - 1]))) --w;
      if (i - w <= 2 && c == '.' && i - w > 0 && i > 0 && i + 2 < text.size() &&
          std::islower(static_cast<unsigned char>(text[i + 2])))
        continue;
      return i + 1;
    }
  }
  if (text.size() > 160) {
    const size_t comma = text.rfind(", ", 160);
    if (comma != std::string_view::npos && comma > 40) return comma + 1;
  }
  return final ? text.size() : 0;
}

std::string trim(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return std::string(s.substr(a, b - a));
}

std::string heard_part(std::string_view text, double fraction) {
  if (fraction >= 1.0) return std::string(text);
  if (fraction <= 0.0) return {};
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && text[i] == ' ') ++i;
    size_t j = i;
    while (j < text.size() && text[j] != ' ') ++j;
    if (j > i) words.push_back(text.substr(i, j - i));
    i = j;
  }
  const size_t n = static_cast<size_t>(std::floor(fraction * static_cast<double>(words.size())));
  std::string out;
  for (size_t k = 0; k < n; ++k) {
    if (k) out += ' ';
    out += words[k];
  }
  return out;
}

std::string heard_text(std::span<const SpokenSegment> segments, uint64_t heard_samples) {
  std::string heard;
  uint64_t left = heard_samples;
  for (const SpokenSegment& s : segments) {
    if (s.samples == 0) break;
    const double f = std::min(1.0, static_cast<double>(left) / static_cast<double>(s.samples));
    std::string part = heard_part(s.text, f);
    if (!part.empty()) heard += (heard.empty() ? "" : " ") + part;
    if (left < s.samples) break;
    left -= s.samples;
  }
  return heard;
}

std::string spoken_text(std::span<const SpokenSegment> segments) {
  std::string out;
  for (const SpokenSegment& s : segments)
    if (!s.text.empty()) out += (out.empty() ? "" : " ") + s.text;
  return out;
}

std::string render_template(std::string_view text, const TemplateVars& vars) {
  net::JsonPtr data;
  if (vars.additional_data) data = net::json_parse(*vars.additional_data, nullptr);
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    const size_t open = text.find("{{", i);
    if (open == std::string_view::npos) {
      out.append(text.substr(i));
      break;
    }
    const size_t close = text.find("}}", open + 2);
    if (close == std::string_view::npos) {
      out.append(text.substr(i));
      break;
    }
    out.append(text.substr(i, open - i));
    const std::string key = trim(text.substr(open + 2, close - open - 2));
    const cJSON* v = nullptr;
    if (key == "person_name" && vars.person_name) {
      out += *vars.person_name;
    } else if (data && cJSON_IsObject(data.get()) &&
               (v = cJSON_GetObjectItemCaseSensitive(data.get(), key.c_str())) != nullptr &&
               !cJSON_IsNull(v)) {
      out += cJSON_IsString(v) ? std::string(v->valuestring) : net::json_print(v);
    } else if (key == "phone_number") {
      out += vars.phone_number;
    }
    i = close + 2;
  }
  return out;
}

std::string language_code(const AgentConfig& agent) {
  std::string lang = agent.stt.language.empty() ? agent.language : agent.stt.language;
  if (auto dash = lang.find('-'); dash != std::string::npos) lang.resize(dash);
  return lang;
}

std::string agent_prompt(const PromptConfig& prompt, std::string_view state) {
  if (prompt.type == PromptType::single) return prompt.system_prompt;
  std::string p;
  for (const PromptState& s : prompt.states) {
    if (s.name != state) continue;
    p = s.prompt;
    if (!s.transitions.empty()) {
      p += "\n\nConversation state: \"" + s.name + "\". Call the tool switch_state";
      for (const PromptTransition& t : s.transitions) p += "\n- with state \"" + t.to + "\" when " + t.when;
    }
  }
  return p;
}

std::string string_schema(std::initializer_list<std::pair<const char*, const char*>> props,
                          std::initializer_list<const char*> required) {
  net::JsonPtr o(cJSON_CreateObject());
  cJSON_AddStringToObject(o.get(), "type", "object");
  cJSON* p = cJSON_AddObjectToObject(o.get(), "properties");
  for (const auto& [name, description] : props) {
    cJSON* prop = cJSON_AddObjectToObject(p, name);
    cJSON_AddStringToObject(prop, "type", "string");
    if (description) cJSON_AddStringToObject(prop, "description", description);
  }
  if (required.size() > 0) {
    cJSON* r = cJSON_AddArrayToObject(o.get(), "required");
    for (const char* name : required) cJSON_AddItemToArray(r, cJSON_CreateString(name));
  }
  return net::json_print(o.get());
}

std::string switch_state_schema(const PromptConfig& prompt) {
  net::JsonPtr schema = net::json_parse(string_schema({{"state", nullptr}}, {"state"}), nullptr);
  cJSON* state =
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(schema.get(), "properties"), "state");
  cJSON* names = cJSON_AddArrayToObject(state, "enum");
  for (const PromptState& s : prompt.states) cJSON_AddItemToArray(names, cJSON_CreateString(s.name.c_str()));
  return net::json_print(schema.get());
}

}  // namespace osvi::daemon::call_text
