// Fleet sync: commands (request/response) and desired/reported configuration documents.
#include <cjson/cJSON.h>

#include <cerrno>
#include <optional>
#include <string>
#include <vector>

#include "osvi/base/log.hpp"
#include "osvi/campaigns/campaigns.hpp"
#include "osvi/campaigns/contact_import.hpp"
#include "osvi/campaigns/dnd.hpp"
#include "osvi/fleet/command_request.hpp"
#include "osvi/fleet/fleet.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/text.hpp"

namespace osvi::daemon {
namespace {

constexpr const char* kCfgVersionKey = "mqtt.cfg_version";

const char* str_member(const cJSON* o, const char* name) {
  const cJSON* v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsString(v) ? v->valuestring : nullptr;
}

// One reply under construction: "accepted" or "rejected" with reasons.
struct Reply {
  std::vector<std::string> reasons;
  net::JsonPtr result{cJSON_CreateObject()};
  void reject(std::string why) { reasons.push_back(std::move(why)); }
  bool ok() const { return reasons.empty(); }
};

}  // namespace

void FleetSync::on_message(const net::MqttMessage& m) {
  const std::string cmd_prefix = prefix_ + "/cmd/";
  if (m.topic == prefix_ + "/cfg/desired") {
    handle_desired(m);
    return;
  }
  if (m.topic.starts_with(cmd_prefix) && m.topic.ends_with("/req")) {
    const std::string name = m.topic.substr(cmd_prefix.size(), m.topic.size() - cmd_prefix.size() - 4);
    handle_command(name, m);
  }
}

void FleetSync::handle_command(const std::string& name, const net::MqttMessage& m) {
  ++commands_total_;
  CommandPolicy policy{prefix_, cfg_.command_token, cfg_.max_command_bytes};
  CommandRequest q = check_command_request(policy, name, m.payload, m.response_topic);
  Reply reply;
  reply.reasons = std::move(q.reasons);
  net::JsonPtr req = std::move(q.body);
  const std::string& correlation = q.correlation_id;
  const std::string& reply_topic = q.reply_topic;

  const Config& cfg = hooks_.config();
  auto find_agent = [&cfg](std::string_view uuid) -> const AgentConfig* {
    for (const AgentConfig& a : cfg.agents)
      if (a.agent_uuid == uuid) return &a;
    return nullptr;
  };

  // Authenticated requests only (req is null otherwise); the fields' shapes were checked by
  // check_command_request, what needs the box's state is checked here, and nothing acts unless both passed.
  if (req) {
    const cJSON* r = req.get();
    if (name == "ping") {
      cJSON_AddBoolToObject(reply.result.get(), "pong", true);
      cJSON_AddNumberToObject(reply.result.get(), "session", static_cast<double>(session_));
    } else if (name == "log_level") {
      const char* level = str_member(r, "level");
      auto parsed = level ? log::parse_level(level) : std::nullopt;
      if (reply.ok() && parsed) {
        const log::Level previous = log::level();
        log::set_level(*parsed);
        log::notice("log level set to " + std::string(log::level_name(*parsed)) +
                        " by a fleet command (until the next reload)",
                    {{"LOG_LEVEL", log::level_name(*parsed)}}, log::id::kLogLevelChanged);
        net::json_add_string(reply.result.get(), "level", log::level_name(*parsed));
        net::json_add_string(reply.result.get(), "previous", log::level_name(previous));
      }
    } else if (name == "dnd") {
      // The same service as the API's /v1/dnd_numbers: E.164 with the site's country, idempotent add.
      const char* agent = str_member(r, "agent_uuid");
      const char* phone = str_member(r, "phone");
      const char* reason = str_member(r, "reason");
      const std::string act = str_member(r, "action") ? str_member(r, "action") : "";
      if (agent != nullptr && find_agent(agent) == nullptr) reply.reject("agent_uuid: unknown agent");
      auto e164 = phone ? DndService::normalize(phone, cfg.site.country) : Result<std::string>(std::string());
      if (!e164) {
        reply.reject(e164.error().code == -EINVAL ? "phone: " + e164.error().message +
                                                        " (expected E.164 such as +919876543210, or a "
                                                        "national number of " +
                                                        cfg.site.country + ")"
                                                  : e164.error().message);
      }
      if (reply.ok()) {
        DndService dnd(store_);
        net::json_add_string(reply.result.get(), "phone", *e164);
        if (act == "add") {
          auto added = dnd.add(agent, *e164, cfg.site.country,
                               reason ? std::optional<std::string>(reason) : std::nullopt, "mqtt");
          if (!added) {
            reply.reject(added.error().message);
          } else {
            cJSON_AddNumberToObject(reply.result.get(), "id", static_cast<double>(added->entry.id));
            cJSON_AddBoolToObject(reply.result.get(), "created", added->created);
            if (!added->created) {
              cJSON_AddStringToObject(reply.result.get(), "message",
                                      "already on the agent's do-not-disturb list (unchanged)");
            }
          }
        } else if (auto removed = dnd.remove(agent, *e164, cfg.site.country); !removed) {
          reply.reject(removed.error().code == -ENOENT ? "phone: not on the agent's do-not-disturb list"
                                                       : removed.error().message);
        }
      }
    } else if (name == "call") {
      // Same checks as POST /v1/call, so a fleet tool gets the same answers as an API client.
      const char* agent = str_member(r, "agent_uuid");
      const char* phone = str_member(r, "phone_number");
      const AgentConfig* a = agent ? find_agent(agent) : nullptr;
      if (agent != nullptr && a == nullptr) {
        reply.reject("agent_uuid: unknown agent");
      } else if (a != nullptr && (!a->active || a->archived || a->mode != AgentMode::voice)) {
        reply.reject("agent_uuid: not an active voice agent");
      }
      if (reply.ok() && !hooks_.place_call) reply.reject("calls engine not available");
      if (reply.ok()) {
        PlaceCallRequest pc;
        pc.agent_uuid = agent;
        pc.phone_e164 = phone;
        if (const char* v = str_member(r, "person_name")) pc.person_name = v;
        if (const char* v = str_member(r, "initial_greeting")) pc.initial_greeting = v;
        if (const char* v = str_member(r, "system_prompt")) pc.system_prompt = v;
        if (const cJSON* ad = cJSON_GetObjectItemCaseSensitive(r, "additional_data"); cJSON_IsObject(ad))
          pc.additional_data = net::json_print(ad);
        pc.call_trigger_data = net::json_print(r);  // the token was removed by check_command_request
        pc.source = "mqtt";
        auto id = hooks_.place_call(pc);
        if (!id)
          reply.reject(id.error().message);
        else
          net::json_add_string(reply.result.get(), "call_id", *id);
      }
    } else if (name == "campaign_contacts" && reply.ok()) {
      import_contacts(r, reply.reasons, reply.result);
    } else if (name == "config" && reply.ok()) {
      const cJSON* version = cJSON_GetObjectItemCaseSensitive(r, "version");
      if (Status s = hooks_.apply_config(net::json_print(cJSON_GetObjectItemCaseSensitive(r, "config")));
          !s) {
        reply.reject(s.error().message);
      } else {
        net::json_add_string(reply.result.get(), "config_hash", hooks_.config().source_hash);
        if (version != nullptr)
          (void)store_.meta().set(kCfgVersionKey, std::to_string(static_cast<int64_t>(version->valuedouble)));
      }
    }
  }

  net::JsonPtr out(cJSON_CreateObject());
  net::json_add_string(out.get(), "command", q.name);
  if (!correlation.empty()) net::json_add_string(out.get(), "correlation_id", correlation);
  cJSON_AddStringToObject(out.get(), "status", reply.ok() ? "accepted" : "rejected");
  cJSON* reasons = cJSON_AddArrayToObject(out.get(), "reasons");
  for (const std::string& why : reply.reasons) cJSON_AddItemToArray(reasons, cJSON_CreateString(why.c_str()));
  if (reply.ok()) cJSON_AddItemToObject(out.get(), "result", reply.result.release());
  cJSON_AddNumberToObject(out.get(), "ts", static_cast<double>(clock_.wall_ms()));
  log::write(reply.ok() ? log::Level::info : log::Level::warning, log::id::kMqttCommand,
             "fleet command " + (q.name.empty() ? std::string("(invalid name)") : q.name) +
                 (reply.ok() ? " accepted" : " rejected: " + reply.reasons.front()),
             {{"MQTT_COMMAND", q.name}});
  if (reply_topic.empty()) return;  // a name no topic can carry back: logged only
  net::MqttPublishProps props{m.correlation_data};
  publish_json(reply_topic, net::json_print(out.get()), 1, false,
               m.correlation_data.empty() ? nullptr : &props);
}

// The same import as POST /v1/campaigns/{id}/contacts (source "mqtt"); a fleet scheduler that retries with
// the same idempotency key gets the first import's result again, and nothing is imported twice.
void FleetSync::import_contacts(const cJSON* r, std::vector<std::string>& reasons, net::JsonPtr& result) {
  if (hooks_.campaigns == nullptr) {
    reasons.emplace_back("campaigns are not available");
    return;
  }
  ImportOptions o;
  o.campaign_id = static_cast<int64_t>(cJSON_GetObjectItemCaseSensitive(r, "campaign_id")->valuedouble);
  o.agent_uuid = str_member(r, "agent_uuid");
  o.enqueue = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "enqueue"));
  o.source = "mqtt";
  o.idempotency_key = str_member(r, "idempotency_key");
  std::optional<ImportResult> replay;
  auto import = hooks_.campaigns->begin_import(o, &replay);
  if (!import) {
    switch (import.error().code) {
      case -ENOENT:
        reasons.push_back("campaign_id: no campaign " + std::to_string(o.campaign_id) + " on this box");
        return;
      case -ENODEV:
        reasons.emplace_back("enqueue: this box has no active outbound line to place the calls on");
        return;
      default:
        reasons.push_back(import.error().message);
        return;
    }
  }
  ImportResult done;
  if (*import == nullptr) {
    if (!replay) {
      reasons.emplace_back("the upload could not be opened");
      return;
    }
    done = std::move(*replay);
    done.replayed = true;
  } else {
    int64_t index = 0;
    for (const cJSON* c = cJSON_GetObjectItemCaseSensitive(r, "contacts")->child; c != nullptr; c = c->next)
      (*import)->add_json(c, index++);
    auto finished = (*import)->finish();
    if (!finished) {
      reasons.push_back("the upload could not be stored: " + finished.error().message);
      return;
    }
    done = std::move(*finished);
    hooks_.campaigns->finished(done);
  }
  result.reset(import_result_to_json(done));
  if (done.replayed) cJSON_AddBoolToObject(result.get(), "replayed", true);
}

