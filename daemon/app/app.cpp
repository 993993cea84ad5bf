// osvid start-up, reload and shut-down sequence on one sd-event loop.
#include "osvi/app/app.hpp"

#include <fcntl.h>
#include <malloc.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "osvi/api/chat_events.hpp"
#include "osvi/base/files.hpp"
#include "osvi/base/http_on_loop.hpp"
#include "osvi/base/ids.hpp"
#include "osvi/base/log.hpp"
#include "osvi/base/secret.hpp"
#include "osvi/console/console.hpp"
#include "osvi/hal/sim_line.hpp"
#include "osvi/net/json.hpp"
#include "osvi/version.hpp"

namespace osvi::daemon {
namespace {

constexpr size_t kTokenLength = 16;

Result<std::string> read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(path + ": " + std::strerror(errno), -errno);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status make_dirs(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return make_error("state_dir " + dir + ": " + ec.message(), -ec.value());
  if (access(dir.c_str(), W_OK) != 0)
    return make_error("state_dir " + dir + ": " + std::strerror(errno), -errno);
  return {};
}

std::string token_file_path(const Config& cfg) {
  return cfg.api.token_file.empty() ? cfg.state_dir + "/api-token" : cfg.api.token_file;
}

// Tokens come from the configuration; with none configured the box keeps one in a file only the daemon
// can read, generated on first start, so a fresh box is never open and never shares a default secret.
Result<std::vector<ApiToken>> resolve_tokens(const Config& cfg, bool* generated) {
  *generated = false;
  if (!cfg.api.tokens.empty()) return cfg.api.tokens;
  const std::string path = token_file_path(cfg);
  std::string token;
  if (auto text = read_text_file(path)) {
    token = *text;
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' '))
      token.pop_back();
    if (token.size() != kTokenLength)
      return make_error("api.token_file " + path + ": expected a 16-character token, found " +
                        std::to_string(token.size()) + " characters");
  } else if (text.error().code == -ENOENT) {
    token = random_token(kTokenLength);
    if (Status s = write_file_atomically(path, token + "\n", 0600); !s)
      return make_error("api.token_file " + s.error().message, s.error().code);
    *generated = true;
  } else {
    return make_error("api.token_file " + text.error().message, text.error().code);
  }
  ApiToken t;
  t.token = token;
  t.admin = true;
  return std::vector<ApiToken>{t};
}

std::vector<AgentRecord> agent_records(const Config& cfg) {
  std::vector<AgentRecord> out;
  out.reserve(cfg.agents.size());
  for (const AgentConfig& a : cfg.agents) {
    AgentRecord r;
    r.agent_uuid = a.agent_uuid;
    r.name = a.name;
    r.mode = a.mode == AgentMode::chat ? "chat" : "voice";
    r.active = a.active;
    r.archived = a.archived;
    r.definition_json = a.definition_json;
    out.push_back(std::move(r));
  }
  return out;
}

// STATUS= is sent on every line change, from the loop that also runs the calls and the simulated lines'
// parties. sd_notify() sends blocking: a notify socket whose reader does not keep up (its queue holds
// net.unix.max_dgram_qlen datagrams, 10 by default) froze the whole loop in sendmsg(), and with it every
// call's audio (the calls_bench barge-in stall on its 4th call: a few line changes per call). A status is
// only informational and the next change sends a newer one, so it is sent without waiting and dropped when
// the queue is full. The lifecycle messages (READY, RELOADING, STOPPING) keep sd_notify().
void sd_notifyf_status(const std::string& s) {
  const std::string msg = "STATUS=" + s;
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || !*path) return;
  sockaddr_un addr{};
  const size_t len = std::strlen(path);
  if ((path[0] != '/' && path[0] != '@') || len >= sizeof addr.sun_path) {
    sd_notify(0, msg.c_str());  // another transport (vsock): libsystemd knows it
    return;
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path, len);
  if (path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return;
  // A path address counts its terminating NUL, an abstract one does not (as libsystemd does).
  const auto addr_len =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len + (path[0] == '@' ? 0 : 1));
  (void)::sendto(fd, msg.data(), msg.size(), MSG_DONTWAIT | MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr),
                 addr_len);
  ::close(fd);
}

}  // namespace

// A file, the embedded defaults and a fleet push all go through the same overrides and validation.
namespace {
Result<Config> configuration_from_text(const AppOptions& options, std::string text, const std::string& where);

// Running from embedded defaults, an accepted fleet configuration lives in <state_dir>/desired.json.
std::string desired_path(const AppOptions& options) {
  std::string dir = options.state_dir.value_or("");
  if (dir.empty()) {
    auto def = parse_config(default_config_json());
    dir = def ? def->state_dir : std::string("/var/lib/osvi");
  }
  return dir + "/desired.json";
}

}  // namespace

Result<Config> load_configuration(const AppOptions& options) {
  std::string text;
  std::string where = options.config_path ? *options.config_path : std::string("embedded defaults");
  if (options.config_path) {
    auto t = read_text_file(*options.config_path);
    if (!t) return t.error();
    text = std::move(*t);
  } else if (auto d = read_text_file(desired_path(options))) {
    text = std::move(*d);
    where = desired_path(options);
  } else {
    text = std::string(default_config_json());
  }
  return configuration_from_text(options, std::move(text), where);
}

