// Spawning osvi-model-server and reading the port it picked (model_server_process.hpp).
#include "model_server_process.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <vector>

extern char** environ;

namespace osvi::test {

ModelServer::ModelServer(const std::string& scenario_path, const std::string& log_path) {
  int fds[2];
  if (::pipe(fds) != 0) {
    error_ = std::string("pipe: ") + std::strerror(errno);
    return;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  std::vector<std::string> args = {OSVI_MODEL_SERVER_PATH, "--listen", "127.0.0.1:0", "--scenario",
                                   scenario_path,          "--log",    log_path,      "--quiet"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int r = ::posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  if (r != 0) {
    pid_ = -1;
    ::close(fds[0]);
    error_ = std::string("cannot spawn ") + OSVI_MODEL_SERVER_PATH + ": " + std::strerror(r);
    return;
  }
  std::string line;
  char c;
  while (line.find('\n') == std::string::npos && ::read(fds[0], &c, 1) == 1) line += c;
  ::close(fds[0]);
  const std::string key = "listening on ";
  const size_t at = line.find(key);
  if (at == std::string::npos) {
    error_ = "the model server did not start: " + line;
    return;
  }
  url_ = "http://" + line.substr(at + key.size(), line.find('\n') - at - key.size());
}

ModelServer::~ModelServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

}  // namespace osvi::test
