// The HTTP/1.1 request parser (net/http_parser.hpp): what it accepts, the status of each refusal, the bounds,
// and chunked bodies split at every offset.
#include "osvi/net/http_parser.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using namespace std::string_literals;
using osvi::net::http::BodyFraming;
using osvi::net::http::ChunkedDecoder;
using osvi::net::http::HeadScanner;
using osvi::net::http::Limits;
using osvi::net::http::parse_head;
using osvi::net::http::RequestHead;

// The status a head is refused with; 0 when accepted.
int status_of(const std::string& head, RequestHead* out = nullptr) {
  RequestHead h;
  auto e = parse_head(head, h);
  if (out) *out = h;
  return e ? e->status : 0;
}

TEST(HttpParser, AcceptsOrdinaryRequestsAndDecodesTargets) {
  RequestHead h;
  ASSERT_EQ(status_of("GET /v1/calls?page=2&q=a+b%20c&flag&=x&&e= HTTP/1.1\r\nHost: box\r\n"
                      "X-Thing:   spaced value \t\r\nAccept: */*\r\n\r\n",
                      &h),
            0);
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.path, "/v1/calls");
  ASSERT_EQ(h.query.size(), 5u);
  EXPECT_EQ(h.query[0], (std::pair<std::string, std::string>("page", "2")));
  EXPECT_EQ(h.query[1], (std::pair<std::string, std::string>("q", "a b c")));
  EXPECT_EQ(h.query[2], (std::pair<std::string, std::string>("flag", "")));
  EXPECT_EQ(h.query[3], (std::pair<std::string, std::string>("", "x")));
  EXPECT_EQ(h.query[4], (std::pair<std::string, std::string>("e", "")));
  ASSERT_EQ(h.headers.size(), 3u);
  EXPECT_EQ(h.headers[1], (std::pair<std::string, std::string>("X-Thing", "spaced value")));
  EXPECT_EQ(h.minor, 1);
  EXPECT_TRUE(h.keep_alive);
  EXPECT_EQ(h.framing, BodyFraming::none);

  // %00 never cuts the path; '+' stays a plus in the path.
  ASSERT_EQ(status_of("GET /a%00b/c+d HTTP/1.1\r\nHost: x\r\n\r\n", &h), 0);
  EXPECT_EQ(h.path,
            "/a\xc0"
            "b/c+d");
  // Absolute-form is reduced to its path; leading empty lines are skipped (RFC 9112 section 2.2).
  ASSERT_EQ(status_of("\r\nGET http://box:8080/v1/health?x=1 HTTP/1.1\r\nHost: box\r\n\r\n", &h), 0);
  EXPECT_EQ(h.path, "/v1/health");
  EXPECT_EQ(h.query.size(), 1u);
  ASSERT_EQ(status_of("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", &h), 0);
  EXPECT_EQ(h.path, "*");
}

