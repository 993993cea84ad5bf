// The calls resource (spec 3.2-3.6 and 3.17): placing calls, the call list, details, recording links.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/api/api.hpp"
#include "osvi/base/ids.hpp"
#include "osvi/base/log.hpp"
#include "osvi/base/phone.hpp"
#include "osvi/base/secret.hpp"
#include "osvi/calls/call_service.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/text.hpp"
#include "osvi/store/recordings.hpp"
#include "requests.hpp"
#include "util.hpp"

namespace osvi::daemon {
namespace {

using net::HttpReply;
using net::HttpRequest;
using net::HttpResponse;
using net::JsonPtr;
using net::quoted;

constexpr int64_t kRecordingLinkSeconds = 900;  // spec 3.6: expires_in_seconds

// --- JSON helpers ---

// An integer member printed by std::to_chars as a raw JSON number: this cJSON (1.7.15) prints every number
// with "%1.15g" and reads it back with sscanf to check the round trip, the largest share of printing a page.
// The name is a string literal: cJSON keeps the pointer (AddItemToObjectCS) instead of copying it, one
// allocation less per member of every listed call.
void add_int(cJSON* o, const char* name, int64_t value) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits - 1, value).ptr;
  *end = '\0';
  cJSON_AddItemToObjectCS(o, name, cJSON_CreateRaw(digits));
}

// A string member under a literal name; like net::json_add_string, but neither the name nor the value is
// copied on the way (the value's own terminator is used).
void add_text(cJSON* o, const char* name, const std::string& value) {
  cJSON_AddItemToObjectCS(o, name, cJSON_CreateString(value.c_str()));
}

void add_text_or_null(cJSON* o, const char* name, const std::optional<std::string>& value) {
  cJSON_AddItemToObjectCS(o, name, value ? cJSON_CreateString(value->c_str()) : cJSON_CreateNull());
}

void add_int_or_null(cJSON* o, const char* name, const std::optional<int64_t>& value) {
  if (value) {
    add_int(o, name, *value);
  } else {
    cJSON_AddItemToObjectCS(o, name, cJSON_CreateNull());
  }
}

void add_opt_time(cJSON* o, const char* name, const std::optional<int64_t>& ms, int offset) {
  if (ms) {
    net::json_add_string(o, name, format_local_iso(*ms, offset));
  } else {
    cJSON_AddNullToObject(o, name);
  }
}

// Stored JSON text as a JSON value; null when absent, or when the text is not of the expected kind (the
// store checks json_valid, but an object column could still hold an array written by another tool).
void add_stored_json(cJSON* o, const char* name, const std::optional<std::string>& text, bool want_object) {
  JsonPtr parsed;
  if (text) {
    std::string why;
    parsed = net::json_parse(*text, &why);
  }
  if (parsed && (!want_object || cJSON_IsObject(parsed.get()))) {
    cJSON_AddItemToObject(o, name, parsed.release());
  } else {
    cJSON_AddNullToObject(o, name);
  }
}

// "2026-06-01T14:05:09.123+05:30": transcript turns need sub-second order, the call fields do not.
std::string local_iso_ms(int64_t unix_ms, int offset) {
  std::string s = format_local_iso(unix_ms, offset);
  const int64_t ms = ((unix_ms % 1000) + 1000) % 1000;
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03d", static_cast<int>(ms));
  s.insert(19, frac);  // after "YYYY-MM-DDTHH:MM:SS"
  return s;
}

// --- responses ---

void add_summary_fields(cJSON* o, const CallRecord& c, int offset) {
  add_text(o, "call_id", c.call_id);
  add_text(o, "agent_uuid", c.agent_uuid);
  add_text(o, "agent_name", c.agent_name);
  add_text(o, "phone_number", c.phone_number);
  add_text_or_null(o, "from_number", c.from_number);
  add_text(o, "status", c.status);
  add_text(o, "call_type", c.call_type);
  add_int(o, "duration_seconds", c.duration_seconds);
  add_text_or_null(o, "call_ended_by", c.call_ended_by);
  add_text_or_null(o, "call_ended_reason", c.call_ended_reason);
  add_int_or_null(o, "campaign_id", c.campaign_id);
  add_int_or_null(o, "campaign_upload_id", c.campaign_upload_id);
  if (c.tag_id) {
    cJSON* tag = cJSON_AddObjectToObject(o, "tag");
    add_int(tag, "id", *c.tag_id);
    add_text(tag, "name", c.tag_name ? *c.tag_name : std::string());
    add_text_or_null(tag, "color_code", c.tag_color_code);
  } else {
    cJSON_AddItemToObjectCS(o, "tag", cJSON_CreateNull());
  }
  add_text(o, "created_at", format_local_iso(c.created_at_ms, offset));
  if (c.call_picked_at_ms) {
    add_text(o, "call_picked_at", format_local_iso(*c.call_picked_at_ms, offset));
  } else {
    cJSON_AddItemToObjectCS(o, "call_picked_at", cJSON_CreateNull());
  }
}

