// G.711 μ-law and A-law: the segment/mantissa companding of ITU-T G.711 (as in the reference g711.c).
#include "osvi/audio/g711.hpp"

#include <algorithm>

namespace osvi::audio {
namespace {

// Index of the segment (0..7) holding `value` for the given segment end points.
int segment(int value, const int (&ends)[8]) noexcept {
  for (int i = 0; i < 8; ++i)
    if (value <= ends[i]) return i;
  return 8;
}

constexpr int kUlawEnds[8] = {0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF};
constexpr int kAlawEnds[8] = {0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF};
constexpr int kUlawBias = 0x84 >> 2;  // 33: the bias on 14-bit magnitudes

}  // namespace

uint8_t ulaw_encode(int16_t sample) noexcept {
  int v = sample >> 2;  // μ-law works on 14 bits
  int mask = 0xFF;
  if (v < 0) {
    v = -v;
    mask = 0x7F;
  }
  v = std::min(v, 8159) + kUlawBias;
  const int seg = segment(v, kUlawEnds);
  if (seg >= 8) return static_cast<uint8_t>(0x7F ^ mask);
  return static_cast<uint8_t>(((seg << 4) | ((v >> (seg + 1)) & 0x0F)) ^ mask);
}

int16_t ulaw_decode(uint8_t code) noexcept {
  const int u = ~code & 0xFF;
  int t = ((u & 0x0F) << 3) + 0x84;
  t <<= (u & 0x70) >> 4;
  return static_cast<int16_t>((u & 0x80) ? (0x84 - t) : (t - 0x84));
}

uint8_t alaw_encode(int16_t sample) noexcept {
  int v = sample >> 3;  // A-law works on 13 bits
  int mask = 0xD5;
  if (v < 0) {
    mask = 0x55;
    v = -v - 1;
  }
  const int seg = segment(v, kAlawEnds);
  if (seg >= 8) return static_cast<uint8_t>(0x7F ^ mask);
  int a = seg << 4;
  a |= seg < 2 ? (v >> 1) & 0x0F : (v >> seg) & 0x0F;
  return static_cast<uint8_t>(a ^ mask);
}

int16_t alaw_decode(uint8_t code) noexcept {
  const int a = code ^ 0x55;
  int t = (a & 0x0F) << 4;
  const int seg = (a & 0x70) >> 4;
  if (seg == 0)
    t += 8;
  else if (seg == 1)
    t += 0x108;
  else
    t = (t + 0x108) << (seg - 1);
  return static_cast<int16_t>((a & 0x80) ? t : -t);
}

void g711_round_trip(G711 law, std::span<int16_t> pcm) noexcept {
  if (law == G711::ulaw) {
    for (int16_t& s : pcm) s = ulaw_decode(ulaw_encode(s));
  } else {
    for (int16_t& s : pcm) s = alaw_decode(alaw_encode(s));
  }
}

}  // namespace osvi::audio
