// The osvid configuration: one JSON document (/etc/osvi/osvid.json), validated strictly into these types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "osvi/base/log.hpp"
#include "osvi/hal/at_modem_line.hpp"
#include "osvi/hal/sim_line.hpp"
#include "osvi/hal/sip_line.hpp"
#include "osvi/net/upstream.hpp"
#include "osvi/result.hpp"

struct cJSON;

namespace osvi::daemon {

// Every member initialiser below is the documented default (docs/configuration.md), so a default-constructed
// Config is exactly what parse_config("{}") returns, apart from source_hash.

struct SiteConfig {
  std::string id = "default-site";  // names the box in the fleet (MQTT topics)
  std::string device;               // empty = the hostname at run time
  std::string utc_offset = "+05:30";
  int utc_offset_minutes = 330;  // utc_offset in minutes east of UTC, for the API's timestamps
  std::string country = "IN";    // ISO 3166-1 alpha-2
  // IANA zone of the box (a file under /usr/share/zoneinfo): the callee's zone when a number maps to none or
  // to several, and the zone of the compliance floor's fallback.
  std::string time_zone = "Asia/Kolkata";
};

struct ApiToken {
  std::string token;
  std::vector<std::string> agents;  // agent_uuids this token may use; empty = all agents
  bool admin = true;
};

struct ApiConfig {
  std::string listen = "127.0.0.1:8080";
  std::string host = "127.0.0.1";  // IPv4 literal, "[v6]" literal (brackets kept) or "localhost"
  uint16_t port = 8080;
  std::vector<ApiToken> tokens;  // empty = the daemon uses (and creates) token_file
  std::string token_file;        // empty = "<state_dir>/api-token"
  size_t max_body_bytes = 4194304;
  unsigned max_connections = 64;
  unsigned max_connections_per_client = 16;  // per client IP address, <= max_connections
  unsigned connection_timeout_s = 30;        // inactivity while a body is in transfer
  unsigned header_timeout_s = 10;            // a new connection's request head, absolute
  unsigned idle_timeout_s = 5;               // a kept-alive connection's next request head, absolute
  // HTTPS: both paths or neither. The files are read when the configuration is parsed (PEM text below), so a
  // reload with new files takes the new certificate.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_cert_pem;
  std::string tls_key_pem;
};

struct StoreConfig {
  int busy_timeout_ms = 5000;
  bool quick_check = true;
};

// Fleet sync: parsed in mqtt.cpp, documented in docs/configuration.md#mqtt.
struct MqttConfig {
  bool enabled = false;  // the shipped box does not reach for a broker until told to
  std::string host = "127.0.0.1";
  uint16_t port = 1883;
  bool v311 = false;      // protocol "3.1.1" instead of "5"
  std::string client_id;  // empty = "osvi-<site.id>-<device>"
  std::string username;   // empty = anonymous
  std::string password;
  unsigned keepalive_s = 30;
  std::string topic_prefix = "osvi/v1";
  struct Tls {
    bool enabled = false;
    std::string ca_file, cert_file, key_file;
    bool insecure = false;  // skip the server name check
    bool operator==(const Tls&) const = default;
  } tls;
  unsigned reconnect_min_ms = 1000;
  unsigned reconnect_max_ms = 60000;
  unsigned connect_timeout_ms = 15000;
  unsigned max_inflight = 100;
  unsigned telemetry_interval_s = 60;  // 0 = off
  int64_t outbox_max_rows = 100000;
  int64_t outbox_max_bytes = 256LL * 1024 * 1024;
  std::string command_token;  // empty = every command and desired document is refused (unauthorized)
  size_t max_command_bytes = 262144;

