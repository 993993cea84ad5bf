// The ALSA AudioPort: a hal::AudioStream with the line's LineChain (StreamAudioPort, audio_ports.hpp).
#include <cerrno>

#include "audio_ports.hpp"
#include "osvi/config/audio_settings.hpp"

namespace osvi::daemon {

Result<std::unique_ptr<AudioPort>> make_alsa_audio_port(EventLoop& loop, const AudioPortSetup& setup,
                                                        AudioPort::Listener& listener) {
  const hal::AudioEndpoint& ep = setup.endpoint;
  if (ep.kind != hal::AudioEndpoint::Kind::alsa) return make_error("not an ALSA endpoint", -EINVAL);
  if (!ep.ready) return make_error(ep.error.empty() ? "audio not ready" : ep.error, -EAGAIN);
  AudioConfig ac = setup.audio;
  ac.rate = static_cast<int>(ep.sample_rate);
  hal::AudioStreamOptions o =
      audio_stream_options(ac, ep.device, ep.device, static_cast<int>(ep.channels), 0);
  o.alsa_config = ep.alsa_config;
  if (ep.clockless) o.pace = std::chrono::milliseconds(ac.frame_ms);
  // The playback ring is filled in full within a second of a call, so its size is what a live call holds (16
  // kB at 16 kHz): TTS arriving faster than real time waits in the Call, which tops the ring up every period.
  o.playback_ring_ms = 500;
  // The chain runs on the stream's thread (ChainRunner): its own ring carries the processed frames, the
  // stream's raw capture ring stays empty, so it gets the smallest size allowed.
  o.capture_ring_ms = 2 * ac.frame_ms;
  auto stream = hal::AudioStream::create(o);
  if (!stream) return stream.error();
  audio::LineChainConfig cc = line_chain_config(ac, setup.agent);
  cc.amd = setup.amd;
  return make_line_audio_port(loop, std::move(*stream), cc, listener, utterance_options(ac));
}

Result<std::unique_ptr<AudioPort>> make_line_audio_port(EventLoop& loop,
                                                        std::unique_ptr<hal::AudioStream> stream,
                                                        const audio::LineChainConfig& chain_config,
                                                        AudioPort::Listener& listener,
                                                        std::optional<audio::UtteranceOptions> utterance) {
  if (!stream) return make_error("line audio port: no stream", -EINVAL);
  audio::LineChainConfig cc = chain_config;
  cc.format = {stream->options().rate, stream->options().period_ms};
  auto chain = audio::LineChain::create(cc);
  if (!chain) return chain.error();
  const int rate = stream->options().rate;
  return make_stream_audio_port(loop, std::move(stream), std::move(*chain), rate, listener, utterance);
}

}  // namespace osvi::daemon
