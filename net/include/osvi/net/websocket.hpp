// WebSocket (RFC 6455), server side: the opening handshake's checks and answer, and the frame codec — pure,
// no I/O (the upgraded socket is driven by net::WebSocket in websocket_conn.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/net/http_server.hpp"
#include "osvi/result.hpp"

namespace osvi::net::ws {

enum class Opcode : uint8_t { continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 };

// Close codes (RFC 6455 section 7.4.1) this server sends.
namespace close_code {
inline constexpr uint16_t normal = 1000;
inline constexpr uint16_t going_away = 1001;
inline constexpr uint16_t protocol_error = 1002;
inline constexpr uint16_t unsupported_data = 1003;
inline constexpr uint16_t invalid_payload = 1007;
inline constexpr uint16_t policy_violation = 1008;
inline constexpr uint16_t too_big = 1009;
inline constexpr uint16_t internal_error = 1011;
}  // namespace close_code

// A control frame's payload is at most this long (section 5.5).
inline constexpr size_t kMaxControlPayload = 125;

// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + the RFC's GUID)), section 4.2.2. An error
// (-ELIBACC, digest.hpp) only when libcrypto cannot be opened.
Result<std::string> accept_key(std::string_view client_key);

// Checks an opening handshake (section 4.2.1): GET, HTTP/1.1 headers Upgrade: websocket, Connection naming
// Upgrade, Sec-WebSocket-Version 13 and a Sec-WebSocket-Key of 16 base64 bytes. Returns the
// Sec-WebSocket-Accept value, or an error whose code is -EPROTONOSUPPORT for another version (answer 426 with
// Sec-WebSocket-Version: 13), -ELIBACC when libcrypto is missing (answer 503) and -EPROTO otherwise (answer
// 400); the message names the header.
Result<std::string> check_handshake(const HttpRequest& request);

// One whole message (text or binary, its fragments joined) or one control frame.
struct Message {
  Opcode opcode = Opcode::binary;  // text, binary, close, ping or pong
  std::string payload;             // unmasked; for close: the 2-byte code and the reason, as sent
  bool operator==(const Message&) const = default;
};

// The messages one or more feed()/handle_io() calls completed, in order. clear() forgets the count but keeps
// the slots and their payload buffers, so a connection carrying a steady stream of similar messages (a web
// call's 20 ms audio frames) allocates nothing per message once warm.
class Messages {
 public:
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void clear() { size_ = 0; }
  Message& operator[](size_t i) { return slots_[i]; }
  const Message& operator[](size_t i) const { return slots_[i]; }
  Message* begin() { return slots_.data(); }
  Message* end() { return slots_.data() + size_; }
  const Message* begin() const { return slots_.data(); }
  const Message* end() const { return slots_.data() + size_; }
  // A new last message with an empty payload (whose buffer a previous message may have left).
  Message& add(Opcode opcode) {
    if (size_ == slots_.size()) slots_.emplace_back();
    Message& m = slots_[size_++];
    m.opcode = opcode;
    m.payload.clear();
    return m;
  }
  bool operator==(const Messages& o) const {
    if (size_ != o.size_) return false;
    for (size_t i = 0; i < size_; ++i)
      if (!(slots_[i] == o.slots_[i])) return false;
    return true;
  }

 private:
  std::vector<Message> slots_;
  size_t size_ = 0;
};

// Why the peer broke the protocol: the close frame to answer with.
struct Violation {
  uint16_t code = close_code::protocol_error;
  std::string reason;  // short, ASCII
  bool operator==(const Violation&) const = default;
};

// Client-to-server frames in any chunking → messages. Every frame must be masked (section 5.1); reserved
// bits, unknown opcodes, fragmented or oversized control frames, continuation out of place, a bad close
// payload (section 7.4) are protocol errors (1002); a message whose frames add up to more than max_message
// bytes is refused as soon as its frame header says so (1009), before its payload is read; a text message
// that is not UTF-8 is 1007. After a violation the parser stays failed and returns the same one.
class Parser {
 public:
  explicit Parser(size_t max_message) : max_message_(max_message) {}

  // Appends every message completed by `bytes` to `out` (returned rather than called back so the caller may
  // tear down the connection while it handles them); a violation stops the parse there.
  std::optional<Violation> feed(std::string_view bytes, Messages& out);
  size_t max_message() const { return max_message_; }

 private:
  std::optional<Violation> header_done(Messages& out);
  std::optional<Violation> frame_done(Messages& out);

  size_t max_message_;
  std::optional<Violation> failed_;
  uint8_t head_[14] = {};
  size_t head_len_ = 0;
  size_t head_need_ = 2;  // bytes of header still needed to know its full size, then the full size
  bool in_payload_ = false;
  bool fin_ = false;
  Opcode opcode_ = Opcode::binary;
  uint8_t mask_[4] = {};
  uint64_t payload_left_ = 0;
  size_t mask_pos_ = 0;
  std::string frame_;  // control frame payload being read
  // The data message being assembled (one or more frames).
  bool in_message_ = false;
  Opcode message_opcode_ = Opcode::binary;
  std::string message_;
};

// One final, unmasked server frame (section 5.2): opcode, then the payload length in the shortest form.
std::string frame(Opcode opcode, std::string_view payload);
// The header frame() puts before a payload of `size` bytes, appended to `out` (no buffer of its own: a
// sender appends header and payload to the buffer it already has).
void append_frame_header(Opcode opcode, uint64_t size, std::string& out);
// A close frame with `code` and a reason cut to fit a control frame.
std::string close_frame(uint16_t code, std::string_view reason);
// The close code of a received close payload; 1005 (no status) when it has none.
uint16_t close_code_of(std::string_view payload);
// A masked client frame (tests and the fuzz target; browsers build their own).
std::string client_frame(Opcode opcode, std::string_view payload, const uint8_t mask[4], bool fin = true);

}  // namespace osvi::net::ws
