// Speech (espeak-ng wrapper): renders audible, plausibly long, deterministic speech at call rates.
#include "osvi/speech/speech.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace {

using osvi::daemon::Speech;
using osvi::daemon::SpeechOptions;

double rms(const std::vector<int16_t>& s) {
  double acc = 0;
  for (int16_t v : s) acc += static_cast<double>(v) * v;
  return s.empty() ? 0.0 : std::sqrt(acc / static_cast<double>(s.size()));
}

std::unique_ptr<Speech> make(SpeechOptions o = {}) {
  auto r = Speech::create(std::move(o));
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? std::move(r).value() : nullptr;
}

TEST(Speech, RendersHelloWorldAtCallRates) {
  auto speech = make();
  ASSERT_TRUE(speech);
  EXPECT_EQ(speech->native_rate(), 22050);
  for (int rate : {8000, 16000}) {
    auto pcm = speech->render("hello world", rate);
    ASSERT_TRUE(pcm.ok()) << pcm.error().message;
    const double seconds = static_cast<double>(pcm->size()) / rate;
    EXPECT_GT(seconds, 0.5) << rate;
    EXPECT_LT(seconds, 3.0) << rate;
    EXPECT_GT(rms(*pcm), 300.0) << rate;  // speech, not near-silence
  }
}

TEST(Speech, DurationScalesWithRateExactly) {
  auto speech = make();
  ASSERT_TRUE(speech);
  auto a = speech->render("hello world", 8000);
  auto b = speech->render("hello world", 16000);
  auto native = speech->render("hello world", speech->native_rate());
  ASSERT_TRUE(a.ok() && b.ok() && native.ok());
  // Resampling keeps the length: floor(N * out / in) samples for N native samples.
  EXPECT_EQ(a->size(), native->size() * 8000 / 22050);
  EXPECT_EQ(b->size(), native->size() * 16000 / 22050);
}

TEST(Speech, IsDeterministic) {
  auto speech = make();
  ASSERT_TRUE(speech);
  auto first = speech->render("hello world", 16000);
  // espeak's generator keeps state between utterances: another text in between must not change the result.
  ASSERT_TRUE(speech->render("something else entirely", 16000).ok());
  auto second = speech->render("hello world", 16000);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, *second);
}

TEST(Speech, EmptyTextGivesNoSamples) {
  auto speech = make();
  ASSERT_TRUE(speech);
  for (const char* text : {"", "   \n\t"}) {
    auto pcm = speech->render(text, 16000);
    ASSERT_TRUE(pcm.ok()) << pcm.error().message;
    EXPECT_TRUE(pcm->empty());
  }
}

TEST(Speech, RejectsBadArguments) {
  SpeechOptions slow;
  slow.rate_wpm = 10;
  EXPECT_FALSE(Speech::create(slow).ok());
  SpeechOptions unknown;
  unknown.voice = "no-such-voice-xyz";
  EXPECT_FALSE(Speech::create(unknown).ok());
  SpeechOptions missing;
  missing.data_path = "/nonexistent/osvi-espeak";
  EXPECT_FALSE(Speech::create(missing).ok());
  auto speech = make();
  ASSERT_TRUE(speech);
  EXPECT_FALSE(speech->render("hello", 4000).ok());
  EXPECT_FALSE(speech->render(std::string(Speech::kMaxTextBytes + 1, 'a'), 16000).ok());
}

TEST(Speech, SharesTheGlobalEngineBetweenVoices) {
  SpeechOptions fast;
  fast.rate_wpm = 330;
  auto normal = make();
  auto quick = make(fast);
  ASSERT_TRUE(normal && quick);
  // A different data_path cannot join a live initialisation.
  SpeechOptions other;
  other.data_path = "/tmp";
  EXPECT_FALSE(Speech::create(other).ok());
  auto slow_pcm = normal->render("one two three four five six", 16000);
  auto fast_pcm = quick->render("one two three four five six", 16000);
  auto slow_again = normal->render("one two three four five six", 16000);
  ASSERT_TRUE(slow_pcm.ok() && fast_pcm.ok() && slow_again.ok());
  // Each object re-applies its own rate, whatever the other one set last.
  EXPECT_LT(fast_pcm->size(), slow_pcm->size() * 3 / 4);
  EXPECT_EQ(*slow_pcm, *slow_again);
}

TEST(Speech, WorksAfterTheLastInstanceDies) {
  std::vector<int16_t> before;
  {
    auto speech = make();
    ASSERT_TRUE(speech);
    before = speech->render("hello world", 8000).value();
  }
  auto speech = make();
  ASSERT_TRUE(speech);
  auto after = speech->render("hello world", 8000);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(before, *after);
}

}  // namespace
