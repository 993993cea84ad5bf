// The legacy chat endpoints (spec 3.17): /chat_sessions, /chat_messages/send_message, close_session and
// pause_session, mapped onto the same ChatService as the v1 endpoints.
#include <memory>
#include <string>

#include "chat_util.hpp"
#include "osvi/api/api.hpp"
#include "osvi/base/ids.hpp"
#include "osvi/chat/chat_service.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/text.hpp"
#include "util.hpp"

namespace osvi::daemon {

using namespace chat_api;
using net::HttpReply;
using net::HttpRequest;
using net::JsonPtr;
using net::quoted;

namespace {

// The legacy started_at has no zone (spec 1): UTC, as the v1 timestamps, without the "Z".
std::string legacy_time(int64_t ms) {
  std::string t = format_utc_micro(ms);
  if (!t.empty() && t.back() == 'Z') t.pop_back();
  return t;
}

}  // namespace

// POST /chat_sessions {agent_uuid, metadata?}: no customer id in the legacy API, so each call is a session
// of its own customer "legacy:<session uuid>"; metadata becomes input_fields.
void Api::legacy_chat_session(HttpRequest&, HttpReply reply) {
  if (!chat_ready(reply)) return;
  const cJSON* body = body_.get();
  std::string agent;
  if (auto bad = agent_member(body, &agent)) return reply.send(error(422, bad->message));
  std::string input_fields = "{}";
  if (const cJSON* m = cJSON_GetObjectItemCaseSensitive(body, "metadata"); m && !cJSON_IsNull(m)) {
    if (!cJSON_IsObject(m)) return reply.send(error(422, "metadata: must be an object"));
    input_fields = net::json_print(m);
    if (input_fields.size() > kMaxChatInputFieldsBytes)
      return reply.send(error(422, "metadata: larger than " + std::to_string(kMaxChatInputFieldsBytes) +
                                       " bytes as compact JSON"));
  }
  if (!chat_agent_allowed(agent, reply)) return;
  auto agent_cfg = ctx_.chat->chat_agent(agent);
  if (!agent_cfg) return reply.send(error_response(agent_cfg.error()));
  const std::string customer = "legacy:" + new_uuid_v7(ctx_.clock->wall_ms());
  auto row = ctx_.chat->create_session(agent, customer, std::move(input_fields), {});
  if (!row) return reply.send(error_response(row.error()));
  auto welcome = ctx_.chat->welcome(*row);
  if (!welcome) return reply.send(error_response(welcome.error()));
  JsonPtr d(cJSON_CreateObject());
  net::json_add_string(d.get(), "session_id", row->id);
  net::json_add_string(d.get(), "agent_name", (*agent_cfg)->name);
  net::json_add_string(d.get(), "started_at", legacy_time(row->created_at_ms));
  net::json_add_string_or_null(d.get(), "welcome_message",
                               welcome->empty() ? std::nullopt : std::optional<std::string>(*welcome));
  reply.send(success(std::move(d)));
}

// POST /chat_messages/send_message {agent_uuid, chat_session_id, message}.
void Api::legacy_send_message(HttpRequest&, HttpReply reply) {
  if (!chat_ready(reply)) return;
  const cJSON* body = body_.get();
  ChatInbound in;
  std::optional<std::string> session, message;
  if (auto bad = agent_member(body, &in.agent_uuid)) return reply.send(error(422, bad->message));
  if (auto bad = text_member(body, "chat_session_id", true, 64, &session))
    return reply.send(error(422, bad->message));
  if (auto bad = text_member(body, "message", true, kMaxChatTextChars, &message))
    return reply.send(error(422, bad->message));
  if (!chat_agent_allowed(in.agent_uuid, reply)) return;
  auto row = find_chat_session(*session, reply);
  if (!row) return;
  if (row->agent_uuid != in.agent_uuid)
    return reply.send(
        error(404, "no chat session " + quoted(*session) + " of agent " + quoted(in.agent_uuid)));
  in.customer_id = row->customer_id;
  in.content = *message;
  in.session_id = row->id;
  auto held = std::make_shared<HttpReply>(std::move(reply));
  ctx_.chat->inbound(std::move(in), [held](Result<ChatTurn> r) {
    if (!r) return held->send(error_response(r.error()));
    JsonPtr d(cJSON_CreateObject());
    net::json_add_string(d.get(), "session_id", r->session.id);
    net::json_add_string_or_null(d.get(), "response", r->reply);
    cJSON* calls = cJSON_AddArrayToObject(d.get(), "tool_calls");
    cJSON* results = cJSON_AddArrayToObject(d.get(), "tool_results");
    for (const ChatTurn::ToolUse& t : r->tools) {
      cJSON* c = cJSON_CreateObject();
      net::json_add_string(c, "name", t.name);
      JsonPtr args = net::json_parse(t.arguments_json, nullptr);
      cJSON_AddItemToObject(c, "arguments", args ? args.release() : cJSON_CreateObject());
      cJSON_AddItemToArray(calls, c);
      cJSON* res = cJSON_CreateObject();
      net::json_add_string(res, "name", t.name);
      net::json_add_string(res, "result", t.result);
      cJSON_AddItemToArray(results, res);
    }
    net::json_add_string_or_null(d.get(), "current_state", r->session.current_state);
    net::json_add_string_or_null(d.get(), "error", r->error);
    held->send(success(std::move(d)));
  });
}

namespace {
// The legacy lifecycle endpoints take agent_uuid (newer docs) or no body at all (older curl examples).
std::optional<Invalid> optional_agent(const cJSON* body, std::optional<std::string>* agent) {
  if (body == nullptr) return std::nullopt;
  return text_member(body, "agent_uuid", false, kMaxAgentUuidChars, agent);
}
}  // namespace

// POST /chat_sessions/{id}/close_session: the support rail's close; answers with the summary.
void Api::legacy_close_session(HttpRequest& request, HttpReply reply) {
  if (!chat_ready(reply)) return;
  const std::string id(request.param("id").value_or(""));
  std::optional<std::string> agent;
  if (auto bad = optional_agent(body_.get(), &agent)) return reply.send(error(422, bad->message));
  auto row = find_chat_session(id, reply);
  if (!row) return;
  if (agent && *agent != row->agent_uuid)
    return reply.send(error(404, "no chat session " + quoted(id) + " of agent " + quoted(*agent)));
  auto held = std::make_shared<HttpReply>(std::move(reply));
  ChatSupport sup;
  sup.command = "close";
  ctx_.chat->support(id, std::move(sup), [held, id](Result<ChatSupportResult> r) {
    if (!r) return held->send(error_response(r.error()));
    JsonPtr d(cJSON_CreateObject());
    net::json_add_string(d.get(), "session_id", id);
    net::json_add_string_or_null(d.get(), "summary", r->summary);
    net::json_add_string_or_null(d.get(), "summary_error", r->summary_error);
    held->send(success(std::move(d)));
  });
}

// POST /chat_sessions/{id}/pause_session: the session goes dormant; the next message resumes it.
void Api::legacy_pause_session(HttpRequest& request, HttpReply reply) {
  if (!chat_ready(reply)) return;
  const std::string id(request.param("id").value_or(""));
  std::optional<std::string> agent;
  if (auto bad = optional_agent(body_.get(), &agent)) return reply.send(error(422, bad->message));
  auto row = find_chat_session(id, reply);
  if (!row) return;
  if (agent && *agent != row->agent_uuid)
    return reply.send(error(404, "no chat session " + quoted(id) + " of agent " + quoted(*agent)));
  auto paused = ctx_.chat->pause(id);
  if (!paused) return reply.send(error_response(paused.error()));
  JsonPtr d(cJSON_CreateObject());
  cJSON_AddBoolToObject(d.get(), "success", true);
  net::json_add_string(d.get(), "session_id", id);
  net::json_add_string(d.get(), "message", "Session paused");
  reply.send(success(std::move(d)));
}

}  // namespace osvi::daemon
