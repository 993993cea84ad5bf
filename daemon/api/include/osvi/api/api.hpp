// The OSVI API handlers: authentication, envelopes (spec section 10) and the endpoints, on the loop thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/base/loop_latency.hpp"
#include "osvi/calls/call_manager.hpp"
#include "osvi/clock.hpp"
#include "osvi/config/config.hpp"
#include "osvi/knowledge/knowledge_service.hpp"
#include "osvi/net/http_server.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/router.hpp"
#include "osvi/net/upstream.hpp"
#include "osvi/result.hpp"
#include "osvi/store/store.hpp"

namespace osvi::daemon {

// What the handlers may read; the App owns it and swaps the pointers on reload.
struct ApiContext {
  const Config* config = nullptr;
  const std::vector<ApiToken>* tokens = nullptr;  // config tokens, or the generated token file's one
  Store* store = nullptr;
  const Clock* clock = nullptr;
  int64_t started_mono_us = 0;
  int64_t started_wall_ms = 0;
  std::string config_source;  // a path, or "embedded defaults"
  int64_t config_loaded_wall_ms = 0;
  std::string listen;                        // "host:port" actually bound
  const class LineManager* lines = nullptr;  // the "lines" array of /v1/health; null = none
  const class FleetSync* fleet = nullptr;    // the "mqtt" object of /v1/health; null = not built
  // The model services' circuit breakers for the "upstreams" array of /v1/health (the same figures the
  // fleet's telemetry carries); empty function or list: none contacted yet.
  std::function<std::vector<net::BreakerState>()> upstreams;
  // The "loop" object of /v1/health: the control loop's dispatch latency over the last minute; empty: absent.
  std::function<LoopLatencySnapshot()> loop_latency;
  // The "calls" object of /v1/health (live calls, queued requests, audio xruns since start); empty: absent.
  std::function<CallsHealth()> calls_health;
  // The calls resource (calls.cpp).
  class CallService* calls = nullptr;  // null: POST /v1/call and /call answer 503
  std::string recording_key;           // HMAC key bytes of recording links; empty: recording URLs answer 503
  std::string recordings_dir;          // resolves relative paths in the recordings table
  // A recording still being made durable is waited for rather than answered 404; null: never waits.
  class Recordings* recordings = nullptr;
  // The campaigns resource (campaigns.cpp); null: the campaign endpoints answer 503.
  class CampaignService* campaigns = nullptr;
  // The chat resource (chat.cpp, chat_legacy.cpp); null: the chat endpoints answer 503.
  class ChatService* chat = nullptr;
  // The event streams (GET /v1/chat/events, GET /v1/chat/session/{id}/events); null: they answer 503.
  class EventHub* events = nullptr;
  // The knowledge base extension (knowledge.cpp); null: its endpoints answer 503.
  knowledge::KnowledgeService* knowledge = nullptr;
  // GET /v1/stats (stats.cpp); null: it answers 503.
  class StatsService* stats = nullptr;
  // POST /v1/system/reload: the SIGHUP path (App::reload_now), run on a later loop turn (the API server
  // itself may be replaced by it), then `done` with its outcome. Null: the endpoint answers 503.
  std::function<void(std::function<void(const Status&)> done)> reload;
  // POST /v1/lines/{id}/test and /loopback (lines.cpp); null: they answer 503.
  class LineDiagnostics* diagnostics = nullptr;
  // Test calls from the browser (web_calls.cpp); null: they answer 503. Its web lines join /v1/health's.
  class WebCalls* web_calls = nullptr;
};

class Api {
 public:
  explicit Api(ApiContext& ctx);
  void handle(net::HttpRequest& request, net::HttpReply reply);

  // {"success":false,"errors":[m],"error":m}: both documented error shapes at once.
  static net::HttpResponse error(int status, std::string_view message);

