// Standard Webhooks signing (https://www.standardwebhooks.com/): pure functions, no state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "osvi/result.hpp"

namespace osvi::daemon::webhooks {

// "whsec_" + base64 → the key bytes. The spec's prefix is required; an empty or undecodable key is an error.
Result<std::string> decode_secret(std::string_view secret);
std::string encode_secret(std::string_view key);

// "v1," + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")): the webhook-signature header's value. An
// error (-ELIBACC) only when libcrypto, opened at the first signature (net/digest.hpp), is missing.
Result<std::string> sign(std::string_view key, std::string_view webhook_id, int64_t timestamp_s,
                         std::string_view body);

// The box's own webhook secret in path ("whsec_" + base64 of 32 random bytes, one line, mode 0600): read,
// or created once (atomically) when the file does not exist. Returns the "whsec_..." text. A file that does
// not hold a valid secret is an error naming the path (never silently replaced: receivers verify with it).
Result<std::string> load_or_create_secret_file(const std::string& path);

}  // namespace osvi::daemon::webhooks
