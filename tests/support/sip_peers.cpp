// baresip, sipp and the lossy UDP relay for the SIP line's process tests and bench.
#include "sip_peers.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>

#include "osvi/speech/speech.hpp"
#include "test_support.hpp"
#include "wav.hpp"

namespace osvi::test {

namespace {

using Clock = std::chrono::steady_clock;

int bind_udp(int port) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int bound_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
  return ntohs(a.sin_port);
}

bool tcp_free(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// Two bound UDP sockets on neighbouring ports (RTP, RTCP); false when no pair was found.
bool bind_udp_pair(int& a, int& b) {
  for (int i = 0; i < 200; ++i) {
    a = bind_udp(0);
    if (a < 0) return false;
    const int p = bound_port(a);
    if (p % 2 == 0 && p < 65535) {
      b = bind_udp(p + 1);
      if (b >= 0) return true;
    }
    ::close(a);
  }
  return false;
}

std::vector<int16_t> render(const std::string& sentence, int rate) {
  auto speech = osvi::daemon::Speech::create();
  if (!speech) throw std::runtime_error("espeak-ng: " + speech.error().message);
  auto pcm = (*speech)->render(sentence, rate);
  if (!pcm) throw std::runtime_error("espeak-ng: " + pcm.error().message);
  return std::move(*pcm);
}

std::vector<int16_t> padded(const std::vector<int16_t>& words, int lead_ms, int total_ms, int rate) {
  std::vector<int16_t> out(static_cast<size_t>(lead_ms) * rate / 1000, 0);
  out.insert(out.end(), words.begin(), words.end());
  const size_t total = static_cast<size_t>(total_ms) * rate / 1000;
  if (out.size() < total) out.resize(total, 0);
  return out;
}

}  // namespace

// ---- processes ----

ChildProcess::ChildProcess(const std::vector<std::string>& argv_s, const std::string& output_path,
                           const std::string& cwd)
    : output_path_(output_path) {
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    const int in = ::open("/dev/null", O_RDONLY);
    const int out = ::open(output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in >= 0) ::dup2(in, STDIN_FILENO);
    if (out >= 0) {
      ::dup2(out, STDOUT_FILENO);
      ::dup2(out, STDERR_FILENO);
    }
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) _exit(126);
    // Its own process group: the kill at the end reaches whatever it forked.
    ::setpgid(0, 0);
    std::vector<char*> argv;
    for (const auto& s : argv_s) argv.push_back(const_cast<char*>(s.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    _exit(127);
  }
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !status_) {
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
}

bool ChildProcess::running() {
  return !wait_exit(std::chrono::milliseconds(0)).has_value();
}

std::optional<int> ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  const auto until = Clock::now() + timeout;
  for (;;) {
    int st = 0;
    const pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      return status_;
    }
    if (Clock::now() >= until) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void ChildProcess::signal(int signo) const {
  if (pid_ > 0 && !status_) ::kill(pid_, signo);
}

std::string ChildProcess::output() const {
  std::ifstream f(output_path_, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

int free_udp_port_pair() {
  for (int i = 0; i < 200; ++i) {
    int a = -1, b = -1;
    if (!bind_udp_pair(a, b)) break;
    const int p = bound_port(a);
    ::close(a);
    ::close(b);
    if (tcp_free(p) && tcp_free(p + 1)) return p;
  }
  throw std::runtime_error("no free UDP port pair on 127.0.0.1");
}

// ---- audio ----

uint8_t ulaw_encode(int16_t sample) {
  constexpr int kBias = 0x84, kClip = 32635;
  int s = sample;
  const int sign = s < 0 ? 0x80 : 0;
  if (s < 0) s = -s;
  if (s > kClip) s = kClip;
  s += kBias;
  int exponent = 7;
  for (int mask = 0x4000; (s & mask) == 0 && exponent > 0; mask >>= 1) --exponent;
  const int mantissa = (s >> (exponent + 3)) & 0x0f;
  return static_cast<uint8_t>(~(sign | (exponent << 4) | mantissa));
}

int16_t ulaw_decode(uint8_t byte) {
  const int u = ~byte & 0xff;
  int t = ((u & 0x0f) << 3) + 0x84;
  t <<= (u & 0x70) >> 4;
  return static_cast<int16_t>((u & 0x80) ? 0x84 - t : t - 0x84);
}

int16_t alaw_decode(uint8_t byte) {
  const int a = byte ^ 0x55;
  int t = (a & 0x0f) << 4;
  const int seg = (a & 0x70) >> 4;
  if (seg == 0) {
    t += 8;
  } else {
    t += 0x108;
    t <<= seg - 1;
  }
  return static_cast<int16_t>((a & 0x80) ? t : -t);
}

double rms_dbfs(const std::vector<int16_t>& samples) {
  if (samples.empty()) return -120.0;
  double sum = 0;
  for (int16_t s : samples) sum += static_cast<double>(s) * s;
  const double rms = std::sqrt(sum / static_cast<double>(samples.size()));
  return rms < 1e-3 ? -120.0 : 20.0 * std::log10(rms / 32768.0);
}

std::vector<int16_t> write_speech_wav(const std::string& path, const std::string& sentence, int lead_ms,
                                      int total_ms, int rate) {
  std::vector<int16_t> words = sentence.empty() ? std::vector<int16_t>{} : render(sentence, rate);
  write_wav(path, rate, 1, padded(words, lead_ms, total_ms, rate));
  return words;
}

void write_speech_ulaw(const std::string& path, const std::string& sentence, int lead_ms, int total_ms) {
  const std::vector<int16_t> pcm = padded(render(sentence, 8000), lead_ms, total_ms, 8000);
  std::string bytes(pcm.size(), '\0');
  for (size_t i = 0; i < pcm.size(); ++i) bytes[i] = static_cast<char>(ulaw_encode(pcm[i]));
  write_file(path, bytes);
}

// ---- baresip ----

Baresip::Baresip(const std::string& dir, BaresipOptions options) : dir_(dir), options_(std::move(options)) {}

Baresip::~Baresip() {
  if (ctrl_fd_ >= 0) ::close(ctrl_fd_);
}

std::string Baresip::uri() const {
  return "sip:" + options_.user + "@127.0.0.1:" + std::to_string(sip_port_);
}

bool Baresip::start() {
  sip_port_ = free_udp_port_pair();
  ctrl_port_ = free_loopback_port();
  std::string source = options_.source_wav;
  if (source.empty()) {
    source = dir_ + "/silence.wav";
    write_wav(source, 8000, 1, std::vector<int16_t>(8000 * 120, 0));
  }
  // No stdio/cons UI: stdin is /dev/null, which epoll refuses.
  const std::string config =
      "poll_method epoll\n"
      // Media and SDP on loopback too: by default baresip takes the first real interface's address.
      "net_interface 127.0.0.1\n"
      "sip_listen 127.0.0.1:" +
      std::to_string(sip_port_) +
      "\n"
      "audio_player aufile,/dev/null\n"
      "audio_alert aufile,/dev/null\n"
      "audio_source aufile," +
      source +
      "\n"
      "module_path /usr/lib/baresip/modules\n"
      "module g711.so\n"
      "module aufile.so\n"
      "module sndfile.so\n"
      "module_app account.so\n"
      "module_app menu.so\n"
      "module_app ctrl_tcp.so\n"
      "ctrl_tcp_listen 127.0.0.1:" +
      std::to_string(ctrl_port_) +
      "\n"
      "snd_path " +
      dir_ + "\n" + options_.extra_config;
  write_file(dir_ + "/config", config);
  std::string accounts;
  std::vector<std::string> users{options_.user};
  users.insert(users.end(), options_.aliases.begin(), options_.aliases.end());
  for (const std::string& u : users)
    accounts += "<sip:" + u + "@127.0.0.1:" + std::to_string(sip_port_) +
                ">;regint=0;answermode=" + (options_.auto_answer ? "auto" : "manual") + "\n";
  write_file(dir_ + "/accounts", accounts);
  process_ =
      std::make_unique<ChildProcess>(std::vector<std::string>{"baresip", "-f", dir_}, dir_ + "/baresip.log");
  const auto until = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < until) {
    if (!process_->running()) {
      error_ = "baresip exited: " + process_->output();
      return false;
    }
    if (log_text().find("baresip is ready") != std::string::npos) {
      ctrl_fd_ = connect_loopback(ctrl_port_, 1);
      if (ctrl_fd_ >= 0) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  error_ = "baresip did not come up: " + log_text();
  return false;
}

bool Baresip::pump(std::chrono::milliseconds timeout) {
  if (ctrl_fd_ < 0) return false;
  pollfd p{ctrl_fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  char buf[8192];
  const ssize_t n = ::recv(ctrl_fd_, buf, sizeof buf, MSG_DONTWAIT);
  if (n <= 0) return false;
  buffer_.append(buf, static_cast<size_t>(n));
  // Netstrings: <length>:<json>,
  for (;;) {
    const size_t colon = buffer_.find(':');
    if (colon == std::string::npos) break;
    const size_t len = std::strtoul(buffer_.substr(0, colon).c_str(), nullptr, 10);
    if (buffer_.size() < colon + 1 + len + 1) break;
    std::string msg = buffer_.substr(colon + 1, len);
    buffer_.erase(0, colon + 1 + len + 1);
    if (msg.find("\"event\":true") != std::string::npos) {
      events_.push_back(std::move(msg));
      consumed_.push_back(false);
    } else {
      responses_.push_back(std::move(msg));
    }
  }
  return true;
}

bool Baresip::command(const std::string& command, const std::string& params,
                      std::chrono::milliseconds timeout) {
  osvi::net::JsonPtr j(cJSON_CreateObject());
  cJSON_AddStringToObject(j.get(), "command", command.c_str());
  cJSON_AddStringToObject(j.get(), "params", params.c_str());
  cJSON_AddStringToObject(j.get(), "token", "osvi");
  char* text = cJSON_PrintUnformatted(j.get());
  const std::string body(text);
  cJSON_free(text);
  const std::string wire = std::to_string(body.size()) + ":" + body + ",";
  responses_.clear();
  if (ctrl_fd_ < 0 ||
      ::send(ctrl_fd_, wire.data(), wire.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(wire.size()))
    return false;
  const auto until = Clock::now() + timeout;
  while (responses_.empty() && Clock::now() < until) pump(std::chrono::milliseconds(20));
  return !responses_.empty() && responses_.front().find("\"ok\":true") != std::string::npos;
}

osvi::net::JsonPtr Baresip::wait_event(const std::string& type, std::chrono::milliseconds timeout,
                                       const std::string& param) {
  const auto until = Clock::now() + timeout;
  for (;;) {
    for (size_t i = 0; i < events_.size(); ++i) {
      if (consumed_[i]) continue;
      osvi::net::JsonPtr e = parse_json(events_[i]);
      if (!e || json_str(e.get(), "type") != type) continue;
      if (!param.empty() && json_str(e.get(), "param") != param) continue;
      consumed_[i] = true;
      return e;
    }
    if (Clock::now() >= until) return nullptr;
    pump(std::chrono::milliseconds(20));
  }
}

std::vector<std::string> Baresip::events() {
  while (pump(std::chrono::milliseconds(0))) {
  }
  return events_;
}

std::string Baresip::log_text() const {
  return process_ ? process_->output() : std::string();
}

std::vector<std::string> Baresip::recordings(const std::string& which) const {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) return out;
  const std::string suffix = "-" + which + ".wav";
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.rfind("dump-", 0) == 0 && name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(dir_ + "/" + name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// ---- sipp ----

std::string sip_scenario(const std::string& name) {
  return std::string(OSVI_SOURCE_DIR) + "/tests/sip/" + name;
}

namespace {
std::vector<std::string> sipp_argv(std::vector<std::string> args) {
  args.insert(args.begin(), "sipp");
  args.push_back("-nostdin");
  return args;
}
}  // namespace

Sipp::Sipp(const std::string& dir, std::vector<std::string> args)
    : process_(sipp_argv(std::move(args)),
               dir + "/sipp-" + std::to_string(::getpid()) + "-" +
                   std::to_string(Clock::now().time_since_epoch().count()) + ".log",
               dir) {}

// ---- relay ----

struct UdpRelay::Impl {
  RelayOptions options;
  sockaddr_in box_sip{};
  sockaddr_in peer_sip{};
  bool peer_known = false;
  int sip_fd = -1;
  int box_rtp = -1, box_rtcp = -1;    // the box sends to these (the SDP the box gets names them)
  int peer_rtp = -1, peer_rtcp = -1;  // the peer sends to these
  sockaddr_in box_media{}, peer_media{};
  bool box_media_known = false, peer_media_known = false;
  int stop_pipe[2] = {-1, -1};
  std::thread thread;
  std::mt19937 rng;
  mutable std::mutex mutex;
  RelayStats stats;
  std::vector<RtpRecord> log;
  // A packet held back per direction, sent after its successor (or after a short while).
  struct Held {
    std::string data;
    Clock::time_point since;
  };
  std::optional<Held> held_to_box, held_to_peer;

  ~Impl() {
    for (int fd : {sip_fd, box_rtp, box_rtcp, peer_rtp, peer_rtcp, stop_pipe[0], stop_pipe[1]})
      if (fd >= 0) ::close(fd);
  }

  static std::string addr_text(const sockaddr_in& a) {
    char ip[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
    return std::string(ip) + ":" + std::to_string(ntohs(a.sin_port));
  }

  static void replace_all(std::string& s, const std::string& from, const std::string& to) {
    if (from.empty()) return;
    for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
      s.replace(pos, from.size(), to);
  }

  // Rewrites the SDP body's connection and audio port to ours, noting the sender's media address.
  std::string rewrite_sdp(const std::string& body, int our_port, sockaddr_in& media, bool& known) {
    std::string out, ip;
    int port = 0;
    size_t pos = 0;
    while (pos < body.size()) {
      size_t eol = body.find('\n', pos);
      if (eol == std::string::npos) eol = body.size() - 1;
      std::string line = body.substr(pos, eol + 1 - pos);
      pos = eol + 1;
      if (line.rfind("c=IN IP4 ", 0) == 0) {
        ip = line.substr(9, line.find_first_of("\r\n") - 9);
        line = "c=IN IP4 127.0.0.1\r\n";
      } else if (line.rfind("m=audio ", 0) == 0) {
        port = std::atoi(line.c_str() + 8);
        const size_t sp = line.find(' ', 8);
        line = "m=audio " + std::to_string(our_port) + line.substr(sp);
      } else if (line.rfind("a=rtcp:", 0) == 0) {
        continue;  // RTCP on port+1, as the relay binds it
      }
      out += line;
    }
    if (!ip.empty() && port > 0) {
      media = {};
      media.sin_family = AF_INET;
      media.sin_port = htons(static_cast<uint16_t>(port));
      ::inet_pton(AF_INET, ip.c_str(), &media.sin_addr);
      known = true;
    }
    return out;
  }

  std::string rewrite_sip(std::string msg, bool from_box) {
    const size_t split = msg.find("\r\n\r\n");
    if (split == std::string::npos) return msg;
    std::string head = msg.substr(0, split + 2);
    std::string body = msg.substr(split + 4);
    const std::string relay = "127.0.0.1:" + std::to_string(bound_port(sip_fd));
    replace_all(head, addr_text(from_box ? box_sip : peer_sip), relay);
    if (body.find("m=audio ") != std::string::npos) {
      std::lock_guard lock(mutex);
      body = from_box ? rewrite_sdp(body, bound_port(peer_rtp), box_media, box_media_known)
                      : rewrite_sdp(body, bound_port(box_rtp), peer_media, peer_media_known);
    }
    // Content-Length (or its compact form) follows the body.
    std::string out;
    size_t pos = 0;
    while (pos < head.size()) {
      const size_t eol = head.find("\r\n", pos);
      std::string line = head.substr(pos, eol - pos);
      pos = eol + 2;
      std::string lower = line.substr(0, line.find(':'));
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      while (!lower.empty() && lower.back() == ' ') lower.pop_back();
      if (lower == "content-length" || lower == "l") line = "Content-Length: " + std::to_string(body.size());
      out += line + "\r\n";
    }
    return out + "\r\n" + body;
  }

  void send_to(int fd, const std::string& data, const sockaddr_in& to) {
    ::sendto(fd, data.data(), data.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
  }

  // RTP towards one side through the loss and reordering.
  static RtpRecord record(const std::string& data, bool to_box) {
    RtpRecord r;
    r.at = Clock::now();
    r.to_box = to_box;
    if (data.size() < 12) return r;
    const auto* b = reinterpret_cast<const uint8_t*>(data.data());
    r.payload_type = b[1] & 0x7f;
    size_t off = 12 + 4 * (b[0] & 0x0f);
    if ((b[0] & 0x10) != 0 && data.size() >= off + 4) off += 4 + 4 * ((b[off + 2] << 8) | b[off + 3]);
    if (off >= data.size() || (r.payload_type != 0 && r.payload_type != 8)) return r;
    std::vector<int16_t> pcm;
    for (size_t i = off; i < data.size(); ++i)
      pcm.push_back(r.payload_type == 0 ? ulaw_decode(b[i]) : alaw_decode(b[i]));
    r.level_dbfs = rms_dbfs(pcm);
    return r;
  }

  void forward_rtp(const std::string& data, bool to_box) {
    std::unique_lock lock(mutex);
    ++stats.rtp;
    if (options.log_rtp) log.push_back(record(data, to_box));
    if (!(to_box ? box_media_known : peer_media_known)) return;
    const sockaddr_in dest = to_box ? box_media : peer_media;
    const int fd = to_box ? box_rtp : peer_rtp;
    std::optional<Held>& held = to_box ? held_to_box : held_to_peer;
    std::uniform_real_distribution<double> u(0.0, 1.0);
    if (u(rng) < options.loss) {
      ++stats.dropped;
      return;
    }
    if (!held && u(rng) < options.reorder) {
      ++stats.reordered;
      held = Held{data, Clock::now()};
      return;
    }
    ++(to_box ? stats.rtp_to_box : stats.rtp_to_peer);
    lock.unlock();
    send_to(fd, data, dest);
    if (held) {
      send_to(fd, held->data, dest);
      held.reset();
    }
  }

  void flush_held() {
    std::lock_guard lock(mutex);
    const auto now = Clock::now();
    if (held_to_box && now - held_to_box->since > std::chrono::milliseconds(60)) {
      send_to(box_rtp, held_to_box->data, box_media);
      held_to_box.reset();
    }
    if (held_to_peer && now - held_to_peer->since > std::chrono::milliseconds(60)) {
      send_to(peer_rtp, held_to_peer->data, peer_media);
      held_to_peer.reset();
    }
  }

  static bool same(const sockaddr_in& a, const sockaddr_in& b) {
    return a.sin_addr.s_addr == b.sin_addr.s_addr && a.sin_port == b.sin_port;
  }

  void run() {
    pollfd fds[6] = {{stop_pipe[0], POLLIN, 0}, {sip_fd, POLLIN, 0},   {box_rtp, POLLIN, 0},
                     {box_rtcp, POLLIN, 0},     {peer_rtp, POLLIN, 0}, {peer_rtcp, POLLIN, 0}};
    char buf[65536];
    for (;;) {
      if (::poll(fds, 6, 20) < 0) return;
      if (fds[0].revents != 0) return;
      for (int i = 1; i < 6; ++i) {
        if ((fds[i].revents & POLLIN) == 0) continue;
        sockaddr_in from{};
        socklen_t len = sizeof from;
        const ssize_t n = ::recvfrom(fds[i].fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (n <= 0) continue;
        const std::string data(buf, static_cast<size_t>(n));
        if (i == 1) {
          const bool from_box = same(from, box_sip);
          if (!from_box) {
            peer_sip = from;
            peer_known = true;
          }
          if (!peer_known) continue;
          const std::string out = rewrite_sip(data, from_box);
          send_to(sip_fd, out, from_box ? peer_sip : box_sip);
          std::lock_guard lock(mutex);
          ++stats.sip;
        } else if (i == 2) {
          forward_rtp(data, false);
        } else if (i == 4) {
          forward_rtp(data, true);
        } else {
          // RTCP, unharmed, to the other side's RTP port + 1.
          std::lock_guard lock(mutex);
          const bool to_peer = i == 3;
          if (!(to_peer ? peer_media_known : box_media_known)) continue;
          sockaddr_in dest = to_peer ? peer_media : box_media;
          dest.sin_port = htons(static_cast<uint16_t>(ntohs(dest.sin_port) + 1));
          send_to(to_peer ? peer_rtcp : box_rtcp, data, dest);
        }
      }
      flush_held();
    }
  }
};

UdpRelay::UdpRelay(int box_sip_port, RelayOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
  impl_->rng.seed(options.seed);
  impl_->box_sip.sin_family = AF_INET;
  impl_->box_sip.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  impl_->box_sip.sin_port = htons(static_cast<uint16_t>(box_sip_port));
}

UdpRelay::~UdpRelay() {
  if (impl_->thread.joinable()) {
    const char c = 0;
    if (::write(impl_->stop_pipe[1], &c, 1) < 0) {
    }
    impl_->thread.join();
  }
}

bool UdpRelay::start() {
  Impl& m = *impl_;
  m.sip_fd = bind_udp(0);
  if (m.sip_fd < 0 || !bind_udp_pair(m.box_rtp, m.box_rtcp) || !bind_udp_pair(m.peer_rtp, m.peer_rtcp) ||
      ::pipe2(m.stop_pipe, O_CLOEXEC) != 0)
    return false;
  sip_port_ = bound_port(m.sip_fd);
  m.thread = std::thread([&m] { m.run(); });
  return true;
}

std::vector<RtpRecord> UdpRelay::rtp_log() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->log;
}

RelayStats UdpRelay::stats() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->stats;
}

}  // namespace osvi::test
