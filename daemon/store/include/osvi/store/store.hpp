// Store: the SQLite database that keeps every call record, agent, campaign, chat and outbox row of osvid.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/clock.hpp"
#include "osvi/result.hpp"

namespace osvi::daemon {

namespace sql {
class Db;
}

struct StoreOptions {
  std::string path;  // the database file; its folder must already exist
  int busy_timeout_ms = 5000;
  bool quick_check = true;
};

// What open() found and did, for the caller to log.
struct OpenReport {
  int schema_before = 0;
  int schema_after = 0;
  int migrations_applied = 0;
  bool created = false;            // the file did not exist before
  std::string quick_check = "ok";  // "ok", "skipped", or the problems joined with "; "
  bool quick_check_ok = true;
  std::vector<std::string> recovered_calls;  // calls closed as failed/daemon_restart, oldest first
};

struct AgentRecord {
  int64_t id = 0;  // numeric agent id (chat_agent_id); 0 on input lets the store assign one
  std::string agent_uuid, name, mode;  // mode: "voice" | "chat"
  bool active = false, archived = false;
  std::string definition_json;
  std::string definition_hash;  // output only: computed from definition_json
  int64_t created_at_ms = 0, updated_at_ms = 0;
};

struct StoreHealth {
  std::string path;
  int schema_version = 0;
  bool quick_check_ok = true;
  std::string quick_check;
  int64_t size_bytes = 0;    // database file plus its WAL on disk
  int64_t calls_total = -1;  // -1 when the count failed
};

// One row of `calls`: the OSVI CallSummary + V1CallDetail + webhook fields. Times are Unix ms (UTC);
// *_json-shaped fields hold JSON text as received.
struct CallRecord {
  std::string call_id;  // UUID
  std::string agent_uuid;
  std::string agent_name;
  std::string phone_number;            // E.164, the other party
  std::string from_number;             // E.164, caller ID / trunk number
  std::string status = "in_progress";  // picked|not_picked|failed|busy|voicemail|in_progress
  std::string call_type = "outbound";  // inbound|outbound
  int64_t duration_seconds = 0;
  std::optional<std::string> call_ended_by;
  std::optional<std::string> call_ended_reason;
  std::optional<int64_t> campaign_id;
  std::optional<int64_t> campaign_upload_id;
  std::optional<int64_t> tag_id;
  std::optional<std::string> tag_name;
  std::optional<std::string> tag_color_code;
  int64_t created_at_ms = 0;  // 0 on insert: now
  std::optional<int64_t> call_picked_at_ms;
  std::optional<int64_t> ended_at_ms;
  std::optional<std::string> caller_name;
  std::optional<std::string> person_name;
  int64_t retry_count = 0;
  std::optional<std::string> summary;
  std::optional<std::string> data_captured;       // JSON object
  std::optional<std::string> post_call_analysis;  // JSON object
  std::optional<std::string> structured_output;   // JSON
  std::optional<std::string> call_trigger_data;   // JSON object
  std::optional<std::string> additional_data;     // JSON object
  std::optional<std::string> system_prompt;
  std::optional<std::string> initial_greeting;
  std::optional<std::string> webhook_url;
  std::optional<std::string> call_config_overrides;  // JSON object
  std::optional<std::string> data_extraction;        // JSON array
  std::optional<std::string> line;                   // the line that carried the call
  bool callback_required = false;
  std::string execution_mode = "prod";  // prod|test
  int64_t revision = 1;                 // bumped by every update_call
  int64_t updated_at_ms = 0;            // 0 on insert: now

  bool operator==(const CallRecord&) const = default;
};

struct TranscriptTurn {
  std::string call_id;
  int64_t seq = 0;
  std::string role;  // agent|user|operator|tool
  std::string text;
  std::optional<int64_t> started_at_ms, ended_at_ms;
  bool interrupted = false;
  std::optional<std::string> latency_json;

  bool operator==(const TranscriptTurn&) const = default;
};

struct DndEntry {
  int64_t id = 0;
  std::string agent_uuid;
  std::string phone;  // E.164
  std::optional<std::string> reason;
  int64_t created_at_ms = 0;
  std::optional<int64_t> removed_at_ms;
};

// --- outbox (issue 6, fleet sync; code in store/outbox.cpp) ---
// One queued delivery. topic is relative to the fleet prefix ("calls", "events"), so a site rename does
// not strand queued rows.
struct OutboxRow {
  int64_t id = 0;
  std::string topic, payload, idempotency_key, kind;
  int64_t created_at_ms = 0;
  int64_t attempts = 0;
};

// Quota of the outbox. Over quota, non-call rows are dropped oldest first; call records are never
// dropped: the row is kept and the alarm flag is raised instead (docs/mqtt.md).
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
// --- end outbox ---

// --- calls API (issue 5; store/calls_query.cpp) ---
// GET /v1/calls filters; every member is optional (empty / nullopt = no filter). Combined with AND.
struct CallFilter {
  std::vector<std::string> statuses;  // any of
  std::optional<std::string> agent_uuid;
  std::vector<std::string> agent_uuids;  // any of: the agents a limited API token may see (empty = all)
  std::optional<int64_t> campaign_id, campaign_upload_id;
  std::optional<std::string> phone_contains;  // substring of phone_number
  std::optional<std::string> call_type;
  // Inclusive bounds on call_picked_at; a call never picked up has none and does not match a bound.
  std::optional<int64_t> picked_from_ms, picked_to_ms;
  int64_t page = 1, per_page = 25;  // 1-based; the store clamps page >= 1 and per_page to 1..1000
};

struct CallPage {
  std::vector<CallRecord> calls;  // newest first (created_at DESC, then call_id)
  int64_t total_count = 0;        // every call matching the filter, all pages
};

struct RecordingRow {
  std::string call_id;
  std::string path;    // absolute path of the file
  std::string format;  // e.g. "ogg_opus"
  int64_t duration_ms = 0, bytes = 0, created_at_ms = 0;
};
// --- end calls API ---

// Not thread-safe: one Store is used from one thread (the daemon's event loop). Other processes may open the
// same file; WAL and the busy timeout arbitrate between them.
class Store {
 public:
  static int latest_schema_version();
  // Opens or creates the database, migrates, quick-checks, and closes calls a dead daemon left in_progress.
  static Result<std::unique_ptr<Store>> open(const StoreOptions& options, const Clock& clock);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const OpenReport& open_report() const { return report_; }
  int schema_version() const { return report_.schema_after; }
  StoreHealth health();

