// Unit tests of osvi::daemon::Store: migrations, open checks, recovery, agents, calls, transactions, DND.
#include "osvi/store/store.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "osvi/clock.hpp"
#include "test_support.hpp"

namespace osvi::daemon {
namespace {

constexpr int64_t kT0 = 1'780'000'000'000;

// A second, independent connection: checks what is really in the file, not what the Store believes.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK) {
      throw std::runtime_error("cannot open " + path);
    }
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  void exec(const std::string& sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    std::string msg = err != nullptr ? err : "";
    sqlite3_free(err);
    if (rc != SQLITE_OK) throw std::runtime_error(sql + ": " + msg);
  }
  std::vector<std::string> column(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      throw std::runtime_error(sql + ": " + sqlite3_errmsg(db_));
    }
    std::vector<std::string> rows;
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, 0);
      rows.emplace_back(text != nullptr ? reinterpret_cast<const char*>(text) : "");
    }
    sqlite3_finalize(stmt);
    return rows;
  }
  std::string text(const std::string& sql) {
    auto rows = column(sql);
    return rows.empty() ? "" : rows.front();
  }

 private:
  sqlite3* db_ = nullptr;
};

// Back to version 7: no stats rollups, no chat indexes of the stats.
void undo_migration_8(RawDb& raw) {
  raw.exec(R"sql(
DROP TRIGGER call_stats_insert;
DROP TRIGGER call_stats_delete;
DROP TRIGGER call_stats_update_old;
DROP TRIGGER call_stats_update_new;
DROP TABLE call_stats_quarter;
DROP TABLE call_stats_hour;
DROP TABLE call_stats_agent_hour;
DROP TABLE call_stats_agent_quarter;
DROP TABLE call_stats_agent_day;
DROP INDEX chat_sessions_created;
DROP INDEX chat_sessions_agent_created;
PRAGMA user_version = 7;
)sql");
}

// Back to version 6: the chat tables as migration 1 made them.
void undo_migration_7(RawDb& raw) {
  undo_migration_8(raw);
  raw.exec(R"sql(
DROP TABLE chat_messages;
DROP TABLE chat_sessions;
CREATE TABLE chat_sessions (
  id             TEXT PRIMARY KEY NOT NULL,
  agent_uuid     TEXT NOT NULL,
  customer_id    TEXT NOT NULL,
  mode           TEXT NOT NULL DEFAULT 'ai' CHECK (mode IN ('ai', 'support')),
  help_requested INTEGER NOT NULL DEFAULT 0 CHECK (help_requested IN (0, 1)),
  status         TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'dormant', 'closed')),
  current_state  TEXT,
  input_fields   TEXT CHECK (input_fields IS NULL OR json_valid(input_fields)),
  state_fields   TEXT CHECK (state_fields IS NULL OR json_valid(state_fields)),
  context        TEXT CHECK (context IS NULL OR json_valid(context)),
  active_human   TEXT,
  created_at     INTEGER NOT NULL,
  updated_at     INTEGER NOT NULL
);
CREATE UNIQUE INDEX chat_sessions_one_active ON chat_sessions (customer_id, agent_uuid) WHERE status = 'active';
CREATE INDEX chat_sessions_lookup ON chat_sessions (customer_id, agent_uuid, updated_at DESC);
CREATE TABLE chat_messages (
  id         INTEGER PRIMARY KEY,
  session_id TEXT NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
  role       TEXT NOT NULL CHECK (role IN ('customer', 'agent', 'operator', 'whisper', 'tell', 'system')),
  content    TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX chat_messages_session ON chat_messages (session_id, id);
PRAGMA user_version = 6;
)sql");
}

// Back to version 5 (from 6): no knowledge base tables.
void undo_migration_6(RawDb& raw) {
  raw.exec(R"sql(
DROP TABLE knowledge_embeddings;
DROP TRIGGER knowledge_chunks_fts_insert;
DROP TRIGGER knowledge_chunks_fts_delete;
DROP TABLE knowledge_fts;
DROP TABLE knowledge_chunks;
DROP TABLE knowledge_documents;
PRAGMA user_version = 5;
)sql");
}

// Back to version 4: the tables migration 5 added, gone.
void undo_migration_5(RawDb& raw) {
  undo_migration_7(raw);
  undo_migration_6(raw);
  raw.exec(R"sql(
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE callbacks;
DROP TABLE post_call_jobs;
PRAGMA user_version = 4;
)sql");
}

// Takes a file at the latest schema back to version 3, as a box upgraded from that version has it: the
// campaign tables as migration 1 made them and none of migration 4's columns. The migration tests below go
// further back from there.
void undo_migration_4(RawDb& raw) {
  undo_migration_5(raw);
  raw.exec(R"sql(
DROP TABLE campaign_attempts;
DROP TABLE campaign_contacts;
CREATE TABLE campaign_contacts (
  id INTEGER PRIMARY KEY, upload_id INTEGER NOT NULL REFERENCES campaign_uploads (id) ON DELETE CASCADE,
  campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE, agent_uuid TEXT,
  phone TEXT NOT NULL, person_name TEXT,
  variables_json TEXT CHECK (variables_json IS NULL OR json_valid(variables_json)),
  state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER,
  last_call_id TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE INDEX campaign_contacts_due ON campaign_contacts (campaign_id, state, next_attempt_at);
CREATE INDEX campaign_contacts_upload ON campaign_contacts (upload_id);
CREATE INDEX campaign_contacts_phone ON campaign_contacts (campaign_id, phone);
DROP INDEX campaign_uploads_key;
ALTER TABLE campaign_uploads DROP COLUMN source;
ALTER TABLE campaign_uploads DROP COLUMN enqueued;
ALTER TABLE campaign_uploads DROP COLUMN idempotency_key;
ALTER TABLE campaign_uploads DROP COLUMN result_json;
ALTER TABLE campaigns DROP COLUMN source;
ALTER TABLE campaigns DROP COLUMN starts_at;
ALTER TABLE campaigns DROP COLUMN ends_at;
ALTER TABLE campaigns DROP COLUMN days_mask;
ALTER TABLE campaigns DROP COLUMN retry_on;
ALTER TABLE campaigns DROP COLUMN max_concurrent_per_agent;
ALTER TABLE campaigns DROP COLUMN definition_hash;
DROP INDEX dnd_numbers_search;
ALTER TABLE dnd_numbers DROP COLUMN source;
ALTER TABLE dnd_numbers DROP COLUMN call_id;
ALTER TABLE calls DROP COLUMN greeting_gap_ms;
PRAGMA user_version = 3;
)sql");
}

class StoreTest : public ::testing::Test {
 protected:
  StoreOptions options() const { return StoreOptions{dir_.file("osvid.db"), 2000, true}; }

  std::unique_ptr<Store> open_store() {
    auto store = Store::open(options(), clock_);
    if (!store.ok()) {
      ADD_FAILURE() << store.error().message;
      return nullptr;
    }
    return std::move(*store);
  }

  static CallRecord minimal_call(const std::string& id, int64_t created_at_ms) {
    CallRecord c;
    c.call_id = id;
    c.agent_uuid = "agent_voice1";
    c.agent_name = "Reception";
    c.phone_number = "+919876543210";
    c.from_number = "+911140000000";
    c.created_at_ms = created_at_ms;
    return c;
  }

  static AgentRecord agent(const std::string& uuid, const std::string& mode, bool active,
                           const std::string& definition = "{}") {
    AgentRecord a;
    a.agent_uuid = uuid;
    a.name = "Agent " + uuid;
    a.mode = mode;
    a.active = active;
    a.definition_json = definition;
    return a;
  }

  static const AgentRecord* find(const std::vector<AgentRecord>& agents, const std::string& uuid) {
    for (const auto& a : agents) {
      if (a.agent_uuid == uuid) return &a;
    }
    return nullptr;
  }

  test::TempDir dir_;
  ManualClock clock_{kT0};
};

TEST_F(StoreTest, MigratesAnEmptyDatabase) {
  ASSERT_GE(Database::latest_schema_version(), 1);
  auto store = open_store();
  ASSERT_TRUE(store);
  const OpenReport& report = store->database().open_report();
  EXPECT_TRUE(report.created);
  EXPECT_EQ(report.schema_before, 0);
  EXPECT_EQ(report.schema_after, Database::latest_schema_version());
  EXPECT_EQ(report.migrations_applied, Database::latest_schema_version());
  EXPECT_EQ(store->database().schema_version(), Database::latest_schema_version());

  RawDb raw(options().path);
  EXPECT_EQ(raw.text("PRAGMA user_version"), std::to_string(Database::latest_schema_version()));
  // WAL is a property of the file, so a second connection sees it.
  EXPECT_EQ(raw.text("PRAGMA journal_mode"), "wal");
  auto tables = raw.column("SELECT name FROM sqlite_schema WHERE type = 'table'");
  for (const char* name :
       {"agents", "calls", "transcript_turns", "recordings", "dnd_numbers", "campaigns", "campaign_agents",
        "campaign_uploads", "campaign_contacts", "chat_sessions", "chat_messages", "outbox", "meta"}) {
    EXPECT_NE(std::find(tables.begin(), tables.end(), name), tables.end()) << "missing table " << name;
  }
  EXPECT_EQ(raw.text("SELECT count(*) FROM sqlite_schema WHERE name = 'dnd_numbers_active'"), "1");
}

TEST_F(StoreTest, ForeignKeysAreEnforced) {
  auto store = open_store();
  ASSERT_TRUE(store);
  // foreign_keys is per connection, so only the Store's own connection can show it: by refusing an orphan.
  TranscriptTurn orphan{"no-such-call", 1, "agent", "hello", std::nullopt, std::nullopt, false, std::nullopt};
  Status s = store->calls().add_transcript_turn(orphan);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, -EINVAL);
  EXPECT_NE(s.error().message.find("FOREIGN KEY"), std::string::npos) << s.error().message;
}

