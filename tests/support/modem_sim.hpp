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
};

// Drives a Line the way the daemon's loop does (poll on its fd, deadlines), until `done` or the timeout.
bool pump_line(hal::Line& line, const std::function<bool()>& done, std::chrono::milliseconds timeout);

}  // namespace osvi::test
