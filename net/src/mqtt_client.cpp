// MQTT client on libmosquitto, one connection session per object, driven by the owner's loop.
#include "osvi/net/mqtt_client.hpp"

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <poll.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>

#include "osvi/shared_library.hpp"

namespace osvi::net {

namespace {

// libmosquitto and its TLS stack (libssl, libcrypto's TLS side) are opened by the first connect(), i.e. only
// when mqtt.enabled is true: a box without fleet sync never maps them. The C API is the ABI, so the library
// is opened by soname and its functions bound here. Opened once per process, never closed (RTLD_NODELETE).
constexpr const char* kMosquittoSoname = "libmosquitto.so.1";

struct MosquittoApi {
  decltype(&::mosquitto_connect_async) connect_async = nullptr;
  decltype(&::mosquitto_connect_v5_callback_set) connect_v5_callback_set = nullptr;
  decltype(&::mosquitto_destroy) destroy = nullptr;
  decltype(&::mosquitto_disconnect_v5) disconnect_v5 = nullptr;
  decltype(&::mosquitto_disconnect_v5_callback_set) disconnect_v5_callback_set = nullptr;
  decltype(&::mosquitto_int_option) int_option = nullptr;
  decltype(&::mosquitto_lib_init) lib_init = nullptr;
  decltype(&::mosquitto_loop_misc) loop_misc = nullptr;
  decltype(&::mosquitto_loop_read) loop_read = nullptr;
  decltype(&::mosquitto_loop_write) loop_write = nullptr;
  decltype(&::mosquitto_message_v5_callback_set) message_v5_callback_set = nullptr;
  decltype(&::mosquitto_new) new_client = nullptr;
  decltype(&::mosquitto_property_add_binary) property_add_binary = nullptr;
  decltype(&::mosquitto_property_free_all) property_free_all = nullptr;
  decltype(&::mosquitto_property_read_binary) property_read_binary = nullptr;
  decltype(&::mosquitto_property_read_string) property_read_string = nullptr;
  decltype(&::mosquitto_publish_v5) publish_v5 = nullptr;
  decltype(&::mosquitto_publish_v5_callback_set) publish_v5_callback_set = nullptr;
  decltype(&::mosquitto_reason_string) reason_string = nullptr;
  decltype(&::mosquitto_socket) socket = nullptr;
  decltype(&::mosquitto_strerror) strerror = nullptr;
  decltype(&::mosquitto_subscribe_multiple) subscribe_multiple = nullptr;
  decltype(&::mosquitto_subscribe_v5_callback_set) subscribe_v5_callback_set = nullptr;
  decltype(&::mosquitto_tls_insecure_set) tls_insecure_set = nullptr;
  decltype(&::mosquitto_tls_set) tls_set = nullptr;
  decltype(&::mosquitto_username_pw_set) username_pw_set = nullptr;
  decltype(&::mosquitto_want_write) want_write = nullptr;
  decltype(&::mosquitto_will_set_v5) will_set_v5 = nullptr;
};

using LoadedMosquitto = dl::Table<MosquittoApi>;

LoadedMosquitto load_mosquitto() {
  LoadedMosquitto l =
      dl::load_table<MosquittoApi>(kMosquittoSoname, "the MQTT client library", [](void* h, MosquittoApi& a) {
        return dl::bind(h, "mosquitto_connect_async", a.connect_async) &&
               dl::bind(h, "mosquitto_connect_v5_callback_set", a.connect_v5_callback_set) &&
               dl::bind(h, "mosquitto_destroy", a.destroy) &&
               dl::bind(h, "mosquitto_disconnect_v5", a.disconnect_v5) &&
               dl::bind(h, "mosquitto_disconnect_v5_callback_set", a.disconnect_v5_callback_set) &&
               dl::bind(h, "mosquitto_int_option", a.int_option) &&
               dl::bind(h, "mosquitto_lib_init", a.lib_init) &&
               dl::bind(h, "mosquitto_loop_misc", a.loop_misc) &&
               dl::bind(h, "mosquitto_loop_read", a.loop_read) &&
               dl::bind(h, "mosquitto_loop_write", a.loop_write) &&
               dl::bind(h, "mosquitto_message_v5_callback_set", a.message_v5_callback_set) &&
               dl::bind(h, "mosquitto_new", a.new_client) &&
               dl::bind(h, "mosquitto_property_add_binary", a.property_add_binary) &&
               dl::bind(h, "mosquitto_property_free_all", a.property_free_all) &&
               dl::bind(h, "mosquitto_property_read_binary", a.property_read_binary) &&
               dl::bind(h, "mosquitto_property_read_string", a.property_read_string) &&
               dl::bind(h, "mosquitto_publish_v5", a.publish_v5) &&
               dl::bind(h, "mosquitto_publish_v5_callback_set", a.publish_v5_callback_set) &&
               dl::bind(h, "mosquitto_reason_string", a.reason_string) &&
               dl::bind(h, "mosquitto_socket", a.socket) && dl::bind(h, "mosquitto_strerror", a.strerror) &&
               dl::bind(h, "mosquitto_subscribe_multiple", a.subscribe_multiple) &&
               dl::bind(h, "mosquitto_subscribe_v5_callback_set", a.subscribe_v5_callback_set) &&
               dl::bind(h, "mosquitto_tls_insecure_set", a.tls_insecure_set) &&
               dl::bind(h, "mosquitto_tls_set", a.tls_set) &&
               dl::bind(h, "mosquitto_username_pw_set", a.username_pw_set) &&
               dl::bind(h, "mosquitto_want_write", a.want_write) &&
               dl::bind(h, "mosquitto_will_set_v5", a.will_set_v5);
      });
  if (l.status) l.api.lib_init();
  return l;
}

const LoadedMosquitto& loaded_mosquitto() {
  static const LoadedMosquitto l = load_mosquitto();  // thread-safe static: the first connect() loads
  return l;
}

// Only called on a client, which exists only once loaded_mosquitto() succeeded.
const MosquittoApi& mosq_lib() {
  return loaded_mosquitto().api;
}

}  // namespace

struct MqttClient::Glue {
  static MqttClient* self(void* obj) { return static_cast<MqttClient*>(obj); }

