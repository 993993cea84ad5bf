// Repository of the outbox table: the durable queue of fleet deliveries, its quota and its counters.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"

namespace osvi::daemon {

class Database;
class MetaRepo;

// One queued delivery. topic is relative to the fleet prefix ("calls", "events"), so a site rename does
// not strand queued rows.
struct OutboxRow {
  int64_t id = 0;
  std::string topic, payload, idempotency_key, kind;
  int64_t created_at_ms = 0;
  int64_t attempts = 0;
};

// Over quota, non-call rows are dropped oldest first; call records are never dropped: the row is kept and
// the alarm flag is raised instead (docs/mqtt.md).
struct OutboxLimits {
  int64_t max_rows = 100000;
  int64_t max_bytes = 256LL * 1024 * 1024;
};

struct OutboxStats {
  int64_t queued = 0;
  int64_t bytes = 0;                 // sum of payload sizes
  int64_t oldest_created_at_ms = 0;  // 0 when empty
  int64_t dropped = 0;               // persisted in meta "outbox.dropped"
  bool over_quota = false;           // only call records left and still above a limit
};

inline constexpr std::string_view kOutboxKindCall = "call";

// The running byte count and the dropped count live in meta (through MetaRepo) so the quota check does not
// sum the table on every enqueue.
class OutboxRepo {
 public:
  OutboxRepo(Database& db, MetaRepo& meta) : db_(db), meta_(meta) {}

  // Queues a row in its own transaction, or as a savepoint of the caller's, and applies the quota. Returns
  // false when the idempotency key was already queued, so a retried write does not queue twice.
  Result<bool> enqueue(std::string_view kind, std::string_view topic, std::string_view payload,
                       std::string_view idempotency_key);
  // Rows with id > after_id, oldest first.
  Result<std::vector<OutboxRow>> pending(int64_t after_id, size_t limit);
  Status mark_attempted(int64_t first_id, int64_t last_id);
  // Deletes delivered rows in one transaction; unknown ids are ignored.
  Status remove(const std::vector<int64_t>& ids);
  Result<OutboxStats> stats();
  void set_limits(const OutboxLimits& limits) { limits_ = limits; }

 private:
  Status enforce_quota();

  Database& db_;
  MetaRepo& meta_;
  OutboxLimits limits_;
};

}  // namespace osvi::daemon
