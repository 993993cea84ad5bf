// rtp_bench: the RTP media path's cost per call beside the ALSA path's, memory per stream, and allocations
// once streaming.
//
// RTP: `calls` pairs of RtpStreams on 127.0.0.1 talking to each other, each side queueing a tone and reading
// every capture period as the engine would, so each stream's thread does the whole path every 20 ms:
// receive, jitter buffer, decode (or conceal), encode, send, plus RTCP. ALSA: as many hal::AudioStreams over
// alsa-lib's file/null plugins (paced at 20 ms, the audio_stream_bench devices) with the same loop-side work.
// Cost is the process CPU time (getrusage, every thread) over the run divided by the stream-periods done:
// what one call costs the box per 20 ms, loop-side copies included. Memory: heap in use (mallinfo2) after
// create() + start() of every stream, per stream. Allocations: tests/support/alloc_counter over the
// measured window (after a warm-up), which must be zero.
#include <malloc.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "alloc_counter.hpp"
#include "osvi/hal/audio_stream.hpp"
#include "osvi/hal/rtp_stream.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

size_t heap_in_use() {
  return mallinfo2().uordblks;
}

struct Figures {
  double us_per_period = 0;
  double core_pct_per_call = 0;
  uint64_t allocations = 0;
  uint64_t periods = 0;
};

// The loop side of every stream for `seconds`: events drained, capture read, a tone kept queued.
template <class S>
Figures pump(const std::vector<S*>& streams, double warmup, double seconds) {
  const size_t period = streams.front()->period_frames();
  std::vector<int16_t> cap(period), ref(period), tone(period);
  for (size_t i = 0; i < period; ++i)
    tone[i] = static_cast<int16_t>(8000 * std::sin(2 * M_PI * 1000 * static_cast<double>(i) /
                                                   static_cast<double>(streams.front()->options().rate)));
  std::vector<pollfd> fds(streams.size());
  osvi::hal::StreamEvent events[16];
  auto spin = [&](double d) {
    const auto end = Clock::now() + std::chrono::duration<double>(d);
    while (Clock::now() < end) {
      for (size_t i = 0; i < streams.size(); ++i) fds[i] = {streams[i]->event_fd(), POLLIN, 0};
      poll(fds.data(), fds.size(), 10);
      for (S* s : streams) {
        s->drain_events(events);
        while (s->read_frame(cap, ref)) {
        }
        while (s->playback_queued() < 4 * period && s->queue_playback(tone) > 0) {
        }
      }
    }
  };
  spin(warmup);
  uint64_t p0 = 0;
  for (S* s : streams) p0 += s->stats().periods;
  const uint64_t a0 = osvi::test::alloc_counts().mallocs + osvi::test::alloc_counts().news;
  const double c0 = cpu_seconds();
  const auto t0 = Clock::now();
  spin(seconds);
  const double cpu = cpu_seconds() - c0;
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  const uint64_t a1 = osvi::test::alloc_counts().mallocs + osvi::test::alloc_counts().news;
  uint64_t p1 = 0;
  for (S* s : streams) p1 += s->stats().periods;
  Figures f;
  f.periods = p1 - p0;
  f.us_per_period = f.periods ? cpu * 1e6 / static_cast<double>(f.periods) : 0;
  f.core_pct_per_call = 100.0 * cpu / wall / static_cast<double>(streams.size());
  f.allocations = a1 - a0;
  return f;
}

