// Streamed responses of the HTTP server (HttpReply::stream) over loopback, byte for byte from a raw socket.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "chunked_client.hpp"
#include "osvi/net/http_server.hpp"
#include "served_http.hpp"

namespace {

using osvi::net::HttpReply;
using osvi::net::HttpRequest;
using osvi::net::HttpResponse;
using osvi::net::HttpServerOptions;
using osvi::net::HttpStream;
using End = HttpStream::End;
using Clock = std::chrono::steady_clock;
using Client = osvi::test::ChunkedClient;

// The streams the handler opened and how each ended; touched only on the server's thread (locked()).
struct Streams {
  std::vector<HttpStream> open;
  std::vector<std::optional<End>> ends;
};

class HttpStreamTest : public ::testing::Test {
 protected:
  // The server's thread stops first: the handles below are then the test thread's alone.
  void TearDown() override { served_.stop(); }
  void serve(HttpServerOptions o = {}, size_t cap = 64 * 1024) {
    o.port = 0;
    auto started = served_.start(o, [this, cap](HttpRequest& req, HttpReply reply) {
      if (req.path == "/plain") {
        HttpResponse r;
        r.body = "plain";
        reply.send(std::move(r));
        return;
      }
      if (req.path == "/later") {  // answered with a stream by the test, later
        parked_.push_back(std::move(reply));
        return;
      }
      open(reply, cap);
    });
    ASSERT_TRUE(started.ok()) << started.error().message;
  }
  void open(HttpReply& reply, size_t cap) {
    const size_t i = streams_.open.size();
    streams_.ends.emplace_back();
    streams_.open.push_back(reply.stream(200, "text/event-stream", {{"Cache-Control", "no-cache"}}, cap));
    streams_.open.back().on_closed([this, i](End e) { streams_.ends[i] = e; });
  }
  // Runs fn on the server's thread.
  void on_loop(const std::function<void()>& fn) { served_.locked(fn); }
  size_t opened() {
    size_t n = 0;
    on_loop([&] { n = streams_.open.size(); });
    return n;
  }
  bool wait_for(const std::function<bool()>& cond, int ms = 3000) {
    const auto end = Clock::now() + std::chrono::milliseconds(ms);
    while (Clock::now() < end) {
      bool ok = false;
      on_loop([&] { ok = cond(); });
      if (ok) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  }
  std::optional<End> end_of(size_t i) {
    std::optional<End> e;
    on_loop([&] { e = streams_.ends.at(i); });
    return e;
  }

  osvi::test::ServedHttp served_;
  Streams streams_;
  std::vector<HttpReply> parked_;
};

TEST_F(HttpStreamTest, ChunksArriveInOrderAndCloseEndsTheBodyOnAKeptAliveConnection) {
  serve();
  Client c(served_.port());
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c.get("/events"));
  ASSERT_TRUE(c.read_head());
  EXPECT_EQ(c.head().rfind("HTTP/1.1 200", 0), 0u) << c.head();
  EXPECT_NE(c.head().find("Content-Type: text/event-stream"), std::string::npos) << c.head();
  EXPECT_NE(c.head().find("Cache-Control: no-cache"), std::string::npos) << c.head();
  EXPECT_NE(c.head().find("Transfer-Encoding: chunked"), std::string::npos) << c.head();
  ASSERT_TRUE(wait_for([&] { return streams_.open.size() == 1; }));

  // Written while parked (nothing buffered), each write reaches the client without any other traffic.
  std::string expected;
  for (int i = 0; i < 20; ++i) {
    const std::string piece = "event " + std::to_string(i) + "\n";
    bool ok = false;
    on_loop([&] { ok = streams_.open[0].write(piece); });
    ASSERT_TRUE(ok) << i;
    expected += piece;
    ASSERT_TRUE(c.read_body(expected.size())) << i << ": " << c.body();
  }
  // A burst larger than one block arrives whole and in order.
  std::string burst;
  for (int i = 0; i < 3000; ++i) burst += std::to_string(i) + ",";
  on_loop([&] { EXPECT_TRUE(streams_.open[0].write(burst)); });
  expected += burst;
  ASSERT_TRUE(c.read_body(expected.size()));
  EXPECT_EQ(c.body(), expected);

  on_loop([&] {
    EXPECT_TRUE(streams_.open[0].connected());
    EXPECT_EQ(served_.server()->stream_count(), 1u);
    streams_.open[0].close();
    EXPECT_FALSE(streams_.open[0].connected());
    EXPECT_FALSE(streams_.open[0].write("after close"));
  });
  ASSERT_TRUE(c.read_end());
  EXPECT_EQ(c.body(), expected);
  ASSERT_TRUE(wait_for([&] { return streams_.ends[0].has_value(); }));
  EXPECT_EQ(end_of(0), End::finished);
  on_loop([&] { EXPECT_EQ(served_.server()->stream_count(), 0u); });

