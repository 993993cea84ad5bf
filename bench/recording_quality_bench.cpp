// The stereo call recorder's encoder settings side by side: CPU per 20 ms frame and objective quality.
//
// What a recording is: left the caller after the chain (LibriVox read speech), right the agent as played
// (espeak-ng, what a TTS sounds like), 16 kHz, in turns of 8 s: the agent 0–3.5 s, the caller 3–7.5 s (0.5 s
// of double talk), 0.5 s of silence. Every setting encodes the same audio:
//
//   recorder rows = the real CallRecorder (32 kbit/s, the capture frame of 20 ms) at complexities 0..5 and
//                   10, into memory; the Ogg stream is then split into packets and decoded with libopus,
//                   pre-skip and end trim applied, so the figures are what a listener of the file gets;
//   libopus rows  = opus_encode/opus_decode directly with the recorder's settings plus one change each (a
//                   fixed wideband, DTX, 40/60 ms packets: levers that would need the recorder changed).
//
// Per channel, over the 20 ms frames where that channel's input is active (above -50 dBFS):
//   segSNR = mean of 10·log10(Σx² / Σ(x−y)²) per frame, each clamped to [-10, 35] dB (ITU-T P.1 style);
//   LSD    = mean of the log-spectral distance per frame, sqrt(mean over 0–8 kHz of (10·log10 X/Y)²) dB, Hann
//            window, 512-point FFT, both spectra floored 60 dB under the input frame's peak bin;
//   leak   = energy of the decoded channel over the frames where only the *other* channel is active (its own
//            input is digital silence), relative to that other channel's input, dB: SILK codes stereo as
//            mid/side, so one voice bleeds into the silent side.
// Higher segSNR, lower LSD and lower leak are better. CPU: thread CPU time per 20 ms frame, all settings
// interleaved frame by frame (each taking every place in the order in turn) so the shared machine's load
// and the caches fall on each alike.
//
// Usage: recording_quality_bench [seconds_of_audio=120]
#include <opus.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstdlib>
#include <numbers>
#include <optional>
#include <string>
#include <vector>

#include "echo_signals.hpp"
#include "osvi/audio/recording.hpp"
#include "wav.hpp"

