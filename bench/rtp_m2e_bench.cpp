// rtp_m2e_bench: the media delay one RtpStream adds to a call (RTP in -> loop -> RTP out), p50/p95/max.
//
// On 127.0.0.1 a plain UDP socket plays the far phone: a sender thread sends correctly headed RTP every
// 20 ms (clock_nanosleep on absolute deadlines, so the far end's clock does not drift), silence except one
// packet every 500 ms that carries a full-scale 1 kHz tone; it records that packet's send time. The box is
// one started hal::RtpStream; the main thread plays the engine with instantaneous processing: it waits on
// event_fd with poll, reads every capture period and queues it straight back (the LineChain works per frame
// and adds no buffering). A receiver thread decodes what the box sends and records the arrival time of the
// first packet over -20 dBFS after each burst; delay = arrival - send. The figure therefore holds the
// loopback network stack both ways, the jitter buffer's playout delay, decode, the capture ring, the loop
// hop, the playback ring, the wait for the box's next send tick and encode; for Opus also the codec's
// look-ahead at both encoders. Detection is per packet, so the figures move in steps of the packet grid.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <opus/opus.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "osvi/audio/g711.hpp"
#include "osvi/hal/rtp_stream.hpp"

namespace {

constexpr int kPtimeMs = 20;
constexpr int kBurstEveryPackets = 25;  // 500 ms
constexpr int kWarmupPackets = 50;      // 1 s: the jitter buffer settles before the first burst
constexpr int kTailPackets = 25;
constexpr int kBurstsPerCall = 5;  // time for the last burst to come back
constexpr double kThresholdDbfs = -20.0;
constexpr uint8_t kOpusPt = 111;

uint64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

double dbfs(const int16_t* s, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += static_cast<double>(s[i]) * s[i];
  const double rms = std::sqrt(sum / static_cast<double>(n));
  return rms > 0 ? 20.0 * std::log10(rms / 32768.0) : -200.0;
}

struct OpusEnc {
  OpusEncoder* p = nullptr;
  ~OpusEnc() {
    if (p) opus_encoder_destroy(p);
  }
};
struct OpusDec {
  OpusDecoder* p = nullptr;
  ~OpusDec() {
    if (p) opus_decoder_destroy(p);
  }
};

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

struct Result {
  std::vector<double> delays_ms;
  int bursts = 0;
  uint32_t playout_min_ms = UINT32_MAX, playout_max_ms = 0;
  uint64_t lost = 0, late = 0, concealed = 0;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

// One call: a fresh stream, the far phone's packets offset by phase_ns from the box's tick grid.
bool run_call(osvi::hal::RtpCodec codec, int jitter_min_ms, int bursts, uint64_t phase_ns, Result* out) {
  using namespace osvi::hal;
  const bool opus = codec == RtpCodec::opus;
  const int rate = opus ? 16000 : 8000;
  const size_t period = static_cast<size_t>(rate / 1000 * kPtimeMs);
  const uint32_t ts_step = opus ? 48000 / 1000 * kPtimeMs : static_cast<uint32_t>(period);

  Fd phone;
  phone.fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof any;
  if (phone.fd < 0 || ::bind(phone.fd, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0 ||
      ::getsockname(phone.fd, reinterpret_cast<sockaddr*>(&any), &len) != 0) {
    std::perror("far phone socket");
    return false;
  }
  timeval tv{0, 50000};  // the receiver checks for the end every 50 ms
  setsockopt(phone.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

  auto sockets = RtpSockets::bind("127.0.0.1", 0, 0);
  if (!sockets) {
    std::fprintf(stderr, "%s\n", sockets.error().message.c_str());
    return false;
  }
  const uint16_t box_port = sockets->rtp_port();
  RtpStreamOptions o;
  o.codec = codec;
  o.payload_type = opus ? kOpusPt : 0;
  o.rate = rate;
  o.ptime_ms = kPtimeMs;
  o.remote_ip = "127.0.0.1";
  o.remote_rtp_port = ntohs(any.sin_port);
  o.jitter_min_ms = jitter_min_ms;
  auto created = RtpStream::create(o, std::move(*sockets));
  if (!created) {
    std::fprintf(stderr, "%s\n", created.error().message.c_str());
    return false;
  }
  std::unique_ptr<RtpStream> box = std::move(*created);
  if (!box->start()) return false;
  // The box's first tick is one period after start(); the phone's first packet lands phase_ns after one.
  const uint64_t call_start = mono_ns();

  OpusEnc enc;
  OpusDec dec;
  if (opus) {
    int err = 0;
    enc.p = opus_encoder_create(16000, 1, OPUS_APPLICATION_VOIP, &err);
    if (err != OPUS_OK) return false;
    dec.p = opus_decoder_create(16000, 1, &err);
    if (err != OPUS_OK) return false;
  }

  std::vector<uint64_t> sent_at(static_cast<size_t>(bursts), 0);
  std::vector<uint64_t> arrived_at(static_cast<size_t>(bursts), 0);
  std::atomic<int> bursts_sent{0};
  std::atomic<bool> done{false};

  // The far phone's mouth: silence, a full-scale tone packet every 500 ms.
  std::thread sender([&] {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(box_port);
    std::vector<int16_t> pcm(period);
    std::vector<uint8_t> pkt(12 + 1500);
    uint16_t seq = 1000;
    uint32_t ts = 123456;
    const uint32_t ssrc = 0x4d324521;
    const int total = kWarmupPackets + bursts * kBurstEveryPackets + kTailPackets;
    uint64_t deadline = call_start + phase_ns;
    for (int i = 0; i < total; ++i) {
      const int since = i - kWarmupPackets;
      const bool burst = since >= 0 && since % kBurstEveryPackets == 0 && since / kBurstEveryPackets < bursts;
      for (size_t k = 0; k < period; ++k)
        pcm[k] = burst
                     ? static_cast<int16_t>(32767 * std::sin(2 * M_PI * 1000 * static_cast<double>(k) / rate))
                     : int16_t{0};
      pkt[0] = 0x80;
      pkt[1] = static_cast<uint8_t>((i == 0 ? 0x80 : 0) | (opus ? kOpusPt : 0));
      pkt[2] = static_cast<uint8_t>(seq >> 8);
      pkt[3] = static_cast<uint8_t>(seq);
      for (int b = 0; b < 4; ++b) {
        pkt[4 + static_cast<size_t>(b)] = static_cast<uint8_t>(ts >> (24 - 8 * b));
        pkt[8 + static_cast<size_t>(b)] = static_cast<uint8_t>(ssrc >> (24 - 8 * b));
      }
      size_t n = 0;
      if (opus) {
        const int r = opus_encode(enc.p, pcm.data(), static_cast<int>(period), pkt.data() + 12, 1500);
        n = r > 0 ? static_cast<size_t>(r) : 0;
      } else {
        for (size_t k = 0; k < period; ++k) pkt[12 + k] = osvi::audio::ulaw_encode(pcm[k]);
        n = period;
      }
      deadline += static_cast<uint64_t>(kPtimeMs) * 1000000u;
      timespec at{static_cast<time_t>(deadline / 1000000000u), static_cast<long>(deadline % 1000000000u)};
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nullptr) == EINTR) {
      }
      const uint64_t now = mono_ns();
      ::sendto(phone.fd, pkt.data(), 12 + n, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
      if (burst) {
        const int b = since / kBurstEveryPackets;
        sent_at[static_cast<size_t>(b)] = now;
        bursts_sent.store(b + 1, std::memory_order_release);
      }
      ++seq;
      ts += ts_step;
    }
    done.store(true);
  });

  // The far phone's ear: the first loud packet after each burst.
  std::thread receiver([&] {
    std::vector<uint8_t> buf(2048);
    std::vector<int16_t> pcm(static_cast<size_t>(rate / 1000 * 120));
    int next = 0;  // the burst we wait for
    while (!done.load()) {
      const ssize_t n = ::recv(phone.fd, buf.data(), buf.size(), 0);
      const uint64_t now = mono_ns();
      if (n < 12 || (buf[0] & 0xc0) != 0x80) continue;
      const size_t cc = buf[0] & 0x0f;
      size_t off = 12 + 4 * cc;
      if (buf[0] & 0x10) {  // header extension
        if (static_cast<size_t>(n) < off + 4) continue;
        off += 4 + 4 * ((static_cast<size_t>(buf[off + 2]) << 8) | buf[off + 3]);
      }
      size_t end = static_cast<size_t>(n);
      if (buf[0] & 0x20) end -= buf[end - 1];  // padding
      if (off >= end) continue;
      size_t samples = 0;
      if (opus) {
        const int r = opus_decode(dec.p, buf.data() + off, static_cast<opus_int32>(end - off), pcm.data(),
                                  static_cast<int>(pcm.size()), 0);
        if (r <= 0) continue;
        samples = static_cast<size_t>(r);
      } else {
        samples = std::min(end - off, pcm.size());
        for (size_t k = 0; k < samples; ++k) pcm[k] = osvi::audio::ulaw_decode(buf[off + k]);
      }
      // Decoded every packet (Opus state), but only a burst already sent can be answered.
      if (next < bursts && next < bursts_sent.load(std::memory_order_acquire) &&
          dbfs(pcm.data(), samples) > kThresholdDbfs) {
        arrived_at[static_cast<size_t>(next)] = now;
        ++next;
      }
    }
  });

  // The engine with instantaneous processing: each capture period straight back as playback.
  std::vector<int16_t> cap(period), ref(period);
  StreamEvent events[16];
  pollfd pfd{box->event_fd(), POLLIN, 0};
  while (!done.load()) {
    poll(&pfd, 1, 50);
    box->drain_events(events);
    while (box->read_frame(cap, ref)) box->queue_playback(cap);
  }
  sender.join();
  receiver.join();
  const RtpStreamStats st = box->rtp_stats();
  box->stop();

  out->bursts += bursts;
  out->playout_min_ms = std::min(out->playout_min_ms, st.playout_delay_ms);
  out->playout_max_ms = std::max(out->playout_max_ms, st.playout_delay_ms);
  out->lost += st.packets_lost;
  out->late += st.packets_late;
  out->concealed += st.concealed_frames;
  for (int b = 0; b < bursts; ++b)
    if (arrived_at[static_cast<size_t>(b)] > sent_at[static_cast<size_t>(b)])
      out->delays_ms.push_back(
          static_cast<double>(arrived_at[static_cast<size_t>(b)] - sent_at[static_cast<size_t>(b)]) / 1e6);
  return true;
}

// The bursts spread over calls whose phases step evenly through one period: the wait for the box's next
// tick depends on where the far phone's packets fall in it, which is fixed within a call and arbitrary
// between calls, so one call alone would report a single point of that spread.
bool run(osvi::hal::RtpCodec codec, int jitter_min_ms, int bursts, Result* out) {
  const int calls = (bursts + kBurstsPerCall - 1) / kBurstsPerCall;
  const uint64_t period_ns = static_cast<uint64_t>(kPtimeMs) * 1000000u;
  for (int c = 0; c < calls; ++c) {
    const int n = std::min(kBurstsPerCall, bursts - c * kBurstsPerCall);
    const uint64_t phase = period_ns * static_cast<uint64_t>(c) / static_cast<uint64_t>(calls);
    if (!run_call(codec, jitter_min_ms, n, phase, out)) return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const int bursts = argc > 1 ? std::atoi(argv[1]) : 60;
  if (bursts < 1 || bursts > 100000) {
    std::fprintf(stderr, "usage: rtp_m2e_bench [bursts 1..100000, default 60]\n");
    return 1;
  }
  bool ok = true;
  for (const int jmin : {20, 40}) {
    for (const auto codec : {osvi::hal::RtpCodec::pcmu, osvi::hal::RtpCodec::opus}) {
      Result r;
      if (!run(codec, jmin, bursts, &r)) return 1;
      std::printf(
          "%-5s jitter_min_ms %2d: added delay p50 %5.1f ms  p95 %5.1f ms  max %5.1f ms  (%zu/%d bursts "
          "detected; playout_delay_ms %u..%u; lost %llu, late %llu, concealed %llu)\n",
          std::string(osvi::hal::to_string(codec)).c_str(), jmin, percentile(r.delays_ms, 0.50),
          percentile(r.delays_ms, 0.95),
          r.delays_ms.empty() ? 0.0 : *std::max_element(r.delays_ms.begin(), r.delays_ms.end()),
          r.delays_ms.size(), r.bursts, r.playout_min_ms, r.playout_max_ms,
          static_cast<unsigned long long>(r.lost), static_cast<unsigned long long>(r.late),
          static_cast<unsigned long long>(r.concealed));
      std::fflush(stdout);
      if (static_cast<int>(r.delays_ms.size()) != r.bursts) ok = false;
    }
  }
  return ok ? 0 : 2;
}
