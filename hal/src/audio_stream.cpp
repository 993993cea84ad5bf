// AudioStream: ALSA capture + playback pair, the real-time audio thread, reopen, xrun and barge-in handling.
#include "osvi/hal/audio_stream.hpp"

#include <alloca.h>
#include <alsa/asoundlib.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "osvi/shared_library.hpp"
#include "stream_common.hpp"

namespace osvi::hal {

namespace {

// alsa-lib (~0.3 MB resident once mapped) is opened by the first stream, not at start (issue 18): an idle
// box, or one whose lines have no ALSA audio, never maps it. Its C API is the ABI (soname libasound.so.2), so
// the functions are bound here as libcurl's are in net/src/http_client.cpp; opened once per process and never
// closed (RTLD_NODELETE), so the audio thread's pointers stay valid.

struct AlsaApi {
  decltype(&::snd_config_delete) config_delete = nullptr;
  decltype(&::snd_config_load) config_load = nullptr;
  decltype(&::snd_config_top) config_top = nullptr;
  decltype(&::snd_input_buffer_open) input_buffer_open = nullptr;
  decltype(&::snd_input_close) input_close = nullptr;
  decltype(&::snd_pcm_close) pcm_close = nullptr;
  decltype(&::snd_pcm_delay) pcm_delay = nullptr;
  decltype(&::snd_pcm_drop) pcm_drop = nullptr;
  decltype(&::snd_pcm_hw_params) pcm_hw_params = nullptr;
  decltype(&::snd_pcm_hw_params_any) pcm_hw_params_any = nullptr;
  decltype(&::snd_pcm_hw_params_get_buffer_size) pcm_hw_params_get_buffer_size = nullptr;
  decltype(&::snd_pcm_hw_params_get_period_size) pcm_hw_params_get_period_size = nullptr;
  decltype(&::snd_pcm_hw_params_set_access) pcm_hw_params_set_access = nullptr;
  decltype(&::snd_pcm_hw_params_set_buffer_size_near) pcm_hw_params_set_buffer_size_near = nullptr;
  decltype(&::snd_pcm_hw_params_set_channels) pcm_hw_params_set_channels = nullptr;
  decltype(&::snd_pcm_hw_params_set_format) pcm_hw_params_set_format = nullptr;
  decltype(&::snd_pcm_hw_params_set_period_size_near) pcm_hw_params_set_period_size_near = nullptr;
  decltype(&::snd_pcm_hw_params_set_rate) pcm_hw_params_set_rate = nullptr;
  decltype(&::snd_pcm_hw_params_set_rate_resample) pcm_hw_params_set_rate_resample = nullptr;
  decltype(&::snd_pcm_hw_params_sizeof) pcm_hw_params_sizeof = nullptr;
  decltype(&::snd_pcm_open) pcm_open = nullptr;
  decltype(&::snd_pcm_open_lconf) pcm_open_lconf = nullptr;
  decltype(&::snd_pcm_prepare) pcm_prepare = nullptr;
  decltype(&::snd_pcm_readi) pcm_readi = nullptr;
  decltype(&::snd_pcm_recover) pcm_recover = nullptr;
  decltype(&::snd_pcm_sw_params) pcm_sw_params = nullptr;
  decltype(&::snd_pcm_sw_params_current) pcm_sw_params_current = nullptr;
  decltype(&::snd_pcm_sw_params_set_avail_min) pcm_sw_params_set_avail_min = nullptr;
  decltype(&::snd_pcm_sw_params_set_start_threshold) pcm_sw_params_set_start_threshold = nullptr;
  decltype(&::snd_pcm_sw_params_sizeof) pcm_sw_params_sizeof = nullptr;
  decltype(&::snd_pcm_writei) pcm_writei = nullptr;
  decltype(&::snd_strerror) strerror = nullptr;
};

using LoadedAlsa = dl::Table<AlsaApi>;

LoadedAlsa open_alsa(const char* soname) {
  return dl::load_table<AlsaApi>(soname, "the ALSA library", [](void* h, AlsaApi& a) {
    return dl::bind(h, "snd_config_delete", a.config_delete) &&
           dl::bind(h, "snd_config_load", a.config_load) && dl::bind(h, "snd_config_top", a.config_top) &&
           dl::bind(h, "snd_input_buffer_open", a.input_buffer_open) &&
           dl::bind(h, "snd_input_close", a.input_close) && dl::bind(h, "snd_pcm_close", a.pcm_close) &&
           dl::bind(h, "snd_pcm_delay", a.pcm_delay) && dl::bind(h, "snd_pcm_drop", a.pcm_drop) &&
           dl::bind(h, "snd_pcm_hw_params", a.pcm_hw_params) &&
           dl::bind(h, "snd_pcm_hw_params_any", a.pcm_hw_params_any) &&
           dl::bind(h, "snd_pcm_hw_params_get_buffer_size", a.pcm_hw_params_get_buffer_size) &&
           dl::bind(h, "snd_pcm_hw_params_get_period_size", a.pcm_hw_params_get_period_size) &&
           dl::bind(h, "snd_pcm_hw_params_set_access", a.pcm_hw_params_set_access) &&
           dl::bind(h, "snd_pcm_hw_params_set_buffer_size_near", a.pcm_hw_params_set_buffer_size_near) &&
           dl::bind(h, "snd_pcm_hw_params_set_channels", a.pcm_hw_params_set_channels) &&
           dl::bind(h, "snd_pcm_hw_params_set_format", a.pcm_hw_params_set_format) &&
           dl::bind(h, "snd_pcm_hw_params_set_period_size_near", a.pcm_hw_params_set_period_size_near) &&
           dl::bind(h, "snd_pcm_hw_params_set_rate", a.pcm_hw_params_set_rate) &&
           dl::bind(h, "snd_pcm_hw_params_set_rate_resample", a.pcm_hw_params_set_rate_resample) &&
           dl::bind(h, "snd_pcm_hw_params_sizeof", a.pcm_hw_params_sizeof) &&
           dl::bind(h, "snd_pcm_open", a.pcm_open) && dl::bind(h, "snd_pcm_open_lconf", a.pcm_open_lconf) &&
           dl::bind(h, "snd_pcm_prepare", a.pcm_prepare) && dl::bind(h, "snd_pcm_readi", a.pcm_readi) &&
           dl::bind(h, "snd_pcm_recover", a.pcm_recover) &&
           dl::bind(h, "snd_pcm_sw_params", a.pcm_sw_params) &&
           dl::bind(h, "snd_pcm_sw_params_current", a.pcm_sw_params_current) &&
           dl::bind(h, "snd_pcm_sw_params_set_avail_min", a.pcm_sw_params_set_avail_min) &&
           dl::bind(h, "snd_pcm_sw_params_set_start_threshold", a.pcm_sw_params_set_start_threshold) &&
           dl::bind(h, "snd_pcm_sw_params_sizeof", a.pcm_sw_params_sizeof) &&
           dl::bind(h, "snd_pcm_writei", a.pcm_writei) && dl::bind(h, "snd_strerror", a.strerror);
  });
}

std::atomic<bool> alsa_opened{false};

const LoadedAlsa& loaded_alsa(const char* soname = kAlsaSoname) {
  static const LoadedAlsa l = [soname] {  // thread-safe static: the first caller opens
    LoadedAlsa opened = open_alsa(soname);
    alsa_opened.store(true, std::memory_order_release);
    return opened;
  }();
  return l;
}

// Once a stream has opened the library, a check answers with that outcome instead of probing again.
bool loaded_alsa_status_known() {
  return alsa_opened.load(std::memory_order_acquire);
}

// Only called once loaded_alsa() succeeded: AudioStream::create checks it before any stream exists.
const AlsaApi& alsa() {
  return loaded_alsa().api;
}

struct PcmClose {
  void operator()(snd_pcm_t* pcm) const { alsa().pcm_close(pcm); }
};
using PcmPtr = std::unique_ptr<snd_pcm_t, PcmClose>;

struct ConfigDelete {
  void operator()(snd_config_t* c) const { alsa().config_delete(c); }
};
using ConfigPtr = std::unique_ptr<snd_config_t, ConfigDelete>;

struct InputClose {
  void operator()(snd_input_t* in) const { alsa().input_close(in); }
};

// A private configuration tree holding only `text` (AudioStreamOptions::alsa_config).
Result<ConfigPtr> load_config(const std::string& text) {
  snd_config_t* raw = nullptr;
  int err = alsa().config_top(&raw);
  if (err < 0) return make_error(std::string("alsa_config: ") + alsa().strerror(err), err);
  ConfigPtr top(raw);
  snd_input_t* in_raw = nullptr;
  if ((err = alsa().input_buffer_open(&in_raw, text.data(), static_cast<ssize_t>(text.size()))) < 0)
    return make_error(std::string("alsa_config: ") + alsa().strerror(err), err);
  std::unique_ptr<snd_input_t, InputClose> in(in_raw);
  if ((err = alsa().config_load(top.get(), in.get())) < 0)
    return make_error(std::string("alsa_config does not parse: ") + alsa().strerror(err), err);
  return top;
}

std::string alsa_error(const std::string& what, int err) {
  return what + ": " + alsa().strerror(err);
}

// plug:{SLAVE="name"} keeps names with commas ("hw:1,0") intact.
std::string plug_name(const std::string& name) {
  std::string quoted;
  for (char c : name) {
    if (c == '"' || c == '\\') quoted.push_back('\\');
    quoted.push_back(c);
  }
  return "plug:{SLAVE=\"" + quoted + "\"}";
}

struct Granted {
  snd_pcm_uframes_t period = 0;
  snd_pcm_uframes_t buffer = 0;
};

int configure(snd_pcm_t* pcm, snd_pcm_stream_t stream, const AudioStreamOptions& opt, size_t period,
              Granted* granted) {
  // snd_pcm_hw_params_alloca, spelled out: the macro would call snd_pcm_hw_params_sizeof by its link name.
  auto* hw = static_cast<snd_pcm_hw_params_t*>(alloca(alsa().pcm_hw_params_sizeof()));
  std::memset(hw, 0, alsa().pcm_hw_params_sizeof());
  int err = alsa().pcm_hw_params_any(pcm, hw);
  if (err < 0) return err;
  // Only meaningful on plug-style PCMs; lets them resample instead of refusing 8/16 kHz.
  alsa().pcm_hw_params_set_rate_resample(pcm, hw, 1);
  if ((err = alsa().pcm_hw_params_set_access(pcm, hw, SND_PCM_ACCESS_RW_INTERLEAVED)) < 0) return err;
  if ((err = alsa().pcm_hw_params_set_format(pcm, hw, SND_PCM_FORMAT_S16_LE)) < 0) return err;
  if ((err = alsa().pcm_hw_params_set_channels(pcm, hw, static_cast<unsigned>(opt.channels))) < 0) return err;
  if ((err = alsa().pcm_hw_params_set_rate(pcm, hw, static_cast<unsigned>(opt.rate), 0)) < 0) return err;
  snd_pcm_uframes_t p = period;
  int dir = 0;
  if ((err = alsa().pcm_hw_params_set_period_size_near(pcm, hw, &p, &dir)) < 0) return err;
  snd_pcm_uframes_t b = period * static_cast<size_t>(opt.buffer_periods);
  if ((err = alsa().pcm_hw_params_set_buffer_size_near(pcm, hw, &b)) < 0) return err;
  if ((err = alsa().pcm_hw_params(pcm, hw)) < 0) return err;
  alsa().pcm_hw_params_get_period_size(hw, &granted->period, &dir);
  alsa().pcm_hw_params_get_buffer_size(hw, &granted->buffer);

  auto* sw = static_cast<snd_pcm_sw_params_t*>(alloca(alsa().pcm_sw_params_sizeof()));
  std::memset(sw, 0, alsa().pcm_sw_params_sizeof());
  if ((err = alsa().pcm_sw_params_current(pcm, sw)) < 0) return err;
  // Playback starts once the silence cushion is written; capture on the first read.
  const snd_pcm_uframes_t start =
      stream == SND_PCM_STREAM_PLAYBACK ? period * static_cast<size_t>(opt.buffer_periods - 1) : 1;
  if ((err = alsa().pcm_sw_params_set_start_threshold(pcm, sw, start)) < 0) return err;
  if ((err = alsa().pcm_sw_params_set_avail_min(pcm, sw, period)) < 0) return err;
  if ((err = alsa().pcm_sw_params(pcm, sw)) < 0) return err;
  return alsa().pcm_prepare(pcm);
}

// lconf: a private configuration tree (alsa_config), or null for the global one.
int pcm_open(snd_pcm_t** pcm, const std::string& name, snd_pcm_stream_t stream, snd_config_t* lconf) {
  return lconf ? alsa().pcm_open_lconf(pcm, name.c_str(), stream, 0, lconf)
               : alsa().pcm_open(pcm, name.c_str(), stream, 0);
}

Result<PcmPtr> open_pcm(const std::string& name, snd_pcm_stream_t stream, const AudioStreamOptions& opt,
                        size_t period, Granted* granted, bool* plug_used, snd_config_t* lconf) {
  const char* what = stream == SND_PCM_STREAM_CAPTURE ? "capture " : "playback ";
  snd_pcm_t* raw = nullptr;
  int err = pcm_open(&raw, name, stream, lconf);
  if (err < 0) return make_error(alsa_error(what + name, err), err);
  PcmPtr pcm(raw);
  if ((err = configure(pcm.get(), stream, opt, period, granted)) >= 0) return pcm;
  // The raw device offers other formats, rates or channel counts: let alsa-lib's plug layer convert.
  pcm.reset();
  const std::string wrapped = plug_name(name);
  if ((err = pcm_open(&raw, wrapped, stream, lconf)) < 0)
    return make_error(alsa_error(what + wrapped, err), err);
  pcm.reset(raw);
  if ((err = configure(pcm.get(), stream, opt, period, granted)) < 0)
    return make_error(alsa_error(what + wrapped + " configure", err), err);
  *plug_used = true;
  return pcm;
}

timespec to_timespec(std::chrono::nanoseconds ns) {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns.count() / 1000000000);
  ts.tv_nsec = static_cast<long>(ns.count() % 1000000000);
  return ts;
}

bool recoverable(int err) {
  return err == -EPIPE || err == -ESTRPIPE || err == -EINTR;
}

}  // namespace

