// WebSocket (RFC 6455): the handshake and frame codec against the RFC's own examples, the parser's refusals,
// and net::WebSocket over a real HttpServer upgrade on loopback (one thread polls both ends).
#include "osvi/net/websocket.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "alloc_counter.hpp"
#include "osvi/net/http_server.hpp"
#include "osvi/net/websocket_conn.hpp"

namespace {

namespace ws = osvi::net::ws;
using osvi::net::HttpReply;
using osvi::net::HttpRequest;
using osvi::net::HttpResponse;
using osvi::net::HttpServer;
using osvi::net::HttpServerOptions;
using osvi::net::UpgradedSocket;
using osvi::net::WebSocket;

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

const uint8_t kMask[4] = {0x37, 0xfa, 0x21, 0x3d};

TEST(WebSocketCodec, AcceptKeyOfSection1_3) {
  auto accept = ws::accept_key("dGhlIHNhbXBsZSBub25jZQ==");
  ASSERT_TRUE(accept) << accept.error().message;
  EXPECT_EQ(*accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketCodec, HandshakeChecks) {
  HttpRequest r;
  r.method = "GET";
  r.headers = {{"Host", "box"},
               {"upgrade", "WebSocket"},
               {"Connection", "keep-alive, Upgrade"},
               {"Sec-WebSocket-Version", "13"},
               {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}};
  auto ok = ws::check_handshake(r);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(*ok, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

  auto with = [&](std::string name, std::string value) {
    HttpRequest c = r;
    for (auto& [k, v] : c.headers)
      if (k == name) v = value;
    return ws::check_handshake(c);
  };
  EXPECT_EQ(with("Sec-WebSocket-Version", "8").error().code, -EPROTONOSUPPORT);
  EXPECT_EQ(with("upgrade", "h2c").error().code, -EPROTO);
  EXPECT_EQ(with("Connection", "keep-alive").error().code, -EPROTO);
  auto short_key = with("Sec-WebSocket-Key", "c2hvcnQ=");
  ASSERT_FALSE(short_key.ok());
  EXPECT_NE(short_key.error().message.find("Sec-WebSocket-Key"), std::string::npos);
  HttpRequest post = r;
  post.method = "POST";
  EXPECT_FALSE(ws::check_handshake(post).ok());
}

// Section 5.7's examples, server side (unmasked) and client side (masked).
TEST(WebSocketCodec, Section5_7Examples) {
  EXPECT_EQ(ws::frame(ws::Opcode::text, "Hello"), bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  EXPECT_EQ(ws::frame(ws::Opcode::ping, "Hello"), bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  const std::string f256 = ws::frame(ws::Opcode::binary, std::string(256, 'x'));
  EXPECT_EQ(f256.substr(0, 4), bytes({0x82, 0x7e, 0x01, 0x00}));
  EXPECT_EQ(f256.size(), 260u);
  const std::string f64k = ws::frame(ws::Opcode::binary, std::string(65536, 'x'));
  EXPECT_EQ(f64k.substr(0, 10), bytes({0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}));

  const std::string masked_hello = bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
  EXPECT_EQ(ws::client_frame(ws::Opcode::text, "Hello", kMask), masked_hello);
  ws::Parser p(1024);
  ws::Messages out;
  EXPECT_FALSE(p.feed(masked_hello, out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], (ws::Message{ws::Opcode::text, "Hello"}));

  // The masked pong of the section, then a fragmented "Hel" + "lo", fed one byte at a time.
  std::string stream = bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
  stream += ws::client_frame(ws::Opcode::text, "Hel", kMask, false);
  stream += ws::client_frame(ws::Opcode::ping, "mid", kMask);  // control frames may come between fragments
  stream += ws::client_frame(ws::Opcode::continuation, "lo", kMask, true);
  out.clear();
  for (char c : stream) ASSERT_FALSE(p.feed(std::string_view(&c, 1), out));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0], (ws::Message{ws::Opcode::pong, "Hello"}));
  EXPECT_EQ(out[1], (ws::Message{ws::Opcode::ping, "mid"}));
  EXPECT_EQ(out[2], (ws::Message{ws::Opcode::text, "Hello"}));
}

TEST(WebSocketCodec, CloseFrames) {
  EXPECT_EQ(ws::close_frame(1000, ""), bytes({0x88, 0x02, 0x03, 0xe8}));
  const std::string long_reason(300, 'r');
  EXPECT_EQ(ws::close_frame(1009, long_reason).size(), 2u + 125u);
  // A cut never splits a UTF-8 character.
  std::string accents;
  for (int i = 0; i < 80; ++i) accents += "é";
  const std::string f = ws::close_frame(1000, accents);
  EXPECT_EQ((f.size() - 4) % 2, 0u);
  EXPECT_EQ(ws::close_code_of(bytes({0x03, 0xf1})), 1009);
  EXPECT_EQ(ws::close_code_of(""), 1005);
}

std::optional<ws::Violation> parse(const std::string& in, ws::Messages* out = nullptr, size_t max = 640) {
  ws::Parser p(max);
  ws::Messages got;
  auto v = p.feed(in, got);
  if (out) *out = got;
  return v;
}

TEST(WebSocketCodec, Refusals) {
  auto code = [](const std::optional<ws::Violation>& v) { return v ? v->code : 0; };
  // Unmasked client frame (the section's unmasked "Hello").
  EXPECT_EQ(code(parse(bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}))), 1002);
  // Reserved bits, unknown opcode.
  std::string rsv = ws::client_frame(ws::Opcode::binary, "x", kMask);
  rsv[0] = static_cast<char>(rsv[0] | 0x40);
  EXPECT_EQ(code(parse(rsv)), 1002);
  std::string op3 = ws::client_frame(ws::Opcode::binary, "x", kMask);
  op3[0] = static_cast<char>(0x83);
  EXPECT_EQ(code(parse(op3)), 1002);
  // Fragmented or long control frames.
  EXPECT_EQ(code(parse(ws::client_frame(ws::Opcode::ping, "x", kMask, false))), 1002);
  EXPECT_EQ(code(parse(ws::client_frame(ws::Opcode::ping, std::string(126, 'x'), kMask))), 1002);
  // Continuation without a message; a new message inside a fragmented one.
  EXPECT_EQ(code(parse(ws::client_frame(ws::Opcode::continuation, "x", kMask))), 1002);
  EXPECT_EQ(code(parse(ws::client_frame(ws::Opcode::binary, "a", kMask, false) +
                       ws::client_frame(ws::Opcode::binary, "b", kMask))),
            1002);
  // Close payloads: one byte, a reserved code, a bad reason.
  EXPECT_EQ(code(parse(ws::client_frame(ws::Opcode::close, "x", kMask))), 1002);
  EXPECT_EQ(code(parse(ws::client_frame(ws::Opcode::close, bytes({0x03, 0xee}), kMask))), 1002);  // 1006
  EXPECT_EQ(code(parse(ws::client_frame(ws::Opcode::close, bytes({0x03, 0xe8, 0xff}), kMask))), 1007);
  // Text that is not UTF-8.
  EXPECT_EQ(code(parse(ws::client_frame(ws::Opcode::text, bytes({0xc3, 0x28}), kMask))), 1007);
  // Too big: refused from the header (the 64-bit length of a 1 GiB frame, no payload sent), and a message
  // that grows past the bound over fragments.
  std::string huge = bytes({0x82, 0xff, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4});
  EXPECT_EQ(code(parse(huge)), 1009);
  EXPECT_EQ(code(parse(ws::client_frame(ws::Opcode::binary, std::string(400, 'a'), kMask, false) +
                       ws::client_frame(ws::Opcode::continuation, std::string(400, 'a'), kMask))),
            1009);
  // At the bound exactly: accepted.
  ws::Messages out;
  EXPECT_FALSE(parse(ws::client_frame(ws::Opcode::binary, std::string(640, 'a'), kMask), &out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].payload.size(), 640u);
  // Messages before a violation are still returned; the parser then stays failed.
  ws::Parser p(640);
  ws::Messages got;
  auto v = p.feed(ws::client_frame(ws::Opcode::binary, "ok", kMask) + bytes({0x82, 0x01, 0x00}), got);
  ASSERT_TRUE(v);
  EXPECT_EQ(got.size(), 1u);
  got.clear();
  EXPECT_TRUE(p.feed(ws::client_frame(ws::Opcode::binary, "more", kMask), got));
  EXPECT_TRUE(got.empty());
}

// ---- net::WebSocket over an HttpServer upgrade, on loopback.

class WebSocketConnTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpServerOptions o;
    o.port = 0;
    o.idle_timeout_s = 1;        // an upgraded connection must not be taken for an idle keep-alive one
    o.connection_timeout_s = 1;  // nor be ended by the server's inactivity timeout
    auto s = HttpServer::start(o, [this](HttpRequest& req, HttpReply reply) {
      auto accept = ws::check_handshake(req);
      if (!accept) {
        HttpResponse r;
        r.status = 400;
        reply.send(std::move(r));
        return;
      }
      HttpResponse head;
      head.status = 101;
      head.headers = {{"Upgrade", "websocket"}, {"Sec-WebSocket-Accept", *accept}};
      reply.upgrade(std::move(head), [this](UpgradedSocket sock) {
        conn_ = std::make_unique<WebSocket>(std::move(sock), WebSocket::Options{640, 4096});
      });
    });
    ASSERT_TRUE(s.ok()) << s.error().message;
    server_ = std::move(*s);
  }
  void TearDown() override {
    if (client_ >= 0) close(client_);
    conn_.reset();
    server_.reset();
  }
  // One turn: the server, then the upgraded socket, as the daemon's loop would.
  void pump(int wait_ms = 5) {
    pollfd fds[2] = {{server_->poll_fd(), POLLIN, 0}, {-1, 0, 0}};
    if (conn_ && conn_->fd() >= 0) {
      fds[1].fd = conn_->fd();
      fds[1].events = static_cast<short>(POLLIN | (conn_->buffered() ? POLLOUT : 0));
    }
    poll(fds, 2, wait_ms);
    server_->run();
    if (conn_ && conn_->fd() >= 0) {
      uint32_t rev = 0;
      if (fds[1].revents & POLLIN) rev |= EPOLLIN;
      if (fds[1].revents & POLLOUT) rev |= EPOLLOUT;
      conn_->handle_io(rev, got_);
    }
  }
  bool pump_until(const std::function<bool()>& cond, int ms = 3000) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < end) {
      pump();
      if (cond()) return true;
    }
    return false;
  }
  void connect_client() {
    client_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(server_->port());
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(client_, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  }
  void client_send(const std::string& b) {
    size_t off = 0;
    while (off < b.size()) {
      ssize_t n = send(client_, b.data() + off, b.size() - off, MSG_NOSIGNAL);
      if (n > 0)
        off += static_cast<size_t>(n);
      else
        pump(1);
    }
  }
  // What the client has received so far.
  std::string client_read() {
    char buf[65536];
    for (;;) {
      ssize_t n = recv(client_, buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) break;
      inbox_.append(buf, static_cast<size_t>(n));
    }
    return inbox_;
  }
  void handshake(const std::string& extra = {}) {
    connect_client();
    client_send(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" +
        extra);
    ASSERT_TRUE(pump_until([&] { return client_read().find("\r\n\r\n") != std::string::npos; }));
    ASSERT_TRUE(pump_until([&] { return conn_ != nullptr; }));
    const size_t end = inbox_.find("\r\n\r\n");
    head_ = inbox_.substr(0, end + 4);
    inbox_.erase(0, end + 4);
  }

  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<WebSocket> conn_;
  ws::Messages got_;
  int client_ = -1;
  std::string inbox_, head_;
};

