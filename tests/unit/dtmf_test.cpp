// DTMF detector/generator: Q.24 acceptance (duration, frequency, twist, noise) and talk-off on 5+ min of
// speech.
#include "osvi/audio/dtmf.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "wav.hpp"

namespace {

using osvi::audio::DtmfDetector;
using osvi::audio::DtmfEvent;
using osvi::audio::DtmfGenerator;
using osvi::audio::DtmfGeneratorConfig;

const std::string kAll = "123A456B789C*0#D";

// 16 kHz -> 8 kHz with a 63-tap windowed-sinc low-pass (3.6 kHz), enough for a test corpus.
std::vector<int16_t> to_8k(const std::vector<int16_t>& in) {
  constexpr int kTaps = 63;
  std::vector<double> h(kTaps);
  for (int i = 0; i < kTaps; ++i) {
    const double m = i - (kTaps - 1) / 2.0;
    const double sinc =
        m == 0.0 ? 2 * 0.225 : std::sin(2 * std::numbers::pi * 0.225 * m) / (std::numbers::pi * m);
    h[static_cast<size_t>(i)] = sinc * (0.54 - 0.46 * std::cos(2 * std::numbers::pi * i / (kTaps - 1)));
  }
  std::vector<int16_t> out;
  for (size_t n = 0; n + kTaps < in.size(); n += 2) {
    double acc = 0.0;
    for (size_t k = 0; k < kTaps; ++k) acc += h[k] * in[n + k];
    out.push_back(static_cast<int16_t>(std::clamp(std::lround(acc), -32768L, 32767L)));
  }
  return out;
}

// 5+ minutes of varied speech at 16 kHz, built once per binary: LibriVox read speech looped at several
// gains (the loudest clip), and espeak-ng voices reading numbers, dates and prices.
const std::vector<int16_t>& speech_16k() {
  static const std::vector<int16_t> corpus = [] {
    std::vector<int16_t> all;
    const std::vector<int16_t> libri = osvi::test::librivox_speech();
    for (double gain : {1.0, 0.5, 2.0, 0.25, 3.5, 1.5, 0.7, 1.2, 5.0, 0.35}) {
      for (int16_t s : libri)
        all.push_back(static_cast<int16_t>(std::clamp(std::lround(s * gain), -32768L, 32767L)));
    }
    const std::string text =
        "Good morning, thank you for calling the branch office. Your account number is 4 7 1 9, 2 0 8 6. "
        "Please press one for sales, two for support, or nine to hear these options again. "
        "Our opening hours are Monday to Friday, from nine thirty until five forty five. "
        "The total amount due is three hundred and twenty seven dollars and fifty cents, payable by the "
        "twenty first of November, two thousand and twenty six. Call us back on 0 8 0 0, 5 5 5, 1 2 3 4. "
        "Hmm, let me see. Yes! Absolutely. No, I do not think so. Could you repeat that, please? "
        "The quick brown fox jumps over the lazy dog while eleven elegant elephants eat eight oranges.";
    for (const char* voice : {"en+f3", "en-us", "en+m3", "en+f4"}) {
      const auto s = osvi::test::espeak_speech(text, voice);
      all.insert(all.end(), s.begin(), s.end());
    }
    return all;
  }();
  return corpus;
}

const std::vector<int16_t>& speech(int rate) {
  static const std::vector<int16_t> s8 = to_8k(speech_16k());
  return rate == 8000 ? s8 : speech_16k();
}

std::string detect(int rate, const std::vector<int16_t>& signal, std::vector<DtmfEvent>* events = nullptr) {
  auto det = DtmfDetector::create(rate);
  EXPECT_TRUE(det.ok());
  std::string digits;
  const size_t frame = static_cast<size_t>(rate / 50);
  for (size_t i = 0; i < signal.size(); i += frame) {
    det->process(std::span(signal).subspan(i, std::min(frame, signal.size() - i)));
    while (auto e = det->next_event()) {
      digits += e->digit;
      if (events) events->push_back(*e);
    }
  }
  return digits;
}

void add_noise(std::vector<int16_t>& x, double rms, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> n(0.0, rms);
  for (auto& s : x) s = static_cast<int16_t>(std::clamp(std::lround(s + n(rng)), -32768L, 32767L));
}

// Two sines at arbitrary frequencies (for off-nominal tests), on for on_ms, then off_ms of silence.
void append_dual(std::vector<int16_t>& out, int rate, double f1, double f2, double a1, double a2,
                 double on_ms, double off_ms) {
  const auto on = static_cast<size_t>(on_ms * rate / 1000.0);
  for (size_t n = 0; n < on; ++n) {
    const double t = static_cast<double>(n) / rate;
    out.push_back(static_cast<int16_t>(std::lround(a1 * std::sin(2 * std::numbers::pi * f1 * t) +
                                                   a2 * std::sin(2 * std::numbers::pi * f2 * t + 1.0))));
  }
  out.insert(out.end(), static_cast<size_t>(off_ms * rate / 1000.0), 0);
}

class DtmfRate : public ::testing::TestWithParam<int> {};

TEST_P(DtmfRate, AllDigits40msWithNoiseAndTwist) {
  const int rate = GetParam();
  for (double twist : {4.0, -4.0}) {
    DtmfGeneratorConfig cfg;
    cfg.on_ms = 40;
    cfg.off_ms = 40;
    cfg.level_dbfs = -12.0;
    cfg.twist_db = twist;
    auto tones = osvi::audio::dtmf_render(rate, kAll, cfg);
    ASSERT_TRUE(tones.ok());
    std::vector<int16_t> x(static_cast<size_t>(rate / 5), 0);  // 200 ms lead-in
    x.insert(x.end(), tones->begin(), tones->end());
    x.insert(x.end(), static_cast<size_t>(rate / 5), 0);
    const double a_lo = osvi::audio::dbfs_to_amplitude(cfg.level_dbfs);
    const double a_hi = a_lo * std::pow(10.0, twist / 20.0);
    const double tone_power = (a_lo * a_lo + a_hi * a_hi) / 2.0;
    add_noise(x, std::sqrt(tone_power / std::pow(10.0, 15.0 / 10.0)), 7);
    std::vector<DtmfEvent> ev;
    const std::string got = detect(rate, x, &ev);
    std::printf("rate %d twist %+.0f dB SNR 15 dB: detected \"%s\"\n", rate, twist, got.c_str());
    EXPECT_EQ(got, kAll);
    for (size_t i = 0; i < ev.size() && i < kAll.size(); ++i) {
      const double expected_start = 0.2 + 0.08 * static_cast<double>(i);
      const double start = static_cast<double>(ev[i].start) / rate;
      EXPECT_NEAR(start, expected_start, 0.015) << "digit " << ev[i].digit;
    }
  }
}

TEST_P(DtmfRate, RejectsShortTonesAtEveryAlignment) {
  const int rate = GetParam();
  int found = 0;
  for (int offset = 0; offset < 60; offset += 3) {  // sub-block phase relative to the tone
    DtmfGeneratorConfig cfg;
    cfg.on_ms = 20;
    cfg.off_ms = 60;
    auto tones = osvi::audio::dtmf_render(rate, kAll, cfg);
    ASSERT_TRUE(tones.ok());
    std::vector<int16_t> x(static_cast<size_t>(offset * rate / 8000 + rate / 10), 0);
    x.insert(x.end(), tones->begin(), tones->end());
    const std::string got = detect(rate, x);
    found += static_cast<int>(got.size());
  }
  std::printf("rate %d: 20 ms tones, 20 alignments x 16 digits: %d detected\n", rate, found);
  EXPECT_EQ(found, 0);
}

TEST_P(DtmfRate, FrequencyDeviation) {
  const int rate = GetParam();
  const double a = osvi::audio::dbfs_to_amplitude(-12.0);
  // {row, column} pairs for every digit; each is shifted by the same factor.
  const std::vector<std::pair<double, double>> keys = {{697, 1209}, {770, 1336}, {852, 1477}, {941, 1633},
                                                       {697, 1633}, {941, 1209}, {852, 1336}, {770, 1477}};
  for (double dev : {-0.05, -0.035, -0.015, 0.015, 0.035, 0.05}) {
    std::vector<int16_t> x(static_cast<size_t>(rate / 10), 0);
    for (const auto& [r, c] : keys) append_dual(x, rate, r * (1 + dev), c * (1 + dev), a, a, 60, 60);
    const std::string got = detect(rate, x);
    std::printf("rate %d deviation %+.1f %%: %zu of %zu detected\n", rate, dev * 100, got.size(),
                keys.size());
    if (std::abs(dev) <= 0.015)
      EXPECT_EQ(got, "159DA*86") << "within Q.24 acceptance";
    else
      EXPECT_EQ(got, "") << "outside Q.24 rejection";
  }
}

TEST_P(DtmfRate, NoTalkOffOnFiveMinutesOfSpeech) {
  const int rate = GetParam();
  const auto& s = speech(rate);
  std::vector<DtmfEvent> ev;
  const std::string got = detect(rate, s, &ev);
  const double minutes = static_cast<double>(s.size()) / rate / 60.0;
  std::printf("rate %d: %.2f min of speech, %zu false digits \"%s\"\n", rate, minutes, got.size(),
              got.c_str());
  for (const auto& e : ev)
    std::printf("  false digit %c at %.3f s\n", e.digit, static_cast<double>(e.start) / rate);
  EXPECT_GE(minutes, 5.0);
  EXPECT_EQ(got, "");
}

TEST_P(DtmfRate, GeneratorRoundTripAndChunking) {
  const int rate = GetParam();
  auto whole = osvi::audio::dtmf_render(rate, "0123456789*#ABCD,9");
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(detect(rate, *whole), "0123456789*#ABCD9");
  // The same digits generated 7 samples at a time are bit-identical (phase carried across calls).
  auto gen = DtmfGenerator::create(rate);
  ASSERT_TRUE(gen.ok());
  ASSERT_TRUE(gen->start("0123456789*#ABCD,9").ok());
  std::vector<int16_t> chunked;
  std::array<int16_t, 7> buf{};
  while (!gen->done()) {
    const size_t n = gen->generate(buf);
    chunked.insert(chunked.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
  }
  EXPECT_EQ(chunked, *whole);
  // 17 digits of 70 + 70 ms, plus the comma's 140 ms extra pause.
  EXPECT_EQ(whole->size(), static_cast<size_t>(rate) * 140 / 1000 * 18);
}

INSTANTIATE_TEST_SUITE_P(Rates, DtmfRate, ::testing::Values(8000, 16000));

TEST(Dtmf, RejectsBadInput) {
  EXPECT_FALSE(DtmfDetector::create(44100).ok());
  auto gen = DtmfGenerator::create(8000);
  ASSERT_TRUE(gen.ok());
  EXPECT_FALSE(gen->start("12x").ok());
  EXPECT_FALSE(gen->start(std::string(65, '1')).ok());
  EXPECT_TRUE(gen->start("a*#").ok());
}

}  // namespace
