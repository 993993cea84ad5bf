// Post-call webhook payloads: pure functions from a final call record (with its transcript and its agent's
// configuration) to the deliveries the queue sends — the per-call webhook_url body (spec 4.2, 10) and the
// agent's integrations (spec 4.1). The exact bodies are documented in docs/api.md ("Post-call webhooks").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/config/config.hpp"
#include "osvi/net/json.hpp"
#include "osvi/store/calls.hpp"
#include "osvi/store/webhooks.hpp"

namespace osvi::daemon {

// The legacy "chat" string: one line per agent, user and operator turn ("Agent: …", "User: …",
// "Operator: …"), joined with "\n"; tool turns are left out and a turn's own line breaks become spaces.
std::string chat_text(const std::vector<TranscriptTurn>& turns);

// call_trigger_data of an outbound call: {"phone_number": E.164, "person_name" (when known), then every key
// of the call's additional_data (the API's object or a campaign contact's extra columns) not already set}.
// Null for an inbound call (nothing triggered it).
net::JsonPtr trigger_data(const CallRecord& call);

// The per-call webhook_url body: every key always present, absent values null (docs/api.md).
net::JsonPtr call_webhook_body(const CallRecord& call, const std::vector<TranscriptTurn>& turns,
                               int utc_offset_minutes);

// The names {{placeholders}} resolve against: every key of call_webhook_body, then the trigger data's keys
// that are not among them.
net::JsonPtr template_variables(const CallRecord& call, const std::vector<TranscriptTurn>& turns,
                                int utc_offset_minutes);

// "{{name}}" (spaces inside the braces ignored) resolves to the variable `name`, or to a path into objects
// ("data_capture.email"). Unresolved tokens stay as written.
// In a URL: the value's text (a string as is, anything else its compact JSON), percent-encoded (RFC 3986
// unreserved characters kept).
std::string fill_url(std::string_view url, const cJSON* variables);
// In a custom template: a string that is exactly one token becomes the variable's JSON value (of any type);
// tokens inside a longer string are replaced by the value's text as in a URL, not encoded. Object keys are
// not templated.
net::JsonPtr fill_template(const cJSON* tmpl, const cJSON* variables);

// The Auto-mode body of an integration: the enabled sections' keys, an enabled section with no data left
// out.
net::JsonPtr auto_body(const IntegrationConfig::Sections& sections, const CallRecord& call);

// scheme://host:port of an http(s) URL (host lower-case, userinfo dropped, default port made explicit);
// nullopt when it is not one.
std::optional<std::string> url_destination(std::string_view url);

// "msg_" + 26 characters (Crockford base32 of a UUIDv7 at now_ms): time-ordered, unique.
std::string new_webhook_id(int64_t now_ms);

struct PayloadOptions {
  int utc_offset_minutes = 0;
  int64_t now_ms = 0;
  int64_t horizon_s = 24 * 3600;  // expires_at = now + horizon
};

// Every delivery one final call owes, ready for WebhookDeliveriesRepo::enqueue:
// - the call's webhook_url (when set), whatever its status;
// - each active integration of `agent` (may be null: an agent no longer configured) when the call was
//   picked and its analysis ran (analysis_ran: the job ended done or failed, not skipped).
std::vector<WebhookDelivery> deliveries_for_call(const CallRecord& call,
                                                 const std::vector<TranscriptTurn>& turns,
                                                 const AgentConfig* agent, bool analysis_ran,
                                                 const PayloadOptions& options);

}  // namespace osvi::daemon
