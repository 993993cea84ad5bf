// UniqueFd and EventFd: the one RAII owner of every file descriptor the devices use.
#pragma once

#include <cstdint>
#include <utility>

#include "osvi/result.hpp"

namespace osvi::hal {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// A non-blocking eventfd: how a real-time thread wakes the control loop without sharing a lock.
class EventFd {
 public:
  static Result<EventFd> create();
  int fd() const { return fd_.get(); }
  // Safe from any thread, never blocks (the counter saturating is not an error: the reader is awake anyway).
  void signal() const;
  // Returns the accumulated count and resets it; 0 when nothing was signalled.
  uint64_t drain() const;

 private:
  explicit EventFd(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace osvi::hal
