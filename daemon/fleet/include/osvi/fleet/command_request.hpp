// Fleet command requests: the checks every request passes before a command may act, kept pure (no store, no
// loop, no log) so that the libFuzzer target tests/fuzz/mqtt_command_fuzz.cpp compiles them on their own.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/net/json.hpp"
#include "osvi/net/text.hpp"

namespace osvi::daemon {

// Bounds the answers keep whatever a request holds.
inline constexpr size_t kMaxCommandNameBytes = 64;
inline constexpr size_t kMaxCorrelationIdBytes = 256;
inline constexpr size_t kMaxReplyTopicBytes = 512;
inline constexpr size_t kMaxCommandReasonBytes = 512;
// campaign_contacts: the API's per-request limit, and the key a fleet scheduler retries with.
inline constexpr size_t kMaxCampaignContactsPerCommand = 10000;
inline constexpr size_t kMinIdempotencyKeyBytes = 8;
inline constexpr size_t kMaxIdempotencyKeyBytes = 128;

struct CommandPolicy {
  std::string prefix;  // <topic_prefix>/<site>/<device>
  // mqtt.commands.token. Empty: no command is authenticated, so every one is refused (presence, telemetry and
  // the outbox do not depend on it).
  std::string token;
  size_t max_request_bytes = 262144;
};

struct CommandRequest {
  std::string name;  // the <name> of <prefix>/cmd/<name>/req
  // The request object, set only once the request is authenticated (even when a field check failed, so the
  // caller can add its own reasons); its "token" member removed, so nothing downstream (e.g. a call's
  // call_trigger_data) ever stores or echoes the secret.
  net::JsonPtr body;
  bool authenticated = false;
  std::string correlation_id;  // echoed in the answer; empty when absent or not a short string
  // Where the answer goes: always <prefix>/cmd/<name>/res or a topic under <prefix>/reply/; empty when the
  // name itself is unusable in a topic (no answer then, the request is only logged).
  std::string reply_topic;
  std::vector<std::string> reasons;  // non-empty: rejected, and the command must not act
  bool ok() const { return reasons.empty(); }
};

// The topic under which a requester may ask for its answer: <prefix>/reply/.
std::string command_reply_prefix(std::string_view prefix);
// A command name the box answers to: 1 to kMaxCommandNameBytes of A-Z a-z 0-9 _ -.
bool is_command_name(std::string_view name);
// True when topic lies under <prefix>/reply/ with at least one more level, printable ASCII without wildcards,
// at most kMaxReplyTopicBytes.
bool is_allowed_reply_topic(std::string_view prefix, std::string_view topic);
// The token check shared by commands and desired-configuration documents: nullopt when doc carries the
// configured token (compared in constant time), else the reason it is refused.
std::optional<std::string> check_command_token(std::string_view configured, const cJSON* doc);

// Why a payload failed the strict JSON gate, as a reason a reply may carry: printable ASCII only.
std::string json_refusal_reason(const net::JsonRefusal& refusal);

// Parses and checks one request: size, JSON object, authentication, then (only once authenticated) the
// requested reply topic (MQTT v5 response_topic, else "reply_to") and the fields of the named command:
// ping {}, log_level {level}, dnd {action, agent_uuid, phone, reason?}, call {agent_uuid, phone_number, …},
// config {config, version?}, campaign_contacts {campaign_id, agent_uuid, contacts[1..10000] of objects,
// enqueue?, idempotency_key}. What needs the box's state (is the agent known, the DND list) is checked by the
// caller. An unauthenticated request gets exactly one reason and the default reply topic.
CommandRequest check_command_request(const CommandPolicy& policy, std::string_view name,
                                     std::string_view payload, std::string_view response_topic);

}  // namespace osvi::daemon
