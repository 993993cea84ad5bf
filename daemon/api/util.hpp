// Response helpers shared by the API handler files (api.cpp and one file per resource).
#pragma once

#include "osvi/net/http_server.hpp"
#include "osvi/net/json.hpp"

namespace osvi::daemon {

// A JSON body with the given status.
net::HttpResponse json_response(int status, const cJSON* body);
// {"success":true,"data":...} with status 200.
net::HttpResponse success(net::JsonPtr data);

}  // namespace osvi::daemon
