// Dispatcher: sends the durable webhook queue (webhook_deliveries) — signed, one delivery in flight per
// destination (so a receiver sees deliveries in queue order), up to webhooks.max_in_flight destinations at
// once, retried with exponential backoff and jitter until the delivery's horizon, then dead-lettered.
//
// Threading: loop thread only; the HTTP client is driven by its owner's loop (HttpLoop in osvid, PollDriver
// in tests) and the dispatcher's own timer is one of that client's timers. Memory: the dispatcher never
// loads the queue, only the head of each destination, a page at a time (WebhookDeliveriesRepo::heads); what
// it holds is the in-flight requests. Durability: nothing marks a delivery in flight in the database, so a
// crash mid-delivery leaves it pending and it is sent again after restart with the same webhook-id
// (at-least-once; receivers deduplicate on webhook-id).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>

#include "osvi/clock.hpp"
#include "osvi/config/config.hpp"
#include "osvi/net/http_client.hpp"
#include "osvi/net/target_guard.hpp"
#include "osvi/result.hpp"
#include "osvi/store/webhooks.hpp"

namespace osvi::daemon::webhooks {

class Dispatcher {
 public:
  // The HTTP client, created on first use (HttpLoop::client); null when libcurl is unavailable.
  using ClientSource = std::function<net::HttpClient*()>;

  // The clock dates attempts and decides when a retry is due (tests use a ManualClock: backoff arithmetic
  // in virtual time over real sockets). config: as set_config.
  static Result<std::unique_ptr<Dispatcher>> create(WebhookDeliveriesRepo& repo, const Clock& clock,
                                                    ClientSource client, const Config& config);
  ~Dispatcher();  // cancels what is in flight: those deliveries stay pending
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // webhooks (timeouts, backoff, guard, signing secret), agents (their integrations' secrets) and state_dir
  // (the box's generated secret). An invalid allowed_targets CIDR or secret is an error naming the key and
  // nothing changes. In-flight requests finish under the settings they started with.
  Status set_config(const Config& config);
  // Begins sending what is due (after restart: everything still pending).
  void start();
  // New deliveries were queued, or time moved (tests): look at the heads again, on a later loop turn (never
  // from inside the caller, which may hold a transaction the rows are not committed in yet).
  void poke();

  struct Stats {
    int64_t attempts = 0;   // requests finished (redirect hops of one attempt count once)
    int64_t delivered = 0;  // acknowledged by a 2xx
    int64_t retried = 0;    // failed attempts with a retry scheduled
    int64_t dead = 0;       // dead-lettered
  };
  const Stats& stats() const { return stats_; }
  size_t in_flight() const { return flights_.size(); }
  // The box's signing secret ("whsec_..."): webhooks.signing_secret, or the generated file's (created now
  // when missing).
  Result<std::string> default_secret();

 private:
  struct Integration {
    bool active = true;
    std::string key;  // bytes; "" = the box's secret
  };
  struct Settings {
    WebhooksConfig webhooks;
    std::string default_key;  // bytes of webhooks.signing_secret; "" = the generated file's, read when needed
    std::string secret_file;  // <state_dir>/webhook_secret
    std::map<std::string, Integration> integrations;  // by agent_uuid + '\n' + name
    std::shared_ptr<const net::TargetGuard> guard;
  };
  struct Flight;

  Dispatcher(WebhookDeliveriesRepo& repo, const Clock& clock, ClientSource client);
  static Result<Settings> settings_from(const Config& config);
  // The box's key: webhooks.signing_secret, else the generated file (created on the first delivery that needs
  // it, so an idle box writes nothing).
  Result<std::string> default_key();
  net::HttpClient* client();
  void schedule_pump(int64_t delay_ms);
  void pump();
  void begin(const WebhookDelivery& d);
  void send_hop(Flight& f);
  void finish(const std::string& destination, const net::HttpClient::Done& done);
  void conclude(Flight& f, std::optional<int64_t> status, std::optional<std::string> error, bool retryable);
  int64_t backoff_ms(int64_t attempt);

  WebhookDeliveriesRepo& repo_;
  const Clock& clock_;
  ClientSource client_source_;
  net::HttpClient* client_ = nullptr;
  Settings settings_;
  std::map<std::string, std::unique_ptr<Flight>> flights_;  // by destination
  net::HttpClient::TimerId pump_timer_ = 0;
  int64_t pump_at_ms_ = 0;  // steady ms the pump timer is due (the client's timers run on the steady clock)
  bool started_ = false;
  std::mt19937_64 rng_{std::random_device{}()};
  Stats stats_;
};

}  // namespace osvi::daemon::webhooks
