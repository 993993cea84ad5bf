// Ogg Opus writers over libopus and our own Ogg muxer: the stereo call recorder, STT utterance blobs, WAV.
#include "osvi/audio/recording.hpp"

#include <algorithm>
#include <cstring>
#include <new>

#include "ogg_opus.hpp"
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

struct CallRecorder::Impl {
  explicit Impl(OggOpusWriter w) : writer(std::move(w)) {}
  OggOpusWriter writer;
  std::vector<int16_t> interleaved;  // one stereo frame
  size_t frame = 0;
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
  spec.frame_ms = c.frame_ms;
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
  impl->frame = impl->writer.frame_samples();
  impl->interleaved.assign(impl->frame * 2, 0);
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
  int16_t* out = s.interleaved.data();
  for (size_t i = 0; i < s.frame; ++i) {
    out[2 * i] = caller[i];
    out[2 * i + 1] = i < played.size() ? played[i] : int16_t{0};
  }
  if (auto st = s.writer.write_frame(s.interleaved); !st) return st;
  ++s.frames;
  return {};
}

Result<RecordingSummary> CallRecorder::finish() {
  Impl& s = *impl_;
  if (s.finished) return make_error("recording: already finished", -EBADF);
  s.finished = true;
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
