// JitterBuffer: fixed slots, serial-number timestamp order, RFC 3550 jitter, adaptive playout delay.
#include "osvi/hal/rtp_jitter.hpp"

#include <algorithm>
#include <cstring>

namespace osvi::hal {

namespace {
int32_t diff(uint32_t a, uint32_t b) {
  return static_cast<int32_t>(a - b);
}
constexpr uint32_t kOverPeriods = 25;  // ~0.5 s over the target before the delay shrinks
constexpr uint32_t kLateRestart = 4;   // consecutive late packets: the far end's timeline moved back
}  // namespace

JitterBuffer::JitterBuffer(const Config& config)
    : cfg_(config), slots_(config.slots), data_(config.slots * config.max_payload) {}

void JitterBuffer::restart() {
  for (auto& s : slots_) s.used = false;
  count_ = 0;
  playing_ = false;
  anchored_ = false;
  last_slot_ = -1;
  have_transit_ = false;
  over_periods_ = 0;
  late_run_ = 0;
  grow_ = 0;
  stretching_ = false;
}

void JitterBuffer::reset() {
  restart();
  jitter_q4_ = 0;
  boost_ = 0;
}

void JitterBuffer::late(uint32_t lateness) {
  // The path delivered this packet `lateness` after its playout time: hold the cursor that long (stretching
  // the playout by concealed frames) so the next such packet is in time, within max_ms; the target
  // remembers it and forgets slowly (adapt()), so the shrink rule does not undo it at once.
  const uint32_t max = ms_units(cfg_.max_ms);
  const uint32_t room = max > buffered_units() + grow_ ? max - buffered_units() - grow_ : 0;
  grow_ += std::min(lateness, room);
  boost_ = std::min(max, std::max(boost_, lateness));
}

void JitterBuffer::rebuffer() {
  playing_ = false;
  anchored_ = false;
  last_slot_ = -1;
  over_periods_ = 0;
}

JitterBuffer::Insert JitterBuffer::insert(uint16_t seq, uint32_t ts, uint32_t duration,
                                          std::span<const uint8_t> payload, uint32_t arrival) {
  if (payload.size() > cfg_.max_payload || duration == 0 || duration > ms_units(1000)) return Insert::too_big;
  Insert result = Insert::accepted;
  if (anchored_ || playing_) {
    const int32_t d = diff(ts, playing_ ? cursor_ : base_);
    const bool jump =
        d > static_cast<int32_t>(ms_units(cfg_.max_ms + 1000)) || d < -static_cast<int32_t>(ms_units(1000));
    if (!jump && playing_ && d < 0) {
      if (++late_run_ < kLateRestart) {
        late(static_cast<uint32_t>(-d));
        return Insert::late;
      }
    }
    if (jump || late_run_ >= kLateRestart) {
      restart();
      result = Insert::restarted;
    }
  }
  late_run_ = 0;
  if (!anchored_ && !playing_) {
    anchored_ = true;
    base_ = ts;
    first_arrival_ = arrival;
  }
  // RFC 3550 A.8, on the packets actually kept (a late one says nothing about the path's jitter now).
  const int64_t transit = diff(arrival, ts);
  if (have_transit_) {
    int64_t d = transit - transit_;
    if (d < 0) d = -d;
    d = std::min<int64_t>(d, ms_units(1000));
    jitter_q4_ = static_cast<uint32_t>(static_cast<int64_t>(jitter_q4_) + d - ((jitter_q4_ + 8) >> 4));
  }
  transit_ = transit;
  have_transit_ = true;

  int free_slot = -1;
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].used) {
      if (slots_[i].ts == ts) return Insert::duplicate;
    } else if (free_slot < 0) {
      free_slot = static_cast<int>(i);
    }
  }
  if (free_slot < 0) return Insert::full;
  Slot& s = slots_[static_cast<size_t>(free_slot)];
  s.used = true;
  s.seq = seq;
  s.ts = ts;
  s.dur = duration;
  s.len = static_cast<uint16_t>(payload.size());
  if (!payload.empty())
    std::memcpy(&data_[static_cast<size_t>(free_slot) * cfg_.max_payload], payload.data(), payload.size());
  ++count_;
  return result;
}

int JitterBuffer::find_min() const {
  const uint32_t ref = playing_ ? cursor_ : base_;
  int best = -1;
  int32_t best_d = 0;
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (!slots_[i].used) continue;
    const int32_t d = diff(slots_[i].ts, ref);
    if (best < 0 || d < best_d) {
      best = static_cast<int>(i);
      best_d = d;
    }
  }
  return best;
}