TEST_F(StoreTest, ReopeningIsANoOpAndKeepsData) {
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->meta().set("mqtt_session", "7").ok());
    CallRecord c = minimal_call("11111111-1111-4111-8111-111111111111", kT0);
    c.status = "picked";
    ASSERT_TRUE(store->calls().insert(c).ok());
  }
  clock_.advance_ms(1000);
  auto store = open_store();
  ASSERT_TRUE(store);
  const OpenReport& report = store->database().open_report();
  EXPECT_FALSE(report.created);
  EXPECT_EQ(report.schema_before, Database::latest_schema_version());
  EXPECT_EQ(report.schema_after, Database::latest_schema_version());
  EXPECT_EQ(report.migrations_applied, 0);
  EXPECT_TRUE(report.recovered_calls.empty());
  EXPECT_EQ(store->meta().get("mqtt_session"), "7");
  auto c = store->calls().get("11111111-1111-4111-8111-111111111111");
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->status, "picked");
  EXPECT_EQ(store->health().calls_total, 1);
}

TEST_F(StoreTest, Migration6AddsTheKnowledgeBaseToAVersion5File) {
  {
    auto store = open_store();
    ASSERT_TRUE(store);
  }
  {
    RawDb raw(options().path);
    undo_migration_7(raw);
    undo_migration_6(raw);
  }
  auto store = open_store();
  ASSERT_TRUE(store);
  EXPECT_EQ(store->database().open_report().schema_before, 5);
  EXPECT_EQ(store->database().open_report().migrations_applied, Database::latest_schema_version() - 5);
  auto none = store->knowledge().current("fees");
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_FALSE(*none);
}

TEST_F(StoreTest, Migration2MarksTheTurnsTheBoxSaysOnItsOwn) {
  const std::string id = "22222222-2222-4222-8222-222222222222";
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->calls().insert(minimal_call(id, kT0)).ok());
    ASSERT_TRUE(
        store->calls().add_transcript_turn({id, 1, "agent", "Hello.", kT0, kT0, false, std::nullopt}).ok());
  }
  {
    // Back to version 1, as a box upgraded from it has the file.
    RawDb raw(options().path);
    undo_migration_4(raw);
    raw.exec("ALTER TABLE transcript_turns DROP COLUMN kind; PRAGMA user_version = 1");
  }
  auto store = open_store();
  ASSERT_TRUE(store);
  EXPECT_EQ(store->database().open_report().schema_before, 1);
  EXPECT_EQ(store->database().open_report().migrations_applied, Database::latest_schema_version() - 1);
  TranscriptTurn filler{id, 2, "agent", "One moment, please.", kT0, kT0, false, std::nullopt, "filler"};
  ASSERT_TRUE(store->calls().add_transcript_turn(filler).ok());
  TranscriptTurn bad = filler;
  bad.seq = 3;
  bad.kind = "small_talk";
  EXPECT_FALSE(store->calls().add_transcript_turn(bad).ok());
  auto turns = store->calls().transcript(id);
  ASSERT_TRUE(turns.ok());
  ASSERT_EQ(turns->size(), 2u);
  EXPECT_FALSE((*turns)[0].kind.has_value());  // the old turn: NULL
  EXPECT_EQ((*turns)[1], filler);
}

// Migration 1's chat tables, rows included, become migration 7's.
TEST_F(StoreTest, Migration7RebuildsTheChatTablesAndCarriesTheirRowsOver) {
  { ASSERT_TRUE(open_store()); }
  {
    RawDb raw(options().path);
    undo_migration_7(raw);
    // Migration 1's schema allowed an active and a dormant session of one pair; nothing wrote these, but a
    // hand-made row must not stop the upgrade.
    raw.exec(R"sql(
INSERT INTO chat_sessions (id, agent_uuid, customer_id, status, context, created_at, updated_at)
  VALUES ('s-old', 'agent_a', 'c1', 'dormant', '["x"]', 1, 1),
         ('s-new', 'agent_a', 'c1', 'active', NULL, 2, 5);
INSERT INTO chat_messages (session_id, role, content, created_at) VALUES ('s-new', 'customer', 'hello', 3),
  ('s-new', 'whisper', 'psst', 4);
)sql");
  }
  auto store = open_store();
  ASSERT_TRUE(store);
  EXPECT_EQ(store->database().open_report().schema_before, 6);
  auto old_s = store->chat().get("s-old");
  ASSERT_TRUE(old_s.ok() && *old_s);
  EXPECT_EQ((*old_s)->status, "closed");
  EXPECT_EQ((*old_s)->context_json, R"(["x"])");
  auto open = store->chat().open_for("c1", "agent_a");
  ASSERT_TRUE(open.ok() && *open);
  EXPECT_EQ((*open)->id, "s-new");
  EXPECT_EQ((*open)->context_json, "[]");
  EXPECT_EQ((*open)->last_message_at_ms, 5);
  auto msgs = store->chat().recent("s-new", 10);
  ASSERT_TRUE(msgs.ok());
  ASSERT_EQ(msgs->size(), 2u);
  EXPECT_EQ((*msgs)[0].text, "hello");
  auto whispers = store->chat().pending_whispers("s-new");
  ASSERT_TRUE(whispers.ok());
  EXPECT_TRUE(whispers->empty());
}

// A version-2 file (from_number TEXT NOT NULL DEFAULT '', '' for "unknown"): migration 3 turns '' into NULL,
// keeps the numbers that were known and every call's transcript, and from then on '' is refused.
TEST_F(StoreTest, Migration3MakesAnUnknownFromNumberNull) {
  const std::string known = "33333333-3333-4333-8333-333333333333";
  const std::string unknown = "44444444-4444-4444-8444-444444444444";
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->calls().insert(minimal_call(known, kT0)).ok());
    CallRecord c = minimal_call(unknown, kT0 + 1);
    c.from_number = std::nullopt;
    ASSERT_TRUE(store->calls().insert(c).ok());
    ASSERT_TRUE(store->calls()
                    .add_transcript_turn({unknown, 1, "agent", "Hello.", kT0, kT0, false, std::nullopt})
                    .ok());
  }
  {
    // Back to the version-2 definition of the column, with '' where the number was unknown (typeof: with the
    // column NOT NULL again, the planner folds "IS NULL" to false).
    RawDb raw(options().path);
    undo_migration_4(raw);
    raw.exec(
        "PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = replace(sql, 'from_number           "
        "TEXT "
        "CHECK (from_number IS NULL OR from_number <> '''')', 'from_number           TEXT NOT NULL DEFAULT "
        "''''') WHERE name = 'calls'; PRAGMA writable_schema = RESET; UPDATE calls SET from_number = '' "
        "WHERE "
        "typeof(from_number) = 'null'; PRAGMA user_version = 2");
    ASSERT_EQ(raw.text("SELECT count(*) FROM calls WHERE from_number = ''"), "1");
    ASSERT_NE(raw.text("SELECT sql FROM sqlite_schema WHERE name = 'calls'").find("NOT NULL DEFAULT ''"),
              std::string::npos);
  }
  auto store = open_store();
  ASSERT_TRUE(store);
  EXPECT_EQ(store->database().open_report().schema_before, 2);
  EXPECT_EQ(store->database().open_report().schema_after, Database::latest_schema_version());
  auto k = store->calls().get(known);
  ASSERT_TRUE(k.ok() && k->has_value());
  EXPECT_EQ((*k)->from_number, "+911140000000");
  auto u = store->calls().get(unknown);
  ASSERT_TRUE(u.ok() && u->has_value());
  EXPECT_FALSE((*u)->from_number.has_value());
  auto turns = store->calls().transcript(unknown);
  ASSERT_TRUE(turns.ok());
  EXPECT_EQ(turns->size(), 1u);  // the definition was edited in place: no cascade from a table rebuild
  CallRecord empty = minimal_call("55555555-5555-4555-8555-555555555555", kT0);
  empty.from_number = "";
  EXPECT_FALSE(store->calls().insert(empty).ok());
  RawDb raw(options().path);
  EXPECT_EQ(raw.text("PRAGMA integrity_check"), "ok");
}

TEST_F(StoreTest, RefusesANewerSchemaVersion) {
  const int newer = Database::latest_schema_version() + 1;
  {
    RawDb raw(options().path);
    raw.exec("CREATE TABLE future (x); PRAGMA user_version = " + std::to_string(newer));
  }
  auto store = Store::open(options(), clock_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("newer"), std::string::npos) << store.error().message;
  EXPECT_NE(store.error().message.find("downgrade"), std::string::npos) << store.error().message;
  RawDb raw(options().path);
  EXPECT_EQ(raw.text("PRAGMA user_version"), std::to_string(newer));
  EXPECT_EQ(raw.text("SELECT count(*) FROM sqlite_schema WHERE name = 'calls'"), "0");
}

TEST_F(StoreTest, RefusesAFileThatIsNotADatabase) {
  const std::string junk(4096, 'x');
  test::write_file(options().path, junk);
  auto store = Store::open(options(), clock_);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("is not an SQLite database"), std::string::npos)
      << store.error().message;
  EXPECT_NE(store.error().message.find(options().path), std::string::npos) << store.error().message;
  EXPECT_EQ(test::read_file(options().path), junk);
}

