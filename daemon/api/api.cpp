// OSVI API: token check, routing with 401/404/405/422, envelopes; the handlers live one file per resource.
#include "osvi/api/api.hpp"

#include <malloc.h>

#include "osvi/base/ids.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/text.hpp"
#include "requests.hpp"
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
using net::quoted;

bool wants_body(std::string_view method) {
  return method == "POST" || method == "PUT" || method == "PATCH";
}

// application/json or application/<anything>+json, with or without parameters (`; charset=utf-8`).
// A body without Content-Type is refused too: the spec has clients send application/json, and guessing
// would let a form post (curl -d's default) through as JSON.
bool json_content_type(std::optional<std::string_view> header) {
  if (!header) return false;
  std::string_view t = header->substr(0, header->find(';'));
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
  std::string lower(t);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (lower == "application/json") return true;
  return lower.starts_with("application/") && lower.size() > 17 && lower.ends_with("+json");
}

}  // namespace

HttpResponse Api::error(int status, std::string_view message) {
  JsonPtr root(cJSON_CreateObject());
  cJSON_AddBoolToObject(root.get(), "success", false);
  cJSON* errors = cJSON_AddArrayToObject(root.get(), "errors");
  std::string m(message);
  // Handlers quote what they repeat (net::quoted); this only keeps a slip from sending invalid JSON.
  if (!net::clean_text(m)) m = net::quoted(m, 512);
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
  router_.add("GET", "/v1/session", bind(&Api::session));
  router_.add("GET", "/v1/system/log_level", bind(&Api::get_log_level));
  router_.add("PUT", "/v1/system/log_level", bind(&Api::set_log_level));
  router_.add("POST", "/v1/system/log_level", bind(&Api::set_log_level));
  router_.add("GET", "/v1/system/errors", bind(&Api::system_errors));
  router_.add("POST", "/v1/system/reload", bind(&Api::system_reload));
  router_.add("POST", "/v1/lines/{id}/test", bind(&Api::test_line));
  router_.add("POST", "/v1/lines/{id}/loopback", bind(&Api::loopback_line));
  router_.add("POST", "/v1/call", bind(&Api::post_call));
  router_.add("POST", "/call", bind(&Api::post_call_legacy));
  router_.add("GET", "/v1/calls", bind(&Api::list_calls));
  router_.add("GET", "/v1/call/{id}", bind(&Api::get_call));
  router_.add("GET", "/v1/call/{id}/transcript", bind(&Api::get_transcript));
  router_.add("GET", "/v1/call/{id}/recording", bind(&Api::get_recording));
  router_.add("GET", "/v1/recordings/{file}", bind(&Api::serve_recording));
  router_.add("GET", "/v1/call/{id}/deliveries", bind(&Api::call_deliveries));
  router_.add("GET", "/v1/webhooks/dead", bind(&Api::dead_deliveries));
  router_.add("POST", "/v1/dnd_numbers", bind(&Api::add_dnd));
  router_.add("GET", "/v1/dnd_numbers", bind(&Api::list_dnd));
  router_.add("DELETE", "/v1/dnd_numbers", bind(&Api::remove_dnd));

  router_.add("POST", "/v1/campaigns", bind(&Api::create_campaign));
  router_.add("GET", "/v1/campaigns", bind(&Api::list_campaigns));
  router_.add("GET", "/v1/campaigns/{id}", bind(&Api::get_campaign));
  router_.add("PATCH", "/v1/campaigns/{id}", bind(&Api::patch_campaign));
  router_.add("POST", "/v1/campaigns/{id}/contacts", bind(&Api::post_contacts));
  router_.add("GET", "/v1/campaigns/{id}/contacts", bind(&Api::list_contacts));
  router_.add("POST", "/v1/campaigns/{id}/contacts.csv", bind(&Api::post_contacts_csv));
  router_.add("GET", "/v1/campaigns/{id}/status", bind(&Api::campaign_status));
  router_.add("POST", "/v1/campaigns/{id}/uploads/{upload_id}/enqueue", bind(&Api::enqueue_upload));
  router_.add("GET", "/v1/callbacks", bind(&Api::list_callbacks));
  router_.add("GET", "/v1/callbacks/{id}", bind(&Api::get_callback));
  router_.add("DELETE", "/v1/callbacks/{id}", bind(&Api::cancel_callback));

  router_.add("POST", "/v1/chat/session", bind(&Api::create_chat_session));
  router_.add("GET", "/v1/chat/session/active", bind(&Api::active_chat_session));
  router_.add("POST", "/v1/chat/inbound", bind(&Api::chat_inbound));
  router_.add("POST", "/v1/chat/session/{id}/support", bind(&Api::chat_support));
  router_.add("POST", "/v1/chat/session/{id}/inject_context", bind(&Api::chat_inject_context));
  router_.add("GET", "/v1/chat/sessions", bind(&Api::list_chat_sessions));
  router_.add("GET", "/v1/chat/session/{id}", bind(&Api::get_chat_session));
  router_.add("GET", "/v1/chat/session/{id}/messages", bind(&Api::chat_session_messages));
  router_.add("GET", "/v1/chat/events", bind(&Api::chat_inbox_events));
  router_.add("GET", "/v1/chat/session/{id}/events", bind(&Api::chat_session_events));
  router_.add("POST", "/chat_sessions", bind(&Api::legacy_chat_session));
  router_.add("POST", "/chat_messages/send_message", bind(&Api::legacy_send_message));
  router_.add("POST", "/chat_sessions/{id}/close_session", bind(&Api::legacy_close_session));
  router_.add("POST", "/chat_sessions/{id}/pause_session", bind(&Api::legacy_pause_session));
  router_.add("POST", "/v1/knowledge/documents", bind(&Api::upload_document));
  router_.add("GET", "/v1/knowledge/documents", bind(&Api::list_documents));
  router_.add("GET", "/v1/knowledge/documents/{id}", bind(&Api::get_document));
  router_.add("POST", "/v1/knowledge/documents/{id}/archive", bind(&Api::archive_document));
  router_.add("GET", "/v1/knowledge/search", bind(&Api::search_knowledge));
  router_.add("GET", "/v1/stats", bind(&Api::get_stats));
  router_.add("POST", "/v1/web_calls", bind(&Api::create_web_call));
  router_.add("GET", "/v1/web_calls/ws", bind(&Api::web_call_socket));
}

