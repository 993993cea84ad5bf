// ChatService: sessions, model turns, operator commands and dormancy of chat agents (chat_service.hpp).
#include "osvi/chat/chat_service.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <deque>
#include <set>
#include <utility>

#include "osvi/base/ids.hpp"
#include "osvi/base/log.hpp"
#include "osvi/base/phone.hpp"
#include "osvi/calls/call_text.hpp"
#include "osvi/knowledge/knowledge_service.hpp"
#include "osvi/knowledge/tool.hpp"
#include "osvi/net/text.hpp"

namespace osvi::daemon {
namespace {

using call_text::trim;

std::vector<std::string> context_of(const std::string& json) {
  std::vector<std::string> out;
  net::JsonPtr a = net::json_parse(json, nullptr);
  const cJSON* item = nullptr;
  cJSON_ArrayForEach(item, a.get()) {
    if (cJSON_IsString(item)) out.emplace_back(item->valuestring);
  }
  return out;
}

std::string context_json(const std::vector<std::string>& entries, size_t keep) {
  std::vector<std::string> kept;
  for (const std::string& e : entries) {
    if (!trim(e).empty()) kept.push_back(e);
  }
  if (kept.size() > keep) kept.erase(kept.begin(), kept.end() - static_cast<std::ptrdiff_t>(keep));
  net::JsonPtr a(cJSON_CreateArray());
  for (const std::string& e : kept) cJSON_AddItemToArray(a.get(), cJSON_CreateString(e.c_str()));
  return net::json_print(a.get());
}

std::string string_arg(const cJSON* args, const char* key) {
  const cJSON* v = args ? cJSON_GetObjectItemCaseSensitive(args, key) : nullptr;
  return cJSON_IsString(v) ? v->valuestring : "";
}

// The longest prefix of text at most max_bytes long that does not split a UTF-8 sequence.
std::string utf8_prefix(std::string text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t n = max_bytes;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  text.resize(n);
  return text;
}

// offer_call's bounds: the chat summary a call carries, the reason, and a call's summary coming back.
constexpr size_t kOfferSummaryMessages = 10;
constexpr size_t kOfferSummaryBytes = 2048;
constexpr size_t kOfferReasonBytes = 500;
constexpr size_t kCallNoteSummaryBytes = 1500;

constexpr size_t kMaxStateFieldChars = 1000;
constexpr size_t kMaxStateFields = 50;

}  // namespace

// One session's serialised work: the job running and those waiting.
struct ChatService::Runtime {
  bool busy = false;
  std::deque<std::function<void()>> waiting;
};

// A model turn in progress.
struct ChatService::Turn {
  ChatSessionRow session;
  // A copy: a reload replaces the configuration while the model is still answering.
  std::shared_ptr<const AgentConfig> agent;
  int64_t trigger_id = 0;  // the customer or tell message being answered
  std::vector<net::ChatMessage> messages;
  std::vector<ChatTurn::ToolUse> tools;
  std::vector<int64_t> whispers;  // consumed by this turn
  int rounds = 0;
  int64_t started_us = 0;
  bool help_by_tool = false;  // request_human was called
  // Exactly one runs. Two callbacks rather than one taking a Result: GCC 12 reports a false
  // -Wmaybe-uninitialized when a lambda converts one Result into another.
  std::function<void(ChatTurn)> on_done;
  std::function<void(Error)> on_error;
};

const std::vector<std::string_view>& ChatService::help_phrases() {
  static const std::vector<std::string_view> phrases = {
      "talk to a human",  "speak to a human", "talk to a person", "speak to a person",     "real person",
      "human agent",      "live agent",       "talk to an agent", "speak to an agent",     "talk to someone",
      "speak to someone", "customer care",    "representative",   "connect me to an agent"};
  return phrases;
}

Result<std::unique_ptr<ChatService>> ChatService::create(ChatContext ctx, ChatLimits limits) {
  if (!ctx.config || !ctx.store || !ctx.upstream || !ctx.clock || !ctx.timer)
    return make_error("chat: incomplete context");
  std::unique_ptr<ChatService> s(new ChatService(std::move(ctx), limits));
  auto timer = s->ctx_.timer([p = s.get()] {
    std::vector<std::function<void()>> due;
    due.swap(p->soon_);
    for (auto& fn : due) fn();
    if (p->sweep_at_ms_ >= 0 && p->ctx_.clock->wall_ms() >= p->sweep_at_ms_) p->sweep();
    const int64_t now_us = p->ctx_.clock->monotonic_us();
    if (!p->soon_.empty()) {
      p->timer_->arm(now_us);
    } else if (p->sweep_at_ms_ >= 0) {
      p->timer_->arm(now_us + std::max<int64_t>(0, p->sweep_at_ms_ - p->ctx_.clock->wall_ms()) * 1000);
    } else {
      p->timer_->arm(-1);
    }
  });
  if (!timer) return timer.error();
  s->timer_ = std::move(*timer);
  s->rearm_sweep();
  if (s->ctx_.calls) {
    s->finished_handle_ =
        s->ctx_.calls->add_finished_listener([p = s.get()](const CallRecord& r) { p->call_finished(r); });
  }
  return s;
}

ChatService::ChatService(ChatContext ctx, ChatLimits limits)
    : ctx_(std::move(ctx)), limits_(limits), alive_(std::make_shared<bool>(true)) {}

ChatService::~ChatService() {
  if (ctx_.calls && finished_handle_) ctx_.calls->remove_finished_listener(finished_handle_);
}

void ChatService::set_config(const Config* config) {
  ctx_.config = config;
  sweep_at_ms_ = -1;
  rearm_sweep();
}

Result<const AgentConfig*> ChatService::chat_agent(std::string_view agent_uuid) const {
  for (const AgentConfig& a : ctx_.config->agents) {
    if (a.agent_uuid != agent_uuid) continue;
    const std::string q = net::quoted(agent_uuid);
    if (a.mode != AgentMode::chat)
      return make_error("agent_uuid: " + q + " is a voice agent, not a chat agent");
    if (a.archived) return make_error("agent_uuid: " + q + " is archived");
    if (!a.active) return make_error("agent_uuid: " + q + " is not active");
    return &a;
  }
  return make_error("no agent " + net::quoted(agent_uuid) + " on this box", -ENOENT);
}

void ChatService::later(std::function<void()> fn) {
  soon_.push_back(std::move(fn));
  timer_->arm(ctx_.clock->monotonic_us());
}

// ---------------------------------------------------------------------------------------------------------
// sessions

Result<ChatSessionRow> ChatService::create_session(std::string_view agent_uuid, std::string_view customer_id,
                                                   std::string input_fields_json,
                                                   const std::vector<std::string>& context) {
  auto agent = chat_agent(agent_uuid);
  if (!agent) return agent.error();
  const int64_t now = ctx_.clock->wall_ms();
  ChatSessionRow row;
  row.id = new_uuid_v7(now);
  row.agent_uuid = agent_uuid;
  row.customer_id = customer_id;
  if ((*agent)->prompt.type == PromptType::multi) row.current_state = (*agent)->prompt.initial_state;
  row.input_fields_json = std::move(input_fields_json);
  row.context_json = context_json(context, limits_.max_context_entries);
  row.created_at_ms = row.updated_at_ms = row.last_message_at_ms = now;
  auto prev = ctx_.store->chat().open_for(customer_id, agent_uuid);
  if (!prev) return prev.error();
  auto closed = ctx_.store->chat().create(row);
  if (!closed) return closed.error();
  if (*prev) {
    auto now_closed = ctx_.store->chat().get((*prev)->id);
    if (now_closed && *now_closed) emit("status.changed", **now_closed);
  }
  if (sweep_at_ms_ < 0) arm_sweep_at(now + int64_t{(*agent)->chat.dormant_after_s} * 1000);
  return row;
}

Result<std::optional<ChatSessionRow>> ChatService::open_session(std::string_view customer_id,
                                                                std::string_view agent_uuid) {
  return ctx_.store->chat().open_for(customer_id, agent_uuid);
}

Result<ChatSessionRow> ChatService::inject_context(std::string_view session_id, std::string text) {
  if (trim(text).empty()) return make_error("context: must be a non-empty string");
  auto s = ctx_.store->chat().get(session_id);
  if (!s) return s.error();
  if (!*s) return make_error("no chat session " + net::quoted(session_id), -ENOENT);
  ChatSessionRow row = **s;
  std::vector<std::string> entries = context_of(row.context_json);
  entries.push_back(std::move(text));
  row.context_json = context_json(entries, limits_.max_context_entries);
  row.updated_at_ms = ctx_.clock->wall_ms();
  if (Status st = ctx_.store->chat().update(row); !st) return st.error();
  return row;
}

Result<ChatSessionRow> ChatService::pause(std::string_view session_id) {
  auto s = ctx_.store->chat().get(session_id);
  if (!s) return s.error();
  if (!*s) return make_error("no chat session " + net::quoted(session_id), -ENOENT);
  ChatSessionRow row = **s;
  if (row.status == "closed") return make_error("session " + net::quoted(session_id) + " is closed");
  if (row.status == "dormant") return row;
  row.status = "dormant";
  row.updated_at_ms = ctx_.clock->wall_ms();
  if (Status st = ctx_.store->chat().update(row); !st) return st.error();
  emit("status.changed", row);
  return row;
}

Result<std::string> ChatService::welcome(const ChatSessionRow& session) {
  auto agent = chat_agent(session.agent_uuid);
  if (!agent) return agent.error();
  const std::string text = trim(
      call_text::render_template((*agent)->greeting.text, {std::nullopt, session.input_fields_json, ""}));
  if (text.empty()) return text;
  auto m = add_message(session, "agent", text);
  if (!m) return m.error();
  emit_message(session, *m);
  return text;
}

size_t ChatService::queued(std::string_view session_id) const {
  auto it = runtimes_.find(session_id);
  if (it == runtimes_.end()) return 0;
  return it->second->waiting.size() + (it->second->busy ? 1 : 0);
}

// ---------------------------------------------------------------------------------------------------------
// serialisation

bool ChatService::enqueue(const std::string& session_id, std::function<void()> job) {
  std::unique_ptr<Runtime>& rt = runtimes_[session_id];
  if (!rt) rt = std::make_unique<Runtime>();
  if (rt->waiting.size() + (rt->busy ? 1 : 0) >= limits_.max_queue) return false;
  if (rt->busy) {
    rt->waiting.push_back(std::move(job));
  } else {
    // At once: a loop turn (the timer's 1 ms accuracy) saved on every message. What the job answers
    // synchronously goes through defer_if_sync(), so done() still never runs inside the caller's call.
    rt->busy = true;
    ++sync_depth_;
    job();
    --sync_depth_;
  }
  return true;
}

void ChatService::job_done(const std::string& session_id) {
  auto it = runtimes_.find(session_id);
  if (it == runtimes_.end()) return;
  Runtime& rt = *it->second;
  if (rt.waiting.empty()) {
    runtimes_.erase(it);
    return;
  }
  auto next = std::move(rt.waiting.front());
  rt.waiting.pop_front();
  later(std::move(next));  // not from inside the finishing callback: the stack stays shallow
}

// ---------------------------------------------------------------------------------------------------------
// customer messages

void ChatService::inbound(ChatInbound request, ChatTurnDone done) {
  auto agent = chat_agent(request.agent_uuid);
  if (!agent) {
    later([done, e = agent.error()] { done(e); });
    return;
  }
  if (trim(request.content).empty()) {
    later([done] { done(make_error("content: must be a non-empty string")); });
    return;
  }
  // Resolved now so the queue is the session's; a new session is created here, when there is none.
  std::string session_id;
  if (request.session_id) {
    auto s = ctx_.store->chat().get(*request.session_id);
    Error e;
    bool bad = true;
    if (!s) {
      e = s.error();
    } else if (!*s || (*s)->agent_uuid != request.agent_uuid || (*s)->customer_id != request.customer_id) {
      e = make_error("no chat session " + net::quoted(*request.session_id) + " of this agent and customer",
                     -ENOENT);
    } else if ((*s)->status == "closed") {
      e = make_error("session_id: session " + net::quoted(*request.session_id) + " is closed");
    } else {
      bad = false;
      session_id = (*s)->id;
    }
    if (bad) {
      later([done, e] { done(e); });
      return;
    }
  } else {
    auto open = ctx_.store->chat().open_for(request.customer_id, request.agent_uuid);
    if (!open) {
      later([done, e = open.error()] { done(e); });
      return;
    }
    if (*open) {
      session_id = (*open)->id;
    } else {
      auto created = create_session(request.agent_uuid, request.customer_id, "{}", {});
      if (!created) {
        later([done, e = created.error()] { done(e); });
        return;
      }
      session_id = created->id;
    }
  }
  request.session_id = session_id;
  const bool ok =
      enqueue(session_id, [this, request, done]() mutable { run_inbound(std::move(request), done); });
  if (!ok) {
    later([done, n = limits_.max_queue] {
      done(make_error("this session already has " + std::to_string(n) + " messages waiting for the agent",
                      -EBUSY));
    });
  }
}

template <class T>
std::function<void(T)> ChatService::defer_if_sync(std::function<void(T)> done) {
  // The value rides in a shared_ptr: GCC 12 reports a false -Wmaybe-uninitialized for a Result moved into a
  // lambda's capture.
  return [this, done = std::move(done)](T v) {
    auto box = std::make_shared<T>(std::move(v));
    if (sync_depth_ == 0) return done(std::move(*box));
    later([done, box] { done(std::move(*box)); });
  };
}

void ChatService::run_inbound(ChatInbound request, ChatTurnDone done_now) {
  ChatTurnDone done = defer_if_sync(std::move(done_now));
  const std::string sid = *request.session_id;
  auto fail = [this, sid, done](Error e) {
    done(std::move(e));
    job_done(sid);
  };
  auto agent = chat_agent(request.agent_uuid);
  if (!agent) return fail(agent.error());
  auto s = ctx_.store->chat().get(sid);
  if (!s) return fail(s.error());
  if (!*s || (*s)->status == "closed")
    return fail(make_error("session_id: session " + net::quoted(sid) + " is closed"));
  ChatSessionRow row = **s;
  const ChatSessionRow before = row;
  const int64_t now = ctx_.clock->wall_ms();
  row.status = "active";  // a dormant session resumes with the customer's message
  row.last_message_at_ms = row.updated_at_ms = now;
  const std::string text = net::ascii_lower(request.content);
  for (std::string_view p : help_phrases()) {
    if (text.find(p) != std::string::npos) row.help_requested = true;
  }
  ChatMessageRow msg;
  {
    Status st = ctx_.store->database().transaction([&]() -> Status {
      auto m = add_message(row, "customer", request.content);
      if (!m) return m.error();
      msg = *m;
      return ctx_.store->chat().update(row);
    });
    if (!st) return fail(st.error());
  }
  emit_message(row, msg);
  if (before.status != row.status) emit("status.changed", row);
  if (!before.help_requested && row.help_requested) emit("help.requested", row);
  if (sweep_at_ms_ < 0) arm_sweep_at(now + int64_t{(*agent)->chat.dormant_after_s} * 1000);
  if (row.mode == "support") {  // the operator answers: no agent turn
    ChatTurn t;
    t.session = row;
    done(std::move(t));
    job_done(sid);
    return;
  }
  auto turn = std::make_shared<Turn>();
  turn->session = row;
  turn->agent = std::make_shared<const AgentConfig>(**agent);
  turn->trigger_id = msg.id;
  turn->on_done = [done](ChatTurn t) { done(std::move(t)); };
  turn->on_error = [done](Error e) { done(std::move(e)); };
  start_turn(std::move(turn));
}

// ---------------------------------------------------------------------------------------------------------
// the model turn

std::string ChatService::system_prompt(const AgentConfig& agent, const ChatSessionRow& s) const {
  // {{variables}} come from input_fields, plus customer_id unless input_fields names one.
  net::JsonPtr vars = net::json_parse(s.input_fields_json, nullptr);
  if (!cJSON_IsObject(vars.get())) vars.reset(cJSON_CreateObject());
  if (!cJSON_HasObjectItem(vars.get(), "customer_id"))
    net::json_add_string(vars.get(), "customer_id", s.customer_id);
  std::string p =
      call_text::render_template(call_text::agent_prompt(agent.prompt, s.current_state.value_or("")),
                                 {std::nullopt, net::json_print(vars.get()), ""});
  p += "\n\nYou are chatting with a customer in writing. If they ask for a human, or the request is beyond "
       "what you can do, call the tool request_human.";
  p += " Use set_state_field to note a value the customer gave (a name, an order number).";
  if (ctx_.calls && !agent.chat.voice_agent.empty())
    p += " If the customer would rather talk on the phone, offer a call; only when they agree, call "
         "offer_call "
         "with their number.";
  const std::vector<std::string> context = context_of(s.context_json);
  if (!context.empty()) {
    p += "\n\nContext about this customer:";
    for (const std::string& c : context) p += "\n- " + c;
  }
  if (s.state_fields_json != "{}") p += "\n\nValues noted so far: " + s.state_fields_json;
  return p;
}

// A tool the agent's configuration does not enable is answered as unknown. More tools (the knowledge base,
// offer_call) are rows added here.
namespace {
struct ChatToolDef {
  const char* name;
  const char* description;
  bool (*enabled)(const AgentConfig&);
  std::string (*schema)(const AgentConfig&);
};
const ChatToolDef kChatTools[] = {
    {"request_human",
     "The customer asks for a human, or their request is beyond what you can do: a human operator is "
     "asked to join. Then tell the customer a colleague will join.",
     [](const AgentConfig&) { return true; },
     [](const AgentConfig&) {
       return call_text::string_schema({{"reason", "why, in a few words"}}, {});
     }},
    {"switch_state", "Move the conversation to another state.",
     [](const AgentConfig& a) { return a.prompt.type == PromptType::multi; },
     [](const AgentConfig& a) { return call_text::switch_state_schema(a.prompt); }},
    {"set_state_field", "Note a value the customer gave (e.g. field \"order_id\", value \"A-17\").",
     [](const AgentConfig&) { return true; },
     [](const AgentConfig&) {
       return call_text::string_schema({{"field", nullptr}, {"value", nullptr}}, {"field", "value"});
     }},
    {"offer_call",
     "The customer agreed to a phone call: our voice agent calls them now, knowing this chat. Only after "
     "they agreed; tell them the result.",
     [](const AgentConfig& a) { return !a.chat.voice_agent.empty(); },
     [](const AgentConfig&) {
       return call_text::string_schema(
           {{"phone_number", "the customer's number: international (+...) or national"},
            {"country_code", "ISO 3166-1 alpha-2 country of a national number, e.g. IN"},
            {"reason", "what the call is about, in a sentence"}},
           {"phone_number"});
     }},
};

// offer_call needs the calls engine too: without it the tool is not offered.
bool tool_available(const ChatToolDef& t, const AgentConfig& agent, const CallService* calls) {
  if (!t.enabled(agent)) return false;
  return std::string_view(t.name) != "offer_call" || calls != nullptr;
}
}  // namespace

std::vector<net::ToolSpec> ChatService::tools(const AgentConfig& agent) const {
  std::vector<net::ToolSpec> out;
  for (const ChatToolDef& t : kChatTools) {
    if (tool_available(t, agent, ctx_.calls)) out.push_back({t.name, t.description, t.schema(agent)});
  }
  if (ctx_.knowledge && knowledge::search_tool_offered(agent.knowledge))
    out.push_back(knowledge::search_tool_spec());
  return out;
}

void ChatService::run_tools(std::shared_ptr<Turn> turn, std::vector<net::ToolCall> calls) {
  struct Pending {
    std::vector<net::ToolCall> calls;
    std::vector<std::string> results;
    size_t left = 0;
  };
  auto p = std::make_shared<Pending>();
  p->calls = std::move(calls);
  p->results.resize(p->calls.size());
  // One more than the tools: held until every tool has started, so a search answering at once cannot send
  // the next request before the later tools ran.
  p->left = p->calls.size() + 1;
  std::weak_ptr<bool> alive = alive_;
  auto step = [this, alive, turn, p] {
    if (alive.expired() || --p->left > 0) return;
    for (size_t i = 0; i < p->calls.size(); ++i) {  // in the calls' order, whatever order they finished in
      const net::ToolCall& c = p->calls[i];
      turn->tools.push_back({c.name, c.arguments_json, p->results[i]});
      turn->messages.push_back({"tool", std::move(p->results[i]), {}, c.id});
    }
    request_model(turn);
  };
  for (size_t i = 0; i < p->calls.size(); ++i) {
    const net::ToolCall& c = p->calls[i];
    if (c.name == knowledge::kSearchToolName && ctx_.knowledge &&
        knowledge::search_tool_offered(turn->agent->knowledge)) {
      auto query = knowledge::parse_search_arguments(c.arguments_json);
      if (!query) {
        p->results[i] = query.error().message;
        step();
        continue;
      }
      ctx_.knowledge->search(
          turn->agent->knowledge, *query, std::nullopt, [p, i, step](Result<knowledge::SearchResult> r) {
            p->results[i] =
                r ? knowledge::render_search_result(*r) : knowledge::render_search_error(r.error());
            step();
          });
      continue;
    }
    p->results[i] = run_tool(*turn, c);
    step();
  }
  step();
}

std::string ChatService::run_tool(Turn& turn, const net::ToolCall& call) {
  const ChatToolDef* def = nullptr;
  for (const ChatToolDef& t : kChatTools) {
    if (call.name == t.name && tool_available(t, *turn.agent, ctx_.calls)) def = &t;
  }
  if (!def) return "unknown tool " + call.name;
  net::JsonPtr args = net::json_parse(call.arguments_json.empty() ? "{}" : call.arguments_json, nullptr);
  ChatSessionRow& s = turn.session;
  const std::string name = call.name;
  if (name == "request_human") {
    s.help_requested = true;
    turn.help_by_tool = true;
    return "a human operator has been asked to join";
  }
  if (name == "offer_call") return offer_call(turn, args.get());
  if (name == "switch_state") {
    const std::string to = string_arg(args.get(), "state");
    const auto& states = turn.agent->prompt.states;
    if (std::none_of(states.begin(), states.end(), [&](const PromptState& st) { return st.name == to; }))
      return "unknown state " + to;
    s.current_state = to;
    return "now in state " + to;
  }
  // set_state_field: state_fields[current state or "default"][field] = value.
  const std::string field = trim(string_arg(args.get(), "field"));
  const std::string value = string_arg(args.get(), "value");
  if (field.empty() || net::utf8_length(field) > 64 || net::utf8_length(value) > kMaxStateFieldChars)
    return "refused: field must be 1 to 64 characters, value at most 1000";
  net::JsonPtr fields = net::json_parse(s.state_fields_json, nullptr);
  if (!cJSON_IsObject(fields.get())) fields.reset(cJSON_CreateObject());
  const std::string state = s.current_state.value_or("default");
  cJSON* bucket = cJSON_GetObjectItemCaseSensitive(fields.get(), state.c_str());
  if (!cJSON_IsObject(bucket)) {
    cJSON_DeleteItemFromObjectCaseSensitive(fields.get(), state.c_str());
    bucket = cJSON_AddObjectToObject(fields.get(), state.c_str());
  }
  if (!cJSON_HasObjectItem(bucket, field.c_str()) &&
      cJSON_GetArraySize(bucket) >= static_cast<int>(kMaxStateFields))
    return "refused: too many fields";
  cJSON_DeleteItemFromObjectCaseSensitive(bucket, field.c_str());
  net::json_add_string(bucket, field.c_str(), value);
  s.state_fields_json = net::json_print(fields.get());
  return "noted " + field;
}

// ---------------------------------------------------------------------------------------------------------
// offer_call: chat to call and back

std::string ChatService::chat_summary(const std::string& session_id) {
  auto recent = ctx_.store->chat().recent(session_id, 4 * kOfferSummaryMessages);
  if (!recent) return "";
  // The newest kOfferSummaryMessages lines of the conversation that fit kOfferSummaryBytes, oldest first.
  std::vector<std::string> lines;
  size_t bytes = 0;
  for (auto it = recent->rbegin(); it != recent->rend() && lines.size() < kOfferSummaryMessages; ++it) {
    if (it->role != "customer" && it->role != "agent" && it->role != "operator") continue;
    std::string line = (it->role == "customer" ? "customer: " : "agent: ") + trim(it->text) + "\n";
    if (lines.empty()) line = utf8_prefix(std::move(line), kOfferSummaryBytes);
    if (bytes + line.size() > kOfferSummaryBytes) break;
    bytes += line.size();
    lines.push_back(std::move(line));
  }
  std::string out;
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) out += *it;
  return out;
}

