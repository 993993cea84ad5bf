// Standard Webhooks signing: base64, the whsec_ secret form, HMAC-SHA256 over "{id}.{timestamp}.{body}".
#include "osvi/webhooks/signature.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "osvi/base/files.hpp"
#include "osvi/net/digest.hpp"
#include "osvi/net/text.hpp"

namespace osvi::daemon::webhooks {
namespace {

constexpr std::string_view kPrefix = "whsec_";

}  // namespace

Result<std::string> decode_secret(std::string_view secret) {
  if (!secret.starts_with(kPrefix)) return make_error("webhook secret must start with \"whsec_\"", -EINVAL);
  auto key = net::base64_decode(secret.substr(kPrefix.size()));
  if (!key) return make_error("webhook secret is not whsec_ + padded base64", -EINVAL);
  if (key->empty()) return make_error("webhook secret is empty", -EINVAL);
  return std::move(*key);
}

std::string encode_secret(std::string_view key) {
  return std::string(kPrefix) + net::base64_encode(key);
}

Result<std::string> sign(std::string_view key, std::string_view webhook_id, int64_t timestamp_s,
                         std::string_view body) {
  std::string content;
  content.reserve(webhook_id.size() + body.size() + 24);
  content.append(webhook_id).append(".").append(std::to_string(timestamp_s)).append(".").append(body);
  auto mac = net::digest::hmac_sha256(key, content);
  if (!mac) return mac.error();
  return "v1," + net::base64_encode(*mac);
}

Result<std::string> load_or_create_secret_file(const std::string& path) {
  errno = 0;
  std::ifstream in(path);
  if (in) {
    std::string text;
    std::getline(in, text);
    if (auto key = decode_secret(text); !key) return make_error(path + ": " + key.error().message, -EINVAL);
    return text;
  }
  if (errno != ENOENT) return make_error("cannot read " + path + ": " + std::strerror(errno), -errno);
  std::string key(32, '\0');
  size_t got = 0;
  while (got < key.size()) {
    ssize_t n = ::getrandom(key.data() + got, key.size() - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return make_error("getrandom for " + path + ": " + std::strerror(errno), -errno);
    got += static_cast<size_t>(n);
  }
  std::string secret = encode_secret(key);
  if (Status s = write_file_atomically(path, secret + "\n", 0600); !s) return s.error();
  return secret;
}

}  // namespace osvi::daemon::webhooks
