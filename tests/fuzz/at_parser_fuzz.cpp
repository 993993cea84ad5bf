// libFuzzer target for AtParser: any byte stream, any chunking, any command in flight; checks the parser's
// promises.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "osvi/hal/at_parser.hpp"

namespace {

constexpr const char* kCommands[] = {"AT",      "ATE0",     "AT+CLCC", "ATD+919800000002;", "ATA",
                                     "AT+CGSN", "AT+CREG?", "AT+CEER", "AT+CPCMREG=1",      "AT+CHUP"};

void check(const osvi::hal::AtLine& l) {
  // Promises the line driver relies on: one trimmed printable line, bounded.
  if (l.text.empty() || l.text.size() > osvi::hal::AtParser::kMaxLine) std::abort();
  for (char c : l.text)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) std::abort();
  if (l.text.front() == ' ' || l.text.back() == ' ') std::abort();
  if (l.kind == osvi::hal::AtLineKind::final && l.call_progress) std::abort();
  (void)osvi::hal::parse_clcc(l.text);
  (void)osvi::hal::parse_clip(l.text);
  (void)osvi::hal::parse_reg_stat(l.text, true);
  (void)osvi::hal::parse_reg_stat(l.text, false);
  if (l.kind == osvi::hal::AtLineKind::final)
    (void)osvi::hal::outcome_for_final(l.final, l.text.size() % 2 == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  osvi::hal::AtParser p;
  p.add_vendor_final("+QERR");
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t queued = 0;
  // Control bytes steer the chunking and the command in flight; the rest is the modem's output.
  while (!in.empty()) {
    const auto ctl = static_cast<unsigned char>(in.front());
    in.remove_prefix(1);
    const size_t chunk = std::min<size_t>(in.size(), (ctl & 0x1f) + 1);
    switch (ctl >> 5) {
      case 0:
        p.begin_command(kCommands[ctl % (sizeof kCommands / sizeof *kCommands)]);
        break;
      case 1:
        p.abandon_command();
        break;
      case 2:
        p.flush();
        break;
      default:
        break;
    }
    p.feed(in.substr(0, chunk));
    in.remove_prefix(chunk);
    while (auto l = p.next()) {
      check(*l);
      ++queued;
    }
  }
  p.flush();
  while (auto l = p.next()) check(*l);
  (void)queued;
  return 0;
}