TEST_F(StoreTest, MissingFolderIsAClearError) {
  StoreOptions opts = options();
  opts.path = dir_.file("absent/osvid.db");
  auto store = Store::open(opts, clock_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, -ENOENT);
  EXPECT_NE(store.error().message.find("does not exist"), std::string::npos) << store.error().message;
}

TEST_F(StoreTest, QuickCheckIsReported) {
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    EXPECT_TRUE(store->database().open_report().quick_check_ok);
    EXPECT_EQ(store->database().open_report().quick_check, "ok");
    StoreHealth h = store->health();
    EXPECT_TRUE(h.quick_check_ok);
    EXPECT_EQ(h.quick_check, "ok");
    EXPECT_EQ(h.path, options().path);
    EXPECT_EQ(h.schema_version, Database::latest_schema_version());
    EXPECT_GT(h.size_bytes, 0);
    EXPECT_EQ(h.calls_total, 0);
  }
  StoreOptions opts = options();
  opts.quick_check = false;
  auto store = Store::open(opts, clock_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  EXPECT_EQ((*store)->database().open_report().quick_check, "skipped");
}

TEST_F(StoreTest, QuickCheckFailureIsReportedNotFatal) {
  int root = 0;
  int page_size = 0;
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->meta().set("k", "v").ok());
  }
  {
    RawDb raw(options().path);
    root = std::stoi(raw.text("SELECT rootpage FROM sqlite_schema WHERE name = 'meta'"));
    page_size = std::stoi(raw.text("PRAGMA page_size"));
  }
  ASSERT_GT(root, 1);
  // Overwrite the b-tree page header of meta (a one-page table): open never reads it, quick_check does.
  {
    std::fstream f(options().path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(root - 1) * page_size);
    const char garbage[8] = {'\x7f', '\x7f', '\x7f', '\x7f', '\x7f', '\x7f', '\x7f', '\x7f'};
    f.write(garbage, sizeof garbage);
    ASSERT_TRUE(f.good());
  }
  auto store = Store::open(options(), clock_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  EXPECT_FALSE((*store)->database().open_report().quick_check_ok);
  EXPECT_NE((*store)->database().open_report().quick_check, "ok");
  EXPECT_FALSE((*store)->database().open_report().quick_check.empty());
  EXPECT_FALSE((*store)->health().quick_check_ok);
}