// A limited token sees only its agents' calls; any other call looks absent (404), as on another account.
const char* kNoSuchCall = "no call with this id";

}  // namespace

void Api::post_call(HttpRequest& request, HttpReply reply) {
  place(request, std::move(reply), false);
}

void Api::post_call_legacy(HttpRequest& request, HttpReply reply) {
  place(request, std::move(reply), true);
}

void Api::place(HttpRequest&, HttpReply reply, bool legacy) {
  PlaceCallRequest req;
  std::string country;
  // The agent check comes before the rest so a limited token learns nothing about other agents' rules.
  const cJSON* agent = cJSON_GetObjectItemCaseSensitive(body_.get(), "agent_uuid");
  if (cJSON_IsString(agent) && agent->valuestring[0] != '\0' && !token_allows(*caller_, agent->valuestring)) {
    reply.send(error(403, "agent_uuid: this API token may not use agent " + quoted(agent->valuestring)));
    return;
  }
  const bool extensions = ctx_.calls && ctx_.calls->dials_extensions();
  if (auto bad = parse_call_request(body_.get(), legacy, &req, &country, extensions)) {
    reply.send(error(400, bad->message));
    return;
  }
  auto agents = ctx_.store->agents().active_voice();
  if (!agents) {
    log::error("cannot list agents for a call request: " + agents.error().message);
    reply.send(error(500, "database error"));
    return;
  }
  const std::string not_active = "agent_uuid: " + quoted(req.agent_uuid) + " is not an active voice agent";
  if (std::none_of(agents->begin(), agents->end(),
                   [&](const AgentRecord& a) { return a.agent_uuid == req.agent_uuid; })) {
    reply.send(error(400, not_active));
    return;
  }
  if (!ctx_.calls) {
    reply.send(error(503, "calls engine not available"));
    return;
  }
  req.call_trigger_data = net::json_print(body_.get());
  if (req.call_trigger_data->size() > kMaxTriggerDataBytes) {
    reply.send(error(413, "request body: " + std::to_string(req.call_trigger_data->size()) +
                              " bytes as compact JSON, more than the " +
                              std::to_string(kMaxTriggerDataBytes) +
                              " stored with a call (call_trigger_data)"));
    return;
  }
  req.source = legacy ? "legacy_api" : "api";

  auto placed = ctx_.calls->place_call(req);
  if (!placed.ok()) {
    const Error& e = placed.error();
    switch (e.code) {
      case -EPERM:
        reply.send(error(400, "phone_number is on the do-not-disturb list of this agent"));
        return;
      case -ENOENT:
        reply.send(error(400, not_active));
        return;
      case -EBUSY: {
        HttpResponse r = error(503, "every line is busy and the call queue is full; retry later");
        r.headers.emplace_back("Retry-After", "30");
        reply.send(std::move(r));
        return;
      }
      case -ENODEV:
        reply.send(error(503, "this box has no line that can place calls"));
        return;
      case -ENOMEDIUM:
        // Nothing will change by retrying: the configuration or the hardware has to (409, not 503).
        reply.send(error(409, e.message));
        return;
      case -EMSGSIZE:
        reply.send(error(413, e.message));
        return;
      case -EPROTONOSUPPORT:  // an extension, and the SIP line went away with a reload meanwhile
        reply.send(error(400, e.message));
        return;
      default:
        log::error("placing a call failed: " + e.message, {{"AGENT_UUID", req.agent_uuid}});
        reply.send(error(500, "could not place the call"));
        return;
    }
  }
  JsonPtr root(cJSON_CreateObject());
  cJSON_AddBoolToObject(root.get(), "success", true);
  net::json_add_string(cJSON_AddObjectToObject(root.get(), "data"), "call_id", *placed);
  if (legacy) {
    // The older docs' shape next to the newer one, so clients of either generation read it.
    cJSON_AddStringToObject(root.get(), "status", "success");
    cJSON_AddStringToObject(root.get(), "message", "Call initiated successfully");
    net::json_add_string(root.get(), "call_id", *placed);
  }
  reply.send(json_response(200, root.get()));
}

