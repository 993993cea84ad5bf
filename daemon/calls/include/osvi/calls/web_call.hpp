// Browser test calls (OSVI's "web call", execution_mode test): the browser's microphone and speaker over a
// WebSocket on the API listener, taken through the same engine path as a phone line — a Line of kind `web`
// per call, an AudioPort whose capture is the browser's frames, a Call with its LineChain, recorder and
// transcript (docs/api.md "Test calls from the browser", docs/lines.md).
//
// Threading: loop thread only; no thread of its own. The socket is an sd-event io source; one CallTimer per
// session (deferred line events, the idle deadline).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/audio/line_chain.hpp"
#include "osvi/calls/audio_port.hpp"
#include "osvi/calls/call.hpp"
#include "osvi/calls/call_manager.hpp"
#include "osvi/lines/line_manager.hpp"
#include "osvi/net/http_server.hpp"

namespace osvi::daemon {

// The wire audio of a web call both ways: s16le mono at 16 kHz in frames of 20 ms.
inline constexpr int kWebRate = 16000;
inline constexpr size_t kWebFrameSamples = 320;
inline constexpr size_t kWebFrameBytes = 2 * kWebFrameSamples;

class WebAudioPort;

// What a WebAudioPort talks to: the session's socket (a test double in unit tests).
class WebAudioLink {
 public:
  virtual ~WebAudioLink() = default;
  // Sends agent samples to the browser; false when the browser is not reading (the link ends the call).
  virtual bool send_audio(std::span<const int16_t> samples) = 0;
  // Barge-in: the browser drops the agent audio it holds and has not played.
  virtual void clear_playback() = 0;
  // The port that takes the browser's frames (null: none any more).
  virtual void attach(WebAudioPort* port) = 0;
};

// The AudioPort of a web call. The browser's capture clock paces everything: each 20 ms frame it sends is
// one period — the frame goes through the LineChain (AEC off: the browser cancels its own echo) with, as the
// reference and the recorder's agent channel, the agent samples the browser played in that period; then
// agent audio is sent so that at most kCushionFrames + 1 frames are in the browser's queue, so speech goes
// out in real time and a barge-in drops at most that much. Events (opened, drained, stopped) are delivered at
// the next frame, in the order the AudioPort contract gives (events, capture, tick).
class WebAudioPort final : public AudioPort {
 public:
  static constexpr size_t kCushionFrames = 3;
  // Agent audio waiting to be sent: one second, as the ALSA port's playback ring (the Call holds the rest).
  static constexpr size_t kQueueSamples = kWebRate;

  static Result<std::unique_ptr<WebAudioPort>> create(const AudioPortSetup& setup,
                                                      std::shared_ptr<WebAudioLink> link,
                                                      AudioPort::Listener& listener);
  WebAudioPort(std::unique_ptr<audio::LineChain> chain, std::shared_ptr<WebAudioLink> link,
               AudioPort::Listener& listener);
  ~WebAudioPort() override;
  WebAudioPort(const WebAudioPort&) = delete;
  WebAudioPort& operator=(const WebAudioPort&) = delete;

  // One frame of kWebFrameSamples from the browser. May destroy this port (through the listener).
  void on_frame(std::span<const int16_t> mic);

  int rate() const override { return kWebRate; }
  bool amd_enabled() const override { return false; }
  Status start() override;
  size_t queue_playback(std::span<const int16_t> samples) override;
  void resample_tts(std::span<const int16_t> in, std::vector<int16_t>& out) override;
  uint64_t played_samples() const override { return played_; }
  void stop_playback() override;
  uint64_t xruns() const override { return 0; }
  void set_min_speech_ms(int ms) override { (void)chain_->set_min_speech_ms(ms); }
  void set_amd(bool) override {}
  void attach_recorder(audio::CallRecorder* recorder) override { chain_->attach_recorder(recorder); }

  uint64_t sent_samples() const { return sent_; }
  size_t in_flight() const { return inflight_.size(); }  // sent, not yet played by the browser's clock
  size_t queued() const { return queue_.size(); }

 private:
  void send_ahead();

  std::unique_ptr<audio::LineChain> chain_;
  std::shared_ptr<WebAudioLink> link_;
  AudioPort::Listener& listener_;
  std::shared_ptr<bool> alive_;
  bool started_ = false;
  std::vector<hal::StreamEvent> events_;        // delivered at the next frame
  std::vector<hal::StreamEvent> events_taken_;  // on_frame()'s batch being delivered
  std::vector<int16_t> queue_;                  // agent audio not sent yet
  std::vector<int16_t> inflight_;               // sent, in the browser's queue (by our model of its clock)
  std::vector<int16_t> ref_, resample_out_;
  uint64_t sent_ = 0, played_ = 0, burst_played_ = 0;
  bool link_failed_ = false;
};

struct WebCallsOptions {
  // Live web calls at once; the App sets one per configured line, at least one (the upstream models are
  // sized for the box's lines). Unredeemed tickets count too.
  size_t max_calls = 1;
  size_t max_tickets = 16;  // tickets issued and not yet used or expired
  int64_t ticket_ttl_ms = 30'000;
  int64_t idle_timeout_ms = 5'000;     // no frame from the browser for this long: the caller is gone
  size_t max_send_buffer = 64 * 1024;  // unsent bytes to the browser; past it the browser is dropped
};

// A one-time ticket for GET ws_path (POST /v1/web_calls).
struct WebCallTicket {
  std::string ticket;
  std::string ws_path;
  int64_t expires_at_ms = 0;  // wall clock
};

class WebCalls {
 public:
  // `ctx` gives the loop, the clock and the timer factory; `calls` places the calls. Both outlive this.
  WebCalls(CallContext& ctx, CallManager& calls, WebCallsOptions options);
  ~WebCalls();
  WebCalls(const WebCalls&) = delete;
  WebCalls& operator=(const WebCalls&) = delete;

  void set_max_calls(size_t n) { options_.max_calls = n; }
  const WebCallsOptions& options() const { return options_; }

  // A ticket for the agent. Errors: -ENOENT not an active voice agent; -EBUSY the web call limit is reached
  // (live calls and tickets outstanding); -ENOSPC too many tickets outstanding.
  Result<WebCallTicket> issue(const std::string& agent_uuid);
  // Takes a ticket (it cannot be used again): its agent. Errors: -ENOENT unknown or used; -ETIMEDOUT
  // expired; -EBUSY the limit of live web calls is reached.
  Result<std::string> redeem(std::string_view ticket);
  // The upgraded socket of a redeemed ticket: the call starts (or the socket is closed saying why).
  void start(const std::string& agent_uuid, net::UpgradedSocket socket);

  size_t live() const { return sessions_.size(); }
  size_t tickets() const { return tickets_.size(); }
  // The web lines of live calls, for /v1/health's lines.
  std::vector<LineHealth> lines() const;
  // Every web call's socket is closed (going away); their calls end as the daemon stops them.
  void shutdown();

  class Session;  // web_call.cpp

 private:
  friend class Session;
  struct Ticket {
    std::string agent_uuid;
    int64_t expires_at_ms = 0;
  };
  void expire_tickets();
  void finished(const CallRecord& record);

  CallContext& ctx_;
  CallManager& calls_;
  WebCallsOptions options_;
  std::map<std::string, Ticket, std::less<>> tickets_;
  std::map<std::string, std::shared_ptr<Session>, std::less<>> sessions_;  // by call id
  std::vector<std::shared_ptr<Session>> retired_;  // ended, dropped on the next finished delivery or start
  int listener_ = -1;
  uint64_t next_line_ = 0;
};

}  // namespace osvi::daemon
