// ChainRunner and PagePipe: the line chain on a stream's real-time thread gives the loop exactly what the
// chain run on the loop gave (frames, events, order, recording bytes), takes the loop's controls, counts a
// full ring instead of waiting, and allocates nothing per frame.
#include "osvi/audio/chain_runner.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <thread>
#include <utility>
#include <vector>

#include "alloc_counter.hpp"
#include "osvi/audio/page_pipe.hpp"
#include "wav.hpp"

namespace {

using namespace osvi::audio;

constexpr int kRate = 16000;
constexpr size_t kFrame = 320;

LineChainConfig config(bool amd) {
  LineChainConfig c;
  c.format = {kRate, 20};
  c.dtmf = true;
  c.call_progress_plan = "us";
  c.amd = amd;
  return c;
}

std::unique_ptr<LineChain> chain(bool amd = false) {
  auto c = LineChain::create(config(amd));
  EXPECT_TRUE(c) << (c ? "" : c.error().message);
  return c ? std::move(*c) : nullptr;
}

std::unique_ptr<ChainRunner> runner(bool amd = false, ChainRunnerOptions o = {}) {
  auto r = ChainRunner::create(chain(amd), o);
  EXPECT_TRUE(r) << (r ? "" : r.error().message);
  return r ? std::move(*r) : nullptr;
}

void add_tone(std::vector<int16_t>& x, size_t at, size_t len, double f1, double f2, double amp) {
  for (size_t i = 0; i < len && at + i < x.size(); ++i) {
    const double t = static_cast<double>(i) / kRate;
    const double v =
        x[at + i] + amp * (std::sin(2 * std::numbers::pi * f1 * t) + std::sin(2 * std::numbers::pi * f2 * t));
    x[at + i] = static_cast<int16_t>(std::clamp(v, -32768.0, 32767.0));
  }
}

// What a call's line hears and plays: speech with pauses (onsets, ends), the agent's voice playing into an
// echo, two DTMF digits and a US busy tone, so every kind of event shows up.
struct Script {
  std::vector<int16_t> mic, played;
  size_t frames = 0;
};

const Script& script() {
  static const Script s = [] {
    Script sc;
    const std::vector<int16_t> speech = osvi::test::librivox_speech();
    sc.frames = 12 * 50;  // 12 s
    const size_t n = sc.frames * kFrame;
    sc.mic.assign(n, 0);
    sc.played.assign(n, 0);
    for (size_t i = 0; i < n; ++i) {
      // The caller talks 2 s, pauses 1 s; the agent talks in the other phase.
      // The last 4 s are the busy tone alone.
      const size_t phase = (i / kRate) % 3;
      const bool talk = i < 8 * static_cast<size_t>(kRate);
      if (talk && phase < 2) sc.mic[i] = speech[i % speech.size()];
      if (talk && phase == 2) sc.played[i] = static_cast<int16_t>(speech[(i * 7) % speech.size()] / 2);
      if (i >= 480) sc.mic[i] = static_cast<int16_t>(sc.mic[i] + sc.played[i - 480] / 4);
    }
    add_tone(sc.mic, 2 * kRate + 2000, 1600, 697, 1209, 6000);  // '1' in a pause
    add_tone(sc.mic, 5 * kRate + 2000, 1600, 941, 1477, 6000);  // '#'
    for (int k = 0; k < 4; ++k)                                 // busy: 0.5 s on, 0.5 s off
      add_tone(sc.mic, 8 * kRate + static_cast<size_t>(k) * kRate, kRate / 2, 480, 620, 4000);
    return sc;
  }();
  return s;
}

std::span<const int16_t> mic(size_t f) {
  return {script().mic.data() + f * kFrame, kFrame};
}
std::span<const int16_t> played(size_t f) {
  return {script().played.data() + f * kFrame, kFrame};
}

// A frame's result copied out of the spans both producers reuse.
struct Frame {
  std::vector<int16_t> clean, reference;
  VadFrame vad;
  std::vector<EndpointEvent> endpoints;
  std::optional<DtmfEvent> dtmf;
  std::optional<CallProgressEvent> tone;
  AmdVerdict amd = AmdVerdict::pending;
  std::optional<Beep> beep;
};

Frame copy(const CaptureOutput& o) {
  Frame f;
  f.clean.assign(o.clean.begin(), o.clean.end());
  f.reference.assign(o.reference.begin(), o.reference.end());
  f.vad = o.vad;
  f.endpoints.assign(o.endpoints.begin(), o.endpoints.end());
  f.dtmf = o.dtmf;
  f.tone = o.tone;
  f.amd = o.amd;
  f.beep = o.beep;
  return f;
}

// Field by field: gtest prints which frame and which part differ.
void expect_same(const Frame& a, const Frame& b, size_t i) {
  ASSERT_EQ(a.clean, b.clean) << "frame " << i;
  ASSERT_EQ(a.reference, b.reference) << "frame " << i;
  ASSERT_EQ(a.vad.active, b.vad.active) << "frame " << i;
  ASSERT_EQ(a.vad.speech, b.vad.speech) << "frame " << i;
  ASSERT_EQ(a.vad.probability, b.vad.probability) << "frame " << i;
  ASSERT_EQ(a.endpoints.size(), b.endpoints.size()) << "frame " << i;
  for (size_t k = 0; k < a.endpoints.size(); ++k) {
    ASSERT_EQ(a.endpoints[k].kind, b.endpoints[k].kind) << "frame " << i;
    ASSERT_EQ(a.endpoints[k].at, b.endpoints[k].at) << "frame " << i;
    ASSERT_EQ(a.endpoints[k].begin, b.endpoints[k].begin) << "frame " << i;
    ASSERT_EQ(a.endpoints[k].end, b.endpoints[k].end) << "frame " << i;
  }
  ASSERT_EQ(a.dtmf.has_value(), b.dtmf.has_value()) << "frame " << i;
  if (a.dtmf) {
    ASSERT_EQ(a.dtmf->digit, b.dtmf->digit) << "frame " << i;
  }
  ASSERT_EQ(a.tone.has_value(), b.tone.has_value()) << "frame " << i;
  if (a.tone) {
    ASSERT_EQ(a.tone->tone, b.tone->tone) << "frame " << i;
  }
  ASSERT_EQ(a.amd, b.amd) << "frame " << i;
  ASSERT_EQ(a.beep.has_value(), b.beep.has_value()) << "frame " << i;
}

struct Counts {
  size_t endpoints = 0, dtmf = 0, tones = 0, verdicts = 0;
};
Counts count(const std::vector<Frame>& frames) {
  Counts c;
  for (const Frame& f : frames) {
    c.endpoints += f.endpoints.size();
    c.dtmf += f.dtmf ? 1 : 0;
    c.tones += f.tone ? 1 : 0;
    c.verdicts += f.amd != AmdVerdict::pending ? 1 : 0;
  }
  return c;
}

TEST(ChainRunner, AThreadGivesTheLoopWhatTheChainGaveOnTheLoopInOrder) {
  auto direct = chain(true);
  auto r = runner(true);
  ASSERT_TRUE(direct && r);
  std::vector<Frame> want;
  for (size_t f = 0; f < script().frames; ++f)
    want.push_back(copy(direct->process_capture(mic(f), played(f))));
  const Counts wc = count(want);
  // The script really exercises every event kind the loop acts on.
  std::printf("script: %zu endpoint events, %zu digits, %zu tones, %zu frames with a verdict\n", wc.endpoints,
              wc.dtmf, wc.tones, wc.verdicts);
  EXPECT_GE(wc.endpoints, 4u);
  EXPECT_EQ(wc.dtmf, 2u);
  EXPECT_GE(wc.tones, 1u);
  EXPECT_GE(wc.verdicts, 1u);

  // The "audio thread" runs at its own pace (a burst, then a pause), the loop reads as it comes.
  std::atomic<bool> done{false};
  std::thread audio([&] {
    for (size_t f = 0; f < script().frames; ++f) {
      while (r->ready() > 20) std::this_thread::yield();  // stays inside the ring: nothing dropped here
      r->process(mic(f), played(f));
      if (f % 97 == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
    done = true;
  });
  std::vector<Frame> got;
  CaptureOutput out;
  while (got.size() < script().frames) {
    if (r->next(out))
      got.push_back(copy(out));
    else if (done && r->ready() == 0)
      break;
    else
      std::this_thread::yield();
  }
  audio.join();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) expect_same(got[i], want[i], i);
  EXPECT_EQ(r->processed(), script().frames);
  EXPECT_EQ(r->dropped(), 0u);
}

TEST(ChainRunner, ControlsTakeEffectAtTheNextFrameAsOnTheChain) {
  auto direct = chain(false);
  auto r = runner(false);
  ASSERT_TRUE(direct && r);
  std::vector<Frame> want, got;
  CaptureOutput out;
  for (size_t f = 0; f < script().frames; ++f) {
    // The same calls between the same frames: barge-in's shorter minimum, AMD on, a re-arm (false then true
    // before one frame: restarts the detector), off.
    auto control = [&](auto& target) {
      if (f == 50) (void)target.set_min_speech_ms(40);
      if (f == 120) (void)target.set_min_speech_ms(400);
      if (f == 60) target.set_amd(true);
      if (f == 200) {
        target.set_amd(false);
        target.set_amd(true);
      }
      if (f == 420) target.set_amd(false);
      if (f == 430) target.set_amd(true);
      if (f == 431) target.set_amd(true);  // already on: no restart
    };
    control(*direct);
    control(*r);
    want.push_back(copy(direct->process_capture(mic(f), played(f))));
    r->process(mic(f), played(f));
    ASSERT_TRUE(r->next(out));
    got.push_back(copy(out));
  }
  for (size_t i = 0; i < want.size(); ++i) expect_same(got[i], want[i], i);
  EXPECT_GE(count(want).verdicts, 1u);  // AMD did run and decide
  // An out-of-range minimum is ignored, as the chain refuses it.
  r->set_min_speech_ms(-5);
  r->set_min_speech_ms(6000);
  EXPECT_FALSE(direct->set_min_speech_ms(6000));
}

TEST(ChainRunner, AFullRingDropsAndCountsWholeFramesWithoutWaiting) {
  auto direct = chain();
  auto r = runner(false, {.ring_ms = 60});  // three frames
  ASSERT_TRUE(direct && r);
  for (size_t f = 0; f < 10; ++f) r->process(mic(f), played(f));  // the loop is away
  EXPECT_EQ(r->processed(), 3u);
  EXPECT_EQ(r->dropped(), 7u);
  CaptureOutput out;
  for (size_t f = 0; f < 3; ++f) {
    ASSERT_TRUE(r->next(out));
    expect_same(copy(out), copy(direct->process_capture(mic(f), played(f))), f);
  }
  EXPECT_FALSE(r->next(out));
  // Room again: the next frame goes through.
  r->process(mic(10), played(10));
  EXPECT_TRUE(r->next(out));
  EXPECT_FALSE(ChainRunner::create(chain(), {.ring_ms = 20}));  // must hold two frames
  EXPECT_FALSE(ChainRunner::create(nullptr));
}

RecordingConfig rec_config() {
  RecordingConfig rc;
  rc.rate = kRate;
  rc.frame_ms = 20;
  rc.call_id = "runner-test";
  return rc;
}

TEST(ChainRunner, RecordingOnTheThreadIsByteForByteTheLoopsRecording) {
  // On the loop, as before: the chain pushes into a recorder writing the file directly.
  auto direct = chain();
  ASSERT_TRUE(direct);
  MemorySink loop_file;
  auto loop_rec = CallRecorder::create(loop_file, rec_config());
  ASSERT_TRUE(loop_rec);
  direct->attach_recorder(&*loop_rec);
  for (size_t f = 0; f < script().frames; ++f) direct->process_capture(mic(f), played(f));
  direct->attach_recorder(nullptr);
  ASSERT_TRUE(loop_rec->finish());

  // On the thread: the recorder writes into the pipe, the loop drains it while the thread runs.
  auto r = runner();
  ASSERT_TRUE(r);
  MemorySink file;
  PagePipe pipe(file, PagePipe::ring_bytes_for(rec_config().bitrate));
  auto rec = CallRecorder::create(pipe, rec_config());
  ASSERT_TRUE(rec);
  r->attach_recorder(&*rec);
  std::thread audio([&] {
    for (size_t f = 0; f < script().frames; ++f) {
      while (r->ready() > 20) std::this_thread::yield();
      r->process(mic(f), played(f));
    }
  });
  CaptureOutput out;
  size_t frames = 0;
  while (frames < script().frames) {
    if (r->next(out)) ++frames;
    pipe.drain();
    std::this_thread::yield();
  }
  audio.join();
  r->attach_recorder(nullptr);
  pipe.drain();
  auto summary = rec->finish();
  pipe.drain();
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->samples, script().frames * kFrame);
  EXPECT_FALSE(pipe.failed());
  EXPECT_EQ(r->recorder_errors(), 0u);
  EXPECT_GT(file.bytes().size(), 10000u);
  EXPECT_EQ(file.bytes(), loop_file.bytes());
}

TEST(ChainRunner, DetachReturnsOnlyOnceTheThreadIsOutOfTheRecorder) {
  auto r = runner();
  ASSERT_TRUE(r);
  MemorySink file;
  PagePipe pipe(file, PagePipe::ring_bytes_for(32000));
  auto rec = CallRecorder::create(pipe, rec_config());
  ASSERT_TRUE(rec);
  r->attach_recorder(&*rec);
  std::atomic<bool> stop{false};
  std::atomic<size_t> processed{0};
  std::thread audio([&] {
    for (size_t f = 0; !stop; f = (f + 1) % script().frames) {
      r->process(mic(f), played(f));
      ++processed;
    }
  });
  CaptureOutput out;
  while (processed < 100) {
    while (r->next(out)) {
    }
    pipe.drain();
    std::this_thread::yield();
  }
  r->attach_recorder(nullptr);
  // From here the loop owns the recorder while the thread keeps processing: nothing more reaches it.
  const uint64_t samples = rec->samples();
  const size_t at = processed;
  while (processed < at + 50) {
    while (r->next(out)) {
    }
    std::this_thread::yield();
  }
  pipe.drain();
  ASSERT_TRUE(rec->finish());
  pipe.drain();
  EXPECT_EQ(rec->samples(), samples);
  stop = true;
  audio.join();
  EXPECT_FALSE(pipe.failed());
  EXPECT_GT(samples, 0u);
}

// Holds the audio thread inside the recorder (its first push writes the header pages) until opened.
class GateSink final : public ByteSink {
 public:
  bool write(std::span<const uint8_t>) noexcept override {
    entered = true;
    while (!open) std::this_thread::yield();
    return true;
  }
  std::atomic<bool> entered{false}, open{false};
};

TEST(ChainRunner, DetachWaitsWhileTheThreadIsInsideThePush) {
  auto r = runner();
  ASSERT_TRUE(r);
  GateSink gate;
  auto rec = CallRecorder::create(gate, rec_config());
  ASSERT_TRUE(rec);
  r->attach_recorder(&*rec);
  std::thread audio([&] { r->process(mic(0), played(0)); });
  while (!gate.entered) std::this_thread::yield();
  std::atomic<bool> detached{false};
  std::thread loop([&] {
    r->attach_recorder(nullptr);
    detached = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(detached);  // the thread is still in push(): the loop may not have the recorder yet
  gate.open = true;
  loop.join();
  audio.join();
  EXPECT_TRUE(detached);
  EXPECT_EQ(rec->samples(), kFrame);
  r->process(mic(1), played(1));  // detached: the next frame does not reach it
  EXPECT_EQ(rec->samples(), kFrame);
}

TEST(ChainRunner, NothingIsAllocatedPerFrameOnEitherSide) {
  auto r = runner(true);
  ASSERT_TRUE(r);
  MemorySink file(4 << 20);  // reserved: the file stand-in must not be what allocates
  PagePipe pipe(file, PagePipe::ring_bytes_for(32000));
  auto rec = CallRecorder::create(pipe, rec_config());
  ASSERT_TRUE(rec);
  r->attach_recorder(&*rec);
  CaptureOutput out;
  auto frame = [&](size_t f) {
    if (f == 300) {  // a re-arm: AMD and the beep detector restart on the thread
      r->set_amd(false);
      r->set_amd(true);
    }
    if (f == 350) r->set_min_speech_ms(80);
    r->process(mic(f), played(f));
    while (r->next(out)) {
    }
    pipe.drain();
  };
  for (size_t f = 0; f < 100; ++f) frame(f);  // warm-up: header pages, first audio pages
  const osvi::test::AllocSnapshot before;
  const size_t bytes_before = file.bytes().size();
  for (size_t f = 100; f < script().frames; ++f) frame(f);
  const uint64_t news = before.new_delta(), mallocs = before.malloc_delta();
  EXPECT_GT(file.bytes().size(), bytes_before);  // pages crossed the pipe in the measured window
  EXPECT_EQ(news, 0u);
  EXPECT_EQ(mallocs, 0u);
  r->attach_recorder(nullptr);
  EXPECT_TRUE(rec->finish());
}

// ---- The caller's utterances encoded on the thread (loop2) ----

// The Call's use of its UtteranceEncoder before loop2 (Call::on_capture, on_endpoint), the reference: a
// 500 ms history, the pre-roll [begin, pos) at the Onset, every later frame within the 30 s cap, finish() at
// the SpeechEnd after the kept samples. One blob per SpeechEnd (empty: the utterance was dropped).
struct LoopUtterances {
  explicit LoopUtterances(UtteranceEncoder e) : enc(std::move(e)) {}
  UtteranceEncoder enc;
  std::vector<int16_t> history = std::vector<int16_t>(kRate / 2);
  uint64_t pos = 0, begin = 0;
  bool in = false;
  std::vector<std::vector<uint8_t>> blobs;
  void frame(const CaptureOutput& o) {
    for (int16_t s : o.clean) history[(pos++) % history.size()] = s;
    if (in && enc.active() && enc.samples() + o.clean.size() <= kRate * 30u && !enc.push(o.clean))
      enc.cancel();
    for (const EndpointEvent& e : o.endpoints) {
      if (e.kind == EndpointKind::Onset) {
        in = true;
        begin = e.begin;
        const uint64_t avail = std::min<uint64_t>(pos - std::min(pos, e.begin), history.size());
        const size_t start = static_cast<size_t>((pos - avail) % history.size());
        const size_t first = std::min<size_t>(static_cast<size_t>(avail), history.size() - start);
        const std::span<const int16_t> ring(history);
        if (!enc.begin() || !enc.push(ring.subspan(start, first)) ||
            !enc.push(ring.first(static_cast<size_t>(avail) - first)))
          enc.cancel();
      } else if (e.kind == EndpointKind::OnsetRejected) {
        in = false;
        enc.cancel();
      } else if (e.kind == EndpointKind::SpeechEnd) {
        in = false;
        const uint64_t keep = e.end > begin ? e.end - begin : 0;
        auto b = enc.active() ? enc.finish(std::min(keep, enc.samples()))
                              : osvi::Result<std::vector<uint8_t>>(osvi::make_error("dropped"));
        blobs.push_back(b ? std::move(*b) : std::vector<uint8_t>{});
      }
    }
  }
};

bool ends_speech(const CaptureOutput& o) {
  for (const EndpointEvent& e : o.endpoints)
    if (e.kind == EndpointKind::SpeechEnd) return true;
  return false;
}

// The script cut into `frame_ms` periods (10 ms: half frames, so pre-roll and frames straddle the 20 ms
// Opus frames).
struct Periods {
  size_t n = 0, len = 0;
  std::span<const int16_t> mic(size_t i) const { return {script().mic.data() + i * len, len}; }
  std::span<const int16_t> played(size_t i) const { return {script().played.data() + i * len, len}; }
};
Periods periods(int frame_ms) {
  const size_t len = static_cast<size_t>(kRate / 1000 * frame_ms);
  return {script().mic.size() / len, len};
}

// The script's 1 s pauses end each utterance: a fixed 0.5 s of endpointing, as load_bench configures.
std::unique_ptr<LineChain> chain_at(int frame_ms) {
  LineChainConfig c = config(false);
  c.format = {kRate, frame_ms};
  c.endpointer.min_endpointing_ms = 500;
  c.endpointer.max_endpointing_ms = 500;
  auto ch = LineChain::create(c);
  EXPECT_TRUE(ch) << (ch ? "" : ch.error().message);
  return ch ? std::move(*ch) : nullptr;
}

class UtterancesOnTheThread : public ::testing::TestWithParam<int> {};

TEST_P(UtterancesOnTheThread, AreTheLoopsBlobsByteForByte) {
  const int frame_ms = GetParam();
  const Periods p = periods(frame_ms);
  const UtteranceOptions uo{.bitrate = 24000, .complexity = 5};
  // Before loop2: the chain and the encoder both on the loop.
  auto direct = chain_at(frame_ms);
  auto enc = UtteranceEncoder::create(kRate, uo);
  ASSERT_TRUE(direct && enc);
  LoopUtterances want(std::move(*enc));
  for (size_t i = 0; i < p.n; ++i) want.frame(direct->process_capture(p.mic(i), p.played(i)));
  std::printf("%d ms periods: %zu utterances ended\n", frame_ms, want.blobs.size());
  ASSERT_GE(want.blobs.size(), 3u);
  for (const auto& b : want.blobs) ASSERT_GT(b.size(), 500u);  // real speech, not dropped

  // loop2: the runner encodes on a real thread at its own pace; the loop takes each blob at its SpeechEnd.
  auto r = ChainRunner::create(chain_at(frame_ms), {.ring_ms = 250, .utterance = uo});
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_TRUE((*r)->encodes_utterances());
  std::atomic<bool> done{false};
  std::thread audio([&] {
    for (size_t i = 0; i < p.n; ++i) {
      while ((*r)->ready() > 10) std::this_thread::yield();
      (*r)->process(p.mic(i), p.played(i));
      if (i % 53 == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
    done = true;
  });
  std::vector<std::vector<uint8_t>> got;
  CaptureOutput out;
  size_t frames = 0;
  while (frames < p.n) {
    if ((*r)->next(out)) {
      ++frames;
      if (ends_speech(out)) {
        auto b = (*r)->take_utterance();
        got.push_back(b ? std::move(*b) : std::vector<uint8_t>{});
        EXPECT_FALSE((*r)->take_utterance());  // handed over once
      }
    } else if (done && (*r)->ready() == 0) {
      break;
    } else {
      std::this_thread::yield();
    }
  }
  audio.join();
  EXPECT_EQ(frames, p.n);
  EXPECT_EQ((*r)->dropped(), 0u);
  EXPECT_EQ((*r)->utterance_drops(), 0u);
  ASSERT_EQ(got.size(), want.blobs.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want.blobs[i]) << "utterance " << i;
}

INSTANTIATE_TEST_SUITE_P(FrameMs, UtterancesOnTheThread, ::testing::Values(20, 10));

TEST(ChainRunner, UtterancesAllocateNothingPerFrameOnTheThreadOrTheLoop) {
  auto r = ChainRunner::create(chain_at(20), {.ring_ms = 250, .utterance = UtteranceOptions{}});
  ASSERT_TRUE(r);
  CaptureOutput out;
  uint64_t thread_allocs = 0, loop_allocs = 0, blobs = 0;
  size_t f = 0;
  // The thread runs a batch of frames while the loop waits (so the process-wide counters see only it); then
  // the loop takes them, its allocations counted apart from the frames that end an utterance (the blob).
  // The first 300 frames (two utterances) are warm-up: the loop's packet buffer reaches its size.
  while (f < script().frames) {
    const size_t batch_end = std::min(script().frames, f + 8);
    std::thread audio([&] {
      const osvi::test::AllocSnapshot s;
      for (size_t k = f; k < batch_end; ++k) (*r)->process(mic(k), played(k));
      if (f >= 300) thread_allocs += s.new_delta() + s.malloc_delta();
    });
    audio.join();
    for (; f < batch_end; ++f) {
      const osvi::test::AllocSnapshot s;
      ASSERT_TRUE((*r)->next(out));
      const bool ends = ends_speech(out);
      if (f >= 300 && !ends) loop_allocs += s.new_delta() + s.malloc_delta();
      if (ends && (*r)->take_utterance()) ++blobs;
    }
  }
  EXPECT_GE(blobs, 3u);  // utterances did end, in the measured window too
  EXPECT_EQ(thread_allocs, 0u);
  EXPECT_EQ(loop_allocs, 0u);
  EXPECT_EQ((*r)->utterance_drops(), 0u);
}

TEST(ChainRunner, AnUtteranceWhoseRecordsFindTheRingFullIsDroppedAndCounted) {
  // The loop is away for 4 s: the frames' ring fills first (frames dropped whole), then the utterance ring.
  auto r = ChainRunner::create(chain_at(20),
                               {.ring_ms = 60, .utterance = UtteranceOptions{}, .utterance_history_ms = 40});
  ASSERT_TRUE(r);
  for (size_t f = 0; f < 200; ++f) (*r)->process(mic(f), played(f));
  EXPECT_GT((*r)->dropped(), 0u);
  EXPECT_GT((*r)->utterance_drops(), 0u);
  // Back in step: later utterances reach the loop whole.
  CaptureOutput out;
  while ((*r)->next(out)) {
  }
  // Utterances whose Onset the loop saw after it came back: each one's blob arrives.
  size_t ended = 0, blobs = 0;
  bool fresh = false;
  for (size_t f = 200; f < script().frames; ++f) {
    (*r)->process(mic(f), played(f));
    while ((*r)->next(out))
      for (const EndpointEvent& e : out.endpoints) {
        if (e.kind == EndpointKind::Onset) fresh = true;
        if (e.kind == EndpointKind::OnsetRejected) fresh = false;
        if (e.kind != EndpointKind::SpeechEnd) continue;
        auto b = (*r)->take_utterance();
        if (std::exchange(fresh, false)) {
          ++ended;
          if (b && b->size() > 500) ++blobs;
        }
      }
  }
  EXPECT_GE(ended, 2u);
  EXPECT_EQ(blobs, ended);
  EXPECT_FALSE(ChainRunner::create(chain_at(20), {.utterance = UtteranceOptions{.bitrate = 1000}}));
}

// A sink that keeps each write() apart, to see pages arrive whole.
class PageSink final : public ByteSink {
 public:
  bool write(std::span<const uint8_t> bytes) noexcept override {
    pages.emplace_back(bytes.begin(), bytes.end());
    return !refuse;
  }
  std::vector<std::vector<uint8_t>> pages;
  bool refuse = false;
};

TEST(PagePipe, PagesArriveWholeAndInOrderAndAFullRingFailsTheRecording) {
  PageSink out;
  PagePipe pipe(out, 0);  // the smallest ring: the largest page, rounded up to a power of two
  EXPECT_GE(pipe.ring_bytes(), 8192u + 255u + 27u + 4u);
  EXPECT_EQ(PagePipe::ring_bytes_for(32000), 16000u);  // four seconds at the default recording bitrate
  std::vector<uint8_t> a(5000, 1), b(3000, 2), c(8000, 3);
  EXPECT_TRUE(pipe.write(a));
  EXPECT_TRUE(pipe.write(b));
  pipe.drain();
  ASSERT_EQ(out.pages.size(), 2u);
  EXPECT_EQ(out.pages[0], a);
  EXPECT_EQ(out.pages[1], b);
  EXPECT_FALSE(pipe.failed());
  // The loop away: pages pile up until one does not fit. write() still says yes (the recorder must not
  // fail on the audio thread), the pipe counts it.
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(pipe.write(c));
  EXPECT_GE(pipe.overruns(), 1u);
  EXPECT_TRUE(pipe.failed());
  pipe.drain();
  for (size_t i = 2; i < out.pages.size(); ++i) EXPECT_EQ(out.pages[i], c);
  // A file that refuses bytes fails it too.
  PageSink refusing;
  refusing.refuse = true;
  PagePipe p2(refusing, 0);
  EXPECT_TRUE(p2.write(a));
  EXPECT_FALSE(p2.failed());
  p2.drain();
  EXPECT_TRUE(p2.failed());
  EXPECT_GE(PagePipe::ring_bytes_for(256000), 128000u);  // four seconds at a high bitrate
}

}  // namespace
