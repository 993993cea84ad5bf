// mosquitto as a child process on 127.0.0.1, ready once it accepts an MQTT connection.
#include "mosquitto_broker.hpp"

#include <mosquitto.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "test_support.hpp"

namespace osvi::test {

MosquittoBroker::MosquittoBroker(const std::string& dir, int port, const std::string& extra)
    : dir_(dir), port_(port) {
  conf_ = dir + "/mosquitto-" + std::to_string(port) + ".conf";
  write_file(conf_, "listener " + std::to_string(port) + " 127.0.0.1\nallow_anonymous true\n" +
                        (extra.find("persistence") == std::string::npos ? "persistence false\n" : "") +
                        // As root mosquitto drops to its own user, which cannot read our temp dir.
                        (geteuid() == 0 ? "user root\n" : "") + extra);
  mosquitto_lib_init();
  start();
}

bool MosquittoBroker::start() {
  pid_ = fork();
  if (pid_ == 0) {
    const std::string log = log_path();
    if (std::freopen(log.c_str(), "a", stderr) == nullptr) _exit(126);
    execl("/usr/sbin/mosquitto", "mosquitto", "-c", conf_.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  for (int i = 0; i < 250; ++i) {
    mosquitto* m = mosquitto_new(nullptr, true, nullptr);
    const int rc = mosquitto_connect(m, "127.0.0.1", port_, 5);
    mosquitto_destroy(m);
    if (rc == MOSQ_ERR_SUCCESS) return started_ = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return started_ = false;
}

void MosquittoBroker::stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  int st = 0;
  waitpid(pid_, &st, 0);
  pid_ = -1;
  started_ = false;
}

}  // namespace osvi::test
