// RtpStream: one call's RTP/RTCP media thread (jitter buffer, G.711/Opus, concealment, DTMF, RTCP).
#include "osvi/hal/rtp_stream.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <thread>
#include <vector>

#include "osvi/audio/g711.hpp"
#include "osvi/audio/opus.hpp"
#include "osvi/audio/spsc_ring.hpp"
#include "osvi/hal/rtp_jitter.hpp"
#include "osvi/hal/rtp_packet.hpp"
#include "stream_common.hpp"

namespace osvi::hal {

std::string_view to_string(RtpCodec c) {
  switch (c) {
    case RtpCodec::pcmu:
      return "PCMU";
    case RtpCodec::pcma:
      return "PCMA";
    case RtpCodec::opus:
      return "opus";
  }
  return "PCMU";
}

namespace {

constexpr size_t kRecvBuffer = 2048;    // larger than any datagram we accept (MSG_TRUNC tells the rest)
constexpr size_t kMaxPayload = 1500;    // what one jitter-buffer slot holds
constexpr int kMaxConcealFrames = 5;    // 100 ms of PLC / fading repeat, then silence
constexpr int kRebufferFrames = 10;     // 200 ms with nothing to play: wait for the next packet to re-anchor
constexpr int kMaxPacketsPerWake = 64;  // a flood cannot keep the thread from its tick
constexpr int kRelatchPackets = 4;      // in sequence from a new source before media follows it
constexpr size_t kDtmfQueue = 32;
constexpr int kDtmfToneMs = 100;
constexpr int kDtmfPauseMs = 70;
constexpr int kDtmfEndPackets = 3;
constexpr uint8_t kDtmfVolume = 10;  // -10 dBm0
constexpr int kRtcpIntervalMs = 5000;
constexpr uint64_t kNtpEpochOffset = 2208988800ull;  // 1900 -> 1970

void bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
  c.fetch_add(n, std::memory_order_relaxed);
}

uint64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t ntp_now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  const uint64_t sec = static_cast<uint64_t>(ts.tv_sec) + kNtpEpochOffset;
  const uint64_t frac = (static_cast<uint64_t>(ts.tv_nsec) << 32) / 1000000000ull;
  return sec << 32 | frac;
}

template <class T>
T random_value() {
  T v{};
  if (::getrandom(&v, sizeof v, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof v))
    v = static_cast<T>(mono_ns() * 0x9e3779b97f4a7c15ull >> 17);
  return v;
}

// A destination the media thread sends to: a sockaddr the socket's family can use, or none.
struct Dest {
  sockaddr_storage addr{};
  socklen_t len = 0;
};

// ip:port for a socket of `family` (an IPv4 peer on an IPv6 socket becomes v4-mapped). "0.0.0.0" or an
// empty ip is "no destination" (an old-style hold, or the SDP named none).
std::optional<Dest> make_dest(int family, const std::string& ip, uint16_t port) {
  Dest d;
  if (ip.empty() || ip == "0.0.0.0") return d;
  in_addr v4{};
  in6_addr v6{};
  const bool is_v4 = inet_pton(AF_INET, ip.c_str(), &v4) == 1;
  if (!is_v4 && !(inet_pton(AF_INET6, ip.c_str(), &v6) == 1 && family == AF_INET6)) return std::nullopt;
  if (port == 0) return d;  // an address but no port yet: nothing to send to until packets arrive
  if (is_v4) {
    if (family == AF_INET) {
      auto* sa = reinterpret_cast<sockaddr_in*>(&d.addr);
      sa->sin_family = AF_INET;
      sa->sin_port = htons(port);
      sa->sin_addr = v4;
      d.len = sizeof(sockaddr_in);
      return d;
    }
    auto* sa = reinterpret_cast<sockaddr_in6*>(&d.addr);
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons(port);
    sa->sin6_addr.s6_addr[10] = 0xff;
    sa->sin6_addr.s6_addr[11] = 0xff;
    std::memcpy(&sa->sin6_addr.s6_addr[12], &v4, 4);
    d.len = sizeof(sockaddr_in6);
    return d;
  }
  auto* sa = reinterpret_cast<sockaddr_in6*>(&d.addr);
  sa->sin6_family = AF_INET6;
  sa->sin6_port = htons(port);
  sa->sin6_addr = v6;
  d.len = sizeof(sockaddr_in6);
  return d;
}

bool same_addr(const sockaddr_storage& a, socklen_t alen, const Dest& d) {
  return alen == d.len && std::memcmp(&a, &d.addr, alen) == 0;
}

bool same_dest(const Dest& a, const Dest& b) {
  return a.len == b.len && std::memcmp(&a.addr, &b.addr, a.len) == 0;
}

uint16_t dest_port(const Dest& d) {
  if (d.addr.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&d.addr)->sin_port);
  return ntohs(reinterpret_cast<const sockaddr_in6*>(&d.addr)->sin6_port);
}

void set_port(Dest& d, uint16_t port) {
  if (d.addr.ss_family == AF_INET)
    reinterpret_cast<sockaddr_in*>(&d.addr)->sin_port = htons(port);
  else
    reinterpret_cast<sockaddr_in6*>(&d.addr)->sin6_port = htons(port);
}

Result<UniqueFd> udp_socket(int family, const sockaddr_storage& local, socklen_t len, uint16_t port) {
  UniqueFd fd(::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return make_error(std::string("rtp socket: ") + std::strerror(errno), -errno);
  if (family == AF_INET6) {
    int off = 0;  // "::" takes IPv4 peers too
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  }
  sockaddr_storage a = local;
  if (family == AF_INET)
    reinterpret_cast<sockaddr_in*>(&a)->sin_port = htons(port);
  else
    reinterpret_cast<sockaddr_in6*>(&a)->sin6_port = htons(port);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a), len) < 0)
    return make_error(std::string("rtp bind: ") + std::strerror(errno), -errno);
  return fd;
}

uint16_t bound_port(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) < 0) return 0;
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&a)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&a)->sin6_port);
}

int socket_family(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) < 0) return AF_UNSPEC;
  return a.ss_family;
}

// The set_remote() request crossing to the media thread (trivially copyable for the SPSC ring).
struct RemoteCmd {
  Dest rtp;
  Dest rtcp;
};

