// The callbacks extension (docs/api.md "Callbacks"): GET /v1/callbacks, GET and DELETE /v1/callbacks/{id},
// the scheduled outbound calls the dialler owes (a callee's requested callback, a retry_config retry).
#include "osvi/store/callbacks.hpp"

#include <algorithm>
#include <cerrno>
#include <string>
#include <string_view>
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
using net::HttpResponse;
using net::JsonPtr;
using net::quoted;

constexpr std::string_view kStates[] = {"scheduled", "dialing", "done", "cancelled", "dnd", "expired"};
constexpr std::string_view kKinds[] = {"callback", "retry"};
constexpr std::string_view kParams[] = {"agent_uuid", "state", "kind", "page", "per_page"};

template <size_t N>
bool one_of(std::string_view v, const std::string_view (&set)[N]) {
  return std::find(std::begin(set), std::end(set), v) != std::end(set);
}

template <size_t N>
std::string listed(const std::string_view (&set)[N]) {
  std::string out;
  for (std::string_view s : set) out += (out.empty() ? "" : ", ") + std::string(s);
  return out;
}

// GET /v1/callbacks' query: every parameter known, none twice, each value checked (the token's limit is
// the handler's).
std::optional<Invalid> parse_list_query(const QueryParams& query, CallbacksRepo::Filter* f,
                                        std::optional<std::string>* agent) {
  std::vector<std::string_view> seen;
  for (const auto& [name, value] : query) {
    if (!one_of(name, kParams))
      return Invalid{"query parameter " + quoted(name) + ": unknown (expected " + listed(kParams) + ")"};
    if (std::find(seen.begin(), seen.end(), name) != seen.end())
      return Invalid{name + ": given more than once"};
    seen.push_back(name);
    if (value.empty()) continue;  // as the other lists: an empty value is no filter
    if (name == "agent_uuid") {
      if (net::utf8_length(value) > kMaxAgentUuidChars)
        return Invalid{"agent_uuid: longer than " + std::to_string(kMaxAgentUuidChars) + " characters"};
      *agent = value;
    } else if (name == "state") {
      if (!one_of(value, kStates))
        return Invalid{"state: " + quoted(value) + " is not one of " + listed(kStates)};
      f->state = value;
    } else if (name == "kind") {
      if (!one_of(value, kKinds))
        return Invalid{"kind: " + quoted(value) + " is not one of " + listed(kKinds)};
      f->kind = value;
    } else if (name == "page") {
      auto n = parse_positive(value);
      if (!n) return Invalid{"page: must be a positive integer"};
      f->page = *n;
    } else {
      auto n = parse_positive(value);
      if (!n || *n > kMaxPerPage)
        return Invalid{"per_page: must be an integer in 1.." + std::to_string(kMaxPerPage)};
      f->per_page = *n;
    }
  }
  return std::nullopt;
}

JsonPtr callback_json(const CallbackRow& r, int offset) {
  JsonPtr o(cJSON_CreateObject());
  cJSON_AddNumberToObject(o.get(), "id", static_cast<double>(r.id));
  net::json_add_string(o.get(), "kind", r.kind);
  net::json_add_string(o.get(), "source_call_id", r.source_call_id);
  net::json_add_string(o.get(), "agent_uuid", r.agent_uuid);
  net::json_add_string(o.get(), "phone_number", r.phone);
  net::json_add_string(o.get(), "due_at", format_local_iso(r.due_at_ms, offset));
  net::json_add_string_or_null(o.get(), "requested_text", r.requested_text);
  net::json_add_string(o.get(), "state", r.state);
  net::json_add_string_or_null(o.get(), "call_id", r.call_id);
  net::json_add_string_or_null(o.get(), "outcome", r.outcome);
  cJSON_AddNumberToObject(o.get(), "retry_count", static_cast<double>(r.retry_count));
  net::json_add_string(o.get(), "created_at", format_local_iso(r.created_at_ms, offset));
  return o;
}

HttpResponse store_error(std::string_view what, const Error& e) {
  log::error(std::string(what) + ": " + e.message);
  return Api::error(500, "database error");
}

std::string no_such(std::string_view id) {
  return "no callback " + quoted(id) + " on this box";
}

}  // namespace

