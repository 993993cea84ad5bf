// Store: the osvid database and its repositories, one per table group, owned by the app and handed out.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "osvi/clock.hpp"
#include "osvi/result.hpp"
#include "osvi/store/agents.hpp"
#include "osvi/store/callbacks.hpp"
#include "osvi/store/calls.hpp"
#include "osvi/store/campaigns.hpp"
#include "osvi/store/chat.hpp"
#include "osvi/store/database.hpp"
#include "osvi/store/dialer_queue.hpp"
#include "osvi/store/dnd.hpp"
#include "osvi/store/knowledge.hpp"
#include "osvi/store/meta.hpp"
#include "osvi/store/outbox.hpp"
#include "osvi/store/post_call.hpp"
#include "osvi/store/unit_of_work.hpp"
#include "osvi/store/webhooks.hpp"

namespace osvi::daemon {

// Not thread-safe, like the Database it wraps.
class Store {
 public:
  // Opens the database (see Database::open), then closes calls a dead daemon left in_progress and queues
  // their records (close_interrupted_calls), reported in database().open_report().recovered_calls.
  static Result<std::unique_ptr<Store>> open(const StoreOptions& options, const Clock& clock);
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  Database& database() { return *db_; }
  CallsRepo& calls() { return calls_; }
  AgentsRepo& agents() { return agents_; }
  DndRepo& dnd() { return dnd_; }
  CampaignsRepo& campaigns() { return campaigns_; }
  DialerQueue& dialer_queue() { return dialer_queue_; }
  OutboxRepo& outbox() { return outbox_; }
  MetaRepo& meta() { return meta_; }
  PostCallJobsRepo& post_call() { return post_call_; }
  CallbacksRepo& callbacks() { return callbacks_; }
  WebhookDeliveriesRepo& webhooks() { return webhooks_; }
  ChatRepo& chat() { return chat_; }
  KnowledgeRepo& knowledge() { return knowledge_; }

  // The database file's health plus the number of calls.
  StoreHealth health();

 private:
  explicit Store(std::unique_ptr<Database> db);

  std::unique_ptr<Database> db_;  // first: the repositories below refer to it
  CallsRepo calls_;
  AgentsRepo agents_;
  DndRepo dnd_;
  CampaignsRepo campaigns_;
  DialerQueue dialer_queue_;
  MetaRepo meta_;
  OutboxRepo outbox_;  // after meta_, which it keeps its counters in
  PostCallJobsRepo post_call_;
  CallbacksRepo callbacks_;
  WebhookDeliveriesRepo webhooks_;
  ChatRepo chat_;  // after outbox_, which it queues messages on
  KnowledgeRepo knowledge_;
};

}  // namespace osvi::daemon
