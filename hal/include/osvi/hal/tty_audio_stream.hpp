// TtyAudioStream: one line's call audio on a tty that carries raw s16le mono PCM both ways (the SIM7600's
// audio port after AT+CPCMREG=1, a generic modem's PCM tty), driven by its own audio thread.
//
// The thread follows the real-time rules at the top of audio_stream.hpp (no allocation after start(), no
// locks shared with the loop, no logging; it blocks only in poll() on the tty and the stop eventfd, and in
// the reopen backoff). The loop side never blocks except start() and stop().
//
// Pacing: the module's clock. Every period of capture bytes the tty delivers is one capture frame, and one
// period of playback (queued speech, else silence) is written back for it, so the module's playback buffer
// is fed at exactly the rate it plays. A cushion of `buffer_periods - 1` silent periods is written when the
// tty opens. Without a clock of its own (`pace` > 0: a bench with nothing behind the tty) the thread makes
// one period per `pace` instead, padding missing capture with silence.
//
// Stall: when an open tty delivers no capture byte for `stall_periods` periods, the stream reports
// device_lost (direction capture, -ETIMEDOUT) and keeps listening; bytes arriving again report
// device_back. A tty that vanishes (EOF, EIO, hang-up) or cannot be opened is device_lost with its errno
// and is reopened with backoff, as the ALSA stream does.
//
// Reference alignment: the sample the module is playing when a capture period arrives is the one written
// `TIOCOUTQ` bytes before the end of what we wrote; the capture still queued (FIONREAD plus our partial
// period) is the capture delay. PlaybackHistory turns both into the reference period. Capture and its
// reference go into one ring as one unit (read_frame()), so they cannot come apart — or, with a processor set
// (set_processor(): the calls engine's audio::ChainRunner), to the processor on this thread, which runs the
// line's DSP chain here and hands the loop only its results.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <thread>

#include "osvi/audio/spsc_ring.hpp"
#include "osvi/hal/audio_stream.hpp"
#include "osvi/hal/fd.hpp"
#include "osvi/result.hpp"

namespace osvi::hal {

struct TtyAudioOptions {
  std::string device;      // the PCM tty, e.g. /dev/osvi-sim7600-audio
  int rate = 8000;         // 8000 or 16000, as the module was told (AT+CPCMFRM)
  int period_ms = 20;      // 10..20
  int buffer_periods = 3;  // 2..3: the silence cushion written at open is buffer_periods - 1 periods
  int stall_periods = 10;  // 2..500: no capture for this many periods = stalled (200 ms by default)
  int rt_priority = 0;     // SCHED_FIFO priority 1..99; 0 keeps SCHED_OTHER
  int capture_ring_ms = 500;
  int playback_ring_ms = 1000;
  size_t event_ring = 64;
  std::chrono::milliseconds reopen_backoff_min{100};
  std::chrono::milliseconds reopen_backoff_max{2000};
  // > 0: the tty has no clock behind it; the thread makes one period per `pace` (no stall detection).
  std::chrono::microseconds pace{0};
};

class TtyAudioStream {
 public:
  // Validates the options and sizes every buffer; does not open the tty yet.
  static Result<std::unique_ptr<TtyAudioStream>> create(TtyAudioOptions options);
  ~TtyAudioStream();  // stop()s
  TtyAudioStream(const TtyAudioStream&) = delete;
  TtyAudioStream& operator=(const TtyAudioStream&) = delete;

  // Starts the audio thread, which opens the tty (failures become device_lost events and retries).
  Status start();
  // Asks the thread to stop and joins it (within one poll of at most a period, or one backoff step).
  void stop();
  // As AudioStream::set_processor(): the line's DSP chain runs on this thread (-EBUSY while it runs).
  Status set_processor(PeriodProcessor* processor);

  int event_fd() const { return wake_.fd(); }
  size_t drain_events(std::span<StreamEvent> out);

  // One capture period and the reference period that was playing while it was taken; false when no whole
  // frame is queued. Both spans must hold period_frames() samples.
  bool read_frame(std::span<int16_t> capture, std::span<int16_t> reference);
  size_t frames_available() const { return frames_.readable() / (2 * period_); }

  // Queues speech; returns the count accepted (0 while a stop_playback() is pending).
  size_t queue_playback(std::span<const int16_t> samples);
  size_t playback_queued() const { return playback_.readable(); }
  // Barge-in: drop what is queued; a playback_stopped event follows.
  void stop_playback();
  bool stop_playback_pending() const;

  // periods, played_samples, fill_*, capture_overruns, xruns (playback periods the tty did not take),
  // device_losses (stalls included), reopen_*, events_dropped, sched, device_open.
  AudioStreamStats stats() const;
  size_t period_frames() const { return period_; }
  const TtyAudioOptions& options() const { return opt_; }

 private:
  struct Counters;
  class Worker;
  TtyAudioStream(TtyAudioOptions options, EventFd wake, EventFd stop);
  void push_event(const StreamEvent& event);

  TtyAudioOptions opt_;
  size_t period_ = 0;
  EventFd wake_;                     // thread → loop
  EventFd stop_;                     // loop → thread
  audio::SpscRing<int16_t> frames_;  // [capture period][reference period], one unit per frame
  audio::SpscRing<int16_t> playback_;
  audio::SpscRing<StreamEvent> events_;
  std::unique_ptr<Counters> counters_;
  PeriodProcessor* processor_ = nullptr;  // written only while the thread is stopped
  std::atomic<bool> stop_requested_{false};
  std::atomic<uint32_t> stop_playback_requests_{0};
  std::atomic<uint32_t> stop_playback_done_{0};
  std::thread thread_;  // the one owner of the audio thread; joined by stop()
};

}  // namespace osvi::hal
