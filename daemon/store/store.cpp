// Store: opens the database, runs start-up recovery, and hands out the repositories.
#include "osvi/store/store.hpp"

#include <utility>

#include "sqlite.hpp"

namespace osvi::daemon {

using sql::wrap;

Store::Store(std::unique_ptr<Database> db)
    : db_(std::move(db)),
      calls_(*db_),
      agents_(*db_),
      dnd_(*db_),
      campaigns_(*db_),
      dialer_queue_(*db_),
      meta_(*db_),
      outbox_(*db_, meta_),
      post_call_(*db_),
      callbacks_(*db_),
      webhooks_(*db_),
      chat_(*db_, outbox_),
      knowledge_(*db_) {}

Result<std::unique_ptr<Store>> Store::open(const StoreOptions& options, const Clock& clock) {
  auto db = Database::open(options, clock);
  if (!db.ok()) return db.error();
  std::unique_ptr<Store> store(new Store(std::move(*db)));

  // A call row stays in_progress forever if the daemon died during the call; closing it here, with its
  // record queued in the same transaction, is what lets the fleet and the API see an end.
  auto tx = store->db_->begin();
  if (!tx.ok()) return wrap("closing calls left in_progress", tx.error());
  auto ids = close_interrupted_calls(*tx, store->calls_, store->outbox_, store->meta_, clock.wall_ms(),
                                     &store->post_call_);
  if (!ids.ok()) return ids.error();
  if (Status s = tx->commit(); !s.ok()) return wrap("closing calls left in_progress", s.error());
  store->db_->report_.recovered_calls = std::move(*ids);
  store->db_->opened_ = true;
  return store;
}

StoreHealth Store::health() {
  StoreHealth h = db_->health();
  if (auto n = calls_.count(); n.ok()) h.calls_total = *n;
  return h;
}

}  // namespace osvi::daemon
