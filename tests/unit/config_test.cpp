// Configuration parsing: defaults, the embedded file, and that every rejection names its key path.
#include "osvi/config/config.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cerrno>
#include <sstream>
#include <string>
#include <vector>

#include "osvi/net/json.hpp"
#include "test_support.hpp"

namespace {

using namespace osvi::daemon;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The error message of a document that must be rejected ("" and a test failure if it was accepted).
std::string rejection(const std::string& json) {
  auto r = parse_config(json);
  EXPECT_FALSE(r.ok()) << "accepted: " << json;
  if (r.ok()) return {};
  EXPECT_EQ(r.error().code, -EINVAL);
  return r.error().message;
}

// True when one line of the message is exactly `line`.
bool has_line(const std::string& message, const std::string& line) {
  for (const std::string& l : lines_of(message))
    if (l == line) return true;
  return false;
}

// True when some line of the message starts with `path + ": "`.
bool names_path(const std::string& message, const std::string& path) {
  for (const std::string& l : lines_of(message))
    if (l.rfind(path + ": ", 0) == 0) return true;
  return false;
}

#define EXPECT_LINE(msg, line) EXPECT_TRUE(has_line(msg, line)) << "message was:\n" << (msg)
#define EXPECT_PATH(msg, path) \
  EXPECT_TRUE(names_path(msg, path)) << "no problem at " << (path) << "; message was:\n" << (msg)

// A config whose agents section is `agents` (a JSON array body), everything else defaulted.
std::string with_agents(const std::string& agents) {
  return R"({"agents":[)" + agents + "]}";
}

std::string agent(const std::string& uuid, const std::string& extra = "") {
  return R"({"agent_uuid":")" + uuid + R"(","name":"Test agent")" + (extra.empty() ? "" : "," + extra) + "}";
}

Config accepted(const std::string& json) {
  auto r = parse_config(json);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message) << "\nfor: " << json;
  return r.ok() ? std::move(r).value() : Config{};
}

TEST(Config, EmptyObjectGivesEveryDefault) {
  auto r = parse_config("{}");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const Config& c = *r;
  EXPECT_EQ(c.source_hash, "08f44b07b5901a25");  // FNV-1a 64 of "{}"
  EXPECT_EQ(c.site.id, "default-site");
  EXPECT_EQ(c.site.device, "");
  EXPECT_EQ(c.site.utc_offset, "+05:30");
  EXPECT_EQ(c.site.utc_offset_minutes, 330);
  EXPECT_EQ(c.site.country, "IN");
  EXPECT_EQ(c.state_dir, "/var/lib/osvi");
  EXPECT_EQ(c.log_level, osvi::log::Level::info);
  EXPECT_EQ(c.api.listen, "127.0.0.1:8080");
  EXPECT_EQ(c.api.host, "127.0.0.1");
  EXPECT_EQ(c.api.port, 8080);
  EXPECT_TRUE(c.api.tokens.empty());
  EXPECT_EQ(c.api.token_file, "");
  EXPECT_EQ(c.api.max_body_bytes, 4194304u);
  EXPECT_EQ(c.api.max_connections, 64u);
  EXPECT_EQ(c.api.connection_timeout_s, 30u);
  EXPECT_EQ(c.api.max_connections_per_client, 16u);
  EXPECT_EQ(c.api.header_timeout_s, 10u);
  EXPECT_EQ(c.api.idle_timeout_s, 5u);
  EXPECT_EQ(c.api.tls_cert_file, "");
  EXPECT_EQ(c.api.tls_key_file, "");
  EXPECT_EQ(c.store.busy_timeout_ms, 5000);
  EXPECT_TRUE(c.store.quick_check);
  EXPECT_TRUE(c.agents.empty());
  EXPECT_EQ(c.site.time_zone, "Asia/Kolkata");
  EXPECT_EQ(c.compliance.calling_hours, "08:00-21:00");
  EXPECT_EQ(c.compliance.calling_hours_start_min, 8 * 60);
  EXPECT_EQ(c.compliance.calling_hours_end_min, 21 * 60);
  EXPECT_EQ(c.compliance.max_attempts_per_day, 3u);
  EXPECT_EQ(c.compliance, ComplianceConfig{});
  EXPECT_TRUE(c.campaigns.empty());
}

TEST(Config, SourceHashFollowsTheExactText) {
  EXPECT_EQ(accepted("{ }").source_hash, accepted("{ }").source_hash);
  EXPECT_NE(accepted("{ }").source_hash, accepted("{}").source_hash);
  EXPECT_EQ(accepted("{ }").source_hash.size(), 16u);
}

TEST(Config, AgentWithOnlyRequiredKeysGetsDefaults) {
  Config c = accepted(with_agents(agent("agent_a")));
  ASSERT_EQ(c.agents.size(), 1u);
  const AgentConfig& a = c.agents[0];
  EXPECT_EQ(a.agent_uuid, "agent_a");
  EXPECT_EQ(a.name, "Test agent");
  EXPECT_EQ(a.mode, AgentMode::voice);
  EXPECT_FALSE(a.active);
  EXPECT_FALSE(a.archived);
  EXPECT_EQ(a.language, "en-IN");
  EXPECT_EQ(a.prompt.type, PromptType::single);
  EXPECT_EQ(a.prompt.system_prompt, "");
  EXPECT_EQ(a.greeting.text, "");
  EXPECT_TRUE(a.greeting.interruptible);
  EXPECT_EQ(a.stt.provider, "openai");
  EXPECT_EQ(a.stt.base_url, "http://127.0.0.1:8090/v1");
  EXPECT_EQ(a.stt.model, "whisper-1");
  EXPECT_EQ(a.stt.timeout_ms, 8000u);
  EXPECT_EQ(a.llm.model, "gpt-4o-mini");
  EXPECT_EQ(a.llm.timeout_ms, 15000u);
  EXPECT_DOUBLE_EQ(a.llm.temperature, 0.7);
  EXPECT_EQ(a.llm.max_tokens, 512u);
  EXPECT_EQ(a.voice.model, "tts-1");
  EXPECT_EQ(a.voice.voice, "alloy");
  EXPECT_DOUBLE_EQ(a.voice.speed, 1.0);
  EXPECT_EQ(a.voice.format, AudioFormat::pcm);
  EXPECT_TRUE(a.call.barge_in);
  EXPECT_DOUBLE_EQ(a.call.min_interruption_s, 0.3);
  EXPECT_DOUBLE_EQ(a.call.min_endpointing_s, 0.5);
  EXPECT_DOUBLE_EQ(a.call.max_endpointing_s, 2.0);
  EXPECT_DOUBLE_EQ(a.call.vad.sensitivity, 0.5);
  EXPECT_EQ(a.call.silence.message, "Are you still there?");
  EXPECT_EQ(a.call.silence.max_prompts, 2u);
  EXPECT_EQ(a.call.max_duration_s, 600u);
  EXPECT_EQ(a.call.voicemail.action, VoicemailAction::hangup);
  EXPECT_TRUE(a.tools.end_call);
  EXPECT_FALSE(a.tools.transfer.enabled);
  EXPECT_EQ(a.tools.transfer.mode, TransferMode::blind);
  EXPECT_FALSE(a.analysis.enabled);
  EXPECT_EQ(a.analysis.llm.model, "gpt-4o-mini");
  EXPECT_TRUE(a.analysis.callback_detection.enabled);
  EXPECT_EQ(a.analysis.output_schema_json, "");
  EXPECT_TRUE(a.chat.takeover && a.chat.tell && a.chat.whisper);
  EXPECT_TRUE(a.tools.opt_out.enabled);
  EXPECT_EQ(a.tools.opt_out.dtmf_key, "");
  EXPECT_EQ(a.tools.opt_out.message, "You will not be called again. Goodbye.");
  EXPECT_EQ(a.definition_json, R"({"agent_uuid":"agent_a","name":"Test agent"})");
}

TEST(Config, EmbeddedDefaultIsValidAndShowsTheExamples) {
  const std::string_view text = default_config_json();
  ASSERT_FALSE(text.empty());
  auto r = parse_config(text);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const Config& c = *r;
  EXPECT_EQ(c.state_dir, "/var/lib/osvi");
  EXPECT_EQ(c.api.host, "127.0.0.1");
  EXPECT_EQ(c.api.port, 8080);
  EXPECT_TRUE(c.api.tokens.empty()) << "the shipped file must make the daemon generate its token";
  ASSERT_EQ(c.agents.size(), 2u);
  const AgentConfig& desk = c.agents[0];
  EXPECT_EQ(desk.agent_uuid, "agent_frontdesk");
  EXPECT_EQ(desk.name, "Front desk");
  EXPECT_EQ(desk.mode, AgentMode::voice);
  EXPECT_TRUE(desk.active);
  EXPECT_EQ(desk.prompt.type, PromptType::single);
  EXPECT_FALSE(desk.prompt.system_prompt.empty());
  EXPECT_FALSE(desk.greeting.text.empty());
  const AgentConfig& chat = c.agents[1];
  EXPECT_EQ(chat.agent_uuid, "agent_webchat");
  EXPECT_EQ(chat.mode, AgentMode::chat);
  EXPECT_FALSE(chat.active);
  // The shipped file spells out the dialler's floor with its defaults.
  EXPECT_EQ(c.site.time_zone, "Asia/Kolkata");
  EXPECT_EQ(c.compliance, ComplianceConfig{});
  EXPECT_EQ(desk.tools.opt_out, OptOutConfig{});
  // The file on disk is the one embedded (the build must not have embedded a stale copy).
  EXPECT_EQ(osvi::test::read_file(std::string(OSVI_SOURCE_DIR) + "/rootfs/etc/osvi/osvid.json"), text);
}

