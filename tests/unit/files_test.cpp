// write_file_atomically: content and mode, replacement, failures that name the path and leave nothing behind.
#include "osvi/base/files.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace osvi::daemon {
namespace {

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") out.push_back(name);
    }
    ::closedir(d);
  }
  return out;
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// Tests run as root in CI containers, where permission bits alone never refuse a write: this drops the
// capabilities that bypass them from the calling thread's effective set (they stay permitted, so the
// destructor can raise them again).
class WithoutDacOverride {
 public:
  WithoutDacOverride() {
    if (::syscall(SYS_capget, &header_, data_) != 0) return;
    saved_[0] = data_[0];
    saved_[1] = data_[1];
    for (int cap : {CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER})
      data_[CAP_TO_INDEX(cap)].effective &= ~CAP_TO_MASK(cap);
    dropped_ = ::syscall(SYS_capset, &header_, data_) == 0;
  }
  ~WithoutDacOverride() {
    if (dropped_) (void)::syscall(SYS_capset, &header_, saved_);
  }
  WithoutDacOverride(const WithoutDacOverride&) = delete;
  WithoutDacOverride& operator=(const WithoutDacOverride&) = delete;

 private:
  __user_cap_header_struct header_{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data_[2]{};
  __user_cap_data_struct saved_[2]{};
  bool dropped_ = false;
};

TEST(Files, WritesContentWithTheExactModeWhateverTheUmask) {
  test::TempDir dir;
  const mode_t old_umask = ::umask(0077);
  const Status s1 = write_file_atomically(dir.file("a.json"), "{\"a\":1}\n", 0644);
  const Status s2 = write_file_atomically(dir.file("key"), std::string("\0\x01\xff", 3), 0600);
  ::umask(old_umask);
  ASSERT_TRUE(s1.ok()) << s1.error().message;
  ASSERT_TRUE(s2.ok()) << s2.error().message;
  EXPECT_EQ(test::read_file(dir.file("a.json")), "{\"a\":1}\n");
  EXPECT_EQ(mode_of(dir.file("a.json")), 0644u);
  EXPECT_EQ(test::read_file(dir.file("key")), std::string("\0\x01\xff", 3));
  EXPECT_EQ(mode_of(dir.file("key")), 0600u);
  const Status empty = write_file_atomically(dir.file("empty"), "");
  ASSERT_TRUE(empty.ok()) << empty.error().message;
  EXPECT_EQ(test::read_file(dir.file("empty")), "");
  EXPECT_EQ(mode_of(dir.file("empty")), 0600u);  // the default
  EXPECT_EQ(entries(dir.path()).size(), 3u);     // no temporary file left
}

TEST(Files, ReplacesAnExistingFileByRenameNotInPlace) {
  test::TempDir dir;
  const std::string path = dir.file("desired.json");
  test::write_file(path, "the old content, longer than the new one");
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  // A second name for the old inode: writing in place would change what it shows too.
  ASSERT_EQ(::link(path.c_str(), dir.file("old-link").c_str()), 0);

  const Status s = write_file_atomically(path, "new", 0600);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(test::read_file(path), "new");
  EXPECT_EQ(mode_of(path), 0600u);
  EXPECT_EQ(test::read_file(dir.file("old-link")), "the old content, longer than the new one");
  EXPECT_EQ(entries(dir.path()).size(), 2u);
}

TEST(Files, MissingDirectoryIsAnErrorNamingThePath) {
  test::TempDir dir;
  const std::string path = dir.file("no/such/dir/api-token");
  const Status s = write_file_atomically(path, "x");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, -ENOENT);
  EXPECT_NE(s.error().message.find(path), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("No such file or directory"), std::string::npos) << s.error().message;
  EXPECT_TRUE(entries(dir.path()).empty());
}

TEST(Files, ReadOnlyDirectoryIsAnErrorNamingThePathAndLeavesTheOldFile) {
  test::TempDir dir;
  const std::string ro = dir.file("ro");
  ASSERT_EQ(::mkdir(ro.c_str(), 0755), 0);
  const std::string path = ro + "/config.json";
  test::write_file(path, "old");
  ASSERT_EQ(::chmod(ro.c_str(), 0555), 0);
  Status s;
  bool refused = false;
  {
    WithoutDacOverride unprivileged;
    const std::string probe = ro + "/probe";
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    refused = fd < 0;
    if (fd >= 0) {
      ::close(fd);
      ::unlink(probe.c_str());
    }
    if (refused) s = write_file_atomically(path, "new");
  }
  ::chmod(ro.c_str(), 0755);
  if (!refused) GTEST_SKIP() << "this process can write into a 0555 directory (no way to drop the privilege)";
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, -EACCES);
  EXPECT_NE(s.error().message.find(path), std::string::npos) << s.error().message;
  EXPECT_EQ(test::read_file(path), "old");
  EXPECT_EQ(entries(ro), std::vector<std::string>{"config.json"});
}

TEST(Files, FailureAfterTheTemporaryFileLeavesNothingBehind) {
  test::TempDir dir;
  // The target is a non-empty directory: the temporary file is created and written, then rename() fails.
  const std::string path = dir.file("target");
  ASSERT_EQ(::mkdir(path.c_str(), 0755), 0);
  test::write_file(path + "/inside", "keep");
  const Status s = write_file_atomically(path, std::string(100'000, 'x'));
  ASSERT_FALSE(s.ok());
  EXPECT_LT(s.error().code, 0);
  EXPECT_NE(s.error().message.find(path), std::string::npos) << s.error().message;
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"target"});
  EXPECT_EQ(test::read_file(path + "/inside"), "keep");
}

TEST(Files, LargeContentIsWrittenFully) {
  test::TempDir dir;
  std::string big(12 * 1024 * 1024 + 7, '\0');
  uint32_t x = 2463534242u;
  for (char& c : big) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  const std::string path = dir.file("big.bin");
  const Status s = write_file_atomically(path, big, 0640);
  ASSERT_TRUE(s.ok()) << s.error().message;
  const std::string back = test::read_file(path);
  ASSERT_EQ(back.size(), big.size());
  EXPECT_TRUE(back == big);
  EXPECT_EQ(mode_of(path), 0640u);
}

TEST(Files, ConcurrentWritersNeverShareATemporaryFile) {
  test::TempDir dir;
  const std::string path = dir.file("shared");
  std::vector<std::thread> writers;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      const std::string content(64 * 1024, static_cast<char>('a' + t));
      for (int i = 0; i < 25; ++i)
        if (!write_file_atomically(path, content)) ++failures[static_cast<size_t>(t)];
    });
  }
  for (auto& w : writers) w.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
  const std::string final_content = test::read_file(path);
  ASSERT_EQ(final_content.size(), 64u * 1024u);
  EXPECT_EQ(final_content.find_first_not_of(final_content[0]), std::string::npos);
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"shared"});
}

}  // namespace
}  // namespace osvi::daemon