Status load_alsa_library(const char* soname) {
  return loaded_alsa(soname).status;
}

Status check_alsa_library() {
  if (loaded_alsa_status_known()) return loaded_alsa().status;
  // Not RTLD_NODELETE, unlike open_library(): the probe must leave nothing mapped behind it.
  void* h = dlopen(kAlsaSoname, RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* why = dlerror();
    return make_error(std::string("the ALSA library is not available (") + (why ? why : kAlsaSoname) + ")",
                      dl::kLibraryMissing);
  }
  dlclose(h);
  return {};
}

// ---- PlaybackHistory ---------------------------------------------------------------------------------

// Exactly min_capacity, indexed modulo its size: rounding 16 periods of 20 ms (5120) up to a power of two
// held 16 kB per call for 10 kB of history (bench/README.md "percall3").
PlaybackHistory::PlaybackHistory(size_t min_capacity) : buf_(std::max<size_t>(min_capacity, 1)) {}

void PlaybackHistory::append(std::span<const int16_t> written) {
  const size_t n = buf_.size();
  size_t at = static_cast<size_t>(written_ % n);
  for (int16_t s : written) {
    buf_[at] = s;
    if (++at == n) at = 0;
  }
  written_ += written.size();
}

void PlaybackHistory::reference(int64_t playback_delay, int64_t capture_delay, std::span<int16_t> out) const {
  // A negative delay is ALSA reporting an xrun in progress: nothing queued, nothing waiting.
  const int64_t written = static_cast<int64_t>(written_);
  const int64_t end = written - std::max<int64_t>(playback_delay, 0) - std::max<int64_t>(capture_delay, 0);
  const int64_t begin = end - static_cast<int64_t>(out.size());
  const int64_t oldest = written - static_cast<int64_t>(buf_.size());
  for (size_t i = 0; i < out.size(); ++i) {
    const int64_t idx = begin + static_cast<int64_t>(i);
    out[i] = (idx < 0 || idx < oldest || idx >= written) ? int16_t{0}
                                                         : buf_[static_cast<uint64_t>(idx) % buf_.size()];
  }
}

