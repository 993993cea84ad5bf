// AtParser: framing without CRs, URCs inside responses, echo, garbage, vendor finals, and the field parsers.
#include "osvi/hal/at_parser.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using osvi::hal::AtFinal;
using osvi::hal::AtLine;
using osvi::hal::AtLineKind;
using osvi::hal::AtParser;

namespace {

std::vector<AtLine> drain(AtParser& p) {
  std::vector<AtLine> out;
  while (auto l = p.next()) out.push_back(*l);
  return out;
}

TEST(AtParser, ResponseWithUrcsInTheMiddle) {
  AtParser p;
  p.begin_command("AT+CLCC");
  p.feed(
      "\r\n+CLCC: 1,1,4,0,0,\"+919800000001\",145\r\n\r\nRING\r\n\r\n+CLIP: \"+919800000001\",145,,,,0\r\n");
  p.feed("\r\nOK\r\n");
  auto l = drain(p);
  ASSERT_EQ(l.size(), 4u);
  EXPECT_EQ(l[0].kind, AtLineKind::intermediate);
  EXPECT_EQ(l[1].kind, AtLineKind::unsolicited);
  EXPECT_EQ(l[1].text, "RING");
  EXPECT_EQ(l[2].kind, AtLineKind::unsolicited);
  EXPECT_EQ(l[3].kind, AtLineKind::final);
  EXPECT_EQ(l[3].final, AtFinal::ok);
  EXPECT_FALSE(p.command_in_flight());
}

TEST(AtParser, ToleratesMissingCarriageReturnsAndSplitReads) {
  AtParser p;
  p.begin_command("AT+CGSN");
  for (char c : std::string("\n861234567890123\nO")) p.feed(std::string(1, c));
  p.feed("K\n");
  auto l = drain(p);
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l[0].kind, AtLineKind::intermediate);
  EXPECT_EQ(l[0].text, "861234567890123");
  EXPECT_EQ(l[1].final, AtFinal::ok);
}

TEST(AtParser, FlushCompletesAFinalWithoutTerminator) {
  AtParser p;
  p.begin_command("AT");
  p.feed("\r\nOK");
  EXPECT_FALSE(p.next());
  EXPECT_TRUE(p.has_partial());
  p.flush();
  auto l = drain(p);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].kind, AtLineKind::final);
}

TEST(AtParser, EchoIsRecognised) {
  AtParser p;
  p.begin_command("ATE0");
  p.feed("ATE0\r\r\nOK\r\n");
  auto l = drain(p);
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l[0].kind, AtLineKind::echo);
  EXPECT_EQ(l[1].kind, AtLineKind::final);
}

TEST(AtParser, GarbageBytesAreDroppedAndCounted) {
  AtParser p;
  p.begin_command("AT");
  p.feed(std::string("\x00\xff\xfe\x01", 4));
  p.feed("\r\nO\x80K\r\n");
  auto l = drain(p);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].final, AtFinal::ok);
  EXPECT_EQ(p.garbage_bytes(), 5u);
}

TEST(AtParser, OverlongLinesAreCutNotKept) {
  AtParser p;
  p.feed(std::string(AtParser::kMaxLine * 4, 'x'));
  p.feed("\r\nRING\r\n");
  auto l = drain(p);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].text, "RING");
  EXPECT_GT(p.garbage_bytes(), AtParser::kMaxLine);
}

TEST(AtParser, VendorFinalsEndTheCommand) {
  AtParser p;
  p.add_vendor_final("+QERR");
  p.begin_command("AT+QPCMV=1,2");
  p.feed("\r\nCOMMAND NOT SUPPORT\r\n");
  auto l = drain(p);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].kind, AtLineKind::final);
  EXPECT_EQ(l[0].final, AtFinal::vendor_error);
  p.begin_command("AT+QFOO");
  p.feed("+QERR: 3\r\n");
  l = drain(p);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].final, AtFinal::vendor_error);
}

