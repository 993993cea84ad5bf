// Call-progress detector: each plan's tones in noise and off-frequency, cross-plan cadences, speech immunity.
#include "osvi/audio/call_progress.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "wav.hpp"

namespace {

using osvi::audio::CallProgressConfig;
using osvi::audio::CallProgressDetector;
using osvi::audio::CallProgressEvent;
using osvi::audio::ProgressTone;

struct Part {
  std::vector<double> freqs;  // empty: silence
  int ms;
  bool modulated = false;  // 25 Hz amplitude modulation (Indian "400*25"), depth 0.9
};

// Renders parts repeated until total_ms, each frequency scaled by (1 + freq_error), then adds white
// noise snr_db below the tone level. Per-component amplitude: -15 dBFS.
std::vector<int16_t> render(int rate, const std::vector<Part>& parts, int total_ms, double freq_error,
                            double snr_db, unsigned seed) {
  const double a = osvi::audio::dbfs_to_amplitude(-15.0);
  std::vector<double> x;
  double tone_power = 0.0;
  std::vector<double> phase(4, 0.0);
  const auto total = static_cast<size_t>(total_ms) * static_cast<size_t>(rate) / 1000;
  while (x.size() < total) {
    for (const Part& p : parts) {
      const auto n = static_cast<size_t>(p.ms) * static_cast<size_t>(rate) / 1000;
      for (size_t i = 0; i < n && x.size() < total; ++i) {
        double v = 0.0;
        for (size_t k = 0; k < p.freqs.size(); ++k) {
          v += a * std::sin(phase[k]);
          phase[k] += 2 * std::numbers::pi * p.freqs[k] * (1 + freq_error) / rate;
        }
        if (p.modulated)
          v *= (1.0 + 0.9 * std::sin(2 * std::numbers::pi * 25.0 * static_cast<double>(x.size()) / rate)) /
               1.9;
        x.push_back(v);
      }
      tone_power =
          std::max(tone_power, static_cast<double>(p.freqs.size()) * a * a / 2.0 / (p.modulated ? 2.0 : 1.0));
    }
  }
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0.0, std::sqrt(tone_power / std::pow(10.0, snr_db / 10.0)));
  std::vector<int16_t> out;
  for (double v : x)
    out.push_back(static_cast<int16_t>(std::clamp(std::lround(v + noise(rng)), -32768L, 32767L)));
  return out;
}

std::vector<CallProgressEvent> run(int rate, const std::string& plan, const std::vector<int16_t>& x) {
  CallProgressConfig cfg;
  cfg.plan = plan;
  auto det = CallProgressDetector::create(rate, cfg);
  EXPECT_TRUE(det.ok());
  std::vector<CallProgressEvent> ev;
  const size_t frame = static_cast<size_t>(rate / 50);
  for (size_t i = 0; i < x.size(); i += frame) {
    det->process(std::span(x).subspan(i, std::min(frame, x.size() - i)));
    while (auto e = det->next_event()) ev.push_back(*e);
  }
  return ev;
}

std::string names(const std::vector<CallProgressEvent>& ev) {
  std::string s;
  for (const auto& e : ev) s += std::string(s.empty() ? "" : ",") + osvi::audio::to_string(e.tone);
  return s.empty() ? "-" : s;
}

struct Case {
  ProgressTone tone;
  std::vector<Part> parts;
  int total_ms;
};

std::vector<Case> plan_cases(const std::string& plan) {
  const std::vector<Part> silence = {{{}, 1000}};
  if (plan == "us")
    return {
        {ProgressTone::dial, {{{350, 440}, 3000}}, 3000},
        {ProgressTone::ringback, {{{440, 480}, 2000}, {{}, 4000}}, 8500},
        {ProgressTone::busy, {{{480, 620}, 500}, {{}, 500}}, 3500},
        {ProgressTone::reorder, {{{480, 620}, 250}, {{}, 250}}, 2500},
        {ProgressTone::sit, {{{}, 300}, {{913.8}, 274}, {{1370.6}, 274}, {{1776.7}, 380}, {{}, 1000}}, 2228},
        {ProgressTone::sit, {{{}, 300}, {{985.2}, 380}, {{1428.5}, 274}, {{1776.7}, 380}, {{}, 1000}}, 2334},
    };
  if (plan == "eu")
    return {
        {ProgressTone::dial, {{{425}, 3000}}, 3000},
        {ProgressTone::ringback, {{{425}, 1000}, {{}, 4000}}, 6500},
        {ProgressTone::busy, {{{425}, 500}, {{}, 500}}, 3500},
        {ProgressTone::reorder, {{{425}, 250}, {{}, 250}}, 2500},
        {ProgressTone::sit, {{{}, 300}, {{950}, 330}, {{1400}, 330}, {{1800}, 330}, {{}, 1000}}, 2290},
    };
  return {
      {ProgressTone::dial, {{{400}, 3000, true}}, 3000},
      {ProgressTone::ringback, {{{400}, 400, true}, {{}, 200}, {{400}, 400, true}, {{}, 2000}}, 7000},
      {ProgressTone::busy, {{{400}, 750}, {{}, 750}}, 4500},
      {ProgressTone::reorder, {{{400}, 250}, {{}, 250}}, 2500},
      {ProgressTone::sit, {{{}, 300}, {{950}, 330}, {{1400}, 330}, {{1800}, 330}, {{}, 1000}}, 2290},
  };
}

