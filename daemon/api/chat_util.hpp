// What the chat handler files (chat.cpp, chat_legacy.cpp) share: bounds, member readers, error mapping.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "osvi/config/config.hpp"
#include "osvi/net/http_server.hpp"
#include "osvi/net/json.hpp"
#include "osvi/result.hpp"
#include "requests.hpp"

namespace osvi::daemon {

// docs/api.md, chat "Limits" (characters are Unicode code points).
inline constexpr size_t kMaxChatTextChars = 4000;  // content, message, a context entry
inline constexpr size_t kMaxChatCustomerIdChars = 256;
inline constexpr size_t kMaxChatOperatorChars = 200;           // operator / active_human
inline constexpr size_t kMaxChatContextItems = 50;             // given to POST /v1/chat/session (5 are kept)
inline constexpr size_t kMaxChatInputFieldsBytes = 16 * 1024;  // compact JSON

namespace chat_api {

// The service's error codes as API responses (chat_service.hpp): 404, 422, 429, 500.
net::HttpResponse error_response(const Error& e);
bool call_text_empty(std::string_view s);  // only blanks
// A string member: absent or null is nullopt (or "required"); a required one must not be blank.
std::optional<Invalid> text_member(const cJSON* body, const char* name, bool required, size_t max_chars,
                                   std::optional<std::string>* out);
std::optional<Invalid> agent_member(const cJSON* body, std::string* agent_uuid);

}  // namespace chat_api
}  // namespace osvi::daemon
