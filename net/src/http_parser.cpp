// The strict, bounded HTTP/1.1 request parser (http_parser.hpp): head scanning and parsing, chunked bodies.
#include "osvi/net/http_parser.hpp"

#include <strings.h>

#include <algorithm>

#include "osvi/net/text.hpp"

namespace osvi::net::http {

namespace {

// RFC 9110 section 5.6.2: the characters of a token (method, field name, transfer coding).
bool tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), tchar);
}

bool ows(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && ows(s.back())) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// A field value's characters (RFC 9110 section 5.5): visible ASCII, obs-text, space and tab; no CTL.
bool field_value_ok(std::string_view v) {
  return std::all_of(v.begin(), v.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c == '\t' || (c >= 0x20 && c != 0x7f);
  });
}

// Calls fn(element) for each non-empty element of a comma-separated list, trimmed.
template <class Fn>
void each_element(std::string_view list, Fn&& fn) {
  while (true) {
    const size_t comma = list.find(',');
    std::string_view e = trim(list.substr(0, comma));
    if (!e.empty()) fn(e);
    if (comma == std::string_view::npos) return;
    list.remove_prefix(comma + 1);
  }
}

std::string decoded(std::string_view s, bool plus_is_space) {
  std::string out(s);
  if (plus_is_space) std::replace(out.begin(), out.end(), '+', ' ');
  out.resize(url_unescape(out.data()));
  return out;
}

ParseError bad(std::string message, int status = 400) {
  return ParseError{status, std::move(message)};
}

}  // namespace

HeadScanner::Scan HeadScanner::scan(std::string_view buf) {
  Scan s;
  // Leading empty lines (parse_head skips them) never count as the blank line, and are few.
  size_t start = 0;
  while (start < buf.size() && start < kMaxLeading && (buf[start] == '\r' || buf[start] == '\n')) ++start;
  if (start == kMaxLeading) {
    s.error = bad("too many empty lines before the request line");
    return s;
  }
  // The blank line: "\n\r\n" or, for a bare-LF client, "\n\n" (parse_head then refuses the bare LF).
  for (size_t i = std::max(scanned_, start); i < buf.size(); ++i) {
    if (buf[i] != '\n') continue;
    if (first_lf_ == std::string_view::npos) first_lf_ = i;
    if (i > start && (buf[i - 1] == '\n' || (buf[i - 1] == '\r' && i - 1 > start && buf[i - 2] == '\n'))) {
      s.end = i + 1;
      break;
    }
  }
  // The same verdict whatever the pieces: the request line is judged to its LF, the head to its end.
  const size_t line = (first_lf_ == std::string_view::npos ? buf.size() : first_lf_) - start;
  const size_t head = (s.end ? s.end : buf.size()) - start;
  if (line > limits_.max_request_line + 1) {
    s.end = 0;
    s.error = bad("request line longer than " + std::to_string(limits_.max_request_line) + " bytes", 414);
  } else if (head > limits_.max_head_bytes) {
    s.end = 0;
    s.error = bad("request head larger than " + std::to_string(limits_.max_head_bytes) + " bytes", 431);
  }
  if (!s.end) scanned_ = buf.size();
  return s;
}

