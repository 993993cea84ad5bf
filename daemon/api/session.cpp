// GET /v1/session: what the calling token may do, so a client (the web console) can hide what it may not.
#include "osvi/api/api.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/text.hpp"
#include "util.hpp"

namespace osvi::daemon {

void Api::session(net::HttpRequest& request, net::HttpReply reply) {
  // A parameter this endpoint would ignore is refused, as every list endpoint does with its unknown ones.
  if (!request.query.empty()) {
    reply.send(error(422, "query parameter " + net::quoted(request.query.front().first) +
                              ": unknown (GET /v1/session takes none)"));
    return;
  }
  net::JsonPtr data(cJSON_CreateObject());
  cJSON_AddBoolToObject(data.get(), "admin", caller_->admin);
  // null: every agent of the box; otherwise the agent_uuids the token is limited to.
  if (caller_->agents.empty()) {
    cJSON_AddNullToObject(data.get(), "agents");
  } else {
    cJSON* agents = cJSON_AddArrayToObject(data.get(), "agents");
    for (const std::string& a : caller_->agents) cJSON_AddItemToArray(agents, cJSON_CreateString(a.c_str()));
  }
  reply.send(success(std::move(data)));
}

}  // namespace osvi::daemon
