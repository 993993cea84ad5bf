// WebhookService: turns each finished call whose analysis is over into its queued webhook deliveries — the
// per-call webhook_url and the agent's active integrations — in one transaction with the post-call job's
// "webhooks queued" mark, then pokes the dispatcher.
//
// Threading: loop thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "osvi/analysis/analysis.hpp"
#include "osvi/calls/call_timers.hpp"
#include "osvi/clock.hpp"
#include "osvi/config/config.hpp"
#include "osvi/result.hpp"
#include "osvi/store/store.hpp"

namespace osvi::daemon {

// The parts the service works with; each must outlive it.
struct WebhookContext {
  const Clock* clock = nullptr;
  Store* store = nullptr;
  CallTimerFactory timer;  // the service's one timer: the next slice of work, or a retry after a store error
  // Called (on the loop, never inside a transaction) after a slice queued deliveries: the app wires it to
  // Dispatcher::poke(). Empty: the dispatcher finds the rows on its own next scan.
  std::function<void()> on_queued;
};

class WebhookService {
 public:
  // Jobs handled per loop turn, at most (each its own short transaction): a backlog of thousands after an
  // outage is worked through in slices, with the loop's other events served between them.
  static constexpr size_t kSlice = 32;
  // A slice also ends after this much wall time, whatever its count.
  static constexpr int64_t kSliceBudgetUs = 5'000;
  // Wait before trying again after the store failed (busy, disk full): the same job would fail at once.
  static constexpr int64_t kRetryAfterErrorMs = 5'000;

  static Result<std::unique_ptr<WebhookService>> create(WebhookContext ctx);
  ~WebhookService();
  WebhookService(const WebhookService&) = delete;
  WebhookService& operator=(const WebhookService&) = delete;

  // Agents (their integrations), the site's offset and the webhooks section come from here; it must outlive
  // the service until the next set_config. Without one nothing is queued (the jobs wait).
  void set_config(const Config* config);
  // Listens to `analysis`: each call it reports done is queued on the next loop turn. The listener is
  // removed by detach() or the destructor; `analysis` must outlive that.
  void attach(AnalysisService& analysis);
  void detach();
  // Catches up every job whose analysis ended and whose deliveries are not queued yet (a crash between the
  // two), oldest first, in slices.
  Status start();
  // Something may be waiting: work through it from the next loop turn (what the analysis listener does).
  void wake();

  // One slice, now: returns how many jobs were handled (queued or found to owe nothing). Used by the timer;
  // public for tests.
  Result<size_t> run_slice();
  // Queues one call's deliveries and marks its job, in one transaction; returns the deliveries newly queued
  // (a replay queues none: (call_id, kind, integration) is unique). -ENOENT: no job of that call waiting.
  Result<size_t> queue_call(const std::string& call_id);

  struct Counters {
    int64_t calls = 0, deliveries = 0, errors = 0;
  };
  const Counters& counters() const { return counters_; }

 private:
  explicit WebhookService(WebhookContext ctx) : ctx_(std::move(ctx)) {}
  void fire();
  void arm_now();

  WebhookContext ctx_;
  const Config* config_ = nullptr;
  std::unique_ptr<CallTimer> timer_;
  AnalysisService* analysis_ = nullptr;
  int listener_ = 0;
  bool started_ = false;
  Counters counters_;
};

}  // namespace osvi::daemon
