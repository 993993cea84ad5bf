// Child-process and HTTP helpers for the integration tests.
#include "daemon_process.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "test_support.hpp"

namespace osvi::test {

DaemonProcess::DaemonProcess(const std::string& dir, std::vector<std::string> args,
                             std::map<std::string, std::string> env, const std::string& binary) {
  const std::string sock_path = dir + "/notify.sock";
  stderr_path_ = dir + "/osvid.stderr";
  ::unlink(sock_path.c_str());
  notify_fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (sock_path.size() >= sizeof addr.sun_path) throw std::runtime_error("socket path too long");
  std::memcpy(addr.sun_path, sock_path.c_str(), sock_path.size() + 1);
  if (bind(notify_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw std::runtime_error("bind notify socket failed");

  std::vector<std::string> argv_s{binary};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    int fd = ::open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, STDERR_FILENO);
      dup2(fd, STDOUT_FILENO);
    }
    ::unsetenv("JOURNAL_STREAM");
    ::setenv("NOTIFY_SOCKET", sock_path.c_str(), 1);
    for (const auto& [k, v] : env) {
      if (k == "WATCHDOG_PID" && v == "self") {
        ::setenv(k.c_str(), std::to_string(getpid()).c_str(), 1);
      } else {
        ::setenv(k.c_str(), v.c_str(), 1);
      }
    }
    std::vector<char*> argv;
    for (auto& s : argv_s) argv.push_back(s.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0 && !exited_) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    waitpid(pid_, &st, 0);
  }
  if (notify_fd_ >= 0) ::close(notify_fd_);
}

void DaemonProcess::drain_notify(int timeout_ms) {
  pollfd p{notify_fd_, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return;
  char buf[4096];
  for (;;) {
    ssize_t n = recv(notify_fd_, buf, sizeof buf, 0);
    if (n <= 0) break;
    messages_.emplace_back(buf, static_cast<size_t>(n));
  }
}

bool DaemonProcess::wait_notify(const std::string& needle, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    for (; scanned_ < messages_.size(); ++scanned_) {
      if (messages_[scanned_].find(needle) != std::string::npos) {
        ++scanned_;
        return true;
      }
    }
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    drain_notify(static_cast<int>(std::min<long>(left.count(), 50)));
  }
}

void DaemonProcess::signal(int signo) const {
  ::kill(pid_, signo);
}

std::optional<int> DaemonProcess::wait_exit(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int st = 0;
    pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }
    // Read the notify socket meanwhile, as systemd does: STOPPING=1 is sent blocking, and a queue a long run
    // filled with unread STATUS= datagrams would hold the daemon's shutdown in sendmsg().
    drain_notify(5);
  }
  return std::nullopt;
}

std::string DaemonProcess::stderr_text() const {
  return read_file(stderr_path_);
}

bool DaemonProcess::wait_stderr(const std::string& needle, std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (stderr_text().find(needle) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

namespace {
size_t append_cb(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}
}  // namespace

HttpResult http_request(const std::string& method, const std::string& url, const std::string& token,
                        const std::string& body, const std::string& content_type) {
  HttpRequestOptions o;
  o.content_type = content_type;
  return http_request(method, url, token, body, o);
}

namespace {
struct ChunkedBody {
  const std::string* body;
  size_t at = 0;
  size_t piece = 0;
};
size_t read_chunk(char* out, size_t size, size_t n, void* user) {
  auto* b = static_cast<ChunkedBody*>(user);
  const size_t take = std::min({size * n, b->piece, b->body->size() - b->at});
  std::memcpy(out, b->body->data() + b->at, take);
  b->at += take;
  return take;
}
}  // namespace

HttpResult http_request(const std::string& method, const std::string& url, const std::string& token,
                        const std::string& body, const HttpRequestOptions& options) {
  HttpResult out;
  CURL* curl = curl_easy_init();
  if (!curl) throw std::runtime_error("curl_easy_init failed");
  curl_slist* headers = nullptr;
  if (!token.empty()) headers = curl_slist_append(headers, ("API-Token: " + token).c_str());
  headers = curl_slist_append(headers, options.content_type.empty()
                                           ? "Content-Type:"
                                           : ("Content-Type: " + options.content_type).c_str());
  ChunkedBody chunked{&body, 0, std::max<size_t>(options.chunk_bytes, 1)};
  if (options.chunked) headers = curl_slist_append(headers, "Transfer-Encoding: chunked");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  if (options.chunked) {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, &read_chunk);
    curl_easy_setopt(curl, CURLOPT_READDATA, &chunked);
  } else if (!body.empty() || method == "POST" || method == "PUT") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &append_cb);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &append_cb);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &out.headers);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, options.timeout_ms);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  CURLcode rc = curl_easy_perform(curl);
  if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return out;
}

}  // namespace osvi::test
