// ChatService: chat agents' sessions (spec 3.12-3.17, 7.5): customer messages answered by the agent's model,
// operator commands (takeover, tell, whisper, end, close), context, dormancy on the clock, and their events.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/base/time_zone.hpp"
#include "osvi/calls/call_service.hpp"
#include "osvi/calls/call_timers.hpp"
#include "osvi/clock.hpp"
#include "osvi/config/config.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/upstream.hpp"
#include "osvi/result.hpp"
#include "osvi/store/chat.hpp"
#include "osvi/store/store.hpp"

namespace osvi::daemon {

namespace knowledge {
class KnowledgeService;
}

// Emitted after the change it reports is committed. type: message.created (data: the message as the API
// shows it), mode.changed | status.changed | help.requested (data: the session as the API shows it).
struct ChatEvent {
  std::string type;
  std::string session_id, agent_uuid;
  net::JsonPtr data;
};
using ChatListener = std::function<void(const ChatEvent&)>;

struct ChatContext {
  const Config* config = nullptr;  // swapped with set_config() on reload
  Store* store = nullptr;
  net::Upstream* upstream = nullptr;
  const Clock* clock = nullptr;
  CallTimerFactory timer;  // the dormancy sweep's timer (sd-event in the daemon, virtual time in tests)
  // offer_call (agents[].chat.voice_agent): null = the tool is not offered and no call comes back.
  CallService* calls = nullptr;
  TimeZones* zones = nullptr;  // the callee's zone for calling hours; null = the site's fixed offset
  // search_knowledge_base (agents[].knowledge.documents): null = the tool is not offered.
  knowledge::KnowledgeService* knowledge = nullptr;
  // The callee's candidate zones by number (base/phone.hpp phone_time_zones; one zone = theirs, else the
  // site's) and the number's normalisation (normalize_any_phone). Replaceable so tests need not load
  // libphonenumber's module; empty = those functions.
  std::function<std::vector<std::string>(std::string_view e164)> phone_zones = nullptr;
  std::function<Result<std::string>(std::string_view text, std::string_view region)> normalize_phone =
      nullptr;
};

// Bounds (docs/api.md, chat "Limits").
struct ChatLimits {
  size_t max_queue = 8;              // per session: turns waiting or running; one more gets -EBUSY (429)
  size_t history_messages = 40;      // the most recent messages sent to the model...
  size_t history_bytes = 32 * 1024;  // ...and at most this much of their text
  int max_tool_rounds = 3;           // model requests of one turn that may call tools
  size_t max_context_entries = 5;    // spec 3.12: the last 5 non-empty strings
};

// Error codes of the service's Results, as the API maps them.
//   -ENOENT  no such session / agent          → 404
//   -EINVAL  validation (the message says what) → 422
//   -EPERM   the agent disables the command    → 422
//   -EBUSY   the session's queue is full        → 429
//   other    the store failed                    → 500

// One model turn's outcome (inbound, tell, legacy send_message).
struct ChatTurn {
  ChatSessionRow session;            // after the turn
  std::optional<std::string> reply;  // null: no agent turn (support mode)
  std::optional<std::string> error;  // the model failed or timed out: reply is the agent's fallback text
  struct ToolUse {
    std::string name, arguments_json, result;
  };
  std::vector<ToolUse> tools;  // what the model called during the turn
};
using ChatTurnDone = std::function<void(Result<ChatTurn>)>;

struct ChatInbound {
  std::string agent_uuid, customer_id, content;
  std::optional<std::string> session_id;
};

// POST /v1/chat/session/{id}/support. command: none (a plain operator message), takeover, tell, whisper, end,
// close.
struct ChatSupport {
  std::optional<std::string> command;
  std::optional<std::string> message;
  std::optional<std::string> operator_id;  // takeover: becomes active_human; the others: recorded on the row
};
struct ChatSupportResult {
  ChatSessionRow session;
  std::optional<std::string> reply;  // tell
  std::optional<std::string> error;  // tell: as ChatTurn::error
  // close: the summary, or null and why.
  std::optional<std::string> summary, summary_error;
};
using ChatSupportDone = std::function<void(Result<ChatSupportResult>)>;

class ChatService {
 public:
  // The phrases that set help_requested on a customer message, whatever the model does (lower case,
  // matched case-insensitively as substrings; docs/api.md).
  static const std::vector<std::string_view>& help_phrases();

  static Result<std::unique_ptr<ChatService>> create(ChatContext ctx, ChatLimits limits = {});
  ~ChatService();
  ChatService(const ChatService&) = delete;
  ChatService& operator=(const ChatService&) = delete;

  // A reload: new agents and thresholds; the sweep is re-armed.
  void set_config(const Config* config);
  void set_listener(ChatListener listener) { listener_ = std::move(listener); }

  // The chat agent agent_uuid when it can hold sessions: -ENOENT unknown; -EINVAL a voice agent, inactive
  // or archived (the message names it).
  Result<const AgentConfig*> chat_agent(std::string_view agent_uuid) const;

