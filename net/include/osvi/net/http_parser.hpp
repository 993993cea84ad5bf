// The HTTP/1.1 request parser of the local server (RFC 9112): request head and chunked body, strict and
// bounded.
//
// Strict because the API sits behind browsers and proxies: every framing ambiguity a smuggling attack needs
// (Content-Length with Transfer-Encoding, differing Content-Lengths, obs-fold, bare CR or LF, whitespace
// before a field's colon, a bad chunk size) is refused with a status and the connection closed. Bounded
// because every byte a client sends before its request is accepted is memory held for a stranger: the
// request line, the head, the field count, each chunk-size line and the trailers have limits, and the body
// has the server's. Pure: no I/O, so it is unit-tested and fuzzed on its own (tests/fuzz/http_request).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace osvi::net::http {

struct Limits {
  size_t max_request_line = 8 * 1024;   // longer: 414
  size_t max_head_bytes = 32 * 1024;    // request line, fields and the blank line; longer: 431
  size_t max_fields = 100;              // more: 431
  size_t max_chunk_line = 256;          // a chunk-size line with its extensions; longer: 400
  size_t max_trailer_bytes = 8 * 1024;  // longer: 400
};

// What is wrong with a request, as the status to answer and a message for the client. The connection is
// closed after the answer: the framing of what follows cannot be trusted.
struct ParseError {
  int status = 400;
  std::string message;
};

enum class BodyFraming { none, length, chunked };

struct RequestHead {
  std::string method;
  std::string path;  // without the query; percent-decoded by url_unescape (%00 arrives as 0xC0)
  std::vector<std::pair<std::string, std::string>> query;    // '+' is a space, then percent-decoded
  std::vector<std::pair<std::string, std::string>> headers;  // names as sent, values without OWS
  int minor = 1;                                             // HTTP/1.0 or HTTP/1.1
  bool keep_alive = true;                                    // what the request allows
  bool expect_continue = false;                              // Expect: 100-continue (HTTP/1.1)
  BodyFraming framing = BodyFraming::none;
  uint64_t content_length = 0;  // with BodyFraming::length
};

// Finds where a request head ends in bytes arriving piece by piece, remembering how far it has looked, so a
// client dribbling its head a byte at a time costs linear work. Leading empty lines (RFC 9112 section 2.2)
// are part of the head.
class HeadScanner {
 public:
  explicit HeadScanner(const Limits& limits = {}) : limits_(limits) {}
  // `buf` holds the bytes so far (the same prefix as the last call, maybe more). Returns the head's length
  // including its blank line once complete, 0 while more is needed, or the error the bytes already show (a
  // request line or head over its limit).
  struct Scan {
    size_t end = 0;
    std::optional<ParseError> error;
  };
  Scan scan(std::string_view buf);
  void reset() {
    scanned_ = 0;
    first_lf_ = std::string_view::npos;
  }

 private:
  static constexpr size_t kMaxLeading = 8;  // CR and LF bytes before the request line
  Limits limits_;
  size_t scanned_ = 0;                        // bytes looked at for the blank line
  size_t first_lf_ = std::string_view::npos;  // where the request line ends
};

// Parses a complete head (as HeadScanner delimited it). nullopt when it is a request the server can take.
std::optional<ParseError> parse_head(std::string_view head, RequestHead& out, const Limits& limits = {});

// Splits a request target's query ("a=1&b=%20") into decoded pairs; exposed for the tests.
std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query);

// Decodes a chunked body (RFC 9112 section 7.1) in place: each call consumes control bytes or returns one
// span of data pointing into the input, so no byte is copied here. Chunk extensions are skipped and
// trailer fields read and dropped.
class ChunkedDecoder {
 public:
  explicit ChunkedDecoder(const Limits& limits = {}) : limits_(limits) {}
  struct Step {
    size_t consumed = 0;    // bytes of `in` used up
    std::string_view data;  // body bytes among them (empty when they were framing)
    std::optional<ParseError> error;
  };
  // Feeds bytes after those consumed so far. Once done() or after an error, consumes nothing.
  Step feed(std::string_view in);
  bool done() const { return state_ == State::done; }
  void reset() { *this = ChunkedDecoder(limits_); }

 private:
  enum class State {
    size,
    ext,
    size_lf,
    data,
    data_cr,
    data_lf,
    trailer_start,
    trailer,
    trailer_lf,
    final_lf,
    done,
    bad
  };
  Limits limits_;
  State state_ = State::size;
  uint64_t left_ = 0;  // of the current chunk
  size_t line_ = 0;    // bytes of the current chunk-size line
  size_t trailer_bytes_ = 0;
  int digits_ = 0;
};

// "Bad Request" and the like for a status the server answers itself.
const char* reason_phrase(int status);

}  // namespace osvi::net::http
