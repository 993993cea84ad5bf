// The chat endpoints (spec 3.12-3.16) and the chat extensions (docs/api.md "Chat"): sessions, customer
// messages answered when the model finishes (the connection is suspended meanwhile), operator commands.
#include <algorithm>
#include <cerrno>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "chat_util.hpp"
#include "osvi/api/api.hpp"
#include "osvi/api/chat_events.hpp"
#include "osvi/api/event_hub.hpp"
#include "osvi/base/ids.hpp"
#include "osvi/base/log.hpp"
#include "osvi/chat/chat_service.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/text.hpp"
#include "requests.hpp"
#include "util.hpp"

namespace osvi::daemon {

using net::HttpReply;
using net::HttpRequest;
using net::HttpResponse;
using net::JsonPtr;
using net::quoted;

namespace chat_api {

HttpResponse error_response(const Error& e) {
  switch (e.code) {
    case -ENOENT:
      return Api::error(404, e.message);
    case -EINVAL:
    case -EPERM:
      return Api::error(422, e.message);
    case -EBUSY: {
      HttpResponse r = Api::error(429, e.message);
      r.headers.emplace_back("Retry-After", "1");
      return r;
    }
    default:
      log::error("chat: " + e.message);
      return Api::error(500, "database error");
  }
}

std::optional<Invalid> text_member(const cJSON* body, const char* name, bool required, size_t max_chars,
                                   std::optional<std::string>* out) {
  const cJSON* v = cJSON_GetObjectItemCaseSensitive(body, name);
  if (v == nullptr || cJSON_IsNull(v)) {
    if (required) return Invalid{std::string(name) + ": required"};
    return std::nullopt;
  }
  if (!cJSON_IsString(v)) return Invalid{std::string(name) + ": must be a string"};
  const std::string_view s = v->valuestring;
  if (required && call_text_empty(s)) return Invalid{std::string(name) + ": must not be empty"};
  if (net::utf8_length(s) > max_chars)
    return Invalid{std::string(name) + ": longer than " + std::to_string(max_chars) + " characters"};
  *out = std::string(s);
  return std::nullopt;
}

bool call_text_empty(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

std::optional<Invalid> agent_member(const cJSON* body, std::string* agent_uuid) {
  std::optional<std::string> a;
  if (auto bad = text_member(body, "agent_uuid", true, kMaxAgentUuidChars, &a)) return bad;
  *agent_uuid = *a;
  return std::nullopt;
}

}  // namespace chat_api

using namespace chat_api;

namespace {

// GET /v1/chat/sessions' query.
constexpr std::string_view kListParams[] = {"agent_uuid",     "status", "mode",    "customer_id",
                                            "help_requested", "page",   "per_page"};

void add_meta(cJSON* root, int64_t page, int64_t per_page, int64_t total) {
  cJSON* meta = cJSON_AddObjectToObject(root, "meta");
  cJSON_AddNumberToObject(meta, "current_page", static_cast<double>(page));
  cJSON_AddNumberToObject(meta, "total_pages", static_cast<double>((total + per_page - 1) / per_page));
  cJSON_AddNumberToObject(meta, "total_count", static_cast<double>(total));
  cJSON_AddNumberToObject(meta, "per_page", static_cast<double>(per_page));
}

std::optional<Invalid> page_params(const std::string& name, const std::string& value, int64_t* page,
                                   int64_t* per_page) {
  if (name == "page") {
    auto n = parse_positive(value);
    if (!n) return Invalid{"page: must be a positive integer"};
    *page = *n;
  } else {
    auto n = parse_positive(value);
    if (!n || *n > kMaxPerPage)
      return Invalid{"per_page: must be an integer in 1.." + std::to_string(kMaxPerPage)};
    *per_page = *n;
  }
  return std::nullopt;
}

}  // namespace

bool Api::chat_ready(HttpReply& reply) {
  if (ctx_.chat) return true;
  reply.send(error(503, "chat is not available on this box right now"));
  return false;
}

// A session the token may see, by the path's {id} (or `id`); otherwise the 404 / 500 reply is sent.
std::optional<ChatSessionRow> Api::find_chat_session(std::string_view id, HttpReply& reply) {
  auto row = ctx_.store->chat().get(id);
  if (!row) {
    reply.send(error_response(row.error()));
    return std::nullopt;
  }
  if (!*row || !token_allows(*caller_, (*row)->agent_uuid)) {
    reply.send(error(404, "no chat session " + quoted(id) + " on this box"));
    return std::nullopt;
  }
  return **row;
}

bool Api::chat_agent_allowed(const std::string& agent_uuid, HttpReply& reply) {
  if (token_allows(*caller_, agent_uuid)) return true;
  reply.send(error(403, "agent_uuid: this API token may not use agent " + quoted(agent_uuid)));
  return false;
}

void Api::create_chat_session(HttpRequest&, HttpReply reply) {
  if (!chat_ready(reply)) return;
  const cJSON* body = body_.get();
  std::string agent;
  std::optional<std::string> customer;
  if (auto bad = agent_member(body, &agent)) return reply.send(error(422, bad->message));
  if (auto bad = text_member(body, "customer_id", true, kMaxChatCustomerIdChars, &customer))
    return reply.send(error(422, bad->message));
  std::string input_fields = "{}";
  if (const cJSON* f = cJSON_GetObjectItemCaseSensitive(body, "input_fields"); f && !cJSON_IsNull(f)) {
    if (!cJSON_IsObject(f)) return reply.send(error(422, "input_fields: must be an object"));
    input_fields = net::json_print(f);
    if (input_fields.size() > kMaxChatInputFieldsBytes)
      return reply.send(error(422, "input_fields: larger than " + std::to_string(kMaxChatInputFieldsBytes) +
                                       " bytes as compact JSON"));
  }
  std::vector<std::string> context;
  if (const cJSON* c = cJSON_GetObjectItemCaseSensitive(body, "context"); c && !cJSON_IsNull(c)) {
    if (!cJSON_IsArray(c)) return reply.send(error(422, "context: must be an array of strings"));
    if (cJSON_GetArraySize(c) > static_cast<int>(kMaxChatContextItems))
      return reply.send(
          error(422, "context: more than " + std::to_string(kMaxChatContextItems) + " entries"));
    const cJSON* item = nullptr;
    cJSON_ArrayForEach(item, c) {
      if (!cJSON_IsString(item)) return reply.send(error(422, "context: must be an array of strings"));
      if (net::utf8_length(item->valuestring) > kMaxChatTextChars)
        return reply.send(error(
            422, "context: an entry is longer than " + std::to_string(kMaxChatTextChars) + " characters"));
      context.emplace_back(item->valuestring);
    }
  }
  if (!chat_agent_allowed(agent, reply)) return;
  auto row = ctx_.chat->create_session(agent, *customer, std::move(input_fields), context);
  if (!row) return reply.send(error_response(row.error()));
  reply.send(success(ctx_.chat->session_json(*row)));
}

void Api::active_chat_session(HttpRequest& request, HttpReply reply) {
  if (!chat_ready(reply)) return;
  std::optional<std::string> customer, agent;
  for (const auto& [name, value] : request.query) {
    if (name == "customer_id") {
      customer = value;
    } else if (name == "agent_uuid") {
      agent = value;
    } else {
      return reply.send(
          error(422, "query parameter " + quoted(name) + ": unknown (expected customer_id, agent_uuid)"));
    }
  }
  if (!customer || customer->empty()) return reply.send(error(422, "customer_id: required"));
  if (agent && !agent->empty()) {
    if (!chat_agent_allowed(*agent, reply)) return;
    auto row = ctx_.chat->open_session(*customer, *agent);
    if (!row) return reply.send(error_response(row.error()));
    if (!*row || (*row)->status != "active")
      return reply.send(error(
          404, "no active chat session of customer " + quoted(*customer) + " with agent " + quoted(*agent)));
    return reply.send(success(ctx_.chat->session_json(**row)));
  }
  auto rows = ctx_.store->chat().open_for_customer(*customer);
  if (!rows) return reply.send(error_response(rows.error()));
  JsonPtr data(cJSON_CreateObject());
  for (const ChatSessionRow& r : *rows) {
    if (r.status != "active" || !token_allows(*caller_, r.agent_uuid)) continue;
    cJSON_AddItemToObject(data.get(), r.agent_uuid.c_str(), ctx_.chat->session_json(r).release());
  }
  reply.send(success(std::move(data)));
}

void Api::chat_inbound(HttpRequest&, HttpReply reply) {
  if (!chat_ready(reply)) return;
  const cJSON* body = body_.get();
  ChatInbound in;
  std::optional<std::string> customer, content, session;
  if (auto bad = agent_member(body, &in.agent_uuid)) return reply.send(error(422, bad->message));
  if (auto bad = text_member(body, "customer_id", true, kMaxChatCustomerIdChars, &customer))
    return reply.send(error(422, bad->message));
  if (auto bad = text_member(body, "content", true, kMaxChatTextChars, &content))
    return reply.send(error(422, bad->message));
  if (auto bad = text_member(body, "session_id", false, 64, &session))
    return reply.send(error(422, bad->message));
  if (session && !is_uuid(*session)) return reply.send(error(422, "session_id: must be a UUID"));
  if (!chat_agent_allowed(in.agent_uuid, reply)) return;
  in.customer_id = *customer;
  in.content = *content;
  in.session_id = session;
  // The reply waits for the model; the connection is suspended meanwhile and the loop goes on. A client that
  // left is noticed by HttpReply (send is a no-op then).
  auto held = std::make_shared<HttpReply>(std::move(reply));
  ctx_.chat->inbound(std::move(in), [held](Result<ChatTurn> r) {
    if (!r) return held->send(error_response(r.error()));
    JsonPtr d(cJSON_CreateObject());
    net::json_add_string(d.get(), "session_id", r->session.id);
    net::json_add_string_or_null(d.get(), "reply", r->reply);
    net::json_add_string(d.get(), "state", r->session.current_state.value_or("default"));
    net::json_add_string(d.get(), "mode", r->session.mode);
    cJSON_AddBoolToObject(d.get(), "help_requested", r->session.help_requested);
    net::json_add_string_or_null(d.get(), "error", r->error);
    held->send(success(std::move(d)));
  });
}

void Api::chat_support(HttpRequest& request, HttpReply reply) {
  if (!chat_ready(reply)) return;
  const std::string id(request.param("id").value_or(""));
  auto row = find_chat_session(id, reply);
  if (!row) return;
  const cJSON* body = body_.get();
  ChatSupport sup;
  if (auto bad = text_member(body, "command", false, 16, &sup.command))
    return reply.send(error(422, bad->message));
  if (sup.command && sup.command->empty()) sup.command.reset();
  if (sup.command) {
    constexpr std::string_view kCommands[] = {"takeover", "tell", "whisper", "end", "close"};
    if (std::find(std::begin(kCommands), std::end(kCommands), *sup.command) == std::end(kCommands))
      return reply.send(error(
          422, "command: " + quoted(*sup.command) + " is not one of takeover, tell, whisper, end, close"));
  }
  if (auto bad = text_member(body, "message", false, kMaxChatTextChars, &sup.message))
    return reply.send(error(422, bad->message));
  std::optional<std::string> op, human;
  if (auto bad = text_member(body, "operator", false, kMaxChatOperatorChars, &op))
    return reply.send(error(422, bad->message));
  if (auto bad = text_member(body, "active_human", false, kMaxChatOperatorChars, &human))
    return reply.send(error(422, bad->message));
  if (op && human && *op != *human)
    return reply.send(error(422, "operator: differs from active_human (give one of them)"));
  sup.operator_id = op ? op : human;
  if (sup.operator_id && sup.operator_id->empty()) sup.operator_id.reset();
  auto held = std::make_shared<HttpReply>(std::move(reply));
  const std::optional<std::string> command = sup.command;
  ctx_.chat->support(id, std::move(sup), [held, command, id](Result<ChatSupportResult> r) {
    if (!r) return held->send(error_response(r.error()));
    JsonPtr d(cJSON_CreateObject());
    net::json_add_string(d.get(), "state", "ok");
    net::json_add_string(d.get(), "session_id", id);
    net::json_add_string_or_null(d.get(), "command", command);
    if (command && *command == "tell") {
      net::json_add_string_or_null(d.get(), "reply", r->reply);
      net::json_add_string_or_null(d.get(), "error", r->error);
    }
    if (command && *command == "takeover")
      net::json_add_string_or_null(d.get(), "active_human", r->session.active_human);
    if (command && *command == "close") {
      net::json_add_string_or_null(d.get(), "summary", r->summary);
      net::json_add_string_or_null(d.get(), "summary_error", r->summary_error);
    }
    net::json_add_string(d.get(), "mode", r->session.mode);
    net::json_add_string(d.get(), "status", r->session.status);
    held->send(success(std::move(d)));
  });
}

void Api::chat_inject_context(HttpRequest& request, HttpReply reply) {
  if (!chat_ready(reply)) return;
  const std::string id(request.param("id").value_or(""));
  auto row = find_chat_session(id, reply);
  if (!row) return;
  std::optional<std::string> text;
  if (auto bad = text_member(body_.get(), "context", true, kMaxChatTextChars, &text))
    return reply.send(error(422, bad->message));
  auto updated = ctx_.chat->inject_context(id, *text);
  if (!updated) return reply.send(error_response(updated.error()));
  JsonPtr d(cJSON_CreateObject());
  net::json_add_string(d.get(), "session_id", id);
  JsonPtr ctx = net::json_parse(updated->context_json, nullptr);
  cJSON_AddItemToObject(d.get(), "context", ctx ? ctx.release() : cJSON_CreateArray());
  reply.send(success(std::move(d)));
}

// ---- extensions ----

void Api::list_chat_sessions(HttpRequest& request, HttpReply reply) {
  if (!chat_ready(reply)) return;
  ChatRepo::Filter f;
  std::optional<std::string> agent;
  std::vector<std::string_view> seen;
  for (const auto& [name, value] : request.query) {
    if (std::find(std::begin(kListParams), std::end(kListParams), name) == std::end(kListParams))
      return reply.send(
          error(422, "query parameter " + quoted(name) +
                         ": unknown (expected agent_uuid, status, mode, customer_id, help_requested, "
                         "page, per_page)"));
    if (std::find(seen.begin(), seen.end(), name) != seen.end())
      return reply.send(error(422, name + ": given more than once"));
    seen.push_back(name);
    if (value.empty()) continue;
    if (name == "agent_uuid") {
      agent = value;
    } else if (name == "status") {
      if (value != "active" && value != "dormant" && value != "closed")
        return reply.send(error(422, "status: " + quoted(value) + " is not one of active, dormant, closed"));
      f.status = value;
    } else if (name == "mode") {
      if (value != "ai" && value != "support")
        return reply.send(error(422, "mode: " + quoted(value) + " is not one of ai, support"));
      f.mode = value;
    } else if (name == "customer_id") {
      f.customer_id = value;
    } else if (name == "help_requested") {
      if (value != "true" && value != "false")
        return reply.send(error(422, "help_requested: must be true or false"));
      f.help_requested = value == "true";
    } else if (auto bad = page_params(name, value, &f.page, &f.per_page)) {
      return reply.send(error(422, bad->message));
    }
  }
  if (agent) {
    if (!chat_agent_allowed(*agent, reply)) return;
    f.agent_uuids = {*agent};
  } else {
    f.agent_uuids = caller_->agents;
  }
  auto page = ctx_.store->chat().list(f);
  if (!page) return reply.send(error_response(page.error()));
  JsonPtr root(cJSON_CreateObject());
  cJSON_AddBoolToObject(root.get(), "success", true);
  cJSON* data = cJSON_AddArrayToObject(root.get(), "data");
  for (const ChatSessionRow& r : page->rows) {
    JsonPtr s = ctx_.chat->session_json(r);
    net::json_add_string(s.get(), "agent_uuid", r.agent_uuid);
    net::json_add_string(s.get(), "last_message_at", format_utc_micro(r.last_message_at_ms));
    cJSON_AddItemToArray(data, s.release());
  }
  add_meta(root.get(), f.page, f.per_page, page->total_count);
  cJSON* stats = cJSON_AddObjectToObject(cJSON_GetObjectItemCaseSensitive(root.get(), "meta"), "stats");
  cJSON_AddNumberToObject(stats, "total", static_cast<double>(page->stats.total));
  cJSON_AddNumberToObject(stats, "active", static_cast<double>(page->stats.active));
  cJSON_AddNumberToObject(stats, "dormant", static_cast<double>(page->stats.dormant));
  cJSON_AddNumberToObject(stats, "closed", static_cast<double>(page->stats.closed));
  cJSON_AddNumberToObject(stats, "help_requested", static_cast<double>(page->stats.help_requested));
  reply.send(json_response(200, root.get()));
}

void Api::get_chat_session(HttpRequest& request, HttpReply reply) {
  if (!chat_ready(reply)) return;
  const std::string id(request.param("id").value_or(""));
  auto row = find_chat_session(id, reply);
  if (!row) return;
  JsonPtr s = ctx_.chat->session_json(*row);
  net::json_add_string(s.get(), "agent_uuid", row->agent_uuid);
  net::json_add_string(s.get(), "last_message_at", format_utc_micro(row->last_message_at_ms));
  net::json_add_string_or_null(
      s.get(), "closed_at",
      row->closed_at_ms ? std::optional<std::string>(format_utc_micro(*row->closed_at_ms)) : std::nullopt);
  net::json_add_string_or_null(s.get(), "summary", row->summary);
  net::json_add_string_or_null(s.get(), "summary_error", row->summary_error);
  reply.send(success(std::move(s)));
}

void Api::chat_session_messages(HttpRequest& request, HttpReply reply) {
  if (!chat_ready(reply)) return;
  const std::string id(request.param("id").value_or(""));
  int64_t page = 1, per_page = 25;
  for (const auto& [name, value] : request.query) {
    if (name != "page" && name != "per_page")
      return reply.send(
          error(422, "query parameter " + quoted(name) + ": unknown (expected page, per_page)"));
    if (auto bad = page_params(name, value, &page, &per_page)) return reply.send(error(422, bad->message));
  }
  auto row = find_chat_session(id, reply);
  if (!row) return;
  auto msgs = ctx_.store->chat().messages(id, page, per_page);
  if (!msgs) return reply.send(error_response(msgs.error()));
  JsonPtr root(cJSON_CreateObject());
  cJSON_AddBoolToObject(root.get(), "success", true);
  cJSON* data = cJSON_AddArrayToObject(root.get(), "data");
  for (const ChatMessageRow& m : msgs->rows)
    cJSON_AddItemToArray(data, ChatService::message_json(m).release());
  add_meta(root.get(), page, per_page, msgs->total_count);
  reply.send(json_response(200, root.get()));
}

std::string chat_session_topic(std::string_view session_id) {
  return "chat:" + std::string(session_id);
}

void publish_chat_event(EventHub& hub, const ChatEvent& event) {
  hub.publish({std::string(kChatInboxTopic), chat_session_topic(event.session_id)}, event.type,
              event.data.get(), event.agent_uuid);
}

// GET /v1/chat/events: every session's events (the inbox), optionally of one agent; the token's agent limit
// applies as everywhere.
void Api::chat_inbox_events(HttpRequest& request, HttpReply reply) {
  if (!chat_ready(reply)) return;
  if (!ctx_.events) return reply.send(error(503, "event streams are not available on this box right now"));
  std::optional<std::string> agent;
  for (const auto& [name, value] : request.query) {
    if (name != "agent_uuid")
      return reply.send(error(422, "query parameter " + quoted(name) + ": unknown (expected agent_uuid)"));
    agent = value;
  }
  auto agents = EventHub::agents_of(*caller_);
  if (agent) {
    if (!chat_agent_allowed(*agent, reply)) return;
    agents = std::set<std::string>{*agent};
  }
  ctx_.events->subscribe(request, std::move(reply), std::string(kChatInboxTopic), std::move(agents));
}

// GET /v1/chat/session/{id}/events: one session's events; 404 for a session the token may not see.
void Api::chat_session_events(HttpRequest& request, HttpReply reply) {
  if (!chat_ready(reply)) return;
  if (!ctx_.events) return reply.send(error(503, "event streams are not available on this box right now"));
  if (!request.query.empty())
    return reply.send(error(422, "query parameter " + quoted(request.query.front().first) + ": unknown"));
  const std::string id(request.param("id").value_or(""));
  auto row = find_chat_session(id, reply);
  if (!row) return;
  ctx_.events->subscribe(request, std::move(reply), chat_session_topic(row->id),
                         EventHub::agents_of(*caller_));
}

}  // namespace osvi::daemon
