// normalize_phone / valid_country on libphonenumber's PhoneNumberUtil.
#include "osvi/daemon/phone.hpp"

#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

#include <cerrno>
#include <set>

namespace osvi::daemon {
namespace {

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

// The singleton loads its metadata on first use; every call after that is cheap.
const PhoneNumberUtil& util() {
  return *PhoneNumberUtil::GetInstance();
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

bool is_region_shape(std::string_view s) {
  if (s.size() != 2) return false;
  for (char c : s) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) return false;
  }
  return true;
}

bool known_region(const std::string& region) {
  // "001" (non-geographic) and "ZZ" (unknown) are not alpha-2 shaped or not in the set, so they fail here.
  std::set<std::string> regions;
  util().GetSupportedRegions(&regions);
  return regions.contains(region);
}

std::string quoted(std::string_view s) {
  // Long garbage should not become a long error message.
  constexpr size_t kMax = 40;
  std::string out = "\"";
  out.append(s.substr(0, kMax));
  if (s.size() > kMax) out += "...";
  out += "\"";
  return out;
}

}  // namespace

bool valid_country(std::string_view country_code) {
  return is_region_shape(country_code) && known_region(upper(country_code));
}

Result<std::string> normalize_phone(std::string_view digits, std::string_view country_code) {
  if (!valid_country(country_code)) {
    return make_error("unknown country code " + quoted(country_code), -EINVAL);
  }
  const std::string region = upper(country_code);

  // Separators people type are dropped; everything else that is not a digit is an error.
  std::string clean;
  bool plus = false;
  size_t i = 0;
  while (i < digits.size() && digits[i] == ' ') ++i;
  if (i < digits.size() && digits[i] == '+') {
    plus = true;
    ++i;
  }
  for (; i < digits.size(); ++i) {
    char c = digits[i];
    if (c >= '0' && c <= '9') {
      clean += c;
    } else if (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')') {
      continue;
    } else {
      return make_error("must contain digits only (got " + quoted(digits) + ")", -EINVAL);
    }
  }
  if (clean.empty()) return make_error("must contain digits (got " + quoted(digits) + ")", -EINVAL);
  if (clean.size() > 17)
    return make_error(quoted(digits) + " is too long for a number in " + region, -EINVAL);

  PhoneNumber number;
  const std::string text = (plus ? "+" : "") + clean;
  if (util().Parse(text, region, &number) != PhoneNumberUtil::NO_PARSING_ERROR) {
    return make_error(quoted(digits) + " is not a plausible number for " + region, -EINVAL);
  }
  switch (util().IsPossibleNumberWithReason(number)) {
    case PhoneNumberUtil::TOO_SHORT:
      return make_error(quoted(digits) + " is too short for a number in " + region, -EINVAL);
    case PhoneNumberUtil::TOO_LONG:
      return make_error(quoted(digits) + " is too long for a number in " + region, -EINVAL);
    default:
      break;
  }
  if (!util().IsValidNumberForRegion(number, region)) {
    return make_error(quoted(digits) + " is not a plausible number for " + region, -EINVAL);
  }
  std::string e164;
  util().Format(number, PhoneNumberUtil::E164, &e164);
  return e164;
}

}  // namespace osvi::daemon
