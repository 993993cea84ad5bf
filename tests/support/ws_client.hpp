// WsClient: a minimal WebSocket client for the web call tests (masked frames out, the server's unmasked
// frames in), over a non-blocking loopback socket.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace osvi::test {

class WsClient {
 public:
  struct Frame {
    uint8_t opcode = 0;  // 1 text, 2 binary, 8 close, 9 ping, 10 pong
    std::string payload;
  };
  WsClient() = default;
  ~WsClient();
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  // Connects to 127.0.0.1:port and sends the opening handshake for `path` (with `origin` when not empty);
  // returns the answer's status code (101 on success, 0 when nothing came within timeout_ms). The answer's
  // head is kept in head().
  // A rcvbuf above 0 sets SO_RCVBUF before connecting (a peer that reads little).
  int open(int port, const std::string& path, const std::string& origin, int timeout_ms = 5000,
           int rcvbuf = 0);
  const std::string& head() const { return head_; }
  // Sends one masked frame; false when the socket is gone.
  bool send(uint8_t opcode, std::string_view payload);
  // Waits up to wait_ms for bytes and appends every whole frame that arrived to `out`.
  void poll(int wait_ms, std::vector<Frame>& out);
  // The server closed the TCP connection.
  bool eof() const { return eof_; }
  void close();

 private:
  int fd_ = -1;
  std::string head_, in_;
  bool eof_ = false;
};

}  // namespace osvi::test
