// Configuration → audio engine options, in one place so the calls engine and the tests agree.
#include "osvi/config/audio_settings.hpp"

#include <cmath>

namespace osvi::daemon {
namespace {

int ms(double seconds) {
  return static_cast<int>(std::lround(seconds * 1000.0));
}

}  // namespace

audio::LineChainConfig line_chain_config(const AudioConfig& a, const AgentConfig* agent) {
  audio::LineChainConfig c;
  c.format = {a.rate, a.frame_ms};
  auto backend = audio::parse_echo_backend(a.echo_backend);  // validated by the config parser
  c.capture.backend = backend ? *backend : audio::kDefaultEchoBackend;
  c.capture.echo.tail_ms = a.echo_tail_ms;
  c.capture.preprocess.denoise = a.denoise;
  c.capture.preprocess.noise_suppress_db = a.noise_suppress_db;
  c.capture.preprocess.agc = a.agc;
  c.capture.preprocess.agc_level_dbfs = a.agc_level_dbfs;
  c.capture.preprocess.echo_suppress_db = a.echo_suppress_db;
  c.capture.preprocess.echo_suppress_active_db = a.echo_suppress_active_db;
  c.vad = a.vad;
  c.dtmf = a.dtmf;
  c.call_progress_plan = a.call_progress_plan;
  c.amd_config.decision_window_ms = a.amd.decision_window_ms;
  c.amd_config.initial_silence_ms = a.amd.initial_silence_ms;
  c.amd_config.greeting_ms = a.amd.greeting_ms;
  c.amd_config.after_greeting_silence_ms = a.amd.after_greeting_silence_ms;
  c.amd_config.min_word_length_ms = a.amd.min_word_length_ms;
  c.amd_config.between_words_silence_ms = a.amd.between_words_silence_ms;
  c.amd_config.maximum_number_of_words = a.amd.max_words;
  c.amd_config.silence_threshold = a.amd.silence_threshold;
  if (agent) {
    const CallConfig& call = agent->call;
    c.vad_options.sensitivity = static_cast<float>(call.vad.sensitivity);
    c.endpointer.min_endpointing_ms = ms(call.min_endpointing_s);
    c.endpointer.max_endpointing_ms = ms(call.max_endpointing_s);
    c.amd = call.voicemail.detect;
  }
  return c;
}

audio::UtteranceOptions utterance_options(const AudioConfig& a) {
  return {.bitrate = a.opus_bitrate, .complexity = a.opus_complexity};
}

hal::AudioStreamOptions audio_stream_options(const AudioConfig& a, const std::string& capture_device,
                                             const std::string& playback_device, int channels, int channel) {
  hal::AudioStreamOptions o;
  o.capture_device = capture_device;
  o.playback_device = playback_device;
  o.rate = a.rate;
  o.period_ms = a.frame_ms;
  o.buffer_periods = a.buffer_periods;
  o.rt_priority = a.rt_priority;
  o.channels = channels;
  o.channel = channel;
  return o;
}

}  // namespace osvi::daemon
