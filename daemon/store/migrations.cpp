// Schema migrations of the store, applied in order by PRAGMA user_version (see docs/store.md).
#include "migrations.hpp"

#include <array>

namespace osvi::daemon::store_schema {
namespace {

// Migration 1: the whole initial schema. Every timestamp column is INTEGER Unix milliseconds (UTC).
// JSON columns are checked with json_valid so a bad payload fails at write time, not when an API client reads
// it.
constexpr std::string_view kMigration1 = R"sql(
CREATE TABLE agents (
  id              INTEGER PRIMARY KEY,
  agent_uuid      TEXT NOT NULL UNIQUE CHECK (agent_uuid <> ''),
  name            TEXT NOT NULL,
  mode            TEXT NOT NULL CHECK (mode IN ('voice', 'chat')),
  active          INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
  archived        INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
  definition_json TEXT NOT NULL DEFAULT '{}',
  definition_hash TEXT NOT NULL DEFAULT '',
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL
);
CREATE INDEX agents_listing ON agents (mode, active, archived, updated_at DESC);

-- No foreign key to agents or campaigns: those come from configuration and may disappear, history must not.
CREATE TABLE calls (
  call_id               TEXT PRIMARY KEY NOT NULL CHECK (call_id <> ''),
  agent_uuid            TEXT NOT NULL,
  agent_name            TEXT NOT NULL DEFAULT '',
  phone_number          TEXT NOT NULL DEFAULT '',
  from_number           TEXT NOT NULL DEFAULT '',
  status                TEXT NOT NULL
                        CHECK (status IN ('picked', 'not_picked', 'failed', 'busy', 'voicemail', 'in_progress')),
  call_type             TEXT NOT NULL CHECK (call_type IN ('inbound', 'outbound')),
  duration_seconds      INTEGER NOT NULL DEFAULT 0 CHECK (duration_seconds >= 0),
  call_ended_by         TEXT,
  call_ended_reason     TEXT,
  campaign_id           INTEGER,
  campaign_upload_id    INTEGER,
  tag_id                INTEGER,
  tag_name              TEXT,
  tag_color_code        TEXT,
  created_at            INTEGER NOT NULL,
  call_picked_at        INTEGER,
  ended_at              INTEGER,
  caller_name           TEXT,
  person_name           TEXT,
  retry_count           INTEGER NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
  summary               TEXT,
  data_captured         TEXT CHECK (data_captured IS NULL OR json_valid(data_captured)),
  post_call_analysis    TEXT CHECK (post_call_analysis IS NULL OR json_valid(post_call_analysis)),
  structured_output     TEXT CHECK (structured_output IS NULL OR json_valid(structured_output)),
  call_trigger_data     TEXT CHECK (call_trigger_data IS NULL OR json_valid(call_trigger_data)),
  additional_data       TEXT CHECK (additional_data IS NULL OR json_valid(additional_data)),
  system_prompt         TEXT,
  initial_greeting      TEXT,
  webhook_url           TEXT,
  call_config_overrides TEXT CHECK (call_config_overrides IS NULL OR json_valid(call_config_overrides)),
  data_extraction       TEXT CHECK (data_extraction IS NULL OR json_valid(data_extraction)),
  line                  TEXT,
  callback_required     INTEGER NOT NULL DEFAULT 0 CHECK (callback_required IN (0, 1)),
  execution_mode        TEXT NOT NULL DEFAULT 'prod' CHECK (execution_mode IN ('prod', 'test')),
  revision              INTEGER NOT NULL DEFAULT 1,
  updated_at            INTEGER NOT NULL
);
-- GET /v1/calls lists newest first, filtered by agent, status, campaign/upload, or a call_picked_at range.
CREATE INDEX calls_created ON calls (created_at DESC, call_id);
CREATE INDEX calls_agent ON calls (agent_uuid, created_at DESC);
CREATE INDEX calls_status ON calls (status, created_at DESC);
CREATE INDEX calls_picked ON calls (call_picked_at);
CREATE INDEX calls_campaign ON calls (campaign_id, campaign_upload_id, created_at DESC)
  WHERE campaign_id IS NOT NULL;

CREATE TABLE transcript_turns (
  id           INTEGER PRIMARY KEY,
  call_id      TEXT NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
  seq          INTEGER NOT NULL,
  role         TEXT NOT NULL CHECK (role IN ('agent', 'user', 'operator', 'tool')),
  text         TEXT NOT NULL DEFAULT '',
  started_at   INTEGER,
  ended_at     INTEGER,
  interrupted  INTEGER NOT NULL DEFAULT 0 CHECK (interrupted IN (0, 1)),
  latency_json TEXT CHECK (latency_json IS NULL OR json_valid(latency_json)),
  UNIQUE (call_id, seq)
);

CREATE TABLE recordings (
  call_id     TEXT PRIMARY KEY NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
  path        TEXT NOT NULL,
  format      TEXT NOT NULL,
  duration_ms INTEGER NOT NULL DEFAULT 0,
  bytes       INTEGER NOT NULL DEFAULT 0,
  created_at  INTEGER NOT NULL
);

-- Removal keeps the row (removed_at) for history; only one active entry per agent and number.
CREATE TABLE dnd_numbers (
  id         INTEGER PRIMARY KEY,
  agent_uuid TEXT NOT NULL,
  phone      TEXT NOT NULL CHECK (phone <> ''),
  reason     TEXT,
  created_at INTEGER NOT NULL,
  removed_at INTEGER
);
CREATE UNIQUE INDEX dnd_numbers_active ON dnd_numbers (agent_uuid, phone) WHERE removed_at IS NULL;
CREATE INDEX dnd_numbers_history ON dnd_numbers (agent_uuid, created_at);

CREATE TABLE campaigns (
  id               INTEGER PRIMARY KEY,
  name             TEXT NOT NULL,
  status           TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
  is_retry_enabled INTEGER NOT NULL DEFAULT 0 CHECK (is_retry_enabled IN (0, 1)),
  retry_threshold  INTEGER NOT NULL DEFAULT 2 CHECK (retry_threshold >= 0),
  retry_delay      INTEGER NOT NULL DEFAULT 1800 CHECK (retry_delay >= 0),
  window_start     INTEGER,
  window_end       INTEGER,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL
);

CREATE TABLE campaign_agents (
  campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
  agent_uuid  TEXT NOT NULL,
  active      INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
  PRIMARY KEY (campaign_id, agent_uuid)
) WITHOUT ROWID;

CREATE TABLE campaign_uploads (
  id          INTEGER PRIMARY KEY,
  campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
  agent_uuid  TEXT,
  file_name   TEXT,
  created_at  INTEGER NOT NULL
);
CREATE INDEX campaign_uploads_campaign ON campaign_uploads (campaign_id, created_at);

CREATE TABLE campaign_contacts (
  id              INTEGER PRIMARY KEY,
  upload_id       INTEGER NOT NULL REFERENCES campaign_uploads (id) ON DELETE CASCADE,
  campaign_id     INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
  agent_uuid      TEXT,
  phone           TEXT NOT NULL,
  person_name     TEXT,
  variables_json  TEXT CHECK (variables_json IS NULL OR json_valid(variables_json)),
  state           TEXT NOT NULL DEFAULT 'pending',
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER,
  last_call_id    TEXT,
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL
);
-- The dialler asks "which contacts of this campaign are due now".
CREATE INDEX campaign_contacts_due ON campaign_contacts (campaign_id, state, next_attempt_at);
CREATE INDEX campaign_contacts_upload ON campaign_contacts (upload_id);
CREATE INDEX campaign_contacts_phone ON campaign_contacts (campaign_id, phone);

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

-- AUTOINCREMENT so an id is never reused: delivery order is id order, even after the newest rows are deleted.
CREATE TABLE outbox (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  topic           TEXT NOT NULL,
  payload         TEXT NOT NULL,
  idempotency_key TEXT NOT NULL UNIQUE,
  kind            TEXT NOT NULL,
  created_at      INTEGER NOT NULL,
  attempts        INTEGER NOT NULL DEFAULT 0,
  last_attempt_at INTEGER
);
CREATE INDEX outbox_kind ON outbox (kind, id);

CREATE TABLE meta (
  key   TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL
) WITHOUT ROWID;
)sql";

// Migration 2: the agent turns the box says on its own (the filler while an answer is late, the fallback
// message) are marked, so a transcript tells them from the model's words.
constexpr std::string_view kMigration2 = R"sql(
ALTER TABLE transcript_turns ADD COLUMN kind TEXT CHECK (kind IS NULL OR kind IN ('filler', 'fallback'));
)sql";

