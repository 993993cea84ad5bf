// Ogg Opus writers over libopus and our own Ogg muxer: the stereo call recorder, STT utterance blobs, WAV.
#include "osvi/audio/recording.hpp"

#include <algorithm>
#include <cstring>
#include <new>
#include <optional>

#include "ogg_opus.hpp"
#include "osvi/audio/opus.hpp"
#include "osvi/version.hpp"

namespace osvi::audio {

bool MemorySink::write(std::span<const uint8_t> bytes) noexcept {
  try {
    bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
    return true;
  } catch (const std::bad_alloc&) {
    return false;
  }
}

// The encoder always gets 20 ms packets: with 10 ms capture frames two pushes fill one. A recording is not
// latency-bound, and libopus 1.3 codes 10 ms stereo packets at complexities below 5 as mono at 24 kbit/s
// (both channels the mix; codec_test's PartialPlayedFramesArePaddedWithSilenceAt8k10ms), which 20 ms
// packets do not; it also halves the per-packet overhead at 10 ms.
constexpr int kRecorderPacketMs = 20;

struct CallRecorder::Impl {
  explicit Impl(OggOpusWriter w) : writer(std::move(w)) {}
  OggOpusWriter writer;
  std::vector<int16_t> interleaved;  // one stereo packet, filled by frame_ms pushes
  size_t frame = 0;                  // samples per channel in one push (the capture frame)
  size_t filled = 0;                 // samples per channel in `interleaved` not encoded yet
  int rate = 0;
  uint64_t frames = 0;
  bool finished = false;
};

CallRecorder::CallRecorder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CallRecorder::CallRecorder(CallRecorder&&) noexcept = default;
CallRecorder& CallRecorder::operator=(CallRecorder&&) noexcept = default;
CallRecorder::~CallRecorder() = default;

Result<CallRecorder> CallRecorder::create(ByteSink& sink, const RecordingConfig& c) {
  if (c.rate != 8000 && c.rate != 16000) return make_error("recording: rate must be 8000 or 16000");
  if (c.frame_ms != 10 && c.frame_ms != 20) return make_error("recording: frame_ms must be 10 or 20");
  if (c.bitrate < 12000 || c.bitrate > 256000) return make_error("recording: bitrate must be 12000..256000");
  if (c.complexity < 0 || c.complexity > 10) return make_error("recording: complexity must be 0..10");
  OggOpusSpec spec;
  spec.rate = c.rate;
  spec.channels = 2;
  spec.frame_ms = kRecorderPacketMs;
  spec.bitrate = c.bitrate;
  spec.complexity = c.complexity;
  spec.tags = {{"TITLE", c.title},
               {"CALL_ID", c.call_id},
               {"AGENT", c.agent},
               {"ENCODER", std::string("osvid ") + osvi::kVersion}};
  auto writer = OggOpusWriter::create(sink, spec);
  if (!writer) return writer.error();
  auto impl = std::make_unique<Impl>(std::move(*writer));
  impl->rate = c.rate;
  impl->frame = static_cast<size_t>(c.rate / 1000 * c.frame_ms);
  impl->interleaved.assign(impl->writer.frame_samples() * 2, 0);
  return CallRecorder(std::move(impl));
}

size_t CallRecorder::frame_samples() const noexcept {
  return impl_->frame;
}
uint64_t CallRecorder::samples() const noexcept {
  return impl_->frames * impl_->frame;
}

Status CallRecorder::push(std::span<const int16_t> caller, std::span<const int16_t> played) noexcept {
  Impl& s = *impl_;
  if (s.finished) return make_error("recording: already finished", -EBADF);
  if (caller.size() != s.frame || played.size() > s.frame) return make_error("recording: frame size");
  int16_t* out = s.interleaved.data() + 2 * s.filled;
  for (size_t i = 0; i < s.frame; ++i) {
    out[2 * i] = caller[i];
    out[2 * i + 1] = i < played.size() ? played[i] : int16_t{0};
  }
  s.filled += s.frame;
  if (s.filled * 2 == s.interleaved.size()) {
    s.filled = 0;
    if (auto st = s.writer.write_frame(s.interleaved); !st) return st;
  }
  ++s.frames;
  return {};
}

Result<RecordingSummary> CallRecorder::finish() {
  Impl& s = *impl_;
  if (s.finished) return make_error("recording: already finished", -EBADF);
  s.finished = true;
  if (s.filled > 0) {
    // Half a packet pushed: the rest is silence, which the final granule trims (RFC 7845 end trimming).
    std::fill(s.interleaved.begin() + static_cast<std::ptrdiff_t>(2 * s.filled), s.interleaved.end(),
              int16_t{0});
    if (auto st = s.writer.write_frame(s.interleaved); !st) return st.error();
  }
  if (auto st = s.writer.finish(s.frames * s.frame); !st) return st.error();
  RecordingSummary r;
  r.frames = s.frames;
  r.samples = s.frames * s.frame;
  r.rate = s.rate;
  r.bytes = s.writer.bytes_written();
  return r;
}

Result<std::vector<uint8_t>> encode_utterance_ogg_opus(std::span<const int16_t> pcm, int rate,
                                                       const UtteranceOptions& o) {
  if (rate != 8000 && rate != 12000 && rate != 16000 && rate != 24000 && rate != 48000) {
    return make_error("utterance: unsupported rate");
  }
  if (pcm.size() > static_cast<size_t>(rate) * 600) return make_error("utterance: longer than 10 minutes");
  // ~1.2x the nominal size avoids reallocations for typical utterances.
  MemorySink sink(static_cast<size_t>(o.bitrate / 8) * (pcm.size() / static_cast<size_t>(rate) + 1) + 4096);
  auto writer = OggOpusWriter::create(sink, {.rate = rate,
                                             .channels = 1,
                                             .frame_ms = 20,
                                             .bitrate = o.bitrate,
                                             .complexity = o.complexity,
                                             .tags = {}});
  if (!writer) return writer.error();
  const size_t frame = writer->frame_samples();
  std::vector<int16_t> last(frame, 0);  // the tail, padded with silence to a whole frame
  size_t pos = 0;
  for (; pos + frame <= pcm.size(); pos += frame) {
    if (auto st = writer->write_frame(pcm.subspan(pos, frame)); !st) return st.error();
  }
  if (pos < pcm.size()) {
    std::copy(pcm.begin() + static_cast<std::ptrdiff_t>(pos), pcm.end(), last.begin());
    if (auto st = writer->write_frame(last); !st) return st.error();
  }
  // The final granule trims the padding: the blob decodes to exactly pcm.size() samples.
  if (auto st = writer->finish(pcm.size()); !st) {
    return st.error().code == -EIO ? make_error("utterance: out of memory", -ENOMEM) : st.error();
  }
  return sink.take();
}

struct UtteranceEncoder::Impl {
  int rate = 0;
  UtteranceOptions options;
  size_t frame = 0;
  // The sink is declared before the writer that points at it.
  std::unique_ptr<MemorySink> sink;
  std::optional<OggOpusWriter> writer;  // its codec encodes the packets; engaged between begin and finish
  std::vector<int16_t> pending;         // the part of a frame not encoded yet
  std::vector<uint8_t> bytes;           // the packets, back to back
  std::vector<uint16_t> sizes;          // each packet's length
  uint64_t samples = 0;
  uint64_t frames = 0;

