// Speech: input checks, resampling and the fork per render here; libespeak-ng via osvi-speech.so, loaded on
// first use.
#include "osvi/speech/speech.hpp"

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <speex/speex_resampler.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <span>
#include <string>

#include "osvi/base/log.hpp"
#include "osvi/base/module_loader.hpp"
#include "osvi/hal/fd.hpp"
#include "osvi_speech.h"

#ifndef OSVI_SPEECH_MODULE_INSTALLED
#error "OSVI_SPEECH_MODULE_INSTALLED (the installed path of osvi-speech.so) comes from daemon/CMakeLists.txt"
#endif

namespace osvi::daemon {
namespace {

using modules::DlHandle;
using modules::kModuleMissing;
using modules::symbol;

struct Module {
  DlHandle handle;
  osvi_speech_init_fn init = nullptr;
  osvi_speech_set_voice_fn set_voice = nullptr;
  osvi_speech_synth_fn synth = nullptr;
};

Result<Module> find_module() {
  auto opened = modules::open("osvi-speech.so", "OSVI_SPEECH_MODULE", OSVI_SPEECH_MODULE_INSTALLED);
  if (!opened) return opened.error();
  DlHandle h = std::move(*opened);
  const std::string path = "osvi-speech.so";
  auto version = symbol<osvi_speech_abi_version_fn>(h.get(), "osvi_speech_abi_version");
  Module m;
  m.init = symbol<osvi_speech_init_fn>(h.get(), "osvi_speech_init");
  m.set_voice = symbol<osvi_speech_set_voice_fn>(h.get(), "osvi_speech_set_voice");
  m.synth = symbol<osvi_speech_synth_fn>(h.get(), "osvi_speech_synth");
  if (!version || !m.init || !m.set_voice || !m.synth) {
    return make_error(path + ": not an osvi-speech module (missing osvi_speech_* symbols)", kModuleMissing);
  }
  if (version() != OSVI_SPEECH_ABI_VERSION) {
    return make_error(path + ": ABI version " + std::to_string(version()) + ", osvid needs " +
                          std::to_string(OSVI_SPEECH_ABI_VERSION) + " (a stale install?)",
                      kModuleMissing);
  }
  m.handle = std::move(h);
  return m;
}

// espeak-ng is one global synthesiser; this is the only place that knows, and its mutex guards every call.
struct EspeakProcess {
  std::mutex mu;
  Module module;  // loaded on the first create(); a failed load is retried by the next one
  bool load_logged = false;
  int native_rate = 0;
  std::string data_path;
};

EspeakProcess& espeak_process() {
  static EspeakProcess p;
  return p;
}

// Called with p.mu held. A failure is logged once, so the journal says why speech is missing without
// repeating it per fallback message.
Result<void> load_module(EspeakProcess& p) {
  if (p.module.handle) return {};
  auto m = find_module();
  if (!m.ok()) {
    std::string error = "speech support is not installed: " + m.error().message;
    if (!p.load_logged) log::error(error);
    p.load_logged = true;
    return make_error(std::move(error), kModuleMissing);
  }
  p.module = std::move(*m);
  return {};
}

struct ResamplerDeleter {
  void operator()(SpeexResamplerState* st) const noexcept { speex_resampler_destroy(st); }
};

// A rendered utterance and its intermediate buffers (~100 kB a sentence each) get their own mappings: at
// least this many bytes, above osvid's fixed M_MMAP_THRESHOLD (daemon/main.cpp), so glibc serves them with
// mmap, only the pages written become resident, and freeing one unmaps it. In the heap they were freed
// between longer-lived allocations (the simulated caller renders while eight calls open their audio), and
// the holes stayed resident: ~100 kB per live call in calls_bench (bench/README.md "percall3").
constexpr size_t kOwnMappingBytes = 320 * 1024;

std::vector<int16_t> own_mapping_samples(size_t n) {
  std::vector<int16_t> v;
  v.reserve(std::max(n, kOwnMappingBytes / sizeof(int16_t)));
  v.resize(n);
  return v;
}

// audio::Resampler only takes the call-audio rates (8/16/24/48 kHz) and espeak speaks at 22050 Hz, so the
// whole utterance is converted here in one pass, with the filter delay removed at both ends: the input, then
// the filter's input latency in zeros (fed apart: the state does not depend on how the input is split).
Result<std::vector<int16_t>> resample(std::span<const int16_t> in, int in_rate, int out_rate) {
  if (in.empty()) return std::vector<int16_t>{};
  if (in_rate == out_rate) {
    std::vector<int16_t> same = own_mapping_samples(in.size());
    std::copy(in.begin(), in.end(), same.begin());
    return same;
  }
  int err = RESAMPLER_ERR_SUCCESS;
  std::unique_ptr<SpeexResamplerState, ResamplerDeleter> st(speex_resampler_init(
      1, static_cast<spx_uint32_t>(in_rate), static_cast<spx_uint32_t>(out_rate), 7, &err));
  if (!st || err != RESAMPLER_ERR_SUCCESS) {
    return make_error(std::string("speech: resampler: ") + speex_resampler_strerror(err), -ENOMEM);
  }
  speex_resampler_skip_zeros(st.get());
  const auto latency = static_cast<size_t>(speex_resampler_get_input_latency(st.get()));
  const std::vector<int16_t> zeros(latency, 0);
  const size_t padded = in.size() + latency;
  const auto want = static_cast<size_t>(static_cast<uint64_t>(in.size()) * static_cast<uint64_t>(out_rate) /
                                        static_cast<uint64_t>(in_rate));
  std::vector<int16_t> out = own_mapping_samples(
      static_cast<size_t>(static_cast<uint64_t>(padded) * static_cast<uint64_t>(out_rate) /
                          static_cast<uint64_t>(in_rate)) +
      16);
  size_t consumed = 0, produced = 0;
  while (consumed < padded && produced < out.size()) {
    const bool zeros_part = consumed >= in.size();
    const int16_t* src = zeros_part ? zeros.data() + (consumed - in.size()) : in.data() + consumed;
    auto in_len = static_cast<spx_uint32_t>(zeros_part ? padded - consumed : in.size() - consumed);
    auto out_len = static_cast<spx_uint32_t>(out.size() - produced);
    err = speex_resampler_process_int(st.get(), 0, src, &in_len, out.data() + produced, &out_len);
    if (err != RESAMPLER_ERR_SUCCESS) {
      return make_error(std::string("speech: resampler: ") + speex_resampler_strerror(err), -EIO);
    }
    if (in_len == 0 && out_len == 0) break;
    consumed += in_len;
    produced += out_len;
  }
  out.resize(std::min(produced, want));
  return out;
}

bool has_espeak_data(const std::string& dir) {
  // espeak-ng accepts the data folder itself or its parent.
  return ::access((dir + "/phontab").c_str(), R_OK) == 0 ||
         ::access((dir + "/espeak-ng-data/phontab").c_str(), R_OK) == 0;
}

bool write_all(int fd, const void* data, size_t size) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// The child streams samples straight into the pipe; a failed write stops espeak rather than speaking on.
int write_samples(void* user, const short* samples, size_t count) {
  return write_all(*static_cast<int*>(user), samples, count * sizeof(short)) ? 0 : 1;
}

// Runs in the forked child: espeak's state there is the pristine copy of the parent's, which never speaks.
// In the render child, before anything else: it must not outlive osvid, nor hold its descriptors. fork()
// copies every descriptor (close-on-exec does not apply):
//  - a child still rendering when osvid was killed kept the API's listening socket, and the restarted daemon
//    could not listen ("Address already in use");
//  - a child holding a FIFO, pipe, eventfd or tty the loop watches keeps that file alive after osvid closes
//    its own copy, and with it the epoll registration sd-event could no longer remove (EPOLL_CTL_DEL of a
//    closed descriptor fails): the next event on it carried a freed event source and sd-event aborted in
//    process_epoll ("Code should not be reached"). Every call renders its filler here, so with a dialler
//    redialling a line within milliseconds of its hang-up a child regularly held a simulated line's FIFO.
// So everything but the output pipe, regular files and directories (espeak's own data, if it keeps any open)
// is closed. Only async-signal-safe calls: the parent may have other threads.
//
// The open descriptors are listed from /proc/self/fd (getdents64 on a stack buffer: no allocation), not
// probed one by one up to RLIMIT_NOFILE: with the limit at 20,000 the fstat loop alone cost the child tens
// of milliseconds on a loaded box before espeak said a word, and the first audio of a streamed render
// waits for it. The loop stays as the fallback without /proc.
void maybe_close(int fd, int keep) {
  struct stat st {};
  if (fd > 2 && fd != keep && ::fstat(fd, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
    ::close(fd);
}

void drop_parent_descriptors(pid_t parent, int keep) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(1);  // the parent died before the line above
  const int dir = ::open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    alignas(dirent64) char buf[4096];
    for (;;) {
      const ssize_t n = ::getdents64(dir, buf, sizeof buf);
      if (n <= 0) break;
      for (ssize_t off = 0; off < n;) {
        const auto* d = reinterpret_cast<const dirent64*>(buf + off);
        off += d->d_reclen;
        int fd = 0;
        const char* c = d->d_name;
        if (*c < '0' || *c > '9') continue;  // "." and ".."
        for (; *c >= '0' && *c <= '9'; ++c) fd = fd * 10 + (*c - '0');
        if (fd != dir) maybe_close(fd, keep);
      }
    }
    ::close(dir);
    return;
  }
  rlimit lim{};
  const int max_fd =
      ::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < 65536 ? static_cast<int>(lim.rlim_cur) : 65536;
  for (int fd = 3; fd < max_fd; ++fd) maybe_close(fd, keep);
}

int synthesize_in_child(const Module& module, const std::string& text, const SpeechOptions& options,
                        int out_fd) {
  const int rc = module.synth(options.voice.c_str(), options.rate_wpm, text.c_str(), &write_samples, &out_fd);
  if (rc == -ENOENT) return 2;
  return rc == 0 ? 0 : 3;
}

bool blank(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
}

}  // namespace

Result<std::unique_ptr<Speech>> Speech::create(SpeechOptions options) {
  if (options.rate_wpm < OSVI_SPEECH_RATE_MIN || options.rate_wpm > OSVI_SPEECH_RATE_MAX) {
    return make_error("speech: rate_wpm must be " + std::to_string(OSVI_SPEECH_RATE_MIN) + ".." +
                      std::to_string(OSVI_SPEECH_RATE_MAX) + " (got " + std::to_string(options.rate_wpm) +
                      ")");
  }
  if (options.voice.empty()) return make_error("speech: voice must not be empty");
  EspeakProcess& p = espeak_process();
  std::lock_guard lock(p.mu);
  if (p.native_rate > 0 && p.data_path != options.data_path) {
    return make_error("speech: espeak-ng is already initialised with data_path '" + p.data_path +
                          "'; a process can use only one",
                      -EBUSY);
  }
  if (p.native_rate <= 0) {
    // espeak-ng 1.51 hangs in espeak_Synchronize after espeak_Terminate + espeak_Initialize, and a failed
    // initialisation leaves it half set up: so the data folder is checked first, and the engine, once up,
    // stays up until the process exits.
    if (!options.data_path.empty() && !has_espeak_data(options.data_path)) {
      return make_error("speech: no espeak-ng data (phontab) in '" + options.data_path + "'", -ENOENT);
    }
    // Only now is espeak-ng mapped: an idle osvid that never speaks never pays for it.
    if (auto loaded = load_module(p); !loaded.ok()) return loaded.error();
    char err[256] = {};
    const int rate = p.module.init(options.data_path.c_str(), err, sizeof err);
    if (rate <= 0) return make_error(std::string("speech: ") + err, rate < 0 ? rate : -ENOENT);
    p.native_rate = rate;
    p.data_path = options.data_path;
  }
  if (p.module.set_voice(options.voice.c_str()) != 0) {
    return make_error("speech: unknown espeak-ng voice '" + options.voice + "'", -ENOENT);
  }
  return std::unique_ptr<Speech>(new Speech(std::move(options), p.native_rate));
}

Speech::~Speech() = default;

Result<std::pair<int, int>> Speech::spawn(const std::string& z) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return make_error("speech: pipe failed", -errno);
  hal::UniqueFd read_end(fds[0]);
  hal::UniqueFd write_end(fds[1]);
  pid_t pid = -1;
  const pid_t parent = ::getpid();
  const Module* module = nullptr;  // loaded by create(), which made this object, and never unloaded
  {
    // No thread may be inside espeak (create() validating a voice) while its state is copied.
    std::lock_guard lock(espeak_process().mu);
    pid = ::fork();
    module = &espeak_process().module;
  }
  if (pid < 0) return make_error("speech: fork failed", -errno);
  if (pid == 0) {
    read_end.reset();
    drop_parent_descriptors(parent, write_end.get());
    ::_exit(synthesize_in_child(*module, z, options_, write_end.get()));
  }
  return std::pair<int, int>{pid, read_end.release()};
}

