// cJSON ownership and small helpers shared by the API, configuration and MQTT payloads.
#pragma once

#include <cjson/cJSON.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace osvi::net {

struct JsonDeleter {
  void operator()(cJSON* p) const { cJSON_Delete(p); }
};
using JsonPtr = std::unique_ptr<cJSON, JsonDeleter>;

// Parses text that need not be NUL-terminated. On failure returns null and sets *error to
// "line L, column C: <what>" so the message points into the caller's document.
JsonPtr json_parse(std::string_view text, std::string* error);

// Compact serialisation; an empty string only if cJSON runs out of memory.
std::string json_print(const cJSON* item);

// Adds a string member, copying the bytes (string_view need not be NUL-terminated).
cJSON* json_add_string(cJSON* object, const char* name, std::string_view value);
// A member that is null when the value is absent: OSVI documents show every field, absent ones as null.
cJSON* json_add_string_or_null(cJSON* object, const char* name, const std::optional<std::string>& value);
cJSON* json_add_int_or_null(cJSON* object, const char* name, const std::optional<int64_t>& value);

}  // namespace osvi::net
