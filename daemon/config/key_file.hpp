// Private to the configuration parser: reading an endpoint's api_key_file when the configuration is parsed.
#pragma once

#include <cstddef>
#include <string>

namespace osvi::daemon::config_detail {

// A key is a line of a few hundred bytes at most; the bound keeps a wrong path (a log, a device) cheap.
constexpr size_t kMaxKeyFileBytes = 4096;

// Reads the key in `path` into `key`, or says what is wrong with the file in `problem` ("PATH: why", naming
// the path, never the file's content: it may be a key). Blanks and the line end around the key are dropped.
bool read_key_file(const std::string& path, std::string& key, std::string& problem);

// A certificate chain or a private key is a few kilobytes of PEM; the bound keeps a wrong path cheap.
constexpr size_t kMaxPemFileBytes = 64 * 1024;

// Reads the PEM file at `path` into `pem` whole, or says what is wrong in `problem` ("PATH: why"). With
// `secret` (a private key) the file must be readable by its owner only: mode bits for group or others are
// refused, so a key that every local user can read is not silently put on the network.
bool read_pem_file(const std::string& path, bool secret, std::string& pem, std::string& problem);

// Reads a password file (a SIP line's password_file) into `secret`: a regular file of at most
// kMaxKeyFileBytes that neither group nor others may read, one line; exactly one trailing line end ("\n" or
// "\r\n") is dropped, nothing else (a password may end in blanks). `problem` names the path, never the text.
bool read_secret_file(const std::string& path, std::string& secret, std::string& problem);

// Whether `path` names a regular file this process can read (a CA bundle checked at load); why not in
// `problem` ("PATH: why").
bool check_readable_file(const std::string& path, std::string& problem);

}  // namespace osvi::daemon::config_detail
