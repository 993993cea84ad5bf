// GET /v1/health: version, uptime, database, configuration, log, MQTT, the webhook queue, telephony lines,
// the model services' breakers.
#include <algorithm>

#include "osvi/api/api.hpp"
#include "osvi/api/event_hub.hpp"
#include "osvi/base/ids.hpp"
#include "osvi/base/log.hpp"
#include "osvi/calls/web_call.hpp"
#include "osvi/fleet/fleet.hpp"
#include "osvi/lines/line_manager.hpp"
#include "osvi/net/json.hpp"
#include "osvi/version.hpp"
#include "util.hpp"

namespace osvi::daemon {
namespace {

using net::HttpReply;
using net::HttpRequest;
using net::JsonPtr;

}  // namespace

void Api::health(HttpRequest&, HttpReply reply) {
  const int offset = ctx_.config->site.utc_offset_minutes;
  JsonPtr data(cJSON_CreateObject());
  StoreHealth h = ctx_.store->health();
  cJSON_AddStringToObject(data.get(), "status", h.quick_check_ok ? "ok" : "degraded");
  cJSON_AddStringToObject(data.get(), "version", kVersion);
  // A token limited to some agents belongs to a branch system: it may learn the box is up, not its lines,
  // modem identities, broker, database path or configuration.
  if (!caller_->admin) {
    reply.send(success(std::move(data)));
    return;
  }
  cJSON_AddNumberToObject(
      data.get(), "uptime_seconds",
      static_cast<double>((ctx_.clock->monotonic_us() - ctx_.started_mono_us) / 1'000'000));
  net::json_add_string(data.get(), "started_at", format_local_iso(ctx_.started_wall_ms, offset));
  net::json_add_string(data.get(), "now", format_local_iso(ctx_.clock->wall_ms(), offset));

  cJSON* db = cJSON_AddObjectToObject(data.get(), "database");
  cJSON_AddStringToObject(db, "state", h.quick_check_ok ? "ok" : "damaged");
  net::json_add_string(db, "path", h.path);
  cJSON_AddNumberToObject(db, "schema_version", h.schema_version);
  net::json_add_string(db, "quick_check", h.quick_check);
  cJSON_AddNumberToObject(db, "size_bytes", static_cast<double>(h.size_bytes));
  cJSON_AddNumberToObject(db, "calls_total", static_cast<double>(h.calls_total));
  cJSON_AddNumberToObject(db, "recovered_calls_at_start",
                          static_cast<double>(ctx_.store->database().open_report().recovered_calls.size()));

  cJSON* cfg = cJSON_AddObjectToObject(data.get(), "config");
  net::json_add_string(cfg, "source", ctx_.config_source);
  net::json_add_string(cfg, "hash", ctx_.config->source_hash);
  net::json_add_string(cfg, "loaded_at", format_local_iso(ctx_.config_loaded_wall_ms, offset));
  cJSON_AddNumberToObject(cfg, "agents", static_cast<double>(ctx_.config->agents.size()));

  cJSON* api = cJSON_AddObjectToObject(data.get(), "api");
  net::json_add_string(api, "listen", ctx_.listen);
  if (ctx_.events) {  // docs/api.md "Event streams (SSE)"
    const EventHubStats st = ctx_.events->stats();
    cJSON* ev = cJSON_AddObjectToObject(api, "event_streams");
    cJSON_AddNumberToObject(ev, "subscribers", static_cast<double>(st.subscribers));
    cJSON_AddNumberToObject(ev, "events_published", static_cast<double>(st.events_published));
    cJSON_AddNumberToObject(ev, "dropped_slow_consumers", static_cast<double>(st.dropped_slow_consumers));
    cJSON_AddNumberToObject(ev, "refused_at_cap", static_cast<double>(st.refused_at_cap));
    cJSON_AddNumberToObject(ev, "resets", static_cast<double>(st.resets));
  }
  cJSON* lg = cJSON_AddObjectToObject(data.get(), "log");
  net::json_add_string(lg, "level", log::level_name(log::level()));
  net::json_add_string(lg, "sink", log::sink() == log::Sink::journal ? "journal" : "stderr");
  if (ctx_.fleet) ctx_.fleet->health_json(cJSON_AddObjectToObject(data.get(), "mqtt"));
  // The webhook queue (docs/api.md): pending, dead-lettered, and how long the oldest pending one has waited.
  if (auto wh = ctx_.store->webhooks().counts(); wh) {
    cJSON* w = cJSON_AddObjectToObject(data.get(), "webhooks");
    cJSON_AddNumberToObject(w, "pending", static_cast<double>(wh->pending));
    cJSON_AddNumberToObject(w, "dead", static_cast<double>(wh->dead));
    cJSON_AddNumberToObject(
        w, "oldest_pending_age_s",
        wh->oldest_pending_ms == 0
            ? 0.0
            : static_cast<double>(std::max<int64_t>(0, ctx_.clock->wall_ms() - wh->oldest_pending_ms) /
                                  1000));
  } else {
    log::error("cannot count webhook deliveries: " + wh.error().message);
    cJSON_AddNullToObject(data.get(), "webhooks");
  }
  cJSON* lines = cJSON_AddArrayToObject(data.get(), "lines");
  if (ctx_.lines) {
    for (const LineHealth& lh : ctx_.lines->health()) cJSON_AddItemToArray(lines, line_health_json(lh));
  }
  // A browser test call's line is listed while the call lives (type "web").
  if (ctx_.web_calls) {
    for (const LineHealth& lh : ctx_.web_calls->lines()) cJSON_AddItemToArray(lines, line_health_json(lh));
  }
  // Each model service contacted since start: its circuit breaker, so the console shows a failing upstream.
  cJSON* ups = cJSON_AddArrayToObject(data.get(), "upstreams");
  if (ctx_.upstreams) {
    for (const net::BreakerState& u : ctx_.upstreams()) {
      cJSON* o = cJSON_CreateObject();
      net::json_add_string(o, "base_url", u.base_url);
      net::json_add_string(o, "breaker", u.state);
      cJSON_AddNumberToObject(o, "failures", u.failures);
      cJSON_AddItemToArray(ups, o);
    }
  }
  if (ctx_.loop_latency) add_loop_latency_json(data.get(), ctx_.loop_latency());
  if (ctx_.calls_health) {  // the same figures as the fleet telemetry's live_calls and xruns
    const CallsHealth ch = ctx_.calls_health();
    cJSON* c = cJSON_AddObjectToObject(data.get(), "calls");
    cJSON_AddNumberToObject(c, "live", static_cast<double>(ch.live));
    cJSON_AddNumberToObject(c, "queued", static_cast<double>(ch.queued));
    cJSON_AddNumberToObject(c, "xruns", static_cast<double>(ch.xruns));
  }
  reply.send(success(std::move(data)));
}

}  // namespace osvi::daemon
