// Crash recovery's costs: the live-calls heartbeat per beat, the loop's share of a call's recording end
// (commit) against the sync it no longer waits for, and closing a one-hour .part at start-up.
//
//   recovery_bench [history_calls]   (default 10000 finished calls in the database)
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "osvi/audio/recording.hpp"
#include "osvi/base/event_loop.hpp"
#include "osvi/clock.hpp"
#include "osvi/store/recordings.hpp"
#include "osvi/store/store.hpp"
#include "test_support.hpp"

using namespace osvi;
using namespace osvi::daemon;
using Steady = std::chrono::steady_clock;

namespace {

double us_since(Steady::time_point t) {
  return std::chrono::duration<double, std::micro>(Steady::now() - t).count();
}

void report(const char* what, std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) {
    return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
  };
  std::printf("%-46s p50 %8.1f us  p95 %8.1f us  max %8.1f us  (n=%zu)\n", what, pct(0.5), pct(0.95),
              v.back(), v.size());
}

// Built from std::strings, not literals: GCC 12 at -O3 misreads short literal assignments as overflows.
CallRecord call(const std::string& id, int64_t at) {
  static const std::string kAgent("agent_a"), kName("A"), kPhone("+919876543210"), kFrom("+911140000000");
  CallRecord c;
  c.call_id = id;
  c.agent_uuid = kAgent;
  c.agent_name = kName;
  c.phone_number = kPhone;
  c.from_number = kFrom;
  c.created_at_ms = at;
  return c;
}

std::string id_of(int i) {
  char b[40];
  std::snprintf(b, sizeof b, "0190a1b2-c3d4-7e5f-8a9b-%012d", i);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  const int history = argc > 1 ? std::atoi(argv[1]) : 10000;
  test::TempDir dir;
  const std::string rec_dir = dir.file("recordings");
  ::mkdir(rec_dir.c_str(), 0750);
  SystemClock sys;
  auto store = Store::open(StoreOptions{dir.file("osvid.db"), 5000, true}, sys);
  if (!store) return std::fprintf(stderr, "%s\n", store.error().message.c_str()), 1;
  Store& st = **store;
  {
    auto tx = st.database().begin();
    for (int i = 0; i < history; ++i) {
      CallRecord c = call(id_of(i), 1'780'000'000'000 + i);
      c.status = "picked";
      (void)st.calls().insert(c);
    }
    (void)tx->commit();
  }
  std::printf("database: %d finished calls\n", history);

  // The heartbeat: idle (nothing written) and with six live calls (one meta upsert).
  for (int live : {0, 6}) {
    for (int i = 0; i < live; ++i) (void)st.calls().insert(call(id_of(history + i), sys.wall_ms()));
    std::vector<double> t;
    for (int i = 0; i < 2000; ++i) {
      const auto t0 = Steady::now();
      (void)mark_calls_alive(st.calls(), st.meta(), sys.wall_ms());
      t.push_back(us_since(t0));
    }
    report(live ? "heartbeat beat, 6 live calls" : "heartbeat beat, no live call", t);
  }

  // A call's recording end: what the loop spends in commit() against the fdatasync the worker does.
  auto loop = EventLoop::create();
  auto recs = Recordings::create(**loop, st.calls(), {.dir = rec_dir, .sync = {}});
  if (!recs) return std::fprintf(stderr, "%s\n", recs.error().message.c_str()), 1;
  audio::MemorySink sink(1 << 22);
  {
    auto rec = audio::CallRecorder::create(sink, {.call_id = "bench"});
    std::vector<int16_t> a(rec->frame_samples()), b(rec->frame_samples());
    for (int f = 0; f < 50 * 180; ++f) {  // three minutes
      for (size_t i = 0; i < a.size(); ++i) {
        a[i] =
            static_cast<int16_t>(5000 * std::sin(0.05 * static_cast<double>(f * 320 + static_cast<int>(i))));
        b[i] = static_cast<int16_t>(a[i] / 2);
      }
      (void)rec->push(a, b);
    }
    (void)rec->finish();
  }
  std::vector<double> commit_us, sync_us;
  for (int i = 0; i < 20; ++i) {
    auto f = (*recs)->open(id_of(i));
    (void)(*f)->write(sink.bytes());
    {
      // The same sync, timed on its own file, for comparison.
      const std::string other = dir.file("sync-probe");
      FILE* p = std::fopen(other.c_str(), "wb");
      std::fwrite(sink.bytes().data(), 1, sink.bytes().size(), p);
      std::fflush(p);
      const auto t0 = Steady::now();
      ::fdatasync(fileno(p));
      sync_us.push_back(us_since(t0));
      std::fclose(p);
    }
    const auto t0 = Steady::now();
    (*recs)->commit(std::move(*f), 180'000);
    commit_us.push_back(us_since(t0));
    while ((*recs)->pending() > 0) sd_event_run((*loop)->get(), 100'000);
  }
  std::printf("recording: 3 min stereo, %zu bytes\n", sink.bytes().size());
  report("call end on the loop: Recordings::commit", commit_us);
  report("fdatasync of the same file (now on the worker)", sync_us);

  // Start-up: a one-hour .part cut mid-page, closed and registered.
  {
    const std::string id = id_of(history + 100);
    (void)st.calls().insert(call(id, sys.wall_ms()));
    CallRecord c = st.calls().get(id)->value();
    c.status = "picked";
    (void)st.calls().update(c);
    audio::MemorySink hour(1 << 24);
    auto rec = audio::CallRecorder::create(hour, {.call_id = id});
    std::vector<int16_t> a(rec->frame_samples()), b(rec->frame_samples());
    for (int f = 0; f < 50 * 3600; ++f) {
      for (size_t i = 0; i < a.size(); ++i)
        a[i] = static_cast<int16_t>((f * 7 + static_cast<int>(i) * 13) % 4000);
      (void)rec->push(a, b);
    }
    const size_t cut = hour.bytes().size() - 300;
    std::string part_path = rec_dir;
    part_path.append("/").append(id).append(".opus.part");
    test::write_file(part_path, std::string(reinterpret_cast<const char*>(hour.bytes().data()), cut));
    const auto t0 = Steady::now();
    auto done = recover_recordings(st.calls(), rec_dir);
    const double us = us_since(t0);
    std::printf("start-up: closing a 1 h .part (%zu bytes): %.1f ms, %s\n", cut, us / 1000.0,
                done && !done->empty() ? (*done)[0].note.c_str() : "failed");
  }
  return 0;
}
