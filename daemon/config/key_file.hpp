// Private to the configuration parser: reading an endpoint's api_key_file when the configuration is parsed.
#pragma once

#include <cstddef>
#include <string>

namespace osvi::daemon::config_detail {

// A key is a line of a few hundred bytes at most; the bound keeps a wrong path (a log, a device) cheap.
constexpr size_t kMaxKeyFileBytes = 4096;

// Reads the key in `path` into `key`, or says what is wrong with the file in `problem` ("PATH: why", naming
// the path, never the file's content: it may be a key). Blanks and the line end around the key are dropped.
bool read_key_file(const std::string& path, std::string& key, std::string& problem);

}  // namespace osvi::daemon::config_detail
