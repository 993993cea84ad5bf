// CampaignService: configuration sync, API create/patch, imports and enqueues (campaigns.hpp).
#include "osvi/campaigns/campaigns.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <set>
#include <string>
#include <utility>

#include "osvi/base/ids.hpp"
#include "osvi/base/log.hpp"
#include "osvi/campaigns/dialer.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/text.hpp"
#include "osvi/store/store.hpp"

namespace osvi::daemon {
namespace {

// Store failures leave as -EIO: the service's -EINVAL/-EEXIST/-ENOENT/-EPERM are the request's problems only.
Error io(const Error& e) {
  return make_error(e.message, -EIO);
}

constexpr const char* kDayNames[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

std::string day_window(int start_min, int end_min) {
  char buf[32];  // room for any int: -Wformat-truncation in Release
  std::snprintf(buf, sizeof buf, "%02d:%02d-%02d:%02d", start_min / 60, start_min % 60, end_min / 60,
                end_min % 60);
  return buf;
}

void add_time_or_null(cJSON* o, const char* name, const std::optional<int64_t>& ms, int offset) {
  if (ms) {
    net::json_add_string(o, name, format_local_iso(*ms, offset));
  } else {
    cJSON_AddNullToObject(o, name);
  }
}

bool same_agent_list(const std::vector<CampaignAgentConfig>& a, const std::vector<CampaignAgentConfig>& b) {
  std::set<std::string> x, y;
  for (const auto& i : a) x.insert(i.agent_uuid);
  for (const auto& i : b) y.insert(i.agent_uuid);
  return x == y;
}

}  // namespace

CampaignConfig campaign_config_of(const CampaignRow& row) {
  CampaignConfig c;
  c.id = row.id;
  c.name = row.name;
  c.status = row.status == "inactive" ? CampaignStatus::inactive : CampaignStatus::active;
  for (const auto& a : row.agents) c.agents.push_back(CampaignAgentConfig{a.agent_uuid, a.active});
  c.starts_at_ms = row.starts_at_ms;
  c.ends_at_ms = row.ends_at_ms;
  c.window_start_min = row.window_start_min;
  c.window_end_min = row.window_end_min;
  c.days_mask = static_cast<uint8_t>(row.days_mask);
  c.is_retry_enabled = row.is_retry_enabled;
  c.retry_threshold = static_cast<unsigned>(row.retry_threshold);
  c.retry_delay_s = static_cast<unsigned>(row.retry_delay_s);
  c.retry_on = row.retry_on;
  c.max_concurrent_per_agent = static_cast<unsigned>(row.max_concurrent_per_agent);
  return c;
}

CampaignRow campaign_row_of(const CampaignConfig& c, std::string_view source) {
  CampaignRow row;
  row.id = c.id;
  row.name = c.name;
  row.status = std::string(to_string(c.status));
  row.source = std::string(source);
  row.is_retry_enabled = c.is_retry_enabled;
  row.retry_threshold = c.retry_threshold;
  row.retry_delay_s = c.retry_delay_s;
  row.retry_on = c.retry_on;
  row.starts_at_ms = c.starts_at_ms;
  row.ends_at_ms = c.ends_at_ms;
  row.window_start_min = c.window_start_min;
  row.window_end_min = c.window_end_min;
  row.days_mask = c.days_mask;
  row.max_concurrent_per_agent = c.max_concurrent_per_agent;
  for (const auto& a : c.agents) row.agents.push_back(CampaignAgentRow{a.agent_uuid, a.active});
  return row;
}

cJSON* campaign_definition_json(const CampaignConfig& c, int offset_minutes) {
  cJSON* o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "id", static_cast<double>(c.id));
  net::json_add_string(o, "name", c.name);
  net::json_add_string(o, "status", to_string(c.status));
  cJSON* agents = cJSON_AddArrayToObject(o, "agents");
  for (const auto& a : c.agents) {
    cJSON* item = cJSON_CreateObject();
    net::json_add_string(item, "agent_uuid", a.agent_uuid);
    cJSON_AddBoolToObject(item, "active", a.active);
    cJSON_AddItemToArray(agents, item);
  }
  cJSON* schedule = cJSON_AddObjectToObject(o, "schedule");
  add_time_or_null(schedule, "starts_at", c.starts_at_ms, offset_minutes);
  add_time_or_null(schedule, "ends_at", c.ends_at_ms, offset_minutes);
  net::json_add_string(schedule, "window", day_window(c.window_start_min, c.window_end_min));
  cJSON* days = cJSON_AddArrayToObject(schedule, "days");
  for (int d = 0; d < 7; ++d) {
    if ((c.days_mask & (1 << d)) != 0) cJSON_AddItemToArray(days, cJSON_CreateString(kDayNames[d]));
  }
  cJSON_AddBoolToObject(o, "is_retry_enabled", c.is_retry_enabled);
  cJSON_AddNumberToObject(o, "retry_threshold", c.retry_threshold);
  cJSON_AddNumberToObject(o, "retry_delay", c.retry_delay_s);
  cJSON* retry_on = cJSON_AddArrayToObject(o, "retry_on");
  for (const auto& s : c.retry_on) cJSON_AddItemToArray(retry_on, cJSON_CreateString(s.c_str()));
  cJSON_AddNumberToObject(o, "max_concurrent_calls_per_agent", c.max_concurrent_per_agent);
  return o;
}

std::string campaign_definition_hash(const CampaignConfig& c) {
  net::JsonPtr json(campaign_definition_json(c, 0));
  return fnv1a_hex(net::json_print(json.get()));
}

void CampaignService::poke() {
  if (dialer_ != nullptr) dialer_->poke();
}

ImportOptions CampaignService::fill(ImportOptions options) const {
  if (config_ != nullptr) {
    options.default_region = config_->site.country;
    options.site_time_zone = config_->site.time_zone;
  }
  options.can_dial = !can_dial_ || can_dial_();
  return options;
}

Status CampaignService::sync(const Config& config) {
  config_ = &config;
  auto existing = store_.campaigns().list();
  if (!existing.ok()) return io(existing.error());
  bool activated = false;
  std::set<int64_t> listed;
  Status s = store_.database().transaction([&]() -> Status {
    for (const CampaignConfig& c : config.campaigns) {
      listed.insert(c.id);
      const std::string hash = campaign_definition_hash(c);
      auto old = std::find_if(existing->begin(), existing->end(),
                              [&](const CampaignRow& r) { return r.id == c.id; });
      if (old != existing->end() && old->source == "config" && old->definition_hash == hash) continue;
      if (old != existing->end() && old->source == "api") {
        log::warning("campaign " + std::to_string(c.id) +
                     " was created through the API; the configuration now defines it and replaces it");
      }
      CampaignRow row = campaign_row_of(c, "config");
      row.definition_hash = hash;
      if (old != existing->end()) row.created_at_ms = old->created_at_ms;
      if (Status up = store_.campaigns().upsert(row); !up.ok()) return up;
      if (row.status == "active") activated = true;
    }
    for (const CampaignRow& old : *existing) {
      if (old.source != "config" || listed.contains(old.id)) continue;
      if (old.status == "inactive" && old.definition_hash.empty()) continue;
      // Gone from the configuration: paused with its queue, and marked so that coming back re-applies it.
      CampaignRow row = old;
      row.status = "inactive";
      row.definition_hash.clear();
      if (Status up = store_.campaigns().upsert(row); !up.ok()) return up;
      log::info("campaign " + std::to_string(old.id) +
                " left the configuration: set inactive, its queue kept");
    }
    return {};
  });
  if (!s.ok()) return make_error("syncing the configuration's campaigns: " + s.error().message, -EIO);
  if (activated) poke();
  return {};
}

Result<CampaignRow> CampaignService::create(const cJSON* body) {
  auto parsed = parse_campaign(body);
  if (!parsed.ok()) return make_error(parsed.error().message, -EINVAL);
  if (config_ != nullptr) {
    if (Status s = check_campaign_agents(*parsed, config_->agents); !s.ok()) {
      return make_error(s.error().message, -EINVAL);
    }
  }
  auto old = store_.campaigns().get(parsed->id);
  if (!old.ok()) return io(old.error());
  if (old->has_value()) {
    return make_error("id: campaign " + std::to_string(parsed->id) + " already exists" +
                          ((*old)->source == "config" ? " (defined by the configuration)" : ""),
                      -EEXIST);
  }
  CampaignRow row = campaign_row_of(*parsed, "api");
  row.definition_hash = campaign_definition_hash(*parsed);
  if (Status s = store_.campaigns().upsert(row); !s.ok()) return io(s.error());
  auto back = store_.campaigns().get(row.id);
  if (!back.ok()) return io(back.error());
  if (!back->has_value()) return make_error("campaign " + std::to_string(row.id) + " vanished", -EIO);
  return std::move(**back);
}

Result<CampaignRow> CampaignService::patch(int64_t id, const cJSON* body) {
  auto old = store_.campaigns().get(id);
  if (!old.ok()) return io(old.error());
  if (!old->has_value()) return make_error("campaign " + std::to_string(id) + " does not exist", -ENOENT);
  const CampaignRow& row = **old;
  const CampaignConfig base = campaign_config_of(row);
  if (row.source == "config") {
    // The definition belongs to the configuration file; only the runtime switches are the API's.
    const cJSON* item = nullptr;
    cJSON_ArrayForEach(item, body) {
      const std::string key = item->string != nullptr ? item->string : "";
      if (key == "status" || key == "agents") continue;
      if (key == "id" && cJSON_IsNumber(item) && item->valuedouble == static_cast<double>(id)) continue;
      return make_error(key + ": campaign " + std::to_string(id) +
                            " is defined by the configuration; only status and the agents' active flags may "
                            "change through the API (edit the configuration for the rest)",
                        -EPERM);
    }
  }
  auto parsed = parse_campaign(body, &base);
  if (!parsed.ok()) return make_error(parsed.error().message, -EINVAL);
  if (row.source == "config" && !same_agent_list(parsed->agents, base.agents)) {
    return make_error(
        "agents: campaign " + std::to_string(id) +
            " is defined by the configuration; its agents may be switched (active) but not added "
            "or removed",
        -EPERM);
  }
  if (config_ != nullptr && row.source != "config") {
    if (Status s = check_campaign_agents(*parsed, config_->agents); !s.ok()) {
      return make_error(s.error().message, -EINVAL);
    }
  }
  CampaignRow next = campaign_row_of(*parsed, row.source);
  next.created_at_ms = row.created_at_ms;
  // A configuration campaign keeps the hash it was applied from: the switches survive reloads.
  next.definition_hash = row.source == "config" ? row.definition_hash : campaign_definition_hash(*parsed);
  if (Status s = store_.campaigns().upsert(next); !s.ok()) return io(s.error());
  bool woke = next.status == "active" && row.status != "active";
  for (const auto& a : next.agents) {
    auto was = std::find_if(row.agents.begin(), row.agents.end(),
                            [&](const CampaignAgentRow& o) { return o.agent_uuid == a.agent_uuid; });
    if (a.active && (was == row.agents.end() || !was->active)) woke = true;
  }
  if (woke) poke();
  auto back = store_.campaigns().get(id);
  if (!back.ok()) return io(back.error());
  if (!back->has_value()) return make_error("campaign " + std::to_string(id) + " vanished", -EIO);
  return std::move(**back);
}

Result<std::optional<CampaignRow>> CampaignService::get(int64_t id) {
  return store_.campaigns().get(id);
}

Result<std::vector<CampaignRow>> CampaignService::list() {
  return store_.campaigns().list();
}

Result<std::unique_ptr<ContactImport>> CampaignService::begin_import(ImportOptions options,
                                                                     std::optional<ImportResult>* replay) {
  return ContactImport::begin(store_, zones_, fill(std::move(options)), replay);
}

void CampaignService::finished(const ImportResult& result) {
  if (result.enqueued && result.contacts_accepted > 0) poke();
}

Result<ImportResult> CampaignService::import_json(ImportOptions options, const cJSON* contacts) {
  std::optional<ImportResult> replay;
  auto import = begin_import(std::move(options), &replay);
  if (!import.ok()) return import.error();
  if (!*import) return std::move(*replay);
  int64_t index = 0;
  const cJSON* item = nullptr;
  cJSON_ArrayForEach(item, contacts) {
    (*import)->add_json(item, index++);
  }
  auto result = (*import)->finish();
  if (result.ok()) finished(*result);
  return result;
}

Result<int64_t> CampaignService::enqueue_upload(int64_t campaign_id, int64_t upload_id) {
  auto upload = store_.campaigns().upload(upload_id);
  if (!upload.ok()) return io(upload.error());
  if (!upload->has_value() || (*upload)->campaign_id != campaign_id) {
    return make_error(
        "campaign " + std::to_string(campaign_id) + " has no upload " + std::to_string(upload_id), -ENOENT);
  }
  if (can_dial_ && !can_dial_()) {
    return make_error("enqueue: this box has no outbound line that can place calls", -ENODEV);
  }
  auto moved = store_.campaigns().enqueue_upload(upload_id);
  if (!moved.ok()) return io(moved.error());
  if (*moved > 0) poke();
  return *moved;
}

}  // namespace osvi::daemon
