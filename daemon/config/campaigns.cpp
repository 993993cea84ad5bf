// Configuration: the "compliance" floor and the "campaigns" section; parse_campaign() also reads the API
// extension's POST/PATCH bodies, so both speak one shape and one set of messages.
#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "checks.hpp"
#include "osvi/base/ids.hpp"
#include "osvi/config/config.hpp"
#include "reader.hpp"
#include "sections.hpp"

namespace osvi::daemon {
namespace {

using config_detail::Item;
using config_detail::json_type_name;
using config_detail::ObjectReader;
using config_detail::Problems;
using config_detail::quote;

// JSON numbers are doubles: above 2^53 an id would no longer round-trip exactly.
constexpr int64_t kMaxCampaignId = (int64_t{1} << 53) - 1;
constexpr size_t kMaxCampaignNameChars = 200;
constexpr std::array<std::string_view, 7> kDayNames = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
constexpr std::array<std::string_view, 4> kRetryStatuses = {"not_picked", "busy", "failed", "voicemail"};

std::string format_day_window(int start_min, int end_min) {
  std::string out = "00:00-00:00";
  auto put2 = [&out](size_t at, int v) {
    out[at] = static_cast<char>('0' + v / 10 % 10);
    out[at + 1] = static_cast<char>('0' + v % 10);
  };
  put2(0, start_min / 60);
  put2(3, start_min % 60);
  put2(6, end_min / 60);
  put2(9, end_min % 60);
  return out;
}

// The key is present and holds an array: an array key given as something else is already reported by
// ObjectReader::array(), and an absent one keeps its current value.
bool array_given(const ObjectReader& r, const char* key) {
  return r.node() && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(r.node(), key));
}

// Strings of a closed set, each at most once; false when an item was refused (already reported).
bool read_name_list(const std::vector<Item>& items, std::span<const std::string_view> allowed,
                    std::vector<std::string>& out, Problems& p) {
  bool ok = true;
  for (const Item& item : items) {
    if (!cJSON_IsString(item.node)) {
      p.add(item.path, "expected a string, got " + std::string(json_type_name(item.node)));
      ok = false;
      continue;
    }
    const std::string name = item.node->valuestring;
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      p.add(item.path, "must be " + config_detail::one_of_text(allowed) + ", got " + quote(name));
      ok = false;
    } else if (std::find(out.begin(), out.end(), name) != out.end()) {
      p.add(item.path, quote(name) + " is listed twice");
      ok = false;
    } else {
      out.push_back(name);
    }
  }
  return ok;
}

// starts_at / ends_at: absent keeps the current value, null clears it, a string must carry its offset (a
// campaign on a fleet of boxes must not start at a different instant on each).
void read_instant(ObjectReader& s, const char* key, std::optional<int64_t>& out) {
  const cJSON* v = s.any(key);
  if (!v) return;
  if (cJSON_IsNull(v)) {
    out.reset();
    return;
  }
  if (!cJSON_IsString(v)) {
    s.error(key, "expected an ISO-8601 time or null, got " + std::string(json_type_name(v)));
    return;
  }
  const auto t = parse_iso_time(v->valuestring, 0);
  if (!t || t->date_only || !t->has_zone) {
    s.error(
        key,
        "expected an ISO-8601 time with its offset, such as \"2026-06-01T09:00:00+05:30\", or null, got " +
            quote(v->valuestring));
    return;
  }
  out = t->unix_ms;
}

void parse_schedule(ObjectReader s, CampaignConfig& c) {
  Problems& p = s.problems();
  const size_t before = p.size();
  read_instant(s, "starts_at", c.starts_at_ms);
  read_instant(s, "ends_at", c.ends_at_ms);
  if (p.size() == before && c.starts_at_ms && c.ends_at_ms && *c.ends_at_ms <= *c.starts_at_ms) {
    // A PATCH that moves only the start names the key it gave.
    if (s.has("starts_at") && !s.has("ends_at"))
      s.error("starts_at", "must be before schedule.ends_at");
    else
      s.error("ends_at", "must be after schedule.starts_at");
  }

  const std::string window = s.str("window", format_day_window(c.window_start_min, c.window_end_min));
  std::string why;
  if (!parse_day_window(window, &c.window_start_min, &c.window_end_min, &why)) s.error("window", why);

  const bool days_given = array_given(s, "days");
  const std::vector<Item> days = s.array("days");
  if (days_given) {
    std::vector<std::string> names;
    if (read_name_list(days, kDayNames, names, p)) {
      if (names.empty()) {
        s.error("days", "must list at least one day");
      } else {
        uint8_t mask = 0;
        for (const std::string& n : names)
          mask |= static_cast<uint8_t>(
              1u << (std::find(kDayNames.begin(), kDayNames.end(), n) - kDayNames.begin()));
        c.days_mask = mask;
      }
    }
  }
}