// ---- counters ------------------------------------------------------------------------------------------

struct AudioStream::Counters : detail::StreamCounters {
  std::atomic<uint64_t> hw_period{0}, hw_buffer{0};
  std::atomic<bool> plug_fallback{false};
};

namespace {
void bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
  c.fetch_add(n, std::memory_order_relaxed);
}
}  // namespace

// ---- the audio thread ----------------------------------------------------------------------------------

// Everything the audio thread owns. Built (allocating) on the loop in start(); the thread only uses it.
class AudioStream::Worker {
 public:
  explicit Worker(AudioStream& s)
      : s_(s),
        c_(*s.counters_),
        processor_(s.processor_),
        period_(s.period_),
        channels_(static_cast<size_t>(s.opt_.channels)),
        interleaved_(period_ * channels_),
        zeros_(period_ * channels_),
        mono_(period_),
        unit_(2 * period_),
        history_(period_ * 16),
        real_per_period_(kTailPeriods) {}

  void run();

 private:
  static constexpr size_t kTailPeriods = 16;

  bool stopping() const { return s_.stop_requested_.load(std::memory_order_acquire); }
  Status open_devices();
  void close_devices();
  void wait_backoff(std::chrono::milliseconds backoff);
  void pace();
  void stall();
  // One capture period in, one playback period out. Returns a fatal negative errno (device lost) or 0.
  int stream_period();
  int read_period();
  int write_period(std::span<const int16_t> interleaved, size_t real);
  int prefill();
  // 1: recovered, the period is skipped; negative: fatal.
  int recover(snd_pcm_t* pcm, int err, StreamDirection dir);
  void handle_stop_playback();
  uint64_t unplayed_real(int64_t delay) const;
  int64_t delay(snd_pcm_t* pcm) const {
    snd_pcm_sframes_t d = 0;
    return alsa().pcm_delay(pcm, &d) < 0 ? 0 : static_cast<int64_t>(d);
  }

