// Repository of chat sessions and their messages (migration 7); every message is queued on the outbox too.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"

namespace osvi::daemon {

class Database;
class OutboxRepo;

// mode: ai | support. status: active | dormant | closed. JSON columns hold compact JSON text: input_fields
// an object, state_fields an object (state name → {field: value}), context an array of at most 5 strings.
struct ChatSessionRow {
  std::string id;  // UUID
  std::string agent_uuid, customer_id;
  std::string mode = "ai";
  std::string status = "active";
  bool help_requested = false;
  std::optional<std::string> current_state;  // multi-prompt agents only
  std::string input_fields_json = "{}";
  std::string state_fields_json = "{}";
  std::string context_json = "[]";
  std::optional<std::string> active_human;
  int64_t created_at_ms = 0, updated_at_ms = 0, last_message_at_ms = 0;
  std::optional<int64_t> closed_at_ms;
  std::optional<std::string> summary;
  std::optional<std::string> summary_error;  // why summary is null on a closed session
  bool operator==(const ChatSessionRow&) const = default;
};

// role: customer | agent | operator | whisper | tell | system | tool.
struct ChatMessageRow {
  int64_t id = 0;
  std::string session_id, role, text;
  int64_t created_at_ms = 0;
  std::optional<std::string> operator_id;  // operator, whisper, tell: who sent it
  std::optional<int64_t> latency_ms;       // agent replies: the model's time
  std::optional<std::string> error;        // agent replies that are the fallback: why the model failed
  std::optional<int64_t> consumed_by;      // whispers: the customer/tell message whose model turn used it
  bool operator==(const ChatMessageRow&) const = default;
};

inline constexpr std::string_view kOutboxKindChatMessage = "chat_message";

class ChatRepo {
 public:
  ChatRepo(Database& db, OutboxRepo& outbox) : db_(db), outbox_(outbox) {}

  // Closes every session of (customer_id, agent_uuid) that is not closed (summary_error "superseded"), then
  // inserts row, in one transaction. Returns the ids closed.
  Result<std::vector<std::string>> create(const ChatSessionRow& row);
  Result<std::optional<ChatSessionRow>> get(std::string_view id);
  // The session of (customer, agent) that is not closed (active or dormant), if any.
  Result<std::optional<ChatSessionRow>> open_for(std::string_view customer_id, std::string_view agent_uuid);
  Result<std::vector<ChatSessionRow>> open_for_customer(std::string_view customer_id);
  // Writes every column but id, agent_uuid, customer_id and created_at.
  Status update(const ChatSessionRow& row);

  // Inserts the message (id and created_at are the repository's: created_at = now) and queues it on the
  // outbox (topic "events", kind chat_message, key "chat_message:<id>") in the same transaction.
  Result<ChatMessageRow> add_message(const ChatMessageRow& row, std::string_view agent_uuid,
                                     std::string_view customer_id);
  // The last max_messages messages of the session, oldest first.
  Result<std::vector<ChatMessageRow>> recent(std::string_view session_id, size_t max_messages);
  // Whispers no model turn has used yet, oldest first.
  Result<std::vector<ChatMessageRow>> pending_whispers(std::string_view session_id);
  Status consume_whispers(const std::vector<int64_t>& ids, int64_t by_message_id);
  // Whether the session has a message of role whose text starts with prefix (a phone call's note, written
  // once per call: its text starts with the call id).
  Result<bool> has_message(std::string_view session_id, std::string_view role, std::string_view prefix);

  struct MessagePage {
    std::vector<ChatMessageRow> rows;  // oldest first
    int64_t total_count = 0;
  };
  Result<MessagePage> messages(std::string_view session_id, int64_t page, int64_t per_page);

  struct Filter {
    std::vector<std::string> agent_uuids;  // any of; empty = all
    std::optional<std::string> status, mode, customer_id;
    std::optional<bool> help_requested;
    int64_t page = 1, per_page = 25;
  };
  struct Stats {
    int64_t total = 0, active = 0, dormant = 0, closed = 0, help_requested = 0;
  };
  struct Page {
    std::vector<ChatSessionRow> rows;  // help requested first, then most recently updated
    int64_t total_count = 0;
    Stats stats;  // over agent_uuids only (the other filters do not narrow the cards)
  };
  Result<Page> list(const Filter& filter);

  // Active sessions of agent_uuid whose last message is at or before before_ms become dormant (updated_at =
  // now); returns them as they are now.
  Result<std::vector<ChatSessionRow>> make_dormant(std::string_view agent_uuid, int64_t before_ms);
  // The earliest last message of an active session of agent_uuid, none when it has none.
  Result<std::optional<int64_t>> oldest_active(std::string_view agent_uuid);
  // The agents table's numeric id (the API's chat_agent_id), none for an unknown agent.
  Result<std::optional<int64_t>> agent_id(std::string_view agent_uuid);

 private:
  Database& db_;
  OutboxRepo& outbox_;
};

}  // namespace osvi::daemon
