// Thin RAII owners of sqlite3 connections and prepared statements, private to the store.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "osvi/result.hpp"

namespace osvi::daemon::sql {

// SQLITE_TRANSIENT is an old-style cast macro; this is the same value without tripping -Wold-style-cast.
inline const auto kTransient = reinterpret_cast<sqlite3_destructor_type>(static_cast<intptr_t>(-1));

// A prepared statement. Bind failures are remembered and reported by the next step(), so call sites can
// chain binds without checking each one.
class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Parameters are 1-based, as in SQLite.
  void bind(int index, int64_t value) { note(sqlite3_bind_int64(stmt_, index, value)); }
  void bind(int index, int value) { bind(index, static_cast<int64_t>(value)); }
  void bind(int index, bool value) { bind(index, static_cast<int64_t>(value ? 1 : 0)); }
  void bind(int index, std::string_view value) {
    note(sqlite3_bind_text64(stmt_, index, value.data(), value.size(), kTransient, SQLITE_UTF8));
  }
  void bind(int index, const std::string& value) { bind(index, std::string_view(value)); }
  void bind(int index, const char* value) { bind(index, std::string_view(value)); }
  void bind_null(int index) { note(sqlite3_bind_null(stmt_, index)); }
  // Raw bytes (an embedding's float32 vector); copied by SQLite.
  void bind_blob(int index, const void* data, size_t size) {
    note(sqlite3_bind_blob64(stmt_, index, data, size, kTransient));
  }
  template <class T>
  void bind(int index, const std::optional<T>& value) {
    if (value) {
      bind(index, *value);
    } else {
      bind_null(index);
    }
  }
  // Binds every argument in order, starting at parameter 1.
  template <class... Args>
  void bind_all(const Args&... args) {
    int index = 0;
    (bind(++index, args), ...);
  }

  // true: a row is ready; false: the statement is done.
  Result<bool> step();
  // Runs a statement that returns no rows of interest.
  Status run();

  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string text(int col) const;
  double real(int col) const { return sqlite3_column_double(stmt_, col); }
  // A BLOB column's bytes, valid until the next step or reset of this statement.
  std::string_view blob(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    const int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr ? std::string_view()
                        : std::string_view(static_cast<const char*>(p), static_cast<size_t>(n));
  }
  std::optional<int64_t> opt_int64(int col) const {
    return is_null(col) ? std::nullopt : std::optional<int64_t>(int64(col));
  }
  std::optional<std::string> opt_text(int col) const {
    return is_null(col) ? std::nullopt : std::optional<std::string>(text(col));
  }

  // Makes the statement reusable and drops its read snapshot; cached statements must not pin the WAL.
  void reset();
  const char* sql() const { return sqlite3_sql(stmt_); }

  // Set while a StmtRef holds the statement: borrowing it again would reset it under the first borrower.
  bool borrowed = false;

 private:
  void note(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }
  Error error(std::string_view what, int rc) const;

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  int bind_rc_ = SQLITE_OK;
};

// A borrowed cached statement; resets it when the borrower is done, whatever path it leaves by.
class StmtRef {
 public:
  explicit StmtRef(Stmt* stmt) : stmt_(stmt) { stmt_->borrowed = true; }
  ~StmtRef() {
    if (stmt_ != nullptr) {
      stmt_->reset();
      stmt_->borrowed = false;
    }
  }
  StmtRef(StmtRef&& other) noexcept : stmt_(other.stmt_) { other.stmt_ = nullptr; }
  StmtRef& operator=(StmtRef&&) = delete;
  StmtRef(const StmtRef&) = delete;
  StmtRef& operator=(const StmtRef&) = delete;
  Stmt* operator->() const { return stmt_; }
  Stmt& operator*() const { return *stmt_; }

 private:
  Stmt* stmt_;
};

// One connection and its statement cache. The cache is keyed by SQL text, so a statement is prepared once
// per connection and reused; the cache is finalized before the connection closes.
class Db {
 public:
  static Result<std::unique_ptr<Db>> open(const std::string& path, int flags);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  sqlite3* handle() const { return db_; }
  std::string errmsg() const { return sqlite3_errmsg(db_); }
  int errcode() const { return sqlite3_extended_errcode(db_); }
  // Rows changed by the last INSERT/UPDATE/DELETE on this connection.
  int64_t changes() const { return sqlite3_changes64(db_); }
  bool in_transaction() const { return sqlite3_get_autocommit(db_) == 0; }

  // Runs one or more statements with no parameters (schema scripts, pragmas without results).
  Status exec(std::string_view sql);
  // A prepared statement from the cache, prepared on first use. -EBUSY if that SQL is already borrowed
  // (a nested use of the same query); such code must finish the outer use first.
  Result<StmtRef> cached(const std::string& sql);
  // The same for SQL assembled per request (a filter's shape): only the kShapes most recently used texts
  // stay prepared, so the many possible shapes cannot grow the cache for the daemon's life while the few a
  // client repeats skip SQLite's parser and planner.
  Result<StmtRef> cached_shape(const std::string& sql);
  static constexpr size_t kShapes = 32;
  // A single-column, single-row query (pragmas): the text of the first row, or nullopt when none.
  Result<std::optional<std::string>> query_text(const std::string& sql);

 private:
  explicit Db(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  Result<std::unique_ptr<Stmt>> prepare(const std::string& sql);

  std::map<std::string, std::unique_ptr<Stmt>, std::less<>> cache_;
  // Most recently used first; a short list searched linearly costs far less than a prepare.
  std::list<std::pair<std::string, std::unique_ptr<Stmt>>> shapes_;
};

// "what failed: sqlite text (code N)", the shape of every store error.
Error sqlite_error(std::string_view what, sqlite3* db, int rc);

// "store: <what>: <inner>", without doubling the "store: " prefix of an inner store error.
inline Error wrap(std::string_view what, const Error& error) {
  std::string_view inner = error.message;
  if (inner.starts_with("store: ")) inner.remove_prefix(7);
  return make_error("store: " + std::string(what) + ": " + std::string(inner), error.code);
}

// Runs a cached statement that returns no rows.
template <class... Args>
Status run(Db& db, const std::string& sql, const Args&... args) {
  auto stmt = db.cached(sql);
  if (!stmt.ok()) return stmt.error();
  (*stmt)->bind_all(args...);
  return (*stmt)->run();
}

}  // namespace osvi::daemon::sql
