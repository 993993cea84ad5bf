// SseParser: line splitting that survives any chunk boundary, then the WHATWG field rules.
#include "osvi/net/sse.hpp"

namespace osvi::net {

namespace {
constexpr std::string_view kBom = "\xEF\xBB\xBF";
}

void SseParser::reset() {
  bom_.clear();
  started_ = after_cr_ = failed_ = has_data_ = event_too_large_ = false;
  line_.clear();
  event_.clear();
  data_.clear();
  last_id_.clear();
}

Status SseParser::failure() const {
  if (event_too_large_)
    return make_error("event stream event larger than " + std::to_string(max_event_) + " bytes");
  return make_error("event stream line longer than " + std::to_string(max_line_) + " bytes");
}

Status SseParser::feed(std::string_view bytes, std::vector<SseEvent>& out) {
  if (failed_) return failure();
  if (!started_) {
    // The BOM may itself arrive split, so hold back bytes until they either are or cannot be one.
    while (!bytes.empty() && bom_.size() < kBom.size() && bytes.front() == kBom[bom_.size()]) {
      bom_.push_back(bytes.front());
      bytes.remove_prefix(1);
    }
    if (bom_.size() < kBom.size() && bytes.empty()) return {};
    started_ = true;
    if (bom_.size() < kBom.size()) {
      std::string held;
      held.swap(bom_);
      consume(held, out);
    }
    bom_.clear();
  }
  if (!failed_) consume(bytes, out);
  if (failed_) return failure();
  return {};
}

void SseParser::consume(std::string_view bytes, std::vector<SseEvent>& out) {
  while (!bytes.empty() && !failed_) {
    if (after_cr_) {
      after_cr_ = false;
      if (bytes.front() == '\n') {
        bytes.remove_prefix(1);
        continue;
      }
    }
    size_t end = bytes.find_first_of("\r\n");
    std::string_view piece = bytes.substr(0, end);
    if (line_.size() + piece.size() > max_line_) {
      failed_ = true;
      return;
    }
    if (end == std::string_view::npos) {
      line_.append(piece);
      return;
    }
    after_cr_ = bytes[end] == '\r';
    if (line_.empty()) {
      line(piece, out);
    } else {
      line_.append(piece);
      line(line_, out);
      line_.clear();
    }
    bytes.remove_prefix(end + 1);
  }
}

void SseParser::line(std::string_view l, std::vector<SseEvent>& out) {
  if (l.empty()) {
    dispatch(out);
    return;
  }
  if (l.front() == ':') return;  // comment (keep-alive)
  std::string_view field = l;
  std::string_view value;
  if (size_t colon = l.find(':'); colon != std::string_view::npos) {
    field = l.substr(0, colon);
    value = l.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "event") {
    event_.assign(value);
  } else if (field == "data") {
    if (data_.size() + value.size() + (has_data_ ? 1 : 0) > max_event_) {
      failed_ = event_too_large_ = true;
      return;
    }
    if (has_data_) data_.push_back('\n');
    data_.append(value);
    has_data_ = true;
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) last_id_.assign(value);
  }
  // "retry" and unknown fields are ignored: reconnection is the caller's policy.
}

void SseParser::dispatch(std::vector<SseEvent>& out) {
  if (has_data_) out.push_back(SseEvent{event_, data_, last_id_});
  event_.clear();
  data_.clear();
  has_data_ = false;
}

}  // namespace osvi::net
