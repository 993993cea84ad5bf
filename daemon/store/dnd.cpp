// DndRepo: per-agent do-not-disturb lists; removal keeps the row as history.
#include "osvi/store/dnd.hpp"

#include <cerrno>
#include <string>

#include "osvi/store/database.hpp"
#include "sqlite.hpp"

namespace osvi::daemon {
namespace {

using sql::run;
using sql::wrap;

}  // namespace

Result<int64_t> DndRepo::add(std::string_view agent_uuid, std::string_view phone,
                             std::optional<std::string> reason) {
  Status s = run(db_.sql(),
                 "INSERT INTO dnd_numbers (agent_uuid, phone, reason, created_at) VALUES (?1, ?2, ?3, ?4)",
                 agent_uuid, phone, reason, db_.clock().wall_ms());
  if (!s.ok()) {
    return wrap("adding " + std::string(phone) + " to the DND list of " + std::string(agent_uuid), s.error());
  }
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_.sql().handle()));
}

Status DndRepo::remove(std::string_view agent_uuid, std::string_view phone) {
  Status s = run(
      db_.sql(),
      "UPDATE dnd_numbers SET removed_at = ?3 WHERE agent_uuid = ?1 AND phone = ?2 AND removed_at IS NULL",
      agent_uuid, phone, db_.clock().wall_ms());
  const std::string what =
      "removing " + std::string(phone) + " from the DND list of " + std::string(agent_uuid);
  if (!s.ok()) return wrap(what, s.error());
  if (db_.sql().changes() == 0) return make_error("store: " + what + ": not on the list", -ENOENT);
  return {};
}

Result<std::vector<DndEntry>> DndRepo::active(std::string_view agent_uuid) {
  auto stmt = db_.sql().cached(
      "SELECT id, agent_uuid, phone, reason, created_at, removed_at FROM dnd_numbers "
      "WHERE agent_uuid = ?1 AND removed_at IS NULL ORDER BY created_at DESC, id DESC");
  if (!stmt.ok()) return wrap("listing DND numbers", stmt.error());
  (*stmt)->bind(1, agent_uuid);
  std::vector<DndEntry> out;
  for (;;) {
    auto row = (*stmt)->step();
    if (!row.ok()) return wrap("listing DND numbers", row.error());
    if (!*row) break;
    const sql::Stmt& s = **stmt;
    out.push_back(DndEntry{s.int64(0), s.text(1), s.text(2), s.opt_text(3), s.int64(4), s.opt_int64(5)});
  }
  return out;
}

Result<bool> DndRepo::is_active(std::string_view agent_uuid, std::string_view phone) {
  auto stmt = db_.sql().cached(
      "SELECT 1 FROM dnd_numbers WHERE agent_uuid = ?1 AND phone = ?2 AND removed_at IS NULL LIMIT 1");
  if (!stmt.ok()) return wrap("checking the DND list", stmt.error());
  (*stmt)->bind_all(agent_uuid, phone);
  auto row = (*stmt)->step();
  if (!row.ok()) return wrap("checking the DND list of " + std::string(agent_uuid), row.error());
  return *row;
}

}  // namespace osvi::daemon
