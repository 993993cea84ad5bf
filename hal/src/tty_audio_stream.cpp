// TtyAudioStream: raw PCM over a tty, paced by the capture the module delivers, with stall detection.
#include "osvi/hal/tty_audio_stream.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "stream_common.hpp"

namespace osvi::hal {

namespace {

int64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

size_t ms_samples(int rate, int ms) {
  return static_cast<size_t>(rate) / 1000 * static_cast<size_t>(ms);
}

void bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
  c.fetch_add(n, std::memory_order_relaxed);
}

}  // namespace

struct TtyAudioStream::Counters : detail::StreamCounters {};

// Everything the audio thread owns, allocated on the loop in start().
class TtyAudioStream::Worker {
 public:
  explicit Worker(TtyAudioStream& s)
      : s_(s),
        c_(*s.counters_),
        processor_(s.processor_),
        period_(s.period_),
        in_(period_),
        drop_(period_),
        frame_(period_ * 2),
        out_(period_),
        // Whole periods only ever enter it, so a partial write never leaves it out of sample alignment.
        pending_(period_ * static_cast<size_t>(kPendingPeriods)),
        history_(period_ * 16) {}

  void run();

 private:
  static constexpr int kPendingPeriods = 4;  // playback the tty did not take yet, at most

  bool stopping() const { return s_.stop_requested_.load(std::memory_order_acquire); }
  Status open_tty();
  void close_tty();
  void wait_backoff(std::chrono::milliseconds backoff);
  // Reads what the tty has (`got` bytes); 0, or a negative errno when it vanished.
  int read_available(size_t* got);
  // One capture period (in_) in, one playback period out; negative errno when the tty vanished.
  int period_done();
  void queue_out(std::span<const int16_t> samples);
  int flush_out();
  void handle_stop_playback();
  int64_t queued_bytes(unsigned long request) const {
    int n = 0;
    return ioctl(fd_.get(), request, &n) == 0 ? n : 0;
  }

  TtyAudioStream& s_;
  Counters& c_;
  PeriodProcessor* const processor_;  // the stream's, fixed for this run of the thread
  const size_t period_;
  UniqueFd fd_;
  std::vector<int16_t> in_;  // capture bytes of the period being assembled (as samples)
  size_t in_bytes_ = 0;
  std::vector<int16_t> drop_;   // clockless: capture beyond real time is read into here and dropped
  std::vector<int16_t> frame_;  // capture then reference, pushed as one unit
  std::vector<int16_t> out_;
  std::vector<int16_t>
      pending_;  // whole playback periods not yet taken by the tty, as bytes from pending_off_
  size_t pending_bytes_ = 0;
  size_t pending_off_ = 0;
  PlaybackHistory history_;
  uint64_t ring_written_ = 0;  // queued samples written since the last drain/stop report
};

