// Logging: structured journal entries under journald, readable stderr lines elsewhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace osvi::log {

// syslog priorities, so PRIORITY= in the journal is the enum value.
enum class Level { err = 3, warning = 4, notice = 5, info = 6, debug = 7 };

std::optional<Level> parse_level(std::string_view name);
std::string_view level_name(Level level);

// One structured field, e.g. {"CALL_ID", id}. Names follow journal rules: A-Z, 0-9, '_'.
struct Field {
  std::string_view name;
  std::string_view value;
};

// Stable 128-bit ids (journalctl MESSAGE_ID=...) for the events a technician searches for.
namespace id {
inline constexpr std::string_view kStarted = "6b0a5c1e2f4d4a7e9c3b8d1f0e2a4c61";
inline constexpr std::string_view kReady = "6b0a5c1e2f4d4a7e9c3b8d1f0e2a4c62";
inline constexpr std::string_view kStopping = "6b0a5c1e2f4d4a7e9c3b8d1f0e2a4c63";
inline constexpr std::string_view kConfigReloaded = "6b0a5c1e2f4d4a7e9c3b8d1f0e2a4c64";
inline constexpr std::string_view kConfigRejected = "6b0a5c1e2f4d4a7e9c3b8d1f0e2a4c65";
inline constexpr std::string_view kDbRecovered = "6b0a5c1e2f4d4a7e9c3b8d1f0e2a4c66";
inline constexpr std::string_view kDbCheckFailed = "6b0a5c1e2f4d4a7e9c3b8d1f0e2a4c67";
inline constexpr std::string_view kCallStarted = "6b0a5c1e2f4d4a7e9c3b8d1f0e2a4c68";
inline constexpr std::string_view kCallEnded = "6b0a5c1e2f4d4a7e9c3b8d1f0e2a4c69";
inline constexpr std::string_view kLogLevelChanged = "6b0a5c1e2f4d4a7e9c3b8d1f0e2a4c6a";
inline constexpr std::string_view kApiListening = "6b0a5c1e2f4d4a7e9c3b8d1f0e2a4c6b";
// fleet sync
inline constexpr std::string_view kMqttConnected = "6b0a5c1e2f4d4a7e9c3b8d1f0e2a4c70";
inline constexpr std::string_view kMqttDisconnected = "6b0a5c1e2f4d4a7e9c3b8d1f0e2a4c71";
inline constexpr std::string_view kMqttCommand = "6b0a5c1e2f4d4a7e9c3b8d1f0e2a4c72";
inline constexpr std::string_view kOutboxAlarm = "6b0a5c1e2f4d4a7e9c3b8d1f0e2a4c73";
inline constexpr std::string_view kMqttConfigApplied = "6b0a5c1e2f4d4a7e9c3b8d1f0e2a4c74";
// telephony lines
inline constexpr std::string_view kLineUp = "6b0a5c1e2f4d4a7e9c3b8d1f0e2a4c80";
inline constexpr std::string_view kLineDown = "6b0a5c1e2f4d4a7e9c3b8d1f0e2a4c81";
// webhooks: a delivery dead-lettered (its final failure; one entry per delivery)
inline constexpr std::string_view kWebhookDead = "6b0a5c1e2f4d4a7e9c3b8d1f0e2a4c90";
}  // namespace id

// Where entries go; chosen once at start from JOURNAL_STREAM (see init()).
enum class Sink { stderr_text, journal };

// Reads JOURNAL_STREAM and compares it with stderr's device:inode, as systemd documents.
void init(std::string_view identifier = "osvid");
void set_sink(Sink sink);
Sink sink();
void set_level(Level level);
Level level();
bool enabled(Level level);

// Emits one entry. message_id may be empty.
void write(Level level, std::string_view message_id, std::string_view message,
           std::initializer_list<Field> fields = {});

// The last warnings and errors written (GET /v1/system/errors): kept in memory as well as sent to the sink,
// so a console sees them on a box without a reachable journal. Bounded: kRecentProblems entries, each message
// cut at kRecentMessageBytes and each field value at kRecentFieldBytes. Any thread may log; the ring has a
// mutex.
inline constexpr size_t kRecentProblems = 200;
inline constexpr size_t kRecentMessageBytes = 1024;
inline constexpr size_t kRecentFieldBytes = 256;
struct LoggedProblem {
  int64_t wall_ms = 0;  // CLOCK_REALTIME when written
  Level level = Level::err;
  std::string message;
  std::string message_id;  // empty: none
  std::vector<std::pair<std::string, std::string>> fields;
};
// Newest first, at most `limit`.
std::vector<LoggedProblem> recent_problems(size_t limit);
// Empties the ring (tests).
void clear_recent_problems();

inline void error(std::string_view msg, std::initializer_list<Field> f = {}, std::string_view mid = {}) {
  write(Level::err, mid, msg, f);
}
inline void warning(std::string_view msg, std::initializer_list<Field> f = {}, std::string_view mid = {}) {
  write(Level::warning, mid, msg, f);
}
inline void notice(std::string_view msg, std::initializer_list<Field> f = {}, std::string_view mid = {}) {
  write(Level::notice, mid, msg, f);
}
inline void info(std::string_view msg, std::initializer_list<Field> f = {}, std::string_view mid = {}) {
  write(Level::info, mid, msg, f);
}
inline void debug(std::string_view msg, std::initializer_list<Field> f = {}, std::string_view mid = {}) {
  write(Level::debug, mid, msg, f);
}

}  // namespace osvi::log
