// GET /v1/active_agents: the active voice agents a token may see.
#include <algorithm>

#include "osvi/api/api.hpp"
#include "osvi/base/log.hpp"
#include "osvi/net/json.hpp"
#include "util.hpp"

namespace osvi::daemon {
namespace {

using net::HttpReply;
using net::HttpRequest;
using net::JsonPtr;

}  // namespace

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

}  // namespace osvi::daemon
