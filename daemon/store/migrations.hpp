// The ordered schema migrations of the store, private to it.
#pragma once

#include <span>
#include <string_view>

namespace osvi::daemon::store_schema {

// Element i brings the schema from user_version i to i + 1. Append only: a shipped script never changes.
std::span<const std::string_view> migrations();

}  // namespace osvi::daemon::store_schema
