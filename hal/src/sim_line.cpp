// SimLine: the scripted remote party, stepped by deadlines on the owner's loop, with its audio on FIFOs that
// alsa-lib's file plugin reads and writes.
#include "osvi/hal/sim_line.hpp"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "osvi/audio/dtmf.hpp"
#include "osvi/audio/resampler.hpp"

namespace osvi::hal {

namespace {

constexpr int64_t kTickUs = 20'000;
// Caller audio kept queued ahead of the engine's reads: eight periods of slack for a busy loop, far below a
// pipe buffer (64 KiB = 2 s at 16 kHz).
constexpr int64_t kAheadMs = 160;
// Writes of at most PIPE_BUF bytes are atomic: never a torn sample, and a write that does not fit writes
// nothing (EAGAIN).
constexpr size_t kChunk = PIPE_BUF / sizeof(int16_t);
// How long the agent FIFO stays open after a hang-up when alsa-lib never closes its end.
constexpr int64_t kAgentLingerUs = 5'000'000;

std::string errno_text(int err) {
  return std::strerror(err);
}

std::string alsa_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

uint32_t le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}
uint16_t le16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | p[1] << 8);
}

Result<std::vector<uint8_t>> read_small_file(const std::string& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return make_error(path + ": " + errno_text(errno), -errno);
  std::vector<uint8_t> data;
  std::array<uint8_t, 65536> buf{};
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return make_error(path + ": " + errno_text(errno), -errno);
    if (n == 0) break;
    data.insert(data.end(), buf.begin(), buf.begin() + n);
    if (data.size() > max_bytes)
      return make_error(path + ": larger than " + std::to_string(max_bytes) + " bytes");
  }
  return data;
}

// A 16-bit PCM WAV's first channel, at `rate`.
Result<std::vector<int16_t>> load_wav(const std::string& path, int rate) {
  auto file = read_small_file(path, 64u << 20);
  if (!file) return file.error();
  const std::vector<uint8_t>& d = file.value();
  if (d.size() < 12 || std::memcmp(d.data(), "RIFF", 4) != 0 || std::memcmp(d.data() + 8, "WAVE", 4) != 0)
    return make_error(path + ": not a WAV file");
  unsigned channels = 0, bits = 0, wav_rate = 0, format = 0;
  const uint8_t* data = nullptr;
  size_t data_len = 0;
  for (size_t pos = 12; pos + 8 <= d.size();) {
    const uint32_t len = le32(d.data() + pos + 4);
    const size_t body = pos + 8;
    const size_t avail = std::min<size_t>(len, d.size() - body);
    if (std::memcmp(d.data() + pos, "fmt ", 4) == 0 && avail >= 16) {
      format = le16(d.data() + body);
      channels = le16(d.data() + body + 2);
      wav_rate = le32(d.data() + body + 4);
      bits = le16(d.data() + body + 14);
    } else if (std::memcmp(d.data() + pos, "data", 4) == 0) {
      data = d.data() + body;
      data_len = avail;
    }
    pos = body + len + (len & 1);
  }
  if ((format != 1 && format != 0xFFFE) || bits != 16 || channels == 0)
    return make_error(path + ": not 16-bit PCM WAV");
  if (!data) return make_error(path + ": no data chunk");
  const int in_rate = static_cast<int>(wav_rate);
  if (in_rate != rate && !audio::Resampler::supported_rate(in_rate))
    return make_error(path + ": " + std::to_string(wav_rate) +
                      " Hz cannot be resampled (8000, 16000, 24000, 48000)");
  const size_t frames = data_len / (2u * channels);
  std::vector<int16_t> mono(frames);
  for (size_t i = 0; i < frames; ++i) mono[i] = static_cast<int16_t>(le16(data + i * 2u * channels));
  if (in_rate == rate) return mono;

  constexpr size_t kIn = 960;
  auto rs = audio::Resampler::create(in_rate, rate, kIn);
  if (!rs) return rs.error();
  const size_t want = static_cast<size_t>(static_cast<uint64_t>(frames) * static_cast<uint64_t>(rate) /
                                          static_cast<uint64_t>(in_rate));
  const size_t skip = static_cast<size_t>(rs->latency_out());
  // The filter delays by latency_out(): feed zeros after the file to flush its tail, drop the delay's head.
  mono.resize(frames + kIn + static_cast<size_t>(in_rate / rate + 1) * skip, 0);
  std::vector<int16_t> out;
  std::vector<int16_t> chunk(rs->max_output());
  for (size_t i = 0; i < mono.size(); i += kIn) {
    const size_t n = std::min(kIn, mono.size() - i);
    auto got = rs->process(std::span<const int16_t>(mono.data() + i, n), chunk);
    if (!got) return got.error();
    out.insert(out.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(*got));
  }
  if (out.size() < skip + want) out.resize(skip + want, 0);
  return std::vector<int16_t>(out.begin() + static_cast<std::ptrdiff_t>(skip),
                              out.begin() + static_cast<std::ptrdiff_t>(skip + want));
}

}  // namespace

