// Repository of the meta table: small persistent key/value settings and counters.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "osvi/result.hpp"

namespace osvi::daemon {

class Database;

class MetaRepo {
 public:
  explicit MetaRepo(Database& db) : db_(db) {}

  // nullopt when absent or when the read failed: callers treat both as "not set yet".
  std::optional<std::string> get(std::string_view key);
  // Upsert.
  Status set(std::string_view key, std::string_view value);
  // The value as an integer (SQLite's CAST), 0 when absent.
  Result<int64_t> get_int(std::string_view key);
  // Adds delta to an integer value (absent counts as 0), in the caller's transaction if any.
  Status add_int(std::string_view key, int64_t delta);

 private:
  Database& db_;
};

}  // namespace osvi::daemon