TEST_F(WebSocketConnTest, UpgradesEchoesAndCloses) {
  handshake();
  EXPECT_NE(head_.find("HTTP/1.1 101"), std::string::npos) << head_;
  EXPECT_NE(head_.find("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), std::string::npos);
  EXPECT_EQ(server_->upgraded_count(), 1u);

  client_send(ws::client_frame(ws::Opcode::binary, std::string(640, 'a'), kMask));
  client_send(ws::client_frame(ws::Opcode::ping, "p", kMask));
  ASSERT_TRUE(pump_until([&] { return !got_.empty(); }));
  EXPECT_EQ(got_[0].payload.size(), 640u);
  ASSERT_TRUE(pump_until([&] { return client_read().size() >= 3; }));
  EXPECT_EQ(inbox_.substr(0, 3), bytes({0x8a, 0x01, 'p'}));
  inbox_.clear();
  ASSERT_TRUE(conn_->send(ws::Opcode::binary, "agent"));
  ASSERT_TRUE(pump_until([&] { return client_read().size() >= 7; }));
  EXPECT_EQ(inbox_, ws::frame(ws::Opcode::binary, "agent"));
  inbox_.clear();

  // Past the HTTP deadlines (1 s here) the socket is still ours, quiet or not.
  for (int i = 0; i < 250; ++i) pump(10);
  EXPECT_EQ(conn_->state(), WebSocket::State::open);
  ASSERT_TRUE(conn_->send(ws::Opcode::binary, "still"));
  ASSERT_TRUE(pump_until([&] { return client_read().size() >= 7; }));
  inbox_.clear();

  // The client's close is echoed and the socket given back.
  client_send(ws::client_frame(ws::Opcode::close, bytes({0x03, 0xe8}), kMask));
  ASSERT_TRUE(pump_until([&] { return conn_->state() == WebSocket::State::closed; }));
  EXPECT_TRUE(conn_->closed_by_peer());
  EXPECT_EQ(conn_->close_code(), 1000);
  ASSERT_TRUE(pump_until([&] { return client_read().size() >= 4; }));
  EXPECT_EQ(inbox_.substr(0, 4), ws::close_frame(1000, ""));
  EXPECT_TRUE(pump_until([&] { return server_->upgraded_count() == 0 && server_->connection_count() == 0; }));
}

// A web call's steady audio both ways (a 640-byte frame in and one out every 20 ms): once the message slots
// and the send buffer are warm, reading and sending frames allocates nothing (issue 18's rule).
TEST_F(WebSocketConnTest, SteadyAudioFramesAllocateNothing) {
  handshake();
  inbox_.clear();
  std::string in_frames[2];
  for (int k = 0; k < 2; ++k)
    in_frames[k] = ws::client_frame(ws::Opcode::binary, std::string(640, static_cast<char>('a' + k)), kMask);
  const std::string out_payload(640, 'z');
  inbox_.reserve(1 << 20);
  uint64_t news = 0, mallocs = 0;
  for (int i = 0; i < 60; ++i) {
    client_send(in_frames[i % 2]);
    pollfd pfd{conn_->fd(), POLLIN, 0};
    ASSERT_EQ(poll(&pfd, 1, 2000), 1);
    got_.clear();
    {
      const osvi::test::AllocSnapshot snap;
      conn_->handle_io(EPOLLIN, got_);
      ASSERT_TRUE(conn_->send(ws::Opcode::binary, out_payload));
      if (i >= 10) {  // the first frames size the slots and the buffer
        news += snap.new_delta();
        mallocs += snap.malloc_delta();
      }
    }
    ASSERT_EQ(got_.size(), 1u);
    EXPECT_EQ(got_[0].payload, std::string(640, static_cast<char>('a' + i % 2)));
    client_read();
  }
  EXPECT_EQ(news, 0u);
  EXPECT_EQ(mallocs, 0u);
  ASSERT_TRUE(pump_until([&] { return client_read().size() >= 60 * 644; }));
  EXPECT_EQ(inbox_.substr(0, 4), bytes({0x82, 0x7e, 0x02, 0x80}));
  EXPECT_EQ(conn_->state(), WebSocket::State::open);
}

TEST(WebSocketCodec, SteadyMessagesReuseTheirBuffers) {
  std::string stream;
  for (int i = 0; i < 50; ++i)
    stream += ws::client_frame(ws::Opcode::binary, std::string(640, static_cast<char>('0' + i % 10)), kMask);
  const size_t one = stream.size() / 50;
  ws::Parser p(640);
  ws::Messages out;
  uint64_t news = 0, mallocs = 0;
  for (int i = 0; i < 50; ++i) {
    out.clear();
    const osvi::test::AllocSnapshot snap;
    ASSERT_FALSE(p.feed(std::string_view(stream).substr(i * one, one), out));
    if (i >= 2) {
      news += snap.new_delta();
      mallocs += snap.malloc_delta();
    }
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].payload, std::string(640, static_cast<char>('0' + i % 10)));
  }
  EXPECT_EQ(news, 0u);
  EXPECT_EQ(mallocs, 0u);
}