// A daemon killed mid-call (SIGKILL, power cut): the answered call keeps its answer time and stays picked,
// ended by system for daemon_restart at the last moment it is known to have been live (the heartbeat), with
// the talk time up to then and its saved turns; the one still ringing failed; the finished one is untouched.
TEST_F(StoreTest, RecoversCallsLeftInProgress) {
  const std::string a = "aaaaaaaa-0000-4000-8000-000000000001";
  const std::string b = "bbbbbbbb-0000-4000-8000-000000000002";
  const std::string done = "cccccccc-0000-4000-8000-000000000003";
  CallRecord finished;
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->calls().insert(minimal_call(a, kT0)).ok());
    ASSERT_TRUE(store->calls().set_picked(a, kT0 + 1'000).ok());  // what the calls engine writes on answer
    TranscriptTurn turn{a, 1, "agent", "Hello", kT0 + 1'200, kT0 + 2'500, false, std::nullopt};
    ASSERT_TRUE(store->calls().add_transcript_turn(turn).ok());
    ASSERT_TRUE(store->calls().insert(minimal_call(b, kT0 + 10)).ok());
    finished = minimal_call(done, kT0 - 50'000);
    finished.status = "picked";
    finished.call_picked_at_ms = kT0 - 45'000;
    finished.ended_at_ms = kT0 - 5'000;
    finished.duration_seconds = 40;
    finished.call_ended_by = "user";
    ASSERT_TRUE(store->calls().insert(finished).ok());
    finished = store->calls().get(done)->value();
    clock_.advance_ms(4'400);
    ASSERT_TRUE(mark_calls_alive(store->calls(), store->meta(), clock_.wall_ms()).ok());
  }
  const int64_t alive = kT0 + 4'400;
  clock_.advance_ms(61'000);  // the daemon was down for a minute
  const int64_t now = clock_.wall_ms();
  auto store = open_store();
  ASSERT_TRUE(store);
  EXPECT_EQ(store->database().open_report().recovered_calls, (std::vector<std::string>{a, b}));

  auto ra = store->calls().get(a);
  ASSERT_TRUE(ra.ok() && ra->has_value());
  const CallRecord& ca = **ra;
  EXPECT_EQ(ca.status, "picked");
  EXPECT_EQ(ca.call_ended_reason, "daemon_restart");
  EXPECT_EQ(ca.call_ended_by, "system");
  EXPECT_EQ(ca.call_picked_at_ms, kT0 + 1'000);
  EXPECT_EQ(ca.ended_at_ms, alive);   // the last moment known live, not the restart
  EXPECT_EQ(ca.duration_seconds, 3);  // 3.4 s from call_picked_at, rounded as a normal end is
  EXPECT_EQ(ca.revision, 2);
  EXPECT_EQ(ca.updated_at_ms, now);
  EXPECT_EQ(store->calls().transcript(a)->size(), 1u);

  auto rb = store->calls().get(b);
  ASSERT_TRUE(rb.ok() && rb->has_value());
  EXPECT_EQ((*rb)->status, "failed");
  EXPECT_EQ((*rb)->call_ended_by, "system");
  EXPECT_EQ((*rb)->ended_at_ms, alive);
  EXPECT_EQ((*rb)->duration_seconds, 0);  // never answered
  EXPECT_FALSE((*rb)->call_picked_at_ms.has_value());

  auto rd = store->calls().get(done);
  ASSERT_TRUE(rd.ok() && rd->has_value());
  EXPECT_EQ(**rd, finished);

  // The fleet hears the recovered record as it now stands.
  auto queued = store->outbox().pending(0, 10);
  ASSERT_TRUE(queued.ok());
  bool found = false;
  for (const auto& row : *queued) {
    if (row.idempotency_key != "call:" + a + ":2") continue;
    found = true;
    EXPECT_NE(row.payload.find("\"status\":\"picked\""), std::string::npos) << row.payload;
    EXPECT_NE(row.payload.find("\"duration_seconds\":3"), std::string::npos) << row.payload;
  }
  EXPECT_TRUE(found);

  store.reset();
  store = open_store();
  ASSERT_TRUE(store);
  EXPECT_TRUE(store->database().open_report().recovered_calls.empty());
}

// Without a heartbeat after the answer (killed within the first period), the last saved turn bounds the
// call; a heartbeat older than the call says nothing about it.
TEST_F(StoreTest, RecoveryWithoutAFreshHeartbeatEndsAtTheLastEvidence) {
  const std::string a = "aaaaaaaa-0000-4000-8000-000000000001";
  const std::string b = "bbbbbbbb-0000-4000-8000-000000000002";
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->meta().set(kCallsAliveKey, std::to_string(kT0 - 100'000)).ok());  // a previous run's
    ASSERT_TRUE(store->calls().insert(minimal_call(a, kT0)).ok());
    ASSERT_TRUE(store->calls().set_picked(a, kT0 + 2'000).ok());
    TranscriptTurn turn{a, 1, "user", "Hi", kT0 + 3'000, kT0 + 5'700, false, std::nullopt};
    ASSERT_TRUE(store->calls().add_transcript_turn(turn).ok());
    CallRecord picked_no_turns = minimal_call(b, kT0);
    ASSERT_TRUE(store->calls().insert(picked_no_turns).ok());
    ASSERT_TRUE(store->calls().set_picked(b, kT0 + 500).ok());
  }
  clock_.advance_ms(30'000);
  auto store = open_store();
  ASSERT_TRUE(store);
  auto ca = store->calls().get(a)->value();
  EXPECT_EQ(ca.status, "picked");
  EXPECT_EQ(ca.ended_at_ms, kT0 + 5'700);
  EXPECT_EQ(ca.duration_seconds, 4);  // 3.7 s
  auto cb = store->calls().get(b)->value();
  EXPECT_EQ(cb.status, "picked");
  EXPECT_EQ(cb.ended_at_ms, kT0 + 500);  // answered, and nothing later is known
  EXPECT_EQ(cb.duration_seconds, 0);
}

// The heartbeat writes only while a call is live, and set_picked touches only a live call.
TEST_F(StoreTest, HeartbeatWritesOnlyWhileCallsAreLive) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(mark_calls_alive(store->calls(), store->meta(), kT0 + 1).ok());
  EXPECT_FALSE(store->meta().get(kCallsAliveKey).has_value());
  const std::string a = "aaaaaaaa-0000-4000-8000-000000000001";
  ASSERT_TRUE(store->calls().insert(minimal_call(a, kT0)).ok());
  ASSERT_TRUE(mark_calls_alive(store->calls(), store->meta(), kT0 + 2).ok());
  EXPECT_EQ(store->meta().get(kCallsAliveKey), std::to_string(kT0 + 2));

  CallRecord c = store->calls().get(a)->value();
  c.status = "picked";
  c.call_picked_at_ms = kT0 + 10;
  ASSERT_TRUE(store->calls().update(c).ok());
  ASSERT_TRUE(store->calls().set_picked(a, kT0 + 999).ok());  // over: no effect
  EXPECT_EQ(store->calls().get(a)->value().call_picked_at_ms, kT0 + 10);
  ASSERT_TRUE(mark_calls_alive(store->calls(), store->meta(), kT0 + 3).ok());
  EXPECT_EQ(store->meta().get(kCallsAliveKey), std::to_string(kT0 + 2));
}

TEST_F(StoreTest, SyncAgentsUpsertsAndArchives) {
  auto store = open_store();
  ASSERT_TRUE(store);
  std::vector<AgentRecord> config = {agent("agent_a", "voice", true), agent("agent_b", "chat", true),
                                     agent("agent_c", "voice", false)};
  config[1].id = 42;  // a configured numeric id is kept
  ASSERT_TRUE(store->agents().sync(config).ok());
  auto all = store->agents().all();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  for (const auto& a : *all) {
    EXPECT_GT(a.id, 0);
    EXPECT_EQ(a.created_at_ms, kT0);
    EXPECT_EQ(a.updated_at_ms, kT0);
    EXPECT_FALSE(a.archived);
    EXPECT_FALSE(a.definition_hash.empty());
  }
  EXPECT_EQ(find(*all, "agent_b")->id, 42);
  EXPECT_EQ(find(*all, "agent_b")->mode, "chat");

  clock_.advance_ms(1000);
  ASSERT_TRUE(store->agents().sync(config).ok());
  all = store->agents().all();
  ASSERT_TRUE(all.ok());
  for (const auto& a : *all) EXPECT_EQ(a.updated_at_ms, kT0) << a.agent_uuid << " changed without a change";

  clock_.advance_ms(1000);
  config[0].name = "Front desk";
  config[2].definition_json = R"({"prompt":"new"})";
  ASSERT_TRUE(store->agents().sync(config).ok());
  all = store->agents().all();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(find(*all, "agent_a")->name, "Front desk");
  EXPECT_EQ(find(*all, "agent_a")->updated_at_ms, kT0 + 2000);
  EXPECT_EQ(find(*all, "agent_b")->updated_at_ms, kT0);
  EXPECT_EQ(find(*all, "agent_c")->updated_at_ms, kT0 + 2000);
  EXPECT_EQ(find(*all, "agent_c")->definition_json, R"({"prompt":"new"})");
  EXPECT_EQ(find(*all, "agent_a")->created_at_ms, kT0);

  clock_.advance_ms(1000);
  config.erase(config.begin() + 1);  // agent_b left the configuration
  ASSERT_TRUE(store->agents().sync(config).ok());
  all = store->agents().all();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);  // kept for history
  EXPECT_TRUE(find(*all, "agent_b")->archived);
  EXPECT_EQ(find(*all, "agent_b")->updated_at_ms, kT0 + 3000);
  EXPECT_FALSE(find(*all, "agent_a")->archived);
  EXPECT_EQ(find(*all, "agent_a")->updated_at_ms, kT0 + 2000);
}

TEST_F(StoreTest, SyncAgentsIsOneTransaction) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->agents().sync({agent("agent_a", "voice", true)}).ok());
  Status s = store->agents().sync({agent("agent_a", "voice", false), agent("agent_bad", "fax", true)});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("agent_bad"), std::string::npos) << s.error().message;
  auto all = store->agents().all();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_TRUE(all->front().active);  // the first agent's change was rolled back with the failure
}

TEST_F(StoreTest, ActiveVoiceAgentsFilterAndOrder) {
  auto store = open_store();
  ASSERT_TRUE(store);
  std::vector<AgentRecord> config = {agent("agent_old", "voice", true),  agent("agent_z", "voice", true),
                                     agent("agent_y", "voice", true),    agent("agent_chat", "chat", true),
                                     agent("agent_off", "voice", false), agent("agent_arch", "voice", true)};
  config[5].archived = true;
  ASSERT_TRUE(store->agents().sync(config).ok());
  clock_.advance_ms(5000);
  // agent_z and agent_y change together: same updated_at, so the uuid breaks the tie.
  config[1].name = "Z2";
  config[2].name = "Y2";
  config[4].name = "off, but newer";
  config[3].name = "chat, but newer";
  ASSERT_TRUE(store->agents().sync(config).ok());

  auto active = store->agents().active_voice();
  ASSERT_TRUE(active.ok());
  std::vector<std::string> uuids;
  for (const auto& a : *active) uuids.push_back(a.agent_uuid);
  EXPECT_EQ(uuids, (std::vector<std::string>{"agent_y", "agent_z", "agent_old"}));
}

TEST_F(StoreTest, CallRoundTripsEveryField) {
  auto store = open_store();
  ASSERT_TRUE(store);
  CallRecord c;
  c.call_id = "0190f5a2-7c3e-7a1b-9c2d-3e4f5a6b7c8d";
  c.agent_uuid = "agent_IsZ3Q6Sf_60Eh26XQMGbz-R_og";
  c.agent_name = "Sales";
  c.phone_number = "+919876543210";
  c.from_number = "+911140000000";
  c.status = "picked";
  c.call_type = "inbound";
  c.duration_seconds = 42;
  c.call_ended_by = "agent";
  c.call_ended_reason = "assistant-ended-call";
  c.campaign_id = 7;
  c.campaign_upload_id = 70;
  c.tag_id = 3;
  c.tag_name = "Hot lead";
  c.tag_color_code = "#22c55e";
  c.created_at_ms = kT0 - 60'000;
  c.call_picked_at_ms = kT0 - 55'000;
  c.ended_at_ms = kT0 - 13'000;
  c.caller_name = "Ravi Kumar";
  c.person_name = "Ravi";
  c.retry_count = 2;
  c.summary = "Customer confirmed the appointment.";
  c.data_captured = R"({"email":"ravi@example.com","confirmed":true})";
  c.post_call_analysis = R"({"sentiment":"positive","callback_required":false})";
  c.structured_output = R"({"intent":"book"})";
  c.call_trigger_data = R"({"crm_id":"X-1"})";
  c.additional_data = R"({"crm_id":"X-1"})";
  c.system_prompt = "You are a helpful agent.";
  c.initial_greeting = "Namaste!";
  c.webhook_url = "https://crm.example.com/hook";
  c.call_config_overrides = R"({"max_call_duration_seconds":300})";
  c.data_extraction = R"([{"key":"email","required":true}])";
  c.line = "fxo0";
  c.callback_required = true;
  c.greeting_gap_ms = 870;
  c.execution_mode = "test";
  c.revision = 5;
  c.updated_at_ms = kT0 - 1;
  ASSERT_TRUE(store->calls().insert(c).ok());
  auto back = store->calls().get(c.call_id);
  ASSERT_TRUE(back.ok()) << back.error().message;
  ASSERT_TRUE(back->has_value());
  EXPECT_EQ(**back, c);
  {
    // The fleet's copy of the record carries the measured gap too.
    auto tx = store->database().begin();
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE(enqueue_call_record(*tx, store->calls(), store->outbox(), c.call_id).ok());
    ASSERT_TRUE(tx->commit().ok());
    auto rows = store->outbox().pending(0, 10);
    ASSERT_TRUE(rows.ok() && !rows->empty());
    EXPECT_NE(rows->back().payload.find("\"greeting_gap_ms\":870"), std::string::npos)
        << rows->back().payload;
  }

  // Absent optionals come back absent, not as empty strings or zeros; 0 times become now.
  CallRecord bare = minimal_call("0190f5a2-0000-7000-8000-000000000000", 0);
  ASSERT_TRUE(store->calls().insert(bare).ok());
  auto bare_back = store->calls().get(bare.call_id);
  ASSERT_TRUE(bare_back.ok() && bare_back->has_value());
  bare.created_at_ms = kT0;
  bare.updated_at_ms = kT0;
  EXPECT_EQ(**bare_back, bare);
  EXPECT_FALSE((*bare_back)->call_picked_at_ms.has_value());
  EXPECT_FALSE((*bare_back)->campaign_id.has_value());

  auto missing = store->calls().get("00000000-0000-4000-8000-000000000000");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());

  Status dup = store->calls().insert(c);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, -EEXIST);

  CallRecord bad = minimal_call("0190f5a2-0000-7000-8000-0000000000ff", kT0);
  bad.status = "exploded";
  Status s = store->calls().insert(bad);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("CHECK constraint failed"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find(bad.call_id), std::string::npos) << s.error().message;
  bad.status = "failed";
  bad.data_captured = "{not json";
  EXPECT_FALSE(store->calls().insert(bad).ok());
}

TEST_F(StoreTest, UpdateCallBumpsRevision) {
  auto store = open_store();
  ASSERT_TRUE(store);
  CallRecord c = minimal_call("0190f5a2-1111-7000-8000-000000000000", kT0);
  ASSERT_TRUE(store->calls().insert(c).ok());
  clock_.advance_ms(30'000);
  c.status = "picked";
  c.summary = "done";
  c.created_at_ms = 1;  // immutable: ignored
  ASSERT_TRUE(store->calls().update(c).ok());
  auto back = store->calls().get(c.call_id);
  ASSERT_TRUE(back.ok() && back->has_value());
  EXPECT_EQ((*back)->status, "picked");
  EXPECT_EQ((*back)->summary, "done");
  EXPECT_EQ((*back)->revision, 2);
  EXPECT_EQ((*back)->updated_at_ms, kT0 + 30'000);
  EXPECT_EQ((*back)->created_at_ms, kT0);

  c.call_id = "0190f5a2-2222-7000-8000-000000000000";
  Status s = store->calls().update(c);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, -ENOENT);
}

TEST_F(StoreTest, TransactionRollsBackOnError) {
  auto store = open_store();
  ASSERT_TRUE(store);
  const std::string id = "0190f5a2-3333-7000-8000-000000000000";
  Status s = store->database().transaction([&]() -> Status {
    if (Status in = store->calls().insert(minimal_call(id, kT0)); !in.ok()) return in;
    if (Status m = store->meta().set("outbox_seq", "1"); !m.ok()) return m;
    return make_error("webhook payload could not be built");
  });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message, "webhook payload could not be built");
  auto c = store->calls().get(id);
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->has_value());
  EXPECT_FALSE(store->meta().get("outbox_seq").has_value());

  // An exception is contained, and rolls back too.
  s = store->database().transaction([&]() -> Status {
    (void)store->meta().set("outbox_seq", "2");
    throw std::runtime_error("boom");
  });
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("boom"), std::string::npos);
  EXPECT_FALSE(store->meta().get("outbox_seq").has_value());

  // Nested: the inner failure undoes only the inner work.
  s = store->database().transaction([&]() -> Status {
    if (Status in = store->calls().insert(minimal_call(id, kT0)); !in.ok()) return in;
    Status inner = store->database().transaction([&]() -> Status {
      (void)store->meta().set("inner", "x");
      return make_error("inner failed");
    });
    EXPECT_FALSE(inner.ok());
    return {};
  });
  ASSERT_TRUE(s.ok()) << s.error().message;
  c = store->calls().get(id);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->has_value());
  EXPECT_FALSE(store->meta().get("inner").has_value());

  // Still usable afterwards: no transaction left open.
  s = store->database().transaction([&]() -> Status { return store->meta().set("after", "1"); });
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(store->meta().get("after"), "1");
}

