// Reads the files the configuration names (api_key_file, the API's TLS certificate and key), bounded and
// checked. Kept apart from the section parsers so their code (and GCC 12's inlining of them) stays as it was.
#include "key_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace osvi::daemon::config_detail {
namespace {

// Reads the whole of an open regular file of at most `limit` bytes, then closes it.
bool read_all_closing(int fd, const std::string& path, size_t limit, std::string& text,
                      std::string& problem) {
  text.assign(limit + 1, '\0');
  size_t n = 0;
  while (n < text.size()) {
    const ssize_t got = ::read(fd, text.data() + n, text.size() - n);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      problem = path + ": " + std::strerror(errno);
      ::close(fd);
      return false;
    }
    if (got == 0) break;
    n += static_cast<size_t>(got);
  }
  ::close(fd);
  if (n > limit) {
    problem = path + ": larger than " + std::to_string(limit) + " bytes";
    return false;
  }
  text.resize(n);
  return true;
}

// A key or password is one line of printable text: a second line means a wrong file, and a control character
// would corrupt the HTTP header or digest it goes into.
bool one_clean_line(const std::string& path, const std::string& text, std::string& problem) {
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n' || c == '\r') {
      problem = path + ": more than one line";
      return false;
    }
    if (u < 0x20 || u == 0x7f) {
      problem = path + ": contains control characters";
      return false;
    }
  }
  return true;
}

// Opens a regular file for reading (O_NONBLOCK: a FIFO at the path must not hang the loader) and stats it; -1
// with the problem otherwise.
int open_regular_file(const std::string& path, struct stat& st, std::string& problem) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    problem = path + ": " + std::strerror(errno);
    return -1;
  }
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    problem = path + ": " + (S_ISDIR(st.st_mode) ? std::string(std::strerror(EISDIR)) : "not a regular file");
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

bool read_key_file(const std::string& path, std::string& key, std::string& problem) {
  // O_NONBLOCK: a FIFO at the path must not hang the loader; it is refused below as not a regular file.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    problem = path + ": " + std::strerror(errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    problem = path + ": " + std::strerror(errno);
    ::close(fd);
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    problem = path + ": " + (S_ISDIR(st.st_mode) ? std::string(std::strerror(EISDIR)) : "not a regular file");
    return false;
  }
  std::string text;
  if (!read_all_closing(fd, path, kMaxKeyFileBytes, text, problem)) return false;
  const size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) {
    problem = path + ": empty";
    return false;
  }
  text = text.substr(begin, text.find_last_not_of(" \t\r\n") + 1 - begin);
  if (!one_clean_line(path, text, problem)) return false;
  key = std::move(text);
  return true;
}

bool read_pem_file(const std::string& path, bool secret, std::string& pem, std::string& problem) {
  struct stat st {};
  const int fd = open_regular_file(path, st, problem);
  if (fd < 0) return false;
  if (secret && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    problem = path + ": a private key must be readable by its owner only (mode " + mode + "; chmod 600 it)";
    ::close(fd);
    return false;
  }
  std::string text;
  if (!read_all_closing(fd, path, kMaxPemFileBytes, text, problem)) return false;
  if (text.find("-----BEGIN ") == std::string::npos) {
    problem = path + ": not PEM (no \"-----BEGIN\" line)";
    return false;
  }
  pem = std::move(text);
  return true;
}

bool read_secret_file(const std::string& path, std::string& secret, std::string& problem) {
  struct stat st {};
  const int fd = open_regular_file(path, st, problem);
  if (fd < 0) return false;
  // A password every local user can read is no secret: refused rather than sent to the registrar.
  if ((st.st_mode & (S_IRGRP | S_IROTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    problem = path + ": a password file must be readable by its owner only (mode " + mode + "; chmod 600 it)";
    ::close(fd);
    return false;
  }
  std::string text;
  if (!read_all_closing(fd, path, kMaxKeyFileBytes, text, problem)) return false;
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  if (text.empty()) {
    problem = path + ": empty";
    return false;
  }
  if (!one_clean_line(path, text, problem)) return false;
  secret = std::move(text);
  return true;
}

bool check_readable_file(const std::string& path, std::string& problem) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    problem = path + ": " + std::strerror(errno);
    return false;
  }
  struct stat st {};
  const bool stat_ok = ::fstat(fd, &st) == 0;
  ::close(fd);
  if (!stat_ok || !S_ISREG(st.st_mode)) {
    problem = path + ": " + (S_ISDIR(st.st_mode) ? std::string(std::strerror(EISDIR)) : "not a regular file");
    return false;
  }
  return true;
}

}  // namespace osvi::daemon::config_detail