class Plans : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(Plans, RecognisesEveryToneInNoiseAndOffFrequency) {
  const auto& [plan, rate] = GetParam();
  unsigned seed = 1;
  for (const Case& c : plan_cases(plan)) {
    for (double err : {-0.01, 0.01}) {
      const auto x = render(rate, c.parts, c.total_ms, err, 20.0, seed++);
      const auto ev = run(rate, plan, x);
      std::printf("%s %5d Hz %-8s err %+.0f%%: %s", plan.c_str(), rate, osvi::audio::to_string(c.tone),
                  err * 100, names(ev).c_str());
      if (!ev.empty()) std::printf("  certain at %.2f s", static_cast<double>(ev.front().certain_at) / rate);
      std::printf("\n");
      ASSERT_EQ(ev.size(), 1u) << names(ev);
      EXPECT_EQ(ev.front().tone, c.tone);
    }
  }
}

TEST_P(Plans, ForeignBusyIsNotThisPlansBusy) {
  const auto& [plan, rate] = GetParam();
  const std::vector<int> own_busy = plan == "us"   ? std::vector{500, 500}
                                    : plan == "eu" ? std::vector{500, 500}
                                                   : std::vector{750, 750};
  for (const std::string other : {"us", "eu", "in"}) {
    if (other == plan) continue;
    for (const Case& c : plan_cases(other)) {
      if (c.tone != ProgressTone::busy && c.tone != ProgressTone::reorder) continue;
      const bool same_cadence = c.parts[0].ms == own_busy[0] && c.parts[1].ms == own_busy[1];
      if (same_cadence) continue;
      const auto x = render(rate, c.parts, c.total_ms + 2000, 0.0, 20.0, 99);
      const auto ev = run(rate, plan, x);
      std::printf("%s %s fed to plan %s (%d Hz): %s\n", other.c_str(), osvi::audio::to_string(c.tone),
                  plan.c_str(), rate, names(ev).c_str());
      for (const auto& e : ev) EXPECT_NE(e.tone, ProgressTone::busy);
    }
  }
}

// LibriVox + espeak-ng speech, built once per binary.
const std::vector<int16_t>& speech_16k() {
  static const std::vector<int16_t> corpus = [] {
    std::vector<int16_t> all;
    const auto libri = osvi::test::librivox_speech();
    for (double gain : {1.0, 0.3, 3.0}) {
      for (int16_t s : libri)
        all.push_back(static_cast<int16_t>(std::clamp(std::lround(s * gain), -32768L, 32767L)));
    }
    const std::string text =
        "Hello, you have reached the front desk. Please hold while we connect you. Oooh, hmm, mmm, aaah. "
        "One, two, three, four, five, six, seven, eight, nine, ten. Is anybody there? Hello? Hello?";
    for (const char* voice : {"en+f3", "en-us", "en+m3"}) {
      const auto s = osvi::test::espeak_speech(text, voice);
      all.insert(all.end(), s.begin(), s.end());
    }
    return all;
  }();
  return corpus;
}

std::vector<int16_t> decimate(const std::vector<int16_t>& in) {
  // 2:1 after a 4-tap-pair average: crude, but speech-immunity does not need a clean anti-alias filter.
  std::vector<int16_t> out;
  for (size_t i = 0; i + 3 < in.size(); i += 2)
    out.push_back(static_cast<int16_t>((in[i] + 2 * in[i + 1] + in[i + 2]) / 4));
  return out;
}

TEST_P(Plans, SpeechIsNeverATone) {
  const auto& [plan, rate] = GetParam();
  static const std::vector<int16_t> s8 = decimate(speech_16k());
  const auto& s = rate == 8000 ? s8 : speech_16k();
  const auto ev = run(rate, plan, s);
  std::printf("plan %s %d Hz: %.1f s of speech -> %s\n", plan.c_str(), rate,
              static_cast<double>(s.size()) / rate, names(ev).c_str());
  EXPECT_TRUE(ev.empty());
}

INSTANTIATE_TEST_SUITE_P(All, Plans,
                         ::testing::Combine(::testing::Values("us", "eu", "in"),
                                            ::testing::Values(8000, 16000)));

TEST(CallProgress, RejectsBadConfig) {
  CallProgressConfig cfg;
  cfg.plan = "xx";
  EXPECT_FALSE(CallProgressDetector::create(8000, cfg).ok());
  cfg.plan = "eu";
  EXPECT_FALSE(CallProgressDetector::create(11025, cfg).ok());
  EXPECT_TRUE(CallProgressDetector::create(16000, cfg).ok());
}

}  // namespace
