// The campaigns resource: contact uploads and the status report (spec 3.7, 3.8) and the box's extensions
// (create, list, read, patch, the contact list, enqueueing a held upload).
#include "osvi/campaigns/campaigns.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "osvi/api/api.hpp"
#include "osvi/base/ids.hpp"
#include "osvi/base/log.hpp"
#include "osvi/campaigns/contact_import.hpp"
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

void add_int(cJSON* o, const char* name, int64_t value) {
  cJSON_AddNumberToObject(o, name, static_cast<double>(value));
}

// A limited token may use a campaign only when it may use every one of the campaign's agents: patching or
// feeding it would otherwise make another agent dial.
bool token_covers(const ApiToken& token, const CampaignRow& row) {
  if (token.agents.empty()) return true;
  if (row.agents.empty()) return false;
  return std::all_of(row.agents.begin(), row.agents.end(), [&](const CampaignAgentRow& a) {
    return std::find(token.agents.begin(), token.agents.end(), a.agent_uuid) != token.agents.end();
  });
}

std::string not_found(int64_t id) {
  return "no campaign " + std::to_string(id);
}

std::string forbidden(int64_t id) {
  return "this API token may not use campaign " + std::to_string(id) + " (it may not use all of its agents)";
}

cJSON* campaign_json(const CampaignRow& row, int offset, std::optional<int64_t> queued) {
  cJSON* o = campaign_definition_json(campaign_config_of(row), offset);
  net::json_add_string(o, "source", row.source);
  net::json_add_string(o, "created_at", format_local_iso(row.created_at_ms, offset));
  net::json_add_string(o, "updated_at", format_local_iso(row.updated_at_ms, offset));
  if (queued) {
    add_int(o, "queued_contacts", *queued);
  } else {
    cJSON_AddNullToObject(o, "queued_contacts");
  }
  return o;
}

// Store failures are logged with their detail and answered without it.
HttpResponse store_error(std::string_view what, const Error& e) {
  log::error(std::string(what) + ": " + e.message);
  return Api::error(500, "database error");
}

// One campaign as GET and PATCH answer it: with its queued contacts counted now.
void send_campaign(Store& store, int offset, const CampaignRow& row, HttpReply& reply) {
  auto queued = store.campaigns().queued_count(row.id);
  if (!queued.ok()) {
    reply.send(store_error("reading a campaign", queued.error()));
    return;
  }
  reply.send(success(JsonPtr(campaign_json(row, offset, *queued))));
}

}  // namespace

// {id} of the path, a positive integer, the campaign existing and the token covering it; otherwise the reply
// is sent and nullopt returned.
std::optional<CampaignRow> Api::find_campaign(const HttpRequest& request, HttpReply& reply) {
  if (!ctx_.campaigns) {
    reply.send(error(503, "campaigns are not available"));
    return std::nullopt;
  }
  const std::string_view raw = request.param("id").value_or("");
  auto id = parse_positive(raw);
  if (!id) {
    reply.send(error(404, "no campaign " + quoted(raw) + " (a campaign id is a positive integer)"));
    return std::nullopt;
  }
  auto row = ctx_.campaigns->get(*id);
  if (!row.ok()) {
    reply.send(store_error("reading a campaign", row.error()));
    return std::nullopt;
  }
  if (!row->has_value()) {
    reply.send(error(404, not_found(*id)));
    return std::nullopt;
  }
  if (!token_covers(*caller_, **row)) {
    reply.send(error(403, forbidden(*id)));
    return std::nullopt;
  }
  return std::move(**row);
}