void JitterBuffer::drop(int slot) {
  if (slot < 0 || !slots_[static_cast<size_t>(slot)].used) return;
  slots_[static_cast<size_t>(slot)].used = false;
  --count_;
}

JitterBuffer::Next JitterBuffer::next(uint32_t now, uint32_t frame) {
  Next n;
  if (!playing_) {
    if (count_ == 0 || !anchored_) return n;
    if (diff(now, first_arrival_) < static_cast<int32_t>(ms_units(static_cast<int>(target_ms())))) return n;
    const int first = find_min();
    cursor_ = slots_[static_cast<size_t>(first)].ts;
    playing_ = true;
  }
  if (grow_ > 0) {
    n.kind = Kind::gap;
    n.duration = std::min(grow_, frame);
    stretching_ = true;
    return n;
  }
  const int i = find_min();
  if (i < 0) {
    n.kind = Kind::empty;
    n.duration = frame;
    return n;
  }
  const Slot& s = slots_[static_cast<size_t>(i)];
  const int32_t d = diff(s.ts, cursor_);
  const std::span<const uint8_t> payload(&data_[static_cast<size_t>(i) * cfg_.max_payload], s.len);
  // A sender whose timestamps are not exact multiples of ours: up to a quarter frame early plays now.
  if (d <= static_cast<int32_t>(frame / 4)) {
    last_slot_ = i;
    n.kind = Kind::packet;
    n.payload = payload;
    n.duration = s.dur;
    n.seq = s.seq;
    return n;
  }
  n.kind = Kind::gap;
  n.duration = std::min<uint32_t>(static_cast<uint32_t>(d), frame);
  if (static_cast<uint32_t>(d) <= frame) n.following = payload;
  return n;
}

void JitterBuffer::pop() {
  if (last_slot_ < 0) return;
  const Slot& s = slots_[static_cast<size_t>(last_slot_)];
  cursor_ = s.ts + s.dur;
  drop(last_slot_);
  last_slot_ = -1;
  skip(0);
}

void JitterBuffer::skip(uint32_t units) {
  if (stretching_) {  // the gap next() made to grow the delay: time passes, the cursor stays
    stretching_ = false;
    grow_ -= std::min(grow_, units);
    return;
  }
  cursor_ += units;
  last_slot_ = -1;
  // Whatever now lies wholly behind the cursor can never play.
  for (size_t i = 0; i < slots_.size(); ++i)
    if (slots_[i].used && diff(slots_[i].ts + slots_[i].dur, cursor_) <= 0) drop(static_cast<int>(i));
}

uint32_t JitterBuffer::buffered_units() const {
  if (!playing_) return 0;
  int32_t best = 0;
  for (const auto& s : slots_)
    if (s.used) best = std::max(best, diff(s.ts + s.dur, cursor_));
  return static_cast<uint32_t>(best);
}

uint32_t JitterBuffer::jitter_ms() const {
  return static_cast<uint32_t>(static_cast<uint64_t>(jitter_units()) * 1000 / cfg_.clock_rate);
}

uint32_t JitterBuffer::target_ms() const {
  const uint32_t boost_ms = static_cast<uint32_t>(static_cast<uint64_t>(boost_) * 1000 / cfg_.clock_rate);
  const uint32_t base = std::max(3 * jitter_ms(), static_cast<uint32_t>(cfg_.min_ms));
  return std::min(base + boost_ms, static_cast<uint32_t>(cfg_.max_ms));
}

uint32_t JitterBuffer::adapt(uint32_t period_units) {
  // A late packet's boost fades by 5 ms per second of playout.
  decay_units_ += period_units;
  if (decay_units_ >= cfg_.clock_rate / 5) {
    decay_units_ -= cfg_.clock_rate / 5;
    boost_ -= std::min(boost_, ms_units(1));
  }
  if (!playing_ || count_ == 0) {
    over_periods_ = 0;
    return 0;
  }
  const uint32_t buffered = buffered_units();
  const uint32_t target = ms_units(static_cast<int>(target_ms()));
  const bool hard = buffered > ms_units(cfg_.max_ms) + 2 * period_units;
  if (buffered > target + 2 * period_units)
    ++over_periods_;
  else
    over_periods_ = 0;
  if (!hard && over_periods_ < kOverPeriods) return 0;
  over_periods_ = 0;
  const int i = find_min();
  const Slot& s = slots_[static_cast<size_t>(i)];
  cursor_ = s.ts + s.dur;
  drop(i);
  last_slot_ = -1;
  skip(0);
  return 1;
}

}  // namespace osvi::hal
