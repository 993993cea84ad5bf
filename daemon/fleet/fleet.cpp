// Fleet sync: MQTT session lifecycle on the control loop, presence, outbox drain and telemetry.
#include "osvi/fleet/fleet.hpp"

#include <cjson/cJSON.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "osvi/base/log.hpp"
#include "osvi/net/json.hpp"
#include "osvi/version.hpp"

namespace osvi::daemon {
namespace {

constexpr const char* kSessionKey = "mqtt.session";
constexpr uint64_t kTickUs = 1'000'000;
constexpr int kStopFlushMs = 2000;
constexpr int64_t kErrorLogEveryUs = 60'000'000;

std::string hostname_or(std::string fallback) {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return fallback;
  std::string h(buf);
  // A host name can carry characters that mean something in a topic.
  for (char& c : h)
    if (c == '/' || c == '+' || c == '#') c = '_';
  return h;
}

int64_t rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return -1;
  long size = 0, resident = 0;
  const int n = std::fscanf(f, "%ld %ld", &size, &resident);
  std::fclose(f);
  return n == 2 ? static_cast<int64_t>(resident) * sysconf(_SC_PAGESIZE) : -1;
}

int64_t cpu_time_us() {
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
  return (static_cast<int64_t>(ru.ru_utime.tv_sec) + ru.ru_stime.tv_sec) * 1'000'000 + ru.ru_utime.tv_usec +
         ru.ru_stime.tv_usec;
}

int64_t free_disk_bytes(const std::string& dir) {
  struct statvfs st {};
  if (statvfs(dir.c_str(), &st) != 0) return -1;
  return static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
}

}  // namespace

FleetSync::FleetSync(EventLoop& loop, Store& store, const Clock& clock, FleetHooks hooks,
                     int64_t started_wall_ms)
    : loop_(loop),
      store_(store),
      clock_(clock),
      hooks_(std::move(hooks)),
      started_wall_ms_(started_wall_ms) {}

FleetSync::~FleetSync() {
  // Sources first: their callbacks point at this object and the client.
  io_.reset();
  post_.reset();
  tick_timer_.reset();
  reconnect_timer_.reset();
  telemetry_timer_.reset();
  client_.reset();
}

void FleetSync::configure(const Config& cfg) {
  if (in_io_) {
    pending_ = std::make_unique<Config>(cfg);
    return;
  }
  const std::string device = cfg.site.device.empty() ? hostname_or("box") : cfg.site.device;
  const std::string prefix = cfg.mqtt.topic_prefix + "/" + cfg.site.id + "/" + device;
  const bool changed = !(cfg.mqtt == cfg_) || prefix != prefix_ || enabled_ != cfg.mqtt.enabled;
  const bool hash_changed = cfg.source_hash != config_hash_;
  cfg_ = cfg.mqtt;
  site_ = cfg.site.id;
  device_ = device;
  config_hash_ = cfg.source_hash;
  store_.outbox().set_limits({cfg_.outbox_max_rows, cfg_.outbox_max_bytes});
  if (!changed) {
    // The birth document carries the config hash: keep the fleet's view current.
    if (hash_changed && online_) publish_presence();
    return;
  }
  if (client_) {
    if (online_) {
      publish_json(prefix_ + "/status", status_doc(false, true), 1, true);
      client_->run_until([this] { return inflight_.empty(); }, 500);
      client_->disconnect();
    }
    drop_connection("configuration changed");
  }
  prefix_ = prefix;
  enabled_ = cfg_.enabled;
  reconnect_timer_.reset();
  telemetry_timer_.reset();
  if (!enabled_) {
    tick_timer_.reset();
    post_.reset();
    state_ = "disabled";
    return;
  }
  if (!post_) {
    auto post = loop_.add_post([this] {
      if (pending_) {
        std::unique_ptr<Config> next = std::move(pending_);
        configure(*next);
      }
      if (client_ && client_->dead()) {
        drop_connection(last_error_.empty() ? "connection lost" : last_error_);
        return;
      }
      flush_acks();
      update_io_events();
    });
    if (post) post_ = std::move(*post);
  }
  if (!tick_timer_) {
    auto t = loop_.add_timer(loop_.now_us() + kTickUs, [this] { tick(); });
    if (t) tick_timer_ = std::move(*t);
  }
  attempt_ = 0;
  connect_now();
}