void Api::list_calls(HttpRequest& request, HttpReply reply) {
  const int offset = ctx_.config->site.utc_offset_minutes;
  CallFilter f;
  if (auto bad = parse_calls_query(request.query, offset, &f)) {
    reply.send(error(422, bad->message));
    return;
  }
  if (f.agent_uuid) {
    auto agents = ctx_.store->agents().all();
    if (!agents) {
      log::error("cannot list agents: " + agents.error().message);
      reply.send(error(500, "database error"));
      return;
    }
    if (std::none_of(agents->begin(), agents->end(),
                     [&](const AgentRecord& a) { return a.agent_uuid == *f.agent_uuid; })) {
      reply.send(error(404, "agent_uuid: no agent " + quoted(*f.agent_uuid) + " on this box"));
      return;
    }
    if (!token_allows(*caller_, *f.agent_uuid)) {
      reply.send(error(403, "agent_uuid: this API token may not use agent " + quoted(*f.agent_uuid)));
      return;
    }
  }
  f.agent_uuids = caller_->agents;

  auto page = ctx_.store->calls().list(f);
  if (!page) {
    log::error("cannot list calls: " + page.error().message);
    reply.send(error(500, "database error"));
    return;
  }
  JsonPtr root(cJSON_CreateObject());
  cJSON_AddBoolToObject(root.get(), "success", true);
  cJSON* data = cJSON_AddArrayToObject(root.get(), "data");
  for (const CallRecord& c : page->calls) {
    cJSON* o = cJSON_CreateObject();
    add_summary_fields(o, c, offset);
    cJSON_AddItemToArray(data, o);
  }
  cJSON* meta = cJSON_AddObjectToObject(root.get(), "meta");
  add_int(meta, "current_page", f.page);
  add_int(meta, "total_pages", (page->total_count + f.per_page - 1) / f.per_page);
  add_int(meta, "total_count", page->total_count);
  add_int(meta, "per_page", f.per_page);
  reply.send(json_response(200, root.get()));
}

// The call named by {id} when it exists and the token may see it; otherwise the reply is sent (util.hpp).
std::optional<CallRecord> find_call(Store& store, const ApiToken& caller, const HttpRequest& request,
                                    HttpReply& reply) {
  const std::string id(request.param("id").value_or(""));
  if (!is_uuid(id)) {
    reply.send(Api::error(404, kNoSuchCall));
    return std::nullopt;
  }
  auto c = store.calls().get(id);
  if (!c) {
    log::error("cannot read call: " + c.error().message, {{"CALL_ID", id}});
    reply.send(Api::error(500, "database error"));
    return std::nullopt;
  }
  if (!*c || !token_allows(caller, (*c)->agent_uuid)) {
    reply.send(Api::error(404, kNoSuchCall));
    return std::nullopt;
  }
  return std::move(**c);
}

namespace {

bool regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Rows hold the absolute path the file was written at (docs/store.md). Rows of older daemons may hold a path
// relative to the working directory they ran in ("./state/recordings/<id>.opus"), and a box's state folder
// may have moved since: the daemon only ever writes <call_id>.opus directly in the recordings folder, so the
// row's file name in today's folder is the fallback. The stored path is never joined to the folder.
std::string recording_path(const ApiContext& ctx, const RecordingRow& row) {
  if (row.path.starts_with('/') && (ctx.recordings_dir.empty() || regular_file(row.path))) return row.path;
  if (ctx.recordings_dir.empty()) return row.path;
  const size_t slash = row.path.find_last_of('/');
  const std::string name = slash == std::string::npos ? row.path : row.path.substr(slash + 1);
  const std::string in_folder = ctx.recordings_dir + "/" + name;
  if (row.path.starts_with('/') && !regular_file(in_folder)) return row.path;
  return in_folder;
}

Result<std::string> signature(std::string_view key, std::string_view call_id, int64_t expires) {
  return hmac_sha256_hex(key, std::string(call_id) + "\n" + std::to_string(expires));
}

// The Host header names the address the client reached us at (which may differ from the bound one behind
// NAT or on 0.0.0.0). It is only used if it looks like host[:port], so a crafted header cannot bend the URL.
std::string public_host(const HttpRequest& request, const std::string& fallback) {
  auto host = request.header("Host");
  if (!host || host->empty() || host->size() > 255) return fallback;
  for (char c : *host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '-' || c == ':' || c == '[' || c == ']';
    if (!ok) return fallback;
  }
  return std::string(*host);
}

}  // namespace