TEST_F(StoreTest, TranscriptTurnsCascadeWithTheirCall) {
  auto store = open_store();
  ASSERT_TRUE(store);
  const std::string id = "0190f5a2-4444-7000-8000-000000000000";
  ASSERT_TRUE(store->calls().insert(minimal_call(id, kT0)).ok());
  std::vector<TranscriptTurn> turns = {
      {id, 1, "agent", "Hello, this is Asha.", kT0, kT0 + 900, false, R"({"ttfb_ms":180})"},
      {id, 2, "user", "Hi", kT0 + 1000, kT0 + 1200, true, std::nullopt},
      {id, 3, "tool", "lookup(42)", std::nullopt, std::nullopt, false, std::nullopt},
  };
  // Inserted out of order on purpose: reads come back by seq.
  ASSERT_TRUE(store->calls().add_transcript_turn(turns[2]).ok());
  ASSERT_TRUE(store->calls().add_transcript_turn(turns[0]).ok());
  ASSERT_TRUE(store->calls().add_transcript_turn(turns[1]).ok());
  Status dup = store->calls().add_transcript_turn(turns[1]);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, -EEXIST);
  TranscriptTurn bad_role = turns[0];
  bad_role.seq = 9;
  bad_role.role = "narrator";
  EXPECT_FALSE(store->calls().add_transcript_turn(bad_role).ok());

  auto got = store->calls().transcript(id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, turns);

  ASSERT_TRUE(store->calls().remove(id).ok());
  got = store->calls().transcript(id);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->empty());
  RawDb raw(options().path);
  EXPECT_EQ(raw.text("SELECT count(*) FROM transcript_turns"), "0");
  EXPECT_EQ(store->calls().remove(id).error().code, -ENOENT);
}

TEST_F(StoreTest, DndAllowsOneActiveEntryPerAgentAndNumber) {
  auto store = open_store();
  ASSERT_TRUE(store);
  auto first =
      store->dnd().add_entry("agent_a", "+919876543210", "asked not to be called", "api", std::nullopt);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_TRUE(first->created);
  EXPECT_EQ(first->entry.agent_uuid, "agent_a");
  EXPECT_EQ(first->entry.phone, "+919876543210");
  EXPECT_EQ(first->entry.reason, "asked not to be called");
  EXPECT_EQ(first->entry.created_at_ms, kT0);
  EXPECT_EQ(first->entry.source, "api");
  EXPECT_FALSE(first->entry.call_id.has_value());

  // Idempotent: the entry already there comes back unchanged, nothing new is written.
  clock_.advance_ms(500);
  auto dup = store->dnd().add_entry("agent_a", "+919876543210", "other reason", "mqtt", "call-x");
  ASSERT_TRUE(dup.ok()) << dup.error().message;
  EXPECT_FALSE(dup->created);
  EXPECT_EQ(dup->entry.id, first->entry.id);
  EXPECT_EQ(dup->entry.reason, "asked not to be called");
  EXPECT_EQ(dup->entry.source, "api");
  EXPECT_EQ(dup->entry.created_at_ms, kT0);
  // Another agent's list is separate.
  auto other = store->dnd().add_entry("agent_b", "+919876543210", std::nullopt, "opt_out", "call-1");
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->created);
  EXPECT_EQ(other->entry.source, "opt_out");
  EXPECT_EQ(other->entry.call_id, "call-1");

  clock_.advance_ms(500);
  ASSERT_TRUE(store->dnd().remove("agent_a", "+919876543210").ok());
  auto list = store->dnd().active("agent_a");
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
  EXPECT_EQ(store->dnd().remove("agent_a", "+919876543210").error().code, -ENOENT);

  auto again = store->dnd().add_entry("agent_a", "+919876543210", "again", "mqtt", std::nullopt);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_TRUE(again->created);
  EXPECT_NE(again->entry.id, first->entry.id);
  list = store->dnd().active("agent_a");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->front().id, again->entry.id);
  EXPECT_EQ(list->front().reason, "again");
  EXPECT_EQ(list->front().source, "mqtt");
  EXPECT_EQ(list->front().created_at_ms, kT0 + 1000);
  EXPECT_FALSE(list->front().removed_at_ms.has_value());
  auto b = store->dnd().active("agent_b");
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->size(), 1u);
  EXPECT_EQ(b->front().call_id, "call-1");

  RawDb raw(options().path);
  EXPECT_EQ(raw.text("SELECT count(*) FROM dnd_numbers WHERE agent_uuid = 'agent_a'"), "2");  // history kept
}

CampaignRow sample_campaign(int64_t id) {
  CampaignRow c;
  c.id = id;
  c.name = "Renewals " + std::to_string(id);
  c.is_retry_enabled = true;
  c.retry_threshold = 3;
  c.retry_delay_s = 600;
  c.retry_on = {"not_picked", "busy", "failed"};
  c.starts_at_ms = kT0;
  c.ends_at_ms = kT0 + 86'400'000;
  c.window_start_min = 9 * 60 + 30;
  c.window_end_min = 18 * 60;
  c.days_mask = 0x3e;
  c.max_concurrent_per_agent = 2;
  c.agents = {{"agent_a", true}, {"agent_b", false}};
  c.definition_hash = "0123456789abcdef";
  return c;
}

