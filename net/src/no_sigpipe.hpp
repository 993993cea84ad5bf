// NoSigpipe: a write to a socket whose peer hung up raises no SIGPIPE in this thread while it lives.
// For the writes that cannot pass MSG_NOSIGNAL (sendfile(2), OpenSSL's socket BIO): the library must not
// depend on its host ignoring SIGPIPE. The signal is blocked for the scope, and one it raised is taken off
// the pending set before the old mask returns, unless one was already pending from elsewhere.
#pragma once

#include <signal.h>

#include <cerrno>

namespace osvi::net {

class NoSigpipe {
 public:
  NoSigpipe() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    was_pending_ = pending();
  }
  ~NoSigpipe() {
    const int saved = errno;
    if (!was_pending_ && pending()) {
      const timespec zero{0, 0};
      while (sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    errno = saved;
  }
  NoSigpipe(const NoSigpipe&) = delete;
  NoSigpipe& operator=(const NoSigpipe&) = delete;

 private:
  static bool pending() {
    sigset_t set;
    sigemptyset(&set);
    return sigpending(&set) == 0 && sigismember(&set, SIGPIPE) == 1;
  }
  sigset_t pipe_{};
  sigset_t old_{};
  bool was_pending_ = false;
};

}  // namespace osvi::net
