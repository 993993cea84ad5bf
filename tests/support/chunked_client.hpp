// ChunkedClient: a raw loopback HTTP/1.1 client that decodes a chunked response body as it arrives, for the
// streamed-response and event-stream tests (it also reads what a client that never reads leaves unread).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace osvi::test {

// A client socket that sends raw bytes and decodes the chunked body it gets back.
class ChunkedClient {
 public:
  // rcvbuf > 0 shrinks the receive buffer before connecting, so a client that does not read stalls soon.
  explicit ChunkedClient(uint16_t port, int rcvbuf = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (rcvbuf > 0) setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~ChunkedClient() { hang_up(); }
  ChunkedClient(const ChunkedClient&) = delete;
  ChunkedClient& operator=(const ChunkedClient&) = delete;

  bool ok() const { return ok_; }
  // extra_headers: "Name: value\r\n" lines.
  bool get(const std::string& path, const std::string& extra_headers = "") {
    const std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + extra_headers + "\r\n";
    return ::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size());
  }
  void hang_up() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  // Reads what is there within `ms`, until `done` holds for what came, or the peer closes.
  template <typename Done>
  bool read_until(int ms, Done done) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!done() && !closed_) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now())
              .count();
      if (left <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char buf[65536];
      const ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      raw_.append(buf, static_cast<size_t>(n));
      decode();
    }
    return done();
  }
  bool read_head(int ms = 3000) {
    return read_until(ms, [&] { return head_end_ != std::string::npos; });
  }
  bool read_body(size_t bytes, int ms = 3000) {
    return read_until(ms, [&] { return body_.size() >= bytes; });
  }
  bool read_end(int ms = 3000) {
    return read_until(ms, [&] { return ended_; });
  }
  bool closed_within(int ms) {
    read_until(ms, [] { return false; });
    return closed_;
  }
  std::string head() const { return head_end_ == std::string::npos ? raw_ : raw_.substr(0, head_end_); }
  const std::string& body() const { return body_; }
  bool ended() const { return ended_; }  // the last chunk (0) and the final CRLF came
  bool closed() const { return closed_; }
  // Starts over for the next response on the same connection.
  void next_response() {
    raw_.erase(0, pos_);
    pos_ = 0;
    head_end_ = std::string::npos;
    body_.clear();
    ended_ = false;
    decode();
  }

 private:
  void decode() {
    if (head_end_ == std::string::npos) {
      const size_t e = raw_.find("\r\n\r\n");
      if (e == std::string::npos) return;
      head_end_ = e;
      pos_ = e + 4;
      chunked_ = raw_.substr(0, e).find("Transfer-Encoding: chunked") != std::string::npos;
    }
    if (!chunked_) {  // an error answer with a Content-Length: the rest is its body
      body_ = raw_.substr(pos_);
      return;
    }
    while (!ended_) {
      const size_t eol = raw_.find("\r\n", pos_);
      if (eol == std::string::npos) return;
      const size_t size = std::strtoul(raw_.substr(pos_, eol - pos_).c_str(), nullptr, 16);
      if (raw_.size() < eol + 2 + size + 2) return;
      body_.append(raw_, eol + 2, size);
      pos_ = eol + 2 + size + 2;
      if (size == 0) ended_ = true;
    }
  }

  int fd_ = -1;
  bool ok_ = false;
  bool closed_ = false;
  std::string raw_, body_;
  size_t pos_ = 0;
  size_t head_end_ = std::string::npos;
  bool ended_ = false;
  bool chunked_ = false;
};

}  // namespace osvi::test
