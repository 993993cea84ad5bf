// Repository of the calls, transcript_turns and recordings tables, and the filtered calls list.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"

namespace osvi::daemon {

class Database;
class Transaction;

// One row of `calls`: the OSVI CallSummary + V1CallDetail + webhook fields. Times are Unix ms (UTC);
// *_json-shaped fields hold JSON text as received.
struct CallRecord {
  std::string call_id;  // UUID
  std::string agent_uuid;
  std::string agent_name;
  std::string phone_number;  // E.164, the other party
  // E.164 of the box's own line (configuration lines[].number, else the SIM's AT+CNUM); nullopt = unknown.
  std::optional<std::string> from_number;
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
  // Outbound, answered by a person: the callee's greeting's end (or the answer, when the agent spoke first)
  // to the agent's first audio on the line (the 2 s abandonment rule; docs/api.md). Unset: not measured.
  std::optional<int64_t> greeting_gap_ms = std::nullopt;
  std::string execution_mode = "prod";  // prod|test
  int64_t revision = 1;                 // bumped by every update
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
  // Agent turns the box said on its own: "filler" (the answer was late) or "fallback" (an upstream failed);
  // unset for every other turn.
  std::optional<std::string> kind = std::nullopt;  // initialised so brace-inits without it stay warning-free

  bool operator==(const TranscriptTurn&) const = default;
};

struct RecordingRow {
  std::string call_id;
  std::string
      path;  // as stored: absolute; rows of older daemons may be relative (see resolve_recording_path)
  std::string format;  // e.g. "ogg_opus"
  int64_t duration_ms = 0, bytes = 0, created_at_ms = 0;
};

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
  // Newest first (created_at DESC, then call_id). Only the CallSummary columns are read (kSummaryColumns in
  // calls.cpp); the large ones (prompts, additional data, analysis...) stay as defaults.
  std::vector<CallRecord> calls;
  int64_t total_count = 0;  // every call matching the filter, all pages
};

class CallsRepo {
 public:
  explicit CallsRepo(Database& db) : db_(db) {}

  // created_at/updated_at of 0 become now; revision is stored as given.
  Status insert(const CallRecord& call);
  // Rewrites every column of an existing call; revision becomes stored revision + 1, updated_at now.
  // -ENOENT when there is no such call. A final update also queues the record: finish_call_and_enqueue.
  Status update(const CallRecord& call);
  Result<std::optional<CallRecord>> get(std::string_view call_id);
  // Also removes its transcript turns and recording row (ON DELETE CASCADE). -ENOENT when absent.
  Status remove(std::string_view call_id);
  Result<int64_t> count();
  Result<CallPage> list(const CallFilter& filter);

  // -EEXIST when (call_id, seq) is taken; -EINVAL when the call does not exist (foreign key).
  Status add_transcript_turn(const TranscriptTurn& turn);
  Result<std::vector<TranscriptTurn>> transcript(std::string_view call_id);
  Result<int64_t> transcript_turn_count(std::string_view call_id);

  // Upsert by call_id (the engine may rewrite a recording). -EINVAL when the call does not exist.
  Status save_recording(std::string_view call_id, std::string_view path, std::string_view format,
                        int64_t duration_ms, int64_t bytes);
  Result<std::optional<RecordingRow>> recording(std::string_view call_id);

  // The answer, written when it happens (not only in the final update) so that a crash keeps it. Only a
  // call still in_progress is touched; the revision does not move (no delivery describes this state).
  Status set_picked(std::string_view call_id, int64_t picked_at_ms);
  // Whether any call is in_progress (one indexed probe): the heartbeat writes only while calls are live.
  Result<bool> any_in_progress();

  // Start-up recovery: every in_progress call is closed by `system` for `daemon_restart` at the last moment
  // it is known to have been live — the latest of its creation, its answer, its last saved turn and
  // `alive_at` (the daemon's last heartbeat), never past `now`. An answered call stays `picked` with its talk
  // time up to then; an unanswered one becomes `failed` with 0 s. Returns their ids, oldest first. Takes the
  // transaction because the select and the updates must see the same rows.
  Result<std::vector<std::string>> close_in_progress(Transaction& tx, int64_t now,
                                                     std::optional<int64_t> alive_at);

 private:
  Database& db_;
};

}  // namespace osvi::daemon
