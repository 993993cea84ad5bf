// OSVI API: token check, routing with 401/404/405/422, and the first endpoints.
#include "osvi/api/api.hpp"

#include <algorithm>

#include "osvi/base/ids.hpp"
#include "osvi/base/log.hpp"
#include "osvi/fleet/fleet.hpp"         // issue 6: health
#include "osvi/lines/line_manager.hpp"  // issue 4: health
#include "osvi/net/json.hpp"
#include "osvi/version.hpp"
#include "util.hpp"

namespace osvi::daemon {

net::HttpResponse json_response(int status, const cJSON* body) {
  net::HttpResponse r;
  r.status = status;
  r.body = net::json_print(body);
  return r;
}

net::HttpResponse success(net::JsonPtr data) {
  net::JsonPtr root(cJSON_CreateObject());
  cJSON_AddBoolToObject(root.get(), "success", true);
  cJSON_AddItemToObject(root.get(), "data", data.release());
  return json_response(200, root.get());
}

namespace {

using net::HttpReply;
using net::HttpRequest;
using net::HttpResponse;
using net::JsonPtr;

bool wants_body(std::string_view method) {
  return method == "POST" || method == "PUT" || method == "PATCH";
}

}  // namespace

HttpResponse Api::error(int status, std::string_view message) {
  JsonPtr root(cJSON_CreateObject());
  cJSON_AddBoolToObject(root.get(), "success", false);
  cJSON* errors = cJSON_AddArrayToObject(root.get(), "errors");
  std::string m(message);
  cJSON_AddItemToArray(errors, cJSON_CreateString(m.c_str()));
  cJSON_AddStringToObject(root.get(), "error", m.c_str());
  return json_response(status, root.get());
}

Api::Api(ApiContext& ctx) : ctx_(ctx) {
  auto bind = [this](void (Api::*fn)(HttpRequest&, HttpReply)) {
    return [this, fn](HttpRequest& req, HttpReply reply) { (this->*fn)(req, std::move(reply)); };
  };
  router_.add("GET", "/v1/active_agents", bind(&Api::active_agents));
  router_.add("GET", "/v1/health", bind(&Api::health));
  router_.add("GET", "/v1/system/log_level", bind(&Api::get_log_level));
  router_.add("PUT", "/v1/system/log_level", bind(&Api::set_log_level));
  router_.add("POST", "/v1/system/log_level", bind(&Api::set_log_level));
  // --- calls API (issue 5; api_calls.cpp) ---
  router_.add("POST", "/v1/call", bind(&Api::post_call));
  router_.add("POST", "/call", bind(&Api::post_call_legacy));
  router_.add("GET", "/v1/calls", bind(&Api::list_calls));
  router_.add("GET", "/v1/call/{id}", bind(&Api::get_call));
  router_.add("GET", "/v1/call/{id}/transcript", bind(&Api::get_transcript));
  router_.add("GET", "/v1/call/{id}/recording", bind(&Api::get_recording));
  router_.add("GET", "/v1/recordings/{file}", bind(&Api::serve_recording));
  // --- end calls API ---
}

void Api::handle(HttpRequest& request, HttpReply reply) {
  // --- calls API (issue 5): a signed recording link carries its own authorisation (HMAC + expiry), so this
  // one route is dispatched before the token check; serve_recording refuses anything unsigned.
  if (net::Router::Match rec = router_.match(request.method, request.path);
      rec.kind == net::Router::Match::Kind::found && request.path.starts_with("/v1/recordings/")) {
    caller_ = nullptr;
    request.params = std::move(rec.params);
    (*rec.handler)(request, std::move(reply));
    return;
  }
  // --- end calls API ---
  // Authentication comes first so an unauthenticated client learns nothing about which paths exist.
  auto token = request.header("API-Token");
  caller_ = nullptr;
  if (!token || token->empty()) {
    reply.send(error(401, "missing API-Token header"));
    return;
  }
  // Every configured token is compared, with no early exit, so timing does not tell which one nearly matched.
  for (const ApiToken& t : *ctx_.tokens) {
    if (constant_time_equal(t.token, *token) && !caller_) caller_ = &t;
  }
  if (!caller_) {
    reply.send(error(401, "invalid API-Token"));
    return;
  }

  net::Router::Match m = router_.match(request.method, request.path);
  if (m.kind == net::Router::Match::Kind::not_found) {
    reply.send(error(404, "no such endpoint: " + request.method + " " + request.path));
    return;
  }
  if (m.kind == net::Router::Match::Kind::method_not_allowed) {
    HttpResponse r = error(
        405, "method " + request.method + " not allowed on " + request.path + " (allowed: " + m.allow + ")");
    r.headers.emplace_back("Allow", m.allow);
    reply.send(std::move(r));
    return;
  }
  body_.reset();
  if (wants_body(request.method)) {
    std::string why;
    body_ = net::json_parse(request.body, &why);
    if (!body_) {
      reply.send(
          error(validation_status(request.method, request.path), "request body is not valid JSON: " + why));
      return;
    }
    if (!cJSON_IsObject(body_.get())) {
      reply.send(
          error(validation_status(request.method, request.path), "request body must be a JSON object"));
      return;
    }
  }
  request.params = std::move(m.params);
  (*m.handler)(request, std::move(reply));
}

void Api::active_agents(HttpRequest&, HttpReply reply) {
  auto agents = ctx_.store->agents().active_voice();
  if (!agents) {
    log::error("cannot list active agents: " + agents.error().message);
    reply.send(error(500, "database error"));
    return;
  }
  JsonPtr arr(cJSON_CreateArray());
  for (const AgentRecord& a : *agents) {
    // A token limited to some agents sees only those.
    if (!caller_->agents.empty() &&
        std::find(caller_->agents.begin(), caller_->agents.end(), a.agent_uuid) == caller_->agents.end()) {
      continue;
    }
    cJSON* item = cJSON_CreateObject();
    net::json_add_string(item, "agent_id", a.agent_uuid);
    net::json_add_string(item, "name", a.name);
    cJSON_AddStringToObject(item, "status", "active");
    cJSON_AddItemToArray(arr.get(), item);
  }
  reply.send(json_response(200, arr.get()));
}

void Api::health(HttpRequest&, HttpReply reply) {
  const int offset = ctx_.config->site.utc_offset_minutes;
  JsonPtr data(cJSON_CreateObject());
  cJSON_AddStringToObject(data.get(), "version", kVersion);
  cJSON_AddNumberToObject(
      data.get(), "uptime_seconds",
      static_cast<double>((ctx_.clock->monotonic_us() - ctx_.started_mono_us) / 1'000'000));
  net::json_add_string(data.get(), "started_at", format_local_iso(ctx_.started_wall_ms, offset));
  net::json_add_string(data.get(), "now", format_local_iso(ctx_.clock->wall_ms(), offset));

  StoreHealth h = ctx_.store->health();
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
  cJSON* lg = cJSON_AddObjectToObject(data.get(), "log");
  net::json_add_string(lg, "level", log::level_name(log::level()));
  net::json_add_string(lg, "sink", log::sink() == log::Sink::journal ? "journal" : "stderr");
  if (ctx_.fleet) ctx_.fleet->health_json(cJSON_AddObjectToObject(data.get(), "mqtt"));  // issue 6
  // --- issue 4: telephony lines ---
  cJSON* lines = cJSON_AddArrayToObject(data.get(), "lines");
  if (ctx_.lines) {
    for (const LineHealth& lh : ctx_.lines->health()) {
      cJSON* o = cJSON_CreateObject();
      net::json_add_string(o, "id", lh.id);
      net::json_add_string(o, "type", lh.type);
      net::json_add_string(o, "state", lh.state);
      net::json_add_string(o, "reason", lh.reason);
      net::json_add_string(o, "agent_uuid", lh.agent_uuid);
      cJSON* m = cJSON_AddObjectToObject(o, "modem");
      net::json_add_string(m, "manufacturer", lh.identity.manufacturer);
      net::json_add_string(m, "model", lh.identity.model);
      net::json_add_string(m, "imei", lh.identity.imei);
      net::json_add_string(m, "firmware", lh.identity.firmware);
      net::json_add_string(m, "registration", lh.identity.registration);
      cJSON* a = cJSON_AddObjectToObject(o, "audio");
      net::json_add_string(a, "kind", hal::to_string(lh.audio.kind));
      net::json_add_string(a, "device", lh.audio.device);
      cJSON_AddNumberToObject(a, "sample_rate", lh.audio.sample_rate);
      cJSON_AddBoolToObject(a, "ready", lh.audio.ready);
      cJSON_AddBoolToObject(a, "stalled", lh.audio.stalled);
      net::json_add_string(a, "error", lh.audio.error);
      cJSON_AddItemToArray(lines, o);
    }
  }
  // --- end issue 4 ---
  reply.send(success(std::move(data)));
}

void Api::get_log_level(HttpRequest&, HttpReply reply) {
  JsonPtr data(cJSON_CreateObject());
  net::json_add_string(data.get(), "level", log::level_name(log::level()));
  reply.send(success(std::move(data)));
}

void Api::set_log_level(HttpRequest&, HttpReply reply) {
  if (!caller_->admin) {
    reply.send(error(403, "this API token may not change system settings"));
    return;
  }
  const cJSON* level = cJSON_GetObjectItemCaseSensitive(body_.get(), "level");
  if (!cJSON_IsString(level)) {
    reply.send(error(422, "level: required, one of err, warning, notice, info, debug"));
    return;
  }
  auto parsed = log::parse_level(level->valuestring);
  if (!parsed) {
    reply.send(error(422, std::string("level: expected one of err, warning, notice, info, debug, got \"") +
                              level->valuestring + "\""));
    return;
  }
  const log::Level previous = log::level();
  log::set_level(*parsed);
  log::notice("log level set to " + std::string(log::level_name(*parsed)) +
                  " through the API (until the next reload)",
              {{"LOG_LEVEL", log::level_name(*parsed)}}, log::id::kLogLevelChanged);
  JsonPtr data(cJSON_CreateObject());
  net::json_add_string(data.get(), "level", log::level_name(*parsed));
  net::json_add_string(data.get(), "previous", log::level_name(previous));
  reply.send(success(std::move(data)));
}

}  // namespace osvi::daemon
