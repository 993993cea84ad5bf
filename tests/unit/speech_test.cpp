// Speech (espeak-ng wrapper): renders audible, plausibly long, deterministic speech at call rates.
#include "osvi/speech/speech.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "osvi/speech/speech_worker.hpp"

namespace {

using osvi::daemon::Speech;
using osvi::daemon::SpeechOptions;

double rms(const std::vector<int16_t>& s) {
  double acc = 0;
  for (int16_t v : s) acc += static_cast<double>(v) * v;
  return s.empty() ? 0.0 : std::sqrt(acc / static_cast<double>(s.size()));
}

std::unique_ptr<Speech> make(SpeechOptions o = {}) {
  auto r = Speech::create(std::move(o));
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? std::move(r).value() : nullptr;
}

TEST(Speech, RendersHelloWorldAtCallRates) {
  auto speech = make();
  ASSERT_TRUE(speech);
  EXPECT_EQ(speech->native_rate(), 22050);
  for (int rate : {8000, 16000}) {
    auto pcm = speech->render("hello world", rate);
    ASSERT_TRUE(pcm.ok()) << pcm.error().message;
    const double seconds = static_cast<double>(pcm->size()) / rate;
    EXPECT_GT(seconds, 0.5) << rate;
    EXPECT_LT(seconds, 3.0) << rate;
    EXPECT_GT(rms(*pcm), 300.0) << rate;  // speech, not near-silence
  }
}

// The render child holds none of the parent's pipes, FIFOs or sockets: a FIFO the loop watches, kept alive by
// a child after osvid closed it, left an epoll registration sd-event could not remove (an abort in
// process_epoll). Watched while a long sentence renders: the child is found through /proc and its
// descriptors are compared with the parent's pipe.
TEST(Speech, TheRenderChildHoldsNoneOfTheParentsPipes) {
  auto speech = make();
  ASSERT_TRUE(speech);
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  struct stat pipe_st {};
  ASSERT_EQ(::fstat(p[1], &pipe_st), 0);
  const std::string pipe_name = "pipe:[" + std::to_string(pipe_st.st_ino) + "]";

  std::atomic<bool> done{false};
  std::thread renderer([&] {
    std::string text;
    for (int i = 0; i < 40; ++i) text += "This sentence keeps the render child busy for a while. ";
    auto pcm = speech->render(text, 16000);
    EXPECT_TRUE(pcm.ok());
    done = true;
  });
  // The child of the renderer thread, as /proc lists it; its descriptors read twice, 50 ms apart, so that
  // what it closes first thing after the fork is closed by the second look.
  bool seen_child = false, holds_pipe = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done && std::chrono::steady_clock::now() < deadline && !seen_child) {
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
      std::ifstream children(task.path() / "children");
      pid_t child = 0;
      if (!(children >> child) || child <= 0) continue;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::error_code ec;
      const std::filesystem::path fds = "/proc/" + std::to_string(child) + "/fd";
      if (!std::filesystem::exists(fds, ec)) continue;
      seen_child = true;
      for (const auto& fd : std::filesystem::directory_iterator(fds, ec)) {
        if (std::filesystem::read_symlink(fd.path(), ec).string() == pipe_name) holds_pipe = true;
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  renderer.join();
  ::close(p[0]);
  ::close(p[1]);
  ASSERT_TRUE(seen_child) << "the render child was never seen (rendered too fast?)";
  EXPECT_FALSE(holds_pipe) << "the render child holds the parent's " << pipe_name;
}

TEST(Speech, DurationScalesWithRateExactly) {
  auto speech = make();
  ASSERT_TRUE(speech);
  auto a = speech->render("hello world", 8000);
  auto b = speech->render("hello world", 16000);
  auto native = speech->render("hello world", speech->native_rate());
  ASSERT_TRUE(a.ok() && b.ok() && native.ok());
  // Resampling keeps the length: floor(N * out / in) samples for N native samples.
  EXPECT_EQ(a->size(), native->size() * 8000 / 22050);
  EXPECT_EQ(b->size(), native->size() * 16000 / 22050);
}

TEST(Speech, IsDeterministic) {
  auto speech = make();
  ASSERT_TRUE(speech);
  auto first = speech->render("hello world", 16000);
  // espeak's generator keeps state between utterances: another text in between must not change the result.
  ASSERT_TRUE(speech->render("something else entirely", 16000).ok());
  auto second = speech->render("hello world", 16000);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, *second);
}

// The model server streams start()'s pieces and serves render()-equal audio from its cache: the two must
// agree sample for sample, at the native rate and resampled, and the stream must come in several pieces.
TEST(Speech, StreamGivesRendersSamplesInPieces) {
  auto speech = make();
  ASSERT_TRUE(speech);
  const char* text = "Thank you for calling. How can I help you today? We are open until six.";
  for (const int rate : {24000, 8000, speech->native_rate()}) {
    auto whole = speech->render(text, rate);
    ASSERT_TRUE(whole.ok());
    auto stream = speech->start(text, rate);
    ASSERT_TRUE(stream.ok()) << stream.error().message;
    std::vector<int16_t> streamed;
    int pieces = 0;
    for (;;) {
      const size_t before = streamed.size();
      auto more = (*stream)->next(streamed);
      ASSERT_TRUE(more.ok()) << more.error().message;
      if (streamed.size() > before) ++pieces;
      if (!*more) break;
    }
    EXPECT_EQ(streamed, *whole) << "rate " << rate;
    EXPECT_GT(pieces, 3) << "rate " << rate;
  }
  // Blank text: a stream that ends at once; an unfinished stream is dropped without waiting for the child.
  auto blank = speech->start("  ", 24000);
  ASSERT_TRUE(blank.ok());
  std::vector<int16_t> none;
  auto more = (*blank)->next(none);
  ASSERT_TRUE(more.ok());
  EXPECT_FALSE(*more);
  EXPECT_TRUE(none.empty());
  auto dropped = speech->start(text, 24000);
  ASSERT_TRUE(dropped.ok());
  dropped->reset();
}

TEST(Speech, EmptyTextGivesNoSamples) {
  auto speech = make();
  ASSERT_TRUE(speech);
  for (const char* text : {"", "   \n\t"}) {
    auto pcm = speech->render(text, 16000);
    ASSERT_TRUE(pcm.ok()) << pcm.error().message;
    EXPECT_TRUE(pcm->empty());
  }
}

TEST(Speech, RejectsBadArguments) {
  SpeechOptions slow;
  slow.rate_wpm = 10;
  EXPECT_FALSE(Speech::create(slow).ok());
  SpeechOptions unknown;
  unknown.voice = "no-such-voice-xyz";
  EXPECT_FALSE(Speech::create(unknown).ok());
  SpeechOptions missing;
  missing.data_path = "/nonexistent/osvi-espeak";
  EXPECT_FALSE(Speech::create(missing).ok());
  auto speech = make();
  ASSERT_TRUE(speech);
  EXPECT_FALSE(speech->render("hello", 4000).ok());
  EXPECT_FALSE(speech->render(std::string(Speech::kMaxTextBytes + 1, 'a'), 16000).ok());
}

TEST(Speech, SharesTheGlobalEngineBetweenVoices) {
  SpeechOptions fast;
  fast.rate_wpm = 330;
  auto normal = make();
  auto quick = make(fast);
  ASSERT_TRUE(normal && quick);
  // A different data_path cannot join a live initialisation.
  SpeechOptions other;
  other.data_path = "/tmp";
  EXPECT_FALSE(Speech::create(other).ok());
  auto slow_pcm = normal->render("one two three four five six", 16000);
  auto fast_pcm = quick->render("one two three four five six", 16000);
  auto slow_again = normal->render("one two three four five six", 16000);
  ASSERT_TRUE(slow_pcm.ok() && fast_pcm.ok() && slow_again.ok());
  // Each object re-applies its own rate, whatever the other one set last.
  EXPECT_LT(fast_pcm->size(), slow_pcm->size() * 3 / 4);
  EXPECT_EQ(*slow_pcm, *slow_again);
}

TEST(Speech, WorksAfterTheLastInstanceDies) {
  std::vector<int16_t> before;
  {
    auto speech = make();
    ASSERT_TRUE(speech);
    before = speech->render("hello world", 8000).value();
  }
  auto speech = make();
  ASSERT_TRUE(speech);
  auto after = speech->render("hello world", 8000);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(before, *after);
}

// ---- SpeechWorker: rendering off the loop, with a deadline -----------------------------------------

using osvi::Result;
using osvi::daemon::EventLoop;
using osvi::daemon::SpeechWorker;
using namespace std::chrono_literals;

// A renderer that hangs until released (a wedged espeak), counting what it was asked.
struct Hung {
  std::mutex mu;
  std::condition_variable cv;
  bool released = false;
  std::atomic<int> calls{0};
  SpeechWorker::RenderFn fn() {
    return [this](std::string_view, int rate) -> Result<std::vector<int16_t>> {
      ++calls;
      std::unique_lock lock(mu);
      cv.wait(lock, [this] { return released; });
      return std::vector<int16_t>(static_cast<size_t>(rate / 10), 1000);
    };
  }
  void release() {
    {
      std::lock_guard lock(mu);
      released = true;
    }
    cv.notify_all();
  }
};

// Runs the loop until `stop` holds or 5 s pass; returns the loop's elapsed time.
std::chrono::milliseconds run_until(EventLoop& loop, const std::function<bool()>& stop) {
  const auto t0 = std::chrono::steady_clock::now();
  auto tick = loop.add_post([&] {
    if (stop() || std::chrono::steady_clock::now() - t0 > 5s) loop.exit(0);
  });
  EXPECT_TRUE(tick.ok());
  auto guard = loop.add_timer(loop.now_us() + 5'000'000, [&] { loop.exit(0); });
  // The post source only runs when the loop wakes: a 10 ms heartbeat keeps it looking.
  std::function<void()> beat;
  osvi::daemon::EventSource beat_src;
  beat = [&] {
    auto t = loop.add_timer(loop.now_us() + 10'000, beat);
    if (t) beat_src = std::move(*t);
  };
  beat();
  loop.run();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
}

TEST(SpeechWorker, AHungRendererTimesOutOnTheLoopWhichNeverWaits) {
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop.ok());
  Hung hung;
  auto w = SpeechWorker::create(**loop, hung.fn());
  ASSERT_TRUE(w.ok()) << w.error().message;
  std::optional<Result<std::vector<int16_t>>> got;
  std::chrono::steady_clock::duration waited{};
  int runs = 0, next_runs = 0;
  SpeechWorker::Ticket next;
  const auto t0 = std::chrono::steady_clock::now();
  auto ticket =
      (*w)->render("Sorry, we cannot answer right now.", 16000, 300ms, [&](Result<std::vector<int16_t>> r) {
        ++runs;
        waited = std::chrono::steady_clock::now() - t0;
        got = std::move(r);
        // The renderer comes back later: its late result must be dropped, and it then serves the next text.
        hung.release();
        next = (*w)->render("next", 8000, 2s, [&](Result<std::vector<int16_t>> r2) {
          ++next_runs;
          EXPECT_TRUE(r2.ok());
          if (r2.ok()) {
            EXPECT_EQ(r2->size(), 800u);
          }
        });
      });
  EXPECT_TRUE(ticket.pending());
  run_until(**loop, [&] { return next_runs > 0; });
  ASSERT_TRUE(got.has_value()) << "the loop was never told";
  EXPECT_FALSE(got->ok());
  EXPECT_EQ(got->error().code, -ETIMEDOUT);
  EXPECT_GE(waited, 290ms);
  EXPECT_LT(waited, 2000ms);
  EXPECT_FALSE(ticket.pending());
  EXPECT_EQ(runs, 1) << "the late result is dropped";
  EXPECT_EQ(next_runs, 1);
  EXPECT_EQ(hung.calls.load(), 2);
  EXPECT_EQ((*w)->pending(), 0u);
}

TEST(SpeechWorker, ASlowRendererDeliversInOrderAndACancelledTicketNeverCallsBack) {
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop.ok());
  auto w = SpeechWorker::create(**loop, [](std::string_view text, int) -> Result<std::vector<int16_t>> {
    std::this_thread::sleep_for(50ms);  // slower than a frame, well within the timeout
    return std::vector<int16_t>(text.size(), 7);
  });
  ASSERT_TRUE(w.ok());
  std::vector<size_t> order;
  bool cancelled_ran = false;
  auto a =
      (*w)->render("one", 16000, 2s, [&](Result<std::vector<int16_t>> r) { order.push_back(r->size()); });
  auto b = (*w)->render("dropped", 16000, 2s, [&](Result<std::vector<int16_t>>) { cancelled_ran = true; });
  auto c =
      (*w)->render("three!", 16000, 2s, [&](Result<std::vector<int16_t>> r) { order.push_back(r->size()); });
  b.cancel();
  run_until(**loop, [&] { return order.size() == 2; });
  EXPECT_EQ(order, (std::vector<size_t>{3, 6}));
  EXPECT_FALSE(cancelled_ran);
  // A ticket that outlives its worker cancels harmlessly.
  auto loop2 = EventLoop::create();
  ASSERT_TRUE(loop2.ok());
  auto w2 = SpeechWorker::create(**loop2, [](std::string_view, int) -> Result<std::vector<int16_t>> {
    return std::vector<int16_t>(1, 0);
  });
  ASSERT_TRUE(w2.ok());
  auto late = (*w2)->render("late", 16000, 2s, [&](Result<std::vector<int16_t>>) { cancelled_ran = true; });
  EXPECT_TRUE(late.pending());
  w2->reset();
  EXPECT_FALSE(late.pending());
  late.cancel();
  EXPECT_FALSE(cancelled_ran);
}

}  // namespace