void Api::post_contacts(HttpRequest& request, HttpReply reply) {
  auto campaign = find_campaign(request, reply);
  if (!campaign) return;
  const cJSON* body = body_.get();
  const cJSON* item = nullptr;
  cJSON_ArrayForEach(item, body) {
    const std::string_view key = item->string;
    if (key != "agent_uuid" && key != "contacts" && key != "enqueue") {
      reply.send(error(422, quoted(key) + ": unknown field (expected agent_uuid, contacts, enqueue)"));
      return;
    }
  }
  const cJSON* agent = cJSON_GetObjectItemCaseSensitive(body, "agent_uuid");
  if (!cJSON_IsString(agent) || agent->valuestring[0] == '\0') {
    reply.send(
        error(422, agent == nullptr ? "agent_uuid: required" : "agent_uuid: must be a non-empty string"));
    return;
  }
  if (net::utf8_length(agent->valuestring) > kMaxAgentUuidChars) {
    reply.send(error(422, "agent_uuid: longer than " + std::to_string(kMaxAgentUuidChars) + " characters"));
    return;
  }
  if (!token_allows(*caller_, agent->valuestring)) {
    reply.send(error(403, "agent_uuid: this API token may not use agent " + quoted(agent->valuestring)));
    return;
  }
  const cJSON* contacts = cJSON_GetObjectItemCaseSensitive(body, "contacts");
  if (!cJSON_IsArray(contacts)) {
    reply.send(
        error(422, contacts == nullptr ? "contacts: required" : "contacts: must be an array of objects"));
    return;
  }
  const size_t count = static_cast<size_t>(cJSON_GetArraySize(contacts));
  if (count == 0) {
    reply.send(error(422, "contacts: must not be empty"));
    return;
  }
  if (count > kMaxContactsPerJsonRequest) {
    reply.send(error(422, "contacts: " + std::to_string(count) + " items, more than the " +
                              std::to_string(kMaxContactsPerJsonRequest) +
                              " one request may carry; split the import across several requests"));
    return;
  }
  const cJSON* enqueue = cJSON_GetObjectItemCaseSensitive(body, "enqueue");
  if (enqueue != nullptr && !cJSON_IsBool(enqueue)) {
    reply.send(error(422, "enqueue: must be a boolean"));
    return;
  }
  ImportOptions options;
  options.campaign_id = campaign->id;
  options.agent_uuid = agent->valuestring;
  options.enqueue = cJSON_IsTrue(enqueue);
  options.source = "api";
  auto result = ctx_.campaigns->import_json(options, contacts);
  if (!result.ok()) {
    const Error& e = result.error();
    switch (e.code) {
      case -ENOENT:
        reply.send(error(404, not_found(campaign->id)));
        return;
      case -EINVAL:
        reply.send(error(422, e.message));
        return;
      case -ENODEV:
        // Retrying changes nothing until a line is configured: 409, as for a line without audio on /v1/call.
        reply.send(error(409,
                         "enqueue: this box has no active outbound line to place the calls on; upload "
                         "without enqueue, or configure a line"));
        return;
      default:
        reply.send(store_error("importing contacts", e));
        return;
    }
  }
  reply.send(success(JsonPtr(import_result_to_json(*result))));
}

void Api::campaign_status(HttpRequest& request, HttpReply reply) {
  auto campaign = find_campaign(request, reply);
  if (!campaign) return;
  const int offset = ctx_.config->site.utc_offset_minutes;
  auto report = ctx_.store->campaigns().report(campaign->id);
  if (!report.ok()) {
    reply.send(store_error("reporting a campaign", report.error()));
    return;
  }
  if (!report->has_value()) {
    reply.send(error(404, not_found(campaign->id)));
    return;
  }
  const CampaignReport& r = **report;
  JsonPtr data(cJSON_CreateObject());
  cJSON* c = cJSON_AddObjectToObject(data.get(), "campaign");
  add_int(c, "id", r.campaign.id);
  net::json_add_string(c, "name", r.campaign.name);
  net::json_add_string(c, "status", r.campaign.status);
  cJSON_AddBoolToObject(c, "is_retry_enabled", r.campaign.is_retry_enabled);
  add_int(c, "retry_threshold", r.campaign.retry_threshold);
  add_int(c, "retry_delay", r.campaign.retry_delay_s);
  net::json_add_string(c, "created_at", format_local_iso(r.campaign.created_at_ms, offset));
  cJSON* calls = cJSON_AddObjectToObject(data.get(), "calls");
  add_int(calls, "total", r.calls_total);
  cJSON* by_status = cJSON_AddObjectToObject(calls, "by_status");
  for (const auto& [status, n] : r.calls_by_status) add_int(by_status, status.c_str(), n);
  cJSON* uploads = cJSON_AddArrayToObject(data.get(), "uploads");
  for (const UploadReport& u : r.uploads) {
    cJSON* o = cJSON_CreateObject();
    add_int(o, "campaign_upload_id", u.upload.id);
    net::json_add_string(o, "file_name", u.upload.file_name);
    net::json_add_string(o, "agent_uuid", u.upload.agent_uuid);
    net::json_add_string(o, "created_at", format_local_iso(u.upload.created_at_ms, offset));
    cJSON* queues = cJSON_AddArrayToObject(o, "queues");
    for (const UploadQueue& q : u.queues) {
      cJSON* qo = cJSON_CreateObject();
      net::json_add_string(qo, "agent_uuid", q.agent_uuid);
      add_int(qo, "total_queued", q.total_queued);
      cJSON_AddBoolToObject(qo, "completed", q.completed);
      cJSON_AddItemToArray(queues, qo);
    }
    cJSON_AddItemToArray(uploads, o);
  }
  reply.send(success(std::move(data)));
}

