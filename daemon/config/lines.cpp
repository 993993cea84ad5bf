// Configuration: the "lines" section (telephony lines), read with the shared strict ObjectReader.
#include <arpa/inet.h>

#include <algorithm>
#include <initializer_list>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "key_file.hpp"
#include "osvi/config/config.hpp"
#include "osvi/hal/at_modem_line.hpp"
#include "osvi/hal/audio_stream.hpp"
#include "osvi/hal/sip_line.hpp"
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

// "host", "host:port", "[v6]" or "[v6]:port": the registrar and the outbound proxy. A bare IPv6 address is
// refused: its colons cannot be told from a port.
bool is_sip_host_port(std::string_view s, std::string* why) {
  std::string_view host = s;
  std::string_view rest;  // ":port" or empty
  if (!s.empty() && s.front() == '[') {
    const size_t close = s.find(']');
    if (close == std::string_view::npos) {
      *why = "an IPv6 address in brackets lacks its ']'";
      return false;
    }
    const std::string v6(s.substr(1, close - 1));
    in6_addr a{};
    if (inet_pton(AF_INET6, v6.c_str(), &a) != 1) {
      *why = "not an IPv6 address between the brackets: " + quote(v6);
      return false;
    }
    rest = s.substr(close + 1);
  } else {
    const size_t colon = s.find(':');
    if (colon != std::string_view::npos && s.find(':', colon + 1) != std::string_view::npos) {
      *why = "an IPv6 address goes in brackets (\"[2001:db8::1]:5060\")";
      return false;
    }
    host = s.substr(0, colon);
    if (colon != std::string_view::npos) rest = s.substr(colon);
    const bool chars_ok = std::all_of(host.begin(), host.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
             c == '.';
    });
    if (host.empty() || host.size() > 253 || !chars_ok || host.front() == '.' || host.front() == '-' ||
        host.back() == '-' || host.find("..") != std::string_view::npos) {
      *why = "expected a host name or address, optionally with :port, got " + quote(s);
      return false;
    }
  }
  if (rest.empty()) return true;
  const std::string_view port = rest.substr(1);
  const bool digits = rest.front() == ':' && !port.empty() && port.size() <= 5 &&
                      std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
  const unsigned long v = digits ? std::stoul(std::string(port)) : 0;
  if (!digits || v < 1 || v > 65535) {
    *why = rest.front() == ':' ? "the port must be 1 to 65535, got " + quote(port)
                               : "expected ':' and a port after ']'";
    return false;
  }
  return true;
}

// A SIP user part as we send it (From, Contact, the digest username): printable ASCII without the characters
// that delimit a URI or a header value.
bool is_sip_user(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return c > 0x20 && c < 0x7f && c != '@' && c != ':' && c != '<' && c != '>' && c != '"' && c != '\\' &&
           c != ';' && c != '?' && c != '/' && c != '[' && c != ']';
  });
}

// Two SIP lines share this box's ports: their RTP ranges must not overlap, nor their SIP sockets collide.
void check_sip_against_others(ObjectReader& r, const hal::SipLineOptions& s,
                              const std::vector<LineConfig>& earlier) {
  for (const LineConfig& o : earlier) {
    if (o.type != LineType::sip) continue;
    const hal::SipLineOptions& t = o.sip;
    if (s.rtp_port_min <= t.rtp_port_max && t.rtp_port_min <= s.rtp_port_max)
      r.error("rtp_port_min", "the RTP range " + std::to_string(s.rtp_port_min) + "-" +
                                  std::to_string(s.rtp_port_max) + " overlaps line " + quote(o.id) + "'s (" +
                                  std::to_string(t.rtp_port_min) + "-" + std::to_string(t.rtp_port_max) +
                                  ")");
    const bool same_ip = s.local_ip.empty() || t.local_ip.empty() || s.local_ip == t.local_ip;
    if (s.local_port != 0 && s.local_port == t.local_port && same_ip)
      r.error("local_port", std::to_string(s.local_port) + " is line " + quote(o.id) + "'s SIP port too");
    if (t.local_port != 0 && t.local_port >= s.rtp_port_min && t.local_port <= s.rtp_port_max)
      r.error("rtp_port_min", "the RTP range " + std::to_string(s.rtp_port_min) + "-" +
                                  std::to_string(s.rtp_port_max) + " holds line " + quote(o.id) +
                                  "'s SIP port " + std::to_string(t.local_port));
  }
}

