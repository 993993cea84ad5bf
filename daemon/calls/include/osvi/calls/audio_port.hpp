// AudioPort: what a Call sees of its line's audio — processed capture frames in, agent speech out, playback
// and device events — so the conversation logic runs the same against the real stream or a test double.
//
// Threading: every method and every Listener call is on the loop thread. The real ports (StreamAudioPort,
// calls/audio_ports.hpp) own the hal stream (ALSA, PCM tty or RTP) and the line's LineChain inside an
// audio::ChainRunner that the stream's real-time thread runs once per period (issue 18): the DSP chain, the
// recorder's encode and the caller's utterance encode (loop2) happen there, and the port hands the loop the
// processed frames (and each utterance's STT blob) when the stream's eventfd fires. The web call's port has
// no thread and runs its chain on the loop, behind the same interface.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "osvi/audio/line_chain.hpp"
#include "osvi/audio/recording.hpp"
#include "osvi/base/event_loop.hpp"
#include "osvi/config/config.hpp"
#include "osvi/hal/audio_stream.hpp"
#include "osvi/hal/line.hpp"
#include "osvi/result.hpp"

namespace osvi::daemon {

class AudioPort {
 public:
  // Called from the loop, in this order per wake-up: stream events, capture frames, then on_audio_tick.
  // Any callback may destroy the port (the call ended); the port returns at once when it does.
  class Listener {
   public:
    virtual void on_stream_event(const hal::StreamEvent& event) = 0;  // drained/stopped/opened/lost/back
    virtual void on_capture(const audio::CaptureOutput& frame) = 0;   // one processed capture frame
    virtual void on_audio_tick() = 0;  // after each wake-up: room in the playback ring, samples played

   protected:
    ~Listener() = default;
  };

  virtual ~AudioPort() = default;

  // The line's sample rate: everything queued and every sample count is at this rate.
  virtual int rate() const = 0;
  // Whether answering-machine detection runs (outbound calls of agents that detect voicemail).
  virtual bool amd_enabled() const = 0;
  // Starts delivering; the device opens in the background (opened / device_lost events follow).
  virtual Status start() = 0;

  // Line-rate agent speech; returns the count accepted (less when the ring is full, 0 while stopping).
  virtual size_t queue_playback(std::span<const int16_t> samples) = 0;
  // 24 kHz s16 TTS audio converted to the line rate, appended to `out`.
  virtual void resample_tts(std::span<const int16_t> in, std::vector<int16_t>& out) = 0;
  // Queued samples written to the device so far (monotonic over the port's life).
  virtual uint64_t played_samples() const = 0;
  // Barge-in: drop what is queued; playback_stopped reports how much was heard.
  virtual void stop_playback() = 0;
  // Device under/overruns recovered so far (the fleet's telemetry counts them).
  virtual uint64_t xruns() const = 0;

  virtual void set_min_speech_ms(int ms) = 0;
  virtual void set_amd(bool on) = 0;
  // The stereo recorder gets (caller, agent) for every frame while attached; null detaches. A real port
  // encodes on its audio thread: the recorder's sink must be real-time safe (an audio::PagePipe the loop
  // drains), and it is the loop's again (finish()) once attach_recorder(nullptr) returns or the port is gone.
  virtual void attach_recorder(audio::CallRecorder* recorder) = 0;

  // The caller's utterances. A real port encodes them on its audio thread (audio::ChainRunner, issue 18):
  // it says so here, and hands the Call the STT blob (Ogg Opus) of the utterance the frame just delivered to
  // on_capture() ended with its SpeechEnd (an error when that utterance was dropped). A port without a
  // thread (the web call, test doubles) leaves the encoding to the Call, on the loop.
  virtual bool encodes_utterances() const { return false; }
  virtual Result<std::vector<uint8_t>> take_utterance() {
    return make_error("this audio port does not encode utterances", -ENOTSUP);
  }
};

// What a port is built from.
struct AudioPortSetup {
  hal::AudioEndpoint endpoint;  // the line's, as audio() returned it
  AudioConfig audio;            // the box's settings (rate and frame follow the endpoint)
  const AgentConfig* agent = nullptr;
  bool amd = false;
  // The line the call is on: told when the engine opens or loses its audio (Line::report_audio_open) and
  // when a PCM tty stalls (report_audio_stalled). Null: nobody is told.
  hal::Line* line = nullptr;
};

// Builds a Call's port; an error when the line's audio is not usable (yet).
using AudioPortFactory = std::function<Result<std::unique_ptr<AudioPort>>(const AudioPortSetup& setup,
                                                                          AudioPort::Listener& listener)>;

// The production port for the endpoint's kind: hal::AudioStream (ALSA) or hal::TtyAudioStream (PCM tty)
// with audio::LineChain, its eventfd watched on `loop`.
Result<std::unique_ptr<AudioPort>> make_line_audio_port(EventLoop& loop, const AudioPortSetup& setup,
                                                        AudioPort::Listener& listener);
// The same over a stream already created (and not started): what the one above does once it has built the
// stream from the line's endpoint.
// `utterance` set: the port encodes the caller's utterances on the stream's thread (encodes_utterances()).
Result<std::unique_ptr<AudioPort>> make_line_audio_port(
    EventLoop& loop, std::unique_ptr<hal::AudioStream> stream, const audio::LineChainConfig& chain,
    AudioPort::Listener& listener, std::optional<audio::UtteranceOptions> utterance = std::nullopt);

}  // namespace osvi::daemon