void Api::create_campaign(HttpRequest&, HttpReply reply) {
  if (!ctx_.campaigns) {
    reply.send(error(503, "campaigns are not available"));
    return;
  }
  // The agents are checked before anything is written: a limited token creates campaigns of its agents only.
  if (!caller_->agents.empty()) {
    const cJSON* agents = cJSON_GetObjectItemCaseSensitive(body_.get(), "agents");
    const cJSON* a = nullptr;
    cJSON_ArrayForEach(a, agents) {
      const cJSON* uuid = cJSON_IsObject(a) ? cJSON_GetObjectItemCaseSensitive(a, "agent_uuid") : a;
      if (cJSON_IsString(uuid) && !token_allows(*caller_, uuid->valuestring)) {
        reply.send(error(403, "agents: this API token may not use agent " + quoted(uuid->valuestring)));
        return;
      }
    }
  }
  auto row = ctx_.campaigns->create(body_.get());
  if (!row.ok()) {
    const Error& e = row.error();
    if (e.code == -EINVAL) {
      reply.send(error(422, e.message));
    } else if (e.code == -EEXIST) {
      reply.send(error(409, e.message));
    } else {
      reply.send(store_error("creating a campaign", e));
    }
    return;
  }
  if (!token_covers(*caller_, *row)) {  // an agent list the loop above could not read was refused by create
    reply.send(error(403, forbidden(row->id)));
    return;
  }
  JsonPtr root(cJSON_CreateObject());
  cJSON_AddBoolToObject(root.get(), "success", true);
  cJSON_AddItemToObject(root.get(), "data", campaign_json(*row, ctx_.config->site.utc_offset_minutes, 0));
  reply.send(json_response(201, root.get()));
}

void Api::list_campaigns(HttpRequest&, HttpReply reply) {
  if (!ctx_.campaigns) {
    reply.send(error(503, "campaigns are not available"));
    return;
  }
  auto rows = ctx_.campaigns->list();
  if (!rows.ok()) {
    reply.send(store_error("listing campaigns", rows.error()));
    return;
  }
  const int offset = ctx_.config->site.utc_offset_minutes;
  JsonPtr data(cJSON_CreateArray());
  for (const CampaignRow& row : *rows) {
    if (!token_covers(*caller_, row)) continue;
    auto queued = ctx_.store->campaigns().queued_count(row.id);
    if (!queued.ok()) {
      reply.send(store_error("listing campaigns", queued.error()));
      return;
    }
    cJSON_AddItemToArray(data.get(), campaign_json(row, offset, *queued));
  }
  reply.send(success(std::move(data)));
}

void Api::get_campaign(HttpRequest& request, HttpReply reply) {
  auto campaign = find_campaign(request, reply);
  if (!campaign) return;
  send_campaign(*ctx_.store, ctx_.config->site.utc_offset_minutes, *campaign, reply);
}

void Api::patch_campaign(HttpRequest& request, HttpReply reply) {
  auto campaign = find_campaign(request, reply);
  if (!campaign) return;
  if (!caller_->agents.empty()) {
    const cJSON* agents = cJSON_GetObjectItemCaseSensitive(body_.get(), "agents");
    const cJSON* a = nullptr;
    cJSON_ArrayForEach(a, agents) {
      const cJSON* uuid = cJSON_IsObject(a) ? cJSON_GetObjectItemCaseSensitive(a, "agent_uuid") : a;
      if (cJSON_IsString(uuid) && !token_allows(*caller_, uuid->valuestring)) {
        reply.send(error(403, "agents: this API token may not use agent " + quoted(uuid->valuestring)));
        return;
      }
    }
  }
  auto row = ctx_.campaigns->patch(campaign->id, body_.get());
  if (!row.ok()) {
    const Error& e = row.error();
    switch (e.code) {
      case -ENOENT:
        reply.send(error(404, not_found(campaign->id)));
        return;
      case -EINVAL:
        reply.send(error(422, e.message));
        return;
      case -EPERM:
        reply.send(error(409, e.message));
        return;
      default:
        reply.send(store_error("patching a campaign", e));
        return;
    }
  }
  send_campaign(*ctx_.store, ctx_.config->site.utc_offset_minutes, *row, reply);
}