TEST(HttpParser, VersionsAndPersistence) {
  RequestHead h;
  ASSERT_EQ(status_of("GET / HTTP/1.0\r\n\r\n", &h), 0);  // HTTP/1.0 needs no Host
  EXPECT_EQ(h.minor, 0);
  EXPECT_FALSE(h.keep_alive);
  ASSERT_EQ(status_of("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &h), 0);
  EXPECT_TRUE(h.keep_alive);
  ASSERT_EQ(status_of("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n", &h), 0);
  EXPECT_FALSE(h.keep_alive);
  ASSERT_EQ(status_of("GET / HTTP/1.2\r\nHost: x\r\n\r\n", &h), 0);  // a later 1.x is answered as 1.1
  EXPECT_EQ(h.minor, 1);
  EXPECT_EQ(status_of("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 505);
  EXPECT_EQ(status_of("GET / HTTP/0.9\r\n\r\n"), 505);
  EXPECT_EQ(status_of("GET / HTTP/1.10\r\nHost: x\r\n\r\n"), 400);
  EXPECT_EQ(status_of("GET / http/1.1\r\nHost: x\r\n\r\n"), 400);
  EXPECT_EQ(status_of("GET /\r\n\r\n"), 400);  // HTTP/0.9 simple request
}

TEST(HttpParser, MalformedRequestLinesAndFields) {
  EXPECT_EQ(status_of("GET  / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);  // two spaces
  EXPECT_EQ(status_of("GET / HTTP/1.1 \r\nHost: x\r\n\r\n"), 400);
  EXPECT_EQ(status_of("G(T / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
  EXPECT_EQ(status_of("GET /a\x7f HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
  EXPECT_EQ(status_of("GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n"), 400);  // raw non-ASCII in the target
  EXPECT_EQ(status_of("GET v1 HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
  EXPECT_EQ(status_of("GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
  EXPECT_EQ(status_of("CONNECT box:443 HTTP/1.1\r\nHost: box\r\n\r\n"), 501);
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\n\r\n"), 400);                        // no Host
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);  // two
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), 400);            // space before the colon
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n"), 400);
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n"), 400);
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n"), 400);  // obs-fold
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n"), 400);          // bare CR
  EXPECT_EQ(status_of("GET / HTTP/1.1\nHost: x\r\n\r\n"), 400);                       // bare LF
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n"s), 400);         // NUL
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: x\r\nX: \x01\r\n\r\n"), 400);
  // obs-text in a value is allowed (RFC 9110 section 5.5).
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: x\r\nX: caf\xc3\xa9\r\n\r\n"), 0);
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n"), 0);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nExpect: magic\r\n\r\n"), 417);
}

TEST(HttpParser, BodyFramingAndItsConflicts) {
  RequestHead h;
  ASSERT_EQ(status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 42\r\nExpect: 100-Continue\r\n\r\n", &h),
            0);
  EXPECT_EQ(h.framing, BodyFraming::length);
  EXPECT_EQ(h.content_length, 42u);
  EXPECT_TRUE(h.expect_continue);
  ASSERT_EQ(status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", &h), 0);
  EXPECT_EQ(h.framing, BodyFraming::none);
  // Equal repeats are one length; differing ones, signs, spaces inside and huge numbers are not.
  ASSERT_EQ(status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n", &h),
            0);
  EXPECT_EQ(h.content_length, 5u);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), 400);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\n"), 400);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n"), 400);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5 5\r\n\r\n"), 400);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n"), 400);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"), 400);
  ASSERT_EQ(status_of("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n", &h), 0);
  EXPECT_EQ(h.framing, BodyFraming::chunked);
  // Both framings at once is the smuggling shape: refused.
  EXPECT_EQ(
      status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
      400);
  EXPECT_EQ(
      status_of("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
      400);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 501);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n"), 501);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), 400);
  EXPECT_EQ(
      status_of(
          "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
      400);
  EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n"), 400);
  EXPECT_EQ(status_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
}

// The scanner finds the blank line however the bytes arrive, and refuses an overlong line or head early.
TEST(HttpParser, HeadScannerBoundsAndSplits) {
  const std::string req = "\r\nGET /x HTTP/1.1\r\nHost: x\r\n\r\nNEXT";
  const size_t end = req.size() - 4;
  for (size_t step = 1; step <= req.size(); ++step) {
    HeadScanner s;
    size_t found = 0;
    for (size_t n = step; n <= req.size() + step - 1 && !found; n += step) {
      const auto r = s.scan(std::string_view(req).substr(0, std::min(n, req.size())));
      ASSERT_FALSE(r.error) << step;
      found = r.end;
    }
    EXPECT_EQ(found, end) << step;
  }
  Limits l;
  {
    HeadScanner s(l);
    const std::string line = "GET /" + std::string(l.max_request_line + 10, 'a');
    const auto r = s.scan(line);
    ASSERT_TRUE(r.error);
    EXPECT_EQ(r.error->status, 414);
  }
  {
    HeadScanner s(l);
    std::string head = "GET / HTTP/1.1\r\n";
    while (head.size() <= l.max_head_bytes) head += "X-Pad: " + std::string(100, 'p') + "\r\n";
    const auto r = s.scan(head);
    ASSERT_TRUE(r.error);
    EXPECT_EQ(r.error->status, 431);
  }
  {
    std::string head = "GET / HTTP/1.1\r\nHost: x\r\n";
    for (size_t i = 0; i < l.max_fields; ++i) head += "X: 1\r\n";
    EXPECT_EQ(status_of(head + "\r\n"), 431);
  }
  {
    HeadScanner s(l);
    EXPECT_EQ(s.scan("GET / HTTP/1.1\n\n").end, 16u);  // found; parse_head then refuses the bare LFs
    EXPECT_EQ(status_of("GET / HTTP/1.1\n\n"), 400);
  }
}

// Decodes `body` fed in pieces of `step` bytes; returns the data or "ERR <message>".
std::string decode(const std::string& body, size_t step, size_t* rest = nullptr) {
  ChunkedDecoder d;
  std::string data;
  size_t pos = 0;
  while (pos < body.size() && !d.done()) {
    std::string_view piece = std::string_view(body).substr(pos, step);
    size_t used = 0;
    while (used < piece.size() && !d.done()) {
      const auto s = d.feed(piece.substr(used));
      if (s.error) return "ERR " + s.error->message;
      if (s.consumed == 0) break;
      data.append(s.data);
      used += s.consumed;
    }
    pos += used;
    if (used < piece.size() && !d.done()) return "ERR stuck";
  }
  if (rest) *rest = body.size() - pos;
  return d.done() ? data : "INCOMPLETE " + data;
}

TEST(HttpParser, ChunkedBodiesAtEverySplit) {
  const std::string body =
      "5\r\nhello\r\n1A;name=\"v\"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
  for (size_t step = 1; step <= body.size(); ++step) {
    size_t rest = 0;
    EXPECT_EQ(decode(body, step, &rest), "helloabcdefghijklmnopqrstuvwxyz") << step;
    EXPECT_EQ(rest, 4u) << step;  // the next request's bytes are left alone
  }
  EXPECT_EQ(decode("0\r\n\r\n", 1), "");
  EXPECT_EQ(decode("3\r\nabc\r\n", 100), "INCOMPLETE abc");
}

TEST(HttpParser, ChunkedRefusals) {
  for (const char* bad : {
           "x\r\n",                     // not hex
           "\r\n",                      // no size
           "-1\r\n",                    // sign
           "5\nhello\r\n0\r\n\r\n",     // bare LF after the size
           "5\rhello\r\n0\r\n\r\n",     // bare CR
           "5\r\nhelloX\r\n0\r\n\r\n",  // data longer than its size
           "5\r\nhello\n0\r\n\r\n",     // bare LF after the data
           "1000000000000000\r\n",      // 16 hex digits: past any limit
           "5;a\x01\r\nhello\r\n",      // control character in an extension
           "0\r\n folded: x\r\n\r\n",   // obs-fold in the trailers
           "0\r\nX: a\nY: b\r\n\r\n",   // bare LF in the trailers
           "0\r\n\rX",                  // CR of the last line not followed by LF
       }) {
    EXPECT_EQ(decode(bad, 1).rfind("ERR ", 0), 0u) << osvi::net::http::reason_phrase(400) << ": " << bad;
    EXPECT_EQ(decode(bad, 64).rfind("ERR ", 0), 0u) << bad;
  }
  // Bounds: an endless chunk-size line (extensions), and endless trailers.
  Limits l;
  EXPECT_EQ(decode("5;" + std::string(l.max_chunk_line, 'e') + "\r\nhello\r\n0\r\n\r\n", 7).rfind("ERR ", 0),
            0u);
  std::string trailers = "0\r\n";
  while (trailers.size() < l.max_trailer_bytes + 100) trailers += "X-T: " + std::string(50, 't') + "\r\n";
  EXPECT_EQ(decode(trailers + "\r\n", 100).rfind("ERR ", 0), 0u);
  // Leading zeros are fine as long as the digits stay bounded.
  EXPECT_EQ(decode("005\r\nhello\r\n0\r\n\r\n", 3), "hello");
}

TEST(HttpParser, QueryStringDecoding) {
  const auto q = osvi::net::http::parse_query("a=%41%zz&b=1%2B1&c=%e2%82%ac&d=x=y");
  ASSERT_EQ(q.size(), 4u);
  EXPECT_EQ(q[0].second, "A%zz");
  EXPECT_EQ(q[1].second, "1+1");
  EXPECT_EQ(q[2].second, "\xe2\x82\xac");
  EXPECT_EQ(q[3].second, "x=y");
}

}  // namespace
