// Writes that span repositories: each one names the tables it touches and runs in the caller's transaction.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"
#include "osvi/store/calls.hpp"
#include "osvi/store/database.hpp"
#include "osvi/store/outbox.hpp"

namespace osvi::daemon {

class Store;

// Queues the call's current record on the outbox (topic "calls", key call:<id>:<revision>). Belongs in the
// transaction that changed the call, so the record and the change commit together. -ENOENT for an unknown
// call; a key already queued is not queued twice.
Status enqueue_call_record(Transaction& tx, CallsRepo& calls, OutboxRepo& outbox, std::string_view call_id);

// The final update of a call and its outbox record, in tx: a failed update queues nothing. The caller
// commits.
Status finish_call_and_enqueue(Transaction& tx, CallsRepo& calls, OutboxRepo& outbox, const CallRecord& call);
// The same in a transaction of its own, committed here: the calls engine's final write.
Status finish_call_and_enqueue(Store& store, const CallRecord& call);

// Start-up recovery: every call a dead daemon left in_progress becomes failed/daemon_restart, and its record
// is queued, in tx. Returns the closed calls' ids, oldest first.
Result<std::vector<std::string>> close_interrupted_calls(Transaction& tx, CallsRepo& calls,
                                                         OutboxRepo& outbox, int64_t now);

}  // namespace osvi::daemon
