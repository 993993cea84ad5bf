// Speech on libespeak-ng: one process-wide espeak initialisation and serialised synthesis.
#include "osvi/daemon/speech.hpp"

#include <espeak-ng/speak_lib.h>
#include <fcntl.h>
#include <speex/speex_resampler.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <mutex>
#include <new>
#include <string>

#include "osvi/hal/fd.hpp"

namespace osvi::daemon {
namespace {

// espeak-ng is one global synthesiser; this is the only place that knows, and its mutex guards every call.
struct EspeakProcess {
  std::mutex mu;
  int native_rate = 0;
  std::string data_path;
};

EspeakProcess& espeak_process() {
  static EspeakProcess p;
  return p;
}

struct Collector {
  std::vector<int16_t>* samples = nullptr;
  bool out_of_memory = false;
};

// The synth callback is process-global too; the render's collector travels in the events' user_data.
int on_synth(short* wav, int count, espeak_EVENT* events) {
  if (wav == nullptr || count <= 0 || events == nullptr) return 0;
  auto* collector = static_cast<Collector*>(events->user_data);
  if (collector == nullptr) return 0;
  try {
    collector->samples->insert(collector->samples->end(), wav, wav + count);
  } catch (const std::bad_alloc&) {
    // Exceptions must not cross espeak's C frames: stop the synthesis and report after it returns.
    collector->out_of_memory = true;
    return 1;
  }
  return 0;
}

struct ResamplerDeleter {
  void operator()(SpeexResamplerState* st) const noexcept { speex_resampler_destroy(st); }
};

// audio::Resampler only takes the call-audio rates (8/16/24/48 kHz) and espeak speaks at 22050 Hz, so the
// whole utterance is converted here in one pass, with the filter delay removed at both ends.
Result<std::vector<int16_t>> resample(const std::vector<int16_t>& in, int in_rate, int out_rate) {
  if (in_rate == out_rate || in.empty()) return in;
  int err = RESAMPLER_ERR_SUCCESS;
  std::unique_ptr<SpeexResamplerState, ResamplerDeleter> st(speex_resampler_init(
      1, static_cast<spx_uint32_t>(in_rate), static_cast<spx_uint32_t>(out_rate), 7, &err));
  if (!st || err != RESAMPLER_ERR_SUCCESS) {
    return make_error(std::string("speech: resampler: ") + speex_resampler_strerror(err), -ENOMEM);
  }
  speex_resampler_skip_zeros(st.get());
  std::vector<int16_t> padded(in);
  padded.resize(in.size() + static_cast<size_t>(speex_resampler_get_input_latency(st.get())), 0);
  const auto want = static_cast<size_t>(static_cast<uint64_t>(in.size()) * static_cast<uint64_t>(out_rate) /
                                        static_cast<uint64_t>(in_rate));
  std::vector<int16_t> out(
      static_cast<size_t>(static_cast<uint64_t>(padded.size()) * static_cast<uint64_t>(out_rate) /
                          static_cast<uint64_t>(in_rate)) +
      16);
  size_t consumed = 0, produced = 0;
  while (consumed < padded.size() && produced < out.size()) {
    auto in_len = static_cast<spx_uint32_t>(padded.size() - consumed);
    auto out_len = static_cast<spx_uint32_t>(out.size() - produced);
    err = speex_resampler_process_int(st.get(), 0, padded.data() + consumed, &in_len, out.data() + produced,
                                      &out_len);
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

// Runs in the forked child: espeak's state there is the pristine copy of the parent's, which never speaks.
int synthesize_in_child(const std::string& text, const SpeechOptions& options, int out_fd) {
  std::vector<int16_t> native;
  Collector collector{&native, false};
  if (espeak_SetVoiceByName(options.voice.c_str()) != EE_OK) return 2;
  espeak_SetParameter(espeakRATE, options.rate_wpm, 0);
  // Synchronous mode: espeak_Synth returns once every sample went through the callback (espeak_Synchronize
  // is not called: it waits on espeak's fifo thread, which does not exist in a forked child).
  const espeak_ERROR rc =
      espeak_Synth(text.c_str(), text.size() + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8, nullptr, &collector);
  if (rc != EE_OK || collector.out_of_memory) return 3;
  return write_all(out_fd, native.data(), native.size() * sizeof(int16_t)) ? 0 : 4;
}

bool blank(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
}

}  // namespace

Result<std::unique_ptr<Speech>> Speech::create(SpeechOptions options) {
  if (options.rate_wpm < espeakRATE_MINIMUM || options.rate_wpm > espeakRATE_MAXIMUM) {
    return make_error("speech: rate_wpm must be " + std::to_string(espeakRATE_MINIMUM) + ".." +
                      std::to_string(espeakRATE_MAXIMUM) + " (got " + std::to_string(options.rate_wpm) + ")");
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
    // DONT_EXIT: without it espeak-ng calls exit() when its data folder is missing.
    const int rate = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                       options.data_path.empty() ? nullptr : options.data_path.c_str(),
                                       espeakINITIALIZE_DONT_EXIT);
    if (rate <= 0) return make_error("speech: espeak-ng could not initialise", -ENOENT);
    espeak_SetSynthCallback(&on_synth);
    p.native_rate = rate;
    p.data_path = options.data_path;
  }
  if (espeak_SetVoiceByName(options.voice.c_str()) != EE_OK) {
    return make_error("speech: unknown espeak-ng voice '" + options.voice + "'", -ENOENT);
  }
  return std::unique_ptr<Speech>(new Speech(std::move(options), p.native_rate));
}

Speech::~Speech() = default;

Result<std::vector<int16_t>> Speech::render(std::string_view text, int sample_rate) {
  if (sample_rate < 8000 || sample_rate > 48000) {
    return make_error("speech: sample_rate must be 8000..48000 Hz (got " + std::to_string(sample_rate) + ")");
  }
  if (text.size() > kMaxTextBytes) return make_error("speech: text longer than 64 KiB");
  if (blank(text)) return std::vector<int16_t>{};
  const std::string z(text);  // espeak reads up to a NUL
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return make_error("speech: pipe failed", -errno);
  hal::UniqueFd read_end(fds[0]);
  hal::UniqueFd write_end(fds[1]);
  pid_t pid = -1;
  {
    // No thread may be inside espeak (create() validating a voice) while its state is copied.
    std::lock_guard lock(espeak_process().mu);
    pid = ::fork();
  }
  if (pid < 0) return make_error("speech: fork failed", -errno);
  if (pid == 0) {
    read_end.reset();
    ::_exit(synthesize_in_child(z, options_, write_end.get()));
  }
  write_end.reset();
  std::vector<int16_t> native;
  std::vector<char> bytes;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(read_end.get(), buf, sizeof buf);
    if (n > 0) {
      bytes.insert(bytes.end(), buf, buf + n);
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      break;  // the child's exit status below tells whether it finished
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || bytes.size() % 2 != 0) {
    return make_error("speech: synthesis failed (voice '" + options_.voice + "')", -EIO);
  }
  native.resize(bytes.size() / 2);
  std::memcpy(native.data(), bytes.data(), bytes.size());
  return resample(native, native_rate_, sample_rate);
}

}  // namespace osvi::daemon
