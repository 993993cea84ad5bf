// Ogg Opus writers over libopusenc's callback API: the stereo call recorder, STT utterance blobs, and WAV.
#include "osvi/audio/recording.hpp"

#include <opus/opusenc.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "osvi/version.hpp"

namespace osvi::audio {
namespace {

struct EncDeleter {
  void operator()(OggOpusEnc* e) const noexcept { ope_encoder_destroy(e); }
};
struct CommentsDeleter {
  void operator()(OggOpusComments* c) const noexcept { ope_comments_destroy(c); }
};
using EncPtr = std::unique_ptr<OggOpusEnc, EncDeleter>;

// libopusenc's user_data: a stable address (heap or stack frame), never the movable C++ object.
struct SinkState {
  ByteSink* sink = nullptr;
  uint64_t bytes = 0;
  bool failed = false;
};

int write_cb(void* user, const unsigned char* ptr, opus_int32 len) {
  auto* s = static_cast<SinkState*>(user);
  if (s->failed) return 1;
  if (!s->sink->write({ptr, static_cast<size_t>(len)})) {
    s->failed = true;
    return 1;
  }
  s->bytes += static_cast<uint64_t>(len);
  return 0;
}
int close_cb(void*) {
  return 0;  // the caller owns the sink's lifetime and its close/fsync/rename
}
constexpr OpusEncCallbacks kCallbacks{write_cb, close_cb};

Error ope_error(const char* what, int code) {
  return make_error(std::string(what) + ": " + ope_strerror(code),
                    code == OPE_ALLOC_FAIL ? -ENOMEM : -EINVAL);
}

int max_bandwidth(int rate) {
  switch (rate) {
    case 8000:
      return OPUS_BANDWIDTH_NARROWBAND;
    case 12000:
      return OPUS_BANDWIDTH_MEDIUMBAND;
    case 16000:
      return OPUS_BANDWIDTH_WIDEBAND;
    case 24000:
      return OPUS_BANDWIDTH_SUPERWIDEBAND;
    default:
      return OPUS_BANDWIDTH_FULLBAND;
  }
}

struct EncoderSpec {
  int rate;
  int channels;
  int bitrate;
  int complexity;
  const std::string* title;
  const std::string* call_id;
  const std::string* agent;
};

Result<EncPtr> make_encoder(SinkState& state, const EncoderSpec& s) {
  std::unique_ptr<OggOpusComments, CommentsDeleter> comments(ope_comments_create());
  if (!comments) return make_error("ope_comments_create failed", -ENOMEM);
  const std::string encoder = std::string("osvid ") + osvi::kVersion;
  const std::pair<const char*, const std::string*> tags[] = {
      {"TITLE", s.title}, {"CALL_ID", s.call_id}, {"AGENT", s.agent}, {"ENCODER", &encoder}};
  for (const auto& [tag, value] : tags) {
    if (!value || value->empty()) continue;
    if (int err = ope_comments_add(comments.get(), tag, value->c_str()); err != OPE_OK) {
      return ope_error("ope_comments_add", err);
    }
  }
  int err = OPE_OK;
  // Family 0 (plain mono/stereo) so every player opens the recording.
  EncPtr enc(ope_encoder_create_callbacks(&kCallbacks, &state, comments.get(), s.rate, s.channels, 0, &err));
  if (!enc || err != OPE_OK) return ope_error("ope_encoder_create_callbacks", err);
  const int requests[][2] = {
      {OPUS_SET_APPLICATION_REQUEST, OPUS_APPLICATION_VOIP},
      {OPUS_SET_SIGNAL_REQUEST, OPUS_SIGNAL_VOICE},
      {OPUS_SET_BITRATE_REQUEST, s.bitrate},
      {OPUS_SET_COMPLEXITY_REQUEST, s.complexity},
      // libopusenc always encodes at 48 kHz; without a cap it may spend bits (and CPU in CELT/hybrid modes)
      // on a band the call never had. The input's Nyquist band keeps it in SILK for call audio.
      {OPUS_SET_MAX_BANDWIDTH_REQUEST, max_bandwidth(s.rate)},
      // libopusenc holds up to 2 s of audio for decisions it does not make yet (fixed 20 ms frames); no
      // delay means each 20 ms of input is encoded right away and CPU use stays even frame to frame.
      {OPE_SET_DECISION_DELAY_REQUEST, 0},
  };
  for (const auto& r : requests) {
    if (err = ope_encoder_ctl(enc.get(), r[0], static_cast<opus_int32>(r[1])); err != OPE_OK) {
      return ope_error("ope_encoder_ctl", err);
    }
  }
  return enc;
}

}  // namespace

bool MemorySink::write(std::span<const uint8_t> bytes) noexcept {
  try {
    bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
    return true;
  } catch (const std::bad_alloc&) {
    return false;
  }
}

struct CallRecorder::Impl {
  SinkState state;
  EncPtr enc;
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
  auto impl = std::make_unique<Impl>();
  impl->state.sink = &sink;
  auto enc = make_encoder(impl->state, {c.rate, 2, c.bitrate, c.complexity, &c.title, &c.call_id, &c.agent});
  if (!enc) return enc.error();
  impl->enc = std::move(*enc);
  impl->rate = c.rate;
  impl->frame = static_cast<size_t>(c.rate / 1000 * c.frame_ms);
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
  if (s.state.failed) return make_error("recording: sink write failed", -EIO);
  int16_t* out = s.interleaved.data();
  for (size_t i = 0; i < s.frame; ++i) {
    out[2 * i] = caller[i];
    out[2 * i + 1] = i < played.size() ? played[i] : int16_t{0};
  }
  if (int err = ope_encoder_write(s.enc.get(), out, static_cast<int>(s.frame)); err != OPE_OK) {
    return ope_error("ope_encoder_write", err);
  }
  ++s.frames;
  if (s.state.failed) return make_error("recording: sink write failed", -EIO);
  return {};
}

Result<RecordingSummary> CallRecorder::finish() {
  Impl& s = *impl_;
  if (s.finished) return make_error("recording: already finished", -EBADF);
  s.finished = true;
  // libopusenc 0.2.1 leaves the stream's end granule uninitialised until the first write, so an empty call
  // would end with a garbage granule position; a zero-sample write sets it to 0.
  if (s.frames == 0) {
    if (int err = ope_encoder_write(s.enc.get(), s.interleaved.data(), 0); err != OPE_OK) {
      return ope_error("ope_encoder_write", err);
    }
  }
  if (int err = ope_encoder_drain(s.enc.get()); err != OPE_OK) return ope_error("ope_encoder_drain", err);
  if (s.state.failed) return make_error("recording: sink write failed", -EIO);
  RecordingSummary r;
  r.frames = s.frames;
  r.samples = s.frames * s.frame;
  r.rate = s.rate;
  r.bytes = s.state.bytes;
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
  SinkState state{&sink, 0, false};
  auto enc = make_encoder(state, {rate, 1, o.bitrate, o.complexity, nullptr, nullptr, nullptr});
  if (!enc) return enc.error();
  // Large writes are fine here: libopusenc chunks them internally.
  if (int err = ope_encoder_write(enc->get(), pcm.data(), static_cast<int>(pcm.size())); err != OPE_OK) {
    return ope_error("ope_encoder_write", err);
  }
  if (int err = ope_encoder_drain(enc->get()); err != OPE_OK) return ope_error("ope_encoder_drain", err);
  if (state.failed) return make_error("utterance: out of memory", -ENOMEM);
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
