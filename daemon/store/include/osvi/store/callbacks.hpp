// Repository of callbacks: outbound calls promised to a callee (analysis heard "call me after six") or owed
// by a call's retry_config, waiting for the dialler.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"

namespace osvi::daemon {

class Database;

// kind: callback (detected by analysis) | retry (retry_config of an unanswered call). state: scheduled (due
// at due_at), dialing (call_id placed, not ended), done (outcome = the call's final status), cancelled (API),
// dnd (on the agent's list at dial time), expired (could not be placed before it stopped making sense).
struct CallbackRow {
  int64_t id = 0;
  std::string kind = "callback";
  std::string source_call_id;
  std::string agent_uuid;
  std::string phone;                     // E.164
  std::optional<std::string> time_zone;  // the callee's IANA zone, for calling hours
  int64_t due_at_ms = 0;
  std::optional<std::string> requested_text;  // what the callee said ("after six tomorrow")
  // The call to place, as JSON: {person_name, additional_data, system_prompt, initial_greeting, webhook_url,
  // call_config_overrides, data_extraction, campaign_id, campaign_upload_id} (absent keys: not set).
  std::string request_json = "{}";
  int64_t retry_count = 0;  // the placed call's retry_count
  std::string state = "scheduled";
  std::optional<std::string> call_id;
  std::optional<std::string> outcome;
  int64_t created_at_ms = 0, updated_at_ms = 0;
  bool operator==(const CallbackRow&) const = default;
};

class CallbacksRepo {
 public:
  explicit CallbacksRepo(Database& db) : db_(db) {}

  // Inserts row (id, state, call_id, outcome, created/updated are the repository's) unless one exists for
  // (source_call_id, kind): then returns the existing one's id and *created = false. Runs in the caller's
  // transaction when there is one.
  Result<int64_t> schedule(const CallbackRow& row, bool* created = nullptr);
  Result<std::optional<CallbackRow>> get(int64_t id);

  // The dialler's side and the API's side; implemented in store/callbacks.cpp.
  Result<std::optional<CallbackRow>> next_due(int64_t now_ms);
  Result<std::optional<int64_t>> earliest_due();
  Status defer(int64_t id, int64_t due_at_ms);
  // scheduled → dialing with call_id, committed before the line dials.
  Status open(int64_t id, std::string_view call_id);
  // dialing → done with the call's final status (idempotent); returns the row, none when no callback
  // placed call_id.
  Result<std::optional<CallbackRow>> close(std::string_view call_id, std::string_view outcome);
  // scheduled → state (dnd, expired), or dialing → scheduled (the line never dialled: back in the queue).
  Status set_state(int64_t id, std::string_view state, std::optional<std::string_view> outcome);
  Status requeue(int64_t id, int64_t due_at_ms);
  Result<std::vector<CallbackRow>> open_rows();  // dialing (start-up recovery)
  // -ENOENT: no such callback; -EBUSY: not scheduled (dialing or over).
  Status cancel(int64_t id);

  struct Filter {
    std::vector<std::string> agent_uuids;  // any of; empty = all
    std::optional<std::string> state, kind;
    int64_t page = 1, per_page = 25;
  };
  struct Page {
    std::vector<CallbackRow> rows;  // newest first
    int64_t total_count = 0;
  };
  Result<Page> list(const Filter& filter);

 private:
  Database& db_;
};

}  // namespace osvi::daemon
