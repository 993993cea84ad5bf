// osvi-model-server's script: models, scripted transcripts, chat reply rules, TTS voice, per-stage faults.
//
// Scenario JSON (every key optional; see docs/model-server.md):
// {
//   "models": ["osvi-sim"],
//   "stt": {"transcripts": ["I would like to book an appointment", "Tomorrow at ten please"],
//           "latency_ms": 0, "fault": {"fault": "none", "delay_ms": 0, "count": 0}},
//   "llm": {"rules": [{"match": "appointment", "reply": "Sure. What day and time suit you?"},
//                     {"turn": 3, "reply": "Third turn."},
//                     {"match_any": "analyse a finished phone call", "reply_json": {"summary": "..."}},
//                     {"match": "thank", "reply": "Goodbye!",
//                      "tool_calls": [{"name": "end_call", "arguments": {}}]}],
//           "default_reply": "Noted. Anything else?", "after_tool_reply": "Done.",
//           "chunk_delay_ms": 0, "latency_ms": 0, "fault": {...}},
//   "tts": {"voice": "en-us", "rate_wpm": 165, "chunk_bytes": 4800, "cache": true, "latency_ms": 0,
//           "fault": {...}},
//   "embeddings": {"models": ["osvi-embed"], "dimensions": 256, "latency_ms": 0, "fault": {...}}
// }
// Faults: "none", "delay", "http500", "bad_json", "wrong_content_type", "reset", "hang"; count = how many
// requests of that stage it applies to (0 = all of them).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"
#include "stand_in_embedding.hpp"

struct cJSON;

namespace osvi::tools {

enum class StageId { kStt, kLlm, kTts, kEmbeddings };

struct Fault {
  std::string kind = "none";
  int delay_ms = 0;
  int count = 0;  // requests left when it was set; 0 = forever
};

struct ToolCall {
  std::string name;
  std::string arguments;  // JSON text
};

struct Rule {
  std::string match;  // case-insensitive substring of the last user message; empty = any
  // Case-insensitive substring of any message of the request (system prompt included); empty = any. Lets a
  // rule answer the post-call analysis (whose system prompt says "You analyse a finished phone call").
  std::string match_any;
  int turn = 0;  // 1-based number of user messages in the request; 0 = any
  std::string reply;
  std::vector<ToolCall> tool_calls;
};

struct StageConfig {
  int latency_ms = 0;
  Fault fault;
};

struct Scenario {
  std::vector<std::string> models{"osvi-sim"};
  std::vector<std::string> transcripts;
  std::vector<Rule> rules;
  std::optional<std::string> default_reply;
  std::string after_tool_reply = "Done.";
  int chunk_delay_ms = 0;
  std::string tts_voice = "en-us";
  int tts_rate_wpm = 165;
  int tts_chunk_bytes = 4800;
  bool tts_cache = true;  // rendered audio kept and served again (false: every answer renders; benches)
  // Embeddings (stand_in_embedding.hpp): the models served (empty = any name), the default length.
  std::vector<std::string> embedding_models;
  int embedding_dimensions = 256;
  StageConfig stt, llm, tts, embeddings;

  StageConfig& stage(StageId id) {
    switch (id) {
      case StageId::kStt:
        return stt;
      case StageId::kLlm:
        return llm;
      case StageId::kTts:
        return tts;
      case StageId::kEmbeddings:
        break;
    }
    return embeddings;
  }
};

Result<Scenario> parse_scenario(std::string_view json);
// {"stage": "stt"|"llm"|"tts"|"embeddings", "fault": ..., "delay_ms": N, "count": N} (POST /control/faults).
Result<std::pair<StageId, Fault>> parse_fault_request(std::string_view json);
Result<Fault> parse_fault(const cJSON* obj);

// The reply the rules give for a chat request (already reduced to its last message and user turn count).
struct ChatReply {
  std::string text;
  std::vector<ToolCall> tool_calls;
};
// all_text: every message's content, joined (for match_any).
ChatReply choose_reply(const Scenario& s, std::string_view last_role, std::string_view last_user_text,
                       int user_turns, std::string_view all_text = {});

}  // namespace osvi::tools
