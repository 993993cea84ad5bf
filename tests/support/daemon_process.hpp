// Runs osvid as a child process the way systemd would: NOTIFY_SOCKET, signals, stderr captured.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace osvi::test {

class DaemonProcess {
 public:
  // dir holds the notify socket and the stderr capture; env adds variables (e.g. WATCHDOG_USEC); binary is
  // this build's osvid unless a bench compares another (idle_footprint_bench --osvid).
  DaemonProcess(const std::string& dir, std::vector<std::string> args,
                std::map<std::string, std::string> env = {}, const std::string& binary = OSVID_PATH);
  ~DaemonProcess();  // SIGKILLs a child still running
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Waits for a notify datagram containing `needle` (e.g. "READY=1"); returns all messages seen so far.
  bool wait_notify(const std::string& needle, std::chrono::milliseconds timeout);
  const std::vector<std::string>& notify_messages() const { return messages_; }
  void signal(int signo) const;
  // Exit status when the process ended within the timeout (-1 when killed by a signal).
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  std::string stderr_text() const;
  // Waits until stderr contains `needle`.
  bool wait_stderr(const std::string& needle, std::chrono::milliseconds timeout) const;

 private:
  void drain_notify(int timeout_ms);
  pid_t pid_ = -1;
  int notify_fd_ = -1;
  std::string stderr_path_;
  std::vector<std::string> messages_;
  size_t scanned_ = 0;
  bool exited_ = false;
};

struct HttpResult {
  long status = 0;
  std::string body;
  std::string headers;
};

// A real HTTP request through libcurl. token empty = no API-Token header.
HttpResult http_request(const std::string& method, const std::string& url, const std::string& token,
                        const std::string& body = {}, const std::string& content_type = "application/json");

// The same with a chosen Content-Type (empty: none) and, when chunked, the body sent with
// Transfer-Encoding: chunked in pieces of at most chunk_bytes.
struct HttpRequestOptions {
  std::string content_type = "application/json";
  bool chunked = false;
  size_t chunk_bytes = 16384;
  long timeout_ms = 5000;
};
HttpResult http_request(const std::string& method, const std::string& url, const std::string& token,
                        const std::string& body, const HttpRequestOptions& options);

}  // namespace osvi::test
