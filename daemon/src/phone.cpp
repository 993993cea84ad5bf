// normalize_phone / valid_country: input checks here, libphonenumber via osvi-phone.so loaded on first use.
#include "osvi/daemon/phone.hpp"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "osvi/daemon/log.hpp"
#include "osvi_phone.h"

#ifndef OSVI_PHONE_MODULE_INSTALLED
#error "OSVI_PHONE_MODULE_INSTALLED (the installed path of osvi-phone.so) comes from daemon/CMakeLists.txt"
#endif

namespace osvi::daemon {
namespace {

constexpr int kModuleMissing = -ELIBACC;

// Owns the dlopen handle. The module is opened with RTLD_NODELETE, so dlclose only drops the reference:
// protobuf and ICU stay mapped until exit, their own exit-time destructors run as usual, and LeakSanitizer
// still finds libphonenumber's singleton through the module's globals.
struct DlClose {
  void operator()(void* h) const { dlclose(h); }
};
using DlHandle = std::unique_ptr<void, DlClose>;

struct Module {
  DlHandle handle;
  osvi_phone_valid_country_fn valid_country = nullptr;
  osvi_phone_normalize_fn normalize = nullptr;
};

std::string dl_error() {
  const char* e = dlerror();
  return e ? e : "unknown dlopen error";
}

std::string exe_dir() {
  std::string buf(4096, '\0');
  const ssize_t n = readlink("/proc/self/exe", buf.data(), buf.size());
  if (n <= 0 || static_cast<size_t>(n) >= buf.size()) return {};
  buf.resize(static_cast<size_t>(n));
  const size_t slash = buf.rfind('/');
  return slash == std::string::npos ? std::string() : buf.substr(0, slash);
}

// Where osvi-phone.so may be, in order. OSVI_PHONE_MODULE, when set, is the only place: a wrong override
// should fail loudly, not fall back to another copy. Otherwise: next to the executable (build/daemon/osvid),
// beside it in the build tree (build/tests/* → build/daemon/), then the installed ${libdir}/osvi/.
std::vector<std::string> candidates() {
  if (const char* env = std::getenv("OSVI_PHONE_MODULE"); env && *env) return {env};
  std::vector<std::string> out;
  if (const std::string dir = exe_dir(); !dir.empty()) {
    out.push_back(dir + "/osvi-phone.so");
    out.push_back(dir + "/../daemon/osvi-phone.so");
  }
  out.emplace_back(OSVI_PHONE_MODULE_INSTALLED);
  return out;
}

template <class Fn>
Fn symbol(void* handle, const char* name) {
  return reinterpret_cast<Fn>(dlsym(handle, name));
}

Result<Module> open_module(const std::string& path) {
  // RTLD_LOCAL keeps protobuf/ICU/abseil symbols out of the global scope, where they could bind to anything
  // osvid maps later; RTLD_NOW fails here, not in the middle of a request, if a dependency is missing.
  DlHandle h(dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE));
  if (!h) return make_error(dl_error(), kModuleMissing);
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

Result<Module> find_module() {
  const std::vector<std::string> paths = candidates();
  for (const std::string& p : paths) {
    struct stat st {};
    // The first copy that exists is the one meant: its error (e.g. libphonenumber.so.8 missing) is the useful
    // one.
    if (stat(p.c_str(), &st) == 0) return open_module(p);
  }
  // None exists: dlopen the last one anyway, so the error is the loader's own words with the path.
  return open_module(paths.back());
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

  const std::string text = (plus ? "+" : "") + clean;
  char out[32] = {};  // E.164 is at most "+" and 15 digits
  char err[256] = {};
  const int rc = m->normalize(text.c_str(), region.c_str(), out, sizeof out, err, sizeof err);
  switch (rc) {
    case OSVI_PHONE_OK:
      return std::string(out);
    case OSVI_PHONE_TOO_SHORT:
      return make_error(quoted(digits) + " is too short for a number in " + region, -EINVAL);
    case OSVI_PHONE_TOO_LONG:
      return make_error(quoted(digits) + " is too long for a number in " + region, -EINVAL);
    case OSVI_PHONE_NOT_PLAUSIBLE:
      return make_error(quoted(digits) + " is not a plausible number for " + region, -EINVAL);
    default:
      // Not the caller's fault: keep the module's errno so it is not reported as a bad number.
      return make_error(std::string("phone number library failed: ") + err, rc < 0 ? rc : -EIO);
  }
}

}  // namespace osvi::daemon