// RFC 3550 sequence bookkeeping: extended highest sequence, received count, and losses found by a
// 32-packet window (a sequence number still missing when the window moves past it was never filled).
class SeqTracker {
 public:
  enum class Seen : uint8_t { in_order, out_of_order, duplicate };
  void reset() { init_ = false; }
  Seen update(uint16_t seq, uint64_t* lost) {
    if (!init_) {
      init_ = true;
      max_ = seq;
      cycles_ = 0;
      base_ = seq;
      window_ = ~0u;
      received_ = 1;
      return Seen::in_order;
    }
    const auto d = static_cast<int16_t>(static_cast<uint16_t>(seq - max_));
    if (d > 0) {
      const auto step = static_cast<uint32_t>(d);
      const uint32_t falling = step >= 32 ? window_ : window_ >> (32 - step);
      const uint32_t checked = std::min<uint32_t>(step, 32);
      *lost += checked - static_cast<uint32_t>(__builtin_popcount(falling & mask(checked))) +
               (step > 32 ? step - 32 : 0);
      window_ = step >= 32 ? 0u : window_ << step;
      window_ |= 1u;
      if (seq < max_) cycles_ += 65536;
      max_ = seq;
      ++received_;
      return Seen::in_order;
    }
    if (d == 0) return Seen::duplicate;
    const auto back = static_cast<uint32_t>(-d);
    if (back < 32) {
      if (window_ & (1u << back)) return Seen::duplicate;
      window_ |= 1u << back;
    }
    ++received_;
    return Seen::out_of_order;
  }
  bool active() const { return init_; }
  uint32_t extended_max() const { return cycles_ + max_; }
  uint64_t expected() const { return static_cast<uint64_t>(extended_max()) - base_ + 1; }
  uint64_t received() const { return received_; }

 private:
  static uint32_t mask(uint32_t n) { return n >= 32 ? ~0u : (1u << n) - 1u; }
  bool init_ = false;
  uint16_t max_ = 0;
  uint32_t cycles_ = 0;
  uint32_t base_ = 0;
  uint32_t window_ = 0;  // bit i: max_ - i arrived
  uint64_t received_ = 0;
};

}  // namespace

// ---- sockets -------------------------------------------------------------------------------------------

Result<RtpSockets> RtpSockets::bind(const std::string& local_ip, uint16_t port_min, uint16_t port_max) {
  sockaddr_storage local{};
  socklen_t len = 0;
  int family = AF_INET;
  const std::string ip = local_ip.empty() ? "0.0.0.0" : local_ip;
  if (inet_pton(AF_INET, ip.c_str(), &reinterpret_cast<sockaddr_in*>(&local)->sin_addr) == 1) {
    local.ss_family = AF_INET;
    len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, ip.c_str(), &reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr) == 1) {
    local.ss_family = AF_INET6;
    family = AF_INET6;
    len = sizeof(sockaddr_in6);
  } else {
    return make_error("rtp: local_ip is not a numeric address: " + ip);
  }
  if (port_min == 0 && port_max == 0) {
    // Any free pair (tests): the kernel picks the RTP port; an odd one or a taken neighbour is retried.
    for (int attempt = 0; attempt < 64; ++attempt) {
      auto rtp = udp_socket(family, local, len, 0);
      if (!rtp) return rtp.error();
      const uint16_t p = bound_port(rtp->get());
      if (p % 2 != 0 || p == 65535) continue;
      auto rtcp = udp_socket(family, local, len, static_cast<uint16_t>(p + 1));
      if (!rtcp) continue;
      return RtpSockets(std::move(*rtp), std::move(*rtcp), p);
    }
    return make_error("rtp: no free port pair", -EADDRINUSE);
  }
  if (port_min > port_max) return make_error("rtp: port range is empty");
  for (uint32_t p = port_min + (port_min % 2); p + 1 <= port_max; p += 2) {
    auto rtp = udp_socket(family, local, len, static_cast<uint16_t>(p));
    if (!rtp) {
      if (rtp.error().code == -EADDRINUSE || rtp.error().code == -EACCES) continue;
      return rtp.error();
    }
    auto rtcp = udp_socket(family, local, len, static_cast<uint16_t>(p + 1));
    if (!rtcp) continue;
    return RtpSockets(std::move(*rtp), std::move(*rtcp), static_cast<uint16_t>(p));
  }
  return make_error("rtp: no free port pair in " + std::to_string(port_min) + "-" + std::to_string(port_max),
                    -EADDRINUSE);
}

// ---- shared state --------------------------------------------------------------------------------------

struct RtpCounters : detail::StreamCounters {
  std::atomic<uint64_t> received{0}, sent{0}, lost{0}, late{0}, reordered{0}, invalid{0}, concealed{0},
      comfort_noise{0}, dtmf_received{0}, dtmf_sent{0};
  std::atomic<uint32_t> jitter_ms{0}, playout_ms{0};
};

namespace {

// What the loop and the media thread share (RtpStream::Impl is this; the worker names it here).
struct RtpShared {
  RtpShared(RtpStreamOptions o, RtpSockets s, EventFd w, EventFd st, size_t period_samples)
      : opt(std::move(o)),
        sockets(std::move(s)),
        period(period_samples),
        wake(std::move(w)),
        stop(std::move(st)),
        frames(2 * static_cast<size_t>(opt.rate) / 1000 * static_cast<size_t>(opt.capture_ring_ms)),
        playback(static_cast<size_t>(opt.rate) / 1000 * static_cast<size_t>(opt.playback_ring_ms)),
        events(opt.event_ring),
        dtmf_out(kDtmfQueue),
        remote_cmds(8) {}

  void push_event(const StreamEvent& e) {
    if (!events.push_one(e)) bump(c.events_dropped);
    wake.signal();
  }

  RtpStreamOptions opt;
  RtpSockets sockets;
  size_t period;               // engine samples per tick
  uint32_t clock_rate = 8000;  // RTP timestamp units per second
  uint32_t units_per_sample = 1;
  int family = AF_INET;
  EventFd wake;
  EventFd stop;
  audio::SpscRing<int16_t> frames;  // per tick: capture period, then its reference
  audio::SpscRing<int16_t> playback;
  audio::SpscRing<StreamEvent> events;
  audio::SpscRing<char> dtmf_out;
  audio::SpscRing<RemoteCmd> remote_cmds;
  RemoteCmd initial;
  RemoteCmd sdp_remote;  // the loop's copy of the last address the SDP named (initial, then set_remote)
  std::optional<audio::OpusEncoder> encoder;
  std::optional<audio::OpusDecoder> decoder;
  uint32_t ssrc = 0;
  uint16_t seq = 0;
  uint32_t timestamp = 0;
  std::array<char, 24> cname{};
  size_t cname_len = 0;
  RtpCounters c;
  std::atomic<bool> stop_requested{false};
  std::atomic<bool> hold{false};
  std::atomic<uint32_t> stop_playback_requests{0};
  std::atomic<uint32_t> stop_playback_done{0};
  PeriodProcessor* processor = nullptr;  // written only while the thread is stopped
  std::thread thread;
};

}  // namespace

