// GET /v1/stats: the dashboard's numbers (an extension, docs/api.md), as the stats room computes them.
#include <algorithm>
#include <string>

#include "osvi/base/ids.hpp"
#include "osvi/base/log.hpp"
#include "osvi/net/text.hpp"
#include "osvi/stats/stats_service.hpp"
#include "util.hpp"

namespace osvi::daemon {
namespace {

using net::HttpReply;
using net::HttpRequest;
using net::JsonPtr;
using net::quoted;

cJSON* add_int(cJSON* o, const char* name, int64_t v) {
  return cJSON_AddNumberToObject(o, name, static_cast<double>(v));
}

JsonPtr stats_json(const DashboardStats& s) {
  JsonPtr data(cJSON_CreateObject());
  cJSON* d = data.get();
  add_int(d, "days", s.days);
  net::json_add_string(d, "time_zone", s.time_zone);
  net::json_add_string(d, "from", s.from);
  net::json_add_string(d, "to", s.to);
  net::json_add_string(d, "generated_at", format_local_iso(s.generated_at_ms, s.utc_offset_minutes));

  cJSON* cards = cJSON_AddObjectToObject(d, "cards");
  add_int(cards, "total_calls", s.cards.total_calls);
  add_int(cards, "today_calls", s.cards.today_calls);
  cJSON_AddNumberToObject(cards, "avg_duration_s", s.cards.avg_duration_s);
  add_int(cards, "total_duration_s", s.cards.total_duration_s);
  cJSON_AddNumberToObject(cards, "answer_rate", s.cards.answer_rate);
  add_int(cards, "active_agents", s.cards.active_agents);
  add_int(cards, "inbound", s.cards.inbound);
  add_int(cards, "outbound", s.cards.outbound);

  cJSON* daily = cJSON_AddArrayToObject(d, "daily");
  for (const DayCounts& day : s.daily) {
    cJSON* o = cJSON_CreateObject();
    net::json_add_string(o, "date", day.date);
    add_int(o, "picked", day.picked);
    add_int(o, "not_picked", day.not_picked);
    add_int(o, "failed", day.failed);
    add_int(o, "busy", day.busy);
    add_int(o, "voicemail", day.voicemail);
    add_int(o, "total", day.total);
    cJSON_AddItemToArray(daily, o);
  }

  cJSON* top = cJSON_AddArrayToObject(d, "top_agents");
  for (const TopAgent& a : s.top_agents) {
    cJSON* o = cJSON_CreateObject();
    net::json_add_string(o, "agent_uuid", a.agent_uuid);
    net::json_add_string(o, "name", a.name);
    add_int(o, "calls", a.calls);
    add_int(o, "picked", a.picked);
    cJSON_AddNumberToObject(o, "avg_duration_s", a.avg_duration_s);
    cJSON_AddItemToArray(top, o);
  }

  cJSON* hours = cJSON_AddArrayToObject(d, "by_hour");
  for (int64_t n : s.by_hour) cJSON_AddItemToArray(hours, cJSON_CreateNumber(static_cast<double>(n)));

  cJSON* chat = cJSON_AddObjectToObject(d, "chat");
  add_int(chat, "total", s.chat.total);
  add_int(chat, "active", s.chat.active);
  add_int(chat, "closed", s.chat.closed);
  add_int(chat, "dormant", s.chat.dormant);
  return data;
}

}  // namespace

// ?days=7|14|30|90 (default 7), nothing else; an agent-limited token's numbers cover only its agents.
void Api::get_stats(HttpRequest& request, HttpReply reply) {
  if (!ctx_.stats) return reply.send(error(503, "stats are not available on this box right now"));
  StatsQuery q;
  bool have_days = false;
  for (const auto& [name, value] : request.query) {
    if (name != "days")
      return reply.send(error(422, "query parameter " + quoted(name) + ": unknown (expected days)"));
    if (have_days) return reply.send(error(422, "days: given more than once"));
    have_days = true;
    // The exact decimal text only ("07" or "7.0" is refused like any other value).
    const auto* w = std::find_if(StatsService::kWindows.begin(), StatsService::kWindows.end(),
                                 [&](int days) { return value == std::to_string(days); });
    if (w == StatsService::kWindows.end())
      return reply.send(error(422, "days: must be 7, 14, 30 or 90, got " + quoted(value)));
    q.days = *w;
  }
  q.agents = caller_->agents;
  q.time_zone = ctx_.config->site.time_zone;
  auto stats = ctx_.stats->compute(q);
  if (!stats) {
    log::error("cannot compute the dashboard's stats: " + stats.error().message);
    return reply.send(error(500, "database error"));
  }
  reply.send(success(stats_json(*stats)));
}

}  // namespace osvi::daemon
