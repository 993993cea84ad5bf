// Writes that span repositories: each one names the tables it touches and runs in the caller's transaction.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"
#include "osvi/store/calls.hpp"
#include "osvi/store/database.hpp"
#include "osvi/store/meta.hpp"
#include "osvi/store/outbox.hpp"
#include "osvi/store/post_call.hpp"

namespace osvi::daemon {

class Store;

// Queues the call's current record on the outbox (topic "calls", key call:<id>:<revision>). Belongs in the
// transaction that changed the call, so the record and the change commit together. -ENOENT for an unknown
// call; a key already queued is not queued twice.
Status enqueue_call_record(Transaction& tx, CallsRepo& calls, OutboxRepo& outbox, std::string_view call_id);

// The final update of a call and its outbox record, in tx: a failed update queues nothing. With jobs, a
// final status also creates the call's post-call job (its analysis and webhooks). The caller commits.
Status finish_call_and_enqueue(Transaction& tx, CallsRepo& calls, OutboxRepo& outbox, const CallRecord& call,
                               PostCallJobsRepo* jobs = nullptr);
// The same in a transaction of its own, committed here, with the post-call job: the calls engine's final
// write.
Status finish_call_and_enqueue(Store& store, const CallRecord& call);

// The meta key of the heartbeat: the last moment (Unix ms) the daemon was known alive with calls live.
inline constexpr std::string_view kCallsAliveKey = "calls.alive_at";

// The heartbeat's write: while any call is in_progress, now becomes the last moment they were known live
// (one upsert in meta; nothing is written while no call is live). Start-up recovery ends the calls a dead
// daemon left at that moment rather than at the restart.
Status mark_calls_alive(CallsRepo& calls, MetaRepo& meta, int64_t now);

// Start-up recovery: every call a dead daemon left in_progress is closed (CallsRepo::close_in_progress,
// bounded by the heartbeat in meta) and its record is queued, in tx. Returns the closed calls' ids, oldest
// first.
Result<std::vector<std::string>> close_interrupted_calls(Transaction& tx, CallsRepo& calls,
                                                         OutboxRepo& outbox, MetaRepo& meta, int64_t now,
                                                         PostCallJobsRepo* jobs = nullptr);

}  // namespace osvi::daemon
