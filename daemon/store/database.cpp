// Database: opening, checking and migrating the osvid file, its health, and transactions.
#include "osvi/store/database.hpp"

#include <cerrno>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <utility>

#include "checkpointer.hpp"
#include "migrations.hpp"
#include "sqlite.hpp"

namespace osvi::daemon {
namespace {

using sql::run;
using sql::wrap;

int parse_int(const std::optional<std::string>& text) {
  return text ? static_cast<int>(std::strtol(text->c_str(), nullptr, 10)) : 0;
}

}  // namespace

int Database::latest_schema_version() {
  return static_cast<int>(store_schema::migrations().size());
}

Database::Database(std::unique_ptr<sql::Db> db, const StoreOptions& options, const Clock& clock)
    : db_(std::move(db)), options_(options), clock_(clock) {}

Database::~Database() {
  // Keeps the query planner's statistics current at almost no cost, as SQLite recommends on close.
  if (db_ && opened_) (void)db_->exec("PRAGMA optimize");
  // Unhooks the loop's connection and joins the worker before db_ closes (see the member's comment).
  checkpointer_.reset();
}

Result<std::unique_ptr<Database>> Database::open(const StoreOptions& options, const Clock& clock) {
  namespace fs = std::filesystem;
  if (options.path.empty()) return make_error("store: no database path configured");
  std::error_code ec;
  fs::path parent = fs::path(options.path).parent_path();
  if (!parent.empty() && !fs::is_directory(parent, ec)) {
    return make_error("store: folder " + parent.string() + " of database " + options.path + " does not exist",
                      -ENOENT);
  }
  const bool existed = fs::exists(options.path, ec);

  // Before the process's first connection: no initial bulk allocation per connection's page cache (SQLite's
  // default is 20 pages, ~87 KB, allocated at the first read and kept until the connection closes, even
  // after sqlite3_db_release_memory). Pages are then allocated one by one and released with the rest, so the
  // start-up release (App::release_startup_memory) returns them too. Process-wide and only possible before
  // SQLite initialises: a process that opened a database earlier (a test) keeps the default.
  static const int no_bulk = sqlite3_config(SQLITE_CONFIG_PAGECACHE, nullptr, 0, 0);
  (void)no_bulk;
  // NOMUTEX: the store is used from one thread (docs/store.md), so SQLite's per-call connection mutex (taken
  // for every bind, step and column read) only costs time.
  auto sqldb = sql::Db::open(options.path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX);
  if (!sqldb.ok()) return wrap("opening " + options.path, sqldb.error());

  std::unique_ptr<Database> db(new Database(std::move(*sqldb), options, clock));
  db->report_.created = !existed;
  if (Status s = db->configure_and_migrate(); !s.ok()) return s.error();
  if (Status s = db->start_checkpoints(); !s.ok()) return s.error();
  return db;
}

Status Database::configure_and_migrate() {
  sql::Db& db = *db_;
  const std::string& path = options_.path;
  sqlite3_busy_timeout(db.handle(), options_.busy_timeout_ms);

  // The first read of the file: a file that is not a database fails here, before anything writes to it.
  auto version_text = db.query_text("PRAGMA user_version");
  if (!version_text.ok()) {
    if ((db.errcode() & 0xff) == SQLITE_NOTADB) {
      return make_error("store: " + path + " is not an SQLite database: " + version_text.error().message,
                        -EINVAL);
    }
    return wrap("reading the schema version of " + path, version_text.error());
  }
  const int latest = latest_schema_version();
  report_.schema_before = parse_int(*version_text);
  report_.schema_after = report_.schema_before;
  if (report_.schema_before > latest) {
    return make_error(
        "store: " + path + " has schema version " + std::to_string(report_.schema_before) +
            ", newer than the " + std::to_string(latest) +
            " this osvid knows; refusing to open it (downgrade protection: restore a newer osvid or "
            "a matching backup)",
        -EPROTO);
  }

  auto mode = db.query_text("PRAGMA journal_mode = WAL");
  if (!mode.ok()) return wrap("enabling WAL on " + path, mode.error());
  if (!mode->has_value() || (**mode != "wal" && path != ":memory:")) {
    return make_error(
        "store: " + path + " refused WAL mode (journal_mode is " + mode->value_or("unknown") + ")", -EIO);
  }
  if (Status s = db.exec("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON"); !s.ok()) {
    return wrap("setting pragmas on " + path, s.error());
  }
  // A SQLite built without foreign keys ignores the pragma silently; cascades would then silently not happen.
  auto fk = db.query_text("PRAGMA foreign_keys");
  if (!fk.ok()) return wrap("reading foreign_keys", fk.error());
  if (fk->value_or("0") != "1")
    return make_error("store: this SQLite does not enforce foreign keys", -ENOTSUP);

  if (options_.quick_check) {
    // Each problem is a row; severe damage can also fail the pragma midway. Both end up in the report, with
    // the rows found before the failure, and neither stops the open: the caller decides what to do.
    std::vector<std::string> problems;
    auto stmt = db.cached("PRAGMA quick_check");
    if (!stmt.ok()) {
      problems.push_back(stmt.error().message);
    } else {
      for (;;) {
        auto row = (*stmt)->step();
        if (!row.ok()) {
          problems.push_back(row.error().message);
          break;
        }
        if (!*row) break;
        if (std::string text = (*stmt)->text(0); text != "ok") problems.push_back(std::move(text));
      }
    }
    report_.quick_check_ok = problems.empty();
    report_.quick_check.clear();
    for (const auto& p : problems) report_.quick_check += (report_.quick_check.empty() ? "" : "; ") + p;
    if (problems.empty()) report_.quick_check = "ok";
  } else {
    report_.quick_check = "skipped";
  }

  if (report_.schema_before == latest) return {};

  if (Status s = run(db, "BEGIN IMMEDIATE"); !s.ok())
    return wrap("starting the migration of " + path, s.error());
  auto fail = [&](const std::string& what, const Error& e) -> Status {
    (void)run(db, "ROLLBACK");
    return wrap(what, e);
  };
  // Another process may have migrated between the first read and the write lock.
  auto locked_version = db.query_text("PRAGMA user_version");
  if (!locked_version.ok()) return fail("re-reading the schema version", locked_version.error());
  int from = parse_int(*locked_version);
  if (from > latest) return fail("migrating " + path, make_error("schema version became newer than known"));
  auto scripts = store_schema::migrations();
  for (int v = from; v < latest; ++v) {
    if (Status s = db.exec(scripts[static_cast<size_t>(v)]); !s.ok()) {
      return fail("applying migration " + std::to_string(v + 1) + " to " + path, s.error());
    }
  }
  // PRAGMA user_version is part of the transaction: the version moves with the schema or not at all.
  if (Status s = db.exec("PRAGMA user_version = " + std::to_string(latest)); !s.ok()) {
    return fail("recording the schema version", s.error());
  }
  if (Status s = run(db, "COMMIT"); !s.ok()) return fail("committing the migration of " + path, s.error());
  report_.migrations_applied = latest - from;
  report_.schema_after = latest;
  return {};
}

Status Database::start_checkpoints() {
  if (options_.checkpoint_pages < 1) {
    return make_error(
        "store: checkpoint_pages must be at least 1, not " + std::to_string(options_.checkpoint_pages),
        -EINVAL);
  }
  // An in-memory database has no file a second connection could open, and no WAL to bound.
  if (!options_.background_checkpoint || options_.path == ":memory:") {
    return db_->exec("PRAGMA wal_autocheckpoint = " + std::to_string(options_.checkpoint_pages));
  }
  auto cp = sql::Checkpointer::start(options_.path, options_.checkpoint_pages, options_.busy_timeout_ms);
  if (!cp.ok()) return cp.error();
  if (Status s = (*cp)->attach(db_->handle()); !s.ok()) return s;
  checkpointer_ = std::move(*cp);
  return {};
}

CheckpointStats Database::checkpoint_stats() const {
  CheckpointStats st;
  if (!checkpointer_) return st;
  st.background = true;
  st.threshold_pages = checkpointer_->threshold_pages();
  st.hard_pages = checkpointer_->hard_pages();
  st.worker = checkpointer_->worker_checkpoints();
  st.loop = checkpointer_->loop_checkpoints();
  st.pending = checkpointer_->pending();
  return st;
}

void Database::hold_checkpoints(bool held) {
  if (checkpointer_) checkpointer_->hold(held);
}

StoreHealth Database::health() const {
  StoreHealth h;
  h.path = options_.path;
  h.schema_version = report_.schema_after;
  h.quick_check_ok = report_.quick_check_ok;
  h.quick_check = report_.quick_check;
  std::error_code ec;
  for (const std::string& file : {options_.path, options_.path + "-wal"}) {
    auto size = std::filesystem::file_size(file, ec);
    if (!ec) h.size_bytes += static_cast<int64_t>(size);
  }
  return h;
}

int64_t Database::release_memory() {
  return sqlite3_db_release_memory(db_->handle());
}

int64_t Database::data_version() {
  auto v = db_->query_text("PRAGMA data_version");
  if (!v.ok() || !v->has_value()) return -1;
  return std::strtoll((*v)->c_str(), nullptr, 10);
}

bool Database::in_transaction() const {
  return db_->in_transaction();
}

Result<Transaction> Database::begin() {
  // Nested transactions become savepoints so writers that open their own transaction compose with a caller's.
  const bool nested = db_->in_transaction();
  std::string sp = nested ? "osvi_sp" + std::to_string(savepoint_depth_) : std::string();
  // IMMEDIATE takes the write lock up front: a deferred read->write upgrade can fail with SQLITE_BUSY without
  // honouring the busy timeout.
  if (Status s = run(*db_, nested ? "SAVEPOINT " + sp : std::string("BEGIN IMMEDIATE")); !s.ok()) {
    return wrap("beginning a transaction", s.error());
  }
  if (nested) ++savepoint_depth_;
  return Transaction(*this, std::move(sp));
}

Status Database::transaction(const std::function<Status()>& body) {
  auto tx = begin();
  if (!tx.ok()) return tx.error();
  Status result;
  try {
    result = body();
  } catch (const std::exception& e) {
    result = make_error(std::string("store: transaction body threw: ") + e.what(), -EIO);
  } catch (...) {
    result = make_error("store: transaction body threw an unknown exception", -EIO);
  }
  if (!result.ok()) return result;  // tx rolls back as it goes out of scope
  return tx->commit();
}

Transaction::Transaction(Transaction&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), savepoint_(std::move(other.savepoint_)) {}

Transaction::~Transaction() {
  rollback();
}

void Transaction::end() {
  if (nested()) --db_->savepoint_depth_;
  db_ = nullptr;
}

Status Transaction::commit() {
  if (db_ == nullptr) return make_error("store: committing a transaction that already ended", -EINVAL);
  Status s = run(*db_->db_, nested() ? "RELEASE " + savepoint_ : std::string("COMMIT"));
  if (s.ok()) {
    end();
    return {};
  }
  Error e = wrap("committing a transaction", s.error());
  rollback();
  return e;
}

void Transaction::rollback() {
  if (db_ == nullptr) return;
  sql::Db& db = *db_->db_;
  // SQLite may already have rolled the whole transaction back (disk full, I/O error); then nothing is left.
  if (db.in_transaction()) {
    if (nested()) {
      (void)run(db, "ROLLBACK TO " + savepoint_);
      (void)run(db, "RELEASE " + savepoint_);
    } else {
      (void)run(db, "ROLLBACK");
    }
  }
  end();
}

}  // namespace osvi::daemon
