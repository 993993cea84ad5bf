// The SIP bodies the SIP line parses itself: NOTIFY sipfrag status lines and DTMF INFO bodies.
#include "osvi/hal/sip_parse.hpp"

#include <gtest/gtest.h>

using osvi::hal::parse_dtmf_info;
using osvi::hal::parse_sipfrag;

TEST(SipFrag, StatusLines) {
  auto ok = parse_sipfrag("SIP/2.0 200 OK\r\n");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->code, 200);
  EXPECT_EQ(ok->reason, "OK");
  auto busy = parse_sipfrag("SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP x\r\n\r\n");
  ASSERT_TRUE(busy);
  EXPECT_EQ(busy->code, 486);
  EXPECT_EQ(busy->reason, "Busy Here");
  auto trying = parse_sipfrag("sip/2.0 100 Trying");
  ASSERT_TRUE(trying);
  EXPECT_EQ(trying->code, 100);
  EXPECT_EQ(parse_sipfrag("SIP/2.0 200")->reason, "");
  for (const char* bad : {"", "SIP/2.0", "SIP/2.0 20 OK", "SIP/2.0 2000 OK", "SIP/2.0 099 x", "SIP/2.0 700 x",
                          "HTTP/1.1 200 OK", "SIP/2.0 2x0 OK", "INVITE sip:a@b SIP/2.0"})
    EXPECT_FALSE(parse_sipfrag(bad)) << bad;
  const std::string long_reason = "SIP/2.0 500 " + std::string(300, 'x');
  EXPECT_EQ(parse_sipfrag(long_reason)->reason.size(), 128u);
}

TEST(DtmfInfo, RelayAndPlainBodies) {
  EXPECT_EQ(parse_dtmf_info("Signal=5\r\nDuration=160\r\n", true), '5');
  EXPECT_EQ(parse_dtmf_info("Duration=160\r\nsignal = #\r\n", true), '#');
  EXPECT_EQ(parse_dtmf_info("Signal=10\r\n", true), '*');
  EXPECT_EQ(parse_dtmf_info("Signal=11\r\n", true), '#');
  EXPECT_EQ(parse_dtmf_info("Signal=a\r\n", true), 'A');
  EXPECT_FALSE(parse_dtmf_info("Signal=E\r\n", true));
  EXPECT_FALSE(parse_dtmf_info("Signal=55\r\n", true));
  EXPECT_FALSE(parse_dtmf_info("Duration=160\r\n", true));
  EXPECT_FALSE(parse_dtmf_info("", true));
  EXPECT_EQ(parse_dtmf_info("7\r\n", false), '7');
  EXPECT_FALSE(parse_dtmf_info("Signal=7", false));
  EXPECT_FALSE(parse_dtmf_info(std::string(2000, '1'), true));
}
