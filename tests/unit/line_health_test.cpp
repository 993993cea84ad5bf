// LineHealth as GET /v1/health and the fleet's birth show it: a SIP line's registration and busy channels,
// a modem line's identity and audio.
#include <gtest/gtest.h>

#include "osvi/lines/line_manager.hpp"
#include "osvi/net/json.hpp"

namespace {

using namespace osvi::daemon;
namespace hal = osvi::hal;

// Built whole (aggregates): GCC 12 -O3 reports a false -Wmaybe-uninitialized on short-string assignments.
LineHealth sip_line(std::string state, std::string reason, hal::SipStatus st,
                    std::vector<LineHealth::Channel> channels) {
  return LineHealth{"pbx", "sip", std::move(state), std::move(reason),  "agent-1",
                    {},    {},    std::move(st),    std::move(channels)};
}

TEST(LineHealthJson, SipLineShowsRegistrationAndOnlyBusyChannels) {
  const LineHealth h =
      sip_line("active", "", hal::SipStatus{"registered", 200, "OK", 5, 600, "sip:201@192.0.2.10:5060", 2, 4},
               {{"pbx.1", "active"}, {"pbx.3", "ringing"}});
  osvi::net::JsonPtr j(line_health_json(h));
  EXPECT_EQ(osvi::net::json_print(j.get()),
            R"({"id":"pbx","type":"sip","state":"active","reason":"","agent_uuid":"agent-1",)"
            R"("sip":{"registration":"registered","last_code":200,"last_reason":"OK","expires_s":600,)"
            R"("contact":"sip:201@192.0.2.10:5060","calls_active":2,"max_calls":4},)"
            R"("channels":[{"id":"pbx.1","state":"active"},{"id":"pbx.3","state":"ringing"}]})");
}

TEST(LineHealthJson, SipLineDownWithReasonAndNoChannels) {
  const LineHealth h =
      sip_line("down", "SIP 403 Forbidden", hal::SipStatus{"failed", 403, "Forbidden", -1, 0, "", 0, 4}, {});
  osvi::net::JsonPtr j(line_health_json(h));
  const cJSON* o = j.get();
  EXPECT_STREQ(cJSON_GetObjectItem(o, "reason")->valuestring, "SIP 403 Forbidden");
  const cJSON* sip = cJSON_GetObjectItem(o, "sip");
  ASSERT_NE(sip, nullptr);
  EXPECT_STREQ(cJSON_GetObjectItem(sip, "registration")->valuestring, "failed");
  EXPECT_EQ(cJSON_GetObjectItem(sip, "last_code")->valueint, 403);
  EXPECT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(o, "channels")), 0);
  EXPECT_EQ(cJSON_GetObjectItem(o, "modem"), nullptr);  // no modem, no audio device of its own
  EXPECT_EQ(cJSON_GetObjectItem(o, "audio"), nullptr);
}

TEST(LineHealthJson, ModemLineKeepsModemAndAudioWithoutSip) {
  hal::AudioEndpoint audio;
  audio.kind = hal::AudioEndpoint::Kind::alsa;
  const LineHealth h{"gsm0", "at",         "idle",
                     "",     "",           hal::LineIdentity{"Quectel", "EC25", "", "", "", ""},
                     audio,  std::nullopt, {}};
  osvi::net::JsonPtr j(line_health_json(h));
  const cJSON* o = j.get();
  EXPECT_STREQ(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "modem"), "manufacturer")->valuestring, "Quectel");
  EXPECT_STREQ(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "audio"), "kind")->valuestring, "alsa");
  EXPECT_EQ(cJSON_GetObjectItem(o, "sip"), nullptr);
  EXPECT_EQ(cJSON_GetObjectItem(o, "channels"), nullptr);
}

}  // namespace
