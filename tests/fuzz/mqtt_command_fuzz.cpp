// libFuzzer target for check_command_request: any command name, payload and response topic, with and without
// a command token; checks the promises FleetSync::handle_command relies on.
#include <cjson/cJSON.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "osvi/fleet/command_request.hpp"

namespace {

using osvi::daemon::CommandPolicy;
using osvi::daemon::CommandRequest;

constexpr const char* kPrefix = "osvi/v1/site1/box1";
constexpr const char* kToken = "s3cret-token";
// Every command the box knows, plus names it must refuse (unknown, unusable in a topic, too long).
const std::string kNames[] = {"ping", "log_level", "dnd", "call",     "config", "reboot",
                              "",     "a b",       "x/y", "\xc3\xa9", "+",      std::string(65, 'n')};
constexpr std::string_view kKnown[] = {"ping", "log_level", "dnd", "call", "config"};

void require(bool ok) {
  if (!ok) std::abort();
}

bool printable_ascii(std::string_view s) {
  for (char c : s)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t ctl = data[0];
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::string& name = kNames[(ctl & 0x0f) % (sizeof kNames / sizeof *kNames)];
  CommandPolicy policy{kPrefix, (ctl & 0x10) ? kToken : "", (ctl & 0x20) ? size_t{64} : size_t{262144}};
  // A 0xff byte splits the MQTT v5 response topic (before) from the payload (after).
  std::string_view response_topic;
  if (size_t sep = in.find('\xff'); sep != std::string_view::npos) {
    response_topic = in.substr(0, sep);
    in.remove_prefix(sep + 1);
  }
  CommandRequest q = osvi::daemon::check_command_request(policy, name, in, response_topic);

  // The answer goes home: the default topic or one under <prefix>/reply/, and nowhere for an unusable name.
  const std::string home = std::string(kPrefix) + "/cmd/" + name + "/res";
  if (!osvi::daemon::is_command_name(name)) {
    require(q.reply_topic.empty() && q.name.empty());
  } else {
    require(q.name == name);
    require(q.reply_topic == home || osvi::daemon::is_allowed_reply_topic(kPrefix, q.reply_topic));
    require(q.reply_topic.starts_with(std::string(kPrefix) + "/"));
    require(q.reply_topic.size() <= osvi::daemon::kMaxReplyTopicBytes);
    require(q.reply_topic.find_first_of("+#") == std::string::npos && printable_ascii(q.reply_topic));
  }
  // Reasons are bounded and printable, whatever the request held.
  for (const std::string& why : q.reasons)
    require(!why.empty() && why.size() <= osvi::daemon::kMaxCommandReasonBytes && printable_ascii(why));
  require(q.correlation_id.size() <= osvi::daemon::kMaxCorrelationIdBytes);

  // Authentication comes before anything the request may choose.
  if (policy.token.empty()) require(!q.authenticated);
  if (!q.authenticated) {
    require(q.reasons.size() == 1 && !q.body);
    require(q.reply_topic.empty() || q.reply_topic == home);
  } else {
    require(!policy.token.empty());
    require(cJSON_IsObject(q.body.get()));
    require(cJSON_GetObjectItemCaseSensitive(q.body.get(), "token") == nullptr);
    if (q.ok() && !response_topic.empty()) require(q.reply_topic == response_topic);
  }
  if (q.ok()) {
    bool known = false;
    for (std::string_view k : kKnown) known = known || name == k;
    require(known && q.authenticated);
  }
  return 0;
}
