// Where a process's resident memory sits, from /proc/<pid>/smaps: the main heap, glibc's per-thread malloc
// arenas, thread stacks, other anonymous mappings (large mallocs, rings), and file-backed pages.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace osvi::bench {

struct SmapsBreakdown {
  // Pss in kB per kind; rss_kb the total Rss beside it.
  long heap = 0, arenas = 0, stacks = 0, anon_other = 0, file = 0, pss = 0, rss = 0;
  int arena_count = 0, stack_count = 0;
};

// Anonymous mappings are told apart by shape: glibc's arena heaps start on a 64 MiB boundary (HEAP_MAX_SIZE
// on 64-bit) and a thread stack is an 8 MiB (RLIMIT_STACK default, give or take the guard) read-write mapping
// behind a guard page. A process that changes either default is misread, so the figure is a guide, not an
// accounting.
inline SmapsBreakdown read_smaps_breakdown(pid_t pid) {
  SmapsBreakdown b;
  std::ifstream f("/proc/" + std::to_string(pid) + "/smaps");
  std::string line;
  enum class Kind { heap, arena, stack, anon, file } kind = Kind::anon;
  auto is_hex_range = [](const std::string& l) {
    const size_t dash = l.find('-');
    return dash != std::string::npos && dash > 0 && l.find(' ') > dash;
  };
  while (std::getline(f, line)) {
    if (is_hex_range(line)) {
      std::istringstream s(line);
      std::string range, perms, offset, dev, inode, path;
      s >> range >> perms >> offset >> dev >> inode;
      std::getline(s >> std::ws, path);
      const size_t dash = range.find('-');
      const uint64_t lo = std::stoull(range.substr(0, dash), nullptr, 16);
      const uint64_t hi = std::stoull(range.substr(dash + 1), nullptr, 16);
      if (path == "[heap]") {
        kind = Kind::heap;
      } else if (!path.empty() && path[0] == '/') {
        kind = Kind::file;
      } else if (path.empty() && (lo & ((uint64_t{64} << 20) - 1)) == 0) {
        kind = Kind::arena;
        if (perms[0] == 'r') ++b.arena_count;
      } else if (path.empty() && perms[0] == 'r' && hi - lo >= (uint64_t{8} << 20) - (64 << 10) &&
                 hi - lo <= (uint64_t{8} << 20) + (64 << 10)) {
        kind = Kind::stack;
        ++b.stack_count;
      } else {
        kind = Kind::anon;  // large mallocs, [stack] of the main thread, vdso and the like (few kB)
      }
      continue;
    }
    long v = 0;
    if (line.rfind("Pss:", 0) == 0) {
      v = std::stol(line.substr(4));
      b.pss += v;
      switch (kind) {
        case Kind::heap:
          b.heap += v;
          break;
        case Kind::arena:
          b.arenas += v;
          break;
        case Kind::stack:
          b.stacks += v;
          break;
        case Kind::anon:
          b.anon_other += v;
          break;
        case Kind::file:
          b.file += v;
          break;
      }
    } else if (line.rfind("Rss:", 0) == 0) {
      b.rss += std::stol(line.substr(4));
    }
  }
  return b;
}

// What changed between two readings (b -> a).
inline SmapsBreakdown operator-(const SmapsBreakdown& a, const SmapsBreakdown& b) {
  SmapsBreakdown d;
  d.heap = a.heap - b.heap;
  d.arenas = a.arenas - b.arenas;
  d.stacks = a.stacks - b.stacks;
  d.anon_other = a.anon_other - b.anon_other;
  d.file = a.file - b.file;
  d.pss = a.pss - b.pss;
  d.rss = a.rss - b.rss;
  d.arena_count = a.arena_count - b.arena_count;
  d.stack_count = a.stack_count - b.stack_count;
  return d;
}

// One table row: the difference live - idle divided by `calls`, in kB per call.
inline void print_smaps_delta(const char* label, const SmapsBreakdown& idle, const SmapsBreakdown& live,
                              int calls) {
  const double n = calls > 0 ? calls : 1;
  auto per = [n](long a, long b) { return static_cast<double>(a - b) / n; };
  std::printf(
      "%s: PSS per call %.0f kB = main heap %.0f + malloc arenas %.0f (%d -> %d arenas) + thread stacks %.0f "
      "(%d -> %d) + other anonymous %.0f + files %.0f\n",
      label, per(live.pss, idle.pss), per(live.heap, idle.heap), per(live.arenas, idle.arenas),
      idle.arena_count, live.arena_count, per(live.stacks, idle.stacks), idle.stack_count, live.stack_count,
      per(live.anon_other, idle.anon_other), per(live.file, idle.file));
}

}  // namespace osvi::bench
