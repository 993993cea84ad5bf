// WAL checkpoints off the control loop: one worker thread with its own connection copies the WAL back into
// the database file, so no loop commit pays for a checkpoint's page copies and fsyncs.
//
// Threading rules (the same shape as store/recordings.hpp's worker):
// - The loop's connection runs with `PRAGMA wal_autocheckpoint = 0` and a `sqlite3_wal_hook` that calls
//   note_commit() after each of its commits with the WAL's page count. note_commit() never blocks: below the
//   threshold it does nothing; above it, it sets one atomic flag and, only when that flag was clear, takes
//   the mutex for a moment to wake the worker (never held across a checkpoint). The worker clears the flag
//   as it starts a run, so a burst of commits during a run wakes it once more, no more.
// - The worker owns its sqlite3 connection outright (opened here on the loop before the thread starts,
//   touched only by the worker afterwards, closed by the worker's owner after join). Nothing else is shared:
//   the mutex guards `wake_`/`stopping_`/`held_`; the atomics are a counter and the "signalled"/"running"
//   flags.
// - The worker runs `PRAGMA wal_checkpoint(PASSIVE)` (sqlite3_wal_checkpoint_v2): it copies what no reader
//   still needs and never waits for the writer, so the loop's next BEGIN IMMEDIATE is not held up by it
//   (the two connections share only SQLite's own file locks). The loop's next transaction after a complete
//   checkpoint restarts the WAL from its start.
// - Safety bound: if the WAL reaches hard_pages (the worker stuck, starved or held) the loop runs one PASSIVE
//   checkpoint itself in the hook, like SQLite's own auto-checkpoint, so the WAL cannot grow without bound;
//   until one completes the worker skips its runs (the `urgent_` flag), which would otherwise keep the
//   checkpoint lock busy under a writer that never pauses.
// - A failed checkpoint (other than SQLITE_BUSY, which only means another checkpoint is running) is logged
//   from the worker: osvi::log is safe from any thread (atomic level and sink, sd_journal_send).
// - The destructor stops and joins the worker and closes its connection; Database destroys it before closing
//   the loop's connection, whose close (the last one) checkpoints what is left and removes the WAL.
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "osvi/result.hpp"

namespace osvi::daemon::sql {

class Checkpointer {
 public:
  // Opens the worker's connection to path (which must exist and be in WAL mode) and starts the worker.
  // threshold_pages: WAL size that wakes the worker; the loop checkpoints itself at 4x that.
  static Result<std::unique_ptr<Checkpointer>> start(const std::string& path, int threshold_pages,
                                                     int busy_timeout_ms);
  ~Checkpointer();
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Installs the hook on the loop's connection (and turns SQLite's own auto-checkpoint off there).
  Status attach(sqlite3* loop_db);
  // Removes the hook again; the loop's connection is back to no automatic checkpoint at all.
  void detach();

  // Loop thread, from the WAL hook after each commit.
  void note_commit(sqlite3* loop_db, int wal_pages);

  int threshold_pages() const { return threshold_; }
  int hard_pages() const { return hard_; }
  // Checkpoint runs the worker completed, and ones the loop completed at the hard bound (a BUSY attempt,
  // the worker being mid-run, is not counted: it returns at once).
  int64_t worker_checkpoints() const { return worker_runs_.load(std::memory_order_relaxed); }
  int64_t loop_checkpoints() const { return loop_runs_; }
  // The loop asked and the worker has not finished answering.
  bool pending() const {
    return running_.load(std::memory_order_acquire) || signalled_.load(std::memory_order_acquire);
  }
  // For tests: while held the worker ignores wake-ups (a stuck worker); releasing wakes it if signalled.
  void hold(bool held);

 private:
  // 4x, not more: under a writer that never pauses the WAL only restarts at the hard bound, and every read
  // pays for a long WAL (analysis_bench p50 0.36 ms at 4x, 0.41 ms at 16x, bench/README.md).
  Checkpointer(sqlite3* db, int threshold) : db_(db), threshold_(threshold), hard_(threshold * 4) {}
  void work();

  sqlite3* db_;  // the worker's connection
  const int threshold_;
  const int hard_;
  sqlite3* loop_db_ = nullptr;

  std::mutex mu_;
  std::condition_variable cv_;
  bool wake_ = false;  // guarded by mu_
  bool stopping_ = false;
  bool held_ = false;
  std::atomic<bool> signalled_{false};  // set by the loop when it asks, cleared by the worker as it starts
  std::atomic<bool> running_{false};    // the worker is in a run (for pending())
  std::atomic<bool> urgent_{false};     // the loop is past the hard bound: the worker skips its runs
  std::atomic<int64_t> worker_runs_{0};
  int64_t loop_runs_ = 0;  // loop thread only
  std::thread worker_;
};

}  // namespace osvi::daemon::sql
