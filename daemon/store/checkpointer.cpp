// Checkpointer: the WAL hook on the loop's connection and the worker that checkpoints on its own connection.
#include "checkpointer.hpp"

#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <string_view>
#include <system_error>
#include <utility>

#include "osvi/base/log.hpp"
#include "osvi/base/thread_rank.hpp"
#include "sqlite.hpp"

namespace osvi::daemon::sql {
namespace {

// The hook SQLite calls after each commit on the loop's connection (on the loop thread). It must return
// SQLITE_OK: anything else would be reported as the commit's error although the commit is durable.
int on_wal_commit(void* arg, sqlite3* db, const char* schema, int pages) {
  if (std::string_view(schema) == "main") static_cast<Checkpointer*>(arg)->note_commit(db, pages);
  return SQLITE_OK;
}

}  // namespace

Result<std::unique_ptr<Checkpointer>> Checkpointer::start(const std::string& path, int threshold_pages,
                                                          int busy_timeout_ms) {
  if (threshold_pages < 1) return make_error("store: checkpoint threshold must be at least 1 page", -EINVAL);
  sqlite3* raw = nullptr;
  // NOMUTEX: after start() returns, only the worker thread uses this connection.
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<Checkpointer> self(new Checkpointer(raw, threshold_pages));  // owns raw from here on
  if (rc != SQLITE_OK) return sqlite_error("opening the checkpointer's connection to " + path, raw, rc);
  sqlite3_busy_timeout(raw, busy_timeout_ms);
  // synchronous decides the checkpoint's fsyncs, so it matches the loop's; this connection never commits,
  // but turning its own auto-checkpoint off keeps that true even if it ever did.
  rc = sqlite3_exec(raw, "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0", nullptr, nullptr,
                    nullptr);
  if (rc != SQLITE_OK) return sqlite_error("setting the checkpointer's pragmas", raw, rc);
  // One read opens the WAL index and proves the file is in WAL mode (a checkpoint elsewhere is a no-op).
  sqlite3_stmt* stmt = nullptr;
  rc = sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &stmt, nullptr);
  std::string mode;
  if (rc == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
    const unsigned char* text = sqlite3_column_text(stmt, 0);
    if (text != nullptr) mode = reinterpret_cast<const char*>(text);
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_OK) return sqlite_error("reading the checkpointer's journal mode", raw, rc);
  if (mode != "wal") {
    return make_error("store: checkpointer: " + path + " is not in WAL mode (journal_mode " + mode + ")",
                      -EIO);
  }
  // Those pragmas made SQLite parse the whole schema (~0.3 MB of heap) and cache the pages it read, none of
  // which sqlite3_wal_checkpoint_v2 needs: RESET drops the parsed schema (re-read only by a statement that
  // needs it, and this connection runs none), and the page cache goes too. The WAL stays open, so the
  // checkpoints still find it. Idle heap −0.38 MB (bench/README.md, footprint session 2).
  rc = sqlite3_exec(raw, "PRAGMA writable_schema = RESET", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return sqlite_error("dropping the checkpointer's copy of the schema", raw, rc);
  sqlite3_db_release_memory(raw);
  // The store may open before the loop blocks the signals it handles through signalfd (SIGTERM, SIGHUP...);
  // a thread that left them unblocked would take them with their default action and end the process. The
  // worker starts with every signal blocked (a new thread inherits its creator's mask), then ours is
  // restored.
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  std::string failed;
  try {
    self->worker_ = std::thread([c = self.get()] { c->work(); });
  } catch (const std::system_error& e) {
    failed = e.what();
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (!failed.empty()) return make_error("store: starting the checkpointer thread: " + failed, -EAGAIN);
  // Named here rather than by the thread itself, so the name is there as soon as start() returns.
  pthread_setname_np(self->worker_.native_handle(), "osvi-checkpoint");  // ps -L, top -H (15 chars at most)
  return self;
}

Checkpointer::~Checkpointer() {
  detach();
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (worker_.joinable()) worker_.join();
  // After join no thread uses it; sqlite3_close_v2 also closes a connection whose open failed.
  sqlite3_close_v2(db_);
}

Status Checkpointer::attach(sqlite3* loop_db) {
  // The pragma first: setting wal_autocheckpoint installs (or, at 0, removes) SQLite's own WAL hook, which
  // would replace ours if it came second.
  int rc = sqlite3_exec(loop_db, "PRAGMA wal_autocheckpoint = 0", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return sqlite_error("turning the WAL auto-checkpoint off", loop_db, rc);
  sqlite3_wal_hook(loop_db, on_wal_commit, this);
  loop_db_ = loop_db;
  return {};
}

void Checkpointer::detach() {
  if (loop_db_ != nullptr) sqlite3_wal_hook(loop_db_, nullptr, nullptr);
  loop_db_ = nullptr;
}

void Checkpointer::note_commit(sqlite3* loop_db, int wal_pages) {
  if (wal_pages >= hard_) {
    // The worker has not kept up (stuck, starved, held by a test, or a writer that never pauses, so no
    // transaction ever starts with every frame copied): bound the WAL here, as SQLite's auto-checkpoint
    // would, on each commit past the bound until one completes. The worker stands aside meanwhile (urgent_);
    // PASSIVE never waits, so an attempt that meets the worker's last run returns SQLITE_BUSY at once.
    urgent_.store(true, std::memory_order_release);
    int log = 0, done = 0;
    if (sqlite3_wal_checkpoint_v2(loop_db, "main", SQLITE_CHECKPOINT_PASSIVE, &log, &done) == SQLITE_OK) {
      ++loop_runs_;
      if (done >= log) urgent_.store(false, std::memory_order_release);
    }
    return;
  }
  // Below the bound again (the loop's run completed, or another process checkpointed): the worker resumes.
  if (urgent_.load(std::memory_order_relaxed)) urgent_.store(false, std::memory_order_release);
  if (wal_pages < threshold_) return;
  // Already asked and the worker not started on it yet: the commits of a burst wake it once (plus once more
  // for the commits made while a run is under way).
  if (signalled_.exchange(true, std::memory_order_acq_rel)) return;
  {
    std::lock_guard lock(mu_);
    wake_ = true;
  }
  cv_.notify_one();
}

void Checkpointer::hold(bool held) {
  {
    std::lock_guard lock(mu_);
    held_ = held;
  }
  cv_.notify_one();
}

void Checkpointer::work() {
  lower_this_thread();  // a checkpoint must not delay the loop (thread_rank.hpp)
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || (wake_ && !held_); });
      if (stopping_) return;
      wake_ = false;
      running_.store(true, std::memory_order_release);
    }
    // Cleared before the run, so a commit that lands during it (or whose transaction began before the run
    // ended) asks again: one more run, which finds that commit's frames. Clearing after the run lost them
    // until the next burst.
    signalled_.store(false, std::memory_order_release);
    // One PASSIVE run copies the frames in the WAL when it starts. Commits made meanwhile asked again
    // (above), so the next run picks them up; when the loop is at its hard bound the worker stands aside,
    // because its runs would make the loop's own checkpoint find the lock taken (SQLITE_BUSY) again and
    // again.
    if (!urgent_.load(std::memory_order_acquire)) {
      int log = 0, done = 0;
      const int rc = sqlite3_wal_checkpoint_v2(db_, "main", SQLITE_CHECKPOINT_PASSIVE, &log, &done);
      if (rc == SQLITE_OK) {
        worker_runs_.fetch_add(1, std::memory_order_relaxed);
      } else if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED) {
        // BUSY: another connection (the loop at its hard bound, a backup) is checkpointing; nothing is wrong.
        log::warning("store: background WAL checkpoint failed: " + std::string(sqlite3_errmsg(db_)) +
                     " (code " + std::to_string(rc) + ")");
      }
    }
    running_.store(false, std::memory_order_release);
  }
}

}  // namespace osvi::daemon::sql
