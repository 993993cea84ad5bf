// Phone numbers as the OSVI API takes them (digits plus an ISO country), normalised to E.164.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"

namespace osvi::daemon {

// True for an ISO 3166-1 alpha-2 region libphonenumber knows. Case-insensitive: "in" is accepted as "IN",
// since a client that lower-cases the code means the same country and rejecting it would help nobody.
// When osvi-phone.so cannot be loaded, any alpha-2 shape is accepted, so that normalize_phone reports the
// real problem rather than every country being "unknown".
bool valid_country(std::string_view country_code);

// Normalises a number to E.164 ("+919876543210") and checks that it is a valid number of the region.
//
// The documented input is digits only, without the country code. For robustness the function also accepts
// spaces, dashes, dots and parentheses between the digits, the national trunk prefix ("09876543210" for IN),
// the country code without "+" ("919876543210") and a full "+<cc>..." number; in every case the number must
// belong to country_code (a "+1..." number is not accepted for IN). Anything else (letters, '*', '#') is
// refused rather than interpreted, so a vanity number never reaches the dialler by accident.
//
// Errors (-EINVAL) read as a sentence after the field name: 'unknown country code "XX"',
// 'must contain digits only (got "98765abc")', '"12345" is too short for a number in IN',
// '"..." is not a plausible number for IN'.
//
// libphonenumber lives in the module osvi-phone.so, loaded with its metadata on the first call, not at start
// (docs/architecture.md): a box that never places API calls never pays for it. The module is looked for at
// $OSVI_PHONE_MODULE if set, else next to the executable, in ../daemon/ beside it (build tree), then in
// ${libdir}/osvi/. If it cannot be loaded every call fails with -ELIBACC,
// 'phone number support is not installed: <dlerror>'.
Result<std::string> normalize_phone(std::string_view digits, std::string_view country_code);

// Campaign contacts and DND entries: free-form numbers (spec §1 "Phone formats"). A number with "+" or the
// "00" international prefix may be of any country; otherwise it is read as a national number of
// default_region ("9876543210", "09876543210", "919876543210" for IN). Separators as above; letters refused.
// Same errors as normalize_phone ('"123" is too short for a number in IN', '"+1 555" is not a plausible
// number').
Result<std::string> normalize_any_phone(std::string_view text, std::string_view default_region);

// A PBX extension as a SIP line dials it (Request-URI sip:<extension>@<registrar>): 1 to 15 of 0-9 * #, no
// '+' ("201", "*97", "0049301234"). Only a SIP line dials one; a number that normalises to E.164 is dialled
// as E.164 (docs/api.md, POST /v1/call).
// Inline: pure, and the fuzz targets link a stand-in for the rest of this module.
inline bool is_pbx_extension(std::string_view number) {
  if (number.empty() || number.size() > 15) return false;
  for (char c : number)
    if (!((c >= '0' && c <= '9') || c == '*' || c == '#')) return false;
  return true;
}

// The IANA zones libphonenumber's time-zone data maps an E.164 number to (longest prefix), e.g.
// {"America/New_York"} for +1212..., several for a country-wide prefix, none when unknown. The table is
// generated at build time from Debian's python3-phonenumbers (the same upstream release as libphonenumber8),
// since libphonenumber's C++ API has no time-zone mapper; it lives in osvi-phone.so.
std::vector<std::string> phone_time_zones(std::string_view e164);

}  // namespace osvi::daemon