void TtyAudioStream::Worker::run() {
  detail::enter_rt_sched(s_.opt_.rt_priority, c_);

  const int64_t period_ns = static_cast<int64_t>(s_.opt_.period_ms) * 1'000'000;
  const int64_t pace_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(s_.opt_.pace).count();
  const int64_t stall_ns = period_ns * s_.opt_.stall_periods;
  bool ever_opened = false;
  bool lost = false;     // a device_lost is out and no device_back yet
  bool stalled = false;  // that device_lost is a stall (the tty is still open)
  auto backoff = s_.opt_.reopen_backoff_min;
  int64_t last_rx = 0;
  int64_t next_tick = 0;
  while (!stopping()) {
    if (!fd_.valid()) {
      if (ever_opened || lost) bump(c_.reopen_attempts);
      Status st = open_tty();
      if (!st) {
        if (!lost) {
          lost = true;
          bump(c_.device_losses);
          s_.push_event({StreamEventKind::device_lost, StreamDirection::both, st.error().code, 0, 0});
        }
        wait_backoff(backoff);
        backoff = std::min(backoff * 2, s_.opt_.reopen_backoff_max);
        continue;
      }
      backoff = s_.opt_.reopen_backoff_min;
      if (ever_opened || lost) bump(c_.reopens);
      s_.push_event({ever_opened || lost ? StreamEventKind::device_back : StreamEventKind::opened,
                     StreamDirection::both, 0, 0, 0});
      ever_opened = true;
      lost = stalled = false;
      last_rx = next_tick = mono_ns();
    }

    handle_stop_playback();
    const int64_t now = mono_ns();
    int64_t wait_ns = period_ns;
    if (pace_ns > 0) wait_ns = std::max<int64_t>(0, next_tick + pace_ns - now);
    pollfd p[2] = {{fd_.get(), POLLIN, 0}, {s_.stop_.fd(), POLLIN, 0}};
    if (pending_bytes_ > 0) p[0].events |= POLLOUT;
    const timespec ts{static_cast<time_t>(wait_ns / 1'000'000'000),
                      static_cast<long>(wait_ns % 1'000'000'000)};
    const int r = ppoll(p, 2, &ts, nullptr);
    if (r < 0 && errno != EINTR) {
      close_tty();
      continue;
    }
    if (p[1].revents) continue;  // stop requested: the loop condition ends it
    int err = 0;
    if (p[0].revents & POLLIN) {
      size_t got = 0;
      err = read_available(&got);
      if (err == 0 && got > 0) {
        last_rx = mono_ns();
        if (stalled) {
          stalled = lost = false;
          s_.push_event({StreamEventKind::device_back, StreamDirection::capture, 0, 0, 0});
        }
      }
    } else if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL)) {
      err = -EIO;
    }
    if (err == 0 && (p[0].revents & POLLOUT)) err = flush_out();
    if (err == 0 && pace_ns > 0 && mono_ns() >= next_tick + pace_ns) {
      // No clock behind the tty: this period is whatever arrived, padded with silence.
      next_tick += pace_ns;
      if (mono_ns() > next_tick + 50 * pace_ns) next_tick = mono_ns();  // far behind: restart the schedule
      std::fill(in_.begin() + static_cast<std::ptrdiff_t>(in_bytes_ / 2), in_.end(), int16_t{0});
      in_bytes_ = period_ * 2;
      err = period_done();
    }
    if (err < 0) {
      close_tty();
      lost = true;
      stalled = false;
      bump(c_.device_losses);
      s_.push_event({StreamEventKind::device_lost, StreamDirection::both, err, 0, 0});
      continue;
    }
    if (pace_ns == 0 && !stalled && mono_ns() - last_rx >= stall_ns) {
      stalled = lost = true;
      bump(c_.device_losses);
      s_.push_event({StreamEventKind::device_lost, StreamDirection::capture, -ETIMEDOUT, 0, 0});
    }
  }
  close_tty();
}

Status TtyAudioStream::Worker::open_tty() {
  const std::string& dev = s_.opt_.device;
  const int fd = ::open(dev.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    return make_error("cannot open " + dev + ": " + std::strerror(e), -e);
  }
  UniqueFd owned(fd);
  termios tio{};
  if (tcgetattr(fd, &tio) == 0) {
    // Raw bytes: no line discipline may eat or translate PCM that happens to look like control characters.
    cfmakeraw(&tio);
    tio.c_cflag |= CLOCAL | CREAD;
    tio.c_cc[VMIN] = 1;
    tio.c_cc[VTIME] = 0;
    if (tcsetattr(fd, TCSANOW, &tio) != 0) {
      const int e = errno;
      return make_error("cannot configure " + dev + ": " + std::strerror(e), -e);
    }
    // Capture left over from before this call is stale.
    tcflush(fd, TCIFLUSH);
  }
  fd_ = std::move(owned);
  in_bytes_ = 0;
  pending_bytes_ = pending_off_ = 0;
  c_.device_open.store(true);
  // The silence cushion: the module never plays dead air while the first capture period is on its way.
  std::fill(out_.begin(), out_.end(), int16_t{0});
  for (int i = 0; i < s_.opt_.buffer_periods - 1; ++i) {
    queue_out(out_);
    history_.append(out_);
  }
  if (int err = flush_out(); err < 0) {
    close_tty();
    return make_error("cannot write to " + dev + ": " + std::strerror(-err), err);
  }
  return {};
}

void TtyAudioStream::Worker::close_tty() {
  fd_.reset();
  c_.device_open.store(false);
}

void TtyAudioStream::Worker::wait_backoff(std::chrono::milliseconds backoff) {
  pollfd pfd{s_.stop_.fd(), POLLIN, 0};
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(backoff).count();
  const timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  ppoll(&pfd, 1, &ts, nullptr);
}

int TtyAudioStream::Worker::read_available(size_t* got) {
  auto* bytes = reinterpret_cast<uint8_t*>(in_.data());
  const size_t period_bytes = period_ * 2;
  const bool clocked = s_.opt_.pace.count() == 0;
  for (;;) {
    // Clockless with a whole period waiting for its tick: more capture than real time is dropped.
    const bool full = in_bytes_ == period_bytes;
    uint8_t* dst = full ? reinterpret_cast<uint8_t*>(drop_.data()) : bytes + in_bytes_;
    const size_t room = full ? drop_.size() * 2 : period_bytes - in_bytes_;
    const ssize_t n = ::read(fd_.get(), dst, room);
    if (n > 0) {
      *got += static_cast<size_t>(n);
      if (full) continue;
      in_bytes_ += static_cast<size_t>(n);
      if (in_bytes_ == period_bytes && clocked) {
        if (int err = period_done(); err < 0) return err;
      }
      continue;
    }
    if (n == 0) return -EIO;  // the other side closed: a vanished device
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return -errno;
  }
}

int TtyAudioStream::Worker::period_done() {
  in_bytes_ = 0;
  // What the module is playing now: TIOCOUTQ bytes (and our pending bytes) are written but not yet taken.
  const int64_t playback_delay =
      (queued_bytes(TIOCOUTQ) + static_cast<int64_t>(pending_bytes_ - pending_off_)) / 2;
  const int64_t capture_delay = queued_bytes(FIONREAD) / 2;
  std::copy(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(period_), frame_.begin());
  history_.reference(playback_delay, capture_delay, std::span<int16_t>(frame_.data() + period_, period_));
  detail::deliver_period(processor_, s_.frames_, frame_, c_);

  const size_t real = s_.playback_.pop(out_);
  if (real < period_) {
    std::fill(out_.begin() + static_cast<std::ptrdiff_t>(real), out_.end(), int16_t{0});
    bump(c_.fill_periods);
    bump(c_.fill_samples, period_ - real);
  }
  queue_out(out_);
  history_.append(out_);
  ring_written_ += real;
  bump(c_.played_samples, real);
  const int err = flush_out();
  // Drained: every queued sample has been handed to the module.
  if (ring_written_ > 0 && s_.playback_.readable() == 0) {
    s_.push_event({StreamEventKind::playback_drained, StreamDirection::playback, 0, ring_written_, 0});
    ring_written_ = 0;
  }
  s_.wake_.signal();
  return err;
}

void TtyAudioStream::Worker::queue_out(std::span<const int16_t> samples) {
  const size_t bytes = samples.size() * 2;
  auto* buf = reinterpret_cast<uint8_t*>(pending_.data());
  if (pending_off_ > 0) {
    // Keep the unsent tail at the front so whole periods always fit behind it.
    std::memmove(buf, buf + pending_off_, pending_bytes_ - pending_off_);
    pending_bytes_ -= pending_off_;
    pending_off_ = 0;
  }
  if (pending_bytes_ + bytes > pending_.size() * 2) {
    // The module is not taking what it plays: drop this period rather than fall further behind.
    bump(c_.xruns);
    return;
  }
  std::memcpy(buf + pending_bytes_, samples.data(), bytes);
  pending_bytes_ += bytes;
}

int TtyAudioStream::Worker::flush_out() {
  const auto* buf = reinterpret_cast<const uint8_t*>(pending_.data());
  while (pending_off_ < pending_bytes_) {
    const ssize_t n = ::write(fd_.get(), buf + pending_off_, pending_bytes_ - pending_off_);
    if (n > 0) {
      pending_off_ += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    return n < 0 ? -errno : -EIO;
  }
  pending_bytes_ = pending_off_ = 0;
  return 0;
}

void TtyAudioStream::Worker::handle_stop_playback() {
  const uint32_t req = s_.stop_playback_requests_.load(std::memory_order_acquire);
  if (req == s_.stop_playback_done_.load(std::memory_order_relaxed)) return;
  const uint64_t dropped = s_.playback_.discard();
  const uint64_t played = ring_written_;
  ring_written_ = 0;
  s_.stop_playback_done_.store(req, std::memory_order_release);
  s_.push_event({StreamEventKind::playback_stopped, StreamDirection::playback, 0, played, dropped});
}

// ---- loop side -----------------------------------------------------------------------------------------

Result<std::unique_ptr<TtyAudioStream>> TtyAudioStream::create(TtyAudioOptions o) {
  if (o.device.empty()) return make_error("tty audio: no device");
  if (o.rate != 8000 && o.rate != 16000) return make_error("tty audio: rate must be 8000 or 16000");
  if (o.period_ms < 10 || o.period_ms > 20) return make_error("tty audio: period_ms must be 10..20");
  if (o.buffer_periods < 2 || o.buffer_periods > 3)
    return make_error("tty audio: buffer_periods must be 2..3");
  if (o.stall_periods < 2 || o.stall_periods > 500)
    return make_error("tty audio: stall_periods must be 2..500");
  if (o.rt_priority < 0 || o.rt_priority > 99) return make_error("tty audio: rt_priority must be 0..99");
  if (o.capture_ring_ms < 2 * o.period_ms || o.playback_ring_ms < 2 * o.period_ms)
    return make_error("tty audio: rings must hold at least two periods");
  if (o.event_ring < 4) return make_error("tty audio: event_ring must be >= 4");
  if (o.reopen_backoff_min.count() <= 0 || o.reopen_backoff_max < o.reopen_backoff_min)
    return make_error("tty audio: reopen backoff must be > 0 and min <= max");
  if (o.pace.count() < 0) return make_error("tty audio: pace must be >= 0");
  auto wake = EventFd::create();
  if (!wake) return wake.error();
  auto stop = EventFd::create();
  if (!stop) return stop.error();
  return std::unique_ptr<TtyAudioStream>(
      new TtyAudioStream(std::move(o), std::move(wake.value()), std::move(stop.value())));
}

TtyAudioStream::TtyAudioStream(TtyAudioOptions options, EventFd wake, EventFd stop)
    : opt_(std::move(options)),
      period_(ms_samples(opt_.rate, opt_.period_ms)),
      wake_(std::move(wake)),
      stop_(std::move(stop)),
      frames_(2 * ms_samples(opt_.rate, opt_.capture_ring_ms)),
      playback_(ms_samples(opt_.rate, opt_.playback_ring_ms)),
      events_(opt_.event_ring),
      counters_(std::make_unique<Counters>()) {}

TtyAudioStream::~TtyAudioStream() {
  stop();
}

Status TtyAudioStream::start() {
  if (thread_.joinable()) return make_error("tty audio: already started", -EALREADY);
  stop_requested_.store(false);
  stop_.drain();
  auto worker = std::make_shared<Worker>(*this);
  try {
    thread_ = std::thread([worker] { worker->run(); });
  } catch (const std::system_error& e) {
    return make_error(std::string("tty audio: thread: ") + e.what(), -e.code().value());
  }
  return {};
}

void TtyAudioStream::stop() {
  if (!thread_.joinable()) return;
  stop_requested_.store(true, std::memory_order_release);
  stop_.signal();
  thread_.join();
  counters_->sched.store(static_cast<int>(SchedPolicy::none));
}

Status TtyAudioStream::set_processor(PeriodProcessor* processor) {
  if (thread_.joinable()) return make_error("tty audio: set_processor while running", -EBUSY);
  processor_ = processor;
  return {};
}

void TtyAudioStream::push_event(const StreamEvent& event) {
  if (!events_.push_one(event)) bump(counters_->events_dropped);
  wake_.signal();
}

size_t TtyAudioStream::drain_events(std::span<StreamEvent> out) {
  wake_.drain();
  return events_.pop(out);
}

bool TtyAudioStream::read_frame(std::span<int16_t> capture, std::span<int16_t> reference) {
  if (capture.size() != period_ || reference.size() != period_ || frames_.readable() < 2 * period_)
    return false;
  frames_.pop(capture);
  frames_.pop(reference);
  return true;
}

size_t TtyAudioStream::queue_playback(std::span<const int16_t> samples) {
  if (stop_playback_pending()) return 0;
  return playback_.push(samples);
}

void TtyAudioStream::stop_playback() {
  stop_playback_requests_.fetch_add(1, std::memory_order_acq_rel);
}

bool TtyAudioStream::stop_playback_pending() const {
  return stop_playback_requests_.load(std::memory_order_acquire) !=
         stop_playback_done_.load(std::memory_order_acquire);
}

AudioStreamStats TtyAudioStream::stats() const {
  AudioStreamStats s = detail::common_stats(*counters_);
  s.hw_period_frames = period_;
  return s;
}

}  // namespace osvi::hal