void Api::get_call(HttpRequest& request, HttpReply reply) {
  auto c = find_call(*ctx_.store, *caller_, request, reply);
  if (!c) return;
  const int offset = ctx_.config->site.utc_offset_minutes;
  JsonPtr data(cJSON_CreateObject());
  cJSON* o = data.get();
  add_summary_fields(o, *c, offset);
  net::json_add_string_or_null(o, "caller_name", c->caller_name);
  cJSON_AddNumberToObject(o, "retry_count", static_cast<double>(c->retry_count));
  net::json_add_string_or_null(o, "summary", c->summary);
  add_stored_json(o, "data_captured", c->data_captured, true);
  add_stored_json(o, "post_call_analysis", c->post_call_analysis, true);
  // Extensions (docs/api.md): what the box knows beyond the published V1CallDetail.
  add_opt_time(o, "ended_at", c->ended_at_ms, offset);
  net::json_add_string_or_null(o, "line", c->line);
  cJSON_AddBoolToObject(o, "callback_required", c->callback_required);
  net::json_add_string_or_null(o, "person_name", c->person_name);
  add_stored_json(o, "additional_data", c->additional_data, true);
  add_stored_json(o, "structured_output", c->structured_output, false);
  net::json_add_string(o, "execution_mode", c->execution_mode);
  net::json_add_int_or_null(o, "greeting_gap_ms", c->greeting_gap_ms);  // the abandonment guard's figure
  reply.send(success(std::move(data)));
}

void Api::get_transcript(HttpRequest& request, HttpReply reply) {
  auto c = find_call(*ctx_.store, *caller_, request, reply);
  if (!c) return;
  auto turns = ctx_.store->calls().transcript(c->call_id);
  if (!turns) {
    log::error("cannot read transcript: " + turns.error().message, {{"CALL_ID", c->call_id}});
    reply.send(error(500, "database error"));
    return;
  }
  const int offset = ctx_.config->site.utc_offset_minutes;
  auto job = ctx_.store->post_call().get(c->call_id);
  if (!job) {
    log::error("cannot read the post-call job: " + job.error().message, {{"CALL_ID", c->call_id}});
    reply.send(error(500, "database error"));
    return;
  }
  JsonPtr data(cJSON_CreateObject());
  net::json_add_string(data.get(), "call_id", c->call_id);
  // Extensions (docs/api.md): the analysis' summary beside the words it summarises, and where it stands.
  net::json_add_string_or_null(data.get(), "summary", c->summary);
  net::json_add_string_or_null(data.get(), "analysis_status",
                               *job ? std::optional<std::string>((*job)->analysis_state) : std::nullopt);
  cJSON* arr = cJSON_AddArrayToObject(data.get(), "transcript");
  for (const TranscriptTurn& t : *turns) {
    cJSON* o = cJSON_CreateObject();
    net::json_add_string(o, "role", t.role);
    net::json_add_string(o, "text", t.text);
    if (t.started_at_ms) {
      net::json_add_string(o, "started_at", local_iso_ms(*t.started_at_ms, offset));
    } else {
      cJSON_AddNullToObject(o, "started_at");
    }
    if (t.ended_at_ms) {
      net::json_add_string(o, "ended_at", local_iso_ms(*t.ended_at_ms, offset));
    } else {
      cJSON_AddNullToObject(o, "ended_at");
    }
    cJSON_AddBoolToObject(o, "interrupted", t.interrupted);
    if (t.kind) net::json_add_string(o, "kind", *t.kind);
    if (t.latency_json) {
      std::string why;
      if (JsonPtr lat = net::json_parse(*t.latency_json, &why); lat && cJSON_IsObject(lat.get())) {
        cJSON_AddItemToObject(o, "latency", lat.release());
      }
    }
    cJSON_AddItemToArray(arr, o);
  }
  reply.send(success(std::move(data)));
}