TEST_F(WebSocketConnTest, EarlyBytesOversizeAndHangup) {
  // A frame sent right behind the handshake is parsed first.
  handshake(ws::client_frame(ws::Opcode::binary, "early", kMask));
  ASSERT_TRUE(pump_until([&] { return !got_.empty(); }));
  EXPECT_EQ(got_[0].payload, "early");
  // An oversized frame: close 1009 from its header.
  client_send(bytes({0x82, 0xfe, 0x10, 0x00, 1, 2, 3, 4}));
  ASSERT_TRUE(pump_until([&] { return conn_->state() == WebSocket::State::closed; }));
  EXPECT_EQ(conn_->close_code(), 1009);
  EXPECT_FALSE(conn_->closed_by_peer());
  ASSERT_TRUE(pump_until([&] { return client_read().size() >= 4; }));
  EXPECT_EQ(ws::close_code_of(inbox_.substr(2, 2)), 1009);
}

TEST_F(WebSocketConnTest, PeerThatStopsReadingFillsTheBoundedBuffer) {
  handshake();
  // The client reads nothing: the kernel buffers fill, then ours (4 KiB here), then send() refuses.
  const std::string frame(600, 'x');
  int sent = 0;
  bool refused = false;
  for (int i = 0; i < 100000 && !refused; ++i) {
    if (conn_->send(ws::Opcode::binary, frame))
      ++sent;
    else
      refused = true;
    if (i % 64 == 0) pump(0);
  }
  EXPECT_TRUE(refused);
  EXPECT_LE(conn_->buffered(), 4096u);
  conn_->close(1008, "not reading");
  EXPECT_NE(conn_->state(), WebSocket::State::open);
  conn_->abort();
  EXPECT_EQ(conn_->state(), WebSocket::State::closed);
}

TEST_F(WebSocketConnTest, ClientHangUpWithoutClose) {
  handshake();
  close(client_);
  client_ = -1;
  ASSERT_TRUE(pump_until([&] { return conn_->state() == WebSocket::State::closed; }));
  EXPECT_TRUE(conn_->closed_by_peer());
  EXPECT_EQ(conn_->close_code(), 1006);
}

TEST_F(WebSocketConnTest, ServerDestroyedWithSocketOpen) {
  handshake();
  bool told = false;
  conn_->on_server_gone([&] {
    told = true;
    EXPECT_GE(conn_->fd(), 0);  // told before the socket is taken back
  });
  server_.reset();
  EXPECT_TRUE(told);
  EXPECT_EQ(conn_->fd(), -1);
  ws::Messages out;
  conn_->handle_io(EPOLLIN, out);  // harmless once the socket is gone
  EXPECT_FALSE(conn_->send(ws::Opcode::binary, "x") && conn_->fd() >= 0);
  conn_.reset();
}

}  // namespace
