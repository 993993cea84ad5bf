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

}  // namespace osvi::daemon