void parse_sip(ObjectReader r, hal::SipLineOptions& s, const std::vector<LineConfig>& earlier) {
  if (!r.present()) {
    r.problems().add(r.path(), "required when type is \"sip\"");
    return;
  }
  if (!r.valid()) return;
  std::string why;
  s.registrar = r.required_str("registrar", 1, 260);
  if (!s.registrar.empty() && !is_sip_host_port(s.registrar, &why)) r.error("registrar", why);
  s.user = r.required_str("user", 1, 64);
  if (!s.user.empty() && !is_sip_user(s.user))
    r.error("user", "expected 1-64 printable characters without blanks or @ : ; < > \" ? / [ ], got " +
                        quote(s.user));
  s.auth_user = r.str("auth_user", "", 0, 64);
  if (!s.auth_user.empty() && !is_sip_user(s.auth_user))
    r.error("auth_user", "expected 1-64 printable characters without blanks or @ : ; < > \" ? / [ ], got " +
                             quote(s.auth_user));
  static constexpr hal::SipTransport kTransports[] = {hal::SipTransport::udp, hal::SipTransport::tcp,
                                                      hal::SipTransport::tls};
  s.transport = kTransports[one_of(r, "transport", 0, {"udp", "tcp", "tls"})];
  if (s.transport == hal::SipTransport::tls) {
    s.tls_ca_file = r.str("tls_ca_file", "", 0, 4096);
    if (s.tls_ca_file.empty())
      r.error("tls_ca_file",
              "required when transport is \"tls\" (the CA bundle the registrar is checked against)");
    else if (std::string problem; !check_readable_file(s.tls_ca_file, problem))
      r.error("tls_ca_file", problem);
  } else {
    r.forbid("tls_ca_file", "only allowed when transport is \"tls\"");
  }
  s.outbound_proxy = r.str("outbound_proxy", "", 0, 260);
  if (!s.outbound_proxy.empty() && !is_sip_host_port(s.outbound_proxy, &why)) r.error("outbound_proxy", why);
  s.local_ip = r.str("local_ip", "", 0, 64);
  if (!s.local_ip.empty()) {
    in_addr a4{};
    in6_addr a6{};
    if (inet_pton(AF_INET, s.local_ip.c_str(), &a4) != 1 && inet_pton(AF_INET6, s.local_ip.c_str(), &a6) != 1)
      r.error("local_ip",
              "expected an IPv4 or IPv6 address of this box (no brackets), got " + quote(s.local_ip));
  }
  s.local_port = static_cast<uint16_t>(r.integer("local_port", s.local_port, 0, 65535));
  s.rtp_port_min = static_cast<uint16_t>(r.integer("rtp_port_min", s.rtp_port_min, 1024, 65535));
  s.rtp_port_max = static_cast<uint16_t>(r.integer("rtp_port_max", s.rtp_port_max, 1024, 65535));
  s.max_calls = static_cast<unsigned>(r.integer("max_calls", s.max_calls, 1, 64));
  // RTP takes an even port and RTCP the next one: the range is whole pairs, one per possible call at least.
  if (s.rtp_port_min >= s.rtp_port_max) {
    r.error("rtp_port_max", "must be above rtp_port_min (" + std::to_string(s.rtp_port_min) + "), got " +
                                std::to_string(s.rtp_port_max));
  } else if (s.rtp_port_min % 2 != 0) {
    r.error("rtp_port_min",
            "must be even (RTP takes the even port of each pair), got " + std::to_string(s.rtp_port_min));
  } else if ((s.rtp_port_max - s.rtp_port_min + 1) % 2 != 0) {
    r.error("rtp_port_max",
            "must be odd, so the range holds whole RTP/RTCP pairs, got " + std::to_string(s.rtp_port_max));
  } else if ((s.rtp_port_max - s.rtp_port_min + 1u) / 2 < s.max_calls) {
    r.error("rtp_port_max",
            "the range " + std::to_string(s.rtp_port_min) + "-" + std::to_string(s.rtp_port_max) + " holds " +
                std::to_string((s.rtp_port_max - s.rtp_port_min + 1u) / 2) +
                " RTP/RTCP pairs, fewer than max_calls (" + std::to_string(s.max_calls) + ")");
  }
  if (s.local_port != 0 && s.local_port >= s.rtp_port_min && s.local_port <= s.rtp_port_max)
    r.error("local_port", "must lie outside the RTP range " + std::to_string(s.rtp_port_min) + "-" +
                              std::to_string(s.rtp_port_max) + ", got " + std::to_string(s.local_port));
  if (r.has("codecs")) {
    const std::vector<Item> items = r.array("codecs");
    std::vector<hal::RtpCodec> codecs;
    bool ok = true;
    for (const Item& item : items) {
      const std::string_view name = cJSON_IsString(item.node) ? item.node->valuestring : "";
      hal::RtpCodec c;
      if (name == "opus")
        c = hal::RtpCodec::opus;
      else if (name == "pcmu")
        c = hal::RtpCodec::pcmu;
      else if (name == "pcma")
        c = hal::RtpCodec::pcma;
      else {
        r.problems().add(item.path, cJSON_IsString(item.node)
                                        ? "must be \"opus\", \"pcmu\" or \"pcma\", got " + quote(name)
                                        : "expected a string, got " + std::string(json_type_name(item.node)));
        ok = false;
        continue;
      }
      if (std::find(codecs.begin(), codecs.end(), c) != codecs.end()) {
        r.problems().add(item.path, "duplicate codec " + quote(name));
        ok = false;
        continue;
      }
      codecs.push_back(c);
    }
    if (ok && codecs.empty() &&
        cJSON_IsArray(r.node() ? cJSON_GetObjectItemCaseSensitive(r.node(), "codecs") : nullptr))
      r.error("codecs", "must list at least one of \"opus\", \"pcmu\", \"pcma\"");
    if (ok && !codecs.empty()) s.codecs = std::move(codecs);
  }
  s.register_expires_s =
      static_cast<unsigned>(r.integer("register_expires_s", s.register_expires_s, 0, 86400));
  if (s.register_expires_s != 0 && s.register_expires_s < 60)
    r.error("register_expires_s",
            "must be 0 (no registration) or 60 to 86400, got " + std::to_string(s.register_expires_s));
  s.keepalive_s = static_cast<unsigned>(r.integer("keepalive_s", s.keepalive_s, 0, 3600));
  s.ring_timeout_s = static_cast<unsigned>(r.integer("ring_timeout_s", s.ring_timeout_s, 1, 300));
  // Read now, so a wrong file is a --check-config error rather than a 401 loop at the PBX.
  const std::string password_file = r.str("password_file", "", 0, 4096);
  if (password_file.empty()) {
    if (s.register_expires_s != 0)
      r.error("password_file", "required key is missing (registration needs the digest password)");
  } else if (std::string problem; !read_secret_file(password_file, s.password, problem)) {
    r.error("password_file", problem);
  }
  check_sip_against_others(r, s, earlier);
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
    static constexpr LineType kTypes[] = {LineType::at, LineType::sim, LineType::sip};
    l.type = kTypes[one_of(r, "type", 1, {"at", "sim", "sip"})];
    l.agent_uuid = r.str("agent_uuid", "", 0, 70);
    if (!l.agent_uuid.empty()) agent_refs.emplace_back(r.path_of("agent_uuid"), l.agent_uuid);
    l.number = r.str("number", "", 0, 16);
    if (!l.number.empty() && !hal::is_e164(l.number))
      r.error("number", "expected an E.164 number (+ and 2-15 digits), got " + quote(l.number));
    l.enabled = r.boolean("enabled", l.enabled);
    static constexpr const char* kAtKeys[] = {"device",
                                              "baud",
                                              "vendor",
                                              "audio_device",
                                              "audio_clockless",
                                              "pcm_16k",
                                              "command_timeout_ms",
                                              "dial_timeout_ms",
                                              "ring_timeout_s",
                                              "poll_interval_ms",
                                              "reopen_min_ms",
                                              "reopen_max_ms",
                                              "vendor_finals"};
    // alsa-lib is opened by the first call's stream (issue 18); a box without it refuses a line whose audio
    // needs it here, naming the key, rather than failing every call later. The check leaves nothing mapped.
    auto needs_alsa = [&r, &l](const char* key, const std::string& what) {
      if (!l.enabled) return;
      if (auto s = hal::check_alsa_library(); !s) r.error(key, what + " needs " + s.error().message);
    };
    if (l.type == LineType::at) {
      parse_at(r, l.at);
      if (hal::at_audio_kind(l.at) == hal::AudioEndpoint::Kind::alsa)
        needs_alsa(l.at.audio_device.empty() ? "vendor" : "audio_device", "ALSA audio");
      l.at.id = l.id;
      if (!l.at.device.empty() && !devices.insert(l.at.device).second)
        r.error("device", "used by another line: " + quote(l.at.device));
      r.forbid("sim", "only allowed when type is \"sim\"");
      r.forbid("sip", "only allowed when type is \"sip\"");
    } else if (l.type == LineType::sim) {
      parse_sim(r.object("sim"), l.sim, p);
      needs_alsa("type", "\"sim\" (its audio is an ALSA PCM)");
      for (const char* k : kAtKeys) r.forbid(k, "only allowed when type is \"at\"");
      r.forbid("sip", "only allowed when type is \"sip\"");
    } else {
      parse_sip(r.object("sip"), l.sip, lines);
      // libre is opened on demand (issue 18); a box without it refuses the line rather than failing it later.
      if (l.enabled) {
        if (auto s = hal::load_sip_library(); !s) r.error("type", "\"sip\" needs " + s.error().message);
      }
      l.sip.id = l.id;
      for (const char* k : kAtKeys) r.forbid(k, "only allowed when type is \"at\"");
      r.forbid("sim", "only allowed when type is \"sim\"");
    }
    lines.push_back(std::move(l));
  }
}

}  // namespace osvi::daemon::config_detail