  AudioStream& s_;
  Counters& c_;
  PeriodProcessor* const processor_;  // the stream's, fixed for this run of the thread
  const size_t period_;
  const size_t channels_;
  // alsa_config's tree, loaded at each open; declared before the PCMs so it outlives them.
  ConfigPtr lconf_;
  PcmPtr capture_;
  PcmPtr playback_;
  std::vector<int16_t> interleaved_;
  std::vector<int16_t> zeros_;
  std::vector<int16_t> mono_;
  std::vector<int16_t> unit_;  // the ring entry being built: capture period, then its reference
  PlaybackHistory history_;
  // Queued (non-silence) samples at the start of each of the last periods written, newest at tail_pos_-1:
  // what barge-in and drain need to know how much of the queued audio is still in the ALSA buffer.
  std::vector<uint32_t> real_per_period_;
  uint64_t tail_pos_ = 0;
  uint64_t ring_written_ = 0;  // queued samples written since the last drain/stop report
  timespec next_{};
};

void AudioStream::Worker::run() {
  detail::enter_rt_sched(s_.opt_.rt_priority, c_);

  bool ever_opened = false;
  bool lost = false;  // a device_lost event is out and no device_back yet
  auto backoff = s_.opt_.reopen_backoff_min;
  clock_gettime(CLOCK_MONOTONIC, &next_);
  while (!stopping()) {
    if (!capture_) {
      if (ever_opened || lost) bump(c_.reopen_attempts);
      Status st = open_devices();
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
      lost = false;
      clock_gettime(CLOCK_MONOTONIC, &next_);
    }
    const int err = stream_period();
    if (err < 0) {
      close_devices();
      lost = true;
      bump(c_.device_losses);
      s_.push_event({StreamEventKind::device_lost, StreamDirection::both, err, 0, 0});
    }
  }
  close_devices();
}