std::shared_ptr<const TimeZone> ChatService::callee_zone(const std::string& e164) {
  const SiteConfig& site = ctx_.config->site;
  if (ctx_.zones) {
    // As the dialler does: one zone for the number is the callee's; several or none leave the site's.
    const std::vector<std::string> zones = ctx_.phone_zones ? ctx_.phone_zones(e164) : phone_time_zones(e164);
    if (zones.size() == 1) {
      if (auto z = ctx_.zones->get(zones.front()); z.ok()) return *z;
    }
    if (auto z = ctx_.zones->get(site.time_zone); z.ok()) return *z;
  }
  return TimeZone::fixed("site", site.utc_offset_minutes * 60);
}

std::string ChatService::offer_call(Turn& turn, const cJSON* args) {
  const ChatSessionRow& s = turn.session;
  const std::string& voice = turn.agent->chat.voice_agent;
  const std::string number = trim(string_arg(args, "phone_number"));
  std::string country = trim(string_arg(args, "country_code"));
  const std::string reason = utf8_prefix(trim(string_arg(args, "reason")), kOfferReasonBytes);
  if (number.empty()) return "not placed: phone_number is required; ask the customer for their number";
  if (country.empty()) country = ctx_.config->site.country;
  for (char& c : country) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (country.size() != 2 || !std::isalpha(static_cast<unsigned char>(country[0])) ||
      !std::isalpha(static_cast<unsigned char>(country[1])))
    return "not placed: country_code must be a two-letter country code such as IN";
  auto e164 =
      ctx_.normalize_phone ? ctx_.normalize_phone(number, country) : normalize_any_phone(number, country);
  if (!e164)
    return "not placed: phone_number " + e164.error().message + "; ask the customer for their number";
  const std::string refused_dnd =
      "not placed: the number " + *e164 + " may not be called (do-not-disturb); do not offer a call again";
  auto dnd = ctx_.store->dnd().is_active(voice, *e164);
  if (!dnd) {
    log::warning("chat " + s.id + ": offer_call: " + dnd.error().message);
    return "not placed: the call could not be checked; try again later";
  }
  if (*dnd) return refused_dnd;

  // Calling hours: the legal floor in the callee's local time, as for campaign dials.
  const ComplianceConfig& floor = ctx_.config->compliance;
  auto zone = callee_zone(*e164);
  const int64_t now = ctx_.clock->wall_ms();
  const int64_t allowed = zone->next_inside(now, floor.calling_hours_start_min, floor.calling_hours_end_min);
  if (allowed != now) {
    if (allowed < 0) return "not placed: calling hours allow no call to this number";
    const LocalTime t = zone->local(allowed);
    char when[48];
    std::snprintf(when, sizeof when, "%04d-%02d-%02d %02d:%02d", t.year, t.month, t.day, t.minute_of_day / 60,
                  t.minute_of_day % 60);
    return "not placed: outside calling hours (" + floor.calling_hours + " in the customer's time zone " +
           zone->name() + "); the earliest allowed time is " + when +
           " their time. No call is scheduled: " + "tell the customer, they may ask again then";
  }

  PlaceCallRequest req;
  req.agent_uuid = voice;
  req.phone_e164 = *e164;
  net::JsonPtr fields = net::json_parse(s.input_fields_json, nullptr);
  for (const char* key : {"person_name", "name"}) {
    const std::string v = trim(string_arg(cJSON_IsObject(fields.get()) ? fields.get() : nullptr, key));
    if (!v.empty()) {
      req.person_name = utf8_prefix(v, 200);
      break;
    }
  }
  net::JsonPtr data(cJSON_CreateObject());
  net::json_add_string(data.get(), "chat_session_id", s.id);
  net::json_add_string(data.get(), "chat_customer_id", s.customer_id);
  net::json_add_string(data.get(), "chat_summary", chat_summary(s.id));
  if (!reason.empty()) net::json_add_string(data.get(), "chat_reason", reason);
  req.additional_data = net::json_print(data.get());
  req.source = "chat";
  auto id = ctx_.calls->place_call(req);
  if (!id) {
    const Error& e = id.error();
    log::warning("chat " + s.id + ": offer_call to " + *e164 + ": " + e.message);
    switch (-e.code) {
      case EPERM:
        return refused_dnd;
      case EBUSY:
        return "not placed: every phone line is busy; suggest trying again in a few minutes";
      case ENODEV:
      case ENOENT:
        return "not placed: phone calls are not available right now";
      default:
        return "not placed: the call could not be placed";
    }
  }
  return "call " + *id + " placed to " + *e164 + ": the customer's phone rings shortly";
}