namespace {
constexpr size_t kTrimAfterBodyBytes = 256 * 1024;
}  // namespace

void Api::handle(HttpRequest& request, HttpReply reply) {
  // The server decodes %00 as a byte that is never UTF-8 (net::url_unescape), so one check covers both: such
  // a path names nothing, whatever route it would otherwise match.
  const bool path_ok = net::clean_text(request.path);
  // A signed recording link carries its own authorisation (HMAC + expiry), and a test call's WebSocket its
  // one-time ticket (browsers cannot send API-Token on a WebSocket), so these routes are dispatched before
  // the token check; serve_recording refuses anything unsigned, web_call_socket anything without a ticket.
  if (net::Router::Match rec = router_.match(request.method, request.path);
      path_ok && rec.kind == net::Router::Match::Kind::found &&
      (request.path.starts_with("/v1/recordings/") || request.path == "/v1/web_calls/ws")) {
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
  if (!path_ok || m.kind == net::Router::Match::Kind::not_found) {
    reply.send(error(404, "no such endpoint: " + quoted(request.method, 16) + " " + quoted(request.path)));
    return;
  }
  if (m.kind == net::Router::Match::Kind::method_not_allowed) {
    HttpResponse r = error(405, "method " + quoted(request.method, 16) + " not allowed on " +
                                    quoted(request.path) + " (allowed: " + m.allow + ")");
    r.headers.emplace_back("Allow", m.allow);
    reply.send(std::move(r));
    return;
  }
  const int invalid = validation_status(request.method, request.path);
  if (auto bad = check_query(request.query)) {
    reply.send(error(invalid, bad->message));
    return;
  }
  body_.reset();
  // The older docs' close_session / pause_session examples send no body at all.
  const bool bodiless_legacy =
      request.method == "POST" && request.body.empty() && request.path.starts_with("/chat_sessions/") &&
      (request.path.ends_with("/close_session") || request.path.ends_with("/pause_session"));
  if (wants_body(request.method) && !bodiless_legacy) {
    auto type = request.header("Content-Type");
    // Contacts may come as a CSV file too: that body goes, unparsed, to the CSV importer's handler.
    if (request.method == "POST" && request.path.starts_with("/v1/campaigns/") &&
        (request.path.ends_with("/contacts") || request.path.ends_with("/contacts.csv")) &&
        (!json_content_type(type) || request.path.ends_with("/contacts.csv"))) {
      request.params = std::move(m.params);
      post_contacts_csv(request, std::move(reply));
      return;
    }
    // A knowledge document may come as the file itself (text/plain, text/csv), its metadata in the query.
    if (knowledge_raw_upload(request)) {
      request.params = std::move(m.params);
      upload_document(request, std::move(reply));
      return;
    }
    if (!json_content_type(type)) {
      reply.send(error(415, type ? "Content-Type: expected application/json, got " + quoted(*type)
                                 : "Content-Type: required, application/json"));
      return;
    }
    net::JsonRefusal why;
    body_ = net::json_parse_request(request.body, &why);
    if (!body_) {
      if (why.too_large) {
        reply.send(error(413, "request body is too large: " + why.message));
        return;
      }
      reply.send(error(invalid, why.syntax ? "request body is not valid JSON: " + why.message
                                           : why.field + ": " + why.message));
      return;
    }
    if (!cJSON_IsObject(body_.get())) {
      reply.send(error(invalid, "request body must be a JSON object"));
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
