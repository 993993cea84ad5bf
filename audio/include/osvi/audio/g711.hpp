// G.711 (ITU-T): μ-law and A-law companding of 16-bit linear PCM, what an 8 kHz telephone line carries.
//
// Pure functions, no state or allocation: safe anywhere. Used to put test and benchmark audio through the
// same 8-bit companding a PSTN line or a modem's G.711 voice path applies.
#pragma once

#include <cstdint>
#include <span>

namespace osvi::audio {

uint8_t ulaw_encode(int16_t sample) noexcept;
int16_t ulaw_decode(uint8_t code) noexcept;
uint8_t alaw_encode(int16_t sample) noexcept;
int16_t alaw_decode(uint8_t code) noexcept;

enum class G711 : uint8_t { ulaw, alaw };
// Encodes and decodes in place: the signal as the far end of a G.711 line hears it.
void g711_round_trip(G711 law, std::span<int16_t> pcm) noexcept;

}  // namespace osvi::audio