void ChatService::call_finished(const CallRecord& call) {
  // A picked call of an agent with analysis is noted when its summary exists (call_analysis_done).
  if (analysis_follows_ && call.status == "picked") {
    for (const AgentConfig& a : ctx_.config->agents) {
      if (a.agent_uuid == call.agent_uuid && a.analysis.enabled) return;
    }
  }
  note_call(call);
}

void ChatService::call_analysis_done(const std::string& call_id) {
  auto call = ctx_.store->calls().get(call_id);
  if (!call) {
    log::warning("chat: reading call " + call_id + ": " + call.error().message);
    return;
  }
  if (*call) note_call(**call);
}

void ChatService::note_call(const CallRecord& call) {
  if (!call.additional_data) return;
  net::JsonPtr data = net::json_parse(*call.additional_data, nullptr);
  const std::string sid = string_arg(cJSON_IsObject(data.get()) ? data.get() : nullptr, "chat_session_id");
  if (sid.empty()) return;
  auto s = ctx_.store->chat().get(sid);
  if (!s || !*s) {
    log::warning("chat: call " + call.call_id + " names chat session " + sid + ", which " +
                 (s ? "does not exist" : "cannot be read: " + s.error().message));
    return;
  }
  // The prefix makes the note findable: a call is noted once, even when the finished record and the
  // analysis both report it, or a restart reports it again.
  const std::string prefix = "Phone call " + call.call_id + " ended";
  auto seen = ctx_.store->chat().has_message(sid, "system", prefix);
  if (!seen) {
    log::warning("chat " + sid + ": " + seen.error().message);
    return;
  }
  if (*seen) return;
  std::string text = prefix + ": " + call.status + ", " + std::to_string(call.duration_seconds) + "s.";
  if (call.summary && !trim(*call.summary).empty())
    text += " Summary: " + utf8_prefix(trim(*call.summary), kCallNoteSummaryBytes);
  ChatSessionRow row = **s;
  std::vector<std::string> entries = context_of(row.context_json);
  entries.push_back(text);
  row.context_json = context_json(entries, limits_.max_context_entries);
  row.updated_at_ms = ctx_.clock->wall_ms();
  ChatMessageRow msg;
  Status st = ctx_.store->database().transaction([&]() -> Status {
    auto m = add_message(row, "system", text);
    if (!m) return m.error();
    msg = *m;
    return ctx_.store->chat().update(row);
  });
  if (!st) {
    log::warning("chat " + sid + ": noting call " + call.call_id + ": " + st.error().message);
    return;
  }
  emit_message(row, msg);
}

