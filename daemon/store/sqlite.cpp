// RAII wrappers over the sqlite3 C API: connection, cached statements, error text.
#include "sqlite.hpp"

#include <algorithm>
#include <cerrno>
#include <iterator>

namespace osvi::daemon::sql {
namespace {

// Callers branch on the errno (duplicate → 409, busy → retry, full disk → alarm) without knowing SQLite
// codes.
int errno_for(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return -EBUSY;
    case SQLITE_CONSTRAINT:
      return (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) ? -EEXIST : -EINVAL;
    case SQLITE_FULL:
      return -ENOSPC;
    case SQLITE_NOMEM:
      return -ENOMEM;
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
      return -EACCES;
    case SQLITE_CANTOPEN:
      return -ENOENT;
    case SQLITE_RANGE:
    case SQLITE_MISUSE:
    case SQLITE_MISMATCH:
      return -EINVAL;
    default:
      return -EIO;
  }
}

}  // namespace

Error sqlite_error(std::string_view what, sqlite3* db, int rc) {
  std::string msg(what);
  if (!msg.empty()) msg += ": ";
  // The connection's message is more specific (names the constraint or column) when it belongs to this rc.
  if (db != nullptr && sqlite3_extended_errcode(db) == rc) {
    msg += sqlite3_errmsg(db);
  } else {
    msg += sqlite3_errstr(rc);
  }
  msg += " (sqlite code " + std::to_string(rc) + ")";
  return make_error(std::move(msg), errno_for(rc));
}

// The caller adds what it was doing; the SQL text stays out so messages fit a log line or an API error.
Error Stmt::error(std::string_view what, int rc) const {
  return sqlite_error(what, db_, rc);
}

Result<bool> Stmt::step() {
  if (bind_rc_ != SQLITE_OK) {
    int rc = bind_rc_;
    return error(std::string("binding parameters of [") + sql() + "]", rc);
  }
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return error({}, sqlite3_extended_errcode(db_));
}

Status Stmt::run() {
  for (;;) {
    auto row = step();
    if (!row.ok()) return row.error();
    if (!*row) return {};
  }
}

std::string Stmt::text(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  if (p == nullptr) return {};
  // Read the length after the text call: the conversion to text may change it.
  int n = sqlite3_column_bytes(stmt_, col);
  return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
}

void Stmt::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_rc_ = SQLITE_OK;
}

Result<std::unique_ptr<Db>> Db::open(const std::string& path, int flags) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  // open_v2 hands out a handle even on failure (for the message); it must still be closed.
  std::unique_ptr<Db> db(raw != nullptr ? new Db(raw) : nullptr);
  if (rc != SQLITE_OK) return sqlite_error("cannot open database " + path, raw, rc);
  sqlite3_extended_result_codes(raw, 1);
  return db;
}

Db::~Db() {
  cache_.clear();
  shapes_.clear();
  sqlite3_close_v2(db_);
}

Status Db::exec(std::string_view sql) {
  std::string text(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return {};
  std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
  sqlite3_free(err);
  rc = sqlite3_extended_errcode(db_);
  return make_error("executing SQL failed: " + msg + " (sqlite code " + std::to_string(rc) + ")",
                    errno_for(rc));
}

Result<std::unique_ptr<Stmt>> Db::prepare(const std::string& sql) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &raw,
                              nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(raw);
    return sqlite_error("preparing [" + sql + "] failed", db_, sqlite3_extended_errcode(db_));
  }
  return std::make_unique<Stmt>(db_, raw);
}

Result<StmtRef> Db::cached(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    auto stmt = prepare(sql);
    if (!stmt.ok()) return stmt.error();
    it = cache_.emplace(sql, std::move(*stmt)).first;
  }
  if (it->second->borrowed) return make_error("statement [" + sql + "] is already in use", -EBUSY);
  return StmtRef(it->second.get());
}

Result<StmtRef> Db::cached_shape(const std::string& sql) {
  auto it = std::find_if(shapes_.begin(), shapes_.end(), [&](const auto& e) { return e.first == sql; });
  if (it == shapes_.end()) {
    auto stmt = prepare(sql);
    if (!stmt.ok()) return stmt.error();
    shapes_.emplace_front(sql, std::move(*stmt));
    // The least recently used statement that nobody holds makes room; a borrowed one is never finalized.
    if (shapes_.size() > kShapes) {
      for (auto victim = std::prev(shapes_.end()); victim != shapes_.begin(); --victim) {
        if (!victim->second->borrowed) {
          shapes_.erase(victim);
          break;
        }
      }
    }
    it = shapes_.begin();
  } else if (it != shapes_.begin()) {
    shapes_.splice(shapes_.begin(), shapes_, it);
  }
  if (it->second->borrowed) return make_error("statement [" + sql + "] is already in use", -EBUSY);
  return StmtRef(it->second.get());
}

Result<std::optional<std::string>> Db::query_text(const std::string& sql) {
  auto stmt = cached(sql);
  if (!stmt.ok()) return stmt.error();
  auto row = (*stmt)->step();
  if (!row.ok()) return row.error();
  if (!*row) return std::optional<std::string>();
  return std::optional<std::string>((*stmt)->text(0));
}

}  // namespace osvi::daemon::sql
