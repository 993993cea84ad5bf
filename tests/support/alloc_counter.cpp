// Global allocation counting: replaced operator new/delete and, outside ASan, malloc interposed over glibc.
#include "alloc_counter.hpp"

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace {
std::atomic<uint64_t> g_news{0};
std::atomic<uint64_t> g_mallocs{0};
}  // namespace

#if defined(__SANITIZE_ADDRESS__)
#define OSVI_COUNT_MALLOC 0
#else
#define OSVI_COUNT_MALLOC 1
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* malloc(size_t n) {
  g_mallocs.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t size) {
  g_mallocs.fetch_add(1, std::memory_order_relaxed);
  return __libc_calloc(n, size);
}
void* realloc(void* p, size_t n) {
  g_mallocs.fetch_add(1, std::memory_order_relaxed);
  return __libc_realloc(p, n);
}
}
#endif

namespace osvi::test {
AllocCounts alloc_counts() {
  return {g_news.load(), g_mallocs.load()};
}
bool mallocs_counted() {
  return OSVI_COUNT_MALLOC != 0;
}
}  // namespace osvi::test

// Out of line, so GCC (ASan builds inline more) does not pair a visible free() with operator new and warn.
[[gnu::noinline]] static void* counted_alloc(size_t n) noexcept {
  g_news.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
[[gnu::noinline]] static void* counted_aligned(size_t n, std::align_val_t align) noexcept {
  g_news.fetch_add(1, std::memory_order_relaxed);
  const auto a = static_cast<size_t>(align);
  return std::aligned_alloc(a, (n + a - 1) / a * a);
}
[[gnu::noinline]] static void counted_free(void* p) noexcept {
  std::free(p);
}

void* operator new(size_t n) {
  if (void* p = counted_alloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) {
  return operator new(n);
}
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  return counted_alloc(n);
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  return counted_alloc(n);
}
void* operator new(size_t n, std::align_val_t a) {
  if (void* p = counted_aligned(n, a)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n, std::align_val_t a) {
  return operator new(n, a);
}
void operator delete(void* p) noexcept {
  counted_free(p);
}
void operator delete[](void* p) noexcept {
  counted_free(p);
}
void operator delete(void* p, size_t) noexcept {
  counted_free(p);
}
void operator delete[](void* p, size_t) noexcept {
  counted_free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  counted_free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  counted_free(p);
}
void operator delete(void* p, size_t, std::align_val_t) noexcept {
  counted_free(p);
}
void operator delete[](void* p, size_t, std::align_val_t) noexcept {
  counted_free(p);
}