Status AudioStream::Worker::open_devices() {
  Granted granted;
  bool plug = false;
  if (!s_.opt_.alsa_config.empty()) {
    auto conf = load_config(s_.opt_.alsa_config);
    if (!conf) return conf.error();
    lconf_ = std::move(conf.value());
  }
  auto cap = open_pcm(s_.opt_.capture_device, SND_PCM_STREAM_CAPTURE, s_.opt_, period_, &granted, &plug,
                      lconf_.get());
  if (!cap) return cap.error();
  auto pb = open_pcm(s_.opt_.playback_device, SND_PCM_STREAM_PLAYBACK, s_.opt_, period_, &granted, &plug,
                     lconf_.get());
  if (!pb) return pb.error();
  capture_ = std::move(cap.value());
  playback_ = std::move(pb.value());
  c_.hw_period.store(granted.period);
  c_.hw_buffer.store(granted.buffer);
  c_.plug_fallback.store(plug);
  c_.device_open.store(true);
  if (int err = prefill(); err < 0) {
    close_devices();
    return make_error(alsa_error("playback prefill", err), err);
  }
  return {};
}

void AudioStream::Worker::close_devices() {
  capture_.reset();
  playback_.reset();
  lconf_.reset();
  c_.device_open.store(false);
}

void AudioStream::Worker::wait_backoff(std::chrono::milliseconds backoff) {
  pollfd pfd{s_.stop_.fd(), POLLIN, 0};
  const timespec ts = to_timespec(backoff);
  ppoll(&pfd, 1, &ts, nullptr);  // the stop eventfd ends the wait early; it is drained only by start()
}

