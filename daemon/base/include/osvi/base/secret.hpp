// Box-local secrets kept in the state folder (the recording URL signing key), created once and then reused.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "osvi/result.hpp"

namespace osvi::daemon {

// Returns the `bytes` random bytes stored in `path`, creating the file (mode 0600, written to a temporary
// file and renamed, so a crash never leaves a short key) when it does not exist. A file of another size is
// an error (-EINVAL) rather than silently replaced: replacing the key would invalidate links already handed
// out, and a damaged key file deserves a look. Other errors carry the errno and name the path.
Result<std::string> load_or_create_secret(const std::string& path, size_t bytes);

// HMAC-SHA256 of message under key, as 64 lower-case hex digits (signed recording URLs). An error (-ELIBACC)
// only when libcrypto, opened at the first call (net/digest.hpp), is missing.
Result<std::string> hmac_sha256_hex(std::string_view key, std::string_view message);

}  // namespace osvi::daemon
