// Do-not-disturb service: the one way numbers get on and off an agent's DND list (API, fleet, opt-out), so
// every path normalises the same way and adds idempotently.
//
// Threading: loop thread only (it uses the store).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"
#include "osvi/store/dnd.hpp"

namespace osvi::daemon {

class Store;

// Stateless apart from the store: callers build one where they need it and pass the site's country (which
// a reload may change) with each call.
class DndService {
 public:
  // `extensions`: the box has a SIP line, so a PBX extension is a number that can be dialled (and listed).
  explicit DndService(Store& store, bool extensions = false) : store_(store), extensions_(extensions) {}

  // A free-form number ("98765 43210", "+91 98765-43210", "0091…") to E.164, national numbers read as
  // numbers of country (site.country). -EINVAL with a sentence naming the problem (phone.hpp), -ELIBACC
  // when phone number support is not installed. With `extensions`, a number that is no number of the country
  // but a PBX extension (is_pbx_extension: "201") is kept as it is, as POST /v1/call dials it.
  static Result<std::string> normalize(std::string_view phone, std::string_view country,
                                       bool extensions = false);

  // Idempotent: a number already on the agent's list returns that entry with created = false. The agent is
  // not checked here (callers know which agents exist); source is api | mqtt | opt_out | config.
  Result<DndAdded> add(std::string_view agent_uuid, std::string_view phone, std::string_view country,
                       std::optional<std::string> reason, std::string_view source,
                       std::optional<std::string> call_id = std::nullopt);
  // -ENOENT when the number is not on the agent's list; -EINVAL/-ELIBACC as normalize. Returns the E.164
  // number that was removed.
  Result<std::string> remove(std::string_view agent_uuid, std::string_view phone, std::string_view country);
  // A page of the active list, newest first; search is a literal substring of the stored E.164 text.
  Result<std::vector<DndEntry>> list(std::string_view agent_uuid, std::string_view search, int64_t page,
                                     int64_t per_page, int64_t* total_count);

 private:
  Store& store_;
  bool extensions_ = false;
};

}  // namespace osvi::daemon