  Status encode_one(std::span<const int16_t> frame_pcm) {
    const size_t at = bytes.size();
    bytes.resize(at + kOpusMaxPacket);
    auto n = writer->encode_packet(frame_pcm, std::span<uint8_t>(bytes.data() + at, kOpusMaxPacket));
    if (!n) {
      bytes.resize(at);
      return n.error();
    }
    bytes.resize(at + *n);
    sizes.push_back(static_cast<uint16_t>(*n));
    ++frames;
    return {};
  }
};

UtteranceEncoder::UtteranceEncoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
UtteranceEncoder::UtteranceEncoder(UtteranceEncoder&&) noexcept = default;
UtteranceEncoder& UtteranceEncoder::operator=(UtteranceEncoder&&) noexcept = default;
UtteranceEncoder::~UtteranceEncoder() = default;

Result<UtteranceEncoder> UtteranceEncoder::create(int rate, const UtteranceOptions& o) {
  if (rate != 8000 && rate != 12000 && rate != 16000 && rate != 24000 && rate != 48000)
    return make_error("utterance: unsupported rate");
  if (o.bitrate < 6000 || o.bitrate > 256000) return make_error("utterance: bitrate must be 6000..256000");
  if (o.complexity < 0 || o.complexity > 10) return make_error("utterance: complexity must be 0..10");
  auto impl = std::make_unique<Impl>();
  impl->rate = rate;
  impl->options = o;
  impl->frame = static_cast<size_t>(rate / 50);
  impl->pending.reserve(impl->frame);
  return UtteranceEncoder(std::move(impl));
}

Status UtteranceEncoder::begin() {
  Impl& s = *impl_;
  s.writer.reset();
  s.sink = std::make_unique<MemorySink>();
  auto writer = OggOpusWriter::create(*s.sink, {.rate = s.rate,
                                                .channels = 1,
                                                .frame_ms = 20,
                                                .bitrate = s.options.bitrate,
                                                .complexity = s.options.complexity,
                                                .tags = {}});
  if (!writer) return writer.error();
  s.writer.emplace(std::move(*writer));
  s.pending.clear();
  s.bytes.clear();
  s.sizes.clear();
  s.samples = 0;
  s.frames = 0;
  return {};
}

Status UtteranceEncoder::push(std::span<const int16_t> pcm) {
  Impl& s = *impl_;
  if (!s.writer) return make_error("utterance: not started", -EBADF);
  if (s.samples + pcm.size() > static_cast<uint64_t>(s.rate) * 600)
    return make_error("utterance: longer than 10 minutes", -E2BIG);
  s.samples += pcm.size();
  while (!pcm.empty()) {
    if (s.pending.empty() && pcm.size() >= s.frame) {
      if (auto st = s.encode_one(pcm.first(s.frame)); !st) return st;
      pcm = pcm.subspan(s.frame);
      continue;
    }
    const size_t n = std::min(pcm.size(), s.frame - s.pending.size());
    s.pending.insert(s.pending.end(), pcm.begin(), pcm.begin() + static_cast<std::ptrdiff_t>(n));
    pcm = pcm.subspan(n);
    if (s.pending.size() == s.frame) {
      if (auto st = s.encode_one(s.pending); !st) return st;
      s.pending.clear();
    }
  }
  return {};
}

Result<std::vector<uint8_t>> UtteranceEncoder::finish(uint64_t samples) {
  Impl& s = *impl_;
  if (!s.writer) return make_error("utterance: not started", -EBADF);
  if (samples > s.samples) return make_error("utterance: finish past the pushed samples", -EINVAL);
  // Packets needed: the decoder's output lags by the lookahead, so the last kept sample comes out of the
  // packet that holds input sample lookahead + samples - 1.
  const uint64_t need = (static_cast<uint64_t>(s.writer->lookahead()) + samples + s.frame - 1) / s.frame;
  if (s.sizes.size() < need && !s.pending.empty()) {
    s.pending.resize(s.frame, 0);  // the tail, padded with silence to a whole frame
    if (auto st = s.encode_one(s.pending); !st) return st.error();
    s.pending.clear();
  }
  const size_t keep = std::min<size_t>(s.sizes.size(), need);
  size_t at = 0;
  for (size_t i = 0; i < keep; ++i) {
    if (auto st = s.writer->write_packet({s.bytes.data() + at, s.sizes[i]}); !st) return st.error();
    at += s.sizes[i];
  }
  // Any packets still missing (a short utterance ends inside the lookahead) are silence from finish().
  if (need > keep) s.frames += need - keep;
  Status st = s.writer->finish(samples);
  s.writer.reset();
  if (!st) return st.error().code == -EIO ? make_error("utterance: out of memory", -ENOMEM) : st.error();
  std::vector<uint8_t> out = s.sink->take();
  s.sink.reset();
  s.bytes.clear();
  s.sizes.clear();
  return out;
}

void UtteranceEncoder::cancel() noexcept {
  impl_->writer.reset();
  impl_->sink.reset();
  impl_->pending.clear();
  impl_->bytes.clear();
  impl_->sizes.clear();
}

bool UtteranceEncoder::active() const noexcept {
  return impl_->writer.has_value();
}
uint64_t UtteranceEncoder::samples() const noexcept {
  return impl_->samples;
}
uint64_t UtteranceEncoder::frames_encoded() const noexcept {
  return impl_->frames;
}
size_t UtteranceEncoder::memory_bytes() const noexcept {
  const Impl& s = *impl_;
  return sizeof(Impl) + s.bytes.capacity() + s.sizes.capacity() * 2 + s.pending.capacity() * 2;
}

std::vector<uint8_t> make_wav(std::span<const int16_t> interleaved, int rate, int channels) {
  const auto data_bytes = static_cast<uint32_t>(interleaved.size() * 2);
  const auto ch = static_cast<uint32_t>(channels);
  const auto r = static_cast<uint32_t>(rate);
  // Sized once and filled by index: GCC 12 at -O3 misreads vector::insert of short literals as overflows.
  std::vector<uint8_t> w(44 + static_cast<size_t>(data_bytes));
  size_t p = 0;
  auto put = [&](const char* tag) {
    for (int i = 0; i < 4; ++i) w[p++] = static_cast<uint8_t>(tag[i]);
  };
  auto u32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) w[p++] = static_cast<uint8_t>(v >> (8 * i));
  };
  auto u16 = [&](uint32_t v) {
    w[p++] = static_cast<uint8_t>(v);
    w[p++] = static_cast<uint8_t>(v >> 8);
  };
  put("RIFF");
  u32(36 + data_bytes);
  put("WAVE");
  put("fmt ");
  u32(16);
  u16(1);  // PCM
  u16(ch);
  u32(r);
  u32(r * ch * 2);  // byte rate
  u16(ch * 2);      // block align
  u16(16);
  put("data");
  u32(data_bytes);
  for (int16_t v : interleaved) u16(static_cast<uint16_t>(v));
  return w;
}

}  // namespace osvi::audio
