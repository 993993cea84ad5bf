// Real SIP peers for the SIP line's process tests and bench: baresip as the far phone (driven through its
// ctrl_tcp module), sipp scenarios (tests/sip/*.xml) as child processes, and a UDP relay between a peer and
// osvid that carries SIP and RTP, rewriting the SDP to its own ports and losing/reordering RTP on purpose.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "osvi/net/json.hpp"

namespace osvi::test {

// A child process with stdout and stderr in one file, SIGKILLed and reaped when the object dies.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::string& output_path,
               const std::string& cwd = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  // The exit status when the process ended within the timeout (128+signal when killed by one).
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  void signal(int signo) const;
  std::string output() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string output_path_;
};

// A UDP port p on 127.0.0.1 with p+1 free as well (a SIP/RTP port with its neighbour: baresip binds SIP/TLS
// on sip_port+1, RTP pairs use port+1 for RTCP).
int free_udp_port_pair();

// 8 kHz mono WAV for baresip's aufile source: `lead_ms` of silence, the espeak-ng sentence, then silence
// until `total_ms` (baresip 1.0.0's menu hangs the call up when the source file ends). Returns the samples
// of the sentence alone.
std::vector<int16_t> write_speech_wav(const std::string& path, const std::string& sentence, int lead_ms,
                                      int total_ms, int rate = 8000);
// The same speech as raw G.711 µ-law bytes for sipp's rtp_stream (8 kHz, no header), silence around it.
void write_speech_ulaw(const std::string& path, const std::string& sentence, int lead_ms, int total_ms);
uint8_t ulaw_encode(int16_t sample);
int16_t ulaw_decode(uint8_t byte);
int16_t alaw_decode(uint8_t byte);
// RMS in dBFS of 16-bit samples (-120 for digital silence).
double rms_dbfs(const std::vector<int16_t>& samples);

struct BaresipOptions {
  std::string user = "phone";        // the account's user part
  std::vector<std::string> aliases;  // more accounts on the same port (baresip answers 404 to other users)
  std::string source_wav;            // aufile source (8 kHz mono s16 WAV); empty = a silent source
  bool auto_answer = true;           // ;answermode=auto
  std::string extra_config;          // lines appended to the config file
};

// baresip 1.0.0 with a private config dir: SIP on 127.0.0.1:<sip_port()> (and SIP/TLS on the next port),
// G.711 only (aufile's file must have the codec's rate: Opus would need a 48 kHz source), aufile as the
// audio source and a null player, sndfile dumping every call's audio both ways into the dir, ctrl_tcp for
// commands and events.
class Baresip {
 public:
  Baresip(const std::string& dir, BaresipOptions options);
  ~Baresip();
  Baresip(const Baresip&) = delete;
  Baresip& operator=(const Baresip&) = delete;

  // Starts baresip and connects to its ctrl_tcp port; false with error() when it did not come up in 10 s.
  bool start();
  const std::string& error() const { return error_; }
  int sip_port() const { return sip_port_; }
  std::string uri() const;  // sip:<user>@127.0.0.1:<sip_port>

  // A long command as the menu module knows it ("dial", "hangup", "sndcode", "accept"); true on ok:true.
  bool command(const std::string& command, const std::string& params = {},
               std::chrono::milliseconds timeout = std::chrono::milliseconds(3000));
  // Waits for an event of `type` (CALL_ESTABLISHED, CALL_CLOSED, CALL_DTMF_START, ...), optionally with the
  // given "param"; consumed events are kept in events(). Null on timeout.
  osvi::net::JsonPtr wait_event(const std::string& type, std::chrono::milliseconds timeout,
                                const std::string& param = {});
  // Every event seen so far (JSON texts), including those waited for.
  std::vector<std::string> events();
  std::string log_text() const;
  pid_t pid() const { return process_ ? process_->pid() : -1; }  // for the footprint bench's /proc reads
  // sndfile's dumps of what baresip decoded (heard) or encoded (said): "dec" or "enc".
  std::vector<std::string> recordings(const std::string& which) const;

 private:
  bool pump(std::chrono::milliseconds timeout);  // reads and decodes netstrings for up to timeout
  std::string dir_;
  BaresipOptions options_;
  int sip_port_ = 0;
  int ctrl_port_ = 0;
  int ctrl_fd_ = -1;
  std::unique_ptr<ChildProcess> process_;
  std::string buffer_;
  std::vector<std::string> events_;     // every event, in order
  std::vector<bool> consumed_;          // events already returned by wait_event
  std::vector<std::string> responses_;  // command answers not yet taken
  std::string error_;
};

// The scenario file tests/sip/<name> of the source tree.
std::string sip_scenario(const std::string& name);

// sipp as a child: `sipp <args> -nostdin` in `dir` (its logs land there).
class Sipp {
 public:
  Sipp(const std::string& dir, std::vector<std::string> args);
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) { return process_.wait_exit(timeout); }
  bool running() { return process_.running(); }
  void stop() { process_.signal(9); }
  std::string output() const { return process_.output(); }

 private:
  ChildProcess process_;
};

struct RelayOptions {
  double loss = 0.0;     // share of RTP packets dropped (each direction)
  double reorder = 0.0;  // share of RTP packets held back and sent after the next one
  uint32_t seed = 1;
  bool log_rtp = false;  // keep an RtpRecord per RTP packet received (for the bench's timings)
};

// One RTP packet as the relay received it: when, which way, and its loudness (G.711 payloads; -200 for
// other payload types such as telephone-events).
struct RtpRecord {
  std::chrono::steady_clock::time_point at;
  bool to_box = false;
  uint8_t payload_type = 0;
  double level_dbfs = -200;
};

struct RelayStats {
  uint64_t sip = 0;        // SIP datagrams forwarded
  uint64_t rtp = 0;        // RTP datagrams received (both directions)
  uint64_t dropped = 0;    // of them, dropped
  uint64_t reordered = 0;  // of them, sent after their successor
  uint64_t rtp_to_box = 0;
  uint64_t rtp_to_peer = 0;
};

// Between a SIP peer (which sends its first request to sip_port()) and osvid's SIP socket, over UDP on
// 127.0.0.1: SIP datagrams are passed on with the peer's and the box's "127.0.0.1:<port>" rewritten to the
// relay's (Via, Contact, ...: replies and in-dialog requests come back through it) and every SDP's c=/m=
// rewritten to a relay RTP port of that side; RTP (and RTCP, untouched) is forwarded between the two,
// RTP with the configured loss and reordering from a seeded generator. One media session at a time (the
// last SDP of each side wins).
class UdpRelay {
 public:
  UdpRelay(int box_sip_port, RelayOptions options);
  ~UdpRelay();
  UdpRelay(const UdpRelay&) = delete;
  UdpRelay& operator=(const UdpRelay&) = delete;

  bool start();  // binds its sockets and starts its thread
  int sip_port() const { return sip_port_; }
  RelayStats stats() const;
  std::vector<RtpRecord> rtp_log() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int sip_port_ = 0;
};

}  // namespace osvi::test
