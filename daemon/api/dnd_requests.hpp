// Validation of the DND endpoints' bodies and query strings (spec 3.9-3.11), as pure functions like
// requests.hpp: no store, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "osvi/net/json.hpp"
#include "requests.hpp"

namespace osvi::daemon {

inline constexpr size_t kMaxDndReasonChars = 500;
inline constexpr int64_t kDefaultPerPage = 25;

// POST /v1/dnd_numbers. phone is as the client wrote it (normalised later, with the site's country).
struct DndAddRequest {
  std::string agent_uuid;
  std::string phone;
  std::optional<std::string> reason;
};
// Keys other than agent_uuid, phone, reason are refused, named: nothing would keep them (unlike POST
// /v1/call, which stores its whole body as call_trigger_data). JSON null counts as absent.
std::optional<Invalid> parse_dnd_add_request(const cJSON* body, DndAddRequest* out);

// GET /v1/dnd_numbers. search: separators dropped, then digits and '+' only (empty = no filter).
struct DndListQuery {
  std::string agent_uuid;
  std::string search;
  int64_t page = 1;
  int64_t per_page = kDefaultPerPage;
};
std::optional<Invalid> parse_dnd_list_query(const QueryParams& query, DndListQuery* out);

// DELETE /v1/dnd_numbers. *missing is set when the failure is a missing or empty parameter: the spec's
// message "param is missing or the value is empty: <name>" (ErrorBadRequest).
struct DndDeleteQuery {
  std::string agent_uuid;
  std::string phone;
};
std::optional<Invalid> parse_dnd_delete_query(const QueryParams& query, DndDeleteQuery* out, bool* missing);

}  // namespace osvi::daemon
