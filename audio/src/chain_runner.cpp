// ChainRunner: the line chain on the stream's thread, results to the loop through two SPSC rings.
#include "osvi/audio/chain_runner.hpp"

#include <algorithm>
#include <thread>

namespace osvi::audio {

namespace {
constexpr uint64_t kOffsMask = 0x7fffffffu;
uint64_t offs_of(uint64_t word) {
  return (word >> 1) & kOffsMask;
}
}  // namespace

Result<std::unique_ptr<ChainRunner>> ChainRunner::create(std::unique_ptr<LineChain> chain,
                                                         const ChainRunnerOptions& options) {
  if (!chain) return make_error("chain runner: no chain");
  const Format f = chain->config().format;
  if (options.ring_ms < 2 * f.frame_ms) return make_error("chain runner: ring_ms must hold two frames");
  const auto frames = static_cast<size_t>(options.ring_ms / f.frame_ms);
  return std::unique_ptr<ChainRunner>(new ChainRunner(std::move(chain), frames));
}

ChainRunner::ChainRunner(std::unique_ptr<LineChain> chain, size_t frames)
    : chain_(std::move(chain)),
      frame_(chain_->config().format.frame_samples()),
      samples_(2 * frame_ * frames),
      meta_(frames),
      clean_(frame_),
      reference_(frame_) {}

ChainRunner::~ChainRunner() = default;

void ChainRunner::set_amd(bool on) noexcept {
  // Only the loop writes the word, so a load and a store make the update.
  const uint64_t w = amd_word_.load(std::memory_order_relaxed);
  const uint64_t calls = (w >> 32) + 1;
  const uint64_t offs = (offs_of(w) + (on ? 0 : 1)) & kOffsMask;
  amd_word_.store(calls << 32 | offs << 1 | (on ? 1u : 0u), std::memory_order_release);
}

void ChainRunner::set_min_speech_ms(int ms) noexcept {
  if (ms < 0 || ms > 5000) return;
  min_speech_ms_.store(ms, std::memory_order_release);
}

void ChainRunner::attach_recorder(CallRecorder* recorder) noexcept {
  // With process()'s store-busy-then-load (all sequentially consistent): once busy reads false after this
  // store, a push() already started has finished (and its writes are visible here), and any later one loads
  // the new pointer.
  rec_.store(recorder, std::memory_order_seq_cst);
  while (rec_busy_.load(std::memory_order_seq_cst)) std::this_thread::yield();
}

void ChainRunner::apply_controls() noexcept {
  const uint64_t w = amd_word_.load(std::memory_order_acquire);
  if (w != amd_seen_) {
    // The calls since the last frame replayed in effect: any false among them first (it re-arms a detector
    // that the next true restarts), then the last value.
    if (offs_of(w) != offs_of(amd_seen_)) chain_->set_amd(false);
    chain_->set_amd((w & 1u) != 0);
    amd_seen_ = w;
  }
  const int ms = min_speech_ms_.load(std::memory_order_acquire);
  if (ms != min_speech_seen_) {
    (void)chain_->set_min_speech_ms(ms);
    min_speech_seen_ = ms;
  }
}

void ChainRunner::process(std::span<const int16_t> capture, std::span<const int16_t> reference) noexcept {
  apply_controls();
  const CaptureOutput& out = chain_->process_capture(capture, reference);
  if (out.clean.empty()) return;  // a period of the wrong size: the stream and the chain disagree
  rec_busy_.store(true, std::memory_order_seq_cst);
  if (CallRecorder* r = rec_.load(std::memory_order_seq_cst); r && !r->push(out.clean, out.reference))
    recorder_errors_.fetch_add(1, std::memory_order_relaxed);
  rec_busy_.store(false, std::memory_order_seq_cst);

  if (samples_.writable() < 2 * frame_ || meta_.writable() < 1) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  samples_.push(out.clean);
  samples_.push(out.reference);
  Meta m;
  m.vad = out.vad;
  m.endpoints = out.endpoints;
  m.dtmf = out.dtmf;
  m.tone = out.tone;
  m.amd = out.amd;
  m.beep = out.beep;
  meta_.push_one(m);
  processed_.fetch_add(1, std::memory_order_relaxed);
}

bool ChainRunner::next(CaptureOutput& out) noexcept {
  Meta m;
  if (!meta_.pop_one(&m)) return false;
  samples_.pop(clean_);
  samples_.pop(reference_);
  out = CaptureOutput{};
  out.clean = clean_;
  out.reference = reference_;
  out.vad = m.vad;
  out.endpoints = m.endpoints;
  out.dtmf = m.dtmf;
  out.tone = m.tone;
  out.amd = m.amd;
  out.beep = m.beep;
  return true;
}

}  // namespace osvi::audio
