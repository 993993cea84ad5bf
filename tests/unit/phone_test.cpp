// normalize_phone / valid_country: E.164 output, accepted input shapes, errors that say what is wrong.
#include "osvi/daemon/phone.hpp"

#include <gtest/gtest.h>

namespace {

using osvi::daemon::normalize_phone;
using osvi::daemon::valid_country;

std::string ok(std::string_view digits, std::string_view cc) {
  auto r = normalize_phone(digits, cc);
  EXPECT_TRUE(r.ok()) << digits << " " << cc << ": " << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : std::string();
}

std::string err(std::string_view digits, std::string_view cc) {
  auto r = normalize_phone(digits, cc);
  EXPECT_FALSE(r.ok()) << digits << " " << cc << " gave " << (r.ok() ? *r : "");
  if (r.ok()) return {};
  EXPECT_EQ(r.error().code, -EINVAL);
  return r.error().message;
}

TEST(Phone, ValidNumbersOfIndiaUsAndBritainBecomeE164) {
  EXPECT_EQ(ok("9876543210", "IN"), "+919876543210");
  EXPECT_EQ(ok("2015550123", "US"), "+12015550123");
  EXPECT_EQ(ok("7400123456", "GB"), "+447400123456");
  EXPECT_EQ(ok("2079460958", "GB"), "+442079460958");
}

TEST(Phone, SeparatorsTrunkPrefixAndCountryPrefixAreAccepted) {
  EXPECT_EQ(ok("98765 43210", "IN"), "+919876543210");
  EXPECT_EQ(ok("98765-43210", "IN"), "+919876543210");
  EXPECT_EQ(ok("(201) 555-0123", "US"), "+12015550123");
  EXPECT_EQ(ok("09876543210", "IN"), "+919876543210");
  EXPECT_EQ(ok("07400 123456", "GB"), "+447400123456");
  EXPECT_EQ(ok("+91 98765 43210", "IN"), "+919876543210");
  EXPECT_EQ(ok("919876543210", "IN"), "+919876543210");
}

TEST(Phone, LowerCaseCountryIsAccepted) {
  EXPECT_TRUE(valid_country("in"));
  EXPECT_EQ(ok("9876543210", "in"), "+919876543210");
}

TEST(Phone, NumberOfAnotherCountryIsRefused) {
  EXPECT_NE(err("+12015550123", "IN").find("not a plausible number for IN"), std::string::npos);
}

TEST(Phone, TooShortAndTooLongSaySo) {
  EXPECT_NE(err("98765", "IN").find("too short for a number in IN"), std::string::npos);
  EXPECT_NE(err("98765432101234", "IN").find("too long for a number in IN"), std::string::npos);
  EXPECT_NE(err("12345678901234567890", "US").find("too long"), std::string::npos);
  EXPECT_NE(err("201555", "US").find("too short"), std::string::npos);
}

TEST(Phone, ImplausibleNumberIsRefused) {
  // Right length, but no Indian or North American number has these leading digits.
  EXPECT_NE(err("5555555555", "IN").find("not a plausible number for IN"), std::string::npos);
  EXPECT_NE(err("1234567890", "US").find("not a plausible number for US"), std::string::npos);
}

TEST(Phone, LettersAndSymbolsAreRefused) {
  EXPECT_NE(err("98765abcde", "IN").find("must contain digits only"), std::string::npos);
  EXPECT_NE(err("1-800-FLOWERS", "US").find("must contain digits only"), std::string::npos);
  EXPECT_NE(err("*123#", "IN").find("must contain digits only"), std::string::npos);
  EXPECT_NE(err("", "IN").find("must contain digits"), std::string::npos);
  EXPECT_NE(err(" - ", "IN").find("must contain digits"), std::string::npos);
}

TEST(Phone, UnknownCountryIsNamed) {
  EXPECT_FALSE(valid_country("XX"));
  EXPECT_FALSE(valid_country("IND"));
  EXPECT_FALSE(valid_country(""));
  EXPECT_FALSE(valid_country("001"));
  EXPECT_FALSE(valid_country("Z1"));
  EXPECT_TRUE(valid_country("IN"));
  EXPECT_TRUE(valid_country("GB"));
  EXPECT_EQ(err("9876543210", "XX"), "unknown country code \"XX\"");
  EXPECT_EQ(err("9876543210", ""), "unknown country code \"\"");
}

}  // namespace