struct RtpStream::Impl : RtpShared {
  using RtpShared::RtpShared;
};

// ---- the media thread ----------------------------------------------------------------------------------

namespace {

class Worker {
 public:
  Worker(RtpShared& s, UniqueFd timer)
      : s_(s),
        c_(s.c),
        processor_(s.processor),
        timer_(std::move(timer)),
        period_(s.period),
        period_units_(static_cast<uint32_t>(s.period) * s.units_per_sample),
        opus_(s.opt.codec == RtpCodec::opus),
        // Opus conceals one decoder frame (20 ms) at a time; G.711 one of our periods.
        frame_units_(opus_ ? s.clock_rate / 50 : static_cast<uint32_t>(s.period)),
        jb_(JitterBuffer::Config{s.clock_rate, s.opt.jitter_min_ms, s.opt.jitter_max_ms,
                                 static_cast<size_t>(s.opt.jitter_max_ms / 10 + 16), kMaxPayload}),
        recv_(kRecvBuffer),
        send_(kRecvBuffer),
        encoded_(audio::kOpusMaxPacket),
        scratch_(static_cast<size_t>(s.opt.rate) * 120 / 1000 + kMaxPayload),
        fifo_(2 * scratch_.size() + 2 * s.period),
        last_(s.period),
        out_(s.period),
        unit_(2 * s.period),
        rtp_dest_(s.initial.rtp),
        rtcp_dest_(s.initial.rtcp),
        seq_(s.seq),
        ts_(s.timestamp) {}

  void run();

 private:
  bool stopping() const { return s_.stop_requested.load(std::memory_order_acquire); }
  uint32_t now_units(uint64_t ns) const {
    return static_cast<uint32_t>(ns / 1000u * s_.clock_rate / 1000000u);  // exact until ~12 years uptime
  }
  void tick(uint64_t now);
  void commands();
  void handle_stop_playback();
  void send_media();
  void send_voice();
  void send_dtmf_packet();
  void pull_capture(uint64_t now);
  void conceal(uint32_t units, std::span<const uint8_t> following, bool allowed);
  void push_fifo(std::span<const int16_t> pcm);
  void receive_rtp(uint64_t now);
  void on_rtp(std::span<const uint8_t> datagram, const sockaddr_storage& from, socklen_t from_len,
              uint64_t now);
  void on_dtmf(const rtp::Packet& p);
  void receive_rtcp(uint64_t now);
  void heard(uint64_t now);
  void send_rtcp(bool bye);
  void check_timeout(uint64_t now);

  RtpShared& s_;
  RtpCounters& c_;
  PeriodProcessor* const processor_;  // the stream's, fixed for this run of the thread
  UniqueFd timer_;
  const size_t period_;
  const uint32_t period_units_;
  const bool opus_;
  const uint32_t frame_units_;
  JitterBuffer jb_;
  std::vector<uint8_t> recv_;
  std::vector<uint8_t> send_;
  std::vector<uint8_t> encoded_;
  std::vector<int16_t> scratch_;  // one decoded packet
  std::vector<int16_t> fifo_;     // decoded audio not yet handed to the loop
  size_t fifo_len_ = 0;
  std::vector<int16_t> last_;  // G.711: the last decoded period, repeated with fading to conceal
  std::vector<int16_t> out_;   // this tick's outgoing speech (also the reference)
  std::vector<int16_t> unit_;

  Dest rtp_dest_;
  Dest rtcp_dest_;
  bool rtcp_latched_ = false;
  bool latched_ = false;  // RTP arrived from rtp_dest_ (or moved it there)
  Dest candidate_;        // another source asking to take over, and how far it got
  uint16_t candidate_seq_ = 0;
  int candidate_count_ = 0;
  uint16_t seq_;
  uint32_t ts_;
  bool first_packet_ = true;
  uint64_t sent_packets_ = 0;
  uint64_t sent_octets_ = 0;
  bool sent_since_report_ = false;

  // Far end.
  bool have_ssrc_ = false;
  uint32_t remote_ssrc_ = 0;
  SeqTracker seqs_;
  uint64_t expected_prior_ = 0;
  uint64_t received_prior_ = 0;
  uint32_t last_sr_ = 0;  // middle 32 bits of the last SR's NTP time
  uint64_t last_sr_at_ = 0;
  bool in_silence_ = false;  // comfort noise: the gap that follows is silence, not loss
  int conceal_run_ = 0;
  int empty_run_ = 0;
  float fade_ = 1.0f;

  // DTMF in: one event per digit, at its end; the end is repeated (three packets), the timestamp tells.
  bool dtmf_active_ = false;
  uint32_t dtmf_ts_ = 0;
  uint8_t dtmf_event_ = 0;
  // Start timestamps of the last events reported: a repeated or straggling end packet names one of them.
  std::array<uint32_t, 4> ended_{};
  size_t ended_count_ = 0;
  bool ended(uint32_t ts) const {
    for (size_t i = 0; i < std::min(ended_count_, ended_.size()); ++i)
      if (ended_[i] == ts) return true;
    return false;
  }
  void mark_ended(uint32_t ts) { ended_[(ended_count_++) % ended_.size()] = ts; }

  // The far end's last event and how far it reached: senders usually pause voice meanwhile, so the gap
  // it leaves in the voice timeline is played as silence, not concealed as loss.
  bool event_heard_ = false;
  uint32_t event_start_ = 0;
  uint32_t event_end_ = 0;
  bool in_event_gap() const {
    if (!event_heard_) return false;
    const uint32_t at = jb_.cursor();
    // The end packets are repeated for up to three more periods after the event's duration.
    return static_cast<int32_t>(at - event_start_) >= 0 &&
           static_cast<int32_t>(at - (event_end_ + s_.clock_rate / 1000 * 60)) < 0;
  }

  // DTMF out.
  bool tone_ = false;
  uint8_t tone_event_ = 0;
  uint32_t tone_ts_ = 0;
  int tone_tick_ = 0;
  int pause_ticks_ = 0;