void Api::list_contacts(HttpRequest& request, HttpReply reply) {
  auto campaign = find_campaign(request, reply);
  if (!campaign) return;
  std::string state;
  int64_t page = 1, per_page = 25;
  for (const auto& [name, value] : request.query) {
    if (name == "state") {
      if (value != "" && value != "held" && value != "queued" && value != "dialing" && value != "done" &&
          value != "dnd") {
        reply.send(error(422, "state: expected held, queued, dialing, done or dnd, got " + quoted(value)));
        return;
      }
      state = value;
    } else if (name == "page") {
      auto n = parse_positive(value);
      if (!n) {
        reply.send(error(422, "page: must be a positive integer"));
        return;
      }
      page = *n;
    } else if (name == "per_page") {
      auto n = parse_positive(value);
      if (!n || *n > kMaxPerPage) {
        reply.send(error(422, "per_page: must be an integer in 1.." + std::to_string(kMaxPerPage)));
        return;
      }
      per_page = *n;
    } else {
      reply.send(error(422, quoted(name) + ": unknown query parameter (expected state, page, per_page)"));
      return;
    }
  }
  int64_t total = 0;
  auto rows = ctx_.store->campaigns().contacts(campaign->id, state, page, per_page, &total);
  if (!rows.ok()) {
    reply.send(store_error("listing contacts", rows.error()));
    return;
  }
  const int offset = ctx_.config->site.utc_offset_minutes;
  JsonPtr root(cJSON_CreateObject());
  cJSON_AddBoolToObject(root.get(), "success", true);
  cJSON* data = cJSON_AddArrayToObject(root.get(), "data");
  for (const ContactRow& c : *rows) {
    cJSON* o = cJSON_CreateObject();
    add_int(o, "id", c.id);
    add_int(o, "campaign_upload_id", c.upload_id);
    net::json_add_string(o, "agent_uuid", c.agent_uuid);
    net::json_add_string(o, "phone", c.phone);
    net::json_add_string_or_null(o, "person_name", c.person_name);
    JsonPtr vars;
    if (c.variables_json) {
      std::string why;
      vars = net::json_parse(*c.variables_json, &why);
    }
    cJSON_AddItemToObject(o, "variables", vars ? vars.release() : cJSON_CreateNull());
    net::json_add_string_or_null(o, "time_zone", c.time_zone);
    net::json_add_string(o, "state", c.state);
    add_int(o, "attempts", c.attempts);
    if (c.next_attempt_at_ms) {
      net::json_add_string(o, "next_attempt_at", format_local_iso(*c.next_attempt_at_ms, offset));
    } else {
      cJSON_AddNullToObject(o, "next_attempt_at");
    }
    net::json_add_string_or_null(o, "last_call_id", c.last_call_id);
    net::json_add_string_or_null(o, "last_outcome", c.last_outcome);
    net::json_add_string(o, "created_at", format_local_iso(c.created_at_ms, offset));
    net::json_add_string(o, "updated_at", format_local_iso(c.updated_at_ms, offset));
    cJSON_AddItemToArray(data, o);
  }
  cJSON* meta = cJSON_AddObjectToObject(root.get(), "meta");
  add_int(meta, "current_page", page);
  add_int(meta, "total_pages", (total + per_page - 1) / per_page);
  add_int(meta, "total_count", total);
  add_int(meta, "per_page", per_page);
  reply.send(json_response(200, root.get()));
}

void Api::enqueue_upload(HttpRequest& request, HttpReply reply) {
  auto campaign = find_campaign(request, reply);
  if (!campaign) return;
  const std::string_view raw = request.param("upload_id").value_or("");
  auto upload_id = parse_positive(raw);
  if (!upload_id) {
    reply.send(error(404, "no upload " + quoted(raw) + " (an upload id is a positive integer)"));
    return;
  }
  if (cJSON_GetArraySize(body_.get()) > 0) {
    reply.send(
        error(422, quoted(body_->child->string) + ": unknown field (this request takes an empty object)"));
    return;
  }
  auto moved = ctx_.campaigns->enqueue_upload(campaign->id, *upload_id);
  if (!moved.ok()) {
    const Error& e = moved.error();
    if (e.code == -ENOENT) {
      reply.send(error(404, e.message));
    } else if (e.code == -ENODEV) {
      reply.send(error(409, "enqueue: this box has no active outbound line to place the calls on"));
    } else {
      reply.send(store_error("enqueueing an upload", e));
    }
    return;
  }
  auto queued = ctx_.store->campaigns().queued_count(campaign->id);
  if (!queued.ok()) {
    reply.send(store_error("enqueueing an upload", queued.error()));
    return;
  }
  JsonPtr data(cJSON_CreateObject());
  add_int(data.get(), "campaign_upload_id", *upload_id);
  cJSON_AddBoolToObject(data.get(), "enqueued", true);
  add_int(data.get(), "contacts_enqueued", *moved);
  add_int(data.get(), "queued_calls", *queued);
  reply.send(success(std::move(data)));
}

}  // namespace osvi::daemon
