// MQTT client on libmosquitto, one connection session per object, driven by the owner's loop.
#include "osvi/net/mqtt_client.hpp"

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <poll.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace osvi::net {

struct MqttClient::Glue {
  static MqttClient* self(void* obj) { return static_cast<MqttClient*>(obj); }

  static void on_connect(mosquitto*, void* obj, int rc, int /*flags*/, const mosquitto_property*) {
    MqttClient* c = self(obj);
    c->connected_ = rc == 0;
    if (c->callbacks_.on_connect) c->callbacks_.on_connect(rc, mosquitto_reason_string(rc));
  }
  static void on_disconnect(mosquitto*, void* obj, int rc, const mosquitto_property*) {
    MqttClient* c = self(obj);
    c->connected_ = false;
    c->dead_ = true;
    if (c->callbacks_.on_disconnect) c->callbacks_.on_disconnect(rc);
  }
  static void on_publish(mosquitto*, void* obj, int mid, int rc, const mosquitto_property*) {
    MqttClient* c = self(obj);
    if (c->callbacks_.on_publish) c->callbacks_.on_publish(mid, rc);
  }
  static void on_subscribe(mosquitto*, void* obj, int mid, int, const int*, const mosquitto_property*) {
    MqttClient* c = self(obj);
    if (c->callbacks_.on_subscribe) c->callbacks_.on_subscribe(mid);
  }
  static void on_message(mosquitto*, void* obj, const mosquitto_message* m, const mosquitto_property* props) {
    MqttClient* c = self(obj);
    if (!c->callbacks_.on_message) return;
    MqttMessage msg;
    msg.topic = m->topic != nullptr ? m->topic : "";
    if (m->payload != nullptr && m->payloadlen > 0)
      msg.payload.assign(static_cast<const char*>(m->payload), static_cast<size_t>(m->payloadlen));
    msg.qos = m->qos;
    msg.retain = m->retain;
    char* rt = nullptr;
    if (mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &rt, false) != nullptr && rt) {
      msg.response_topic = rt;
    }
    std::free(rt);
    void* cd = nullptr;
    uint16_t cd_len = 0;
    if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &cd, &cd_len, false) != nullptr &&
        cd != nullptr) {
      msg.correlation_data.assign(static_cast<const char*>(cd), cd_len);
    }
    std::free(cd);
    c->callbacks_.on_message(msg);
  }
};

namespace {

void lib_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { mosquitto_lib_init(); });
}

std::string mosq_error_text(int rc) {
  if (rc == MOSQ_ERR_ERRNO) return std::strerror(errno);
  return mosquitto_strerror(rc);
}

// The property list has one owner; libmosquitto copies what it sends.
struct PropsDeleter {
  void operator()(mosquitto_property* p) const { mosquitto_property_free_all(&p); }
};
using PropsPtr = std::unique_ptr<mosquitto_property, PropsDeleter>;

}  // namespace

Status MqttClient::check(int rc, std::string_view what) {
  if (rc == MOSQ_ERR_SUCCESS) return {};
  const int code = rc == MOSQ_ERR_ERRNO ? -errno : -EIO;
  return make_error("mqtt: " + std::string(what) + ": " + mosq_error_text(rc), code);
}

Result<std::unique_ptr<MqttClient>> MqttClient::connect(const MqttOptions& options, MqttCallbacks callbacks) {
  lib_init_once();
  std::unique_ptr<MqttClient> c(new MqttClient(options, std::move(callbacks)));
  // clean start: the durable queue is ours, a broker-side session would only replay what we resend anyway.
  c->mosq_ = mosquitto_new(options.client_id.empty() ? nullptr : options.client_id.c_str(), true, c.get());
  if (c->mosq_ == nullptr)
    return make_error("mqtt: creating the client: " + std::string(std::strerror(errno)), -ENOMEM);
  mosquitto* m = c->mosq_;
  const bool v5 = options.protocol == MqttProtocol::v5;
  if (auto s = c->check(
          mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, v5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311),
          "protocol version");
      !s)
    return s.error();
  const int inflight = static_cast<int>(
      options.max_inflight < 1 ? 1 : (options.max_inflight > 65535 ? 65535 : options.max_inflight));
  (void)mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, inflight);
  (void)mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
  if (!options.username.empty()) {
    if (auto s =
            c->check(mosquitto_username_pw_set(m, options.username.c_str(),
                                               options.password.empty() ? nullptr : options.password.c_str()),
                     "username");
        !s)
      return s.error();
  }
  if (!options.tls.ca_file.empty()) {
    const char* cert = options.tls.cert_file.empty() ? nullptr : options.tls.cert_file.c_str();
    const char* key = options.tls.key_file.empty() ? nullptr : options.tls.key_file.c_str();
    if (auto s = c->check(mosquitto_tls_set(m, options.tls.ca_file.c_str(), nullptr, cert, key, nullptr),
                          "TLS files (ca " + options.tls.ca_file + ")");
        !s)
      return s.error();
    if (options.tls.insecure) (void)mosquitto_tls_insecure_set(m, true);
  }
  if (options.will) {
    const MqttWill& w = *options.will;
    if (auto s = c->check(mosquitto_will_set_v5(m, w.topic.c_str(), static_cast<int>(w.payload.size()),
                                                w.payload.data(), w.qos, w.retain, nullptr),
                          "will");
        !s)
      return s.error();
  }
  mosquitto_connect_v5_callback_set(m, &Glue::on_connect);
  mosquitto_disconnect_v5_callback_set(m, &Glue::on_disconnect);
  mosquitto_publish_v5_callback_set(m, &Glue::on_publish);
  mosquitto_message_v5_callback_set(m, &Glue::on_message);
  mosquitto_subscribe_v5_callback_set(m, &Glue::on_subscribe);
  // Non-blocking: TCP connect in progress, CONNECT queued; the owner's loop finishes the job.
  if (auto s = c->check(mosquitto_connect_async(m, options.host.c_str(), options.port, options.keepalive_s),
                        "connecting to " + options.host + ":" + std::to_string(options.port));
      !s)
    return s.error();
  return c;
}

