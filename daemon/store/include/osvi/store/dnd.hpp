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
};

class DndRepo {
 public:
  explicit DndRepo(Database& db) : db_(db) {}

  // -EEXIST when the number is already on the agent's active list. Returns the new row id.
  Result<int64_t> add(std::string_view agent_uuid, std::string_view phone, std::optional<std::string> reason);
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
