// One call's analysis as data: its fields, the JSON schema and messages sent to the model, and the checked
// reply — pure functions (no loop, no store), so unit tests and the bench drive them directly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/base/time_zone.hpp"
#include "osvi/config/config.hpp"
#include "osvi/config/output_schema.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/upstream.hpp"
#include "osvi/result.hpp"
#include "osvi/store/calls.hpp"

namespace osvi::daemon::analysis {

// One extraction field: the agent's (agents[].analysis.data_extraction) or the call's (POST /v1/call
// data_extraction: {key, description, required, output_format}).
struct Field {
  std::string key;
  FieldType type = FieldType::text;
  std::string hint;
  bool required = false;
  bool from_call = false;
};

// A per-call item's type from its free-text output_format (case and surrounding spaces ignored):
// "yes/no", "yes or no", "boolean", "bool", "true/false" → boolean; "number", "numeric", "integer", "int",
// "decimal", "float", "amount" → number; "date", "yyyy-mm-dd" → date; anything else (or none) → text, the
// output_format then joining the hint.
FieldType type_of_output_format(std::string_view output_format);

// The agent's fields, then the call's; a call item with an agent field's key replaces it (the request is the
// more specific). Items of the call's JSON without a usable key are left out (the API checked them).
std::vector<Field> merge_fields(const std::vector<ExtractionField>& agent,
                                const std::optional<std::string>& call_extraction_json);

// Bounds on what is sent: the transcript is cut in the middle past this many characters (the start and the
// end of a call say the most), each turn past kMaxTurnChars.
inline constexpr size_t kMaxTranscriptChars = 48 * 1024;
inline constexpr size_t kMaxTurnChars = 4 * 1024;

// What one call's request is built from.
struct Input {
  const AgentConfig* agent = nullptr;
  const CallRecord* call = nullptr;
  const std::vector<TranscriptTurn>* transcript = nullptr;
  std::vector<Field> fields;
  const OutputSchema* output = nullptr;  // null or mode none: no structured_output
  std::string zone;                      // the callee's IANA zone
  LocalTime call_end_local;              // the call's end in that zone: "tomorrow" is relative to it
};

struct Prepared {
  net::JsonPtr schema;  // the reply's strict JSON Schema
  std::vector<net::ChatMessage> messages;
  std::string response_format_json;  // {"type":"json_schema",...}; empty for anthropic (schema in the prompt)
};
Prepared build_request(const Input& in);

// The follow-up of the one repair round: the reply and what was wrong with it, asking for corrected JSON.
std::vector<net::ChatMessage> repair_messages(const Prepared& first, std::string_view reply,
                                              std::string_view error);

struct Dropped {
  std::string key;     // "data.age", "tags[1]", "structured_output", "callback.local_time"
  std::string reason;  // why it is not stored
};

// A reply checked against the request: only values of the right type survive; the rest is noted.
struct Outcome {
  std::string summary;
  net::JsonPtr data;                 // object: key → valid value (values not found are absent)
  std::vector<std::string> missing;  // required fields without a valid value
  std::vector<Dropped> dropped;
  std::vector<std::string> tags;  // names of the agent's tags, in the model's order, no duplicates
  bool callback_required = false;
  std::optional<std::string> callback_text;
  std::optional<std::string> callback_local;  // "YYYY-MM-DDTHH:MM", checked
  net::JsonPtr structured;                    // null: none (or dropped)
  bool opt_out = false;
};

// Parses the model's reply (a ```json fence around it is tolerated). An error means the reply is not the
// object asked for (not JSON, or summary/data/tags/callback/opt_out missing or of the wrong shape): the
// caller's repair round sends its message back. Values inside a valid envelope are checked one by one.
Result<Outcome> check_reply(std::string_view text, const Input& in);

// "YYYY-MM-DDTHH:MM" → its parts; nullopt when malformed or not a real date and time.
struct LocalDateTime {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0;
};
std::optional<LocalDateTime> parse_local_minute(std::string_view text);
// "2026-12-03T18:00:00+05:30": the instant in zone's local time with its offset.
std::string iso_in_zone(const TimeZone& zone, int64_t utc_ms);

}  // namespace osvi::daemon::analysis
