// osvi-speech.so: libespeak-ng behind the plain C ABI of osvi_speech.h, loaded by osvid on first
// Speech::create().
#include <espeak-ng/speak_lib.h>

#include <cerrno>
#include <cstring>

#include "osvi_speech.h"

#define OSVI_SPEECH_EXPORT extern "C" __attribute__((visibility("default")))

static_assert(OSVI_SPEECH_RATE_MIN == espeakRATE_MINIMUM && OSVI_SPEECH_RATE_MAX == espeakRATE_MAXIMUM,
              "osvi_speech.h rate limits differ from this espeak-ng's");

namespace {

// The sink of the current synthesis; espeak's synth callback is process-global, so it travels in the events'
// user_data, which espeak_Synth passes through.
struct Render {
  osvi_speech_sink_fn sink = nullptr;
  void* user = nullptr;
  bool stopped = false;
};

int on_synth(short* wav, int count, espeak_EVENT* events) {
  if (wav == nullptr || count <= 0 || events == nullptr) return 0;
  auto* render = static_cast<Render*>(events->user_data);
  if (render == nullptr || render->sink == nullptr) return 0;
  if (render->sink(render->user, wav, static_cast<size_t>(count)) != 0) {
    render->stopped = true;
    return 1;  // non-zero asks espeak to abort the utterance
  }
  return 0;
}

// Truncates rather than overflows: a cut message is better than none.
void copy_out(const char* s, char* buf, size_t len) {
  if (buf == nullptr || len == 0) return;
  const size_t n = std::strlen(s) < len - 1 ? std::strlen(s) : len - 1;
  std::memcpy(buf, s, n);
  buf[n] = '\0';
}

}  // namespace

OSVI_SPEECH_EXPORT int osvi_speech_abi_version(void) {
  return OSVI_SPEECH_ABI_VERSION;
}

OSVI_SPEECH_EXPORT int osvi_speech_init(const char* data_path, char* err, size_t err_len) {
  // DONT_EXIT: without it espeak-ng calls exit() when its data folder is missing.
  const int rate = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                     data_path == nullptr || *data_path == '\0' ? nullptr : data_path,
                                     espeakINITIALIZE_DONT_EXIT);
  if (rate <= 0) {
    copy_out("espeak-ng could not initialise", err, err_len);
    return -ENOENT;
  }
  espeak_SetSynthCallback(&on_synth);
  return rate;
}

OSVI_SPEECH_EXPORT int osvi_speech_set_voice(const char* voice) {
  if (voice == nullptr) return -ENOENT;
  return espeak_SetVoiceByName(voice) == EE_OK ? 0 : -ENOENT;
}

OSVI_SPEECH_EXPORT int osvi_speech_synth(const char* voice, int rate_wpm, const char* text,
                                         osvi_speech_sink_fn sink, void* user) {
  if (voice == nullptr || text == nullptr || sink == nullptr) return -EINVAL;
  if (espeak_SetVoiceByName(voice) != EE_OK) return -ENOENT;
  espeak_SetParameter(espeakRATE, rate_wpm, 0);
  Render render{sink, user, false};
  // Synchronous mode: espeak_Synth returns once every sample went through the callback (espeak_Synchronize
  // is not called: it waits on espeak's fifo thread, which does not exist in a forked child).
  const espeak_ERROR rc =
      espeak_Synth(text, std::strlen(text) + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8, nullptr, &render);
  if (render.stopped) return -ECANCELED;
  return rc == EE_OK ? 0 : -EIO;
}