Result<std::vector<int16_t>> Speech::render(std::string_view text, int sample_rate) {
  if (sample_rate < 8000 || sample_rate > 48000) {
    return make_error("speech: sample_rate must be 8000..48000 Hz (got " + std::to_string(sample_rate) + ")");
  }
  if (text.size() > kMaxTextBytes) return make_error("speech: text longer than 64 KiB");
  if (blank(text)) return std::vector<int16_t>{};
  auto child = spawn(std::string(text));  // espeak reads up to a NUL
  if (!child) return child.error();
  const pid_t pid = child->first;
  hal::UniqueFd read_end(child->second);
  // The child's samples are read straight into one buffer of their own mapping (see kOwnMappingBytes), grown
  // by doubling: realloc moves a mapping with mremap, without a copy through the heap.
  struct Free {
    void operator()(void* p) const noexcept { std::free(p); }
  };
  size_t cap = kOwnMappingBytes, len = 0;
  std::unique_ptr<char, Free> bytes(static_cast<char*>(std::malloc(cap)));
  if (!bytes) return make_error("speech: out of memory", -ENOMEM);
  bool read_failed = false;
  for (;;) {
    if (len == cap) {
      char* grown = static_cast<char*>(std::realloc(bytes.get(), cap * 2));
      if (!grown) {
        read_failed = true;  // the child gets EPIPE once read_end closes
        break;
      }
      (void)bytes.release();
      bytes.reset(grown);
      cap *= 2;
    }
    const ssize_t n = ::read(read_end.get(), bytes.get() + len, cap - len);
    if (n > 0) {
      len += static_cast<size_t>(n);
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      break;  // the child's exit status below tells whether it finished
    }
  }
  read_end.reset();
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (read_failed) return make_error("speech: out of memory", -ENOMEM);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || len % 2 != 0) {
    return make_error("speech: synthesis failed (voice '" + options_.voice + "')", -EIO);
  }
  // malloc's alignment suits int16_t; the bytes are the child's native-endian samples.
  return resample(std::span<const int16_t>(reinterpret_cast<const int16_t*>(bytes.get()), len / 2),
                  native_rate_, sample_rate);
}

