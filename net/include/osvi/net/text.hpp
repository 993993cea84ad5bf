// Strict text at the box's edge: UTF-8 validation, the URL percent-decoder, quoting request data into
// messages.
#pragma once

#include <cjson/cJSON.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "osvi/net/json.hpp"

namespace osvi::net {

// Offset of the first byte that is not part of well-formed UTF-8 (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or nullopt when the whole text is valid. NUL is valid UTF-8;
// callers that refuse it check for it separately.
std::optional<size_t> utf8_invalid_at(std::string_view text);
inline bool utf8_valid(std::string_view text) {
  return !utf8_invalid_at(text);
}
// Valid UTF-8 with no NUL: what every string the API accepts must be.
bool clean_text(std::string_view text);
// Unicode characters (code points) of valid UTF-8 text.
size_t utf8_length(std::string_view text);

// Request data repeated in a message: in double quotes, with ", \ and control characters escaped as in JSON
// and every byte that is not valid UTF-8 as \xHH, cut after max_chars characters (then "…" follows the
// closing quote). The result is always valid UTF-8 without control characters, whatever the input.
std::string quoted(std::string_view text, size_t max_chars = 64);

// text with ASCII A-Z lower-cased; every other byte as it is.
std::string ascii_lower(std::string_view text);

// The HTTP server's percent-decoder for paths and query components (net/http_parser.cpp): decodes %XX in
// place and returns the new length. A decoded NUL would cut the text wherever it is used as a C string
// ("/v1/call/<id>%00/x" would reach the router as "/v1/call/<id>"): %00 decodes to the byte 0xC0 instead,
// which never occurs in UTF-8, so the path or parameter is refused by the UTF-8 check like any other
// undecodable byte. A '%' not followed by two hex digits is kept as it is.
size_t url_unescape(char* text);

// Bounds on a request body's shape, checked before cJSON builds its tree: a 4 MiB body of tiny members
// parses into tens of MB of nodes (each value costs cJSON ~64 bytes plus its strings), so the count of
// values, not the byte size, bounds the memory a request may take. 100,000 values hold the largest request
// the API defines (10,000 campaign contacts with a few variables each) with room to spare.
inline constexpr size_t kMaxJsonValues = 100000;
inline constexpr int kMaxJsonDepth = 64;

// Why a JSON request body was refused by json_parse_request.
struct JsonRefusal {
  bool syntax = false;     // not JSON at all: message is "line L, column C: invalid JSON"
  bool too_large = false;  // over kMaxJsonValues or kMaxJsonDepth: message says which
  std::string field;       // a string problem: the JSON path of the value (e.g. additional_data.name, a[2])
  std::string message;     // what is wrong, e.g. "invalid UTF-8 (byte 0xff)"
  // Caught only by the check on the parsed tree, not by the walk over the raw text that should see every bad
  // string first: never set unless the two disagree (the fuzz target holds them to it).
  bool late = false;
};

// Parses a request body and refuses any string (value or member name, at any depth) that is not clean text:
// invalid UTF-8, a \u0000 escape (cJSON would cut the string there) or a raw control byte, an unpaired
// surrogate escape. On refusal returns null and fills *why.
JsonPtr json_parse_request(std::string_view text, JsonRefusal* why);

// "a.b", "a[3]" or a["odd key"]: a member of the object at `path` named `key`, for messages.
std::string json_path_member(std::string_view path, std::string_view key);
std::string json_path_index(std::string_view path, size_t index);

// RFC 4648 base64 with padding (webhook secrets and signatures).
std::string base64_encode(std::string_view bytes);
// Strict: padding required, no whitespace; none on anything else.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace osvi::net
