// The SIP AudioPort: the call's hal::RtpStream (shared with its line) with the line's LineChain.
#include <cerrno>

#include "audio_ports.hpp"
#include "osvi/config/audio_settings.hpp"
#include "osvi/hal/rtp_stream.hpp"

namespace osvi::daemon {

Result<std::unique_ptr<AudioPort>> make_rtp_audio_port(EventLoop& loop, const AudioPortSetup& setup,
                                                       AudioPort::Listener& listener) {
  const hal::AudioEndpoint& ep = setup.endpoint;
  if (ep.kind != hal::AudioEndpoint::Kind::rtp) return make_error("not an RTP endpoint", -EINVAL);
  if (!ep.ready || !ep.rtp) return make_error(ep.error.empty() ? "media not agreed yet" : ep.error, -EAGAIN);
  AudioConfig ac = setup.audio;
  ac.rate = ep.rtp->options().rate;
  ac.frame_ms = ep.rtp->options().ptime_ms;
  audio::LineChainConfig cc = line_chain_config(ac, setup.agent);
  cc.format = {ac.rate, ac.frame_ms};
  cc.amd = setup.amd;
  auto chain = audio::LineChain::create(cc);
  if (!chain) return chain.error();
  return make_stream_audio_port(loop, ep.rtp, std::move(*chain), ac.rate, listener);
}

}  // namespace osvi::daemon
