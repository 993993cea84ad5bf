// Dispatcher: heads → signed request → (redirect hops) → one recorded attempt → delivered, retry or dead.
#include "osvi/webhooks/dispatcher.hpp"

#include <strings.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "osvi/base/log.hpp"
#include "osvi/version.hpp"
#include "osvi/webhooks/signature.hpp"

namespace osvi::daemon::webhooks {
namespace {

// Heads are read this many destinations at a time: a page is all the queue the dispatcher holds at once.
constexpr size_t kHeadsPage = 64;
// After a store error the queue is looked at again this much later, not in a tight loop.
constexpr int64_t kStoreRetryMs = 1000;

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Headers every delivery carries and the row's own headers may not replace; and lines that would split into
// two headers (CR / LF), which the configuration never produces but a row must not be able to smuggle.
bool dropped_header(std::string_view line) {
  if (line.find_first_of("\r\n") != std::string_view::npos || line.find(':') == std::string_view::npos)
    return true;
  static constexpr std::string_view kReserved[] = {
      "content-type",      "user-agent",     "webhook-id", "webhook-timestamp",
      "webhook-signature", "content-length", "host"};
  std::string_view name = line.substr(0, line.find(':'));
  while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
  for (std::string_view r : kReserved)
    if (name.size() == r.size() && strncasecmp(name.data(), r.data(), r.size()) == 0) return true;
  return false;
}

std::string integration_key(std::string_view agent_uuid, std::string_view name) {
  return std::string(agent_uuid) + '\n' + std::string(name);
}

}  // namespace

struct Dispatcher::Flight {
  WebhookDelivery d;
  int64_t attempt = 1;
  int64_t started_wall_ms = 0;
  int64_t started_mono_us = 0;
  int hops = 0;  // redirects followed so far
  std::string url;
  std::vector<std::string> headers;
  std::shared_ptr<const net::TargetGuard> guard;
  WebhooksConfig cfg;  // the settings the attempt started with
  net::HttpClient::Id transfer = 0;
};

Result<Dispatcher::Settings> Dispatcher::settings_from(const Config& config) {
  Settings s;
  s.webhooks = config.webhooks;
  auto guard = net::TargetGuard::create(config.webhooks.allowed_targets);
  if (!guard) return make_error("webhooks.allowed_targets: " + guard.error().message, -EINVAL);
  s.guard = std::make_shared<const net::TargetGuard>(std::move(*guard));
  s.secret_file = config.state_dir + "/webhook_secret";
  if (!config.webhooks.signing_secret.empty()) {
    auto key = decode_secret(config.webhooks.signing_secret);
    if (!key) return make_error("webhooks.signing_secret: " + key.error().message, -EINVAL);
    s.default_key = *key;
  }
  for (size_t i = 0; i < config.agents.size(); ++i) {
    const AgentConfig& agent = config.agents[i];
    for (size_t j = 0; j < agent.analysis.integrations.size(); ++j) {
      const IntegrationConfig& in = agent.analysis.integrations[j];
      Integration entry;
      entry.active = in.active;
      if (!in.secret.empty()) {
        auto own = decode_secret(in.secret);
        if (!own) {
          return make_error("agents[" + std::to_string(i) + "].analysis.integrations[" + std::to_string(j) +
                                "].secret: " + own.error().message,
                            -EINVAL);
        }
        entry.key = *own;
      }
      s.integrations[integration_key(agent.agent_uuid, in.name)] = std::move(entry);
    }
  }
  return s;
}

Result<std::string> Dispatcher::default_key() {
  if (!settings_.default_key.empty()) return settings_.default_key;
  auto secret = load_or_create_secret_file(settings_.secret_file);
  if (!secret) return secret.error();
  auto key = decode_secret(*secret);
  if (!key) return key.error();
  settings_.default_key = *key;  // kept until the next set_config
  return key;
}

Result<std::string> Dispatcher::default_secret() {
  auto key = default_key();
  if (!key) return key.error();
  return encode_secret(*key);
}

Dispatcher::Dispatcher(WebhookDeliveriesRepo& repo, const Clock& clock, ClientSource client)
    : repo_(repo), clock_(clock), client_source_(std::move(client)) {}

Result<std::unique_ptr<Dispatcher>> Dispatcher::create(WebhookDeliveriesRepo& repo, const Clock& clock,
                                                       ClientSource client, const Config& config) {
  std::unique_ptr<Dispatcher> d(new Dispatcher(repo, clock, std::move(client)));
  if (Status s = d->set_config(config); !s) return s.error();
  return d;
}

Dispatcher::~Dispatcher() {
  if (client_ != nullptr) {
    for (auto& [dest, f] : flights_) client_->cancel(f->transfer);
    if (pump_timer_ != 0) client_->cancel_timer(pump_timer_);
  }
}

Status Dispatcher::set_config(const Config& config) {
  auto s = settings_from(config);
  if (!s) return s.error();
  settings_ = std::move(*s);
  if (started_) poke();  // a shorter backoff or a wider guard may make something due now
  return {};
}

net::HttpClient* Dispatcher::client() {
  if (client_ == nullptr) client_ = client_source_();
  return client_;
}

void Dispatcher::start() {
  started_ = true;
  poke();
}

void Dispatcher::poke() {
  if (started_) schedule_pump(0);
}

void Dispatcher::schedule_pump(int64_t delay_ms) {
  net::HttpClient* c = client();
  if (c == nullptr) return;  // HttpLoop logged why; nothing can be sent
  int64_t at = steady_ms() + std::max<int64_t>(0, delay_ms);
  if (pump_timer_ != 0) {
    if (pump_at_ms_ <= at) return;  // an earlier look is coming anyway
    c->cancel_timer(pump_timer_);
  }
  pump_at_ms_ = at;
  pump_timer_ = c->schedule(delay_ms, [this] {
    pump_timer_ = 0;
    pump();
  });
}

void Dispatcher::pump() {
  const int64_t now = clock_.wall_ms();
  const size_t max_in_flight = static_cast<size_t>(std::max(1, settings_.webhooks.max_in_flight));
  std::optional<int64_t> next_due;
  // Round robin over the destinations: the scan starts after the destination started last and wraps around,
  // so with more busy destinations than max_in_flight none waits behind the others' whole backlogs.
  const std::string start = cursor_;
  bool wrapped = start.empty();
  std::string after = start;
  while (flights_.size() < max_in_flight) {
    auto page = repo_.heads(after, kHeadsPage);
    if (!page) {
      log::error("webhooks: cannot read the delivery queue: " + page.error().message);
      schedule_pump(kStoreRetryMs);
      return;
    }
    bool lapped = false;
    for (const WebhookDelivery& d : *page) {
      if (wrapped && !start.empty() && d.destination > start) {
        lapped = true;  // seen in the first part of the scan
        break;
      }
      if (flights_.size() >= max_in_flight) break;
      if (flights_.count(d.destination) != 0) continue;  // its head is on the wire
      if (d.next_attempt_at_ms <= now) {
        cursor_ = d.destination;
        begin(d);
      } else if (!next_due || d.next_attempt_at_ms < *next_due) {
        next_due = d.next_attempt_at_ms;
      }
    }
    if (lapped) break;
    if (page->size() < kHeadsPage) {
      if (wrapped) break;
      wrapped = true;
      after.clear();
      continue;
    }
    after = page->back().destination;
  }
  // A full house is looked at again when a flight ends; otherwise when the earliest waiting head is due.
  if (next_due) schedule_pump(*next_due - now);
}

void Dispatcher::begin(const WebhookDelivery& d) {
  auto f = std::make_unique<Flight>();
  f->d = d;
  f->attempt = d.attempts + 1;
  f->started_wall_ms = clock_.wall_ms();
  f->started_mono_us = clock_.monotonic_us();
  f->url = d.url;
  f->guard = settings_.guard;
  f->cfg = settings_.webhooks;
  Flight& flight = *f;
  flights_.emplace(d.destination, std::move(f));

  std::string key;
  if (d.kind == "integration") {
    auto it = settings_.integrations.find(integration_key(d.agent_uuid, d.integration));
    if (it == settings_.integrations.end()) {
      conclude(flight, std::nullopt,
               "integration " + d.integration + " of agent " + d.agent_uuid + " is gone", false);
      return;
    }
    if (!it->second.active) {
      conclude(flight, std::nullopt,
               "integration " + d.integration + " of agent " + d.agent_uuid + " is inactive", false);
      return;
    }
    key = it->second.key;
  }
  if (key.empty()) {
    auto box = default_key();
    if (!box) {
      conclude(flight, std::nullopt, "no signing secret: " + box.error().message, true);
      return;
    }
    key = *box;
  }
  // Signed at send time: the timestamp is the attempt's, so a receiver's replay window judges this attempt.
  const int64_t ts = flight.started_wall_ms / 1000;
  // GET and DELETE carry no body whatever the row holds (the client sends none for them), so none is signed.
  if (d.method == "GET" || d.method == "DELETE") flight.d.body.reset();
  const std::string body = flight.d.body.value_or("");
  for (const std::string& h : d.headers)
    if (!dropped_header(h)) flight.headers.push_back(h);
  if (flight.d.body) flight.headers.emplace_back("Content-Type: application/json");
  flight.headers.push_back(std::string("User-Agent: osvi-edge/") + kVersion);
  flight.headers.push_back("webhook-id: " + d.webhook_id);
  flight.headers.push_back("webhook-timestamp: " + std::to_string(ts));
  auto signature = sign(key, d.webhook_id, ts, body);
  if (!signature) {  // libcrypto missing: retried like a missing libcurl, never sent unsigned
    conclude(flight, std::nullopt, "cannot sign: " + signature.error().message, true);
    return;
  }
  flight.headers.push_back("webhook-signature: " + *signature);
  send_hop(flight);
}

void Dispatcher::send_hop(Flight& f) {
  net::HttpClient* c = client();
  if (c == nullptr) {
    conclude(f, std::nullopt, "libcurl is not available", true);
    return;
  }
  net::HttpClient::Request req;
  req.method = f.d.method;
  req.url = f.url;
  req.headers = f.headers;
  if (f.d.body) req.body = *f.d.body;
  req.timeout_ms = f.cfg.timeout_ms;
  req.guard = f.guard;
  net::HttpClient::Callbacks cb;
  // Response bodies are not kept: the status is the answer. Bounded by timeout_ms like everything else.
  cb.on_body = [](std::string_view) {};
  std::string dest = f.d.destination;
  cb.on_done = [this, dest](const net::HttpClient::Done& done) { finish(dest, done); };
  auto id = c->start(std::move(req), std::move(cb));
  if (!id) {
    conclude(f, std::nullopt, "cannot start the request: " + id.error().message, true);
    return;
  }
  f.transfer = *id;
}

void Dispatcher::finish(const std::string& destination, const net::HttpClient::Done& done) {
  auto it = flights_.find(destination);
  if (it == flights_.end()) return;
  Flight& f = *it->second;
  f.transfer = 0;
  using F = net::HttpClient::Failure;
  if (done.failure == F::none && done.status >= 300 && done.status < 400 && done.status != 304) {
    if (done.redirect_url.empty()) {
      conclude(f, done.status, "HTTP " + std::to_string(done.status) + " without a Location", true);
      return;
    }
    if (f.hops >= f.cfg.max_redirects) {
      conclude(f, done.status,
               "too many redirects (" + std::to_string(f.hops) + " followed, the last to " + f.url + ")",
               true);
      return;
    }
    ++f.hops;
    f.url = done.redirect_url;  // method and body kept (307/308 semantics for every 3xx)
    send_hop(f);
    return;
  }
  if (done.failure == F::none && done.status >= 200 && done.status < 300) {
    conclude(f, done.status, std::nullopt, true);
    return;
  }
  if (done.failure == F::none) {
    conclude(f, done.status, "HTTP " + std::to_string(done.status), true);
    return;
  }
  std::string kind;
  switch (done.failure) {
    case F::connect:
      kind = "connect: ";
      break;
    case F::timeout:
      kind = "timeout: ";
      break;
    case F::reset:
      kind = "reset: ";
      break;
    case F::refused:
      kind = "";
      break;  // "refused target ..." says it all
    case F::invalid:
      kind = "invalid request: ";
      break;
    case F::other:
    case F::none:
      kind = "error: ";
      break;
  }
  std::string error = kind + done.error;
  if (f.hops > 0) error += " (after " + std::to_string(f.hops) + " redirect(s), at " + f.url + ")";
  // A refused target or an invalid request (malformed URL, a redirect to a scheme other than http/https)
  // cannot succeed by retrying: the delivery is dead at once and visible in the dead letters rather than
  // retried for the whole horizon.
  conclude(f, done.status != 0 ? std::optional<int64_t>(done.status) : std::nullopt, error,
           done.failure != F::refused && done.failure != F::invalid);
}

int64_t Dispatcher::backoff_ms(int64_t attempt) {
  const WebhooksConfig& w = settings_.webhooks;
  double delay = static_cast<double>(std::max<int64_t>(1, w.initial_backoff_ms));
  for (int64_t i = 1; i < attempt && delay < static_cast<double>(w.max_backoff_ms); ++i) delay *= 2;
  delay = std::min(delay, static_cast<double>(w.max_backoff_ms));
  // ±20 % jitter, so receivers that came back are not hit by every box's retries in the same second.
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  return std::max<int64_t>(
      1, std::llround(std::min(delay * jitter(rng_), static_cast<double>(w.max_backoff_ms))));
}

void Dispatcher::conclude(Flight& f, std::optional<int64_t> status, std::optional<std::string> error,
                          bool retryable) {
  const std::string destination = f.d.destination;
  const int64_t now = clock_.wall_ms();
  WebhookAttempt a;
  a.delivery_id = f.d.id;
  a.attempt = f.attempt;
  a.started_at_ms = f.started_wall_ms;
  a.status_code = status;
  a.latency_ms = (clock_.monotonic_us() - f.started_mono_us) / 1000;
  a.error = error;
  std::string state = "delivered";
  std::optional<int64_t> next;
  if (error) {
    // A row queued without a horizon (expires_at not after created_at) gets the configured one rather than
    // dying at its first failure.
    const int64_t expires = f.d.expires_at_ms > f.d.created_at_ms
                                ? f.d.expires_at_ms
                                : f.d.created_at_ms + settings_.webhooks.horizon_s * 1000;
    if (retryable && now < expires) {
      state = "pending";
      // The last retry happens at the horizon itself, not a backoff step short of it.
      next = std::min(now + backoff_ms(f.attempt), expires);
    } else {
      state = "dead";
    }
  }
  ++stats_.attempts;
  Status s = repo_.record_attempt(a, state, next);
  if (!s) {
    // The row stays pending with its old attempt count: it is sent again (at-least-once), a little later.
    log::error("webhooks: cannot record an attempt: " + s.error().message);
    flights_.erase(destination);
    schedule_pump(kStoreRetryMs);
    return;
  }
  if (state == "delivered") {
    ++stats_.delivered;
  } else if (state == "pending") {
    ++stats_.retried;
  } else {
    ++stats_.dead;
    const std::string attempts = std::to_string(f.attempt);
    const std::string call_id = f.d.call_id.value_or("");
    log::warning("webhooks: delivery " + f.d.webhook_id + " to " + f.d.url + " is dead after " + attempts +
                     " attempt(s): " + error.value_or(""),
                 {{"CALL_ID", call_id},
                  {"WEBHOOK_ID", f.d.webhook_id},
                  {"WEBHOOK_KIND", f.d.kind},
                  {"WEBHOOK_INTEGRATION", f.d.integration},
                  {"WEBHOOK_URL", f.d.url},
                  {"WEBHOOK_ATTEMPTS", attempts},
                  {"WEBHOOK_ERROR", error.value_or("")}},
                 log::id::kWebhookDead);
  }
  flights_.erase(destination);  // f is gone from here on
  schedule_pump(0);
}

}  // namespace osvi::daemon::webhooks