void AudioStream::Worker::pace() {
  const auto step = std::chrono::duration_cast<std::chrono::nanoseconds>(s_.opt_.pace).count();
  if (step <= 0) return;
  next_.tv_nsec += static_cast<long>(step % 1000000000);
  next_.tv_sec += static_cast<time_t>(step / 1000000000 + next_.tv_nsec / 1000000000);
  next_.tv_nsec %= 1000000000;
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  // Far behind (a debugger, a loaded box): restart the schedule instead of bursting to catch up.
  if (now.tv_sec > next_.tv_sec + 1) next_ = now;
  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next_, nullptr);
}

void AudioStream::Worker::stall() {
  const int64_t us = s_.inject_stall_us_.exchange(0, std::memory_order_acq_rel);
  if (us <= 0) return;
  const timespec ts = to_timespec(std::chrono::microseconds(us));
  clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, nullptr);
}

int AudioStream::Worker::recover(snd_pcm_t* pcm, int err, StreamDirection dir) {
  if (err == -EPIPE) bump(c_.xruns);
  if (err == -ESTRPIPE) bump(c_.suspends);
  const int r = alsa().pcm_recover(pcm, err, 1);
  if (r < 0) return r;
  if (err == -EINTR) return 1;
  bump(c_.recoveries);
  s_.push_event({err == -EPIPE ? StreamEventKind::xrun : StreamEventKind::suspended, dir, err, 0, 0});
  if (pcm == playback_.get()) {
    const int p = prefill();
    if (p < 0) return p;
  }
  return 1;
}

int AudioStream::Worker::read_period() {
  size_t got = 0;
  while (got < period_) {
    snd_pcm_sframes_t r = s_.inject_capture_.exchange(0, std::memory_order_acq_rel);
    if (r == 0) r = alsa().pcm_readi(capture_.get(), interleaved_.data() + got * channels_, period_ - got);
    if (r < 0) {
      const int err = static_cast<int>(r);
      if (!recoverable(err)) return err;
      const int rec = recover(capture_.get(), err, StreamDirection::capture);
      return rec < 0 ? rec : 1;
    }
    if (r == 0) {
      // Only clockless file devices return 0 frames at their end; the rest of the period is silence.
      std::fill(interleaved_.begin() + static_cast<std::ptrdiff_t>(got * channels_), interleaved_.end(),
                int16_t{0});
      break;
    }
    got += static_cast<size_t>(r);
  }
  return 0;
}

int AudioStream::Worker::write_period(std::span<const int16_t> interleaved, size_t real) {
  size_t done = 0;
  while (done < period_) {
    snd_pcm_sframes_t r = s_.inject_playback_.exchange(0, std::memory_order_acq_rel);
    if (r == 0) r = alsa().pcm_writei(playback_.get(), interleaved.data() + done * channels_, period_ - done);
    if (r < 0) {
      const int err = static_cast<int>(r);
      if (!recoverable(err)) return err;
      const int rec = recover(playback_.get(), err, StreamDirection::playback);
      if (rec < 0) return rec;
      continue;  // the cushion is back; write the rest of this period after it
    }
    done += static_cast<size_t>(r);
  }
  real_per_period_[(tail_pos_++) % kTailPeriods] = static_cast<uint32_t>(real);
  return 0;
}

int AudioStream::Worker::prefill() {
  // A silence cushion of all but one period: the line never plays dead air while the thread is scheduled.
  for (int i = 0; i < s_.opt_.buffer_periods - 1; ++i) {
    size_t done = 0;
    while (done < period_) {
      const snd_pcm_sframes_t r =
          alsa().pcm_writei(playback_.get(), zeros_.data() + done * channels_, period_ - done);
      if (r < 0) return static_cast<int>(r);
      done += static_cast<size_t>(r);
    }
    history_.append(std::span<const int16_t>(zeros_.data(), period_));
    real_per_period_[(tail_pos_++) % kTailPeriods] = 0;
  }
  return 0;
}

uint64_t AudioStream::Worker::unplayed_real(int64_t delay) const {
  // Queued samples sit at the start of their period, silence fill after them.
  uint64_t unplayed = 0;
  uint64_t frames = static_cast<uint64_t>(std::max<int64_t>(delay, 0));
  for (uint64_t k = 0; k < kTailPeriods && k < tail_pos_ && frames > 0; ++k) {
    const uint64_t real = real_per_period_[(tail_pos_ - 1 - k) % kTailPeriods];
    const uint64_t tail = std::min<uint64_t>(frames, period_);  // unheard frames at this period's end
    const uint64_t heard = period_ - tail;
    unplayed += real > heard ? real - heard : 0;
    frames -= tail;
  }
  return unplayed;
}

