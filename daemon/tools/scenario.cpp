// Scenario parsing (strict: a wrong type is an error naming the key) and the chat reply rules.
#include "scenario.hpp"

#include <cjson/cJSON.h>

#include <algorithm>
#include <cctype>
#include <memory>

namespace osvi::tools {
namespace {

struct JsonDeleter {
  void operator()(cJSON* j) const noexcept { cJSON_Delete(j); }
};
using JsonPtr = std::unique_ptr<cJSON, JsonDeleter>;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

Status get_int(const cJSON* obj, const char* key, int lo, int hi, int& out) {
  const cJSON* v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (v == nullptr) return {};
  if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi) {
    return make_error(std::string(key) + " must be a number " + std::to_string(lo) + ".." +
                      std::to_string(hi));
  }
  out = v->valueint;
  return {};
}

Status get_string(const cJSON* obj, const char* key, std::string& out) {
  const cJSON* v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (v == nullptr) return {};
  if (!cJSON_IsString(v)) return make_error(std::string(key) + " must be a string");
  out = v->valuestring;
  return {};
}

Status parse_stage(const cJSON* obj, const char* name, StageConfig& out) {
  if (auto st = get_int(obj, "latency_ms", 0, 600000, out.latency_ms); !st) {
    return make_error(std::string(name) + "." + st.error().message);
  }
  if (const cJSON* f = cJSON_GetObjectItemCaseSensitive(obj, "fault")) {
    auto fault = parse_fault(f);
    if (!fault) return make_error(std::string(name) + ".fault: " + fault.error().message);
    out.fault = *fault;
  }
  return {};
}

Result<Rule> parse_rule(const cJSON* r) {
  if (!cJSON_IsObject(r)) return make_error("must be an object");
  Rule rule;
  if (auto st = get_string(r, "match", rule.match); !st) return st.error();
  if (auto st = get_string(r, "match_any", rule.match_any); !st) return st.error();
  if (auto st = get_int(r, "turn", 0, 100000, rule.turn); !st) return st.error();
  if (auto st = get_string(r, "reply", rule.reply); !st) return st.error();
  if (const cJSON* json = cJSON_GetObjectItemCaseSensitive(r, "reply_json")) {  // a JSON reply, kept compact
    if (cJSON_GetObjectItemCaseSensitive(r, "reply")) return make_error("reply and reply_json are exclusive");
    std::unique_ptr<char, decltype(&cJSON_free)> text(cJSON_PrintUnformatted(json), &cJSON_free);
    if (!text) return make_error("reply_json cannot be printed", -ENOMEM);
    rule.reply = text.get();
  }
  if (const cJSON* calls = cJSON_GetObjectItemCaseSensitive(r, "tool_calls")) {
    if (!cJSON_IsArray(calls)) return make_error("tool_calls must be an array");
    const cJSON* c = nullptr;
    cJSON_ArrayForEach(c, calls) {
      const cJSON* name = cJSON_GetObjectItemCaseSensitive(c, "name");
      if (!cJSON_IsString(name) || name->valuestring[0] == '\0')
        return make_error("tool_calls[].name missing");
      ToolCall call{name->valuestring, "{}"};
      if (const cJSON* args = cJSON_GetObjectItemCaseSensitive(c, "arguments")) {
        std::unique_ptr<char, decltype(&cJSON_free)> text(cJSON_PrintUnformatted(args), &cJSON_free);
        if (!text) return make_error("tool_calls[].arguments cannot be printed", -ENOMEM);
        call.arguments = text.get();
      }
      rule.tool_calls.push_back(std::move(call));
    }
  }
  return rule;
}

}  // namespace

Result<Fault> parse_fault(const cJSON* obj) {
  if (!cJSON_IsObject(obj)) return make_error("fault must be an object");
  Fault f;
  if (auto st = get_string(obj, "fault", f.kind); !st) return st.error();
  static constexpr std::string_view kKinds[] = {"none",  "delay", "http500", "bad_json", "wrong_content_type",
                                                "reset", "hang"};
  if (std::find(std::begin(kKinds), std::end(kKinds), f.kind) == std::end(kKinds)) {
    return make_error("unknown fault '" + f.kind + "'");
  }
  if (auto st = get_int(obj, "delay_ms", 0, 600000, f.delay_ms); !st) return st.error();
  if (auto st = get_int(obj, "count", 0, 1000000, f.count); !st) return st.error();
  return f;
}

Result<std::pair<StageId, Fault>> parse_fault_request(std::string_view json) {
  JsonPtr doc(cJSON_ParseWithLength(json.data(), json.size()));
  if (!doc) return make_error("body is not JSON");
  std::string stage;
  if (auto st = get_string(doc.get(), "stage", stage); !st) return st.error();
  StageId id;
  if (stage == "stt") {
    id = StageId::kStt;
  } else if (stage == "llm") {
    id = StageId::kLlm;
  } else if (stage == "tts") {
    id = StageId::kTts;
  } else if (stage == "embeddings") {
    id = StageId::kEmbeddings;
  } else {
    return make_error("stage must be stt, llm, tts or embeddings");
  }
  auto f = parse_fault(doc.get());
  if (!f) return f.error();
  return std::make_pair(id, *f);
}

