// Fleet sync: commands (request/response) and desired/reported configuration documents.
#include <cjson/cJSON.h>

#include <string>
#include <vector>

#include "osvi/base/log.hpp"
#include "osvi/fleet/fleet.hpp"
#include "osvi/net/json.hpp"

namespace osvi::daemon {
namespace {

constexpr const char* kCfgVersionKey = "mqtt.cfg_version";

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Length is not secret; the content is compared without an early exit.
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

bool is_e164(std::string_view s) {
  if (s.size() < 9 || s.size() > 16 || s[0] != '+' || s[1] == '0') return false;
  for (size_t i = 1; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

bool valid_publish_topic(std::string_view t) {
  return !t.empty() && t.size() <= 512 && t.find_first_of("+#") == std::string_view::npos;
}

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
  Reply reply;
  net::JsonPtr req;
  std::string correlation;
  std::string reply_topic = m.response_topic;
  if (m.payload.size() > cfg_.max_command_bytes) {
    reply.reject("request too large: " + std::to_string(m.payload.size()) + " bytes, the limit is " +
                 std::to_string(cfg_.max_command_bytes));
  } else {
    std::string why;
    req = net::json_parse(m.payload, &why);
    if (!req) {
      reply.reject("malformed request: " + why);
    } else if (!cJSON_IsObject(req.get())) {
      reply.reject("malformed request: expected a JSON object");
      req.reset();
    }
  }
  if (req) {
    if (const char* c = str_member(req.get(), "correlation_id")) correlation = c;
    if (reply_topic.empty()) {
      if (const char* rt = str_member(req.get(), "reply_to"); rt && valid_publish_topic(rt)) reply_topic = rt;
    }
    if (!cfg_.command_token.empty()) {
      const char* tok = str_member(req.get(), "token");
      if (tok == nullptr || !constant_time_equal(tok, cfg_.command_token))
        reply.reject("unauthorized: missing or wrong token");
    }
  }
  if (reply_topic.empty()) reply_topic = prefix_ + "/cmd/" + name + "/res";

  const Config& cfg = hooks_.config();
  auto find_agent = [&cfg](std::string_view uuid) -> const AgentConfig* {
    for (const AgentConfig& a : cfg.agents)
      if (a.agent_uuid == uuid) return &a;
    return nullptr;
  };

  if (reply.ok()) {
    const cJSON* r = req.get();
    if (name == "ping") {
      cJSON_AddBoolToObject(reply.result.get(), "pong", true);
      cJSON_AddNumberToObject(reply.result.get(), "session", static_cast<double>(session_));
    } else if (name == "log_level") {
      const char* level = str_member(r, "level");
      auto parsed = level ? log::parse_level(level) : std::nullopt;
      if (!parsed) {
        reply.reject("level: expected one of err, warning, notice, info, debug");
      } else {
        const log::Level previous = log::level();
        log::set_level(*parsed);
        log::notice("log level set to " + std::string(log::level_name(*parsed)) +
                        " by a fleet command (until the next reload)",
                    {{"LOG_LEVEL", log::level_name(*parsed)}}, log::id::kLogLevelChanged);
        net::json_add_string(reply.result.get(), "level", log::level_name(*parsed));
        net::json_add_string(reply.result.get(), "previous", log::level_name(previous));
      }
    } else if (name == "dnd") {
      const char* action = str_member(r, "action");
      const char* agent = str_member(r, "agent_uuid");
      const char* phone = str_member(r, "phone");
      const char* reason = str_member(r, "reason");
      const std::string act = action ? action : "";
      if (act != "add" && act != "remove") reply.reject("action: expected \"add\" or \"remove\"");
      if (agent == nullptr || find_agent(agent) == nullptr) reply.reject("agent_uuid: unknown agent");
      if (phone == nullptr || !is_e164(phone))
        reply.reject("phone: expected an E.164 number such as +919876543210");
      if (reply.ok()) {
        if (act == "add") {
          auto id =
              store_.dnd().add(agent, phone, reason ? std::optional<std::string>(reason) : std::nullopt);
          if (!id) {
            reply.reject(id.error().code == -EEXIST ? "phone: already on the agent's do-not-disturb list"
                                                    : id.error().message);
          } else {
            cJSON_AddNumberToObject(reply.result.get(), "id", static_cast<double>(*id));
          }
        } else if (Status s = store_.dnd().remove(agent, phone); !s) {
          reply.reject(s.error().code == -ENOENT ? "phone: not on the agent's do-not-disturb list"
                                                 : s.error().message);
        }
      }
    } else if (name == "call") {
      // Same checks as POST /v1/call, so a fleet tool gets the same answers as an API client.
      const char* agent = str_member(r, "agent_uuid");
      const char* phone = str_member(r, "phone_number");
      const AgentConfig* a = agent ? find_agent(agent) : nullptr;
      if (a == nullptr) {
        reply.reject("agent_uuid: unknown agent");
      } else if (!a->active || a->archived || a->mode != AgentMode::voice) {
        reply.reject("agent_uuid: not an active voice agent");
      }
      if (phone == nullptr || !is_e164(phone))
        reply.reject("phone_number: expected an E.164 number such as +919876543210");
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
        pc.call_trigger_data = net::json_print(r);
        pc.source = "mqtt";
        auto id = hooks_.place_call(pc);
        if (!id)
          reply.reject(id.error().message);
        else
          net::json_add_string(reply.result.get(), "call_id", *id);
      }
    } else if (name == "config") {
      const cJSON* doc = cJSON_GetObjectItemCaseSensitive(r, "config");
      const cJSON* version = cJSON_GetObjectItemCaseSensitive(r, "version");
      if (!cJSON_IsObject(doc)) reply.reject("config: expected the whole configuration document (an object)");
      if (version != nullptr && !cJSON_IsNumber(version)) reply.reject("version: expected an integer");
      if (reply.ok()) {
        if (Status s = hooks_.apply_config(net::json_print(doc)); !s) {
          reply.reject(s.error().message);
        } else {
          net::json_add_string(reply.result.get(), "config_hash", hooks_.config().source_hash);
          if (version != nullptr)
            (void)store_.meta().set(kCfgVersionKey,
                                    std::to_string(static_cast<int64_t>(version->valuedouble)));
        }
      }
    } else {
      reply.reject("unknown command \"" + name + "\"");
    }
  }

  net::JsonPtr out(cJSON_CreateObject());
  net::json_add_string(out.get(), "command", name);
  if (!correlation.empty()) net::json_add_string(out.get(), "correlation_id", correlation);
  cJSON_AddStringToObject(out.get(), "status", reply.ok() ? "accepted" : "rejected");
  cJSON* reasons = cJSON_AddArrayToObject(out.get(), "reasons");
  for (const std::string& why : reply.reasons) cJSON_AddItemToArray(reasons, cJSON_CreateString(why.c_str()));
  if (reply.ok()) cJSON_AddItemToObject(out.get(), "result", reply.result.release());
  cJSON_AddNumberToObject(out.get(), "ts", static_cast<double>(clock_.wall_ms()));
  log::write(reply.ok() ? log::Level::info : log::Level::warning, log::id::kMqttCommand,
             "fleet command " + name + (reply.ok() ? " accepted" : " rejected: " + reply.reasons.front()),
             {{"MQTT_COMMAND", name}});
  net::MqttPublishProps props{m.correlation_data};
  publish_json(reply_topic, net::json_print(out.get()), 1, false,
               m.correlation_data.empty() ? nullptr : &props);
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
    std::string why;
    net::JsonPtr d = net::json_parse(m.payload, &why);
    const cJSON* v = d ? cJSON_GetObjectItemCaseSensitive(d.get(), "version") : nullptr;
    const cJSON* c = d ? cJSON_GetObjectItemCaseSensitive(d.get(), "config") : nullptr;
    if (!d || !cJSON_IsObject(d.get())) {
      reasons.push_back("malformed document: " + (why.empty() ? std::string("expected a JSON object") : why));
    } else {
      if (!cJSON_IsNumber(v)) reasons.push_back("version: expected an integer");
      if (!cJSON_IsObject(c))
        reasons.push_back("config: expected the whole configuration document (an object)");
      if (!cfg_.command_token.empty()) {
        const char* tok = str_member(d.get(), "token");
        if (tok == nullptr || !constant_time_equal(tok, cfg_.command_token))
          reasons.push_back("unauthorized: missing or wrong token");
      }
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