namespace {
Result<Config> configuration_from_text(const AppOptions& options, std::string text,
                                       const std::string& where) {
  if (options.state_dir || options.listen || options.demo) {
    // Overrides are written into the document so they pass the same validation as the file.
    std::string why;
    net::JsonPtr doc = net::json_parse(text, &why);
    if (doc && cJSON_IsObject(doc.get())) {
      if (options.state_dir) {
        cJSON_DeleteItemFromObjectCaseSensitive(doc.get(), "state_dir");
        net::json_add_string(doc.get(), "state_dir", *options.state_dir);
      }
      if (options.listen) {
        cJSON* api = cJSON_GetObjectItemCaseSensitive(doc.get(), "api");
        if (!api) api = cJSON_AddObjectToObject(doc.get(), "api");
        if (cJSON_IsObject(api)) {
          cJSON_DeleteItemFromObjectCaseSensitive(api, "listen");
          net::json_add_string(api, "listen", *options.listen);
        }
      }
      if (options.demo) {  // the demo's line and the stand-in model server
        cJSON_DeleteItemFromObjectCaseSensitive(doc.get(), "lines");
        cJSON* lines = cJSON_AddArrayToObject(doc.get(), "lines");
        if (net::JsonPtr line = net::json_parse(options.demo->line_json, &why))
          cJSON_AddItemToArray(lines, cJSON_Duplicate(line.get(), true));
        cJSON* agent = nullptr;
        cJSON_ArrayForEach(agent, cJSON_GetObjectItemCaseSensitive(doc.get(), "agents")) {
          for (const char* section : {"stt", "llm", "voice"}) {
            cJSON* sec = cJSON_GetObjectItemCaseSensitive(agent, section);
            if (!sec) sec = cJSON_AddObjectToObject(agent, section);
            cJSON_DeleteItemFromObjectCaseSensitive(sec, "base_url");
            net::json_add_string(sec, "base_url", options.demo->model_url);
          }
        }
      }
      text = net::json_print(doc.get());
    }
  }
  auto cfg = parse_config(text);
  if (!cfg) return make_error(where + ":\n" + cfg.error().message, cfg.error().code);
  return cfg;
}
}  // namespace

App::App(AppOptions options) : options_(std::move(options)) {}
App::~App() = default;

void App::notify_status(const std::string& status) {
  sd_notifyf_status(status);
}

std::string App::ready_status() const {
  size_t active = 0;
  for (const AgentConfig& a : config_->agents) active += a.active ? 1 : 0;
  return "Ready: API on " + api_ctx_.listen + ", " + std::to_string(active) + " active agent(s), database " +
         (store_->database().open_report().quick_check_ok ? "ok" : "DAMAGED (see journal)") +
         (lines_ && lines_->size() ? ", lines: " + lines_->summary() : std::string());
}

Status App::start_api(const Config& cfg, std::unique_ptr<net::HttpServer>* out,
                      std::vector<EventSource>* sources) {
  net::HttpServerOptions o;
  o.host = cfg.api.host;
  o.port = cfg.api.port;
  o.max_body_bytes = cfg.api.max_body_bytes;
  o.max_connections = cfg.api.max_connections;
  o.max_connections_per_client = cfg.api.max_connections_per_client;
  o.connection_timeout_s = cfg.api.connection_timeout_s;
  o.header_timeout_s = cfg.api.header_timeout_s;
  o.idle_timeout_s = cfg.api.idle_timeout_s;
  o.tls_cert_pem = cfg.api.tls_cert_pem;
  o.tls_key_pem = cfg.api.tls_key_pem;
  o.error_response = [](int status, std::string_view message) { return Api::error(status, message); };
  // CSV contact uploads are parsed as they arrive, with their own body limit (docs/api.md).
  o.body_sink = [this](const net::HttpRequest& head) -> std::unique_ptr<net::HttpBodySink> {
    return api_ ? api_->body_sink(head) : nullptr;
  };
  // A reload on the same address takes over the running server's socket (see adopt_listen_fd).
  if (server_ && server_->listen_fd() >= 0 && cfg.api.host == config_->api.host &&
      cfg.api.port == config_->api.port) {
    o.adopt_listen_fd = fcntl(server_->listen_fd(), F_DUPFD_CLOEXEC, 0);
    if (o.adopt_listen_fd < 0) return make_error(std::string("api: dup: ") + std::strerror(errno), -errno);
  }
  // The web console's files share the listener; they hold no data, so they are answered without a token.
  auto server = net::HttpServer::start(o, [this](net::HttpRequest& req, net::HttpReply reply) {
    if (console_owns(req.path)) {
      reply.send(console_response(req));
      return;
    }
    api_->handle(req, std::move(reply));
  });
  if (!server)
    return make_error(
        (server.error().code == -EKEYREJECTED ? "api.tls_cert_file, api.tls_key_file: " : "api.listen: ") +
            server.error().message,
        server.error().code);
  auto served = serve_http_on_loop(*loop_, **server);
  if (!served) return served.error();
  *sources = std::move(*served);
  *out = std::move(*server);
  return {};
}

