// PagePipe: the ByteSink a call recorder writes on the line's real-time thread; its Ogg pages cross to the
// control loop through a byte ring, and the loop (never the audio thread) writes them to the file.
//
// Threads: write() runs on one producer thread at a time (the CallRecorder's push() on the stream's audio
// thread through ChainRunner, or on the loop for a port without a thread, and its finish() on the loop);
// drain() runs on the loop. Handing the producer role back to the loop needs a happens-before edge:
// ChainRunner::attach_recorder(nullptr) returns once the audio thread is out of push(), and stopping the
// stream joins the thread — the recorder's finish() comes after either.
//
// Real-time rules for write(): no allocation, lock, log or block: each whole page is copied into the
// SpscRing<uint8_t> behind a 4-byte length. It never refuses a page, because a refusal makes the recorder
// build an error message (which allocates) on every later frame: a page that finds the ring full is dropped,
// counted in overruns() and the pipe is failed() — a recording with a hole is not kept. The ring holds four
// seconds of pages at the recording's bitrate and never less than the largest page (ring_bytes_for()), so
// only a loop stalled for seconds loses a recording (pages leave once a second: OggOpusSpec::page_ms).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "osvi/audio/recording.hpp"
#include "osvi/audio/spsc_ring.hpp"

namespace osvi::audio {

class PagePipe final : public ByteSink {
 public:
  // The ring for a recording at `bitrate` bit/s.
  static size_t ring_bytes_for(int bitrate);
  // `out` receives every page, whole and in order, from drain() on the loop; it must outlive the pipe.
  // Allocates the ring: control loop only. (The loop-side page buffer is one per draining thread.)
  PagePipe(ByteSink& out, size_t ring_bytes);
  PagePipe(const PagePipe&) = delete;
  PagePipe& operator=(const PagePipe&) = delete;

  // Producer thread: one page (see above: always true).
  bool write(std::span<const uint8_t> bytes) noexcept override;

  // Loop: moves the whole pages waiting in the ring to `out`. Safe while write() runs on another thread.
  void drain() noexcept;

  // A page was lost (ring full) or `out` refused one: the recording is not whole.
  bool failed() const noexcept { return overruns() > 0 || out_failed_; }
  uint64_t overruns() const noexcept { return overruns_.load(std::memory_order_relaxed); }
  size_t ring_bytes() const noexcept { return ring_.capacity(); }

 private:
  ByteSink& out_;
  SpscRing<uint8_t> ring_;   // per page: its length (4 bytes, little endian), then the page
  size_t pending_len_ = 0;   // loop: a length popped whose page was not visible yet
  bool out_failed_ = false;  // loop
  std::atomic<uint64_t> overruns_{0};
};

}  // namespace osvi::audio
