// Log sink selection from JOURNAL_STREAM, level filtering, and the readable stderr format.
#include "osvi/base/log.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace {

namespace log = osvi::log;

class LogTest : public ::testing::Test {
 protected:
  void TearDown() override {
    ::unsetenv("JOURNAL_STREAM");
    log::set_sink(log::Sink::stderr_text);
    log::set_level(log::Level::info);
  }
};

TEST_F(LogTest, JournalOnlyWhenJournalStreamIsOurStderr) {
  struct stat st {};
  ASSERT_EQ(fstat(STDERR_FILENO, &st), 0);
  const std::string mine = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  ::setenv("JOURNAL_STREAM", mine.c_str(), 1);
  log::init("test");
  EXPECT_EQ(log::sink(), log::Sink::journal);

  // Inherited from a parent whose stderr went to the journal, while ours goes elsewhere.
  ::setenv("JOURNAL_STREAM", (std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1)).c_str(), 1);
  log::init("test");
  EXPECT_EQ(log::sink(), log::Sink::stderr_text);

  ::setenv("JOURNAL_STREAM", "garbage", 1);
  log::init("test");
  EXPECT_EQ(log::sink(), log::Sink::stderr_text);
  ::unsetenv("JOURNAL_STREAM");
  log::init("test");
  EXPECT_EQ(log::sink(), log::Sink::stderr_text);
}

TEST_F(LogTest, LevelsParseAndFilter) {
  EXPECT_EQ(log::parse_level("debug"), log::Level::debug);
  EXPECT_EQ(log::parse_level("warning"), log::Level::warning);
  EXPECT_EQ(log::parse_level("err"), log::Level::err);
  EXPECT_FALSE(log::parse_level("loud"));
  EXPECT_EQ(log::level_name(log::Level::notice), "notice");
  log::set_level(log::Level::notice);
  EXPECT_TRUE(log::enabled(log::Level::err));
  EXPECT_TRUE(log::enabled(log::Level::notice));
  EXPECT_FALSE(log::enabled(log::Level::info));
}

TEST_F(LogTest, StderrLinesCarryLevelMessageAndFields) {
  osvi::test::TempDir dir;
  const std::string path = dir.file("err.txt");
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  FILE* f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  dup2(fileno(f), STDERR_FILENO);
  log::set_sink(log::Sink::stderr_text);
  log::set_level(log::Level::info);
  log::warning("line went down", {{"LINE", "modem0"}, {"CALL_ID", "abc"}}, log::id::kCallEnded);
  log::debug("hidden at info");
  dup2(saved, STDERR_FILENO);
  close(saved);
  fclose(f);
  const std::string text = osvi::test::read_file(path);
  EXPECT_NE(text.find("warning: line went down LINE=modem0 CALL_ID=abc\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("hidden"), std::string::npos);
  // One entry, one line, starting with an ISO-8601 UTC timestamp.
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1);
  EXPECT_EQ(text[4], '-');
  EXPECT_EQ(text[23], 'Z');
}

// GET /v1/system/errors reads this ring: warnings and errors only, newest first, bounded, fields kept, long
// text cut on a UTF-8 boundary, and safe to fill from several threads at once.
TEST_F(LogTest, RecentProblemsKeepsTheLastWarningsAndErrors) {
  log::clear_recent_problems();
  log::set_level(log::Level::debug);
  log::info("an info line");
  log::notice("a notice line");
  log::warning("first warning", {{"CALL_ID", "c1"}, {"LINE", "sim0"}});
  log::error("then an error", {}, log::id::kConfigRejected);
  auto got = log::recent_problems(50);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].message, "then an error");
  EXPECT_EQ(got[0].level, log::Level::err);
  EXPECT_EQ(got[0].message_id, log::id::kConfigRejected);
  EXPECT_EQ(got[1].message, "first warning");
  EXPECT_EQ(got[1].level, log::Level::warning);
  ASSERT_EQ(got[1].fields.size(), 2u);
  EXPECT_EQ(got[1].fields[0].first, "CALL_ID");
  EXPECT_EQ(got[1].fields[0].second, "c1");
  EXPECT_GT(got[1].wall_ms, 1'700'000'000'000);
  EXPECT_EQ(log::recent_problems(1).size(), 1u);

  // A level filter that hides warnings keeps them out of the ring too (the ring holds what was logged).
  log::set_level(log::Level::err);
  log::warning("hidden");
  EXPECT_EQ(log::recent_problems(50).size(), 2u);

  // "é" is two bytes: a cut landing inside it backs off to the sequence start.
  std::string longer(log::kRecentMessageBytes - 1, 'x');
  longer += "\xC3\xA9tail";
  log::error(longer);
  auto cut = log::recent_problems(1);
  ASSERT_EQ(cut.size(), 1u);
  EXPECT_EQ(cut[0].message.size(), log::kRecentMessageBytes - 1);

  log::clear_recent_problems();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([t] {
      for (int i = 0; i < 150; ++i) log::error("thread " + std::to_string(t) + " entry " + std::to_string(i));
    });
  for (auto& th : threads) th.join();
  auto all = log::recent_problems(1000);
  EXPECT_EQ(all.size(), log::kRecentProblems);
  for (const auto& p : all) EXPECT_EQ(p.message.rfind("thread ", 0), 0u);
  log::clear_recent_problems();
}

}  // namespace