  uint64_t ring_written_ = 0;
  uint64_t last_rx_ = 0;
  bool lost_ = false;
  bool was_hold_ = false;
  uint64_t next_rtcp_ = 0;
  uint32_t rng_ = 0;
};

void Worker::run() {
  detail::enter_rt_sched(s_.opt.rt_priority, c_);
  c_.device_open.store(true);
  rng_ = s_.ssrc | 1u;
  const uint64_t start = mono_ns();
  last_rx_ = start;
  next_rtcp_ = start + static_cast<uint64_t>(kRtcpIntervalMs) * 1000000u / 2;
  s_.push_event({StreamEventKind::opened, StreamDirection::both, 0, 0, 0});

  // Our own clock: absolute period boundaries, so a late wake-up does not shift every later packet.
  const uint64_t period_ns = static_cast<uint64_t>(s_.opt.ptime_ms) * 1000000u;
  itimerspec its{};
  its.it_interval.tv_sec = static_cast<time_t>(period_ns / 1000000000u);
  its.it_interval.tv_nsec = static_cast<long>(period_ns % 1000000000u);
  const uint64_t first = start + period_ns;
  its.it_value.tv_sec = static_cast<time_t>(first / 1000000000u);
  its.it_value.tv_nsec = static_cast<long>(first % 1000000000u);
  timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &its, nullptr);

  pollfd fds[4] = {{timer_.get(), POLLIN, 0},
                   {s_.sockets.rtp_fd(), POLLIN, 0},
                   {s_.sockets.rtcp_fd(), POLLIN, 0},
                   {s_.stop.fd(), POLLIN, 0}};
  while (!stopping()) {
    if (::poll(fds, 4, -1) < 0 && errno != EINTR) break;
    if (stopping()) break;
    const uint64_t now = mono_ns();
    if (fds[1].revents & POLLIN) receive_rtp(now);
    if (fds[2].revents & POLLIN) receive_rtcp(now);
    if (fds[0].revents & POLLIN) {
      uint64_t expirations = 0;
      if (::read(timer_.get(), &expirations, sizeof expirations) != sizeof expirations) continue;
      // Behind by a few periods (a loaded box): catch up; further behind: the far end's buffer absorbs it.
      const uint64_t ticks = std::min<uint64_t>(expirations, 4);
      for (uint64_t i = 0; i < ticks; ++i) tick(now);
    }
  }
  send_rtcp(true);
  c_.device_open.store(false);
  // A later start() continues the sequence and timeline (read by the loop after join()).
  s_.seq = seq_;
  s_.timestamp = ts_;
}

void Worker::tick(uint64_t now) {
  commands();
  handle_stop_playback();
  send_media();
  pull_capture(now);
  std::copy(out_.begin(), out_.end(), unit_.begin() + static_cast<std::ptrdiff_t>(period_));
  detail::deliver_period(processor_, s_.frames, unit_, c_);
  jb_.adapt(period_units_);
  c_.jitter_ms.store(jb_.jitter_ms(), std::memory_order_relaxed);
  c_.playout_ms.store(jb_.target_ms(), std::memory_order_relaxed);
  check_timeout(now);
  if (now >= next_rtcp_) {
    send_rtcp(false);
    // RFC 3550 6.3.1: randomised over [0.5, 1.5] of the interval so reports of many calls do not align.
    rng_ = rng_ * 1664525u + 1013904223u;
    const uint64_t spread = static_cast<uint64_t>(kRtcpIntervalMs) * 1000000u;
    next_rtcp_ = now + spread / 2 + (static_cast<uint64_t>(rng_ >> 8) % spread);
  }
  s_.wake.signal();
}

void Worker::commands() {
  RemoteCmd cmd;
  while (s_.remote_cmds.pop_one(&cmd)) {
    rtp_dest_ = cmd.rtp;
    rtcp_dest_ = cmd.rtcp;
    rtcp_latched_ = false;
    latched_ = false;
  }
  const bool hold = s_.hold.load(std::memory_order_acquire);
  if (was_hold_ && !hold) last_rx_ = mono_ns();  // the media timeout restarts when the hold ends
  was_hold_ = hold;
}

void Worker::handle_stop_playback() {
  const uint32_t req = s_.stop_playback_requests.load(std::memory_order_acquire);
  if (req == s_.stop_playback_done.load(std::memory_order_relaxed)) return;
  // Nothing sits in a device buffer here: what left the ring was sent, so it counts as played.
  const uint64_t dropped = s_.playback.discard();
  const uint64_t played = ring_written_;
  ring_written_ = 0;
  s_.stop_playback_done.store(req, std::memory_order_release);
  s_.push_event({StreamEventKind::playback_stopped, StreamDirection::playback, 0, played, dropped});
}

void Worker::send_media() {
  const size_t real = s_.playback.pop(out_);
  if (real < period_) {
    std::fill(out_.begin() + static_cast<std::ptrdiff_t>(real), out_.end(), int16_t{0});
    bump(c_.fill_periods);
    bump(c_.fill_samples, period_ - real);
  }
  ring_written_ += real;
  bump(c_.played_samples, real);

  if (!s_.hold.load(std::memory_order_acquire) && rtp_dest_.len > 0) {
    if (!tone_ && pause_ticks_ == 0 && s_.opt.dtmf_payload_type != 0) {
      char digit = 0;
      if (s_.dtmf_out.pop_one(&digit)) {
        tone_ = true;
        tone_event_ = static_cast<uint8_t>(rtp::digit_event(digit));
        tone_ts_ = ts_;
        tone_tick_ = 0;
      }
    }
    if (tone_) {
      send_dtmf_packet();
    } else {
      if (pause_ticks_ > 0) --pause_ticks_;
      send_voice();
    }
  }
  ts_ += period_units_;

  if (ring_written_ > 0 && s_.playback.readable() == 0) {
    s_.push_event({StreamEventKind::playback_drained, StreamDirection::playback, 0, ring_written_, 0});
    ring_written_ = 0;
  }
}

void Worker::send_voice() {
  size_t n = 0;
  if (opus_) {
    auto r = s_.encoder->encode(out_, encoded_);
    if (!r) return;
    n = *r;
    if (n == 0) return;  // DTX: nothing to send this period
  } else {
    const bool ulaw = s_.opt.codec == RtpCodec::pcmu;
    for (size_t i = 0; i < period_; ++i)
      encoded_[i] = ulaw ? audio::ulaw_encode(out_[i]) : audio::alaw_encode(out_[i]);
    n = period_;
  }
  rtp::Header h;
  h.marker = first_packet_;
  h.payload_type = s_.opt.payload_type;
  h.seq = seq_++;
  h.timestamp = ts_;
  h.ssrc = s_.ssrc;
  const size_t len = rtp::build(h, std::span<const uint8_t>(encoded_.data(), n), send_);
  if (len == 0) return;
  first_packet_ = false;
  ::sendto(s_.sockets.rtp_fd(), send_.data(), len, MSG_DONTWAIT | MSG_NOSIGNAL,
           reinterpret_cast<const sockaddr*>(&rtp_dest_.addr), rtp_dest_.len);
  ++sent_packets_;
  sent_octets_ += n;
  sent_since_report_ = true;
  bump(c_.sent);
}

