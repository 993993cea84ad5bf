// Server-sent events parser (WHATWG "text/event-stream"): bytes in any chunking → complete events; pure, no
// I/O.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"

namespace osvi::net {

struct SseEvent {
  std::string event;  // "" when the event named no type (the spec's default "message")
  std::string data;   // every data line of the event joined with '\n'
  std::string id;     // the last event id seen in the stream so far (it persists across events, per spec)
  bool operator==(const SseEvent&) const = default;
};

class SseParser {
 public:
  // A line longer than max_line bytes (without its terminator), or an event whose data lines add up to more
  // than max_event bytes, makes feed() fail: a stream that never ends a line or an event would otherwise
  // grow without bound.
  explicit SseParser(size_t max_line = 1 << 20, size_t max_event = 1 << 20)
      : max_line_(max_line), max_event_(max_event) {}

  // Appends every event completed by `bytes` to `out`. Events are returned rather than called back so the
  // caller may tear down whatever owns the parser while it handles them. After an error the parser stays
  // failed and returns the same error.
  Status feed(std::string_view bytes, std::vector<SseEvent>& out);

  // Forget all state, as for a new stream.
  void reset();

 private:
  void consume(std::string_view bytes, std::vector<SseEvent>& out);
  void line(std::string_view l, std::vector<SseEvent>& out);
  void dispatch(std::vector<SseEvent>& out);

  Status failure() const;

  size_t max_line_;
  size_t max_event_;
  bool event_too_large_ = false;
  std::string bom_;  // bytes seen at the stream start while deciding whether they are a UTF-8 BOM
  bool started_ = false;
  bool after_cr_ = false;  // a CR ended the last line: an LF right after it belongs to the same terminator
  bool failed_ = false;
  std::string line_;
  std::string event_;
  std::string data_;
  bool has_data_ = false;
  std::string last_id_;
};

}  // namespace osvi::net