std::optional<CallbackRow> Api::find_callback(const HttpRequest& request, HttpReply& reply) {
  const std::string_view raw = request.param("id").value_or("");
  auto id = parse_positive(raw);
  if (!id) {
    reply.send(error(404, no_such(raw)));
    return std::nullopt;
  }
  auto row = ctx_.store->callbacks().get(*id);
  if (!row.ok()) {
    reply.send(store_error("reading a callback", row.error()));
    return std::nullopt;
  }
  // Another agent's callback is not there for a limited token (as GET /v1/call/{id}).
  if (!*row || !token_allows(*caller_, (*row)->agent_uuid)) {
    reply.send(error(404, no_such(raw)));
    return std::nullopt;
  }
  return std::move(**row);
}

void Api::list_callbacks(HttpRequest& request, HttpReply reply) {
  CallbacksRepo::Filter f;
  std::optional<std::string> agent;
  if (auto bad = parse_list_query(request.query, &f, &agent)) {
    reply.send(error(422, bad->message));
    return;
  }
  if (agent) {
    if (!token_allows(*caller_, *agent)) {
      reply.send(error(403, "agent_uuid: this API token may not use agent " + quoted(*agent)));
      return;
    }
    f.agent_uuids = {*agent};
  } else {
    f.agent_uuids = caller_->agents;  // empty: every agent
  }
  auto page = ctx_.store->callbacks().list(f);
  if (!page.ok()) {
    reply.send(store_error("listing callbacks", page.error()));
    return;
  }
  const int offset = ctx_.config->site.utc_offset_minutes;
  JsonPtr root(cJSON_CreateObject());
  cJSON_AddBoolToObject(root.get(), "success", true);
  cJSON* data = cJSON_AddArrayToObject(root.get(), "data");
  for (const CallbackRow& r : page->rows) cJSON_AddItemToArray(data, callback_json(r, offset).release());
  cJSON* meta = cJSON_AddObjectToObject(root.get(), "meta");
  cJSON_AddNumberToObject(meta, "current_page", static_cast<double>(f.page));
  cJSON_AddNumberToObject(meta, "total_pages",
                          static_cast<double>((page->total_count + f.per_page - 1) / f.per_page));
  cJSON_AddNumberToObject(meta, "total_count", static_cast<double>(page->total_count));
  cJSON_AddNumberToObject(meta, "per_page", static_cast<double>(f.per_page));
  reply.send(json_response(200, root.get()));
}

void Api::get_callback(HttpRequest& request, HttpReply reply) {
  auto row = find_callback(request, reply);
  if (!row) return;
  reply.send(success(callback_json(*row, ctx_.config->site.utc_offset_minutes)));
}

void Api::cancel_callback(HttpRequest& request, HttpReply reply) {
  auto row = find_callback(request, reply);
  if (!row) return;
  // The dialler reads the state at the moment it would dial, so no poke is needed: a cancelled row is never
  // due again.
  Status s = ctx_.store->callbacks().cancel(row->id);
  if (!s.ok()) {
    const Error& e = s.error();
    if (e.code == -ENOENT) {
      reply.send(error(404, no_such(std::to_string(row->id))));
    } else if (e.code == -EBUSY) {
      auto now = ctx_.store->callbacks().get(row->id);
      const std::string state = now.ok() && *now ? (*now)->state : row->state;
      reply.send(error(409, "callback " + std::to_string(row->id) + " is " + state +
                                ", not scheduled: only a scheduled callback can be cancelled"));
    } else {
      reply.send(store_error("cancelling a callback", e));
    }
    return;
  }
  log::info("callback " + std::to_string(row->id) + " (" + row->kind + ") cancelled (API)",
            {{"AGENT_UUID", row->agent_uuid}});
  auto now = ctx_.store->callbacks().get(row->id);
  if (!now.ok() || !*now) {
    reply.send(store_error("reading a callback",
                           now.ok() ? make_error("store: the callback vanished", -EIO) : now.error()));
    return;
  }
  reply.send(success(callback_json(**now, ctx_.config->site.utc_offset_minutes)));
}

}  // namespace osvi::daemon
