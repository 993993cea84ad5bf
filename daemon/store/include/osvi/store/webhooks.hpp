// Repository of webhook_deliveries and webhook_attempts: the durable webhook queue and its delivery log.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"

namespace osvi::daemon {

class Database;

// One delivery: a request to send until a 2xx acknowledges it (delivered) or expires_at passes (dead).
// webhook_id is the Standard Webhooks message id, the same on every attempt, so receivers deduplicate.
// destination orders deliveries: one destination's deliveries go out one at a time, oldest first.
struct WebhookDelivery {
  int64_t id = 0;
  std::string webhook_id;  // "msg_" + 26 characters; set by the caller
  std::optional<std::string> call_id;
  std::string kind = "call_webhook";  // call_webhook | integration
  std::string agent_uuid;
  std::string integration;  // the integration's name; "" for call_webhook
  std::string destination;  // call_webhook: scheme://host:port of the URL; integration: agent_uuid/name
  std::string method = "POST";
  std::string url;
  std::vector<std::string> headers;  // "Name: value", besides the ones every delivery carries
  std::optional<std::string> body;   // none for GET / DELETE
  std::string state = "pending";     // pending | delivered | dead
  int64_t attempts = 0;
  int64_t next_attempt_at_ms = 0;
  int64_t expires_at_ms = 0;
  std::optional<int64_t> last_status;
  std::optional<std::string> last_error;
  int64_t created_at_ms = 0;
  std::optional<int64_t> finished_at_ms;
  bool operator==(const WebhookDelivery&) const = default;
};

struct WebhookAttempt {
  int64_t delivery_id = 0;
  int64_t attempt = 1;
  int64_t started_at_ms = 0;
  std::optional<int64_t> status_code;  // none: no response
  std::optional<int64_t> latency_ms;
  std::optional<std::string> error;
  bool operator==(const WebhookAttempt&) const = default;
};

class WebhookDeliveriesRepo {
 public:
  explicit WebhookDeliveriesRepo(Database& db) : db_(db) {}

  // Queues d (id, state, attempts, results are the repository's; created_at 0 = now) in the caller's
  // transaction when there is one. Returns false when (call_id, kind, integration) is queued already.
  Result<bool> enqueue(const WebhookDelivery& d);
  Result<std::optional<WebhookDelivery>> get(int64_t id);
  // Every delivery of a call, oldest first, and every attempt of them.
  Result<std::vector<WebhookDelivery>> for_call(std::string_view call_id);
  Result<std::vector<WebhookAttempt>> attempts_for_call(std::string_view call_id);

  // The dispatcher's side. The oldest pending delivery of each destination after `after` (destination
  // order), at most limit of them: a skip-scan over the pending index, so its cost grows with the number of
  // destinations, never with the number of pending rows; the dispatcher pages through with `after`.
  Result<std::vector<WebhookDelivery>> heads(std::string_view after, size_t limit);
  // An attempt's result in one transaction: the attempt row, and the delivery's attempts, last_status,
  // last_error, state (delivered on a 2xx, pending again at next_attempt_at_ms, or dead) and finished_at
  // (now, when delivered or dead). -ENOENT when the delivery is not pending (nothing written).
  Status record_attempt(const WebhookAttempt& a, std::string_view new_state,
                        std::optional<int64_t> next_attempt_at_ms);
  struct Counts {
    int64_t pending = 0, dead = 0;
    int64_t oldest_pending_ms = 0;  // created_at of the oldest pending; 0 when none
  };
  // Pending and dead only (both partial indexes): delivered rows are the bulk of the table and are not
  // counted, so the health probe costs nothing as history grows.
  Result<Counts> counts();
  // Dead deliveries, newest first (the dead-letter list); *total: all dead ones.
  Result<std::vector<WebhookDelivery>> dead(int64_t page, int64_t per_page, int64_t* total);

 private:
  Database& db_;
};

}  // namespace osvi::daemon
