// LineDiagnostics: a modem asked now, and the audio loopback (line_diagnostics.hpp).
#include "osvi/lines/line_diagnostics.hpp"

#include <sys/epoll.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <vector>

#include "osvi/config/audio_settings.hpp"
#include "osvi/hal/audio_stream.hpp"
#include "osvi/lines/line_manager.hpp"

namespace osvi::daemon {

struct LineDiagnostics::Probe {
  ProbeDone done;
  EventSource guard;
};

struct LineDiagnostics::Loopback {
  hal::Line* line = nullptr;
  LoopbackDone done;
  LoopbackReport report;
  std::unique_ptr<hal::AudioStream> stream;
  EventSource io;
  EventSource guard;
  std::vector<int16_t> capture;
  std::vector<int16_t> reference;
  std::vector<int16_t> cap_frame;
  std::vector<int16_t> ref_frame;
  size_t want_samples = 0;
};

LineDiagnostics::LineDiagnostics(EventLoop& loop, LineManager& lines) : loop_(loop), lines_(lines) {}

LineDiagnostics::~LineDiagnostics() {
  for (auto& lb : loopbacks_) {
    lb->io.reset();
    lb->guard.reset();
    if (lb->stream) lb->stream->stop();
    if (lb->line) lb->line->set_held(false);
  }
}

Status LineDiagnostics::probe(std::string_view line_id, ProbeDone done) {
  retired_.clear();  // never inside their callbacks: this runs from an API request
  hal::Line* line = lines_.find(line_id);
  if (!line) return make_error("no line " + std::string(line_id), -ENOENT);
  if (line->held()) return make_error("line " + line->id() + " is held by an audio loopback test", -EBUSY);
  auto p = std::make_shared<Probe>();
  p->done = std::move(done);
  // The guard is owned by the probe, so its callback holds the probe weakly: a probe the line refuses (never
  // listed) or one freed at shutdown takes its timer with it, with no cycle to leak.
  std::weak_ptr<Probe> weak = p;
  auto guard = loop_.add_timer(loop_.now_us() + uint64_t{kProbeTimeoutMs} * 1000, [this, weak] {
    if (auto sp = weak.lock())
      finish_probe(sp, make_error("the modem did not finish answering within " +
                                      std::to_string(kProbeTimeoutMs / 1000) + " s",
                                  -ETIMEDOUT));
  });
  if (!guard) return guard.error();
  p->guard = std::move(*guard);
  if (Status s = line->probe([this, weak](Result<hal::LineProbe> r) {
        if (auto sp = weak.lock()) finish_probe(sp, std::move(r));
      });
      !s)
    return s;
  lines_.refresh(*line);  // the queued commands want the tty writable
  probes_.push_back(std::move(p));
  return {};
}

void LineDiagnostics::finish_probe(const std::shared_ptr<Probe>& p, Result<hal::LineProbe> result) {
  auto it = std::find(probes_.begin(), probes_.end(), p);
  if (it == probes_.end()) return;  // answered already (the guard, then the modem, or the other way round)
  std::shared_ptr<Probe> keep = *it;
  probes_.erase(it);
  retire(std::move(keep->guard));
  if (keep->done) keep->done(std::move(result));
}

void LineDiagnostics::retire(EventSource source) {
  // This may run inside that source's own callback: it is switched off now and freed later, not under its
  // dispatch.
  if (!source) return;
  sd_event_source_set_enabled(source.get(), SD_EVENT_OFF);
  retired_.push_back(std::move(source));
}

Status LineDiagnostics::loopback(std::string_view line_id, const AudioConfig& audio, LoopbackDone done) {
  retired_.clear();
  hal::Line* line = lines_.find(line_id);
  if (!line) return make_error("no line " + std::string(line_id), -ENOENT);
  if (line->held())
    return make_error("line " + line->id() + " is held by another audio loopback test", -EBUSY);
  if (line->state() == hal::LineState::down)
    return make_error("line " + line->id() + " is down: " + line->reason(), -ENODEV);
  if (line->state() != hal::LineState::idle)
    return make_error("line " + line->id() + " is busy (" + std::string(hal::to_string(line->state())) +
                          "): the loopback needs an idle line",
                      -EBUSY);
  // A simulated line's PCM is a pair of FIFOs that exist only while its scripted party is on a call.
  if (line->type() == "sim")
    return make_error("line " + line->id() + " is simulated: it has no PCM of its own outside a call",
                      -ENOTSUP);
  const hal::AudioEndpoint ep = line->audio();
  if (!ep.unavailable.empty())
    return make_error("line " + line->id() + " has no usable audio: " + ep.unavailable, -ENOTSUP);
  if (ep.kind != hal::AudioEndpoint::Kind::alsa)
    return make_error("line " + line->id() + "'s audio is a " + std::string(hal::to_string(ep.kind)) +
                          " endpoint; the loopback plays through ALSA PCMs only",
                      -ENOTSUP);

  auto lb = std::make_unique<Loopback>();
  lb->line = line;
  lb->done = std::move(done);
  AudioConfig ac = audio;
  ac.rate = static_cast<int>(ep.sample_rate);
  hal::AudioStreamOptions o =
      audio_stream_options(ac, ep.device, ep.device, static_cast<int>(ep.channels), 0);
  o.alsa_config = ep.alsa_config;
  if (ep.clockless) o.pace = std::chrono::milliseconds(ac.frame_ms);
  o.playback_ring_ms = 2000;
  o.capture_ring_ms = 1000;
  auto stream = hal::AudioStream::create(o);
  if (!stream) return stream.error();
  lb->stream = std::move(*stream);
  const int rate = static_cast<int>(ep.sample_rate);
  lb->report.line = line->id();
  lb->report.device = ep.device;
  lb->report.sample_rate = rate;
  lb->report.tail_ms = audio.echo_tail_ms;
  lb->report.max_delay_ms = kMaxDelayMs;
  // Lead-in, burst, then silence (the stream plays silence once the ring is empty) while the echo comes back.
  std::vector<int16_t> play(static_cast<size_t>(rate) * kLeadInMs / 1000, 0);
  const std::vector<int16_t> burst = audio::make_probe_burst(rate);
  play.insert(play.end(), burst.begin(), burst.end());
  lb->want_samples =
      static_cast<size_t>(rate) * (kLeadInMs + audio::kProbeBurstMs + kMaxDelayMs + 100) / 1000;
  lb->capture.reserve(lb->want_samples + lb->stream->period_frames());
  lb->reference.reserve(lb->want_samples + lb->stream->period_frames());
  lb->cap_frame.resize(lb->stream->period_frames());
  lb->ref_frame.resize(lb->stream->period_frames());
  if (lb->stream->queue_playback(play) != play.size())
    return make_error("the playback ring is too small", -ENOSPC);
  Loopback* raw = lb.get();
  auto io = loop_.add_io(lb->stream->event_fd(), EPOLLIN, [this, raw](uint32_t) { on_loopback_io(raw); });
  if (!io) return io.error();
  lb->io = std::move(*io);
  auto guard = loop_.add_timer(loop_.now_us() + uint64_t{kLoopbackTimeoutMs} * 1000, [this, raw] {
    finish_loopback(raw,
                    make_error("the PCM " + raw->report.device + " delivered " +
                                   std::to_string(raw->capture.size() * 1000 /
                                                  static_cast<size_t>(raw->report.sample_rate)) +
                                   " ms of capture in " + std::to_string(kLoopbackTimeoutMs / 1000) + " s",
                               -ETIMEDOUT));
  });
  if (!guard) return guard.error();
  lb->guard = std::move(*guard);
  line->set_held(true);
  if (Status s = lb->stream->start(); !s) {
    line->set_held(false);
    return s;
  }
  loopbacks_.push_back(std::move(lb));
  return {};
}

void LineDiagnostics::on_loopback_io(Loopback* lb) {
  std::array<hal::StreamEvent, 16> events;
  const size_t n = lb->stream->drain_events(events);
  for (size_t i = 0; i < n; ++i) {
    if (events[i].kind == hal::StreamEventKind::device_lost) {
      finish_loopback(lb, make_error("cannot open or lost the PCM " + lb->report.device + " (error " +
                                         std::to_string(-events[i].error) + ")",
                                     -ENODEV));
      return;
    }
  }
  while (lb->stream->read_frame(lb->cap_frame, lb->ref_frame)) {
    lb->capture.insert(lb->capture.end(), lb->cap_frame.begin(), lb->cap_frame.end());
    lb->reference.insert(lb->reference.end(), lb->ref_frame.begin(), lb->ref_frame.end());
  }
  if (lb->capture.size() < lb->want_samples) return;
  lb->stream->stop();
  LoopbackReport r = lb->report;
  r.captured_ms = static_cast<int>(lb->capture.size() * 1000 / static_cast<size_t>(r.sample_rate));
  r.echo = audio::measure_echo(lb->reference, lb->capture, r.sample_rate, kMaxDelayMs);
  r.fits = !r.echo.echo_found || r.echo.delay_ms + audio::kEchoSpreadMs <= r.tail_ms;
  finish_loopback(lb, std::move(r));
}

void LineDiagnostics::finish_loopback(Loopback* lb, Result<LoopbackReport> result) {
  auto it = std::find_if(loopbacks_.begin(), loopbacks_.end(), [lb](const auto& p) { return p.get() == lb; });
  if (it == loopbacks_.end()) return;
  std::unique_ptr<Loopback> keep = std::move(*it);
  loopbacks_.erase(it);
  retire(std::move(keep->io));
  retire(std::move(keep->guard));
  keep->stream->stop();
  lines_.release(*keep->line);
  if (keep->done) keep->done(std::move(result));
}

}  // namespace osvi::daemon
