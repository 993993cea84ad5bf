// Configuration: the "audio" section (the audio engine), read with the shared strict ObjectReader.
#include <string>

#include "osvi/audio/preprocessor.hpp"
#include "osvi/audio/vad.hpp"
#include "osvi/config/config.hpp"
#include "reader.hpp"
#include "sections.hpp"

namespace osvi::daemon::config_detail {
namespace {

// A string from a small closed set; kept local (not ObjectReader::choice) because the values stay strings
// that the audio library parses itself.
std::string one_of(ObjectReader& r, const char* key, const std::string& def,
                   std::initializer_list<std::string_view> allowed) {
  std::string v = r.str(key, def);
  for (std::string_view a : allowed)
    if (v == a) return v;
  std::string list;
  size_t i = 0;
  for (std::string_view a : allowed) {
    if (i++) list.append(i == allowed.size() ? " or " : ", ");
    // append() rather than operator+: GCC 12 -O2 reports a false -Wrestrict on the temporaries.
    list.append(1, '"').append(a).append(1, '"');
  }
  std::string why("must be ");
  why.append(list).append(", got ").append(quote(v));
  r.error(key, why);
  return def;
}

int int_in(ObjectReader& r, const char* key, int def, int min, int max) {
  return static_cast<int>(r.integer(key, def, min, max));
}

}  // namespace

void parse_audio(ObjectReader r, AudioConfig& a) {
  a.rate = int_in(r, "rate", a.rate, 8000, 16000);
  if (a.rate != 8000 && a.rate != 16000)
    r.error("rate", "must be 8000 or 16000, got " + std::to_string(a.rate));
  a.frame_ms = int_in(r, "frame_ms", a.frame_ms, 10, 20);
  if (a.frame_ms != 10 && a.frame_ms != 20)
    r.error("frame_ms", "must be 10 or 20, got " + std::to_string(a.frame_ms));
  a.buffer_periods = int_in(r, "buffer_periods", a.buffer_periods, 2, 3);
  a.rt_priority = int_in(r, "rt_priority", a.rt_priority, 0, 99);
  {
    ObjectReader e = r.object("echo");
    a.echo_backend = one_of(e, "backend", a.echo_backend, {"speex", "webrtc", "null"});
    // WebRTC's APM is a module opened on demand (issue 18): a box without it refuses the setting.
    if (a.echo_backend == "webrtc") {
      if (auto s = audio::load_webrtc_apm(); !s) e.error("backend", "\"webrtc\" needs " + s.error().message);
    }
    a.echo_tail_ms = int_in(e, "tail_ms", a.echo_tail_ms, 10, 1000);
    a.echo_sip = e.boolean("sip", a.echo_sip);
  }
  {
    ObjectReader p = r.object("preprocess");
    a.denoise = p.boolean("denoise", a.denoise);
    a.noise_suppress_db = int_in(p, "noise_suppress_db", a.noise_suppress_db, -60, 0);
    a.agc = p.boolean("agc", a.agc);
    a.agc_level_dbfs = int_in(p, "agc_level_dbfs", a.agc_level_dbfs, -40, -3);
    a.echo_suppress_db = int_in(p, "echo_suppress_db", a.echo_suppress_db, -90, 0);
    a.echo_suppress_active_db = int_in(p, "echo_suppress_active_db", a.echo_suppress_active_db, -90, 0);
  }
  a.vad = one_of(r, "vad", a.vad, {"osvi", "webrtc"});
  if (a.vad == "webrtc") {
    if (auto s = audio::load_webrtc_vad(); !s) r.error("vad", "\"webrtc\" needs " + s.error().message);
  }
  {
    ObjectReader o = r.object("opus");
    a.opus_complexity = int_in(o, "complexity", a.opus_complexity, 0, 10);
    a.opus_bitrate = int_in(o, "bitrate", a.opus_bitrate, 6000, 64000);
  }
  a.dtmf = r.boolean("dtmf", a.dtmf);
  a.call_progress_plan = one_of(r, "call_progress_plan", a.call_progress_plan, {"us", "eu", "in"});
  {
    ObjectReader m = r.object("amd");
    AudioConfig::Amd& d = a.amd;
    d.decision_window_ms = int_in(m, "decision_window_ms", d.decision_window_ms, 500, 10000);
    d.initial_silence_ms = int_in(m, "initial_silence_ms", d.initial_silence_ms, 100, 10000);
    d.greeting_ms = int_in(m, "greeting_ms", d.greeting_ms, 100, 10000);
    d.after_greeting_silence_ms =
        int_in(m, "after_greeting_silence_ms", d.after_greeting_silence_ms, 50, 5000);
    d.min_word_length_ms = int_in(m, "min_word_length_ms", d.min_word_length_ms, 10, 2000);
    d.between_words_silence_ms = int_in(m, "between_words_silence_ms", d.between_words_silence_ms, 10, 2000);
    d.max_words = int_in(m, "max_words", d.max_words, 1, 20);
    d.silence_threshold = int_in(m, "silence_threshold", d.silence_threshold, 1, 32767);
  }
  {
    ObjectReader rec = r.object("recording");
    a.recording.enabled = rec.boolean("enabled", a.recording.enabled);
    a.recording.bitrate = int_in(rec, "bitrate", a.recording.bitrate, 12000, 128000);
    a.recording.complexity = int_in(rec, "complexity", a.recording.complexity, 0, 10);
  }
}

}  // namespace osvi::daemon::config_detail