void AudioStream::Worker::handle_stop_playback() {
  const uint32_t req = s_.stop_playback_requests_.load(std::memory_order_acquire);
  if (req == s_.stop_playback_done_.load(std::memory_order_relaxed)) return;
  uint64_t dropped = s_.playback_.discard();
  const uint64_t in_buffer = unplayed_real(delay(playback_.get()));
  alsa().pcm_drop(playback_.get());
  alsa().pcm_prepare(playback_.get());
  for (auto& r : real_per_period_) r = 0;
  const int err = prefill();
  (void)err;  // a failing device shows up on the next write, where it is handled
  const uint64_t played = ring_written_ - std::min(ring_written_, in_buffer);
  dropped += in_buffer;
  ring_written_ = 0;
  s_.stop_playback_done_.store(req, std::memory_order_release);
  s_.push_event({StreamEventKind::playback_stopped, StreamDirection::playback, 0, played, dropped});
}

int AudioStream::Worker::stream_period() {
  pace();
  handle_stop_playback();

  if (int r = read_period(); r != 0) return r < 0 ? r : 0;
  const int64_t dp = delay(playback_.get());
  const int64_t dc = delay(capture_.get());
  const std::span<int16_t> cap(unit_.data(), period_);
  const std::span<int16_t> ref(unit_.data() + period_, period_);
  if (channels_ == 1) {
    std::copy(interleaved_.begin(), interleaved_.end(), cap.begin());
  } else {
    const size_t ch = static_cast<size_t>(s_.opt_.channel);
    for (size_t i = 0; i < period_; ++i) cap[i] = interleaved_[i * channels_ + ch];
  }
  stall();
  history_.reference(dp, dc, ref);
  detail::deliver_period(processor_, s_.frames_, unit_, c_);

  const size_t real = s_.playback_.pop(mono_);
  if (real < period_) {
    std::fill(mono_.begin() + static_cast<std::ptrdiff_t>(real), mono_.end(), int16_t{0});
    bump(c_.fill_periods);
    bump(c_.fill_samples, period_ - real);
  }
  std::span<const int16_t> out = mono_;
  if (channels_ > 1) {
    std::fill(interleaved_.begin(), interleaved_.end(), int16_t{0});
    const size_t ch = static_cast<size_t>(s_.opt_.channel);
    for (size_t i = 0; i < period_; ++i) interleaved_[i * channels_ + ch] = mono_[i];
    out = interleaved_;
  }
  if (int r = write_period(out, real); r < 0) return r;
  history_.append(mono_);
  ring_written_ += real;
  bump(c_.played_samples, real);

  // Drained: the ring is empty and none of the queued audio is still waiting in the ALSA buffer.
  if (ring_written_ > 0 && s_.playback_.readable() == 0 &&
      unplayed_real(dp + static_cast<int64_t>(period_)) == 0) {
    s_.push_event({StreamEventKind::playback_drained, StreamDirection::playback, 0, ring_written_, 0});
    ring_written_ = 0;
  }
  s_.wake_.signal();
  return 0;
}

// ---- loop side -----------------------------------------------------------------------------------------

Result<std::unique_ptr<AudioStream>> AudioStream::create(AudioStreamOptions o) {
  if (const Status& alsa_ok = loaded_alsa().status; !alsa_ok) return alsa_ok.error();
  if (o.rate != 8000 && o.rate != 16000) return make_error("audio stream: rate must be 8000 or 16000");
  if (o.period_ms < 10 || o.period_ms > 20) return make_error("audio stream: period_ms must be 10..20");
  if (o.buffer_periods < 2 || o.buffer_periods > 3)
    return make_error("audio stream: buffer_periods must be 2..3");
  if (o.channels < 1 || o.channels > 64) return make_error("audio stream: channels must be 1..64");
  if (o.channel < 0 || o.channel >= o.channels) return make_error("audio stream: channel out of range");
  if (o.rt_priority < 0 || o.rt_priority > 99) return make_error("audio stream: rt_priority must be 0..99");
  if (o.capture_device.empty() || o.playback_device.empty())
    return make_error("audio stream: device names must not be empty");
  if (o.capture_ring_ms < 2 * o.period_ms || o.playback_ring_ms < 2 * o.period_ms)
    return make_error("audio stream: rings must hold at least two periods");
  if (o.event_ring < 4) return make_error("audio stream: event_ring must be >= 4");
  if (o.reopen_backoff_min.count() <= 0 || o.reopen_backoff_max < o.reopen_backoff_min)
    return make_error("audio stream: reopen backoff must be > 0 and min <= max");
  if (o.pace.count() < 0) return make_error("audio stream: pace must be >= 0");
  if (!o.alsa_config.empty()) {
    // A snippet that cannot parse is a caller bug: say so now rather than as an endless reopen loop.
    auto conf = load_config(o.alsa_config);
    if (!conf) return make_error("audio stream: " + conf.error().message, conf.error().code);
  }
  auto wake = EventFd::create();
  if (!wake) return wake.error();
  auto stop = EventFd::create();
  if (!stop) return stop.error();
  return std::unique_ptr<AudioStream>(
      new AudioStream(std::move(o), std::move(wake.value()), std::move(stop.value())));
}

