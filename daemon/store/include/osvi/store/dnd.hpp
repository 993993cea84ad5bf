// Repository of the dnd_numbers table: per-agent do-not-disturb lists, with history.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"

namespace osvi::daemon {

class Database;

struct DndEntry {
  int64_t id = 0;
  std::string agent_uuid;
  std::string phone;  // E.164
  std::optional<std::string> reason;
  int64_t created_at_ms = 0;
  std::optional<int64_t> removed_at_ms;
  std::string source = "api";                         // api | mqtt | opt_out | config
  std::optional<std::string> call_id = std::nullopt;  // opt_out: the call in which the caller asked
};

struct DndAdded {
  DndEntry entry;       // the active entry: the new one, or the one already there
  bool created = true;  // false: the number was already on the list (idempotent add)
};

class DndRepo {
 public:
  explicit DndRepo(Database& db) : db_(db) {}

  // Idempotent add: when the number is already on the agent's active list, that entry is returned with
  // created = false and nothing changes.
  Result<DndAdded> add_entry(std::string_view agent_uuid, std::string_view phone,
                             std::optional<std::string> reason, std::string_view source,
                             std::optional<std::string> call_id);
  // GET /v1/dnd_numbers: a page of the agent's active entries, newest first; search = substring of the phone
  // (digits, '+' allowed). total_count: every match.
  Result<std::vector<DndEntry>> list(std::string_view agent_uuid, std::string_view search, int64_t page,
                                     int64_t per_page, int64_t* total_count);
  // Marks the active entry removed (history kept); -ENOENT when none is active.
  Status remove(std::string_view agent_uuid, std::string_view phone);
  // Newest first.
  Result<std::vector<DndEntry>> active(std::string_view agent_uuid);
  // True when phone (E.164) is on the agent's active list.
  Result<bool> is_active(std::string_view agent_uuid, std::string_view phone);

 private:
  Database& db_;
};

}  // namespace osvi::daemon
