// Answering-machine detection on synthesised calls (human hello, machine greeting + beep, silence) and beeps.
#include "osvi/audio/amd.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "wav.hpp"

namespace {

using osvi::audio::AmdConfig;
using osvi::audio::AmdVerdict;
using osvi::audio::AnsweringMachineDetector;
using osvi::audio::Beep;
using osvi::audio::BeepDetector;

constexpr int kRate = 16000;

// Line noise around -60 dBFS so "silence" is not digital zero.
void append_silence(std::vector<int16_t>& x, int ms, unsigned seed = 3) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> n(0.0, 25.0);
  for (int i = 0; i < ms * kRate / 1000; ++i) x.push_back(static_cast<int16_t>(std::lround(n(rng))));
}

void append(std::vector<int16_t>& x, const std::vector<int16_t>& y) {
  x.insert(x.end(), y.begin(), y.end());
}

struct Outcome {
  AmdVerdict verdict;
  std::string reason;
  double at_s;
};

Outcome run_amd(const std::vector<int16_t>& x, const AmdConfig& cfg = {}) {
  auto amd = AnsweringMachineDetector::create(kRate, cfg);
  EXPECT_TRUE(amd.ok());
  for (size_t i = 0; i < x.size() && amd->result().verdict == AmdVerdict::pending; i += 320)
    amd->process(std::span(x).subspan(i, std::min<size_t>(320, x.size() - i)));
  const auto& r = amd->result();
  const Outcome o{r.verdict, osvi::audio::describe(r, cfg), static_cast<double>(r.decided_at) / kRate};
  std::printf("  AMD: %s %s at %.2f s (words %d, voice %d ms)\n", osvi::audio::to_string(o.verdict),
              o.reason.c_str(), o.at_s, r.words, r.voice_ms);
  return o;
}

std::vector<Beep> run_beep(const std::vector<int16_t>& x, int rate = kRate) {
  auto det = BeepDetector::create(rate);
  EXPECT_TRUE(det.ok());
  std::vector<Beep> beeps;
  const size_t frame = static_cast<size_t>(rate / 50);
  for (size_t i = 0; i < x.size(); i += frame)
    if (auto b = det->process(std::span(x).subspan(i, std::min(frame, x.size() - i)))) beeps.push_back(*b);
  return beeps;
}

std::vector<int16_t> tone(int rate, double freq, int ms, double dbfs) {
  const double a = osvi::audio::dbfs_to_amplitude(dbfs);
  std::vector<int16_t> y;
  for (int i = 0; i < ms * rate / 1000; ++i)
    y.push_back(
        static_cast<int16_t>(std::lround(a * std::sin(2 * std::numbers::pi * freq * i / rate + 0.3))));
  return y;
}

TEST(Amd, ShortHelloThenSilenceIsHuman) {
  std::vector<int16_t> x;
  append_silence(x, 500);
  append(x, osvi::test::espeak_speech("Hello?"));
  append_silence(x, 3000);
  const Outcome o = run_amd(x);
  EXPECT_EQ(o.verdict, AmdVerdict::human) << o.reason;
  EXPECT_LE(o.at_s, 3.0);
}

TEST(Amd, TwoShortWordsThenWaitIsHuman) {
  std::vector<int16_t> x;
  append_silence(x, 400);
  append(x, osvi::test::espeak_speech("Yes?", "en+f3"));
  append_silence(x, 350);
  append(x, osvi::test::espeak_speech("Hello?", "en+f3"));
  append_silence(x, 3000);
  const Outcome o = run_amd(x);
  EXPECT_EQ(o.verdict, AmdVerdict::human) << o.reason;
  EXPECT_LE(o.at_s, 3.0);
}

TEST(Amd, LongGreetingThenBeepIsMachineAndBeepIsTimed) {
  std::vector<int16_t> x;
  append_silence(x, 300);
  const auto greeting = osvi::test::espeak_speech(
      "Hi, you have reached the office of Doctor Miller. We cannot take your call right now. "
      "Please leave a message after the tone.");
  std::printf("  greeting %.2f s\n", static_cast<double>(greeting.size()) / kRate);
  ASSERT_GE(greeting.size(), static_cast<size_t>(4 * kRate));
  append(x, greeting);
  append_silence(x, 300);
  x.insert(x.end(), 77, 0);  // puts the beep's edges inside the detector's sub-blocks
  const size_t beep_start = x.size();
  append(x, tone(kRate, 1000.0, 400, -12.0));
  const size_t beep_end = x.size();
  append_silence(x, 1500);

  const Outcome o = run_amd(x);
  EXPECT_EQ(o.verdict, AmdVerdict::machine) << o.reason;
  EXPECT_LE(o.at_s, 3.0);

  const auto beeps = run_beep(x);
  ASSERT_EQ(beeps.size(), 1u);
  const double start_err =
      (static_cast<double>(beeps[0].start) - static_cast<double>(beep_start)) * 1000 / kRate;
  const double end_err = (static_cast<double>(beeps[0].end) - static_cast<double>(beep_end)) * 1000 / kRate;
  std::printf("  beep %.1f Hz, start error %+.2f ms, end error %+.2f ms\n", beeps[0].freq_hz, start_err,
              end_err);
  EXPECT_NEAR(beeps[0].freq_hz, 1000.0, 10.0);
  EXPECT_NEAR(start_err, 0.0, 20.0);
  EXPECT_NEAR(end_err, 0.0, 20.0);
}

