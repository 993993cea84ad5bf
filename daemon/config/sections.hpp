// Private to the config room: the section parsers that live in files of their own, called by parse_config.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "osvi/config/config.hpp"
#include "reader.hpp"

namespace osvi::daemon::config_detail {

void parse_audio(ObjectReader r, AudioConfig& a);  // audio.cpp
void parse_mqtt(ObjectReader r, MqttConfig& m);    // mqtt.cpp
// webhooks.cpp: an agent's analysis.integrations[] (an active one needs the analysis enabled); the
// top-level "webhooks" section.
void parse_integrations(const std::vector<Item>& items, Problems& p, bool analysis_enabled,
                        std::vector<IntegrationConfig>& out);
void parse_webhooks(ObjectReader r, WebhooksConfig& w);
// lines.cpp; agent_refs gets (path, agent_uuid) pairs to check once every agent is known
void parse_lines(const std::vector<Item>& items, Problems& p, std::vector<LineConfig>& lines,
                 std::vector<std::pair<std::string, std::string>>& agent_refs);
AgentConfig parse_agent(const Item& item, Problems& p);             // agents.cpp
void parse_knowledge_base(ObjectReader r, KnowledgeBaseConfig& k);  // knowledge.cpp
// campaigns.cpp: the compliance floor; one campaign (parse_campaign's body, problems under path); a
// campaign's agents against the configuration's (each must be a voice agent there), as "<path>.agents[i]".
void parse_compliance(ObjectReader r, ComplianceConfig& c);
CampaignConfig parse_campaign_into(const cJSON* node, const CampaignConfig* base, std::string path,
                                   Problems& p);
void check_campaign_agents(const CampaignConfig& c, const std::vector<AgentConfig>& agents,
                           const std::string& path, Problems& p);

}  // namespace osvi::daemon::config_detail