namespace {

// The recording link of a call the caller may see, once its recording is registered (or known absent).
void send_recording_link(const ApiContext& ctx, const std::string& call_id, const std::string& host,
                         HttpReply reply) {
  auto row = ctx.store->calls().recording(call_id);
  if (!row) {
    log::error("cannot read recording row: " + row.error().message, {{"CALL_ID", call_id}});
    reply.send(Api::error(500, "database error"));
    return;
  }
  if (!*row || !regular_file(recording_path(ctx, **row))) {
    reply.send(Api::error(404, "this call has no recording"));
    return;
  }
  if (ctx.recording_key.empty()) {
    reply.send(Api::error(503, "recording links are not available (no signing key)"));
    return;
  }
  const int64_t expires = ctx.clock->wall_ms() / 1000 + kRecordingLinkSeconds;
  auto sig = signature(ctx.recording_key, call_id, expires);
  if (!sig) {  // libcrypto, opened at the first signature, is missing
    reply.send(Api::error(503, "recording links are not available: " + sig.error().message));
    return;
  }
  const std::string url = "http://" + host + "/v1/recordings/" + call_id +
                          ".opus?expires=" + std::to_string(expires) + "&sig=" + *sig;
  JsonPtr data(cJSON_CreateObject());
  net::json_add_string(data.get(), "call_id", call_id);
  net::json_add_string(data.get(), "recording_url", url);
  cJSON_AddNumberToObject(data.get(), "expires_in_seconds", static_cast<double>(kRecordingLinkSeconds));
  reply.send(success(std::move(data)));
}

}  // namespace

void Api::get_recording(HttpRequest& request, HttpReply reply) {
  auto c = find_call(*ctx_.store, *caller_, request, reply);
  if (!c) return;
  std::string host = public_host(request, ctx_.listen);
  // A call that just ended has its recording on the way to disk (store/recordings.hpp): answer once it is
  // registered (a sync takes milliseconds) rather than 404 a recording that is about to exist. The token
  // check is done; only the lookup waits.
  if (ctx_.recordings && ctx_.recordings->pending_for(c->call_id)) {
    auto held = std::make_shared<HttpReply>(std::move(reply));
    ctx_.recordings->when_settled(c->call_id, [ctx = &ctx_, id = c->call_id, host = std::move(host), held] {
      if (held->connected()) send_recording_link(*ctx, id, host, std::move(*held));
    });
    return;
  }
  send_recording_link(ctx_, c->call_id, host, std::move(reply));
}

void Api::serve_recording(HttpRequest& request, HttpReply reply) {
  // The signature is checked before anything is looked up, so an unsigned client cannot probe which calls
  // exist. Every refusal of the link itself is the same 403.
  if (ctx_.recording_key.empty()) {
    reply.send(error(503, "recording links are not available (no signing key)"));
    return;
  }
  std::string_view file = request.param("file").value_or("");
  std::string call_id;
  if (file.ends_with(".opus")) call_id = std::string(file.substr(0, file.size() - 5));
  auto expires_text = request.query_param("expires");
  auto sig = request.query_param("sig");
  std::optional<int64_t> expires;
  if (expires_text) expires = parse_positive(*expires_text);
  if (!is_uuid(call_id) || !expires || !sig) {
    reply.send(error(403, "invalid or expired recording link"));
    return;
  }
  auto expected = signature(ctx_.recording_key, call_id, *expires);
  if (!expected) {
    reply.send(error(503, "recording links are not available: " + expected.error().message));
    return;
  }
  const bool signed_ok = constant_time_equal(*expected, *sig);
  if (!signed_ok || ctx_.clock->wall_ms() / 1000 > *expires) {
    reply.send(error(403, "invalid or expired recording link"));
    return;
  }
  auto row = ctx_.store->calls().recording(call_id);
  if (!row) {
    log::error("cannot read recording row: " + row.error().message, {{"CALL_ID", call_id}});
    reply.send(error(500, "database error"));
    return;
  }
  if (!*row) {
    reply.send(error(404, "this call has no recording"));
    return;
  }
  const std::string path = recording_path(ctx_, **row);
  // Answered from the file descriptor: a long call's recording costs the box no memory to serve.
  auto served = net::file_response(path, "audio/ogg");
  if (!served) {
    const int code = served.error().code;
    if (code != -ENOENT && code != -EISDIR && code != -EINVAL) {
      log::error("cannot serve recording file: " + served.error().message, {{"CALL_ID", call_id}});
      reply.send(error(500, "recording file cannot be served"));
    } else {
      reply.send(error(404, "this call has no recording"));
    }
    return;
  }
  HttpResponse& r = *served;
  r.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + call_id + ".opus\"");
  // The link is a capability: caches between the box and the client must not keep the audio.
  r.headers.emplace_back("Cache-Control", "private, no-store");
  reply.send(std::move(r));
}

}  // namespace osvi::daemon