std::string_view to_string(SimPartyEvent::Kind k) {
  switch (k) {
    case SimPartyEvent::Kind::step_start:
      return "step_start";
    case SimPartyEvent::Kind::step_end:
      return "step_end";
    case SimPartyEvent::Kind::step_skipped:
      return "step_skipped";
    case SimPartyEvent::Kind::dtmf:
      return "dtmf";
    case SimPartyEvent::Kind::agent_start:
      return "agent_start";
    case SimPartyEvent::Kind::agent_stop:
      return "agent_stop";
    case SimPartyEvent::Kind::hangup:
      return "hangup";
  }
  return "?";
}

SimLine::SimLine(std::string id, SimScript script, const Clock& clock)
    : id_(std::move(id)), script_(std::move(script)), clock_(clock) {}

SimLine::~SimLine() {
  close_audio();
  agent_in_.reset();
  if (!dir_.empty()) {
    // Also after a call whose audio failed half-way through open_audio().
    ::unlink((dir_ + "/caller.fifo").c_str());
    ::unlink((dir_ + "/agent.fifo").c_str());
    ::rmdir(dir_.c_str());
  }
}

LineIdentity SimLine::identity() const {
  LineIdentity i;
  i.manufacturer = "osvi";
  i.model = "simulated line";
  i.registration = "home";
  return i;
}

AudioEndpoint SimLine::audio() const {
  AudioEndpoint a;
  a.sample_rate = script_.rate;
  a.stalled = stalled_;
  if (script_.audio) {
    a.kind = AudioEndpoint::Kind::alsa;
    a.device = device_name();
    a.alsa_config = alsa_config_;
    a.clockless = true;
    a.ready = state_ == LineState::active && audio_on_ && !stalled_;
    a.error = audio_error_;
  } else {
    a.kind = AudioEndpoint::Kind::simulated;
    a.device = "sim:" + id_;
    a.ready = state_ == LineState::active && !stalled_;
  }
  if (stalled_) a.error = "audio write side stalled (reported by the audio engine)";
  return a;
}