void ChatService::start_turn(std::shared_ptr<Turn> turn) {
  const ChatSessionRow& s = turn->session;
  turn->messages.push_back({"system", system_prompt(*turn->agent, s), {}, {}});
  auto recent = ctx_.store->chat().recent(s.id, limits_.history_messages);
  if (!recent) {
    finish_turn(turn, std::nullopt, "reading the history: " + recent.error().message);
    return;
  }
  // The newest messages that fit history_bytes, oldest first. Whispers, tool and system rows are not part
  // of the conversation the model sees; tells are standing guidance.
  std::vector<net::ChatMessage> history;
  size_t bytes = 0;
  for (auto it = recent->rbegin(); it != recent->rend(); ++it) {
    const ChatMessageRow& m = *it;
    net::ChatMessage cm;
    if (m.role == "customer") {
      cm = {"user", m.text, {}, {}};
    } else if (m.role == "agent" || m.role == "operator") {
      cm = {"assistant", m.text, {}, {}};
    } else if (m.role == "tell") {
      cm = {"system", "Guidance from a human operator: " + m.text, {}, {}};
    } else {
      continue;
    }
    bytes += cm.content.size();
    if (bytes > limits_.history_bytes && !history.empty()) break;
    history.push_back(std::move(cm));
  }
  turn->messages.insert(turn->messages.end(), history.rbegin(), history.rend());
  auto whispers = ctx_.store->chat().pending_whispers(s.id);
  if (!whispers) {
    finish_turn(turn, std::nullopt, "reading whispers: " + whispers.error().message);
    return;
  }
  for (const ChatMessageRow& w : *whispers) {
    turn->messages.push_back({"system",
                              "Private guidance from a human operator for this reply only; never mention or "
                              "quote it: " +
                                  w.text,
                              {},
                              {}});
    turn->whispers.push_back(w.id);
  }
  // Consumed by this request whatever its outcome: a whisper reaches exactly one model turn.
  if (!turn->whispers.empty()) {
    if (Status st = ctx_.store->chat().consume_whispers(turn->whispers, turn->trigger_id); !st)
      log::warning("chat: consuming whispers of " + s.id + ": " + st.error().message);
  }
  turn->started_us = ctx_.clock->monotonic_us();
  request_model(std::move(turn));
}