  // POST /v1/chat/session: closes the (customer, agent) session that is not closed, then opens a new one.
  // input_fields_json: a JSON object's text; context: the entries given (the last 5 non-empty kept).
  Result<ChatSessionRow> create_session(std::string_view agent_uuid, std::string_view customer_id,
                                        std::string input_fields_json,
                                        const std::vector<std::string>& context);
  // The session of (customer, agent) that is not closed (active or dormant).
  Result<std::optional<ChatSessionRow>> open_session(std::string_view customer_id,
                                                     std::string_view agent_uuid);

  // A customer message; done runs later on the loop (never from inside this call) with the agent's reply.
  void inbound(ChatInbound request, ChatTurnDone done);
  void support(std::string session_id, ChatSupport request, ChatSupportDone done);
  // POST /v1/chat/session/{id}/inject_context: appends text (non-empty) and keeps the last 5.
  Result<ChatSessionRow> inject_context(std::string_view session_id, std::string text);
  // Legacy pause_session: active → dormant (a dormant one stays so); -EINVAL when closed.
  Result<ChatSessionRow> pause(std::string_view session_id);
  // Legacy send_message with a welcome: the agent's greeting, rendered, stored as the first agent message.
  Result<std::string> welcome(const ChatSessionRow& session);

  // A call placed by offer_call is back (docs/api.md, chat "offer_call"): when its final record is stored —
  // or, for a picked call of a voice agent with analysis when that analysis is over and
  // set_analysis_follows(true) — the session named by its additional_data chat_session_id gets a system
  // message and a context entry, once per call. call_analysis_done is the AnalysisService's done listener.
  void set_analysis_follows(bool follows) { analysis_follows_ = follows; }
  void call_analysis_done(const std::string& call_id);

  // The API's JSON for a session (spec 3.12 ChatSession) and a message (docs/api.md).
  net::JsonPtr session_json(const ChatSessionRow& s);
  static net::JsonPtr message_json(const ChatMessageRow& m);

  // Turns queued or running for a session (tests, the bench).
  size_t queued(std::string_view session_id) const;

 private:
  struct Turn;
  struct Runtime;
  explicit ChatService(ChatContext ctx, ChatLimits limits);

  // Serialisation: job runs when the session's earlier jobs are done; false when the queue is full.
  bool enqueue(const std::string& session_id, std::function<void()> job);
  void job_done(const std::string& session_id);
  // done, run later when called while enqueue() runs a job inside the caller's call.
  template <class T>
  std::function<void(T)> defer_if_sync(std::function<void(T)> done);
  int sync_depth_ = 0;

  void run_inbound(ChatInbound request, ChatTurnDone done);
  void run_tell(std::string session_id, ChatSupport request, ChatSupportDone done);
  void run_close(std::string session_id, ChatSupportDone done);
  // The model turn of session s: the reply stored and done() told; the job ends after it.
  void start_turn(std::shared_ptr<Turn> turn);
  void request_model(std::shared_ptr<Turn> turn);
  void finish_turn(std::shared_ptr<Turn> turn, std::optional<std::string> text,
                   std::optional<std::string> error);
  std::string system_prompt(const AgentConfig& agent, const ChatSessionRow& s) const;
  std::vector<net::ToolSpec> tools(const AgentConfig& agent) const;
  std::string run_tool(Turn& turn, const net::ToolCall& call);
  // Runs every tool of one model response, then asks the model again once the last result is in (a
  // knowledge search answers later when its query must be embedded first).
  void run_tools(std::shared_ptr<Turn> turn, std::vector<net::ToolCall> calls);
  std::string offer_call(Turn& turn, const cJSON* args);
  std::string chat_summary(const std::string& session_id);
  std::shared_ptr<const TimeZone> callee_zone(const std::string& e164);
  void call_finished(const CallRecord& call);
  // The call's note in its chat session (once per call).
  void note_call(const CallRecord& call);

  Result<ChatMessageRow> add_message(const ChatSessionRow& s, std::string role, std::string text,
                                     std::optional<std::string> operator_id = std::nullopt);
  void emit(std::string type, const ChatSessionRow& s);
  void emit_message(const ChatSessionRow& s, const ChatMessageRow& m);
  // Runs fn on the loop soon (through the timer's queue), so done() never runs inside the call.
  void later(std::function<void()> fn);

  // Dormancy.
  void sweep();
  void arm_sweep_at(int64_t wall_ms);
  void rearm_sweep();

  ChatContext ctx_;
  ChatLimits limits_;
  ChatListener listener_;
  std::map<std::string, std::unique_ptr<Runtime>, std::less<>> runtimes_;
  std::unique_ptr<CallTimer> timer_;
  int64_t sweep_at_ms_ = -1;                 // wall time the sweep is armed for; -1 = not armed
  std::vector<std::function<void()>> soon_;  // later()'s queue, run by the timer
  std::shared_ptr<bool> alive_;    // upstream callbacks hold it weakly: they may outlive the service
  int finished_handle_ = 0;        // ctx_.calls' listener; 0 = none
  bool analysis_follows_ = false;  // picked calls are noted when their analysis is over
};

}  // namespace osvi::daemon
