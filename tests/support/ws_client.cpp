// WsClient: handshake, masked frames out, unmasked frames in (RFC 6455 client side, test grade).
#include "ws_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

namespace osvi::test {

WsClient::~WsClient() {
  close();
}

void WsClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

int WsClient::open(int port, const std::string& path, const std::string& origin, int timeout_ms, int rcvbuf) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (rcvbuf > 0) setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return 0;
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                    "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
  if (!origin.empty()) req += "Origin: " + origin + "\r\n";
  req += "\r\n";
  if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) return 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{fd_, POLLIN, 0};
    ::poll(&p, 1, 50);
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) in_.append(buf, static_cast<size_t>(n));
    const size_t at = in_.find("\r\n\r\n");
    if (at != std::string::npos) {
      head_ = in_.substr(0, at + 4);
      in_.erase(0, at + 4);
      if (head_.size() < 12) return 0;
      const int status = std::atoi(head_.c_str() + 9);
      // A refusal carries a body (the API's JSON envelope): keep it readable in head().
      if (status != 101) {
        for (int i = 0; i < 20; ++i) {
          ::poll(&p, 1, 20);
          const ssize_t m = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
          if (m <= 0) break;
          head_.append(buf, static_cast<size_t>(m));
        }
      }
      return status;
    }
    if (n == 0) return 0;
  }
  return 0;
}

bool WsClient::send(uint8_t opcode, std::string_view payload) {
  if (fd_ < 0) return false;
  std::string f;
  f.push_back(static_cast<char>(0x80 | opcode));
  const uint64_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(0x80 | n));
  } else if (n <= 0xffff) {
    f.push_back(static_cast<char>(0x80 | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n & 0xff));
  } else {
    f.push_back(static_cast<char>(0x80 | 127));
    for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  }
  const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
  f.append(reinterpret_cast<const char*>(mask), 4);
  for (size_t i = 0; i < payload.size(); ++i) f.push_back(static_cast<char>(payload[i] ^ mask[i & 3]));
  size_t off = 0;
  while (off < f.size()) {
    const ssize_t w = ::send(fd_, f.data() + off, f.size() - off, MSG_NOSIGNAL);
    if (w <= 0) return false;
    off += static_cast<size_t>(w);
  }
  return true;
}

void WsClient::poll(int wait_ms, std::vector<Frame>& out) {
  if (fd_ < 0) return;
  pollfd p{fd_, POLLIN, 0};
  ::poll(&p, 1, wait_ms);
  char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      in_.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) eof_ = true;
    break;
  }
  for (;;) {
    if (in_.size() < 2) return;
    const auto b1 = static_cast<uint8_t>(in_[1]);
    uint64_t len = b1 & 0x7f;
    size_t p2 = 2;
    if (len == 126) {
      if (in_.size() < 4) return;
      len = (uint64_t{static_cast<uint8_t>(in_[2])} << 8) | static_cast<uint8_t>(in_[3]);
      p2 = 4;
    } else if (len == 127) {
      if (in_.size() < 10) return;
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | static_cast<uint8_t>(in_[2 + static_cast<size_t>(i)]);
      p2 = 10;
    }
    if (in_.size() < p2 + len) return;
    out.push_back(Frame{static_cast<uint8_t>(in_[0] & 0x0f), in_.substr(p2, len)});
    in_.erase(0, p2 + len);
  }
}

}  // namespace osvi::test
