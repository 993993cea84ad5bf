// osvi-model-server as a child process on an ephemeral loopback port, for tests and benches.
#pragma once

#include <sys/types.h>

#include <string>

namespace osvi::test {

class ModelServer {
 public:
  // Starts OSVI_MODEL_SERVER_PATH with the scenario and request log; waits for its "listening on" line.
  ModelServer(const std::string& scenario_path, const std::string& log_path);
  ~ModelServer();  // SIGKILL and reap
  ModelServer(const ModelServer&) = delete;
  ModelServer& operator=(const ModelServer&) = delete;

  // "http://127.0.0.1:PORT" (no /v1); empty when the server did not start — error() says why.
  const std::string& base() const { return url_; }
  const std::string& error() const { return error_; }

 private:
  pid_t pid_ = -1;
  std::string url_;
  std::string error_;
};

}  // namespace osvi::test
