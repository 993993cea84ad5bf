// AudioStream: one line's ALSA capture + playback pair, driven by its own real-time audio thread.
//
// Real-time rules for the audio thread (the project rule, PipeWire style):
//   - no allocation: every buffer is sized in start(); the thread only copies into it;
//   - no locks shared with the control loop: audio crosses through SpscRing<int16_t>, events through an
//     SpscRing<StreamEvent>, requests and counters through std::atomic;
//   - no logging: what happened is an event or a counter; the loop decides what to log;
//   - no blocking other than the PCM calls (snd_pcm_readi/writei). Two documented exceptions, both outside
//     steady streaming: the reopen backoff waits on a stop eventfd (ppoll), and the optional `pace` mode
//     for clockless devices sleeps until the next period deadline (clock_nanosleep).
//   (Re)opening a device runs alsa-lib's configuration code, which allocates: that happens only when the
//   device is (re)opened, never per period.
//
// Control loop side: watch event_fd() (readable = something happened: a period of audio arrived or an event
// was queued), then call drain_events() and read_frame() until it returns false. Nothing here knows
// sd-event; every loop-side call is non-blocking except start() and stop().
//
// Processing on the audio thread (issue 18): with a PeriodProcessor set (set_processor(), before start()),
// the thread hands each captured period and its reference to the processor right where it would have pushed
// them into the capture ring, then wakes the loop as before; read_frame() then finds nothing. The calls
// engine sets its audio::ChainRunner there, so the line's whole DSP chain (echo canceller, preprocessing,
// VAD/endpointer, DTMF, call progress, AMD, the recorder's encode) runs on this thread under these rules, and
// the loop only receives the results. Without a processor (the line diagnostics, the tests) the raw periods
// cross through the ring as before. TtyAudioStream and RtpStream have the same hook.
//
// A captured period and its reference cross to the loop as one ring entry, published by one index store:
// the loop sees both or neither, so a thread preempted mid-hand-over cannot leave the loop pairing a capture
// period with another period's reference (which the echo canceller would then follow for the rest of the
// call).
//
// Reference alignment (for the echo canceller): the thread keeps a history of every sample it wrote to
// playback, indexed by W = the total count written. Right after a capture period is read it asks ALSA for
// the playback delay Dp (written but not yet heard) and the capture delay Dc (taken but not yet read).
// The last captured sample was taken Dc frames ago, when the line was playing sample W - 1 - Dp - Dc, so
// the reference frame for capture samples [0, P) is history[W - Dp - Dc - P, W - Dp - Dc). Samples older
// than the history (or before the first write) are silence. Both directions are assumed to run on one
// clock (one card, one modem); drift between different cards is the echo canceller's problem.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "osvi/audio/period_processor.hpp"
#include "osvi/audio/spsc_ring.hpp"
#include "osvi/hal/fd.hpp"
#include "osvi/result.hpp"

