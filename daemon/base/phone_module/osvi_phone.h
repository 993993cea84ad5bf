/* The C ABI between osvid (phone.cpp) and osvi-phone.so, the module that carries libphonenumber. */
#pragma once

/* Plain C on purpose: osvid links libstdc++ statically in Release while the module uses the shared one, so no
 * C++ type (std::string, exceptions) may cross this boundary. */
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any change below; phone.cpp refuses a module of another version (a stale install). */
#define OSVI_PHONE_ABI_VERSION 2

/* osvi_phone_normalize results >= 0; a negative result is -errno with a message in err. */
#define OSVI_PHONE_OK 0
#define OSVI_PHONE_NOT_PLAUSIBLE 1 /* does not parse, or is not a valid number of the region */
#define OSVI_PHONE_TOO_SHORT 2
#define OSVI_PHONE_TOO_LONG 3

int osvi_phone_abi_version(void);

/* 1 if region (upper-case ISO 3166-1 alpha-2) is a region libphonenumber knows, else 0. */
int osvi_phone_valid_country(const char* region);

/* Parses text (digits, optionally with a leading '+') for region and writes the E.164 form, NUL-terminated,
 * to out. err receives a NUL-terminated message when the result is negative (-ERANGE: out too small). */
int osvi_phone_normalize(const char* text, const char* region, char* out, size_t out_len, char* err,
                         size_t err_len);

/* As osvi_phone_normalize, for a number of any region: text with a leading '+' is parsed as international,
 * anything else as a national number of default_region. The number must be valid for the region it belongs
 * to. */
int osvi_phone_normalize_any(const char* text, const char* default_region, char* out, size_t out_len,
                             char* err, size_t err_len);

/* The longest '\n'-joined zone list osvi_phone_time_zones can write, NUL excluded (the generated table
 * checks its data against it). */
#define OSVI_PHONE_TIME_ZONES_MAX 4095

/* The IANA zones of an E.164 number ("+12125551234"), '\n'-separated and NUL-terminated in out; the result
 * is their count (0: none known, or not a valid number). Negative: -errno with a message in err. */
int osvi_phone_time_zones(const char* e164, char* out, size_t out_len, char* err, size_t err_len);

typedef int (*osvi_phone_abi_version_fn)(void);
typedef int (*osvi_phone_valid_country_fn)(const char*);
typedef int (*osvi_phone_normalize_fn)(const char*, const char*, char*, size_t, char*, size_t);
typedef int (*osvi_phone_time_zones_fn)(const char*, char*, size_t, char*, size_t);

#ifdef __cplusplus
}
#endif
