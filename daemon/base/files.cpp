// write_file_atomically: temporary file, full write, fsync, rename, directory fsync.
#include "osvi/base/files.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "osvi/hal/fd.hpp"

namespace osvi::daemon {
namespace {

Error errno_error(const std::string& path, const char* what, int err) {
  return make_error(path + ": " + what + ": " + std::strerror(err), -err);
}

std::string parent_directory(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// A name nobody else picks: O_EXCL then guarantees the file is ours, even against a stale one left by a
// crash or a concurrent writer of the same target.
std::string temporary_name(const std::string& path) {
  uint32_t r = 0;
  if (::getrandom(&r, sizeof r, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof r)) {
    static std::atomic<uint32_t> counter{0};
    r = static_cast<uint32_t>(::getpid()) * 2654435761u + ++counter;
  }
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? std::string() : path.substr(0, slash + 1);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, ".tmp-%08x", r);
  // Hidden, so a directory listing or glob (e.g. "*.json") never picks up a half-written file.
  return dir + "." + base + suffix;
}

Status write_all(int fd, std::string_view content, const std::string& path) {
  size_t put = 0;
  while (put < content.size()) {
    const ssize_t n = ::write(fd, content.data() + put, content.size() - put);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(path, "cannot write", errno);
    if (n == 0) return errno_error(path, "cannot write", EIO);  // a regular file never accepts 0 bytes
    put += static_cast<size_t>(n);
  }
  return {};
}

}  // namespace

Status sync_parent_directory(const std::string& path) {
  const std::string dir = parent_directory(path);
  hal::UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return errno_error(path, ("cannot open its directory " + dir).c_str(), errno);
  if (::fsync(fd.get()) != 0) return errno_error(path, ("cannot sync its directory " + dir).c_str(), errno);
  return {};
}

Status write_file_atomically(const std::string& path, std::string_view content, mode_t mode) {
  std::string tmp;
  hal::UniqueFd fd;
  for (int attempt = 0; attempt < 16 && !fd.valid(); ++attempt) {
    tmp = temporary_name(path);
    fd.reset(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777));
    if (!fd.valid() && errno != EEXIST) break;
  }
  if (!fd.valid()) return errno_error(path, "cannot create a temporary file beside it", errno);

  Status s = [&]() -> Status {
    if (::fchmod(fd.get(), mode & 07777) != 0) return errno_error(path, "cannot set the mode", errno);
    if (Status w = write_all(fd.get(), content, path); !w) return w;
    if (::fsync(fd.get()) != 0) return errno_error(path, "cannot sync", errno);
    // close() can report a deferred write error (NFS): it counts.
    if (::close(fd.release()) != 0) return errno_error(path, "cannot close", errno);
    if (::rename(tmp.c_str(), path.c_str()) != 0) return errno_error(path, "cannot rename into place", errno);
    return {};
  }();
  if (!s) {
    fd.reset();
    ::unlink(tmp.c_str());
    return s;
  }
  return sync_parent_directory(path);
}

}  // namespace osvi::daemon