TEST(Config, SyntaxErrorGivesLineAndColumn) {
  const std::string msg = rejection("{\n  \"log\": {\"level\": \"info\"},\n  \"state_dir\": ,\n}");
  EXPECT_NE(msg.find("line 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("column 16"), std::string::npos) << msg;
  EXPECT_NE(rejection("{} trailing").find("line 1"), std::string::npos);
  EXPECT_FALSE(rejection("").empty());
}

TEST(Config, TopLevelMustBeAnObject) {
  EXPECT_LINE(rejection("[]"), "top level: expected an object, got array");
}

TEST(Config, UnknownKeysAreRejectedAtEveryLevel) {
  EXPECT_LINE(rejection(R"({"colour": 1})"), "colour: unknown key");
  EXPECT_LINE(rejection(with_agents(agent("agent_a", R"("colour":"red")"))), "agents[0].colour: unknown key");
  EXPECT_LINE(rejection(with_agents(agent("agent_a", R"("call":{"vad":{"enable":true}})"))),
              "agents[0].call.vad.enable: unknown key (did you mean \"enabled\"?)");
  EXPECT_LINE(rejection(R"({"api":{"lisen":"127.0.0.1:80"}})"),
              "api.lisen: unknown key (did you mean \"listen\"?)");
  EXPECT_LINE(rejection(R"({"site":{"my key":1}})"), R"(site["my key"]: unknown key)");
}

TEST(Config, DuplicateJsonKeysAreRejected) {
  EXPECT_LINE(rejection(R"({"log":{"level":"info","level":"debug"}})"), "log.level: duplicate key");
}

TEST(Config, WrongTypesNameExpectedAndActual) {
  EXPECT_LINE(rejection(R"({"log":{"level":3}})"), "log.level: expected a string, got number");
  EXPECT_LINE(rejection(R"({"store":{"quick_check":"yes"}})"),
              "store.quick_check: expected a boolean, got string");
  EXPECT_LINE(rejection(R"({"store":{"busy_timeout_ms":1.5}})"),
              "store.busy_timeout_ms: expected an integer, got 1.5");
  EXPECT_LINE(rejection(R"({"api":[]})"), "api: expected an object, got array");
  EXPECT_LINE(rejection(R"({"agents":{}})"), "agents: expected an array, got object");
  EXPECT_LINE(rejection(R"({"state_dir":null})"), "state_dir: expected a string, got null");
  EXPECT_LINE(rejection(R"({"agents":[7]})"), "agents[0]: expected an object, got number");
}

TEST(Config, OutOfRangeValuesNameTheRange) {
  const std::string msg =
      rejection(with_agents(agent("agent_a") + "," + agent("agent_b", R"("call":{"min_interruption_s":5})")));
  EXPECT_LINE(msg, "agents[1].call.min_interruption_s: must be between 0.1 and 2.0, got 5");
  EXPECT_LINE(rejection(R"({"store":{"busy_timeout_ms":60001}})"),
              "store.busy_timeout_ms: must be between 0 and 60000, got 60001");
  EXPECT_LINE(rejection(R"({"api":{"max_connections":0}})"),
              "api.max_connections: must be between 1 and 1024, got 0");
  EXPECT_LINE(rejection(with_agents(agent("agent_a", R"("llm":{"temperature":2.5})"))),
              "agents[0].llm.temperature: must be between 0.0 and 2.0, got 2.5");
  EXPECT_PATH(rejection(with_agents(agent("agent_a", R"("voice":{"speed":0.1})"))), "agents[0].voice.speed");
  EXPECT_PATH(rejection(with_agents(agent("agent_a", R"("call":{"silence":{"timeout_s":0}})"))),
              "agents[0].call.silence.timeout_s");
  // The bounds themselves are inside the range.
  accepted(with_agents(agent("agent_a", R"("call":{"min_interruption_s":2.0,"max_duration_s":14400})")));
}

TEST(Config, EnumeratedStringsListTheChoices) {
  EXPECT_LINE(rejection(with_agents(agent("agent_a", R"("mode":"video")"))),
              R"(agents[0].mode: must be "voice" or "chat", got "video")");
  EXPECT_LINE(rejection(R"({"log":{"level":"verbose"}})"),
              R"(log.level: must be "err", "warning", "notice", "info" or "debug", got "verbose")");
  EXPECT_EQ(accepted(R"({"log":{"level":"debug"}})").log_level, osvi::log::Level::debug);
}

TEST(Config, ListenIsParsedAndChecked) {
  EXPECT_LINE(rejection(R"({"api":{"listen":"8080"}})"), R"(api.listen: expected "host:port", got "8080")");
  EXPECT_PATH(rejection(R"({"api":{"listen":"127.0.0.1:0"}})"), "api.listen");
  EXPECT_PATH(rejection(R"({"api":{"listen":"127.0.0.1:65536"}})"), "api.listen");
  EXPECT_PATH(rejection(R"({"api":{"listen":"example.com:80"}})"), "api.listen");
  EXPECT_PATH(rejection(R"({"api":{"listen":"::1:80"}})"), "api.listen");
  EXPECT_PATH(rejection(R"({"api":{"listen":"[::g]:80"}})"), "api.listen");
  Config v6 = accepted(R"({"api":{"listen":"[::1]:9000"}})");
  EXPECT_EQ(v6.api.host, "[::1]");
  EXPECT_EQ(v6.api.port, 9000);
  Config lh = accepted(R"({"api":{"listen":"localhost:65535"}})");
  EXPECT_EQ(lh.api.host, "localhost");
  EXPECT_EQ(lh.api.port, 65535);
}

TEST(Config, SiteValuesAreChecked) {
  Config c = accepted(R"({"site":{"utc_offset":"-03:30","country":"BR","id":"branch-7.north"}})");
  EXPECT_EQ(c.site.utc_offset_minutes, -210);
  EXPECT_PATH(rejection(R"({"site":{"utc_offset":"+5:30"}})"), "site.utc_offset");
  EXPECT_PATH(rejection(R"({"site":{"utc_offset":"+15:00"}})"), "site.utc_offset");
  EXPECT_PATH(rejection(R"({"site":{"country":"in"}})"), "site.country");
  EXPECT_PATH(rejection(R"({"site":{"id":"a/b"}})"), "site.id");
  EXPECT_PATH(rejection(R"({"state_dir":""})"), "state_dir");
}

TEST(Config, AgentUuidMustMatchThePattern) {
  EXPECT_PATH(rejection(with_agents(agent("frontdesk"))), "agents[0].agent_uuid");
  EXPECT_PATH(rejection(with_agents(agent("agent_"))), "agents[0].agent_uuid");
  EXPECT_PATH(rejection(with_agents(agent("agent_a b"))), "agents[0].agent_uuid");
  EXPECT_PATH(rejection(with_agents(agent("agent_" + std::string(65, 'x')))), "agents[0].agent_uuid");
  accepted(with_agents(agent("agent_" + std::string(64, 'x'))));
  EXPECT_LINE(rejection(with_agents(R"({"name":"No id"})")), "agents[0].agent_uuid: required key is missing");
}

TEST(Config, DuplicateAgentUuidNamesBothPlaces) {
  const std::string msg =
      rejection(with_agents(agent("agent_a") + "," + agent("agent_b") + "," + agent("agent_a")));
  EXPECT_LINE(msg, R"(agents[2].agent_uuid: duplicate "agent_a" (first at agents[0]))");
  EXPECT_EQ(lines_of(msg).size(), 1u) << msg;
}

TEST(Config, NameLengthCountsCharacters) {
  const std::string fifty_one(51, 'n');
  EXPECT_LINE(rejection(with_agents(R"({"agent_uuid":"agent_a","name":")" + fifty_one + R"("})")),
              "agents[0].name: must be 1 to 50 characters, got 51");
  EXPECT_LINE(rejection(with_agents(R"({"agent_uuid":"agent_a","name":""})")),
              "agents[0].name: must not be empty");
  std::string devanagari;
  for (int i = 0; i < 50; ++i) devanagari += "\xe0\xa4\x85";  // 50 characters, 150 bytes
  accepted(with_agents(R"({"agent_uuid":"agent_a","name":")" + devanagari + R"("})"));
}

TEST(Config, GreetingIsLimitedTo2000Characters) {
  accepted(with_agents(agent("agent_a", R"("greeting":{"text":")" + std::string(2000, 'g') + R"("})")));
  EXPECT_LINE(
      rejection(with_agents(agent("agent_a", R"("greeting":{"text":")" + std::string(2001, 'g') + R"("})"))),
      "agents[0].greeting.text: must be at most 2000 characters, got 2001");
}

std::string multi_prompt(const std::string& states, const std::string& extra = "") {
  return agent("agent_m", R"("prompt":{"type":"multi",)" + extra + R"("states":[)" + states + "]}");
}

TEST(Config, MultiPromptStatesAndTransitions) {
  const std::string good =
      R"({"name":"greeting","prompt":"Say hello.","transitions":[{"to":"closing","when":"caller agrees to a demo"}]},
                              {"name":"qualification"},{"name":"closing","prompt":"Thank them."})";
  Config c = accepted(with_agents(multi_prompt(good)));
  const PromptConfig& p = c.agents[0].prompt;
  EXPECT_EQ(p.type, PromptType::multi);
  EXPECT_EQ(p.initial_state, "greeting");  // the first state by default
  ASSERT_EQ(p.states.size(), 3u);
  ASSERT_EQ(p.states[0].transitions.size(), 1u);
  EXPECT_EQ(p.states[0].transitions[0].to, "closing");
  EXPECT_EQ(accepted(with_agents(multi_prompt(good, R"("initial_state":"closing",)")))
                .agents[0]
                .prompt.initial_state,
            "closing");

  const std::string typo =
      R"({"name":"greeting"},{"name":"a"},{"name":"closing","transitions":[{"to":"closng","when":"done"}]})";
  EXPECT_LINE(rejection(with_agents(multi_prompt(typo))),
              R"(agents[0].prompt.states[2].transitions[0].to: unknown state "closng")");
  EXPECT_LINE(rejection(with_agents(multi_prompt(good, R"("initial_state":"hello",)"))),
              R"(agents[0].prompt.initial_state: unknown state "hello")");
  EXPECT_LINE(
      rejection(with_agents(multi_prompt(R"({"name":"a"},{"name":"a"})"))),
      R"(agents[0].prompt.states[1].name: duplicate state "a" (first at agents[0].prompt.states[0]))");
  EXPECT_PATH(rejection(with_agents(multi_prompt(R"({"name":"Greeting"})"))),
              "agents[0].prompt.states[0].name");
  EXPECT_PATH(rejection(with_agents(multi_prompt(""))), "agents[0].prompt.states");
  EXPECT_PATH(rejection(with_agents(multi_prompt(R"({"name":"a","transitions":[{"to":"a"}]})"))),
              "agents[0].prompt.states[0].transitions[0].when");
  EXPECT_PATH(rejection(with_agents(agent("agent_s", R"("prompt":{"type":"single","states":[]})"))),
              "agents[0].prompt.states");
  EXPECT_PATH(rejection(with_agents(multi_prompt(R"({"name":"a"})", R"("system_prompt":"x",)"))),
              "agents[0].prompt.system_prompt");
}

TEST(Config, TokensAreCheckedWithoutEchoingThem) {
  const std::string short_token = "abc123";
  std::string msg = rejection(R"({"api":{"tokens":[")" + short_token + R"("]}})");
  EXPECT_LINE(msg, "api.tokens[0]: must be 16 characters of A-Z a-z 0-9 _ -, got 6 characters");
  EXPECT_EQ(msg.find(short_token), std::string::npos) << "the secret leaked into: " << msg;
  EXPECT_PATH(rejection(R"({"api":{"tokens":["abcdefghijklmno!"]}})"), "api.tokens[0]");
  EXPECT_PATH(rejection(R"({"api":{"tokens":[{"token":"abc"}]}})"), "api.tokens[0].token");
  EXPECT_LINE(rejection(R"({"api":{"tokens":["abcdefghijklmnop","abcdefghijklmnop"]}})"),
              "api.tokens[1]: duplicate token (same as api.tokens[0])");
  EXPECT_LINE(rejection(R"({"api":{"tokens":[42]}})"),
              "api.tokens[0]: expected a string or an object, got number");
}

TEST(Config, TokenAgentsMustExist) {
  const std::string json =
      R"({"api":{"tokens":[{"token":"abcdefghijklmnop","agents":["agent_a","agent_x"]}]},"agents":[)" +
      agent("agent_a") + "]}";
  EXPECT_LINE(rejection(json), R"(api.tokens[0].agents[1]: unknown agent "agent_x")");

  Config c =
      accepted(R"({"api":{"tokens":["0123456789abcdef",{"token":"Limited_token-01","agents":["agent_a"]},
                                            {"token":"Unlimited_not_02","admin":false}]},"agents":[)" +
               agent("agent_a") + "]}");
  ASSERT_EQ(c.api.tokens.size(), 3u);
  EXPECT_TRUE(c.api.tokens[0].admin);
  EXPECT_TRUE(c.api.tokens[0].agents.empty());
  EXPECT_FALSE(c.api.tokens[1].admin);  // limited tokens are never admin
  EXPECT_EQ(c.api.tokens[1].agents, std::vector<std::string>{"agent_a"});
  EXPECT_FALSE(c.api.tokens[2].admin);
}