void ChatService::request_model(std::shared_ptr<Turn> turn) {
  net::ChatRequest req;
  req.endpoint = to_net_endpoint(turn->agent->llm);  // its timeout bounds the whole turn
  req.messages = turn->messages;
  if (turn->rounds < limits_.max_tool_rounds) req.tools = tools(*turn->agent);
  req.temperature = turn->agent->llm.temperature;
  req.max_tokens = turn->agent->llm.max_tokens;
  ++turn->rounds;
  std::weak_ptr<bool> alive = alive_;
  net::ChatCallbacks cb;
  cb.on_done = [this, alive, turn](net::ChatResult r) {
    if (alive.expired()) return;
    if (!r.tool_calls.empty() && turn->rounds <= limits_.max_tool_rounds) {
      turn->messages.push_back({"assistant", r.text, r.tool_calls, {}});
      run_tools(turn, std::move(r.tool_calls));
      return;
    }
    std::string text = trim(r.text);
    if (text.empty()) {
      finish_turn(turn, std::nullopt, "the model returned no text");
      return;
    }
    finish_turn(turn, std::move(text), std::nullopt);
  };
  cb.on_error = [this, alive, turn](const net::UpstreamError& e) {
    if (alive.expired()) return;
    finish_turn(turn, std::nullopt,
                "llm " + std::string(net::to_string(e.kind)) + (e.message.empty() ? "" : ": " + e.message));
  };
  ctx_.upstream->chat(std::move(req), std::move(cb));
}

