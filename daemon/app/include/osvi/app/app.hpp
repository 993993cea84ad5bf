// The osvid application: initialise in order, run the control loop, reload on SIGHUP, finalise in reverse.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "osvi/analysis/analysis.hpp"
#include "osvi/api/api.hpp"
#include "osvi/api/event_hub.hpp"
#include "osvi/app/demo.hpp"
#include "osvi/base/event_loop.hpp"
#include "osvi/base/http_loop.hpp"
#include "osvi/base/loop_latency.hpp"
#include "osvi/base/time_zone.hpp"
#include "osvi/base/upstream_loop.hpp"
#include "osvi/calls/call_manager.hpp"
#include "osvi/calls/web_call.hpp"
#include "osvi/campaigns/campaigns.hpp"
#include "osvi/campaigns/dialer.hpp"
#include "osvi/chat/chat_service.hpp"
#include "osvi/config/config.hpp"
#include "osvi/fleet/fleet.hpp"
#include "osvi/knowledge/knowledge_service.hpp"
#include "osvi/knowledge/upstream_embedder.hpp"
#include "osvi/lines/line_diagnostics.hpp"
#include "osvi/lines/line_manager.hpp"
#include "osvi/net/http_server.hpp"
#include "osvi/result.hpp"
#include "osvi/speech/speech.hpp"
#include "osvi/speech/speech_worker.hpp"
#include "osvi/stats/stats_service.hpp"
#include "osvi/store/heartbeat.hpp"
#include "osvi/store/recordings.hpp"
#include "osvi/store/store.hpp"
#include "osvi/webhooks/dispatcher.hpp"
#include "osvi/webhooks/webhook_service.hpp"

namespace osvi::daemon {

struct AppOptions {
  std::optional<std::string> config_path;  // none = the embedded defaults
  // Command-line overrides, applied on top of every load (start and reload) and validated with it.
  std::optional<std::string> state_dir;
  std::optional<std::string> listen;
  std::optional<DemoSetup> demo;  // osvid --demo: print the first call's report and exit once it ends
};

// Reads the configuration named by the options (file or embedded), applies the overrides, validates.
Result<Config> load_configuration(const AppOptions& options);

class App {
 public:
  explicit App(AppOptions options);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  // Returns the process exit code: 0 after a clean stop, 1 when start-up failed.
  int run();

 private:
  Status start();
  // The knowledge service over the store, the configuration's documents loaded, its embedding timer.
  Status start_knowledge();
  Status start_api(const Config& cfg, std::unique_ptr<net::HttpServer>* out,
                   std::vector<EventSource>* sources);
  void reload();
  // reload() with its outcome: the file read, validated and applied, or the reasons it was rejected (logged
  // with CONFIG_REJECTED either way, as for SIGHUP).
  Status reload_now();
  // POST /v1/system/reload: requests wait here for a reload on the next loop turn (one reload serves all).
  void request_reload(std::function<void(const Status&)> done);
  std::vector<std::function<void(const Status&)>> reload_waiters_;
  EventSource reload_timer_;
  // The SIGHUP path without the file read: prepare everything that can fail, then switch (shared with
  // fleet configuration pushes). On error nothing changed and the message holds the reasons.
  Status apply(Config cfg);
  // A configuration document pushed by the fleet: overrides, validation, apply(), then persisted atomically.
  Status apply_from_fleet(const std::string& json_text);
  void stop(const char* why);
  void notify_status(const std::string& status);
  std::string ready_status() const;

  AppOptions options_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<LoopClock> clock_;
  std::unique_ptr<LoopLatency> latency_;  // the loop's dispatch latency for health and telemetry
  std::unique_ptr<Config> config_;
  std::vector<ApiToken> tokens_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<TimeZones> zones_;            // the campaigns' and the dialler's, loaded once each
  std::unique_ptr<CampaignService> campaigns_;  // after the store and zones it uses
  std::unique_ptr<StatsService> stats_;         // GET /v1/stats; after the store and zones it uses
  // The knowledge base, after the store; its one timer (background embedding) and what that timer runs.
  std::unique_ptr<knowledge::KnowledgeService> knowledge_;
  std::unique_ptr<CallTimer> knowledge_timer_;
  std::function<void()> knowledge_due_;
  ApiContext api_ctx_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<net::HttpServer> server_;
  std::vector<EventSource> server_sources_;
  std::vector<EventSource> signal_sources_;
  std::unique_ptr<FleetSync> fleet_;
  // READY=1 is sent by lines_changed() once every line has settled.
  void lines_changed();
  void release_startup_memory();  // once, after READY=1
  std::unique_ptr<LineManager> lines_;
  std::unique_ptr<LineDiagnostics> diagnostics_;  // after the lines it tests, destroyed before them
  bool ready_sent_ = false;
  Status start_calls();
  Speech* speech();
  std::unique_ptr<UpstreamLoop> upstream_;
  // The knowledge base's embeddings client: after upstream_, so it goes (cancelling its requests) first.
  std::unique_ptr<knowledge::UpstreamEmbedder> knowledge_embedder_;
  std::unique_ptr<Speech> speech_;  // the simulated caller's voice (loop side)
  bool speech_failed_ = false;
  std::unique_ptr<SpeechWorker> speech_worker_;  // the calls' local prompts, rendered off the loop
  std::unique_ptr<Recordings> recordings_;       // outlives the calls, which hand it their files
  std::unique_ptr<CallsHeartbeat> heartbeat_;
  CallContext call_ctx_;
  std::unique_ptr<CallManager> calls_;
  // Browser test calls (tickets, their WebSockets), after the calls engine it places them with.
  std::unique_ptr<WebCalls> web_calls_;
  std::unique_ptr<ChatService> chat_;  // chat sessions (start_calls, after the upstream loop it uses)
  std::unique_ptr<EventHub> events_;   // the API's event streams; chat_ publishes to it
  // The campaign dialler, after the calls engine it places calls with (start_dialer, at the end of start).
  void start_dialer();
  std::unique_ptr<Dialer> dialer_;
  // Post-call analysis, after the dialler it pokes for callbacks (start_analysis, right after start_dialer).
  void start_analysis();
  std::unique_ptr<AnalysisService> analysis_;
  // Post-call webhooks: queues each finished call's deliveries once its analysis is over
  // (start_webhook_service, after the dispatcher it pokes and the analysis it listens to).
  void start_webhook_service();
  std::unique_ptr<WebhookService> webhooks_;
  std::string recording_key_;

  // --- Webhooks (issue 14): the delivery engine, on an HttpLoop of its own (start_webhooks). Whoever
  // queues deliveries (the webhook service) calls webhook_dispatcher()->poke() once they are committed.
 public:
  webhooks::Dispatcher* webhook_dispatcher() { return webhook_dispatcher_.get(); }

 private:
  Status start_webhooks();
  std::unique_ptr<HttpLoop> webhook_http_;
  std::unique_ptr<webhooks::Dispatcher> webhook_dispatcher_;  // before webhook_http_ is gone, after the store
};

}  // namespace osvi::daemon