Result<Scenario> parse_scenario(std::string_view json) {
  JsonPtr doc(cJSON_ParseWithLength(json.data(), json.size()));
  if (!doc || !cJSON_IsObject(doc.get())) return make_error("scenario is not a JSON object");
  Scenario s;
  if (const cJSON* models = cJSON_GetObjectItemCaseSensitive(doc.get(), "models")) {
    if (!cJSON_IsArray(models) || cJSON_GetArraySize(models) == 0) {
      return make_error("models must be a non-empty array of strings");
    }
    s.models.clear();
    const cJSON* m = nullptr;
    cJSON_ArrayForEach(m, models) {
      if (!cJSON_IsString(m)) return make_error("models must be a non-empty array of strings");
      s.models.emplace_back(m->valuestring);
    }
  }
  if (const cJSON* stt = cJSON_GetObjectItemCaseSensitive(doc.get(), "stt")) {
    if (!cJSON_IsObject(stt)) return make_error("stt must be an object");
    if (const cJSON* list = cJSON_GetObjectItemCaseSensitive(stt, "transcripts")) {
      if (!cJSON_IsArray(list)) return make_error("stt.transcripts must be an array of strings");
      const cJSON* t = nullptr;
      cJSON_ArrayForEach(t, list) {
        if (!cJSON_IsString(t)) return make_error("stt.transcripts must be an array of strings");
        s.transcripts.emplace_back(t->valuestring);
      }
    }
    if (auto st = parse_stage(stt, "stt", s.stt); !st) return st.error();
  }
  if (const cJSON* llm = cJSON_GetObjectItemCaseSensitive(doc.get(), "llm")) {
    if (!cJSON_IsObject(llm)) return make_error("llm must be an object");
    if (const cJSON* rules = cJSON_GetObjectItemCaseSensitive(llm, "rules")) {
      if (!cJSON_IsArray(rules)) return make_error("llm.rules must be an array");
      const cJSON* r = nullptr;
      int i = 0;
      cJSON_ArrayForEach(r, rules) {
        auto rule = parse_rule(r);
        if (!rule) return make_error("llm.rules[" + std::to_string(i) + "]: " + rule.error().message);
        s.rules.push_back(std::move(*rule));
        ++i;
      }
    }
    std::string text;
    if (auto st = get_string(llm, "default_reply", text); !st) return make_error("llm." + st.error().message);
    if (cJSON_GetObjectItemCaseSensitive(llm, "default_reply")) s.default_reply = text;
    if (auto st = get_string(llm, "after_tool_reply", s.after_tool_reply); !st) {
      return make_error("llm." + st.error().message);
    }
    if (auto st = get_int(llm, "chunk_delay_ms", 0, 10000, s.chunk_delay_ms); !st) {
      return make_error("llm." + st.error().message);
    }
    if (auto st = parse_stage(llm, "llm", s.llm); !st) return st.error();
  }
  if (const cJSON* tts = cJSON_GetObjectItemCaseSensitive(doc.get(), "tts")) {
    if (!cJSON_IsObject(tts)) return make_error("tts must be an object");
    if (auto st = get_string(tts, "voice", s.tts_voice); !st) return make_error("tts." + st.error().message);
    if (auto st = get_int(tts, "rate_wpm", 80, 450, s.tts_rate_wpm); !st) {
      return make_error("tts." + st.error().message);
    }
    if (auto st = get_int(tts, "chunk_bytes", 2, 1 << 20, s.tts_chunk_bytes); !st) {
      return make_error("tts." + st.error().message);
    }
    s.tts_chunk_bytes &= ~1;  // whole samples per chunk
    if (const cJSON* cache = cJSON_GetObjectItemCaseSensitive(tts, "cache")) {
      if (!cJSON_IsBool(cache)) return make_error("tts.cache must be a boolean");
      s.tts_cache = cJSON_IsTrue(cache);
    }
    if (auto st = parse_stage(tts, "tts", s.tts); !st) return st.error();
  }
  if (const cJSON* emb = cJSON_GetObjectItemCaseSensitive(doc.get(), "embeddings")) {
    if (!cJSON_IsObject(emb)) return make_error("embeddings must be an object");
    if (const cJSON* models = cJSON_GetObjectItemCaseSensitive(emb, "models")) {
      if (!cJSON_IsArray(models)) return make_error("embeddings.models must be an array of strings");
      const cJSON* m = nullptr;
      cJSON_ArrayForEach(m, models) {
        if (!cJSON_IsString(m) || m->valuestring[0] == '\0')
          return make_error("embeddings.models must be an array of strings");
        s.embedding_models.emplace_back(m->valuestring);
      }
    }
    if (auto st = get_int(emb, "dimensions", 1, kMaxStandInDimensions, s.embedding_dimensions); !st) {
      return make_error("embeddings." + st.error().message);
    }
    if (auto st = parse_stage(emb, "embeddings", s.embeddings); !st) return st.error();
  }
  return s;
}

ChatReply choose_reply(const Scenario& s, std::string_view last_role, std::string_view last_user_text,
                       int user_turns, std::string_view all_text) {
  if (last_role == "tool") return ChatReply{s.after_tool_reply, {}};
  const std::string needle_text = lower(last_user_text);
  const std::string all = lower(all_text);
  for (const Rule& r : s.rules) {
    if (r.turn > 0 && r.turn != user_turns) continue;
    if (!r.match.empty() && needle_text.find(lower(r.match)) == std::string::npos) continue;
    if (!r.match_any.empty() && all.find(lower(r.match_any)) == std::string::npos) continue;
    return ChatReply{r.reply, r.tool_calls};
  }
  if (s.default_reply) return ChatReply{*s.default_reply, {}};
  return ChatReply{"You said: " + std::string(last_user_text) + ". How else can I help?", {}};
}

}  // namespace osvi::tools
