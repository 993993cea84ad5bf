// CallService: what the API handlers and fleet commands may ask of the calls engine (place a call), so
// they depend on this small interface and not on the engine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "osvi/result.hpp"
#include "osvi/store/calls.hpp"

namespace osvi::daemon {

// Bounds on what a call request may carry (docs/api.md, POST /v1/call): additional_data is rendered into
// the prompt of every model request of the call; call_trigger_data is the request as received, stored with
// the call record. api.max_body_bytes alone would let one call store megabytes.
inline constexpr size_t kMaxAdditionalDataBytes = 16 * 1024;  // compact JSON
inline constexpr size_t kMaxTriggerDataBytes = 64 * 1024;     // compact JSON

// A validated outbound call: the number is already E.164 (or a PBX extension, for a box with a SIP line), the
// agent exists and is an active voice agent, the overrides are in range. JSON-shaped fields hold compact JSON
// text.
struct PlaceCallRequest {
  std::string agent_uuid;
  std::string phone_e164;  // E.164, or a PBX extension (is_pbx_extension) that only a SIP line dials
  std::optional<std::string> person_name;
  std::optional<std::string> system_prompt;     // replaces the agent's prompt for this call
  std::optional<std::string> initial_greeting;  // <= 2000 characters
  std::optional<std::string> webhook_url;
  std::optional<std::string> additional_data;        // JSON object: {{variables}}
  std::optional<std::string> call_config_overrides;  // JSON object as given (stored on the call)
  std::optional<int64_t> max_call_duration_seconds;  // from call_config_overrides
  std::optional<bool> enable_callback;               // from call_config_overrides
  std::optional<std::string> data_extraction;        // JSON array
  std::optional<std::string> call_trigger_data;      // JSON object: the request as received
  std::optional<int64_t> campaign_id;
  std::optional<int64_t> campaign_upload_id;
  // Retries of the call this one repeats (a retry_config retry: the first call's retry_count + 1); stored on
  // the record as retry_count.
  int64_t retry_count = 0;
  // The call id, chosen by the caller (a UUID): the dialler records its attempt under it before the line
  // dials, so a restart finds the call an attempt placed. Unset: the engine makes one (UUIDv7).
  std::optional<std::string> call_id;
  std::string source = "api";  // api | legacy_api | mqtt | campaign | callback | retry (journal field)
};

// Told the final record of every call placed or answered, once it is stored.
using CallFinishedListener = std::function<void(const CallRecord&)>;

class CallService {
 public:
  virtual ~CallService() = default;
  // Creates the call record (status in_progress) and places the call on a free line, or queues it.
  // Returns the call id. Errors (Error::code):
  //   -EPERM   the number is on the agent's do-not-disturb list          → API 400
  //   -ENOENT  the agent is unknown, inactive or not a voice agent       → API 400
  //   -EBUSY   every line is busy and the queue is full                  → API 503 (Retry-After)
  //   -ENODEV  the box has no line that can place calls                  → API 503
  //   -EMSGSIZE additional_data or call_trigger_data over its bound above  → API 400 / 413
  //   -EPROTONOSUPPORT the number is a PBX extension and no SIP line is configured → API 400
  //   -EINVAL  request.call_id is not a UUID
  //   -EEXIST  a call with request.call_id exists already (nothing is dialled)
  //   other    the store failed                                          → API 500
  // The number is checked against the do-not-disturb list again when a queued call reaches a line: one put
  // on the list meanwhile is not dialled (the record ends failed, call_ended_reason "do_not_disturb").
  virtual Result<std::string> place_call(const PlaceCallRequest& request) = 0;
  // Lines that could dial right now: idle, without a call, their audio usable. A place_call() while this is
  // above 0 dials at once rather than queueing.
  virtual size_t idle_lines() const = 0;
  // Whether PBX extensions can be dialled: a SIP line is configured (docs/api.md, POST /v1/call).
  virtual bool dials_extensions() const { return false; }
  // Every call's final record once it is stored — answered, failed, or closed before it reached a line
  // (queued and then refused, on the do-not-disturb list at the moment of dialling) — delivered on the loop
  // after the event that ended it (never from inside place_call() or a line event, so a listener may place
  // the next call). Not for calls closed by the engine's shutdown. Several listeners may be added; returns
  // the handle for remove_finished_listener(). A listener must be removed before what it captures dies.
  virtual int add_finished_listener(CallFinishedListener listener) = 0;
  virtual void remove_finished_listener(int handle) = 0;
};

}  // namespace osvi::daemon
