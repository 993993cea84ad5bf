// DndService: normalisation to E.164, then the store's per-agent DND list (dnd.hpp).
#include "osvi/campaigns/dnd.hpp"

#include <cerrno>

#include "osvi/base/phone.hpp"
#include "osvi/store/store.hpp"

namespace osvi::daemon {

Result<std::string> DndService::normalize(std::string_view phone, std::string_view country, bool extensions) {
  auto e164 = normalize_any_phone(phone, country);
  if (!e164 && extensions && e164.error().code == -EINVAL && is_pbx_extension(phone))
    return std::string(phone);
  return e164;
}

Result<DndAdded> DndService::add(std::string_view agent_uuid, std::string_view phone,
                                 std::string_view country, std::optional<std::string> reason,
                                 std::string_view source, std::optional<std::string> call_id) {
  auto e164 = normalize(phone, country, extensions_);
  if (!e164) return e164.error();
  return store_.dnd().add_entry(agent_uuid, *e164, std::move(reason), source, std::move(call_id));
}

Result<std::string> DndService::remove(std::string_view agent_uuid, std::string_view phone,
                                       std::string_view country) {
  auto e164 = normalize(phone, country, extensions_);
  if (!e164) return e164.error();
  if (Status s = store_.dnd().remove(agent_uuid, *e164); !s) return s.error();
  return std::move(*e164);
}

Result<std::vector<DndEntry>> DndService::list(std::string_view agent_uuid, std::string_view search,
                                               int64_t page, int64_t per_page, int64_t* total_count) {
  return store_.dnd().list(agent_uuid, search, page, per_page, total_count);
}

}  // namespace osvi::daemon
