// Counts every heap allocation of the executable that links osvi_alloc_counter, so tests and benches can
// prove the audio paths allocate nothing per frame.
//
// Linking it replaces the global operator new/delete (all forms) and, outside ASan (which owns malloc),
// interposes malloc/calloc/realloc so C libraries (libopus, speexdsp, alsa-lib) are counted too.
#pragma once

#include <cstdint>

namespace osvi::test {

struct AllocCounts {
  uint64_t news = 0;     // operator new calls (every form)
  uint64_t mallocs = 0;  // malloc/calloc/realloc calls; stays 0 when mallocs_counted() is false
};

AllocCounts alloc_counts();
bool mallocs_counted();

// Deltas since construction.
struct AllocSnapshot {
  AllocCounts at = alloc_counts();
  uint64_t new_delta() const { return alloc_counts().news - at.news; }
  uint64_t malloc_delta() const { return alloc_counts().mallocs - at.mallocs; }
};

}  // namespace osvi::test