MqttClient::~MqttClient() {
  if (mosq_ != nullptr) mosquitto_destroy(mosq_);
}

int MqttClient::socket() const {
  return mosquitto_socket(mosq_);
}

bool MqttClient::want_write() const {
  return mosquitto_want_write(mosq_);
}

Status MqttClient::loop_read() {
  if (dead_) return make_error("mqtt: connection closed", -ENOTCONN);
  int rc = mosquitto_loop_read(mosq_, 1);
  if (rc != MOSQ_ERR_SUCCESS) dead_ = true;
  return check(rc, "reading");
}

Status MqttClient::loop_write() {
  if (dead_) return make_error("mqtt: connection closed", -ENOTCONN);
  int rc = mosquitto_loop_write(mosq_, 1);
  if (rc != MOSQ_ERR_SUCCESS) dead_ = true;
  return check(rc, "writing");
}

Status MqttClient::loop_misc() {
  if (dead_) return make_error("mqtt: connection closed", -ENOTCONN);
  int rc = mosquitto_loop_misc(mosq_);
  if (rc != MOSQ_ERR_SUCCESS) dead_ = true;
  return check(rc, "keep-alive");
}

Result<int> MqttClient::publish(std::string_view topic, std::string_view payload, int qos, bool retain,
                                const MqttPublishProps* props) {
  if (dead_) return make_error("mqtt: connection closed", -ENOTCONN);
  PropsPtr list;
  if (props != nullptr && options_.protocol == MqttProtocol::v5) {
    mosquitto_property* p = nullptr;
    if (!props->correlation_data.empty()) {
      mosquitto_property_add_binary(&p, MQTT_PROP_CORRELATION_DATA, props->correlation_data.data(),
                                    static_cast<uint16_t>(props->correlation_data.size()));
    }
    list.reset(p);
  }
  int mid = 0;
  const std::string t(topic);
  int rc = mosquitto_publish_v5(mosq_, &mid, t.c_str(), static_cast<int>(payload.size()), payload.data(), qos,
                                retain, list.get());
  if (rc != MOSQ_ERR_SUCCESS) {
    if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST || rc == MOSQ_ERR_ERRNO) dead_ = true;
    return check(rc, "publishing to " + t).error();
  }
  return mid;
}

Result<int> MqttClient::subscribe(const std::vector<std::string>& patterns, int qos) {
  std::vector<char*> subs;
  std::string names;
  for (const std::string& p : patterns) {
    subs.push_back(const_cast<char*>(p.c_str()));  // libmosquitto's signature; it only reads them
    names += (names.empty() ? "" : ", ") + p;
  }
  int mid = 0;
  if (auto s = check(mosquitto_subscribe_multiple(mosq_, &mid, static_cast<int>(subs.size()), subs.data(),
                                                  qos, 0, nullptr),
                     "subscribing to " + names);
      !s)
    return s.error();
  return mid;
}

bool MqttClient::run_until(const std::function<bool()>& done, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (dead_) return false;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now())
            .count();
    if (left <= 0) return false;
    pollfd p{socket(), static_cast<short>(POLLIN | (want_write() ? POLLOUT : 0)), 0};
    if (p.fd < 0) return false;
    int n = ::poll(&p, 1, static_cast<int>(left < 100 ? left : 100));
    if (n < 0 && errno != EINTR) return false;
    if (n > 0 && (p.revents & (POLLIN | POLLERR | POLLHUP)) != 0 && !loop_read()) return false;
    if (n > 0 && (p.revents & POLLOUT) != 0 && !loop_write()) return false;
    if (!loop_misc()) return false;
  }
  return true;
}

void MqttClient::disconnect() {
  if (!dead_) (void)mosquitto_disconnect_v5(mosq_, 0, nullptr);
}

}  // namespace osvi::net
