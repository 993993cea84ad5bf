// The OSVI status of every final result code, before and after the remote side answered: one table.
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "osvi/hal/at_parser.hpp"

using osvi::hal::AtFinal;
using osvi::hal::AtParser;
using osvi::hal::CallOutcome;

namespace {

struct Row {
  const char* line;  // as the module prints it
  AtFinal code;
  std::optional<CallOutcome> before_answer;
  std::optional<CallOutcome> after_answer;
};

const Row kTable[] = {
    {"OK", AtFinal::ok, std::nullopt, std::nullopt},
    {"CONNECT", AtFinal::connect, CallOutcome::picked, CallOutcome::picked},
    {"CONNECT 9600", AtFinal::connect, CallOutcome::picked, CallOutcome::picked},
    {"BUSY", AtFinal::busy, CallOutcome::busy, CallOutcome::picked},
    {"NO ANSWER", AtFinal::no_answer, CallOutcome::not_picked, CallOutcome::picked},
    {"NO CARRIER", AtFinal::no_carrier, CallOutcome::failed, CallOutcome::picked},
    {"ERROR", AtFinal::error, CallOutcome::failed, CallOutcome::picked},
    {"NO DIALTONE", AtFinal::no_dialtone, CallOutcome::failed, CallOutcome::picked},
    {"NO DIAL TONE", AtFinal::no_dialtone, CallOutcome::failed, CallOutcome::picked},
    {"+CME ERROR: 30", AtFinal::cme_error, CallOutcome::failed, CallOutcome::picked},
    {"+CME ERROR: no network service", AtFinal::cme_error, CallOutcome::failed, CallOutcome::picked},
    {"+CMS ERROR: 500", AtFinal::cms_error, CallOutcome::failed, CallOutcome::picked},
    {"COMMAND NOT SUPPORT", AtFinal::vendor_error, CallOutcome::failed, CallOutcome::picked},
    {"ABORTED", AtFinal::vendor_error, CallOutcome::failed, CallOutcome::picked},
};

std::string name(std::optional<CallOutcome> o) {
  return o ? std::string(osvi::hal::to_string(*o)) : "(proceeding)";
}

TEST(LineStatus, EveryFinalResultCode) {
  for (const Row& r : kTable) {
    SCOPED_TRACE(r.line);
    auto code = AtParser::final_code(r.line, {"COMMAND NOT SUPPORT", "ABORTED"});
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, r.code);
    EXPECT_EQ(name(osvi::hal::outcome_for_final(*code, false)), name(r.before_answer));
    EXPECT_EQ(name(osvi::hal::outcome_for_final(*code, true)), name(r.after_answer));
  }
}

TEST(LineStatus, NotFinalCodes) {
  for (const char* l : {"RING", "+CLIP: \"+1\",145", "VOICE CALL: BEGIN", "ok", "NO CARRIERS", "BUSYNESS"}) {
    SCOPED_TRACE(l);
    EXPECT_FALSE(AtParser::final_code(l, {}).has_value());
  }
}

TEST(LineStatus, OsviSpellings) {
  EXPECT_EQ(osvi::hal::to_string(CallOutcome::picked), "picked");
  EXPECT_EQ(osvi::hal::to_string(CallOutcome::busy), "busy");
  EXPECT_EQ(osvi::hal::to_string(CallOutcome::not_picked), "not_picked");
  EXPECT_EQ(osvi::hal::to_string(CallOutcome::failed), "failed");
}

}  // namespace