Status App::start() {
  auto loop = EventLoop::create();
  if (!loop) return loop.error();
  loop_ = std::move(*loop);
  clock_ = std::make_unique<LoopClock>(*loop_);
  auto latency = LoopLatency::start(*loop_);
  if (!latency) return latency.error();
  latency_ = std::move(*latency);

  auto cfg = load_configuration(options_);
  if (!cfg) return cfg.error();
  config_ = std::make_unique<Config>(std::move(*cfg));
  log::set_level(config_->log_level);
  const std::string source = options_.config_path ? *options_.config_path : "embedded defaults";
  log::notice(std::string("osvid ") + kVersion + " starting, configuration from " + source,
              {{"CONFIG_HASH", config_->source_hash}}, log::id::kStarted);
  notify_status("Starting: opening the database in " + config_->state_dir);

  if (auto s = make_dirs(config_->state_dir); !s) return s;

  StoreOptions so;
  so.path = config_->state_dir + "/osvi.db";
  so.busy_timeout_ms = config_->store.busy_timeout_ms;
  so.quick_check = config_->store.quick_check;
  auto store = Store::open(so, *clock_);
  if (!store) return make_error("database " + so.path + ": " + store.error().message, store.error().code);
  store_ = std::move(*store);
  const OpenReport& rep = store_->database().open_report();
  if (!rep.quick_check_ok) {
    log::error("database integrity check failed on " + so.path + ": " + rep.quick_check +
                   "; running on, but back up the file and restore it from the fleet",
               {{"DB_PATH", so.path}}, log::id::kDbCheckFailed);
  }
  if (rep.schema_before != rep.schema_after) {
    log::info("database schema migrated from version " + std::to_string(rep.schema_before) + " to " +
                  std::to_string(rep.schema_after),
              {{"DB_PATH", so.path}});
  }
  for (const std::string& id : rep.recovered_calls) {
    log::warning("call " + id + " was in progress when the daemon stopped; closed (daemon_restart)",
                 {{"CALL_ID", id}}, log::id::kDbRecovered);
  }
  if (auto s = store_->agents().sync(agent_records(*config_)); !s) return s;
  zones_ = std::make_unique<TimeZones>();
  stats_ = std::make_unique<StatsService>(*store_, *zones_, *clock_);
  campaigns_ = std::make_unique<CampaignService>(*store_, *zones_);
  campaigns_->set_can_dial([this] { return lines_ && lines_->size() > 0; });
  if (auto s = campaigns_->sync(*config_); !s) return s;
  if (auto s = start_knowledge(); !s) return s;

  bool generated = false;
  auto tokens = resolve_tokens(*config_, &generated);
  if (!tokens) return tokens.error();
  tokens_ = std::move(*tokens);
  if (generated) log::notice("generated an API token in " + token_file_path(*config_));

  api_ctx_.config = config_.get();
  api_ctx_.tokens = &tokens_;
  api_ctx_.store = store_.get();
  api_ctx_.clock = clock_.get();
  api_ctx_.stats = stats_.get();
  api_ctx_.started_mono_us = clock_->monotonic_us();
  api_ctx_.started_wall_ms = clock_->wall_ms();
  api_ctx_.config_source = source;
  api_ctx_.config_loaded_wall_ms = api_ctx_.started_wall_ms;
  api_ctx_.campaigns = campaigns_.get();
  api_ctx_.knowledge = knowledge_.get();
  api_ctx_.reload = [this](std::function<void(const Status&)> done) { request_reload(std::move(done)); };
  api_ = std::make_unique<Api>(api_ctx_);

  if (auto s = EventLoop::block_signals({SIGTERM, SIGINT, SIGHUP}); !s) return s;
  for (int sig : {SIGTERM, SIGINT}) {
    auto src = loop_->add_signal(sig, [this, sig] { stop(sig == SIGTERM ? "SIGTERM" : "SIGINT"); });
    if (!src) return src.error();
    signal_sources_.push_back(std::move(*src));
  }
  auto hup = loop_->add_signal(SIGHUP, [this] { reload(); });
  if (!hup) return hup.error();
  signal_sources_.push_back(std::move(*hup));
  if (auto s = loop_->enable_watchdog(); !s) return s;

  if (auto s = start_api(*config_, &server_, &server_sources_); !s) return s;
  api_ctx_.listen = config_->api.host + ":" + std::to_string(server_->port());
  log::notice(std::string("API listening on ") +
                  (config_->api.tls_cert_pem.empty() ? "http://" : "https://") + api_ctx_.listen,
              {{"LISTEN", api_ctx_.listen}}, log::id::kApiListening);
  if (log::sink() == log::Sink::stderr_text && tokens_.size() == 1 && config_->api.tokens.empty()) {
    log::notice("try: curl -H \"API-Token: $(cat " + token_file_path(*config_) + ")\" http://" +
                api_ctx_.listen + "/v1/health");
  }

  // Fleet sync comes after the store and the API and never fails the start (a box without WAN still takes
  // calls): its state is in /v1/health and the journal.
  {
    FleetHooks hooks;
    hooks.apply_config = [this](const std::string& text) { return apply_from_fleet(text); };
    hooks.config = [this]() -> const Config& { return *config_; };
    hooks.place_call = [this](const PlaceCallRequest& r) -> Result<std::string> {
      if (!calls_) return make_error("the calls engine is not running", -ENODEV);
      return calls_->place_call(r);
    };
    hooks.lines = [this] { return lines_ ? lines_->health() : std::vector<LineHealth>{}; };
    hooks.calls = [this] { return calls_ ? calls_->health() : CallsHealth{}; };
    api_ctx_.calls_health = hooks.calls;
    hooks.upstreams = [this] { return upstream_ ? upstream_->breakers() : std::vector<net::BreakerState>{}; };
    api_ctx_.upstreams = hooks.upstreams;
    hooks.loop_latency = [this] { return latency_->snapshot(); };
    api_ctx_.loop_latency = hooks.loop_latency;
    hooks.campaigns = campaigns_.get();
    fleet_ =
        std::make_unique<FleetSync>(*loop_, *store_, *clock_, std::move(hooks), api_ctx_.started_wall_ms);
    fleet_->configure(*config_);
    api_ctx_.fleet = fleet_.get();
  }

  // READY=1 waits until each line is idle or down with a reason.
  lines_ = std::make_unique<LineManager>(*loop_, *clock_);
  api_ctx_.lines = lines_.get();
  diagnostics_ = std::make_unique<LineDiagnostics>(*loop_, *lines_);
  api_ctx_.diagnostics = diagnostics_.get();
  if (auto s = start_calls(); !s) return s;  // before the lines, which may ring at once
  if (auto s = lines_->start(config_->lines, [this] { lines_changed(); }); !s) return s;
  for (hal::Line* l : lines_->lines()) {  // the simulated caller speaks with espeak-ng
    if (auto* sim = dynamic_cast<hal::SimLine*>(l)) {
      sim->set_voice([this](std::string_view text, int rate) -> Result<std::vector<int16_t>> {
        Speech* sp = speech();
        if (!sp) return make_error("espeak-ng is not available");
        return sp->render(text, rate);
      });
    }
  }
  lines_changed();
  start_dialer();
  start_analysis();
  if (auto s = start_webhooks(); !s) return s;
  start_webhook_service();
  return {};
}

