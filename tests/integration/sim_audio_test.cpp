// SimLine audio: a real AudioStream on the simulated line's ALSA PCM hears the scripted party and is heard by
// it.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "osvi/audio/dtmf.hpp"
#include "osvi/clock.hpp"
#include "osvi/hal/audio_stream.hpp"
#include "osvi/hal/sim_line.hpp"
#include "test_support.hpp"
#include "wav.hpp"

using osvi::hal::AudioStream;
using osvi::hal::AudioStreamOptions;
using osvi::hal::LineEvent;
using osvi::hal::LineState;
using osvi::hal::SimLine;
using osvi::hal::SimPartyEvent;
using osvi::hal::SimScript;
using osvi::hal::SimStep;
using K = SimPartyEvent::Kind;

namespace {

constexpr int kRate = 16000;
constexpr size_t kPeriod = 320;  // 20 ms
// AudioStream's playback cushion (buffer_periods - 1 periods) shifts playback positions against capture.
constexpr uint64_t kCushion = 2 * kPeriod;

double dbfs(const int16_t* p, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += static_cast<double>(p[i]) * p[i];
  return 10.0 * std::log10(std::max(sum / static_cast<double>(n), 1e-3) / (32767.0 * 32767.0 / 2.0));
}

// First 20 ms frame (aligned to `from`) above `level`, as a sample offset from the start of `v`.
int64_t first_loud(const std::vector<int16_t>& v, size_t from, double level) {
  for (size_t i = from; i + kPeriod <= v.size(); i += kPeriod)
    if (dbfs(v.data() + i, kPeriod) > level) return static_cast<int64_t>(i);
  return -1;
}

std::vector<int16_t> tone(double hz, double level_dbfs, size_t n) {
  std::vector<int16_t> v(n);
  const double amp = 32767.0 * std::pow(10.0, level_dbfs / 20.0);
  for (size_t i = 0; i < n; ++i)
    v[i] = static_cast<int16_t>(amp * std::sin(2 * M_PI * hz * static_cast<double>(i) / kRate));
  return v;
}

const SimPartyEvent* find_event(const std::vector<SimPartyEvent>& ev, K kind, int step) {
  for (const SimPartyEvent& e : ev)
    if (e.kind == kind && e.step == step) return &e;
  return nullptr;
}

TEST(SimAudio, PartySpeaksPressesDtmfWaitsForTheAgentAndHangsUp) {
  osvi::test::TempDir dir;
  const std::vector<int16_t> hello = osvi::test::espeak_speech("Hello, I would like a table for two.");
  const std::vector<int16_t> yes = osvi::test::espeak_speech("Yes please.");
  ASSERT_GT(hello.size(), static_cast<size_t>(kRate / 2));

  SimScript s;
  s.audio_dir = dir.path();
  s.party_log = dir.file("party.jsonl");
  s.steps = {{SimStep::Kind::silence, 300, {}},
             {SimStep::Kind::say, 0, "hello"},
             {SimStep::Kind::dtmf, 0, "159#"},
             {SimStep::Kind::say, 0, "yes", true, 5000},
             {SimStep::Kind::hangup, 0, {}}};
  osvi::SystemClock clock;
  SimLine line("sim0", s, clock);
  line.set_voice([&](std::string_view text, int rate) -> osvi::Result<std::vector<int16_t>> {
    if (rate != kRate) return osvi::make_error("16 kHz only");
    return text == "hello" ? hello : yes;
  });
  std::vector<LineEvent> events;
  line.set_event_handler([&](const LineEvent& e) { events.push_back(e); });
  ASSERT_TRUE(line.start().ok());
  ASSERT_TRUE(line.ring("+919800000001").ok());
  ASSERT_TRUE(line.answer().ok());

  const osvi::hal::AudioEndpoint ep = line.audio();
  ASSERT_EQ(ep.kind, osvi::hal::AudioEndpoint::Kind::alsa);
  EXPECT_EQ(ep.device, "osvi_sim_sim0");
  EXPECT_TRUE(ep.clockless);
  EXPECT_TRUE(ep.ready);
  EXPECT_EQ(ep.sample_rate, 16000u);
  AudioStreamOptions o;
  o.capture_device = o.playback_device = ep.device;
  o.alsa_config = ep.alsa_config;
  o.rate = static_cast<int>(ep.sample_rate);
  o.period_ms = static_cast<int>(ep.frame_ms);
  o.pace = std::chrono::milliseconds(ep.frame_ms);
  auto created = AudioStream::create(o);
  ASSERT_TRUE(created.ok()) << created.error().message;
  std::unique_ptr<AudioStream> stream = std::move(created.value());
  ASSERT_TRUE(stream->start().ok());

  std::vector<int16_t> cap;
  std::vector<int16_t> buf(stream->period_frames());
  bool agent_queued = false;
  uint64_t agent_queued_at = 0;  // capture samples the stream had pushed when the agent audio was queued
  const std::vector<int16_t> agent = tone(440.0, -20.0, 800 * kRate / 1000);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(12);
  while (line.state() == LineState::active && std::chrono::steady_clock::now() < until) {
    pollfd pfd[2] = {{stream->event_fd(), POLLIN, 0}, {line.poll_fd(), line.poll_events(), 0}};
    const int64_t d = line.next_deadline_us();
    int timeout = 20;
    if (d >= 0) timeout = static_cast<int>(std::clamp<int64_t>((d - clock.monotonic_us()) / 1000, 0, 20));
    ASSERT_GE(poll(pfd, pfd[1].fd >= 0 ? 2 : 1, timeout), 0);
    if (pfd[1].fd >= 0 && pfd[1].revents) line.handle_io(pfd[1].revents);
    if (line.next_deadline_us() >= 0 && line.next_deadline_us() <= clock.monotonic_us()) line.handle_timer();
    osvi::hal::StreamEvent sev[8];
    stream->drain_events(sev);
    std::vector<int16_t> ref(buf.size());
    while (stream->read_frame(buf, ref)) cap.insert(cap.end(), buf.begin(), buf.end());
    // The agent answers once the party's tones are all out (logged when written, ~160 ms ahead of reads).
    if (!agent_queued && find_event(line.party_events(), K::step_end, 2)) {
      agent_queued_at = stream->stats().periods * kPeriod;
      ASSERT_EQ(stream->queue_playback(agent), agent.size());
      agent_queued = true;
    }
  }
  ASSERT_EQ(line.state(), LineState::idle) << "the script did not finish";
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().type, LineEvent::Type::remote_hangup);
  // The caller audio still queued in the FIFO at the hang-up is read to the end, then silence (EOF): the
  // stream keeps running without blocking or losing the device.
  const uint64_t written = line.caller_samples();
  while (cap.size() < written + 4 * kPeriod && std::chrono::steady_clock::now() < until) {
    pollfd pfd{stream->event_fd(), POLLIN, 0};
    ASSERT_GE(poll(&pfd, 1, 50), 0);
    osvi::hal::StreamEvent sev[8];
    stream->drain_events(sev);
    std::vector<int16_t> ref(buf.size());
    while (stream->read_frame(buf, ref)) cap.insert(cap.end(), buf.begin(), buf.end());
  }
  ASSERT_GE(cap.size(), written + 4 * kPeriod);
  EXPECT_LT(dbfs(cap.data() + written, 4 * kPeriod), -80.0);
  EXPECT_EQ(stream->stats().device_losses, 0u);
  stream->stop();