void ChatService::finish_turn(std::shared_ptr<Turn> turn, std::optional<std::string> text,
                              std::optional<std::string> error) {
  const std::string sid = turn->session.id;
  const AgentConfig& agent = *turn->agent;
  // The customer always gets an answer: the agent's fallback text when the model failed.
  const std::string reply =
      text ? *text
           : trim(call_text::render_template(agent.fallback.message,
                                             {std::nullopt, turn->session.input_fields_json, ""}));
  if (error) log::warning("chat " + sid + ": " + *error + "; the fallback text was sent");
  // The session as stored now (an operator may have taken over meanwhile) with this turn's changes.
  ChatSessionRow row = turn->session;
  bool help_before = row.help_requested && !turn->help_by_tool;
  if (auto fresh = ctx_.store->chat().get(sid); fresh && *fresh) {
    row = **fresh;
    help_before = row.help_requested;
    row.help_requested = row.help_requested || turn->help_by_tool;
    row.current_state = turn->session.current_state;
    row.state_fields_json = turn->session.state_fields_json;
  }
  const int64_t now = ctx_.clock->wall_ms();
  row.updated_at_ms = row.last_message_at_ms = now;
  ChatMessageRow msg;
  std::vector<ChatMessageRow> tool_rows;
  Status st = ctx_.store->database().transaction([&]() -> Status {
    for (const ChatTurn::ToolUse& t : turn->tools) {
      auto m = add_message(row, "tool", t.name + "(" + t.arguments_json + ") -> " + t.result);
      if (!m) return m.error();
      tool_rows.push_back(*m);
    }
    ChatMessageRow draft;
    draft.session_id = sid;
    draft.role = "agent";
    draft.text = reply;
    draft.latency_ms = (ctx_.clock->monotonic_us() - turn->started_us) / 1000;
    draft.error = error;
    auto m = ctx_.store->chat().add_message(draft, row.agent_uuid, row.customer_id);
    if (!m) return m.error();
    msg = *m;
    return ctx_.store->chat().update(row);
  });
  if (!st) {
    turn->on_error(st.error());
    job_done(sid);
    return;
  }
  for (const ChatMessageRow& t : tool_rows) emit_message(row, t);
  emit_message(row, msg);
  if (!help_before && row.help_requested) emit("help.requested", row);
  ChatTurn out;
  out.session = row;
  out.reply = reply;
  out.error = error;
  out.tools = std::move(turn->tools);
  turn->on_done(std::move(out));
  job_done(sid);
}

// ---------------------------------------------------------------------------------------------------------
// operator commands

