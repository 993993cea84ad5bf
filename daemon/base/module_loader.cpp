// osvid's modules are found the way every lazily loaded library is (osvi/shared_library.hpp).
#include "osvi/base/module_loader.hpp"

namespace osvi::daemon::modules {

Result<DlHandle> open(const std::string& file, const char* env_var, const char* installed) {
  return dl::open_module(file, env_var, installed);
}

}  // namespace osvi::daemon::modules