int rtp_run(osvi::hal::RtpCodec codec, int calls, double seconds, bool* ok) {
  using namespace osvi::hal;
  const size_t heap0 = heap_in_use();
  const osvi::test::AllocSnapshot setup;
  std::vector<std::unique_ptr<RtpStream>> owned;
  for (int c = 0; c < calls; ++c) {
    auto sa = RtpSockets::bind("127.0.0.1", 0, 0);
    auto sb = RtpSockets::bind("127.0.0.1", 0, 0);
    if (!sa || !sb) return 1;
    RtpStreamOptions o;
    o.codec = codec;
    o.payload_type = codec == RtpCodec::pcmu ? 0 : 111;
    o.dtmf_payload_type = 101;
    o.rate = codec == RtpCodec::opus ? 16000 : 8000;
    o.remote_ip = "127.0.0.1";
    RtpStreamOptions oa = o, ob = o;
    oa.remote_rtp_port = sb->rtp_port();
    ob.remote_rtp_port = sa->rtp_port();
    auto a = RtpStream::create(oa, std::move(*sa));
    auto b = RtpStream::create(ob, std::move(*sb));
    if (!a || !b) {
      std::fprintf(stderr, "%s\n", (!a ? a.error() : b.error()).message.c_str());
      return 1;
    }
    owned.push_back(std::move(*a));
    owned.push_back(std::move(*b));
  }
  for (auto& s : owned)
    if (!s->start()) return 1;
  const size_t heap1 = heap_in_use();
  const uint64_t setup_allocs = setup.new_delta() + setup.malloc_delta();
  std::vector<RtpStream*> streams;
  for (auto& s : owned) streams.push_back(s.get());
  const Figures f = pump(streams, 0.5, seconds);
  uint64_t lost = 0, concealed = 0;
  for (auto* s : streams) {
    lost += s->rtp_stats().packets_lost;
    concealed += s->rtp_stats().concealed_frames;
  }
  for (auto& s : owned) s->stop();
  std::printf(
      "%-5s RTP  %2zu streams: %6.1f us per 20 ms period, %5.2f %% of a core per call, %7zu bytes heap "
      "per stream (%llu allocations in create + start), %llu allocations in %llu periods streaming (lost "
      "%llu, "
      "concealed %llu)\n",
      std::string(to_string(codec)).c_str(), streams.size(), f.us_per_period, f.core_pct_per_call,
      (heap1 - heap0) / streams.size(), static_cast<unsigned long long>(setup_allocs / streams.size()),
      static_cast<unsigned long long>(f.allocations), static_cast<unsigned long long>(f.periods),
      static_cast<unsigned long long>(lost), static_cast<unsigned long long>(concealed));
  if (f.allocations != 0) *ok = false;
  return 0;
}

int alsa_run(int streams_n, double seconds, bool* ok) {
  using namespace osvi::hal;
  char dir_template[] = "/tmp/osvi-rtp-bench-XXXXXX";
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
  const size_t heap0 = heap_in_use();
  std::vector<std::unique_ptr<AudioStream>> owned;
  for (int i = 0; i < streams_n; ++i) {
    AudioStreamOptions o;
    o.capture_device = "bench_cap";
    o.playback_device = "bench_play";
    o.rate = 16000;
    o.period_ms = 20;
    o.pace = std::chrono::milliseconds(20);  // the null plugin has no clock: real time, as a card would
    auto s = AudioStream::create(o);
    if (!s) return 1;
    owned.push_back(std::move(*s));
  }
  for (auto& s : owned)
    if (!s->start()) return 1;
  std::vector<AudioStream*> streams;
  for (auto& s : owned) streams.push_back(s.get());
  const Figures f = pump(streams, 0.5, seconds);
  const size_t heap1 = heap_in_use();  // after the devices opened (in the thread, during the warm-up)
  for (auto& s : owned) s->stop();
  unlink(conf.c_str());
  rmdir(dir);
  std::printf(
      "ALSA  null %2zu streams: %6.1f us per 20 ms period, %5.2f %% of a core per call, %7zu bytes heap "
      "per stream, %llu allocations in %llu periods\n",
      streams.size(), f.us_per_period, f.core_pct_per_call, (heap1 - heap0) / streams.size(),
      static_cast<unsigned long long>(f.allocations), static_cast<unsigned long long>(f.periods));
  if (f.allocations != 0) *ok = false;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
  const int calls = argc > 2 ? std::atoi(argv[2]) : 4;  // pairs: 2 * calls streams per codec
  bool ok = true;
  if (rtp_run(osvi::hal::RtpCodec::pcmu, calls, seconds, &ok) != 0) return 1;
  if (rtp_run(osvi::hal::RtpCodec::opus, calls, seconds, &ok) != 0) return 1;
  if (alsa_run(2 * calls, seconds, &ok) != 0) return 1;
  return ok ? 0 : 2;
}