TEST_F(StoreTest, CampaignRoundTripsAndUpsertKeepsCreatedAt) {
  auto store = open_store();
  ASSERT_TRUE(store);
  CampaignRow c = sample_campaign(7);
  ASSERT_TRUE(store->campaigns().upsert(c).ok());
  auto back = store->campaigns().get(7);
  ASSERT_TRUE(back.ok()) << back.error().message;
  ASSERT_TRUE(back->has_value());
  c.created_at_ms = kT0;
  c.updated_at_ms = kT0;
  EXPECT_EQ(**back, c);

  clock_.advance_ms(5000);
  c.name = "Renewals (Q3)";
  c.agents = {{"agent_c", true}};
  c.window_start_min = 0;
  c.window_end_min = 24 * 60;
  c.starts_at_ms.reset();
  ASSERT_TRUE(store->campaigns().upsert(c).ok());
  back = store->campaigns().get(7);
  ASSERT_TRUE(back.ok() && back->has_value());
  c.updated_at_ms = kT0 + 5000;
  EXPECT_EQ(**back, c);  // created_at kept, agents replaced

  ASSERT_TRUE(store->campaigns().upsert(sample_campaign(3)).ok());
  auto all = store->campaigns().list();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id, 3);
  EXPECT_EQ((*all)[1].id, 7);
  EXPECT_EQ((*all)[0].agents.size(), 2u);

  ASSERT_TRUE(store->campaigns().set_status(7, "inactive").ok());
  back = store->campaigns().get(7);
  ASSERT_TRUE(back.ok() && back->has_value());
  EXPECT_EQ((*back)->status, "inactive");
  EXPECT_EQ(store->campaigns().set_status(99, "inactive").error().code, -ENOENT);
  auto none = store->campaigns().get(99);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST_F(StoreTest, AddContactAppliesTheDuplicateRule) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->campaigns().upsert(sample_campaign(1)).ok());
  ASSERT_TRUE(store->campaigns().upsert(sample_campaign(2)).ok());
  auto up = store->campaigns().create_upload(UploadRow{0, 1, "agent_a", "f.csv", "api", true, {}, {}, 0});
  ASSERT_TRUE(up.ok()) << up.error().message;
  auto held = store->campaigns().create_upload(UploadRow{0, 1, "agent_a", "g.csv", "csv", false, {}, {}, 0});
  ASSERT_TRUE(held.ok());

  auto& repo = store->campaigns();
  ContactInput ravi{"+919876543210", "Ravi", R"({"plan":"Pro"})", "Asia/Kolkata"};
  EXPECT_EQ(*repo.add_contact(1, *up, "agent_a", ravi, true), ContactAdd::added);
  // Same number, shorter or equal name: kept as it was.
  ContactInput shorter{"+919876543210", "Rav", R"({"plan":"Basic"})", std::nullopt};
  EXPECT_EQ(*repo.add_contact(1, *held, "agent_a", shorter, false), ContactAdd::duplicate);
  ContactInput nameless{"+919876543210", std::nullopt, std::nullopt, std::nullopt};
  EXPECT_EQ(*repo.add_contact(1, *held, "agent_a", nameless, false), ContactAdd::duplicate);
  // Longer (in characters, not bytes): the name and its variables win.
  ContactInput longer{"+919876543210", "Ravi Kumar", R"({"plan":"Max"})", std::nullopt};
  EXPECT_EQ(*repo.add_contact(1, *held, "agent_a", longer, false), ContactAdd::duplicate_renamed);
  ContactInput devanagari{"+919876543210", "\u0930\u0935\u093f", std::nullopt,
                          std::nullopt};  // 3 chars, 9 bytes
  EXPECT_EQ(*repo.add_contact(1, *held, "agent_a", devanagari, false), ContactAdd::duplicate);
  // Another campaign is separate.
  auto up2 = repo.create_upload(UploadRow{0, 2, "agent_a", "h.csv", "api", false, {}, {}, 0});
  ASSERT_TRUE(up2.ok());
  EXPECT_EQ(*repo.add_contact(2, *up2, "agent_a", shorter, false), ContactAdd::added);
  ContactInput other{"+919876500000", std::nullopt, std::nullopt, std::nullopt};
  EXPECT_EQ(*repo.add_contact(1, *held, "agent_a", other, false), ContactAdd::added);

  int64_t total = 0;
  auto list = repo.contacts(1, "", 1, 10, &total);
  ASSERT_TRUE(list.ok()) << list.error().message;
  EXPECT_EQ(total, 2);
  ASSERT_EQ(list->size(), 2u);
  const ContactRow& first = (*list)[0];
  EXPECT_EQ(first.phone, "+919876543210");
  EXPECT_EQ(first.person_name, "Ravi Kumar");
  EXPECT_EQ(first.variables_json, R"({"plan":"Max"})");
  EXPECT_EQ(first.time_zone, "Asia/Kolkata");
  EXPECT_EQ(first.upload_id, *up);  // the contact stays with the upload that brought it
  EXPECT_EQ(first.state, "queued");
  EXPECT_EQ(first.next_attempt_at_ms, kT0);
  EXPECT_EQ((*list)[1].state, "held");
  EXPECT_FALSE((*list)[1].next_attempt_at_ms.has_value());

  auto queued = repo.contacts(1, "queued", 1, 10, &total);
  ASSERT_TRUE(queued.ok());
  EXPECT_EQ(total, 1);
  auto page2 = repo.contacts(1, "", 2, 1, &total);
  ASSERT_TRUE(page2.ok());
  ASSERT_EQ(page2->size(), 1u);
  EXPECT_EQ(page2->front().phone, "+919876500000");
  EXPECT_EQ(*repo.queued_count(1), 1);
  EXPECT_EQ(*repo.queued_count(1, "agent_a"), 1);
  EXPECT_EQ(*repo.queued_count(1, "agent_b"), 0);

  clock_.advance_ms(2000);
  auto moved = repo.enqueue_upload(*held);
  ASSERT_TRUE(moved.ok()) << moved.error().message;
  EXPECT_EQ(*moved, 1);
  EXPECT_EQ(*repo.enqueue_upload(*held), 0);
  EXPECT_EQ(*repo.queued_count(1), 2);
  auto row = repo.upload(*held);
  ASSERT_TRUE(row.ok() && row->has_value());
  EXPECT_TRUE((*row)->enqueued);
  list = repo.contacts(1, "queued", 1, 10, nullptr);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[1].next_attempt_at_ms, kT0 + 2000);
}

TEST_F(StoreTest, UploadsByKeyResultAndRemovalCascade) {
  auto store = open_store();
  ASSERT_TRUE(store);
  auto& repo = store->campaigns();
  ASSERT_TRUE(repo.upsert(sample_campaign(1)).ok());
  auto up = repo.create_upload(UploadRow{0, 1, "agent_a", "f.csv", "mqtt", true, "key-1", {}, 0});
  ASSERT_TRUE(up.ok());
  EXPECT_FALSE(repo.create_upload(UploadRow{0, 1, "agent_a", "g.csv", "mqtt", true, "key-1", {}, 0}).ok());
  ASSERT_TRUE(repo.set_upload_result(*up, R"({"contacts_received":1})").ok());
  auto found = repo.upload_by_key("key-1");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->id, *up);
  EXPECT_EQ((*found)->source, "mqtt");
  EXPECT_EQ((*found)->result_json, R"({"contacts_received":1})");
  EXPECT_EQ((*found)->created_at_ms, kT0);
  auto missing = repo.upload_by_key("key-2");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());

  ContactInput c{"+919876543210", "Ravi", std::nullopt, std::nullopt};
  ASSERT_TRUE(repo.add_contact(1, *up, "agent_a", c, true).ok());
  ASSERT_TRUE(repo.remove_upload(*up).ok());
  RawDb raw(options().path);
  EXPECT_EQ(raw.text("SELECT count(*) FROM campaign_contacts"), "0");
  EXPECT_EQ(raw.text("SELECT count(*) FROM campaign_uploads"), "0");
}