// --- Knowledge base (issue 15) ---
// The service, its one timer (background embedding), and the configuration's documents.
Status App::start_knowledge() {
  auto timer = make_loop_call_timer(*loop_, [this] {
    auto due = std::move(knowledge_due_);
    knowledge_due_ = nullptr;
    if (due) due();
  });
  if (!timer) return timer.error();
  knowledge_timer_ = std::move(*timer);
  // The service keeps at most one run pending, so one timer and one slot hold it.
  auto schedule = [this](int64_t delay_ms, std::function<void()> fn) {
    knowledge_due_ = std::move(fn);
    knowledge_timer_->arm(clock_->monotonic_us() + delay_ms * 1000);
  };
  knowledge_ = std::make_unique<knowledge::KnowledgeService>(*store_, *clock_, std::move(schedule));
  // Its embeddings client comes with the upstream loop (start_calls); until then hybrid agents use bm25.
  if (auto s = knowledge_->sync_documents(config_->knowledge); !s)
    log::warning("knowledge: some configured documents did not load: " + s.error().message);
  knowledge_->set_agents(config_->agents);
  return {};
}

// --- Webhooks (issue 14) ---
// The dispatcher sends what the webhook service queued; after a restart, what a previous run left pending.
// Its HttpLoop sets libcurl up on the first delivery, so a box without webhooks does not pay for it.
Status App::start_webhooks() {
  auto http = HttpLoop::create(*loop_, "webhooks");
  if (!http) return http.error();
  webhook_http_ = std::move(*http);
  auto d = webhooks::Dispatcher::create(
      store_->webhooks(), *clock_, [h = webhook_http_.get()] { return h->client(); }, *config_);
  if (!d) return d.error();
  webhook_dispatcher_ = std::move(*d);
  webhook_dispatcher_->start();
  return {};
}

void App::start_analysis() {
  // Without it calls are still taken and recorded; their post-call jobs wait in the store for a later run.
  AnalysisContext ctx;
  ctx.clock = clock_.get();
  ctx.store = store_.get();
  ctx.upstream = &upstream_->upstream();  // the calls' UpstreamLoop: one curl multi, one set of breakers
  ctx.calls = calls_.get();
  ctx.dialer = dialer_.get();
  ctx.zones = zones_.get();
  ctx.timer = [this](std::function<void()> fire) { return make_loop_call_timer(*loop_, std::move(fire)); };
  auto analysis = AnalysisService::create(std::move(ctx));
  if (!analysis) {
    log::error("post-call analysis cannot start: " + analysis.error().message);
    return;
  }
  (*analysis)->set_config(config_.get());
  // A call placed from a chat is noted in its session once its analysis is over (the summary exists);
  // added before start(), which may end the jobs a previous run left.
  (*analysis)->add_done_listener([this](const std::string& call_id) {
    if (chat_) chat_->call_analysis_done(call_id);
  });
  if (Status s = (*analysis)->start(); !s) {
    log::error("post-call analysis is stopped: " + s.error().message);
    return;
  }
  analysis_ = std::move(*analysis);
  if (chat_) chat_->set_analysis_follows(true);
}

