// Private to the configuration parser: a reader over one JSON object that collects every problem by key path.
#pragma once

#include <cjson/cJSON.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace osvi::daemon::config_detail {

// All problems of one document. The parser never stops at the first one: a technician fixing a file over a
// slow link wants the whole list in one --check-config run.
class Problems {
 public:
  void add(std::string path, std::string_view what);
  bool empty() const { return lines_.empty(); }
  size_t size() const { return lines_.size(); }
  // One problem per line; a pathological file is cut short so the journal entry stays readable.
  std::string joined() const;

 private:
  std::vector<std::string> lines_;
};

// An element of a JSON array with its path ("agents[2]").
struct Item {
  const cJSON* node;
  std::string path;
};

// "string", "object", "null", ... for the "got" half of "expected a string, got number".
std::string_view json_type_name(const cJSON* node);
// A value quoted for an error message: escaped and shortened, so one bad key cannot flood the log.
std::string quote(std::string_view s);
// Shortest round-trip form of a number ("0.3", "5", "1e+20").
std::string format_number(double v);

// Reads one JSON object. Each getter "takes" a key: it returns the default when the key is absent, records a
// problem and returns the default when the value is wrong, and remembers the key as known. finish() (or the
// destructor) then reports every key no getter asked for, so a new section only has to call getters to get
// unknown-key checking for free. A null node stands for an absent section: every getter returns its default.
class ObjectReader {
 public:
  ObjectReader(const cJSON* node, std::string path, Problems* problems);
  ObjectReader(const Item& item, Problems* problems) : ObjectReader(item.node, item.path, problems) {}
  ~ObjectReader() { finish(); }
  ObjectReader(const ObjectReader&) = delete;
  ObjectReader& operator=(const ObjectReader&) = delete;

  // False when the node was present but not an object (already reported).
  bool valid() const { return !present_ || is_object_; }
  bool present() const { return present_; }
  const cJSON* node() const { return is_object_ ? node_ : nullptr; }
  const std::string& path() const { return path_; }
  Problems& problems() const { return *problems_; }
  std::string path_of(std::string_view key) const;

  bool has(const char* key) const;
  void error(const char* key, std::string_view what) const;

  std::string str(const char* key, std::string def, size_t min_chars = 0,
                  size_t max_chars = std::numeric_limits<size_t>::max());
  // A required string: reports "required key is missing" when absent.
  std::string required_str(const char* key, size_t min_chars = 1,
                           size_t max_chars = std::numeric_limits<size_t>::max());
  bool boolean(const char* key, bool def);
  int64_t integer(const char* key, int64_t def, int64_t min, int64_t max);
  double number(const char* key, double def, double min, double max);
  // A string from a closed set, mapped to its enumerator.
  template <class E>
  E choice(const char* key, E def, std::initializer_list<std::pair<std::string_view, E>> options);
  // A nested object; the returned reader is empty (all defaults) when absent or of the wrong type.
  ObjectReader object(const char* key);
  // Elements of an array (empty when absent or of the wrong type).
  std::vector<Item> array(const char* key);
  // The raw value of any type (null when absent); the caller checks it.
  const cJSON* any(const char* key);
  // A key that is valid in other variants of this object ("states" with a single prompt): reported with why.
  void forbid(const char* key, std::string_view why);

  // Reports unknown and duplicate keys. Idempotent.
  void finish();

 private:
  const cJSON* take(const char* key);

  const cJSON* node_;
  std::string path_;
  Problems* problems_;
  bool present_;
  bool is_object_;
  bool finished_ = false;
  std::vector<std::string> known_;
};

template <class E>
E ObjectReader::choice(const char* key, E def,
                       std::initializer_list<std::pair<std::string_view, E>> options) {
  const cJSON* v = take(key);
  if (!v) return def;
  if (!cJSON_IsString(v)) {
    error(key, "expected a string, got " + std::string(json_type_name(v)));
    return def;
  }
  const std::string_view got = v->valuestring;
  std::string allowed;
  size_t i = 0;
  for (const auto& o : options) {
    if (o.first == got) return o.second;
    if (i++) allowed += i == options.size() ? " or " : ", ";
    // append() rather than operator+: GCC 12 -O3 reports a false -Wrestrict on the temporaries.
    allowed.append(1, '"').append(o.first).append(1, '"');
  }
  error(key, "must be " + allowed + ", got " + quote(got));
  return def;
}

}  // namespace osvi::daemon::config_detail