Status SimLine::start() {
  if (script_.rate != 8000 && script_.rate != 16000)
    return make_error("sim line " + id_ + ": rate must be 8000 or 16000, got " +
                      std::to_string(script_.rate));
  if (!script_.party_log.empty() && !party_log_.valid()) {
    party_log_.reset(::open(script_.party_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (!party_log_.valid())
      return make_error("sim line " + id_ + ": party_log " + script_.party_log + ": " + errno_text(errno),
                        -errno);
  }
  frame_.assign(script_.rate / 50, 0);
  started_ = true;
  state_ = LineState::idle;
  reason_.clear();
  if (script_.incoming_after_ms > 0) incoming_at_ = now() + script_.incoming_after_ms * 1000;
  posted_.push_back(LineEvent{LineEvent::Type::up, {}, 0, {}});
  return {};
}

Status SimLine::ring(std::string caller) {
  if (state_ != LineState::idle)
    return make_error("line " + id_ + " is " + std::string(to_string(state_)), -EBUSY);
  state_ = LineState::ringing;
  outbound_ = false;
  number_ = std::move(caller);
  rings_ = 1;
  deadline_ = now() + script_.ring_interval_ms * 1000;
  posted_.push_back(LineEvent{LineEvent::Type::incoming, number_, 0, {}});
  return {};
}

Status SimLine::dial(std::string_view e164) {
  if (state_ != LineState::idle)
    return make_error("line " + id_ + " is " + std::string(to_string(state_)), -EBUSY);
  if (!is_e164(e164)) return make_error("not an E.164 number: \"" + std::string(e164) + "\"");
  state_ = LineState::dialing;
  outbound_ = true;
  number_ = std::string(e164);
  rings_ = 0;
  // Call setup takes one ring interval before the remote side starts ringing (or is found busy).
  deadline_ = now() + script_.ring_interval_ms * 1000;
  return {};
}

Status SimLine::answer() {
  if (state_ != LineState::ringing || outbound_)
    return make_error("line " + id_ + ": no incoming call to answer");
  connect();
  return {};
}

Status SimLine::hangup() {
  if (state_ == LineState::idle || state_ == LineState::down)
    return make_error("line " + id_ + ": no call to hang up");
  to_idle(LineEvent{LineEvent::Type::hung_up, number_, 0, {}});
  return {};
}

Status SimLine::send_dtmf(std::string_view digits) {
  if (state_ != LineState::active) return make_error("line " + id_ + ": no active call");
  if (!is_dtmf(digits)) return make_error("not DTMF digits: \"" + std::string(digits) + "\"");
  sent_dtmf_ += digits;
  return {};
}

Status SimLine::transfer_blind(std::string_view e164) {
  if (state_ != LineState::active && state_ != LineState::ringing)
    return make_error("line " + id_ + ": no call");
  if (!is_e164(e164)) return make_error("not an E.164 number: \"" + std::string(e164) + "\"");
  to_idle(LineEvent{LineEvent::Type::transferred, std::string(e164), 0, {}});
  return {};
}

Status SimLine::transfer_attended(std::string_view e164) {
  if (state_ != LineState::active) return make_error("line " + id_ + ": no active call");
  return transfer_blind(e164);
}

void SimLine::report_audio_stalled(std::string reason) {
  stalled_ = true;
  posted_.push_back(LineEvent{LineEvent::Type::audio, {}, 0, std::move(reason)});
}

void SimLine::connect() {
  state_ = LineState::active;
  stalled_ = false;
  step_ = 0;
  dtmf_left_.clear();
  ++call_;
  party_events_.clear();
  written_ = read_ = 0;
  staged_ = 0;
  out_.clear();
  out_pos_ = speech_end_ = out_len_ = 0;
  digit_marks_.clear();
  step_running_ = waiting_agent_ = false;
  wait_until_ = -1;
  current_step_ = -1;
  frame_fill_ = 0;
  odd_byte_ = false;
  agent_talking_ = agent_heard_ = false;
  quiet_samples_ = last_loud_end_ = 0;
  if (reason_.rfind("sim step", 0) == 0) reason_.clear();  // a bad step is reported again if it still is
  if (script_.audio) {
    // Without FIFOs the call still runs, control side only; audio() says why.
    Status st = open_audio();
    audio_on_ = st.ok();
    audio_error_ = st ? std::string() : "simulated audio unavailable: " + st.error().message;
  }
  posted_.push_back(LineEvent{LineEvent::Type::answered, number_, 0, {}});
  posted_.push_back(LineEvent{LineEvent::Type::audio, {}, 0, {}});
  deadline_ = now();
}

void SimLine::to_idle(LineEvent e) {
  state_ = LineState::idle;
  deadline_ = -1;
  dtmf_left_.clear();
  close_audio();
  posted_.push_back(std::move(e));
}

// ---- audio ---------------------------------------------------------------------------------------------

Status SimLine::open_audio() {
  if (dir_.empty()) {
    std::string base = script_.audio_dir;
    if (base.empty()) {
      // systemd's RuntimeDirectory= (may list several, colon-separated), then the session's, then /tmp.
      if (const char* rd = std::getenv("RUNTIME_DIRECTORY"); rd && *rd) {
        base = rd;
        base = base.substr(0, base.find(':'));
      } else if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg) {
        base = xdg;
      } else {
        base = "/tmp";
      }
    }
    std::string tmpl = base + "/osvi-sim-" + id_ + "-XXXXXX";
    if (!::mkdtemp(tmpl.data())) return make_error(tmpl + ": " + errno_text(errno), -errno);
    dir_ = tmpl;
    const std::string caller = dir_ + "/caller.fifo";
    const std::string agent = dir_ + "/agent.fifo";
    // asym: a single file PCM would also copy what capture reads into its output file. The local tree has no
    // global "null" PCM, hence the inline slaves.
    alsa_config_ = "pcm." + device_name() + " {\n  type asym\n" +
                   "  playback.pcm { type file slave.pcm { type null } file " + alsa_quote(agent) +
                   " format raw }\n" +
                   "  capture.pcm { type file slave.pcm { type null } file \"/dev/null\" infile " +
                   alsa_quote(caller) + " format raw }\n}\n";
  }
  const std::string caller = dir_ + "/caller.fifo";
  const std::string agent = dir_ + "/agent.fifo";
  ::unlink(caller.c_str());
  ::unlink(agent.c_str());
  if (::mkfifo(caller.c_str(), 0600) < 0 || ::mkfifo(agent.c_str(), 0600) < 0)
    return make_error(dir_ + ": mkfifo: " + errno_text(errno), -errno);
  // O_RDWR: alsa-lib opens `infile` blocking, which would wait for a writer; with ours always there it never
  // does, and its reads only wait for data we keep queued ahead.
  caller_out_.reset(::open(caller.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!caller_out_.valid()) return make_error(caller + ": " + errno_text(errno), -errno);
  // A reader must exist before alsa-lib opens `file` for writing (O_WRONLY on a FIFO waits for one).
  agent_in_.reset(::open(agent.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!agent_in_.valid()) {
    caller_out_.reset();
    return make_error(agent + ": " + errno_text(errno), -errno);
  }
  agent_writer_seen_ = false;
  agent_close_at_ = -1;
  return {};
}

void SimLine::close_audio() {
  if (!audio_on_) return;
  audio_on_ = false;
  step_running_ = waiting_agent_ = false;
  // What the caller said up to here still reaches the engine, then its capture reads end (EOF, silence)
  // instead of blocking; a reopen finds no infile.
  (void)flush_caller(true);
  caller_out_.reset();
  ::unlink((dir_ + "/caller.fifo").c_str());
  ::unlink((dir_ + "/agent.fifo").c_str());
  agent_close_at_ = now() + kAgentLingerUs;
}

void SimLine::log_event(SimPartyEvent::Kind kind, uint64_t sample, char digit, std::string detail) {
  SimPartyEvent e{kind, call_, current_step_, sample, digit, std::move(detail)};
  if (party_log_.valid()) {
    std::unique_ptr<cJSON, void (*)(cJSON*)> doc(cJSON_CreateObject(), cJSON_Delete);
    cJSON_AddNumberToObject(doc.get(), "call", static_cast<double>(e.call));
    cJSON_AddStringToObject(doc.get(), "event", std::string(to_string(kind)).c_str());
    cJSON_AddNumberToObject(doc.get(), "step", static_cast<double>(e.step));
    cJSON_AddNumberToObject(doc.get(), "sample", static_cast<double>(sample));
    cJSON_AddNumberToObject(doc.get(), "rate", static_cast<double>(script_.rate));
    if (digit) cJSON_AddStringToObject(doc.get(), "digit", std::string(1, digit).c_str());
    if (!e.detail.empty()) cJSON_AddStringToObject(doc.get(), "detail", e.detail.c_str());
    std::unique_ptr<char, void (*)(void*)> text(cJSON_PrintUnformatted(doc.get()), cJSON_free);
    if (text) {
      const std::string line = std::string(text.get()) + "\n";
      // One write per line with O_APPEND: lines from several lines/processes never interleave.
      (void)!::write(party_log_.get(), line.data(), line.size());
    }
  }
  party_events_.push_back(std::move(e));
}

short SimLine::poll_events() const {
  return agent_in_.valid() ? POLLIN : 0;
}

void SimLine::handle_io(short revents) {
  (void)revents;
  pump_agent();
}

void SimLine::pump_agent() {
  std::array<uint8_t, 4096> buf{};
  while (agent_in_.valid()) {
    const ssize_t n = ::read(agent_in_.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // EAGAIN: all read
    }
    if (n == 0) {
      // No writer. Before alsa-lib ever opened its end this is just "nothing yet"; after, it closed it
      // (the stream stopped) and poll would report POLLHUP forever: reopen, or finish after the call.
      if (agent_writer_seen_) {
        if (audio_on_) {
          agent_in_.reset(::open((dir_ + "/agent.fifo").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
          agent_writer_seen_ = false;
        } else {
          agent_in_.reset();
          agent_close_at_ = -1;
        }
      }
      break;
    }
    agent_writer_seen_ = true;
    if (!audio_on_) continue;  // after the call: drained so alsa-lib's writes do not block, not listened to
    size_t i = 0;
    const size_t len = static_cast<size_t>(n);
    if (odd_byte_ && len > 0) {
      const auto s = static_cast<int16_t>(static_cast<uint16_t>(odd_low_ | buf[0] << 8));
      odd_byte_ = false;
      i = 1;
      frame_[frame_fill_++] = s;
      ++read_;
      if (frame_fill_ == frame_.size()) {
        agent_frame(frame_);
        frame_fill_ = 0;
      }
    }
    for (; i + 1 < len; i += 2) {
      frame_[frame_fill_++] = static_cast<int16_t>(static_cast<uint16_t>(buf[i] | buf[i + 1] << 8));
      ++read_;
      if (frame_fill_ == frame_.size()) {
        agent_frame(frame_);
        frame_fill_ = 0;
      }
    }
    if (i < len) {
      odd_byte_ = true;
      odd_low_ = buf[i];
    }
  }
}

void SimLine::agent_frame(std::span<const int16_t> frame) {
  double sum = 0.0;
  for (int16_t v : frame) sum += static_cast<double>(v) * v;
  const double mean = sum / static_cast<double>(frame.size());
  // 0 dBFS = a full-scale sine (mean square 32767^2 / 2), as in audio/dtmf.hpp.
  const double dbfs = 10.0 * std::log10(std::max(mean, 1e-3) / (32767.0 * 32767.0 / 2.0));
  const uint64_t end = read_;
  const uint64_t start = end - frame.size();
  if (dbfs > script_.agent_threshold_dbfs) {
    if (!agent_talking_) {
      agent_talking_ = true;
      log_event(SimPartyEvent::Kind::agent_start, start);
    }
    agent_heard_ = true;
    quiet_samples_ = 0;
    last_loud_end_ = end;
  } else if (agent_talking_) {
    quiet_samples_ += frame.size();
    if (static_cast<int64_t>(quiet_samples_) >= script_.agent_quiet_ms * script_.rate / 1000) {
      agent_talking_ = false;
      log_event(SimPartyEvent::Kind::agent_stop, last_loud_end_);
    }
  }
}

void SimLine::party_tick() {
  pump_agent();
  if (!step_running_) begin_steps();
  if (state_ != LineState::active || !audio_on_) return;
  pump_caller();
  if (state_ == LineState::active) deadline_ = now() + kTickUs;
}

void SimLine::pump_caller() {
  static constexpr std::array<int16_t, kChunk> kZeros{};
  const uint64_t target = static_cast<uint64_t>(script_.rate) * kAheadMs / 1000;
  while (state_ == LineState::active && caller_out_.valid()) {
    int queued_bytes = 0;
    if (::ioctl(caller_out_.get(), FIONREAD, &queued_bytes) < 0) break;
    const uint64_t queued = static_cast<uint64_t>(queued_bytes) / sizeof(int16_t) + staged_;
    const size_t cap = stage_cap();
    if (queued >= target || staged_ >= cap) break;
    size_t n = static_cast<size_t>(std::min<uint64_t>(target - queued, cap - staged_));
    const int16_t* src = kZeros.data();
    if (step_running_) {
      // The step's sound, then its silent padding, which is never materialised (a 30 s silence step would
      // otherwise hold ~1 MB).
      n = std::min(n, out_len_ - out_pos_);
      if (out_pos_ < out_.size()) {
        n = std::min(n, out_.size() - out_pos_);
        src = out_.data() + out_pos_;
      }
    }
    std::copy(src, src + n, stage_.begin() + static_cast<std::ptrdiff_t>(staged_));
    staged_ += n;
    if (step_running_) {
      while (!digit_marks_.empty() && digit_marks_.front().first < out_pos_ + n) {
        log_event(SimPartyEvent::Kind::dtmf, written_ + (digit_marks_.front().first - out_pos_),
                  digit_marks_.front().second);
        digit_marks_.erase(digit_marks_.begin());
      }
      if (speech_end_ > out_pos_ && speech_end_ <= out_pos_ + n)
        log_event(SimPartyEvent::Kind::step_end, written_ + (speech_end_ - out_pos_));
      out_pos_ += n;
    }
    written_ += n;
    if (step_running_ && out_pos_ >= out_len_) {
      end_step();
      begin_steps();
    }
    if (!flush_caller(false)) break;  // EAGAIN: the pipe is full after all; the next tick tries again
  }
}

size_t SimLine::stage_cap() const {
  // Whole granules: padding what is staged up to a granule never runs past the buffer.
  const size_t granule = script_.rate / 50;
  return stage_.size() / granule * granule;
}

bool SimLine::flush_caller(bool all) {
  // Whole 20 ms granules only, so the FIFO never holds part of a capture period (10 or 20 ms): alsa-lib's
  // `file` plugin (1.2.8) reports a whole period read even when the FIFO had less, leaving the rest of the
  // buffer as it was (stale audio) and putting the engine's capture clock ahead of this party's for the rest
  // of the call. An empty FIFO only makes the capture read wait (the engine's pacing catches up after).
  const size_t granule = script_.rate / 50;
  if (all && staged_ % granule != 0) {
    // The end of the caller's audio (a hang-up): silence up to a granule, on the same clock.
    const size_t pad = granule - staged_ % granule;
    std::fill_n(stage_.begin() + static_cast<std::ptrdiff_t>(staged_), pad, int16_t{0});
    staged_ += pad;
    written_ += pad;
  }
  const size_t whole = staged_ / granule * granule;
  if (whole == 0 || !caller_out_.valid()) return true;
  // At most kChunk samples = PIPE_BUF bytes: written whole or not at all.
  if (::write(caller_out_.get(), stage_.data(), whole * sizeof(int16_t)) < 0) return false;
  std::copy(stage_.begin() + static_cast<std::ptrdiff_t>(whole),
            stage_.begin() + static_cast<std::ptrdiff_t>(staged_), stage_.begin());
  staged_ -= whole;
  return true;
}

void SimLine::end_step() {
  step_running_ = false;
  out_.clear();
  out_pos_ = speech_end_ = out_len_ = 0;
  digit_marks_.clear();
  // "Talked since the previous step ended" includes an agent still talking at this moment.
  agent_heard_ = agent_talking_;
}

void SimLine::begin_steps() {
  while (state_ == LineState::active && audio_on_ && !step_running_ && step_ < script_.steps.size()) {
    const SimStep& s = script_.steps[step_];
    current_step_ = static_cast<int>(step_);
    if (s.after_agent) {
      if (!waiting_agent_) {
        waiting_agent_ = true;
        wait_until_ = now() + s.timeout_ms * 1000;
      }
      const bool agent_done = agent_heard_ && !agent_talking_;
      if (!agent_done && now() < wait_until_) return;
      waiting_agent_ = false;
    }
    // Everything said before the hang-up reaches the FIFO first; a full pipe delays the hang-up a tick.
    if (s.kind == SimStep::Kind::hangup && !flush_caller(true)) return;
    ++step_;
    if (start_step(s)) return;
  }
}

bool SimLine::start_step(const SimStep& s) {
  const int rate = static_cast<int>(script_.rate);
  const auto ms_samples = [rate](int64_t ms) {
    return static_cast<size_t>(std::max<int64_t>(ms, 0) * rate / 1000);
  };
  std::vector<int16_t> audio;
  std::vector<std::pair<size_t, char>> marks;
  bool voiced = false;  // the audio is speech: its end is the step_end, padding follows
  switch (s.kind) {
    case SimStep::Kind::hangup:
      log_event(SimPartyEvent::Kind::step_start, written_);
      log_event(SimPartyEvent::Kind::hangup, written_);
      to_idle(LineEvent{LineEvent::Type::remote_hangup, number_, 0, "the simulated party hung up"});
      return true;
    case SimStep::Kind::say:
      if (voice_) {
        auto r = voice_(s.text, rate);
        if (!r) {
          log_event(SimPartyEvent::Kind::step_skipped, written_, 0, "voice: " + r.error().message);
          return false;
        }
        audio = std::move(r.value());
        voiced = true;
      }
      break;
    case SimStep::Kind::play: {
      auto r = load_wav(s.text, rate);
      if (!r) {
        log_event(SimPartyEvent::Kind::step_skipped, written_, 0, r.error().message);
        reason_ = "sim step " + std::to_string(current_step_) + " skipped: " + r.error().message;
        return false;
      }
      audio = std::move(r.value());
      voiced = true;
      break;
    }
    case SimStep::Kind::dtmf:
      for (char d : s.text) {
        auto r = audio::dtmf_render(rate, std::string_view(&d, 1));
        if (!r) {
          log_event(SimPartyEvent::Kind::step_skipped, written_, 0, "dtmf: " + r.error().message);
          return false;
        }
        marks.emplace_back(audio.size(), d);
        audio.insert(audio.end(), r->begin(), r->end());
      }
      voiced = true;
      break;
    case SimStep::Kind::wait:
    case SimStep::Kind::silence:
      break;
  }
  speech_end_ = audio.size();
  size_t total = audio.size();
  if (s.kind != SimStep::Kind::dtmf && total < ms_samples(s.ms)) total = ms_samples(s.ms);
  if (!voiced) speech_end_ = total;
  log_event(SimPartyEvent::Kind::step_start, written_);
  if (speech_end_ == 0) log_event(SimPartyEvent::Kind::step_end, written_);
  if (total == 0) {
    end_step();
    return false;
  }
  out_ = std::move(audio);
  out_len_ = total;
  out_pos_ = 0;
  digit_marks_ = std::move(marks);
  step_running_ = true;
  return true;
}

void SimLine::run_steps() {
  deadline_ = -1;
  if (!dtmf_left_.empty()) {
    posted_.push_back(LineEvent{LineEvent::Type::dtmf, {}, dtmf_left_.front(), {}});
    dtmf_left_.erase(0, 1);
    deadline_ = now() + 100'000;
    return;
  }
  if (step_ >= script_.steps.size()) return;  // the remote party stays on until we hang up
  const SimStep& s = script_.steps[step_++];
  switch (s.kind) {
    case SimStep::Kind::hangup:
      return to_idle(LineEvent{LineEvent::Type::remote_hangup, number_, 0, "the simulated party hung up"});
    case SimStep::Kind::dtmf:
      dtmf_left_ = s.text;
      deadline_ = now();
      return;
    case SimStep::Kind::wait:
    case SimStep::Kind::say:
    case SimStep::Kind::play:
    case SimStep::Kind::silence:
      deadline_ = now() + s.ms * 1000;
      return;
  }
}

int64_t SimLine::next_deadline_us() const {
  if (!posted_.empty()) return now();
  int64_t d = -1;
  for (int64_t x : {deadline_, incoming_at_, agent_close_at_})
    if (x >= 0 && (d < 0 || x < d)) d = x;
  return d;
}

void SimLine::handle_timer() {
  const int64_t t = now();
  if (agent_close_at_ >= 0 && t >= agent_close_at_ && !audio_on_) {
    agent_close_at_ = -1;
    agent_in_.reset();
  }
  if (incoming_at_ >= 0 && t >= incoming_at_) {
    incoming_at_ = -1;
    (void)ring(script_.caller);  // busy with another call: this caller is simply lost
  }
  if (deadline_ >= 0 && t >= deadline_) {
    deadline_ = -1;
    const int64_t interval = script_.ring_interval_ms * 1000;
    switch (state_) {
      case LineState::dialing:
        if (script_.outcome == SimScript::Outcome::busy) {
          to_idle(LineEvent{LineEvent::Type::busy, number_, 0, "BUSY"});
        } else if (script_.outcome == SimScript::Outcome::fail) {
          to_idle(LineEvent{LineEvent::Type::failed, number_, 0, "simulated network failure"});
        } else {
          state_ = LineState::alerting;
          rings_ = 0;
          deadline_ = t;
        }
        break;
      case LineState::alerting:
        if (script_.outcome == SimScript::Outcome::answer && rings_ >= script_.rings) {
          connect();
        } else if (script_.outcome == SimScript::Outcome::no_answer && rings_ >= script_.rings) {
          to_idle(LineEvent{LineEvent::Type::no_answer, number_, 0, "NO ANSWER"});
        } else {
          ++rings_;
          deadline_ = t + interval;
        }
        break;
      case LineState::ringing:
        if (++rings_ > script_.max_rings) {
          to_idle(
              LineEvent{LineEvent::Type::remote_hangup, number_, 0, "the caller gave up before the answer"});
        } else {
          deadline_ = t + interval;
        }
        break;
      case LineState::active:
        if (audio_on_)
          party_tick();
        else
          run_steps();
        break;
      default:
        break;
    }
  }
  while (!posted_.empty()) {
    LineEvent e = std::move(posted_.front());
    posted_.pop_front();
    emit(e);
  }
}

}  // namespace osvi::hal
