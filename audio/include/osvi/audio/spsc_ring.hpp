// Lock-free single-producer/single-consumer ring: how audio crosses between a real-time thread and the loop.
//
// Real-time rules: push()/pop() never allocate, never lock, never block and never call into the kernel;
// one thread pushes, one thread pops. The capacity is fixed at construction (the only allocation).
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <span>
#include <type_traits>

namespace osvi::audio {

template <class T>
class SpscRing {
  static_assert(std::is_trivially_copyable_v<T>, "ring elements are copied with plain assignment");

 public:
  // Capacity is rounded up to a power of two so indices wrap with a mask.
  explicit SpscRing(size_t min_capacity) : capacity_(round_up(min_capacity)), mask_(capacity_ - 1) {
    buf_ = std::make_unique<T[]>(capacity_);
  }
  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;

  size_t capacity() const { return capacity_; }
  // Producer side: how many elements fit now.
  size_t writable() const {
    return capacity_ - (head_.load(std::memory_order_relaxed) - tail_.load(std::memory_order_acquire));
  }
  // Consumer side: how many elements wait.
  size_t readable() const {
    return head_.load(std::memory_order_acquire) - tail_.load(std::memory_order_relaxed);
  }

  // Copies as many elements as fit; returns the count written (the rest is the caller's overrun to count).
  size_t push(std::span<const T> in) {
    const size_t head = head_.load(std::memory_order_relaxed);
    const size_t n = std::min(in.size(), capacity_ - (head - tail_.load(std::memory_order_acquire)));
    for (size_t i = 0; i < n; ++i) buf_[(head + i) & mask_] = in[i];
    head_.store(head + n, std::memory_order_release);
    return n;
  }
  bool push_one(const T& v) { return push(std::span<const T>(&v, 1)) == 1; }

  // Copies up to out.size() elements; returns the count read.
  size_t pop(std::span<T> out) {
    const size_t tail = tail_.load(std::memory_order_relaxed);
    const size_t n = std::min(out.size(), head_.load(std::memory_order_acquire) - tail);
    for (size_t i = 0; i < n; ++i) out[i] = buf_[(tail + i) & mask_];
    tail_.store(tail + n, std::memory_order_release);
    return n;
  }
  bool pop_one(T* v) { return pop(std::span<T>(v, 1)) == 1; }

  // Consumer side: throws away everything queued (barge-in drops queued playback at once); returns the count.
  size_t discard() {
    const size_t tail = tail_.load(std::memory_order_relaxed);
    const size_t head = head_.load(std::memory_order_acquire);
    tail_.store(head, std::memory_order_release);
    return head - tail;
  }

 private:
  static size_t round_up(size_t n) {
    size_t c = 1;
    while (c < n) c <<= 1;
    return c;
  }
  const size_t capacity_;
  const size_t mask_;
  std::unique_ptr<T[]> buf_;
  // Separate cache lines so producer and consumer do not bounce one line between cores.
  alignas(64) std::atomic<size_t> head_{0};
  alignas(64) std::atomic<size_t> tail_{0};
};

}  // namespace osvi::audio
