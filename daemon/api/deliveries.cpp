// The webhook delivery log (extensions, docs/api.md): GET /v1/call/{id}/deliveries and GET /v1/webhooks/dead.
#include <algorithm>
#include <charconv>
#include <map>
#include <string>

#include "osvi/api/api.hpp"
#include "osvi/base/ids.hpp"
#include "osvi/base/log.hpp"
#include "osvi/net/json.hpp"
#include "osvi/store/webhooks.hpp"
#include "util.hpp"

namespace osvi::daemon {
namespace {

using net::HttpReply;
using net::HttpRequest;
using net::JsonPtr;

constexpr int64_t kDeadPerPageDefault = 50;
constexpr int64_t kDeadPerPageMax = 200;

void add_time_or_null(cJSON* o, const char* name, const std::optional<int64_t>& ms, int offset) {
  if (ms) {
    net::json_add_string(o, name, format_local_iso(*ms, offset));
  } else {
    cJSON_AddNullToObject(o, name);
  }
}

void add_int_or_null(cJSON* o, const char* name, const std::optional<int64_t>& v) {
  if (v) {
    cJSON_AddNumberToObject(o, name, static_cast<double>(*v));
  } else {
    cJSON_AddNullToObject(o, name);
  }
}

// One delivery as both endpoints show it; attempts (the log) only when given.
JsonPtr delivery_json(const WebhookDelivery& d, int offset,
                      const std::vector<const WebhookAttempt*>* attempts) {
  JsonPtr o(cJSON_CreateObject());
  cJSON* j = o.get();
  net::json_add_string(j, "webhook_id", d.webhook_id);
  net::json_add_string_or_null(j, "call_id", d.call_id);
  net::json_add_string(j, "kind", d.kind);
  net::json_add_string_or_null(
      j, "integration", d.integration.empty() ? std::nullopt : std::optional<std::string>(d.integration));
  net::json_add_string(j, "method", d.method);
  net::json_add_string(j, "url", d.url);
  net::json_add_string(j, "state", d.state);
  cJSON_AddNumberToObject(j, "attempts", static_cast<double>(d.attempts));
  net::json_add_string(j, "created_at", format_local_iso(d.created_at_ms, offset));
  add_time_or_null(j, "next_attempt_at",
                   d.state == "pending" ? std::optional<int64_t>(d.next_attempt_at_ms) : std::nullopt,
                   offset);
  net::json_add_string(j, "expires_at", format_local_iso(d.expires_at_ms, offset));
  add_time_or_null(j, "delivered_at", d.state == "delivered" ? d.finished_at_ms : std::nullopt, offset);
  add_time_or_null(j, "finished_at", d.finished_at_ms, offset);
  add_int_or_null(j, "last_status", d.last_status);
  net::json_add_string_or_null(j, "last_error", d.last_error);
  if (attempts != nullptr) {
    cJSON* log = cJSON_AddArrayToObject(j, "attempt_log");
    for (const WebhookAttempt* a : *attempts) {
      cJSON* e = cJSON_CreateObject();
      cJSON_AddNumberToObject(e, "attempt", static_cast<double>(a->attempt));
      net::json_add_string(e, "started_at", format_local_iso(a->started_at_ms, offset));
      add_int_or_null(e, "status_code", a->status_code);
      add_int_or_null(e, "latency_ms", a->latency_ms);
      net::json_add_string_or_null(e, "error", a->error);
      cJSON_AddItemToArray(log, e);
    }
  }
  return o;
}

// A positive integer query parameter within [1, max]; def when absent; nullopt when malformed.
std::optional<int64_t> positive_param(const HttpRequest& request, const char* name, int64_t def,
                                      int64_t max) {
  auto v = request.query_param(name);
  if (!v || v->empty()) return def;
  int64_t n = 0;
  auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc() || end != v->data() + v->size() || n < 1 || n > max) return std::nullopt;
  return n;
}

}  // namespace

void Api::call_deliveries(HttpRequest& request, HttpReply reply) {
  auto c = find_call(*ctx_.store, *caller_, request, reply);
  if (!c) return;
  WebhookDeliveriesRepo& repo = ctx_.store->webhooks();
  auto deliveries = repo.for_call(c->call_id);
  auto attempts = deliveries ? repo.attempts_for_call(c->call_id)
                             : Result<std::vector<WebhookAttempt>>(deliveries.error());
  if (!deliveries || !attempts) {
    log::error("cannot read webhook deliveries: " +
                   (deliveries ? attempts.error().message : deliveries.error().message),
               {{"CALL_ID", c->call_id}});
    reply.send(error(500, "database error"));
    return;
  }
  std::map<int64_t, std::vector<const WebhookAttempt*>> by_delivery;
  for (const WebhookAttempt& a : *attempts) by_delivery[a.delivery_id].push_back(&a);
  const int offset = ctx_.config->site.utc_offset_minutes;
  JsonPtr data(cJSON_CreateObject());
  net::json_add_string(data.get(), "call_id", c->call_id);
  cJSON* arr = cJSON_AddArrayToObject(data.get(), "deliveries");
  static const std::vector<const WebhookAttempt*> kNone;
  for (const WebhookDelivery& d : *deliveries) {
    auto it = by_delivery.find(d.id);
    cJSON_AddItemToArray(arr,
                         delivery_json(d, offset, it == by_delivery.end() ? &kNone : &it->second).release());
  }
  reply.send(success(std::move(data)));
}

void Api::dead_deliveries(HttpRequest& request, HttpReply reply) {
  // Dead letters span every agent; a token limited to some agents reads them through each call's log.
  if (!caller_->agents.empty()) {
    reply.send(error(403, "this API token is limited to some agents; read /v1/call/{id}/deliveries instead"));
    return;
  }
  for (const auto& [name, value] : request.query) {
    if (name != "page" && name != "per_page") {
      reply.send(error(422, name + ": unknown query parameter (page, per_page)"));
      return;
    }
  }
  auto page = positive_param(request, "page", 1, 1'000'000);
  auto per_page = positive_param(request, "per_page", kDeadPerPageDefault, kDeadPerPageMax);
  if (!page || !per_page) {
    reply.send(error(422, !page ? "page: must be a positive integer"
                                : "per_page: must be an integer in 1.." + std::to_string(kDeadPerPageMax)));
    return;
  }
  int64_t total = 0;
  auto rows = ctx_.store->webhooks().dead(*page, *per_page, &total);
  if (!rows) {
    log::error("cannot read dead webhook deliveries: " + rows.error().message);
    reply.send(error(500, "database error"));
    return;
  }
  const int offset = ctx_.config->site.utc_offset_minutes;
  JsonPtr root(cJSON_CreateObject());
  cJSON_AddBoolToObject(root.get(), "success", true);
  cJSON* data = cJSON_AddArrayToObject(root.get(), "data");
  for (const WebhookDelivery& d : *rows)
    cJSON_AddItemToArray(data, delivery_json(d, offset, nullptr).release());
  cJSON* meta = cJSON_AddObjectToObject(root.get(), "meta");
  cJSON_AddNumberToObject(meta, "current_page", static_cast<double>(*page));
  cJSON_AddNumberToObject(meta, "total_pages", static_cast<double>((total + *per_page - 1) / *per_page));
  cJSON_AddNumberToObject(meta, "total_count", static_cast<double>(total));
  cJSON_AddNumberToObject(meta, "per_page", static_cast<double>(*per_page));
  reply.send(json_response(200, root.get()));
}

}  // namespace osvi::daemon