void FleetSync::handle_desired(const net::MqttMessage& m) {
  ++commands_total_;
  std::vector<std::string> reasons;
  int64_t version = -1;
  std::string text;
  if (m.payload.empty()) return;  // a cleared retained document: nothing desired
  if (m.payload.size() > cfg_.max_command_bytes) {
    reasons.push_back("document too large: " + std::to_string(m.payload.size()) + " bytes");
  } else {
    net::JsonRefusal refusal;
    net::JsonPtr d = net::json_parse_request(m.payload, &refusal);
    const std::string why = json_refusal_reason(refusal);
    const cJSON* v = d ? cJSON_GetObjectItemCaseSensitive(d.get(), "version") : nullptr;
    const cJSON* c = d ? cJSON_GetObjectItemCaseSensitive(d.get(), "config") : nullptr;
    if (!d || !cJSON_IsObject(d.get())) {
      reasons.push_back("malformed document: " + (why.empty() ? std::string("expected a JSON object") : why));
    } else {
      if (!cJSON_IsNumber(v)) reasons.push_back("version: expected an integer");
      if (!cJSON_IsObject(c))
        reasons.push_back("config: expected the whole configuration document (an object)");
      if (auto denied = check_command_token(cfg_.command_token, d.get()))
        reasons.push_back(std::move(*denied));
    }
    if (reasons.empty()) {
      version = static_cast<int64_t>(v->valuedouble);
      text = net::json_print(c);
    }
  }
  const int64_t current = std::strtoll(store_.meta().get(kCfgVersionKey).value_or("0").c_str(), nullptr, 10);
  bool unchanged = false;
  if (reasons.empty() && version == current && current > 0) {
    unchanged = true;  // retained desired document seen again after a reconnect: already in force
  } else if (reasons.empty()) {
    if (Status s = hooks_.apply_config(text); !s) {
      reasons.push_back(s.error().message);
    } else {
      (void)store_.meta().set(kCfgVersionKey, std::to_string(version));
      log::notice("configuration version " + std::to_string(version) + " from the fleet applied",
                  {{"CONFIG_HASH", hooks_.config().source_hash}}, log::id::kMqttConfigApplied);
    }
  }
  if (!reasons.empty()) {
    log::warning("configuration from the fleet rejected: " + reasons.front(), {}, log::id::kConfigRejected);
  }
  net::JsonPtr out(cJSON_CreateObject());
  cJSON_AddNumberToObject(out.get(), "version", static_cast<double>(reasons.empty() ? version : current));
  if (!reasons.empty() && version >= 0)
    cJSON_AddNumberToObject(out.get(), "rejected_version", static_cast<double>(version));
  cJSON_AddStringToObject(out.get(), "status",
                          reasons.empty() ? (unchanged ? "unchanged" : "applied") : "rejected");
  cJSON* rs = cJSON_AddArrayToObject(out.get(), "reasons");
  for (const std::string& why : reasons) cJSON_AddItemToArray(rs, cJSON_CreateString(why.c_str()));
  net::json_add_string(out.get(), "config_hash", hooks_.config().source_hash);
  cJSON_AddNumberToObject(out.get(), "ts", static_cast<double>(clock_.wall_ms()));
  publish_json(prefix_ + "/cfg/reported", net::json_print(out.get()), 1, true);
}

}  // namespace osvi::daemon
