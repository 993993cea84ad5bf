// Maps the configuration's audio section (and an agent's call settings) onto the audio engine's options.
#pragma once

#include <string>

#include "osvi/audio/line_chain.hpp"
#include "osvi/audio/recording.hpp"
#include "osvi/config/config.hpp"
#include "osvi/hal/audio_stream.hpp"

namespace osvi::daemon {

// The chain for one call: box-wide DSP settings, the agent's endpointing and VAD sensitivity.
audio::LineChainConfig line_chain_config(const AudioConfig& audio, const AgentConfig* agent);

// The encoder of the caller's utterances sent to speech-to-text (audio.opus.*).
audio::UtteranceOptions utterance_options(const AudioConfig& audio);

// The ALSA stream pair of one line.
hal::AudioStreamOptions audio_stream_options(const AudioConfig& audio, const std::string& capture_device,
                                             const std::string& playback_device, int channels, int channel);

}  // namespace osvi::daemon
