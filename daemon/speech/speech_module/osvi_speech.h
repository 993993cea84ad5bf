/* The C ABI between osvid (speech.cpp) and osvi-speech.so, the module that carries libespeak-ng. */
#pragma once

/* Plain C on purpose: osvid links libstdc++ statically in Release while the module uses the shared one, so no
 * C++ type (std::string, exceptions) may cross this boundary. */
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any change below; speech.cpp refuses a module of another version (a stale install). */
#define OSVI_SPEECH_ABI_VERSION 1

/* espeak-ng's accepted speaking rates (espeakRATE_MINIMUM/MAXIMUM), so osvid can check without its headers.
 */
#define OSVI_SPEECH_RATE_MIN 80
#define OSVI_SPEECH_RATE_MAX 450

/* Receives synthesised samples (mono s16 at the native rate) as espeak produces them; a non-zero return
 * stops the synthesis, which then fails. */
typedef int (*osvi_speech_sink_fn)(void* user, const short* samples, size_t count);

int osvi_speech_abi_version(void);

/* Initialises espeak-ng once per process for data_path (NULL or "" = the system location) and returns its
 * native sample rate (> 0), or -errno with a message in err. espeak-ng cannot be re-initialised (1.51 hangs),
 * so the caller calls this at most once successfully. */
int osvi_speech_init(const char* data_path, char* err, size_t err_len);

/* 0 if voice (an espeak-ng voice name) is selected, -ENOENT if espeak-ng does not know it. */
int osvi_speech_set_voice(const char* voice);

/* Synthesises NUL-terminated UTF-8 text with voice at rate_wpm, synchronously, handing every sample to sink.
 * 0 on success; -ENOENT unknown voice, -ECANCELED the sink stopped it, -EIO espeak failed. */
int osvi_speech_synth(const char* voice, int rate_wpm, const char* text, osvi_speech_sink_fn sink,
                      void* user);

typedef int (*osvi_speech_abi_version_fn)(void);
typedef int (*osvi_speech_init_fn)(const char*, char*, size_t);
typedef int (*osvi_speech_set_voice_fn)(const char*);
typedef int (*osvi_speech_synth_fn)(const char*, int, const char*, osvi_speech_sink_fn, void*);

#ifdef __cplusplus
}
#endif
