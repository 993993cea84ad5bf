// libFuzzer target for the HTTP/1.1 request parser (net/http_parser.hpp): the head is found at the same place
// however the bytes arrive, a parsed head keeps the parser's promises (bounded, no NUL in the path, one
// framing), a refusal has a status the server may answer, and a chunked body decodes to the same bytes and
// the same verdict whole, byte by byte and split at an offset the input chooses.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_promise.hpp"
#include "osvi/net/http_parser.hpp"

namespace {

using namespace osvi::net::http;

// Small bounds so that the limits themselves are reached often.
Limits small_limits() {
  Limits l;
  l.max_request_line = 64;
  l.max_head_bytes = 256;
  l.max_fields = 8;
  l.max_chunk_line = 16;
  l.max_trailer_bytes = 64;
  return l;
}

bool server_status(int s) {
  return s == 400 || s == 414 || s == 417 || s == 431 || s == 501 || s == 505;
}

struct Scanned {
  size_t end = 0;
  int error = 0;
  bool operator==(const Scanned&) const = default;
};

// The scanner fed `in` growing by `step` bytes.
Scanned scan(std::string_view in, size_t step, const Limits& l) {
  HeadScanner s(l);
  for (size_t n = step;; n += step) {
    const auto r = s.scan(in.substr(0, n));
    if (r.error) return {0, r.error->status};
    if (r.end) return {r.end, 0};
    if (n >= in.size()) return {};
  }
}

struct Decoded {
  std::string data;
  bool done = false;
  bool error = false;
  size_t consumed = 0;
  bool operator==(const Decoded&) const = default;
};

// The decoder fed `in` in pieces of `step` bytes (the rest of each piece given again with the next).
Decoded decode(std::string_view in, size_t step, const Limits& l) {
  ChunkedDecoder d(l);
  Decoded out;
  size_t pos = 0;
  while (pos < in.size() && !d.done()) {
    const size_t end = std::min(in.size(), pos + step);
    const auto s = d.feed(in.substr(pos, end - pos));
    if (s.error) {
      require(server_status(s.error->status));
      out.error = true;
      break;
    }
    require(s.consumed <= end - pos);
    require(s.data.empty() || s.data.size() <= s.consumed);
    out.data.append(s.data);
    pos += s.consumed;
    if (s.consumed == 0 && end == in.size()) break;  // waits for bytes that will not come
    if (s.consumed == 0) {
      // The decoder wants more than this piece: a longer piece from the same place.
      const auto again = d.feed(in.substr(pos));
      if (again.error) {
        out.error = true;
        break;
      }
      out.data.append(again.data);
      pos += again.consumed;
      if (again.consumed == 0) break;
    }
  }
  out.done = d.done();
  out.consumed = pos;
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const Limits l = small_limits();
  const size_t split = size ? data[0] % 37 + 1 : 1;

  const Scanned whole = scan(in, in.size() ? in.size() : 1, l);
  require(scan(in, 1, l) == whole);
  require(scan(in, split, l) == whole);
  if (whole.error) require(whole.error == 414 || whole.error == 431 || whole.error == 400);

  std::string_view body = in;
  if (whole.end) {
    require(whole.end <= in.size());
    RequestHead h;
    if (auto bad = parse_head(in.substr(0, whole.end), h, l)) {
      require(server_status(bad->status));
      check_message(bad->message);
    } else {
      require(!h.method.empty() && !h.path.empty());
      require(h.path.find('\0') == std::string::npos);
      require(h.headers.size() <= l.max_fields);
      require(h.minor == 0 || h.minor == 1);
      if (h.framing == BodyFraming::chunked) require(h.minor == 1);
      if (h.framing == BodyFraming::length) require(h.content_length > 0);
      if (h.expect_continue) require(h.framing != BodyFraming::none && h.minor == 1);
      for (const auto& [k, v] : h.headers) {
        require(!k.empty() && k.find_first_of(": \t\r\n") == std::string::npos);
        require(v.find_first_of("\r\n") == std::string::npos && v.find('\0') == std::string::npos);
      }
    }
    body = in.substr(whole.end);
  }

  // The bytes after the head (or the whole input) as a chunked body.
  const Decoded one = decode(body, body.size() ? body.size() : 1, l);
  require(one.data.size() <= body.size());
  require(!(one.done && one.error));
  const Decoded bytes = decode(body, 1, l);
  const Decoded parts = decode(body, split, l);
  require(bytes.data == one.data && bytes.done == one.done && bytes.error == one.error);
  require(parts.data == one.data && parts.done == one.done && parts.error == one.error);
  if (one.done) require(bytes.consumed == one.consumed && parts.consumed == one.consumed);
  return 0;
}
