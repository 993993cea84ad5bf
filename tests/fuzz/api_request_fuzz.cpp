// libFuzzer target for the JSON request validation of the write endpoints (POST /v1/call, POST /call, the log
// level, POST /v1/dnd_numbers): the strict body parse, then each endpoint's checks; asserts what an accepted
// request promises.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dnd_requests.hpp"
#include "fuzz_promise.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/text.hpp"
#include "requests.hpp"

namespace {

using namespace osvi;

void check_tree(const cJSON* item) {
  if (cJSON_IsString(item)) require(net::clean_text(item->valuestring));
  for (const cJSON* c = item->child; c; c = c->next) {
    if (cJSON_IsObject(item)) require(c->string && net::clean_text(c->string));
    check_tree(c);
  }
}

void check_text(const std::optional<std::string>& s, size_t max_chars) {
  if (!s) return;
  require(net::clean_text(*s));
  require(net::utf8_length(*s) <= max_chars);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // 0: POST /v1/call, 1: POST /call, 2: PUT /v1/system/log_level, 3: POST /v1/dnd_numbers
  const int endpoint = data[0] % 4;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);

  net::JsonRefusal why;
  net::JsonPtr root = net::json_parse_request(body, &why);
  if (!root) {
    if (why.syntax) {
      check_message("request body is not valid JSON: " + why.message);
    } else {
      check_message(why.field + ": " + why.message);
      require(!why.late);
    }
    return 0;
  }
  check_tree(root.get());
  // What is stored (call_trigger_data, the JSON-shaped fields) is printed from the tree: it must parse back
  // through the same gate, so nothing the box stores can be refused (or differ) when it is read again.
  const std::string printed = net::json_print(root.get());
  require(net::utf8_valid(printed));
  net::JsonRefusal again;
  net::JsonPtr reparsed = net::json_parse_request(printed, &again);
  require(reparsed != nullptr);
  require(net::json_print(reparsed.get()) == printed);

  if (endpoint == 2) {
    std::string level;
    if (auto bad = daemon::parse_log_level_request(root.get(), &level)) {
      check_message(bad->message);
    } else {
      require(level == "err" || level == "error" || level == "warning" || level == "warn" ||
              level == "notice" || level == "info" || level == "debug");
    }
    return 0;
  }
  if (endpoint == 3) {
    daemon::DndAddRequest dnd;
    if (auto bad = daemon::parse_dnd_add_request(root.get(), &dnd)) {
      check_message(bad->message);
      return 0;
    }
    // Only the three known keys, each within its bound.
    for (const cJSON* c = root->child; c; c = c->next) {
      const std::string_view k = c->string;
      require(k == "agent_uuid" || k == "phone" || k == "reason");
    }
    require(!dnd.agent_uuid.empty() && net::clean_text(dnd.agent_uuid));
    require(net::utf8_length(dnd.agent_uuid) <= daemon::kMaxAgentUuidChars);
    require(!dnd.phone.empty() && net::clean_text(dnd.phone));
    require(net::utf8_length(dnd.phone) <= daemon::kMaxPhoneNumberChars);
    check_text(dnd.reason, daemon::kMaxDndReasonChars);
    return 0;
  }
  daemon::PlaceCallRequest req;
  std::string country;
  if (auto bad = daemon::parse_call_request(root.get(), endpoint == 1, &req, &country)) {
    check_message(bad->message);
    return 0;
  }
  require(cJSON_IsObject(root.get()));
  require(!req.agent_uuid.empty() && net::clean_text(req.agent_uuid));
  require(net::utf8_length(req.agent_uuid) <= daemon::kMaxAgentUuidChars);
  require(req.phone_e164.size() >= 2 && req.phone_e164[0] == '+');
  check_text(req.person_name, daemon::kMaxPersonNameChars);
  check_text(req.system_prompt, daemon::kMaxSystemPromptChars);
  check_text(req.webhook_url, daemon::kMaxWebhookUrlChars);
  check_text(req.initial_greeting, daemon::kMaxGreetingChars);
  if (endpoint == 1) require(!req.initial_greeting && !req.call_config_overrides && !req.data_extraction);
  if (req.additional_data) {
    require(req.additional_data->size() <= daemon::kMaxAdditionalDataBytes);
    require(net::json_parse_request(*req.additional_data, &again) != nullptr);
  }
  if (req.call_config_overrides) {
    require(req.call_config_overrides->size() <= daemon::kMaxOverridesBytes);
    require(net::json_parse_request(*req.call_config_overrides, &again) != nullptr);
  }
  if (req.max_call_duration_seconds)
    require(*req.max_call_duration_seconds >= 10 && *req.max_call_duration_seconds <= 3600);
  if (req.data_extraction) {
    net::JsonPtr items = net::json_parse_request(*req.data_extraction, &again);
    require(items && cJSON_IsArray(items.get()));
    require(static_cast<size_t>(cJSON_GetArraySize(items.get())) <= daemon::kMaxExtractionItems);
  }
  return 0;
}
