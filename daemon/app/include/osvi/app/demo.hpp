// The demo (osvid --demo): a shipped stand-in model server, a simulated caller, one real conversation,
// then the transcript, the call record and the recording's path on stdout.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>

#include "osvi/hal/fd.hpp"
#include "osvi/result.hpp"
#include "osvi/store/store.hpp"

namespace osvi::daemon {

// What --demo changes in the configuration (applied by load_configuration with the other overrides).
struct DemoSetup {
  std::string model_url;  // every agent's stt/llm/voice base_url, e.g. "http://127.0.0.1:41234/v1"
  std::string line_json;  // replaces the "lines" array with this one line
};

// rootfs/usr/share/osvi/demo.json, embedded at build time: {"model_server": scenario, "line": line}.
std::string_view demo_json();

// osvi-model-server as a child process on an ephemeral loopback port; killed and reaped by the destructor.
class ModelServerProcess {
 public:
  // exe: the binary; scenario_path: its --scenario file. Waits (≤ 5 s) for its "listening on" line.
  static Result<std::unique_ptr<ModelServerProcess>> start(const std::string& exe,
                                                           const std::string& scenario_path,
                                                           const std::string& log_path);
  ~ModelServerProcess();
  ModelServerProcess(const ModelServerProcess&) = delete;
  ModelServerProcess& operator=(const ModelServerProcess&) = delete;
  const std::string& url() const { return url_; }  // "http://127.0.0.1:PORT/v1"

 private:
  ModelServerProcess() = default;
  pid_t pid_ = -1;
  std::string url_;
};

// Where osvi-model-server is: next to the running osvid (a build tree), else on PATH's /usr/bin.
std::string model_server_path();

// The human-readable end of the demo: transcript, record (JSON) and recording path.
std::string demo_report(Store& store, const std::string& call_id, int utc_offset_minutes);

}  // namespace osvi::daemon
