// SpeechWorker: the render thread, the loop-side waits with their timeout timers, cancellation by Ticket.
#include "osvi/speech/speech_worker.hpp"

#include <sys/epoll.h>
#include <systemd/sd-event.h>

#include <cerrno>
#include <system_error>

#include "osvi/base/thread_rank.hpp"

namespace osvi::daemon {

// Loop-only state shared with the Tickets, which may outlive the worker.
struct SpeechWorker::Ticket::Shared {
  struct Wait {
    Done done;
    EventSource timer;
  };
  std::map<uint64_t, Wait> waits;
  // Forgets `id` on the loop: its `done` will not run. Returns the wait (empty `done` if there was none).
  Wait take(uint64_t id) {
    auto it = waits.find(id);
    if (it == waits.end()) return {};
    Wait w = std::move(it->second);
    waits.erase(it);
    return w;
  }
};

SpeechWorker::Ticket& SpeechWorker::Ticket::operator=(Ticket&& o) noexcept {
  if (this != &o) {
    cancel();
    owner_ = std::move(o.owner_);
    id_ = o.id_;
    o.id_ = 0;
  }
  return *this;
}

void SpeechWorker::Ticket::cancel() {
  if (id_ == 0) return;
  if (auto s = owner_.lock()) s->take(id_);
  id_ = 0;
  owner_.reset();
}

bool SpeechWorker::Ticket::pending() const {
  auto s = owner_.lock();
  return s && id_ != 0 && s->waits.count(id_) > 0;
}

Result<std::unique_ptr<SpeechWorker>> SpeechWorker::create(EventLoop& loop, RenderFn render_fn) {
  if (!render_fn) return make_error("speech worker: no renderer", -EINVAL);
  auto wake = hal::EventFd::create();
  if (!wake) return wake.error();
  std::unique_ptr<SpeechWorker> w(new SpeechWorker(loop, std::move(render_fn), std::move(*wake)));
  auto src = loop.add_io(w->wake_.fd(), EPOLLIN, [p = w.get()](uint32_t) { p->on_wake(); });
  if (!src) return src.error();
  w->wake_source_ = std::move(*src);
  try {
    w->thread_ = std::thread([p = w.get()] { p->run(); });
  } catch (const std::system_error& e) {
    return make_error(std::string("speech worker: thread: ") + e.what(), -e.code().value());
  }
  return w;
}

SpeechWorker::SpeechWorker(EventLoop& loop, RenderFn render_fn, hal::EventFd wake)
    : loop_(loop),
      render_fn_(std::move(render_fn)),
      wake_(std::move(wake)),
      shared_(std::make_shared<Ticket::Shared>()) {}

SpeechWorker::~SpeechWorker() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    jobs_.clear();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  wake_source_.reset();
}

SpeechWorker::Ticket SpeechWorker::render(std::string text, int rate, std::chrono::milliseconds timeout,
                                          Done done) {
  retired_.clear();
  const uint64_t id = next_id_++;
  auto timer = loop_.add_timer(loop_.now_us() + static_cast<uint64_t>(timeout.count()) * 1000, [this, id] {
    complete(id, make_error("local speech timed out", -ETIMEDOUT));
  });
  if (!timer) {
    // Without a deadline the loop could wait forever: report at once rather than render unwatched.
    Result<std::vector<int16_t>> err = timer.error();
    done(std::move(err));
    return {};
  }
  shared_->waits.emplace(id, Ticket::Shared::Wait{std::move(done), std::move(*timer)});
  {
    std::lock_guard lock(mu_);
    jobs_.push_back({id, std::move(text), rate});
  }
  cv_.notify_one();
  return Ticket(shared_, id);
}

size_t SpeechWorker::pending() const {
  return shared_->waits.size();
}

void SpeechWorker::run() {
  lower_this_thread();  // a render must not delay the loop (thread_rank.hpp)
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
      if (stop_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    Result<std::vector<int16_t>> pcm = render_fn_(job.text, job.rate);
    {
      std::lock_guard lock(mu_);
      finished_.push_back({job.id, std::move(pcm)});
    }
    wake_.signal();
  }
}

void SpeechWorker::on_wake() {
  retired_.clear();
  wake_.drain();
  std::deque<Finished> done;
  {
    std::lock_guard lock(mu_);
    done.swap(finished_);
  }
  // Each `done` may destroy anything, this worker's owner included only after we return: the App owns
  // the worker and outlives every call, so `this` stays valid through the loop.
  for (Finished& f : done) complete(f.id, std::move(f.pcm));
}

void SpeechWorker::complete(uint64_t id, Result<std::vector<int16_t>> pcm) {
  Ticket::Shared::Wait w = shared_->take(id);
  if (!w.done) return;  // cancelled, or the other of result and timeout came first
  // This may run inside the timer's own callback: the timer is freed later, not under its dispatch.
  if (w.timer) {
    sd_event_source_set_enabled(w.timer.get(), SD_EVENT_OFF);
    retired_.push_back(std::move(w.timer));
  }
  Done d = std::move(w.done);
  {
    // Timed out or cancelled while still queued: the worker need not render it any more.
    std::lock_guard lock(mu_);
    std::erase_if(jobs_, [id](const Job& j) { return j.id == id; });
  }
  d(std::move(pcm));
}

}  // namespace osvi::daemon