// A limited token reaching the system endpoints would see every agent's lines: the combination is refused.
TEST(Config, LimitedTokenCannotBeAdmin) {
  EXPECT_LINE(
      rejection(
          R"({"api":{"tokens":[{"token":"Admin_limited_02","agents":["agent_a"],"admin":true}]},"agents":[)" +
          agent("agent_a") + "]}"),
      "api.tokens[0].admin: a token limited to some agents cannot be admin");
}

TEST(Config, MaxEndpointingMustNotBeBelowMin) {
  EXPECT_LINE(
      rejection(with_agents(agent("agent_a", R"("call":{"min_endpointing_s":1.5,"max_endpointing_s":1.0})"))),
      "agents[0].call.max_endpointing_s: must be >= min_endpointing_s (1.5), got 1");
  accepted(with_agents(agent("agent_a", R"("call":{"min_endpointing_s":1.5,"max_endpointing_s":1.5})")));
}

TEST(Config, EndpointKeysAreChecked) {
  EXPECT_PATH(rejection(with_agents(agent("agent_a", R"("stt":{"base_url":"ftp://x/v1"})"))),
              "agents[0].stt.base_url");
  EXPECT_PATH(rejection(with_agents(agent("agent_a", R"("stt":{"base_url":"http:///v1"})"))),
              "agents[0].stt.base_url");
  EXPECT_PATH(rejection(with_agents(agent("agent_a", R"("llm":{"provider":"opneai"})"))),
              "agents[0].llm.provider");
  EXPECT_LINE(rejection(with_agents(agent("agent_a", R"("voice":{"api_key":"k","api_key_file":"/etc/k"})"))),
              "agents[0].voice.api_key_file: cannot be used together with api_key (choose one)");
  EXPECT_PATH(rejection(with_agents(agent("agent_a", R"("analysis":{"llm":{"timeout_ms":50}})"))),
              "agents[0].analysis.llm.timeout_ms");
  Config c = accepted(
      with_agents(agent("agent_a", R"("llm":{"base_url":"https://[::1]:8443/v1/","provider":"groq"})")));
  EXPECT_EQ(c.agents[0].llm.base_url, "https://[::1]:8443/v1");
}

TEST(Config, ProvidersAreCheckedPerStage) {
  // Every stage refuses a provider that does not offer it, naming the key.
  EXPECT_LINE(rejection(with_agents(agent("agent_a", R"("stt":{"provider":"anthropic"})"))),
              "agents[0].stt.provider: must be \"openai\", \"azure_openai\" or \"groq\", got \"anthropic\"");
  EXPECT_PATH(rejection(with_agents(agent("agent_a", R"("stt":{"provider":"gemini"})"))),
              "agents[0].stt.provider");
  EXPECT_PATH(rejection(with_agents(agent("agent_a", R"("voice":{"provider":"anthropic"})"))),
              "agents[0].voice.provider");
  EXPECT_PATH(rejection(with_agents(agent("agent_a", R"("voice":{"provider":"groq"})"))),
              "agents[0].voice.provider");
  // Each provider's public root when base_url is not given; Azure needs the resource's.
  Config c = accepted(with_agents(agent("agent_a", R"("llm":{"provider":"anthropic","temperature":0.5})")));
  EXPECT_EQ(c.agents[0].llm.provider, "anthropic");
  EXPECT_EQ(c.agents[0].llm.base_url, "https://api.anthropic.com/v1");
  EXPECT_EQ(accepted(with_agents(agent("agent_a", R"("llm":{"provider":"gemini"})"))).agents[0].llm.base_url,
            "https://generativelanguage.googleapis.com/v1beta/openai");
  EXPECT_EQ(accepted(with_agents(agent("agent_a", R"("stt":{"provider":"groq"})"))).agents[0].stt.base_url,
            "https://api.groq.com/openai/v1");
  EXPECT_PATH(rejection(with_agents(agent("agent_a", R"("llm":{"provider":"azure_openai"})"))),
              "agents[0].llm.base_url");
  Config az = accepted(with_agents(agent(
      "agent_a",
      R"("voice":{"provider":"azure_openai","base_url":"https://box.openai.azure.com/","api_version":"2025-03-01-preview"})")));
  EXPECT_EQ(az.agents[0].voice.base_url, "https://box.openai.azure.com");
  EXPECT_EQ(az.agents[0].voice.api_version, "2025-03-01-preview");
  EXPECT_PATH(
      rejection(with_agents(agent(
          "agent_a", R"("llm":{"provider":"azure_openai","base_url":"https://x","api_version":"latest"})"))),
      "agents[0].llm.api_version");
  EXPECT_PATH(rejection(with_agents(agent(
                  "agent_a", R"("llm":{"provider":"azure_openai","base_url":"https://x","model":"a/b?c"})"))),
              "agents[0].llm.model");
  EXPECT_LINE(rejection(with_agents(agent("agent_a", R"("llm":{"api_version":"2024-10-21"})"))),
              "agents[0].llm.api_version: only allowed with provider \"azure_openai\"");
  // Anthropic's temperature range is 0-1.
  EXPECT_PATH(rejection(with_agents(agent("agent_a", R"("llm":{"provider":"anthropic","temperature":1.5})"))),
              "agents[0].llm.temperature");
  EXPECT_EQ(accepted(with_agents(agent("agent_a", R"("analysis":{"llm":{"provider":"anthropic"}})")))
                .agents[0]
                .analysis.llm.base_url,
            "https://api.anthropic.com/v1");
}

TEST(Config, SettingsTheEngineCannotHonourAreRefused) {
  EXPECT_LINE(
      rejection(with_agents(agent("agent_a", R"("voice":{"format":"opus"})"))),
      "agents[0].voice.format: \"opus\" is not supported (the engine plays streamed \"pcm\" only); use "
      "\"pcm\"");
  EXPECT_PATH(rejection(with_agents(agent("agent_a", R"("call":{"vad":{"enabled":false}})"))),
              "agents[0].call.vad.enabled");
  EXPECT_PATH(rejection(with_agents(agent("agent_a", R"("call":{"noise_cancellation":false})"))),
              "agents[0].call.noise_cancellation");
  EXPECT_PATH(rejection(with_agents(agent("agent_a", R"("tools":{"language_switch":true})"))),
              "agents[0].tools.language_switch");
  // Their defaults, written out, stay accepted.
  accepted(with_agents(agent(
      "agent_a", R"("voice":{"format":"pcm"},"call":{"vad":{"enabled":true},"noise_cancellation":true},)"
                 R"("tools":{"language_switch":false})")));
}

TEST(Config, ApiKeyFileIsReadAtLoad) {
  osvi::test::TempDir dir;
  const std::string key = dir.file("openai.key");
  osvi::test::write_file(key, "sk-test-123\n");
  const std::string doc = with_agents(agent("agent_a", R"("llm":{"api_key_file":")" + key + R"("})"));
  Config c = accepted(doc);
  EXPECT_EQ(c.agents[0].llm.api_key, "sk-test-123");  // the trailing newline is not part of the key
  EXPECT_EQ(c.agents[0].llm.api_key_file, key);
  EXPECT_EQ(c.agents[0].stt.api_key, "");
  // A reload parses again and so reads the file again (a rotated key, Windows line end, blanks around it).
  osvi::test::write_file(key, "  sk-test-456\r\n");
  EXPECT_EQ(accepted(doc).agents[0].llm.api_key, "sk-test-456");
  // The analysis endpoint is read the same way.
  EXPECT_EQ(accepted(with_agents(agent("agent_a", R"("analysis":{"llm":{"api_key_file":")" + key + R"("}})")))
                .agents[0]
                .analysis.llm.api_key,
            "sk-test-456");
}

TEST(Config, ApiKeyFileProblemsNameTheKeyAndThePath) {
  osvi::test::TempDir dir;
  auto with_stt_key_file = [](const std::string& path) {
    return with_agents(agent("agent_a", R"("stt":{"api_key_file":")" + path + R"("})"));
  };
  const std::string missing = dir.file("missing.key");
  EXPECT_LINE(rejection(with_stt_key_file(missing)),
              "agents[0].stt.api_key_file: " + missing + ": No such file or directory");
  EXPECT_LINE(rejection(with_stt_key_file(dir.path())),
              "agents[0].stt.api_key_file: " + dir.path() + ": Is a directory");
  const std::string empty = dir.file("empty.key");
  osvi::test::write_file(empty, " \n");
  EXPECT_LINE(rejection(with_stt_key_file(empty)), "agents[0].stt.api_key_file: " + empty + ": empty");
  const std::string big = dir.file("big.key");
  osvi::test::write_file(big, std::string(5000, 'k'));
  EXPECT_LINE(rejection(with_stt_key_file(big)),
              "agents[0].stt.api_key_file: " + big + ": larger than 4096 bytes");
  // Two lines would put a line break into the Authorization header; the key itself is never echoed.
  const std::string two = dir.file("two.key");
  osvi::test::write_file(two, "sk-secret-one\nsk-secret-two\n");
  const std::string msg = rejection(with_stt_key_file(two));
  EXPECT_LINE(msg, "agents[0].stt.api_key_file: " + two + ": more than one line");
  EXPECT_EQ(msg.find("sk-secret"), std::string::npos) << msg;
}

// The connection limits of the API server: the per-client cap stays below the global one.
TEST(Config, ApiConnectionLimits) {
  Config c = accepted(
      R"({"api":{"max_connections":100,"max_connections_per_client":20,"header_timeout_s":3,"idle_timeout_s":2}})");
  EXPECT_EQ(c.api.max_connections_per_client, 20u);
  EXPECT_EQ(c.api.header_timeout_s, 3u);
  EXPECT_EQ(c.api.idle_timeout_s, 2u);
  // Lowering only the global cap lowers the per-client default with it.
  EXPECT_EQ(accepted(R"({"api":{"max_connections":8}})").api.max_connections_per_client, 8u);
  EXPECT_LINE(rejection(R"({"api":{"max_connections":8,"max_connections_per_client":9}})"),
              "api.max_connections_per_client: must not exceed api.max_connections (8), got 9");
  EXPECT_LINE(rejection(R"({"api":{"header_timeout_s":0}})"),
              "api.header_timeout_s: must be between 1 and 300, got 0");
  EXPECT_LINE(rejection(R"({"api":{"idle_timeout_s":301}})"),
              "api.idle_timeout_s: must be between 1 and 300, got 301");
}

// HTTPS: both files or neither, read at load; a key others may read is refused, naming key and path.
TEST(Config, ApiTlsFilesAreReadAtLoadAndChecked) {
  osvi::test::TempDir dir;
  const std::string cert = dir.file("cert.pem"), key = dir.file("key.pem");
  osvi::test::write_file(cert, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
  osvi::test::write_file(key, "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n");
  ASSERT_EQ(chmod(key.c_str(), 0600), 0);
  auto tls = [](const std::string& c, const std::string& k) {
    std::string api = "{\"api\":{";
    if (!c.empty()) api += "\"tls_cert_file\":\"" + c + "\"" + (k.empty() ? "" : ",");
    if (!k.empty()) api += "\"tls_key_file\":\"" + k + "\"";
    return api + "}}";
  };
  Config c = accepted(tls(cert, key));
  EXPECT_EQ(c.api.tls_cert_file, cert);
  EXPECT_EQ(c.api.tls_cert_pem.rfind("-----BEGIN CERTIFICATE-----", 0), 0u);
  EXPECT_EQ(c.api.tls_key_pem.rfind("-----BEGIN PRIVATE KEY-----", 0), 0u);

  EXPECT_LINE(
      rejection(tls(cert, "")),
      "api.tls_key_file: required with api.tls_cert_file (HTTPS needs both a certificate and its key)");
  EXPECT_LINE(
      rejection(tls("", key)),
      "api.tls_cert_file: required with api.tls_key_file (HTTPS needs both a certificate and its key)");
  const std::string missing = dir.file("missing.pem");
  EXPECT_LINE(rejection(tls(missing, key)), "api.tls_cert_file: " + missing + ": No such file or directory");
  EXPECT_LINE(rejection(tls(cert, dir.path())), "api.tls_key_file: " + dir.path() + ": Is a directory");
  const std::string junk = dir.file("junk.pem");
  osvi::test::write_file(junk, "not a certificate");
  EXPECT_LINE(rejection(tls(junk, key)), "api.tls_cert_file: " + junk + ": not PEM (no \"-----BEGIN\" line)");
  const std::string big = dir.file("big.pem");
  osvi::test::write_file(big, "-----BEGIN CERTIFICATE-----\n" + std::string(70000, 'A'));
  EXPECT_LINE(rejection(tls(big, key)), "api.tls_cert_file: " + big + ": larger than 65536 bytes");
  ASSERT_EQ(chmod(key.c_str(), 0640), 0);
  EXPECT_LINE(rejection(tls(cert, key)), "api.tls_key_file: " + key +
                                             ": a private key must be readable by its owner only (mode 0640; "
                                             "chmod 600 it)");
}

TEST(Config, CallToolsAnalysisRules) {
  EXPECT_LINE(rejection(with_agents(agent("agent_a", R"("call":{"voicemail":{"action":"leave_message"}})"))),
              R"(agents[0].call.voicemail.message: required when action is "leave_message")");
  EXPECT_PATH(
      rejection(with_agents(agent(
          "agent_a", R"("mode":"chat","call":{"voicemail":{"action":"leave_message","message":"Hi"}})"))),
      "agents[0].call.voicemail.action");
  EXPECT_LINE(rejection(with_agents(agent("agent_a", R"("tools":{"transfer":{"enabled":true}})"))),
              "agents[0].tools.transfer.number: required when transfer is enabled");
  EXPECT_PATH(rejection(with_agents(agent("agent_a", R"("tools":{"transfer":{"number":"9876543210"}})"))),
              "agents[0].tools.transfer.number");
  EXPECT_PATH(rejection(with_agents(agent("agent_a", R"("active":true,"archived":true)"))),
              "agents[0].active");
  EXPECT_PATH(
      rejection(with_agents(agent(
          "agent_a", R"("analysis":{"data_extraction":[{"key":"name"},{"key":"name","type":"date"}]})"))),
      "agents[0].analysis.data_extraction[1].key");
  EXPECT_PATH(rejection(with_agents(
                  agent("agent_a", R"("analysis":{"data_extraction":[{"key":"x","type":"int"}]})"))),
              "agents[0].analysis.data_extraction[0].type");
  EXPECT_PATH(rejection(with_agents(
                  agent("agent_a", R"("analysis":{"tags":[{"id":1,"name":"a"},{"id":1,"name":"b"}]})"))),
              "agents[0].analysis.tags[1].id");
  EXPECT_PATH(rejection(with_agents(
                  agent("agent_a", R"("analysis":{"tags":[{"id":1,"name":"a","color_code":"red"}]})"))),
              "agents[0].analysis.tags[0].color_code");
  EXPECT_PATH(rejection(with_agents(agent("agent_a", R"("analysis":{"output_schema":[1]})"))),
              "agents[0].analysis.output_schema");

  Config c = accepted(with_agents(
      agent("agent_a", R"("tools":{"transfer":{"enabled":true,"number":"+919876543210","mode":"attended"}},
      "analysis":{"enabled":true,"data_extraction":[{"key":"callback_time","type":"date","required":true}],
                  "tags":[{"id":3,"name":"interested","color_code":"#00aa00"}],
                  "output_schema":{"type":"object","properties":{"appointment":{"type":"string"}}}})")));
  const AgentConfig& a = c.agents[0];
  EXPECT_EQ(a.tools.transfer.number, "+919876543210");
  EXPECT_EQ(a.tools.transfer.mode, TransferMode::attended);
  ASSERT_EQ(a.analysis.data_extraction.size(), 1u);
  EXPECT_EQ(a.analysis.data_extraction[0].type, FieldType::date);
  EXPECT_TRUE(a.analysis.data_extraction[0].required);
  ASSERT_EQ(a.analysis.tags.size(), 1u);
  EXPECT_EQ(a.analysis.tags[0].id, 3);
  EXPECT_EQ(a.analysis.output_schema_json,
            R"({"type":"object","properties":{"appointment":{"type":"string"}}})");
}

// output_schema is checked against the documented subset, each mistake named by its key path.
TEST(Config, AnalysisOutputSchemaIsChecked) {
  auto schema = [](const std::string& s) {
    return with_agents(agent("agent_a", R"("analysis":{"output_schema":)" + s + "}"));
  };
  EXPECT_PATH(rejection(schema(R"({"appointment":{"type":"object"}})")),
              "agents[0].analysis.output_schema.type");
  EXPECT_PATH(rejection(schema(R"({"type":"object","properties":{"n":{"type":"int"}}})")),
              "agents[0].analysis.output_schema.properties.n.type");
  EXPECT_PATH(rejection(schema(R"({"type":"object","properties":{"n":{"type":"string"}},"required":["m"]})")),
              "agents[0].analysis.output_schema.required");
  EXPECT_PATH(rejection(schema(R"({"type":"object","properties":{"l":{"type":"array"}}})")),
              "agents[0].analysis.output_schema.properties.l.items");
  EXPECT_PATH(rejection(schema(R"({"type":"object","properties":{},"oneOf":[]})")),
              "agents[0].analysis.output_schema.oneOf");
  EXPECT_PATH(rejection(schema(R"({"mode":"conditional","when":[{"if":"yes","schema":{"type":"string"}}]})")),
              "agents[0].analysis.output_schema.when[0].schema.type");
  EXPECT_PATH(
      rejection(schema(R"({"mode":"conditional","when":[{"if":"a","schema":{"type":"object","properties":{}}},
                                   {"if":"a","schema":{"type":"object","properties":{}}}]})")),
      "agents[0].analysis.output_schema.when[1].if");
  EXPECT_PATH(rejection(schema(R"({"mode":"sometimes"})")), "agents[0].analysis.output_schema.mode");
  Config c = accepted(schema(R"({"mode":"conditional","when":[
      {"if":"booked","description":"a demo was booked","schema":{"type":"object","properties":{"day":{"type":"string"}},"required":["day"]}},
      {"if":"declined","schema":{"type":"object","properties":{"reason":{"type":"string","enum":["price","timing"]}}}}]})"));
  EXPECT_NE(c.agents[0].analysis.output_schema_json.find("conditional"), std::string::npos);
}

TEST(Config, EveryProblemIsReportedOnePerLine) {
  const std::string json = R"({
    "log": {"level": 3},
    "api": {"listen": "8080", "tokens": ["short"]},
    "colour": "blue",
    "agents": [
      {"agent_uuid": "bad uuid", "name": ")" +
                           std::string(60, 'n') +
                           R"(", "call": {"min_endpointing_s": 2, "max_endpointing_s": 1}},
      {"agent_uuid": "agent_ok", "name": "Ok", "greeting": {"text": 5}}
    ]
  })";
  const std::string msg = rejection(json);
  const std::vector<std::string> lines = lines_of(msg);
  EXPECT_EQ(lines.size(), 8u) << msg;
  for (const char* path : {"log.level", "api.listen", "api.tokens[0]", "colour", "agents[0].agent_uuid",
                           "agents[0].name", "agents[0].call.max_endpointing_s", "agents[1].greeting.text"})
    EXPECT_PATH(msg, path);
}

TEST(Config, LoadConfigFileNamesThePathAndErrno) {
  osvi::test::TempDir dir;
  const std::string missing = dir.file("nope.json");
  auto r = load_config_file(missing);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, -ENOENT);
  EXPECT_NE(r.error().message.find(missing), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("No such file or directory"), std::string::npos) << r.error().message;

  auto d = load_config_file(dir.path());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, -EISDIR) << d.error().message;

  const std::string good = dir.file("osvid.json");
  osvi::test::write_file(good, R"({"state_dir":"./state"})");
  auto g = load_config_file(good);
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->state_dir, "./state");
}

// ---- site.time_zone, compliance, campaigns, tools.opt_out (issue 13) --------------------------------------

TEST(Config, TimeZoneIsLoadedFromTheZoneDatabase) {
  EXPECT_EQ(accepted(R"({"site":{"time_zone":"America/New_York"}})").site.time_zone, "America/New_York");
  EXPECT_EQ(accepted(R"({"site":{"time_zone":"UTC"}})").site.time_zone, "UTC");
  EXPECT_LINE(rejection(R"({"site":{"time_zone":"Mars/Olympus"}})"),
              R"(site.time_zone: unknown time zone "Mars/Olympus")");
  EXPECT_PATH(rejection(R"({"site":{"time_zone":"../../etc/passwd"}})"), "site.time_zone");
  EXPECT_PATH(rejection(R"({"site":{"time_zone":""}})"), "site.time_zone");
  EXPECT_LINE(rejection(R"({"site":{"time_zone":330}})"), "site.time_zone: expected a string, got number");
}

TEST(Config, ComplianceFloorIsOneSpanOfTheDay) {
  Config c = accepted(R"({"compliance":{"calling_hours":"09:30-20:00","max_attempts_per_day":1}})");
  EXPECT_EQ(c.compliance.calling_hours, "09:30-20:00");
  EXPECT_EQ(c.compliance.calling_hours_start_min, 9 * 60 + 30);
  EXPECT_EQ(c.compliance.calling_hours_end_min, 20 * 60);
  EXPECT_EQ(c.compliance.max_attempts_per_day, 1u);
  EXPECT_EQ(accepted(R"({"compliance":{"calling_hours":"00:00-24:00","max_attempts_per_day":20}})")
                .compliance.calling_hours_end_min,
            24 * 60);
  EXPECT_LINE(
      rejection(R"({"compliance":{"calling_hours":"21:00-08:00"}})"),
      R"(compliance.calling_hours: must not wrap past midnight (the floor is one span of the local day), got "21:00-08:00")");
  EXPECT_LINE(
      rejection(R"({"compliance":{"calling_hours":"10:00-10:00"}})"),
      R"(compliance.calling_hours: the window is empty (start equals end); the whole day is "00:00-24:00", got "10:00-10:00")");
  EXPECT_LINE(rejection(R"({"compliance":{"calling_hours":"8-21"}})"),
              R"(compliance.calling_hours: expected "HH:MM-HH:MM" such as "09:30-18:00", got "8-21")");
  EXPECT_LINE(rejection(R"({"compliance":{"max_attempts_per_day":0}})"),
              "compliance.max_attempts_per_day: must be between 1 and 20, got 0");
  EXPECT_PATH(rejection(R"({"compliance":{"max_attempts_per_day":21}})"), "compliance.max_attempts_per_day");
  EXPECT_LINE(rejection(R"({"compliance":{"calling_hour":"08:00-21:00"}})"),
              R"(compliance.calling_hour: unknown key (did you mean "calling_hours"?))");
  EXPECT_LINE(rejection(R"({"compliance":[]})"), "compliance: expected an object, got array");
}

TEST(Config, DayWindowsAreHalfOpenMinutesOfTheDay) {
  int start = -1, end = -1;
  std::string why;
  ASSERT_TRUE(parse_day_window("09:30-18:00", &start, &end, &why)) << why;
  EXPECT_EQ(start, 570);
  EXPECT_EQ(end, 1080);
  ASSERT_TRUE(parse_day_window("22:00-06:00", &start, &end, &why)) << why;  // wraps: the caller decides
  EXPECT_EQ(start, 1320);
  EXPECT_EQ(end, 360);
  ASSERT_TRUE(parse_day_window("00:00-24:00", &start, &end, &why)) << why;
  EXPECT_EQ(start, 0);
  EXPECT_EQ(end, 1440);
  for (const char* bad : {"", "9:30-18:00", "09:30 - 18:00", "24:00-10:00", "10:00-24:30", "10:60-11:00",
                          "10:00-25:00", "00:00-00:00", "ab:cd-ef:gh", "09:30-18:00 "}) {
    why.clear();
    EXPECT_FALSE(parse_day_window(bad, &start, &end, &why)) << bad;
    EXPECT_FALSE(why.empty()) << bad;
  }
}

TEST(Config, OptOutToolAndKey) {
  Config c = accepted(with_agents(
      agent("agent_a", R"("tools":{"opt_out":{"enabled":false,"dtmf_key":"#","message":"Removed. Bye."}})")));
  EXPECT_FALSE(c.agents[0].tools.opt_out.enabled);
  EXPECT_EQ(c.agents[0].tools.opt_out.dtmf_key, "#");
  EXPECT_EQ(c.agents[0].tools.opt_out.message, "Removed. Bye.");
  for (const char* key : {"0", "9", "*"})
    EXPECT_EQ(accepted(with_agents(agent(
                           "agent_a", R"("tools":{"opt_out":{"dtmf_key":")" + std::string(key) + R"("}})")))
                  .agents[0]
                  .tools.opt_out.dtmf_key,
              key);
  EXPECT_EQ(accepted(with_agents(agent("agent_a", R"("tools":{"opt_out":{"message":""}})")))
                .agents[0]
                .tools.opt_out.message,
            "");
  EXPECT_LINE(rejection(with_agents(agent("agent_a", R"("tools":{"opt_out":{"dtmf_key":"A"}})"))),
              R"(agents[0].tools.opt_out.dtmf_key: must be "" (no key) or one of 0-9 * #, got "A")");
  EXPECT_PATH(rejection(with_agents(agent("agent_a", R"("tools":{"opt_out":{"dtmf_key":"12"}})"))),
              "agents[0].tools.opt_out.dtmf_key");
  EXPECT_LINE(rejection(with_agents(agent("agent_a", R"("tools":{"opt_out":{"enabled":"yes"}})"))),
              "agents[0].tools.opt_out.enabled: expected a boolean, got string");
  EXPECT_LINE(rejection(with_agents(
                  agent("agent_a", R"("tools":{"opt_out":{"message":")" + std::string(501, 'x') + R"("}})"))),
              "agents[0].tools.opt_out.message: must be at most 500 characters, got 501");
  accepted(
      with_agents(agent("agent_a", R"("tools":{"opt_out":{"message":")" + std::string(500, 'x') + R"("}})")));
  EXPECT_LINE(rejection(with_agents(agent("agent_a", R"("tools":{"opt_out":{"key":"#"}})"))),
              "agents[0].tools.opt_out.key: unknown key");
  EXPECT_LINE(
      rejection(with_agents(agent("agent_a", R"("mode":"chat","tools":{"opt_out":{"dtmf_key":"9"}})"))),
      R"(agents[0].tools.opt_out.dtmf_key: a keypad key needs a voice agent (mode is "chat"))");
}

TEST(Config, ChatVoiceAgentMustNameAVoiceAgentAndSitOnAChatAgent) {
  const Config c = accepted(with_agents(
      agent("agent_v") + "," + agent("agent_c", R"("mode":"chat","chat":{"voice_agent":"agent_v"})")));
  EXPECT_EQ(c.agents[1].chat.voice_agent, "agent_v");
  EXPECT_EQ(c.agents[0].chat.voice_agent, "");
  EXPECT_LINE(rejection(with_agents(agent("agent_c", R"("mode":"chat","chat":{"voice_agent":"agent_x"})"))),
              R"(agents[0].chat.voice_agent: unknown agent "agent_x")");
  EXPECT_LINE(rejection(with_agents(agent("agent_d", R"("mode":"chat")") + "," +
                                    agent("agent_c", R"("mode":"chat","chat":{"voice_agent":"agent_d"})"))),
              R"(agents[1].chat.voice_agent: agent "agent_d" is not a voice agent (mode is "chat"))");
  EXPECT_LINE(rejection(with_agents(agent("agent_v") + "," +
                                    agent("agent_w", R"("chat":{"voice_agent":"agent_v"})"))),
              R"(agents[1].chat.voice_agent: offer_call needs a chat agent (mode is "voice"))");
  EXPECT_LINE(rejection(with_agents(agent("agent_c", R"("mode":"chat","chat":{"voice_agent":7})"))),
              "agents[0].chat.voice_agent: expected a string, got number");
}

// A config with two voice agents, a chat agent and `campaigns` (a JSON array body).
std::string with_campaigns(const std::string& campaigns) {
  return R"({"agents":[)" + agent("agent_a") + "," + agent("agent_b") + "," +
         agent("agent_chat", R"("mode":"chat")") + R"(],"campaigns":[)" + campaigns + "]}";
}

osvi::Result<CampaignConfig> campaign_from(const std::string& json, const CampaignConfig* base = nullptr,
                                           std::string_view path = "") {
  std::string why;
  osvi::net::JsonPtr doc = osvi::net::json_parse(json, &why);
  EXPECT_TRUE(doc) << why << " in " << json;
  return parse_campaign(doc.get(), base, path);
}

std::string campaign_rejection(const std::string& json, const CampaignConfig* base = nullptr,
                               std::string_view path = "") {
  auto r = campaign_from(json, base, path);
  EXPECT_FALSE(r.ok()) << "accepted: " << json;
  return r.ok() ? std::string() : r.error().message;
}

TEST(Config, CampaignWithOnlyRequiredKeysGetsDefaults) {
  Config c = accepted(with_campaigns(R"({"id":7,"name":"Renewals","agents":["agent_a"]})"));
  ASSERT_EQ(c.campaigns.size(), 1u);
  const CampaignConfig& k = c.campaigns[0];
  EXPECT_EQ(k.id, 7);
  EXPECT_EQ(k.name, "Renewals");
  EXPECT_EQ(k.status, CampaignStatus::active);
  ASSERT_EQ(k.agents.size(), 1u);
  EXPECT_EQ(k.agents[0].agent_uuid, "agent_a");
  EXPECT_TRUE(k.agents[0].active);
  EXPECT_FALSE(k.starts_at_ms);
  EXPECT_FALSE(k.ends_at_ms);
  EXPECT_EQ(k.window_start_min, 0);
  EXPECT_EQ(k.window_end_min, 1440);
  EXPECT_EQ(k.days_mask, 0x7f);
  EXPECT_FALSE(k.is_retry_enabled);
  EXPECT_EQ(k.retry_threshold, 2u);
  EXPECT_EQ(k.retry_delay_s, 1800u);
  EXPECT_EQ(k.retry_on, (std::vector<std::string>{"not_picked", "busy"}));
  EXPECT_EQ(k.max_concurrent_per_agent, 1u);
}

TEST(Config, CampaignWithEveryKey) {
  Config c = accepted(with_campaigns(R"({
    "id": 12, "name": "Festive offer", "status": "inactive",
    "agents": ["agent_a", {"agent_uuid": "agent_b", "active": false}],
    "schedule": {"starts_at": "2026-06-01T09:00:00+05:30", "ends_at": "2026-06-30T18:00:00Z",
                 "window": "20:00-02:00", "days": ["mon", "sat", "sun"]},
    "is_retry_enabled": true, "retry_threshold": 10, "retry_delay": 60,
    "retry_on": ["voicemail", "failed", "busy", "not_picked"], "max_concurrent_calls_per_agent": 64})"));
  ASSERT_EQ(c.campaigns.size(), 1u);
  const CampaignConfig& k = c.campaigns[0];
  EXPECT_EQ(k.status, CampaignStatus::inactive);
  EXPECT_EQ(k.agents, (std::vector<CampaignAgentConfig>{{"agent_a", true}, {"agent_b", false}}));
  EXPECT_EQ(k.starts_at_ms, std::optional<int64_t>(1'780'284'600'000));  // 2026-06-01T03:30:00Z
  EXPECT_EQ(k.ends_at_ms, std::optional<int64_t>(1'782'842'400'000));    // 2026-06-30T18:00:00Z
  EXPECT_EQ(k.window_start_min, 20 * 60);
  EXPECT_EQ(k.window_end_min, 2 * 60);
  EXPECT_EQ(k.days_mask, 0b1000011);  // Sunday, Monday, Saturday
  EXPECT_TRUE(k.is_retry_enabled);
  EXPECT_EQ(k.retry_threshold, 10u);
  EXPECT_EQ(k.retry_delay_s, 60u);
  EXPECT_EQ(k.retry_on, (std::vector<std::string>{"voicemail", "failed", "busy", "not_picked"}));
  EXPECT_EQ(k.max_concurrent_per_agent, 64u);
  EXPECT_EQ(to_string(k.status), "inactive");
  // null is "immediately" / "open-ended".
  const CampaignConfig n =
      accepted(
          with_campaigns(
              R"({"id":1,"name":"n","agents":["agent_a"],"schedule":{"starts_at":null,"ends_at":null}})"))
          .campaigns.at(0);
  EXPECT_FALSE(n.starts_at_ms);
  EXPECT_FALSE(n.ends_at_ms);
}

TEST(Config, CampaignErrorsNameTheirKeyPath) {
  const std::string ok = R"("id":1,"name":"n","agents":["agent_a"])";
  auto bad = [&](const std::string& extra) {
    return rejection(with_campaigns("{" + ok + "," + extra + "}"));
  };
  EXPECT_LINE(rejection(with_campaigns(R"({"name":"n","agents":["agent_a"]})")),
              "campaigns[0].id: required key is missing");
  EXPECT_LINE(rejection(with_campaigns(R"({"id":1,"agents":["agent_a"]})")),
              "campaigns[0].name: required key is missing");
  EXPECT_LINE(rejection(with_campaigns(R"({"id":1,"name":"n"})")),
              "campaigns[0].agents: required key is missing (a campaign calls with at least one agent)");
  EXPECT_LINE(rejection(with_campaigns(R"({"id":0,"name":"n","agents":["agent_a"]})")),
              "campaigns[0].id: must be between 1 and 9007199254740991, got 0");
  EXPECT_LINE(rejection(with_campaigns(R"({"id":1.5,"name":"n","agents":["agent_a"]})")),
              "campaigns[0].id: expected an integer, got 1.5");
  EXPECT_LINE(rejection(with_campaigns(R"({"id":1,"name":"","agents":["agent_a"]})")),
              "campaigns[0].name: must not be empty");
  EXPECT_LINE(
      rejection(with_campaigns(R"({"id":1,"name":")" + std::string(201, 'n') + R"(","agents":["agent_a"]})")),
      "campaigns[0].name: must be 1 to 200 characters, got 201");
  accepted(with_campaigns(R"({"id":1,"name":")" + std::string(200, 'n') + R"(","agents":["agent_a"]})"));
  EXPECT_LINE(bad(R"("status":"paused")"),
              R"(campaigns[0].status: must be "active" or "inactive", got "paused")");
  EXPECT_LINE(rejection(with_campaigns(R"({"id":1,"name":"n","agents":[]})")),
              "campaigns[0].agents: must list at least one agent");
  EXPECT_LINE(rejection(with_campaigns(R"({"id":1,"name":"n","agents":"agent_a"})")),
              "campaigns[0].agents: expected an array, got string");
  EXPECT_LINE(
      rejection(with_campaigns(R"({"id":1,"name":"n","agents":["agent_a",{"agent_uuid":"agent_a"}]})")),
      R"(campaigns[0].agents[1].agent_uuid: agent "agent_a" is listed twice (first at campaigns[0].agents[0]))");
  EXPECT_LINE(rejection(with_campaigns(R"({"id":1,"name":"n","agents":["a b"]})")),
              R"(campaigns[0].agents[0]: expected "agent_" and 1 to 64 of A-Z a-z 0-9 _ -, got "a b")");
  EXPECT_LINE(rejection(with_campaigns(R"({"id":1,"name":"n","agents":[7]})")),
              "campaigns[0].agents[0]: expected an agent_uuid string or an object, got number");
  EXPECT_LINE(rejection(with_campaigns(R"({"id":1,"name":"n","agents":[{"active":true}]})")),
              "campaigns[0].agents[0].agent_uuid: required key is missing");
  EXPECT_LINE(
      rejection(with_campaigns(R"({"id":1,"name":"n","agents":[{"agent_uuid":"agent_a","active":1}]})")),
      "campaigns[0].agents[0].active: expected a boolean, got number");
  EXPECT_LINE(
      rejection(with_campaigns(R"({"id":1,"name":"n","agents":[{"agent_uuid":"agent_a","weight":2}]})")),
      "campaigns[0].agents[0].weight: unknown key");
  EXPECT_LINE(
      bad(R"("schedule":{"starts_at":"2026-06-01T09:00:00"})"),
      R"(campaigns[0].schedule.starts_at: expected an ISO-8601 time with its offset, such as "2026-06-01T09:00:00+05:30", or null, got "2026-06-01T09:00:00")");
  EXPECT_PATH(bad(R"("schedule":{"starts_at":"2026-06-01"})"), "campaigns[0].schedule.starts_at");
  EXPECT_LINE(bad(R"("schedule":{"ends_at":1780284600})"),
              "campaigns[0].schedule.ends_at: expected an ISO-8601 time or null, got number");
  EXPECT_LINE(bad(R"("schedule":{"starts_at":"2026-06-02T00:00:00Z","ends_at":"2026-06-01T00:00:00Z"})"),
              "campaigns[0].schedule.ends_at: must be after schedule.starts_at");
  EXPECT_PATH(bad(R"("schedule":{"starts_at":"2026-06-01T00:00:00Z","ends_at":"2026-06-01T05:30:00+05:30"})"),
              "campaigns[0].schedule.ends_at");
  EXPECT_LINE(
      bad(R"("schedule":{"window":"09:00-09:00"})"),
      R"(campaigns[0].schedule.window: the window is empty (start equals end); the whole day is "00:00-24:00", got "09:00-09:00")");
  EXPECT_LINE(bad(R"("schedule":{"window":"9am-5pm"})"),
              R"(campaigns[0].schedule.window: expected "HH:MM-HH:MM" such as "09:30-18:00", got "9am-5pm")");
  EXPECT_LINE(bad(R"("schedule":{"days":[]})"), "campaigns[0].schedule.days: must list at least one day");
  EXPECT_LINE(
      bad(R"("schedule":{"days":["mon","Tue"]})"),
      R"(campaigns[0].schedule.days[1]: must be "sun", "mon", "tue", "wed", "thu", "fri" or "sat", got "Tue")");
  EXPECT_LINE(bad(R"("schedule":{"days":["mon","mon"]})"),
              R"(campaigns[0].schedule.days[1]: "mon" is listed twice)");
  EXPECT_LINE(bad(R"("schedule":{"timezone":"UTC"})"), "campaigns[0].schedule.timezone: unknown key");
  EXPECT_LINE(bad(R"("schedule":"always")"), "campaigns[0].schedule: expected an object, got string");
  EXPECT_LINE(bad(R"("is_retry_enabled":"true")"),
              "campaigns[0].is_retry_enabled: expected a boolean, got string");
  EXPECT_LINE(bad(R"("retry_threshold":0)"), "campaigns[0].retry_threshold: must be between 1 and 10, got 0");
  EXPECT_LINE(bad(R"("retry_threshold":11)"),
              "campaigns[0].retry_threshold: must be between 1 and 10, got 11");
  EXPECT_LINE(bad(R"("retry_delay":59)"), "campaigns[0].retry_delay: must be between 60 and 604800, got 59");
  EXPECT_LINE(bad(R"("retry_delay":604801)"),
              "campaigns[0].retry_delay: must be between 60 and 604800, got 604801");
  EXPECT_LINE(
      bad(R"("retry_on":[])"),
      R"(campaigns[0].retry_on: must list at least one call status (turn retries off with "is_retry_enabled"))");
  EXPECT_LINE(
      bad(R"("retry_on":["picked"])"),
      R"(campaigns[0].retry_on[0]: must be "not_picked", "busy", "failed" or "voicemail", got "picked")");
  EXPECT_LINE(bad(R"("retry_on":["busy","busy"])"), R"(campaigns[0].retry_on[1]: "busy" is listed twice)");
  EXPECT_LINE(bad(R"("max_concurrent_calls_per_agent":0)"),
              "campaigns[0].max_concurrent_calls_per_agent: must be between 1 and 64, got 0");
  EXPECT_PATH(bad(R"("max_concurrent_calls_per_agent":65)"), "campaigns[0].max_concurrent_calls_per_agent");
  EXPECT_LINE(bad(R"("retry_treshold":3)"),
              R"(campaigns[0].retry_treshold: unknown key (did you mean "retry_threshold"?))");
  EXPECT_LINE(bad(R"("name":"again")"), "campaigns[0].name: duplicate key");
  EXPECT_LINE(rejection(R"({"campaigns":[3]})"), "campaigns[0]: expected an object, got number");
  EXPECT_LINE(rejection(R"({"campaigns":{}})"), "campaigns: expected an array, got object");
}

TEST(Config, CampaignAgentsMustBeVoiceAgentsOfTheConfiguration) {
  EXPECT_LINE(rejection(with_campaigns(R"({"id":1,"name":"n","agents":["agent_a","agent_zz"]})")),
              R"(campaigns[0].agents[1]: unknown agent "agent_zz")");
  EXPECT_LINE(
      rejection(with_campaigns(R"({"id":1,"name":"n","agents":["agent_b",{"agent_uuid":"agent_chat"}]})")),
      R"(campaigns[0].agents[1]: agent "agent_chat" is a chat agent (mode "chat"); a campaign calls with voice agents)");
  // Inactive agents are fine: the campaign waits for them.
  accepted(R"({"agents":[)" + agent("agent_a", R"("active":false)") +
           R"(],"campaigns":[{"id":1,"name":"n","agents":["agent_a"]}]})");
}

TEST(Config, CampaignIdsAreUnique) {
  const std::string msg = rejection(with_campaigns(R"({"id":4,"name":"a","agents":["agent_a"]},
      {"id":5,"name":"b","agents":["agent_a"]}, {"id":4,"name":"c","agents":["agent_b"]})"));
  EXPECT_LINE(msg, "campaigns[2].id: duplicate id 4 (first at campaigns[0])");
  EXPECT_EQ(lines_of(msg).size(), 1u) << msg;
  // Also when the campaign has other problems.
  const std::string both = rejection(with_campaigns(R"({"id":4,"name":"a","agents":["agent_a"]},
      {"id":4,"name":"b","agents":["agent_a"],"retry_delay":1})"));
  EXPECT_LINE(both, "campaigns[1].id: duplicate id 4 (first at campaigns[0])");
  EXPECT_PATH(both, "campaigns[1].retry_delay");
  Config c = accepted(with_campaigns(R"({"id":4,"name":"a","agents":["agent_a"]},
      {"id":5,"name":"a","agents":["agent_a"]})"));
  ASSERT_EQ(c.campaigns.size(), 2u);
  EXPECT_EQ(c.campaigns[1].id, 5);
}

TEST(Config, ParseCampaignNamesPathsUnderTheGivenPrefix) {
  // The API extension's bodies: no prefix, or one of its own.
  EXPECT_LINE(campaign_rejection(R"({"id":1,"name":"n","agents":["agent_a"],"schedule":{"window":"x"}})"),
              R"(schedule.window: expected "HH:MM-HH:MM" such as "09:30-18:00", got "x")");
  EXPECT_LINE(campaign_rejection(R"({"id":1,"name":"n","agents":["agent_a"],"colour":1})"),
              "colour: unknown key");
  EXPECT_LINE(
      campaign_rejection(R"({"id":1,"name":"n","agents":["agent_a"],"retry_delay":1})", nullptr, "campaign"),
      "campaign.retry_delay: must be between 60 and 604800, got 1");
  EXPECT_LINE(campaign_rejection(R"([1])"), "top level: expected an object, got array");
  EXPECT_LINE(campaign_rejection(R"("x")", nullptr, "body"), "body: expected an object, got string");
  auto none = parse_campaign(nullptr);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().message, "top level: expected an object, got null");
  // Every problem at once, one per line.
  const std::string msg = campaign_rejection(R"({"name":"","agents":[],"retry_threshold":0,"x":1})");
  EXPECT_EQ(lines_of(msg).size(), 5u) << msg;
  for (const char* path : {"id", "name", "agents", "retry_threshold", "x"}) EXPECT_PATH(msg, path);
  // Agents are not looked up here: that is check_campaign_agents(), against whichever configuration applies.
  auto r = campaign_from(R"({"id":1,"name":"n","agents":["agent_elsewhere"]})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  std::vector<AgentConfig> agents(2);
  agents[0].agent_uuid = "agent_elsewhere";
  agents[1].agent_uuid = "agent_text";
  agents[1].mode = AgentMode::chat;
  EXPECT_TRUE(check_campaign_agents(*r, agents).ok());
  auto missing = check_campaign_agents(*r, {});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message, R"(agents[0]: unknown agent "agent_elsewhere")");
  r->agents[0].agent_uuid = "agent_text";
  auto chat = check_campaign_agents(*r, agents, "campaign");
  ASSERT_FALSE(chat.ok());
  EXPECT_EQ(
      chat.error().message,
      R"(campaign.agents[0]: agent "agent_text" is a chat agent (mode "chat"); a campaign calls with voice agents)");
}

TEST(Config, ParseCampaignWithBaseKeepsWhatThePatchLeavesOut) {
  auto base = campaign_from(R"({"id":9,"name":"Base","status":"active",
      "agents":["agent_a",{"agent_uuid":"agent_b","active":false}],
      "schedule":{"starts_at":"2026-06-01T00:00:00Z","ends_at":"2026-07-01T00:00:00Z",
                  "window":"10:00-18:00","days":["mon","tue"]},
      "is_retry_enabled":true,"retry_threshold":3,"retry_delay":600,"retry_on":["busy"],
      "max_concurrent_calls_per_agent":2})");
  ASSERT_TRUE(base.ok()) << base.error().message;

  // An empty patch changes nothing; nothing is required.
  auto same = campaign_from("{}", &*base);
  ASSERT_TRUE(same.ok()) << same.error().message;
  EXPECT_EQ(*same, *base);

  // Only the given keys change; inside schedule too, key by key.
  auto p = campaign_from(R"({"status":"inactive","schedule":{"window":"11:00-12:00"},"retry_on":["failed"]})",
                         &*base);
  ASSERT_TRUE(p.ok()) << p.error().message;
  CampaignConfig want = *base;
  want.status = CampaignStatus::inactive;
  want.window_start_min = 11 * 60;
  want.window_end_min = 12 * 60;
  want.retry_on = {"failed"};
  EXPECT_EQ(*p, want);

  // Arrays are replaced whole; null clears a date; the same id is allowed.
  auto q =
      campaign_from(R"({"id":9,"agents":["agent_b"],"schedule":{"ends_at":null,"days":["sun"]}})", &*base);
  ASSERT_TRUE(q.ok()) << q.error().message;
  EXPECT_EQ(q->agents, (std::vector<CampaignAgentConfig>{{"agent_b", true}}));
  EXPECT_EQ(q->starts_at_ms, base->starts_at_ms);
  EXPECT_FALSE(q->ends_at_ms);
  EXPECT_EQ(q->days_mask, 0x01);
  EXPECT_EQ(q->window_start_min, 10 * 60);
  EXPECT_EQ(q->retry_threshold, 3u);

  // The id cannot change; a patched start must still be before the kept end (and the message names the key
  // the patch gave); a name may not be emptied; the patch's own values are still checked.
  EXPECT_LINE(campaign_rejection(R"({"id":10})", &*base), "id: cannot change (the campaign is 9), got 10");
  EXPECT_LINE(campaign_rejection(R"({"schedule":{"starts_at":"2026-08-01T00:00:00Z"}})", &*base),
              "schedule.starts_at: must be before schedule.ends_at");
  EXPECT_LINE(campaign_rejection(R"({"schedule":{"ends_at":"2026-05-01T00:00:00Z"}})", &*base),
              "schedule.ends_at: must be after schedule.starts_at");
  EXPECT_LINE(campaign_rejection(R"({"name":""})", &*base), "name: must not be empty");
  EXPECT_LINE(campaign_rejection(R"({"agents":[]})", &*base), "agents: must list at least one agent");
  EXPECT_LINE(campaign_rejection(R"({"retry_threshold":99})", &*base, "body"),
              "body.retry_threshold: must be between 1 and 10, got 99");
  EXPECT_LINE(campaign_rejection(R"({"colour":"red"})", &*base), "colour: unknown key");
}

}  // namespace

// pcm_16k is a SIM7600 negotiation (AT+CPCMFRM); the other profiles would accept it and stay at 8 kHz.
TEST(Config, Pcm16kIsOnlyForTheSim7600) {
  const std::string line =
      R"({"lines":[{"id":"gsm0","type":"at","device":"/dev/ttyUSB2","audio_device":"hw:1",)";
  EXPECT_PATH(rejection(line + R"("vendor":"quectel_ec25","pcm_16k":false}]})"), "lines[0].pcm_16k");
  EXPECT_PATH(rejection(line + R"("vendor":"generic","pcm_16k":true}]})"), "lines[0].pcm_16k");
  EXPECT_FALSE(accepted(line + R"("vendor":"simcom_sim7600","pcm_16k":false}]})").lines.at(0).at.pcm_16k);
}

// The command token guards every fleet command: a short one is refused, naming the key, never echoing it.
TEST(Config, MqttCommandTokenIsLongEnoughWhenSet) {
  const std::string msg = rejection(R"({"mqtt":{"enabled":true,"commands":{"token":"short-secret"}}})");
  EXPECT_LINE(
      msg,
      "mqtt.commands.token: must be at least 16 characters (empty: every fleet command is refused), got 12");
  EXPECT_EQ(msg.find("short-secret"), std::string::npos);
  EXPECT_EQ(
      accepted(R"({"mqtt":{"enabled":true,"commands":{"token":"sixteen-chars-01"}}})").mqtt.command_token,
      "sixteen-chars-01");
  // No token: accepted (presence, telemetry and call records work), and every command is refused at run time.
  EXPECT_TRUE(accepted(R"({"mqtt":{"enabled":true}})").mqtt.command_token.empty());
}

// lines[].number is the line's own number (every call's from_number): E.164 or refused naming the key.
TEST(Config, LineNumberIsE164) {
  const std::string line = R"({"lines":[{"id":"sim0","type":"sim",)";
  EXPECT_EQ(accepted(line + R"("number":"+911140000000"}]})").lines.at(0).number, "+911140000000");
  EXPECT_EQ(accepted(line + R"("sim":{}}]})").lines.at(0).number, "");
  EXPECT_PATH(rejection(line + R"("number":"01140000000"}]})"), "lines[0].number");
  EXPECT_PATH(rejection(line + R"("number":"+91 11 4000"}]})"), "lines[0].number");
  EXPECT_PATH(rejection(line + R"("number":5}]})"), "lines[0].number");
}

// ---- post-call webhooks: agents[].analysis.integrations[] and the top-level "webhooks" section ----

constexpr const char* kSecret32 = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

// An agent with the analysis on and `integrations` (a JSON array body).
std::string with_integrations(const std::string& integrations, bool analysis = true) {
  return with_agents(agent("agent_a", std::string(R"("analysis":{"enabled":)") +
                                          (analysis ? "true" : "false") + R"(,"integrations":[)" +
                                          integrations + "]}"));
}

TEST(ConfigWebhooks, IntegrationEveryKey) {
  const Config c = accepted(with_integrations(
      R"({"name":"CRM sync","method":"PUT","url":"https://crm.example.com/leads/{{crm_id}}/calls?x={{phone_number}}",)"
      R"("headers":{"Authorization":"Bearer abc","X-Tenant":"7"},)"
      R"("body":{"mode":"auto","sections":{"call_info":true,"summary":false,"data_extraction":true,)"
      R"("structured_output":false,"trigger_data":false}},"secret":")" +
      std::string(kSecret32) +
      R"(","active":true},)"
      R"({"name":"sheet","url":"http://10.0.0.5:8080/hook","body":{"mode":"custom","template":)"
      R"({"id":"{{call_log_id}}","who":{"n":"Name: {{person_name}}"},"list":[1,"{{x}}"]}},"active":false},)"
      R"({"name":"ping","method":"GET","url":"https://x.example/p"})"));
  const auto& in = c.agents.at(0).analysis.integrations;
  ASSERT_EQ(in.size(), 3u);
  EXPECT_EQ(in[0].name, "CRM sync");
  EXPECT_EQ(in[0].method, "PUT");
  EXPECT_EQ(in[0].url, "https://crm.example.com/leads/{{crm_id}}/calls?x={{phone_number}}");
  const std::vector<std::pair<std::string, std::string>> headers = {{"Authorization", "Bearer abc"},
                                                                    {"X-Tenant", "7"}};
  EXPECT_EQ(in[0].headers, headers);
  EXPECT_TRUE(in[0].body_auto);
  EXPECT_TRUE(in[0].sections.call_info);
  EXPECT_FALSE(in[0].sections.summary);
  EXPECT_TRUE(in[0].sections.data_extraction);
  EXPECT_FALSE(in[0].sections.structured_output);
  EXPECT_FALSE(in[0].sections.trigger_data);
  EXPECT_EQ(in[0].secret, kSecret32);
  EXPECT_TRUE(in[0].active);
  EXPECT_EQ(in[1].method, "POST");  // the default
  EXPECT_FALSE(in[1].body_auto);
  EXPECT_EQ(in[1].body_template,
            R"({"id":"{{call_log_id}}","who":{"n":"Name: {{person_name}}"},"list":[1,"{{x}}"]})");
  EXPECT_FALSE(in[1].active);
  EXPECT_EQ(in[1].secret, "");
  EXPECT_EQ(in[2].method, "GET");
  EXPECT_TRUE(in[2].body_auto);  // defaults: every section
  EXPECT_EQ(in[2].sections, IntegrationConfig::Sections{});
  EXPECT_TRUE(in[2].active);
}

TEST(ConfigWebhooks, IntegrationProblemsNameTheirKeys) {
  const std::string p = "agents[0].analysis.integrations[0].";
  const auto one = [](const std::string& body) { return with_integrations(body); };
  EXPECT_LINE(rejection(one(R"({"url":"https://x.example/"})")), p + "name: required key is missing");
  EXPECT_PATH(rejection(one(R"({"name":"","url":"https://x.example/"})")), p + "name");
  EXPECT_PATH(rejection(one(R"({"name":"a/b","url":"https://x.example/"})")), p + "name");
  EXPECT_PATH(rejection(one(R"({"name":")" + std::string(65, 'n') + R"(","url":"https://x.example/"})")),
              p + "name");
  EXPECT_LINE(rejection(one(R"({"name":"a","url":"https://x.example/","method":"post"})")),
              p + R"(method: must be "POST", "PUT", "PATCH", "GET" or "DELETE", got "post")");
  EXPECT_LINE(rejection(one(R"({"name":"a"})")), p + "url: required key is missing");
  EXPECT_PATH(rejection(one(R"({"name":"a","url":"ftp://x.example/"})")), p + "url");
  EXPECT_PATH(rejection(one(R"({"name":"a","url":"https:///path"})")), p + "url");
  EXPECT_PATH(rejection(one(R"({"name":"a","url":"https://{{host}}/path"})")), p + "url");
  EXPECT_PATH(rejection(one(R"({"name":"a","url":"https://x.example/","headers":["a"]})")), p + "headers");
  EXPECT_PATH(rejection(one(R"({"name":"a","url":"https://x.example/","headers":{"X-A":5}})")),
              p + R"(headers["X-A"])");
  EXPECT_PATH(rejection(one(R"({"name":"a","url":"https://x.example/","headers":{"X-A":"a\r\nX-B: b"}})")),
              p + R"(headers["X-A"])");
  EXPECT_PATH(rejection(one(R"({"name":"a","url":"https://x.example/","headers":{"Bad Name":"v"}})")),
              p + R"(headers["Bad Name"])");
  EXPECT_PATH(
      rejection(one(R"({"name":"a","url":"https://x.example/","headers":{"content-type":"text/xml"}})")),
      p + R"(headers["content-type"])");
  EXPECT_PATH(rejection(one(R"({"name":"a","url":"https://x.example/","headers":{"Webhook-Id":"x"}})")),
              p + R"(headers["Webhook-Id"])");
  EXPECT_PATH(rejection(one(R"({"name":"a","url":"https://x.example/","headers":{"User-Agent":"x"}})")),
              p + R"(headers["User-Agent"])");
  EXPECT_PATH(rejection(one(R"({"name":"a","url":"https://x.example/","headers":{"X-A":"1","x-a":"2"}})")),
              p + R"(headers["x-a"])");
  EXPECT_PATH(rejection(one(R"({"name":"a","url":"https://x.example/","body":{"mode":"raw"}})")),
              p + "body.mode");
  EXPECT_LINE(rejection(one(R"({"name":"a","url":"https://x.example/","body":{"mode":"custom"}})")),
              p + R"(body.template: required when mode is "custom")");
  EXPECT_PATH(
      rejection(one(R"({"name":"a","url":"https://x.example/","body":{"mode":"custom","template":"x"}})")),
      p + "body.template");
  EXPECT_PATH(rejection(one(R"({"name":"a","url":"https://x.example/","body":{"template":{}}})")),
              p + "body.template");
  EXPECT_PATH(rejection(one(R"({"name":"a","url":"https://x.example/","body":{"mode":"custom","template":{},)"
                            R"("sections":{}}})")),
              p + "body.sections");
  EXPECT_PATH(
      rejection(one(R"({"name":"a","url":"https://x.example/","body":{"sections":{"summery":true}}})")),
      p + "body.sections.summery");
  EXPECT_PATH(rejection(one(R"({"name":"a","url":"https://x.example/","body":{"sections":{"summary":1}}})")),
              p + "body.sections.summary");
  EXPECT_PATH(rejection(one(R"({"name":"a","method":"GET","url":"https://x.example/","body":{}})")),
              p + "body");
  EXPECT_PATH(rejection(one(R"({"name":"a","method":"DELETE","url":"https://x.example/","body":{}})")),
              p + "body");
  EXPECT_PATH(rejection(one(R"({"name":"a","url":"https://x.example/","active":"yes"})")), p + "active");
  EXPECT_PATH(rejection(one(R"({"name":"a","url":"https://x.example/","colour":1})")), p + "colour");
  // Two with one name; the second names the first.
  EXPECT_LINE(
      rejection(one(R"({"name":"a","url":"https://x.example/"},{"name":"a","url":"https://y.example/"})")),
      R"(agents[0].analysis.integrations[1].name: duplicate integration "a" (first at )"
      R"(agents[0].analysis.integrations[0]))");
  // An active integration of an agent whose analysis is off would never fire; an inactive one may wait.
  EXPECT_PATH(rejection(with_integrations(R"({"name":"a","url":"https://x.example/"})", false)),
              p + "active");
  EXPECT_EQ(accepted(with_integrations(R"({"name":"a","url":"https://x.example/","active":false})", false))
                .agents.at(0)
                .analysis.integrations.size(),
            1u);
  std::string many;
  for (int i = 0; i < 21; ++i) {
    if (i) many.append(",");
    many.append(R"({"name":"n)").append(std::to_string(i)).append(R"(","url":"https://x.example/"})");
  }
  EXPECT_PATH(rejection(one(many)), "agents[0].analysis.integrations[20]");
}

TEST(ConfigWebhooks, SecretsAreStandardWebhooksAndNeverEchoed) {
  const std::string p = "agents[0].analysis.integrations[0].secret";
  const auto with_secret = [](const std::string& s) {
    return with_integrations(R"({"name":"a","url":"https://x.example/","secret":")" + s + R"("})");
  };
  for (const std::string bad : {"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",       // no prefix
                                "whsec_AAECAwQFBgcICQoLDA0ODw==",                     // 16 bytes: too short
                                "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",  // unpadded
                                "whsec_AAEC*wQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "whsec_"}) {
    const std::string msg = rejection(with_secret(bad));
    EXPECT_PATH(msg, p);
    if (bad.size() > 6) {
      EXPECT_EQ(msg.find(bad.substr(6)), std::string::npos) << msg;
    }
  }
  EXPECT_EQ(accepted(with_secret("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"))
                .agents.at(0)
                .analysis.integrations.at(0)
                .secret,
            "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX");  // 24 bytes, the minimum
  EXPECT_EQ(accepted(with_secret("")).agents.at(0).analysis.integrations.at(0).secret, "");  // the box's key
  EXPECT_PATH(rejection(R"({"webhooks":{"signing_secret":"whsec_abc"}})"), "webhooks.signing_secret");
  EXPECT_EQ(accepted(R"({"webhooks":{"signing_secret":")" + std::string(kSecret32) + R"("}})")
                .webhooks.signing_secret,
            kSecret32);
}

TEST(ConfigWebhooks, WebhooksSectionEveryKey) {
  EXPECT_EQ(accepted("{}").webhooks, WebhooksConfig{});
  const Config c = accepted(
      R"({"webhooks":{"timeout_ms":5000,"horizon_s":3600,"initial_backoff_ms":200,"max_backoff_ms":60000,)"
      R"("max_in_flight":4,"max_redirects":0,"allowed_targets":["127.0.0.0/8","::1/128","10.1.2.0/24"],)"
      R"("signing_secret":")" +
      std::string(kSecret32) + R"("}})");
  EXPECT_EQ(c.webhooks.timeout_ms, 5000);
  EXPECT_EQ(c.webhooks.horizon_s, 3600);
  EXPECT_EQ(c.webhooks.initial_backoff_ms, 200);
  EXPECT_EQ(c.webhooks.max_backoff_ms, 60000);
  EXPECT_EQ(c.webhooks.max_in_flight, 4);
  EXPECT_EQ(c.webhooks.max_redirects, 0);
  EXPECT_EQ(c.webhooks.allowed_targets, (std::vector<std::string>{"127.0.0.0/8", "::1/128", "10.1.2.0/24"}));
  EXPECT_EQ(c.webhooks.signing_secret, kSecret32);
}

TEST(ConfigWebhooks, WebhooksSectionProblemsNameTheirKeys) {
  EXPECT_LINE(rejection(R"({"webhooks":{"timeout_ms":10}})"),
              "webhooks.timeout_ms: must be between 1000 and 120000, got 10");
  EXPECT_PATH(rejection(R"({"webhooks":{"horizon_s":10}})"), "webhooks.horizon_s");
  EXPECT_PATH(rejection(R"({"webhooks":{"horizon_s":700000}})"), "webhooks.horizon_s");
  EXPECT_PATH(rejection(R"({"webhooks":{"initial_backoff_ms":5}})"), "webhooks.initial_backoff_ms");
  EXPECT_LINE(rejection(R"({"webhooks":{"initial_backoff_ms":10000,"max_backoff_ms":5000}})"),
              "webhooks.max_backoff_ms: must be at least initial_backoff_ms (10000), got 5000");
  EXPECT_PATH(rejection(R"({"webhooks":{"max_in_flight":0}})"), "webhooks.max_in_flight");
  EXPECT_PATH(rejection(R"({"webhooks":{"max_redirects":11}})"), "webhooks.max_redirects");
  EXPECT_PATH(rejection(R"({"webhooks":{"allowed_targets":"127.0.0.0/8"}})"), "webhooks.allowed_targets");
  EXPECT_PATH(rejection(R"({"webhooks":{"allowed_targets":["127.0.0.1"]}})"), "webhooks.allowed_targets[0]");
  EXPECT_PATH(rejection(R"({"webhooks":{"allowed_targets":["ok","10.0.0.0/8"]}})"),
              "webhooks.allowed_targets[0]");
  EXPECT_PATH(rejection(R"({"webhooks":{"allowed_targets":["10.0.0.0/8","10.0.0.0/33"]}})"),
              "webhooks.allowed_targets[1]");
  EXPECT_LINE(
      rejection(R"({"webhooks":{"allowed_targets":["127.0.0.1/8"]}})"),
      "webhooks.allowed_targets[0]: has host bits set after the /8 prefix: write the network address, "
      "got \"127.0.0.1/8\"");
  EXPECT_PATH(rejection(R"({"webhooks":{"allowed_targets":[7]}})"), "webhooks.allowed_targets[0]");
  EXPECT_PATH(rejection(R"({"webhooks":{"retries":3}})"), "webhooks.retries");
}

// The shipped file and the demo script load with whatever webhooks they carry.
TEST(ConfigWebhooks, ShippedConfigurationsLoad) {
  auto shipped = parse_config(default_config_json());
  ASSERT_TRUE(shipped.ok()) << shipped.error().message;
}