void Worker::send_dtmf_packet() {
  // RFC 4733: one event, its start timestamp fixed, the duration growing each period; the marker on the
  // first packet; the end packet sent three times. Voice pauses meanwhile (our timestamp keeps running).
  const int tone_ticks = (kDtmfToneMs + s_.opt.ptime_ms - 1) / s_.opt.ptime_ms;
  ++tone_tick_;
  const bool end = tone_tick_ >= tone_ticks;
  rtp::TelephoneEvent e;
  e.event = tone_event_;
  e.end = end;
  e.volume = kDtmfVolume;
  e.duration = static_cast<uint16_t>(
      std::min<uint32_t>(static_cast<uint32_t>(std::min(tone_tick_, tone_ticks)) * period_units_, 0xffff));
  uint8_t payload[rtp::kTelephoneEventSize];
  rtp::build_telephone_event(e, payload);
  rtp::Header h;
  h.marker = tone_tick_ == 1;
  h.payload_type = s_.opt.dtmf_payload_type;
  h.seq = seq_++;
  h.timestamp = tone_ts_;
  h.ssrc = s_.ssrc;
  const size_t len = rtp::build(h, payload, send_);
  ::sendto(s_.sockets.rtp_fd(), send_.data(), len, MSG_DONTWAIT | MSG_NOSIGNAL,
           reinterpret_cast<const sockaddr*>(&rtp_dest_.addr), rtp_dest_.len);
  ++sent_packets_;
  sent_octets_ += sizeof payload;
  sent_since_report_ = true;
  bump(c_.sent);
  if (tone_tick_ >= tone_ticks + kDtmfEndPackets - 1) {
    tone_ = false;
    bump(c_.dtmf_sent);
    pause_ticks_ = (kDtmfPauseMs + s_.opt.ptime_ms - 1) / s_.opt.ptime_ms;
  }
}

void Worker::push_fifo(std::span<const int16_t> pcm) {
  const size_t n = std::min(pcm.size(), fifo_.size() - fifo_len_);
  std::copy_n(pcm.begin(), n, fifo_.begin() + static_cast<std::ptrdiff_t>(fifo_len_));
  fifo_len_ += n;
}

void Worker::conceal(uint32_t units, std::span<const uint8_t> following, bool allowed) {
  const size_t samples = units / s_.units_per_sample;
  if (!allowed || conceal_run_ >= kMaxConcealFrames) {
    std::fill_n(scratch_.begin(), samples, int16_t{0});
    push_fifo(std::span<const int16_t>(scratch_.data(), samples));
    return;
  }
  ++conceal_run_;
  bump(c_.concealed);
  if (opus_) {
    // Decoder PLC, or the lost frame's in-band FEC copy when the packet after it is here.
    auto r =
        following.empty() ? s_.decoder->decode({}, scratch_) : s_.decoder->decode_fec(following, scratch_);
    const size_t n = r ? *r : 0;
    if (n == 0) std::fill_n(scratch_.begin(), samples, int16_t{0});
    push_fifo(std::span<const int16_t>(scratch_.data(), n ? n : samples));
    return;
  }
  // G.711: the last period again, fading out over kMaxConcealFrames periods (a ramp, so no step clicks).
  const float from = fade_;
  const float to = std::max(0.0f, fade_ - 1.0f / kMaxConcealFrames);
  for (size_t i = 0; i < samples; ++i) {
    const float g = from + (to - from) * static_cast<float>(i) / static_cast<float>(samples);
    scratch_[i] = static_cast<int16_t>(static_cast<float>(last_[i % last_.size()]) * g);
  }
  fade_ = to;
  push_fifo(std::span<const int16_t>(scratch_.data(), samples));
}

void Worker::pull_capture(uint64_t now) {
  const uint32_t at = now_units(now);
  while (fifo_len_ < period_) {
    const JitterBuffer::Next n = jb_.next(at, frame_units_);
    if (n.kind == JitterBuffer::Kind::waiting) {
      std::fill(fifo_.begin() + static_cast<std::ptrdiff_t>(fifo_len_),
                fifo_.begin() + static_cast<std::ptrdiff_t>(period_), int16_t{0});
      fifo_len_ = period_;
      break;
    }
    if (n.kind == JitterBuffer::Kind::packet) {
      size_t got = 0;
      if (opus_) {
        auto r = s_.decoder->decode(n.payload, scratch_);
        got = r ? *r : 0;
      } else {
        const bool ulaw = s_.opt.codec == RtpCodec::pcmu;
        got = std::min(n.payload.size(), scratch_.size());
        for (size_t i = 0; i < got; ++i)
          scratch_[i] = ulaw ? audio::ulaw_decode(n.payload[i]) : audio::alaw_decode(n.payload[i]);
      }
      jb_.pop();
      if (got == 0) {  // undecodable: conceal its duration instead
        conceal(n.duration, {}, true);
        continue;
      }
      push_fifo(std::span<const int16_t>(scratch_.data(), got));
      if (!opus_) {
        // Keep the newest period for a fading repeat; a shorter packet fills its end.
        const size_t keep = std::min(got, last_.size());
        std::copy_n(scratch_.begin() + static_cast<std::ptrdiff_t>(got - keep), keep,
                    last_.end() - static_cast<std::ptrdiff_t>(keep));
      }
      conceal_run_ = 0;
      empty_run_ = 0;
      fade_ = 1.0f;
      continue;
    }
    if (n.kind == JitterBuffer::Kind::gap) {
      conceal(n.duration, n.duration == frame_units_ ? n.following : std::span<const uint8_t>{},
              !in_event_gap());
      jb_.skip(n.duration);
      continue;
    }
    // Empty: the far end is late, lost the tail of a talkspurt, or is silent (DTX, comfort noise).
    conceal(n.duration, {}, !in_silence_ && !in_event_gap());
    jb_.skip(n.duration);
    if (++empty_run_ >= kRebufferFrames) {
      jb_.rebuffer();
      empty_run_ = 0;
    }
  }
  std::copy_n(fifo_.begin(), period_, unit_.begin());
  std::copy(fifo_.begin() + static_cast<std::ptrdiff_t>(period_),
            fifo_.begin() + static_cast<std::ptrdiff_t>(fifo_len_), fifo_.begin());
  fifo_len_ -= period_;
}

