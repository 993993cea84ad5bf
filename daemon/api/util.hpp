// Response helpers shared by the API handler files (api.cpp and one file per resource).
#pragma once

#include <algorithm>
#include <optional>
#include <string_view>

#include "osvi/api/api.hpp"
#include "osvi/net/http_server.hpp"
#include "osvi/net/json.hpp"

namespace osvi::daemon {

// Whether the token may use the agent: a token of all agents (no list), or one listing it.
inline bool token_allows(const ApiToken& token, std::string_view agent_uuid) {
  return token.agents.empty() ||
         std::find(token.agents.begin(), token.agents.end(), agent_uuid) != token.agents.end();
}

// A JSON body with the given status.
net::HttpResponse json_response(int status, const cJSON* body);
// {"success":true,"data":...} with status 200.
net::HttpResponse success(net::JsonPtr data);
// The call named by the path's {id} when it exists and the token may see it (a limited token sees only its
// agents' calls; any other looks absent); otherwise the 404 / 500 reply is sent (calls.cpp).
std::optional<CallRecord> find_call(Store& store, const ApiToken& caller, const net::HttpRequest& request,
                                    net::HttpReply& reply);

}  // namespace osvi::daemon
