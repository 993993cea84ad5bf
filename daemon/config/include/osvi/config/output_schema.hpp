// agents[].analysis.output_schema: the small JSON Schema subset structured output is described in, checked at
// configuration load and used to validate the analysis model's reply (docs/configuration.md).
#pragma once

#include <cjson/cJSON.h>

#include <string>
#include <vector>

#include "osvi/net/json.hpp"

namespace osvi::daemon {

// The subset: a node is an object with "type" (one of "object", "array", "string", "number", "integer",
// "boolean"), optional "description" (string) and "enum" (non-empty array of strings or numbers, scalar types
// only); an "object" has "properties" (object of nodes) and optional "required" (names of those properties)
// and "additionalProperties" (false only: the model may not add keys); an "array" has "items" (a node). At
// most kMaxSchemaDepth levels and kMaxSchemaProperties properties in all.
inline constexpr int kMaxSchemaDepth = 8;
inline constexpr int kMaxSchemaProperties = 200;
inline constexpr size_t kMaxConditionalCases = 20;

// The two modes of output_schema:
//   simple       {"mode": "simple", "schema": <object node>}, or the object node itself (no "mode" key);
//   conditional  {"mode": "conditional", "when": [{"if": "<case name>", "description": "<when it applies>",
//                 "schema": <object node>}, ...]}: the model picks the one case that applies and fills its
//                 schema; the call's structured_output is {"case": "<case name>", "output": {...}}.
struct OutputSchema {
  enum class Mode { none, simple, conditional } mode = Mode::none;
  net::JsonPtr schema;  // simple: the object node
  struct Case {
    std::string name;  // "if"
    std::string description;
    net::JsonPtr schema;
  };
  std::vector<Case> cases;  // conditional
};

// Checks `node` (the output_schema value) and appends one problem per mistake to *problems, each starting
// with the key path below `path` ("agents[0].analysis.output_schema.when[1].schema.properties.x.type: ...").
// Returns the parsed form (mode none when there were problems).
OutputSchema parse_output_schema(const cJSON* node, const std::string& path,
                                 std::vector<std::string>* problems);

// The same from the compact text kept in AnalysisConfig::output_schema_json (empty = mode none).
OutputSchema parse_output_schema_text(const std::string& json_text, std::vector<std::string>* problems);

// Validates value against an already checked node. Properties that are not required may be absent or null
// (null ones are removed from value). Appends "path: reason" per mismatch; returns whether there was none.
bool validate_against_schema(const cJSON* node, cJSON* value, const std::string& path,
                             std::vector<std::string>* errors);

// The node as a strict JSON Schema for providers' structured outputs: every object closed
// (additionalProperties false), every property listed in required, optional ones made nullable.
net::JsonPtr strict_schema(const cJSON* node);

}  // namespace osvi::daemon