TEST(Amd, SilenceOnlyIsMachineByInitialSilence) {
  // Asterisk semantics: nobody speaking for initial_silence_ms is a machine (reason INITIALSILENCE).
  std::vector<int16_t> x;
  append_silence(x, 4000);
  const Outcome o = run_amd(x);
  EXPECT_EQ(o.verdict, AmdVerdict::machine);
  EXPECT_EQ(o.reason, "INITIALSILENCE-2500-2500");
  EXPECT_NEAR(o.at_s, 2.5, 0.011);
}

TEST(Amd, ExternalSpeechFlagDrivesTheStateMachine) {
  auto amd = AnsweringMachineDetector::create(kRate);
  ASSERT_TRUE(amd.ok());
  const std::vector<int16_t> quiet(320, 0);
  // 200 ms "silence", then 2 s flagged as speech by an external VAD although the samples are zero.
  for (int i = 0; i < 10; ++i) amd->process(quiet, false);
  for (int i = 0; i < 100 && amd->result().verdict == AmdVerdict::pending; ++i) amd->process(quiet, true);
  EXPECT_EQ(amd->result().verdict, AmdVerdict::machine);
  EXPECT_STREQ(amd->result().reason, "LONGGREETING");
}

TEST(Amd, NoVerdictWithinWindowIsUnsure) {
  // Words separated by pauses shorter than after_greeting_silence but never 1.5 s of voice in total and
  // fewer than maximum_number_of_words: with maximum_number_of_words raised, the window runs out.
  AmdConfig cfg;
  cfg.maximum_number_of_words = 100;
  cfg.greeting_ms = 100000;
  std::vector<int16_t> x;
  append_silence(x, 300);
  for (int i = 0; i < 12; ++i) {
    append(x, tone(kRate, 300.0, 150, -20.0));
    append_silence(x, 200, static_cast<unsigned>(i));
  }
  const Outcome o = run_amd(x, cfg);
  EXPECT_EQ(o.verdict, AmdVerdict::unsure);
  EXPECT_EQ(o.reason, "TOOLONG");
  EXPECT_NEAR(o.at_s, 3.0, 0.011);
}

TEST(Beep, EightKilohertzInNoise) {
  constexpr int rate = 8000;
  // Odd lead-in lengths put the tone edges anywhere inside the detector's 10 ms sub-blocks.
  const std::vector<std::pair<double, size_t>> cases = {{440.0, 37}, {950.0, 0}, {1400.0, 61}, {1900.0, 13}};
  for (const auto& [f, offset] : cases) {
    const size_t lead = static_cast<size_t>(rate / 2) + offset;
    std::vector<int16_t> x(lead, 0);
    const auto t = tone(rate, f, 250, -18.0);
    x.insert(x.end(), t.begin(), t.end());
    x.insert(x.end(), static_cast<size_t>(rate / 2), 0);
    std::mt19937 rng(5);
    std::normal_distribution<double> n(0.0, osvi::audio::dbfs_to_amplitude(-18.0 - 20.0) / std::sqrt(2.0));
    for (auto& s : x) s = static_cast<int16_t>(std::lround(s + n(rng)));
    const auto beeps = run_beep(x, rate);
    ASSERT_EQ(beeps.size(), 1u) << f;
    std::printf(
        "  %.0f Hz @8k, 20 dB SNR: measured %.1f Hz, start %+.2f ms, end %+.2f ms\n", f, beeps[0].freq_hz,
        (static_cast<double>(beeps[0].start) - static_cast<double>(lead)) * 1000 / rate,
        (static_cast<double>(beeps[0].end) - static_cast<double>(lead) - 250.0 * rate / 1000) * 1000 / rate);
    EXPECT_NEAR(beeps[0].freq_hz, f, f * 0.01);
    EXPECT_NEAR(static_cast<double>(beeps[0].start), static_cast<double>(lead), 20.0 * rate / 1000);
    EXPECT_NEAR(static_cast<double>(beeps[0].end), static_cast<double>(lead) + 250.0 * rate / 1000,
                20.0 * rate / 1000);
  }
  // Too short (100 ms) and out of range (300 Hz): no beep.
  std::vector<int16_t> x(static_cast<size_t>(rate / 2), 0);
  const auto shorty = tone(rate, 1000.0, 100, -18.0), low = tone(rate, 300.0, 400, -18.0);
  x.insert(x.end(), shorty.begin(), shorty.end());
  x.insert(x.end(), static_cast<size_t>(rate / 2), 0);
  x.insert(x.end(), low.begin(), low.end());
  x.insert(x.end(), static_cast<size_t>(rate / 2), 0);
  EXPECT_TRUE(run_beep(x, rate).empty());
}

TEST(Beep, SpeechIsNotABeep) {
  std::vector<int16_t> x = osvi::test::librivox_speech();
  append(x, osvi::test::espeak_speech("Please leave a message after the tone. Ooooh, aaaah, mmmmm, eeeee. "
                                      "Beep. Hello? Is that you? Ring ring.",
                                      "en+f3"));
  const auto beeps = run_beep(x);
  std::printf("  %.1f s of speech: %zu beeps\n", static_cast<double>(x.size()) / kRate, beeps.size());
  for (const auto& b : beeps)
    std::printf("    beep %.1f Hz %.3f-%.3f s\n", b.freq_hz, static_cast<double>(b.start) / kRate,
                static_cast<double>(b.end) / kRate);
  EXPECT_TRUE(beeps.empty());
}

}  // namespace
