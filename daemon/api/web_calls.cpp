// Test calls from the browser (extension): POST /v1/web_calls issues a one-time ticket with the API token,
// GET /v1/web_calls/ws?ticket=… upgrades to the call's WebSocket (a browser cannot send API-Token there).
#include <strings.h>

#include "osvi/base/ids.hpp"
#include "osvi/calls/web_call.hpp"
#include "osvi/net/text.hpp"
#include "osvi/net/websocket.hpp"
#include "util.hpp"

namespace osvi::daemon {

using net::HttpReply;
using net::HttpRequest;
using net::HttpResponse;
using net::quoted;

namespace {

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

void Api::create_web_call(HttpRequest&, HttpReply reply) {
  // Strict body: {"agent_uuid": "..."} and nothing else.
  for (const cJSON* item = body_->child; item; item = item->next) {
    if (std::string_view(item->string) != "agent_uuid") {
      reply.send(
          error(422, std::string(quoted(item->string)) + ": unknown field (expected only agent_uuid)"));
      return;
    }
  }
  const cJSON* agent = cJSON_GetObjectItemCaseSensitive(body_.get(), "agent_uuid");
  if (!cJSON_IsString(agent) || agent->valuestring[0] == '\0') {
    reply.send(error(422, "agent_uuid: required, a non-empty string"));
    return;
  }
  const std::string uuid = agent->valuestring;
  if (!token_allows(*caller_, uuid)) {
    reply.send(error(403, "agent_uuid: this API token may not use agent " + quoted(uuid)));
    return;
  }
  bool known = false;
  for (const AgentConfig& a : ctx_.config->agents) known = known || a.agent_uuid == uuid;
  if (!known) {
    reply.send(error(404, "agent_uuid: no agent " + quoted(uuid)));
    return;
  }
  if (!ctx_.web_calls) {
    reply.send(error(503, "calls engine not available"));
    return;
  }
  auto t = ctx_.web_calls->issue(uuid);
  if (!t) {
    if (t.error().code == -ENOENT) {
      reply.send(error(409, "agent_uuid: " + quoted(uuid) + " is not an active voice agent"));
      return;
    }
    HttpResponse r = error(503, t.error().message);
    r.headers.emplace_back("Retry-After", "30");
    reply.send(std::move(r));
    return;
  }
  net::JsonPtr data(cJSON_CreateObject());
  net::json_add_string(data.get(), "ticket", t->ticket);
  net::json_add_string(data.get(), "ws_path", t->ws_path);
  net::json_add_string(data.get(), "expires_at",
                       format_local_iso(t->expires_at_ms, ctx_.config->site.utc_offset_minutes));
  reply.send(success(std::move(data)));
}

void Api::web_call_socket(HttpRequest& request, HttpReply reply) {
  auto accept = net::ws::check_handshake(request);
  if (!accept) {
    // -ELIBACC: libcrypto (opened at the first handshake) is missing; the box, not the client, is at fault.
    const int code = accept.error().code;
    HttpResponse r = error(code == -EPROTONOSUPPORT ? 426
                           : code == -ELIBACC       ? 503
                                                    : 400,
                           accept.error().message);
    if (accept.error().code == -EPROTONOSUPPORT) r.headers.emplace_back("Sec-WebSocket-Version", "13");
    reply.send(std::move(r));
    return;
  }
  // Cross-site WebSocket hijacking: a browser always sends Origin, and a page of another site must not open
  // a call with a ticket it obtained somehow. The origin must be this listener as the browser addressed it.
  // Non-browser clients send none and are judged by the ticket alone.
  if (auto origin = request.header("Origin")) {
    const auto host = request.header("Host");
    const bool tls = !ctx_.config->api.tls_cert_pem.empty();
    const std::string expected = std::string(tls ? "https://" : "http://") + std::string(host.value_or(""));
    if (!host || !iequal(*origin, expected)) {
      reply.send(
          error(403, "Origin " + quoted(*origin) + " is not this box's console (" + quoted(expected) + ")"));
      return;
    }
  }
  const auto ticket = request.query_param("ticket");
  if (!ticket || ticket->empty()) {
    reply.send(error(401, "ticket: required (POST /v1/web_calls issues one)"));
    return;
  }
  for (const auto& [k, v] : request.query) {
    if (k != "ticket") {
      reply.send(error(422, quoted(k) + ": unknown query parameter"));
      return;
    }
  }
  if (!ctx_.web_calls) {
    reply.send(error(503, "calls engine not available"));
    return;
  }
  auto agent = ctx_.web_calls->redeem(*ticket);
  if (!agent) {
    if (agent.error().code == -EBUSY) {
      HttpResponse r = error(503, agent.error().message);
      r.headers.emplace_back("Retry-After", "30");
      reply.send(std::move(r));
      return;
    }
    reply.send(error(401, agent.error().message));
    return;
  }
  HttpResponse head;
  head.status = 101;
  head.headers = {{"Upgrade", "websocket"}, {"Sec-WebSocket-Accept", *accept}};
  // The WebCalls is looked up when the socket arrives: a reload or a stop in between may have replaced it.
  reply.upgrade(std::move(head), [ctx = &ctx_, uuid = std::move(*agent)](net::UpgradedSocket socket) {
    if (ctx->web_calls) ctx->web_calls->start(uuid, std::move(socket));
  });
}

}  // namespace osvi::daemon
