// Router matching, JSON parse errors, and the HTTP server (body limit, deferred replies) on a real socket.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <thread>

#include "daemon_process.hpp"
#include "osvi/net/http_server.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/router.hpp"
#include "osvi/net/text.hpp"
#include "test_support.hpp"

namespace {

using osvi::net::HttpReply;
using osvi::net::HttpRequest;
using osvi::net::HttpResponse;
using osvi::net::Router;

TEST(Router, MatchesParamsAndTellsNotFoundFromWrongMethod) {
  Router r;
  int hit = 0;
  r.add("GET", "/v1/call/{id}/transcript", [&](HttpRequest&, HttpReply) { hit = 1; });
  r.add("GET", "/v1/calls", [&](HttpRequest&, HttpReply) { hit = 2; });
  r.add("POST", "/v1/calls", [&](HttpRequest&, HttpReply) { hit = 3; });

  auto m = r.match("GET", "/v1/call/abc-123/transcript");
  ASSERT_EQ(m.kind, Router::Match::Kind::found);
  ASSERT_EQ(m.params.size(), 1u);
  EXPECT_EQ(m.params[0].first, "id");
  EXPECT_EQ(m.params[0].second, "abc-123");

  EXPECT_EQ(r.match("GET", "/v1/call/abc/recording").kind, Router::Match::Kind::not_found);
  EXPECT_EQ(r.match("GET", "/v1/call//transcript").kind, Router::Match::Kind::not_found);
  auto w = r.match("DELETE", "/v1/calls");
  EXPECT_EQ(w.kind, Router::Match::Kind::method_not_allowed);
  EXPECT_EQ(w.allow, "GET, POST");
  EXPECT_EQ(r.match("HEAD", "/v1/calls").kind, Router::Match::Kind::found);
  EXPECT_EQ(r.match("GET", "/v1/calls/").kind, Router::Match::Kind::found);
}

TEST(Json, ParseErrorsPointAtLineAndColumn) {
  std::string why;
  EXPECT_FALSE(osvi::net::json_parse("{\n  \"a\": 1,\n  \"b\": }", &why));
  EXPECT_EQ(why.rfind("line 3, column ", 0), 0u) << why;
  EXPECT_FALSE(osvi::net::json_parse("{} trailing", &why));
  EXPECT_NE(why.find("line 1, column 4"), std::string::npos) << why;
  EXPECT_FALSE(osvi::net::json_parse("", &why));
  EXPECT_EQ(why, "empty document");
  // Not NUL-terminated input must not be read past its end.
  std::string buf = "{\"k\":1}XXXX";
  auto j = osvi::net::json_parse(std::string_view(buf).substr(0, 7), &why);
  ASSERT_TRUE(j);
  EXPECT_EQ(cJSON_GetObjectItem(j.get(), "k")->valueint, 1);
}

// Runs the server on its own thread, which is then the only thread touching it.
class ServerThread {
 public:
  explicit ServerThread(osvi::net::HttpHandler handler, size_t max_body = 1024) {
    osvi::net::HttpServerOptions o;
    o.port = 0;
    o.max_body_bytes = max_body;
    auto s = osvi::net::HttpServer::start(o, std::move(handler));
    if (!s) throw std::runtime_error(s.error().message);
    server_ = std::move(*s);
    port_ = server_->port();
    thread_ = std::thread([this] {
      while (!stop_) {
        // As the daemon's loop does: libmicrohttpd's own deadline (0 while a response is still being sent).
        const int wait = static_cast<int>(std::min<uint64_t>(server_->timeout_ms().value_or(10), 10));
        pollfd p{server_->poll_fd(), POLLIN, 0};
        poll(&p, 1, wait);
        server_->run();
        if (tick) tick();
      }
    });
  }
  ~ServerThread() {
    stop_ = true;
    thread_.join();
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::function<void()> tick;  // set before the first request only

 private:
  std::unique_ptr<osvi::net::HttpServer> server_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(HttpServer, PassesMethodPathQueryHeadersAndBody) {
  HttpRequest seen;
  ServerThread st([&](HttpRequest& req, HttpReply reply) {
    seen = req;
    HttpResponse r;
    r.status = 201;
    r.body = "{\"ok\":true}";
    r.headers.emplace_back("X-Test", "yes");
    reply.send(std::move(r));
  });
  auto r = osvi::test::http_request("POST", st.url("/v1/x?phone=%2B91&flag=1"), "Tok", "{\"a\":1}");
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, "{\"ok\":true}");
  EXPECT_NE(r.headers.find("X-Test: yes"), std::string::npos);
  EXPECT_EQ(seen.method, "POST");
  EXPECT_EQ(seen.path, "/v1/x");
  EXPECT_EQ(seen.body, "{\"a\":1}");
  EXPECT_EQ(seen.query_param("phone"), std::optional<std::string_view>("+91"));
  EXPECT_EQ(seen.header("api-token"), std::optional<std::string_view>("Tok"));
  EXPECT_EQ(seen.remote.rfind("127.0.0.1:", 0), 0u) << seen.remote;
}

TEST(HttpServer, RefusesBodiesOverTheLimitWith413) {
  bool called = false;
  ServerThread st(
      [&](HttpRequest&, HttpReply reply) {
        called = true;
        reply.send({});
      },
      1000);
  EXPECT_EQ(osvi::test::http_request("POST", st.url("/"), "", std::string(1001, 'x')).status, 413);
  EXPECT_FALSE(called);
  EXPECT_EQ(osvi::test::http_request("POST", st.url("/"), "", std::string(1000, 'x')).status, 200);
  EXPECT_TRUE(called);
}

// A file is answered from its descriptor: the response carries the open file and no bytes of it, and the
// server streams it byte-identical.
TEST(HttpServer, FileResponsesCarryTheDescriptorNotTheBytes) {
  osvi::test::TempDir dir;
  const std::string path = dir.file("big.bin");
  std::string content(24u << 20, '\0');
  uint32_t x = 12345;
  for (char& c : content) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 24);
  }
  osvi::test::write_file(path, content);

