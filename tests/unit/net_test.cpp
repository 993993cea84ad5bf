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