void App::start_webhook_service() {
  // Without it calls are still taken; their jobs wait in the store (webhooks_state waiting) for a later run.
  WebhookContext ctx;
  ctx.clock = clock_.get();
  ctx.store = store_.get();
  ctx.timer = [this](std::function<void()> fire) { return make_loop_call_timer(*loop_, std::move(fire)); };
  // Committed deliveries are due now: the dispatcher looks at its heads on a later loop turn.
  ctx.on_queued = [this] {
    if (webhook_dispatcher_) webhook_dispatcher_->poke();
  };
  auto webhooks = WebhookService::create(std::move(ctx));
  if (!webhooks) {
    log::error("post-call webhooks cannot start: " + webhooks.error().message);
    return;
  }
  (*webhooks)->set_config(config_.get());
  // Each call whose analysis is over is queued as it happens; start() below finds what a previous run left.
  if (analysis_) (*webhooks)->attach(*analysis_);
  if (Status s = (*webhooks)->start(); !s) {
    log::error("post-call webhooks are stopped: " + s.error().message);
    return;
  }
  webhooks_ = std::move(*webhooks);
}

void App::start_dialer() {
  // Without it the box still takes API and inbound calls; campaign contacts wait in the queue.
  if (!zones_) zones_ = std::make_unique<TimeZones>();  // shared with the campaigns service when it made it
  DialerContext ctx;
  ctx.clock = clock_.get();
  ctx.store = store_.get();
  ctx.calls = calls_.get();
  ctx.zones = zones_.get();
  ctx.timer = [this](std::function<void()> fire) { return make_loop_call_timer(*loop_, std::move(fire)); };
  auto dialer = Dialer::create(std::move(ctx));
  if (!dialer) {
    log::error("the campaign dialler cannot start: " + dialer.error().message);
    return;
  }
  (*dialer)->set_config(config_.get());
  // Attempts a previous run left open are closed from their call records before anything is dialled; if
  // that fails nothing is dialled, rather than risk a second call for an attempt already placed.
  if (Status s = (*dialer)->start(); !s) {
    log::error("the campaign dialler is stopped: closing the attempts left open failed: " +
               s.error().message);
    return;
  }
  dialer_ = std::move(*dialer);
  // Imports and activations poke it, so new contacts are dialled on the next turn rather than at a timer.
  if (campaigns_) campaigns_->set_dialer(dialer_.get());
}

Speech* App::speech() {
  // espeak-ng costs memory: loaded at the first fallback message or simulated caller, not at start.
  if (!speech_ && !speech_failed_) {
    auto s = Speech::create();
    if (s) {
      speech_ = std::move(*s);
    } else {
      speech_failed_ = true;
      log::error("espeak-ng cannot be loaded, local messages will be a tone only: " + s.error().message);
    }
  }
  return speech_.get();
}

