// Strict text at the box's edge: UTF-8 validation, the URL percent-decoder, quoting, strict JSON request
// strings.
#include "osvi/net/text.hpp"

#include <cstdint>
#include <cstdio>

namespace osvi::net {
namespace {

// Length of the well-formed UTF-8 sequence at text[i], or 0 when the bytes there are not one.
size_t utf8_sequence(std::string_view text, size_t i) {
  const auto c = static_cast<unsigned char>(text[i]);
  if (c < 0x80) return 1;
  size_t n = 0;
  uint32_t cp = 0, min = 0;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2, cp = c & 0x1Fu, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3, cp = c & 0x0Fu, min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4, cp = c & 0x07u, min = 0x10000;
  } else {
    return 0;
  }
  if (n > text.size() - i) return 0;
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(text[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3Fu);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

std::string hex_byte(unsigned char b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", b);
  return buf;
}

void append_utf8(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The JSON path of a refusal names the member; an empty path is the document itself. Member names are the
// client's, so a deep or long path is cut (on a character boundary) like any other repeated request data.
std::string field_name(const std::string& path) {
  constexpr size_t kMaxPathBytes = 160;
  if (path.empty()) return "request body";
  if (path.size() <= kMaxPathBytes) return path;
  size_t cut = kMaxPathBytes;
  while (cut > 0 && (static_cast<unsigned char>(path[cut]) & 0xC0) == 0x80) --cut;
  return path.substr(0, cut) + "\xE2\x80\xA6";
}

// "line L, column C" of a byte offset, as json_parse reports it.
std::string position(std::string_view text, size_t offset) {
  size_t line = 1, column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

// A walk over the raw body that judges strings, keeping the JSON path of each. It runs before cJSON because
// cJSON cuts a string at \u0000 and so cannot report it. Numbers and literals are left to cJSON; the walk
// stops (give_up) at anything else that is not JSON, and such a body is refused even where cJSON is lenient.
class StringScan {
 public:
  enum class Verdict { clean, bad_string, give_up };

  StringScan(std::string_view text, JsonRefusal* why) : s_(text), why_(why) {}

  size_t offset() const { return i_; }

  Verdict run() {
    if (s_.substr(0, 3) == "\xEF\xBB\xBF") i_ = 3;  // cJSON skips a UTF-8 byte order mark too
    return value("", 0);
  }

 private:
  void ws() {
    while (i_ < s_.size() && static_cast<unsigned char>(s_[i_]) <= 0x20) ++i_;
  }

  Verdict fail(const std::string& field, std::string message) {
    why_->field = field;
    why_->message = std::move(message);
    return Verdict::bad_string;
  }

  Verdict value(const std::string& path, int depth) {
    if (depth >= kMaxJsonDepth) {
      why_->too_large = true;
      why_->message = "nested deeper than " + std::to_string(kMaxJsonDepth) + " levels";
      return Verdict::bad_string;
    }
    if (++values_ > kMaxJsonValues) {
      why_->too_large = true;
      why_->message = "more than " + std::to_string(kMaxJsonValues) + " JSON values";
      return Verdict::bad_string;
    }
    ws();
    if (i_ >= s_.size()) return Verdict::give_up;
    const char c = s_[i_];
    if (c == '"') return string(path, nullptr);
    if (c == '{') return object(path, depth);
    if (c == '[') return array(path, depth);
    // A number or literal: whatever runs up to the next delimiter; cJSON judges it.
    const size_t start = i_;
    while (i_ < s_.size() && static_cast<unsigned char>(s_[i_]) > 0x20 && s_[i_] != ',' && s_[i_] != ']' &&
           s_[i_] != '}' && s_[i_] != ':' && s_[i_] != '"' && s_[i_] != '[' && s_[i_] != '{')
      ++i_;
    return i_ > start ? Verdict::clean : Verdict::give_up;
  }

  Verdict object(const std::string& path, int depth) {
    ++i_;
    ws();
    if (i_ < s_.size() && s_[i_] == '}') {
      ++i_;
      return Verdict::clean;
    }
    while (true) {
      ws();
      if (i_ >= s_.size() || s_[i_] != '"') return Verdict::give_up;
      std::string key;
      if (Verdict v = string(path, &key); v != Verdict::clean) return v;
      ws();
      if (i_ >= s_.size() || s_[i_] != ':') return Verdict::give_up;
      ++i_;
      if (Verdict v = value(json_path_member(path, key), depth + 1); v != Verdict::clean) return v;
      ws();
      if (i_ >= s_.size()) return Verdict::give_up;
      if (s_[i_] == '}') {
        ++i_;
        return Verdict::clean;
      }
      if (s_[i_] != ',') return Verdict::give_up;
      ++i_;
    }
  }

  Verdict array(const std::string& path, int depth) {
    ++i_;
    ws();
    if (i_ < s_.size() && s_[i_] == ']') {
      ++i_;
      return Verdict::clean;
    }
    for (size_t index = 0;; ++index) {
      if (Verdict v = value(json_path_index(path, index), depth + 1); v != Verdict::clean) return v;
      ws();
      if (i_ >= s_.size()) return Verdict::give_up;
      if (s_[i_] == ']') {
        ++i_;
        return Verdict::clean;
      }
      if (s_[i_] != ',') return Verdict::give_up;
      ++i_;
    }
  }

  bool hex4(uint32_t* out) {
    if (s_.size() - i_ < 4) return false;
    uint32_t v = 0;
    for (size_t k = 0; k < 4; ++k) {
      const int h = hex_value(s_[i_ + k]);
      if (h < 0) return false;
      v = (v << 4) | static_cast<uint32_t>(h);
    }
    i_ += 4;
    *out = v;
    return true;
  }

  // A string at s_[i_] == '"'. For a member name (key != null) the decoded name is collected, and a problem
  // in it is reported on the object that holds it.
  Verdict string(const std::string& path, std::string* key) {
    // The field's name is built only for a refusal: every string of every body passes here.
    auto bad = [&](const std::string& problem) {
      return fail(field_name(path), key ? "member name beginning " + quoted(*key) + ": " + problem : problem);
    };
    ++i_;
    while (true) {
      if (i_ >= s_.size()) return Verdict::give_up;
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return Verdict::clean;
      }
      if (c == '\\') {
        ++i_;
        if (i_ >= s_.size()) return Verdict::give_up;
        const char e = s_[i_++];
        uint32_t cp = 0;
        switch (e) {
          case '"':
          case '\\':
          case '/':
            cp = static_cast<unsigned char>(e);
            break;
          case 'b':
            cp = '\b';
            break;
          case 'f':
            cp = '\f';
            break;
          case 'n':
            cp = '\n';
            break;
          case 'r':
            cp = '\r';
            break;
          case 't':
            cp = '\t';
            break;
          case 'u':
            if (!hex4(&cp)) return Verdict::give_up;
            if (cp == 0) return bad("contains NUL (\\u0000)");
            if (cp >= 0xDC00 && cp <= 0xDFFF) return bad("unpaired surrogate escape " + escape_name(cp));
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              uint32_t low = 0;
              if (s_.size() - i_ < 2 || s_[i_] != '\\' || s_[i_ + 1] != 'u') {
                return bad("unpaired surrogate escape " + escape_name(cp));
              }
              i_ += 2;
              if (!hex4(&low)) return Verdict::give_up;
              if (low < 0xDC00 || low > 0xDFFF) return bad("unpaired surrogate escape " + escape_name(cp));
              cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            break;
          default:
            return Verdict::give_up;
        }
        if (key) append_utf8(key, cp);
        continue;
      }
      if (c < 0x20) return bad("control character " + hex_byte(c) + " (JSON strings must escape it)");
      const size_t n = utf8_sequence(s_, i_);
      if (n == 0) return bad("invalid UTF-8 (byte " + hex_byte(c) + ")");
      if (key) key->append(s_.substr(i_, n));
      i_ += n;
    }
  }

  static std::string escape_name(uint32_t cp) {
    char buf[12];
    std::snprintf(buf, sizeof buf, "\\u%04x", cp);
    return buf;
  }

  std::string_view s_;
  size_t i_ = 0;
  size_t values_ = 0;
  JsonRefusal* why_;
};

// After cJSON: every string of the tree is clean text (what the raw walk promised; checked again on the tree
// so that a disagreement between the walk and cJSON can never let a bad string through).
bool tree_clean(const cJSON* item, const std::string& path, JsonRefusal* why) {
  if (cJSON_IsString(item)) {
    const std::string_view v = item->valuestring ? item->valuestring : "";
    if (!clean_text(v)) {
      why->field = field_name(path);
      why->message = "invalid UTF-8";
      return false;
    }
  }
  size_t index = 0;
  for (const cJSON* child = item->child; child; child = child->next, ++index) {
    std::string child_path;
    if (cJSON_IsObject(item)) {
      const std::string_view name = child->string ? child->string : "";
      if (!clean_text(name)) {
        why->field = field_name(path);
        why->message = "member name " + quoted(name) + ": invalid UTF-8";
        return false;
      }
      child_path = json_path_member(path, name);
    } else {
      child_path = json_path_index(path, index);
    }
    if (!tree_clean(child, child_path, why)) return false;
  }
  return true;
}

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

std::optional<size_t> utf8_invalid_at(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const size_t n = utf8_sequence(text, i);
    if (n == 0) return i;
    i += n;
  }
  return std::nullopt;
}

bool clean_text(std::string_view text) {
  return text.find('\0') == std::string_view::npos && utf8_valid(text);
}

size_t utf8_length(std::string_view text) {
  size_t n = 0;
  for (char c : text) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

std::string quoted(std::string_view text, size_t max_chars) {
  std::string out = "\"";
  size_t chars = 0;
  size_t i = 0;
  for (; i < text.size() && chars < max_chars; ++chars) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          if (c < 0x20 || c == 0x7F) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
          } else {
            out.push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    const size_t n = utf8_sequence(text, i);
    if (n == 0) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
      ++i;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  out += "\"";
  if (i < text.size()) out += "\xE2\x80\xA6";  // …
  return out;
}

size_t url_unescape(char* text) {
  char* r = text;
  char* w = text;
  while (*r) {
    int hi = 0, lo = 0;
    if (r[0] == '%' && (hi = hex_value(r[1])) >= 0 && (lo = hex_value(r[2])) >= 0) {
      const int v = hi * 16 + lo;
      *w++ = v == 0 ? '\xC0' : static_cast<char>(v);
      r += 3;
    } else {
      *w++ = *r++;
    }
  }
  *w = '\0';
  return static_cast<size_t>(w - text);
}

std::string json_path_member(std::string_view path, std::string_view key) {
  bool plain = !key.empty();
  for (char c : key) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      plain = false;
  }
  if (plain) return path.empty() ? std::string(key) : std::string(path) + "." + std::string(key);
  return std::string(path) + "[" + quoted(key) + "]";
}

std::string json_path_index(std::string_view path, size_t index) {
  return std::string(path) + "[" + std::to_string(index) + "]";
}

JsonPtr json_parse_request(std::string_view text, JsonRefusal* why) {
  JsonRefusal scratch;
  if (!why) why = &scratch;
  *why = JsonRefusal{};
  StringScan scan(text, why);
  const StringScan::Verdict verdict = scan.run();
  if (verdict == StringScan::Verdict::bad_string) return nullptr;
  *why = JsonRefusal{};
  std::string syntax;
  JsonPtr root = json_parse(text, &syntax);
  if (!root) {
    why->syntax = true;
    why->message = syntax;
    return nullptr;
  }
  // cJSON accepts some things JSON does not (`\u` without four hex digits reads as \u0000, and cuts the
  // string there); the walk stops at any of them, and what it could not walk is not JSON the box takes.
  if (verdict == StringScan::Verdict::give_up) {
    why->syntax = true;
    why->message = position(text, scan.offset()) + ": invalid JSON";
    return nullptr;
  }
  if (!tree_clean(root.get(), "", why)) {
    why->late = true;
    return nullptr;
  }
  return root;
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += kAlphabet[v >> 6 & 63];
    out += kAlphabet[v & 63];
  }
  if (size_t rest = bytes.size() - i; rest > 0) {
    uint32_t v = byte(i) << 16 | (rest == 2 ? byte(i + 1) << 8 : 0);
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += rest == 2 ? kAlphabet[v >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      char c = text[i + static_cast<size_t>(k)];
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0) return std::nullopt;
      v[k] = b64_value(c);
      if (v[k] < 0) return std::nullopt;
    }
    uint32_t n = static_cast<uint32_t>(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
    out += static_cast<char>(n >> 16 & 0xff);
    if (pad < 2) out += static_cast<char>(n >> 8 & 0xff);
    if (pad < 1) out += static_cast<char>(n & 0xff);
  }
  return out;
}

std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace osvi::net
