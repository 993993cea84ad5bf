// libFuzzer target for SseParser: any bytes in any chunking give the same events as one chunk, within the
// parser's bounds, and a reset parser starts afresh.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "osvi/net/sse.hpp"

namespace {

// Small bounds so that the limits themselves are reached often.
constexpr size_t kMaxLine = 256;
constexpr size_t kMaxEvent = 512;

void require(bool ok) {
  if (!ok) std::abort();
}

void check(const osvi::net::SseEvent& e) {
  require(e.data.size() <= kMaxEvent);
  require(e.event.size() <= kMaxLine && e.id.size() <= kMaxLine);
  require(e.event.find_first_of("\r\n") == std::string::npos &&
          e.id.find_first_of("\r\n") == std::string::npos);
  require(e.data.find('\r') == std::string::npos && e.id.find('\0') == std::string::npos);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte says how many of the next bytes are chunk sizes (cycled); the rest is the stream.
  const size_t n = std::min<size_t>(data[0] % 16, size - 1);
  const uint8_t* sizes = data + 1;
  std::string_view stream(reinterpret_cast<const char*>(data + 1 + n), size - 1 - n);

  osvi::net::SseParser whole(kMaxLine, kMaxEvent);
  std::vector<osvi::net::SseEvent> a;
  const bool a_ok = whole.feed(stream, a).ok();

  osvi::net::SseParser chunked(kMaxLine, kMaxEvent);
  std::vector<osvi::net::SseEvent> b;
  bool b_ok = true;
  std::string_view rest = stream;
  for (size_t i = 0; !rest.empty(); ++i) {
    size_t len = std::min<size_t>(rest.size(), n == 0 ? 1 : sizes[i % n] % 48);
    if (len == 0) {  // an empty feed, then one byte so that the stream always advances
      if (!chunked.feed({}, b).ok()) b_ok = false;
      len = 1;
    }
    if (!chunked.feed(rest.substr(0, len), b).ok()) b_ok = false;
    rest.remove_prefix(len);
  }
  require(a_ok == b_ok);
  require(a == b);
  for (const auto& e : a) check(e);
  // Failed stays failed.
  if (!a_ok) {
    std::vector<osvi::net::SseEvent> more;
    require(!whole.feed("data: x\n\n", more).ok() && more.empty());
  }
  // A reset parser is a new one.
  whole.reset();
  std::vector<osvi::net::SseEvent> c;
  require(whole.feed(stream, c).ok() == a_ok);
  require(c == a);
  return 0;
}
