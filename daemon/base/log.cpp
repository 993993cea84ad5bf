// Logging back ends: sd_journal_sendv with structured fields, or one readable line per entry on stderr.
#include "osvi/base/log.hpp"

#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <mutex>
#include <string>

namespace osvi::log {
namespace {

std::atomic<Level> g_level{Level::info};
std::atomic<Sink> g_sink{Sink::stderr_text};
std::string g_identifier = "osvid";

constexpr size_t kMaxFields = 16;

// The recent warnings and errors (recent_problems()), bounded by kRecentProblems: a push past the bound drops
// the oldest. A mutex, because log::write is called from threads other than the loop's too.
std::mutex g_recent_mutex;
std::deque<LoggedProblem> g_recent;

std::string cut_utf8(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t n = max;
  // Never end inside a UTF-8 sequence: back off continuation bytes so the JSON printer gets valid text.
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n));
}

void remember(Level level, std::string_view message_id, std::string_view message,
              std::initializer_list<Field> fields) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  LoggedProblem p;
  p.wall_ms = static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
  p.level = level;
  p.message = cut_utf8(message, kRecentMessageBytes);
  p.message_id = std::string(message_id);
  p.fields.reserve(std::min(fields.size(), kMaxFields));
  for (const Field& f : fields) {
    if (p.fields.size() == kMaxFields) break;
    p.fields.emplace_back(std::string(f.name), cut_utf8(f.value, kRecentFieldBytes));
  }
  std::lock_guard lock(g_recent_mutex);
  if (g_recent.size() == kRecentProblems) g_recent.pop_front();
  g_recent.push_back(std::move(p));
}

bool journal_stream_is_stderr() {
  const char* env = std::getenv("JOURNAL_STREAM");
  if (!env) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  return st.st_dev == dev && st.st_ino == ino;
}

void write_stderr(Level level, std::string_view message_id, std::string_view message,
                  std::initializer_list<Field> fields) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm utc{};
  gmtime_r(&ts.tv_sec, &utc);
  char stamp[96];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, ts.tv_nsec / 1'000'000);
  std::string line;
  line.reserve(160);
  line += stamp;
  line += ' ';
  line += level_name(level);
  line += ": ";
  line += message;
  for (const Field& f : fields) {
    line += ' ';
    line += f.name;
    line += '=';
    line += f.value;
  }
  (void)message_id;  // ids are for journal queries; on a terminal they are noise
  line += '\n';
  // One write() per entry so lines from several processes never interleave mid-line.
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
}

void write_journal(Level level, std::string_view message_id, std::string_view message,
                   std::initializer_list<Field> fields) {
  std::array<std::string, kMaxFields + 4> storage;
  std::array<iovec, kMaxFields + 4> iov{};
  size_t n = 0;
  auto add = [&](std::string_view name, std::string_view value) {
    std::string& s = storage[n];
    s.reserve(name.size() + 1 + value.size());
    s.append(name).append("=").append(value);
    iov[n].iov_base = s.data();
    iov[n].iov_len = s.size();
    ++n;
  };
  add("MESSAGE", message);
  add("PRIORITY", std::to_string(static_cast<int>(level)));
  add("SYSLOG_IDENTIFIER", g_identifier);
  if (!message_id.empty()) add("MESSAGE_ID", message_id);
  size_t used = 0;
  for (const Field& f : fields) {
    if (used++ == kMaxFields) break;
    add(f.name, f.value);
  }
  if (sd_journal_sendv(iov.data(), static_cast<int>(n)) < 0) {
    write_stderr(level, message_id, message, fields);
  }
}

}  // namespace

std::optional<Level> parse_level(std::string_view name) {
  if (name == "err" || name == "error") return Level::err;
  if (name == "warning" || name == "warn") return Level::warning;
  if (name == "notice") return Level::notice;
  if (name == "info") return Level::info;
  if (name == "debug") return Level::debug;
  return std::nullopt;
}

std::string_view level_name(Level level) {
  switch (level) {
    case Level::err:
      return "err";
    case Level::warning:
      return "warning";
    case Level::notice:
      return "notice";
    case Level::info:
      return "info";
    case Level::debug:
      return "debug";
  }
  return "info";
}

void init(std::string_view identifier) {
  g_identifier = std::string(identifier);
  g_sink = journal_stream_is_stderr() ? Sink::journal : Sink::stderr_text;
}

void set_sink(Sink sink) {
  g_sink = sink;
}
Sink sink() {
  return g_sink;
}
void set_level(Level level) {
  g_level = level;
}
Level level() {
  return g_level;
}
bool enabled(Level level) {
  return static_cast<int>(level) <= static_cast<int>(g_level.load());
}

void write(Level level, std::string_view message_id, std::string_view message,
           std::initializer_list<Field> fields) {
  if (!enabled(level)) return;
  if (static_cast<int>(level) <= static_cast<int>(Level::warning))
    remember(level, message_id, message, fields);
  if (g_sink == Sink::journal) {
    write_journal(level, message_id, message, fields);
  } else {
    write_stderr(level, message_id, message, fields);
  }
}

std::vector<LoggedProblem> recent_problems(size_t limit) {
  std::lock_guard lock(g_recent_mutex);
  std::vector<LoggedProblem> out;
  out.reserve(std::min(limit, g_recent.size()));
  for (auto it = g_recent.rbegin(); it != g_recent.rend() && out.size() < limit; ++it) out.push_back(*it);
  return out;
}

void clear_recent_problems() {
  std::lock_guard lock(g_recent_mutex);
  g_recent.clear();
}

}  // namespace osvi::log