void ChatService::support(std::string session_id, ChatSupport request, ChatSupportDone done) {
  auto fail = [this, done](Error e) { later([done, e = std::move(e)] { done(e); }); };
  auto s = ctx_.store->chat().get(session_id);
  if (!s) return fail(s.error());
  if (!*s) return fail(make_error("no chat session " + net::quoted(session_id), -ENOENT));
  ChatSessionRow row = **s;
  const AgentConfig* agent = nullptr;
  for (const AgentConfig& a : ctx_.config->agents) {
    if (a.agent_uuid == row.agent_uuid) agent = &a;
  }
  const std::string cmd = request.command.value_or("");
  if (agent) {
    const ChatConfig& c = agent->chat;
    if ((cmd == "takeover" && !c.takeover) || (cmd == "tell" && !c.tell) || (cmd == "whisper" && !c.whisper))
      return fail(make_error(
          "command: " + net::quoted(cmd) + " is disabled for agent " + net::quoted(row.agent_uuid), -EPERM));
  }
  if (row.status == "closed") return fail(make_error("session " + net::quoted(session_id) + " is closed"));
  const bool has_message = request.message && !trim(*request.message).empty();
  if ((cmd.empty() || cmd == "tell" || cmd == "whisper") && !has_message)
    return fail(make_error("message: required" + (cmd.empty() ? std::string() : " with command " + cmd)));
  const int64_t now = ctx_.clock->wall_ms();
  auto finish = [done](ChatSessionRow r) {
    ChatSupportResult out;
    out.session = std::move(r);
    done(std::move(out));
  };
  if (cmd.empty()) {
    if (row.mode != "support")
      return fail(
          make_error("message: a plain operator message needs support mode (send command takeover first)"));
    row.updated_at_ms = row.last_message_at_ms = now;
    if (row.status == "dormant") row.status = "active";
    ChatMessageRow msg;
    Status st = ctx_.store->database().transaction([&]() -> Status {
      auto m = add_message(row, "operator", *request.message,
                           request.operator_id ? request.operator_id : row.active_human);
      if (!m) return m.error();
      msg = *m;
      return ctx_.store->chat().update(row);
    });
    if (!st) return fail(st.error());
    emit_message(row, msg);
    if ((**s).status != row.status) emit("status.changed", row);
    later([finish, row] { finish(row); });
    return;
  }
  if (cmd == "takeover" || cmd == "end") {
    const std::string before_mode = row.mode;
    if (cmd == "takeover") {
      row.mode = "support";
      row.active_human = request.operator_id.value_or("operator");
    } else {
      row.mode = "ai";
      row.active_human.reset();
      row.help_requested = false;
    }
    row.updated_at_ms = now;
    std::optional<ChatMessageRow> note;
    Status st = ctx_.store->database().transaction([&]() -> Status {
      if (has_message) {  // takeover's optional context: a note in the history, not sent to the customer
        auto m = add_message(row, "system", "takeover by " + *row.active_human + ": " + *request.message,
                             row.active_human);
        if (!m) return m.error();
        note = *m;
      }
      return ctx_.store->chat().update(row);
    });
    if (!st) return fail(st.error());
    if (note) emit_message(row, *note);
    if (before_mode != row.mode) emit("mode.changed", row);
    later([finish, row] { finish(row); });
    return;
  }
  if (cmd == "whisper") {
    auto m = add_message(row, "whisper", *request.message, request.operator_id);
    if (!m) return fail(m.error());
    emit_message(row, *m);
    later([finish, row] { finish(row); });
    return;
  }
  if (cmd == "tell" || cmd == "close") {
    const bool ok = enqueue(session_id, [this, session_id, request, done, cmd]() mutable {
      if (cmd == "tell") {
        run_tell(session_id, std::move(request), done);
      } else {
        run_close(session_id, done);
      }
    });
    if (!ok) {
      fail(make_error(
          "this session already has " + std::to_string(limits_.max_queue) + " messages waiting for the agent",
          -EBUSY));
    }
    return;
  }
  fail(make_error("command: " + net::quoted(cmd) + " is not one of takeover, tell, whisper, end, close"));
}

void ChatService::run_tell(std::string session_id, ChatSupport request, ChatSupportDone done_now) {
  ChatSupportDone done = defer_if_sync(std::move(done_now));
  auto fail = [this, session_id, done](Error e) {
    done(std::move(e));
    job_done(session_id);
  };
  auto s = ctx_.store->chat().get(session_id);
  if (!s) return fail(s.error());
  if (!*s || (*s)->status == "closed")
    return fail(make_error("session " + net::quoted(session_id) + " is closed"));
  auto agent = chat_agent((*s)->agent_uuid);
  if (!agent) return fail(agent.error());
  ChatSessionRow row = **s;
  auto m = add_message(row, "tell", *request.message, request.operator_id);
  if (!m) return fail(m.error());
  emit_message(row, *m);
  auto turn = std::make_shared<Turn>();
  turn->session = row;
  turn->agent = std::make_shared<const AgentConfig>(**agent);
  turn->trigger_id = m->id;
  turn->on_done = [done](ChatTurn t) {
    ChatSupportResult out;
    out.session = std::move(t.session);
    out.reply = std::move(t.reply);
    out.error = std::move(t.error);
    done(std::move(out));
  };
  turn->on_error = [done](Error e) { done(std::move(e)); };
  start_turn(std::move(turn));
}

void ChatService::run_close(std::string session_id, ChatSupportDone done_now) {
  ChatSupportDone done = defer_if_sync(std::move(done_now));
  auto fail = [this, session_id, done](Error e) {
    done(std::move(e));
    job_done(session_id);
  };
  auto s = ctx_.store->chat().get(session_id);
  if (!s) return fail(s.error());
  if (!*s) return fail(make_error("no chat session " + net::quoted(session_id), -ENOENT));
  ChatSessionRow row = **s;
  if (row.status == "closed") return fail(make_error("session " + net::quoted(session_id) + " is closed"));
  const int64_t now = ctx_.clock->wall_ms();
  row.status = "closed";
  row.closed_at_ms = now;
  row.updated_at_ms = now;
  if (Status st = ctx_.store->chat().update(row); !st) return fail(st.error());
  emit("status.changed", row);

  // The summary: one request to the agent's analysis model (its llm when analysis is off).
  const AgentConfig* agent = nullptr;
  for (const AgentConfig& a : ctx_.config->agents) {
    if (a.agent_uuid == row.agent_uuid) agent = &a;
  }
  auto store_summary = [this, session_id, done](std::optional<std::string> summary,
                                                std::optional<std::string> why) {
    auto cur = ctx_.store->chat().get(session_id);
    ChatSupportResult out;
    if (cur && *cur) {
      ChatSessionRow r = **cur;
      r.summary = summary;
      r.summary_error = why;
      if (Status st = ctx_.store->chat().update(r); !st)
        log::warning("chat: storing a summary: " + st.error().message);
      out.session = r;
    }
    out.summary = std::move(summary);
    out.summary_error = std::move(why);
    done(std::move(out));
    job_done(session_id);
  };
  auto history = ctx_.store->chat().recent(session_id, limits_.history_messages);
  std::string transcript;
  if (history) {
    for (const ChatMessageRow& m : *history) {
      if (m.role == "customer" || m.role == "agent" || m.role == "operator")
        transcript += m.role + ": " + m.text + "\n";
    }
  }
  if (!agent || transcript.empty()) {
    later([store_summary, agent] {
      store_summary(std::nullopt, agent ? "the chat has no messages" : "the agent is no longer configured");
    });
    return;
  }
  if (transcript.size() > limits_.history_bytes)
    transcript.erase(0, transcript.size() - limits_.history_bytes);
  const LlmConfig& llm = agent->analysis.enabled ? agent->analysis.llm : agent->llm;
  net::ChatRequest req;
  req.endpoint = to_net_endpoint(llm);
  req.messages = {
      {"system",
       "Summarise this chat between a customer and a support agent in two to four sentences: what the "
       "customer wanted, what was done, and anything left open. Reply with the summary only.",
       {},
       {}},
      {"user", transcript, {}, {}}};
  req.temperature = 0.2;
  req.max_tokens = 300;
  std::weak_ptr<bool> alive = alive_;
  net::ChatCallbacks cb;
  cb.on_done = [alive, store_summary](net::ChatResult r) {
    if (alive.expired()) return;
    std::string text = trim(r.text);
    if (text.empty()) {
      store_summary(std::nullopt, "the model returned no text");
    } else {
      store_summary(std::move(text), std::nullopt);
    }
  };
  cb.on_error = [alive, store_summary](const net::UpstreamError& e) {
    if (alive.expired()) return;
    store_summary(std::nullopt,
                  "llm " + std::string(net::to_string(e.kind)) + (e.message.empty() ? "" : ": " + e.message));
  };
  ctx_.upstream->chat(std::move(req), std::move(cb));
}

