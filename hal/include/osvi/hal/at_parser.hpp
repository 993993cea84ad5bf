// AtParser: pure framing and classification of a modem's AT byte stream (no I/O, so it can be fuzzed).
//
// Why a separate class: modems interleave unsolicited result codes (RING, +CLIP, vendor URCs) with the
// response to the command in flight, drop CRs, emit vendor-specific final codes and spew garbage when they
// reset. All of that is decided here from bytes alone, and the line driver only sees classified lines.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/hal/line.hpp"

namespace osvi::hal {

// The final result codes of V.250 / 27.007, plus a bucket for vendor finals.
enum class AtFinal {
  ok,
  error,
  cme_error,  // "+CME ERROR: <n or text>"
  cms_error,  // "+CMS ERROR: <n or text>"
  no_carrier,
  busy,
  no_answer,
  no_dialtone,
  connect,       // "CONNECT[ <text>]": a call-setup success on some firmware
  vendor_error,  // a vendor final configured with add_vendor_final() (e.g. "COMMAND NOT SUPPORT")
};
std::string_view to_string(AtFinal f);

enum class AtLineKind {
  unsolicited,   // URC: belongs to no command
  intermediate,  // part of the response to the command in flight
  final,         // ends the command in flight
  echo,          // the command echoed back (before ATE0 took effect)
};

struct AtLine {
  AtLineKind kind = AtLineKind::unsolicited;
  std::string text;             // printable ASCII, trimmed
  AtFinal final = AtFinal::ok;  // meaningful when kind == final
  // A call-progress code (NO CARRIER, BUSY, NO ANSWER, NO DIALTONE) that arrived while no call-setup
  // command was in flight: the call's outcome, reported unsolicited.
  std::optional<AtFinal> call_progress;
};

class AtParser {
 public:
  // Longest line kept; longer garbage is cut so a babbling modem cannot grow memory.
  static constexpr size_t kMaxLine = 512;
  // Most classified lines buffered before the oldest are dropped (the owner drains after every feed()).
  static constexpr size_t kMaxQueued = 256;

  AtParser();

  // Text after which a line is a final error (matched as a prefix, case-sensitive, as modules print them).
  void add_vendor_final(std::string prefix);

  // The command just written (e.g. "AT+CLCC", "ATD+4930123;"). Decides what the next lines mean until its
  // final arrives: "+CLCC: ..." is an intermediate now, a URC otherwise.
  void begin_command(std::string_view command);
  // Forget the command in flight (its timeout fired): later lines are unsolicited again.
  void abandon_command();
  bool command_in_flight() const { return in_flight_; }

  // Bytes as read from the tty, in any chunking.
  void feed(std::string_view bytes);
  // Treats buffered bytes as a complete line: the owner calls it after a quiet gap, for firmware that
  // forgets the CR/LF after a final code.
  void flush();
  bool has_partial() const { return !partial_.empty(); }
  // Classified lines in arrival order.
  std::optional<AtLine> next();

  // Counters for health and tests.
  size_t garbage_bytes() const { return garbage_bytes_; }

  // Pure classification of one trimmed line against a command (exposed for tests).
  static std::optional<AtFinal> final_code(std::string_view line, const std::vector<std::string>& vendor);
  static bool is_call_progress(AtFinal f);

 private:
  void emit_line(std::string_view line);

  std::string partial_;
  std::deque<AtLine> out_;
  std::vector<std::string> vendor_finals_;
  bool in_flight_ = false;
  bool call_setup_ = false;      // ATD / ATA: call-progress codes are its finals
  std::string command_;          // as sent, for echo detection
  std::string response_prefix_;  // "+CLCC" for AT+CLCC / AT+CLCC? / AT+CLCC=...
  size_t garbage_bytes_ = 0;
  bool overflowed_ = false;
};

// Call outcome of a final result code that ended a call attempt: the OSVI status table. `answered` says
// whether the remote side had picked up before this code arrived (NO CARRIER after answer is a hang-up).
// nullopt = the code does not end the attempt (OK after ATD: the call is proceeding).
std::optional<CallOutcome> outcome_for_final(AtFinal f, bool answered);

// Parsed "+CLCC: <idx>,<dir>,<stat>,<mode>,<mpty>[,"<number>",<type>...]".
struct ClccEntry {
  int index = 0;
  bool incoming = false;
  int stat = 0;  // 0 active, 1 held, 2 dialing, 3 alerting, 4 incoming, 5 waiting
  int mode = 0;  // 0 voice
  std::string number;
};
std::optional<ClccEntry> parse_clcc(std::string_view line);
// "+CLIP: "<number>",<type>,..." -> number (may be empty: withheld).
std::optional<std::string> parse_clip(std::string_view line);
// "+CREG: <n>,<stat>[,...]" or "+CEREG: ..." (query answer) / "+CREG: <stat>[,...]" (URC) -> stat.
std::optional<int> parse_reg_stat(std::string_view line, bool query_answer);

}  // namespace osvi::hal
