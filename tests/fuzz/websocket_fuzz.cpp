// libFuzzer target for ws::Parser: any bytes in any chunking give the same messages and the same violation
// as one chunk, every message stays within the bound, and a failed parser stays failed.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "fuzz_promise.hpp"
#include "osvi/net/websocket.hpp"

namespace ws = osvi::net::ws;

namespace {
// Small, so that the bound is reached often (the daemon's is 640 + a little).
constexpr size_t kMax = 700;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte says how many of the next bytes are chunk sizes (cycled); the rest is the stream.
  const size_t n = std::min<size_t>(data[0] % 16, size - 1);
  const uint8_t* sizes = data + 1;
  std::string_view stream(reinterpret_cast<const char*>(data + 1 + n), size - 1 - n);

  ws::Parser whole(kMax);
  ws::Messages a;
  const auto va = whole.feed(stream, a);

  ws::Parser chunked(kMax);
  ws::Messages b;
  std::optional<ws::Violation> vb;
  std::string_view rest = stream;
  for (size_t i = 0; !rest.empty() && !vb; ++i) {
    const size_t len = std::max<size_t>(1, std::min<size_t>(rest.size(), n == 0 ? 1 : sizes[i % n] % 64));
    vb = chunked.feed(rest.substr(0, len), b);
    rest.remove_prefix(len);
  }
  require(va == vb);
  require(a == b);
  for (const ws::Message& m : a) {
    const bool control =
        m.opcode == ws::Opcode::close || m.opcode == ws::Opcode::ping || m.opcode == ws::Opcode::pong;
    require(m.opcode == ws::Opcode::text || m.opcode == ws::Opcode::binary || control);
    require(m.payload.size() <= (control ? ws::kMaxControlPayload : kMax));
    if (m.opcode == ws::Opcode::text) require(osvi::net::utf8_valid(m.payload));
  }
  if (va) {
    require(va->code == ws::close_code::protocol_error || va->code == ws::close_code::too_big ||
            va->code == ws::close_code::invalid_payload);
    ws::Messages more;
    const uint8_t mask[4] = {1, 2, 3, 4};
    require(whole.feed(ws::client_frame(ws::Opcode::binary, "x", mask), more) == va && more.empty());
  }
  return 0;
}