namespace osvi::hal {

// Runs on a stream's real-time thread once per captured period when set (see above).
using PeriodProcessor = audio::PeriodProcessor;

struct AudioStreamOptions {
  std::string capture_device = "default";   // ALSA PCM name; may equal playback_device
  std::string playback_device = "default";  // ALSA PCM name
  int rate = 16000;                         // 8000 or 16000
  int period_ms = 20;                       // 10..20
  int buffer_periods = 3;                   // 2..3: the ALSA buffer, so the added latency stays small
  int channels = 1;              // channels the device is opened with (a multichannel card: all of them)
  int channel = 0;               // our line's channel among them: picked on capture, filled on playback
  int rt_priority = 0;           // SCHED_FIFO priority 1..99; 0 keeps SCHED_OTHER
  int capture_ring_ms = 1000;    // capture and reference rings (the loop reads every ~20 ms)
  int playback_ring_ms = 10000;  // queued speech the loop may push ahead
  size_t event_ring = 64;        // pending events; more are counted as events_dropped
  std::chrono::milliseconds reopen_backoff_min{100};   // after a device loss: 100 ms doubling ...
  std::chrono::milliseconds reopen_backoff_max{5000};  // ... up to 5 s
  // 0: the device's clock paces the thread (every real card). > 0: the device has no clock (alsa-lib's
  // file/null plugins, simulations) and the thread waits this long per period instead of spinning.
  std::chrono::microseconds pace{0};
  // Non-empty: an ALSA configuration snippet (e.g. "pcm.x { type file ... }") that defines the device
  // names above. The PCMs are then opened with snd_pcm_open_lconf() against this text alone, not the
  // global configuration, so a simulated line can describe its PCM without touching the box's asoundrc.
  std::string alsa_config;
};

enum class StreamDirection : uint8_t { capture, playback, both };
enum class SchedPolicy : uint8_t { none, other, fifo };  // none: the thread is not running

enum class StreamEventKind : uint8_t {
  opened,            // first successful open (both PCMs)
  xrun,              // overrun (capture) or underrun (playback), recovered with snd_pcm_recover
  suspended,         // the device was suspended (-ESTRPIPE) and recovered
  device_lost,       // open failed or the device vanished: the thread retries with backoff
  device_back,       // reopened after device_lost
  playback_drained,  // the playback ring ran empty and everything queued was heard; `played` samples
  playback_stopped,  // stop_playback() done: `played` samples heard, `dropped` never played
  dtmf,              // a digit the transport signalled out of band (RTP telephone-event): `digit`
};

struct StreamEvent {
  StreamEventKind kind = StreamEventKind::opened;
  StreamDirection direction = StreamDirection::both;
  int32_t error = 0;  // negative errno for xrun/suspended/device_lost
  uint64_t played = 0;
  uint64_t dropped = 0;
  char digit = 0;  // dtmf: 0-9 * # A-D
};

// Counters, readable from the loop at any time (each one is a relaxed atomic snapshot).
struct AudioStreamStats {
  uint64_t periods = 0;           // capture periods pushed (each with its reference, as one entry)
  uint64_t played_samples = 0;    // queued samples written to playback
  uint64_t fill_periods = 0;      // playback periods that needed silence because the ring ran short
  uint64_t fill_samples = 0;      // silence samples written for that reason
  uint64_t capture_overruns = 0;  // capture periods dropped because the loop did not read in time
  uint64_t xruns = 0;
  uint64_t suspends = 0;
  uint64_t recoveries = 0;  // successful snd_pcm_recover calls
  uint64_t device_losses = 0;
  uint64_t reopen_attempts = 0;  // every open attempt after the first
  uint64_t reopens = 0;          // successful reopens
  uint64_t events_dropped = 0;
  SchedPolicy sched = SchedPolicy::none;
  int sched_priority = 0;
  bool device_open = false;
  bool plug_fallback = false;     // a raw device refused our format and was reopened through plug
  uint64_t hw_period_frames = 0;  // what ALSA granted (we always move period_frames() at a time)
  uint64_t hw_buffer_frames = 0;
};

// What the playback side wrote, indexed by the total count written; computes reference frames.
// Used only by the audio thread; public so the alignment model is testable without a sound card.
class PlaybackHistory {
 public:
  explicit PlaybackHistory(size_t min_capacity);
  void append(std::span<const int16_t> written);
  uint64_t written() const { return written_; }
  // Fills `out` with the samples that were playing while the capture frame of out.size() samples was
  // taken, given the playback and capture delays in frames at the moment the frame was read.
  void reference(int64_t playback_delay, int64_t capture_delay, std::span<int16_t> out) const;

