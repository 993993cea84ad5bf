// libFuzzer target for the request URL: the percent-decoder the HTTP server uses, its query split
// (net::http::parse_query), the query check every endpoint applies, GET /v1/calls's parameter parsing and the
// DND endpoints' (GET and DELETE /v1/dnd_numbers).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dnd_requests.hpp"
#include "fuzz_promise.hpp"
#include "osvi/net/http_parser.hpp"
#include "osvi/net/text.hpp"
#include "requests.hpp"

namespace {

using namespace osvi;

// The server's decoding of one path or query component, on a C string.
std::string decode(std::string_view raw) {
  std::string s(raw);
  const size_t nul = s.find('\0');
  if (nul != std::string::npos) s.resize(nul);  // the request line cannot carry a raw NUL to this point
  s.push_back('\0');
  const size_t n = net::url_unescape(s.data());
  require(n <= raw.size());
  s.resize(n);
  require(s.find('\0') == std::string::npos);  // a decoded NUL would cut a C string
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view url(reinterpret_cast<const char*>(data), size);
  const size_t q = url.find('?');
  const std::string path = decode(url.substr(0, q));
  // %00 anywhere in the raw path must leave the decoded path unclean (so it is 404, never a shorter path).
  const std::string_view raw_path = url.substr(0, std::min(q, url.find('\0')));
  if (raw_path.find("%00") != std::string_view::npos) require(!net::clean_text(path));
  (void)net::quoted(path);

  // The query split and decoded as the HTTP server does it (net/http_parser.hpp).
  daemon::QueryParams query;
  if (q != std::string_view::npos) query = net::http::parse_query(url.substr(q + 1));
  for (const auto& [k, v] : query)
    require(k.find('\0') == std::string::npos && v.find('\0') == std::string::npos);
  daemon::DndListQuery list;
  if (auto bad = daemon::parse_dnd_list_query(query, &list)) {
    check_message(bad->message);
  } else {
    require(!list.agent_uuid.empty() && net::utf8_length(list.agent_uuid) <= daemon::kMaxAgentUuidChars);
    for (char c : list.search) require((c >= '0' && c <= '9') || c == '+');
    require(list.page >= 1 && list.per_page >= 1 && list.per_page <= daemon::kMaxPerPage);
  }
  daemon::DndDeleteQuery del;
  bool missing = false;
  if (auto bad = daemon::parse_dnd_delete_query(query, &del, &missing)) {
    check_message(bad->message);
    if (missing) require(bad->message.starts_with("param is missing or the value is empty: "));
  } else {
    require(!del.agent_uuid.empty() && net::clean_text(del.agent_uuid));
    require(!del.phone.empty() && net::clean_text(del.phone));
    require(net::utf8_length(del.phone) <= daemon::kMaxPhoneNumberChars);
  }
  const int offset = static_cast<int>(size % 1681) - 840;  // any site offset, -14:00..+14:00
  daemon::CallFilter f;
  if (auto bad = daemon::parse_calls_query(query, offset, &f)) {
    check_message(bad->message);
    return 0;
  }
  require(!daemon::check_query(query));
  for (const auto& [k, v] : query) require(net::clean_text(k) && net::clean_text(v));
  for (const std::string& s : f.statuses) {
    require(s == "picked" || s == "not_picked" || s == "failed" || s == "busy" || s == "voicemail" ||
            s == "in_progress");
  }
  if (f.agent_uuid) require(net::clean_text(*f.agent_uuid) && net::utf8_length(*f.agent_uuid) <= 64);
  if (f.phone_contains) require(net::clean_text(*f.phone_contains) && f.phone_contains->size() <= 32 * 4);
  if (f.call_type) require(*f.call_type == "inbound" || *f.call_type == "outbound");
  if (f.picked_from_ms && f.picked_to_ms) require(*f.picked_from_ms <= *f.picked_to_ms);
  require(f.page >= 1 && f.per_page >= 1 && f.per_page <= daemon::kMaxPerPage);
  if (f.campaign_id) require(*f.campaign_id >= 1);
  return 0;
}
