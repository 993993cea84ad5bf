// The DND resource (spec 3.9-3.11): POST, GET and DELETE /v1/dnd_numbers, through the campaigns room's
// DndService so the API, the fleet and opt-outs normalise and add the same way.
#include "osvi/campaigns/dnd.hpp"

#include <algorithm>
#include <cerrno>
#include <string>
#include <string_view>

#include "dnd_requests.hpp"
#include "osvi/api/api.hpp"
#include "osvi/base/ids.hpp"
#include "osvi/base/log.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/text.hpp"
#include "util.hpp"

namespace osvi::daemon {
namespace {

using net::HttpReply;
using net::HttpRequest;
using net::HttpResponse;
using net::JsonPtr;
using net::quoted;

HttpResponse forbidden(std::string_view agent) {
  return Api::error(403, "agent_uuid: this API token may not use agent " + quoted(agent));
}

// V1DndNumber: exactly the published fields.
JsonPtr entry_json(const DndEntry& e, int offset) {
  JsonPtr o(cJSON_CreateObject());
  cJSON_AddNumberToObject(o.get(), "id", static_cast<double>(e.id));
  net::json_add_string(o.get(), "agent_uuid", e.agent_uuid);
  net::json_add_string(o.get(), "phone", e.phone);
  net::json_add_string_or_null(o.get(), "reason", e.reason);
  net::json_add_string(o.get(), "created_at", format_local_iso(e.created_at_ms, offset));
  return o;
}

// A phone number the normaliser refused: the client's mistake (status), or the box's (503, not installed).
HttpResponse phone_refused(const Error& e, int status) {
  if (e.code == -ELIBACC) return Api::error(503, e.message);
  return Api::error(status, "phone: " + e.message);
}

}  // namespace

// 404 when the agent is not on the box (as GET /v1/calls' agent_uuid filter); the reply is sent unless true.
bool Api::dnd_agent_known(const std::string& agent_uuid, HttpReply& reply) {
  auto agents = ctx_.store->agents().all();
  if (!agents) {
    log::error("cannot list agents: " + agents.error().message);
    reply.send(error(500, "database error"));
    return false;
  }
  if (std::none_of(agents->begin(), agents->end(),
                   [&](const AgentRecord& a) { return a.agent_uuid == agent_uuid; })) {
    reply.send(error(404, "agent_uuid: no agent " + quoted(agent_uuid) + " on this box"));
    return false;
  }
  return true;
}

void Api::add_dnd(HttpRequest&, HttpReply reply) {
  // The token's limit is checked before the rest, as POST /v1/call does, so a limited token learns nothing
  // about other agents (not even whether they exist).
  const cJSON* agent = cJSON_GetObjectItemCaseSensitive(body_.get(), "agent_uuid");
  if (cJSON_IsString(agent) && agent->valuestring[0] != '\0' && !token_allows(*caller_, agent->valuestring)) {
    reply.send(forbidden(agent->valuestring));
    return;
  }
  DndAddRequest r;
  if (auto bad = parse_dnd_add_request(body_.get(), &r)) {
    reply.send(error(422, bad->message));
    return;
  }
  if (!dnd_agent_known(r.agent_uuid, reply)) return;
  DndService dnd(*ctx_.store, ctx_.calls && ctx_.calls->dials_extensions());
  auto added = dnd.add(r.agent_uuid, r.phone, ctx_.config->site.country, r.reason, "api");
  if (!added) {
    const Error& e = added.error();
    if (e.code == -EINVAL || e.code == -ELIBACC) {
      reply.send(phone_refused(e, 422));
    } else {
      log::error("cannot add a DND number: " + e.message, {{"AGENT_UUID", r.agent_uuid}});
      reply.send(error(500, "database error"));
    }
    return;
  }
  const int offset = ctx_.config->site.utc_offset_minutes;
  JsonPtr root(cJSON_CreateObject());
  cJSON_AddBoolToObject(root.get(), "success", true);
  cJSON_AddItemToObject(root.get(), "data", entry_json(added->entry, offset).release());
  if (added->created) {
    log::info("DND: " + added->entry.phone + " added to the list of " + r.agent_uuid + " (API)",
              {{"AGENT_UUID", r.agent_uuid}});
    reply.send(json_response(201, root.get()));
    return;
  }
  // Idempotent, and says so: the entry already there is the answer, unchanged (its reason is not replaced).
  cJSON_AddStringToObject(root.get(), "message", "Phone is already on the DND list");
  reply.send(json_response(200, root.get()));
}

void Api::list_dnd(HttpRequest& request, HttpReply reply) {
  if (auto agent = request.query_param("agent_uuid");
      agent && !agent->empty() && !token_allows(*caller_, *agent)) {
    reply.send(forbidden(*agent));
    return;
  }
  DndListQuery q;
  if (auto bad = parse_dnd_list_query(request.query, &q)) {
    reply.send(error(422, bad->message));
    return;
  }
  if (!dnd_agent_known(q.agent_uuid, reply)) return;
  int64_t total = 0;
  DndService dnd(*ctx_.store, ctx_.calls && ctx_.calls->dials_extensions());
  auto page = dnd.list(q.agent_uuid, q.search, q.page, q.per_page, &total);
  if (!page) {
    log::error("cannot list DND numbers: " + page.error().message, {{"AGENT_UUID", q.agent_uuid}});
    reply.send(error(500, "database error"));
    return;
  }
  const int offset = ctx_.config->site.utc_offset_minutes;
  JsonPtr root(cJSON_CreateObject());
  cJSON_AddBoolToObject(root.get(), "success", true);
  cJSON* data = cJSON_AddArrayToObject(root.get(), "data");
  for (const DndEntry& e : *page) cJSON_AddItemToArray(data, entry_json(e, offset).release());
  cJSON* meta = cJSON_AddObjectToObject(root.get(), "meta");
  cJSON_AddNumberToObject(meta, "current_page", static_cast<double>(q.page));
  cJSON_AddNumberToObject(meta, "total_pages", static_cast<double>((total + q.per_page - 1) / q.per_page));
  cJSON_AddNumberToObject(meta, "total_count", static_cast<double>(total));
  cJSON_AddNumberToObject(meta, "per_page", static_cast<double>(q.per_page));
  reply.send(json_response(200, root.get()));
}

void Api::remove_dnd(HttpRequest& request, HttpReply reply) {
  if (auto agent = request.query_param("agent_uuid");
      agent && !agent->empty() && !token_allows(*caller_, *agent)) {
    reply.send(forbidden(*agent));
    return;
  }
  DndDeleteQuery q;
  bool missing = false;
  if (auto bad = parse_dnd_delete_query(request.query, &q, &missing)) {
    if (!missing) {
      reply.send(error(400, bad->message));
      return;
    }
    // The published ErrorBadRequest shape (singular error, details null), with the box's errors[] beside it.
    JsonPtr root(cJSON_CreateObject());
    cJSON_AddBoolToObject(root.get(), "success", false);
    cJSON_AddStringToObject(root.get(), "error", bad->message.c_str());
    cJSON_AddNullToObject(root.get(), "details");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(root.get(), "errors"),
                         cJSON_CreateString(bad->message.c_str()));
    reply.send(json_response(400, root.get()));
    return;
  }
  if (!dnd_agent_known(q.agent_uuid, reply)) return;
  DndService dnd(*ctx_.store, ctx_.calls && ctx_.calls->dials_extensions());
  auto removed = dnd.remove(q.agent_uuid, q.phone, ctx_.config->site.country);
  if (!removed) {
    const Error& e = removed.error();
    if (e.code == -ENOENT) {
      reply.send(error(404, "phone: not on the DND list of this agent"));
    } else if (e.code == -EINVAL || e.code == -ELIBACC) {
      reply.send(phone_refused(e, 400));
    } else {
      log::error("cannot remove a DND number: " + e.message, {{"AGENT_UUID", q.agent_uuid}});
      reply.send(error(500, "database error"));
    }
    return;
  }
  log::info("DND: " + *removed + " removed from the list of " + q.agent_uuid + " (API)",
            {{"AGENT_UUID", q.agent_uuid}});
  JsonPtr root(cJSON_CreateObject());
  cJSON_AddBoolToObject(root.get(), "success", true);
  cJSON_AddStringToObject(root.get(), "message", "Phone removed from DND list");
  reply.send(json_response(200, root.get()));
}

}  // namespace osvi::daemon