// Migration 3: from_number is the line's own number or NULL (unknown), never ''. SQLite cannot drop a NOT
// NULL with ALTER TABLE, and rebuilding calls would cascade-delete its transcripts and recordings (foreign
// keys are on): dropping a NOT NULL and adding a CHECK that every row passes leave the stored rows valid, so
// the table's definition is edited in place (sqlite.org/lang_altertable.html, "making other kinds of table
// schema changes"). Should the text not match, the UPDATE below fails on NOT NULL and the migration rolls
// back. GET /v1/calls at 100,000 calls (bench/api_calls_bench): the listing indexes end in (created_at,
// call_id), the list's order, so a page is chosen from the index alone; every documented filter has one
// (phone_number is a substring match: a scan of its small index, not of the table); the count comes from
// call_counts. The CREATE statements also move the schema cookie, so other connections reload the edited
// definition.
constexpr std::string_view kMigration3 = R"sql(
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = replace(sql, 'from_number           TEXT NOT NULL DEFAULT ''''',
  'from_number           TEXT CHECK (from_number IS NULL OR from_number <> '''')')
  WHERE type = 'table' AND name = 'calls';
PRAGMA writable_schema = RESET;
UPDATE calls SET from_number = NULL WHERE from_number = '';
DROP INDEX IF EXISTS calls_created;
DROP INDEX IF EXISTS calls_agent;
DROP INDEX IF EXISTS calls_status;
-- The newest-first scan that any filter without an index of its own falls back on, covering every filtered
-- column so that scan never reads a row.
CREATE INDEX IF NOT EXISTS calls_created ON calls (created_at DESC, call_id, status, agent_uuid, call_type,
  campaign_id, campaign_upload_id, call_picked_at, phone_number);
CREATE INDEX IF NOT EXISTS calls_agent ON calls (agent_uuid, created_at DESC, call_id, status, call_type);
CREATE INDEX IF NOT EXISTS calls_status ON calls (status, created_at DESC, call_id);
CREATE INDEX IF NOT EXISTS calls_type ON calls (call_type, created_at DESC, call_id);
DROP INDEX IF EXISTS calls_picked;
CREATE INDEX IF NOT EXISTS calls_picked ON calls (call_picked_at, created_at, call_id);
DROP INDEX IF EXISTS calls_campaign;
CREATE INDEX IF NOT EXISTS calls_campaign ON calls (campaign_id, campaign_upload_id, created_at DESC, call_id)
  WHERE campaign_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS calls_campaign_created ON calls (campaign_id, created_at DESC, call_id)
  WHERE campaign_id IS NOT NULL;

-- meta.total_count of GET /v1/calls: the number of calls per combination of the list's equality filters, kept
-- by triggers, so a count sums a few groups instead of visiting every matching call (campaign 0 = none).
CREATE TABLE IF NOT EXISTS call_counts (
  agent_uuid         TEXT NOT NULL,
  status             TEXT NOT NULL,
  call_type          TEXT NOT NULL,
  campaign_id        INTEGER NOT NULL,
  campaign_upload_id INTEGER NOT NULL,
  n                  INTEGER NOT NULL,
  PRIMARY KEY (agent_uuid, status, call_type, campaign_id, campaign_upload_id)
) WITHOUT ROWID;
DELETE FROM call_counts;
INSERT INTO call_counts
  SELECT agent_uuid, status, call_type, ifnull(campaign_id, 0), ifnull(campaign_upload_id, 0), count(*)
  FROM calls GROUP BY 1, 2, 3, 4, 5;
CREATE TRIGGER IF NOT EXISTS call_counts_insert AFTER INSERT ON calls BEGIN
  INSERT INTO call_counts VALUES (new.agent_uuid, new.status, new.call_type, ifnull(new.campaign_id, 0),
                                  ifnull(new.campaign_upload_id, 0), 1)
  ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS call_counts_delete AFTER DELETE ON calls BEGIN
  UPDATE call_counts SET n = n - 1 WHERE agent_uuid = old.agent_uuid AND status = old.status
    AND call_type = old.call_type AND campaign_id = ifnull(old.campaign_id, 0)
    AND campaign_upload_id = ifnull(old.campaign_upload_id, 0);
END;
CREATE TRIGGER IF NOT EXISTS call_counts_update
  AFTER UPDATE OF agent_uuid, status, call_type, campaign_id, campaign_upload_id ON calls
  WHEN old.agent_uuid IS NOT new.agent_uuid OR old.status IS NOT new.status OR old.call_type IS NOT new.call_type
    OR old.campaign_id IS NOT new.campaign_id OR old.campaign_upload_id IS NOT new.campaign_upload_id
BEGIN
  UPDATE call_counts SET n = n - 1 WHERE agent_uuid = old.agent_uuid AND status = old.status
    AND call_type = old.call_type AND campaign_id = ifnull(old.campaign_id, 0)
    AND campaign_upload_id = ifnull(old.campaign_upload_id, 0);
  INSERT INTO call_counts VALUES (new.agent_uuid, new.status, new.call_type, ifnull(new.campaign_id, 0),
                                  ifnull(new.campaign_upload_id, 0), 1)
  ON CONFLICT DO UPDATE SET n = n + 1;
END;

-- phone_number is searched by substring ("98765" anywhere): a trigram index answers that for 3 characters or
-- more without a scan. External content (the calls table, by rowid) so numbers are not stored twice; the
-- triggers keep it in step. A VACUUM may renumber the rowids of calls: rebuild it after one (docs/store.md).
CREATE VIRTUAL TABLE IF NOT EXISTS calls_phone USING fts5(phone_number, content = 'calls',
  content_rowid = 'rowid', tokenize = 'trigram');
INSERT INTO calls_phone (calls_phone) VALUES ('rebuild');
CREATE TRIGGER IF NOT EXISTS calls_phone_insert AFTER INSERT ON calls BEGIN
  INSERT INTO calls_phone (rowid, phone_number) VALUES (new.rowid, new.phone_number);
END;
CREATE TRIGGER IF NOT EXISTS calls_phone_delete AFTER DELETE ON calls BEGIN
  INSERT INTO calls_phone (calls_phone, rowid, phone_number) VALUES ('delete', old.rowid, old.phone_number);
END;
CREATE TRIGGER IF NOT EXISTS calls_phone_update AFTER UPDATE OF phone_number ON calls
  WHEN old.phone_number IS NOT new.phone_number
BEGIN
  INSERT INTO calls_phone (calls_phone, rowid, phone_number) VALUES ('delete', old.rowid, old.phone_number);
  INSERT INTO calls_phone (rowid, phone_number) VALUES (new.rowid, new.phone_number);
END;
)sql";

// Migration 4: campaigns, their contact queue and the dialler's attempts (docs/store.md "Campaigns"). No
// campaign or contact rows were ever written before this version, so the contact table is rebuilt with the
// columns the dialler needs. A contact's state: held (uploaded without enqueue), queued (due at
// next_attempt_at), dialing (an attempt is open), done (finished: last_outcome says how), dnd (skipped: on
// the agent's list at dial time), invalid never stored (reported at upload). An attempt row is written, in
// the same transaction as the contact's move to dialing, before the line dials: a row still open at start is
// closed from its call's record, never redialled blindly.
constexpr std::string_view kMigration4 = R"sql(
ALTER TABLE campaigns ADD COLUMN source TEXT NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'config'));
ALTER TABLE campaigns ADD COLUMN starts_at INTEGER;
ALTER TABLE campaigns ADD COLUMN ends_at INTEGER;
ALTER TABLE campaigns ADD COLUMN days_mask INTEGER NOT NULL DEFAULT 127 CHECK (days_mask BETWEEN 1 AND 127);
ALTER TABLE campaigns ADD COLUMN retry_on TEXT NOT NULL DEFAULT 'not_picked,busy';
ALTER TABLE campaigns ADD COLUMN max_concurrent_per_agent INTEGER NOT NULL DEFAULT 1
  CHECK (max_concurrent_per_agent >= 1);
