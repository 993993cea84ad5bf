// OSVI API: token check, routing with 401/404/405/422, envelopes; the handlers live one file per resource.
#include "osvi/api/api.hpp"

#include <malloc.h>

#include "osvi/base/ids.hpp"
#include "osvi/net/json.hpp"
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

int Api::validation_status(std::string_view method, std::string_view path) {
  while (path.size() > 1 && path.ends_with('/')) path.remove_suffix(1);
  const bool documented_400 = (method == "POST" && (path == "/v1/call" || path == "/call")) ||
                              (method == "DELETE" && path == "/v1/dnd_numbers");
  return documented_400 ? 400 : 422;
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
  router_.add("POST", "/v1/call", bind(&Api::post_call));
  router_.add("POST", "/call", bind(&Api::post_call_legacy));
  router_.add("GET", "/v1/calls", bind(&Api::list_calls));
  router_.add("GET", "/v1/call/{id}", bind(&Api::get_call));
  router_.add("GET", "/v1/call/{id}/transcript", bind(&Api::get_transcript));
  router_.add("GET", "/v1/call/{id}/recording", bind(&Api::get_recording));
  router_.add("GET", "/v1/recordings/{file}", bind(&Api::serve_recording));
}

namespace {
constexpr size_t kTrimAfterBodyBytes = 256 * 1024;
}  // namespace

void Api::handle(HttpRequest& request, HttpReply reply) {
  // A signed recording link carries its own authorisation (HMAC + expiry), so this one route is dispatched
  // before the token check; serve_recording refuses anything unsigned.
  if (net::Router::Match rec = router_.match(request.method, request.path);
      rec.kind == net::Router::Match::Kind::found && request.path.starts_with("/v1/recordings/")) {
    caller_ = nullptr;
    request.params = std::move(rec.params);
    (*rec.handler)(request, std::move(reply));
    return;
  }
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
  // Every handler is done with the body when it returns: the parsed tree (tens of MB of small nodes for a
  // 4 MiB body of many members) must not live on until the next request.
  body_.reset();
  // Such a tree leaves the heap full of free holes that glibc keeps; after a large body they go back to
  // the system (bench/api_soak_bench: RSS stays flat instead of ratcheting up with every big request).
  if (request.body.size() >= kTrimAfterBodyBytes) malloc_trim(0);
}

}  // namespace osvi::daemon
