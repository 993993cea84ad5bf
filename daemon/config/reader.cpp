// The configuration's JSON reader: typed getters that record problems by key path instead of stopping.
#include "reader.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include "osvi/net/text.hpp"

namespace osvi::daemon::config_detail {
namespace {

constexpr size_t kMaxReportedProblems = 100;
constexpr size_t kMaxQuotedBytes = 60;

bool is_plain_key(std::string_view key) {
  if (key.empty()) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// Case-insensitive Levenshtein distance; keys are short, so the quadratic table is fine.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t subst = prev[j - 1] + (lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// Integral bounds of a real-valued setting print as "2.0", so the message reads as a decimal range.
std::string format_bound(double v) {
  std::string s = format_number(v);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string length_problem(size_t len, size_t min_chars, size_t max_chars) {
  const std::string got = ", got " + std::to_string(len);
  if (min_chars == max_chars) return "must be exactly " + std::to_string(min_chars) + " characters" + got;
  if (len < min_chars && min_chars == 1) return "must not be empty";
  if (max_chars == std::numeric_limits<size_t>::max())
    return "must be at least " + std::to_string(min_chars) + " characters" + got;
  if (min_chars == 0) return "must be at most " + std::to_string(max_chars) + " characters" + got;
  return "must be " + std::to_string(min_chars) + " to " + std::to_string(max_chars) + " characters" + got;
}

}  // namespace

void Problems::add(std::string path, std::string_view what) {
  path += ": ";
  path += what;
  lines_.push_back(std::move(path));
}

std::string Problems::joined() const {
  std::string out;
  const size_t shown = std::min(lines_.size(), kMaxReportedProblems);
  for (size_t i = 0; i < shown; ++i) {
    if (i) out += '\n';
    out += lines_[i];
  }
  if (lines_.size() > shown) out += "\n... and " + std::to_string(lines_.size() - shown) + " more problems";
  return out;
}

std::string_view json_type_name(const cJSON* node) {
  if (!node || cJSON_IsNull(node)) return "null";
  if (cJSON_IsBool(node)) return "boolean";
  if (cJSON_IsNumber(node)) return "number";
  if (cJSON_IsString(node)) return "string";
  if (cJSON_IsArray(node)) return "array";
  if (cJSON_IsObject(node)) return "object";
  return "invalid";
}

std::string quote(std::string_view s) {
  std::string out = "\"";
  size_t end = s.size();
  bool cut = false;
  if (end > kMaxQuotedBytes) {
    end = kMaxQuotedBytes;
    // Back off to a character boundary so the message stays valid UTF-8.
    while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
    cut = true;
  }
  for (size_t i = 0; i < end; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += cut ? "...\"" : "\"";
  return out;
}

std::string format_number(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return r.ec == std::errc() ? std::string(buf, r.ptr) : std::string("?");
}

ObjectReader::ObjectReader(const cJSON* node, std::string path, Problems* problems)
    : node_(node),
      path_(std::move(path)),
      problems_(problems),
      present_(node != nullptr),
      is_object_(cJSON_IsObject(node) != 0) {
  if (present_ && !is_object_)
    problems_->add(path_.empty() ? "top level" : path_,
                   "expected an object, got " + std::string(json_type_name(node)));
}

std::string ObjectReader::path_of(std::string_view key) const {
  if (!is_plain_key(key)) return path_ + "[" + quote(key) + "]";
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

bool ObjectReader::has(const char* key) const {
  return is_object_ && cJSON_GetObjectItemCaseSensitive(node_, key) != nullptr;
}

void ObjectReader::error(const char* key, std::string_view what) const {
  problems_->add(path_of(key), what);
}

const cJSON* ObjectReader::take(const char* key) {
  if (std::find(known_.begin(), known_.end(), key) == known_.end()) known_.emplace_back(key);
  return is_object_ ? cJSON_GetObjectItemCaseSensitive(node_, key) : nullptr;
}

std::string ObjectReader::str(const char* key, std::string def, size_t min_chars, size_t max_chars) {
  const cJSON* v = take(key);
  if (!v) return def;
  if (!cJSON_IsString(v)) {
    error(key, "expected a string, got " + std::string(json_type_name(v)));
    return def;
  }
  std::string s = v->valuestring;
  // Characters (code points), which is what "1-50 characters" means to whoever types a name.
  const size_t len = net::utf8_length(s);
  if (len < min_chars || len > max_chars) {
    error(key, length_problem(len, min_chars, max_chars));
    return def;
  }
  return s;
}

std::string ObjectReader::required_str(const char* key, size_t min_chars, size_t max_chars) {
  if (is_object_ && !cJSON_GetObjectItemCaseSensitive(node_, key)) {
    take(key);
    error(key, "required key is missing");
    return {};
  }
  return str(key, {}, min_chars, max_chars);
}

bool ObjectReader::boolean(const char* key, bool def) {
  const cJSON* v = take(key);
  if (!v) return def;
  if (!cJSON_IsBool(v)) {
    error(key, "expected a boolean, got " + std::string(json_type_name(v)));
    return def;
  }
  return cJSON_IsTrue(v) != 0;
}

int64_t ObjectReader::integer(const char* key, int64_t def, int64_t min, int64_t max) {
  const cJSON* v = take(key);
  if (!v) return def;
  if (!cJSON_IsNumber(v)) {
    error(key, "expected an integer, got " + std::string(json_type_name(v)));
    return def;
  }
  const double d = v->valuedouble;
  if (!std::isfinite(d) || std::floor(d) != d) {
    error(key, "expected an integer, got " + format_number(d));
    return def;
  }
  // Compared as doubles first: a huge value must not overflow the conversion to int64_t.
  if (d < static_cast<double>(min) || d > static_cast<double>(max)) {
    if (max == std::numeric_limits<int64_t>::max())
      error(key, "must be at least " + std::to_string(min) + ", got " + format_number(d));
    else
      error(key, "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
                     format_number(d));
    return def;
  }
  return static_cast<int64_t>(d);
}

double ObjectReader::number(const char* key, double def, double min, double max) {
  const cJSON* v = take(key);
  if (!v) return def;
  if (!cJSON_IsNumber(v)) {
    error(key, "expected a number, got " + std::string(json_type_name(v)));
    return def;
  }
  const double d = v->valuedouble;
  if (!std::isfinite(d)) {
    error(key, "expected a finite number");
    return def;
  }
  if (d < min || d > max) {
    error(key,
          "must be between " + format_bound(min) + " and " + format_bound(max) + ", got " + format_number(d));
    return def;
  }
  return d;
}

ObjectReader ObjectReader::object(const char* key) {
  return ObjectReader(take(key), path_of(key), problems_);
}

std::vector<Item> ObjectReader::array(const char* key) {
  std::vector<Item> items;
  const cJSON* v = take(key);
  if (!v) return items;
  if (!cJSON_IsArray(v)) {
    error(key, "expected an array, got " + std::string(json_type_name(v)));
    return items;
  }
  const std::string base = path_of(key);
  size_t i = 0;
  const cJSON* e = nullptr;
  cJSON_ArrayForEach(e, v) {
    items.push_back(Item{e, base + "[" + std::to_string(i++) + "]"});
  }
  return items;
}

const cJSON* ObjectReader::any(const char* key) {
  return take(key);
}

void ObjectReader::forbid(const char* key, std::string_view why) {
  if (take(key)) error(key, why);
}

void ObjectReader::finish() {
  if (finished_) return;
  finished_ = true;
  if (!is_object_) return;
  std::set<std::string_view> seen, reported;
  const cJSON* e = nullptr;
  cJSON_ArrayForEach(e, node_) {
    const std::string_view name = e->string ? e->string : "";
    // cJSON keeps both members of {"a":1,"a":2} and getters see only the first: the second would be ignored.
    if (!seen.insert(name).second) {
      if (reported.insert(name).second) problems_->add(path_of(name), "duplicate key");
      continue;
    }
    if (std::find(known_.begin(), known_.end(), name) != known_.end()) continue;
    std::string what = "unknown key";
    const std::string* best = nullptr;
    size_t best_distance = 3;  // suggest only close matches: a typo, not a different word
    for (const std::string& k : known_) {
      const size_t d = edit_distance(name, k);
      if (d < best_distance && d < std::max<size_t>(k.size() / 2, 1)) {
        best = &k;
        best_distance = d;
      }
    }
    if (best) what += " (did you mean \"" + *best + "\"?)";
    problems_->add(path_of(name), what);
  }
}

}  // namespace osvi::daemon::config_detail