std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    if (!part.empty()) {
      const size_t eq = part.find('=');
      out.emplace_back(decoded(part.substr(0, eq), true),
                       eq == std::string_view::npos ? std::string() : decoded(part.substr(eq + 1), true));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

std::optional<ParseError> parse_head(std::string_view head, RequestHead& out, const Limits& limits) {
  out = RequestHead();
  size_t pos = 0;
  // Takes the next line without its CRLF; a line ending in a bare LF, or holding a CR elsewhere, is refused.
  std::string_view line;
  auto next_line = [&]() -> std::optional<ParseError> {
    const size_t nl = head.find('\n', pos);
    if (nl == std::string_view::npos) return bad("request head cut short");
    if (nl == pos || head[nl - 1] != '\r') return bad("line not ended by CRLF (bare LF)");
    line = head.substr(pos, nl - 1 - pos);
    pos = nl + 1;
    if (line.find('\r') != std::string_view::npos) return bad("bare CR in the request head");
    return std::nullopt;
  };
  // RFC 9112 section 2.2: empty lines before the request line are ignored (HeadScanner bounds them).
  do {
    if (auto e = next_line()) return e;
  } while (line.empty() && pos < head.size());
  if (line.empty()) return bad("empty request line");
  if (line.size() > limits.max_request_line)
    return bad("request line longer than " + std::to_string(limits.max_request_line) + " bytes", 414);

  // request-line = method SP request-target SP HTTP-version, single spaces.
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return bad("malformed request line");
  const std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!token(method)) return bad("malformed method");
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' || version[5] < '0' ||
      version[5] > '9' || version[7] < '0' || version[7] > '9')
    return bad("malformed HTTP version");
  if (version[5] != '1') return bad("HTTP version not supported (HTTP/1.1 is)", 505);
  out.minor = version[7] == '0' ? 0 : 1;
  out.keep_alive = out.minor == 1;
  out.method = std::string(method);
  if (method == "CONNECT") return bad("CONNECT is not supported", 501);
  if (target.empty() ||
      !std::all_of(target.begin(), target.end(), [](char c) { return c > 0x20 && c < 0x7f; }))
    return bad("malformed request target");
  // absolute-form (RFC 9112 section 3.2.2) is accepted and reduced to its path; asterisk-form only with
  // OPTIONS.
  if (target.front() != '/') {
    const size_t scheme_end = target.find("://");
    if (target == "*" && method == "OPTIONS") {
    } else if (scheme_end != std::string_view::npos && (iequals(target.substr(0, scheme_end), "http") ||
                                                        iequals(target.substr(0, scheme_end), "https"))) {
      const size_t slash = target.find_first_of("/?", scheme_end + 3);
      target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
      if (target.front() == '?') return bad("malformed request target");
    } else {
      return bad("malformed request target");
    }
  }
  const size_t q = target.find('?');
  out.path = decoded(target.substr(0, q), false);
  if (q != std::string_view::npos) out.query = parse_query(target.substr(q + 1));

  size_t hosts = 0;
  bool have_length = false, have_te = false, chunked = false;
  while (true) {
    if (auto e = next_line()) return e;
    if (line.empty()) break;
    if (ows(line.front())) return bad("obsolete line folding in the request head");
    if (out.headers.size() >= limits.max_fields)
      return bad("more than " + std::to_string(limits.max_fields) + " header fields", 431);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return bad("header line without a colon");
    const std::string_view name = line.substr(0, colon);
    if (!token(name)) return bad("malformed header field name");
    const std::string_view value = trim(line.substr(colon + 1));
    if (!field_value_ok(value)) return bad("control character in header field " + quoted(name));
    out.headers.emplace_back(std::string(name), std::string(value));

    if (iequals(name, "Host")) {
      ++hosts;
    } else if (iequals(name, "Content-Length")) {
      // A list of equal values ("5, 5", or the field repeated) is one length (RFC 9112 section 6.3); anything
      // else is a framing conflict.
      std::optional<ParseError> err;
      bool any = false;
      each_element(value, [&](std::string_view e) {
        any = true;
        if (err) return;
        if (e.size() > 18 || !std::all_of(e.begin(), e.end(), [](char c) { return c >= '0' && c <= '9'; })) {
          err = bad("invalid Content-Length");
          return;
        }
        const uint64_t n = std::stoull(std::string(e));
        if (have_length && n != out.content_length) err = bad("conflicting Content-Length values");
        have_length = true;
        out.content_length = n;
      });
      if (err) return err;
      if (!any) return bad("invalid Content-Length");
    } else if (iequals(name, "Transfer-Encoding")) {
      have_te = true;
      std::optional<ParseError> err;
      each_element(value, [&](std::string_view e) {
        if (err) return;
        if (!iequals(e, "chunked"))
          err = bad("transfer coding " + quoted(e) + " is not supported", 501);
        else if (chunked)
          err = bad("chunked applied twice");
        chunked = true;
      });
      if (err) return err;
    } else if (iequals(name, "Connection")) {
      each_element(value, [&](std::string_view e) {
        if (iequals(e, "close")) out.keep_alive = false;
        if (iequals(e, "keep-alive") && out.minor == 0) out.keep_alive = true;
      });
    } else if (iequals(name, "Expect")) {
      // RFC 9110 section 10.1.1: an HTTP/1.0 request's expectation is ignored.
      if (out.minor == 0) continue;
      if (!iequals(value, "100-continue")) return bad("unsupported expectation " + quoted(value), 417);
      out.expect_continue = true;
    }
  }
  if (pos != head.size()) return bad("bytes after the request head");
  if (out.minor == 1 && hosts == 0) return bad("an HTTP/1.1 request must carry a Host header");
  if (hosts > 1) return bad("more than one Host header");
  if (have_te) {
    // RFC 9112 sections 6.1 and 6.3: Transfer-Encoding with Content-Length, or in HTTP/1.0, is faulty
    // framing.
    if (have_length) return bad("both Content-Length and Transfer-Encoding");
    if (out.minor == 0) return bad("Transfer-Encoding in an HTTP/1.0 request");
    if (!chunked) return bad("empty Transfer-Encoding");
    out.framing = BodyFraming::chunked;
  } else if (have_length && out.content_length > 0) {
    out.framing = BodyFraming::length;
  }
  if (out.framing == BodyFraming::none) out.expect_continue = false;
  return std::nullopt;
}

