// FakeAudio: the line's audio for call-engine unit tests — an AudioPort factory whose ports the test drives:
// capture frames in (speech, silence, DTMF, AMD verdicts, beeps), playback played out, drained or stopped.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "osvi/audio/endpointer.hpp"
#include "osvi/calls/audio_port.hpp"

namespace osvi::test {

class FakeAudio {
 public:
  int rate = 16000;
  int frame_ms = 20;
  bool fail_open = false;  // the factory answers "audio not ready"

  daemon::AudioPortFactory factory();

  // State of the current port (the call destroys it when it ends).
  bool open() const { return listener_ != nullptr; }
  int opens = 0;
  bool amd = false;                // the setup asked for AMD
  bool amd_on = false;             // set_amd's last value
  int min_speech_ms = -1;          // set_min_speech_ms's last value
  int stops = 0;                   // stop_playback() calls
  uint64_t queued_total = 0;       // samples accepted over the port's life
  uint64_t capacity = UINT64_MAX;  // the playback ring, in samples (queue_playback accepts what fits)
  int queued_peak = 0;             // the loudest sample accepted (|s|); a test resets it to 0 to watch again
  uint64_t xruns = 0;              // what the port reports as recovered xruns
  uint64_t unplayed() const { return unplayed_; }
  uint64_t played() const { return played_; }
  bool stop_requested() const { return stop_requested_; }

  // One capture frame of `frame_ms`; the optional parts ride along.
  struct Frame {
    std::vector<audio::EndpointEvent> endpoints;
    std::optional<char> dtmf;
    audio::AmdVerdict amd = audio::AmdVerdict::pending;
    bool beep = false;
    std::optional<audio::ProgressTone> tone;  // the call-progress detector's verdict
  };
  void capture(const Frame& frame);
  uint64_t position() const { return pos_; }  // capture samples delivered

  // The device writes up to n queued samples.
  void play(uint64_t n);
  // Everything queued is played: playback_drained.
  void drain();
  // A requested stop_playback() completes: playback_stopped with what was heard since the last drain.
  void complete_stop();
  void event(hal::StreamEventKind kind);
  void event(const hal::StreamEvent& e);  // with its fields (an RFC 4733 digit)

  // One period of the device, as the real stream runs it: the capture frame in, then (a requested stop
  // completed first) up to one period of the queued playback out, silence for the rest, and playback_drained
  // when the queue runs dry. `caller_voice`: the caller is speaking during this period. The caller's ear is
  // on this clock (clock(): periods elapsed × period), independent of the call's own timestamps.
  void period(const Frame& frame, bool caller_voice = false);
  void period() { period(Frame{}); }
  uint64_t clock() const { return clock_; }
  // Each time agent audio starts after a silence: where (clock) and the silence before it, counted from the
  // end of the last sound the caller heard (agent audio or their own voice).
  struct Start {
    uint64_t at = 0;
    uint64_t gap = 0;
  };
  const std::vector<Start>& starts() const { return starts_; }
  uint64_t longest_gap() const;
  // Forgets the starts so far; the silence counts from now.
  void reset_heard();

 private:
  class Port;
  void tick();
  daemon::AudioPort::Listener* listener_ = nullptr;
  uint64_t unplayed_ = 0, played_ = 0, burst_played_ = 0, pos_ = 0;
  uint64_t clock_ = 0, last_sound_end_ = 0;
  std::vector<Start> starts_;
  bool stop_requested_ = false;
  std::vector<int16_t> clean_;
};

}  // namespace osvi::test