  auto r = osvi::net::file_response(path, "application/octet-stream");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->body.empty());
  ASSERT_TRUE(r->file.has_value());
  EXPECT_EQ(r->file->size(), content.size());
  EXPECT_EQ(r->file->offset(), 0u);
  struct stat by_fd {
  }, by_path{};
  ASSERT_EQ(fstat(r->file->fd(), &by_fd), 0);
  ASSERT_EQ(stat(path.c_str(), &by_path), 0);
  EXPECT_EQ(by_fd.st_ino, by_path.st_ino);
  EXPECT_EQ(by_fd.st_dev, by_path.st_dev);

  auto missing = osvi::net::file_response(dir.file("nope"), "audio/ogg");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, -ENOENT);
  auto folder = osvi::net::file_response(dir.path(), "audio/ogg");
  ASSERT_FALSE(folder.ok());
  EXPECT_EQ(folder.error().code, -EISDIR);

  ServerThread st([&](HttpRequest&, HttpReply reply) {
    auto f = osvi::net::file_response(path, "application/octet-stream");
    if (f) reply.send(std::move(*f));
  });
  auto got = osvi::test::http_request("GET", st.url("/big"), "");
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.body.size(), content.size());
  EXPECT_TRUE(got.body == content);
  EXPECT_NE(got.headers.find("Content-Type: application/octet-stream"), std::string::npos) << got.headers;
}

TEST(HttpServer, ReplyMayBeSentLaterFromTheLoop) {
  std::optional<HttpReply> parked;
  int ticks = 0;
  ServerThread* self = nullptr;
  ServerThread st([&](HttpRequest&, HttpReply reply) { parked.emplace(std::move(reply)); });
  self = &st;
  (void)self;
  st.tick = [&] {
    // A few loop turns later, answer the parked request.
    if (parked && ++ticks == 3) {
      HttpResponse r;
      r.body = "late";
      parked->send(std::move(r));
      parked.reset();
    }
  };
  auto r = osvi::test::http_request("GET", st.url("/slow"), "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "late");
  EXPECT_GE(ticks, 3);
}

TEST(HttpServer, DroppedReplyAnswers500) {
  ServerThread st([&](HttpRequest&, HttpReply) {});
  EXPECT_EQ(osvi::test::http_request("GET", st.url("/"), "").status, 500);
}

// Strict UTF-8 (RFC 3629): overlong forms, surrogates, code points above U+10FFFF and truncated sequences
// are all invalid; the offset points at the first bad byte.
TEST(Text, Utf8ValidationIsStrict) {
  using osvi::net::utf8_invalid_at;
  EXPECT_FALSE(utf8_invalid_at("plain ascii"));
  EXPECT_FALSE(utf8_invalid_at("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf"));  // é € 😀 U+10FFFF
  EXPECT_EQ(utf8_invalid_at("ab\xff"), std::optional<size_t>(2));
  EXPECT_EQ(utf8_invalid_at("\xc0\xaf"), std::optional<size_t>(0));          // overlong '/'
  EXPECT_EQ(utf8_invalid_at("\xe0\x80\xaf"), std::optional<size_t>(0));      // overlong, 3 bytes
  EXPECT_EQ(utf8_invalid_at("\xf0\x80\x80\xaf"), std::optional<size_t>(0));  // overlong, 4 bytes
  EXPECT_EQ(utf8_invalid_at("x\xed\xa0\x80"), std::optional<size_t>(1));     // U+D800 encoded
  EXPECT_EQ(utf8_invalid_at("\xf4\x90\x80\x80"), std::optional<size_t>(0));  // U+110000
  EXPECT_EQ(utf8_invalid_at("\xe2\x82"), std::optional<size_t>(0));          // cut short
  EXPECT_EQ(utf8_invalid_at("\x80"), std::optional<size_t>(0));              // lone continuation
  EXPECT_TRUE(osvi::net::clean_text("ok \xc3\xa9"));
  EXPECT_FALSE(osvi::net::clean_text(std::string_view("a\0b", 3)));
}

TEST(Text, QuotedEscapesAndCaps) {
  using osvi::net::quoted;
  EXPECT_EQ(quoted("plain"), "\"plain\"");
  EXPECT_EQ(quoted("a\"b\\c\nd\te\x01\x7f"), R"("a\"b\\c\nd\te\u0001\u007f")");
  EXPECT_EQ(quoted("\xff\xc3\xa9\xc3"), "\"\\xff\xc3\xa9\\xc3\"");
  EXPECT_EQ(quoted(std::string_view("a\0b", 3)), R"("a\u0000b")");
  EXPECT_EQ(quoted(std::string(100, 'x'), 64), "\"" + std::string(64, 'x') + "\"\xE2\x80\xA6");
  EXPECT_EQ(quoted(std::string(64, 'x'), 64), "\"" + std::string(64, 'x') + "\"");
  // Whatever goes in, what comes out is valid UTF-8 without control characters.
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  const std::string q = quoted(all, 1000);
  EXPECT_TRUE(osvi::net::utf8_valid(q));
  EXPECT_TRUE(std::none_of(q.begin(), q.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }));
}

