// ChainRunner: the line chain on the stream's thread, results to the loop through SPSC rings.
#include "osvi/audio/chain_runner.hpp"

#include <opus.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <thread>

#include "ogg_opus.hpp"
#include "osvi/audio/opus.hpp"

namespace osvi::audio {

namespace {
constexpr uint64_t kOffsMask = 0x7fffffffu;
uint64_t offs_of(uint64_t word) {
  return (word >> 1) & kOffsMask;
}

// Utterance records in the byte ring: kind, 0, payload length (little endian), then the payload.
constexpr size_t kRecordHeader = 4;
enum : uint8_t { kBegin = 1, kPacket = 2, kEnd = 3 };
// kEnd's payload: the samples the blob decodes to (8 bytes), the packets it keeps (4 bytes), little endian.
constexpr size_t kEndPayload = 12;
// The two packet limits the loop's UtteranceEncoder used, so the codec makes the same decisions: its
// encode_packet() offers kOpusMaxPacket bytes; OggOpusWriter::finish() encodes the codec-delay flush into
// its own 1500-byte buffer.
constexpr opus_int32 kSpeechPacketMax = static_cast<opus_int32>(kOpusMaxPacket);
constexpr opus_int32 kFlushPacketMax = 1500;

struct EncoderFree {
  void operator()(::OpusEncoder* e) const noexcept { opus_encoder_destroy(e); }
};
}  // namespace

// The caller's utterance: encoded on the thread, its packets assembled on the loop.
struct ChainRunner::Utterance {
  // Fixed at create().
  int rate = 0;
  UtteranceOptions options;
  size_t frame = 0;  // 20 ms at the rate: the Opus frame of an STT blob
  uint64_t lookahead = 0;
  uint64_t cap = 0;  // samples: frames that would pass it are not added
  std::unique_ptr<::OpusEncoder, EncoderFree> enc;
  SpscRing<uint8_t> ring;

  // The thread.
  std::vector<int16_t> history;  // the clean caller, indexed by the chain's sample clock
  uint64_t pos = 0;              // the chain's (the endpointer's) sample clock
  std::vector<int16_t> pending;  // the part of a 20 ms frame not encoded yet
  size_t pending_n = 0;
  std::array<uint8_t, kFlushPacketMax> packet{};
  bool active = false;  // between an Onset and its end, unless dropped
  uint64_t begin = 0;   // the Onset's first sample
  uint64_t samples = 0;
  uint64_t packets = 0;
  uint64_t pushed = 0;  // record bytes pushed so far

  // The loop.
  uint64_t popped = 0;
  std::vector<uint8_t> bytes;   // the open utterance's packets, back to back (capacity kept)
  std::vector<uint16_t> sizes;  // each packet's length
  bool open = false;            // a kBegin seen, its kEnd not yet
  std::optional<Result<std::vector<uint8_t>>> blob;  // ended in the frame next() returned last

  Utterance(size_t ring_bytes) : ring(ring_bytes) {}

