// The call's text helpers: sentence cuts, what the caller heard of an interrupted turn, templating.
#include "osvi/calls/call_text.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace osvi::daemon::call_text {
namespace {

std::string first_sentence(std::string_view text, bool final = false) {
  return std::string(text.substr(0, sentence_end(text, final)));
}

TEST(CallText, SentenceEndsAtPunctuationFollowedBySpace) {
  EXPECT_EQ(first_sentence("Hello there. How are you?"), "Hello there.");
  EXPECT_EQ(first_sentence("Really? Yes."), "Really?");
  EXPECT_EQ(first_sentence("Great! Let us go"), "Great!");
  // The punctuation must be followed by white space: the stream may continue the number or word.
  EXPECT_EQ(sentence_end("It costs 3.50", false), 0u);
  EXPECT_EQ(sentence_end("Hello there.", false), 0u);
  EXPECT_EQ(first_sentence("Hello there.", true), "Hello there.");
  EXPECT_EQ(sentence_end("", true), 0u);
}

TEST(CallText, NewlineEndsASentenceButNotAtTheStart) {
  EXPECT_EQ(first_sentence("First line\nsecond"), "First line\n");
  EXPECT_EQ(sentence_end("\nsecond", false), 0u);
}

TEST(CallText, AbbreviationsDoNotEndASentence) {
  EXPECT_EQ(first_sentence("Ask for dr. rao tomorrow. Bye."), "Ask for dr. rao tomorrow.");
  // Only a lower-case word after the dot continues the sentence: "Dr. Rao" is cut after "Dr." (a known
  // limitation; the first audio then starts a word early, which callers do not notice).
  EXPECT_EQ(first_sentence("Dr. Rao will call you. Bye."), "Dr.");
  EXPECT_EQ(first_sentence("Use a pen, e.g. this one. Thanks."), "Use a pen, e.g. this one.");
  // A capital after the dot is a new sentence, even after a short word.
  EXPECT_EQ(first_sentence("Go to B. Then stop."), "Go to B.");
  // A longer word before the dot is a normal end.
  EXPECT_EQ(first_sentence("We open at nine. tomorrow too"), "We open at nine.");
}

TEST(CallText, LongClausesAreCutAtACommaPast160Characters) {
  const std::string head(60, 'a');
  const std::string text = head + ", " + std::string(120, 'b');  // 182 characters, no sentence end
  ASSERT_GT(text.size(), 160u);
  EXPECT_EQ(sentence_end(text, false), head.size() + 1);  // just after the comma
  // At 160 characters or less nothing is cut before the stream ends.
  const std::string shorter = head + ", " + std::string(90, 'b');
  EXPECT_EQ(sentence_end(shorter, false), 0u);
  EXPECT_EQ(sentence_end(shorter, true), shorter.size());
  // A comma within the first 40 characters is too early to cut at.
  const std::string early = std::string(20, 'a') + ", " + std::string(170, 'b');
  EXPECT_EQ(sentence_end(early, false), 0u);
}

TEST(CallText, TrimRemovesSurroundingWhiteSpace) {
  EXPECT_EQ(trim("  hi there \n\t"), "hi there");
  EXPECT_EQ(trim(" \n "), "");
  EXPECT_EQ(trim("x"), "x");
}

TEST(CallText, HeardPartKeepsTheFirstShareOfTheWords) {
  EXPECT_EQ(heard_part("one two three four", 0.0), "");
  EXPECT_EQ(heard_part("one two three four", 0.5), "one two");
  EXPECT_EQ(heard_part("one two three four", 1.0), "one two three four");
  EXPECT_EQ(heard_part("one two three", 0.5), "one");  // floor
  EXPECT_EQ(heard_part("one  two   three four", 0.75), "one two three");
  EXPECT_EQ(heard_part("anything", -1.0), "");
}

TEST(CallText, HeardTextFollowsThePlayedSamplesAcrossSegments) {
  const std::vector<SpokenSegment> segs{{"Hello there.", 100}, {"How can I help you today?", 200}};
  EXPECT_EQ(heard_text(segs, 0), "");
  EXPECT_EQ(heard_text(segs, 50), "Hello");                    // half of the first sentence
  EXPECT_EQ(heard_text(segs, 100), "Hello there.");            // exactly the first
  EXPECT_EQ(heard_text(segs, 200), "Hello there. How can I");  // half of the second (6 words → 3)
  EXPECT_EQ(heard_text(segs, 300), "Hello there. How can I help you today?");
  EXPECT_EQ(heard_text(segs, 10'000), "Hello there. How can I help you today?");
  // A sentence not yet queued (no samples) ends what can have been heard.
  const std::vector<SpokenSegment> pending{{"First.", 100}, {"Second.", 0}, {"Third.", 100}};
  EXPECT_EQ(heard_text(pending, 1'000), "First.");
}

TEST(CallText, SpokenTextSkipsSegmentsWithoutText) {
  const std::vector<SpokenSegment> segs{{"", 500}, {"One moment.", 10}, {"Done.", 0}};
  EXPECT_EQ(spoken_text(segs), "One moment. Done.");
  EXPECT_EQ(spoken_text({}), "");
}

TEST(CallText, TemplatesFillPersonNameDataAndPhoneNumber) {
  TemplateVars v;
  v.person_name = "Asha";
  v.additional_data = R"({"city":"Pune","order":{"id":7,"items":["a","b"]},"count":3,"none":null,"ok":true})";
  v.phone_number = "+919876543210";
  EXPECT_EQ(render_template("Hi {{person_name}} from {{ city }}!", v), "Hi Asha from Pune!");
  // Non-string values are inserted as compact JSON.
  EXPECT_EQ(render_template("{{order}}", v), R"({"id":7,"items":["a","b"]})");
  EXPECT_EQ(render_template("{{count}} {{ok}}", v), "3 true");
  // Unknown and null variables are left out, not read aloud.
  EXPECT_EQ(render_template("[{{missing}}][{{none}}]", v), "[][]");
  EXPECT_EQ(render_template("Calling {{phone_number}}", v), "Calling +919876543210");
  // Unclosed braces stay as they are.
  EXPECT_EQ(render_template("a {{b", v), "a {{b");
  EXPECT_EQ(render_template("no variables", v), "no variables");
}

TEST(CallText, TemplatePrecedence) {
  TemplateVars v;
  v.additional_data = R"({"person_name":"From data","phone_number":"+100"})";
  v.phone_number = "+200";
  // Without a person_name the data's member is used; the data's phone_number wins over the record's.
  EXPECT_EQ(render_template("{{person_name}} {{phone_number}}", v), "From data +100");
  v.person_name = "Given";
  EXPECT_EQ(render_template("{{person_name}}", v), "Given");
  // Data that is not an object (or not JSON) supplies nothing; the phone number still comes from the call.
  v.additional_data = "[1,2]";
  EXPECT_EQ(render_template("{{x}}{{phone_number}}", v), "+200");
  v.additional_data = "not json";
  EXPECT_EQ(render_template("{{x}}{{phone_number}}", v), "+200");
  v.additional_data.reset();
  v.person_name.reset();
  EXPECT_EQ(render_template("Hi {{person_name}}.", v), "Hi .");
}

TEST(CallText, LanguageCodeIsTheIsoLanguageWithoutRegion) {
  AgentConfig a;
  a.language = "en-IN";
  EXPECT_EQ(language_code(a), "en");
  a.stt.language = "hi-IN";
  EXPECT_EQ(language_code(a), "hi");
  a.stt.language = "de";
  EXPECT_EQ(language_code(a), "de");
}

}  // namespace
}  // namespace osvi::daemon::call_text