  bool operator==(const MqttConfig&) const = default;
};

// Telephony lines: parsed in lines.cpp, documented in docs/configuration.md#lines.
enum class LineType { at, sim, sip };
struct LineConfig {
  std::string id;
  LineType type = LineType::sim;
  std::string agent_uuid;  // the agent that answers inbound calls; empty = none
  std::string number;      // the line's own number, E.164; empty = the SIM's (AT+CNUM) when it answers
  bool enabled = true;
  hal::AtModemOptions at;  // type "at" (at.id = id)
  hal::SimScript sim;      // type "sim"
  // type "sip" (sip.id = id; sip.password read from password_file; sip.rt_priority = audio.rt_priority)
  hal::SipLineOptions sip;
  bool operator==(const LineConfig&) const = default;
};

enum class AgentMode { voice, chat };
enum class PromptType { single, multi };
enum class AudioFormat { pcm, opus };
enum class VoicemailAction { hangup, leave_message };
enum class TransferMode { blind, attended };
enum class FieldType { text, number, boolean, date };

// The JSON spelling of each enumerator.
std::string_view to_string(AgentMode v);
std::string_view to_string(PromptType v);
std::string_view to_string(AudioFormat v);
std::string_view to_string(VoicemailAction v);
std::string_view to_string(TransferMode v);
std::string_view to_string(FieldType v);

struct PromptTransition {
  std::string to;    // a state name
  std::string when;  // the condition, in words, given to the model
};

struct PromptState {
  std::string name;
  std::string prompt;
  std::vector<PromptTransition> transitions;
};

struct PromptConfig {
  PromptType type = PromptType::single;
  std::string system_prompt;        // single only
  std::string initial_state;        // multi only; resolved to the first state when not given
  std::vector<PromptState> states;  // multi only
};

struct GreetingConfig {
  std::string text;  // empty = wait for the other side to speak first
  bool interruptible = true;
};

// The keys every upstream model endpoint shares; each section adds its own on top.
struct UpstreamEndpoint {
  std::string provider = "openai";                    // the API dialect (net::Endpoint::provider)
  std::string api_version;                            // azure_openai only; empty = net::kAzureApiVersion
  std::string base_url = "http://127.0.0.1:8090/v1";  // trailing '/' removed; defaults per provider
  std::string model;
  std::string api_key;       // with api_key_file: the file's key, read when the configuration is parsed
  std::string api_key_file;  // the path, kept for messages; the key itself is in api_key
  unsigned timeout_ms = 8000;
};

// A configured endpoint as a request's settings; the first-byte watchdog is capped by the request's timeout
// (0 = off). The api_key is already the file's when api_key_file was given.
net::Endpoint to_net_endpoint(const UpstreamEndpoint& e, int64_t first_byte_timeout_ms = 0);

struct SttConfig : UpstreamEndpoint {
  SttConfig() { model = "whisper-1"; }
  std::string language;  // empty = the agent's language
};

struct LlmConfig : UpstreamEndpoint {
  LlmConfig() {
    model = "gpt-4o-mini";
    timeout_ms = 15000;
  }
  double temperature = 0.7;
  unsigned max_tokens = 512;
};

struct VoiceConfig : UpstreamEndpoint {
  VoiceConfig() { model = "tts-1"; }
  std::string voice = "alloy";
  double speed = 1.0;
  AudioFormat format = AudioFormat::pcm;
};

struct CallConfig {
  bool barge_in = true;
  double min_interruption_s = 0.3;
  unsigned min_interruption_words = 0;
  double min_endpointing_s = 0.5;
  double max_endpointing_s = 2.0;
  struct Vad {
    bool enabled = true;
    double sensitivity = 0.5;
  } vad;
  bool noise_cancellation = true;
  struct Silence {
    double timeout_s = 8;
    std::string message = "Are you still there?";  // empty = the model writes the check-in
    unsigned max_prompts = 2;
  } silence;
  unsigned max_duration_s = 600;
  struct Voicemail {
    bool detect = true;
    VoicemailAction action = VoicemailAction::hangup;
    std::string message;  // spoken after the beep with leave_message
  } voicemail;
};

struct TransferConfig {
  bool enabled = false;
  std::string number;  // E.164
  std::string message = "Please hold while I transfer you.";
  TransferMode mode = TransferMode::blind;
};

// A caller who asks not to be called again is put on the agent's do-not-disturb list with the call id.
struct OptOutConfig {
  bool enabled = true;                                             // the model may call the opt_out tool
  std::string dtmf_key;                                            // one of 0-9 * #; empty = no key
  std::string message = "You will not be called again. Goodbye.";  // said before the call ends
  bool operator==(const OptOutConfig&) const = default;
};

struct ToolsConfig {
  bool end_call = true;
  bool dtmf = true;
  TransferConfig transfer;
  bool language_switch = false;
  OptOutConfig opt_out;
};

// What the caller hears when an upstream model service fails (rendered on the box with espeak-ng).
struct FallbackConfig {
  std::string message = "We are having technical trouble. Please leave a message after the tone.";
  std::string filler = "One moment, please.";  // spoken when an answer is late, before the fallback
  double voicemail_max_s = 60;                 // the caller's message after the tone
};

struct ExtractionField {
  std::string key;
  FieldType type = FieldType::text;
  std::string hint;
  bool required = false;
};

struct CallTag {
  int id = 0;
  std::string name;
  std::string color_code = "#808080";
};

// One webhook integration of an agent (spec 4.1; docs/configuration.md "agents[].analysis.integrations").
struct IntegrationConfig {
  std::string name;             // unique within the agent; names the delivery in logs and the API
  std::string method = "POST";  // POST | PUT | PATCH | GET | DELETE (GET and DELETE send no body)
  std::string url;              // http(s); may hold {{placeholders}} filled from the call's trigger data
  std::vector<std::pair<std::string, std::string>> headers;  // custom headers, in order
  bool body_auto = true;  // true: the Auto flat body of the sections below; false: body_template
  struct Sections {
    bool call_info = true, summary = true, data_extraction = true, structured_output = true,
         trigger_data = true;
    bool operator==(const Sections&) const = default;
  } sections;
  std::string body_template;  // custom mode: JSON text with {{placeholders}}
  std::string secret;         // Standard Webhooks signing secret ("whsec_" + base64); empty: the box's key
  bool active = true;
  bool operator==(const IntegrationConfig&) const = default;
};

struct AnalysisConfig {
  bool enabled = false;
  LlmConfig llm;
  std::string prompt;
  std::vector<ExtractionField> data_extraction;
  std::vector<CallTag> tags;
  struct CallbackDetection {
    bool enabled = true;
    std::string prompt;
  } callback_detection;
  std::string output_schema_json;  // compact JSON object text; empty = no structured output
  // Post-call webhooks of this agent (spec 4.1): fired after analysis, picked calls only.
  std::vector<IntegrationConfig> integrations;
};

struct ChatConfig {  // which operator commands (spec 3.15) this agent accepts
  bool takeover = true;
  bool tell = true;
  bool whisper = true;
  unsigned dormant_after_s = 1800;  // an active session quiet this long becomes dormant (spec 7.5)
  // A voice agent's uuid: the chat's offer_call tool places its calls through it (empty = no offer_call).
  std::string voice_agent;
};

// An agent's knowledge base (docs/configuration.md#knowledge-base): the documents it searches, by name (each
// resolved at search time to that name's current version), and how it searches them.
struct EmbeddingsConfig : UpstreamEndpoint {
  EmbeddingsConfig() { model = "text-embedding-3-small"; }
};
struct AgentKnowledgeConfig {
  std::vector<std::string> documents;
  double relevance_threshold = 0.3;            // 0..1, on the normalised score
  unsigned top_k = 3;                          // 1..10
  std::optional<EmbeddingsConfig> embeddings;  // absent: bm25 only
  // Voice calls: said at once when the model calls search_knowledge_base without saying anything first.
  struct Filler {
    bool enabled = true;
    std::string text = "Let me check that for you.";  // "" = never
  } filler;
};

struct AgentConfig {
  std::string agent_uuid;
  std::string name;
  std::string description;
  AgentMode mode = AgentMode::voice;
  bool active = false;  // as in OSVI, new agents start inactive
  bool archived = false;
  std::string language = "en-IN";
  PromptConfig prompt;
  GreetingConfig greeting;
  SttConfig stt;
  LlmConfig llm;
  VoiceConfig voice;
  CallConfig call;
  ToolsConfig tools;
  AnalysisConfig analysis;
  ChatConfig chat;
  FallbackConfig fallback;
  AgentKnowledgeConfig knowledge;
  // The agent's JSON object as given, compact: the store compares it to notice definition changes.
  std::string definition_json;
};

// The box-wide audio engine settings (parsed in audio.cpp); each line names its own devices.
struct AudioConfig {
  int rate = 16000;                    // call audio: 8000 or 16000
  int frame_ms = 20;                   // 10 or 20: the ALSA period and the DSP frame
  int buffer_periods = 3;              // 2..3
  int rt_priority = 70;                // SCHED_FIFO priority of the audio threads; 0 = SCHED_OTHER
  std::string echo_backend = "speex";  // speex | webrtc | null
  int echo_tail_ms = 128;              // line echo; acoustic paths need 256
  bool echo_sip = false;               // run the canceller on SIP calls too (audio.echo.sip)
  bool denoise = true;
  int noise_suppress_db = -25;
  bool agc = false;
  int agc_level_dbfs = -18;
  int echo_suppress_db = -40;
  int echo_suppress_active_db = -15;
  std::string vad = "osvi";  // osvi | webrtc
  int opus_complexity = 5;
  int opus_bitrate = 24000;
  bool dtmf = true;
  std::string call_progress_plan = "in";  // us | eu | in
  struct Amd {
    int decision_window_ms = 3000;
    int initial_silence_ms = 2500;
    int greeting_ms = 1500;
    int after_greeting_silence_ms = 800;
    int min_word_length_ms = 100;
    int between_words_silence_ms = 50;
    int max_words = 3;
    int silence_threshold = 256;
    bool operator==(const Amd&) const = default;
  } amd;
  struct Recording {
    bool enabled = true;
    int bitrate = 32000;
    int complexity = 1;  // bench/README.md "dsp2": half the CPU of 5, measured quality cost
    bool operator==(const Recording&) const = default;
  } recording;
  bool operator==(const AudioConfig&) const = default;
};

// The calls engine, box-wide.
struct CallsConfig {
  unsigned max_queue = 16;      // outbound calls waiting for a free line; more get 503
  std::string recordings_dir;   // empty = "<state_dir>/recordings"
  unsigned dead_air_ms = 2500;  // silence before the agent says the filler (then the fallback)
  bool operator==(const CallsConfig&) const = default;
};

// Legal floor of every campaign dial, in the callee's local time (docs/configuration.md#compliance).
struct ComplianceConfig {
  int calling_hours_start_min = 8 * 60;  // "calling_hours": "08:00-21:00", minutes of the local day
  int calling_hours_end_min = 21 * 60;   // exclusive
  std::string calling_hours = "08:00-21:00";
  unsigned max_attempts_per_day = 3;  // calls to one number in any 24 h, across every campaign
  bool operator==(const ComplianceConfig&) const = default;
};

enum class CampaignStatus { active, inactive };
std::string_view to_string(CampaignStatus v);

// A campaign (docs/configuration.md#campaigns; the API extension takes the same shape). Times of day are
// minutes of the callee's local day; the window is [start, end) and may wrap past midnight (start > end).
struct CampaignAgentConfig {
  std::string agent_uuid;
  bool active = true;
  bool operator==(const CampaignAgentConfig&) const = default;
};

struct CampaignConfig {
  int64_t id = 0;  // numeric, > 0
  std::string name;
  CampaignStatus status = CampaignStatus::active;
  std::vector<CampaignAgentConfig> agents;
  // schedule: "immediately" (no range) or a date range in the site's zone; the daily window; week days
  std::optional<int64_t> starts_at_ms;  // none = immediately
  std::optional<int64_t> ends_at_ms;    // none = open-ended
  int window_start_min = 0;             // "window": "09:30-18:00"; default all day (the floor still applies)
  int window_end_min = 24 * 60;
  uint8_t days_mask = 0x7f;  // bit 0 = Sunday ... bit 6 = Saturday ("days": ["mon", ...])
  bool is_retry_enabled = false;
  unsigned retry_threshold = 2;  // attempts in all, the first call included
  unsigned retry_delay_s = 1800;
  std::vector<std::string> retry_on = {"not_picked", "busy"};  // call statuses that retry
  unsigned max_concurrent_per_agent = 1;
  bool operator==(const CampaignConfig&) const = default;
};

// Outgoing webhook delivery (docs/configuration.md "webhooks").
struct WebhooksConfig {
  int64_t timeout_ms = 10'000;         // one attempt, connect to last byte
  int64_t horizon_s = 24 * 3600;       // retries stop this long after the delivery was queued: dead-lettered
  int64_t initial_backoff_ms = 5'000;  // first retry delay; doubled per attempt, with jitter
  int64_t max_backoff_ms = 3'600'000;  // cap of one retry delay
  int max_in_flight = 16;              // deliveries on the wire at once, every destination together
  int max_redirects = 3;               // a redirect to a refused target is never followed
  // CIDRs exempt from the target guard (loopback, link-local, the cloud metadata address are refused
  // otherwise), e.g. ["127.0.0.0/8"] for a receiver on the box itself.
  std::vector<std::string> allowed_targets;
  // The Standard Webhooks secret ("whsec_" + base64 of 24..64 bytes) of per-call webhook_url deliveries and
  // of integrations without their own; empty: generated once into <state_dir>/webhook_secret (0600).
  std::string signing_secret;
  bool operator==(const WebhooksConfig&) const = default;
};

// The top-level "knowledge" section: documents loaded from files at start and on every reload.
inline constexpr size_t kKnowledgeMaxDocumentBytes = 8 * 1024 * 1024;  // a document's text, every source
inline constexpr size_t kKnowledgeMaxNameChars = 200;

struct KnowledgeDocumentConfig {
  std::string name;
  std::string path;  // absolute; checked (a readable regular file within the size limit) when parsed
  std::string format = "txt";  // txt | csv
  bool header = true;          // csv only: the first row names the columns
  bool operator==(const KnowledgeDocumentConfig&) const = default;
};
struct KnowledgeBaseConfig {
  std::vector<KnowledgeDocumentConfig> documents;
};

struct Config {
  std::string source_hash;  // FNV-1a 64 of the JSON text, 16 lower-case hex digits
  SiteConfig site;
  std::string state_dir = "/var/lib/osvi";
  log::Level log_level = log::Level::info;
  ApiConfig api;
  StoreConfig store;
  AudioConfig audio;
  MqttConfig mqtt;
  std::vector<LineConfig> lines;
  CallsConfig calls;
  std::vector<AgentConfig> agents;
  ComplianceConfig compliance;
  std::vector<CampaignConfig> campaigns;
  WebhooksConfig webhooks;
  KnowledgeBaseConfig knowledge;
};

// Validates the whole document and fills defaults. On failure the message holds every problem found, one
// per line, each starting with the key path ("agents[1].call.min_interruption_s: ...").
Result<Config> parse_config(std::string_view json_text);

// Reads the file, then parse_config(). A read failure names the path and the errno text.
Result<Config> load_config_file(const std::string& path);

// One campaign object, as configuration's campaigns[] items and the API extension's bodies take it
// (docs/configuration.md#campaigns): {"id", "name", "status", "agents": ["agent_x" | {"agent_uuid",
// "active"}], "schedule": {"starts_at": ISO-8601|null, "ends_at": ISO-8601|null, "window": "HH:MM-HH:MM",
// "days": ["mon", ...]}, "is_retry_enabled", "retry_threshold", "retry_delay", "retry_on": [status...],
// "max_concurrent_calls_per_agent"}. With `base`, keys absent from the object keep base's values (PATCH; "id"
// may not change; inside "schedule" too, key by key); without, they take the defaults and "id", "name" and
// "agents" are required. Unknown keys are refused. The agents' existence is not checked here: see
// check_campaign_agents(). On failure the message holds every problem, one per line, each starting with its
// key path under `path` (e.g. "campaigns[0].schedule.window: ..." or, with an empty path, "schedule.window:
// ...").
Result<CampaignConfig> parse_campaign(const cJSON* object, const CampaignConfig* base = nullptr,
                                      std::string_view path = "");
// A campaign's agents against a configuration's agents (the running one for an API body): each must be a
// voice agent there. Problems name "<path>.agents[i]" ("agents[i]" with an empty path), one per line;
// parse_config() checks campaigns[] with it.
Status check_campaign_agents(const CampaignConfig& campaign, const std::vector<AgentConfig>& agents,
                             std::string_view path = "");
// "HH:MM-HH:MM" → [start, end) minutes of the day; start == end (an empty window) is refused; "00:00-24:00"
// is the whole day. False with *why set.
bool parse_day_window(std::string_view text, int* start_min, int* end_min, std::string* why);

// The shipped rootfs/etc/osvi/osvid.json, embedded at build time (generated source).
std::string_view default_config_json();

}  // namespace osvi::daemon