  static void on_connect(mosquitto*, void* obj, int rc, int /*flags*/, const mosquitto_property*) {
    MqttClient* c = self(obj);
    c->connected_ = rc == 0;
    if (c->callbacks_.on_connect) c->callbacks_.on_connect(rc, mosq_lib().reason_string(rc));
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
    if (mosq_lib().property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &rt, false) != nullptr && rt) {
      msg.response_topic = rt;
    }
    std::free(rt);
    void* cd = nullptr;
    uint16_t cd_len = 0;
    if (mosq_lib().property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &cd, &cd_len, false) != nullptr &&
        cd != nullptr) {
      msg.correlation_data.assign(static_cast<const char*>(cd), cd_len);
    }
    std::free(cd);
    c->callbacks_.on_message(msg);
  }
};

namespace {

std::string mosq_error_text(int rc) {
  if (rc == MOSQ_ERR_ERRNO) return std::strerror(errno);
  return mosq_lib().strerror(rc);
}

// The property list has one owner; libmosquitto copies what it sends.
struct PropsDeleter {
  void operator()(mosquitto_property* p) const { mosq_lib().property_free_all(&p); }
};
using PropsPtr = std::unique_ptr<mosquitto_property, PropsDeleter>;

}  // namespace

Status MqttClient::check(int rc, std::string_view what) {
  if (rc == MOSQ_ERR_SUCCESS) return {};
  const int code = rc == MOSQ_ERR_ERRNO ? -errno : -EIO;
  return make_error("mqtt: " + std::string(what) + ": " + mosq_error_text(rc), code);
}

Status MqttClient::load_library() {
  return loaded_mosquitto().status;
  return {};
}

