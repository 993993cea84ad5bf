// cJSON helpers: length-aware parsing with line/column errors, compact printing.
#include "osvi/net/json.hpp"

#include <cstdlib>

namespace osvi::net {

JsonPtr json_parse(std::string_view text, std::string* error) {
  const char* end = nullptr;
  JsonPtr root(cJSON_ParseWithLengthOpts(text.data(), text.size(), &end, false));
  if (root) {
    // Trailing garbage after the document is an error, not silently ignored.
    size_t pos = static_cast<size_t>(end - text.data());
    while (pos < text.size() &&
           (text[pos] == ' ' || text[pos] == '\n' || text[pos] == '\r' || text[pos] == '\t'))
      ++pos;
    if (pos == text.size()) return root;
    end = text.data() + pos;
    root.reset();
  }
  if (error) {
    size_t offset = end ? static_cast<size_t>(end - text.data()) : text.size();
    if (offset > text.size()) offset = text.size();
    size_t line = 1, column = 1;
    for (size_t i = 0; i < offset; ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    *error = text.empty()
                 ? std::string("empty document")
                 : "line " + std::to_string(line) + ", column " + std::to_string(column) + ": invalid JSON";
  }
  return nullptr;
}

std::string json_print(const cJSON* item) {
  char* text = cJSON_PrintUnformatted(item);
  if (!text) return {};
  std::string out(text);
  cJSON_free(text);
  return out;
}

cJSON* json_add_string(cJSON* object, const char* name, std::string_view value) {
  std::string copy(value);
  return cJSON_AddStringToObject(object, name, copy.c_str());
}

cJSON* json_add_string_or_null(cJSON* object, const char* name, const std::optional<std::string>& value) {
  return value ? json_add_string(object, name, *value) : cJSON_AddNullToObject(object, name);
}

cJSON* json_add_int_or_null(cJSON* object, const char* name, const std::optional<int64_t>& value) {
  return value ? cJSON_AddNumberToObject(object, name, static_cast<double>(*value))
               : cJSON_AddNullToObject(object, name);
}

}  // namespace osvi::net