ALTER TABLE campaigns ADD COLUMN definition_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE campaign_uploads ADD COLUMN source TEXT NOT NULL DEFAULT 'api';
ALTER TABLE campaign_uploads ADD COLUMN enqueued INTEGER NOT NULL DEFAULT 0 CHECK (enqueued IN (0, 1));
ALTER TABLE campaign_uploads ADD COLUMN idempotency_key TEXT;
ALTER TABLE campaign_uploads ADD COLUMN result_json TEXT CHECK (result_json IS NULL OR json_valid(result_json));
CREATE UNIQUE INDEX campaign_uploads_key ON campaign_uploads (idempotency_key) WHERE idempotency_key IS NOT NULL;
DROP TABLE campaign_contacts;
CREATE TABLE campaign_contacts (
  id              INTEGER PRIMARY KEY,
  upload_id       INTEGER NOT NULL REFERENCES campaign_uploads (id) ON DELETE CASCADE,
  campaign_id     INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
  agent_uuid      TEXT NOT NULL,
  phone           TEXT NOT NULL CHECK (phone <> ''),
  person_name     TEXT,
  variables_json  TEXT CHECK (variables_json IS NULL OR json_valid(variables_json)),
  time_zone       TEXT,
  state           TEXT NOT NULL DEFAULT 'held' CHECK (state IN ('held', 'queued', 'dialing', 'done', 'dnd')),
  attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_attempt_at INTEGER,
  last_call_id    TEXT,
  last_outcome    TEXT,
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX campaign_contacts_number ON campaign_contacts (campaign_id, phone);
CREATE INDEX campaign_contacts_due ON campaign_contacts (campaign_id, agent_uuid, next_attempt_at, id)
  WHERE state = 'queued';
CREATE INDEX campaign_contacts_upload ON campaign_contacts (upload_id, state);
CREATE INDEX campaign_contacts_open ON campaign_contacts (state) WHERE state = 'dialing';
CREATE TABLE campaign_attempts (
  id          INTEGER PRIMARY KEY,
  contact_id  INTEGER NOT NULL REFERENCES campaign_contacts (id) ON DELETE CASCADE,
  campaign_id INTEGER NOT NULL,
  agent_uuid  TEXT NOT NULL,
  phone       TEXT NOT NULL,
  call_id     TEXT NOT NULL UNIQUE,
  started_at  INTEGER NOT NULL,
  ended_at    INTEGER,
  outcome     TEXT
);
CREATE INDEX campaign_attempts_phone ON campaign_attempts (phone, started_at);
CREATE INDEX campaign_attempts_open ON campaign_attempts (ended_at) WHERE ended_at IS NULL;
CREATE INDEX campaign_attempts_contact ON campaign_attempts (contact_id, started_at);
ALTER TABLE dnd_numbers ADD COLUMN source TEXT NOT NULL DEFAULT 'api';
ALTER TABLE dnd_numbers ADD COLUMN call_id TEXT;
CREATE INDEX dnd_numbers_search ON dnd_numbers (agent_uuid, created_at DESC, id DESC) WHERE removed_at IS NULL;
ALTER TABLE calls ADD COLUMN greeting_gap_ms INTEGER CHECK (greeting_gap_ms IS NULL OR greeting_gap_ms >= 0);
)sql";

// Migration 5: what follows a call's end (docs/store.md "After the call"). post_call_jobs: one row per call
// that reached a final status, written in the transaction of its final record (finish_call_and_enqueue), so a
// crash between the call's end and its analysis loses nothing; analysis_state moves once (pending → done,
// failed or skipped), then the webhooks room queues the call's deliveries and sets webhooks_state queued in
// the same transaction. callbacks: outbound calls scheduled by analysis (a callee asked to be called back)
// or by a call's retry_config, dialled by the dialler inside calling hours; one per (source call, kind) so a
// replayed analysis schedules nothing twice. webhook_deliveries: the durable delivery queue (one row per
// call and target, in the order queued; destination is the ordering key: one in flight per destination so a
// receiver sees calls in the order they completed); webhook_attempts: its log.
constexpr std::string_view kMigration5 = R"sql(
CREATE TABLE post_call_jobs (
  call_id         TEXT PRIMARY KEY NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
  analysis_state  TEXT NOT NULL DEFAULT 'pending'
                  CHECK (analysis_state IN ('pending', 'done', 'failed', 'skipped')),
  attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_attempt_at INTEGER NOT NULL,
  last_error      TEXT,
  webhooks_state  TEXT NOT NULL DEFAULT 'waiting' CHECK (webhooks_state IN ('waiting', 'queued')),
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL
);
CREATE INDEX post_call_jobs_analysis ON post_call_jobs (next_attempt_at, created_at, call_id)
  WHERE analysis_state = 'pending';
CREATE INDEX post_call_jobs_webhooks ON post_call_jobs (updated_at, call_id)
  WHERE analysis_state <> 'pending' AND webhooks_state = 'waiting';
CREATE TABLE callbacks (
  id              INTEGER PRIMARY KEY,
  kind            TEXT NOT NULL CHECK (kind IN ('callback', 'retry')),
  source_call_id  TEXT NOT NULL,
  agent_uuid      TEXT NOT NULL,
  phone           TEXT NOT NULL CHECK (phone <> ''),
  time_zone       TEXT,
  due_at          INTEGER NOT NULL,
  requested_text  TEXT,
  request_json    TEXT NOT NULL CHECK (json_valid(request_json)),
  retry_count     INTEGER NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
  state           TEXT NOT NULL DEFAULT 'scheduled'
                  CHECK (state IN ('scheduled', 'dialing', 'done', 'cancelled', 'dnd', 'expired')),
  call_id         TEXT UNIQUE,
  outcome         TEXT,
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL,
  UNIQUE (source_call_id, kind)
);
CREATE INDEX callbacks_due ON callbacks (due_at, id, agent_uuid) WHERE state = 'scheduled';
CREATE INDEX callbacks_open ON callbacks (state) WHERE state = 'dialing';
CREATE INDEX callbacks_listing ON callbacks (agent_uuid, state, kind, id);
-- Once dialled (call_id set) due_at is the moment dialled: the per-number daily cap counts callbacks by it.
CREATE INDEX callbacks_placed ON callbacks (phone, due_at) WHERE call_id IS NOT NULL;
CREATE TABLE webhook_deliveries (
  id              INTEGER PRIMARY KEY,
  webhook_id      TEXT NOT NULL UNIQUE,
  call_id         TEXT,
  kind            TEXT NOT NULL CHECK (kind IN ('call_webhook', 'integration')),
  agent_uuid      TEXT NOT NULL DEFAULT '',
  integration     TEXT NOT NULL DEFAULT '',
  destination     TEXT NOT NULL,
  method          TEXT NOT NULL CHECK (method IN ('POST', 'PUT', 'PATCH', 'GET', 'DELETE')),
  url             TEXT NOT NULL,
  headers_json    TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(headers_json)),
  body            TEXT,
  state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
  attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_attempt_at INTEGER NOT NULL,
  expires_at      INTEGER NOT NULL,
  last_status     INTEGER,
  last_error      TEXT,
  created_at      INTEGER NOT NULL,
  finished_at     INTEGER,
  UNIQUE (call_id, kind, integration)
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (destination, id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_call ON webhook_deliveries (call_id, id);
CREATE INDEX webhook_deliveries_dead ON webhook_deliveries (finished_at DESC, id DESC) WHERE state = 'dead';
CREATE TABLE webhook_attempts (
  id          INTEGER PRIMARY KEY,
  delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
  attempt     INTEGER NOT NULL CHECK (attempt >= 1),
  started_at  INTEGER NOT NULL,
  status_code INTEGER,
  latency_ms  INTEGER,
  error       TEXT,
  UNIQUE (delivery_id, attempt)
);
)sql";