void Worker::heard(uint64_t now) {
  last_rx_ = now;
  if (lost_) {
    lost_ = false;
    bump(c_.reopens);
    c_.device_open.store(true);
    s_.push_event({StreamEventKind::device_back, StreamDirection::capture, 0, 0, 0});
  }
}

void Worker::check_timeout(uint64_t now) {
  if (s_.opt.media_timeout_ms <= 0 || lost_ || was_hold_) return;
  if (now - last_rx_ < static_cast<uint64_t>(s_.opt.media_timeout_ms) * 1000000u) return;
  lost_ = true;
  bump(c_.device_losses);
  c_.device_open.store(false);
  s_.push_event({StreamEventKind::device_lost, StreamDirection::capture, -ETIMEDOUT, 0, 0});
}

void Worker::receive_rtp(uint64_t now) {
  for (int i = 0; i < kMaxPacketsPerWake; ++i) {
    sockaddr_storage from{};
    socklen_t from_len = sizeof from;
    const ssize_t n = ::recvfrom(s_.sockets.rtp_fd(), recv_.data(), recv_.size(), MSG_DONTWAIT | MSG_TRUNC,
                                 reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // EAGAIN, or an ICMP error queued by an earlier send
    }
    if (static_cast<size_t>(n) > recv_.size()) {
      bump(c_.invalid);
      continue;
    }
    on_rtp(std::span<const uint8_t>(recv_.data(), static_cast<size_t>(n)), from, from_len, now);
  }
}

void Worker::on_rtp(std::span<const uint8_t> datagram, const sockaddr_storage& from, socklen_t from_len,
                    uint64_t now) {
  const auto p = rtp::parse(datagram);
  if (!p) {
    bump(c_.invalid);
    return;
  }
  const uint8_t pt = p->header.payload_type;
  const bool voice = pt == s_.opt.payload_type;
  const bool dtmf = s_.opt.dtmf_payload_type != 0 && pt == s_.opt.dtmf_payload_type;
  const bool cn = pt == rtp::kComfortNoisePt;
  uint32_t duration = 0;
  if (voice) {
    duration = opus_ ? rtp::opus_samples_48k(p->payload) : static_cast<uint32_t>(p->payload.size());
    if (duration == 0 || p->payload.size() > kMaxPayload) {
      bump(c_.invalid);
      return;
    }
  } else if (dtmf) {
    if (p->payload.size() < rtp::kTelephoneEventSize) {
      bump(c_.invalid);
      return;
    }
  } else if (!cn) {
    bump(c_.invalid);
    return;
  }

  // Symmetric RTP: answer where the media comes from (NAT, a PBX that relays from another address). Once
  // latched, another source takes over only after kRelatchPackets in sequence from it, so a stray or
  // injected datagram cannot steal the call's media (the "RTP bleed" guard).
  if (!same_addr(from, from_len, rtp_dest_)) {
    if (latched_) {
      if (same_addr(from, from_len, candidate_) && p->header.seq == static_cast<uint16_t>(candidate_seq_ + 1))
        ++candidate_count_;
      else
        candidate_count_ = 1;
      std::memcpy(&candidate_.addr, &from, from_len);
      candidate_.len = from_len;
      candidate_seq_ = p->header.seq;
      if (candidate_count_ < kRelatchPackets) return;
    }
    std::memcpy(&rtp_dest_.addr, &from, from_len);
    rtp_dest_.len = from_len;
    if (!rtcp_latched_) {
      rtcp_dest_ = rtp_dest_;
      set_port(rtcp_dest_, static_cast<uint16_t>(dest_port(rtp_dest_) + 1));
    }
  }
  latched_ = true;
  candidate_count_ = 0;
  // A new source (the far end restarted its stream, a PBX switched legs): start over on its timeline.
  if (!have_ssrc_ || p->header.ssrc != remote_ssrc_) {
    have_ssrc_ = true;
    remote_ssrc_ = p->header.ssrc;
    seqs_.reset();
    expected_prior_ = received_prior_ = 0;
    jb_.reset();
    dtmf_active_ = false;
    ended_count_ = 0;
    event_heard_ = false;
  }
  heard(now);
  uint64_t lost = 0;
  const SeqTracker::Seen seen = seqs_.update(p->header.seq, &lost);
  if (lost) bump(c_.lost, lost);
  if (seen == SeqTracker::Seen::duplicate) return;
  bump(c_.received);

  if (cn) {
    bump(c_.comfort_noise);
    in_silence_ = true;
    return;
  }
  if (dtmf) {
    on_dtmf(*p);
    return;
  }
  in_silence_ = false;
  const auto r = jb_.insert(p->header.seq, p->header.timestamp, duration, p->payload, now_units(now));
  if (r == JitterBuffer::Insert::late || r == JitterBuffer::Insert::full)
    bump(c_.late);
  else if (r == JitterBuffer::Insert::accepted && seen == SeqTracker::Seen::out_of_order)
    bump(c_.reordered);
}

void Worker::on_dtmf(const rtp::Packet& p) {
  const auto e = rtp::parse_telephone_event(p.payload);
  if (!e) return;
  const uint32_t ts = p.header.timestamp;
  if (!event_heard_ || ts != event_start_ || static_cast<int32_t>(ts + e->duration - event_end_) > 0) {
    event_heard_ = true;
    event_start_ = ts;
    event_end_ = ts + e->duration;
  }
  if (ended(ts)) return;  // a repeated end, or a straggler of an event already reported
  auto report = [&](uint8_t event) {
    const char digit = rtp::event_digit(event);
    if (digit == 0) return;  // not DTMF (flash, tones): nothing the engine listens for
    bump(c_.dtmf_received);
    StreamEvent ev{StreamEventKind::dtmf, StreamDirection::capture, 0, 0, 0};
    ev.digit = digit;
    s_.push_event(ev);
  };
  // An event whose end packets were all lost still counts once the next one starts.
  if (dtmf_active_ && dtmf_ts_ != ts) {
    report(dtmf_event_);
    mark_ended(dtmf_ts_);
    dtmf_active_ = false;
  }
  if (e->end) {
    report(e->event);
    mark_ended(ts);
    dtmf_active_ = false;
    return;
  }
  dtmf_active_ = true;
  dtmf_ts_ = ts;
  dtmf_event_ = e->event;
}

