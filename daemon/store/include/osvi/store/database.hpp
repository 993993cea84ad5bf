// The one connection to the osvid database: opening, migrating, checking, health, and transactions.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "osvi/clock.hpp"
#include "osvi/result.hpp"

namespace osvi::daemon {

namespace sql {
class Db;
class Checkpointer;
}  // namespace sql

struct StoreOptions {
  std::string path;  // the database file; its folder must already exist
  int busy_timeout_ms = 5000;
  bool quick_check = true;
  // WAL checkpoints run on a worker thread with its own connection (store/checkpointer.hpp) once the WAL
  // reaches checkpoint_pages; the loop checkpoints itself only past 4x that. false: SQLite's auto-checkpoint
  // at checkpoint_pages, inside whichever commit crosses it (on the loop). The daemon keeps the default.
  bool background_checkpoint = true;
  int checkpoint_pages = 1000;  // SQLite's own default
};

// Who ran the WAL checkpoints (background_checkpoint only; counts since open).
struct CheckpointStats {
  bool background = false;  // the worker runs (a file database with background_checkpoint)
  int threshold_pages = 0;  // WAL size that wakes the worker
  int hard_pages = 0;       // WAL size at which the loop checkpoints itself
  int64_t worker = 0;       // checkpoint runs the worker completed
  int64_t loop = 0;         // checkpoints the loop ran itself at the hard bound
  bool pending = false;     // the worker was asked and has not finished
};

// What opening found and did, for the caller to log.
struct OpenReport {
  int schema_before = 0;
  int schema_after = 0;
  int migrations_applied = 0;
  bool created = false;            // the file did not exist before
  std::string quick_check = "ok";  // "ok", "skipped", or the problems joined with "; "
  bool quick_check_ok = true;
  std::vector<std::string> recovered_calls;  // calls closed as failed/daemon_restart, oldest first
};

struct StoreHealth {
  std::string path;
  int schema_version = 0;
  bool quick_check_ok = true;
  std::string quick_check;
  int64_t size_bytes = 0;    // database file plus its WAL on disk
  int64_t calls_total = -1;  // -1 when the count failed
};

class Database;

// An open transaction: BEGIN IMMEDIATE at the top level, a SAVEPOINT when one is already open. It rolls back
// when destroyed without commit(), so no path out of a writer (early return, exception) leaves it open.
// Transactions nest strictly: an inner one must end before its outer one.
class [[nodiscard]] Transaction {
 public:
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  // On failure the transaction is rolled back and the error returned. Ends the transaction either way.
  Status commit();
  // Undoes this transaction's work (only the savepoint's when nested). Harmless when already ended.
  void rollback();

  bool active() const { return db_ != nullptr; }
  bool nested() const { return !savepoint_.empty(); }

 private:
  friend class Database;
  Transaction(Database& db, std::string savepoint) : db_(&db), savepoint_(std::move(savepoint)) {}
  void end();

  Database* db_;
  std::string savepoint_;  // empty at the top level
};

// Not thread-safe: used from one thread (the daemon's event loop). Other processes may open the same file;
// WAL and the busy timeout arbitrate between them.
class Database {
 public:
  static int latest_schema_version();
  // Opens or creates the file, checks it, and migrates it. Closing interrupted calls is the Store's part,
  // because it writes the calls and outbox tables.
  static Result<std::unique_ptr<Database>> open(const StoreOptions& options, const Clock& clock);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  const OpenReport& open_report() const { return report_; }
  int schema_version() const { return report_.schema_after; }
  const StoreOptions& options() const { return options_; }
  const Clock& clock() const { return clock_; }
  // The file's part of the health report; calls_total is left at -1 (Store::health counts the calls).
  StoreHealth health() const;
  // Drops the page cache's unused pages (sqlite3_db_release_memory): start-up reads (migrations, quick_check)
  // leave ~1 MB cached that an idle box does not need; later queries read the pages again from the OS's page
  // cache. Returns the bytes released.
  int64_t release_memory();
  // Changes when another connection committed (PRAGMA data_version): a cheap "anything new?" probe.
  int64_t data_version();
  CheckpointStats checkpoint_stats() const;
  // For tests: while held the checkpoint worker ignores wake-ups, as if stuck; releasing lets it run.
  void hold_checkpoints(bool held);

  // Transaction tx = *db.begin(); ... tx.commit(). The error case is a failed BEGIN/SAVEPOINT (e.g. busy).
  Result<Transaction> begin();
  // Runs body in a transaction: committed when it returns ok, rolled back on an error, which is returned.
  // An exception from body rolls back and becomes an error (it does not propagate).
  Status transaction(const std::function<Status()>& body);
  bool in_transaction() const;

  // The connection, for the repositories; sqlite.hpp, which defines it, is private to the store.
  sql::Db& sql() { return *db_; }

 private:
  friend class Transaction;
  friend class Store;
  Database(std::unique_ptr<sql::Db> db, const StoreOptions& options, const Clock& clock);
  Status configure_and_migrate();
  Status start_checkpoints();

  std::unique_ptr<sql::Db> db_;
  // After db_: destroyed (worker joined, its connection closed) before the loop's connection closes, so
  // that close is the last one and checkpoints what is left.
  std::unique_ptr<sql::Checkpointer> checkpointer_;
  StoreOptions options_;
  const Clock& clock_;
  OpenReport report_;
  int savepoint_depth_ = 0;
  bool opened_ = false;  // set by Store::open once recovery succeeded
};

}  // namespace osvi::daemon
