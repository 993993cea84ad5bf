// Echo path measurement for the line loopback test: the probe burst and the cross-correlation that finds its
// echo (delay, echo return loss) in what a line captured. Pure: no I/O, no clock.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace osvi::audio {

// The probe: a linear chirp from 300 to 3400 Hz (the telephone band) of kProbeBurstMs at -6 dBFS with 5 ms
// raised-cosine edges. A chirp's autocorrelation is one narrow peak, so its echo is located to a sample and
// is not confused with a tone the line happens to carry.
inline constexpr int kProbeBurstMs = 150;
std::vector<int16_t> make_probe_burst(int sample_rate);

// Below this peak normalised correlation the capture holds nothing like the burst: "no echo found". White
// noise against the 150 ms chirp stays under 0.1; an echo 20 dB under a noise floor still reaches ~0.5.
inline constexpr double kEchoFoundCorrelation = 0.3;
// What an echo spreads over after its peak (a line hybrid's impulse response): the canceller's tail must
// cover the peak plus this to cancel it.
inline constexpr int kEchoSpreadMs = 20;

struct EchoMeasurement {
  bool echo_found = false;
  int64_t delay_samples = 0;      // capture lag of the echo behind the reference (echo_found only)
  double delay_ms = 0.0;          // the same in ms
  double erl_db = 0.0;            // echo return loss: how much weaker the echo is than what was played
  double peak_correlation = 0.0;  // 0..1, normalised cross-correlation at the peak
};

// `reference` is what was played, aligned sample for sample with `capture` (hal::AudioStream's reference:
// the playback sample heard while each capture sample was taken), so the delay found is the one the echo
// canceller sees. The burst is found in the reference (its non-zero span); its echo is looked for at lags 0
// .. max_delay_ms in the capture. The ERL comes from the least-squares gain of the echo at the peak lag
// (g = <burst, capture> / <burst, burst>, ERL = -20 log10 |g|), which noise uncorrelated with the burst does
// not bias. A reference without a burst, or a capture too short to hold the burst at lag 0, is no echo.
EchoMeasurement measure_echo(std::span<const int16_t> reference, std::span<const int16_t> capture,
                             int sample_rate, int max_delay_ms);

}  // namespace osvi::audio