Status App::start_calls() {
  std::string rec_dir = config_->calls.recordings_dir.empty() ? config_->state_dir + "/recordings"
                                                              : config_->calls.recordings_dir;
  // Absolute from here on: the recordings table keeps the path each file was written at, and a path
  // relative to the working directory (`--state-dir ./state`) would be joined to the folder again when read.
  {
    std::error_code ec;
    const std::filesystem::path abs = std::filesystem::absolute(rec_dir, ec);
    if (ec) return make_error("recordings folder " + rec_dir + ": " + ec.message(), -ec.value());
    rec_dir = abs.lexically_normal().string();
    while (rec_dir.size() > 1 && rec_dir.back() == '/') rec_dir.pop_back();
  }
  if (auto s = make_dirs(rec_dir); !s) return s;
  // Before any call runs: what the calls a dead daemon left were recording becomes their recording.
  auto recovered = recover_recordings(store_->calls(), rec_dir);
  if (!recovered) {
    // The box still takes calls; what is left stays on disk for the next start.
    log::error("cannot recover the recordings of interrupted calls: " + recovered.error().message);
    recovered = std::vector<RecoveredRecording>{};
  }
  for (const RecoveredRecording& r : *recovered) {
    if (r.registered) {
      log::warning("recording of interrupted call " + r.call_id + " closed and kept: " + r.note,
                   {{"CALL_ID", r.call_id}}, log::id::kDbRecovered);
    } else {
      log::warning("unusable recording " + r.file + " removed: " + r.note, {{"CALL_ID", r.call_id}},
                   log::id::kDbRecovered);
    }
  }
  auto recordings = Recordings::create(*loop_, store_->calls(), {.dir = rec_dir, .sync = {}});
  if (!recordings) return recordings.error();
  recordings_ = std::move(*recordings);
  auto heartbeat = CallsHeartbeat::start(*loop_, *store_, *clock_);
  if (!heartbeat) return heartbeat.error();
  heartbeat_ = std::move(*heartbeat);
  auto key = load_or_create_secret(config_->state_dir + "/recording-key", 32);
  if (!key) return make_error("recording key: " + key.error().message, key.error().code);
  recording_key_ = std::move(*key);
  auto up = UpstreamLoop::create(*loop_);
  if (!up) return up.error();
  upstream_ = std::move(*up);
  // The knowledge base's embeddings share the loop's upstream client (its breakers and limits).
  knowledge_embedder_ = std::make_unique<knowledge::UpstreamEmbedder>(upstream_->upstream());
  knowledge_->set_embedder(knowledge_embedder_.get());
  call_ctx_.loop = loop_.get();
  call_ctx_.clock = clock_.get();
  call_ctx_.store = store_.get();
  call_ctx_.upstream = &upstream_->upstream();
  // The worker keeps its own espeak-ng handle, loaded on its thread at the first local prompt.
  auto speech_state = std::make_shared<std::unique_ptr<Speech>>();
  auto worker = SpeechWorker::create(
      *loop_, [speech_state](std::string_view text, int rate) -> Result<std::vector<int16_t>> {
        if (!*speech_state) {
          auto s = Speech::create();
          if (!s) return make_error("espeak-ng cannot be loaded: " + s.error().message, s.error().code);
          *speech_state = std::move(*s);
        }
        return (*speech_state)->render(text, rate);
      });
  if (!worker) return make_error("speech worker: " + worker.error().message, worker.error().code);
  speech_worker_ = std::move(*worker);
  call_ctx_.speech = [w = speech_worker_.get()](std::string text, int rate, std::chrono::milliseconds timeout,
                                                SpeechWorker::Done done) {
    return w->render(std::move(text), rate, timeout, std::move(done));
  };
  call_ctx_.audio = config_->audio;
  call_ctx_.calls = config_->calls;
  call_ctx_.recordings = recordings_.get();
  call_ctx_.knowledge = knowledge_.get();  // the search_knowledge_base tool
  calls_ = std::make_unique<CallManager>(call_ctx_, *lines_);
  calls_->set_config(config_.get());
  if (options_.demo) {
    calls_->add_finished_listener([this](const CallRecord& r) {
      // The report names the recording, which is registered once it is on disk.
      recordings_->when_idle([this, id = r.call_id] {
        std::fputs(demo_report(*store_, id, config_->site.utc_offset_minutes).c_str(), stdout);
        std::fflush(stdout);
        stop("the end of the demo call");
      });
    });
  }
  lines_->set_event_sink([this](hal::Line& l, const hal::LineEvent& e) { calls_->on_line_event(l, e); });
  api_ctx_.calls = calls_.get();
  // Browser test calls: at most one per configured line at once (at least one), as the box's models are
  // sized for its lines.
  WebCallsOptions web;
  web.max_calls = std::max<size_t>(1, lines_->size());
  web_calls_ = std::make_unique<WebCalls>(call_ctx_, *calls_, web);
  api_ctx_.web_calls = web_calls_.get();
  api_ctx_.recording_key = recording_key_;
  api_ctx_.recordings_dir = rec_dir;
  api_ctx_.recordings = recordings_.get();
  // Chat sessions share the calls' upstream loop (one curl multi, one set of breakers).
  ChatContext chat_ctx;
  chat_ctx.config = config_.get();
  chat_ctx.store = store_.get();
  chat_ctx.upstream = &upstream_->upstream();
  chat_ctx.knowledge = knowledge_.get();
  chat_ctx.clock = clock_.get();
  chat_ctx.timer = [this](std::function<void()> fire) {
    return make_loop_call_timer(*loop_, std::move(fire));
  };
  // offer_call places its calls through the engine; the calls' zones are the dialler's.
  if (!zones_) zones_ = std::make_unique<TimeZones>();
  chat_ctx.calls = calls_.get();
  chat_ctx.zones = zones_.get();
  auto chat = ChatService::create(std::move(chat_ctx));
  if (!chat) return make_error("chat: " + chat.error().message, chat.error().code);
  chat_ = std::move(*chat);
  api_ctx_.chat = chat_.get();
  auto hub = EventHub::create(
      *clock_, [this](std::function<void()> fire) { return make_loop_call_timer(*loop_, std::move(fire)); });
  if (!hub) return make_error("event streams: " + hub.error().message, hub.error().code);
  events_ = std::move(*hub);
  api_ctx_.events = events_.get();
  chat_->set_listener([hub = events_.get()](const ChatEvent& e) { publish_chat_event(*hub, e); });
  return {};
}

void App::lines_changed() {
  if (dialer_) dialer_->poke();  // a line that came up can take a campaign call
  if (ready_sent_) return notify_status(ready_status());
  if (!lines_->all_settled()) return notify_status("Starting: waiting for lines: " + lines_->summary());
  ready_sent_ = true;
  const std::string status = ready_status();
  sd_notify(0, ("READY=1\nSTATUS=" + status).c_str());
  log::notice(status, {}, log::id::kReady);
  release_startup_memory();
}

void App::release_startup_memory() {
  // Start-up's garbage, once: the pages SQLite cached while migrating and checking the file, then the freed
  // heap pages glibc keeps below M_TRIM_THRESHOLD. ~1.3 MB of an idle box's RSS (bench/README.md, issue 18).
  const int64_t released = store_->database().release_memory();
  malloc_trim(0);
  log::debug("released start-up memory", {{"SQLITE_BYTES", std::to_string(released)}});
}