  bool record(uint8_t kind, std::span<const uint8_t> payload) noexcept {
    if (ring.writable() < kRecordHeader + payload.size()) return false;
    const std::array<uint8_t, kRecordHeader> h{kind, 0, static_cast<uint8_t>(payload.size() & 0xff),
                                               static_cast<uint8_t>(payload.size() >> 8)};
    ring.push(h);
    ring.push(payload);
    pushed += kRecordHeader + payload.size();
    return true;
  }
  bool encode(const int16_t* pcm, opus_int32 max_bytes) noexcept {
    const opus_int32 n = opus_encode(enc.get(), pcm, static_cast<int>(frame), packet.data(), max_bytes);
    if (n < 0 || !record(kPacket, {packet.data(), static_cast<size_t>(n)})) return false;
    ++packets;
    return true;
  }
  // UtteranceEncoder::push(): whole frames straight from `pcm`, the rest through `pending`.
  bool push(std::span<const int16_t> pcm) noexcept {
    samples += pcm.size();
    while (!pcm.empty()) {
      if (pending_n == 0 && pcm.size() >= frame) {
        if (!encode(pcm.data(), kSpeechPacketMax)) return false;
        pcm = pcm.subspan(frame);
        continue;
      }
      const size_t n = std::min(pcm.size(), frame - pending_n);
      std::copy_n(pcm.begin(), n, pending.begin() + static_cast<std::ptrdiff_t>(pending_n));
      pending_n += n;
      pcm = pcm.subspan(n);
      if (pending_n == frame) {
        pending_n = 0;
        if (!encode(pending.data(), kSpeechPacketMax)) return false;
      }
    }
    return true;
  }
  // The Call's Onset: a fresh codec (a reset state encodes exactly as a new one), then the pre-roll
  // [begin, pos) from the history.
  bool start(uint64_t first_sample) noexcept {
    active = true;
    begin = first_sample;
    samples = packets = 0;
    pending_n = 0;
    if (opus_encoder_ctl(enc.get(), OPUS_RESET_STATE) != OPUS_OK || !record(kBegin, {})) return false;
    const uint64_t avail = std::min<uint64_t>(pos - std::min(pos, first_sample), history.size());
    const size_t at = static_cast<size_t>((pos - avail) % history.size());
    const size_t first = std::min<size_t>(static_cast<size_t>(avail), history.size() - at);
    const std::span<const int16_t> ring_pcm(history);
    return push(ring_pcm.subspan(at, first)) && push(ring_pcm.first(static_cast<size_t>(avail) - first));
  }
  // The Call's SpeechEnd: UtteranceEncoder::finish() up to the packets, so the loop only frames them.
  bool end(uint64_t end_sample) noexcept {
    active = false;
    const uint64_t keep = std::min(end_sample > begin ? end_sample - begin : 0, samples);
    // The decoder's output lags by the lookahead: the last kept sample comes out of packet `need`.
    const uint64_t need = (lookahead + keep + frame - 1) / frame;
    if (packets < need && pending_n > 0) {
      std::fill(pending.begin() + static_cast<std::ptrdiff_t>(pending_n), pending.end(), int16_t{0});
      pending_n = 0;
      if (!encode(pending.data(), kSpeechPacketMax)) return false;
    }
    // OggOpusWriter::finish() flushes the codec delay with silence from the same codec state.
    std::fill(pending.begin(), pending.end(), int16_t{0});
    while (packets < need)
      if (!encode(pending.data(), kFlushPacketMax)) return false;
    std::array<uint8_t, kEndPayload> p{};
    for (size_t i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(keep >> (8 * i));
    for (size_t i = 0; i < 4; ++i) p[8 + i] = static_cast<uint8_t>(need >> (8 * i));
    return record(kEnd, p);
  }

  // The loop: the kept packets framed as Ogg Opus, as UtteranceEncoder::finish() framed them.
  Result<std::vector<uint8_t>> frame_blob(uint64_t keep_samples, uint64_t keep_packets) const {
    MemorySink sink(bytes.size() + 1024);
    const OggOpusSpec spec{.rate = rate,
                           .channels = 1,
                           .frame_ms = 20,
                           .bitrate = options.bitrate,
                           .complexity = options.complexity,
                           .tags = {}};
    // end() encoded every packet the blob needs, the codec delay's flush included, so the blob is muxed
    // without a second libopus state (44 kB made and freed per utterance on the loop's heap, where it left a
    // hole among the calls' long-lived blocks). Short of packets (cannot happen), the codec flushes as
    // before.
    auto writer = sizes.size() >= keep_packets
                      ? OggOpusWriter::create_muxer(sink, spec, static_cast<int>(lookahead))
                      : OggOpusWriter::create(sink, spec);
    if (!writer) return writer.error();
    const size_t n = std::min<size_t>(sizes.size(), static_cast<size_t>(keep_packets));
    size_t at = 0;
    for (size_t i = 0; i < n; ++i) {
      if (auto st = writer->write_packet({bytes.data() + at, sizes[i]}); !st) return st.error();
      at += sizes[i];
    }
    Status st = writer->finish(keep_samples);
    if (!st) return st.error().code == -EIO ? make_error("utterance: out of memory", -ENOMEM) : st.error();
    return sink.take();
  }
};

Result<std::unique_ptr<ChainRunner>> ChainRunner::create(std::unique_ptr<LineChain> chain,
                                                         const ChainRunnerOptions& options) {
  if (!chain) return make_error("chain runner: no chain");
  const Format f = chain->config().format;
  if (options.ring_ms < 2 * f.frame_ms) return make_error("chain runner: ring_ms must hold two frames");
  const auto frames = static_cast<size_t>(options.ring_ms / f.frame_ms);
  std::unique_ptr<ChainRunner> r(new ChainRunner(std::move(chain), frames));
  if (!options.utterance) return r;

  const UtteranceOptions& uo = *options.utterance;
  if (f.rate != 8000 && f.rate != 16000)
    return make_error("chain runner: utterance rate must be 8000 or 16000");
  if (uo.bitrate < 6000 || uo.bitrate > 256000) return make_error("utterance: bitrate must be 6000..256000");
  if (uo.complexity < 0 || uo.complexity > 10) return make_error("utterance: complexity must be 0..10");
  if (options.utterance_history_ms < 0 || options.utterance_history_ms > 5000)
    return make_error("chain runner: utterance_history_ms must be 0..5000");
  if (options.utterance_max_ms < 20) return make_error("chain runner: utterance_max_ms must hold a frame");
  // The ring holds the largest burst (an Onset's pre-roll and the ring's worth of frames the loop may lag,
  // plus the end's flush), each packet at twice the average rate (VBR), at most Opus's largest packet.
  const size_t per_packet =
      kRecordHeader + std::min<size_t>(kOpusMaxPacket, static_cast<size_t>(uo.bitrate) / 400 * 2 + 16);
  const auto packets = static_cast<size_t>((options.utterance_history_ms + options.ring_ms) / 20 + 8);
  auto u = std::make_unique<Utterance>(packets * per_packet + kRecordHeader + kEndPayload);
  u->rate = f.rate;
  u->options = uo;
  u->frame = static_cast<size_t>(f.rate / 50);
  u->cap = static_cast<uint64_t>(f.rate) * static_cast<uint64_t>(options.utterance_max_ms) / 1000;
  // Made and set as OggOpusWriter::create() makes the utterance encoder's codec.
  int err = OPUS_OK;
  u->enc.reset(opus_encoder_create(f.rate, 1, OPUS_APPLICATION_VOIP, &err));
  if (!u->enc || err != OPUS_OK) return make_error(std::string("opus_encoder_create: ") + opus_strerror(err));
  const int requests[][2] = {
      {OPUS_SET_SIGNAL_REQUEST, OPUS_SIGNAL_VOICE},
      {OPUS_SET_BITRATE_REQUEST, uo.bitrate},
      {OPUS_SET_COMPLEXITY_REQUEST, uo.complexity},
  };
  for (const auto& q : requests)
    if (err = opus_encoder_ctl(u->enc.get(), q[0], static_cast<opus_int32>(q[1])); err != OPUS_OK)
      return make_error(std::string("opus_encoder_ctl: ") + opus_strerror(err));
  opus_int32 lookahead = 0;
  if (err = opus_encoder_ctl(u->enc.get(), OPUS_GET_LOOKAHEAD_REQUEST, &lookahead); err != OPUS_OK)
    return make_error(std::string("opus_encoder_ctl: ") + opus_strerror(err));
  u->lookahead = static_cast<uint64_t>(lookahead);
  // Exactly the Call's history (the pre-roll it could copy); never empty, it is indexed modulo its size.
  u->history.assign(std::max<size_t>(1, static_cast<size_t>(f.rate) *
                                            static_cast<size_t>(options.utterance_history_ms) / 1000),
                    0);
  u->pending.assign(u->frame, 0);
  r->utt_ = std::move(u);
  return r;
}

ChainRunner::ChainRunner(std::unique_ptr<LineChain> chain, size_t frames)
    : chain_(std::move(chain)),
      frame_(chain_->config().format.frame_samples()),
      samples_(2 * frame_ * frames),
      meta_(frames),
      clean_(frame_),
      reference_(frame_) {}

ChainRunner::~ChainRunner() = default;

void ChainRunner::set_amd(bool on) noexcept {
  // Only the loop writes the word, so a load and a store make the update.
  const uint64_t w = amd_word_.load(std::memory_order_relaxed);
  const uint64_t calls = (w >> 32) + 1;
  const uint64_t offs = (offs_of(w) + (on ? 0 : 1)) & kOffsMask;
  amd_word_.store(calls << 32 | offs << 1 | (on ? 1u : 0u), std::memory_order_release);
}

void ChainRunner::set_min_speech_ms(int ms) noexcept {
  if (ms < 0 || ms > 5000) return;
  min_speech_ms_.store(ms, std::memory_order_release);
}

void ChainRunner::attach_recorder(CallRecorder* recorder) noexcept {
  // With process()'s store-busy-then-load (all sequentially consistent): once busy reads false after this
  // store, a push() already started has finished (and its writes are visible here), and any later one loads
  // the new pointer.
  rec_.store(recorder, std::memory_order_seq_cst);
  while (rec_busy_.load(std::memory_order_seq_cst)) std::this_thread::yield();
}

void ChainRunner::apply_controls() noexcept {
  const uint64_t w = amd_word_.load(std::memory_order_acquire);
  if (w != amd_seen_) {
    // The calls since the last frame replayed in effect: any false among them first (it re-arms a detector
    // that the next true restarts), then the last value.
    if (offs_of(w) != offs_of(amd_seen_)) chain_->set_amd(false);
    chain_->set_amd((w & 1u) != 0);
    amd_seen_ = w;
  }
  const int ms = min_speech_ms_.load(std::memory_order_acquire);
  if (ms != min_speech_seen_) {
    (void)chain_->set_min_speech_ms(ms);
    min_speech_seen_ = ms;
  }
}

void ChainRunner::process(std::span<const int16_t> capture, std::span<const int16_t> reference) noexcept {
  apply_controls();
  const CaptureOutput& out = chain_->process_capture(capture, reference);
  if (out.clean.empty()) return;  // a period of the wrong size: the stream and the chain disagree
  rec_busy_.store(true, std::memory_order_seq_cst);
  if (CallRecorder* r = rec_.load(std::memory_order_seq_cst); r && !r->push(out.clean, out.reference))
    recorder_errors_.fetch_add(1, std::memory_order_relaxed);
  rec_busy_.store(false, std::memory_order_seq_cst);
  if (utt_) utterance_frame(out);

  if (samples_.writable() < 2 * frame_ || meta_.writable() < 1) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  samples_.push(out.clean);
  samples_.push(out.reference);
  Meta m;
  m.vad = out.vad;
  m.endpoints = out.endpoints;
  m.dtmf = out.dtmf;
  m.tone = out.tone;
  m.amd = out.amd;
  m.beep = out.beep;
  m.utt_pushed = utt_ ? utt_->pushed : 0;
  meta_.push_one(m);
  processed_.fetch_add(1, std::memory_order_relaxed);
}

bool ChainRunner::next(CaptureOutput& out) noexcept {
  Meta m;
  if (!meta_.pop_one(&m)) return false;
  samples_.pop(clean_);
  samples_.pop(reference_);
  out = CaptureOutput{};
  out.clean = clean_;
  out.reference = reference_;
  out.vad = m.vad;
  out.endpoints = m.endpoints;
  out.dtmf = m.dtmf;
  out.tone = m.tone;
  out.amd = m.amd;
  out.beep = m.beep;
  if (utt_) {
    utt_->blob.reset();
    take_records(m.utt_pushed);
  }
  return true;
}

// The Call's on_capture() and on_endpoint() as they drove its UtteranceEncoder: this frame's samples join
// an open utterance (within the cap), then each endpoint event in order.
void ChainRunner::utterance_frame(const CaptureOutput& out) noexcept {
  Utterance& u = *utt_;
  const size_t h = u.history.size();
  for (int16_t s : out.clean) u.history[(u.pos++) % h] = s;
  // A full ring or a codec error: the loop never sees this utterance's end, so the Call gets none.
  auto drop = [&] {
    u.active = false;
    utt_drops_.fetch_add(1, std::memory_order_relaxed);
  };
  if (u.active && u.samples + out.clean.size() <= u.cap && !u.push(out.clean)) drop();
  for (const EndpointEvent& e : out.endpoints) {
    switch (e.kind) {
      case EndpointKind::Onset:
        if (!u.start(e.begin)) drop();
        break;
      case EndpointKind::OnsetRejected:
        u.active = false;
        break;
      case EndpointKind::SpeechEnd:
        if (u.active && !u.end(e.end)) drop();
        break;
      case EndpointKind::SpeechStart:
        break;
    }
  }
}

void ChainRunner::take_records(uint64_t upto) {
  Utterance& u = *utt_;
  while (u.popped < upto) {
    std::array<uint8_t, kRecordHeader> h{};
    if (u.ring.pop(h) != h.size()) return;  // cannot happen: the Meta was published after its records
    const size_t len = h[2] | static_cast<size_t>(h[3]) << 8;
    u.popped += kRecordHeader + len;
    switch (h[0]) {
      case kBegin:
        u.bytes.clear();
        u.sizes.clear();
        u.open = true;
        break;
      case kPacket: {
        const size_t at = u.bytes.size();
        u.bytes.resize(at + len);
        u.ring.pop(std::span<uint8_t>(u.bytes.data() + at, len));
        u.sizes.push_back(static_cast<uint16_t>(len));
        break;
      }
      case kEnd: {
        std::array<uint8_t, kEndPayload> p{};
        u.ring.pop(p);
        uint64_t keep = 0, need = 0;
        for (size_t i = 0; i < 8; ++i) keep |= static_cast<uint64_t>(p[i]) << (8 * i);
        for (size_t i = 0; i < 4; ++i) need |= static_cast<uint64_t>(p[8 + i]) << (8 * i);
        if (u.open) u.blob = u.frame_blob(keep, need);
        u.open = false;
        break;
      }
    }
  }
}

Result<std::vector<uint8_t>> ChainRunner::take_utterance() {
  if (!utt_) return make_error("chain runner: utterances are not encoded here", -ENOTSUP);
  if (!utt_->blob) return make_error("the utterance was dropped", -EIO);
  Result<std::vector<uint8_t>> r = std::move(*utt_->blob);
  utt_->blob.reset();
  return r;
}

}  // namespace osvi::audio
