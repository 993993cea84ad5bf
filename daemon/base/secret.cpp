// load_or_create_secret: a random key file in the state folder, 0600, created atomically.
#include "osvi/base/secret.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "osvi/base/files.hpp"
#include "osvi/hal/fd.hpp"
#include "osvi/net/digest.hpp"

namespace osvi::daemon {
namespace {

Error errno_error(const std::string& what, int err) {
  return make_error(what + ": " + std::strerror(err), -err);
}

Result<std::string> read_secret(const std::string& path, size_t bytes) {
  hal::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno_error("cannot open secret " + path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("cannot stat secret " + path, errno);
  if (!S_ISREG(st.st_mode) || static_cast<size_t>(st.st_size) != bytes) {
    return make_error("secret " + path + " has " + std::to_string(st.st_size) + " bytes, expected " +
                          std::to_string(bytes) + " (remove it to generate a new one)",
                      -EINVAL);
  }
  std::string out(bytes, '\0');
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = ::read(fd.get(), out.data() + got, bytes - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("cannot read secret " + path, errno);
    if (n == 0) return make_error("secret " + path + " shrank while being read", -EIO);
    got += static_cast<size_t>(n);
  }
  return out;
}

}  // namespace

Result<std::string> load_or_create_secret(const std::string& path, size_t bytes) {
  if (bytes == 0) return make_error("secret " + path + ": zero length requested", -EINVAL);
  if (::access(path.c_str(), F_OK) == 0) return read_secret(path, bytes);
  if (errno != ENOENT) return errno_error("cannot access secret " + path, errno);

  std::string key(bytes, '\0');
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = ::getrandom(key.data() + got, bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("getrandom for secret " + path, errno);
    got += static_cast<size_t>(n);
  }

  if (Status s = write_file_atomically(path, key, 0600); !s)
    return make_error("secret " + s.error().message, s.error().code);
  return key;
}

Result<std::string> hmac_sha256_hex(std::string_view key, std::string_view message) {
  auto mac = net::digest::hmac_sha256(key, message);
  if (!mac) return mac.error();
  return net::digest::hex(*mac);
}

}  // namespace osvi::daemon