  // HttpServerOptions::body_sink: a CSV contacts upload is parsed as its body arrives (campaign_csv.cpp);
  // every other request keeps the gathered body.
  std::unique_ptr<net::HttpBodySink> body_sink(const net::HttpRequest& head);

 private:
  // 400 for the endpoints whose pages document 400 for validation (spec section 10), 422 elsewhere.
  static int validation_status(std::string_view method, std::string_view path);

  // One file per resource: agents.cpp, health.cpp, system.cpp, calls.cpp, dnd.cpp.
  void active_agents(net::HttpRequest& request, net::HttpReply reply);
  void health(net::HttpRequest& request, net::HttpReply reply);
  // session.cpp: the calling token's scope (admin, agents).
  void session(net::HttpRequest& request, net::HttpReply reply);
  void get_log_level(net::HttpRequest& request, net::HttpReply reply);
  void set_log_level(net::HttpRequest& request, net::HttpReply reply);
  void system_errors(net::HttpRequest& request, net::HttpReply reply);
  void system_reload(net::HttpRequest& request, net::HttpReply reply);
  // lines.cpp: the line test and the audio loopback.
  void test_line(net::HttpRequest& request, net::HttpReply reply);
  void loopback_line(net::HttpRequest& request, net::HttpReply reply);
  bool line_request_ok(const net::HttpRequest& request, net::HttpReply& reply);  // false: answered
  void post_call(net::HttpRequest& request, net::HttpReply reply);
  void post_call_legacy(net::HttpRequest& request, net::HttpReply reply);
  void place(net::HttpRequest& request, net::HttpReply reply, bool legacy);
  void list_calls(net::HttpRequest& request, net::HttpReply reply);
  void get_call(net::HttpRequest& request, net::HttpReply reply);
  void get_transcript(net::HttpRequest& request, net::HttpReply reply);
  void get_recording(net::HttpRequest& request, net::HttpReply reply);
  // GET /v1/recordings/{file}: authorised by its signed link, not by the API token.
  void serve_recording(net::HttpRequest& request, net::HttpReply reply);
  // deliveries.cpp: the webhook delivery log of a call, and the dead letters.
  void call_deliveries(net::HttpRequest& request, net::HttpReply reply);
  void dead_deliveries(net::HttpRequest& request, net::HttpReply reply);
  // dnd.cpp: POST, GET, DELETE /v1/dnd_numbers.
  void add_dnd(net::HttpRequest& request, net::HttpReply reply);
  void list_dnd(net::HttpRequest& request, net::HttpReply reply);
  void remove_dnd(net::HttpRequest& request, net::HttpReply reply);
  bool dnd_agent_known(const std::string& agent_uuid, net::HttpReply& reply);

  // campaigns.cpp: spec 3.7, 3.8 and the extensions.
  void post_contacts(net::HttpRequest& request, net::HttpReply reply);
  void campaign_status(net::HttpRequest& request, net::HttpReply reply);
  void create_campaign(net::HttpRequest& request, net::HttpReply reply);
  void list_campaigns(net::HttpRequest& request, net::HttpReply reply);
  void get_campaign(net::HttpRequest& request, net::HttpReply reply);
  void patch_campaign(net::HttpRequest& request, net::HttpReply reply);
  void list_contacts(net::HttpRequest& request, net::HttpReply reply);
  void enqueue_upload(net::HttpRequest& request, net::HttpReply reply);
  // The campaign of the path's {id} when it exists and the token covers it; otherwise the reply is sent.
  std::optional<CampaignRow> find_campaign(const net::HttpRequest& request, net::HttpReply& reply);
  // callbacks.cpp: the callbacks extension (GET /v1/callbacks, GET and DELETE /v1/callbacks/{id}).
  void list_callbacks(net::HttpRequest& request, net::HttpReply reply);
  void get_callback(net::HttpRequest& request, net::HttpReply reply);
  void cancel_callback(net::HttpRequest& request, net::HttpReply reply);
  // The callback of the path's {id} when it exists and the token covers its agent; otherwise the reply
  // (404) is sent.
  std::optional<CallbackRow> find_callback(const net::HttpRequest& request, net::HttpReply& reply);
  // campaign_csv.cpp: POST /v1/campaigns/{id}/contacts with text/csv, POST /v1/campaigns/{id}/contacts.csv.
  void post_contacts_csv(net::HttpRequest& request, net::HttpReply reply);
  std::unique_ptr<net::HttpBodySink> open_csv_upload(const net::HttpRequest& head, const ApiToken& caller);