ChunkedDecoder::Step ChunkedDecoder::feed(std::string_view in) {
  Step s;
  auto fail = [&](std::string message) {
    state_ = State::bad;
    s.error = bad(std::move(message));
    return s;
  };
  size_t i = 0;
  while (i < in.size()) {
    const char c = in[i];
    switch (state_) {
      case State::size: {
        int v = -1;
        if (c >= '0' && c <= '9') v = c - '0';
        if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
        if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
        if (++line_ > limits_.max_chunk_line) return fail("chunk-size line too long");
        if (v >= 0) {
          if (++digits_ > 15) return fail("chunk size too large");
          left_ = left_ * 16 + static_cast<uint64_t>(v);
          ++i;
          break;
        }
        if (digits_ == 0) return fail("malformed chunk size");
        if (c == '\r') {
          state_ = State::size_lf;
        } else if (c == ';' || ows(c)) {
          state_ = State::ext;
        } else {
          return fail("malformed chunk size");
        }
        ++i;
        break;
      }
      case State::ext:
        // chunk-ext is skipped; it may hold any field-value character but no bare CR or LF.
        if (++line_ > limits_.max_chunk_line) return fail("chunk-size line too long");
        if (c == '\r') {
          state_ = State::size_lf;
        } else if (c == '\n' || (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
          return fail("malformed chunk extension");
        }
        ++i;
        break;
      case State::size_lf:
        if (c != '\n') return fail("chunk-size line not ended by CRLF");
        ++i;
        line_ = 0;
        digits_ = 0;
        state_ = left_ == 0 ? State::trailer_start : State::data;
        break;
      case State::data: {
        if (i > 0) {
          // Framing first, the data on the next call: one span per step.
          s.consumed = i;
          return s;
        }
        const size_t n = static_cast<size_t>(std::min<uint64_t>(left_, in.size()));
        left_ -= n;
        if (left_ == 0) state_ = State::data_cr;
        s.consumed = n;
        s.data = in.substr(0, n);
        return s;
      }
      case State::data_cr:
        if (c != '\r') return fail("chunk data not followed by CRLF");
        ++i;
        state_ = State::data_lf;
        break;
      case State::data_lf:
        if (c != '\n') return fail("chunk data not followed by CRLF");
        ++i;
        state_ = State::size;
        break;
      case State::trailer_start:
      case State::trailer:
        if (++trailer_bytes_ > limits_.max_trailer_bytes) return fail("trailer section too large");
        if (c == '\r') {
          state_ = state_ == State::trailer_start ? State::final_lf : State::trailer_lf;
        } else if (c == '\n' || (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
          return fail("malformed trailer field");
        } else if (state_ == State::trailer_start && ows(c)) {
          return fail("obsolete line folding in the trailer section");
        } else {
          state_ = State::trailer;
        }
        ++i;
        break;
      case State::trailer_lf:
        if (++trailer_bytes_ > limits_.max_trailer_bytes) return fail("trailer section too large");
        if (c != '\n') return fail("trailer line not ended by CRLF");
        ++i;
        state_ = State::trailer_start;
        break;
      case State::final_lf:
        if (c != '\n') return fail("last chunk not ended by CRLF");
        state_ = State::done;
        s.consumed = i + 1;
        return s;
      case State::done:
        s.consumed = i;
        return s;
      case State::bad:
        return fail("chunked body already refused");
    }
  }
  // A data state reached exactly at the end of the input (after framing) gives its span on the next call.
  s.consumed = i;
  return s;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 422:
      return "Unprocessable Content";
    case 426:
      return "Upgrade Required";
    case 428:
      return "Precondition Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    case 507:
      return "Insufficient Storage";
    default:
      return "Status";
  }
}

}  // namespace osvi::net::http
