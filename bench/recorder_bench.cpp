// Call recorder footprint and cost: heap held per CallRecorder, allocations per push, CPU per stereo frame.
//
// Usage: recorder_bench [seconds_of_audio=60]
// Heap bytes come from glibc's mallinfo2() (in-use arena bytes + mmapped blocks, so a large buffer served by
// mmap is counted too); allocation counts from osvi_alloc_counter. Single-threaded, so the main arena sees
// everything. Exits 2 if push() allocated.
#include <malloc.h>
#include <opus.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <vector>

#include "alloc_counter.hpp"
#include "osvi/audio/recording.hpp"
#include "wav.hpp"

namespace {

using namespace osvi::audio;

// Counts bytes without keeping them: what the recorder holds is the question, not the sink.
class NullSink final : public ByteSink {
 public:
  bool write(std::span<const uint8_t> bytes) noexcept override {
    bytes_ += bytes.size();
    ++writes_;
    return true;
  }
  uint64_t bytes_ = 0;
  uint64_t writes_ = 0;
};

long heap_in_use() {
  const struct mallinfo2 m = mallinfo2();
  return static_cast<long>(m.uordblks + m.hblkhd);
}

double thread_cpu_us() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

struct Footprint {
  long held = 0;  // bytes in use after create(), recorder alive
  uint64_t news = 0, mallocs = 0;
};

Footprint measure_create(const RecordingConfig& cfg) {
  NullSink sink;
  const long before = heap_in_use();
  const osvi::test::AllocSnapshot counts;
  auto rec = CallRecorder::create(sink, cfg);
  Footprint f;
  f.held = heap_in_use() - before;
  f.news = counts.new_delta();
  f.mallocs = counts.malloc_delta();
  if (!rec.ok()) {
    std::fprintf(stderr, "create failed: %s\n", rec.error().message.c_str());
    std::exit(1);
  }
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 60;
  const std::vector<int16_t> speech = osvi::test::librivox_speech();
  if (speech.size() < 16000 * 20) {
    std::fprintf(stderr, "speech clip too short\n");
    return 1;
  }

  std::printf("heap held per CallRecorder::create (recorder alive, nothing pushed yet):\n");
  const struct {
    const char* name;
    RecordingConfig cfg;
  } configs[] = {
      {"16 kHz 20 ms 32 kbps", {.rate = 16000, .frame_ms = 20}},
      {"16 kHz 10 ms 32 kbps", {.rate = 16000, .frame_ms = 10}},
      {" 8 kHz 20 ms 24 kbps", {.rate = 8000, .frame_ms = 20, .bitrate = 24000}},
  };
  // The largest part, for the record: libopus's own state, which no muxer can shrink.
  std::printf("  (libopus encoder state alone: stereo %d bytes, mono %d bytes)\n", opus_encoder_get_size(2),
              opus_encoder_get_size(1));
  for (const auto& c : configs) {
    const Footprint f = measure_create(c.cfg);
    std::printf("  %s: %8ld bytes (%.1f KB); operator new %llu, malloc/calloc/realloc %llu\n", c.name, f.held,
                static_cast<double>(f.held) / 1024, static_cast<unsigned long long>(f.news),
                static_cast<unsigned long long>(f.mallocs));
  }

  constexpr size_t kFrame = 320;
  const size_t frames = static_cast<size_t>(seconds) * 50;
  // A 16 kHz call with double talk on every frame (the encoder's worst case), 20 ms frames.
  NullSink sink;
  // Reserved before the heap baseline: the bench's own timing buffer is not the recorder's.
  std::vector<double> per_frame;
  per_frame.reserve(frames);
  const long heap0 = heap_in_use();
  auto rec = CallRecorder::create(sink, {});
  if (!rec.ok()) return 1;
  const size_t span = speech.size() - 2 * kFrame * 250 - kFrame;
  auto caller = [&](size_t f) { return std::span(speech).subspan((f * kFrame) % span, kFrame); };
  auto agent = [&](size_t f) {
    return std::span(speech).subspan((f * kFrame) % span + kFrame * 250, kFrame);
  };
  for (size_t f = 0; f < 100; ++f) {  // warm-up: headers and the first pages
    if (!rec->push(caller(f), agent(f)).ok()) return 1;
  }
  const long heap_warm = heap_in_use() - heap0;
  const osvi::test::AllocSnapshot counts;
  const uint64_t bytes0 = sink.bytes_, writes0 = sink.writes_;
  const double t0 = thread_cpu_us();
  for (size_t f = 100; f < 100 + frames; ++f) {
    const double a = thread_cpu_us();
    if (!rec->push(caller(f), agent(f)).ok()) return 1;
    per_frame.push_back(thread_cpu_us() - a);
  }
  const double total = thread_cpu_us() - t0;
  const uint64_t news = counts.new_delta(), mallocs = counts.malloc_delta();
  const long heap_after = heap_in_use() - heap0;
  if (!rec->finish().ok()) return 1;

  std::sort(per_frame.begin(), per_frame.end());
  const double p50 = per_frame[per_frame.size() / 2];
  const double p99 = per_frame[std::min(per_frame.size() - 1, per_frame.size() * 99 / 100)];
  const double mean = total / static_cast<double>(frames);
  std::printf("\n16 kHz stereo, 20 ms frames, 32 kbps, c5, double talk, %d s of audio:\n", seconds);
  std::printf("  heap held: %ld bytes after 100 warm-up pushes, %ld after %zu more\n", heap_warm, heap_after,
              frames);
  std::printf("  CPU per push: mean %.1f us, p50 %.1f us, p99 %.1f us (%.2f %% of one core)\n", mean, p50,
              p99, mean / 20000 * 100);
  std::printf(
      "  output: %.1f kbps, %llu sink writes (%.2f s of audio per write)\n",
      static_cast<double>(sink.bytes_ - bytes0) * 8 / seconds / 1000,
      static_cast<unsigned long long>(sink.writes_ - writes0),
      static_cast<double>(seconds) / static_cast<double>(std::max<uint64_t>(sink.writes_ - writes0, 1)));
  std::printf("  allocations during pushes: operator new %llu, malloc %llu%s\n",
              static_cast<unsigned long long>(news), static_cast<unsigned long long>(mallocs),
              osvi::test::mallocs_counted() ? "" : " (malloc not counted)");
  return news + mallocs == 0 ? 0 : 2;
}
