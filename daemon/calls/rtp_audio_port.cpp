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
  // No acoustic path and no hybrid the box can hear: the far end's gateway cancels its own line echo (ITU-T
  // G.168), and a canceller here would only chew the caller's double talk, as on a web call. audio.echo.sip
  // turns it on for a path that does return echo.
  if (!ac.echo_sip) ac.echo_backend = "null";
  audio::LineChainConfig cc = line_chain_config(ac, setup.agent);
  if (!ac.echo_sip) cc.capture.backend = audio::EchoBackend::null;
  cc.format = {ac.rate, ac.frame_ms};
  cc.amd = setup.amd;
  auto chain = audio::LineChain::create(cc);
  if (!chain) return chain.error();
  return make_stream_audio_port(loop, ep.rtp, std::move(*chain), ac.rate, listener, utterance_options(ac));
}

}  // namespace osvi::daemon
