// ModemSim: pty master side answering AT commands from per-scenario handlers.
#include "modem_sim.hpp"

#include <fcntl.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "osvi/clock.hpp"

namespace osvi::test {

std::string ModemSim::ok(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += "\r\n" + l + "\r\n";
  return out + "\r\nOK\r\n";
}

ModemSim::ModemSim(std::string link_path) : link_path_(std::move(link_path)) {
  on("ATE0", ok());
  on("AT", ok());
  on("AT+CMEE=2", ok());
  on("AT+CLIP=1", ok());
  on("AT+CRC=1", ok());
  on("AT+CGMI", ok({"Quectel"}));
  on("AT+CGMM", ok({"EC25"}));
  on("AT+CGSN", ok({imei()}));
  on("AT+CGMR", ok({"Revision: EC25EFAR06A06M4G"}));
  // 27.007 §7.1: the alpha tag may be empty or hold commas; type 145 = international.
  on("AT+CNUM", ok({"+CNUM: \"Own, voice\",\"" + own_number() + "\",145"}));
  on("AT+CREG?", ok({"+CREG: 0,1"}));
  on("AT+CEREG?", ok({"+CEREG: 0,1"}));
  on("AT+QPCMV=1,2", ok());
  on("AT+CPCMFRM=1", ok());
  on("AT+CPCMREG=1", [this](const std::string&) {
    set_audio_streaming(true);
    return ok();
  });
  on("AT+CPCMREG=0", [this](const std::string&) {
    set_audio_streaming(false);
    return ok();
  });
  on("AT+CEER", ok({"+CEER: Normal call clearing"}));
  on("AT+VTS=*", ok());
  on("AT+CHLD=*", ok());
  on("ATD*", ok());
  on("ATA", ok());
  on("AT+CHUP", [this](const std::string&) {
    set_calls({});
    set_audio_streaming(false);
    return ok();
  });
  on("AT+CLCC", [this](const std::string&) {
    std::lock_guard<std::mutex> g(mu_);
    return ok(calls_);
  });
  open_pty();
  start_thread();
}

ModemSim::~ModemSim() {
  stop_thread();
  ::unlink(link_path_.c_str());
  audio_quit_.store(true);
  if (audio_thread_.joinable()) audio_thread_.join();
  if (!audio_link_.empty()) ::unlink(audio_link_.c_str());
}

void ModemSim::on(const std::string& prefix, Handler handler) {
  std::lock_guard<std::mutex> g(mu_);
  handlers_[prefix] = std::move(handler);
}

void ModemSim::on(const std::string& prefix, std::string fixed_response) {
  on(prefix, [r = std::move(fixed_response)](const std::string&) { return r; });
}

void ModemSim::set_calls(std::vector<std::string> clcc_lines) {
  std::lock_guard<std::mutex> g(mu_);
  calls_ = std::move(clcc_lines);
}

void ModemSim::send(const std::string& raw) {
  std::lock_guard<std::mutex> g(mu_);
  if (!master_.valid()) return;
  size_t off = 0;
  while (off < raw.size()) {
    ssize_t n = ::write(master_.get(), raw.data() + off, raw.size() - off);
    if (n > 0)
      off += static_cast<size_t>(n);
    else if (n < 0 && errno == EINTR)
      continue;
    else if (n < 0 && errno == EAGAIN)
      ::usleep(1000);
    else
      return;
  }
}

void ModemSim::ring_incoming(const std::string& number) {
  const std::string entry = ",0,0,\"" + number + "\",145";
  set_calls({"+CLCC: 1,1,4" + entry});
  on("ATA", [this, entry](const std::string&) {
    set_calls({"+CLCC: 1,1,0" + entry});
    set_audio_streaming(true);
    return ok();
  });
  // The list first, then the URCs: the line's first poll must already see the call ringing.
  send("\r\nRING\r\n\r\n+CLIP: \"" + number + "\",145,,,,0\r\n");
}

void ModemSim::remote_hangup() {
  set_calls({});
  set_audio_streaming(false);
  send("\r\nNO CARRIER\r\n");
}

std::vector<std::string> ModemSim::commands() const {
  std::lock_guard<std::mutex> g(mu_);
  return commands_;
}

size_t ModemSim::count(const std::string& prefix) const {
  std::lock_guard<std::mutex> g(mu_);
  size_t n = 0;
  for (const std::string& c : commands_) n += c.rfind(prefix, 0) == 0 ? 1 : 0;
  return n;
}

bool ModemSim::wait_command(const std::string& prefix, std::chrono::milliseconds timeout, size_t nth) const {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (count(prefix) >= nth) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return count(prefix) >= nth;
}

void ModemSim::open_pty() {
  int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0) throw std::runtime_error("posix_openpt failed");
  hal::UniqueFd master(m);
  const char* name = ptsname(m);
  if (!name) throw std::runtime_error("ptsname failed");
  std::string slave_name = name;
  hal::UniqueFd hold(::open(slave_name.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!hold.valid()) throw std::runtime_error("cannot open " + slave_name);
  // Raw from the start: with the default ECHO the tty would reflect our own URCs back to us as commands.
  termios tio{};
  tcgetattr(hold.get(), &tio);
  cfmakeraw(&tio);
  tcsetattr(hold.get(), TCSANOW, &tio);
  int fl = fcntl(m, F_GETFL);
  fcntl(m, F_SETFL, fl | O_NONBLOCK);
  // Repoint atomically, as udev does with its symlinks.
  const std::string tmp = link_path_ + ".new";
  ::unlink(tmp.c_str());
  if (::symlink(slave_name.c_str(), tmp.c_str()) != 0 || ::rename(tmp.c_str(), link_path_.c_str()) != 0)
    throw std::runtime_error("cannot link " + link_path_);
  std::lock_guard<std::mutex> g(mu_);
  master_ = std::move(master);
  slave_hold_ = std::move(hold);
  partial_.clear();
}

void ModemSim::start_thread() {
  if (::pipe2(stop_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("pipe2 failed");
  thread_ = std::thread([this] { run(); });
}

void ModemSim::stop_thread() {
  if (!thread_.joinable()) return;
  char c = 1;
  (void)!::write(stop_pipe_[1], &c, 1);
  thread_.join();
  ::close(stop_pipe_[0]);
  ::close(stop_pipe_[1]);
  stop_pipe_[0] = stop_pipe_[1] = -1;
}

void ModemSim::disappear() {
  stop_thread();
  ::unlink(link_path_.c_str());
  std::lock_guard<std::mutex> g(mu_);
  master_.reset();
  slave_hold_.reset();
  calls_.clear();
}

void ModemSim::reappear() {
  open_pty();
  start_thread();
}

void ModemSim::run() {
  int master = -1;
  {
    std::lock_guard<std::mutex> g(mu_);
    master = master_.get();
  }
  for (;;) {
    pollfd p[2] = {{master, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    int r = ::poll(p, 2, 100);
    if (r < 0 && errno != EINTR) return;
    if (p[1].revents) return;
    if (!(p[0].revents & POLLIN)) continue;
    char buf[512];
    ssize_t n = ::read(master, buf, sizeof buf);
    if (n <= 0) continue;
    for (ssize_t i = 0; i < n; ++i) {
      const char c = buf[i];
      if (c == '\r' || c == '\n') {
        if (!partial_.empty()) answer(partial_);
        partial_.clear();
      } else {
        partial_ += c;
      }
    }
  }
}

void ModemSim::answer(const std::string& command) {
  Handler h;
  {
    std::lock_guard<std::mutex> g(mu_);
    commands_.push_back(command);
    auto it = handlers_.find(command);
    if (it != handlers_.end()) {
      h = it->second;
    } else {
      size_t best = 0;
      for (const auto& [prefix, handler] : handlers_) {
        if (prefix.empty() || prefix.back() != '*') continue;
        const std::string stem = prefix.substr(0, prefix.size() - 1);
        if (command.rfind(stem, 0) == 0 && stem.size() >= best) {
          best = stem.size();
          h = handler;
        }
      }
    }
  }
  const std::string reply = h ? h(command) : "\r\nERROR\r\n";
  if (!reply.empty()) send(reply);
}

void ModemSim::enable_audio(const std::string& link_path, unsigned rate) {
  int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0) throw std::runtime_error("posix_openpt failed");
  hal::UniqueFd master(m);
  const char* name = ptsname(m);
  if (!name) throw std::runtime_error("ptsname failed");
  hal::UniqueFd hold(::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!hold.valid()) throw std::runtime_error(std::string("cannot open ") + name);
  termios tio{};
  tcgetattr(hold.get(), &tio);
  cfmakeraw(&tio);
  tcsetattr(hold.get(), TCSANOW, &tio);
  fcntl(m, F_SETFL, fcntl(m, F_GETFL) | O_NONBLOCK);
  ::unlink(link_path.c_str());
  if (::symlink(name, link_path.c_str()) != 0) throw std::runtime_error("cannot link " + link_path);
  audio_link_ = link_path;
  audio_rate_ = rate;
  audio_master_ = std::move(master);
  audio_slave_hold_ = std::move(hold);
  audio_thread_ = std::thread([this] { audio_run(); });
}

void ModemSim::set_audio_source(std::vector<int16_t> pcm) {
  std::lock_guard<std::mutex> g(audio_mu_);
  audio_source_ = std::move(pcm);
}

void ModemSim::set_audio_streaming(bool on) {
  std::lock_guard<std::mutex> g(audio_mu_);
  if (on && !audio_on_.load()) audio_pos_ = 0;
  audio_on_.store(on);
}

std::vector<int16_t> ModemSim::audio_received() const {
  std::lock_guard<std::mutex> g(audio_mu_);
  return audio_received_;
}

void ModemSim::audio_run() {
  const size_t period = audio_rate_ / 50;
  std::vector<int16_t> out(period);
  std::string pending;
  timespec next{};
  clock_gettime(CLOCK_MONOTONIC, &next);
  while (!audio_quit_.load()) {
    next.tv_nsec += 20'000'000;
    if (next.tv_nsec >= 1'000'000'000) {
      next.tv_nsec -= 1'000'000'000;
      ++next.tv_sec;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr);
    // What the engine wrote: always drained, so its writes never back up into the tty.
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(audio_master_.get(), buf, sizeof buf);
      if (n <= 0) break;
      std::lock_guard<std::mutex> g(audio_mu_);
      std::string bytes = audio_odd_ + std::string(buf, static_cast<size_t>(n));
      audio_odd_ = bytes.size() % 2 ? bytes.substr(bytes.size() - 1) : std::string();
      const size_t samples = bytes.size() / 2;
      const size_t at = audio_received_.size();
      audio_received_.resize(at + samples);
      std::memcpy(audio_received_.data() + at, bytes.data(), samples * 2);
    }
    if (!audio_on_.load() || audio_stalled_.load()) continue;
    {
      std::lock_guard<std::mutex> g(audio_mu_);
      for (size_t i = 0; i < period; ++i, ++audio_pos_)
        out[i] = audio_pos_ < audio_source_.size() ? audio_source_[audio_pos_] : int16_t{0};
    }
    // Bytes the tty does not take now go first next time (a partial write must not shift the samples); a
    // port nobody reads loses whole periods, as on the module.
    if (pending.size() < period * 2 * 4) {
      pending.append(reinterpret_cast<const char*>(out.data()), out.size() * 2);
      audio_sent_.fetch_add(period);
    }
    const ssize_t n = ::write(audio_master_.get(), pending.data(), pending.size());
    if (n > 0) pending.erase(0, static_cast<size_t>(n));
  }
}

bool pump_line(hal::Line& line, const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  SystemClock clock;
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return done();
    int wait_ms = static_cast<int>(std::min<int64_t>(left.count(), 50));
    const int64_t d = line.next_deadline_us();
    if (d >= 0) {
      const int64_t until = (d - clock.monotonic_us() + 999) / 1000;
      wait_ms = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(wait_ms, until)));
    }
    pollfd p{line.poll_fd(), line.poll_events(), 0};
    int r = p.fd >= 0 ? ::poll(&p, 1, wait_ms) : ::poll(nullptr, 0, wait_ms);
    if (r > 0 && p.revents) line.handle_io(p.revents);
    const int64_t d2 = line.next_deadline_us();
    if (d2 >= 0 && d2 <= clock.monotonic_us()) line.handle_timer();
  }
  return true;
}

}  // namespace osvi::test
