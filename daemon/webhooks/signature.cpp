// Standard Webhooks signing: base64, the whsec_ secret form, HMAC-SHA256 over "{id}.{timestamp}.{body}".
#include "osvi/webhooks/signature.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "osvi/base/files.hpp"

namespace osvi::daemon::webhooks {
namespace {

constexpr std::string_view kPrefix = "whsec_";

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += kAlphabet[v >> 6 & 63];
    out += kAlphabet[v & 63];
  }
  if (size_t rest = bytes.size() - i; rest > 0) {
    uint32_t v = byte(i) << 16 | (rest == 2 ? byte(i + 1) << 8 : 0);
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += rest == 2 ? kAlphabet[v >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

Result<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return make_error("base64: length is not a multiple of 4", -EINVAL);
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      char c = text[i + static_cast<size_t>(k)];
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0) return make_error("base64: data after padding", -EINVAL);
      v[k] = b64_value(c);
      if (v[k] < 0) return make_error("base64: invalid character", -EINVAL);
    }
    uint32_t n = static_cast<uint32_t>(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
    out += static_cast<char>(n >> 16 & 0xff);
    if (pad < 2) out += static_cast<char>(n >> 8 & 0xff);
    if (pad < 1) out += static_cast<char>(n & 0xff);
  }
  return out;
}

Result<std::string> decode_secret(std::string_view secret) {
  if (!secret.starts_with(kPrefix)) return make_error("webhook secret must start with \"whsec_\"", -EINVAL);
  auto key = base64_decode(secret.substr(kPrefix.size()));
  if (!key) return make_error("webhook secret is not whsec_ + base64: " + key.error().message, -EINVAL);
  if (key->empty()) return make_error("webhook secret is empty", -EINVAL);
  return key;
}

std::string encode_secret(std::string_view key) {
  return std::string(kPrefix) + base64_encode(key);
}

std::string sign(std::string_view key, std::string_view webhook_id, int64_t timestamp_s,
                 std::string_view body) {
  std::string content;
  content.reserve(webhook_id.size() + body.size() + 24);
  content.append(webhook_id).append(".").append(std::to_string(timestamp_s)).append(".").append(body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  static const unsigned char kEmpty = 0;  // OpenSSL reads a null key as "reuse the previous one"
  const void* k = key.empty() ? static_cast<const void*>(&kEmpty) : static_cast<const void*>(key.data());
  if (HMAC(EVP_sha256(), k, static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(content.data()), content.size(), mac, &len) == nullptr)
    return {};
  return "v1," + base64_encode(std::string_view(reinterpret_cast<const char*>(mac), len));
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