void parse_campaign_agents(ObjectReader& r, CampaignConfig& c, bool required) {
  Problems& p = r.problems();
  const bool given = array_given(r, "agents");
  if (required && !r.has("agents")) {
    r.any("agents");
    r.error("agents", "required key is missing (a campaign calls with at least one agent)");
    return;
  }
  const std::vector<Item> items = r.array("agents");
  if (!given) return;
  if (items.empty()) {
    r.error("agents", "must list at least one agent");
    return;
  }
  std::vector<CampaignAgentConfig> agents;
  std::map<std::string, std::string> seen;  // agent_uuid -> path of its first item
  for (const Item& item : items) {
    CampaignAgentConfig a;
    std::string uuid_path = item.path;
    if (cJSON_IsString(item.node)) {
      a.agent_uuid = item.node->valuestring;
    } else if (cJSON_IsObject(item.node)) {
      ObjectReader o(item, &p);
      uuid_path = o.path_of("agent_uuid");
      const size_t before = p.size();
      a.agent_uuid = o.required_str("agent_uuid");
      a.active = o.boolean("active", a.active);
      if (p.size() != before) continue;
    } else {
      p.add(item.path,
            "expected an agent_uuid string or an object, got " + std::string(json_type_name(item.node)));
      continue;
    }
    if (!config_detail::is_agent_uuid(a.agent_uuid)) {
      p.add(uuid_path, "expected \"agent_\" and 1 to 64 of A-Z a-z 0-9 _ -, got " + quote(a.agent_uuid));
      continue;
    }
    if (auto [it, inserted] = seen.emplace(a.agent_uuid, item.path); !inserted) {
      p.add(uuid_path, "agent " + quote(a.agent_uuid) + " is listed twice (first at " + it->second + ")");
      continue;
    }
    agents.push_back(std::move(a));
  }
  c.agents = std::move(agents);
}

}  // namespace

bool parse_day_window(std::string_view text, int* start_min, int* end_min, std::string* why) {
  auto two = [&](size_t at) { return (text[at] - '0') * 10 + (text[at + 1] - '0'); };
  bool shape = text.size() == 11 && text[2] == ':' && text[5] == '-' && text[8] == ':';
  for (size_t i : {0, 1, 3, 4, 6, 7, 9, 10}) shape = shape && text[i] >= '0' && text[i] <= '9';
  if (!shape) {
    *why = "expected \"HH:MM-HH:MM\" such as \"09:30-18:00\", got " + quote(text);
    return false;
  }
  const int sh = two(0), sm = two(3), eh = two(6), em = two(9);
  if (sh > 23 || sm > 59) {
    *why = "the start must be a time of day from 00:00 to 23:59, got " + quote(text);
    return false;
  }
  if (eh > 24 || em > 59 || (eh == 24 && em != 0)) {
    *why = "the end must be a time of day from 00:00 to 24:00, got " + quote(text);
    return false;
  }
  const int start = sh * 60 + sm, end = eh * 60 + em;
  if (start == end) {
    *why = "the window is empty (start equals end); the whole day is \"00:00-24:00\", got " + quote(text);
    return false;
  }
  *start_min = start;
  *end_min = end;
  return true;
}

