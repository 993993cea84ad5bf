// Opening shared libraries on first use (dlopen): heavy dependencies an idle osvid must not map at start.
// At the bottom of the tree (beside result.hpp) because audio, hal and net load theirs themselves.
#pragma once

#include <dlfcn.h>

#include <cerrno>
#include <memory>
#include <string>

#include "osvi/result.hpp"

namespace osvi::dl {

inline constexpr int kLibraryMissing = -ELIBACC;

// Owns the dlopen handle. Everything is opened with RTLD_NODELETE, so dlclose only drops the reference: the
// library stays mapped until exit (function pointers taken from it stay valid; its exit-time destructors run
// as usual, and LeakSanitizer still finds its singletons through its globals).
struct DlClose {
  void operator()(void* h) const { dlclose(h); }
};
using Handle = std::unique_ptr<void, DlClose>;

// A system library by soname ("libcurl.so.4"), found by the dynamic loader's usual search. RTLD_LOCAL keeps
// its symbols out of the global scope; RTLD_NOW fails here, not in the middle of a request. Errors carry
// kLibraryMissing and the loader's words.
Result<Handle> open_library(const std::string& soname);

// One of osvi's own modules (e.g. "osvi-webrtc.so"). When the environment variable `env_var` is set it is the
// only place tried: a wrong override should fail loudly, not fall back to another copy. Otherwise, in order:
// next to the executable (build/daemon/osvid), beside it in the build tree (build/tests/* → build/daemon/),
// then `installed` (${libdir}/osvi/...). The first copy that exists is the one meant, so its error (a missing
// dependency) is the one reported; when none exists the loader's own words about the installed path are.
Result<Handle> open_module(const std::string& file, const char* env_var, const char* installed);

// Looks `name` up in `handle`, typed as `fn` (e.g. decltype(&::curl_easy_init)); false when it is missing.
template <class Fn>
bool bind(void* handle, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(handle, name));
  return fn != nullptr;
}

// Opens the system library `soname` and binds its functions with `bind_all(handle)` (a chain of bind()
// calls). The error names `what` ("the ALSA library") when the library is missing, or the function the
// loader could not find; both carry kLibraryMissing. The handle may go: the library is RTLD_NODELETE.
template <class BindAll>
Status load_library(const char* soname, const std::string& what, BindAll&& bind_all) {
  auto opened = open_library(soname);
  if (!opened)
    return make_error(what + " is not available (" + opened.error().message + ")", kLibraryMissing);
  if (!bind_all(opened->get())) {
    const char* why = dlerror();
    return make_error(std::string(soname) + " lacks a function osvi uses: " + (why ? why : "unknown"),
                      kLibraryMissing);
  }
  return {};
}

// A library's function table and whether opening it worked: what each loader keeps in a function-local
// static, so the first user opens the library and later ones read the outcome.
template <class Api>
struct Table {
  Api api;
  Status status;  // an error when the library or one of its functions is missing
};

// load_library() filling `Api` with `bind_all(handle, api)`.
template <class Api, class BindAll>
Table<Api> load_table(const char* soname, const std::string& what, BindAll&& bind_all) {
  Table<Api> t;
  t.status = load_library(soname, what, [&](void* h) { return bind_all(h, t.api); });
  return t;
}

}  // namespace osvi::dl