  // chat.cpp: spec 3.12-3.16 and the chat extensions; chat_legacy.cpp: spec 3.17's chat endpoints.
  void create_chat_session(net::HttpRequest& request, net::HttpReply reply);
  void active_chat_session(net::HttpRequest& request, net::HttpReply reply);
  void chat_inbound(net::HttpRequest& request, net::HttpReply reply);
  void chat_support(net::HttpRequest& request, net::HttpReply reply);
  void chat_inject_context(net::HttpRequest& request, net::HttpReply reply);
  void list_chat_sessions(net::HttpRequest& request, net::HttpReply reply);
  void get_chat_session(net::HttpRequest& request, net::HttpReply reply);
  void chat_session_messages(net::HttpRequest& request, net::HttpReply reply);
  // The chat inbox's and one session's event streams (docs/api.md "Event streams (SSE)").
  void chat_inbox_events(net::HttpRequest& request, net::HttpReply reply);
  void chat_session_events(net::HttpRequest& request, net::HttpReply reply);
  void legacy_chat_session(net::HttpRequest& request, net::HttpReply reply);
  void legacy_send_message(net::HttpRequest& request, net::HttpReply reply);
  void legacy_close_session(net::HttpRequest& request, net::HttpReply reply);
  void legacy_pause_session(net::HttpRequest& request, net::HttpReply reply);
  bool chat_ready(net::HttpReply& reply);  // false (503 sent) without a ChatService
  bool chat_agent_allowed(const std::string& agent_uuid, net::HttpReply& reply);  // false: 403 sent
  // The session named id when the token may see it; otherwise the 404 / 500 reply is sent.
  std::optional<ChatSessionRow> find_chat_session(std::string_view id, net::HttpReply& reply);
  // knowledge.cpp: the knowledge base extension (documents: admin tokens; search: the agent's tokens).
  void upload_document(net::HttpRequest& request, net::HttpReply reply);
  void list_documents(net::HttpRequest& request, net::HttpReply reply);
  void get_document(net::HttpRequest& request, net::HttpReply reply);
  void archive_document(net::HttpRequest& request, net::HttpReply reply);
  void search_knowledge(net::HttpRequest& request, net::HttpReply reply);
  std::optional<KnowledgeDocument> find_document(const net::HttpRequest& request, net::HttpReply& reply);
  bool knowledge_ready(net::HttpReply& reply);
  // POST /v1/knowledge/documents with a text/plain or text/csv body: the document as sent, not JSON.
  static bool knowledge_raw_upload(const net::HttpRequest& request);
  // stats.cpp: the dashboard's numbers (GET /v1/stats, an extension).
  void get_stats(net::HttpRequest& request, net::HttpReply reply);

  // web_calls.cpp: POST /v1/web_calls (a ticket) and GET /v1/web_calls/ws (the call's WebSocket, authorised
  // by the ticket, not by the API token).
  void create_web_call(net::HttpRequest& request, net::HttpReply reply);
  void web_call_socket(net::HttpRequest& request, net::HttpReply reply);

  ApiContext& ctx_;
  net::Router router_;
  // The request being dispatched: its token and its parsed JSON body (null for GET). Handlers that
  // answer later must copy what they need before returning.
  const ApiToken* caller_ = nullptr;
  net::JsonPtr body_;
};

}  // namespace osvi::daemon
