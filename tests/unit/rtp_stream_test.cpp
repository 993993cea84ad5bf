// RtpStream over loopback: two streams talking (PCMU, PCMA, Opus), a lossy reordering relay, DTMF, latching,
// SSRC change, media timeout, telephone-event dedup, garbage, barge-in. Each test runs about a second.
#include "osvi/hal/rtp_stream.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "osvi/audio/g711.hpp"
#include "osvi/hal/rtp_packet.hpp"

namespace osvi::hal {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A plain UDP socket on 127.0.0.1 (the relay, a raw sender, a wrong address nobody reads).
struct Udp {
  UniqueFd fd;
  uint16_t port = 0;
  Udp() {
    fd = UniqueFd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  void send_to(uint16_t to, std::span<const uint8_t> data) const {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(to);
    ::sendto(fd.get(), data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
};

std::unique_ptr<RtpStream> make_stream(RtpStreamOptions o, RtpSockets* out_sockets = nullptr,
                                       uint16_t* port = nullptr) {
  auto sockets = RtpSockets::bind("127.0.0.1", 0, 0);
  EXPECT_TRUE(sockets) << sockets.error().message;
  if (port) *port = sockets->rtp_port();
  (void)out_sockets;
  auto s = RtpStream::create(std::move(o), std::move(*sockets));
  EXPECT_TRUE(s) << s.error().message;
  return std::move(*s);
}

RtpStreamOptions options(RtpCodec codec) {
  RtpStreamOptions o;
  o.codec = codec;
  o.payload_type = codec == RtpCodec::pcmu ? 0 : codec == RtpCodec::pcma ? 8 : 111;
  o.dtmf_payload_type = 101;
  o.rate = codec == RtpCodec::opus ? 16000 : 8000;
  o.remote_ip = "127.0.0.1";
  o.media_timeout_ms = 0;
  return o;
}

// The loop side of one stream: keeps `tone` queued, collects capture and events.
struct Side {
  Side(RtpStream* stream, double tone) : s(stream), freq(tone) {}
  RtpStream* s = nullptr;
  double freq = 0;  // 0: queue nothing
  double amplitude = 8000;
  double phase = 0;
  std::vector<int16_t> captured;
  std::vector<StreamEvent> events;
  std::string digits;

  void feed() {
    if (freq <= 0) return;
    const int rate = s->options().rate;
    while (s->playback_queued() < static_cast<size_t>(rate / 10)) {
      std::vector<int16_t> chunk(s->period_frames());
      for (auto& x : chunk) {
        x = static_cast<int16_t>(amplitude * std::sin(phase));
        phase += 2 * M_PI * freq / rate;
      }
      if (s->queue_playback(chunk) == 0) break;
    }
  }
  void pump() {
    StreamEvent ev[16];
    const size_t n = s->drain_events(ev);
    for (size_t i = 0; i < n; ++i) {
      events.push_back(ev[i]);
      if (ev[i].kind == StreamEventKind::dtmf) digits.push_back(ev[i].digit);
    }
    std::vector<int16_t> cap(s->period_frames()), ref(s->period_frames());
    while (s->read_frame(cap, ref)) captured.insert(captured.end(), cap.begin(), cap.end());
    feed();
  }
  bool has(StreamEventKind k) const {
    for (const auto& e : events)
      if (e.kind == k) return true;
    return false;
  }
};

// Runs the loop sides for `d` (or until done() says so).
template <class Done>
void run(std::vector<Side*> sides, std::chrono::milliseconds d, Done done) {
  const auto end = Clock::now() + d;
  while (Clock::now() < end) {
    std::vector<pollfd> fds;
    for (auto* s : sides) fds.push_back({s->s->event_fd(), POLLIN, 0});
    ::poll(fds.data(), fds.size(), 10);
    for (auto* s : sides) s->pump();
    if (done()) return;
  }
}
void run(std::vector<Side*> sides, std::chrono::milliseconds d) {
  run(std::move(sides), d, [] { return false; });
}

// Level and purity of `freq` over the last `seconds` of x: RMS and the share of energy in that bin.
struct Tone {
  double rms = 0;
  double purity = 0;
};
Tone measure(const std::vector<int16_t>& x, int rate, double freq, double seconds) {
  const size_t n = std::min(x.size(), static_cast<size_t>(seconds * rate));
  Tone t;
  if (n == 0) return t;
  double energy = 0, re = 0, im = 0;
  for (size_t i = x.size() - n; i < x.size(); ++i) {
    const double v = x[i];
    energy += v * v;
    const double w = 2 * M_PI * freq * static_cast<double>(i) / rate;
    re += v * std::cos(w);
    im += v * std::sin(w);
  }
  t.rms = std::sqrt(energy / static_cast<double>(n));
  t.purity = energy > 0 ? (re * re + im * im) * 2 / (static_cast<double>(n) * energy) : 0;
  return t;
}

class RtpCodecs : public ::testing::TestWithParam<RtpCodec> {};

TEST_P(RtpCodecs, ToneCrossesBothWaysAtItsLevel) {
  uint16_t pa = 0, pb = 0;
  auto oa = options(GetParam());
  auto ob = options(GetParam());
  // Each needs the other's port: bind first, then create.
  auto sa = RtpSockets::bind("127.0.0.1", 0, 0);
  auto sb = RtpSockets::bind("127.0.0.1", 0, 0);
  ASSERT_TRUE(sa && sb);
  pa = sa->rtp_port();
  pb = sb->rtp_port();
  oa.remote_rtp_port = pb;
  ob.remote_rtp_port = pa;
  auto a = RtpStream::create(oa, std::move(*sa));
  auto b = RtpStream::create(ob, std::move(*sb));
  ASSERT_TRUE(a && b);
  Side A{a->get(), 1000}, B{b->get(), 440};
  ASSERT_TRUE((*a)->start());
  ASSERT_TRUE((*b)->start());
  run({&A, &B}, 1500ms);
  (*a)->stop();
  (*b)->stop();
  const int rate = oa.rate;
  const Tone at_b = measure(B.captured, rate, 1000, 0.8);
  const Tone at_a = measure(A.captured, rate, 440, 0.8);
  const double expected = 8000 / std::sqrt(2.0);
  EXPECT_GT(at_b.purity, 0.9);
  EXPECT_GT(at_a.purity, 0.9);
  EXPECT_NEAR(at_b.rms, expected, expected * 0.15);
  EXPECT_NEAR(at_a.rms, expected, expected * 0.15);
  EXPECT_TRUE(A.has(StreamEventKind::opened));
  const auto ra = (*a)->rtp_stats();
  const auto rb = (*b)->rtp_stats();
  EXPECT_GT(ra.packets_sent, 60u);
  EXPECT_GT(rb.packets_received, 60u);
  EXPECT_EQ(rb.packets_lost, 0u);
  EXPECT_EQ(rb.packets_invalid, 0u);
  EXPECT_EQ(ra.packets_invalid, 0u);
  EXPECT_GT((*b)->stats().periods, 60u);
}

// Forwards A <-> B; from A to B it drops every 20th packet (5 %) and holds every 7th back behind the next.
struct Relay {
  Udp sock;
  uint16_t a_port = 0, b_port = 0;
  std::atomic<bool> stop{false};
  std::thread thread;
  void start() {
    thread = std::thread([this] {
      uint8_t buf[2048];
      std::vector<uint8_t> held;
      uint16_t held_to = 0;
      int count = 0;
      while (!stop.load()) {
        pollfd p{sock.fd.get(), POLLIN, 0};
        ::poll(&p, 1, 5);
        sockaddr_in from{};
        socklen_t len = sizeof from;
        const ssize_t n =
            ::recvfrom(sock.fd.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (n <= 0) continue;
        const uint16_t to = ntohs(from.sin_port) == a_port ? b_port : a_port;
        if (to == a_port) {
          sock.send_to(to, std::span<const uint8_t>(buf, static_cast<size_t>(n)));
          continue;
        }
        ++count;
        if (count % 20 == 0) continue;
        if (count % 7 == 0 && held.empty()) {
          held.assign(buf, buf + n);
          held_to = to;
          continue;
        }
        sock.send_to(to, std::span<const uint8_t>(buf, static_cast<size_t>(n)));
        if (!held.empty()) {
          sock.send_to(held_to, held);
          held.clear();
        }
      }
    });
  }
  ~Relay() {
    stop.store(true);
    if (thread.joinable()) thread.join();
  }
};

TEST_P(RtpCodecs, LossyReorderingPathIsConcealedAndToneSurvives) {
  {
    const RtpCodec codec = GetParam();
    Relay relay;
    auto sa = RtpSockets::bind("127.0.0.1", 0, 0);
    auto sb = RtpSockets::bind("127.0.0.1", 0, 0);
    ASSERT_TRUE(sa && sb);
    relay.a_port = sa->rtp_port();
    relay.b_port = sb->rtp_port();
    auto oa = options(codec);
    auto ob = options(codec);
    oa.remote_rtp_port = relay.sock.port;
    ob.remote_rtp_port = relay.sock.port;
    auto a = RtpStream::create(oa, std::move(*sa));
    auto b = RtpStream::create(ob, std::move(*sb));
    ASSERT_TRUE(a && b);
    relay.start();
    Side A{a->get(), 1000}, B{b->get(), 0};
    ASSERT_TRUE((*a)->start());
    ASSERT_TRUE((*b)->start());
    run({&A, &B}, 2000ms);
    (*a)->stop();
    (*b)->stop();
    const auto st = (*b)->rtp_stats();
    // 100 packets, 5 dropped; the last ones may still be inside the 32-packet loss window.
    EXPECT_GE(st.packets_lost, 3u);
    EXPECT_LE(st.packets_lost, 5u);
    EXPECT_GT(st.packets_reordered, 2u);
    EXPECT_GE(st.concealed_frames, st.packets_lost);
    EXPECT_GT(st.playout_delay_ms, 0u);
    const Tone t = measure(B.captured, oa.rate, 1000, 1.2);
    EXPECT_GT(t.purity, 0.7);
    EXPECT_GT(t.rms, 8000 / std::sqrt(2.0) * 0.6);
  }
}

TEST(RtpStream, DtmfBothWays) {
  // The event clock is the codec's RTP clock: 8 kHz for PCMU, 48 kHz for Opus.
  for (RtpCodec codec : {RtpCodec::pcmu, RtpCodec::opus}) {
    SCOPED_TRACE(std::string(to_string(codec)));
    auto x = RtpSockets::bind("127.0.0.1", 0, 0);
    auto y = RtpSockets::bind("127.0.0.1", 0, 0);
    ASSERT_TRUE(x && y);
    auto ox = options(codec);
    auto oy = options(codec);
    ox.remote_rtp_port = y->rtp_port();
    oy.remote_rtp_port = x->rtp_port();
    auto a = RtpStream::create(ox, std::move(*x));
    auto b = RtpStream::create(oy, std::move(*y));
    ASSERT_TRUE(a && b);
    Side A{a->get(), 0}, B{b->get(), 0};
    ASSERT_TRUE((*a)->start());
    ASSERT_TRUE((*b)->start());
    ASSERT_TRUE((*a)->send_dtmf("123#"));
    ASSERT_TRUE((*b)->send_dtmf("*9D"));
    run({&A, &B}, 2500ms, [&] { return B.digits.size() >= 4 && A.digits.size() >= 3; });
    run({&A, &B}, 200ms);  // nothing more may follow (the repeated end packets are one digit)
    EXPECT_EQ(B.digits, "123#");
    EXPECT_EQ(A.digits, "*9D");
    EXPECT_EQ((*a)->rtp_stats().dtmf_sent, 4u);
    EXPECT_EQ((*b)->rtp_stats().dtmf_received, 4u);
    // The voice pause while an event plays is silence at the far end, not loss to conceal.
    EXPECT_EQ((*b)->rtp_stats().concealed_frames, 0u);
    EXPECT_EQ((*a)->rtp_stats().concealed_frames, 0u);
  }
}

TEST(RtpStream, SendDtmfRefusals) {
  auto o = options(RtpCodec::pcmu);
  o.dtmf_payload_type = 0;
  auto s = make_stream(o);
  EXPECT_FALSE(s->send_dtmf("1"));
  auto t = make_stream(options(RtpCodec::pcmu));
  EXPECT_FALSE(t->send_dtmf("1x"));
  EXPECT_TRUE(t->send_dtmf(std::string(32, '5')));
  EXPECT_FALSE(t->send_dtmf("5"));  // queue of 32 full (not started: nothing drains it)
}

TEST(RtpStream, CreateRefusesBadOptions) {
  auto bad = [](auto edit) {
    auto o = options(RtpCodec::pcmu);
    edit(o);
    auto sockets = RtpSockets::bind("127.0.0.1", 0, 0);
    return !RtpStream::create(o, std::move(*sockets));
  };
  EXPECT_TRUE(bad([](RtpStreamOptions& o) { o.rate = 16000; }));
  EXPECT_TRUE(bad([](RtpStreamOptions& o) { o.ptime_ms = 30; }));
  EXPECT_TRUE(bad([](RtpStreamOptions& o) { o.jitter_min_ms = 300; }));
  EXPECT_TRUE(bad([](RtpStreamOptions& o) { o.payload_type = 101; }));
  EXPECT_TRUE(bad([](RtpStreamOptions& o) { o.remote_ip = "pbx.example"; }));
  EXPECT_TRUE(bad([](RtpStreamOptions& o) { o.payload_type = 200; }));
}

TEST(RtpStream, SocketsFromARange) {
  // A private range of two pairs: the third bind finds none free.
  Udp probe;
  const uint16_t base = static_cast<uint16_t>((probe.port & ~1u) > 60000 ? 40000 : (probe.port & ~1u) + 2);
  auto first = RtpSockets::bind("127.0.0.1", base, static_cast<uint16_t>(base + 3));
  auto second = RtpSockets::bind("127.0.0.1", base, static_cast<uint16_t>(base + 3));
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(first->rtp_port() % 2, 0);
  EXPECT_NE(first->rtp_port(), second->rtp_port());
  EXPECT_FALSE(RtpSockets::bind("127.0.0.1", base, static_cast<uint16_t>(base + 3)));
  EXPECT_FALSE(RtpSockets::bind("not-an-ip", 0, 0));
}

// Raw RTP from a test socket: PCMU packets of a tone, with a chosen SSRC, sequence and timestamp base.
struct RawSender {
  Udp sock;
  uint16_t seq = 0;
  uint32_t ts = 0;
  uint32_t ssrc = 1;
  double phase = 0;
  void voice(uint16_t to, size_t samples = 160) {
    std::vector<uint8_t> payload(samples);
    for (auto& b : payload) {
      b = audio::ulaw_encode(static_cast<int16_t>(8000 * std::sin(phase)));
      phase += 2 * M_PI * 1000 / 8000;
    }
    rtp::Header h;
    h.payload_type = 0;
    h.seq = seq++;
    h.timestamp = ts;
    h.ssrc = ssrc;
    ts += static_cast<uint32_t>(samples);
    std::vector<uint8_t> out(12 + samples);
    out.resize(rtp::build(h, payload, out));
    sock.send_to(to, out);
  }
  void event(uint16_t to, uint8_t ev, uint32_t event_ts, bool end, uint16_t duration, bool marker = false) {
    rtp::TelephoneEvent e;
    e.event = ev;
    e.end = end;
    e.duration = duration;
    uint8_t payload[4];
    rtp::build_telephone_event(e, payload);
    rtp::Header h;
    h.payload_type = 101;
    h.marker = marker;
    h.seq = seq++;
    h.timestamp = event_ts;
    h.ssrc = ssrc;
    std::vector<uint8_t> out(16);
    rtp::build(h, payload, out);
    sock.send_to(to, out);
  }
};

// Sends `n` 20 ms voice packets in real time while the side's loop runs.
void stream_voice(RawSender& tx, uint16_t to, Side& side, int n, size_t samples = 160) {
  auto next = Clock::now();
  for (int i = 0; i < n; ++i) {
    tx.voice(to, samples);
    next += std::chrono::microseconds(samples * 125);
    run({&side}, std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now()));
  }
}

TEST(RtpStream, SymmetricRtpLatchesOnTheSource) {
  Udp nobody;  // the SDP's address: nobody reads there
  uint16_t port = 0;
  auto o = options(RtpCodec::pcmu);
  o.remote_rtp_port = nobody.port;
  auto s = make_stream(o, nullptr, &port);
  Side side{s.get(), 440};
  ASSERT_TRUE(s->start());
  RawSender tx;
  stream_voice(tx, port, side, 10);
  // Our packets now go where the far end's come from.
  uint8_t buf[2048];
  int got = 0;
  run({&side}, 100ms);
  while (::recv(tx.sock.fd.get(), buf, sizeof buf, 0) > 0) {
    auto p = rtp::parse(std::span<const uint8_t>(buf, 172));
    if (p && p->header.payload_type == 0) ++got;
  }
  EXPECT_GT(got, 3);
  // A re-INVITE naming the same SDP address again keeps the latched destination.
  s->set_remote("127.0.0.1", nobody.port, 0);
  run({&side}, 100ms);
  got = 0;
  while (::recv(tx.sock.fd.get(), buf, sizeof buf, 0) > 0) ++got;
  EXPECT_GT(got, 3);
  // One stray datagram from elsewhere does not steal the media; a source sending in sequence does.
  RawSender other;
  other.ssrc = 77;
  other.voice(port);
  run({&side}, 100ms);
  int to_other = 0;
  while (::recv(other.sock.fd.get(), buf, sizeof buf, 0) > 0) ++to_other;
  EXPECT_EQ(to_other, 0);
  stream_voice(other, port, side, 6);
  run({&side}, 100ms);
  while (::recv(other.sock.fd.get(), buf, sizeof buf, 0) > 0) ++to_other;
  EXPECT_GT(to_other, 2);
  s->stop();
}

TEST(RtpStream, SsrcChangeStartsOverOnTheNewTimeline) {
  uint16_t port = 0;
  auto o = options(RtpCodec::pcmu);
  o.remote_rtp_port = 9;  // discard: the test does not read what the stream sends
  o.jitter_min_ms = 80;
  auto s = make_stream(o, nullptr, &port);
  Side side{s.get(), 0};
  ASSERT_TRUE(s->start());
  RawSender tx;
  tx.ssrc = 0x1111;
  tx.seq = 65500;  // wraps during the test
  tx.ts = 0xfffff000u;
  stream_voice(tx, port, side, 25);
  tx.ssrc = 0x2222;
  tx.seq = 7;
  tx.ts = 123456789;
  stream_voice(tx, port, side, 25);
  run({&side}, 100ms);
  s->stop();
  const auto st = s->rtp_stats();
  EXPECT_EQ(st.packets_received, 50u);
  EXPECT_EQ(st.packets_lost, 0u);
  EXPECT_LE(st.packets_late, 1u);
  const Tone t = measure(side.captured, 8000, 1000, 0.3);
  EXPECT_GT(t.purity, 0.8);
  EXPECT_GT(t.rms, 4000);
}

TEST(RtpStream, ThirtyAndFortyMillisecondPeers) {
  for (size_t samples : {240u, 320u}) {
    uint16_t port = 0;
    auto o = options(RtpCodec::pcmu);
    o.remote_rtp_port = 9;
    o.jitter_min_ms = 80;  // the test sender's pacing is not the subject: headroom for a loaded box
    auto s = make_stream(o, nullptr, &port);
    Side side{s.get(), 0};
    ASSERT_TRUE(s->start());
    RawSender tx;
    stream_voice(tx, port, side, static_cast<int>(8000 / samples), samples);  // one second
    s->stop();
    const Tone t = measure(side.captured, 8000, 1000, 0.5);
    EXPECT_GT(t.purity, 0.9) << samples;
    EXPECT_EQ(s->rtp_stats().packets_late, 0u) << samples;
  }
}

TEST(RtpStream, MediaTimeoutLostAndBack) {
  uint16_t port = 0;
  auto o = options(RtpCodec::pcmu);
  o.remote_rtp_port = 9;
  o.media_timeout_ms = 200;
  auto s = make_stream(o, nullptr, &port);
  Side side{s.get(), 0};
  ASSERT_TRUE(s->start());
  run({&side}, 1000ms, [&] { return side.has(StreamEventKind::device_lost); });
  ASSERT_TRUE(side.has(StreamEventKind::device_lost));
  for (const auto& e : side.events)
    if (e.kind == StreamEventKind::device_lost) {
      EXPECT_EQ(e.error, -ETIMEDOUT);
      EXPECT_EQ(e.direction, StreamDirection::capture);
    }
  EXPECT_FALSE(s->stats().device_open);
  RawSender tx;
  stream_voice(tx, port, side, 3);
  run({&side}, 200ms, [&] { return side.has(StreamEventKind::device_back); });
  EXPECT_TRUE(side.has(StreamEventKind::device_back));
  EXPECT_EQ(s->stats().device_losses, 1u);
  s->stop();
}

TEST(RtpStream, TelephoneEventEndsAreReportedOnce) {
  uint16_t port = 0;
  auto o = options(RtpCodec::pcmu);
  o.remote_rtp_port = 9;
  auto s = make_stream(o, nullptr, &port);
  Side side{s.get(), 0};
  ASSERT_TRUE(s->start());
  RawSender tx;
  // '5': start, updates, three ends, then a straggling end again.
  tx.event(port, 5, 1000, false, 160, true);
  tx.event(port, 5, 1000, false, 320);
  tx.event(port, 5, 1000, true, 800);
  tx.event(port, 5, 1000, true, 800);
  tx.event(port, 5, 1000, true, 800);
  // '7': only its end packets arrive.
  tx.event(port, 7, 3000, true, 800);
  tx.event(port, 7, 3000, true, 800);
  tx.event(port, 5, 1000, true, 800);  // reordered straggler of '5'
  // '8' loses every end packet; '9' starting reports it.
  tx.event(port, 8, 5000, false, 160, true);
  tx.event(port, 9, 7000, false, 160, true);
  tx.event(port, 9, 7000, true, 800);
  run({&side}, 1000ms, [&] { return side.digits.size() >= 4; });
  run({&side}, 100ms);
  EXPECT_EQ(side.digits, "5789");
  EXPECT_EQ(s->rtp_stats().dtmf_received, 4u);
  s->stop();
}

TEST(RtpStream, ComfortNoiseIsSilenceNotLoss) {
  uint16_t port = 0;
  auto o = options(RtpCodec::pcmu);
  o.remote_rtp_port = 9;
  auto s = make_stream(o, nullptr, &port);
  Side side{s.get(), 0};
  ASSERT_TRUE(s->start());
  RawSender tx;
  stream_voice(tx, port, side, 10);
  // RFC 3389: one CN packet (a noise level byte), then the far end sends nothing while silent.
  rtp::Header h;
  h.payload_type = rtp::kComfortNoisePt;
  h.seq = tx.seq++;
  h.timestamp = tx.ts;
  h.ssrc = tx.ssrc;
  const uint8_t level[1] = {60};
  uint8_t out[16];
  tx.sock.send_to(port, std::span<const uint8_t>(out, rtp::build(h, level, out)));
  run({&side}, 400ms);
  s->stop();
  const auto st = s->rtp_stats();
  EXPECT_EQ(st.comfort_noise, 1u);
  EXPECT_EQ(st.packets_received, 11u);
  EXPECT_EQ(st.concealed_frames, 0u);
  EXPECT_EQ(st.packets_lost, 0u);
  // The last 200 ms are silence.
  EXPECT_LT(measure(side.captured, 8000, 1000, 0.2).rms, 1.0);
}

TEST(RtpStream, GarbageIsCountedInvalid) {
  uint16_t port = 0;
  auto o = options(RtpCodec::pcmu);
  o.remote_rtp_port = 9;
  auto s = make_stream(o, nullptr, &port);
  Side side{s.get(), 0};
  ASSERT_TRUE(s->start());
  Udp tx;
  const std::vector<std::vector<uint8_t>> junk = {
      {1, 2, 3},
      std::vector<uint8_t>(12, 0),                            // version 0
      {0x80, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0},  // RTCP on the RTP port
      {0x80, 99, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xff},         // unknown payload type
      {0x8f, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1},                // CSRCs missing
      {0x80, 101, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 5},           // telephone-event too short
      {0x80, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1},                // PCMU with no samples
      std::vector<uint8_t>(3000, 0x80),                       // oversized
  };
  for (const auto& j : junk) tx.send_to(port, j);
  run({&side}, 300ms, [&] { return s->rtp_stats().packets_invalid >= junk.size(); });
  const auto st = s->rtp_stats();
  EXPECT_EQ(st.packets_invalid, junk.size());
  EXPECT_EQ(st.packets_received, 0u);
  s->stop();
}

TEST(RtpStream, BargeInAndDrainCountWhatWasSent) {
  uint16_t port = 0;
  auto o = options(RtpCodec::pcmu);
  o.remote_rtp_port = 9;
  auto s = make_stream(o, nullptr, &port);
  Side side{s.get(), 0};
  ASSERT_TRUE(s->start());
  std::vector<int16_t> speech(8000, 1000);  // one second
  ASSERT_EQ(s->queue_playback(speech), speech.size());
  run({&side}, 200ms);
  s->stop_playback();
  EXPECT_EQ(s->queue_playback(speech), 0u);  // refused while the stop is pending
  run({&side}, 300ms, [&] { return side.has(StreamEventKind::playback_stopped); });
  StreamEvent stopped{};
  for (const auto& e : side.events)
    if (e.kind == StreamEventKind::playback_stopped) stopped = e;
  ASSERT_EQ(stopped.kind, StreamEventKind::playback_stopped);
  EXPECT_EQ(stopped.played + stopped.dropped, speech.size());
  EXPECT_GT(stopped.played, 800u);
  EXPECT_GT(stopped.dropped, 4000u);
  // A short prompt drains: every sample played, reported once.
  side.events.clear();
  ASSERT_EQ(s->queue_playback(std::span<const int16_t>(speech.data(), 800)), 800u);
  run({&side}, 400ms, [&] { return side.has(StreamEventKind::playback_drained); });
  StreamEvent drained{};
  for (const auto& e : side.events)
    if (e.kind == StreamEventKind::playback_drained) drained = e;
  EXPECT_EQ(drained.kind, StreamEventKind::playback_drained);
  EXPECT_EQ(drained.played, 800u);
  s->stop();
}

TEST(RtpStream, HoldSendsNothing) {
  Udp far;
  auto o = options(RtpCodec::pcmu);
  o.remote_rtp_port = far.port;
  auto s = make_stream(o);
  Side side{s.get(), 440};
  s->set_hold(true);
  ASSERT_TRUE(s->start());
  run({&side}, 200ms);
  EXPECT_EQ(s->rtp_stats().packets_sent, 0u);
  s->set_hold(false);
  run({&side}, 200ms);
  EXPECT_GT(s->rtp_stats().packets_sent, 5u);
  // set_remote moves the stream to another address.
  Udp moved;
  s->set_remote("127.0.0.1", moved.port, 0);
  run({&side}, 200ms);
  uint8_t buf[512];
  int got = 0;
  while (::recv(moved.fd.get(), buf, sizeof buf, 0) > 0) ++got;
  EXPECT_GT(got, 3);
  s->stop();
}

INSTANTIATE_TEST_SUITE_P(Codecs, RtpCodecs, ::testing::Values(RtpCodec::pcmu, RtpCodec::pcma, RtpCodec::opus),
                         [](const auto& p) { return std::string(to_string(p.param)); });

}  // namespace
}  // namespace osvi::hal
