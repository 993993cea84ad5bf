// normalize_phone / normalize_any_phone / valid_country / phone_time_zones: E.164 output, accepted input
// shapes, errors that say what is wrong, the prefix time-zone table, and libphonenumber staying out of osvid
// until the first number (it lives in osvi-phone.so).
#include "osvi/base/phone.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "osvi/base/time_zone.hpp"

namespace {

using osvi::daemon::normalize_any_phone;
using osvi::daemon::normalize_phone;
using osvi::daemon::phone_time_zones;
using osvi::daemon::TimeZone;
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

std::string any_ok(std::string_view text, std::string_view region) {
  auto r = normalize_any_phone(text, region);
  EXPECT_TRUE(r.ok()) << text << " " << region << ": " << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : std::string();
}

std::string any_err(std::string_view text, std::string_view region) {
  auto r = normalize_any_phone(text, region);
  EXPECT_FALSE(r.ok()) << text << " " << region << " gave " << (r.ok() ? *r : "");
  if (r.ok()) return {};
  EXPECT_EQ(r.error().code, -EINVAL);
  return r.error().message;
}

TEST(PhoneAny, InternationalNumbersOfAnyCountry) {
  EXPECT_EQ(any_ok("+1 212 555 1234", "IN"), "+12125551234");
  EXPECT_EQ(any_ok("+1 (212) 555-1234", "GB"), "+12125551234");
  EXPECT_EQ(any_ok("+44 20 7946 0958", "IN"), "+442079460958");
  EXPECT_EQ(any_ok("0044 20 7946 0958", "IN"), "+442079460958");
  EXPECT_EQ(any_ok("0044 7400 123456", "US"), "+447400123456");
  EXPECT_EQ(any_ok("+91 98765 43210", "US"), "+919876543210");
}

TEST(PhoneAny, NationalNumbersOfTheDefaultRegion) {
  EXPECT_EQ(any_ok("9876543210", "IN"), "+919876543210");
  EXPECT_EQ(any_ok("09876543210", "IN"), "+919876543210");
  EXPECT_EQ(any_ok("919876543210", "IN"), "+919876543210");
  EXPECT_EQ(any_ok("98765.43210", "in"), "+919876543210");
  EXPECT_EQ(any_ok("(212) 555-1234", "US"), "+12125551234");
  EXPECT_EQ(any_ok("020 7946 0958", "GB"), "+442079460958");
}

TEST(PhoneAny, InvalidOrUnlikelyInputIsRefusedWithNormalizePhonesWording) {
  EXPECT_NE(any_err("98765abcde", "IN").find("must contain digits only"), std::string::npos);
  EXPECT_NE(any_err("+1-800-FLOWERS", "IN").find("must contain digits only"), std::string::npos);
  EXPECT_NE(any_err("", "IN").find("must contain digits"), std::string::npos);
  EXPECT_EQ(any_err("123", "IN"), "\"123\" is too short for a number in IN");
  EXPECT_EQ(any_err("+1 555", "IN"), "\"+1 555\" is too short for a number");
  EXPECT_EQ(any_err("00", "IN"), "\"00\" is too short for a number");
  EXPECT_EQ(any_err("5555555555", "IN"), "\"5555555555\" is not a plausible number for IN");
  // Too many digits for the country it names, or no such area code (+1 123...).
  EXPECT_EQ(any_err("+1 212 555 0100 99", "IN"), "\"+1 212 555 0100 99\" is too long for a number");
  EXPECT_EQ(any_err("+1 123 456 7890", "IN"), "\"+1 123 456 7890\" is not a plausible number");
  EXPECT_NE(any_err("123456789012345678", "IN").find("too long"), std::string::npos);
  EXPECT_EQ(any_err("9876543210", "XX"), "unknown country code \"XX\"");
}

// The E.164 number's zones, as phonenumbers.timezone.time_zones_for_number gives them for the data this
// build was generated from (python3-phonenumbers 8.12.57).
TEST(PhoneTimeZones, ZonesOfKnownNumbers) {
  using V = std::vector<std::string>;
  EXPECT_EQ(phone_time_zones("+12125551234"), V{"America/New_York"});
  EXPECT_EQ(phone_time_zones("+14155550123"), V{"America/Los_Angeles"});
  EXPECT_EQ(phone_time_zones("+442079460958"), V{"Europe/London"});
  EXPECT_EQ(phone_time_zones("+61212345678"), V{"Australia/Sydney"});
  // A British mobile is not tied to a place: the country's zones, Crown Dependencies included.
  EXPECT_EQ(phone_time_zones("+447400123456"),
            (V{"Europe/Guernsey", "Europe/Isle_of_Man", "Europe/Jersey", "Europe/London"}));
}

TEST(PhoneTimeZones, IndiaIsTheDatasAliasAndItLoads) {
  // The data still says "Asia/Calcutta", the old name tzdata keeps as a link to Asia/Kolkata; the dialler
  // loads zones by name, so the alias must load and mean IST.
  const auto zones = phone_time_zones("+919876543210");
  ASSERT_EQ(zones, std::vector<std::string>{"Asia/Calcutta"});
  auto tz = TimeZone::load(zones[0]);
  ASSERT_TRUE(tz.ok()) << tz.error().message;
  EXPECT_EQ((*tz)->offset_at(1'800'000'000), 19800);
}

TEST(PhoneTimeZones, NoDataOrNotANumberIsEmpty) {
  EXPECT_TRUE(phone_time_zones("+80012345678").empty());  // international freephone: valid, no zone
  EXPECT_TRUE(phone_time_zones("+15551234").empty());     // not a valid number
  EXPECT_TRUE(phone_time_zones("+3912345").empty());
  EXPECT_TRUE(phone_time_zones("12125551234").empty());  // not E.164
  EXPECT_TRUE(phone_time_zones("").empty());
  EXPECT_TRUE(phone_time_zones("+1212555abcd").empty());
}

TEST(PhoneTimeZones, EveryZoneOfACountryWideListLoads) {
  // "+1" as a whole maps to every North American zone: each must be a name TimeZone knows.
  const auto zones = phone_time_zones("+18005550123");  // toll-free: the country-level list
  ASSERT_GT(zones.size(), 20U);
  EXPECT_TRUE(std::is_sorted(zones.begin(), zones.end()));
  for (const auto& z : zones) {
    auto tz = TimeZone::load(z);
    EXPECT_TRUE(tz.ok()) << z << ": " << (tz.ok() ? "" : tz.error().message);
  }
}

// libphonenumber costs ~4.5 MB resident at start when linked: osvid must not have it among its libraries.
TEST(PhoneModule, OsvidDoesNotLinkLibphonenumber) {
  // What ldd prints, without needing ldd: the loader lists the libraries and exits before main.
  FILE* p = popen("LD_TRACE_LOADED_OBJECTS=1 '" OSVID_PATH "' 2>&1", "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  pclose(p);
  ASSERT_NE(out.find("libc.so"), std::string::npos) << out;  // the trace really ran
  EXPECT_EQ(out.find("libphonenumber"), std::string::npos) << out;
  EXPECT_EQ(out.find("libprotobuf"), std::string::npos) << out;
}

bool maps_contain(const char* needle) {
  std::ifstream f("/proc/self/maps");
  const std::string maps((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return maps.find(needle) != std::string::npos;
}

// Each check runs in a freshly executed child ("threadsafe" death tests re-run the binary), so earlier tests
// in this process have not loaded the module yet.
[[noreturn]] void child_exit(bool ok, const std::string& why) {
  if (!ok) std::fprintf(stderr, "%s\n", why.c_str());
  std::fflush(stderr);
  std::_Exit(ok ? 0 : 1);
}

TEST(PhoneModuleDeathTest, LibphonenumberIsMappedOnlyOnFirstUse) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        if (maps_contain("libphonenumber")) child_exit(false, "libphonenumber mapped before first use");
        auto r = normalize_phone("9876543210", "IN");
        if (!r.ok()) child_exit(false, "normalize_phone failed: " + r.error().message);
        child_exit(maps_contain("libphonenumber") && maps_contain("osvi-phone.so"),
                   "first use did not map osvi-phone.so and libphonenumber");
      },
      testing::ExitedWithCode(0), "");
}

TEST(PhoneModuleDeathTest, MissingModuleIsAClearError) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("OSVI_PHONE_MODULE", "/nonexistent/osvi-phone.so", 1);
        auto r = normalize_phone("9876543210", "IN");
        if (r.ok()) child_exit(false, "normalize_phone succeeded without the module");
        const std::string& m = r.error().message;
        if (m.find("phone number support is not installed: ") != 0 ||
            m.find("/nonexistent/osvi-phone.so") == std::string::npos || r.error().code != -ELIBACC) {
          child_exit(false, "unexpected error: " + m);
        }
        // The country check cannot consult the module, so it passes alpha-2 shapes on to normalize_phone's
        // error instead of calling every country unknown.
        child_exit(valid_country("IN") && !valid_country("IND"), "valid_country without the module");
      },
      testing::ExitedWithCode(0), "");
}

}  // namespace
