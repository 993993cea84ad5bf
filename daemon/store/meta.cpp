// MetaRepo: small persistent key/value settings and counters.
#include "osvi/store/meta.hpp"

#include <string>

#include "osvi/store/database.hpp"
#include "sqlite.hpp"

namespace osvi::daemon {
namespace {

using sql::run;
using sql::wrap;

}  // namespace

std::optional<std::string> MetaRepo::get(std::string_view key) {
  auto stmt = db_.sql().cached("SELECT value FROM meta WHERE key = ?1");
  if (!stmt.ok()) return std::nullopt;
  (*stmt)->bind(1, key);
  auto row = (*stmt)->step();
  if (!row.ok() || !*row) return std::nullopt;
  return (*stmt)->text(0);
}

Status MetaRepo::set(std::string_view key, std::string_view value) {
  Status s = run(
      db_.sql(),
      "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      key, value);
  if (!s.ok()) return wrap("setting meta " + std::string(key), s.error());
  return {};
}

Result<int64_t> MetaRepo::get_int(std::string_view key) {
  auto stmt = db_.sql().cached("SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?1");
  if (!stmt.ok()) return stmt.error();
  (*stmt)->bind(1, key);
  auto row = (*stmt)->step();
  if (!row.ok()) return row.error();
  return *row ? (*stmt)->int64(0) : int64_t{0};
}

Status MetaRepo::add_int(std::string_view key, int64_t delta) {
  return run(db_.sql(),
             "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = "
             "CAST(CAST(value AS INTEGER) + ?2 AS TEXT)",
             key, std::to_string(delta));
}

}  // namespace osvi::daemon