void App::reload() {
  (void)reload_now();
}

Status App::reload_now() {
  sd_notify(0, "RELOADING=1\nSTATUS=Reloading configuration");
  auto reject = [this](const Error& why) -> Status {
    log::error("configuration reload rejected, keeping the running configuration: " + why.message,
               {{"CONFIG_HASH", config_->source_hash}}, log::id::kConfigRejected);
    sd_notify(0, ("READY=1\nSTATUS=" + ready_status() + " (last reload rejected: see journal)").c_str());
    return why;
  };
  auto cfg = load_configuration(options_);
  if (!cfg) return reject(cfg.error());
  if (Status s = apply(std::move(*cfg)); !s) return reject(s.error());
  sd_notify(0, ("READY=1\nSTATUS=" + ready_status()).c_str());
  return {};
}

void App::request_reload(std::function<void(const Status&)> done) {
  reload_waiters_.push_back(std::move(done));
  if (reload_timer_) {
    EventLoop::set_timer(reload_timer_.get(), 0);
    return;
  }
  // Not inside the request's handler: apply() may replace the API server that is calling us.
  auto t = loop_->add_timer(0, [this] {
    Status s = reload_now();
    auto waiters = std::move(reload_waiters_);
    reload_waiters_.clear();
    for (auto& w : waiters) w(s);
  });
  if (!t) {
    auto waiters = std::move(reload_waiters_);
    reload_waiters_.clear();
    for (auto& w : waiters) w(t.error());
    return;
  }
  reload_timer_ = std::move(*t);
}

Status App::apply(Config new_cfg) {
  auto reject = [](const std::string& why) -> Status { return make_error(why); };
  Config* cfg = &new_cfg;
  if (cfg->state_dir != config_->state_dir) {
    return reject("state_dir: cannot move the database while running (from \"" + config_->state_dir +
                  "\" to \"" + cfg->state_dir + "\"); restart osvid instead");
  }
  if (cfg->calls.recordings_dir != config_->calls.recordings_dir) {
    // Recordings already made are served from the directory they were written to.
    return reject("calls.recordings_dir: cannot move the recordings while running (from \"" +
                  config_->calls.recordings_dir + "\" to \"" + cfg->calls.recordings_dir +
                  "\"); restart osvid instead");
  }
  bool generated = false;
  auto tokens = resolve_tokens(*cfg, &generated);
  if (!tokens) return reject(tokens.error().message);

  // A new listen address is bound before anything changes, so a failure leaves the old server serving.
  std::unique_ptr<net::HttpServer> new_server;
  std::vector<EventSource> new_sources;
  const ApiConfig& a = cfg->api;
  const ApiConfig& b = config_->api;
  const bool api_changed = a.host != b.host || a.port != b.port || a.max_body_bytes != b.max_body_bytes ||
                           a.max_connections != b.max_connections ||
                           a.max_connections_per_client != b.max_connections_per_client ||
                           a.connection_timeout_s != b.connection_timeout_s ||
                           a.header_timeout_s != b.header_timeout_s || a.idle_timeout_s != b.idle_timeout_s ||
                           a.tls_cert_pem != b.tls_cert_pem || a.tls_key_pem != b.tls_key_pem;
  if (api_changed) {
    if (auto s = start_api(*cfg, &new_server, &new_sources); !s) return reject(s.error().message);
  }
  if (auto s = store_->agents().sync(agent_records(*cfg)); !s) return reject("agents: " + s.error().message);
  if (auto s = campaigns_->sync(*cfg); !s) return reject("campaigns: " + s.error().message);

  // Webhooks: the last step that can refuse (an allowed_targets CIDR, a secret); it applies only on success.
  if (webhook_dispatcher_) {
    if (auto s = webhook_dispatcher_->set_config(*cfg); !s) return reject(s.error().message);
  }

  // Nothing below can fail: the switch is all or nothing.
  config_ = std::make_unique<Config>(std::move(*cfg));
  tokens_ = std::move(*tokens);
  api_ctx_.config = config_.get();
  campaigns_->set_config(config_.get());
  // The configuration's documents load after the switch: a file that fails to load is logged and leaves
  // that document as it was, it does not refuse the reload.
  if (auto s = knowledge_->sync_documents(config_->knowledge); !s)
    log::warning("knowledge: some configured documents did not load: " + s.error().message);
  knowledge_->set_agents(config_->agents);
  api_ctx_.config_loaded_wall_ms = clock_->wall_ms();
  if (new_server) {
    server_sources_ = std::move(new_sources);
    server_ = std::move(new_server);
    api_ctx_.listen = config_->api.host + ":" + std::to_string(server_->port());
  }
  log::set_level(config_->log_level);
  // New calls take the new agents, `audio` and `calls` sections when they are launched; calls in progress
  // keep the copy they started with (CallManager::launch).
  call_ctx_.audio = config_->audio;
  call_ctx_.calls = config_->calls;
  if (calls_) calls_->set_config(config_.get());
  if (chat_) chat_->set_config(config_.get());
  if (dialer_) dialer_->set_config(config_.get());
  if (analysis_) analysis_->set_config(config_.get());
  if (webhooks_) webhooks_->set_config(config_.get());
  if (lines_ && config_->lines != lines_->configs())  // lines are not restarted under a call
    log::warning("lines: the changed configuration applies at the next restart of osvid");
  log::notice("configuration reloaded (" + std::to_string(config_->agents.size()) + " agents)",
              {{"CONFIG_HASH", config_->source_hash}}, log::id::kConfigReloaded);
  if (fleet_) fleet_->configure(*config_);
  return {};
}

