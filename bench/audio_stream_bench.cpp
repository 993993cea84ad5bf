// audio_stream_bench: periods/s through the audio thread unpaced, and heap allocations once streaming.
//
// The devices are alsa-lib's file/null plugins (capture from /dev/zero, playback into /dev/null), defined
// in a configuration appended through ALSA_CONFIG_PATH, so the figure is the cost of alsa-lib's plugin
// calls plus ours per period, without a clock. Allocations are counted by tests/support/alloc_counter (malloc
// & co. wrapped around glibc's __libc_* entry points); the main thread only polls the eventfd and copies from
// the rings while counting, so any allocation in the window comes from the audio thread.
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "alloc_counter.hpp"
#include "osvi/hal/audio_stream.hpp"

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  char dir_template[] = "/tmp/osvi-audio-bench-XXXXXX";
  const char* dir = mkdtemp(dir_template);
  if (dir == nullptr) return 1;
  const std::string conf = std::string(dir) + "/bench.conf";
  if (FILE* f = std::fopen(conf.c_str(), "w")) {
    std::fputs(
        "pcm.bench_cap { type file; slave.pcm null; file \"/dev/null\"; infile \"/dev/zero\"; format raw }\n"
        "pcm.bench_play { type file; slave.pcm null; file \"/dev/null\"; format raw }\n",
        f);
    std::fclose(f);
  }
  setenv("ALSA_CONFIG_PATH", ("/usr/share/alsa/alsa.conf:" + conf).c_str(), 1);

  osvi::hal::AudioStreamOptions o;
  o.capture_device = "bench_cap";
  o.playback_device = "bench_play";
  o.rate = 16000;
  o.period_ms = 20;
  auto created = osvi::hal::AudioStream::create(o);
  if (!created) {
    std::fprintf(stderr, "%s\n", created.error().message.c_str());
    return 1;
  }
  auto& s = **created;
  if (!s.start()) return 1;

  int16_t buf[1024];
  osvi::hal::StreamEvent events[16];
  auto spin = [&](std::chrono::duration<double> d) {
    const auto end = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < end) {
      pollfd pfd{s.event_fd(), POLLIN, 0};
      poll(&pfd, 1, 10);
      s.drain_events(events);
      while (s.read_frame(std::span<int16_t>(buf, s.period_frames()),
                          std::span<int16_t>(buf + s.period_frames(), s.period_frames()))) {
      }
      // Keep the playback side busy too, so the fill path is not the only one measured.
      s.queue_playback(std::span<const int16_t>(buf, 320));
    }
  };
  spin(std::chrono::milliseconds(300));  // open, first periods
  const uint64_t allocs0 = osvi::test::alloc_counts().mallocs;
  const auto st0 = s.stats();
  const auto t0 = std::chrono::steady_clock::now();
  spin(std::chrono::duration<double>(seconds));
  const auto st1 = s.stats();
  const uint64_t allocs1 = osvi::test::alloc_counts().mallocs;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s.stop();
  unlink(conf.c_str());
  rmdir(dir);

  const double periods =
      static_cast<double>(st1.periods + st1.capture_overruns - st0.periods - st0.capture_overruns);
  std::printf("periods/s            %.0f  (%.1f us per 20 ms period, %.0fx real time)\n", periods / elapsed,
              1e6 * elapsed / periods, periods / elapsed * 0.020);
  // The first figure shows the counter works: opening the devices goes through alsa-lib's config code.
  std::printf("allocations before streaming %llu (create, start, open)\n",
              static_cast<unsigned long long>(allocs0));
  std::printf("allocations while streaming  %llu (in %.1f s)\n",
              static_cast<unsigned long long>(allocs1 - allocs0), elapsed);
  std::printf("capture overruns %llu, fills %llu, xruns %llu\n",
              static_cast<unsigned long long>(st1.capture_overruns),
              static_cast<unsigned long long>(st1.fill_periods), static_cast<unsigned long long>(st1.xruns));
  return allocs1 == allocs0 ? 0 : 2;
}
