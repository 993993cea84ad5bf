// osvi-phone.so: libphonenumber behind the plain C ABI of osvi_phone.h, loaded by osvid on first use.
#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <new>
#include <set>
#include <string>

#include "osvi_phone.h"

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

OSVI_PHONE_EXPORT int osvi_phone_normalize(const char* text, const char* region, char* out, size_t out_len,
                                           char* err, size_t err_len) {
  try {
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
    if (!util().IsValidNumberForRegion(number, region)) return OSVI_PHONE_NOT_PLAUSIBLE;
    std::string e164;
    util().Format(number, PhoneNumberUtil::E164, &e164);
    if (e164.size() + 1 > out_len) {
      copy_out("E.164 result longer than the output buffer", err, err_len);
      return -ERANGE;
    }
    copy_out(e164, out, out_len);
    return OSVI_PHONE_OK;
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