TEST_F(StoreTest, CampaignReportCountsCallsAndQueues) {
  auto store = open_store();
  ASSERT_TRUE(store);
  auto& repo = store->campaigns();
  ASSERT_TRUE(repo.upsert(sample_campaign(5)).ok());
  ASSERT_TRUE(repo.upsert(sample_campaign(6)).ok());
  auto up1 = repo.create_upload(UploadRow{0, 5, "agent_a", "1.csv", "api", true, {}, {}, 0});
  clock_.advance_ms(10);
  auto up2 = repo.create_upload(UploadRow{0, 5, "agent_b", "2.csv", "api", false, {}, {}, 0});
  clock_.advance_ms(10);
  auto up3 =
      repo.create_upload(UploadRow{0, 5, "agent_a", "3.csv", "api", true, {}, {}, 0});  // all duplicates
  ASSERT_TRUE(up1.ok() && up2.ok() && up3.ok());
  ASSERT_TRUE(repo.add_contact(5, *up1, "agent_a", {"+919876543210", {}, {}, {}}, true).ok());
  ASSERT_TRUE(repo.add_contact(5, *up1, "agent_a", {"+919876543211", {}, {}, {}}, true).ok());
  ASSERT_TRUE(repo.add_contact(5, *up2, "agent_b", {"+919876543212", {}, {}, {}}, false).ok());
  RawDb raw(options().path);
  raw.exec("UPDATE campaign_contacts SET state = 'done' WHERE phone = '+919876543211'");

  const char* statuses[] = {"picked", "picked", "not_picked", "failed"};
  int n = 0;
  for (const char* status : statuses) {
    CallRecord c = minimal_call("0190f5a2-7c3e-7a1b-9c2d-3e4f5a6b7c0" + std::to_string(n++), kT0);
    c.status = status;
    c.campaign_id = 5;
    c.campaign_upload_id = *up1;
    ASSERT_TRUE(store->calls().insert(c).ok());
  }
  CallRecord elsewhere = minimal_call("0190f5a2-7c3e-7a1b-9c2d-3e4f5a6b7c99", kT0);
  elsewhere.campaign_id = 6;
  ASSERT_TRUE(store->calls().insert(elsewhere).ok());

  auto rep = repo.report(5);
  ASSERT_TRUE(rep.ok()) << rep.error().message;
  ASSERT_TRUE(rep->has_value());
  const CampaignReport& r = **rep;
  EXPECT_EQ(r.campaign.id, 5);
  EXPECT_EQ(r.calls_total, 4);
  std::vector<std::pair<std::string, int64_t>> by_status = {{"failed", 1}, {"not_picked", 1}, {"picked", 2}};
  EXPECT_EQ(r.calls_by_status, by_status);
  ASSERT_EQ(r.uploads.size(), 3u);
  EXPECT_EQ(r.uploads[0].upload.id, *up1);
  ASSERT_EQ(r.uploads[0].queues.size(), 1u);
  EXPECT_EQ(r.uploads[0].queues[0].agent_uuid, "agent_a");
  EXPECT_EQ(r.uploads[0].queues[0].total_queued, 1);
  EXPECT_FALSE(r.uploads[0].queues[0].completed);
  ASSERT_EQ(r.uploads[1].queues.size(), 1u);
  EXPECT_EQ(r.uploads[1].queues[0].agent_uuid, "agent_b");
  EXPECT_EQ(r.uploads[1].queues[0].total_queued, 0);
  EXPECT_FALSE(r.uploads[1].queues[0].completed);  // held: not enqueued yet
  ASSERT_EQ(r.uploads[2].queues.size(), 1u);
  EXPECT_TRUE(r.uploads[2].queues[0].completed);

  raw.exec("UPDATE campaign_contacts SET state = 'done'");
  rep = repo.report(5);
  ASSERT_TRUE(rep.ok() && rep->has_value());
  EXPECT_TRUE((*rep)->uploads[0].queues[0].completed);
  EXPECT_EQ((*rep)->uploads[0].queues[0].total_queued, 0);

  auto none = repo.report(42);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST_F(StoreTest, DndListPagesNewestFirstAndSearchesLiterally) {
  auto store = open_store();
  ASSERT_TRUE(store);
  // Five entries a second apart, plus one removed and one of another agent: neither may show.
  const std::vector<std::string> phones = {"+14155550100", "+14155550101", "+442071234567", "+14155550103",
                                           "+919876543210"};
  for (const std::string& p : phones) {
    ASSERT_TRUE(store->dnd().add_entry("agent_a", p, std::nullopt, "api", std::nullopt).ok());
    clock_.advance_ms(1000);
  }
  ASSERT_TRUE(store->dnd().add_entry("agent_a", "+14155550199", std::nullopt, "api", std::nullopt).ok());
  ASSERT_TRUE(store->dnd().remove("agent_a", "+14155550199").ok());
  ASSERT_TRUE(store->dnd().add_entry("agent_b", "+14155550100", std::nullopt, "api", std::nullopt).ok());

  int64_t total = -1;
  auto page1 = store->dnd().list("agent_a", "", 1, 2, &total);
  ASSERT_TRUE(page1.ok()) << page1.error().message;
  EXPECT_EQ(total, 5);
  ASSERT_EQ(page1->size(), 2u);
  EXPECT_EQ((*page1)[0].phone, "+919876543210");
  EXPECT_EQ((*page1)[1].phone, "+14155550103");
  EXPECT_EQ((*page1)[0].source, "api");
  auto page3 = store->dnd().list("agent_a", "", 3, 2, &total);
  ASSERT_TRUE(page3.ok());
  ASSERT_EQ(page3->size(), 1u);
  EXPECT_EQ((*page3)[0].phone, "+14155550100");
  auto beyond = store->dnd().list("agent_a", "", 4, 2, &total);
  ASSERT_TRUE(beyond.ok());
  EXPECT_TRUE(beyond->empty());
  EXPECT_EQ(total, 5);
  auto huge = store->dnd().list("agent_a", "", INT64_MAX, 100, &total);
  ASSERT_TRUE(huge.ok());
  EXPECT_TRUE(huge->empty());

  auto hits = store->dnd().list("agent_a", "415555", 1, 10, &total);
  ASSERT_TRUE(hits.ok());
  EXPECT_EQ(total, 3);
  ASSERT_EQ(hits->size(), 3u);
  EXPECT_EQ((*hits)[0].phone, "+14155550103");
  EXPECT_EQ((*hits)[2].phone, "+14155550100");
  hits = store->dnd().list("agent_a", "+44", 1, 10, &total);
  ASSERT_TRUE(hits.ok());
  EXPECT_EQ(total, 1);
  ASSERT_EQ(hits->size(), 1u);
  EXPECT_EQ((*hits)[0].phone, "+442071234567");
  // LIKE wildcards are plain characters here.
  for (const char* wild : {"%", "_", "4155%0100", "+1415555010_"}) {
    hits = store->dnd().list("agent_a", wild, 1, 10, &total);
    ASSERT_TRUE(hits.ok());
    EXPECT_EQ(total, 0) << wild;
    EXPECT_TRUE(hits->empty()) << wild;
  }
  // total_count is optional.
  hits = store->dnd().list("agent_b", "", 1, 10, nullptr);
  ASSERT_TRUE(hits.ok());
  EXPECT_EQ(hits->size(), 1u);
  EXPECT_EQ(store->dnd().list("agent_a", "", 0, 10, &total).error().code, -EINVAL);
  EXPECT_EQ(store->dnd().list("agent_a", "", 1, 0, &total).error().code, -EINVAL);
}

TEST_F(StoreTest, MetaRoundTrip) {
  auto store = open_store();
  ASSERT_TRUE(store);
  EXPECT_FALSE(store->meta().get("mqtt_session").has_value());
  ASSERT_TRUE(store->meta().set("mqtt_session", "1").ok());
  EXPECT_EQ(store->meta().get("mqtt_session"), "1");
  ASSERT_TRUE(store->meta().set("mqtt_session", "2").ok());
  EXPECT_EQ(store->meta().get("mqtt_session"), "2");
  ASSERT_TRUE(store->meta().set("empty", "").ok());
  EXPECT_EQ(store->meta().get("empty"), "");
}

// DialerQueue: contacts are created as the campaigns API does (CampaignsRepo), then worked by the queue.
class DialerQueueTest : public StoreTest {
 protected:
  void SetUp() override {
    store_ = open_store();
    ASSERT_TRUE(store_);
    for (int64_t id : {1, 2}) {
      CampaignRow c;
      c.id = id;
      c.name = "Campaign " + std::to_string(id);
      c.agents = {{"agent_a", true}, {"agent_b", true}};
      ASSERT_TRUE(store_->campaigns().upsert(c).ok());
      UploadRow u;
      u.campaign_id = id;
      u.agent_uuid = "agent_a";
      u.file_name = "test.csv";
      auto up = store_->campaigns().create_upload(u);
      ASSERT_TRUE(up.ok()) << up.error().message;
      upload_[id] = *up;
    }
  }

  // A queued contact due now (the clock's now), its id.
  int64_t add(int64_t campaign, const std::string& agent, const std::string& phone) {
    ContactInput in;
    in.phone = phone;
    in.person_name = "Asha";
    in.variables_json = R"({"plan":"gold"})";
    auto r = store_->campaigns().add_contact(campaign, upload_[campaign], agent, in, true);
    EXPECT_TRUE(r.ok()) << r.error().message;
    RawDb raw(options().path);
    return std::stoll(raw.text("SELECT id FROM campaign_contacts WHERE campaign_id = " +
                               std::to_string(campaign) + " AND phone = '" + phone + "'"));
  }
  ContactRow contact(int64_t id) {
    auto c = store_->dialer_queue().contact(id);
    EXPECT_TRUE(c.ok() && c->has_value());
    return c.ok() && c->has_value() ? **c : ContactRow{};
  }

  std::unique_ptr<Store> store_;
  std::map<int64_t, int64_t> upload_;
};

TEST_F(DialerQueueTest, NextDueTakesTheEarliestOfItsCampaignAndAgent) {
  DialerQueue& q = store_->dialer_queue();
  const int64_t a1 = add(1, "agent_a", "+919800000001");
  clock_.advance_ms(10);
  const int64_t a2 = add(1, "agent_a", "+919800000002");
  add(1, "agent_b", "+919800000003");
  add(2, "agent_a", "+919800000004");
  const int64_t now = clock_.wall_ms();

  auto first = q.next_due(1, "agent_a", now);
  ASSERT_TRUE(first.ok()) << first.error().message;
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ((*first)->id, a1);
  EXPECT_EQ((*first)->phone, "+919800000001");
  EXPECT_EQ((*first)->person_name, "Asha");
  EXPECT_EQ((*first)->variables_json, R"({"plan":"gold"})");
  EXPECT_EQ((*first)->state, "queued");

  // Deferred past a2: a2 comes first now, and earliest_due reports a2's time.
  ASSERT_TRUE(q.defer(a1, now + 60'000).ok());
  EXPECT_EQ((*q.next_due(1, "agent_a", now))->id, a2);
  EXPECT_EQ(*q.earliest_due(1, "agent_a"), now);
  ASSERT_TRUE(q.defer(a2, now + 30'000).ok());
  EXPECT_FALSE(q.next_due(1, "agent_a", now)->has_value()) << "nothing is due before its time";
  EXPECT_EQ(*q.earliest_due(1, "agent_a"), now + 30'000);
  EXPECT_EQ((*q.next_due(1, "agent_a", now + 60'000))->id, a2) << "earliest next_attempt_at first";
  EXPECT_FALSE(q.earliest_due(2, "agent_b")->has_value());

  // A contact held (uploaded without enqueue) is never due.
  ContactInput held;
  held.phone = "+919800000009";
  ASSERT_TRUE(store_->campaigns().add_contact(2, upload_[2], "agent_b", held, false).ok());
  EXPECT_FALSE(q.next_due(2, "agent_b", now + 86'400'000)->has_value());
  // Only a queued contact can be deferred.
  ASSERT_TRUE(q.finish(a1, "dnd", "dnd").ok());
  EXPECT_EQ(q.defer(a1, now).error().code, -ENOENT);
  EXPECT_EQ(q.finish(a1, "queued", "x").error().code, -EINVAL);
}

TEST_F(DialerQueueTest, AnAttemptIsOpenedWithTheContactAndClosedOnce) {
  DialerQueue& q = store_->dialer_queue();
  const int64_t id = add(1, "agent_a", "+919800000001");
  const int64_t now = clock_.wall_ms();
  ContactRow c = contact(id);
  ASSERT_TRUE(q.open_attempt(c, "call-1", now).ok());
  ContactRow dialing = contact(id);
  EXPECT_EQ(dialing.state, "dialing");
  EXPECT_EQ(dialing.attempts, 1);
  EXPECT_EQ(dialing.last_call_id, "call-1");
  EXPECT_EQ(*q.dialing_count(1, "agent_a"), 1);
  EXPECT_EQ(*q.dialing_count(1, "agent_b"), 0);
  EXPECT_FALSE(q.next_due(1, "agent_a", now)->has_value()) << "a dialing contact is not picked again";
  // A stale pick of the same contact cannot open a second attempt.
  EXPECT_EQ(q.open_attempt(c, "call-2", now).error().code, -ESTALE);

  auto open = q.open_attempts();
  ASSERT_TRUE(open.ok());
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ(open->front().call_id, "call-1");
  EXPECT_EQ(open->front().phone, "+919800000001");
  EXPECT_FALSE(open->front().ended_at_ms.has_value());

  auto closed = q.close_attempt("call-1", "busy", now + 5000);
  ASSERT_TRUE(closed.ok()) << closed.error().message;
  ASSERT_TRUE(closed->has_value());
  EXPECT_EQ((*closed)->outcome, "busy");
  EXPECT_EQ((*closed)->ended_at_ms, now + 5000);
  EXPECT_EQ(contact(id).last_outcome, "busy");
  EXPECT_EQ(contact(id).state, "dialing") << "the caller decides: retry or finish";
  // Idempotent: a second close leaves the first outcome.
  auto again = q.close_attempt("call-1", "picked", now + 9000);
  ASSERT_TRUE(again.ok() && again->has_value());
  EXPECT_EQ((*again)->outcome, "busy");
  EXPECT_EQ((*again)->ended_at_ms, now + 5000);
  EXPECT_FALSE(q.close_attempt("no-such-call", "picked", now)->has_value());
  EXPECT_TRUE(q.open_attempts()->empty());

  ASSERT_TRUE(q.queue_again(id, now + 1800'000, false).ok());
  EXPECT_EQ(contact(id).state, "queued");
  EXPECT_EQ(contact(id).attempts, 1);
  EXPECT_EQ(contact(id).next_attempt_at_ms, now + 1800'000);
  ASSERT_TRUE(q.open_attempt(contact(id), "call-2", now + 1800'000).ok());
  ASSERT_TRUE(q.close_attempt("call-2", "not_placed", now + 1800'000)->has_value());
  // An attempt that never reached the line is taken back.
  ASSERT_TRUE(q.queue_again(id, now + 1830'000, true).ok());
  EXPECT_EQ(contact(id).attempts, 1);
  ASSERT_TRUE(q.finish(id, "done", "picked").ok());
  EXPECT_EQ(contact(id).state, "done");
  EXPECT_EQ(contact(id).last_outcome, "picked");
  EXPECT_FALSE(contact(id).next_attempt_at_ms.has_value());

  RawDb raw(options().path);
  EXPECT_EQ(raw.text("SELECT group_concat(call_id || ':' || outcome, ',') FROM (SELECT * FROM "
                     "campaign_attempts WHERE contact_id = " +
                     std::to_string(id) + " ORDER BY id)"),
            "call-1:busy,call-2:not_placed");
}

TEST_F(DialerQueueTest, AttemptsSinceCountsEveryCampaignButNotUnplacedAttempts) {
  DialerQueue& q = store_->dialer_queue();
  const std::string phone = "+919800000001";
  const int64_t c1 = add(1, "agent_a", phone);
  const int64_t c2 = add(2, "agent_a", phone);
  const int64_t t0 = clock_.wall_ms();
  ASSERT_TRUE(q.open_attempt(contact(c1), "call-1", t0).ok());
  ASSERT_TRUE(q.close_attempt("call-1", "not_picked", t0 + 1000)->has_value());
  ASSERT_TRUE(q.open_attempt(contact(c2), "call-2", t0 + 3600'000).ok());
  ASSERT_TRUE(q.queue_again(c1, t0, false).ok());
  ASSERT_TRUE(q.open_attempt(contact(c1), "call-3", t0 + 7200'000).ok());
  ASSERT_TRUE(q.close_attempt("call-3", "not_placed", t0 + 7200'000)->has_value());

  std::optional<int64_t> oldest;
  auto n = q.attempts_since(phone, t0, &oldest);
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_EQ(*n, 2) << "both campaigns count; the not_placed attempt does not";
  EXPECT_EQ(oldest, t0);
  EXPECT_EQ(*q.attempts_since(phone, t0 + 1, &oldest), 1);
  EXPECT_EQ(oldest, t0 + 3600'000);
  EXPECT_EQ(*q.attempts_since("+919800000002", t0, &oldest), 0);
  EXPECT_FALSE(oldest.has_value());
}

}  // namespace
// A search matching few entries fetches them by id; one matching many walks the list in order: both give the
// same order, pages and counts.
TEST_F(StoreTest, DndSearchPagesAlikeForFewAndManyMatches) {
  auto store = open_store();
  ASSERT_TRUE(store);
  constexpr int kEntries = 2100;  // above the store's 2000 "few matches"
  {
    auto tx = store->database().begin();
    ASSERT_TRUE(tx.ok());
    for (int i = 0; i < kEntries; ++i) {
      clock_.advance_ms(1);
      char phone[20];
      std::snprintf(phone, sizeof phone, "+9198%08d", i);
      ASSERT_TRUE(store->dnd().add_entry("agent_a", phone, std::nullopt, "api", std::nullopt).ok());
    }
    ASSERT_TRUE(tx->commit().ok());
  }
  int64_t total = 0;
  // Every entry matches "+9198": the walk.
  auto many = store->dnd().list("agent_a", "+9198", 1, 100, &total);
  ASSERT_TRUE(many.ok()) << many.error().message;
  EXPECT_EQ(total, kEntries);
  ASSERT_EQ(many->size(), 100u);
  EXPECT_EQ(many->front().phone, "+919800002099");
  EXPECT_EQ(many->back().phone, "+919800002000");
  many = store->dnd().list("agent_a", "+9198", 21, 100, &total);
  ASSERT_TRUE(many.ok());
  ASSERT_EQ(many->size(), 100u);
  EXPECT_EQ(many->front().phone, "+919800000099");
  EXPECT_EQ(many->back().phone, "+919800000000");
  // A rarer substring, its matches counted directly.
  int expected = 0;
  for (int i = 0; i < kEntries; ++i) {
    char phone[20];
    std::snprintf(phone, sizeof phone, "+9198%08d", i);
    if (std::string(phone).find("00001") != std::string::npos) ++expected;
  }
  ASSERT_GT(expected, 25);
  ASSERT_LT(expected, 2000);
  auto few = store->dnd().list("agent_a", "00001", 1, 25, &total);
  ASSERT_TRUE(few.ok()) << few.error().message;
  EXPECT_EQ(total, expected);
  ASSERT_EQ(few->size(), 25u);
  for (size_t k = 1; k < few->size(); ++k) EXPECT_GT((*few)[k - 1].created_at_ms, (*few)[k].created_at_ms);
  for (const DndEntry& e : *few) EXPECT_NE(e.phone.find("00001"), std::string::npos) << e.phone;
  // The last page holds the oldest match.
  const int64_t last_page = (expected + 24) / 25;
  few = store->dnd().list("agent_a", "00001", last_page, 25, &total);
  ASSERT_TRUE(few.ok());
  ASSERT_EQ(static_cast<int64_t>(few->size()), expected - (last_page - 1) * 25);
  EXPECT_EQ(few->back().phone, "+919800000001");
  // Another agent's entries never leak into a search.
  EXPECT_TRUE(store->dnd().add_entry("agent_b", "+919800000010", std::nullopt, "api", std::nullopt).ok());
  few = store->dnd().list("agent_b", "00001", 1, 25, &total);
  ASSERT_TRUE(few.ok());
  EXPECT_EQ(total, 1);
  ASSERT_EQ(few->size(), 1u);
  EXPECT_EQ(few->front().agent_uuid, "agent_b");
}

// A call's final record creates its post-call job in the same transaction (and a call closed by start-up
// recovery gets one too); the job's analysis ends once, then its webhooks are queued once.
TEST_F(StoreTest, AFinalRecordCreatesThePostCallJobAndItMovesOnce) {
  const std::string live = "aaaaaaaa-0000-4000-8000-00000000000a";
  const std::string done = "bbbbbbbb-0000-4000-8000-00000000000b";
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->calls().insert(minimal_call(live, kT0)).ok());
    ASSERT_TRUE(store->calls().insert(minimal_call(done, kT0)).ok());
    CallRecord c = store->calls().get(done)->value();
    c.status = "picked";
    c.call_picked_at_ms = kT0 + 1'000;
    c.ended_at_ms = kT0 + 9'000;
    ASSERT_TRUE(finish_call_and_enqueue(*store, c).ok());
    auto job = store->post_call().get(done);
    ASSERT_TRUE(job.ok() && job->has_value());
    EXPECT_EQ((*job)->analysis_state, "pending");
    EXPECT_EQ((*job)->next_attempt_at_ms, kT0 + 9'000);  // due at the call's end: completion order
    EXPECT_FALSE(store->post_call().get(live)->has_value());
  }
  clock_.advance_ms(60'000);
  auto store = open_store();  // closes `live` (left in_progress): it gets its job now
  ASSERT_TRUE(store);
  auto due = store->post_call().due_for_analysis(clock_.wall_ms(), 10);
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 2u);
  EXPECT_EQ((*due)[0].call_id, done);
  EXPECT_EQ((*due)[1].call_id, live);

  ASSERT_TRUE(store->post_call().retry_analysis(done, clock_.wall_ms() + 30'000, "upstream down").ok());
  EXPECT_EQ(store->post_call().due_for_analysis(clock_.wall_ms(), 10)->size(), 1u);
  EXPECT_EQ(store->post_call().earliest_analysis()->value(), clock_.wall_ms());
  ASSERT_TRUE(store->post_call().finish_analysis(live, "skipped", std::nullopt).ok());
  EXPECT_EQ(store->post_call().finish_analysis(live, "done", std::nullopt).error().code, -ENOENT);
  auto waiting = store->post_call().waiting_for_webhooks(10);
  ASSERT_TRUE(waiting.ok());
  ASSERT_EQ(waiting->size(), 1u);
  EXPECT_EQ((*waiting)[0].call_id, live);
  ASSERT_TRUE(store->post_call().mark_webhooks_queued(live).ok());
  EXPECT_EQ(store->post_call().mark_webhooks_queued(live).error().code, -ENOENT);
  auto counts = store->post_call().counts();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->analysis_pending, 1);
  EXPECT_EQ(counts->webhooks_waiting, 0);
  auto job = store->post_call().get(done)->value();
  EXPECT_EQ(job.attempts, 1);
  EXPECT_EQ(job.last_error, "upstream down");
}

}  // namespace osvi::daemon