Result<std::unique_ptr<MqttClient>> MqttClient::connect(const MqttOptions& options, MqttCallbacks callbacks) {
  if (const LoadedMosquitto& l = loaded_mosquitto(); !l.status)
    return make_error("mqtt.enabled: " + l.status.error().message, l.status.error().code);
  std::unique_ptr<MqttClient> c(new MqttClient(options, std::move(callbacks)));
  // clean start: the durable queue is ours, a broker-side session would only replay what we resend anyway.
  c->mosq_ =
      mosq_lib().new_client(options.client_id.empty() ? nullptr : options.client_id.c_str(), true, c.get());
  if (c->mosq_ == nullptr)
    return make_error("mqtt: creating the client: " + std::string(std::strerror(errno)), -ENOMEM);
  mosquitto* m = c->mosq_;
  const bool v5 = options.protocol == MqttProtocol::v5;
  if (auto s = c->check(
          mosq_lib().int_option(m, MOSQ_OPT_PROTOCOL_VERSION, v5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311),
          "protocol version");
      !s)
    return s.error();
  const int inflight = static_cast<int>(
      options.max_inflight < 1 ? 1 : (options.max_inflight > 65535 ? 65535 : options.max_inflight));
  (void)mosq_lib().int_option(m, MOSQ_OPT_SEND_MAXIMUM, inflight);
  (void)mosq_lib().int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
  if (!options.username.empty()) {
    if (auto s = c->check(
            mosq_lib().username_pw_set(m, options.username.c_str(),
                                       options.password.empty() ? nullptr : options.password.c_str()),
            "username");
        !s)
      return s.error();
  }
  if (!options.tls.ca_file.empty()) {
    const char* cert = options.tls.cert_file.empty() ? nullptr : options.tls.cert_file.c_str();
    const char* key = options.tls.key_file.empty() ? nullptr : options.tls.key_file.c_str();
    if (auto s = c->check(mosq_lib().tls_set(m, options.tls.ca_file.c_str(), nullptr, cert, key, nullptr),
                          "TLS files (ca " + options.tls.ca_file + ")");
        !s)
      return s.error();
    if (options.tls.insecure) (void)mosq_lib().tls_insecure_set(m, true);
  }
  if (options.will) {
    const MqttWill& w = *options.will;
    if (auto s = c->check(mosq_lib().will_set_v5(m, w.topic.c_str(), static_cast<int>(w.payload.size()),
                                                 w.payload.data(), w.qos, w.retain, nullptr),
                          "will");
        !s)
      return s.error();
  }
  mosq_lib().connect_v5_callback_set(m, &Glue::on_connect);
  mosq_lib().disconnect_v5_callback_set(m, &Glue::on_disconnect);
  mosq_lib().publish_v5_callback_set(m, &Glue::on_publish);
  mosq_lib().message_v5_callback_set(m, &Glue::on_message);
  mosq_lib().subscribe_v5_callback_set(m, &Glue::on_subscribe);
  // Non-blocking: TCP connect in progress, CONNECT queued; the owner's loop finishes the job.
  if (auto s = c->check(mosq_lib().connect_async(m, options.host.c_str(), options.port, options.keepalive_s),
                        "connecting to " + options.host + ":" + std::to_string(options.port));
      !s)
    return s.error();
  return c;
}

MqttClient::~MqttClient() {
  if (mosq_ != nullptr) mosq_lib().destroy(mosq_);
}

int MqttClient::socket() const {
  return mosq_lib().socket(mosq_);
}

bool MqttClient::want_write() const {
  return mosq_lib().want_write(mosq_);
}

Status MqttClient::loop_read() {
  if (dead_) return make_error("mqtt: connection closed", -ENOTCONN);
  int rc = mosq_lib().loop_read(mosq_, 1);
  if (rc != MOSQ_ERR_SUCCESS) dead_ = true;
  return check(rc, "reading");
}

Status MqttClient::loop_write() {
  if (dead_) return make_error("mqtt: connection closed", -ENOTCONN);
  int rc = mosq_lib().loop_write(mosq_, 1);
  if (rc != MOSQ_ERR_SUCCESS) dead_ = true;
  return check(rc, "writing");
}

Status MqttClient::loop_misc() {
  if (dead_) return make_error("mqtt: connection closed", -ENOTCONN);
  int rc = mosq_lib().loop_misc(mosq_);
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
      mosq_lib().property_add_binary(&p, MQTT_PROP_CORRELATION_DATA, props->correlation_data.data(),
                                     static_cast<uint16_t>(props->correlation_data.size()));
    }
    list.reset(p);
  }
  int mid = 0;
  const std::string t(topic);
  int rc = mosq_lib().publish_v5(mosq_, &mid, t.c_str(), static_cast<int>(payload.size()), payload.data(),
                                 qos, retain, list.get());
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
  if (auto s = check(mosq_lib().subscribe_multiple(mosq_, &mid, static_cast<int>(subs.size()), subs.data(),
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
  if (!dead_) (void)mosq_lib().disconnect_v5(mosq_, 0, nullptr);
}

}  // namespace osvi::net
