// dlopen of system libraries and of osvi's own modules, with the modules' search order (shared_library.hpp).
#include "osvi/shared_library.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

namespace osvi::dl {
namespace {

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

}  // namespace

Result<Handle> open_library(const std::string& soname) {
  Handle h(dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE));
  if (!h) return make_error(dl_error(), kLibraryMissing);
  return h;
}

Result<Handle> open_module(const std::string& file, const char* env_var, const char* installed) {
  if (const char* env = std::getenv(env_var); env && *env) return open_library(env);
  std::vector<std::string> paths;
  if (const std::string dir = exe_dir(); !dir.empty()) {
    paths.push_back(dir + "/" + file);
    paths.push_back(dir + "/../daemon/" + file);
  }
  paths.emplace_back(installed);
  for (const std::string& p : paths) {
    struct stat st {};
    if (stat(p.c_str(), &st) == 0) return open_library(p);
  }
  return open_library(paths.back());
}

}  // namespace osvi::dl
