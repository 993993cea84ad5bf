// Repository of post_call_jobs: the durable pipeline after a call's end — its analysis, then its webhooks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"

namespace osvi::daemon {

class Database;

// One call's way through what follows its end. analysis_state: pending (to analyse, due at
// next_attempt_at), done, failed (last_error says why; the call record says so too) or skipped (not picked,
// no transcript, analysis off). webhooks_state: waiting until the call's deliveries are queued, then queued.
struct PostCallJob {
  std::string call_id;
  std::string analysis_state = "pending";
  int64_t attempts = 0;
  int64_t next_attempt_at_ms = 0;
  std::optional<std::string> last_error;
  std::string webhooks_state = "waiting";
  int64_t created_at_ms = 0, updated_at_ms = 0;
  bool operator==(const PostCallJob&) const = default;
};

class PostCallJobsRepo {
 public:
  explicit PostCallJobsRepo(Database& db) : db_(db) {}

  // The job of a call that just reached a final status, created and due at now_ms (the call's end, so jobs
  // run in the order calls completed; <= 0: the database clock's now). Called by finish_call_and_enqueue
  // and close_interrupted_calls in the transaction of the final record; a job already there is left as is.
  Status create(std::string_view call_id, int64_t now_ms);
  Result<std::optional<PostCallJob>> get(std::string_view call_id);
  // Pending jobs due at now_ms or earlier, oldest call first (next_attempt_at, then created_at).
  Result<std::vector<PostCallJob>> due_for_analysis(int64_t now_ms, size_t limit);
  // The earliest next_attempt_at of any pending job (to arm a timer).
  Result<std::optional<int64_t>> earliest_analysis();
  // A failed try: attempts + 1, due again at next_attempt_at_ms, the reason kept. -ENOENT: no pending job.
  Status retry_analysis(std::string_view call_id, int64_t next_attempt_at_ms, std::string_view error);
  // The analysis is over: state done, failed or skipped (error for failed). -ENOENT: no pending job.
  Status finish_analysis(std::string_view call_id, std::string_view state,
                         std::optional<std::string_view> error);
  // Jobs whose analysis is over and whose deliveries are not queued yet, in the order their analysis ended.
  Result<std::vector<PostCallJob>> waiting_for_webhooks(size_t limit);
  // -ENOENT: no such job waiting.
  Status mark_webhooks_queued(std::string_view call_id);
  // Counters for health and telemetry.
  struct Counts {
    int64_t analysis_pending = 0, analysis_failed = 0, webhooks_waiting = 0;
  };
  Result<Counts> counts();

 private:
  Database& db_;
};

}  // namespace osvi::daemon
