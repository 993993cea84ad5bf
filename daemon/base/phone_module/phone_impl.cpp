// osvi-phone.so: libphonenumber behind the plain C ABI of osvi_phone.h, loaded by osvid on first use.
#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <new>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "osvi_phone.h"
#include "phone_time_zones.h"

#define OSVI_PHONE_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

// The singleton loads its metadata on first use; every call after that is cheap.
const PhoneNumberUtil& util() {
  return *PhoneNumberUtil::GetInstance();
}

// Truncates rather than overflows: a cut message is better than none.
void copy_out(const std::string& s, char* buf, size_t len) {
  if (buf == nullptr || len == 0) return;
  const size_t n = s.size() < len - 1 ? s.size() : len - 1;
  std::memcpy(buf, s.data(), n);
  buf[n] = '\0';
}

}  // namespace

OSVI_PHONE_EXPORT int osvi_phone_abi_version(void) {
  return OSVI_PHONE_ABI_VERSION;
}

OSVI_PHONE_EXPORT int osvi_phone_valid_country(const char* region) {
  // No exception may leave a C function; a failure to answer means "not known".
  try {
    if (region == nullptr) return 0;
    std::set<std::string> regions;
    util().GetSupportedRegions(&regions);
    return regions.contains(region) ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

namespace {

// Parses text for region, checks the number's length and then `valid`, and writes its E.164 form: the part
// osvi_phone_normalize and osvi_phone_normalize_any share. Exceptions are the callers' to catch.
template <class Valid>
int normalize_with(const char* text, const char* region, char* out, size_t out_len, char* err, size_t err_len,
                   Valid valid) {
  if (text == nullptr || region == nullptr || out == nullptr) {
    copy_out("null argument", err, err_len);
    return -EINVAL;
  }
  PhoneNumber number;
  if (util().Parse(text, region, &number) != PhoneNumberUtil::NO_PARSING_ERROR) {
    return OSVI_PHONE_NOT_PLAUSIBLE;
  }
  switch (util().IsPossibleNumberWithReason(number)) {
    case PhoneNumberUtil::TOO_SHORT:
      return OSVI_PHONE_TOO_SHORT;
    case PhoneNumberUtil::TOO_LONG:
      return OSVI_PHONE_TOO_LONG;
    default:
      break;
  }
  if (!valid(number)) return OSVI_PHONE_NOT_PLAUSIBLE;
  std::string e164;
  util().Format(number, PhoneNumberUtil::E164, &e164);
  if (e164.size() + 1 > out_len) {
    copy_out("E.164 result longer than the output buffer", err, err_len);
    return -ERANGE;
  }
  copy_out(e164, out, out_len);
  return OSVI_PHONE_OK;
}

// No exception may leave a C function: each becomes -errno with its message.
template <class Fn>
int guarded(char* err, size_t err_len, Fn fn) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    copy_out("out of memory", err, err_len);
    return -ENOMEM;
  } catch (const std::exception& e) {
    copy_out(e.what(), err, err_len);
    return -EIO;
  } catch (...) {
    copy_out("unknown exception in libphonenumber", err, err_len);
    return -EIO;
  }
}

const osvi_phone_tz::Entry* find_prefix(std::string_view digits) {
  using osvi_phone_tz::Entry;
  uint32_t value = 0;
  for (char c : digits) value = value * 10 + static_cast<uint32_t>(c - '0');
  const Entry* begin = osvi_phone_tz::kEntries;
  const Entry* end = begin + osvi_phone_tz::kEntryCount;
  const auto length = static_cast<uint8_t>(digits.size());
  const Entry* it = std::lower_bound(begin, end, std::pair{length, value}, [](const Entry& e, auto key) {
    return std::pair{e.length, e.value} < key;
  });
  return it != end && it->length == length && it->value == value ? it : nullptr;
}

// phonenumbers.timezone.time_zones_for_number, step for step: an invalid number has no zone; a number whose
// type does not say where it is (a mobile in most countries, toll-free) gets its country's zones; any other
// the zones of its longest listed prefix.
const osvi_phone_tz::Entry* zones_entry(const char* e164) {
  PhoneNumber number;
  if (util().Parse(e164, "ZZ", &number) != PhoneNumberUtil::NO_PARSING_ERROR) return nullptr;
  const PhoneNumberUtil::PhoneNumberType type = util().GetNumberType(number);
  if (type == PhoneNumberUtil::UNKNOWN) return nullptr;
  if (!util().IsNumberGeographical(type, number.country_code())) {
    // The package slices the code's first 1+n digits for n = longest..1: the whole code, then (a three-digit
    // code not listed) its first two digits.
    const std::string cc = std::to_string(number.country_code());
    if (const auto* e = find_prefix(cc)) return e;
    return cc.size() == 3 ? find_prefix(std::string_view(cc).substr(0, 2)) : nullptr;
  }
  std::string formatted;
  util().Format(number, PhoneNumberUtil::E164, &formatted);
  const std::string_view digits = std::string_view(formatted).substr(1);
  for (size_t n = std::min<size_t>(digits.size(), static_cast<size_t>(osvi_phone_tz::kLongestPrefix)); n > 0;
       --n) {
    if (const auto* e = find_prefix(digits.substr(0, n))) return e;
  }
  return nullptr;
}

}  // namespace

OSVI_PHONE_EXPORT int osvi_phone_normalize(const char* text, const char* region, char* out, size_t out_len,
                                           char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    return normalize_with(text, region, out, out_len, err, err_len,
                          [&](const PhoneNumber& n) { return util().IsValidNumberForRegion(n, region); });
  });
}

OSVI_PHONE_EXPORT int osvi_phone_normalize_any(const char* text, const char* default_region, char* out,
                                               size_t out_len, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    return normalize_with(text, default_region, out, out_len, err, err_len,
                          [](const PhoneNumber& n) { return util().IsValidNumber(n); });
  });
}

OSVI_PHONE_EXPORT int osvi_phone_time_zones(const char* e164, char* out, size_t out_len, char* err,
                                            size_t err_len) {
  return guarded(err, err_len, [&] {
    if (e164 == nullptr || out == nullptr || out_len == 0) {
      copy_out("null argument", err, err_len);
      return -EINVAL;
    }
    out[0] = '\0';
    const osvi_phone_tz::Entry* e = zones_entry(e164);
    if (e == nullptr) return 0;
    std::string joined;
    for (unsigned i = 0; i < e->count; ++i) {
      if (i > 0) joined += '\n';
      joined += osvi_phone_tz::kNamePool + osvi_phone_tz::kNameOffsets[osvi_phone_tz::kLists[e->list + i]];
    }
    if (joined.size() + 1 > out_len) {
      copy_out("time-zone list longer than the output buffer", err, err_len);
      return -ERANGE;
    }
    copy_out(joined, out, out_len);
    return static_cast<int>(e->count);
  });
}
