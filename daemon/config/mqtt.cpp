// Configuration: the "mqtt" section (fleet sync), read with the shared strict ObjectReader.
#include <string>

#include "osvi/config/config.hpp"
#include "osvi/net/mqtt_client.hpp"
#include "reader.hpp"
#include "sections.hpp"

namespace osvi::daemon::config_detail {
namespace {

bool is_topic_level_text(const std::string& s) {
  // '+' and '#' are wildcards and would make our own topics unmatchable; empty levels are legal but a trap.
  if (s.empty() || s.front() == '/' || s.back() == '/') return false;
  for (char c : s)
    if (c == '+' || c == '#' || c == '\0') return false;
  return s.find("//") == std::string::npos;
}

}  // namespace

void parse_mqtt(ObjectReader r, MqttConfig& m) {
  m.enabled = r.boolean("enabled", m.enabled);
  // libmosquitto is opened on demand (issue 18); a box without it refuses the setting rather than retrying.
  if (m.enabled) {
    if (auto s = net::MqttClient::load_library(); !s) r.error("enabled", s.error().message);
  }
  m.host = r.str("host", m.host, 1, 253);
  const bool tls_given_port = !r.has("port");
  m.port = static_cast<uint16_t>(r.integer("port", m.port, 1, 65535));
  const std::string proto = r.str("protocol", "5");
  if (proto == "3.1.1") {
    m.v311 = true;
  } else if (proto != "5") {
    r.error("protocol", "must be \"5\" or \"3.1.1\", got " + quote(proto));
  }
  m.client_id = r.str("client_id", m.client_id, 0, 128);
  m.username = r.str("username", m.username, 0, 256);
  m.password = r.str("password", m.password, 0, 256);
  if (!m.password.empty() && m.username.empty()) r.error("password", "needs a username");
  m.keepalive_s = static_cast<unsigned>(r.integer("keepalive_s", m.keepalive_s, 5, 3600));
  m.topic_prefix = r.str("topic_prefix", m.topic_prefix, 1, 128);
  if (!is_topic_level_text(m.topic_prefix))
    r.error("topic_prefix",
            "expected topic levels without '+', '#' or empty levels, got " + quote(m.topic_prefix));
  {
    ObjectReader t = r.object("tls");
    m.tls.enabled = t.boolean("enabled", m.tls.enabled);
    m.tls.ca_file = t.str("ca_file", m.tls.ca_file);
    m.tls.cert_file = t.str("cert_file", m.tls.cert_file);
    m.tls.key_file = t.str("key_file", m.tls.key_file);
    m.tls.insecure = t.boolean("insecure", m.tls.insecure);
    if (m.tls.enabled && m.tls.ca_file.empty()) t.error("ca_file", "required when tls.enabled is true");
    if (m.tls.cert_file.empty() != m.tls.key_file.empty())
      t.error(m.tls.cert_file.empty() ? "cert_file" : "key_file", "cert_file and key_file go together");
  }
  if (m.tls.enabled && tls_given_port) m.port = 8883;
  m.reconnect_min_ms = static_cast<unsigned>(r.integer("reconnect_min_ms", m.reconnect_min_ms, 50, 600000));
  m.reconnect_max_ms = static_cast<unsigned>(r.integer("reconnect_max_ms", m.reconnect_max_ms, 50, 3600000));
  if (m.reconnect_max_ms < m.reconnect_min_ms)
    r.error("reconnect_max_ms",
            "must be at least reconnect_min_ms (" + std::to_string(m.reconnect_min_ms) + ")");
  m.connect_timeout_ms =
      static_cast<unsigned>(r.integer("connect_timeout_ms", m.connect_timeout_ms, 500, 120000));
  m.max_inflight = static_cast<unsigned>(r.integer("max_inflight", m.max_inflight, 1, 65535));
  const int64_t tel = r.integer("telemetry_interval_s", m.telemetry_interval_s, 0, 86400);
  if (tel != 0 && tel < 1) r.error("telemetry_interval_s", "must be 0 (off) or 1 to 86400");
  m.telemetry_interval_s = static_cast<unsigned>(tel);
  {
    ObjectReader o = r.object("outbox");
    m.outbox_max_rows = o.integer("max_rows", m.outbox_max_rows, 100, 10'000'000);
    m.outbox_max_bytes = o.integer("max_bytes", m.outbox_max_bytes, 1024 * 1024, 64LL * 1024 * 1024 * 1024);
  }
  {
    ObjectReader c = r.object("commands");
    m.command_token = c.str("token", m.command_token, 0, 256);
    // The token is all that stands between the broker's other clients and the box's commands.
    if (!m.command_token.empty() && m.command_token.size() < 16)
      c.error("token", "must be at least 16 characters (empty: every fleet command is refused), got " +
                           std::to_string(m.command_token.size()));
    m.max_command_bytes = static_cast<size_t>(
        c.integer("max_request_bytes", static_cast<int64_t>(m.max_command_bytes), 1024, 16 * 1024 * 1024));
  }
}

}  // namespace osvi::daemon::config_detail