namespace {
size_t ms_samples(int rate, int ms) {
  return static_cast<size_t>(rate) / 1000 * static_cast<size_t>(ms);
}
}  // namespace

AudioStream::AudioStream(AudioStreamOptions options, EventFd wake, EventFd stop)
    : opt_(std::move(options)),
      period_(ms_samples(opt_.rate, opt_.period_ms)),
      wake_(std::move(wake)),
      stop_(std::move(stop)),
      frames_(2 * ms_samples(opt_.rate, opt_.capture_ring_ms)),
      playback_(ms_samples(opt_.rate, opt_.playback_ring_ms)),
      events_(opt_.event_ring),
      counters_(std::make_unique<Counters>()) {}

AudioStream::~AudioStream() {
  stop();
}

Status AudioStream::start() {
  if (thread_.joinable()) return make_error("audio stream: already started", -EALREADY);
  stop_requested_.store(false);
  stop_.drain();
  // The worker is built here, on the loop, so the thread starts with every buffer already allocated.
  auto worker = std::make_shared<Worker>(*this);
  try {
    thread_ = std::thread([worker] { worker->run(); });
  } catch (const std::system_error& e) {
    return make_error(std::string("audio stream: thread: ") + e.what(), -e.code().value());
  }
  return {};
}

void AudioStream::stop() {
  if (!thread_.joinable()) return;
  stop_requested_.store(true, std::memory_order_release);
  stop_.signal();
  thread_.join();
  counters_->sched.store(static_cast<int>(SchedPolicy::none));
}

Status AudioStream::set_processor(PeriodProcessor* processor) {
  if (thread_.joinable()) return make_error("audio stream: set_processor while running", -EBUSY);
  processor_ = processor;
  return {};
}

void AudioStream::push_event(const StreamEvent& event) {
  if (!events_.push_one(event)) bump(counters_->events_dropped);
  wake_.signal();
}

size_t AudioStream::drain_events(std::span<StreamEvent> out) {
  wake_.drain();
  return events_.pop(out);
}

bool AudioStream::read_frame(std::span<int16_t> capture, std::span<int16_t> reference) {
  if (capture.size() != period_ || reference.size() != period_ || frames_.readable() < 2 * period_)
    return false;
  // The producer publishes whole entries, so the two pops read exactly this entry's halves.
  frames_.pop(capture);
  frames_.pop(reference);
  return true;
}

size_t AudioStream::queue_playback(std::span<const int16_t> samples) {
  if (stop_playback_pending()) return 0;
  return playback_.push(samples);
}

void AudioStream::stop_playback() {
  stop_playback_requests_.fetch_add(1, std::memory_order_acq_rel);
}

bool AudioStream::stop_playback_pending() const {
  return stop_playback_requests_.load(std::memory_order_acquire) !=
         stop_playback_done_.load(std::memory_order_acquire);
}

void AudioStream::inject_error(StreamDirection direction, int negative_errno) {
  if (direction != StreamDirection::playback)
    inject_capture_.store(negative_errno, std::memory_order_release);
  if (direction != StreamDirection::capture)
    inject_playback_.store(negative_errno, std::memory_order_release);
}

AudioStreamStats AudioStream::stats() const {
  const Counters& c = *counters_;
  auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  AudioStreamStats s = detail::common_stats(c);
  s.plug_fallback = c.plug_fallback.load();
  s.hw_period_frames = get(c.hw_period);
  s.hw_buffer_frames = get(c.hw_buffer);
  return s;
}

}  // namespace osvi::hal
