// CallsHeartbeat: the periodic "calls still live" mark that bounds a crashed call's duration.
#include "osvi/store/heartbeat.hpp"

#include "osvi/base/log.hpp"
#include "osvi/store/store.hpp"

namespace osvi::daemon {

Result<std::unique_ptr<CallsHeartbeat>> CallsHeartbeat::start(EventLoop& loop, Store& store,
                                                              const Clock& clock, int64_t period_ms) {
  if (period_ms <= 0) return make_error("calls heartbeat: the period must be positive");
  std::unique_ptr<CallsHeartbeat> self(new CallsHeartbeat(store, clock, period_ms));
  auto timer =
      loop.add_timer(loop.now_us() + static_cast<uint64_t>(self->period_us_), [h = self.get(), &loop] {
        h->beat();
        EventLoop::set_timer(h->timer_.get(), loop.now_us() + static_cast<uint64_t>(h->period_us_));
      });
  if (!timer) return timer.error();
  self->timer_ = std::move(*timer);
  return self;
}

void CallsHeartbeat::beat() {
  Status s = mark_calls_alive(store_.calls(), store_.meta(), clock_.wall_ms());
  if (!s && !failing_) log::warning("cannot mark the live calls alive: " + s.error().message);
  failing_ = !s;
}

}  // namespace osvi::daemon