// Migration 6: the knowledge base (docs/store.md "Knowledge base"). A document row is one version of a named
// document: a changed upload or config file adds a row and archives the previous one, so history stays and
// search reads only rows with archived_at NULL. Chunks are immutable once written; knowledge_fts indexes
// their text as an external-content FTS5 table (the text is stored once, in knowledge_chunks), kept in step
// by the two triggers. knowledge_embeddings: one float32 vector per (chunk, model), little-endian as the
// box writes it.
constexpr std::string_view kMigration6 = R"sql(
CREATE TABLE knowledge_documents (
  id           INTEGER PRIMARY KEY,
  name         TEXT NOT NULL CHECK (name <> ''),
  format       TEXT NOT NULL CHECK (format IN ('txt', 'csv')),
  csv_header   INTEGER NOT NULL DEFAULT 0 CHECK (csv_header IN (0, 1)),
  content      TEXT NOT NULL,
  size_bytes   INTEGER NOT NULL CHECK (size_bytes >= 0),
  sha256       TEXT NOT NULL CHECK (length(sha256) = 64),
  source       TEXT NOT NULL CHECK (source = 'api' OR source LIKE 'config:%'),
  uploader     TEXT NOT NULL,
  chunk_count  INTEGER NOT NULL DEFAULT 0 CHECK (chunk_count >= 0),
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL,
  archived_at  INTEGER
);
-- At most one current version per name: what an agent's attachment resolves to.
CREATE UNIQUE INDEX knowledge_documents_current ON knowledge_documents (name) WHERE archived_at IS NULL;
CREATE INDEX knowledge_documents_listing ON knowledge_documents (updated_at DESC, id DESC);
CREATE TABLE knowledge_chunks (
  id           INTEGER PRIMARY KEY,
  document_id  INTEGER NOT NULL REFERENCES knowledge_documents (id) ON DELETE CASCADE,
  ordinal      INTEGER NOT NULL CHECK (ordinal >= 0),
  heading      TEXT NOT NULL DEFAULT '',
  text         TEXT NOT NULL CHECK (text <> ''),
  UNIQUE (document_id, ordinal)
);
CREATE VIRTUAL TABLE knowledge_fts USING fts5 (
  text, content = 'knowledge_chunks', content_rowid = 'id', tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER knowledge_chunks_fts_insert AFTER INSERT ON knowledge_chunks BEGIN
  INSERT INTO knowledge_fts (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER knowledge_chunks_fts_delete AFTER DELETE ON knowledge_chunks BEGIN
  INSERT INTO knowledge_fts (knowledge_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TABLE knowledge_embeddings (
  chunk_id    INTEGER NOT NULL REFERENCES knowledge_chunks (id) ON DELETE CASCADE,
  model       TEXT NOT NULL CHECK (model <> ''),
  dims        INTEGER NOT NULL CHECK (dims > 0),
  vector      BLOB NOT NULL CHECK (length(vector) = dims * 4),
  created_at  INTEGER NOT NULL,
  PRIMARY KEY (chunk_id, model)
) WITHOUT ROWID;
)sql";

// Migration 7: chat sessions and their messages get the columns the chat room needs (docs/store.md, "Chat").
// Migration 1's tables had no writer; they are rebuilt (SQLite cannot add CHECKs or change an index's
// predicate in place) and whatever they hold is carried over. At most one session that is not closed per
// (customer, agent): older open duplicates are closed before the partial unique index is built.
constexpr std::string_view kMigration7 = R"sql(
DROP INDEX chat_sessions_one_active;
DROP INDEX chat_sessions_lookup;
DROP INDEX chat_messages_session;
ALTER TABLE chat_messages RENAME TO chat_messages_v1;
ALTER TABLE chat_sessions RENAME TO chat_sessions_v1;
CREATE TABLE chat_sessions (
  id                TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
  agent_uuid        TEXT NOT NULL,
  customer_id       TEXT NOT NULL CHECK (customer_id <> ''),
  mode              TEXT NOT NULL DEFAULT 'ai' CHECK (mode IN ('ai', 'support')),
  status            TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'dormant', 'closed')),
  help_requested    INTEGER NOT NULL DEFAULT 0 CHECK (help_requested IN (0, 1)),
  current_state     TEXT,
  input_fields      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(input_fields)),
  state_fields      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(state_fields)),
  context           TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(context)),
  active_human      TEXT,
  created_at        INTEGER NOT NULL,
  updated_at        INTEGER NOT NULL,
  last_message_at   INTEGER NOT NULL,
  closed_at         INTEGER,
  summary           TEXT,
  summary_error     TEXT
);
INSERT INTO chat_sessions (id, agent_uuid, customer_id, mode, status, help_requested, current_state, input_fields,
                           state_fields, context, active_human, created_at, updated_at, last_message_at)
  SELECT id, agent_uuid, CASE WHEN customer_id = '' THEN 'unknown' ELSE customer_id END, mode, status,
         help_requested, current_state, coalesce(input_fields, '{}'), coalesce(state_fields, '{}'),
         coalesce(context, '[]'), active_human, created_at, updated_at, updated_at
  FROM chat_sessions_v1 WHERE id <> '';
UPDATE chat_sessions SET status = 'closed', closed_at = updated_at,
                         summary_error = 'closed by migration 7: a newer session was open'
  WHERE status <> 'closed' AND EXISTS (
    SELECT 1 FROM chat_sessions o WHERE o.customer_id = chat_sessions.customer_id
      AND o.agent_uuid = chat_sessions.agent_uuid AND o.status <> 'closed'
      AND (o.updated_at > chat_sessions.updated_at OR (o.updated_at = chat_sessions.updated_at AND o.id > chat_sessions.id)));
CREATE TABLE chat_messages (
  id           INTEGER PRIMARY KEY,
  session_id   TEXT NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
  role         TEXT NOT NULL
               CHECK (role IN ('customer', 'agent', 'operator', 'whisper', 'tell', 'system', 'tool')),
  text         TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  operator     TEXT,
  latency_ms   INTEGER,
  error        TEXT,
  consumed_by  INTEGER
);
INSERT INTO chat_messages (id, session_id, role, text, created_at)
  SELECT id, session_id, role, content, created_at FROM chat_messages_v1
  WHERE session_id IN (SELECT id FROM chat_sessions);
-- Old whispers were never shown to a model turn by anyone: they are not pending for a new one.
UPDATE chat_messages SET consumed_by = 0 WHERE role = 'whisper';
DROP TABLE chat_messages_v1;
DROP TABLE chat_sessions_v1;
CREATE UNIQUE INDEX chat_sessions_open ON chat_sessions (customer_id, agent_uuid) WHERE status <> 'closed';
CREATE INDEX chat_sessions_customer ON chat_sessions (customer_id, status);
CREATE INDEX chat_sessions_listing ON chat_sessions (help_requested DESC, updated_at DESC, id);
CREATE INDEX chat_sessions_agent ON chat_sessions (agent_uuid, status, updated_at DESC);
CREATE INDEX chat_sessions_idle ON chat_sessions (agent_uuid, last_message_at) WHERE status = 'active';
CREATE INDEX chat_messages_session ON chat_messages (session_id, id);
CREATE INDEX chat_messages_whispers ON chat_messages (session_id, id) WHERE role = 'whisper' AND consumed_by IS NULL;
)sql";

