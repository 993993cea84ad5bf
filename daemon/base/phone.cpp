// normalize_phone, normalize_any_phone, valid_country, phone_time_zones: input checks here, libphonenumber
// and its time-zone table via osvi-phone.so loaded on first use.
#include "osvi/base/phone.hpp"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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
  osvi_phone_normalize_fn normalize_any = nullptr;
  osvi_phone_time_zones_fn time_zones = nullptr;
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
  m.normalize_any = symbol<osvi_phone_normalize_fn>(h.get(), "osvi_phone_normalize_any");
  m.time_zones = symbol<osvi_phone_time_zones_fn>(h.get(), "osvi_phone_time_zones");
  if (!version || !m.valid_country || !m.normalize || !m.normalize_any || !m.time_zones) {
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

// Error wording: " in IN" / " for IN" after the number, nothing for a number of any region.
std::string in(std::string_view region) {
  return region.empty() ? std::string() : " in " + std::string(region);
}

std::string for_(std::string_view region) {
  return region.empty() ? std::string() : " for " + std::string(region);
}

// The input as typed, reduced to what libphonenumber is given: digits, and whether a '+' led them.
struct Cleaned {
  bool plus = false;
  std::string digits;
};

// Separators people type are dropped; everything else that is not a digit is an error. `region` only words
// the too-long error ("" for a number of any region).
Result<Cleaned> clean_input(std::string_view text, std::string_view region) {
  Cleaned c;
  size_t i = 0;
  while (i < text.size() && text[i] == ' ') ++i;
  if (i < text.size() && text[i] == '+') {
    c.plus = true;
    ++i;
  }
  for (; i < text.size(); ++i) {
    char ch = text[i];
    if (ch >= '0' && ch <= '9') {
      c.digits += ch;
    } else if (ch == ' ' || ch == '-' || ch == '.' || ch == '(' || ch == ')') {
      continue;
    } else {
      return make_error("must contain digits only (got " + net::quoted(text) + ")", -EINVAL);
    }
  }
  if (c.digits.empty()) return make_error("must contain digits (got " + net::quoted(text) + ")", -EINVAL);
  // E.164 has at most 15 digits; 17 leaves room for a trunk or "00" prefix before libphonenumber decides.
  if (c.digits.size() > 17)
    return make_error(net::quoted(text) + " is too long for a number" + in(region), -EINVAL);
  return c;
}

// Runs one of the module's normalizers and words its answer. region "" words the errors for a number of any
// region.
Result<std::string> call_normalizer(osvi_phone_normalize_fn fn, const Cleaned& c, std::string_view text,
                                    const std::string& parse_region, std::string_view region) {
  const std::string input = (c.plus ? "+" : "") + c.digits;
  char out[32] = {};  // E.164 is at most "+" and 15 digits
  char err[256] = {};
  const int rc = fn(input.c_str(), parse_region.c_str(), out, sizeof out, err, sizeof err);
  switch (rc) {
    case OSVI_PHONE_OK:
      return std::string(out);
    case OSVI_PHONE_TOO_SHORT:
      return make_error(net::quoted(text) + " is too short for a number" + in(region), -EINVAL);
    case OSVI_PHONE_TOO_LONG:
      return make_error(net::quoted(text) + " is too long for a number" + in(region), -EINVAL);
    case OSVI_PHONE_NOT_PLAUSIBLE:
      return make_error(net::quoted(text) + " is not a plausible number" + for_(region), -EINVAL);
    default:
      // Not the caller's fault: keep the module's errno so it is not reported as a bad number.
      return make_error(std::string("phone number library failed: ") + err, rc < 0 ? rc : -EIO);
  }
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
  auto cleaned = clean_input(digits, region);
  if (!cleaned) return cleaned.error();
  return call_normalizer(m->normalize, *cleaned, digits, region, region);
}

Result<std::string> normalize_any_phone(std::string_view text, std::string_view default_region) {
  std::string load_error;
  const Module* m = module(&load_error);
  if (!m) return make_error(load_error, kModuleMissing);
  if (!valid_country(default_region)) {
    return make_error("unknown country code " + net::quoted(default_region), -EINVAL);
  }
  const std::string region = upper(default_region);
  auto cleaned = clean_input(text, "");
  if (!cleaned) return cleaned.error();
  Cleaned& c = *cleaned;
  // "00" is the international prefix of most of the world (India and Europe among them), so "0044..." is
  // "+44...". A national number never starts with two trunk zeros.
  if (!c.plus && c.digits.starts_with("00")) {
    c.plus = true;
    c.digits.erase(0, 2);
    if (c.digits.empty()) return make_error(net::quoted(text) + " is too short for a number", -EINVAL);
  }
  // A '+' number may be of any country, so its errors name none; a national one is the default region's.
  return call_normalizer(m->normalize_any, c, text, region, c.plus ? std::string_view() : region);
}

std::vector<std::string> phone_time_zones(std::string_view e164) {
  std::vector<std::string> zones;
  std::string load_error;
  const Module* m = module(&load_error);
  // E.164 only: libphonenumber would read letters as keypad digits ("+1212555abcd"), which no caller means.
  const bool e164_shape =
      e164.size() >= 2 && e164.size() <= 16 && e164[0] == '+' &&
      std::all_of(e164.begin() + 1, e164.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!e164_shape || !m) return zones;
  const std::string number(e164);  // NUL-terminated for the C ABI
  char out[OSVI_PHONE_TIME_ZONES_MAX + 1];
  char err[256] = {};
  const int n = m->time_zones(number.c_str(), out, sizeof out, err, sizeof err);
  if (n < 0) {
    log::error(std::string("phone time zones of ") + number + ": " + err);
    return zones;
  }
  zones.reserve(static_cast<size_t>(n));
  std::string_view rest(out);
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    zones.emplace_back(rest.substr(0, nl));
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  }
  return zones;
}

}  // namespace osvi::daemon
