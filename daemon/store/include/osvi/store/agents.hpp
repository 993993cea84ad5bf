// Repository of the agents table: the configured agents, synced from the configuration.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "osvi/result.hpp"

namespace osvi::daemon {

class Database;

struct AgentRecord {
  int64_t id = 0;  // numeric agent id (chat_agent_id); 0 on input lets the store assign one
  std::string agent_uuid, name, mode;  // mode: "voice" | "chat"
  bool active = false, archived = false;
  std::string definition_json;
  std::string definition_hash;  // output only: computed from definition_json
  int64_t created_at_ms = 0, updated_at_ms = 0;
};

class AgentsRepo {
 public:
  explicit AgentsRepo(Database& db) : db_(db) {}

  // Upsert by agent_uuid in one transaction; updated_at changes only when
  // name/mode/active/archived/definition changed; agents missing from the list get archived=1 (never deleted:
  // calls keep pointing at them).
  Status sync(const std::vector<AgentRecord>& agents);
  Result<std::vector<AgentRecord>> all();
  // Active, not archived, voice agents, most recently updated first (ties: agent_uuid).
  Result<std::vector<AgentRecord>> active_voice();

 private:
  Database& db_;
};

}  // namespace osvi::daemon
