// RtpStream: one SIP call's media over RTP/RTCP (RFC 3550) as the audio engine sees a line's PCM.
//
// It has the loop-facing interface of hal::AudioStream (event_fd, drain_events, read_frame, queue_playback,
// stop_playback, stats, set_processor), so the calls engine runs its LineChain, recorder and barge-in over it
// unchanged (StreamAudioPort in the calls room): the chain on this media thread through set_processor().
// Behind it, the stream's own media thread follows the real-time rules at the top of audio_stream.hpp (no
// allocation after start(), no locks shared with the loop, no logging): it receives RTP into an adaptive
// jitter buffer, decodes (G.711, Opus), conceals lost packets (Opus PLC; G.711 repeat then fade), and on its
// own 20 ms clock pushes one capture period per tick to the loop and encodes and sends one period of queued
// speech (silence when none: the far end always hears a stream).
//
// The network has no echo path the box can hear, so read_frame()'s reference is what was sent in the same
// tick: an echo canceller given it cancels a far-end (hybrid) echo, or sees nothing to do.
//
// Symmetric RTP (RFC 4961): packets go to the address the SDP named until packets arrive, then to the source
// they come from (once latched, a different source takes over only after 4 packets in sequence). Comfort
// noise (RFC 3389, payload type 13) is accepted and played as silence. RFC 4733 telephone-events are decoded
// into StreamEventKind::dtmf events (one per digit, at its end) and sent by send_dtmf().
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "osvi/hal/audio_stream.hpp"
#include "osvi/hal/fd.hpp"
#include "osvi/result.hpp"

namespace osvi::hal {

enum class RtpCodec : uint8_t { pcmu, pcma, opus };
// The SDP encoding name: "PCMU", "PCMA", "opus".
std::string_view to_string(RtpCodec c);

// A bound RTP socket (an even port) and its RTCP socket (the next port), UDP, non-blocking, from a range.
class RtpSockets {
 public:
  // Binds the first free even port in [port_min, port_max] (and port + 1) on local_ip ("0.0.0.0", "::",
  // or one address). An error when the range holds no free pair. port_min = port_max = 0: any free pair the
  // kernel offers (tests).
  static Result<RtpSockets> bind(const std::string& local_ip, uint16_t port_min, uint16_t port_max);
  uint16_t rtp_port() const { return port_; }
  int rtp_fd() const { return rtp_.get(); }
  int rtcp_fd() const { return rtcp_.get(); }

 private:
  RtpSockets(UniqueFd rtp, UniqueFd rtcp, uint16_t port)
      : rtp_(std::move(rtp)), rtcp_(std::move(rtcp)), port_(port) {}
  UniqueFd rtp_;
  UniqueFd rtcp_;
  uint16_t port_ = 0;
};

struct RtpStreamOptions {
  RtpCodec codec = RtpCodec::pcmu;
  uint8_t payload_type = 0;       // as negotiated (PCMU 0, PCMA 8, Opus dynamic)
  uint8_t dtmf_payload_type = 0;  // telephone-event as negotiated; 0 = RFC 4733 not negotiated
  int rate = 8000;                // the rate the engine sees: 8000 (G.711) or 16000 (Opus, decoded wideband)
  int ptime_ms = 20;              // packets we send (the engine's period); what arrives may differ
  std::string remote_ip;          // from the SDP (c= line); replaced by the source of what arrives
  uint16_t remote_rtp_port = 0;
  uint16_t remote_rtcp_port = 0;  // 0 = remote_rtp_port + 1
  int jitter_min_ms = 20;         // the adaptive playout delay stays within [min, max]
  int jitter_max_ms = 200;
  int rt_priority = 0;  // SCHED_FIFO 1..99 for the media thread; 0 keeps SCHED_OTHER
  int capture_ring_ms = 500;
  int playback_ring_ms = 1000;
  size_t event_ring = 64;
  // No RTP nor RTCP from the far end for this long: device_lost (direction capture, -ETIMEDOUT); packets
  // arriving again: device_back. 0 = never.
  int media_timeout_ms = 30000;
};

// What the media thread counted (relaxed atomic snapshots), beside the AudioStreamStats the engine reads.
struct RtpStreamStats {
  uint64_t packets_received = 0;
  uint64_t packets_sent = 0;
  uint64_t packets_lost = 0;       // sequence gaps never filled
  uint64_t packets_late = 0;       // arrived after their playout time (dropped)
  uint64_t packets_reordered = 0;  // arrived out of order but in time
  uint64_t packets_invalid = 0;    // not RTP, wrong payload type, truncated
  uint64_t concealed_frames = 0;   // periods made by PLC / repeat / fade
  uint64_t comfort_noise = 0;      // CN packets received
  uint64_t dtmf_received = 0;
  uint64_t dtmf_sent = 0;
  uint32_t jitter_ms = 0;         // RFC 3550 interarrival jitter estimate
  uint32_t playout_delay_ms = 0;  // the jitter buffer's current target
};

class RtpStream {
 public:
  // Validates the options and sizes every buffer; takes the sockets; sends nothing yet.
  static Result<std::unique_ptr<RtpStream>> create(RtpStreamOptions options, RtpSockets sockets);
  ~RtpStream();  // stop()s
  RtpStream(const RtpStream&) = delete;
  RtpStream& operator=(const RtpStream&) = delete;

  // Starts the media thread (opened event first).
  Status start();
  // Asks the thread to stop and joins it (within one period); sends an RTCP BYE first.
  void stop();
  // As AudioStream::set_processor(): the line's DSP chain runs on the media thread, once per tick, after the
  // tick's packet has gone out (-EBUSY while the thread runs).
  Status set_processor(PeriodProcessor* processor);

  // The loop side, as hal::AudioStream's (audio_stream.hpp).
  int event_fd() const;
  size_t drain_events(std::span<StreamEvent> out);
  bool read_frame(std::span<int16_t> capture, std::span<int16_t> reference);
  size_t frames_available() const;
  size_t queue_playback(std::span<const int16_t> samples);
  size_t playback_queued() const;
  void stop_playback();
  bool stop_playback_pending() const;
  AudioStreamStats stats() const;
  size_t period_frames() const;
  const RtpStreamOptions& options() const;

  RtpStreamStats rtp_stats() const;
  // Loop thread: queues RFC 4733 events for the digits (0-9 * # A-D), sent one after another, each 100 ms
  // with a 70 ms pause, three end packets each. An error when telephone-event was not negotiated or the
  // queue (32 digits) is full.
  Status send_dtmf(std::string_view digits);
  // Loop thread: the far end's address changed (re-INVITE); hold = a=sendonly/inactive from the far end
  // (we keep receiving nothing and send nothing until it clears).
  void set_remote(const std::string& ip, uint16_t rtp_port, uint16_t rtcp_port);
  void set_hold(bool hold);

 private:
  struct Impl;
  explicit RtpStream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace osvi::hal
