// DndRepo: per-agent do-not-disturb lists; removal keeps the row as history.
#include "osvi/store/dnd.hpp"

#include <cerrno>
#include <cstdint>
#include <string>

#include "osvi/store/database.hpp"
#include "sqlite.hpp"

namespace osvi::daemon {
namespace {

using sql::run;
using sql::wrap;

// Every read names the same columns in this order, so one reader fills a DndEntry.
constexpr const char* kColumns = "id, agent_uuid, phone, reason, created_at, removed_at, source, call_id";

DndEntry read_entry(const sql::Stmt& s) {
  DndEntry e;
  e.id = s.int64(0);
  e.agent_uuid = s.text(1);
  e.phone = s.text(2);
  e.reason = s.opt_text(3);
  e.created_at_ms = s.int64(4);
  e.removed_at_ms = s.opt_int64(5);
  e.source = s.text(6);
  e.call_id = s.opt_text(7);
  return e;
}

}  // namespace

Result<DndAdded> DndRepo::add_entry(std::string_view agent_uuid, std::string_view phone,
                                    std::optional<std::string> reason, std::string_view source,
                                    std::optional<std::string> call_id) {
  const std::string what = "adding " + std::string(phone) + " to the DND list of " + std::string(agent_uuid);
  // The partial unique index is the arbiter: a conflict means an active entry exists, and that entry is
  // the answer. One connection owned by one loop, so nothing can remove it between the two statements.
  Status s = run(db_.sql(),
                 "INSERT INTO dnd_numbers (agent_uuid, phone, reason, created_at, source, call_id) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
                 "ON CONFLICT (agent_uuid, phone) WHERE removed_at IS NULL DO NOTHING",
                 agent_uuid, phone, reason, db_.clock().wall_ms(), source, call_id);
  if (!s.ok()) return wrap(what, s.error());
  const bool created = db_.sql().changes() == 1;
  const std::string sql = created ? std::string("SELECT ") + kColumns + " FROM dnd_numbers WHERE id = ?1"
                                  : std::string("SELECT ") + kColumns +
                                        " FROM dnd_numbers WHERE agent_uuid = ?1 AND phone = ?2 AND "
                                        "removed_at IS NULL";
  auto stmt = db_.sql().cached(sql);
  if (!stmt.ok()) return wrap(what, stmt.error());
  if (created) {
    (*stmt)->bind(1, static_cast<int64_t>(sqlite3_last_insert_rowid(db_.sql().handle())));
  } else {
    (*stmt)->bind_all(agent_uuid, phone);
  }
  auto row = (*stmt)->step();
  if (!row.ok()) return wrap(what, row.error());
  if (!*row) return make_error("store: " + what + ": the entry vanished", -EIO);
  return DndAdded{read_entry(**stmt), created};
}

Result<std::vector<DndEntry>> DndRepo::list(std::string_view agent_uuid, std::string_view search,
                                            int64_t page, int64_t per_page, int64_t* total_count) {
  if (page < 1 || per_page < 1)
    return make_error("store: listing DND numbers: page and per_page start at 1", -EINVAL);
  // instr(), not LIKE: a search is a literal substring, so '%' and '_' match only themselves.
  const char* where = search.empty()
                          ? "WHERE agent_uuid = ?1 AND removed_at IS NULL"
                          : "WHERE agent_uuid = ?1 AND removed_at IS NULL AND instr(phone, ?2) > 0";
  if (total_count != nullptr) {
    auto count = db_.sql().cached(std::string("SELECT count(*) FROM dnd_numbers ") + where);
    if (!count.ok()) return wrap("counting DND numbers", count.error());
    (*count)->bind(1, agent_uuid);
    if (!search.empty()) (*count)->bind(2, search);
    auto row = (*count)->step();
    if (!row.ok()) return wrap("counting DND numbers", row.error());
    *total_count = *row ? (*count)->int64(0) : 0;
  }
  auto stmt = db_.sql().cached(std::string("SELECT ") + kColumns + " FROM dnd_numbers " + where +
                               " ORDER BY created_at DESC, id DESC LIMIT ?3 OFFSET ?4");
  if (!stmt.ok()) return wrap("listing DND numbers", stmt.error());
  (*stmt)->bind(1, agent_uuid);
  if (!search.empty()) (*stmt)->bind(2, search);
  (*stmt)->bind(3, per_page);
  // Saturates instead of overflowing on an absurd page; the result is simply empty.
  (*stmt)->bind(4, page - 1 > INT64_MAX / per_page ? INT64_MAX : (page - 1) * per_page);
  std::vector<DndEntry> out;
  for (;;) {
    auto row = (*stmt)->step();
    if (!row.ok()) return wrap("listing DND numbers", row.error());
    if (!*row) break;
    out.push_back(read_entry(**stmt));
  }
  return out;
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
  auto stmt = db_.sql().cached(std::string("SELECT ") + kColumns +
                               " FROM dnd_numbers WHERE agent_uuid = ?1 AND removed_at IS NULL "
                               "ORDER BY created_at DESC, id DESC");
  if (!stmt.ok()) return wrap("listing DND numbers", stmt.error());
  (*stmt)->bind(1, agent_uuid);
  std::vector<DndEntry> out;
  for (;;) {
    auto row = (*stmt)->step();
    if (!row.ok()) return wrap("listing DND numbers", row.error());
    if (!*row) break;
    out.push_back(read_entry(**stmt));
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
