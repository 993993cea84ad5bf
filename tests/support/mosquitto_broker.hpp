// A real mosquitto broker for tests and benches: its own config on a loopback port, stopped when destroyed.
#pragma once

#include <sys/types.h>

#include <string>

namespace osvi::test {

class MosquittoBroker {
 public:
  // extra: more mosquitto.conf lines (persistence, TLS listeners, limits). Starts at once and returns
  // when the broker accepts connections; started() tells whether it did.
  MosquittoBroker(const std::string& dir, int port, const std::string& extra = "");
  ~MosquittoBroker() { stop(); }
  MosquittoBroker(const MosquittoBroker&) = delete;
  MosquittoBroker& operator=(const MosquittoBroker&) = delete;

  bool start();
  // SIGTERM, so a persistent broker saves its sessions.
  void stop();
  bool started() const { return started_; }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string log_path() const { return dir_ + "/broker.log"; }

 private:
  std::string dir_, conf_;
  int port_;
  pid_t pid_ = -1;
  bool started_ = false;
};

}  // namespace osvi::test