// The child's pipe and an incremental resampler in the same configuration as resample(): zeros skipped at
// the start, the filter flushed with its input latency in zeros at the end, the output cut to
// in * out_rate / in_rate samples. speexdsp's filter state does not depend on how the input is split, so
// the samples equal render()'s.
struct SpeechStream::Impl {
  pid_t pid = -1;
  hal::UniqueFd fd;
  std::string voice;
  int in_rate = 0;
  int out_rate = 0;
  std::unique_ptr<SpeexResamplerState, ResamplerDeleter> resampler;
  uint64_t consumed = 0;  // native samples read from the child
  uint64_t emitted = 0;   // samples handed out
  bool has_odd = false;   // a sample split across two reads: its first byte
  char odd = 0;
  bool finished = false;

  ~Impl() { reap(true); }

  int reap(bool kill) {
    if (pid <= 0) return -1;
    if (kill) ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    pid = -1;
    return status;
  }

  // Appends the resampled `in` to `out`, never beyond `limit` samples in all.
  Result<void> convert(const int16_t* in, size_t n, uint64_t limit, std::vector<int16_t>& out) {
    if (!resampler) {
      const size_t take = static_cast<size_t>(std::min<uint64_t>(n, limit - emitted));
      out.insert(out.end(), in, in + take);
      emitted += take;
      return {};
    }
    int16_t buf[4096];
    size_t used = 0;
    while (used < n) {
      auto in_len = static_cast<spx_uint32_t>(n - used);
      auto out_len = static_cast<spx_uint32_t>(sizeof buf / sizeof buf[0]);
      const int err = speex_resampler_process_int(resampler.get(), 0, in + used, &in_len, buf, &out_len);
      if (err != RESAMPLER_ERR_SUCCESS) {
        return make_error(std::string("speech: resampler: ") + speex_resampler_strerror(err), -EIO);
      }
      const size_t take = static_cast<size_t>(std::min<uint64_t>(out_len, limit - emitted));
      out.insert(out.end(), buf, buf + take);
      emitted += take;
      used += in_len;
      if (in_len == 0 && out_len == 0) break;
    }
    return {};
  }

