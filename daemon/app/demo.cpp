// The demo's moving parts: the model server child process and the final report.
#include "osvi/app/demo.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "osvi/base/ids.hpp"

extern char** environ;

namespace osvi::daemon {

std::string model_server_path() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) {
    std::string self(buf, static_cast<size_t>(n));
    std::string dir = self.substr(0, self.rfind('/'));
    std::string candidate = dir + "/osvi-model-server";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "/usr/bin/osvi-model-server";
}

Result<std::unique_ptr<ModelServerProcess>> ModelServerProcess::start(const std::string& exe,
                                                                      const std::string& scenario_path,
                                                                      const std::string& log_path) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return make_error(std::string("pipe: ") + std::strerror(errno), -errno);
  hal::UniqueFd rd(fds[0]), wr(fds[1]);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, wr.get(), STDOUT_FILENO);
  std::vector<std::string> args = {exe, "--listen", "127.0.0.1:0", "--scenario", scenario_path, "--quiet"};
  if (!log_path.empty()) {
    args.push_back("--log");
    args.push_back(log_path);
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::unique_ptr<ModelServerProcess> p(new ModelServerProcess());
  const int r = ::posix_spawn(&p->pid_, exe.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (r != 0) {
    p->pid_ = -1;
    return make_error("cannot start " + exe + ": " + std::strerror(r), -r);
  }
  wr = hal::UniqueFd();
  // Its first line says where it listens.
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (out.find('\n') == std::string::npos) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return make_error(exe + " did not say where it listens within 5 s", -ETIMEDOUT);
    pollfd pfd{rd.get(), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[256];
    ssize_t n = ::read(rd.get(), buf, sizeof buf);
    if (n <= 0) return make_error(exe + " exited before listening", -EIO);
    out.append(buf, static_cast<size_t>(n));
  }
  const std::string key = "listening on ";
  const size_t at = out.find(key);
  if (at == std::string::npos) return make_error(exe + ": unexpected first line: " + out, -EPROTO);
  std::string hostport = out.substr(at + key.size());
  hostport = hostport.substr(0, hostport.find_first_of("\r\n "));
  p->url_ = "http://" + hostport + "/v1";
  return p;
}

ModelServerProcess::~ModelServerProcess() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  int status = 0;
  for (int i = 0; i < 100; ++i) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) return;
    ::usleep(20000);
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
}

std::string demo_report(Store& store, const std::string& call_id, int offset) {
  std::string out = "\n==== demo call " + call_id + " ====\n\nTranscript:\n";
  if (auto t = store.calls().transcript(call_id)) {
    for (const TranscriptTurn& turn : *t) {
      if (turn.role == "tool") {
        out += "  [tool]   " + turn.text + "\n";
        continue;
      }
      out += "  " +
             std::string(turn.role == "agent"  ? "Agent: "
                         : turn.role == "user" ? "Caller:"
                                               : turn.role + ":") +
             " " + turn.text + (turn.interrupted ? "  (interrupted)" : "") + "\n";
      if (turn.latency_json && *turn.latency_json != "{}")
        out += "          latency " + *turn.latency_json + "\n";
    }
  }
  if (auto c = store.calls().get(call_id); c && *c) {
    const CallRecord& r = **c;
    out += "\nCall record:\n";
    out += "  status " + r.status + ", " + r.call_type + ", line " + r.line.value_or("-") + ", " +
           std::to_string(r.duration_seconds) + " s, ended by " + r.call_ended_by.value_or("-") + " (" +
           r.call_ended_reason.value_or("-") + ")\n";
    out += "  from " + r.phone_number + " to agent " + r.agent_name + " (" + r.agent_uuid + ")\n";
    out += "  created " + format_local_iso(r.created_at_ms, offset) + ", picked " +
           (r.call_picked_at_ms ? format_local_iso(*r.call_picked_at_ms, offset) : std::string("-")) + "\n";
    if (r.callback_required) out += "  callback required\n";
  }
  if (auto rec = store.calls().recording(call_id); rec && *rec)
    out += "\nRecording (stereo Ogg Opus, left caller, right agent): " + (*rec)->path + "\n";
  else
    out += "\nNo recording was saved.\n";
  return out;
}

}  // namespace osvi::daemon