  const std::vector<SimPartyEvent>& ev = line.party_events();
  std::string trace;  // the party log, shown when an expectation fails
  for (const SimPartyEvent& e : ev)
    trace += std::string(to_string(e.kind)) + " step " + std::to_string(e.step) + " sample " +
             std::to_string(e.sample) + (e.digit ? std::string(" ") + e.digit : std::string()) + "\n";
  SCOPED_TRACE(trace);

  // 1. The sentence reaches capture sample-exactly where the party log says.
  const SimPartyEvent* s0 = find_event(ev, K::step_start, 1);
  const SimPartyEvent* e0 = find_event(ev, K::step_end, 1);
  ASSERT_TRUE(s0 && e0);
  EXPECT_EQ(e0->sample - s0->sample, hello.size());
  ASSERT_GE(cap.size(), e0->sample);
  EXPECT_TRUE(std::equal(hello.begin(), hello.end(), cap.begin() + static_cast<std::ptrdiff_t>(s0->sample)));
  const int64_t loud_in_voice = first_loud(hello, 0, -40.0);
  const int64_t loud_in_cap = first_loud(cap, 0, -40.0);
  ASSERT_GE(loud_in_voice, 0);
  EXPECT_NEAR(static_cast<double>(loud_in_cap), static_cast<double>(s0->sample + loud_in_voice), kPeriod);
  EXPECT_EQ(s0->sample, 300u * kRate / 1000);
  EXPECT_LT(dbfs(cap.data(), s0->sample), -80.0) << "silence before the sentence";

