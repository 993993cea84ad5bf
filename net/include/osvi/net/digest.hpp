// SHA-1, SHA-256 and HMAC-SHA256 from OpenSSL's libcrypto, opened on first use (issue 18: not mapped idle).
#pragma once

#include <string>
#include <string_view>

#include "osvi/result.hpp"

namespace osvi::net::digest {

// libcrypto is ~1.4 MB resident once mapped, and an idle box hashes nothing: it is opened (dlopen, by this
// soname) by the first digest below. Its users sit in several libraries (net's WebSocket handshake, the
// daemon's signed recording links, webhook signatures, knowledge document hashes), so the table lives here,
// in the lowest of them.
inline constexpr const char* kCryptoSoname = "libcrypto.so.3";

// Opens libcrypto once per process and binds the functions used here. The first call decides: later calls
// (and every digest below) return its outcome, so tests pass a missing soname first to see the error path.
// A missing library or function is an error with code -ELIBACC whose message says what is missing.
Status load(const char* soname = kCryptoSoname);

// Raw digests (20 and 32 bytes). Errors: load()'s error when libcrypto is not available.
Result<std::string> sha1(std::string_view bytes);
Result<std::string> sha256(std::string_view bytes);
Result<std::string> hmac_sha256(std::string_view key, std::string_view message);

// Lower-case hex of raw bytes (two digits per byte).
std::string hex(std::string_view bytes);

}  // namespace osvi::net::digest