namespace config_detail {

void parse_compliance(ObjectReader r, ComplianceConfig& c) {
  const std::string hours = r.str("calling_hours", c.calling_hours);
  int start = 0, end = 0;
  std::string why;
  if (!parse_day_window(hours, &start, &end, &why)) {
    r.error("calling_hours", why);
  } else if (start > end) {
    r.error("calling_hours",
            "must not wrap past midnight (the floor is one span of the local day), got " + quote(hours));
  } else {
    c.calling_hours = hours;
    c.calling_hours_start_min = start;
    c.calling_hours_end_min = end;
  }
  c.max_attempts_per_day =
      static_cast<unsigned>(r.integer("max_attempts_per_day", c.max_attempts_per_day, 1, 20));
}

CampaignConfig parse_campaign_into(const cJSON* node, const CampaignConfig* base, std::string path,
                                   Problems& p) {
  CampaignConfig c = base ? *base : CampaignConfig{};
  if (!node) {
    p.add(path.empty() ? "top level" : path, "expected an object, got null");
    return c;
  }
  ObjectReader r(node, std::move(path), &p);
  if (!r.valid()) return c;

  if (base) {
    const size_t before = p.size();
    const int64_t id = r.integer("id", base->id, 1, kMaxCampaignId);
    if (p.size() == before && id != base->id)
      r.error("id",
              "cannot change (the campaign is " + std::to_string(base->id) + "), got " + std::to_string(id));
  } else if (!r.has("id")) {
    r.any("id");
    r.error("id", "required key is missing");
  } else {
    c.id = r.integer("id", 0, 1, kMaxCampaignId);
  }
  c.name = base ? r.str("name", c.name, 1, kMaxCampaignNameChars)
                : r.required_str("name", 1, kMaxCampaignNameChars);
  c.status = r.choice("status", c.status,
                      {{"active", CampaignStatus::active}, {"inactive", CampaignStatus::inactive}});
  parse_campaign_agents(r, c, base == nullptr);
  parse_schedule(r.object("schedule"), c);
  c.is_retry_enabled = r.boolean("is_retry_enabled", c.is_retry_enabled);
  c.retry_threshold = static_cast<unsigned>(r.integer("retry_threshold", c.retry_threshold, 1, 10));
  c.retry_delay_s = static_cast<unsigned>(r.integer("retry_delay", c.retry_delay_s, 60, 604800));
  {
    const bool given = array_given(r, "retry_on");
    const std::vector<Item> items = r.array("retry_on");
    std::vector<std::string> statuses;
    if (given && read_name_list(items, kRetryStatuses, statuses, p)) {
      if (statuses.empty())
        r.error("retry_on",
                "must list at least one call status (turn retries off with \"is_retry_enabled\")");
      else
        c.retry_on = std::move(statuses);
    }
  }
  c.max_concurrent_per_agent =
      static_cast<unsigned>(r.integer("max_concurrent_calls_per_agent", c.max_concurrent_per_agent, 1, 64));
  return c;
}

void check_campaign_agents(const CampaignConfig& c, const std::vector<AgentConfig>& agents,
                           const std::string& path, Problems& p) {
  const std::string base = path.empty() ? "agents" : path + ".agents";
  for (size_t i = 0; i < c.agents.size(); ++i) {
    const std::string& uuid = c.agents[i].agent_uuid;
    const std::string at = base + "[" + std::to_string(i) + "]";
    auto it = std::find_if(agents.begin(), agents.end(),
                           [&](const AgentConfig& a) { return a.agent_uuid == uuid; });
    if (it == agents.end())
      p.add(at, "unknown agent " + quote(uuid));
    else if (it->mode != AgentMode::voice)
      p.add(at,
            "agent " + quote(uuid) + " is a chat agent (mode \"chat\"); a campaign calls with voice agents");
  }
}

}  // namespace config_detail

Result<CampaignConfig> parse_campaign(const cJSON* object, const CampaignConfig* base,
                                      std::string_view path) {
  Problems p;
  CampaignConfig c = config_detail::parse_campaign_into(object, base, std::string(path), p);
  if (!p.empty()) return make_error(p.joined());
  return c;
}

Status check_campaign_agents(const CampaignConfig& campaign, const std::vector<AgentConfig>& agents,
                             std::string_view path) {
  Problems p;
  config_detail::check_campaign_agents(campaign, agents, std::string(path), p);
  if (!p.empty()) return make_error(p.joined());
  return {};
}

}  // namespace osvi::daemon
