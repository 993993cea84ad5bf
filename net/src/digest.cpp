// Digests through libcrypto opened with dlopen at the first use (digest.hpp): the function table and its
// load.
#include "osvi/net/digest.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <climits>

#include "osvi/shared_library.hpp"

namespace osvi::net::digest {
namespace {

// libcrypto's C API is its ABI (soname libcrypto.so.3), so its functions are bound directly, as libcurl's are
// in http_client.cpp. Opened once per process with RTLD_NODELETE: the pointers stay valid until exit.
struct CryptoApi {
  decltype(&::EVP_Digest) evp_digest = nullptr;
  decltype(&::EVP_sha1) evp_sha1 = nullptr;
  decltype(&::EVP_sha256) evp_sha256 = nullptr;
  decltype(&::HMAC) hmac = nullptr;
};

using Loaded = dl::Table<CryptoApi>;

Loaded open_crypto(const char* soname) {
  return dl::load_table<CryptoApi>(soname, "the cryptography library", [](void* h, CryptoApi& a) {
    return dl::bind(h, "EVP_Digest", a.evp_digest) && dl::bind(h, "EVP_sha1", a.evp_sha1) &&
           dl::bind(h, "EVP_sha256", a.evp_sha256) && dl::bind(h, "HMAC", a.hmac);
  });
}

const Loaded& loaded(const char* soname = kCryptoSoname) {
  static const Loaded l = open_crypto(soname);  // thread-safe static: the first caller opens
  return l;
}

Result<std::string> evp_digest(std::string_view bytes, bool sha1) {
  const Loaded& l = loaded();
  if (!l.status) return l.status.error();
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const EVP_MD* type = sha1 ? l.api.evp_sha1() : l.api.evp_sha256();
  if (l.api.evp_digest(bytes.data(), bytes.size(), md, &len, type, nullptr) != 1)
    return make_error(std::string(sha1 ? "SHA-1" : "SHA-256") + " failed in libcrypto", -EIO);
  return std::string(reinterpret_cast<const char*>(md), len);
}

}  // namespace

Status load(const char* soname) {
  return loaded(soname).status;
}

Result<std::string> sha1(std::string_view bytes) {
  return evp_digest(bytes, true);
}

Result<std::string> sha256(std::string_view bytes) {
  return evp_digest(bytes, false);
}

Result<std::string> hmac_sha256(std::string_view key, std::string_view message) {
  const Loaded& l = loaded();
  if (!l.status) return l.status.error();
  if (key.size() > static_cast<size_t>(INT_MAX)) return make_error("HMAC key too long", -EINVAL);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // An empty key is passed as a valid pointer: OpenSSL reads a null key as "reuse the previous one".
  static const unsigned char kEmpty = 0;
  const void* k = key.empty() ? static_cast<const void*>(&kEmpty) : static_cast<const void*>(key.data());
  if (l.api.hmac(l.api.evp_sha256(), k, static_cast<int>(key.size()),
                 reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac,
                 &len) == nullptr)
    return make_error("HMAC-SHA256 failed in libcrypto", -EIO);
  return std::string(reinterpret_cast<const char*>(mac), len);
}

std::string hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out += kHex[b >> 4];
    out += kHex[b & 0x0f];
  }
  return out;
}

}  // namespace osvi::net::digest