  // Agents come from the configuration: upsert by agent_uuid in one transaction; updated_at changes only when
  // name/mode/active/archived/definition changed; agents missing from the list get archived=1.
  Status sync_agents(const std::vector<AgentRecord>& agents);
  Result<std::vector<AgentRecord>> agents();
  // Active, not archived, voice agents, most recently updated first (ties: agent_uuid).
  Result<std::vector<AgentRecord>> active_voice_agents();

  // created_at/updated_at of 0 become now; revision is stored as given.
  Status insert_call(const CallRecord& call);
  // Rewrites every column of an existing call; revision becomes stored revision + 1, updated_at now.
  // -ENOENT when there is no such call.
  Status update_call(const CallRecord& call);
  Result<std::optional<CallRecord>> call(std::string_view call_id);
  // Also removes its transcript turns and recording row (ON DELETE CASCADE). -ENOENT when absent.
  Status delete_call(std::string_view call_id);

  // -EEXIST when (call_id, seq) is taken; -EINVAL when the call does not exist (foreign key).
  Status add_transcript_turn(const TranscriptTurn& turn);
  Result<std::vector<TranscriptTurn>> transcript(std::string_view call_id);

  // -EEXIST when the number is already on the agent's active list. Returns the new row id.
  Result<int64_t> add_dnd(std::string_view agent_uuid, std::string_view phone,
                          std::optional<std::string> reason);
  // Marks the active entry removed (history kept); -ENOENT when none is active.
  Status remove_dnd(std::string_view agent_uuid, std::string_view phone);
  Result<std::vector<DndEntry>> active_dnd(std::string_view agent_uuid);

  // Runs body inside BEGIN IMMEDIATE … COMMIT (a SAVEPOINT when already inside one). An error from body rolls
  // back and is returned; an exception from body rolls back and becomes an error (it does not propagate).
  // Used to write outbox rows in the same transaction as a record.
  Status transaction(const std::function<Status()>& body);

  std::optional<std::string> meta(std::string_view key);
  Status set_meta(std::string_view key, std::string_view value);

  // --- outbox (issue 6; store/outbox.cpp) ---
  // Final update of a call and its outbox record in one transaction (for the calls engine).
  Status finish_call(const CallRecord& call);
  // Queues the call's current record (topic "calls", key call:<id>:<revision>); call it inside the
  // transaction that changed the call. A key already queued is not queued twice.
  Status enqueue_call_record(std::string_view call_id);
  // Queues any row; returns false when the idempotency key was already queued. Applies the quota.
  Result<bool> enqueue(std::string_view kind, std::string_view topic, std::string_view payload,
                       std::string_view idempotency_key);
  // Rows with id > after_id, oldest first.
  Result<std::vector<OutboxRow>> outbox_pending(int64_t after_id, size_t limit);
  Status outbox_mark_attempted(int64_t first_id, int64_t last_id);
  // Deletes delivered rows in one transaction.
  Status outbox_delete(const std::vector<int64_t>& ids);
  Result<OutboxStats> outbox_stats();
  void set_outbox_limits(const OutboxLimits& limits) { outbox_limits_ = limits; }
  // Changes when another connection committed (PRAGMA data_version): a cheap "anything new?" probe.
  int64_t data_version();
  // --- end outbox ---

  // --- calls API (issue 5; store/calls_query.cpp) ---
  Result<CallPage> list_calls(const CallFilter& filter);
  // Upsert by call_id (the engine may rewrite a recording). -EINVAL when the call does not exist.
  Status save_recording(std::string_view call_id, std::string_view path, std::string_view format,
                        int64_t duration_ms, int64_t bytes);
  Result<std::optional<RecordingRow>> recording(std::string_view call_id);
  // True when phone (E.164) is on the agent's active do-not-disturb list.
  Result<bool> dnd_active(std::string_view agent_uuid, std::string_view phone);
  // --- end calls API ---

 private:
  Store(std::unique_ptr<sql::Db> db, const StoreOptions& options, const Clock& clock);
  Status configure_and_migrate();
  Status recover_in_progress();

  std::unique_ptr<sql::Db> db_;
  StoreOptions options_;
  const Clock& clock_;
  OpenReport report_;
  int savepoint_depth_ = 0;
  bool opened_ = false;
  OutboxLimits outbox_limits_;    // outbox
  Status enforce_outbox_quota();  // outbox
};

}  // namespace osvi::daemon
