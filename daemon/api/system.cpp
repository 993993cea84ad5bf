// /v1/system/log_level: read the log level, or change it until the next reload (admin tokens only, both).
#include <string>

#include "osvi/api/api.hpp"
#include "osvi/base/log.hpp"
#include "osvi/net/json.hpp"
#include "requests.hpp"
#include "util.hpp"

namespace osvi::daemon {
namespace {

using net::HttpReply;
using net::HttpRequest;
using net::JsonPtr;

}  // namespace

void Api::get_log_level(HttpRequest&, HttpReply reply) {
  // A system setting, like the PUT: a token limited to some agents (never admin) learns nothing of the box.
  if (!caller_->admin) {
    reply.send(error(403, "this API token may not read system settings"));
    return;
  }
  JsonPtr data(cJSON_CreateObject());
  net::json_add_string(data.get(), "level", log::level_name(log::level()));
  reply.send(success(std::move(data)));
}

void Api::set_log_level(HttpRequest&, HttpReply reply) {
  if (!caller_->admin) {
    reply.send(error(403, "this API token may not change system settings"));
    return;
  }
  std::string level;
  if (auto bad = parse_log_level_request(body_.get(), &level)) {
    reply.send(error(422, bad->message));
    return;
  }
  auto parsed = log::parse_level(level);
  if (!parsed) {
    reply.send(error(422, "level: not a log level"));
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
