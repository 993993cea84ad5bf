// The per-line chain end to end on buffers: echo removed, digits and utterances found, Opus out, playback
// decoded to the line rate, the recording fed on the capture clock, AMD on demand.
#include "osvi/audio/line_chain.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "wav.hpp"

namespace {

using namespace osvi::audio;

constexpr int kRate = 16000;
constexpr size_t kFrame = 320;

std::unique_ptr<LineChain> make_chain(LineChainConfig cfg = {}) {
  cfg.format = {kRate, 20};
  auto c = LineChain::create(cfg);
  EXPECT_TRUE(c) << (c ? "" : c.error().message);
  return c ? std::move(*c) : nullptr;
}

double energy(std::span<const int16_t> x) {
  double e = 0;
  for (int16_t s : x) e += static_cast<double>(s) * s;
  return e;
}

// Echo of `far` through a 30 ms delay with a short decaying tail, 6 dB down.
std::vector<int16_t> echo_of(const std::vector<int16_t>& far) {
  std::vector<int16_t> mic(far.size(), 0);
  for (size_t i = 600; i < far.size(); ++i) {
    double e = 0.5 * far[i - 480] + 0.2 * far[i - 520] - 0.1 * far[i - 600];
    mic[i] = static_cast<int16_t>(std::clamp(e, -32768.0, 32767.0));
  }
  return mic;
}

TEST(LineChain, RemovesTheEchoOfWhatWasPlayed) {
  auto chain = make_chain();
  ASSERT_TRUE(chain);
  std::vector<int16_t> far = osvi::test::librivox_speech();
  far.resize(kRate * 8 / kFrame * kFrame);
  const std::vector<int16_t> mic = echo_of(far);
  double in_e = 0, out_e = 0;
  for (size_t f = 0; f + kFrame <= far.size(); f += kFrame) {
    const auto& out = chain->process_capture({mic.data() + f, kFrame}, {far.data() + f, kFrame});
    ASSERT_EQ(out.clean.size(), kFrame);
    if (f >= static_cast<size_t>(3 * kRate)) {  // after convergence
      in_e += energy({mic.data() + f, kFrame});
      out_e += energy(out.clean);
    }
  }
  const double erle = 10 * std::log10(in_e / std::max(out_e, 1.0));
  std::printf("chain ERLE after 3 s: %.1f dB\n", erle);
  EXPECT_GE(erle, 20.0);
  EXPECT_EQ(chain->frames(), far.size() / kFrame);
}

TEST(LineChain, FindsDigitsAndUtterances) {
  auto chain = make_chain();
  ASSERT_TRUE(chain);
  auto digits = dtmf_render(kRate, "159#");
  ASSERT_TRUE(digits);
  std::vector<int16_t> speech = osvi::test::espeak_speech("I would like to book an appointment for Tuesday.");
  std::vector<int16_t> mic(kRate / 2, 0);
  mic.insert(mic.end(), digits->begin(), digits->end());
  mic.insert(mic.end(), kRate, 0);
  mic.insert(mic.end(), speech.begin(), speech.end());
  mic.insert(mic.end(), 3 * kRate, 0);
  mic.resize(mic.size() / kFrame * kFrame);
  const std::vector<int16_t> silence(kFrame, 0);

  std::string heard;
  int starts = 0, ends = 0, onsets = 0;
  for (size_t f = 0; f < mic.size(); f += kFrame) {
    const auto& out = chain->process_capture({mic.data() + f, kFrame}, silence);
    if (out.dtmf) heard += out.dtmf->digit;
    for (const EndpointEvent& e : out.endpoints) {
      starts += e.kind == EndpointKind::SpeechStart;
      ends += e.kind == EndpointKind::SpeechEnd;
      onsets += e.kind == EndpointKind::Onset;
    }
  }
  EXPECT_EQ(heard, "159#");
  EXPECT_GE(starts, 1);
  EXPECT_EQ(starts, ends) << "every utterance ends within the trailing silence";
  EXPECT_GE(onsets, starts);
}

TEST(LineChain, PlaybackIsResampledToTheLineRate) {
  auto chain = make_chain();
  ASSERT_TRUE(chain);
  std::vector<int16_t> up(480);
  for (size_t i = 0; i < up.size(); ++i)
    up[i] = static_cast<int16_t>(8000 * std::sin(2 * M_PI * 440 * static_cast<double>(i) / 24000.0));
  std::vector<int16_t> out(chain->max_playback_output());
  size_t total = 0;
  for (int i = 0; i < 50; ++i) {
    auto n = chain->resample_playback(up, out);
    ASSERT_TRUE(n) << n.error().message;
    total += *n;
  }
  // 50 pieces of 20 ms = 1 s at 16 kHz, give or take the resampler's latency.
  EXPECT_NEAR(static_cast<double>(total), 16000.0, 64.0);
}

TEST(LineChain, RecordingFollowsTheCaptureClock) {
  auto chain = make_chain();
  ASSERT_TRUE(chain);
  MemorySink sink;
  auto rec = CallRecorder::create(sink, {});
  ASSERT_TRUE(rec);
  chain->attach_recorder(&*rec);
  const std::vector<int16_t> a(kFrame, 100), b(kFrame, 0);
  for (int i = 0; i < 100; ++i) chain->process_capture(a, b);
  chain->attach_recorder(nullptr);
  chain->process_capture(a, b);
  auto summary = rec->finish();
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->samples, 100 * kFrame);
  EXPECT_EQ(chain->recorder_errors(), 0u);
  EXPECT_GT(sink.bytes().size(), 100u);
}

TEST(LineChain, AnsweringMachineDetectionOnDemand) {
  auto chain = make_chain();
  ASSERT_TRUE(chain);
  std::vector<int16_t> mic(kRate / 2, 0);
  auto hello = osvi::test::espeak_speech("Hello?");
  mic.insert(mic.end(), hello.begin(), hello.end());
  mic.resize(mic.size() + 3 * kRate, 0);
  mic.resize(mic.size() / kFrame * kFrame);
  const std::vector<int16_t> silence(kFrame, 0);
  chain->set_amd(true);
  AmdVerdict verdict = AmdVerdict::pending;
  for (size_t f = 0; f < mic.size() && verdict == AmdVerdict::pending; f += kFrame)
    verdict = chain->process_capture({mic.data() + f, kFrame}, silence).amd;
  EXPECT_EQ(verdict, AmdVerdict::human);
  // Once decided, AMD stops and reports nothing more.
  EXPECT_EQ(chain->process_capture(silence, silence).amd, AmdVerdict::pending);
}

TEST(LineChain, RefusesWrongFrameSizesAndBadConfig) {
  auto chain = make_chain();
  ASSERT_TRUE(chain);
  const std::vector<int16_t> short_frame(100, 0), frame(kFrame, 0);
  EXPECT_TRUE(chain->process_capture(short_frame, frame).clean.empty());
  EXPECT_EQ(chain->frames(), 0u);
  LineChainConfig bad;
  bad.format = {44100, 20};
  EXPECT_FALSE(LineChain::create(bad));
  LineChainConfig bad_vad;
  bad_vad.vad = "loud";
  EXPECT_FALSE(LineChain::create(bad_vad));
}

}  // namespace
