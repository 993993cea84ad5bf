// Finding and opening osvid's lazily loaded modules (osvi-phone.so, osvi-speech.so): heavy libraries that an
// idle box should not map at start.
#pragma once

#include <dlfcn.h>

#include <cerrno>
#include <memory>
#include <string>

#include "osvi/result.hpp"

namespace osvi::daemon::modules {

inline constexpr int kModuleMissing = -ELIBACC;

// Owns the dlopen handle. Modules are opened with RTLD_NODELETE, so dlclose only drops the reference: the
// libraries stay mapped until exit (their exit-time destructors run as usual, and LeakSanitizer still finds
// their singletons through the module's globals).
struct DlClose {
  void operator()(void* h) const { dlclose(h); }
};
using DlHandle = std::unique_ptr<void, DlClose>;

// Opens `file` (e.g. "osvi-phone.so"). When the environment variable `env_var` is set it is the only place
// tried: a wrong override should fail loudly, not fall back to another copy. Otherwise, in order: next to the
// executable (build/daemon/osvid), beside it in the build tree (build/tests/* → build/daemon/), then
// `installed` (${libdir}/osvi/...). The first copy that exists is the one meant, so its error (a missing
// dependency) is the one reported; when none exists the loader's own words about the installed path are.
// RTLD_LOCAL keeps the library's symbols out of the global scope; RTLD_NOW fails here, not in the middle of a
// request. Errors carry kModuleMissing.
Result<DlHandle> open(const std::string& file, const char* env_var, const char* installed);

template <class Fn>
Fn symbol(void* handle, const char* name) {
  return reinterpret_cast<Fn>(dlsym(handle, name));
}

}  // namespace osvi::daemon::modules
