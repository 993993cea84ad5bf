// CSV contact upload: a generated 100,000-row contacts file read through CsvReader in 64 KiB chunks;
// rows/s, MB/s, and the peak RSS the reading adds (bounded by a record, not the file). Figures in
// bench/README.md.
#include <fcntl.h>
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/net/csv.hpp"

namespace {

constexpr size_t kChunk = 64 * 1024;

// VmHWM (peak resident set, kB) of this process.
long peak_rss_kb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return -1;
}

// Resets VmHWM to the current RSS (Linux >= 4.0), so the next reading is the peak of what follows only.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

uint64_t next(uint64_t* s) {  // xorshift64*: a fixed file for every run
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ull;
}

// One contacts row: phone, person_name, city, crm_id, note. About one name in five is quoted with a comma,
// one note in ten is quoted with a line end and a "" escape, the way spreadsheets write them.
void append_row(std::string* out, size_t i, uint64_t* seed) {
  static const char* kFirst[] = {"Asha", "Ravi", "Meera", "Arjun", "Priya", "Vikram", "Neha", "Rahul"};
  static const char* kLast[] = {"Rao", "Sharma", "Iyer", "Gupta", "Nair", "Khan", "Das", "Patel"};
  static const char* kCity[] = {"Pune", "Mumbai", "New Delhi", "Bengaluru", "Chennai", "Kolkata"};
  const uint64_t r = next(seed);
  char phone[32];
  std::snprintf(phone, sizeof phone, "+9198%08zu", i);
  *out += phone;
  *out += ',';
  if (r % 5 == 0) {
    *out += '"';
    *out += kLast[(r >> 8) % 8];
    *out += ", ";
    *out += kFirst[(r >> 12) % 8];
    *out += '"';
  } else {
    *out += kFirst[(r >> 12) % 8];
    *out += ' ';
    *out += kLast[(r >> 8) % 8];
  }
  *out += ',';
  *out += kCity[(r >> 16) % 6];
  *out += ",CRM-";
  *out += std::to_string(r >> 40);
  *out += ',';
  if (r % 10 == 3)
    *out += "\"called before,\r\nsaid \"\"call after 6\"\"\"";
  else
    *out += "renewal due";
  *out += "\r\n";
}

// Writes the file to `path` a chunk at a time, so the file is never in this process's memory whole.
size_t write_file(const std::string& path, size_t rows) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  std::string buf = "\xEF\xBB\xBFphone,person_name,city,crm_id,note\r\n";
  uint64_t seed = 0x9E3779B97F4A7C15ull;
  size_t bytes = 0;
  for (size_t i = 0; i < rows; ++i) {
    append_row(&buf, i, &seed);
    if (buf.size() >= kChunk) {
      f.write(buf.data(), static_cast<std::streamsize>(buf.size()));
      bytes += buf.size();
      buf.clear();
    }
  }
  f.write(buf.data(), static_cast<std::streamsize>(buf.size()));
  return bytes + buf.size();
}

struct Run {
  double feed_s = 0;   // time inside feed/finish only
  double total_s = 0;  // including read() of the chunks
  size_t records = 0, bad = 0, field_bytes = 0;
  size_t heap_peak = 0;  // most heap bytes in use seen in a callback (when sampled)
};

// sample_heap: read the heap in use (mallinfo2) in every callback; slow, so only in the untimed run.
Run read_file(const std::string& path, bool sample_heap) {
  Run run;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    std::perror(path.c_str());
    std::exit(1);
  }
  auto on_record = [&](const osvi::net::CsvRecord& r) {
    ++run.records;
    if (!r.ok()) ++run.bad;
    for (auto f : r.fields) run.field_bytes += f.size();
    if (sample_heap) run.heap_peak = std::max(run.heap_peak, mallinfo2().uordblks);
  };
  osvi::net::CsvReader reader;
  std::vector<char> chunk(kChunk);
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  clock::duration in_feed{};
  for (;;) {
    const ssize_t n = ::read(fd, chunk.data(), chunk.size());
    if (n <= 0) break;
    const auto t = clock::now();
    reader.feed(std::string_view(chunk.data(), static_cast<size_t>(n)), on_record);
    in_feed += clock::now() - t;
  }
  const auto t = clock::now();
  reader.finish(on_record);
  in_feed += clock::now() - t;
  run.total_s = std::chrono::duration<double>(clock::now() - start).count();
  run.feed_s = std::chrono::duration<double>(in_feed).count();
  ::close(fd);
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  const size_t rows = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100000;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 5;
  char tmpl[] = "/tmp/csv_bench_XXXXXX";
  const int tmp = ::mkstemp(tmpl);
  if (tmp < 0) return 1;
  ::close(tmp);
  const std::string path = tmpl;
  // A child writes the file, so the heap it takes to generate is never this process's.
  const pid_t child = ::fork();
  if (child == 0) {
    write_file(path, rows);
    _exit(0);
  }
  int status = 0;
  if (child < 0 || ::waitpid(child, &status, 0) != child || status != 0) return 1;
  std::ifstream sized(path, std::ios::binary | std::ios::ate);
  const auto bytes = static_cast<size_t>(sized.tellg());
  const double mb = static_cast<double>(bytes) / 1e6, records = static_cast<double>(rows + 1);
  std::printf("file: %zu data rows + header, %.2f MB, %zu KiB chunks, %d timed runs\n", rows, mb,
              kChunk / 1024, reps);

  // An untimed first run measures memory: the peak RSS it adds, and the heap in use at each record.
  const bool reset = reset_peak_rss();
  const long before = peak_rss_kb();
  const size_t heap_before = mallinfo2().uordblks;
  const Run first = read_file(path, true);
  const long after = peak_rss_kb();
  std::vector<Run> runs;
  for (int i = 0; i < reps; ++i) runs.push_back(read_file(path, false));

  if (first.records != rows + 1 || first.bad != 0) {
    std::fprintf(stderr, "expected %zu good records, got %zu (%zu bad)\n", rows + 1, first.records,
                 first.bad);
    return 2;
  }
  std::sort(runs.begin(), runs.end(), [](const Run& a, const Run& b) { return a.feed_s < b.feed_s; });
  const Run& med = runs[runs.size() / 2];
  std::printf("parse (feed/finish only), median: %.1f ms, %.0f rows/s, %.0f MB/s\n", med.feed_s * 1e3,
              records / med.feed_s, mb / med.feed_s);
  std::printf("with read() of the chunks, median run: %.1f ms, %.0f rows/s, %.0f MB/s\n", med.total_s * 1e3,
              records / med.total_s, mb / med.total_s);
  std::printf("field bytes delivered: %zu\n", first.field_bytes);
  std::printf("peak RSS (VmHWM): %ld kB before, %ld kB after reading: +%ld kB (file is %zu kB)%s\n", before,
              after, after - before, bytes / 1024,
              reset ? "" : " [VmHWM reset unavailable: delta is a lower bound]");
  std::printf(
      "heap in use during reading, most seen in a callback: +%zu bytes (64 KiB chunk buffer included)\n",
      first.heap_peak - heap_before);

  // For scale: the same measurement while holding the file whole, as a non-streaming reader would.
  reset_peak_rss();
  const long whole_before = peak_rss_kb();
  {
    std::ifstream f(path, std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::printf("(control: holding the file in one std::string: ");
    std::fflush(stdout);
    const long whole_after = peak_rss_kb();
    std::printf("+%ld kB peak RSS for %zu bytes)\n", whole_after - whole_before, all.size());
  }
  ::unlink(path.c_str());
  return 0;
}
