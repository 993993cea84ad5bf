// net::WebSocket: one server-side WebSocket over an upgraded socket — reads frames through ws::Parser,
// answers pings and closes, sends from a bounded buffer. Like the rest of net/ it knows no event loop: the
// owner watches fd() for events() and calls handle_io().
//
// Threading: the loop thread only, like HttpServer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/net/http_server.hpp"
#include "osvi/net/websocket.hpp"

namespace osvi::net {

class WebSocket {
 public:
  struct Options {
    size_t max_message = 4096;           // a longer message from the peer is refused with close 1009
    size_t max_send_buffer = 64 * 1024;  // send() refuses what would take the unsent bytes past this
  };
  enum class State {
    open,     // messages flow both ways
    closing,  // a close frame is queued or sent: nothing more is sent, the socket goes once it is out
    closed    // the socket was given back
  };

  WebSocket(UpgradedSocket socket, Options options);
  WebSocket(const WebSocket&) = delete;
  WebSocket& operator=(const WebSocket&) = delete;

  // -1 once closed.
  int fd() const { return socket_.fd(); }
  // EPOLLIN, with EPOLLOUT while bytes wait to be sent; 0 once closed.
  uint32_t events() const;
  // Sends what waits and reads what arrived (at most a bounded amount per call). Text and binary messages
  // are appended to `out`; pings are answered, a close frame is answered and ends the connection, a protocol
  // violation is answered with its close code. Call once after construction too (bytes the HTTP server read
  // past the handshake are parsed then).
  void handle_io(uint32_t revents, ws::Messages& out);
  // Queues one whole message. False, with nothing queued, when not open or when the buffer would pass
  // max_send_buffer (the peer is not reading: the owner decides, usually close()).
  bool send(ws::Opcode opcode, std::string_view payload);
  // Queues a close frame (once); the socket is given back when it has been sent, or at once when the peer
  // is not reading (`abort` true, or nothing could be sent).
  void close(uint16_t code, std::string_view reason);
  // Gives the socket back now, sending nothing more.
  void abort();
  // The HTTP server is being destroyed with this socket open (UpgradedSocket::on_server_gone): stop
  // watching fd() in the callback.
  void on_server_gone(std::function<void()> callback) { socket_.on_server_gone(std::move(callback)); }

  State state() const { return state_; }
  // The peer's close code (1005: its close frame had none; 1006: the connection ended without one), or the
  // code we closed with; 0 while open.
  uint16_t close_code() const { return close_code_; }
  bool closed_by_peer() const { return closed_by_peer_; }
  size_t buffered() const { return out_.size() - out_head_; }
  // Bytes received and sent so far (frames included).
  uint64_t bytes_in() const { return bytes_in_; }
  uint64_t bytes_out() const { return bytes_out_; }

 private:
  void flush();
  void consume(std::string_view bytes, ws::Messages& out);
  void queue_raw(const std::string& bytes);
  void finish(uint16_t code);

  UpgradedSocket socket_;
  Options options_;
  ws::Parser parser_;
  ws::Messages got_;  // what the parser completed in one read, before pings and closes are answered
  State state_ = State::open;
  uint16_t close_code_ = 0;
  bool closed_by_peer_ = false;
  std::string early_;
  std::string out_;
  size_t out_head_ = 0;
  uint64_t bytes_in_ = 0, bytes_out_ = 0;
};

}  // namespace osvi::net
