// Store: opening, migrating, checking and recovering the osvid database, and the record accessors.
#include "osvi/store/store.hpp"

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <set>
#include <utility>
#include <variant>

#include "osvi/base/ids.hpp"
#include "migrations.hpp"
#include "sqlite.hpp"

namespace osvi::daemon {
namespace {

// Prefixes the step that failed; an inner "store: " is dropped so nested steps read as one chain.
using sql::run;
using sql::wrap;

// One table drives the INSERT, UPDATE and SELECT of calls, so adding a column is one line here plus a
// migration.
using CallField =
    std::variant<std::string CallRecord::*, std::optional<std::string> CallRecord::*, int64_t CallRecord::*,
                 std::optional<int64_t> CallRecord::*, bool CallRecord::*>;
struct CallColumn {
  const char* name;
  CallField field;
};

const auto kCallColumns = std::to_array<CallColumn>({
    {"call_id", &CallRecord::call_id},
    {"agent_uuid", &CallRecord::agent_uuid},
    {"agent_name", &CallRecord::agent_name},
    {"phone_number", &CallRecord::phone_number},
    {"from_number", &CallRecord::from_number},
    {"status", &CallRecord::status},
    {"call_type", &CallRecord::call_type},
    {"duration_seconds", &CallRecord::duration_seconds},
    {"call_ended_by", &CallRecord::call_ended_by},
    {"call_ended_reason", &CallRecord::call_ended_reason},
    {"campaign_id", &CallRecord::campaign_id},
    {"campaign_upload_id", &CallRecord::campaign_upload_id},
    {"tag_id", &CallRecord::tag_id},
    {"tag_name", &CallRecord::tag_name},
    {"tag_color_code", &CallRecord::tag_color_code},
    {"created_at", &CallRecord::created_at_ms},
    {"call_picked_at", &CallRecord::call_picked_at_ms},
    {"ended_at", &CallRecord::ended_at_ms},
    {"caller_name", &CallRecord::caller_name},
    {"person_name", &CallRecord::person_name},
    {"retry_count", &CallRecord::retry_count},
    {"summary", &CallRecord::summary},
    {"data_captured", &CallRecord::data_captured},
    {"post_call_analysis", &CallRecord::post_call_analysis},
    {"structured_output", &CallRecord::structured_output},
    {"call_trigger_data", &CallRecord::call_trigger_data},
    {"additional_data", &CallRecord::additional_data},
    {"system_prompt", &CallRecord::system_prompt},
    {"initial_greeting", &CallRecord::initial_greeting},
    {"webhook_url", &CallRecord::webhook_url},
    {"call_config_overrides", &CallRecord::call_config_overrides},
    {"data_extraction", &CallRecord::data_extraction},
    {"line", &CallRecord::line},
    {"callback_required", &CallRecord::callback_required},
    {"execution_mode", &CallRecord::execution_mode},
    {"revision", &CallRecord::revision},
    {"updated_at", &CallRecord::updated_at_ms},
});

std::string call_column_list() {
  std::string out;
  for (const auto& col : kCallColumns) {
    if (!out.empty()) out += ", ";
    out += col.name;
  }
  return out;
}

const std::string& insert_call_sql() {
  static const std::string sql = [] {
    std::string values;
    for (size_t i = 0; i < kCallColumns.size(); ++i) values += (i == 0 ? "?" : ", ?") + std::to_string(i + 1);
    return "INSERT INTO calls (" + call_column_list() + ") VALUES (" + values + ")";
  }();
  return sql;
}

// created_at is immutable; revision and updated_at are the store's to set.
const std::string& update_call_sql() {
  static const std::string sql = [] {
    std::string sets;
    int i = 0;
    for (const auto& col : kCallColumns) {
      ++i;
      std::string_view name = col.name;
      if (name == "call_id" || name == "created_at" || name == "revision" || name == "updated_at") continue;
      if (!sets.empty()) sets += ", ";
      sets += std::string(name) + " = ?" + std::to_string(i);
    }
    return "UPDATE calls SET " + sets + ", revision = revision + 1, updated_at = ?" + std::to_string(i + 1) +
           " WHERE call_id = ?1";
  }();
  return sql;
}

const std::string& select_call_sql() {
  static const std::string sql = "SELECT " + call_column_list() + " FROM calls WHERE call_id = ?1";
  return sql;
}

int bind_call(sql::Stmt& stmt, const CallRecord& call) {
  int index = 0;
  for (const auto& col : kCallColumns) {
    ++index;
    std::visit([&](auto member) { stmt.bind(index, call.*member); }, col.field);
  }
  return index;
}

void read_value(const sql::Stmt& s, int col, std::string& out) {
  out = s.text(col);
}
void read_value(const sql::Stmt& s, int col, std::optional<std::string>& out) {
  out = s.opt_text(col);
}
void read_value(const sql::Stmt& s, int col, int64_t& out) {
  out = s.int64(col);
}
void read_value(const sql::Stmt& s, int col, std::optional<int64_t>& out) {
  out = s.opt_int64(col);
}
void read_value(const sql::Stmt& s, int col, bool& out) {
  out = s.int64(col) != 0;
}

CallRecord read_call(const sql::Stmt& stmt) {
  CallRecord call;
  int col = 0;
  for (const auto& column : kCallColumns) {
    std::visit([&](auto member) { read_value(stmt, col, call.*member); }, column.field);
    ++col;
  }
  return call;
}

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

int parse_int(const std::optional<std::string>& text) {
  return text ? static_cast<int>(std::strtol(text->c_str(), nullptr, 10)) : 0;
}

}  // namespace

int Store::latest_schema_version() {
  return static_cast<int>(store_schema::migrations().size());
}

Store::Store(std::unique_ptr<sql::Db> db, const StoreOptions& options, const Clock& clock)
    : db_(std::move(db)), options_(options), clock_(clock) {}

Store::~Store() {
  // Keeps the query planner's statistics current at almost no cost, as SQLite recommends on close.
  if (db_ && opened_) (void)db_->exec("PRAGMA optimize");
}

Result<std::unique_ptr<Store>> Store::open(const StoreOptions& options, const Clock& clock) {
  namespace fs = std::filesystem;
  if (options.path.empty()) return make_error("store: no database path configured");
  std::error_code ec;
  fs::path parent = fs::path(options.path).parent_path();
  if (!parent.empty() && !fs::is_directory(parent, ec)) {
    return make_error("store: folder " + parent.string() + " of database " + options.path + " does not exist",
                      -ENOENT);
  }
  const bool existed = fs::exists(options.path, ec);

  auto db = sql::Db::open(options.path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (!db.ok()) return wrap("opening " + options.path, db.error());

  std::unique_ptr<Store> store(new Store(std::move(*db), options, clock));
  store->report_.created = !existed;
  if (Status s = store->configure_and_migrate(); !s.ok()) return s.error();
  if (Status s = store->recover_in_progress(); !s.ok()) return s.error();
  store->opened_ = true;
  return store;
}

Status Store::configure_and_migrate() {
  sql::Db& db = *db_;
  const std::string& path = options_.path;
  sqlite3_busy_timeout(db.handle(), options_.busy_timeout_ms);

  // The first read of the file: a file that is not a database fails here, before anything writes to it.
  auto version_text = db.query_text("PRAGMA user_version");
  if (!version_text.ok()) {
    if ((db.errcode() & 0xff) == SQLITE_NOTADB) {
      return make_error("store: " + path + " is not an SQLite database: " + version_text.error().message,
                        -EINVAL);
    }
    return wrap("reading the schema version of " + path, version_text.error());
  }
  const int latest = latest_schema_version();
  report_.schema_before = parse_int(*version_text);
  report_.schema_after = report_.schema_before;
  if (report_.schema_before > latest) {
    return make_error(
        "store: " + path + " has schema version " + std::to_string(report_.schema_before) +
            ", newer than the " + std::to_string(latest) +
            " this osvid knows; refusing to open it (downgrade protection: restore a newer osvid or "
            "a matching backup)",
        -EPROTO);
  }

  auto mode = db.query_text("PRAGMA journal_mode = WAL");
  if (!mode.ok()) return wrap("enabling WAL on " + path, mode.error());
  if (!mode->has_value() || (**mode != "wal" && path != ":memory:")) {
    return make_error(
        "store: " + path + " refused WAL mode (journal_mode is " + mode->value_or("unknown") + ")", -EIO);
  }
  if (Status s = db.exec("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON"); !s.ok()) {
    return wrap("setting pragmas on " + path, s.error());
  }
  // A SQLite built without foreign keys ignores the pragma silently; cascades would then silently not happen.
  auto fk = db.query_text("PRAGMA foreign_keys");
  if (!fk.ok()) return wrap("reading foreign_keys", fk.error());
  if (fk->value_or("0") != "1")
    return make_error("store: this SQLite does not enforce foreign keys", -ENOTSUP);

  if (options_.quick_check) {
    // Each problem is a row; severe damage can also fail the pragma midway. Both end up in the report, with
    // the rows found before the failure, and neither stops the open: the caller decides what to do.
    std::vector<std::string> problems;
    auto stmt = db.cached("PRAGMA quick_check");
    if (!stmt.ok()) {
      problems.push_back(stmt.error().message);
    } else {
      for (;;) {
        auto row = (*stmt)->step();
        if (!row.ok()) {
          problems.push_back(row.error().message);
          break;
        }
        if (!*row) break;
        if (std::string text = (*stmt)->text(0); text != "ok") problems.push_back(std::move(text));
      }
    }
    report_.quick_check_ok = problems.empty();
    report_.quick_check.clear();
    for (const auto& p : problems) report_.quick_check += (report_.quick_check.empty() ? "" : "; ") + p;
    if (problems.empty()) report_.quick_check = "ok";
  } else {
    report_.quick_check = "skipped";
  }

  if (report_.schema_before == latest) return {};

  if (Status s = run(db, "BEGIN IMMEDIATE"); !s.ok())
    return wrap("starting the migration of " + path, s.error());
  auto fail = [&](const std::string& what, const Error& e) -> Status {
    (void)run(db, "ROLLBACK");
    return wrap(what, e);
  };
  // Another process may have migrated between the first read and the write lock.
  auto locked_version = db.query_text("PRAGMA user_version");
  if (!locked_version.ok()) return fail("re-reading the schema version", locked_version.error());
  int from = parse_int(*locked_version);
  if (from > latest) return fail("migrating " + path, make_error("schema version became newer than known"));
  auto scripts = store_schema::migrations();
  for (int v = from; v < latest; ++v) {
    if (Status s = db.exec(scripts[static_cast<size_t>(v)]); !s.ok()) {
      return fail("applying migration " + std::to_string(v + 1) + " to " + path, s.error());
    }
  }
  // PRAGMA user_version is part of the transaction: the version moves with the schema or not at all.
  if (Status s = db.exec("PRAGMA user_version = " + std::to_string(latest)); !s.ok()) {
    return fail("recording the schema version", s.error());
  }
  if (Status s = run(db, "COMMIT"); !s.ok()) return fail("committing the migration of " + path, s.error());
  report_.migrations_applied = latest - from;
  report_.schema_after = latest;
  return {};
}

Status Store::recover_in_progress() {
  const int64_t now = clock_.wall_ms();
  std::vector<std::string> ids;
  Status s = transaction([&]() -> Status {
    auto select =
        db_->cached("SELECT call_id FROM calls WHERE status = 'in_progress' ORDER BY created_at, call_id");
    if (!select.ok()) return select.error();
    for (;;) {
      auto row = (*select)->step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      ids.push_back((*select)->text(0));
    }
    if (ids.empty()) return {};
    // Duration counts from the answer, as for a normal end; an unanswered call talked for 0 s.
    Status upd = run(
        *db_,
        "UPDATE calls SET status = 'failed', call_ended_reason = 'daemon_restart', call_ended_by = 'system', "
        "ended_at = ?1, duration_seconds = CASE WHEN call_picked_at IS NULL OR call_picked_at > ?1 THEN 0 "
        "ELSE (?1 - call_picked_at) / 1000 END, revision = revision + 1, updated_at = ?1 "
        "WHERE status = 'in_progress'",
        now);
    if (!upd.ok()) return upd;
    // The fleet must hear about every closed call: queued in this same transaction (issue 6).
    for (const std::string& id : ids) {
      if (Status q = enqueue_call_record(id); !q.ok()) return q;
    }
    return {};
  });
  if (!s.ok()) return wrap("closing calls left in_progress", s.error());
  report_.recovered_calls = std::move(ids);
  return {};
}

StoreHealth Store::health() {
  StoreHealth h;
  h.path = options_.path;
  h.schema_version = report_.schema_after;
  h.quick_check_ok = report_.quick_check_ok;
  h.quick_check = report_.quick_check;
  std::error_code ec;
  for (const std::string& file : {options_.path, options_.path + "-wal"}) {
    auto size = std::filesystem::file_size(file, ec);
    if (!ec) h.size_bytes += static_cast<int64_t>(size);
  }
  auto count = db_->cached("SELECT COUNT(*) FROM calls");
  if (count.ok()) {
    auto row = (*count)->step();
    if (row.ok() && *row) h.calls_total = (*count)->int64(0);
  }
  return h;
}

Status Store::sync_agents(const std::vector<AgentRecord>& agents) {
  const int64_t now = clock_.wall_ms();
  Status s = transaction([&]() -> Status {
    std::set<std::string, std::less<>> listed;
    for (const AgentRecord& a : agents) {
      listed.insert(a.agent_uuid);
      const std::string hash = fnv1a_hex(a.definition_json);
      auto find = db_->cached(std::string("SELECT ") + kAgentColumns + " FROM agents WHERE agent_uuid = ?1");
      if (!find.ok()) return find.error();
      (*find)->bind(1, a.agent_uuid);
      auto row = (*find)->step();
      if (!row.ok()) return row.error();
      if (!*row) {
        std::optional<int64_t> id;
        if (a.id > 0) id = a.id;
        Status ins =
            run(*db_,
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
          run(*db_,
              "UPDATE agents SET name = ?2, mode = ?3, active = ?4, archived = ?5, definition_json = ?6, "
              "definition_hash = ?7, updated_at = ?8 WHERE agent_uuid = ?1",
              a.agent_uuid, a.name, a.mode, a.active, a.archived, a.definition_json, hash, now);
      if (!upd.ok()) return wrap("updating agent " + a.agent_uuid, upd.error());
    }

    // Archive rather than delete: calls and campaigns keep pointing at the agent.
    std::vector<std::string> missing;
    auto live = db_->cached("SELECT agent_uuid FROM agents WHERE archived = 0");
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
          run(*db_, "UPDATE agents SET archived = 1, updated_at = ?2 WHERE agent_uuid = ?1", uuid, now);
      if (!arc.ok()) return wrap("archiving agent " + uuid, arc.error());
    }
    return {};
  });
  if (!s.ok()) return wrap("syncing agents", s.error());
  return {};
}

Result<std::vector<AgentRecord>> Store::agents() {
  return query_agents(*db_, std::string("SELECT ") + kAgentColumns + " FROM agents ORDER BY id");
}

Result<std::vector<AgentRecord>> Store::active_voice_agents() {
  return query_agents(*db_, std::string("SELECT ") + kAgentColumns +
                                " FROM agents WHERE mode = 'voice' AND active = 1 AND archived = 0 "
                                "ORDER BY updated_at DESC, agent_uuid");
}

Status Store::insert_call(const CallRecord& call) {
  CallRecord row = call;
  const int64_t now = clock_.wall_ms();
  if (row.created_at_ms == 0) row.created_at_ms = now;
  if (row.updated_at_ms == 0) row.updated_at_ms = now;
  auto stmt = db_->cached(insert_call_sql());
  if (!stmt.ok()) return wrap("inserting call " + call.call_id, stmt.error());
  bind_call(**stmt, row);
  if (Status s = (*stmt)->run(); !s.ok()) return wrap("inserting call " + call.call_id, s.error());
  return {};
}

Status Store::update_call(const CallRecord& call) {
  auto stmt = db_->cached(update_call_sql());
  if (!stmt.ok()) return wrap("updating call " + call.call_id, stmt.error());
  int last = bind_call(**stmt, call);
  (*stmt)->bind(last + 1, clock_.wall_ms());
  if (Status s = (*stmt)->run(); !s.ok()) return wrap("updating call " + call.call_id, s.error());
  if (db_->changes() == 0)
    return make_error("store: updating call " + call.call_id + ": no such call", -ENOENT);
  return {};
}

Result<std::optional<CallRecord>> Store::call(std::string_view call_id) {
  auto stmt = db_->cached(select_call_sql());
  if (!stmt.ok()) return wrap("reading call", stmt.error());
  (*stmt)->bind(1, call_id);
  auto row = (*stmt)->step();
  if (!row.ok()) return wrap("reading call " + std::string(call_id), row.error());
  if (!*row) return std::optional<CallRecord>();
  return std::optional<CallRecord>(read_call(**stmt));
}

Status Store::delete_call(std::string_view call_id) {
  if (Status s = run(*db_, "DELETE FROM calls WHERE call_id = ?1", call_id); !s.ok()) {
    return wrap("deleting call " + std::string(call_id), s.error());
  }
  if (db_->changes() == 0) {
    return make_error("store: deleting call " + std::string(call_id) + ": no such call", -ENOENT);
  }
  return {};
}

Status Store::add_transcript_turn(const TranscriptTurn& t) {
  Status s =
      run(*db_,
          "INSERT INTO transcript_turns (call_id, seq, role, text, started_at, ended_at, interrupted, "
          "latency_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
          t.call_id, t.seq, t.role, t.text, t.started_at_ms, t.ended_at_ms, t.interrupted, t.latency_json);
  if (!s.ok()) return wrap("adding turn " + std::to_string(t.seq) + " of call " + t.call_id, s.error());
  return {};
}

Result<std::vector<TranscriptTurn>> Store::transcript(std::string_view call_id) {
  auto stmt = db_->cached(
      "SELECT call_id, seq, role, text, started_at, ended_at, interrupted, latency_json FROM "
      "transcript_turns "
      "WHERE call_id = ?1 ORDER BY seq");
  if (!stmt.ok()) return wrap("reading transcript", stmt.error());
  (*stmt)->bind(1, call_id);
  std::vector<TranscriptTurn> out;
  for (;;) {
    auto row = (*stmt)->step();
    if (!row.ok()) return wrap("reading transcript of " + std::string(call_id), row.error());
    if (!*row) break;
    const sql::Stmt& s = **stmt;
    out.push_back(TranscriptTurn{s.text(0), s.int64(1), s.text(2), s.text(3), s.opt_int64(4), s.opt_int64(5),
                                 s.int64(6) != 0, s.opt_text(7)});
  }
  return out;
}

Result<int64_t> Store::add_dnd(std::string_view agent_uuid, std::string_view phone,
                               std::optional<std::string> reason) {
  Status s =
      run(*db_, "INSERT INTO dnd_numbers (agent_uuid, phone, reason, created_at) VALUES (?1, ?2, ?3, ?4)",
          agent_uuid, phone, reason, clock_.wall_ms());
  if (!s.ok()) {
    return wrap("adding " + std::string(phone) + " to the DND list of " + std::string(agent_uuid), s.error());
  }
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_->handle()));
}

Status Store::remove_dnd(std::string_view agent_uuid, std::string_view phone) {
  Status s = run(
      *db_,
      "UPDATE dnd_numbers SET removed_at = ?3 WHERE agent_uuid = ?1 AND phone = ?2 AND removed_at IS NULL",
      agent_uuid, phone, clock_.wall_ms());
  const std::string what =
      "removing " + std::string(phone) + " from the DND list of " + std::string(agent_uuid);
  if (!s.ok()) return wrap(what, s.error());
  if (db_->changes() == 0) return make_error("store: " + what + ": not on the list", -ENOENT);
  return {};
}

Result<std::vector<DndEntry>> Store::active_dnd(std::string_view agent_uuid) {
  auto stmt = db_->cached(
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

Status Store::transaction(const std::function<Status()>& body) {
  // Nested calls become savepoints so helpers that open their own transaction compose with a caller's.
  const bool nested = db_->in_transaction();
  const std::string sp = "osvi_sp" + std::to_string(savepoint_depth_);
  // IMMEDIATE takes the write lock up front: a deferred read→write upgrade can fail with SQLITE_BUSY without
  // honouring the busy timeout.
  if (Status s = run(*db_, nested ? "SAVEPOINT " + sp : std::string("BEGIN IMMEDIATE")); !s.ok()) {
    return wrap("beginning a transaction", s.error());
  }
  if (nested) ++savepoint_depth_;

  Status result;
  try {
    result = body();
  } catch (const std::exception& e) {
    result = make_error(std::string("store: transaction body threw: ") + e.what(), -EIO);
  } catch (...) {
    result = make_error("store: transaction body threw an unknown exception", -EIO);
  }
  if (nested) --savepoint_depth_;

  if (result.ok()) {
    Status commit = run(*db_, nested ? "RELEASE " + sp : std::string("COMMIT"));
    if (commit.ok()) return {};
    result = wrap("committing a transaction", commit.error());
  }
  // SQLite may already have rolled the whole transaction back (disk full, I/O error); then there is nothing
  // left.
  if (db_->in_transaction()) {
    if (nested) {
      (void)run(*db_, "ROLLBACK TO " + sp);
      (void)run(*db_, "RELEASE " + sp);
    } else {
      (void)run(*db_, "ROLLBACK");
    }
  }
  return result;
}

std::optional<std::string> Store::meta(std::string_view key) {
  auto stmt = db_->cached("SELECT value FROM meta WHERE key = ?1");
  if (!stmt.ok()) return std::nullopt;
  (*stmt)->bind(1, key);
  auto row = (*stmt)->step();
  if (!row.ok() || !*row) return std::nullopt;
  return (*stmt)->text(0);
}

Status Store::set_meta(std::string_view key, std::string_view value) {
  Status s = run(
      *db_,
      "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      key, value);
  if (!s.ok()) return wrap("setting meta " + std::string(key), s.error());
  return {};
}

}  // namespace osvi::daemon