TEST(Text, UrlUnescapeNeverCutsAtNul) {
  auto un = [](std::string s) {
    s.push_back('\0');
    const size_t n = osvi::net::url_unescape(s.data());
    return s.substr(0, n);
  };
  EXPECT_EQ(un("/a%20b%2Fc"), "/a b/c");
  EXPECT_EQ(un("%zz%4"), "%zz%4");  // not an escape: kept as sent
  EXPECT_EQ(un("%e2%82%AC"), "\xe2\x82\xac");
  EXPECT_EQ(un("/v1/call/x%00/transcript"), "/v1/call/x\xc0/transcript");
  EXPECT_FALSE(osvi::net::clean_text(un("a%00")));
}

TEST(Text, JsonRequestStringsAreCheckedWithTheirPath) {
  auto refusal = [](std::string_view text) {
    osvi::net::JsonRefusal why;
    auto root = osvi::net::json_parse_request(text, &why);
    if (root) return std::string("ok");
    return why.syntax ? "syntax: " + why.message : why.field + ": " + why.message;
  };
  EXPECT_EQ(refusal(R"({"a":"x","b":[1,"y",{"c":"\u00e9\ud83d\ude00"}]})"), "ok");
  EXPECT_EQ(refusal(R"({"a":{"b":[0,"\u0000"]}})"), "a.b[1]: contains NUL (\\u0000)");
  EXPECT_EQ(refusal("{\"a\":{\"b c\":\"\xff\"}}"), "a[\"b c\"]: invalid UTF-8 (byte 0xff)");
  EXPECT_EQ(refusal("{\"a\":{\"k\xc0\x80\":1}}"),
            "a: member name beginning \"k\": invalid UTF-8 (byte 0xc0)");
  EXPECT_EQ(refusal(R"({"a":"\ud800"})"), "a: unpaired surrogate escape \\ud800");
  EXPECT_EQ(refusal(R"({"a":"\ud800\u0041"})"), "a: unpaired surrogate escape \\ud800");
  EXPECT_EQ(refusal(R"(["\udfff"])"), "[0]: unpaired surrogate escape \\udfff");
  EXPECT_EQ(refusal("{\"a\":\"x\ny\"}"), "a: control character 0x0a (JSON strings must escape it)");
  EXPECT_EQ(refusal("\"\xff\""), "request body: invalid UTF-8 (byte 0xff)");
  EXPECT_EQ(refusal(R"({"a":1,})"), "syntax: line 1, column 8: invalid JSON");
  EXPECT_EQ(refusal(""), "syntax: empty document");
}

// The server decodes %00 so that it cannot cut the path (before: "/x%00/y" reached handlers as "/x").
TEST(HttpServer, PercentZeroDoesNotCutThePathOrQuery) {
  HttpRequest seen;
  ServerThread st([&](HttpRequest& req, HttpReply reply) {
    seen = req;
    HttpResponse r;
    reply.send(std::move(r));
  });
  auto r = osvi::test::http_request("GET", st.url("/x%00/y?q=a%00b&ok=%C3%A9"), "Tok");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(seen.path, "/x\xc0/y");
  EXPECT_EQ(seen.query_param("q"), std::optional<std::string_view>("a\xc0"
                                                                   "b"));
  EXPECT_EQ(seen.query_param("ok"), std::optional<std::string_view>("\xc3\xa9"));
}

TEST(HttpServer, ListenErrorNamesTheAddress) {
  osvi::net::HttpServerOptions o;
  o.port = 0;
  auto first = osvi::net::HttpServer::start(o, [](HttpRequest&, HttpReply) {});
  ASSERT_TRUE(first);
  o.port = (*first)->port();
  auto second = osvi::net::HttpServer::start(o, [](HttpRequest&, HttpReply) {});
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find("127.0.0.1:" + std::to_string(o.port)), std::string::npos);
  EXPECT_NE(second.error().message.find("in use"), std::string::npos) << second.error().message;
}

}  // namespace