  // The body ended properly: the same connection serves the next request.
  c.next_response();
  ASSERT_TRUE(c.get("/plain"));
  ASSERT_TRUE(c.read_until(3000, [&] { return c.head().find("Content-Length: 5") != std::string::npos; }))
      << c.head();
  EXPECT_EQ(c.head().rfind("HTTP/1.1 200", 0), 0u) << c.head();
}

// A parked stream (nothing to send) watches its socket: the client hanging up is noticed without any write.
TEST_F(HttpStreamTest, ClientHangingUpIsNoticedWhileNothingIsWritten) {
  serve();
  Client c(served_.port());
  ASSERT_TRUE(c.get("/events"));
  ASSERT_TRUE(c.read_head());
  ASSERT_TRUE(wait_for([&] { return streams_.open.size() == 1; }));
  on_loop([&] { EXPECT_TRUE(streams_.open[0].write("hello\n")); });
  ASSERT_TRUE(c.read_body(6));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // parked again
  c.hang_up();
  ASSERT_TRUE(wait_for([&] { return streams_.ends[0].has_value(); }, 2000));
  EXPECT_EQ(end_of(0), End::client_gone);
  on_loop([&] {
    EXPECT_FALSE(streams_.open[0].connected());
    EXPECT_FALSE(streams_.open[0].write("anyone?"));
    EXPECT_EQ(served_.server()->stream_count(), 0u);
    EXPECT_EQ(served_.server()->connection_count(), 0u);
  });
}

TEST_F(HttpStreamTest, ManyStreamsAtOnceEachGetEveryChunkInOrder) {
  HttpServerOptions o;
  o.max_connections = 128;
  o.max_connections_per_client = 128;
  serve(o);
  constexpr int kClients = 60;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<Client>(served_.port()));
    ASSERT_TRUE(clients.back()->ok());
    ASSERT_TRUE(clients.back()->get("/events"));
  }
  ASSERT_TRUE(wait_for([&] { return streams_.open.size() == kClients; }));
  std::string expected;
  for (int round = 0; round < 50; ++round) {
    const std::string piece = "data: " + std::to_string(round) + "\n\n";
    expected += piece;
    on_loop([&] {
      for (HttpStream& s : streams_.open) EXPECT_TRUE(s.write(piece));
    });
  }
  for (auto& c : clients) {
    ASSERT_TRUE(c->read_body(expected.size()));
    EXPECT_EQ(c->body(), expected);
  }
  on_loop([&] {
    EXPECT_EQ(served_.server()->stream_count(), static_cast<size_t>(kClients));
    for (HttpStream& s : streams_.open) s.close();
  });
  for (auto& c : clients) EXPECT_TRUE(c->read_end());
  ASSERT_TRUE(wait_for([&] { return served_.server()->stream_count() == 0; }));
  for (int i = 0; i < kClients; ++i) EXPECT_EQ(end_of(static_cast<size_t>(i)), End::finished) << i;
}

