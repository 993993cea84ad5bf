// The few SIP bodies the SIP line reads itself (libre parses the messages): a REFER's NOTIFY sipfrag
// (RFC 3515) and a DTMF INFO (application/dtmf-relay, application/dtmf). Pure functions, fuzzed (sip_fuzz).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace osvi::hal {

struct SipFragStatus {
  uint16_t code = 0;   // 100..699
  std::string reason;  // the reason phrase, at most 128 characters
};

// The status line opening a message/sipfrag body ("SIP/2.0 200 OK"); nullopt when it is none.
std::optional<SipFragStatus> parse_sipfrag(std::string_view body);

// The digit of an application/dtmf-relay body ("Signal=5\r\nDuration=160\r\n") or, with dtmf_relay false,
// of an application/dtmf body ("5"). 0-9 * # A-D (upper-cased); "10"/"11" mean * and # (some PBXs); nullopt
// otherwise.
std::optional<char> parse_dtmf_info(std::string_view body, bool dtmf_relay);

}  // namespace osvi::hal