void Worker::receive_rtcp(uint64_t now) {
  for (int i = 0; i < kMaxPacketsPerWake; ++i) {
    sockaddr_storage from{};
    socklen_t from_len = sizeof from;
    const ssize_t n = ::recvfrom(s_.sockets.rtcp_fd(), recv_.data(), recv_.size(), MSG_DONTWAIT | MSG_TRUNC,
                                 reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (static_cast<size_t>(n) > recv_.size()) {
      bump(c_.invalid);
      continue;
    }
    const rtp::RtcpSummary r =
        rtp::parse_rtcp(std::span<const uint8_t>(recv_.data(), static_cast<size_t>(n)));
    if (!r.valid) {
      bump(c_.invalid);
      continue;
    }
    if (!same_addr(from, from_len, rtcp_dest_)) {
      std::memcpy(&rtcp_dest_.addr, &from, from_len);
      rtcp_dest_.len = from_len;
    }
    rtcp_latched_ = true;
    heard(now);
    if (r.has_sr) {
      last_sr_ = static_cast<uint32_t>(r.sender.ntp >> 16);
      last_sr_at_ = now;
    }
  }
}

void Worker::send_rtcp(bool bye) {
  if (rtcp_dest_.len == 0) return;
  rtp::ReportBlock block;
  const rtp::ReportBlock* report = nullptr;
  if (have_ssrc_ && seqs_.active()) {
    const uint64_t expected = seqs_.expected();
    const uint64_t received = seqs_.received();
    const uint64_t expected_interval = expected - std::min(expected, expected_prior_);
    const uint64_t received_interval = received - std::min(received, received_prior_);
    expected_prior_ = expected;
    received_prior_ = received;
    const int64_t lost_interval =
        static_cast<int64_t>(expected_interval) - static_cast<int64_t>(received_interval);
    block.ssrc = remote_ssrc_;
    block.fraction_lost = expected_interval == 0 || lost_interval <= 0
                              ? 0
                              : static_cast<uint8_t>(std::min<int64_t>(
                                    255, (lost_interval << 8) / static_cast<int64_t>(expected_interval)));
    block.cumulative_lost =
        static_cast<int32_t>(static_cast<int64_t>(expected) - static_cast<int64_t>(received));
    block.highest_seq = seqs_.extended_max();
    block.jitter = jb_.jitter_units();
    block.lsr = last_sr_;
    if (last_sr_at_ != 0)
      block.dlsr = static_cast<uint32_t>((mono_ns() - last_sr_at_) * 65536u / 1000000000u);
    report = &block;
  }
  size_t at = 0;
  if (sent_since_report_) {
    rtp::SenderInfo info;
    info.ntp = ntp_now();
    info.rtp_timestamp = ts_;
    info.packets = static_cast<uint32_t>(sent_packets_);
    info.octets = static_cast<uint32_t>(sent_octets_);
    at = rtp::build_sr(s_.ssrc, info, report, send_, at);
  } else {
    at = rtp::build_rr(s_.ssrc, report, send_, at);
  }
  sent_since_report_ = false;
  at = at ? rtp::build_sdes_cname(s_.ssrc, std::span<const char>(s_.cname.data(), s_.cname_len), send_, at)
          : 0;
  if (bye && at) at = rtp::build_bye(s_.ssrc, send_, at);
  if (at == 0) return;
  ::sendto(s_.sockets.rtcp_fd(), send_.data(), at, MSG_DONTWAIT | MSG_NOSIGNAL,
           reinterpret_cast<const sockaddr*>(&rtcp_dest_.addr), rtcp_dest_.len);
}

}  // namespace

// ---- loop side -----------------------------------------------------------------------------------------

Result<std::unique_ptr<RtpStream>> RtpStream::create(RtpStreamOptions o, RtpSockets sockets) {
  const bool opus = o.codec == RtpCodec::opus;
  if (o.payload_type > 127) return make_error("rtp: payload_type must be 0..127");
  if (o.dtmf_payload_type > 127) return make_error("rtp: dtmf_payload_type must be 0..127");
  if (o.dtmf_payload_type != 0 && o.dtmf_payload_type == o.payload_type)
    return make_error("rtp: dtmf_payload_type equals the codec's payload_type");
  if (o.payload_type == rtp::kComfortNoisePt || o.dtmf_payload_type == rtp::kComfortNoisePt)
    return make_error("rtp: payload type 13 is comfort noise");
  if (opus ? o.rate != 16000 : o.rate != 8000)
    return make_error(opus ? "rtp: Opus runs at rate 16000" : "rtp: G.711 runs at rate 8000");
  if (o.ptime_ms != 10 && o.ptime_ms != 20) return make_error("rtp: ptime_ms must be 10 or 20");
  if (o.jitter_min_ms < 0 || o.jitter_max_ms < o.jitter_min_ms || o.jitter_max_ms > 1000)
    return make_error("rtp: jitter must satisfy 0 <= jitter_min_ms <= jitter_max_ms <= 1000");
  if (o.rt_priority < 0 || o.rt_priority > 99) return make_error("rtp: rt_priority must be 0..99");
  if (o.capture_ring_ms < 2 * o.ptime_ms || o.playback_ring_ms < 2 * o.ptime_ms)
    return make_error("rtp: rings must hold at least two periods");
  if (o.event_ring < 4) return make_error("rtp: event_ring must be >= 4");
  if (o.media_timeout_ms < 0) return make_error("rtp: media_timeout_ms must be >= 0");
  if (sockets.rtp_fd() < 0 || sockets.rtcp_fd() < 0) return make_error("rtp: sockets not bound");
  const int family = socket_family(sockets.rtp_fd());
  const uint16_t rtcp_port = o.remote_rtcp_port  ? o.remote_rtcp_port
                             : o.remote_rtp_port ? static_cast<uint16_t>(o.remote_rtp_port + 1)
                                                 : uint16_t{0};
  auto rtp_dest = make_dest(family, o.remote_ip, o.remote_rtp_port);
  auto rtcp_dest = make_dest(family, o.remote_ip, rtcp_port);
  if (!rtp_dest || !rtcp_dest)
    return make_error("rtp: remote_ip is not a usable numeric address: " + o.remote_ip);

  auto wake = EventFd::create();
  if (!wake) return wake.error();
  auto stop = EventFd::create();
  if (!stop) return stop.error();
  const size_t period = static_cast<size_t>(o.rate) / 1000 * static_cast<size_t>(o.ptime_ms);
  auto impl =
      std::make_unique<Impl>(std::move(o), std::move(sockets), std::move(*wake), std::move(*stop), period);
  impl->family = family;
  impl->clock_rate = opus ? 48000 : 8000;  // RFC 7587: Opus always 48 kHz on the wire
  impl->units_per_sample = opus ? 3 : 1;
  impl->initial = RemoteCmd{*rtp_dest, *rtcp_dest};
  impl->sdp_remote = impl->initial;
  if (opus) {
    audio::OpusEncoderConfig ec;
    ec.rate = 16000;
    ec.frame_ms = impl->opt.ptime_ms;
    ec.inband_fec = true;  // the far end may recover a lost frame from the next packet
    ec.expected_loss_pct = 5;
    auto enc = audio::OpusEncoder::create(ec);
    if (!enc) return enc.error();
    impl->encoder.emplace(std::move(*enc));
    auto dec = audio::OpusDecoder::create(16000, 1, 20);
    if (!dec) return dec.error();
    impl->decoder.emplace(std::move(*dec));
  }
  impl->ssrc = random_value<uint32_t>();
  impl->seq = random_value<uint16_t>();
  impl->timestamp = random_value<uint32_t>();
  impl->cname_len =
      static_cast<size_t>(std::snprintf(impl->cname.data(), impl->cname.size(), "osvi-%08x", impl->ssrc));
  return std::unique_ptr<RtpStream>(new RtpStream(std::move(impl)));
}

