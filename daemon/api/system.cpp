// /v1/system: the log level (read, or change until the next reload), the last warnings and errors logged, and
// a configuration reload on request — admin tokens only, all of them.
#include <charconv>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "osvi/api/api.hpp"
#include "osvi/base/ids.hpp"
#include "osvi/base/log.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/text.hpp"
#include "requests.hpp"
#include "util.hpp"

namespace osvi::daemon {
namespace {

using net::HttpReply;
using net::HttpRequest;
using net::JsonPtr;

constexpr int64_t kErrorsDefault = 50;

// Log text may repeat what a client or a device sent: quoted when it is not clean UTF-8, so the JSON is
// valid.
std::string printable(const std::string& text) {
  return net::clean_text(text) ? text : net::quoted(text, log::kRecentMessageBytes);
}

// The 422 of a rejected reload: every reason the configuration gave (one per line) in `errors`, each with the
// "<file>:" heading line load_configuration puts first, so each entry names where and which key.
net::HttpResponse reload_rejected(const std::string& why) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= why.size()) {
    size_t end = why.find('\n', start);
    if (end == std::string::npos) end = why.size();
    if (end > start) lines.push_back(why.substr(start, end - start));
    start = end + 1;
  }
  std::string heading;
  if (lines.size() > 1 && lines.front().ends_with(':')) {
    heading = lines.front() + " ";
    lines.erase(lines.begin());
  }
  JsonPtr root(cJSON_CreateObject());
  cJSON_AddBoolToObject(root.get(), "success", false);
  cJSON* errors = cJSON_AddArrayToObject(root.get(), "errors");
  for (const std::string& l : lines) cJSON_AddItemToArray(errors, cJSON_CreateString((heading + l).c_str()));
  net::json_add_string(root.get(), "error", why);
  return json_response(422, root.get());
}

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

void Api::system_errors(HttpRequest& request, HttpReply reply) {
  if (!caller_->admin) {
    reply.send(error(403, "this API token may not read the system log"));
    return;
  }
  int64_t limit = kErrorsDefault;
  for (const auto& [name, value] : request.query) {
    if (name != "limit") {
      reply.send(error(422, net::quoted(name, 64) + ": unknown query parameter (limit)"));
      return;
    }
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), limit);
    if (ec != std::errc() || end != value.data() + value.size() || limit < 1 ||
        limit > static_cast<int64_t>(log::kRecentProblems)) {
      reply.send(error(422, "limit: must be an integer in 1.." + std::to_string(log::kRecentProblems)));
      return;
    }
  }
  const int offset = ctx_.config->site.utc_offset_minutes;
  JsonPtr data(cJSON_CreateArray());
  for (const log::LoggedProblem& p : log::recent_problems(static_cast<size_t>(limit))) {
    cJSON* e = cJSON_CreateObject();
    net::json_add_string(e, "at", format_local_iso(p.wall_ms, offset));
    net::json_add_string(e, "priority", log::level_name(p.level));
    net::json_add_string(e, "message", printable(p.message));
    net::json_add_string_or_null(
        e, "message_id", p.message_id.empty() ? std::nullopt : std::optional<std::string>(p.message_id));
    cJSON* fields = cJSON_AddObjectToObject(e, "fields");
    for (const auto& [name, value] : p.fields) net::json_add_string(fields, name.c_str(), printable(value));
    cJSON_AddItemToArray(data.get(), e);
  }
  reply.send(success(std::move(data)));
}

void Api::system_reload(HttpRequest&, HttpReply reply) {
  if (!caller_->admin) {
    reply.send(error(403, "this API token may not reload the configuration"));
    return;
  }
  // The body is an empty object: a member would be a setting this endpoint does not take.
  if (body_ && body_->child) {
    reply.send(error(422, net::quoted(body_->child->string ? body_->child->string : "", 64) +
                              ": unknown field (the body of a reload is {})"));
    return;
  }
  if (!ctx_.reload) {
    reply.send(error(503, "configuration reload is not available"));
    return;
  }
  // The reply waits (the connection suspended) for the reload, which runs on a later loop turn.
  auto held = std::make_shared<HttpReply>(std::move(reply));  // std::function wants a copyable callable
  ctx_.reload([this, held](const Status& s) {
    HttpReply& out = *held;
    if (!s) {
      out.send(reload_rejected(s.error().message));
      return;
    }
    JsonPtr data(cJSON_CreateObject());
    cJSON_AddBoolToObject(data.get(), "applied", true);
    net::json_add_string(data.get(), "config_hash", ctx_.config->source_hash);
    net::json_add_string(data.get(), "source", ctx_.config_source);
    net::json_add_string(data.get(), "loaded_at",
                         format_local_iso(ctx_.config_loaded_wall_ms, ctx_.config->site.utc_offset_minutes));
    cJSON_AddNumberToObject(data.get(), "agents", static_cast<double>(ctx_.config->agents.size()));
    out.send(success(std::move(data)));
  });
}

}  // namespace osvi::daemon