// A client that stops reading: the socket buffers fill, then the stream's own buffer up to its cap, and
// write() refuses the rest instead of growing. What was accepted still arrives, whole and in order.
TEST_F(HttpStreamTest, StalledClientMakesWriteFailAtTheCapAndNothingAcceptedIsLost) {
  constexpr size_t kCap = 32 * 1024;
  serve({}, kCap);
  Client c(served_.port(), 4096);
  ASSERT_TRUE(c.get("/events"));
  ASSERT_TRUE(c.read_head());
  ASSERT_TRUE(wait_for([&] { return streams_.open.size() == 1; }));

  const std::string piece(1000, 'x');
  std::string accepted;
  int refused = 0;
  for (int i = 0; i < 4000 && refused < 20; ++i) {
    const std::string numbered = std::to_string(i) + ":" + piece + "\n";
    bool ok = false;
    size_t buffered = 0;
    on_loop([&] {
      ok = streams_.open[0].write(numbered);
      buffered = streams_.open[0].buffered();
    });
    ASSERT_LE(buffered, kCap);
    if (ok) {
      accepted += numbered;
      refused = 0;
    } else {
      ++refused;
      // Let the server push what the socket takes; a stalled client takes nothing more.
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  EXPECT_EQ(refused, 20) << "the buffer never filled";
  // Bounded: what the server accepted is its cap plus what the kernel holds (the stream's socket has a
  // small send buffer, the client's a small receive buffer).
  EXPECT_LT(accepted.size(), kCap + 512u * 1024);
  on_loop([&] {
    EXPECT_TRUE(streams_.open[0].connected());
    EXPECT_GT(streams_.open[0].buffered() + 1002, kCap);
  });
  // Once the client reads, everything accepted arrives and writing works again.
  ASSERT_TRUE(c.read_body(accepted.size(), 5000));
  EXPECT_EQ(c.body(), accepted);
  on_loop([&] { EXPECT_TRUE(streams_.open[0].write("more\n")); });
  ASSERT_TRUE(c.read_body(accepted.size() + 5));
}

// A parked stream does not time out however long it waits; one with bytes waiting for a client that takes
// nothing is ended after connection_timeout_s.
TEST_F(HttpStreamTest, ParkedStreamOutlivesTheTimeoutStalledOneDoesNot) {
  HttpServerOptions o;
  o.connection_timeout_s = 1;
  serve(o, 1 << 20);
  Client idle(served_.port());
  ASSERT_TRUE(idle.get("/events"));
  ASSERT_TRUE(idle.read_head());
  Client stalled(served_.port(), 4096);
  ASSERT_TRUE(stalled.get("/events"));
  ASSERT_TRUE(stalled.read_head());
  ASSERT_TRUE(wait_for([&] { return streams_.open.size() == 2; }));
  on_loop([&] { EXPECT_TRUE(streams_.open[1].write(std::string(900 * 1024, 'y'))); });

  ASSERT_TRUE(wait_for([&] { return streams_.ends[1].has_value(); }, 5000)) << "stalled stream never ended";
  EXPECT_EQ(end_of(1), End::timed_out);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  on_loop([&] {
    EXPECT_FALSE(streams_.ends[0].has_value());
    EXPECT_TRUE(streams_.open[0].write("still here\n"));
  });
  ASSERT_TRUE(idle.read_body(11));
  EXPECT_EQ(idle.body(), "still here\n");
}

TEST_F(HttpStreamTest, StreamOpenedLaterFromAParkedReplyAndDroppedHandleEndsTheBody) {
  serve();
  Client c(served_.port());
  ASSERT_TRUE(c.get("/later"));
  ASSERT_TRUE(wait_for([&] { return parked_.size() == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  on_loop([&] {
    open(parked_[0], 1024);
    // The reply is answered by the stream: a send afterwards is a no-op, as is a second stream.
    parked_[0].send({});
    EXPECT_FALSE(parked_[0].stream(200, "text/plain", {}, 10).connected());
    EXPECT_TRUE(streams_.open[0].write("late\n"));
    EXPECT_FALSE(streams_.open[0].write(std::string(1020, 'z')));  // over the cap of 1024: nothing written
    EXPECT_EQ(streams_.open[0].buffered(), 5u);
  });
  ASSERT_TRUE(c.read_head());
  EXPECT_EQ(c.head().rfind("HTTP/1.1 200", 0), 0u) << c.head();
  ASSERT_TRUE(c.read_body(5));
  on_loop([&] {
    EXPECT_TRUE(streams_.open[0].write("bye\n"));
    HttpStream dropped = std::move(streams_.open[0]);
  });
  ASSERT_TRUE(c.read_end());
  EXPECT_EQ(c.body(), "late\nbye\n");
  // The handle was gone: its callback is not called.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(end_of(0).has_value());
}

TEST_F(HttpStreamTest, QuiesceEndsOpenStreams) {
  serve();
  Client a(served_.port()), b(served_.port());
  ASSERT_TRUE(a.get("/events"));
  ASSERT_TRUE(b.get("/events"));
  ASSERT_TRUE(wait_for([&] { return streams_.open.size() == 2; }));
  on_loop([&] {
    EXPECT_TRUE(streams_.open[0].write("last words\n"));
    served_.server()->quiesce();
    EXPECT_FALSE(streams_.open[1].connected());
  });
  ASSERT_TRUE(a.read_end());
  ASSERT_TRUE(b.read_end());
  EXPECT_EQ(a.body(), "last words\n");
  ASSERT_TRUE(wait_for([&] { return streams_.ends[0] && streams_.ends[1]; }));
  EXPECT_EQ(end_of(0), End::finished);
}

// Destroying the server with streams and replies suspended (what a reload does to the old server) ends them
// cleanly: the callbacks say so, and the handles the application still holds do nothing.
TEST_F(HttpStreamTest, ServerDestroyedWithParkedStreamsAndRepliesEndsThem) {
  serve();
  Client a(served_.port()), b(served_.port()), waiting(served_.port());
  ASSERT_TRUE(a.get("/events"));
  ASSERT_TRUE(b.get("/events"));
  ASSERT_TRUE(waiting.get("/later"));
  ASSERT_TRUE(wait_for([&] { return streams_.open.size() == 2 && parked_.size() == 1; }));
  on_loop([&] { EXPECT_TRUE(streams_.open[1].write(std::string(60 * 1024, 'q'))); });
  served_.stop();  // the loop thread is gone: the test thread now owns what it left
  EXPECT_EQ(streams_.ends[0], End::server_stopped);
  EXPECT_EQ(streams_.ends[1], End::server_stopped);
  EXPECT_FALSE(streams_.open[0].write("x"));
  EXPECT_FALSE(parked_[0].connected());
  parked_[0].send({});
  EXPECT_TRUE(a.closed_within(2000));
  EXPECT_TRUE(waiting.closed_within(2000));
}

}  // namespace
