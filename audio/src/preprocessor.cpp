// The speexdsp preprocessor (denoise, AGC, residual echo suppression) and the CaptureCleaner chain.
#include "osvi/audio/preprocessor.hpp"

#include <speex/speex_echo.h>
#include <speex/speex_preprocess.h>

#include <cmath>
#include <string>

namespace osvi::audio {

namespace {

Status in_db_range(const char* what, int db, int lo, int hi) {
  if (db < lo || db > hi)
    return make_error(std::string("preprocess: ") + what + " must be in " + std::to_string(lo) + ".." +
                      std::to_string(hi) + ", not " + std::to_string(db));
  return {};
}

Status set_int(SpeexPreprocessState* st, int request, int value) {
  if (speex_preprocess_ctl(st, request, &value) != 0)
    return make_error("preprocess: speex refused control " + std::to_string(request));
  return {};
}

}  // namespace

Status validate(const PreprocessOptions& o) {
  if (Status s = in_db_range("noise_suppress_db", o.noise_suppress_db, -90, 0); !s) return s;
  if (Status s = in_db_range("agc_level_dbfs", o.agc_level_dbfs, -31, 0); !s) return s;
  if (Status s = in_db_range("echo_suppress_db", o.echo_suppress_db, -90, 0); !s) return s;
  return in_db_range("echo_suppress_active_db", o.echo_suppress_active_db, -90, 0);
}

void Preprocessor::StateDeleter::operator()(SpeexPreprocessState_* state) const noexcept {
  speex_preprocess_state_destroy(state);
}

Result<Preprocessor::State> Preprocessor::make_state(Format format, const PreprocessOptions& o,
                                                     SpeexEchoState_* echo) {
  State st(speex_preprocess_state_init(static_cast<int>(format.frame_samples()), format.rate));
  if (!st) return make_error("preprocess: speex_preprocess_state_init failed", -ENOMEM);
  Status s = set_int(st.get(), SPEEX_PREPROCESS_SET_DENOISE, o.denoise ? 1 : 0);
  if (s) s = set_int(st.get(), SPEEX_PREPROCESS_SET_NOISE_SUPPRESS, o.noise_suppress_db);
  // speexdsp's VAD is documented as a hack; endpointing has its own detector. It starts disabled, and
  // SET_VAD would print that warning to stderr, so we only check it is off.
  if (s) {
    int vad = 1;
    if (speex_preprocess_ctl(st.get(), SPEEX_PREPROCESS_GET_VAD, &vad) != 0 || vad != 0)
      s = make_error("preprocess: speex VAD is unexpectedly on");
  }
  if (s) s = set_int(st.get(), SPEEX_PREPROCESS_SET_DEREVERB, 0);
  if (s) s = set_int(st.get(), SPEEX_PREPROCESS_SET_AGC, o.agc ? 1 : 0);
  if (s && o.agc) {
    // Debian's speexdsp is the floating-point build: the level is a float RMS in s16 units.
    float level = 32768.0f * std::pow(10.0f, static_cast<float>(o.agc_level_dbfs) / 20.0f);
    if (speex_preprocess_ctl(st.get(), SPEEX_PREPROCESS_SET_AGC_LEVEL, &level) != 0)
      s = make_error("preprocess: speex refused the AGC level");
  }
  if (s && echo) {
    if (speex_preprocess_ctl(st.get(), SPEEX_PREPROCESS_SET_ECHO_STATE, echo) != 0)
      s = make_error("preprocess: speex refused the echo state");
    if (s) s = set_int(st.get(), SPEEX_PREPROCESS_SET_ECHO_SUPPRESS, o.echo_suppress_db);
    if (s) s = set_int(st.get(), SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE, o.echo_suppress_active_db);
  }
  if (!s) return s.error();
  return st;
}

Preprocessor::Preprocessor(Format format, const PreprocessOptions& options, SpeexEchoState_* echo,
                           State state)
    : format_(format), options_(options), echo_(echo), state_(std::move(state)) {}

Preprocessor::~Preprocessor() = default;

Result<std::unique_ptr<Preprocessor>> Preprocessor::create(Format format, const PreprocessOptions& options,
                                                           EchoCanceller* echo) {
  if (!valid_call_rate(format.rate) || (format.frame_ms != 10 && format.frame_ms != 20))
    return make_error("preprocess: needs 8/16 kHz and 10/20 ms frames");
  if (Status s = validate(options); !s) return s.error();
  if (echo && echo->format() != format) return make_error("preprocess: echo canceller has another format");
  SpeexEchoState_* es = echo ? echo->speex_state() : nullptr;
  Result<State> st = make_state(format, options, es);
  if (!st) return st.error();
  return std::unique_ptr<Preprocessor>(new Preprocessor(format, options, es, std::move(*st)));
}

void Preprocessor::process(std::span<int16_t> frame) noexcept {
  if (frame.size() != format_.frame_samples()) return;
  speex_preprocess_run(state_.get(), frame.data());
}

Status Preprocessor::reset() {
  Result<State> st = make_state(format_, options_, echo_);
  if (!st) return st.error();
  state_ = std::move(*st);
  return {};
}

CaptureCleaner::CaptureCleaner(std::unique_ptr<EchoCanceller> echo, std::unique_ptr<Preprocessor> pre)
    : echo_(std::move(echo)), pre_(std::move(pre)) {}

Result<std::unique_ptr<CaptureCleaner>> CaptureCleaner::create(const CaptureOptions& options) {
  if (Status s = validate(options.preprocess); !s) return s.error();
  if (options.backend == EchoBackend::webrtc) {
    Result<std::unique_ptr<EchoCanceller>> apm = make_webrtc_apm(options.echo, options.preprocess);
    if (!apm) return apm.error();
    return std::unique_ptr<CaptureCleaner>(new CaptureCleaner(std::move(*apm), nullptr));
  }
  Result<std::unique_ptr<EchoCanceller>> echo = make_echo_canceller(options.backend, options.echo);
  if (!echo) return echo.error();
  Result<std::unique_ptr<Preprocessor>> pre =
      Preprocessor::create(options.echo.format, options.preprocess, echo->get());
  if (!pre) return pre.error();
  return std::unique_ptr<CaptureCleaner>(new CaptureCleaner(std::move(*echo), std::move(*pre)));
}

void CaptureCleaner::process(std::span<const int16_t> mic, std::span<const int16_t> played_ref,
                             std::span<int16_t> out) noexcept {
  echo_->process(mic, played_ref, out);
  if (pre_) pre_->process(out);
}

Status CaptureCleaner::reset() {
  echo_->reset();
  return pre_ ? pre_->reset() : Status{};
}

}  // namespace osvi::audio