TEST(AtParser, CallProgressCodesBelongToCallSetupOnly) {
  AtParser p;
  p.begin_command("ATD+4930123456;");
  p.feed("\r\nBUSY\r\n");
  auto l = drain(p);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].kind, AtLineKind::final);
  EXPECT_EQ(l[0].final, AtFinal::busy);

  // While a poll is in flight, NO CARRIER is the call ending, not the poll's answer.
  p.begin_command("AT+CLCC");
  p.feed("\r\nNO CARRIER\r\n\r\nOK\r\n");
  l = drain(p);
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l[0].kind, AtLineKind::unsolicited);
  ASSERT_TRUE(l[0].call_progress);
  EXPECT_EQ(*l[0].call_progress, AtFinal::no_carrier);
  EXPECT_EQ(l[1].kind, AtLineKind::final);

  p.feed("\r\nNO ANSWER\r\n");
  l = drain(p);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].kind, AtLineKind::unsolicited);
  EXPECT_EQ(*l[0].call_progress, AtFinal::no_answer);
}

TEST(AtParser, EverythingIsUnsolicitedWithoutACommand) {
  AtParser p;
  p.feed("\r\nVOICE CALL: END: 000012\r\n\r\nOK\r\n\r\n+CLCC: 1,0,0,0,0,\"+1\",145\r\n");
  for (const AtLine& l : drain(p)) EXPECT_EQ(l.kind, AtLineKind::unsolicited) << l.text;
}

TEST(AtParser, CmeErrorIsFinal) {
  AtParser p;
  p.begin_command("AT+CPCMREG=1");
  p.feed("\r\n+CME ERROR: operation not allowed\r\n");
  auto l = drain(p);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].final, AtFinal::cme_error);
  EXPECT_EQ(l[0].text, "+CME ERROR: operation not allowed");
}

TEST(AtParser, AbandonedCommandMakesLateAnswersUnsolicited) {
  AtParser p;
  p.begin_command("AT+CGMR");
  p.abandon_command();
  p.feed("\r\n+CGMR: LE11B14SIM7600M22\r\n\r\nOK\r\n");
  for (const AtLine& l : drain(p)) EXPECT_EQ(l.kind, AtLineKind::unsolicited);
}

TEST(AtParserFields, Clcc) {
  auto e = osvi::hal::parse_clcc("+CLCC: 2,1,4,0,0,\"+919800000001\",145");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->index, 2);
  EXPECT_TRUE(e->incoming);
  EXPECT_EQ(e->stat, 4);
  EXPECT_EQ(e->number, "+919800000001");
  EXPECT_FALSE(osvi::hal::parse_clcc("+CLCC: 1,x,0,0,0"));
  EXPECT_FALSE(osvi::hal::parse_clcc("+CLCC: 1,0"));
  EXPECT_FALSE(osvi::hal::parse_clcc("+CLCCX: 1,0,0,0,0"));
}

TEST(AtParserFields, ClipAndRegistration) {
  EXPECT_EQ(*osvi::hal::parse_clip("+CLIP: \"+919800000001\",145,,,,0"), "+919800000001");
  EXPECT_EQ(*osvi::hal::parse_clip("+CLIP: \"\",128"), "");
  EXPECT_EQ(*osvi::hal::parse_reg_stat("+CREG: 0,5", true), 5);
  EXPECT_EQ(*osvi::hal::parse_reg_stat("+CEREG: 2", false), 2);
  EXPECT_FALSE(osvi::hal::parse_reg_stat("+CREG: 0", true));
}

TEST(LineVocabulary, E164AndDtmf) {
  EXPECT_TRUE(osvi::hal::is_e164("+919800000001"));
  EXPECT_FALSE(osvi::hal::is_e164("919800000001"));
  EXPECT_FALSE(osvi::hal::is_e164("+0123"));
  EXPECT_FALSE(osvi::hal::is_e164("+12345678901234567"));
  EXPECT_FALSE(osvi::hal::is_e164("+91;ATH"));
  EXPECT_TRUE(osvi::hal::is_dtmf("0123456789*#ABCD"));
  EXPECT_FALSE(osvi::hal::is_dtmf("1;"));
  EXPECT_FALSE(osvi::hal::is_dtmf(""));
}

}  // namespace
