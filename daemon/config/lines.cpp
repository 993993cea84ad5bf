// Configuration: the "lines" section (telephony lines), read with the shared strict ObjectReader.
#include <initializer_list>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "osvi/config/config.hpp"
#include "reader.hpp"
#include "sections.hpp"

namespace osvi::daemon::config_detail {
namespace {

bool is_line_id(const std::string& s) {
  if (s.empty() || s.size() > 32) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// A string from a closed set, as its index. Not ObjectReader::choice(): GCC 12 in Release reports a false
// -Wrestrict in that template's message building when instantiated here; append() avoids the pattern.
size_t one_of(ObjectReader& r, const char* key, size_t def, std::initializer_list<std::string_view> names) {
  const cJSON* v = r.any(key);
  if (!v) return def;
  if (!cJSON_IsString(v)) {
    r.error(key, "expected a string, got " + std::string(json_type_name(v)));
    return def;
  }
  const std::string_view got = v->valuestring;
  std::string allowed;
  size_t i = 0;
  for (std::string_view n : names) {
    if (n == got) return i;
    if (i) allowed.append(i + 1 == names.size() ? " or " : ", ");
    allowed.append("\"").append(n).append("\"");
    ++i;
  }
  r.error(key, "must be " + allowed + ", got " + quote(got));
  return def;
}

hal::SimStep parse_step(const Item& item, Problems& p) {
  hal::SimStep s;
  ObjectReader r(item, &p);
  if (!r.valid()) return s;
  int kinds = 0;
  auto ms = [&r](const char* key) { return r.integer(key, 0, 0, 3'600'000); };
  if (r.has("wait_ms")) {
    s.kind = hal::SimStep::Kind::wait, s.ms = ms("wait_ms"), ++kinds;
  }
  if (r.has("silence_ms")) {
    s.kind = hal::SimStep::Kind::silence, s.ms = ms("silence_ms"), ++kinds;
  }
  if (r.has("dtmf")) {
    s.kind = hal::SimStep::Kind::dtmf, s.text = r.str("dtmf", "", 1, 64), ++kinds;
    if (!s.text.empty() && !hal::is_dtmf(s.text))
      r.error("dtmf", "expected digits 0-9 * # A-D, got " + quote(s.text));
  }
  if (r.has("say")) {
    s.kind = hal::SimStep::Kind::say, s.text = r.str("say", "", 1, 1000), ++kinds;
  }
  if (r.has("play")) {
    s.kind = hal::SimStep::Kind::play, s.text = r.str("play", "", 1, 4096), ++kinds;
  }
  if (r.has("hangup")) {
    if (r.boolean("hangup", true)) s.kind = hal::SimStep::Kind::hangup, ++kinds;
  }
  // say/play: `ms` is a minimum (silence pads shorter audio); without a voice, say is `ms` of silence.
  if (s.kind == hal::SimStep::Kind::say || s.kind == hal::SimStep::Kind::play)
    s.ms = r.integer("ms", 2000, 0, 600'000);
  s.after_agent = r.boolean("after_agent", s.after_agent);
  s.timeout_ms = r.integer("timeout_ms", s.timeout_ms, 0, 3'600'000);
  if (kinds != 1 && r.valid())
    p.add(item.path, "expected exactly one of wait_ms, silence_ms, dtmf, say, play, hangup");
  return s;
}

void parse_sim(ObjectReader r, hal::SimScript& s, Problems& p) {
  static constexpr hal::SimScript::Outcome kOutcomes[] = {
      hal::SimScript::Outcome::answer, hal::SimScript::Outcome::busy, hal::SimScript::Outcome::no_answer,
      hal::SimScript::Outcome::fail};
  s.outcome = kOutcomes[one_of(r, "outcome", 0, {"answer", "busy", "no_answer", "fail"})];
  s.rings = static_cast<unsigned>(r.integer("rings", s.rings, 0, 50));
  s.ring_interval_ms = r.integer("ring_interval_ms", s.ring_interval_ms, 10, 10000);
  s.incoming_after_ms = r.integer("incoming_after_s", 0, 0, 86400) * 1000;
  s.caller = r.str("caller", s.caller);
  if (!hal::is_e164(s.caller))
    r.error("caller", "expected an E.164 number (+ and 2-15 digits), got " + quote(s.caller));
  s.max_rings = static_cast<unsigned>(r.integer("max_rings", s.max_rings, 1, 100));
  for (const Item& item : r.array("steps")) s.steps.push_back(parse_step(item, p));
  s.rate = static_cast<unsigned>(r.integer("rate", s.rate, 8000, 16000));
  if (s.rate != 8000 && s.rate != 16000)
    r.error("rate", "must be 8000 or 16000, got " + std::to_string(s.rate));
  s.party_log = r.str("party_log", "", 0, 4096);
  s.agent_quiet_ms = r.integer("agent_quiet_ms", s.agent_quiet_ms, 100, 10000);
  s.agent_threshold_dbfs = r.number("agent_threshold_dbfs", s.agent_threshold_dbfs, -90.0, 0.0);
}

void parse_at(ObjectReader& r, hal::AtModemOptions& a) {
  a.device = r.required_str("device", 1, 4096);
  a.baud = static_cast<unsigned>(r.integer("baud", a.baud, 9600, 921600));
  static const std::set<unsigned> kBauds = {9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600};
  if (!kBauds.count(a.baud))
    r.error("baud", "must be one of 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, got " +
                        std::to_string(a.baud));
  static constexpr hal::ModemVendor kVendors[] = {hal::ModemVendor::generic, hal::ModemVendor::quectel_ec25,
                                                  hal::ModemVendor::simcom_sim7600};
  a.vendor = kVendors[one_of(r, "vendor", 0, {"generic", "quectel_ec25", "simcom_sim7600"})];
  a.audio_device = r.str("audio_device", a.audio_device, 0, 4096);
  a.pcm_16k = r.boolean("pcm_16k", a.pcm_16k);
  // Only SIM7600 negotiates its PCM rate (AT+CPCMFRM); the other profiles' audio is 8 kHz, so the key would
  // be ignored.
  if (a.vendor != hal::ModemVendor::simcom_sim7600)
    r.forbid("pcm_16k", "only allowed when vendor is \"simcom_sim7600\"");
  a.audio_clockless = r.boolean("audio_clockless", a.audio_clockless);
  a.command_timeout_ms = r.integer("command_timeout_ms", a.command_timeout_ms, 100, 60000);
  a.dial_timeout_ms = r.integer("dial_timeout_ms", a.dial_timeout_ms, 1000, 120000);
  a.ring_timeout_ms = r.integer("ring_timeout_s", a.ring_timeout_ms / 1000, 1, 300) * 1000;
  a.poll_interval_ms = r.integer("poll_interval_ms", a.poll_interval_ms, 50, 10000);
  a.reopen_min_ms = r.integer("reopen_min_ms", a.reopen_min_ms, 50, 60000);
  a.reopen_max_ms = r.integer("reopen_max_ms", a.reopen_max_ms, 50, 600000);
  if (a.reopen_max_ms < a.reopen_min_ms)
    r.error("reopen_max_ms", "must be at least reopen_min_ms (" + std::to_string(a.reopen_min_ms) + ")");
  for (const Item& item : r.array("vendor_finals")) {
    if (!cJSON_IsString(item.node) || !*item.node->valuestring) {
      r.problems().add(item.path,
                       "expected a non-empty string, got " + std::string(json_type_name(item.node)));
      continue;
    }
    a.vendor_finals.emplace_back(item.node->valuestring);
  }
}

}  // namespace

void parse_lines(const std::vector<Item>& items, Problems& p, std::vector<LineConfig>& lines,
                 std::vector<std::pair<std::string, std::string>>& agent_refs) {
  std::set<std::string> ids;
  std::set<std::string> devices;
  for (const Item& item : items) {
    ObjectReader r(item, &p);
    if (!r.valid()) continue;
    LineConfig l;
    l.id = r.required_str("id", 1, 32);
    if (!l.id.empty() && !is_line_id(l.id))
      r.error("id", "expected 1-32 of a-z 0-9 _ -, got " + quote(l.id));
    else if (!l.id.empty() && !ids.insert(l.id).second)
      r.error("id", "duplicate line id " + quote(l.id));
    if (!r.has("type")) r.error("type", "required key is missing");
    l.type = one_of(r, "type", 1, {"at", "sim"}) == 0 ? LineType::at : LineType::sim;
    l.agent_uuid = r.str("agent_uuid", "", 0, 70);
    if (!l.agent_uuid.empty()) agent_refs.emplace_back(r.path_of("agent_uuid"), l.agent_uuid);
    l.number = r.str("number", "", 0, 16);
    if (!l.number.empty() && !hal::is_e164(l.number))
      r.error("number", "expected an E.164 number (+ and 2-15 digits), got " + quote(l.number));
    l.enabled = r.boolean("enabled", l.enabled);
    if (l.type == LineType::at) {
      parse_at(r, l.at);
      l.at.id = l.id;
      if (!l.at.device.empty() && !devices.insert(l.at.device).second)
        r.error("device", "used by another line: " + quote(l.at.device));
      r.forbid("sim", "only allowed when type is \"sim\"");
    } else {
      parse_sim(r.object("sim"), l.sim, p);
      for (const char* k : {"device", "baud", "vendor", "audio_device", "audio_clockless", "pcm_16k",
                            "command_timeout_ms", "dial_timeout_ms", "ring_timeout_s", "poll_interval_ms",
                            "reopen_min_ms", "reopen_max_ms", "vendor_finals"})
        r.forbid(k, "only allowed when type is \"at\"");
    }
    lines.push_back(std::move(l));
  }
}

}  // namespace osvi::daemon::config_detail