  // 2. DTMF in-band: the chain's detector hears the digits where the party pressed them.
  auto det = osvi::audio::DtmfDetector::create(kRate);
  ASSERT_TRUE(det.ok());
  det->process(cap);
  std::string digits;
  std::vector<uint64_t> starts;
  while (auto d = det->next_event()) {
    digits.push_back(d->digit);
    starts.push_back(d->start);
  }
  EXPECT_EQ(digits, "159#");
  std::vector<const SimPartyEvent*> pressed;
  for (const SimPartyEvent& e : ev)
    if (e.kind == K::dtmf) pressed.push_back(&e);
  ASSERT_EQ(pressed.size(), 4u);
  for (size_t i = 0; i < std::min<size_t>(4, starts.size()); ++i) {
    EXPECT_EQ(pressed[i]->digit, "159#"[i]);
    EXPECT_NEAR(static_cast<double>(starts[i]), static_cast<double>(pressed[i]->sample), kPeriod);
  }

  // 3. The agent's audio reaches the party at the playback position it was queued for.
  const SimPartyEvent* as = nullptr;
  const SimPartyEvent* ae = nullptr;
  for (const SimPartyEvent& e : ev) {
    if (e.kind == K::agent_start && !as) as = &e;
    if (e.kind == K::agent_stop && !ae) ae = &e;
  }
  ASSERT_TRUE(as && ae);
  const double agent_start_cap = static_cast<double>(as->sample - kCushion);
  EXPECT_GE(agent_start_cap + kPeriod, static_cast<double>(agent_queued_at) - kPeriod);
  EXPECT_LE(agent_start_cap, static_cast<double>(agent_queued_at) + kPeriod);
  EXPECT_NEAR(static_cast<double>(ae->sample - as->sample), static_cast<double>(agent.size()), kPeriod);

  // 4. The after_agent step waited for the agent's end plus the quiet time (600 ms), and not much longer
  // (the agent FIFO's latency, the caller queue, loop ticks).
  const SimPartyEvent* s2 = find_event(ev, K::step_start, 3);
  ASSERT_TRUE(s2);
  const uint64_t agent_stop_cap = ae->sample - kCushion;
  EXPECT_GE(s2->sample, agent_stop_cap + 600 * kRate / 1000);
  EXPECT_LE(s2->sample, agent_stop_cap + 1100 * kRate / 1000);
  EXPECT_TRUE(std::equal(yes.begin(), yes.end(), cap.begin() + static_cast<std::ptrdiff_t>(s2->sample)));

  // 5. The hang-up ends the call and the log file has one JSON line per event.
  ASSERT_TRUE(find_event(ev, K::hangup, 4));
  const std::string log = osvi::test::read_file(dir.file("party.jsonl"));
  EXPECT_EQ(static_cast<size_t>(std::count(log.begin(), log.end(), '\n')), ev.size());
  EXPECT_NE(log.find("{\"call\":1,\"event\":\"step_start\",\"step\":1,\"sample\":" +
                     std::to_string(s0->sample) + ",\"rate\":16000}"),
            std::string::npos);
  // The FIFOs are gone with the call, so a stream reopening now fails instead of blocking in open().
  struct stat st {};
  const std::string fifo_dir = ep.alsa_config.substr(ep.alsa_config.find("infile \"") + 8);
  EXPECT_NE(::stat(fifo_dir.substr(0, fifo_dir.find('"')).c_str(), &st), 0);
}

}  // namespace
