// RFC 6455 handshake checks and frame codec (server side); pure functions and an incremental parser.
#include "osvi/net/websocket.hpp"

#include <algorithm>
#include <cstring>

#include "osvi/net/digest.hpp"
#include "osvi/net/text.hpp"

namespace osvi::net::ws {

namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// Whether a comma-separated header value lists `token` (case-insensitive), e.g. "keep-alive, Upgrade".
bool lists_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (ascii_lower(item) == ascii_lower(token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

// The header's value (names compare case-insensitively); looked up here rather than through
// HttpRequest::header so the codec stays apart from the server (the fuzz target compiles it alone).
std::optional<std::string_view> header_of(const HttpRequest& r, std::string_view name) {
  for (const auto& [k, v] : r.headers)
    if (ascii_lower(k) == ascii_lower(name)) return std::string_view(v);
  return std::nullopt;
}

bool valid_close_code(uint16_t code) {
  // Section 7.4: 1004-1006 and 1015 are never sent; 1012-1014 are registered since (IANA); 3000-4999 are for
  // libraries and applications.
  if (code >= 1000 && code <= 1003) return true;
  if (code >= 1007 && code <= 1014) return true;
  return code >= 3000 && code <= 4999;
}

bool data_opcode(uint8_t op) {
  return op == 0 || op == 1 || op == 2;
}
bool control_opcode(uint8_t op) {
  return op == 8 || op == 9 || op == 10;
}

}  // namespace

Result<std::string> accept_key(std::string_view client_key) {
  std::string in(client_key);
  in.append(kGuid);
  auto digest = digest::sha1(in);
  if (!digest) return digest.error();
  return base64_encode(*digest);
}

Result<std::string> check_handshake(const HttpRequest& request) {
  if (request.method != "GET") return make_error("a WebSocket handshake is a GET request", -EPROTO);
  auto upgrade = header_of(request, "Upgrade");
  if (!upgrade || !lists_token(*upgrade, "websocket"))
    return make_error("Upgrade: expected websocket", -EPROTO);
  auto connection = header_of(request, "Connection");
  if (!connection || !lists_token(*connection, "upgrade"))
    return make_error("Connection: expected a value naming Upgrade", -EPROTO);
  auto version = header_of(request, "Sec-WebSocket-Version");
  if (!version || *version != "13")
    return make_error("Sec-WebSocket-Version: only version 13 is supported", -EPROTONOSUPPORT);
  auto key = header_of(request, "Sec-WebSocket-Key");
  if (!key) return make_error("Sec-WebSocket-Key: required", -EPROTO);
  auto raw = base64_decode(*key);
  if (!raw || raw->size() != 16) return make_error("Sec-WebSocket-Key: expected 16 bytes in base64", -EPROTO);
  return accept_key(*key);
}

std::optional<Violation> Parser::feed(std::string_view bytes, Messages& out) {
  if (failed_) return failed_;
  while (!bytes.empty()) {
    if (!in_payload_) {
      const size_t take = std::min(bytes.size(), head_need_ - head_len_);
      std::memcpy(head_ + head_len_, bytes.data(), take);
      head_len_ += take;
      bytes.remove_prefix(take);
      if (head_len_ < head_need_) continue;
      if (head_need_ == 2) {
        // The first two bytes say how long the header is: extended length and the mask key follow.
        const uint8_t len7 = head_[1] & 0x7f;
        head_need_ = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((head_[1] & 0x80) ? 4 : 0);
        if (head_need_ > head_len_) continue;
      }
      if (auto v = header_done(out)) return failed_ = v;
      continue;
    }
    const size_t take = static_cast<size_t>(std::min<uint64_t>(bytes.size(), payload_left_));
    std::string& dst = control_opcode(static_cast<uint8_t>(opcode_)) ? frame_ : message_;
    const size_t at = dst.size();
    dst.append(bytes.data(), take);
    for (size_t i = 0; i < take; ++i) dst[at + i] = static_cast<char>(dst[at + i] ^ mask_[(mask_pos_++) & 3]);
    bytes.remove_prefix(take);
    payload_left_ -= take;
    if (payload_left_ == 0)
      if (auto v = frame_done(out)) return failed_ = v;
  }
  return std::nullopt;
}

std::optional<Violation> Parser::header_done(Messages& out) {
  const uint8_t b0 = head_[0], b1 = head_[1];
  fin_ = (b0 & 0x80) != 0;
  const uint8_t op = b0 & 0x0f;
  if (b0 & 0x70) return Violation{close_code::protocol_error, "reserved bits set"};
  if (!data_opcode(op) && !control_opcode(op)) return Violation{close_code::protocol_error, "unknown opcode"};
  if (!(b1 & 0x80)) return Violation{close_code::protocol_error, "client frames must be masked"};
  uint64_t len = b1 & 0x7f;
  size_t p = 2;
  if (len == 126) {
    len = (uint64_t{head_[2]} << 8) | head_[3];
    p = 4;
  } else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | head_[2 + i];
    if (len >> 63) return Violation{close_code::protocol_error, "payload length has its top bit set"};
    p = 10;
  }
  std::memcpy(mask_, head_ + p, 4);
  mask_pos_ = 0;
  opcode_ = static_cast<Opcode>(op);
  if (control_opcode(op)) {
    if (!fin_) return Violation{close_code::protocol_error, "fragmented control frame"};
    if (len > kMaxControlPayload) return Violation{close_code::protocol_error, "control frame too long"};
    frame_.clear();
  } else if (op == 0) {
    if (!in_message_) return Violation{close_code::protocol_error, "continuation without a message"};
  } else {
    if (in_message_) return Violation{close_code::protocol_error, "new message inside a fragmented one"};
    in_message_ = true;
    message_opcode_ = opcode_;
    message_.clear();
  }
  // Refused from the header: the payload of an oversized message is never buffered.
  if (!control_opcode(op) && len > max_message_ - std::min(max_message_, message_.size()))
    return Violation{close_code::too_big, "message too big"};
  head_len_ = 0;
  head_need_ = 2;
  payload_left_ = len;
  in_payload_ = true;
  if (len == 0) return frame_done(out);
  return std::nullopt;
}

std::optional<Violation> Parser::frame_done(Messages& out) {
  in_payload_ = false;
  if (control_opcode(static_cast<uint8_t>(opcode_))) {
    if (opcode_ == Opcode::close) {
      if (frame_.size() == 1) return Violation{close_code::protocol_error, "close payload of one byte"};
      if (frame_.size() >= 2) {
        if (!valid_close_code(close_code_of(frame_)))
          return Violation{close_code::protocol_error, "invalid close code"};
        if (!utf8_valid(std::string_view(frame_).substr(2)))
          return Violation{close_code::invalid_payload, "close reason is not UTF-8"};
      }
    }
    // Swapped, not moved: the buffer the slot held comes back for the next frame.
    out.add(opcode_).payload.swap(frame_);
    frame_.clear();
    return std::nullopt;
  }
  if (!fin_) return std::nullopt;
  in_message_ = false;
  if (message_opcode_ == Opcode::text && !utf8_valid(message_))
    return Violation{close_code::invalid_payload, "text message is not UTF-8"};
  out.add(message_opcode_).payload.swap(message_);
  message_.clear();
  return std::nullopt;
}

namespace {

std::string build(Opcode opcode, std::string_view payload, const uint8_t* mask, bool fin) {
  std::string f;
  f.reserve(payload.size() + 14);
  f.push_back(static_cast<char>((fin ? 0x80 : 0) | static_cast<uint8_t>(opcode)));
  const uint8_t m = mask ? 0x80 : 0;
  const uint64_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(m | n));
  } else if (n <= 0xffff) {
    f.push_back(static_cast<char>(m | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n & 0xff));
  } else {
    f.push_back(static_cast<char>(m | 127));
    for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  }
  if (!mask) {
    f.append(payload);
    return f;
  }
  f.append(reinterpret_cast<const char*>(mask), 4);
  for (size_t i = 0; i < payload.size(); ++i) f.push_back(static_cast<char>(payload[i] ^ mask[i & 3]));
  return f;
}

}  // namespace

