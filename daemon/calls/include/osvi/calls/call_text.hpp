// The call's pure text work: cutting the model's stream into sentences, what the caller heard of an
// interrupted turn, {{variable}} templating, and small string helpers. No I/O, no clock: unit-tested alone.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "osvi/config/config.hpp"

namespace osvi::daemon::call_text {

// The end of the first complete sentence in `text` (one past its punctuation), or 0 when there is none yet.
// A sentence ends at . ! ? followed by a space or newline, or at a newline; a one- or two-letter word and
// its dot followed by a lower-case word ("e.g. this", "dr. rao") do not end one ("Dr. Rao" does). Clauses
// longer than 160 characters are cut at a comma so the first audio does not wait for a paragraph. `final`:
// the stream is over, so whatever is left is a sentence.
size_t sentence_end(std::string_view text, bool final);

std::string trim(std::string_view s);

// The first `fraction` of a sentence's words (floor), what the caller heard before cutting in.
std::string heard_part(std::string_view text, double fraction);

// One sentence of an agent turn and the line-rate samples queued for it (a filler has no text).
struct SpokenSegment {
  std::string text;
  uint64_t samples = 0;
};

// What the caller heard of a turn after `heard_samples` were played: whole sentences, then the share of the
// words of the one cut off. Segments never queued (samples == 0) end it.
std::string heard_text(std::span<const SpokenSegment> segments, uint64_t heard_samples);
// A turn played to the end: every sentence with text, joined by spaces.
std::string spoken_text(std::span<const SpokenSegment> segments);

// The values {{variables}} may name.
struct TemplateVars {
  std::optional<std::string> person_name;
  std::optional<std::string> additional_data;  // JSON object text; non-string values are inserted as JSON
  std::string phone_number;
};
// Replaces {{ name }} with person_name, a member of additional_data, or phone_number (additional_data wins
// over the phone number, person_name over additional_data). A variable nobody supplied becomes empty rather
// than being read aloud as "{{name}}".
std::string render_template(std::string_view text, const TemplateVars& vars);

// The agent's own prompt, not yet rendered: a single prompt's system_prompt, or the prompt of the
// multi-prompt state `state` followed by its transitions as switch_state instructions (nothing for an unknown
// state). Voice calls and chat sessions build their system prompt on it.
std::string agent_prompt(const PromptConfig& prompt, std::string_view state);

// JSON Schema text of the arguments of a tool taking string properties {name, description or null}.
std::string string_schema(std::initializer_list<std::pair<const char*, const char*>> props,
                          std::initializer_list<const char*> required);
// JSON Schema text of switch_state's arguments: {"state": one of the prompt's state names}.
std::string switch_state_schema(const PromptConfig& prompt);

// The STT language as ISO 639-1: the agent's stt.language, else its language, without the region.
std::string language_code(const AgentConfig& agent);

}  // namespace osvi::daemon::call_text
