// How osvid's SCHED_OTHER threads rank against each other: worker threads 10 nice steps below the loop.
//
// The control loop is the thread every call's reactions, the API and SQLite wait on, so it must not queue
// behind osvid's own background work (an espeak-ng render, a WAL checkpoint, a recording's fsync) when the
// box is short of CPU. The shipped unit starts osvid at Nice=-10 (the loop is the main thread); each worker
// thread calls lower_this_thread() first thing, ending up 10 steps below whatever the loop runs at (nice 0
// under the unit, 10 when osvid is started at 0). Raising one's own nice needs no privilege. The audio
// threads are SCHED_FIFO (audio.rt_priority) and rank above all of these; without it they keep the loop's
// nice. docs/architecture.md, "Threads".
#pragma once

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace osvi {

inline constexpr int kWorkerNiceSteps = 10;

// The calling thread's nice value (Linux: per thread), or 0 when it cannot be read.
inline int this_thread_nice() noexcept {
  errno = 0;
  const int n = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)));
  return errno != 0 ? 0 : n;
}

// Puts the calling thread kWorkerNiceSteps below the nice it inherited from the thread that started it.
// Best effort: a refusal (a seccomp filter without setpriority) leaves it where it was.
inline void lower_this_thread() noexcept {
  const int n = std::min(19, this_thread_nice() + kWorkerNiceSteps);
  (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), n);
}

}  // namespace osvi