std::string frame(Opcode opcode, std::string_view payload) {
  return build(opcode, payload, nullptr, true);
}

void append_frame_header(Opcode opcode, uint64_t size, std::string& out) {
  out.push_back(static_cast<char>(0x80 | static_cast<uint8_t>(opcode)));
  if (size < 126) {
    out.push_back(static_cast<char>(size));
  } else if (size <= 0xffff) {
    out.push_back(static_cast<char>(126));
    out.push_back(static_cast<char>(size >> 8));
    out.push_back(static_cast<char>(size & 0xff));
  } else {
    out.push_back(static_cast<char>(127));
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((size >> (8 * i)) & 0xff));
  }
}

std::string close_frame(uint16_t code, std::string_view reason) {
  std::string p;
  p.push_back(static_cast<char>(code >> 8));
  p.push_back(static_cast<char>(code & 0xff));
  // Cut on a character boundary: the reason must stay UTF-8.
  size_t n = std::min(reason.size(), kMaxControlPayload - 2);
  while (n > 0 && n < reason.size() && (static_cast<uint8_t>(reason[n]) & 0xc0) == 0x80) --n;
  p.append(reason.substr(0, n));
  return frame(Opcode::close, p);
}

uint16_t close_code_of(std::string_view payload) {
  if (payload.size() < 2) return 1005;
  return static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) | static_cast<uint8_t>(payload[1]));
}

std::string client_frame(Opcode opcode, std::string_view payload, const uint8_t mask[4], bool fin) {
  return build(opcode, payload, mask, fin);
}

}  // namespace osvi::net::ws
