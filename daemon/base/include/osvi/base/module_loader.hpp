// Finding and opening osvid's lazily loaded modules (osvi-phone.so, osvi-speech.so): heavy libraries that an
// idle box should not map at start.
#pragma once

#include <dlfcn.h>

#include <cerrno>
#include <memory>
#include <string>

#include "osvi/result.hpp"
#include "osvi/shared_library.hpp"

namespace osvi::daemon::modules {

inline constexpr int kModuleMissing = dl::kLibraryMissing;

using DlHandle = dl::Handle;

// dl::open_module (osvi/shared_library.hpp: the search order, RTLD_LOCAL | RTLD_NOW | RTLD_NODELETE); kept
// under this name for the daemon's rooms. Errors carry kModuleMissing.
Result<DlHandle> open(const std::string& file, const char* env_var, const char* installed);

template <class Fn>
Fn symbol(void* handle, const char* name) {
  return reinterpret_cast<Fn>(dlsym(handle, name));
}

}  // namespace osvi::daemon::modules
