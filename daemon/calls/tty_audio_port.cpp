// The PCM-tty AudioPort: a hal::TtyAudioStream with the line's LineChain (StreamAudioPort, audio_ports.hpp).
#include <algorithm>
#include <cerrno>

#include "audio_ports.hpp"
#include "osvi/config/audio_settings.hpp"
#include "osvi/hal/tty_audio_stream.hpp"

namespace osvi::daemon {

Result<std::unique_ptr<AudioPort>> make_tty_audio_port(EventLoop& loop, const AudioPortSetup& setup,
                                                       AudioPort::Listener& listener) {
  const hal::AudioEndpoint& ep = setup.endpoint;
  if (ep.kind != hal::AudioEndpoint::Kind::tty) return make_error("not a PCM tty endpoint", -EINVAL);
  if (!ep.ready) return make_error(ep.error.empty() ? "audio not ready" : ep.error, -EAGAIN);
  AudioConfig ac = setup.audio;
  ac.rate = static_cast<int>(ep.sample_rate);
  hal::TtyAudioOptions o;
  o.device = ep.device;
  o.rate = ac.rate;
  o.period_ms = ac.frame_ms;
  o.buffer_periods = ac.buffer_periods;
  o.rt_priority = ac.rt_priority;
  o.stall_periods = std::max(2, kTtyStallMs / ac.frame_ms);
  o.capture_ring_ms = 2 * ac.frame_ms;  // unused: the chain runs on the stream's thread (ChainRunner)
  if (ep.clockless) o.pace = std::chrono::milliseconds(ac.frame_ms);
  auto stream = hal::TtyAudioStream::create(o);
  if (!stream) return stream.error();
  audio::LineChainConfig cc = line_chain_config(ac, setup.agent);
  cc.amd = setup.amd;
  auto chain = audio::LineChain::create(cc);
  if (!chain) return chain.error();
  return make_stream_audio_port(loop, std::move(*stream), std::move(*chain), ac.rate, listener,
                                utterance_options(ac));
}

}  // namespace osvi::daemon
