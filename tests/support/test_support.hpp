// Helpers shared by the test suites: temporary folders, free loopback ports, file I/O.
#pragma once

#include <cstdint>
#include <string>

#include "osvi/net/json.hpp"

namespace osvi::test {

// A fresh folder under $TMPDIR, removed with everything in it when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void write_file(const std::string& path, const std::string& content);
std::string read_file(const std::string& path);

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it back, close).
int free_loopback_port();
// A blocking TCP socket connected to 127.0.0.1:port whose reads give up after recv_timeout_s; -1 when the
// connection is refused. The caller closes it.
int connect_loopback(int port, int recv_timeout_s);

// JSON answers: parsed (null when not JSON), and a string member ("" when absent or not a string).
osvi::net::JsonPtr parse_json(const std::string& text);
std::string json_str(const cJSON* object, const char* key);

// A small deterministic generator (xorshift64) for benches and tests: the same data on every run.
struct Rng {
  uint64_t s = 0x9E3779B97F4A7C15ull;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
};

}  // namespace osvi::test