// ---------------------------------------------------------------------------------------------------------
// storage and events

Result<ChatMessageRow> ChatService::add_message(const ChatSessionRow& s, std::string role, std::string text,
                                                std::optional<std::string> operator_id) {
  ChatMessageRow m;
  m.session_id = s.id;
  m.role = std::move(role);
  m.text = std::move(text);
  m.operator_id = std::move(operator_id);
  return ctx_.store->chat().add_message(m, s.agent_uuid, s.customer_id);
}

void ChatService::emit(std::string type, const ChatSessionRow& s) {
  if (!listener_) return;
  ChatEvent e{std::move(type), s.id, s.agent_uuid, session_json(s)};
  listener_(e);
}

void ChatService::emit_message(const ChatSessionRow& s, const ChatMessageRow& m) {
  if (!listener_) return;
  ChatEvent e{"message.created", s.id, s.agent_uuid, message_json(m)};
  listener_(e);
}

net::JsonPtr ChatService::session_json(const ChatSessionRow& s) {
  net::JsonPtr o(cJSON_CreateObject());
  net::json_add_string(o.get(), "id", s.id);
  auto agent_id = ctx_.store->chat().agent_id(s.agent_uuid);
  net::json_add_int_or_null(o.get(), "chat_agent_id",
                            agent_id && *agent_id ? std::optional<int64_t>(**agent_id) : std::nullopt);
  cJSON_AddNumberToObject(o.get(), "account_id", 1);
  net::json_add_string(o.get(), "customer_id", s.customer_id);
  net::json_add_string(o.get(), "mode", s.mode);
  cJSON_AddBoolToObject(o.get(), "help_requested", s.help_requested);
  net::json_add_string(o.get(), "status", s.status);
  net::json_add_string_or_null(o.get(), "current_state", s.current_state);
  cJSON* meta = cJSON_AddObjectToObject(o.get(), "metadata");
  for (auto [name, text] : {std::pair<const char*, const std::string*>{"input_fields", &s.input_fields_json},
                            {"state_fields", &s.state_fields_json},
                            {"context", &s.context_json}}) {
    net::JsonPtr v = net::json_parse(*text, nullptr);
    cJSON_AddItemToObject(meta, name, v ? v.release() : cJSON_CreateNull());
  }
  net::json_add_string_or_null(o.get(), "active_human", s.active_human);
  net::json_add_string(o.get(), "created_at", format_utc_micro(s.created_at_ms));
  net::json_add_string(o.get(), "updated_at", format_utc_micro(s.updated_at_ms));
  return o;
}

net::JsonPtr ChatService::message_json(const ChatMessageRow& m) {
  net::JsonPtr o(cJSON_CreateObject());
  cJSON_AddNumberToObject(o.get(), "id", static_cast<double>(m.id));
  net::json_add_string(o.get(), "session_id", m.session_id);
  net::json_add_string(o.get(), "role", m.role);
  net::json_add_string(o.get(), "text", m.text);
  net::json_add_string(o.get(), "created_at", format_utc_micro(m.created_at_ms));
  net::json_add_string_or_null(o.get(), "operator", m.operator_id);
  net::json_add_int_or_null(o.get(), "latency_ms", m.latency_ms);
  net::json_add_string_or_null(o.get(), "error", m.error);
  return o;
}

// ---------------------------------------------------------------------------------------------------------
// dormancy

void ChatService::arm_sweep_at(int64_t wall_ms) {
  if (sweep_at_ms_ >= 0 && sweep_at_ms_ <= wall_ms) return;
  sweep_at_ms_ = wall_ms;
  if (!soon_.empty()) return;  // the timer is due now; it re-arms for the sweep after
  const int64_t delay_ms = std::max<int64_t>(0, wall_ms - ctx_.clock->wall_ms());
  timer_->arm(ctx_.clock->monotonic_us() + delay_ms * 1000);
}

void ChatService::rearm_sweep() {
  for (const AgentConfig& a : ctx_.config->agents) {
    if (a.mode != AgentMode::chat) continue;
    auto oldest = ctx_.store->chat().oldest_active(a.agent_uuid);
    if (!oldest) {
      log::warning("chat: " + oldest.error().message);
      continue;
    }
    if (*oldest) arm_sweep_at(**oldest + int64_t{a.chat.dormant_after_s} * 1000);
  }
}

void ChatService::sweep() {
  sweep_at_ms_ = -1;
  const int64_t now = ctx_.clock->wall_ms();
  for (const AgentConfig& a : ctx_.config->agents) {
    if (a.mode != AgentMode::chat) continue;
    auto rows = ctx_.store->chat().make_dormant(a.agent_uuid, now - int64_t{a.chat.dormant_after_s} * 1000);
    if (!rows) {
      log::warning("chat: " + rows.error().message);
      continue;
    }
    for (const ChatSessionRow& r : *rows) emit("status.changed", r);
  }
  rearm_sweep();
}

}  // namespace osvi::daemon
