// File-descriptor owners.
#include "osvi/hal/fd.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace osvi::hal {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);  // close() errors leave nothing to retry on Linux
  fd_ = fd;
}

Result<EventFd> EventFd::create() {
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return make_error(std::string("eventfd: ") + std::strerror(errno), -errno);
  return EventFd(UniqueFd(fd));
}

void EventFd::signal() const {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(fd_.get(), &one, sizeof one);
}

uint64_t EventFd::drain() const {
  uint64_t value = 0;
  if (::read(fd_.get(), &value, sizeof value) != static_cast<ssize_t>(sizeof value)) return 0;
  return value;
}

}  // namespace osvi::hal