// Migration 8: the dashboard's rollups (GET /v1/stats, docs/store.md "Stats rollups"). Counting the calls of
// a 90-day window at 1,000,000 calls visits ~250,000 index entries (far past the 20 ms the dashboard has);
// the rollups turn that into at most a few thousand rows, whatever the number of calls.
constexpr std::string_view kMigration8 = R"sql(
-- The dashboard's rollups (GET /v1/stats): every production call counted once, by its current state, in the
-- 15-minute UTC bucket of its created_at (immutable), kept by the triggers below in the transaction of the
-- call's own write. A 15-minute grid lines up with every local midnight and hour of today's zones (offsets are
-- whole quarter hours: +05:30, +05:45), so any time zone's days and hours are sums of whole buckets.
-- call_stats_quarter: all agents; call_stats_hour: the outcomes per hour, for each of the three phases local
-- hours start at in today's zones (minute 0, 15 or 30 of the UTC hour): the daily and hourly series read 24
-- rows a day instead of 96; call_stats_agent_quarter and call_stats_agent_hour: the same per agent (an
-- agent-limited token's series; the quarters also give the partial days at a window's edges and the series of
-- a window whose phase changes); call_stats_agent_day: per agent and UTC day (top agents over a window without
-- visiting its 96 quarters a day). Rows whose counts fell back to 0 stay.
CREATE TABLE call_stats_quarter (
  bucket            INTEGER PRIMARY KEY,
  calls             INTEGER NOT NULL DEFAULT 0,
  picked            INTEGER NOT NULL DEFAULT 0,
  not_picked        INTEGER NOT NULL DEFAULT 0,
  failed            INTEGER NOT NULL DEFAULT 0,
  busy              INTEGER NOT NULL DEFAULT 0,
  voicemail         INTEGER NOT NULL DEFAULT 0,
  in_progress       INTEGER NOT NULL DEFAULT 0,
  inbound           INTEGER NOT NULL DEFAULT 0,
  duration_s        INTEGER NOT NULL DEFAULT 0,
  picked_duration_s INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE call_stats_hour (
  phase             INTEGER NOT NULL CHECK (phase IN (0, 900000, 1800000)),
  hour              INTEGER NOT NULL,
  calls             INTEGER NOT NULL DEFAULT 0,
  picked            INTEGER NOT NULL DEFAULT 0,
  not_picked        INTEGER NOT NULL DEFAULT 0,
  failed            INTEGER NOT NULL DEFAULT 0,
  busy              INTEGER NOT NULL DEFAULT 0,
  voicemail         INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (phase, hour)
) WITHOUT ROWID;
CREATE TABLE call_stats_agent_quarter (
  agent_uuid        TEXT NOT NULL,
  bucket            INTEGER NOT NULL,
  calls             INTEGER NOT NULL DEFAULT 0,
  picked            INTEGER NOT NULL DEFAULT 0,
  not_picked        INTEGER NOT NULL DEFAULT 0,
  failed            INTEGER NOT NULL DEFAULT 0,
  busy              INTEGER NOT NULL DEFAULT 0,
  voicemail         INTEGER NOT NULL DEFAULT 0,
  in_progress       INTEGER NOT NULL DEFAULT 0,
  inbound           INTEGER NOT NULL DEFAULT 0,
  duration_s        INTEGER NOT NULL DEFAULT 0,
  picked_duration_s INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (agent_uuid, bucket)
) WITHOUT ROWID;
CREATE TABLE call_stats_agent_hour (
  agent_uuid        TEXT NOT NULL,
  phase             INTEGER NOT NULL CHECK (phase IN (0, 900000, 1800000)),
  hour              INTEGER NOT NULL,
  calls             INTEGER NOT NULL DEFAULT 0,
  picked            INTEGER NOT NULL DEFAULT 0,
  not_picked        INTEGER NOT NULL DEFAULT 0,
  failed            INTEGER NOT NULL DEFAULT 0,
  busy              INTEGER NOT NULL DEFAULT 0,
  voicemail         INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (agent_uuid, phase, hour)
) WITHOUT ROWID;
CREATE TABLE call_stats_agent_day (
  day               INTEGER NOT NULL,
  agent_uuid        TEXT NOT NULL,
  calls             INTEGER NOT NULL DEFAULT 0,
  picked            INTEGER NOT NULL DEFAULT 0,
  not_picked        INTEGER NOT NULL DEFAULT 0,
  failed            INTEGER NOT NULL DEFAULT 0,
  busy              INTEGER NOT NULL DEFAULT 0,
  voicemail         INTEGER NOT NULL DEFAULT 0,
  in_progress       INTEGER NOT NULL DEFAULT 0,
  inbound           INTEGER NOT NULL DEFAULT 0,
  duration_s        INTEGER NOT NULL DEFAULT 0,
  picked_duration_s INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (day, agent_uuid)
) WITHOUT ROWID;
-- The calls already stored, once (the only full read of calls the stats ever make).
INSERT INTO call_stats_quarter (bucket, calls, picked, not_picked, failed, busy, voicemail, in_progress, inbound,
    duration_s, picked_duration_s)
  SELECT created_at / 900000 * 900000,
    count(*), sum(status = 'picked'), sum(status = 'not_picked'), sum(status = 'failed'),
    sum(status = 'busy'), sum(status = 'voicemail'), sum(status = 'in_progress'),
    sum(call_type = 'inbound'), sum(duration_seconds),
    sum(CASE WHEN status = 'picked' THEN duration_seconds ELSE 0 END)
  FROM calls WHERE execution_mode = 'prod' GROUP BY 1;
-- Each quarter lies inside one hour of every phase: the hours are the quarters summed.
INSERT INTO call_stats_hour (phase, hour, calls, picked, not_picked, failed, busy, voicemail)
  SELECT p.phase, (q.bucket - p.phase) / 3600000 * 3600000 + p.phase, sum(q.calls), sum(q.picked),
    sum(q.not_picked), sum(q.failed), sum(q.busy), sum(q.voicemail)
  FROM call_stats_quarter AS q, (SELECT 0 AS phase UNION ALL SELECT 900000 UNION ALL SELECT 1800000) AS p
  GROUP BY 1, 2;
INSERT INTO call_stats_agent_quarter (agent_uuid, bucket, calls, picked, not_picked, failed, busy, voicemail,
    in_progress, inbound, duration_s, picked_duration_s)
  SELECT agent_uuid, created_at / 900000 * 900000,
    count(*), sum(status = 'picked'), sum(status = 'not_picked'), sum(status = 'failed'),
    sum(status = 'busy'), sum(status = 'voicemail'), sum(status = 'in_progress'),
    sum(call_type = 'inbound'), sum(duration_seconds),
    sum(CASE WHEN status = 'picked' THEN duration_seconds ELSE 0 END)
  FROM calls WHERE execution_mode = 'prod' GROUP BY 1, 2;
INSERT INTO call_stats_agent_hour (agent_uuid, phase, hour, calls, picked, not_picked, failed, busy, voicemail)
  SELECT q.agent_uuid, p.phase, (q.bucket - p.phase) / 3600000 * 3600000 + p.phase, sum(q.calls), sum(q.picked),
    sum(q.not_picked), sum(q.failed), sum(q.busy), sum(q.voicemail)
  FROM call_stats_agent_quarter AS q, (SELECT 0 AS phase UNION ALL SELECT 900000 UNION ALL SELECT 1800000) AS p
  GROUP BY 1, 2, 3;
INSERT INTO call_stats_agent_day (day, agent_uuid, calls, picked, not_picked, failed, busy, voicemail, in_progress,
    inbound, duration_s, picked_duration_s)
  SELECT created_at / 86400000 * 86400000, agent_uuid,
    count(*), sum(status = 'picked'), sum(status = 'not_picked'), sum(status = 'failed'),
    sum(status = 'busy'), sum(status = 'voicemail'), sum(status = 'in_progress'),
    sum(call_type = 'inbound'), sum(duration_seconds),
    sum(CASE WHEN status = 'picked' THEN duration_seconds ELSE 0 END)
  FROM calls WHERE execution_mode = 'prod' GROUP BY 1, 2;
CREATE TRIGGER call_stats_insert AFTER INSERT ON calls WHEN new.execution_mode = 'prod' BEGIN
  INSERT INTO call_stats_quarter (bucket, calls, picked, not_picked, failed, busy, voicemail, in_progress, inbound,
      duration_s, picked_duration_s)
    VALUES (new.created_at / 900000 * 900000, 1, new.status = 'picked', new.status = 'not_picked',
        new.status = 'failed', new.status = 'busy', new.status = 'voicemail', new.status = 'in_progress',
        new.call_type = 'inbound', new.duration_seconds,
        CASE WHEN new.status = 'picked' THEN new.duration_seconds ELSE 0 END)
    ON CONFLICT DO UPDATE SET calls = calls + excluded.calls, picked = picked + excluded.picked,
        not_picked = not_picked + excluded.not_picked, failed = failed + excluded.failed,
        busy = busy + excluded.busy, voicemail = voicemail + excluded.voicemail,
        in_progress = in_progress + excluded.in_progress, inbound = inbound + excluded.inbound,
        duration_s = duration_s + excluded.duration_s,
        picked_duration_s = picked_duration_s + excluded.picked_duration_s;
  INSERT INTO call_stats_hour (phase, hour, calls, picked, not_picked, failed, busy, voicemail)
    VALUES (0, new.created_at / 3600000 * 3600000,
        1, new.status = 'picked', new.status = 'not_picked', new.status = 'failed', new.status = 'busy',
        new.status = 'voicemail')
    ON CONFLICT DO UPDATE SET calls = calls + excluded.calls, picked = picked + excluded.picked,
        not_picked = not_picked + excluded.not_picked, failed = failed + excluded.failed,
        busy = busy + excluded.busy, voicemail = voicemail + excluded.voicemail;
  INSERT INTO call_stats_hour (phase, hour, calls, picked, not_picked, failed, busy, voicemail)
    VALUES (900000, (new.created_at - 900000) / 3600000 * 3600000 + 900000,
        1, new.status = 'picked', new.status = 'not_picked', new.status = 'failed', new.status = 'busy',
        new.status = 'voicemail')
    ON CONFLICT DO UPDATE SET calls = calls + excluded.calls, picked = picked + excluded.picked,
        not_picked = not_picked + excluded.not_picked, failed = failed + excluded.failed,
        busy = busy + excluded.busy, voicemail = voicemail + excluded.voicemail;
  INSERT INTO call_stats_hour (phase, hour, calls, picked, not_picked, failed, busy, voicemail)
    VALUES (1800000, (new.created_at - 1800000) / 3600000 * 3600000 + 1800000,
        1, new.status = 'picked', new.status = 'not_picked', new.status = 'failed', new.status = 'busy',
        new.status = 'voicemail')
    ON CONFLICT DO UPDATE SET calls = calls + excluded.calls, picked = picked + excluded.picked,
        not_picked = not_picked + excluded.not_picked, failed = failed + excluded.failed,
        busy = busy + excluded.busy, voicemail = voicemail + excluded.voicemail;
  INSERT INTO call_stats_agent_quarter (agent_uuid, bucket, calls, picked, not_picked, failed, busy, voicemail,
      in_progress, inbound, duration_s, picked_duration_s)
    VALUES (new.agent_uuid, new.created_at / 900000 * 900000, 1, new.status = 'picked', new.status = 'not_picked',
        new.status = 'failed', new.status = 'busy', new.status = 'voicemail', new.status = 'in_progress',
        new.call_type = 'inbound', new.duration_seconds,
        CASE WHEN new.status = 'picked' THEN new.duration_seconds ELSE 0 END)
    ON CONFLICT DO UPDATE SET calls = calls + excluded.calls, picked = picked + excluded.picked,
        not_picked = not_picked + excluded.not_picked, failed = failed + excluded.failed,
        busy = busy + excluded.busy, voicemail = voicemail + excluded.voicemail,
        in_progress = in_progress + excluded.in_progress, inbound = inbound + excluded.inbound,
        duration_s = duration_s + excluded.duration_s,
        picked_duration_s = picked_duration_s + excluded.picked_duration_s;
  INSERT INTO call_stats_agent_hour (agent_uuid, phase, hour, calls, picked, not_picked, failed, busy, voicemail)
    VALUES (new.agent_uuid, 0, new.created_at / 3600000 * 3600000,
        1, new.status = 'picked', new.status = 'not_picked', new.status = 'failed', new.status = 'busy',
        new.status = 'voicemail')
    ON CONFLICT DO UPDATE SET calls = calls + excluded.calls, picked = picked + excluded.picked,
        not_picked = not_picked + excluded.not_picked, failed = failed + excluded.failed,
        busy = busy + excluded.busy, voicemail = voicemail + excluded.voicemail;
  INSERT INTO call_stats_agent_hour (agent_uuid, phase, hour, calls, picked, not_picked, failed, busy, voicemail)
    VALUES (new.agent_uuid, 900000, (new.created_at - 900000) / 3600000 * 3600000 + 900000,
        1, new.status = 'picked', new.status = 'not_picked', new.status = 'failed', new.status = 'busy',
        new.status = 'voicemail')
    ON CONFLICT DO UPDATE SET calls = calls + excluded.calls, picked = picked + excluded.picked,
        not_picked = not_picked + excluded.not_picked, failed = failed + excluded.failed,
        busy = busy + excluded.busy, voicemail = voicemail + excluded.voicemail;
  INSERT INTO call_stats_agent_hour (agent_uuid, phase, hour, calls, picked, not_picked, failed, busy, voicemail)
    VALUES (new.agent_uuid, 1800000, (new.created_at - 1800000) / 3600000 * 3600000 + 1800000,
        1, new.status = 'picked', new.status = 'not_picked', new.status = 'failed', new.status = 'busy',
        new.status = 'voicemail')
    ON CONFLICT DO UPDATE SET calls = calls + excluded.calls, picked = picked + excluded.picked,
        not_picked = not_picked + excluded.not_picked, failed = failed + excluded.failed,
        busy = busy + excluded.busy, voicemail = voicemail + excluded.voicemail;
  INSERT INTO call_stats_agent_day (day, agent_uuid, calls, picked, not_picked, failed, busy, voicemail, in_progress,
      inbound, duration_s, picked_duration_s)
    VALUES (new.created_at / 86400000 * 86400000, new.agent_uuid, 1, new.status = 'picked',
        new.status = 'not_picked', new.status = 'failed', new.status = 'busy', new.status = 'voicemail',
        new.status = 'in_progress', new.call_type = 'inbound', new.duration_seconds,
        CASE WHEN new.status = 'picked' THEN new.duration_seconds ELSE 0 END)
    ON CONFLICT DO UPDATE SET calls = calls + excluded.calls, picked = picked + excluded.picked,
        not_picked = not_picked + excluded.not_picked, failed = failed + excluded.failed,
        busy = busy + excluded.busy, voicemail = voicemail + excluded.voicemail,
        in_progress = in_progress + excluded.in_progress, inbound = inbound + excluded.inbound,
        duration_s = duration_s + excluded.duration_s,
        picked_duration_s = picked_duration_s + excluded.picked_duration_s;
END;
CREATE TRIGGER call_stats_delete AFTER DELETE ON calls WHEN old.execution_mode = 'prod' BEGIN
  UPDATE call_stats_quarter SET calls = calls - 1, picked = picked - (old.status = 'picked'),
      not_picked = not_picked - (old.status = 'not_picked'), failed = failed - (old.status = 'failed'),
      busy = busy - (old.status = 'busy'), voicemail = voicemail - (old.status = 'voicemail'),
      in_progress = in_progress - (old.status = 'in_progress'), inbound = inbound - (old.call_type = 'inbound'),
      duration_s = duration_s - (old.duration_seconds),
      picked_duration_s = picked_duration_s - (CASE WHEN old.status = 'picked' THEN old.duration_seconds ELSE 0 END)
    WHERE bucket = old.created_at / 900000 * 900000;
  UPDATE call_stats_hour SET calls = calls - 1, picked = picked - (old.status = 'picked'),
      not_picked = not_picked - (old.status = 'not_picked'), failed = failed - (old.status = 'failed'),
      busy = busy - (old.status = 'busy'), voicemail = voicemail - (old.status = 'voicemail')
    WHERE phase = 0 AND hour = old.created_at / 3600000 * 3600000;
  UPDATE call_stats_hour SET calls = calls - 1, picked = picked - (old.status = 'picked'),
      not_picked = not_picked - (old.status = 'not_picked'), failed = failed - (old.status = 'failed'),
      busy = busy - (old.status = 'busy'), voicemail = voicemail - (old.status = 'voicemail')
    WHERE phase = 1800000 AND hour = (old.created_at - 1800000) / 3600000 * 3600000 + 1800000;
  UPDATE call_stats_hour SET calls = calls - 1, picked = picked - (old.status = 'picked'),
      not_picked = not_picked - (old.status = 'not_picked'), failed = failed - (old.status = 'failed'),
      busy = busy - (old.status = 'busy'), voicemail = voicemail - (old.status = 'voicemail')
    WHERE phase = 900000 AND hour = (old.created_at - 900000) / 3600000 * 3600000 + 900000;
  UPDATE call_stats_agent_quarter SET calls = calls - 1, picked = picked - (old.status = 'picked'),
      not_picked = not_picked - (old.status = 'not_picked'), failed = failed - (old.status = 'failed'),
      busy = busy - (old.status = 'busy'), voicemail = voicemail - (old.status = 'voicemail'),
      in_progress = in_progress - (old.status = 'in_progress'), inbound = inbound - (old.call_type = 'inbound'),
      duration_s = duration_s - (old.duration_seconds),
      picked_duration_s = picked_duration_s - (CASE WHEN old.status = 'picked' THEN old.duration_seconds ELSE 0 END)
    WHERE agent_uuid = old.agent_uuid AND bucket = old.created_at / 900000 * 900000;
  UPDATE call_stats_agent_hour SET calls = calls - 1, picked = picked - (old.status = 'picked'),
      not_picked = not_picked - (old.status = 'not_picked'), failed = failed - (old.status = 'failed'),
      busy = busy - (old.status = 'busy'), voicemail = voicemail - (old.status = 'voicemail')
    WHERE agent_uuid = old.agent_uuid AND phase = 0 AND hour = old.created_at / 3600000 * 3600000;
  UPDATE call_stats_agent_hour SET calls = calls - 1, picked = picked - (old.status = 'picked'),
      not_picked = not_picked - (old.status = 'not_picked'), failed = failed - (old.status = 'failed'),
      busy = busy - (old.status = 'busy'), voicemail = voicemail - (old.status = 'voicemail')
    WHERE agent_uuid = old.agent_uuid AND phase = 900000
      AND hour = (old.created_at - 900000) / 3600000 * 3600000 + 900000;
  UPDATE call_stats_agent_hour SET calls = calls - 1, picked = picked - (old.status = 'picked'),
      not_picked = not_picked - (old.status = 'not_picked'), failed = failed - (old.status = 'failed'),
      busy = busy - (old.status = 'busy'), voicemail = voicemail - (old.status = 'voicemail')
    WHERE agent_uuid = old.agent_uuid AND phase = 1800000
      AND hour = (old.created_at - 1800000) / 3600000 * 3600000 + 1800000;
  UPDATE call_stats_agent_day SET calls = calls - 1, picked = picked - (old.status = 'picked'),
      not_picked = not_picked - (old.status = 'not_picked'), failed = failed - (old.status = 'failed'),
      busy = busy - (old.status = 'busy'), voicemail = voicemail - (old.status = 'voicemail'),
      in_progress = in_progress - (old.status = 'in_progress'), inbound = inbound - (old.call_type = 'inbound'),
      duration_s = duration_s - (old.duration_seconds),
      picked_duration_s = picked_duration_s - (CASE WHEN old.status = 'picked' THEN old.duration_seconds ELSE 0 END)
    WHERE day = old.created_at / 86400000 * 86400000 AND agent_uuid = old.agent_uuid;
END;
-- CallsRepo::update rewrites every column of a call (a new revision): only a change of what the rollups count
-- moves them, the old state out and the new one in, so a call is counted once however often it is written.
CREATE TRIGGER call_stats_update_old AFTER UPDATE OF status, duration_seconds, agent_uuid, call_type, created_at,
    execution_mode ON calls
  WHEN old.execution_mode = 'prod' AND (old.status IS NOT new.status
    OR old.duration_seconds IS NOT new.duration_seconds OR old.agent_uuid IS NOT new.agent_uuid
    OR old.call_type IS NOT new.call_type OR old.created_at IS NOT new.created_at
    OR old.execution_mode IS NOT new.execution_mode)
BEGIN
  UPDATE call_stats_quarter SET calls = calls - 1, picked = picked - (old.status = 'picked'),
      not_picked = not_picked - (old.status = 'not_picked'), failed = failed - (old.status = 'failed'),
      busy = busy - (old.status = 'busy'), voicemail = voicemail - (old.status = 'voicemail'),
      in_progress = in_progress - (old.status = 'in_progress'), inbound = inbound - (old.call_type = 'inbound'),
      duration_s = duration_s - (old.duration_seconds),
      picked_duration_s = picked_duration_s - (CASE WHEN old.status = 'picked' THEN old.duration_seconds ELSE 0 END)
    WHERE bucket = old.created_at / 900000 * 900000;
  UPDATE call_stats_hour SET calls = calls - 1, picked = picked - (old.status = 'picked'),
      not_picked = not_picked - (old.status = 'not_picked'), failed = failed - (old.status = 'failed'),
      busy = busy - (old.status = 'busy'), voicemail = voicemail - (old.status = 'voicemail')
    WHERE phase = 0 AND hour = old.created_at / 3600000 * 3600000;
  UPDATE call_stats_hour SET calls = calls - 1, picked = picked - (old.status = 'picked'),
      not_picked = not_picked - (old.status = 'not_picked'), failed = failed - (old.status = 'failed'),
      busy = busy - (old.status = 'busy'), voicemail = voicemail - (old.status = 'voicemail')
    WHERE phase = 1800000 AND hour = (old.created_at - 1800000) / 3600000 * 3600000 + 1800000;
  UPDATE call_stats_hour SET calls = calls - 1, picked = picked - (old.status = 'picked'),
      not_picked = not_picked - (old.status = 'not_picked'), failed = failed - (old.status = 'failed'),
      busy = busy - (old.status = 'busy'), voicemail = voicemail - (old.status = 'voicemail')
    WHERE phase = 900000 AND hour = (old.created_at - 900000) / 3600000 * 3600000 + 900000;
  UPDATE call_stats_agent_quarter SET calls = calls - 1, picked = picked - (old.status = 'picked'),
      not_picked = not_picked - (old.status = 'not_picked'), failed = failed - (old.status = 'failed'),
      busy = busy - (old.status = 'busy'), voicemail = voicemail - (old.status = 'voicemail'),
      in_progress = in_progress - (old.status = 'in_progress'), inbound = inbound - (old.call_type = 'inbound'),
      duration_s = duration_s - (old.duration_seconds),
      picked_duration_s = picked_duration_s - (CASE WHEN old.status = 'picked' THEN old.duration_seconds ELSE 0 END)
    WHERE agent_uuid = old.agent_uuid AND bucket = old.created_at / 900000 * 900000;
  UPDATE call_stats_agent_hour SET calls = calls - 1, picked = picked - (old.status = 'picked'),
      not_picked = not_picked - (old.status = 'not_picked'), failed = failed - (old.status = 'failed'),
      busy = busy - (old.status = 'busy'), voicemail = voicemail - (old.status = 'voicemail')
    WHERE agent_uuid = old.agent_uuid AND phase = 0 AND hour = old.created_at / 3600000 * 3600000;
  UPDATE call_stats_agent_hour SET calls = calls - 1, picked = picked - (old.status = 'picked'),
      not_picked = not_picked - (old.status = 'not_picked'), failed = failed - (old.status = 'failed'),
      busy = busy - (old.status = 'busy'), voicemail = voicemail - (old.status = 'voicemail')
    WHERE agent_uuid = old.agent_uuid AND phase = 900000
      AND hour = (old.created_at - 900000) / 3600000 * 3600000 + 900000;
  UPDATE call_stats_agent_hour SET calls = calls - 1, picked = picked - (old.status = 'picked'),
      not_picked = not_picked - (old.status = 'not_picked'), failed = failed - (old.status = 'failed'),
      busy = busy - (old.status = 'busy'), voicemail = voicemail - (old.status = 'voicemail')
    WHERE agent_uuid = old.agent_uuid AND phase = 1800000
      AND hour = (old.created_at - 1800000) / 3600000 * 3600000 + 1800000;
  UPDATE call_stats_agent_day SET calls = calls - 1, picked = picked - (old.status = 'picked'),
      not_picked = not_picked - (old.status = 'not_picked'), failed = failed - (old.status = 'failed'),
      busy = busy - (old.status = 'busy'), voicemail = voicemail - (old.status = 'voicemail'),
      in_progress = in_progress - (old.status = 'in_progress'), inbound = inbound - (old.call_type = 'inbound'),
      duration_s = duration_s - (old.duration_seconds),
      picked_duration_s = picked_duration_s - (CASE WHEN old.status = 'picked' THEN old.duration_seconds ELSE 0 END)
    WHERE day = old.created_at / 86400000 * 86400000 AND agent_uuid = old.agent_uuid;
END;
CREATE TRIGGER call_stats_update_new AFTER UPDATE OF status, duration_seconds, agent_uuid, call_type, created_at,
    execution_mode ON calls
  WHEN new.execution_mode = 'prod' AND (old.status IS NOT new.status
    OR old.duration_seconds IS NOT new.duration_seconds OR old.agent_uuid IS NOT new.agent_uuid
    OR old.call_type IS NOT new.call_type OR old.created_at IS NOT new.created_at
    OR old.execution_mode IS NOT new.execution_mode)
BEGIN
  INSERT INTO call_stats_quarter (bucket, calls, picked, not_picked, failed, busy, voicemail, in_progress, inbound,
      duration_s, picked_duration_s)
    VALUES (new.created_at / 900000 * 900000, 1, new.status = 'picked', new.status = 'not_picked',
        new.status = 'failed', new.status = 'busy', new.status = 'voicemail', new.status = 'in_progress',
        new.call_type = 'inbound', new.duration_seconds,
        CASE WHEN new.status = 'picked' THEN new.duration_seconds ELSE 0 END)
    ON CONFLICT DO UPDATE SET calls = calls + excluded.calls, picked = picked + excluded.picked,
        not_picked = not_picked + excluded.not_picked, failed = failed + excluded.failed,
        busy = busy + excluded.busy, voicemail = voicemail + excluded.voicemail,
        in_progress = in_progress + excluded.in_progress, inbound = inbound + excluded.inbound,
        duration_s = duration_s + excluded.duration_s,
        picked_duration_s = picked_duration_s + excluded.picked_duration_s;
  INSERT INTO call_stats_hour (phase, hour, calls, picked, not_picked, failed, busy, voicemail)
    VALUES (0, new.created_at / 3600000 * 3600000,
        1, new.status = 'picked', new.status = 'not_picked', new.status = 'failed', new.status = 'busy',
        new.status = 'voicemail')
    ON CONFLICT DO UPDATE SET calls = calls + excluded.calls, picked = picked + excluded.picked,
        not_picked = not_picked + excluded.not_picked, failed = failed + excluded.failed,
        busy = busy + excluded.busy, voicemail = voicemail + excluded.voicemail;
  INSERT INTO call_stats_hour (phase, hour, calls, picked, not_picked, failed, busy, voicemail)
    VALUES (900000, (new.created_at - 900000) / 3600000 * 3600000 + 900000,
        1, new.status = 'picked', new.status = 'not_picked', new.status = 'failed', new.status = 'busy',
        new.status = 'voicemail')
    ON CONFLICT DO UPDATE SET calls = calls + excluded.calls, picked = picked + excluded.picked,
        not_picked = not_picked + excluded.not_picked, failed = failed + excluded.failed,
        busy = busy + excluded.busy, voicemail = voicemail + excluded.voicemail;
  INSERT INTO call_stats_hour (phase, hour, calls, picked, not_picked, failed, busy, voicemail)
    VALUES (1800000, (new.created_at - 1800000) / 3600000 * 3600000 + 1800000,
        1, new.status = 'picked', new.status = 'not_picked', new.status = 'failed', new.status = 'busy',
        new.status = 'voicemail')
    ON CONFLICT DO UPDATE SET calls = calls + excluded.calls, picked = picked + excluded.picked,
        not_picked = not_picked + excluded.not_picked, failed = failed + excluded.failed,
        busy = busy + excluded.busy, voicemail = voicemail + excluded.voicemail;
  INSERT INTO call_stats_agent_quarter (agent_uuid, bucket, calls, picked, not_picked, failed, busy, voicemail,
      in_progress, inbound, duration_s, picked_duration_s)
    VALUES (new.agent_uuid, new.created_at / 900000 * 900000, 1, new.status = 'picked', new.status = 'not_picked',
        new.status = 'failed', new.status = 'busy', new.status = 'voicemail', new.status = 'in_progress',
        new.call_type = 'inbound', new.duration_seconds,
        CASE WHEN new.status = 'picked' THEN new.duration_seconds ELSE 0 END)
    ON CONFLICT DO UPDATE SET calls = calls + excluded.calls, picked = picked + excluded.picked,
        not_picked = not_picked + excluded.not_picked, failed = failed + excluded.failed,
        busy = busy + excluded.busy, voicemail = voicemail + excluded.voicemail,
        in_progress = in_progress + excluded.in_progress, inbound = inbound + excluded.inbound,
        duration_s = duration_s + excluded.duration_s,
        picked_duration_s = picked_duration_s + excluded.picked_duration_s;
  INSERT INTO call_stats_agent_hour (agent_uuid, phase, hour, calls, picked, not_picked, failed, busy, voicemail)
    VALUES (new.agent_uuid, 0, new.created_at / 3600000 * 3600000,
        1, new.status = 'picked', new.status = 'not_picked', new.status = 'failed', new.status = 'busy',
        new.status = 'voicemail')
    ON CONFLICT DO UPDATE SET calls = calls + excluded.calls, picked = picked + excluded.picked,
        not_picked = not_picked + excluded.not_picked, failed = failed + excluded.failed,
        busy = busy + excluded.busy, voicemail = voicemail + excluded.voicemail;
  INSERT INTO call_stats_agent_hour (agent_uuid, phase, hour, calls, picked, not_picked, failed, busy, voicemail)
    VALUES (new.agent_uuid, 900000, (new.created_at - 900000) / 3600000 * 3600000 + 900000,
        1, new.status = 'picked', new.status = 'not_picked', new.status = 'failed', new.status = 'busy',
        new.status = 'voicemail')
    ON CONFLICT DO UPDATE SET calls = calls + excluded.calls, picked = picked + excluded.picked,
        not_picked = not_picked + excluded.not_picked, failed = failed + excluded.failed,
        busy = busy + excluded.busy, voicemail = voicemail + excluded.voicemail;
  INSERT INTO call_stats_agent_hour (agent_uuid, phase, hour, calls, picked, not_picked, failed, busy, voicemail)
    VALUES (new.agent_uuid, 1800000, (new.created_at - 1800000) / 3600000 * 3600000 + 1800000,
        1, new.status = 'picked', new.status = 'not_picked', new.status = 'failed', new.status = 'busy',
        new.status = 'voicemail')
    ON CONFLICT DO UPDATE SET calls = calls + excluded.calls, picked = picked + excluded.picked,
        not_picked = not_picked + excluded.not_picked, failed = failed + excluded.failed,
        busy = busy + excluded.busy, voicemail = voicemail + excluded.voicemail;
  INSERT INTO call_stats_agent_day (day, agent_uuid, calls, picked, not_picked, failed, busy, voicemail, in_progress,
      inbound, duration_s, picked_duration_s)
    VALUES (new.created_at / 86400000 * 86400000, new.agent_uuid, 1, new.status = 'picked',
        new.status = 'not_picked', new.status = 'failed', new.status = 'busy', new.status = 'voicemail',
        new.status = 'in_progress', new.call_type = 'inbound', new.duration_seconds,
        CASE WHEN new.status = 'picked' THEN new.duration_seconds ELSE 0 END)
    ON CONFLICT DO UPDATE SET calls = calls + excluded.calls, picked = picked + excluded.picked,
        not_picked = not_picked + excluded.not_picked, failed = failed + excluded.failed,
        busy = busy + excluded.busy, voicemail = voicemail + excluded.voicemail,
        in_progress = in_progress + excluded.in_progress, inbound = inbound + excluded.inbound,
        duration_s = duration_s + excluded.duration_s,
        picked_duration_s = picked_duration_s + excluded.picked_duration_s;
END;
-- The chat cards count the sessions started in the window, by their status now: an index range, per agent too.
CREATE INDEX chat_sessions_created ON chat_sessions (created_at, status);
CREATE INDEX chat_sessions_agent_created ON chat_sessions (agent_uuid, created_at, status);
)sql";

constexpr std::array<std::string_view, 8> kMigrations = {kMigration1, kMigration2, kMigration3, kMigration4,
                                                         kMigration5, kMigration6, kMigration7, kMigration8};

}  // namespace

std::span<const std::string_view> migrations() {
  return kMigrations;
}

}  // namespace osvi::daemon::store_schema
