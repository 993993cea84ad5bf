// One server-side WebSocket over an upgraded socket: bounded reads per call, a bounded send buffer, the
// close handshake.
#include "osvi/net/websocket_conn.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>

namespace osvi::net {

namespace {
// Reads per handle_io(): bounds one loop turn's work for a peer that sends without pause.
constexpr int kReadsPerCall = 8;
constexpr size_t kReadChunk = 8 * 1024;
// Room kept past max_send_buffer for the control frames we owe (pong, close), so a full buffer can still
// say goodbye.
constexpr size_t kControlReserve = 2 * (ws::kMaxControlPayload + 4);
}  // namespace

WebSocket::WebSocket(UpgradedSocket socket, Options options)
    : socket_(std::move(socket)), options_(options), parser_(options.max_message) {
  early_ = socket_.take_early_bytes();
}

uint32_t WebSocket::events() const {
  if (state_ == State::closed) return 0;
  return EPOLLIN | EPOLLRDHUP | (buffered() ? EPOLLOUT : 0u);
}

void WebSocket::queue_raw(const std::string& bytes) {
  if (out_head_ == out_.size()) {
    out_.clear();
    out_head_ = 0;
  }
  out_.append(bytes);
}

bool WebSocket::send(ws::Opcode opcode, std::string_view payload) {
  if (state_ != State::open) return false;
  // Header and payload go straight into the send buffer, which keeps its capacity: no frame of its own.
  const size_t header = payload.size() < 126 ? 2 : payload.size() <= 0xffff ? 4 : 10;
  if (buffered() + header + payload.size() > options_.max_send_buffer) return false;
  if (out_head_ == out_.size()) {
    out_.clear();
    out_head_ = 0;
  }
  ws::append_frame_header(opcode, payload.size(), out_);
  out_.append(payload);
  flush();
  return state_ == State::open;
}

void WebSocket::close(uint16_t code, std::string_view reason) {
  if (state_ != State::open) return;
  state_ = State::closing;
  close_code_ = code;
  if (buffered() + ws::kMaxControlPayload + 4 <= options_.max_send_buffer + kControlReserve)
    queue_raw(ws::close_frame(code, reason));
  flush();
  if (state_ == State::closing && buffered() == 0) finish(code);
}

void WebSocket::abort() {
  if (state_ == State::closed) return;
  finish(close_code_ ? close_code_ : 1006);
}

void WebSocket::finish(uint16_t code) {
  if (!close_code_) close_code_ = code;
  state_ = State::closed;
  out_.clear();
  out_head_ = 0;
  socket_.close();
}

void WebSocket::flush() {
  while (buffered() && state_ != State::closed) {
    const ssize_t n = ::send(socket_.fd(), out_.data() + out_head_, buffered(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      out_head_ += static_cast<size_t>(n);
      bytes_out_ += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    closed_by_peer_ = true;
    finish(1006);  // reset or broken pipe: the peer is gone
    return;
  }
  if (out_head_ == out_.size()) {
    out_.clear();
    out_head_ = 0;
  } else if (out_head_ > out_.size() / 2) {
    out_.erase(0, out_head_);
    out_head_ = 0;
  }
  if (state_ == State::closing && buffered() == 0) finish(close_code_);
}

void WebSocket::consume(std::string_view bytes, ws::Messages& out) {
  got_.clear();
  std::optional<ws::Violation> bad = parser_.feed(bytes, got_);
  for (ws::Message& m : got_) {
    if (state_ != State::open) break;
    switch (m.opcode) {
      case ws::Opcode::ping:
        if (buffered() + m.payload.size() + 4 <= options_.max_send_buffer + kControlReserve)
          queue_raw(ws::frame(ws::Opcode::pong, m.payload));
        break;
      case ws::Opcode::pong:
        break;
      case ws::Opcode::close: {
        const uint16_t code = ws::close_code_of(m.payload);
        closed_by_peer_ = true;
        // Echo the peer's code (section 5.5.1); with none, a normal close.
        close(code == 1005 ? ws::close_code::normal : code, {});
        close_code_ = code;
        return;
      }
      default:
        out.add(m.opcode).payload.swap(m.payload);
        break;
    }
  }
  if (bad && state_ == State::open) close(bad->code, bad->reason);
}

void WebSocket::handle_io(uint32_t revents, ws::Messages& out) {
  if (state_ == State::closed) return;
  if (!early_.empty()) consume(std::exchange(early_, {}), out);
  if (buffered()) flush();
  if (state_ == State::closed) return;
  if (revents & EPOLLERR) {
    closed_by_peer_ = true;
    finish(1006);
    return;
  }
  char buf[kReadChunk];
  for (int i = 0; i < kReadsPerCall && state_ != State::closed; ++i) {
    const ssize_t n = ::recv(socket_.fd(), buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      bytes_in_ += static_cast<uint64_t>(n);
      // While closing, what the peer sends is read and dropped until its close frame or EOF.
      if (state_ == State::open) consume(std::string_view(buf, static_cast<size_t>(n)), out);
      if (state_ == State::closing && buffered()) flush();
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    // EOF or an error: the peer is gone (1006 when it never sent a close frame).
    if (state_ == State::open) closed_by_peer_ = true;
    finish(close_code_ ? close_code_ : 1006);
    return;
  }
  if (buffered()) flush();
}

}  // namespace osvi::net
