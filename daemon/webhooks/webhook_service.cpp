// WebhookService: queues each finished call's webhook deliveries once its analysis is over
// (webhook_service.hpp).
#include "osvi/webhooks/webhook_service.hpp"

#include <cerrno>

#include "osvi/base/log.hpp"
#include "osvi/webhooks/payloads.hpp"

namespace osvi::daemon {

Result<std::unique_ptr<WebhookService>> WebhookService::create(WebhookContext ctx) {
  if (ctx.clock == nullptr || ctx.store == nullptr || !ctx.timer)
    return make_error("webhooks: clock, store and timer are required", -EINVAL);
  std::unique_ptr<WebhookService> s(new WebhookService(std::move(ctx)));
  auto timer = s->ctx_.timer([raw = s.get()] { raw->fire(); });
  if (!timer.ok()) return make_error("webhooks: timer: " + timer.error().message, timer.error().code);
  s->timer_ = std::move(timer).value();
  return s;
}

WebhookService::~WebhookService() {
  detach();
}

void WebhookService::set_config(const Config* config) {
  config_ = config;
  if (started_) arm_now();  // jobs that waited for a configuration
}

void WebhookService::attach(AnalysisService& analysis) {
  detach();
  analysis_ = &analysis;
  // Only a wake-up: the work runs from the timer, in completion order with any backlog, never inside the
  // analysis service's own call.
  listener_ = analysis.add_done_listener([this](const std::string&) { wake(); });
}

void WebhookService::detach() {
  if (analysis_ != nullptr) analysis_->remove_done_listener(listener_);
  analysis_ = nullptr;
  listener_ = 0;
}

Status WebhookService::start() {
  started_ = true;
  auto counts = ctx_.store->post_call().counts();
  if (!counts.ok()) return make_error("webhooks: " + counts.error().message, counts.error().code);
  if (counts->webhooks_waiting > 0)
    log::info("webhooks: " + std::to_string(counts->webhooks_waiting) +
              " finished calls wait for their deliveries to be queued (catching up)");
  arm_now();
  return {};
}

void WebhookService::wake() {
  if (started_) arm_now();
}

void WebhookService::arm_now() {
  timer_->arm(ctx_.clock->monotonic_us());
}

void WebhookService::fire() {
  auto handled = run_slice();
  if (!handled.ok()) {
    ++counters_.errors;
    log::error("webhooks: queueing deliveries failed, trying again in " +
               std::to_string(kRetryAfterErrorMs / 1000) + " s: " + handled.error().message);
    timer_->arm(ctx_.clock->monotonic_us() + kRetryAfterErrorMs * 1000);
  }
}

Result<size_t> WebhookService::run_slice() {
  if (config_ == nullptr) return size_t{0};
  const int64_t started_us = ctx_.clock->monotonic_us();
  auto jobs = ctx_.store->post_call().waiting_for_webhooks(kSlice);
  if (!jobs.ok()) return jobs.error();
  size_t handled = 0, queued = 0;
  bool more = jobs->size() == kSlice;
  Status failed;
  for (const PostCallJob& job : *jobs) {
    auto n = queue_call(job.call_id);
    if (!n.ok()) {
      failed = n.error();
      more = false;
      break;
    }
    ++handled;
    queued += *n;
    if (ctx_.clock->monotonic_us() - started_us >= kSliceBudgetUs && handled < jobs->size()) {
      more = true;
      break;
    }
  }
  if (more) arm_now();  // the rest on the next turn, after whatever else the loop has
  if (queued > 0 && ctx_.on_queued) ctx_.on_queued();
  if (!failed.ok()) return failed.error();
  return handled;
}

Result<size_t> WebhookService::queue_call(const std::string& call_id) {
  if (config_ == nullptr) return make_error("webhooks: no configuration yet", -EAGAIN);
  Store& st = *ctx_.store;
  auto job = st.post_call().get(call_id);
  if (!job.ok()) return job.error();
  if (!*job || (*job)->analysis_state == "pending" || (*job)->webhooks_state != "waiting")
    return make_error("webhooks: no job of call " + call_id + " waiting for its deliveries", -ENOENT);
  auto call = st.calls().get(call_id);
  if (!call.ok()) return call.error();
  std::vector<WebhookDelivery> deliveries;
  if (!*call) {
    // The job outlived its call (removed by hand): nothing to describe, and it must not block the queue.
    log::warning("webhooks: call " + call_id + " has a post-call job but no record; nothing to send",
                 {{"CALL_ID", call_id}});
  } else {
    auto turns = st.calls().transcript(call_id);
    if (!turns.ok()) return turns.error();
    const AgentConfig* agent = nullptr;
    for (const AgentConfig& a : config_->agents)
      if (a.agent_uuid == (*call)->agent_uuid) agent = &a;
    const std::string& state = (*job)->analysis_state;
    PayloadOptions opt;
    opt.utc_offset_minutes = config_->site.utc_offset_minutes;
    opt.now_ms = ctx_.clock->wall_ms();
    opt.horizon_s = config_->webhooks.horizon_s;
    deliveries = deliveries_for_call(**call, *turns, agent, state == "done" || state == "failed", opt);
  }
  size_t added = 0;
  Status s = st.database().transaction([&]() -> Status {
    added = 0;
    for (const WebhookDelivery& d : deliveries) {
      auto r = st.webhooks().enqueue(d);
      if (!r.ok()) return r.error();
      if (*r) ++added;
    }
    return st.post_call().mark_webhooks_queued(call_id);
  });
  if (!s.ok()) return s.error();
  ++counters_.calls;
  counters_.deliveries += static_cast<int64_t>(added);
  if (added > 0)
    log::debug("webhooks: " + std::to_string(added) + " deliveries queued for call " + call_id,
               {{"CALL_ID", call_id}});
  return added;
}

}  // namespace osvi::daemon
