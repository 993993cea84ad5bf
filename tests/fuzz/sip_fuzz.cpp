// libFuzzer target for the SIP bodies the SIP line parses itself (sip_parse.hpp): NOTIFY sipfrag status
// lines and DTMF INFO bodies; checks the parsers' promises.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "osvi/hal/sip_parse.hpp"

namespace {

void check_digit(const std::optional<char>& d) {
  if (!d) return;
  const char c = *d;
  if (!((c >= '0' && c <= '9') || c == '*' || c == '#' || (c >= 'A' && c <= 'D'))) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  if (auto s = osvi::hal::parse_sipfrag(body)) {
    if (s->code < 100 || s->code > 699) std::abort();
    if (s->reason.size() > 128) std::abort();
    for (char c : s->reason)
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) std::abort();
    if (!s->reason.empty() && (s->reason.front() == ' ' || s->reason.back() == ' ')) std::abort();
  }
  check_digit(osvi::hal::parse_dtmf_info(body, true));
  check_digit(osvi::hal::parse_dtmf_info(body, false));
  return 0;
}