RtpStream::RtpStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

RtpStream::~RtpStream() {
  stop();
}

Status RtpStream::start() {
  Impl& s = *impl_;
  if (s.thread.joinable()) return make_error("rtp: already started", -EALREADY);
  s.stop_requested.store(false);
  s.stop.drain();
  UniqueFd timer(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timer.valid()) return make_error(std::string("rtp: timerfd: ") + std::strerror(errno), -errno);
  // Built here, on the loop, so the thread starts with every buffer allocated.
  auto worker = std::make_shared<Worker>(s, std::move(timer));
  try {
    s.thread = std::thread([worker] { worker->run(); });
    pthread_setname_np(s.thread.native_handle(), "osvi-rtp");  // ps -L, top -H (15 chars at most)
  } catch (const std::system_error& e) {
    return make_error(std::string("rtp: thread: ") + e.what(), -e.code().value());
  }
  return {};
}

void RtpStream::stop() {
  Impl& s = *impl_;
  if (!s.thread.joinable()) return;
  s.stop_requested.store(true, std::memory_order_release);
  s.stop.signal();
  s.thread.join();
  s.c.sched.store(static_cast<int>(SchedPolicy::none));
}

Status RtpStream::set_processor(PeriodProcessor* processor) {
  if (impl_->thread.joinable()) return make_error("rtp: set_processor while running", -EBUSY);
  impl_->processor = processor;
  return {};
}

int RtpStream::event_fd() const {
  return impl_->wake.fd();
}

size_t RtpStream::drain_events(std::span<StreamEvent> out) {
  impl_->wake.drain();
  return impl_->events.pop(out);
}

bool RtpStream::read_frame(std::span<int16_t> capture, std::span<int16_t> reference) {
  Impl& s = *impl_;
  if (capture.size() != s.period || reference.size() != s.period || s.frames.readable() < 2 * s.period)
    return false;
  s.frames.pop(capture);
  s.frames.pop(reference);
  return true;
}

size_t RtpStream::frames_available() const {
  return impl_->frames.readable() / (2 * impl_->period);
}

size_t RtpStream::queue_playback(std::span<const int16_t> samples) {
  if (stop_playback_pending()) return 0;
  return impl_->playback.push(samples);
}

size_t RtpStream::playback_queued() const {
  return impl_->playback.readable();
}

void RtpStream::stop_playback() {
  impl_->stop_playback_requests.fetch_add(1, std::memory_order_acq_rel);
}

bool RtpStream::stop_playback_pending() const {
  return impl_->stop_playback_requests.load(std::memory_order_acquire) !=
         impl_->stop_playback_done.load(std::memory_order_acquire);
}

AudioStreamStats RtpStream::stats() const {
  AudioStreamStats s = detail::common_stats(impl_->c);
  s.hw_period_frames = impl_->period;
  s.hw_buffer_frames = impl_->period;
  return s;
}

size_t RtpStream::period_frames() const {
  return impl_->period;
}

const RtpStreamOptions& RtpStream::options() const {
  return impl_->opt;
}

RtpStreamStats RtpStream::rtp_stats() const {
  const RtpCounters& c = impl_->c;
  auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  RtpStreamStats s;
  s.packets_received = get(c.received);
  s.packets_sent = get(c.sent);
  s.packets_lost = get(c.lost);
  s.packets_late = get(c.late);
  s.packets_reordered = get(c.reordered);
  s.packets_invalid = get(c.invalid);
  s.concealed_frames = get(c.concealed);
  s.comfort_noise = get(c.comfort_noise);
  s.dtmf_received = get(c.dtmf_received);
  s.dtmf_sent = get(c.dtmf_sent);
  s.jitter_ms = c.jitter_ms.load(std::memory_order_relaxed);
  s.playout_delay_ms = c.playout_ms.load(std::memory_order_relaxed);
  return s;
}

Status RtpStream::send_dtmf(std::string_view digits) {
  Impl& s = *impl_;
  if (s.opt.dtmf_payload_type == 0) return make_error("rtp: telephone-event was not negotiated", -ENOTSUP);
  for (char d : digits)
    if (rtp::digit_event(d) < 0) return make_error(std::string("rtp: not a DTMF digit: ") + d);
  if (s.dtmf_out.writable() < digits.size()) return make_error("rtp: DTMF queue full (32 digits)", -EAGAIN);
  for (char d : digits) s.dtmf_out.push_one(d);
  return {};
}

void RtpStream::set_remote(const std::string& ip, uint16_t rtp_port, uint16_t rtcp_port) {
  Impl& s = *impl_;
  const uint16_t rtcp = rtcp_port ? rtcp_port : rtp_port ? static_cast<uint16_t>(rtp_port + 1) : uint16_t{0};
  auto r = make_dest(s.family, ip, rtp_port);
  auto c = make_dest(s.family, ip, rtcp);
  if (!r || !c) return;  // not an address this socket can reach: keep sending where we did
  // A re-INVITE repeating the same address (session refresh, hold/resume) keeps what symmetric RTP learnt.
  const RemoteCmd cmd{*r, *c};
  if (same_dest(cmd.rtp, s.sdp_remote.rtp) && same_dest(cmd.rtcp, s.sdp_remote.rtcp)) return;
  s.sdp_remote = cmd;
  s.remote_cmds.push_one(cmd);
}

void RtpStream::set_hold(bool hold) {
  impl_->hold.store(hold, std::memory_order_release);
}

}  // namespace osvi::hal
