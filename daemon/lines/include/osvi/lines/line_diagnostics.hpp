// LineDiagnostics: the technician's line tests on the loop — ask a modem now (identity, signal,
// registration) and the audio loopback (a probe burst out of an idle line's PCM, its echo measured).
//
// Threading: loop thread only. The loopback's hal::AudioStream runs its own real-time thread like a call's;
// its frames are read on the loop from the stream's eventfd, and the measurement (~5 ms CPU at 16 kHz,
// bench/README.md) runs on the loop
// once the capture is complete.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/audio/echo_measure.hpp"
#include "osvi/base/event_loop.hpp"
#include "osvi/config/config.hpp"
#include "osvi/hal/line.hpp"
#include "osvi/result.hpp"

namespace osvi::daemon {

class LineManager;

// One loopback's outcome (POST /v1/lines/{id}/loopback).
struct LoopbackReport {
  std::string line;
  std::string device;
  int sample_rate = 0;
  int tail_ms = 0;       // audio.echo.tail_ms at the time of the test
  int max_delay_ms = 0;  // the search window
  int captured_ms = 0;   // capture read and measured
  audio::EchoMeasurement echo;
  bool fits = true;  // no echo, or its peak plus audio::kEchoSpreadMs inside the tail
};

class LineDiagnostics {
 public:
  // Lead-in silence before the burst (the PCM settles), and the capture kept after the burst starts.
  static constexpr int kLeadInMs = 200;
  static constexpr int kMaxDelayMs = 500;
  // A probe or loopback that has not finished by then is answered with an error (a guard: the modem's own
  // command timeouts end a probe first).
  static constexpr int kProbeTimeoutMs = 30000;
  static constexpr int kLoopbackTimeoutMs = 5000;

  LineDiagnostics(EventLoop& loop, LineManager& lines);
  ~LineDiagnostics();  // a loopback in progress is stopped (its thread joined, its line released)
  LineDiagnostics(const LineDiagnostics&) = delete;
  LineDiagnostics& operator=(const LineDiagnostics&) = delete;

  // Errors now carry a code the API maps: -ENOENT no such line, -EBUSY on a call or held by another test,
  // -ENODEV down, -ENOTSUP nothing to ask or no PCM to open. Otherwise `done` runs later, exactly once
  // (unless this object is destroyed first).
  using ProbeDone = std::function<void(Result<hal::LineProbe>)>;
  Status probe(std::string_view line_id, ProbeDone done);
  using LoopbackDone = std::function<void(Result<LoopbackReport>)>;
  Status loopback(std::string_view line_id, const AudioConfig& audio, LoopbackDone done);

 private:
  struct Probe;
  struct Loopback;
  void finish_probe(const std::shared_ptr<Probe>& p, Result<hal::LineProbe> result);
  void finish_loopback(Loopback* lb, Result<LoopbackReport> result);
  void on_loopback_io(Loopback* lb);
  void retire(EventSource source);

  EventLoop& loop_;
  LineManager& lines_;
  std::vector<std::shared_ptr<Probe>> probes_;
  std::vector<std::unique_ptr<Loopback>> loopbacks_;
  std::vector<EventSource> retired_;  // switched off inside their own callbacks, freed on the next request
};

}  // namespace osvi::daemon