std::string FleetSync::status_doc(bool online, bool clean) const {
  net::JsonPtr o(cJSON_CreateObject());
  cJSON_AddStringToObject(o.get(), "state", online ? "online" : "offline");
  cJSON_AddNumberToObject(o.get(), "session", static_cast<double>(session_));
  if (!online) cJSON_AddBoolToObject(o.get(), "clean", clean);
  cJSON_AddNumberToObject(o.get(), "ts", static_cast<double>(clock_.wall_ms()));
  return net::json_print(o.get());
}

void FleetSync::connect_now() {
  reconnect_timer_.reset();
  // One session per connection attempt: the Will must carry the number the birth will carry.
  const int64_t prev = std::strtoll(store_.meta().get(kSessionKey).value_or("0").c_str(), nullptr, 10);
  session_ = prev + 1;
  if (Status s = store_.meta().set(kSessionKey, std::to_string(session_)); !s) {
    last_error_ = s.error().message;
  }
  net::MqttOptions o;
  o.host = cfg_.host;
  o.port = cfg_.port;
  o.client_id = cfg_.client_id.empty() ? "osvi-" + site_ + "-" + device_ : cfg_.client_id;
  o.username = cfg_.username;
  o.password = cfg_.password;
  o.protocol = cfg_.v311 ? net::MqttProtocol::v311 : net::MqttProtocol::v5;
  o.keepalive_s = static_cast<int>(cfg_.keepalive_s);
  if (cfg_.tls.enabled) {
    o.tls.ca_file = cfg_.tls.ca_file;
    o.tls.cert_file = cfg_.tls.cert_file;
    o.tls.key_file = cfg_.tls.key_file;
    o.tls.insecure = cfg_.tls.insecure;
  }
  o.will = net::MqttWill{prefix_ + "/status", status_doc(false, false), 1, true};
  o.max_inflight = cfg_.max_inflight;
  net::MqttCallbacks cb;
  cb.on_connect = [this](int rc, std::string_view reason) { on_connect(rc, reason); };
  cb.on_disconnect = [this](int rc) {
    online_ = false;
    if (rc != 0) last_error_ = "connection lost (reason " + std::to_string(rc) + ")";
  };
  cb.on_publish = [this](int mid, int rc) { on_publish(mid, rc); };
  cb.on_message = [this](const net::MqttMessage& m) { on_message(m); };
  cb.on_subscribe = [this](int mid) { on_subscribe(mid); };

  state_ = "connecting";
  connect_started_us_ = clock_.monotonic_us();
  ++connects_total_;
  auto c = net::MqttClient::connect(o, std::move(cb));
  if (!c) {
    last_error_ = c.error().message;
    schedule_reconnect();
    return;
  }
  client_ = std::move(*c);
  io_events_ = EPOLLIN | EPOLLOUT;
  auto io = loop_.add_io(client_->socket(), io_events_, [this](uint32_t revents) {
    if (!client_) return;
    in_io_ = true;
    if ((revents & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
      if (auto s = client_->loop_read(); !s) last_error_ = s.error().message;
    }
    if (client_ && !client_->dead() && (revents & EPOLLOUT) != 0) {
      if (auto s = client_->loop_write(); !s) last_error_ = s.error().message;
    }
    in_io_ = false;
    after_io();
  });
  if (!io) {
    last_error_ = io.error().message;
    client_.reset();
    schedule_reconnect();
    return;
  }
  io_ = std::move(*io);
}

void FleetSync::schedule_reconnect() {
  state_ = "backoff";
  const int64_t now_us = clock_.monotonic_us();
  if (!last_error_.empty() && now_us - last_error_logged_us_ >= kErrorLogEveryUs) {
    // Logged at most once a minute: a box behind a dead WAN would otherwise fill the journal.
    log::warning("fleet broker " + cfg_.host + ":" + std::to_string(cfg_.port) +
                     " unreachable: " + last_error_ + "; retrying with backoff",
                 {{"MQTT_HOST", cfg_.host}}, log::id::kMqttDisconnected);
    last_error_logged_us_ = now_us;
  }
  // Capped exponential backoff with full jitter in [delay/2, delay]: a fleet restarted by one broker outage
  // does not reconnect in lockstep.
  uint64_t delay = cfg_.reconnect_min_ms;
  for (unsigned i = 0; i < attempt_ && delay < cfg_.reconnect_max_ms; ++i) delay *= 2;
  delay = std::min<uint64_t>(delay, cfg_.reconnect_max_ms);
  static std::minstd_rand rng(static_cast<unsigned>(now_us));
  const uint64_t jittered = delay / 2 + (delay > 1 ? rng() % (delay - delay / 2 + 1) : 0);
  ++attempt_;
  auto t = loop_.add_timer(loop_.now_us() + jittered * 1000, [this] { connect_now(); });
  if (t) reconnect_timer_ = std::move(*t);
}

void FleetSync::drop_connection(const std::string& why) {
  const bool was_online = online_;
  online_ = false;  // first: flush_acks() must delete what was acknowledged, not publish on this client
  flush_acks();
  io_.reset();
  client_.reset();
  // libmosquitto's in-memory queue died with the client; unacknowledged rows are still in the outbox and
  // go out again, in id order, on the next session.
  inflight_.clear();
  last_sent_id_ = 0;
  birth_after_mid_ = -1;
  if (was_online) {
    log::warning("fleet broker connection lost: " + why, {{"MQTT_HOST", cfg_.host}},
                 log::id::kMqttDisconnected);
    last_error_logged_us_ = clock_.monotonic_us();
  } else {
    last_error_ = why;
  }
  if (enabled_) schedule_reconnect();
}

void FleetSync::after_io() {
  if (!client_) return;
  if (client_->dead()) return;  // the post source drops it outside the io callback
  flush_acks();
  update_io_events();
}

void FleetSync::update_io_events() {
  if (!client_ || !io_ || client_->dead()) return;
  const uint32_t want = EPOLLIN | (client_->want_write() ? EPOLLOUT : 0u);
  if (want != io_events_) {
    sd_event_source_set_io_events(io_.get(), want);
    io_events_ = want;
  }
}

void FleetSync::on_connect(int rc, std::string_view reason) {
  if (rc != 0) {
    last_error_ = "broker refused the connection: " + std::string(reason);
    return;  // libmosquitto closes the socket; the post source reconnects with backoff
  }
  online_ = true;
  state_ = "online";
  attempt_ = 0;
  last_error_.clear();
  log::notice("connected to the fleet broker " + cfg_.host + ":" + std::to_string(cfg_.port) + " as " +
                  prefix_ + " (session " + std::to_string(session_) + ")",
              {{"MQTT_HOST", cfg_.host}}, log::id::kMqttConnected);
  // The birth tells the fleet it may send commands now, so it waits for the SUBACK of our command
  // subscriptions: published at CONNACK, a request sent by a tool reacting to it could reach the broker
  // before our SUBSCRIBE and be dropped (seen in mqtt_test under load).
  // One SUBSCRIBE packet, so one SUBACK covers both filters.
  auto sub = client_->subscribe({prefix_ + "/cmd/+/req", prefix_ + "/cfg/desired"}, 1);
  if (sub) {
    birth_after_mid_ = *sub;
  } else {
    birth_after_mid_ = -1;
    last_error_ = sub.error().message;
    publish_presence();  // announce anyway: presence matters more than commands
  }
  if (cfg_.telemetry_interval_s > 0) {
    auto t = loop_.add_timer(loop_.now_us() + 1000, [this] { publish_telemetry(); });
    if (t) telemetry_timer_ = std::move(*t);
  }
  pump();
}

void FleetSync::on_subscribe(int mid) {
  if (mid != birth_after_mid_) return;
  birth_after_mid_ = -1;
  publish_presence();
}

void FleetSync::publish_presence() {
  const OutboxStats st = stats();
  net::JsonPtr b(cJSON_CreateObject());
  cJSON_AddStringToObject(b.get(), "state", "online");
  cJSON_AddStringToObject(b.get(), "version", kVersion);
  net::json_add_string(b.get(), "site", site_);
  net::json_add_string(b.get(), "device", device_);
  net::json_add_string(b.get(), "config_hash", config_hash_);
  cJSON* lines = cJSON_AddArrayToObject(b.get(), "lines");
  const LineHealth* modem = nullptr;  // the first line with a modem identity: what most boxes have
  const std::vector<LineHealth> lh = hooks_.lines ? hooks_.lines() : std::vector<LineHealth>{};
  for (const LineHealth& l : lh) {
    cJSON_AddItemToArray(lines, line_health_json(l));
    if (!modem && !l.identity.manufacturer.empty()) modem = &l;
  }
  if (modem) {
    cJSON* m = cJSON_AddObjectToObject(b.get(), "modem");
    net::json_add_string(m, "line", modem->id);
    net::json_add_string(m, "manufacturer", modem->identity.manufacturer);
    net::json_add_string(m, "model", modem->identity.model);
    net::json_add_string(m, "imei", modem->identity.imei);
    net::json_add_string(m, "firmware", modem->identity.firmware);
  } else {
    cJSON_AddNullToObject(b.get(), "modem");
  }
  cJSON_AddNumberToObject(b.get(), "session", static_cast<double>(session_));
  cJSON_AddNumberToObject(b.get(), "started_at_ms", static_cast<double>(started_wall_ms_));
  cJSON_AddBoolToObject(b.get(), "outbox_alarm", st.over_quota);
  cJSON_AddNumberToObject(b.get(), "ts", static_cast<double>(clock_.wall_ms()));
  publish_json(prefix_ + "/birth", net::json_print(b.get()), 1, true);
  publish_json(prefix_ + "/status", status_doc(true, false), 1, true);
}

bool FleetSync::publish_json(const std::string& topic, const std::string& payload, int qos, bool retain,
                             const net::MqttPublishProps* props) {
  if (!client_ || client_->dead()) return false;
  auto mid = client_->publish(topic, payload, qos, retain, props);
  if (!mid) {
    last_error_ = mid.error().message;
    return false;
  }
  return true;
}

void FleetSync::pump() {
  if (!client_ || !online_ || client_->dead()) return;
  while (inflight_.size() < cfg_.max_inflight) {
    const size_t room = cfg_.max_inflight - inflight_.size();
    auto rows = store_.outbox().pending(last_sent_id_, std::min<size_t>(room, 256));
    if (!rows) {
      last_error_ = rows.error().message;
      return;
    }
    if (rows->empty()) return;
    const int64_t first = rows->front().id;
    for (const OutboxRow& r : *rows) {
      auto mid = client_->publish(prefix_ + "/" + r.topic, r.payload, 1, false);
      if (!mid) {
        last_error_ = mid.error().message;
        return;  // dead: the post source reconnects and everything unacknowledged goes again
      }
      inflight_[*mid] = r.id;
      last_sent_id_ = r.id;
      ++published_total_;
    }
    (void)store_.outbox().mark_attempted(first, last_sent_id_);
  }
}

void FleetSync::on_publish(int mid, int rc) {
  auto it = inflight_.find(mid);
  if (it == inflight_.end()) return;  // presence, telemetry, replies: not outbox rows
  if (rc >= 0x80) {
    // Refused (ACL, quota): keep the row; it is retried on the next session, never lost.
    last_error_ =
        "broker refused outbox row " + std::to_string(it->second) + " (reason " + std::to_string(rc) + ")";
  } else {
    acked_.push_back(it->second);
    ++acked_total_;
    last_acked_wall_ms_ = clock_.wall_ms();
  }
  inflight_.erase(it);
}

void FleetSync::flush_acks() {
  if (acked_.empty()) return;
  if (Status s = store_.outbox().remove(acked_); !s) {
    // The rows stay and are sent again later: a duplicate with the same key, never a loss.
    last_error_ = s.error().message;
  }
  acked_.clear();
  pump();
}

void FleetSync::wake() {
  pump();
  update_io_events();
}

void FleetSync::tick() {
  if (tick_timer_) EventLoop::set_timer(tick_timer_.get(), loop_.now_us() + kTickUs);
  if (!client_) return;
  if (!online_ && clock_.monotonic_us() - connect_started_us_ > int64_t{cfg_.connect_timeout_ms} * 1000) {
    drop_connection("no CONNACK within " + std::to_string(cfg_.connect_timeout_ms) + " ms");
    return;
  }
  if (auto s = client_->loop_misc(); !s) last_error_ = s.error().message;
  if (client_->dead()) {
    drop_connection(last_error_.empty() ? "connection lost" : last_error_);
    return;
  }
  // Other processes (tools, tests, a future worker) may queue rows: PRAGMA data_version tells us cheaply.
  const int64_t dv = store_.database().data_version();
  if (dv != data_version_ || inflight_.empty()) {
    data_version_ = dv;
    pump();
  }
  update_io_events();
}

OutboxStats FleetSync::stats() const {
  auto st = store_.outbox().stats();
  return st ? *st : OutboxStats{};
}

void FleetSync::check_alarm(const OutboxStats& st) {
  if (st.over_quota && !alarm_) {
    log::error("outbox over quota with only call records left (" + std::to_string(st.queued) + " rows, " +
                   std::to_string(st.bytes) +
                   " bytes): call records are kept, nothing is dropped; check the "
                   "fleet broker connection",
               {}, log::id::kOutboxAlarm);
  }
  alarm_ = st.over_quota;
}

void FleetSync::publish_telemetry() {
  if (telemetry_timer_)
    EventLoop::set_timer(telemetry_timer_.get(),
                         loop_.now_us() + uint64_t{cfg_.telemetry_interval_s} * 1'000'000);
  if (!online_) return;
  const OutboxStats st = stats();
  check_alarm(st);
  const int64_t now_ms = clock_.wall_ms();
  net::JsonPtr t(cJSON_CreateObject());
  cJSON_AddNumberToObject(t.get(), "ts", static_cast<double>(now_ms));
  cJSON_AddNumberToObject(t.get(), "session", static_cast<double>(session_));
  cJSON* lines = cJSON_AddArrayToObject(t.get(), "lines");
  if (hooks_.lines) {
    for (const LineHealth& l : hooks_.lines()) {
      cJSON* o = cJSON_CreateObject();
      net::json_add_string(o, "id", l.id);
      net::json_add_string(o, "state", l.state);
      net::json_add_string(o, "reason", l.reason);
      cJSON_AddItemToArray(lines, o);
    }
  }
  const CallsHealth calls = hooks_.calls ? hooks_.calls() : CallsHealth{};
  cJSON_AddNumberToObject(t.get(), "live_calls", static_cast<double>(calls.live));
  const int64_t cpu = cpu_time_us();
  const int64_t mono = clock_.monotonic_us();
  double cpu_pct = 0;
  if (cpu_prev_us_ >= 0 && mono > cpu_prev_mono_us_)
    cpu_pct = 100.0 * static_cast<double>(cpu - cpu_prev_us_) / static_cast<double>(mono - cpu_prev_mono_us_);
  cpu_prev_us_ = cpu;
  cpu_prev_mono_us_ = mono;
  cJSON_AddNumberToObject(t.get(), "cpu_percent", cpu_pct);
  cJSON_AddNumberToObject(t.get(), "rss_bytes", static_cast<double>(rss_bytes()));
  cJSON_AddNumberToObject(t.get(), "xruns", static_cast<double>(calls.xruns));
  cJSON* ob = cJSON_AddObjectToObject(t.get(), "outbox");
  cJSON_AddNumberToObject(ob, "depth", static_cast<double>(st.queued));
  cJSON_AddNumberToObject(ob, "bytes", static_cast<double>(st.bytes));
  cJSON_AddNumberToObject(
      ob, "oldest_age_s",
      st.oldest_created_at_ms > 0
          ? static_cast<double>(std::max<int64_t>(0, now_ms - st.oldest_created_at_ms) / 1000)
          : 0.0);
  cJSON_AddNumberToObject(ob, "dropped", static_cast<double>(st.dropped));
  cJSON_AddBoolToObject(ob, "alarm", st.over_quota);
  // The webhook queue, as in /v1/health: the fleet sees receivers that stopped acknowledging.
  if (auto wh = store_.webhooks().counts(); wh) {
    cJSON* w = cJSON_AddObjectToObject(t.get(), "webhooks");
    cJSON_AddNumberToObject(w, "pending", static_cast<double>(wh->pending));
    cJSON_AddNumberToObject(w, "dead", static_cast<double>(wh->dead));
    cJSON_AddNumberToObject(
        w, "oldest_pending_age_s",
        wh->oldest_pending_ms > 0
            ? static_cast<double>(std::max<int64_t>(0, now_ms - wh->oldest_pending_ms) / 1000)
            : 0.0);
  } else {
    log::error("fleet: cannot count webhook deliveries: " + wh.error().message);
  }
  cJSON* ups = cJSON_AddArrayToObject(t.get(), "upstreams");
  if (hooks_.upstreams) {
    for (const net::BreakerState& u : hooks_.upstreams()) {
      cJSON* o = cJSON_CreateObject();
      net::json_add_string(o, "base_url", u.base_url);
      net::json_add_string(o, "breaker", u.state);
      cJSON_AddNumberToObject(o, "failures", u.failures);
      cJSON_AddItemToArray(ups, o);
    }
  }
  if (hooks_.loop_latency) add_loop_latency_json(t.get(), hooks_.loop_latency());
  const Config& cfg = hooks_.config();
  cJSON_AddNumberToObject(t.get(), "disk_free_bytes", static_cast<double>(free_disk_bytes(cfg.state_dir)));
  publish_json(prefix_ + "/telemetry", net::json_print(t.get()), 0, false);
}

void add_loop_latency_json(cJSON* parent, const LoopLatencySnapshot& s) {
  cJSON* loop = cJSON_AddObjectToObject(parent, "loop");
  cJSON* lat = cJSON_AddObjectToObject(loop, "latency_ms");
  // Milliseconds with µs resolution: the budget is a few ms, so whole ms would hide it.
  auto ms = [](uint32_t us) { return static_cast<double>(us) / 1000.0; };
  cJSON_AddNumberToObject(lat, "p50", ms(s.p50_us));
  cJSON_AddNumberToObject(lat, "p99", ms(s.p99_us));
  cJSON_AddNumberToObject(lat, "max", ms(s.max_us));
  cJSON_AddNumberToObject(loop, "window_s", s.window_s);
  cJSON_AddNumberToObject(loop, "samples", s.samples);
}

void FleetSync::stop() {
  enabled_ = false;
  reconnect_timer_.reset();
  telemetry_timer_.reset();
  tick_timer_.reset();
  if (client_ && online_ && !client_->dead()) {
    io_.reset();  // the flush below polls the socket itself
    int offline_mid = -1;
    if (auto mid = client_->publish(prefix_ + "/status", status_doc(false, true), 1, true))
      offline_mid = *mid;
    bool acked = false;
    // The offline document is tracked like an outbox row (id -1) so on_publish reports its PUBACK; outbox
    // PUBACKs arriving meanwhile still count and are deleted below.
    if (offline_mid >= 0) {
      inflight_[offline_mid] = -1;
      acked = client_->run_until([&] { return !inflight_.contains(offline_mid); }, kStopFlushMs);
    }
    acked_.erase(std::remove(acked_.begin(), acked_.end(), int64_t{-1}), acked_.end());
    client_->disconnect();
    online_ = false;
    if (!acked) log::warning("fleet broker did not acknowledge the offline status before shutdown");
  }
  flush_acks();
  drop_connection("stopping");
  post_.reset();
  state_ = "disabled";
}

void FleetSync::health_json(cJSON* out) const {
  cJSON_AddBoolToObject(out, "enabled", enabled_);
  net::json_add_string(out, "state", state_);
  net::json_add_string(out, "broker", cfg_.host + ":" + std::to_string(cfg_.port));
  net::json_add_string(out, "topic_prefix", prefix_);
  cJSON_AddNumberToObject(out, "session", static_cast<double>(session_));
  net::json_add_string(out, "last_error", last_error_);
  cJSON_AddNumberToObject(out, "inflight", static_cast<double>(inflight_.size()));
  cJSON_AddNumberToObject(out, "published_total", static_cast<double>(published_total_));
  cJSON_AddNumberToObject(out, "acked_total", static_cast<double>(acked_total_));
  // When the sync last got a record to the broker (the console's Box page shows it): 0 = not since start.
  cJSON_AddNumberToObject(out, "last_acked_at_ms", static_cast<double>(last_acked_wall_ms_));
  cJSON_AddNumberToObject(out, "commands_total", static_cast<double>(commands_total_));
  const OutboxStats st = stats();
  cJSON* ob = cJSON_AddObjectToObject(out, "outbox");
  cJSON_AddNumberToObject(ob, "queued", static_cast<double>(st.queued));
  cJSON_AddNumberToObject(ob, "bytes", static_cast<double>(st.bytes));
  cJSON_AddNumberToObject(
      ob, "oldest_age_s",
      st.oldest_created_at_ms > 0
          ? static_cast<double>(std::max<int64_t>(0, clock_.wall_ms() - st.oldest_created_at_ms) / 1000)
          : 0.0);
  cJSON_AddNumberToObject(ob, "dropped", static_cast<double>(st.dropped));
  cJSON_AddBoolToObject(ob, "alarm", st.over_quota);
}

}  // namespace osvi::daemon
