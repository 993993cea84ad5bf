// ChatRepo: chat sessions and messages, each message queued for the fleet with it (chat.hpp).
#include "osvi/store/chat.hpp"

#include <cjson/cJSON.h>

#include <cerrno>
#include <climits>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/net/json.hpp"
#include "osvi/store/database.hpp"
#include "osvi/store/outbox.hpp"
#include "sqlite.hpp"

namespace osvi::daemon {
namespace {

using sql::run;
using sql::wrap;

constexpr const char* kSessionColumns =
    "id, agent_uuid, customer_id, mode, status, help_requested, current_state, input_fields, state_fields, "
    "context, active_human, created_at, updated_at, last_message_at, closed_at, summary, summary_error";
constexpr const char* kMessageColumns =
    "id, session_id, role, text, created_at, operator, latency_ms, error, consumed_by";

ChatSessionRow read_session(const sql::Stmt& s) {
  ChatSessionRow r;
  r.id = s.text(0);
  r.agent_uuid = s.text(1);
  r.customer_id = s.text(2);
  r.mode = s.text(3);
  r.status = s.text(4);
  r.help_requested = s.int64(5) != 0;
  r.current_state = s.opt_text(6);
  r.input_fields_json = s.text(7);
  r.state_fields_json = s.text(8);
  r.context_json = s.text(9);
  r.active_human = s.opt_text(10);
  r.created_at_ms = s.int64(11);
  r.updated_at_ms = s.int64(12);
  r.last_message_at_ms = s.int64(13);
  r.closed_at_ms = s.opt_int64(14);
  r.summary = s.opt_text(15);
  r.summary_error = s.opt_text(16);
  return r;
}

ChatMessageRow read_message(const sql::Stmt& s) {
  ChatMessageRow m;
  m.id = s.int64(0);
  m.session_id = s.text(1);
  m.role = s.text(2);
  m.text = s.text(3);
  m.created_at_ms = s.int64(4);
  m.operator_id = s.opt_text(5);
  m.latency_ms = s.opt_int64(6);
  m.error = s.opt_text(7);
  m.consumed_by = s.opt_int64(8);
  return m;
}

// docs/mqtt.md, "Chat messages".
std::string message_payload(const ChatMessageRow& m, std::string_view agent_uuid,
                            std::string_view customer_id, const std::string& key) {
  net::JsonPtr o(cJSON_CreateObject());
  net::json_add_string(o.get(), "type", "chat_message");
  net::json_add_string(o.get(), "idempotency_key", key);
  cJSON_AddNumberToObject(o.get(), "id", static_cast<double>(m.id));
  net::json_add_string(o.get(), "session_id", m.session_id);
  net::json_add_string(o.get(), "agent_uuid", agent_uuid);
  net::json_add_string(o.get(), "customer_id", customer_id);
  net::json_add_string(o.get(), "role", m.role);
  net::json_add_string(o.get(), "text", m.text);
  cJSON_AddNumberToObject(o.get(), "created_at_ms", static_cast<double>(m.created_at_ms));
  net::json_add_string_or_null(o.get(), "operator", m.operator_id);
  net::json_add_int_or_null(o.get(), "latency_ms", m.latency_ms);
  net::json_add_string_or_null(o.get(), "error", m.error);
  return net::json_print(o.get());
}

template <class Row, class Read>
Result<std::vector<Row>> read_all(sql::Stmt& st, Read read, std::string_view what) {
  std::vector<Row> out;
  for (;;) {
    auto r = st.step();
    if (!r.ok()) return wrap(what, r.error());
    if (!*r) break;
    out.push_back(read(st));
  }
  return out;
}

}  // namespace

Result<std::vector<std::string>> ChatRepo::create(const ChatSessionRow& row) {
  std::vector<std::string> closed;
  Status s = db_.transaction([&]() -> Status {
    {
      auto prev = db_.sql().cached(
          "UPDATE chat_sessions SET status = 'closed', closed_at = ?3, updated_at = ?3, summary_error = "
          "'superseded by a new session' WHERE customer_id = ?1 AND agent_uuid = ?2 AND status <> 'closed' "
          "RETURNING id");
      if (!prev.ok()) return prev.error();
      (*prev)->bind_all(row.customer_id, row.agent_uuid, row.created_at_ms);
      auto ids = read_all<std::string>(
          **prev, [](const sql::Stmt& st) { return st.text(0); }, "closing the previous session");
      if (!ids.ok()) return ids.error();
      closed = std::move(*ids);
    }
    return run(db_.sql(),
               "INSERT INTO chat_sessions (id, agent_uuid, customer_id, mode, status, help_requested, "
               "current_state, input_fields, state_fields, context, active_human, created_at, updated_at, "
               "last_message_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
               row.id, row.agent_uuid, row.customer_id, row.mode, row.status, row.help_requested,
               row.current_state, row.input_fields_json, row.state_fields_json, row.context_json,
               row.active_human, row.created_at_ms, row.updated_at_ms, row.last_message_at_ms);
  });
  if (!s.ok()) return wrap("creating chat session " + row.id, s.error());
  return closed;
}

Result<std::optional<ChatSessionRow>> ChatRepo::get(std::string_view id) {
  static const std::string sql =
      std::string("SELECT ") + kSessionColumns + " FROM chat_sessions WHERE id = ?1";
  auto stmt = db_.sql().cached(sql);
  if (!stmt.ok()) return wrap("reading a chat session", stmt.error());
  (*stmt)->bind_all(id);
  auto r = (*stmt)->step();
  if (!r.ok()) return wrap("reading a chat session", r.error());
  if (!*r) return std::optional<ChatSessionRow>();
  return std::optional<ChatSessionRow>(read_session(**stmt));
}

Result<std::optional<ChatSessionRow>> ChatRepo::open_for(std::string_view customer_id,
                                                         std::string_view agent_uuid) {
  static const std::string sql = std::string("SELECT ") + kSessionColumns +
                                 " FROM chat_sessions WHERE customer_id = ?1 AND agent_uuid = ?2 AND "
                                 "status <> 'closed'";
  auto stmt = db_.sql().cached(sql);
  if (!stmt.ok()) return wrap("finding the open chat session", stmt.error());
  (*stmt)->bind_all(customer_id, agent_uuid);
  auto r = (*stmt)->step();
  if (!r.ok()) return wrap("finding the open chat session", r.error());
  if (!*r) return std::optional<ChatSessionRow>();
  return std::optional<ChatSessionRow>(read_session(**stmt));
}

Result<std::vector<ChatSessionRow>> ChatRepo::open_for_customer(std::string_view customer_id) {
  static const std::string sql = std::string("SELECT ") + kSessionColumns +
                                 " FROM chat_sessions WHERE customer_id = ?1 AND status <> 'closed' "
                                 "ORDER BY agent_uuid";
  auto stmt = db_.sql().cached(sql);
  if (!stmt.ok()) return wrap("finding open chat sessions", stmt.error());
  (*stmt)->bind_all(customer_id);
  return read_all<ChatSessionRow>(**stmt, read_session, "finding open chat sessions");
}

Status ChatRepo::update(const ChatSessionRow& r) {
  Status s = run(db_.sql(),
                 "UPDATE chat_sessions SET mode = ?2, status = ?3, help_requested = ?4, current_state = ?5, "
                 "input_fields = ?6, state_fields = ?7, context = ?8, active_human = ?9, updated_at = ?10, "
                 "last_message_at = ?11, closed_at = ?12, summary = ?13, summary_error = ?14 WHERE id = ?1",
                 r.id, r.mode, r.status, r.help_requested, r.current_state, r.input_fields_json,
                 r.state_fields_json, r.context_json, r.active_human, r.updated_at_ms, r.last_message_at_ms,
                 r.closed_at_ms, r.summary, r.summary_error);
  if (!s.ok()) return wrap("updating chat session " + r.id, s.error());
  if (db_.sql().changes() == 0) return make_error("store: no chat session " + r.id, -ENOENT);
  return {};
}

Result<ChatMessageRow> ChatRepo::add_message(const ChatMessageRow& row, std::string_view agent_uuid,
                                             std::string_view customer_id) {
  ChatMessageRow m = row;
  m.created_at_ms = db_.clock().wall_ms();
  Status s = db_.transaction([&]() -> Status {
    {
      auto stmt = db_.sql().cached(
          "INSERT INTO chat_messages (session_id, role, text, created_at, operator, latency_ms, error) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id");
      if (!stmt.ok()) return stmt.error();
      (*stmt)->bind_all(m.session_id, m.role, m.text, m.created_at_ms, m.operator_id, m.latency_ms, m.error);
      auto r = (*stmt)->step();
      if (!r.ok()) return r.error();
      if (!*r) return make_error("no id returned", -EIO);
      m.id = (*stmt)->int64(0);
    }
    const std::string key = "chat_message:" + std::to_string(m.id);
    auto q = outbox_.enqueue(kOutboxKindChatMessage, "events",
                             message_payload(m, agent_uuid, customer_id, key), key);
    if (!q.ok()) return q.error();
    return {};
  });
  if (!s.ok()) return wrap("adding a chat message", s.error());
  return m;
}

Result<std::vector<ChatMessageRow>> ChatRepo::recent(std::string_view session_id, size_t max_messages) {
  static const std::string sql = std::string("SELECT ") + kMessageColumns +
                                 " FROM (SELECT * FROM chat_messages WHERE session_id = ?1 ORDER BY id DESC "
                                 "LIMIT ?2) ORDER BY id";
  auto stmt = db_.sql().cached(sql);
  if (!stmt.ok()) return wrap("reading chat history", stmt.error());
  (*stmt)->bind_all(session_id, static_cast<int64_t>(max_messages));
  return read_all<ChatMessageRow>(**stmt, read_message, "reading chat history");
}

Result<std::vector<ChatMessageRow>> ChatRepo::pending_whispers(std::string_view session_id) {
  static const std::string sql = std::string("SELECT ") + kMessageColumns +
                                 " FROM chat_messages WHERE session_id = ?1 AND role = 'whisper' AND "
                                 "consumed_by IS NULL ORDER BY id";
  auto stmt = db_.sql().cached(sql);
  if (!stmt.ok()) return wrap("reading whispers", stmt.error());
  (*stmt)->bind_all(session_id);
  return read_all<ChatMessageRow>(**stmt, read_message, "reading whispers");
}

Result<bool> ChatRepo::has_message(std::string_view session_id, std::string_view role,
                                   std::string_view prefix) {
  auto stmt = db_.sql().cached(
      "SELECT 1 FROM chat_messages WHERE session_id = ?1 AND role = ?2 AND substr(text, 1, length(?3)) = ?3 "
      "LIMIT 1");
  if (!stmt.ok()) return wrap("reading chat messages", stmt.error());
  (*stmt)->bind_all(session_id, role, prefix);
  auto step = (*stmt)->step();
  if (!step.ok()) return wrap("reading chat messages", step.error());
  return *step;
}

Status ChatRepo::consume_whispers(const std::vector<int64_t>& ids, int64_t by_message_id) {
  return db_.transaction([&]() -> Status {
    for (int64_t id : ids) {
      Status s = run(db_.sql(),
                     "UPDATE chat_messages SET consumed_by = ?2 WHERE id = ?1 AND role = 'whisper' AND "
                     "consumed_by IS NULL",
                     id, by_message_id);
      if (!s.ok()) return wrap("consuming a whisper", s.error());
    }
    return {};
  });
}

Result<ChatRepo::MessagePage> ChatRepo::messages(std::string_view session_id, int64_t page,
                                                 int64_t per_page) {
  if (page < 1 || per_page < 1) return make_error("store: listing chat messages: page starts at 1", -EINVAL);
  MessagePage out;
  {
    auto count = db_.sql().cached("SELECT count(*) FROM chat_messages WHERE session_id = ?1");
    if (!count.ok()) return wrap("counting chat messages", count.error());
    (*count)->bind_all(session_id);
    auto c = (*count)->step();
    if (!c.ok()) return wrap("counting chat messages", c.error());
    out.total_count = *c ? (*count)->int64(0) : 0;
  }
  const int64_t offset = page - 1 > INT64_MAX / per_page ? INT64_MAX : (page - 1) * per_page;
  if (offset >= out.total_count) return out;
  static const std::string sql = std::string("SELECT ") + kMessageColumns +
                                 " FROM chat_messages WHERE session_id = ?1 ORDER BY id LIMIT ?2 OFFSET ?3";
  auto stmt = db_.sql().cached(sql);
  if (!stmt.ok()) return wrap("listing chat messages", stmt.error());
  (*stmt)->bind_all(session_id, per_page, offset);
  auto rows = read_all<ChatMessageRow>(**stmt, read_message, "listing chat messages");
  if (!rows.ok()) return rows.error();
  out.rows = std::move(*rows);
  return out;
}

Result<ChatRepo::Page> ChatRepo::list(const Filter& f) {
  if (f.page < 1 || f.per_page < 1)
    return make_error("store: listing chat sessions: page starts at 1", -EINVAL);
  const int64_t offset = f.page - 1 > INT64_MAX / f.per_page ? INT64_MAX : (f.page - 1) * f.per_page;
  // Only the filters given are in the SQL (as the other lists), so each shape can use an index.
  std::string scope, where;
  std::vector<std::string> args;
  auto add = [&](std::string& clause, const std::string& sql) {
    clause += (clause.empty() ? " WHERE " : " AND ") + sql;
  };
  if (!f.agent_uuids.empty()) {
    std::string in;
    for (const std::string& a : f.agent_uuids) {
      args.push_back(a);
      in += (in.empty() ? "?" : ", ?") + std::to_string(args.size());
    }
    add(scope, "agent_uuid IN (" + in + ")");
  }
  const size_t scope_args = args.size();
  where = scope;
  if (f.status) {
    args.push_back(*f.status);
    add(where, "status = ?" + std::to_string(args.size()));
  }
  if (f.mode) {
    args.push_back(*f.mode);
    add(where, "mode = ?" + std::to_string(args.size()));
  }
  if (f.customer_id) {
    args.push_back(*f.customer_id);
    add(where, "customer_id = ?" + std::to_string(args.size()));
  }
  if (f.help_requested) add(where, *f.help_requested ? "help_requested = 1" : "help_requested = 0");
  auto bind = [&](sql::Stmt& st, size_t n) {
    for (size_t i = 0; i < n; ++i) st.bind(static_cast<int>(i) + 1, args[i]);
  };
  Page page;
  {
    auto stats = db_.sql().cached_shape(
        "SELECT count(*), coalesce(sum(status = 'active'), 0), coalesce(sum(status = 'dormant'), 0), "
        "coalesce(sum(status = 'closed'), 0), coalesce(sum(help_requested = 1 AND status <> 'closed'), 0) "
        "FROM chat_sessions" +
        scope);
    if (!stats.ok()) return wrap("counting chat sessions", stats.error());
    bind(**stats, scope_args);
    auto r = (*stats)->step();
    if (!r.ok()) return wrap("counting chat sessions", r.error());
    if (*r) {
      page.stats = {(*stats)->int64(0), (*stats)->int64(1), (*stats)->int64(2), (*stats)->int64(3),
                    (*stats)->int64(4)};
    }
  }
  {
    auto count = db_.sql().cached_shape("SELECT count(*) FROM chat_sessions" + where);
    if (!count.ok()) return wrap("counting chat sessions", count.error());
    bind(**count, args.size());
    auto c = (*count)->step();
    if (!c.ok()) return wrap("counting chat sessions", c.error());
    page.total_count = *c ? (*count)->int64(0) : 0;
  }
  if (offset >= page.total_count) return page;
  const std::string next = std::to_string(args.size() + 1);
  auto rows = db_.sql().cached_shape(std::string("SELECT ") + kSessionColumns + " FROM chat_sessions" +
                                     where + " ORDER BY help_requested DESC, updated_at DESC, id LIMIT ?" +
                                     next + " OFFSET ?" + std::to_string(args.size() + 2));
  if (!rows.ok()) return wrap("listing chat sessions", rows.error());
  bind(**rows, args.size());
  (*rows)->bind(static_cast<int>(args.size()) + 1, f.per_page);
  (*rows)->bind(static_cast<int>(args.size()) + 2, offset);
  auto got = read_all<ChatSessionRow>(**rows, read_session, "listing chat sessions");
  if (!got.ok()) return got.error();
  page.rows = std::move(*got);
  return page;
}

Result<std::vector<ChatSessionRow>> ChatRepo::make_dormant(std::string_view agent_uuid, int64_t before_ms) {
  static const std::string sql =
      std::string("UPDATE chat_sessions SET status = 'dormant', updated_at = ?3 ") +
      "WHERE agent_uuid = ?1 AND status = 'active' AND last_message_at <= ?2 "
      "RETURNING " +
      kSessionColumns;
  auto stmt = db_.sql().cached(sql);
  if (!stmt.ok()) return wrap("marking chat sessions dormant", stmt.error());
  (*stmt)->bind_all(agent_uuid, before_ms, db_.clock().wall_ms());
  return read_all<ChatSessionRow>(**stmt, read_session, "marking chat sessions dormant");
}

Result<std::optional<int64_t>> ChatRepo::oldest_active(std::string_view agent_uuid) {
  auto stmt = db_.sql().cached(
      "SELECT min(last_message_at) FROM chat_sessions WHERE agent_uuid = ?1 AND status = 'active'");
  if (!stmt.ok()) return wrap("finding idle chat sessions", stmt.error());
  (*stmt)->bind_all(agent_uuid);
  auto r = (*stmt)->step();
  if (!r.ok()) return wrap("finding idle chat sessions", r.error());
  if (!*r) return std::optional<int64_t>();
  return (*stmt)->opt_int64(0);
}

Result<std::optional<int64_t>> ChatRepo::agent_id(std::string_view agent_uuid) {
  auto stmt = db_.sql().cached("SELECT id FROM agents WHERE agent_uuid = ?1");
  if (!stmt.ok()) return wrap("reading an agent id", stmt.error());
  (*stmt)->bind_all(agent_uuid);
  auto r = (*stmt)->step();
  if (!r.ok()) return wrap("reading an agent id", r.error());
  if (!*r) return std::optional<int64_t>();
  return std::optional<int64_t>((*stmt)->int64(0));
}

}  // namespace osvi::daemon
