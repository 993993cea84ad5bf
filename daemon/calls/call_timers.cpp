// The daemon's CallTimer: one sd-event timer per call (calls/include/osvi/calls/call_timers.hpp).
#include "osvi/calls/call_timers.hpp"

namespace osvi::daemon {
namespace {

class LoopCallTimer final : public CallTimer {
 public:
  explicit LoopCallTimer(EventSource source) : source_(std::move(source)) {}
  void arm(int64_t at_us) override {
    if (at_us < 0)
      sd_event_source_set_enabled(source_.get(), SD_EVENT_OFF);
    else
      EventLoop::set_timer(source_.get(), static_cast<uint64_t>(at_us));
  }

 private:
  EventSource source_;
};

}  // namespace

Result<std::unique_ptr<CallTimer>> make_loop_call_timer(EventLoop& loop, std::function<void()> fire) {
  auto timer = loop.add_timer(UINT64_MAX, std::move(fire));
  if (!timer) return timer.error();
  return std::unique_ptr<CallTimer>(std::make_unique<LoopCallTimer>(std::move(*timer)));
}

}  // namespace osvi::daemon
