// The console's static files, embedded at build time (cmake/gen_console_assets.cmake writes the table).
#pragma once

#include <array>
#include <span>
#include <string_view>

namespace osvi::daemon::console {

struct Asset {
  std::string_view path;          // "/index.html", "/js/app.js": the URL path it is served at
  std::string_view content_type;  // from the extension, with charset for text
  std::string_view etag;          // quoted, the first 16 hex digits of the file's SHA-256
  std::string_view body;
};

// Sorted by path.
std::span<const Asset> embedded_assets();

}  // namespace osvi::daemon::console
