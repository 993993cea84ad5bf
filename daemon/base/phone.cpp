// normalize_phone / valid_country: input checks here, libphonenumber via osvi-phone.so loaded on first use.
#include "osvi/base/phone.hpp"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "osvi/base/log.hpp"
#include "osvi/base/module_loader.hpp"
#include "osvi/net/text.hpp"
#include "osvi_phone.h"

#ifndef OSVI_PHONE_MODULE_INSTALLED
#error "OSVI_PHONE_MODULE_INSTALLED (the installed path of osvi-phone.so) comes from daemon/CMakeLists.txt"
#endif

namespace osvi::daemon {
namespace {

using modules::DlHandle;
using modules::kModuleMissing;
using modules::symbol;

struct Module {
  DlHandle handle;
  osvi_phone_valid_country_fn valid_country = nullptr;
  osvi_phone_normalize_fn normalize = nullptr;
};

Result<Module> find_module() {
  auto opened = modules::open("osvi-phone.so", "OSVI_PHONE_MODULE", OSVI_PHONE_MODULE_INSTALLED);
  if (!opened) return opened.error();
  DlHandle h = std::move(*opened);
  const std::string path = "osvi-phone.so";
  auto version = symbol<osvi_phone_abi_version_fn>(h.get(), "osvi_phone_abi_version");
  Module m;
  m.valid_country = symbol<osvi_phone_valid_country_fn>(h.get(), "osvi_phone_valid_country");
  m.normalize = symbol<osvi_phone_normalize_fn>(h.get(), "osvi_phone_normalize");
  if (!version || !m.valid_country || !m.normalize) {
    return make_error(path + ": not an osvi-phone module (missing osvi_phone_* symbols)", kModuleMissing);
  }
  if (version() != OSVI_PHONE_ABI_VERSION) {
    return make_error(path + ": ABI version " + std::to_string(version()) + ", osvid needs " +
                          std::to_string(OSVI_PHONE_ABI_VERSION) + " (a stale install?)",
                      kModuleMissing);
  }
  m.handle = std::move(h);
  return m;
}

// Loaded once on success. A failure is retried on the next call (the package may be installed meanwhile) and
// logged once, so the journal says why calls are refused without repeating it per request.
const Module* module(std::string* error) {
  static std::mutex mu;
  static Module loaded;
  static bool logged = false;
  std::lock_guard lock(mu);
  if (loaded.handle) return &loaded;
  auto m = find_module();
  if (!m.ok()) {
    *error = "phone number support is not installed: " + m.error().message;
    if (!logged) log::error(*error);
    logged = true;
    return nullptr;
  }
  loaded = std::move(*m);
  return &loaded;
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

}  // namespace

bool valid_country(std::string_view country_code) {
  if (!is_region_shape(country_code)) return false;
  std::string error;
  const Module* m = module(&error);
  // Without the module the list of regions is unknown. Any alpha-2 shape passes, so that the caller's next
  // step, normalize_phone, reports the real problem instead of calling every country unknown. "001"
  // (non-geographic) and "ZZ" (unknown) are not alpha-2 shaped or not in the list, so they fail here.
  if (!m) return true;
  return m->valid_country(upper(country_code).c_str()) == 1;
}

Result<std::string> normalize_phone(std::string_view digits, std::string_view country_code) {
  std::string load_error;
  const Module* m = module(&load_error);
  if (!m) return make_error(load_error, kModuleMissing);
  if (!valid_country(country_code)) {
    return make_error("unknown country code " + net::quoted(country_code), -EINVAL);
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
      return make_error("must contain digits only (got " + net::quoted(digits) + ")", -EINVAL);
    }
  }
  if (clean.empty()) return make_error("must contain digits (got " + net::quoted(digits) + ")", -EINVAL);
  if (clean.size() > 17)
    return make_error(net::quoted(digits) + " is too long for a number in " + region, -EINVAL);

  const std::string text = (plus ? "+" : "") + clean;
  char out[32] = {};  // E.164 is at most "+" and 15 digits
  char err[256] = {};
  const int rc = m->normalize(text.c_str(), region.c_str(), out, sizeof out, err, sizeof err);
  switch (rc) {
    case OSVI_PHONE_OK:
      return std::string(out);
    case OSVI_PHONE_TOO_SHORT:
      return make_error(net::quoted(digits) + " is too short for a number in " + region, -EINVAL);
    case OSVI_PHONE_TOO_LONG:
      return make_error(net::quoted(digits) + " is too long for a number in " + region, -EINVAL);
    case OSVI_PHONE_NOT_PLAUSIBLE:
      return make_error(net::quoted(digits) + " is not a plausible number for " + region, -EINVAL);
    default:
      // Not the caller's fault: keep the module's errno so it is not reported as a bad number.
      return make_error(std::string("phone number library failed: ") + err, rc < 0 ? rc : -EIO);
  }
}

}  // namespace osvi::daemon