  Result<bool> next(std::vector<int16_t>& out) {
    if (finished) return false;
    char buf[16384 + 1];
    ssize_t n = -1;
    for (;;) {
      n = ::read(fd.get(), buf + 1, sizeof buf - 1);
      if (n >= 0 || errno != EINTR) break;
    }
    if (n > 0) {
      char* start = buf + 1;
      size_t len = static_cast<size_t>(n);
      if (has_odd) {
        *--start = odd;
        ++len;
        has_odd = false;
      }
      if (len % 2 != 0) {
        odd = start[len - 1];
        has_odd = true;
        --len;
      }
      std::vector<int16_t> native(len / 2);
      std::memcpy(native.data(), start, len);
      consumed += native.size();
      // While the child speaks, nothing beyond what the samples so far allow: the final cut is not known.
      const uint64_t limit = consumed * static_cast<uint64_t>(out_rate) / static_cast<uint64_t>(in_rate);
      auto done = convert(native.data(), native.size(), limit, out);
      if (!done) {
        finished = true;
        return done.error();
      }
      return true;
    }
    finished = true;
    fd.reset();
    const int status = reap(false);
    if (n < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || has_odd) {
      return make_error("speech: synthesis failed (voice '" + voice + "')", -EIO);
    }
    const uint64_t want = consumed * static_cast<uint64_t>(out_rate) / static_cast<uint64_t>(in_rate);
    if (resampler && consumed > 0) {
      const std::vector<int16_t> zeros(
          static_cast<size_t>(speex_resampler_get_input_latency(resampler.get())), 0);
      // The zeros push the last real samples out of the filter, once, as render() pads.
      if (auto done = convert(zeros.data(), zeros.size(), want, out); !done) return done.error();
    }
    return false;
  }
};

