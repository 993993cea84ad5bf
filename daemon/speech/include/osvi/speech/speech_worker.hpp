// SpeechWorker: local text-to-speech off the control loop, with a deadline the loop keeps.
//
// espeak-ng renders at a few times real time and forks per utterance (speech.hpp); a prompt can take
// hundreds of milliseconds, and a wedged renderer forever. The loop must never wait for it, so render()
// queues the text for one worker thread and returns a Ticket at once; `done` runs later on the loop with
// the samples, or with -ETIMEDOUT when the timeout passes first (the caller then plays a tone: never dead
// air). A result arriving after its timeout is dropped. Destroying a Ticket cancels: `done` never runs.
//
// Threading: render(), Tickets and `done` belong to the loop thread; `render_fn` runs on the worker only,
// one text at a time, in request order.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "osvi/base/event_loop.hpp"
#include "osvi/hal/fd.hpp"
#include "osvi/result.hpp"

namespace osvi::daemon {

class SpeechWorker {
 public:
  using RenderFn = std::function<Result<std::vector<int16_t>>(std::string_view text, int rate)>;
  using Done = std::function<void(Result<std::vector<int16_t>> pcm)>;

  // render_fn: what turns text into samples at `rate` (the App's espeak-ng Speech, created on first use).
  static Result<std::unique_ptr<SpeechWorker>> create(EventLoop& loop, RenderFn render_fn);
  // Cancels what is queued and joins the worker, which first finishes the text it is rendering.
  ~SpeechWorker();
  SpeechWorker(const SpeechWorker&) = delete;
  SpeechWorker& operator=(const SpeechWorker&) = delete;

  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& o) noexcept : owner_(std::move(o.owner_)), id_(o.id_) { o.id_ = 0; }
    Ticket& operator=(Ticket&& o) noexcept;
    ~Ticket() { cancel(); }
    void cancel();
    bool pending() const;

   private:
    friend class SpeechWorker;
    struct Shared;
    Ticket(std::weak_ptr<Shared> owner, uint64_t id) : owner_(std::move(owner)), id_(id) {}
    std::weak_ptr<Shared> owner_;
    uint64_t id_ = 0;
  };

  Ticket render(std::string text, int rate, std::chrono::milliseconds timeout, Done done);
  size_t pending() const;  // requests whose `done` has not run yet

 private:
  struct Job {
    uint64_t id;
    std::string text;
    int rate;
  };
  struct Finished {
    uint64_t id;
    Result<std::vector<int16_t>> pcm;
  };
  SpeechWorker(EventLoop& loop, RenderFn render_fn, hal::EventFd wake);
  void run();
  void on_wake();
  void complete(uint64_t id, Result<std::vector<int16_t>> pcm);

  EventLoop& loop_;
  RenderFn render_fn_;
  hal::EventFd wake_;                       // worker → loop: something finished
  std::shared_ptr<Ticket::Shared> shared_;  // the loop side: what waits for which id
  EventSource wake_source_;
  std::vector<EventSource> retired_;  // timers of finished waits, freed outside their own dispatch
  uint64_t next_id_ = 1;

  std::mutex mu_;  // guards jobs_, finished_ and stop_ (worker ⇄ loop)
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  std::deque<Finished> finished_;
  bool stop_ = false;
  std::thread thread_;  // started last, joined first
};

}  // namespace osvi::daemon
