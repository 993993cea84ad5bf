// VirtualTime: timers and scheduled callbacks on a ManualClock (virtual_time.hpp).
#include "virtual_time.hpp"

#include <stdexcept>

namespace osvi::test {

class VirtualTime::Timer final : public daemon::CallTimer {
 public:
  explicit Timer(std::shared_ptr<Slot> slot) : slot_(std::move(slot)) {}
  void arm(int64_t at_us) override { slot_->at = at_us; }

 private:
  std::shared_ptr<Slot> slot_;
};

daemon::CallTimerFactory VirtualTime::timer_factory() {
  return [this](std::function<void()> fire) -> Result<std::unique_ptr<daemon::CallTimer>> {
    auto slot = std::make_shared<Slot>();
    slot->fire = std::move(fire);
    timers_.push_back(slot);
    return std::unique_ptr<daemon::CallTimer>(std::make_unique<Timer>(std::move(slot)));
  };
}

std::function<void(int64_t, std::function<void()>)> VirtualTime::schedule() {
  return [this](int64_t delay_ms, std::function<void()> fn) {
    queue_.emplace(std::pair{now_us() + delay_ms * 1000, seq_++}, std::move(fn));
  };
}

void VirtualTime::advance_ms(int64_t ms) {
  const int64_t target = now_us() + ms * 1000;
  for (int steps = 0;; ++steps) {
    if (steps > 1'000'000) throw std::runtime_error("VirtualTime: a callback storm");
    // The earliest of: a scheduled callback, an armed timer.
    int64_t next = -1;
    if (!queue_.empty()) next = queue_.begin()->first.first;
    std::shared_ptr<Slot> timer;
    for (auto it = timers_.begin(); it != timers_.end();) {
      auto slot = it->lock();
      if (!slot) {
        it = timers_.erase(it);
        continue;
      }
      if (slot->at >= 0 && (next < 0 || slot->at < next)) {
        next = slot->at;
        timer = slot;
      }
      ++it;
    }
    if (next < 0 || next > target) break;
    if (next > now_us()) clock.advance_ms((next - now_us() + 999) / 1000);
    if (timer) {
      timer->at = -1;  // one-shot, as sd-event's
      auto fire = timer->fire;
      fire();
    } else {
      auto node = queue_.extract(queue_.begin());
      node.mapped()();
    }
  }
  if (target > now_us()) clock.advance_ms((target - now_us()) / 1000);
}

}  // namespace osvi::test
