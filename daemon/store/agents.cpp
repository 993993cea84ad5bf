// AgentsRepo: the configured agents, synced from the configuration and archived rather than deleted.
#include "osvi/store/agents.hpp"

#include <set>
#include <string>
#include <utility>

#include "osvi/base/ids.hpp"
#include "osvi/store/database.hpp"
#include "sqlite.hpp"

namespace osvi::daemon {
namespace {

using sql::run;
using sql::wrap;

constexpr const char* kAgentColumns =
    "id, agent_uuid, name, mode, active, archived, definition_json, definition_hash, created_at, updated_at";

AgentRecord read_agent(const sql::Stmt& s) {
  AgentRecord a;
  a.id = s.int64(0);
  a.agent_uuid = s.text(1);
  a.name = s.text(2);
  a.mode = s.text(3);
  a.active = s.int64(4) != 0;
  a.archived = s.int64(5) != 0;
  a.definition_json = s.text(6);
  a.definition_hash = s.text(7);
  a.created_at_ms = s.int64(8);
  a.updated_at_ms = s.int64(9);
  return a;
}

Result<std::vector<AgentRecord>> query_agents(sql::Db& db, const std::string& sql) {
  auto stmt = db.cached(sql);
  if (!stmt.ok()) return wrap("listing agents", stmt.error());
  std::vector<AgentRecord> out;
  for (;;) {
    auto row = (*stmt)->step();
    if (!row.ok()) return wrap("listing agents", row.error());
    if (!*row) break;
    out.push_back(read_agent(**stmt));
  }
  return out;
}

}  // namespace

Status AgentsRepo::sync(const std::vector<AgentRecord>& agents) {
  const int64_t now = db_.clock().wall_ms();
  Status s = db_.transaction([&]() -> Status {
    std::set<std::string, std::less<>> listed;
    for (const AgentRecord& a : agents) {
      listed.insert(a.agent_uuid);
      const std::string hash = fnv1a_hex(a.definition_json);
      auto find =
          db_.sql().cached(std::string("SELECT ") + kAgentColumns + " FROM agents WHERE agent_uuid = ?1");
      if (!find.ok()) return find.error();
      (*find)->bind(1, a.agent_uuid);
      auto row = (*find)->step();
      if (!row.ok()) return row.error();
      if (!*row) {
        std::optional<int64_t> id;
        if (a.id > 0) id = a.id;
        Status ins =
            run(db_.sql(),
                "INSERT INTO agents (id, agent_uuid, name, mode, active, archived, definition_json, "
                "definition_hash, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                id, a.agent_uuid, a.name, a.mode, a.active, a.archived, a.definition_json, hash, now);
        if (!ins.ok()) return wrap("adding agent " + a.agent_uuid, ins.error());
        continue;
      }
      AgentRecord old = read_agent(**find);
      if (old.name == a.name && old.mode == a.mode && old.active == a.active && old.archived == a.archived &&
          old.definition_hash == hash) {
        continue;
      }
      Status upd =
          run(db_.sql(),
              "UPDATE agents SET name = ?2, mode = ?3, active = ?4, archived = ?5, definition_json = ?6, "
              "definition_hash = ?7, updated_at = ?8 WHERE agent_uuid = ?1",
              a.agent_uuid, a.name, a.mode, a.active, a.archived, a.definition_json, hash, now);
      if (!upd.ok()) return wrap("updating agent " + a.agent_uuid, upd.error());
    }

    // Archive rather than delete: calls and campaigns keep pointing at the agent.
    std::vector<std::string> missing;
    auto live = db_.sql().cached("SELECT agent_uuid FROM agents WHERE archived = 0");
    if (!live.ok()) return live.error();
    for (;;) {
      auto row = (*live)->step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      std::string uuid = (*live)->text(0);
      if (!listed.contains(uuid)) missing.push_back(std::move(uuid));
    }
    for (const auto& uuid : missing) {
      Status arc =
          run(db_.sql(), "UPDATE agents SET archived = 1, updated_at = ?2 WHERE agent_uuid = ?1", uuid, now);
      if (!arc.ok()) return wrap("archiving agent " + uuid, arc.error());
    }
    return {};
  });
  if (!s.ok()) return wrap("syncing agents", s.error());
  return {};
}

Result<std::vector<AgentRecord>> AgentsRepo::all() {
  return query_agents(db_.sql(), std::string("SELECT ") + kAgentColumns + " FROM agents ORDER BY id");
}

Result<std::vector<AgentRecord>> AgentsRepo::active_voice() {
  return query_agents(db_.sql(), std::string("SELECT ") + kAgentColumns +
                                     " FROM agents WHERE mode = 'voice' AND active = 1 AND archived = 0 "
                                     "ORDER BY updated_at DESC, agent_uuid");
}

}  // namespace osvi::daemon
