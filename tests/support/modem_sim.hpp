// ModemSim: an AT modem on a real pty pair (posix_openpt) for line tests, scripted per scenario, on its own
// thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "osvi/hal/fd.hpp"
#include "osvi/hal/line.hpp"

namespace osvi::test {

class ModemSim {
 public:
  // Returns the raw bytes to answer with ("\r\nOK\r\n"); "" = say nothing (a slow or dead modem).
  using Handler = std::function<std::string(const std::string& command)>;

  // Creates the pty and the symlink `link_path` -> its slave, as udev's /dev/osvi-* names are symlinks.
  explicit ModemSim(std::string link_path);
  ~ModemSim();
  ModemSim(const ModemSim&) = delete;
  ModemSim& operator=(const ModemSim&) = delete;

  // Answers commands equal to `prefix`, or starting with it when it ends in '*' ("ATD*"). Replaces defaults.
  void on(const std::string& prefix, Handler handler);
  void on(const std::string& prefix, std::string fixed_response);
  // Lines +CLCC reports ("+CLCC: 1,0,0,0,0,\"+4930123\",145"); empty = no call.
  void set_calls(std::vector<std::string> clcc_lines);
  // Unsolicited bytes, written now.
  void send(const std::string& raw);
  // An inbound call from `number` rings: +CLCC lists it as incoming (stat 4), RING and +CLIP arrive, and the
  // next ATA (its handler is replaced) answers OK and turns the call active (stat 0), as an EC25 does.
  void ring_incoming(const std::string& number);
  // The caller hangs up: the call leaves +CLCC and NO CARRIER arrives.
  void remote_hangup();

  std::vector<std::string> commands() const;
  size_t count(const std::string& prefix) const;
  bool wait_command(const std::string& prefix, std::chrono::milliseconds timeout, size_t nth = 1) const;

  // The module vanishes: the master closes (the line reads EIO / hang-up) and the symlink goes away.
  void disappear();
  // A new pty appears at the same path (the USB device re-enumerated).
  void reappear();

  static std::string ok(const std::vector<std::string>& lines = {});
  static std::string imei() { return "861234567890123"; }
  // The SIM's own number, as the default AT+CNUM answers it (on("AT+CNUM", ...) changes that: "\r\nERROR\r\n"
  // for a module that refuses, ok() for a SIM that stores none).
  static std::string own_number() { return "+447700900123"; }

  // The module's PCM port on a second pty behind `link_path` (the SIM7600's /dev/osvi-sim7600-audio): raw
  // s16le mono at `rate`, one 20 ms period per period on the simulator's own clock while streaming, and
  // everything the line's engine writes is recorded.
  void enable_audio(const std::string& link_path, unsigned rate);
  // The caller's audio, sent from the moment streaming starts (then silence, so the port never goes quiet).
  void set_audio_source(std::vector<int16_t> pcm);
  // Streaming: on at AT+CPCMREG=1 and when ring_incoming()'s call is answered, off at AT+CPCMREG=0,
  // AT+CHUP and remote_hangup().
  void set_audio_streaming(bool on);
  bool audio_streaming() const { return audio_on_.load(); }
  // The PCM stops while the call stays up (a stalled audio port); false resumes it.
  void stall_audio(bool stalled) { audio_stalled_.store(stalled); }
  std::vector<int16_t> audio_received() const;
  uint64_t audio_sent_samples() const { return audio_sent_.load(); }

 private:
  void open_pty();
  void start_thread();
  void stop_thread();
  void run();
  void answer(const std::string& command);

  std::string link_path_;
  hal::UniqueFd master_;
  hal::UniqueFd slave_hold_;  // keeps the master free of hang-ups while the line reopens
  int stop_pipe_[2] = {-1, -1};
  std::thread thread_;
  mutable std::mutex mu_;
  std::map<std::string, Handler> handlers_;
  std::vector<std::string> calls_;
  std::vector<std::string> commands_;
  std::string partial_;

  void audio_run();
  std::string audio_link_;
  unsigned audio_rate_ = 8000;
  hal::UniqueFd audio_master_;
  hal::UniqueFd audio_slave_hold_;
  std::thread audio_thread_;
  std::atomic<bool> audio_quit_{false};
  std::atomic<bool> audio_on_{false};
  std::atomic<bool> audio_stalled_{false};
  std::atomic<uint64_t> audio_sent_{0};
  mutable std::mutex audio_mu_;
  std::vector<int16_t> audio_source_;
  size_t audio_pos_ = 0;  // into audio_source_, since streaming started
  std::vector<int16_t> audio_received_;
  std::string audio_odd_;  // a byte of a sample split across reads
};

// Drives a Line the way the daemon's loop does (poll on its fd, deadlines), until `done` or the timeout.
bool pump_line(hal::Line& line, const std::function<bool()>& done, std::chrono::milliseconds timeout);

}  // namespace osvi::test
