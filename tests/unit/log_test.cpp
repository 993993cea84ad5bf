// Log sink selection from JOURNAL_STREAM, level filtering, and the readable stderr format.
#include "osvi/base/log.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

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

}  // namespace
