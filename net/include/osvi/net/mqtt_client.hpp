// MQTT client on libmosquitto for one connection session, driven by the owner's event loop: no threads.
//
// Threading: every member function and every callback runs on the one thread that owns the object.
// The owner watches socket() (readable, and writable while want_write()), calls loop_read()/loop_write()
// and calls loop_misc() every misc_interval_ms() (keep-alive). One object is one session: after a
// disconnect the owner destroys it and creates a new one (its own backoff), so libmosquitto never
// reconnects or re-sends on its own and the owner's durable queue stays the only source of truth.
// Callbacks may run inside loop_read()/loop_write()/publish(); they must not destroy the client.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"

struct mosquitto;

namespace osvi::net {

enum class MqttProtocol { v311, v5 };

struct MqttTls {
  std::string ca_file;    // empty = no TLS
  std::string cert_file;  // client certificate (optional, with key_file)
  std::string key_file;
  bool insecure = false;  // skip the host name check (test rigs only)
};

struct MqttWill {
  std::string topic;
  std::string payload;
  int qos = 1;
  bool retain = true;
};

struct MqttOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 1883;
  std::string client_id;
  std::string username;  // empty = none
  std::string password;
  MqttProtocol protocol = MqttProtocol::v5;
  int keepalive_s = 30;
  MqttTls tls;
  std::optional<MqttWill> will;
  unsigned max_inflight = 100;  // QoS 1 messages libmosquitto sends before waiting for PUBACKs
};

struct MqttMessage {
  std::string topic;
  std::string payload;
  int qos = 0;
  bool retain = false;
  std::string response_topic;    // MQTT v5 property; empty when absent
  std::string correlation_data;  // MQTT v5 property; empty when absent
};

struct MqttCallbacks {
  std::function<void(int reason_code, std::string_view reason)> on_connect;  // 0 = accepted
  std::function<void(int reason_code)> on_disconnect;                        // 0 = we asked for it
  // QoS 1: PUBACK received (reason_code >= 0x80: the broker refused it); QoS 0: written to the socket.
  std::function<void(int mid, int reason_code)> on_publish;
  std::function<void(const MqttMessage&)> on_message;
  std::function<void(int mid)> on_subscribe;  // SUBACK for the subscribe() that returned mid
};

struct MqttPublishProps {
  std::string correlation_data;  // MQTT v5: echoes a request's correlation data in its response
};

class MqttClient {
 public:
  // Creates the handle and starts a non-blocking connect (TCP, then TLS and CONNECT from the loop).
  // An error here (bad TLS files, refused at once) means: wait and try again with a new object.
  static Result<std::unique_ptr<MqttClient>> connect(const MqttOptions& options, MqttCallbacks callbacks);
  // Opens libmosquitto (once per process; connect() does too): the configuration check for mqtt.enabled, so
  // a box whose library is missing refuses the setting instead of retrying for ever. -ELIBACC when missing.
  static Status load_library();
  ~MqttClient();
  MqttClient(const MqttClient&) = delete;
  MqttClient& operator=(const MqttClient&) = delete;

  int socket() const;
  bool want_write() const;
  static constexpr uint64_t misc_interval_ms() { return 1000; }
  // Each returns an error once the connection is lost; the client is then dead.
  Status loop_read();
  Status loop_write();
  Status loop_misc();

  bool connected() const { return connected_; }
  bool dead() const { return dead_; }
  const MqttOptions& options() const { return options_; }

  // Returns the message id (for on_publish).
  Result<int> publish(std::string_view topic, std::string_view payload, int qos, bool retain,
                      const MqttPublishProps* props = nullptr);
  // One SUBSCRIBE packet for all patterns; returns the message id its SUBACK reports to on_subscribe.
  Result<int> subscribe(const std::vector<std::string>& patterns, int qos);
  // Turns a bare poll() loop until done() or the timeout (shutdown flush, benchmarks); false on timeout
  // or when the connection died.
  bool run_until(const std::function<bool()>& done, int timeout_ms);
  // Sends DISCONNECT (normal: the broker discards the Will) once queued packets are written.
  void disconnect();

 private:
  MqttClient(MqttOptions options, MqttCallbacks callbacks)
      : options_(std::move(options)), callbacks_(std::move(callbacks)) {}
  Status check(int rc, std::string_view what);

  MqttOptions options_;
  MqttCallbacks callbacks_;
  mosquitto* mosq_ = nullptr;
  bool connected_ = false;
  bool dead_ = false;

  struct Glue;
  friend struct Glue;
};

}  // namespace osvi::net
