// The production AudioPorts behind make_line_audio_port(), one per endpoint kind (private to the calls room).
#pragma once

#include <memory>

#include "osvi/calls/audio_port.hpp"

namespace osvi::daemon {

// hal::AudioStream (ALSA) + LineChain: EC25, generic ALSA PCMs, the simulated line (line_audio_port.cpp).
Result<std::unique_ptr<AudioPort>> make_alsa_audio_port(EventLoop& loop, const AudioPortSetup& setup,
                                                        AudioPort::Listener& listener);
// hal::TtyAudioStream + LineChain: SIM7600 and generic PCM ttys (tty_audio_port.cpp).
Result<std::unique_ptr<AudioPort>> make_tty_audio_port(EventLoop& loop, const AudioPortSetup& setup,
                                                       AudioPort::Listener& listener);

// No capture from a PCM tty for this long and the stream reports it stalled (and the line hears of it).
inline constexpr int kTtyStallMs = 500;

}  // namespace osvi::daemon