 private:
  std::vector<int16_t> buf_;
  uint64_t written_ = 0;
};

inline constexpr const char* kAlsaSoname = "libasound.so.2";

// alsa-lib is opened (dlopen) by the first AudioStream::create, which fails with -ELIBACC naming the library
// when it is missing (issue 18: an idle box does not map it). load_alsa_library opens it for good, once per
// process: the first call decides, later ones (and every create) return its outcome, so tests pass a missing
// soname first to see the error path.
Status load_alsa_library(const char* soname = kAlsaSoname);
// For the configuration check of a line whose audio is ALSA: opens libasound.so.2 and closes it again, so a
// box that never places a call does not keep it mapped (once a stream has opened it, that outcome is
// returned). -ELIBACC when it cannot be opened.
Status check_alsa_library();

class AudioStream {
 public:
  // Validates the options and sizes every buffer; does not touch the devices yet.
  static Result<std::unique_ptr<AudioStream>> create(AudioStreamOptions options);
  ~AudioStream();  // stop()s
  AudioStream(const AudioStream&) = delete;
  AudioStream& operator=(const AudioStream&) = delete;

  // Starts the audio thread, which opens the devices (failures become device_lost events and retries).
  Status start();
  // Asks the thread to stop and joins it: it exits within one period or one backoff step.
  void stop();
  // The processor the thread runs on each captured period instead of queueing it (null: queue it), from the
  // next start(); it must outlive the thread (stop() joins it). -EBUSY while the thread runs.
  Status set_processor(PeriodProcessor* processor);

  int event_fd() const { return wake_.fd(); }
  // Clears the eventfd, then moves queued events into `out`; returns the count.
  size_t drain_events(std::span<StreamEvent> out);

  // One captured period and the reference aligned to it (both period_frames() long); false when no whole
  // period waits or a span has the wrong size.
  bool read_frame(std::span<int16_t> capture, std::span<int16_t> reference);
  size_t frames_available() const { return frames_.readable() / (2 * period_); }

  // Queues speech; returns the count accepted (less when the ring is full, 0 while a stop_playback() is
  // still pending, so audio meant to follow a barge-in is not discarded with what preceded it).
  size_t queue_playback(std::span<const int16_t> samples);
  size_t playback_queued() const { return playback_.readable(); }
  // Barge-in: drop what is queued here and in the ALSA buffer at once; a playback_stopped event follows.
  void stop_playback();
  bool stop_playback_pending() const;

  AudioStreamStats stats() const;
  size_t period_frames() const { return period_; }
  const AudioStreamOptions& options() const { return opt_; }

  // Fault injection for tests and field diagnostics: the next PCM call in that direction behaves as if
  // ALSA had returned `negative_errno` (-EPIPE xrun, -ESTRPIPE suspend, -ENODEV device gone).
  void inject_error(StreamDirection direction, int negative_errno);
  // Fault injection: the next period's hand-over to the loop stalls this long between its capture being
  // ready and its reference being ready, as a preempted audio thread would.
  void inject_handover_stall(std::chrono::microseconds stall) {
    inject_stall_us_.store(stall.count(), std::memory_order_release);
  }

 private:
  struct Counters;  // the atomics behind stats()
  class Worker;     // the audio thread's private state (PCM handles, scratch buffers)
  AudioStream(AudioStreamOptions options, EventFd wake, EventFd stop);
  void push_event(const StreamEvent& event);

  AudioStreamOptions opt_;
  size_t period_ = 0;
  EventFd wake_;                     // thread → loop
  EventFd stop_;                     // loop → thread, wakes the reopen backoff
  audio::SpscRing<int16_t> frames_;  // per period: capture samples, then its reference samples
  audio::SpscRing<int16_t> playback_;
  audio::SpscRing<StreamEvent> events_;
  std::unique_ptr<Counters> counters_;
  PeriodProcessor* processor_ = nullptr;  // written only while the thread is stopped
  std::atomic<bool> stop_requested_{false};
  std::atomic<uint32_t> stop_playback_requests_{0};
  std::atomic<uint32_t> stop_playback_done_{0};
  std::atomic<int> inject_capture_{0};
  std::atomic<int> inject_playback_{0};
  std::atomic<int64_t> inject_stall_us_{0};
  std::thread thread_;  // the one owner of the audio thread; joined by stop()
};

}  // namespace osvi::hal
