// Phone numbers as the OSVI API takes them (digits plus an ISO country), normalised to E.164.
#pragma once

#include <string>
#include <string_view>

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

}  // namespace osvi::daemon
