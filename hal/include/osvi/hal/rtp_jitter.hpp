// JitterBuffer: RtpStream's adaptive playout buffer of received RTP payloads, in RTP timestamp units.
//
// Packets are kept in fixed slots (sized at construction, no allocation afterwards) and played in timestamp
// order from a playout cursor. The target delay follows the RFC 3550 interarrival jitter estimate (three
// times it, within [min_ms, max_ms]): playout starts once the first packet of a talkspurt has waited the
// target, an underrun longer than a few frames returns to buffering (the next packet re-anchors, so the
// delay grows to the new target), a late packet holds the cursor by its lateness (concealed frames stretch
// the playout, so the next packet as late is in time) and raises the target by as much, fading 5 ms per
// second, and a buffer that holds clearly more than the target for a while drops its oldest packet (the
// delay shrinks). Timestamps compare with serial arithmetic, so sequence and
// timestamp wrap are ordinary; a jump of more than a second either way (a new source, a restarted peer)
// restarts the buffer on the new timeline.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace osvi::hal {

class JitterBuffer {
 public:
  struct Config {
    uint32_t clock_rate = 8000;  // RTP timestamp units per second
    int min_ms = 20;
    int max_ms = 200;
    size_t slots = 32;
    size_t max_payload = 1500;
  };
  explicit JitterBuffer(const Config& config);

  enum class Insert : uint8_t { accepted, late, duplicate, full, too_big, restarted };
  // arrival: the receive time on a free-running clock in RTP units (wraps). duration > 0, in RTP units.
  Insert insert(uint16_t seq, uint32_t timestamp, uint32_t duration, std::span<const uint8_t> payload,
                uint32_t arrival);

  enum class Kind : uint8_t {
    waiting,  // buffering: play silence, the cursor does not move
    packet,   // the packet at the cursor: decode it, then pop()
    gap,      // a later packet waits but not this one: conceal `duration` units, then skip(duration)
    empty,    // playing but nothing buffered: conceal or silence, then skip(duration)
  };
  struct Next {
    Kind kind = Kind::waiting;
    std::span<const uint8_t> payload;  // packet: its payload (valid until the next insert/pop)
    uint32_t duration = 0;             // packet: its duration; gap: up to the next packet (at most `frame`)
    uint16_t seq = 0;
    std::span<const uint8_t> following;  // gap of one frame: the packet after it (Opus FEC source)
  };
  // What to play at the cursor; `frame` bounds a gap's step (the concealment unit).
  Next next(uint32_t now, uint32_t frame);
  void pop();                 // consumes the packet next() returned
  void skip(uint32_t units);  // the cursor moves over concealed or silent time
  void rebuffer();            // underrun too long: wait for the next packet to re-anchor
  void reset();               // forget everything (new source)
  // Once per period: shrinks the delay when the buffer holds more than the target for a while.
  // Returns the count of packets dropped to do so.
  uint32_t adapt(uint32_t period_units);

  bool playing() const { return playing_; }
  uint32_t cursor() const { return cursor_; }  // the next timestamp to play (meaningful while playing)
  size_t size() const { return count_; }
  uint32_t jitter_units() const { return jitter_q4_ >> 4; }  // RFC 3550 J
  uint32_t jitter_ms() const;
  uint32_t target_ms() const;
  uint32_t buffered_units() const;  // from the cursor to the end of the newest packet

 private:
  struct Slot {
    bool used = false;
    uint16_t seq = 0;
    uint16_t len = 0;
    uint32_t ts = 0;
    uint32_t dur = 0;
  };
  int find_min() const;  // slot with the lowest timestamp relative to the cursor (or the anchor), -1 if none
  void drop(int slot);
  void restart();
  void late(uint32_t lateness);
  uint32_t ms_units(int ms) const {
    return static_cast<uint32_t>(static_cast<uint64_t>(cfg_.clock_rate) * ms / 1000);
  }

  Config cfg_;
  std::vector<Slot> slots_;
  std::vector<uint8_t> data_;
  size_t count_ = 0;
  bool playing_ = false;
  bool anchored_ = false;  // a packet arrived since the last (re)start: first_arrival_ and base_ valid
  uint32_t first_arrival_ = 0;
  uint32_t base_ = 0;    // reference timestamp for ordering while not playing (the first packet's)
  uint32_t cursor_ = 0;  // next timestamp to play
  int last_slot_ = -1;   // what next() returned as a packet
  // RFC 3550 A.8 jitter, in 1/16 units, from consecutive arrivals.
  bool have_transit_ = false;
  int64_t transit_ = 0;
  uint32_t jitter_q4_ = 0;
  uint32_t over_periods_ = 0;  // consecutive periods holding clearly more than the target
  uint32_t grow_ = 0;          // delay still to add by holding the cursor (units), after late packets
  bool stretching_ = false;    // next() returned a gap that only grows the delay
  uint32_t boost_ = 0;         // added to the target after late packets, fading (units)
  uint32_t decay_units_ = 0;   // playout since the boost last faded
  uint32_t late_run_ = 0;      // consecutive late packets (the far end's timeline moved back)
};

}  // namespace osvi::hal
