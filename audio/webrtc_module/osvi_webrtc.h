/* The C ABI between osvi_audio (echo_webrtc.cpp) and osvi-webrtc.so, the module that carries WebRTC's APM. */
#pragma once

/* Plain C on purpose: osvid links libstdc++ statically in Release while the module (and libwebrtc-audio-
 * processing itself) uses the shared one, so no C++ type may cross this boundary. */
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any change below; echo_webrtc.cpp refuses a module of another version (a stale install). */
#define OSVI_WEBRTC_ABI_VERSION 1

typedef struct osvi_webrtc_apm osvi_webrtc_apm;

struct osvi_webrtc_apm_options {
  int rate;             /* 8000 or 16000 */
  int echo_suppress_db; /* NLP strength: <= -30 high, <= -20 moderate, else low */
  int denoise;          /* non-zero: noise suppression at noise_suppress_db */
  int noise_suppress_db;
  int agc; /* non-zero: adaptive digital AGC towards agc_level_dbfs */
  int agc_level_dbfs;
};

int osvi_webrtc_abi_version(void);

/* A configured APM (high-pass, AEC with the extended filter and delay-agnostic alignment, NS and AGC as
 * asked), or NULL with a message in err. */
osvi_webrtc_apm* osvi_webrtc_apm_create(const struct osvi_webrtc_apm_options* options, char* err,
                                        size_t err_len);
void osvi_webrtc_apm_free(osvi_webrtc_apm* apm);
/* Re-initialises (forgets the echo path); 0 or a non-zero APM error. */
int osvi_webrtc_apm_reset(osvi_webrtc_apm* apm);
/* One 10 ms chunk (rate / 100 floats in [-1, 1)): ref is what was played, mic what was captured; out receives
 * the cleaned capture (may equal mic). 0, or non-zero when the APM refused the chunk. No allocation: called
 * on the line's audio thread. */
int osvi_webrtc_apm_process(osvi_webrtc_apm* apm, const float* ref, const float* mic, float* out);

#ifdef __cplusplus
}
#endif