namespace {

constexpr int kRate = 16000;
constexpr size_t kFrame = 320;  // 20 ms
constexpr int kBitrate = 32000;

using osvi::bench::cpu_us;

// Radix-2 FFT in place (n a power of two).
void fft(std::vector<std::complex<double>>& a) {
  const size_t n = a.size();
  for (size_t i = 1, j = 0; i < n; ++i) {
    size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  for (size_t len = 2; len <= n; len <<= 1) {
    const double ang = -2 * std::numbers::pi / static_cast<double>(len);
    const std::complex<double> wl(std::cos(ang), std::sin(ang));
    for (size_t i = 0; i < n; i += len) {
      std::complex<double> w(1);
      for (size_t k = 0; k < len / 2; ++k, w *= wl) {
        const auto u = a[i + k], v = a[i + k + len / 2] * w;
        a[i + k] = u + v;
        a[i + k + len / 2] = u - v;
      }
    }
  }
}

std::vector<double> power_spectrum(const int16_t* x) {
  std::vector<std::complex<double>> a(512);
  for (size_t i = 0; i < kFrame; ++i) {
    const double w = 0.5 - 0.5 * std::cos(2 * std::numbers::pi * static_cast<double>(i) / (kFrame - 1));
    a[i] = w * x[i];
  }
  fft(a);
  std::vector<double> p(257);
  for (size_t k = 0; k < p.size(); ++k) p[k] = std::norm(a[k]);
  return p;
}

double frame_dbfs(const int16_t* x) {
  double e = 0;
  for (size_t i = 0; i < kFrame; ++i) e += static_cast<double>(x[i]) * x[i];
  return 10 * std::log10(e / kFrame / (32768.0 * 32768.0) + 1e-20);
}

struct Quality {
  double seg_snr = 0, lsd = 0, leak_db = 0;
};

// in/out: one channel each, the same length, aligned. other: the other channel's input (for the leak).
Quality quality(const std::vector<int16_t>& in, const std::vector<int16_t>& out,
                const std::vector<int16_t>& other) {
  Quality q;
  size_t active = 0;
  double leak_e = 0, other_e = 0;
  for (size_t at = 0; at + kFrame <= in.size(); at += kFrame) {
    const int16_t* x = in.data() + at;
    const int16_t* y = out.data() + at;
    const bool silent_in = std::all_of(x, x + kFrame, [](int16_t v) { return v == 0; });
    if (silent_in && frame_dbfs(other.data() + at) > -50) {
      for (size_t i = 0; i < kFrame; ++i) {
        leak_e += static_cast<double>(y[i]) * y[i];
        other_e += static_cast<double>(other[at + i]) * other[at + i];
      }
    }
    if (frame_dbfs(x) <= -50) continue;
    ++active;
    double s = 0, n = 0;
    for (size_t i = 0; i < kFrame; ++i) {
      const double d = static_cast<double>(x[i]) - y[i];
      s += static_cast<double>(x[i]) * x[i];
      n += d * d;
    }
    q.seg_snr += std::clamp(10 * std::log10(s / (n + 1e-9)), -10.0, 35.0);
    const auto px = power_spectrum(x), py = power_spectrum(y);
    const double floor = *std::max_element(px.begin(), px.end()) * 1e-6;
    double d2 = 0;
    for (size_t k = 0; k < px.size(); ++k) {
      const double d = 10 * std::log10(std::max(px[k], floor) / std::max(py[k], floor));
      d2 += d * d;
    }
    q.lsd += std::sqrt(d2 / static_cast<double>(px.size()));
  }
  q.seg_snr /= static_cast<double>(std::max<size_t>(active, 1));
  q.lsd /= static_cast<double>(std::max<size_t>(active, 1));
  q.leak_db = 10 * std::log10((leak_e + 1e-9) / (other_e + 1e-9));
  return q;
}

// The packets of the one logical stream in an Ogg byte string (pages CRC-checked by the tests, not here).
std::vector<std::vector<uint8_t>> ogg_packets(const std::vector<uint8_t>& b, int64_t* final_granule) {
  std::vector<std::vector<uint8_t>> packets;
  std::vector<uint8_t> cur;
  size_t at = 0;
  while (at + 27 <= b.size() && b[at] == 'O' && b[at + 1] == 'g' && b[at + 2] == 'g' && b[at + 3] == 'S') {
    int64_t g = 0;
    for (int i = 7; i >= 0; --i) g = (g << 8) | b[at + 6 + static_cast<size_t>(i)];
    *final_granule = g;
    const size_t segs = b[at + 26];
    size_t body = at + 27 + segs;
    for (size_t s = 0; s < segs; ++s) {
      const size_t len = b[at + 27 + s];
      cur.insert(cur.end(), b.begin() + static_cast<std::ptrdiff_t>(body),
                 b.begin() + static_cast<std::ptrdiff_t>(body + len));
      body += len;
      if (len < 255) packets.push_back(std::move(cur)), cur.clear();
    }
    at = body;
  }
  return packets;
}

struct Setting {
  std::string name;
  int complexity = 5;
  bool recorder = true;  // through CallRecorder; otherwise libopus directly
  int packet_ms = 20;
  bool wideband = false;
  bool dtx = false;
  // state
  osvi::audio::MemorySink sink{1 << 20};
  std::optional<osvi::audio::CallRecorder> rec;
  ::OpusEncoder* enc = nullptr;
  std::vector<std::vector<uint8_t>> packets;  // libopus rows
  std::vector<int16_t> pending;               // libopus rows: the packet being filled, interleaved
  std::vector<double> us;
  uint64_t bytes = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::atoi(argv[1]) : 120;
  if (seconds < 16) {
    std::fprintf(stderr, "usage: recording_quality_bench [seconds_of_audio>=16]\n");
    return 1;
  }
  const size_t n = static_cast<size_t>(seconds) * kRate;
  const std::vector<int16_t> caller_speech = osvi::test::librivox_speech();
  const std::vector<int16_t> agent_speech = osvi::test::espeak_speech(
      "Thank you for calling the front desk. Your appointment is confirmed for Tuesday at ten thirty in the "
      "morning. Is there anything else I can help you with today? Please hold while I check the schedule. "
      "The clinic opens at eight and closes at six on weekdays. I have noted your new phone number.");
  std::vector<int16_t> left(n, 0), right(n, 0);
  const size_t cycle = 8 * kRate;
  size_t ca = 0, ag = 0;  // positions in the two sources, so no turn repeats the one before it
  for (size_t i = 0; i < n; ++i) {
    const size_t t = i % cycle;
    if (t < 35 * kRate / 10) right[i] = agent_speech[ag++ % agent_speech.size()];
    if (t >= 3 * kRate && t < 75 * kRate / 10) left[i] = caller_speech[ca++ % caller_speech.size()];
  }
  std::vector<int16_t> stereo(2 * n);
  for (size_t i = 0; i < n; ++i) stereo[2 * i] = left[i], stereo[2 * i + 1] = right[i];

  std::vector<Setting> settings;
  for (int c : {0, 1, 2, 3, 4, 5, 10}) {
    Setting s;
    s.name = "recorder, complexity " + std::to_string(c);
    s.complexity = c;
    settings.push_back(std::move(s));
  }
  auto bare = [&](const char* name, int c, int ms, bool wb, bool dtx) {
    Setting s;
    s.name = name;
    s.complexity = c, s.recorder = false, s.packet_ms = ms, s.wideband = wb, s.dtx = dtx;
    settings.push_back(std::move(s));
  };
  bare("libopus as the recorder, complexity 1", 1, 20, false, false);
  bare("  + fixed wideband (OPUS_SET_BANDWIDTH)", 1, 20, true, false);
  bare("  + DTX", 1, 20, false, true);
  bare("  40 ms packets", 1, 40, false, false);
  bare("  60 ms packets", 1, 60, false, false);
  bare("libopus as the recorder, complexity 5, 60 ms packets", 5, 60, false, false);

  for (auto& s : settings) {
    s.us.reserve(n / kFrame);
    if (s.recorder) {
      osvi::audio::RecordingConfig rc;
      rc.rate = kRate;
      rc.frame_ms = 20;
      rc.bitrate = kBitrate;
      rc.complexity = s.complexity;
      rc.call_id = "quality";
      auto r = osvi::audio::CallRecorder::create(s.sink, rc);
      if (!r) return 1;
      s.rec.emplace(std::move(*r));
      continue;
    }
    int err = 0;
    s.enc = opus_encoder_create(kRate, 2, OPUS_APPLICATION_VOIP, &err);
    if (!s.enc || err != OPUS_OK) return 1;
    opus_encoder_ctl(s.enc, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE));
    opus_encoder_ctl(s.enc, OPUS_SET_BITRATE(kBitrate));
    opus_encoder_ctl(s.enc, OPUS_SET_COMPLEXITY(s.complexity));
    if (s.wideband) opus_encoder_ctl(s.enc, OPUS_SET_BANDWIDTH(OPUS_BANDWIDTH_WIDEBAND));
    if (s.dtx) opus_encoder_ctl(s.enc, OPUS_SET_DTX(1));
  }

  // Encode, all settings per 20 ms frame in turn.
  std::vector<uint8_t> packet(1500);
  for (size_t at = 0; at + kFrame <= n; at += kFrame) {
    const std::span<const int16_t> l(left.data() + at, kFrame), r(right.data() + at, kFrame);
    // The first encoder of a frame meets colder caches: each setting takes every place in turn.
    for (size_t j = 0; j < settings.size(); ++j) {
      Setting& s = settings[(at / kFrame + j) % settings.size()];
      const double t0 = cpu_us();
      if (s.recorder) {
        if (!s.rec->push(l, r)) return 3;
      } else {
        s.pending.insert(s.pending.end(), stereo.begin() + static_cast<std::ptrdiff_t>(2 * at),
                         stereo.begin() + static_cast<std::ptrdiff_t>(2 * (at + kFrame)));
        const size_t per = static_cast<size_t>(s.packet_ms) * kRate / 1000;
        if (s.pending.size() == 2 * per) {
          const opus_int32 b = opus_encode(s.enc, s.pending.data(), static_cast<int>(per), packet.data(),
                                           static_cast<opus_int32>(packet.size()));
          if (b < 0) return 3;
          s.packets.emplace_back(packet.begin(), packet.begin() + b);
          s.bytes += static_cast<uint64_t>(b);
          s.pending.clear();
        }
      }
      s.us.push_back(cpu_us() - t0);
    }
  }

  std::printf(
      "%d s of 16 kHz stereo (left LibriVox caller, right espeak-ng agent, 8 s turns with 0.5 s of double "
      "talk), %d kbit/s, VOIP, signal voice\n",
      seconds, kBitrate / 1000);
  std::printf("%-52s %7s %7s %7s | %7s %7s %6s | %7s %7s %6s\n", "setting", "cpu p50", "mean", "kbit/s",
              "L snr", "L lsd", "L leak", "R snr", "R lsd", "R leak");
  int status = 0;
  for (auto& s : settings) {
    // Decode what a listener gets.
    int err = 0;
    ::OpusDecoder* dec = opus_decoder_create(kRate, 2, &err);
    if (!dec || err != OPUS_OK) return 1;
    std::vector<int16_t> decoded;
    std::vector<int16_t> pcm(2 * 2880);
    size_t skip = 0, keep = n;
    std::vector<std::vector<uint8_t>> packets;
    if (s.recorder) {
      const auto summary = s.rec->finish();
      if (!summary) return 4;
      s.bytes = summary->bytes;
      int64_t granule = 0;
      packets = ogg_packets(s.sink.bytes(), &granule);
      if (packets.size() < 3) return 4;
      const int pre_skip = packets[0][10] | (packets[0][11] << 8);  // OpusHead, 48 kHz units
      packets.erase(packets.begin(), packets.begin() + 2);
      skip = static_cast<size_t>(pre_skip / 3);
      keep = static_cast<size_t>((granule - pre_skip) / 3);
      if (keep != n) {
        std::fprintf(stderr, "%s: %zu samples in the file, %zu pushed\n", s.name.c_str(), keep, n);
        status = 4;
      }
    } else {
      opus_int32 lookahead = 0;
      opus_encoder_ctl(s.enc, OPUS_GET_LOOKAHEAD(&lookahead));
      skip = static_cast<size_t>(lookahead);
      packets = std::move(s.packets);
    }
    for (const auto& p : packets) {
      const int got = opus_decode(dec, p.data(), static_cast<opus_int32>(p.size()), pcm.data(), 2880, 0);
      if (got < 0) return 4;
      decoded.insert(decoded.end(), pcm.begin(), pcm.begin() + 2 * got);
    }
    opus_decoder_destroy(dec);
    if (s.enc) opus_encoder_destroy(s.enc);
    std::vector<int16_t> dl(n, 0), dr(n, 0);
    for (size_t i = 0; i < keep && skip + i < decoded.size() / 2; ++i) {
      dl[i] = decoded[2 * (skip + i)];
      dr[i] = decoded[2 * (skip + i) + 1];
    }
    const Quality ql = quality(left, dl, right), qr = quality(right, dr, left);
    const auto cs = osvi::bench::stats(s.us);
    std::printf("%-52s %7.1f %7.1f %7.1f | %7.2f %7.2f %6.1f | %7.2f %7.2f %6.1f\n", s.name.c_str(), cs.p50,
                cs.mean, static_cast<double>(s.bytes) * 8 / 1000 / seconds, ql.seg_snr, ql.lsd, ql.leak_db,
                qr.seg_snr, qr.lsd, qr.leak_db);
  }
  std::printf(
      "cpu: us per 20 ms frame (libopus rows with longer packets encode every 2nd/3rd frame: read the mean); "
      "snr: segmental SNR dB (higher is better); lsd: log-spectral distance dB (lower is better); leak: the "
      "other voice in this channel while it is silent, dB (lower is better)\n");
  return status;
}
