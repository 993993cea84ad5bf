// WebhookDeliveriesRepo: the durable webhook queue and its delivery log (webhooks.hpp).
#include "osvi/store/webhooks.hpp"

#include <cjson/cJSON.h>

#include <cerrno>
#include <string>

#include "osvi/net/json.hpp"
#include "osvi/store/database.hpp"
#include "sqlite.hpp"

namespace osvi::daemon {
namespace {

using sql::wrap;

constexpr const char* kColumns =
    "id, webhook_id, call_id, kind, agent_uuid, integration, destination, method, url, headers_json, body, "
    "state, "
    "attempts, next_attempt_at, expires_at, last_status, last_error, created_at, finished_at";

std::vector<std::string> parse_headers(const std::string& text) {
  std::vector<std::string> out;
  net::JsonPtr a(cJSON_Parse(text.c_str()));
  if (!cJSON_IsArray(a.get())) return out;
  const cJSON* item = nullptr;
  cJSON_ArrayForEach(item, a.get()) {
    if (cJSON_IsString(item)) out.emplace_back(item->valuestring);
  }
  return out;
}

WebhookDelivery read_delivery(const sql::Stmt& s) {
  WebhookDelivery d;
  d.id = s.int64(0);
  d.webhook_id = s.text(1);
  d.call_id = s.opt_text(2);
  d.kind = s.text(3);
  d.agent_uuid = s.text(4);
  d.integration = s.text(5);
  d.destination = s.text(6);
  d.method = s.text(7);
  d.url = s.text(8);
  d.headers = parse_headers(s.text(9));
  d.body = s.opt_text(10);
  d.state = s.text(11);
  d.attempts = s.int64(12);
  d.next_attempt_at_ms = s.int64(13);
  d.expires_at_ms = s.int64(14);
  d.last_status = s.opt_int64(15);
  d.last_error = s.opt_text(16);
  d.created_at_ms = s.int64(17);
  d.finished_at_ms = s.opt_int64(18);
  return d;
}

template <class... Args>
Result<std::vector<WebhookDelivery>> rows(Database& db, const std::string& sql, std::string_view what,
                                          const Args&... args) {
  auto stmt = db.sql().cached(sql);
  if (!stmt.ok()) return wrap(what, stmt.error());
  (*stmt)->bind_all(args...);
  std::vector<WebhookDelivery> out;
  for (;;) {
    auto row = (*stmt)->step();
    if (!row.ok()) return wrap(what, row.error());
    if (!*row) break;
    out.push_back(read_delivery(**stmt));
  }
  return out;
}

std::string headers_json(const std::vector<std::string>& headers) {
  net::JsonPtr a(cJSON_CreateArray());
  for (const std::string& h : headers) cJSON_AddItemToArray(a.get(), cJSON_CreateString(h.c_str()));
  return net::json_print(a.get());
}

}  // namespace

Result<bool> WebhookDeliveriesRepo::enqueue(const WebhookDelivery& d) {
  const int64_t created = d.created_at_ms != 0 ? d.created_at_ms : db_.clock().wall_ms();
  auto stmt = db_.sql().cached(
      "INSERT INTO webhook_deliveries (webhook_id, call_id, kind, agent_uuid, integration, destination, "
      "method, "
      "url, headers_json, body, next_attempt_at, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
      "?8, "
      "?9, ?10, ?11, ?12, ?13) ON CONFLICT (call_id, kind, integration) DO NOTHING");
  if (!stmt.ok()) return wrap("queueing a webhook delivery", stmt.error());
  (*stmt)->bind_all(d.webhook_id, d.call_id, d.kind, d.agent_uuid, d.integration, d.destination, d.method,
                    d.url, headers_json(d.headers), d.body,
                    d.next_attempt_at_ms != 0 ? d.next_attempt_at_ms : created, d.expires_at_ms, created);
  if (Status s = (*stmt)->run(); !s.ok()) return wrap("queueing a webhook delivery", s.error());
  return db_.sql().changes() > 0;
}

Result<std::optional<WebhookDelivery>> WebhookDeliveriesRepo::get(int64_t id) {
  static const std::string sql = std::string("SELECT ") + kColumns + " FROM webhook_deliveries WHERE id = ?1";
  auto r = rows(db_, sql, "reading a webhook delivery", id);
  if (!r.ok()) return r.error();
  if (r->empty()) return std::optional<WebhookDelivery>();
  return std::optional<WebhookDelivery>(std::move(r->front()));
}

Result<std::vector<WebhookDelivery>> WebhookDeliveriesRepo::for_call(std::string_view call_id) {
  static const std::string sql =
      std::string("SELECT ") + kColumns + " FROM webhook_deliveries WHERE call_id = ?1 ORDER BY id";
  return rows(db_, sql, "reading a call's webhook deliveries", call_id);
}

Result<std::vector<WebhookAttempt>> WebhookDeliveriesRepo::attempts_for_call(std::string_view call_id) {
  auto stmt = db_.sql().cached(
      "SELECT a.delivery_id, a.attempt, a.started_at, a.status_code, a.latency_ms, a.error FROM "
      "webhook_attempts a "
      "JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.call_id = ?1 ORDER BY a.delivery_id, "
      "a.attempt");
  if (!stmt.ok()) return wrap("reading a call's webhook attempts", stmt.error());
  (*stmt)->bind_all(call_id);
  std::vector<WebhookAttempt> out;
  for (;;) {
    auto row = (*stmt)->step();
    if (!row.ok()) return wrap("reading a call's webhook attempts", row.error());
    if (!*row) break;
    WebhookAttempt a;
    a.delivery_id = (*stmt)->int64(0);
    a.attempt = (*stmt)->int64(1);
    a.started_at_ms = (*stmt)->int64(2);
    a.status_code = (*stmt)->opt_int64(3);
    a.latency_ms = (*stmt)->opt_int64(4);
    a.error = (*stmt)->opt_text(5);
    out.push_back(std::move(a));
  }
  return out;
}

Result<std::vector<WebhookDelivery>> WebhookDeliveriesRepo::heads(std::string_view after, size_t limit) {
  // The recursive part walks the distinct destinations of the pending index one seek at a time (SQLite has
  // no skip-scan for this shape); each destination's head is then one more seek on (destination, id).
  static const std::string sql =
      std::string(
          "WITH RECURSIVE dest(name) AS (SELECT (SELECT MIN(destination) FROM webhook_deliveries WHERE "
          "state = 'pending' AND destination > ?1) UNION ALL SELECT (SELECT MIN(destination) FROM "
          "webhook_deliveries WHERE state = 'pending' AND destination > dest.name) FROM dest WHERE "
          "dest.name IS NOT NULL LIMIT ?2) SELECT ") +
      kColumns +
      " FROM dest JOIN webhook_deliveries w ON w.id = (SELECT id FROM webhook_deliveries WHERE state = "
      "'pending' AND destination = dest.name ORDER BY id LIMIT 1) ORDER BY w.destination";
  return rows(db_, sql, "reading the heads of the webhook queue", after, static_cast<int64_t>(limit));
}

Status WebhookDeliveriesRepo::record_attempt(const WebhookAttempt& a, std::string_view new_state,
                                             std::optional<int64_t> next_attempt_at_ms) {
  const std::string what = "recording webhook attempt " + std::to_string(a.attempt) + " of delivery " +
                           std::to_string(a.delivery_id);
  return db_.transaction([&]() -> Status {
    const int64_t now = db_.clock().wall_ms();
    const bool final_state = new_state != "pending";
    Status s = sql::run(
        db_.sql(),
        "UPDATE webhook_deliveries SET state = ?2, attempts = ?3, last_status = ?4, last_error = ?5, "
        "next_attempt_at = COALESCE(?6, next_attempt_at), finished_at = ?7 "
        "WHERE id = ?1 AND state = 'pending'",
        a.delivery_id, new_state, a.attempt, a.status_code, a.error, next_attempt_at_ms,
        final_state ? std::optional<int64_t>(now) : std::nullopt);
    if (!s.ok()) return wrap(what, s.error());
    if (db_.sql().changes() == 0) return make_error("store: " + what + ": no such pending delivery", -ENOENT);
    s = sql::run(
        db_.sql(),
        "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, status_code, latency_ms, error) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        a.delivery_id, a.attempt, a.started_at_ms, a.status_code, a.latency_ms, a.error);
    if (!s.ok()) return wrap(what, s.error());
    return {};
  });
}

Result<WebhookDeliveriesRepo::Counts> WebhookDeliveriesRepo::counts() {
  auto stmt = db_.sql().cached(
      "SELECT (SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'), (SELECT COUNT(*) FROM "
      "webhook_deliveries WHERE state = 'dead'), (SELECT COALESCE(MIN(created_at), 0) FROM "
      "webhook_deliveries "
      "WHERE state = 'pending')");
  if (!stmt.ok()) return wrap("counting webhook deliveries", stmt.error());
  auto row = (*stmt)->step();
  if (!row.ok()) return wrap("counting webhook deliveries", row.error());
  Counts c;
  if (*row) {
    c.pending = (*stmt)->int64(0);
    c.dead = (*stmt)->int64(1);
    c.oldest_pending_ms = (*stmt)->int64(2);
  }
  return c;
}

Result<std::vector<WebhookDelivery>> WebhookDeliveriesRepo::dead(int64_t page, int64_t per_page,
                                                                 int64_t* total) {
  if (total != nullptr) {
    auto stmt = db_.sql().cached("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'dead'");
    if (!stmt.ok()) return wrap("counting dead webhook deliveries", stmt.error());
    auto row = (*stmt)->step();
    if (!row.ok()) return wrap("counting dead webhook deliveries", row.error());
    *total = *row ? (*stmt)->int64(0) : 0;
  }
  static const std::string sql =
      std::string("SELECT ") + kColumns +
      " FROM webhook_deliveries WHERE state = 'dead' ORDER BY finished_at DESC, id "
      "DESC LIMIT ?1 OFFSET ?2";
  if (page < 1) page = 1;
  return rows(db_, sql, "reading dead webhook deliveries", per_page, (page - 1) * per_page);
}

}  // namespace osvi::daemon