Status App::apply_from_fleet(const std::string& json_text) {
  const std::string target = options_.config_path ? *options_.config_path : desired_path(options_);
  auto cfg = configuration_from_text(options_, json_text, "pushed configuration");
  if (!cfg) return cfg.error();
  // The pushed text is written first and renamed into place only once applied: a rejected push leaves the
  // file as it was, an accepted one survives a restart.
  const std::string tmp = target + ".fleet";
  if (Status s = write_file_atomically(tmp, json_text); !s)
    return make_error("persisting: " + s.error().message);
  if (Status s = apply(std::move(*cfg)); !s) {
    ::unlink(tmp.c_str());
    return s;
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    const int e = errno;
    log::error("fleet configuration applied but not saved to " + target + ": " + std::strerror(e) +
                   "; the file in place loads at the next restart",
               {{"CONFIG_HASH", config_->source_hash}});
  } else if (Status d = sync_parent_directory(target); !d) {
    log::warning("fleet configuration saved, but a power cut may bring back the previous one: " +
                 d.error().message);
  }
  sd_notifyf_status(ready_status());
  return {};
}

void App::stop(const char* why) {
  sd_notify(0, "STOPPING=1\nSTATUS=Stopping");
  log::notice(std::string("stopping on ") + why, {}, log::id::kStopping);
  if (server_) server_->quiesce();
  webhooks_.reset();  // what it has not queued stays waiting in the store: the next start queues it
  analysis_.reset();  // its jobs in flight stay pending in the store: the next start redoes them
  if (campaigns_) campaigns_->set_dialer(nullptr);
  dialer_.reset();  // dials nothing more; the calls it placed are recorded by the engine's shutdown
  if (web_calls_) web_calls_->shutdown();  // browsers are told (close 1001) before their calls end
  if (calls_) calls_->shutdown();          // every live call hung up and recorded
  if (fleet_) fleet_->stop();              // retained clean "offline", acknowledged before we go
  loop_->exit(0);
}

int App::run() {
  log::init("osvid");
  if (auto s = start(); !s) {
    log::error("cannot start: " + s.error().message);
    sd_notify(0, ("STATUS=Failed to start: " + s.error().message).c_str());
    return 1;
  }
  int r = loop_->run();
  // Finalise in reverse order of initialisation.
  if (chat_) chat_->set_listener({});
  api_ctx_.events = nullptr;
  events_.reset();  // its streams end cleanly while their server still runs
  reload_timer_.reset();
  reload_waiters_.clear();  // replies to reloads that never ran, while their server still runs
  api_ctx_.reload = nullptr;
  api_ctx_.upstreams = nullptr;
  api_ctx_.loop_latency = nullptr;
  api_ctx_.calls_health = nullptr;
  server_sources_.clear();
  server_.reset();
  api_.reset();
  api_ctx_.calls = nullptr;
  api_ctx_.web_calls = nullptr;
  api_ctx_.chat = nullptr;
  chat_.reset();  // before the upstream loop its model requests run on
  if (lines_) lines_->set_event_sink({});
  webhooks_.reset();  // before the analysis it listens to and the store it writes
  analysis_.reset();  // before the dialler it pokes and the calls engine it listens to
  if (campaigns_) campaigns_->set_dialer(nullptr);
  dialer_.reset();     // before the calls engine it listens to
  web_calls_.reset();  // before the calls engine it listens to (sessions its calls still hold live on)
  calls_.reset();
  heartbeat_.reset();
  api_ctx_.recordings = nullptr;
  recordings_.reset();  // after the calls that hand it files, before the store it registers them in
  if (knowledge_) knowledge_->set_embedder(nullptr);
  knowledge_embedder_.reset();  // cancels its requests, before the upstream they run on
  upstream_.reset();
  api_ctx_.diagnostics = nullptr;
  diagnostics_.reset();  // a loopback in progress stops its stream before the line goes
  api_ctx_.lines = nullptr;
  lines_.reset();
  api_ctx_.fleet = nullptr;
  fleet_.reset();  // before the store it writes to
  api_ctx_.campaigns = nullptr;
  campaigns_.reset();
  api_ctx_.knowledge = nullptr;
  knowledge_.reset();  // before the store it reads, and its timer
  knowledge_timer_.reset();
  api_ctx_.stats = nullptr;
  stats_.reset();               // before the store it reads
  webhook_dispatcher_.reset();  // cancels what is in flight (those stay pending), before its client and store
  webhook_http_.reset();
  store_.reset();
  signal_sources_.clear();
  if (r < 0) {
    log::error(std::string("event loop failed: ") + std::strerror(-r));
    return 1;
  }
  log::info("stopped");
  return 0;
}

}  // namespace osvi::daemon
