// Shared by the API fuzz targets: how a broken promise aborts, and what every message sent back must be.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "osvi/net/text.hpp"

// A broken promise aborts with the line and the condition, so a crash report says which promise it was.
#define require(ok)                                                                 \
  do {                                                                              \
    if (!(ok)) {                                                                    \
      std::fprintf(stderr, "%s:%d: promise broken: %s\n", __FILE__, __LINE__, #ok); \
      std::abort();                                                                 \
    }                                                                               \
  } while (false)

// A message the API sends back: valid UTF-8, no control characters, bounded whatever the request held.
inline void check_message(std::string_view m) {
  require(!m.empty() && m.size() <= 1024);
  require(osvi::net::utf8_valid(m));
  for (char c : m) require(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f);
}
