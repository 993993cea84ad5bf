// Fleet sync over MQTT: presence (birth/Will), the durable outbox drain, telemetry and fleet commands.
//
// Threading: loop thread only. The MQTT socket and timers are sources of the daemon's EventLoop.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "osvi/base/event_loop.hpp"
#include "osvi/base/loop_latency.hpp"
#include "osvi/calls/call_manager.hpp"
#include "osvi/calls/call_service.hpp"
#include "osvi/clock.hpp"
#include "osvi/config/config.hpp"
#include "osvi/lines/line_manager.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/mqtt_client.hpp"
#include "osvi/net/upstream.hpp"
#include "osvi/result.hpp"
#include "osvi/store/store.hpp"

struct cJSON;

namespace osvi::daemon {

// The "loop" object of /v1/health and of telemetry: {"latency_ms": {"p50", "p99", "max"}, "window_s",
// "samples"}, added to `parent`.
void add_loop_latency_json(cJSON* parent, const LoopLatencySnapshot& s);

struct FleetHooks {
  // Validates, applies (the SIGHUP path) and persists a whole configuration document. The error message
  // holds the reasons, one per line. Nothing changes on error.
  std::function<Status(const std::string& json_text)> apply_config;
  std::function<const Config&()> config;  // the configuration in force
  // The "call" command places a call through the calls engine (null: rejected).
  std::function<Result<std::string>(const PlaceCallRequest&)> place_call;
  // What birth and telemetry report of the box; null reads as nothing there yet (no lines, no calls).
  std::function<std::vector<LineHealth>()> lines;
  std::function<CallsHealth()> calls;
  std::function<std::vector<net::BreakerState>()> upstreams;
  std::function<LoopLatencySnapshot()> loop_latency;  // telemetry's "loop"; null: absent
  // The campaign_contacts command imports through it (null: the command is rejected).
  class CampaignService* campaigns = nullptr;
};

class FleetSync {
 public:
  FleetSync(EventLoop& loop, Store& store, const Clock& clock, FleetHooks hooks, int64_t started_wall_ms);
  ~FleetSync();
  FleetSync(const FleetSync&) = delete;
  FleetSync& operator=(const FleetSync&) = delete;

  // At start and after every accepted configuration: (re)connects when the mqtt or site settings changed.
  void configure(const Config& cfg);
  // Clean shutdown: retained "offline" published and acknowledged (bounded wait), then DISCONNECT.
  void stop();
  // New outbox rows were committed by this process: publish without waiting for the next scan.
  void wake();
  // The "mqtt" object of GET /v1/health.
  void health_json(cJSON* out) const;

 private:
  void connect_now();
  void schedule_reconnect();
  void drop_connection(const std::string& why);
  void on_connect(int rc, std::string_view reason);
  void on_publish(int mid, int rc);
  void on_subscribe(int mid);
  void on_message(const net::MqttMessage& m);
  void after_io();
  void update_io_events();
  void pump();
  void flush_acks();
  void tick();
  void publish_telemetry();
  void publish_presence();
  std::string status_doc(bool online, bool clean) const;
  bool publish_json(const std::string& topic, const std::string& payload, int qos, bool retain,
                    const net::MqttPublishProps* props = nullptr);
  OutboxStats stats() const;
  void check_alarm(const OutboxStats& st);

  // Commands (commands.cpp).
  void handle_command(const std::string& name, const net::MqttMessage& m);
  void handle_desired(const net::MqttMessage& m);
  void import_contacts(const cJSON* request, std::vector<std::string>& reasons, net::JsonPtr& result);

  EventLoop& loop_;
  Store& store_;
  const Clock& clock_;
  FleetHooks hooks_;
  int64_t started_wall_ms_;

  MqttConfig cfg_;
  std::string site_, device_, prefix_;
  std::string config_hash_;
  bool enabled_ = false;

  std::unique_ptr<net::MqttClient> client_;
  EventSource io_, tick_timer_, reconnect_timer_, telemetry_timer_, post_;
  uint32_t io_events_ = 0;
  int64_t session_ = 0;
  int64_t connect_started_us_ = 0;
  unsigned attempt_ = 0;
  bool online_ = false;
  int birth_after_mid_ = -1;        // the SUBACK that releases the birth (-1: none awaited)
  std::string state_ = "disabled";  // disabled|connecting|online|backoff
  std::string last_error_;
  int64_t last_error_logged_us_ = 0;

  std::map<int, int64_t> inflight_;  // mid -> outbox id
  int64_t last_sent_id_ = 0;
  std::vector<int64_t> acked_;
  int64_t data_version_ = -1;
  bool alarm_ = false;

  // A configuration accepted while a client callback runs (a fleet config command) is applied from the
  // post source, so the client is never destroyed under its own callback.
  std::unique_ptr<Config> pending_;
  bool in_io_ = false;

  uint64_t published_total_ = 0, acked_total_ = 0, connects_total_ = 0, commands_total_ = 0;
  int64_t last_acked_wall_ms_ = 0;  // wall clock of the last outbox row the broker acknowledged
  // CPU use between telemetry samples.
  int64_t cpu_prev_us_ = -1, cpu_prev_mono_us_ = 0;
};

}  // namespace osvi::daemon
