// Echo cancellation and capture clean-up on a synthetic line echo built from real speech (ERLE, near-end
// survival, double talk), the factory's errors, in-place processing, and no allocation per frame.
#include "osvi/audio/echo.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <new>
#include <numbers>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "alloc_counter.hpp"
#include "osvi/audio/preprocessor.hpp"
#include "wav.hpp"

namespace {

using namespace osvi::audio;
using Signal = std::vector<double>;

constexpr int kFrameMs = 20;

// 16 kHz LibriVox speech, read once for the whole binary.
const std::vector<int16_t>& speech16() {
  static const std::vector<int16_t> s = osvi::test::librivox_speech();
  return s;
}

// Halves the rate behind a windowed-sinc low-pass at 3.6 kHz, so 8 kHz material has no aliasing.
Signal decimate2(const Signal& x) {
  constexpr int kTaps = 63;
  std::vector<double> h(kTaps);
  double sum = 0;
  for (int i = 0; i < kTaps; ++i) {
    const double t = i - (kTaps - 1) / 2.0;
    const double fc = 3600.0 / 16000.0;
    const double sinc = t == 0 ? 2 * fc : std::sin(2 * std::numbers::pi * fc * t) / (std::numbers::pi * t);
    const double w = 0.54 - 0.46 * std::cos(2 * std::numbers::pi * i / (kTaps - 1));
    h[static_cast<size_t>(i)] = sinc * w;
    sum += h[static_cast<size_t>(i)];
  }
  Signal y(x.size() / 2);
  for (size_t n = 0; n < y.size(); ++n) {
    double acc = 0;
    for (size_t k = 0; k < h.size(); ++k)
      if (2 * n >= k) acc += h[k] / sum * x[2 * n - k];
    y[n] = acc;
  }
  return y;
}

// Two passes of an RBJ Butterworth high-pass biquad (4th order, -24 dB/octave below fc).
Signal high_pass(const Signal& x, int rate, double fc) {
  const double w = 2 * std::numbers::pi * fc / rate, alpha = std::sin(w) / std::sqrt(2.0), c = std::cos(w);
  const double a0 = 1 + alpha, b0 = (1 + c) / 2 / a0, b1 = -(1 + c) / a0, b2 = b0;
  const double a1 = -2 * c / a0, a2 = (1 - alpha) / a0;
  Signal y(x);
  for (int pass = 0; pass < 2; ++pass) {
    double x1 = 0, x2 = 0, y1 = 0, y2 = 0;
    for (double& v : y) {
      const double out = b0 * v + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2;
      x2 = x1, x1 = v, y2 = y1, y1 = out, v = out;
    }
  }
  return y;
}

// `seconds` of speech starting at `from_s` in the LibriVox material, band-limited as a phone line carries
// it: 100-7000 Hz wideband at 16 kHz, 300-3400 Hz narrowband at 8 kHz. (The clips hold ~15 % of their
// energy as rumble below 100 Hz, which no line delivers and every AEC's DC notch rightly removes.)
Signal speech(int rate, double from_s, double seconds) {
  const auto& s = speech16();
  const auto a = static_cast<size_t>(from_s * 16000), n = static_cast<size_t>(seconds * 16000);
  if (a + n > s.size()) throw std::runtime_error("not enough LibriVox speech");
  Signal x(s.begin() + static_cast<std::ptrdiff_t>(a), s.begin() + static_cast<std::ptrdiff_t>(a + n));
  return rate == 8000 ? high_pass(decimate2(x), 8000, 300.0) : high_pass(x, 16000, 100.0);
}

double energy(const Signal& x, size_t from = 0, size_t to = SIZE_MAX) {
  double e = 0;
  for (size_t i = from; i < std::min(to, x.size()); ++i) e += x[i] * x[i];
  return e;
}

double rms(const Signal& x) {
  return std::sqrt(energy(x) / static_cast<double>(x.size()));
}

// The line: a pure delay, then ~50 ms of exponentially decaying random taps scaled to the echo return loss.
Signal echo_path(const Signal& far, int rate, int delay_ms, double erl_db, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> g(0, 1);
  const auto taps = static_cast<size_t>(rate / 20);                // 50 ms
  const double tau = static_cast<double>(taps) / std::log(100.0);  // -40 dB at the end of the response
  Signal h(taps);
  double e = 0;
  for (size_t k = 0; k < taps; ++k) {
    h[k] = g(rng) * std::exp(-static_cast<double>(k) / tau);
    e += h[k] * h[k];
  }
  const double scale = std::sqrt(std::pow(10.0, -erl_db / 10) / e);
  const auto d = static_cast<size_t>(delay_ms * rate / 1000);
  Signal y(far.size(), 0.0);
  for (size_t n = d; n < far.size(); ++n) {
    double acc = 0;
    const size_t m = n - d;
    for (size_t k = 0; k < taps && k <= m; ++k) acc += h[k] * far[m - k];
    y[n] = acc * scale;
  }
  return y;
}

Signal add(const Signal& a, const Signal& b) {
  Signal y(a);
  for (size_t i = 0; i < y.size() && i < b.size(); ++i) y[i] += b[i];
  return y;
}

Signal white_noise(size_t n, double level_rms, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> g(0, level_rms);
  Signal y(n);
  for (auto& v : y) v = g(rng);
  return y;
}

std::vector<int16_t> to_s16(const Signal& x) {
  std::vector<int16_t> y(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    y[i] = static_cast<int16_t>(std::clamp(std::round(x[i]), -32768.0, 32767.0));
  return y;
}

Signal to_signal(const std::vector<int16_t>& x) {
  return Signal(x.begin(), x.end());
}

// Runs the chain frame by frame (full frames only) and returns the output.
Signal run(CaptureCleaner& c, const Signal& mic, const Signal& ref) {
  const size_t n = c.format().frame_samples();
  const std::vector<int16_t> m = to_s16(mic), r = to_s16(ref);
  std::vector<int16_t> out(m.size() / n * n, 0);
  for (size_t off = 0; off + n <= out.size(); off += n)
    c.process(std::span(m).subspan(off, n), std::span(r).subspan(off, n), std::span(out).subspan(off, n));
  return to_signal(out);
}

std::unique_ptr<CaptureCleaner> cleaner(EchoBackend backend, int rate, int frame_ms = kFrameMs) {
  CaptureOptions o;
  o.backend = backend;
  o.echo.format = Format{rate, frame_ms};
  auto c = CaptureCleaner::create(o);
  EXPECT_TRUE(c.ok()) << (c ? "" : c.error().message);
  return c ? std::move(*c) : nullptr;
}

// ERLE over the frames where the far end talks, from `from_s` on.
double erle_db(const Signal& mic, const Signal& out, const Signal& far, int rate, double from_s) {
  const auto n = static_cast<size_t>(rate * kFrameMs / 1000);
  const double active = 0.1 * rms(far);  // -20 dB under the talker's average: pauses are left out
  double em = 0, eo = 0;
  for (size_t off = static_cast<size_t>(from_s * rate); off + n <= out.size(); off += n) {
    if (std::sqrt(energy(far, off, off + n) / static_cast<double>(n)) < active) continue;
    em += energy(mic, off, off + n);
    eo += energy(out, off, off + n);
  }
  return 10 * std::log10(em / std::max(eo, 1e-9));
}

// Pearson correlation of out with the clean near end over [a, b), at the best lag up to 40 ms (the
// preprocessor's overlap-add may delay the output by a fraction of a frame).
double correlation(const Signal& out, const Signal& near, size_t a, size_t b, size_t max_lag) {
  double best = -1;
  for (size_t lag = 0; lag <= max_lag; ++lag) {
    double so = 0, sn = 0, soo = 0, snn = 0, son = 0;
    double cnt = 0;
    for (size_t i = a; i + lag < b && i + lag < out.size(); ++i) {
      const double o = out[i + lag], x = near[i];
      so += o, sn += x, soo += o * o, snn += x * x, son += o * x, cnt += 1;
    }
    const double cov = son - so * sn / cnt;
    const double r = cov / std::sqrt((soo - so * so / cnt) * (snn - sn * sn / cnt));
    best = std::max(best, r);
  }
  return best;
}

// The far-end talker 6..12 dB louder than its echo; line noise 40 dB under the echo.
struct Line {
  Signal far, echo, noise;
};

const Line& line(int rate, int delay_ms) {
  static std::map<std::pair<int, int>, Line> cache;
  auto key = std::make_pair(rate, delay_ms);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  Line l;
  l.far = speech(rate, 0.0, 9.0);
  const double erl = 6.0 + delay_ms / 10.0;  // 8, 10, 12 dB for 20, 40, 60 ms
  l.echo = echo_path(l.far, rate, delay_ms, erl, static_cast<unsigned>(delay_ms));
  l.noise = white_noise(l.far.size(), rms(l.echo) * 0.01, 7);
  return cache.emplace(key, std::move(l)).first->second;
}

CaptureOptions options(EchoBackend backend, int rate) {
  CaptureOptions o;
  o.backend = backend;
  o.echo.format = Format{rate, kFrameMs};
  return o;
}

double measure_erle(const CaptureOptions& o, int delay) {
  const int rate = o.echo.format.rate;
  const Line& l = line(rate, delay);
  const Signal mic = add(l.echo, l.noise);
  auto c = CaptureCleaner::create(o);
  if (!c) throw std::runtime_error(c.error().message);
  const Signal out = run(**c, mic, l.far);
  return erle_db(mic, out, l.far, rate, 2.0);
}

// Returns {correlation of the output with the near end, the same for the raw mic}.
std::pair<double, double> measure_double_talk(const CaptureOptions& o, int delay) {
  const int rate = o.echo.format.rate;
  const Line& l = line(rate, delay);
  // The caller barges in at 3 s (after convergence) at the echo's level: 0 dB signal-to-echo ratio.
  const auto start = static_cast<size_t>(3 * rate);
  Signal near(l.far.size(), 0.0);
  const Signal talk = speech(rate, 12.0, 6.0);
  for (size_t i = start; i < near.size() && i - start < talk.size(); ++i) near[i] = talk[i - start];
  const double gain = rms(Signal(l.echo.begin() + static_cast<std::ptrdiff_t>(start), l.echo.end())) /
                      rms(Signal(near.begin() + static_cast<std::ptrdiff_t>(start), near.end()));
  for (auto& v : near) v *= gain;
  const Signal mic = add(add(l.echo, l.noise), near);
  auto c = CaptureCleaner::create(o);
  if (!c) throw std::runtime_error(c.error().message);
  const Signal out = run(**c, mic, l.far);
  const size_t a = start + static_cast<size_t>(rate / 2), b = out.size();
  const auto max_lag = static_cast<size_t>(rate / 25);
  return {correlation(out, near, a, b, max_lag), correlation(mic, near, a, b, 0)};
}

// Near-end speech alone. far_first: the far end talks for 4 s (the filter converges) and stops, and the
// caller answers 1 s later; otherwise there is no far end at all. Returns the share of its energy kept.
double measure_near_end(const CaptureOptions& o, int delay, bool far_first) {
  const int rate = o.echo.format.rate;
  const Line& l = line(rate, delay);
  const auto stop = static_cast<size_t>(4 * rate), start = static_cast<size_t>(5 * rate);
  Signal far(l.far.begin(), l.far.begin() + static_cast<std::ptrdiff_t>(far_first ? stop : 0));
  far.resize(l.far.size(), 0.0);
  const Signal echo = echo_path(far, rate, delay, 6.0 + delay / 10.0, static_cast<unsigned>(delay));
  Signal near(l.far.size(), 0.0);
  const Signal talk = speech(rate, 12.0, 4.0);
  for (size_t i = start; i < near.size() && i - start < talk.size(); ++i) near[i] = talk[i - start];
  const Signal mic = add(add(echo, l.noise), near);
  auto c = CaptureCleaner::create(o);
  if (!c) throw std::runtime_error(c.error().message);
  const Signal out = run(**c, mic, far);
  return energy(out, start, out.size()) / energy(near, start, out.size());
}

using Case = std::tuple<EchoBackend, int, int>;  // backend, rate, delay_ms

// ERLE and the caller alone: both selectable backends claim them, so both are held to the thresholds.
class EchoScenario : public ::testing::TestWithParam<Case> {};

TEST_P(EchoScenario, ErleAfterTwoSecondsOfConvergence) {
  const auto [backend, rate, delay] = GetParam();
  const double erle = measure_erle(options(backend, rate), delay);
  std::printf("[ erle ] %s %d Hz delay %d ms: ERLE %.1f dB\n", std::string(to_string(backend)).c_str(), rate,
              delay, erle);
  EXPECT_GE(erle, 25.0);
}

TEST_P(EchoScenario, NearEndAloneKeepsItsEnergy) {
  const auto [backend, rate, delay] = GetParam();
  for (bool far_first : {false, true}) {
    const double ratio = measure_near_end(options(backend, rate), delay, far_first);
    std::printf("[ near ] %s %d Hz delay %d ms%s: near-end energy kept %.3f\n",
                std::string(to_string(backend)).c_str(), rate, delay, far_first ? " (after far end)" : "",
                ratio);
    // The required case is the caller alone (>= 0.9). Right after a converged far end, speexdsp at 8 kHz
    // keeps a little less (0.89-0.93 measured, bench/README.md): bounded, and reported above.
    EXPECT_GE(ratio, far_first ? 0.85 : 0.9) << (far_first ? "after far end" : "no far end");
    EXPECT_LE(ratio, 1.2);  // nor made up: AGC is off by default
  }
}

// 10 ms frames (the other frame size the chain may use) converge as well.
TEST(Echo, SpeexTenMillisecondFrames) {
  CaptureOptions o = options(EchoBackend::speex, 16000);
  o.echo.format.frame_ms = 10;
  const double erle = measure_erle(o, 40);
  std::printf("[ erle ] speex 16000 Hz 10 ms frames delay 40 ms: ERLE %.1f dB\n", erle);
  EXPECT_GE(erle, 25.0);
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return std::string(to_string(std::get<0>(info.param))) + "_" + std::to_string(std::get<1>(info.param)) +
         "Hz_" + std::to_string(std::get<2>(info.param)) + "ms";
}

INSTANTIATE_TEST_SUITE_P(Speex, EchoScenario,
                         ::testing::Combine(::testing::Values(EchoBackend::speex),
                                            ::testing::Values(16000, 8000), ::testing::Values(20, 40, 60)),
                         case_name);
INSTANTIATE_TEST_SUITE_P(Webrtc, EchoScenario,
                         ::testing::Combine(::testing::Values(EchoBackend::webrtc),
                                            ::testing::Values(16000, 8000), ::testing::Values(20, 40, 60)),
                         case_name);

// Double talk: the caller barges in over the agent. The pass criteria (>= 0.8 correlation with the near end,
// better than the untreated mic) are asserted for the backend that claims them, the default. WebRTC does not
// claim them (its NLP clips a caller who barges in, bench/README.md "Echo cancellation"): its figure is a
// measurement, printed here and written up there, not a pass criterion. What is asserted about it is the
// documented reason it is not the default: the default keeps the caller better. Should WebRTC ever keep the
// caller as well, this fails and the default and the docs are to be decided again.
class EchoDoubleTalk : public ::testing::TestWithParam<std::tuple<int, int>> {};  // rate, delay_ms

TEST_P(EchoDoubleTalk, DefaultBackendKeepsTheCallerAndBeatsWebrtc) {
  const auto [rate, delay] = GetParam();
  const auto [r_out, r_mic] = measure_double_talk(options(kDefaultEchoBackend, rate), delay);
  const auto [r_webrtc, r_mic_webrtc] = measure_double_talk(options(EchoBackend::webrtc, rate), delay);
  std::printf("[ dtalk ] %s %d Hz delay %d ms: correlation with near end %.3f (mic before AEC %.3f)\n",
              std::string(to_string(kDefaultEchoBackend)).c_str(), rate, delay, r_out, r_mic);
  std::printf(
      "[ dtalk ] webrtc %d Hz delay %d ms: correlation with near end %.3f (mic before AEC %.3f), "
      "measured, not a pass criterion\n",
      rate, delay, r_webrtc, r_mic_webrtc);
  EXPECT_GE(r_out, 0.8);
  EXPECT_GT(r_out, r_mic);
  EXPECT_GT(r_out, r_webrtc) << "webrtc now keeps the caller as well as the default: revisit "
                                "kDefaultEchoBackend, bench/README.md and docs/configuration.md";
}

std::string rate_delay_name(const ::testing::TestParamInfo<std::tuple<int, int>>& param) {
  return std::to_string(std::get<0>(param.param)) + "Hz_" + std::to_string(std::get<1>(param.param)) + "ms";
}

INSTANTIATE_TEST_SUITE_P(Default, EchoDoubleTalk,
                         ::testing::Combine(::testing::Values(16000, 8000), ::testing::Values(20, 40, 60)),
                         rate_delay_name);

// The measurement itself must be able to fail: without cancellation there is no echo return loss enhancement.
TEST(Echo, NullBackendPassesEchoThrough) {
  const Line& l = line(16000, 40);
  const Signal mic = add(l.echo, l.noise);
  auto e = make_echo_canceller("null", EchoOptions{});
  ASSERT_TRUE(e.ok());
  const std::vector<int16_t> m = to_s16(mic);
  std::vector<int16_t> out(m.size());
  const size_t n = (*e)->format().frame_samples();
  const std::vector<int16_t> r = to_s16(l.far);
  for (size_t off = 0; off + n <= m.size(); off += n)
    (*e)->process(std::span(m).subspan(off, n), std::span(r).subspan(off, n), std::span(out).subspan(off, n));
  const double erle = erle_db(to_signal(m), to_signal(out), l.far, 16000, 2.0);
  EXPECT_LT(std::abs(erle), 0.5);
  EXPECT_EQ((*e)->name(), "null");
}

TEST(Echo, FactoryRejectsBadOptions) {
  EXPECT_FALSE(make_echo_canceller("speexx", EchoOptions{}).ok());
  EXPECT_FALSE(make_echo_canceller(EchoBackend::speex, EchoOptions{Format{44100, 20}, 128}).ok());
  EXPECT_FALSE(make_echo_canceller(EchoBackend::webrtc, EchoOptions{Format{16000, 30}, 128}).ok());
  EXPECT_FALSE(make_echo_canceller(EchoBackend::speex, EchoOptions{Format{16000, 20}, 5}).ok());
  PreprocessOptions bad;
  bad.noise_suppress_db = 10;
  EXPECT_FALSE(Preprocessor::create(Format{16000, 20}, bad).ok());
  CaptureOptions co;
  co.preprocess = bad;
  EXPECT_FALSE(CaptureCleaner::create(co).ok());
  for (const char* name : {"speex", "webrtc", "null"}) {
    auto e = make_echo_canceller(name, EchoOptions{Format{8000, 10}, 128});
    ASSERT_TRUE(e.ok()) << name << ": " << e.error().message;
    EXPECT_EQ((*e)->name(), name);
    EXPECT_EQ((*e)->format().frame_samples(), 80u);
  }
}

TEST(Echo, OnlySpeexBindsTheResidualEchoSuppressor) {
  auto speex = make_echo_canceller(EchoBackend::speex, EchoOptions{});
  auto null = make_echo_canceller(EchoBackend::null, EchoOptions{});
  ASSERT_TRUE(speex.ok() && null.ok());
  auto p1 = Preprocessor::create(Format{}, PreprocessOptions{}, speex->get());
  auto p2 = Preprocessor::create(Format{}, PreprocessOptions{}, null->get());
  ASSERT_TRUE(p1.ok() && p2.ok());
  EXPECT_TRUE((*p1)->suppresses_residual_echo());
  EXPECT_FALSE((*p2)->suppresses_residual_echo());
  EXPECT_FALSE(Preprocessor::create(Format{8000, 20}, PreprocessOptions{}, speex->get()).ok());
}

// In place (out is mic) must give exactly what separate buffers give, for every backend.
TEST(Echo, InPlaceMatchesSeparateBuffers) {
  const Line& l = line(16000, 20);
  const std::vector<int16_t> mic = to_s16(add(l.echo, l.noise)), ref = to_s16(l.far);
  for (EchoBackend b : {EchoBackend::speex, EchoBackend::webrtc, EchoBackend::null}) {
    auto a = cleaner(b, 16000), c = cleaner(b, 16000);
    ASSERT_TRUE(a && c);
    const size_t n = a->format().frame_samples();
    std::vector<int16_t> out(n), inplace(n);
    size_t differing = 0;
    for (size_t off = 0; off + n <= 100 * n; off += n) {
      auto m = std::span(mic).subspan(off, n);
      auto r = std::span(ref).subspan(off, n);
      a->process(m, r, out);
      std::copy(m.begin(), m.end(), inplace.begin());
      c->process(inplace, r, inplace);
      differing += out != inplace;
    }
    EXPECT_EQ(differing, 0u) << to_string(b);
  }
}

// speexdsp's reset zeroes the filter (it keeps only its per-block step weights, which is why it re-learns
// faster than a fresh state), so the first echo after a reset goes through uncancelled.
TEST(Echo, ResetForgetsTheEchoPath) {
  const Line& l = line(16000, 40);
  const Signal mic = add(l.echo, l.noise);
  const std::vector<int16_t> m = to_s16(mic), r = to_s16(l.far);
  const size_t n = 320, span = 2 * 16000;
  auto pass = [&](EchoCanceller& e) {
    std::vector<int16_t> out(span);
    for (size_t off = 0; off + n <= span; off += n)
      e.process(std::span(m).subspan(off, n), std::span(r).subspan(off, n), std::span(out).subspan(off, n));
    return to_signal(out);
  };
  // The first three frames where the echo is loud.
  size_t a = 0;
  while (a + n <= span && energy(mic, a, a + n) < 0.3 * energy(mic, 0, span) / (span / n)) a += n;
  ASSERT_LT(a + 3 * n, span);
  auto e = make_echo_canceller(EchoBackend::speex, EchoOptions{});
  ASSERT_TRUE(e.ok());
  pass(**e);
  const double kept_converged = energy(pass(**e), a, a + 3 * n) / energy(mic, a, a + 3 * n);
  (*e)->reset();
  const double kept_reset = energy(pass(**e), a, a + 3 * n) / energy(mic, a, a + 3 * n);
  std::printf("[ reset ] echo kept over the first loud frames: converged %.3f, after reset %.3f\n",
              kept_converged, kept_reset);
  EXPECT_LT(kept_converged, 0.1);
  EXPECT_GT(kept_reset, 0.5);
}

TEST(Echo, ProcessDoesNotAllocate) {
  const Line& l = line(16000, 40);
  const std::vector<int16_t> mic = to_s16(add(l.echo, l.noise)), ref = to_s16(l.far);
  for (EchoBackend b : {EchoBackend::speex, EchoBackend::webrtc, EchoBackend::null}) {
    for (int frame_ms : {10, 20}) {
      auto c = cleaner(b, 16000, frame_ms);
      ASSERT_TRUE(c);
      const size_t n = c->format().frame_samples();
      std::vector<int16_t> out(n);
      const long before =
          static_cast<long>(osvi::test::alloc_counts().news);  // from the first call: no lazy set-up either
      for (size_t i = 0; i < 100; ++i)
        c->process(std::span(mic).subspan(i * n, n), std::span(ref).subspan(i * n, n), out);
      EXPECT_EQ(static_cast<long>(osvi::test::alloc_counts().news) - before, 0)
          << to_string(b) << " " << frame_ms << " ms";
    }
  }
  // The counter works: an allocation is seen.
  const long before = static_cast<long>(osvi::test::alloc_counts().news);
  auto p = std::make_unique<int>(1);
  EXPECT_EQ(static_cast<long>(osvi::test::alloc_counts().news) - before, 1);
}

}  // namespace