SpeechStream::SpeechStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SpeechStream::~SpeechStream() = default;

Result<bool> SpeechStream::next(std::vector<int16_t>& out) {
  return impl_->next(out);
}

Result<std::unique_ptr<SpeechStream>> Speech::start(std::string_view text, int sample_rate) {
  if (sample_rate < 8000 || sample_rate > 48000) {
    return make_error("speech: sample_rate must be 8000..48000 Hz (got " + std::to_string(sample_rate) + ")");
  }
  if (text.size() > kMaxTextBytes) return make_error("speech: text longer than 64 KiB");
  auto impl = std::make_unique<SpeechStream::Impl>();
  impl->voice = options_.voice;
  impl->in_rate = native_rate_;
  impl->out_rate = sample_rate;
  if (blank(text)) {
    impl->finished = true;
    return std::unique_ptr<SpeechStream>(new SpeechStream(std::move(impl)));
  }
  if (native_rate_ != sample_rate) {
    int err = RESAMPLER_ERR_SUCCESS;
    impl->resampler.reset(speex_resampler_init(1, static_cast<spx_uint32_t>(native_rate_),
                                               static_cast<spx_uint32_t>(sample_rate), 7, &err));
    if (!impl->resampler || err != RESAMPLER_ERR_SUCCESS) {
      return make_error(std::string("speech: resampler: ") + speex_resampler_strerror(err), -ENOMEM);
    }
    speex_resampler_skip_zeros(impl->resampler.get());
  }
  auto child = spawn(std::string(text));
  if (!child) return child.error();
  impl->pid = child->first;
  impl->fd = hal::UniqueFd(child->second);
  return std::unique_ptr<SpeechStream>(new SpeechStream(std::move(impl)));
}

}  // namespace osvi::daemon
