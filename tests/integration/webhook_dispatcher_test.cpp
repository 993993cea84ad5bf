// The webhook Dispatcher over a real store and real loopback sockets (WebhookReceiver), on a PollDriver, with
// a ManualClock for the retry arithmetic: delivery, signing (checked by python3's hmac), retries after 500 /
// timeout / reset with the same webhook-id, the horizon, the target guard, redirects, order behind an outage,
// independent destinations, and a restart with a delivery left mid-flight.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

#include "osvi/net/poll_driver.hpp"
#include "osvi/net/text.hpp"
#include "osvi/store/store.hpp"
#include "osvi/webhooks/dispatcher.hpp"
#include "osvi/webhooks/signature.hpp"
#include "test_support.hpp"
#include "webhook_receiver.hpp"

namespace osvi::daemon::webhooks {
namespace {

using test::WebhookReceiver;
using Mode = WebhookReceiver::Mode;
using Reply = WebhookReceiver::Reply;

class DispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions opts;
    opts.path = dir.file("osvid.db");
    auto s = Store::open(opts, clock);
    ASSERT_TRUE(s.ok()) << s.error().message;
    store = std::move(*s);
    auto d = net::PollDriver::create();
    ASSERT_TRUE(d.ok());
    driver = std::move(*d);
    ASSERT_TRUE(rx.start().ok());
    cfg.state_dir = dir.path();
    cfg.webhooks.allowed_targets = {"127.0.0.1/32"};
    cfg.webhooks.timeout_ms = 400;
    cfg.webhooks.initial_backoff_ms = 1000;
    cfg.webhooks.max_backoff_ms = 60'000;
    cfg.webhooks.horizon_s = 3600;
    cfg.webhooks.signing_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  }

  void make_dispatcher() {
    auto d = Dispatcher::create(
        store->webhooks(), clock, [this] { return &driver->client(); }, cfg);
    ASSERT_TRUE(d.ok()) << d.error().message;
    dispatcher = std::move(*d);
    dispatcher->start();
  }

  WebhookDelivery delivery(int n, const WebhookReceiver& to, const std::string& path = "/hook") {
    WebhookDelivery d;
    char id[40];
    std::snprintf(id, sizeof id, "msg_%026d", n);
    d.webhook_id = id;
    d.call_id = "call-" + std::to_string(n);
    d.destination = "http://127.0.0.1:" + std::to_string(to.port());
    d.url = to.url(path);
    d.headers = {"X-Custom: " + std::to_string(n)};
    d.body = R"({"n":)" + std::to_string(n) + "}";
    d.expires_at_ms = clock.wall_ms() + cfg.webhooks.horizon_s * 1000;
    return d;
  }

  int64_t enqueue(const WebhookDelivery& d) {
    auto r = store->webhooks().enqueue(d);
    EXPECT_TRUE(r.ok() && *r);
    auto rows = store->webhooks().for_call(*d.call_id);
    EXPECT_TRUE(rows.ok() && rows->size() == 1);
    return rows.ok() && !rows->empty() ? rows->front().id : 0;
  }

  WebhookDelivery row(int64_t id) {
    auto r = store->webhooks().get(id);
    EXPECT_TRUE(r.ok() && r->has_value());
    return r.ok() && r->has_value() ? **r : WebhookDelivery{};
  }

  // Turns the loop until the delivery has had `attempts` attempts recorded (or is no longer pending).
  bool run_until_attempts(int64_t id, int64_t attempts, int64_t timeout_ms = 5000) {
    return driver->run_until(
        [&] {
          WebhookDelivery d = row(id);
          return d.attempts >= attempts || d.state != "pending";
        },
        timeout_ms);
  }

  // Moves virtual time to the delivery's next attempt and lets the dispatcher see it.
  void advance_to_next_attempt(int64_t id) {
    WebhookDelivery d = row(id);
    if (d.next_attempt_at_ms > clock.wall_ms()) clock.advance_ms(d.next_attempt_at_ms - clock.wall_ms());
    dispatcher->poke();
  }

  test::TempDir dir;
  ManualClock clock;
  std::unique_ptr<Store> store;
  std::unique_ptr<net::PollDriver> driver;
  WebhookReceiver rx;
  Config cfg;
  std::unique_ptr<Dispatcher> dispatcher;
};

std::string python_verify(const WebhookReceiver::Request& r, const std::string& secret,
                          const test::TempDir& dir) {
  const std::string body_path = dir.file("received_body");
  test::write_file(body_path, r.body);
  // Standard Webhooks verification as a receiver would write it: recompute, compare in constant time.
  const std::string cmd =
      "python3 -c 'import base64,hashlib,hmac,sys; k=base64.b64decode(sys.argv[1][6:]); "
      "b=open(sys.argv[5],\"rb\").read(); m=sys.argv[2].encode()+b\".\"+sys.argv[3].encode()+b\".\"+b; "
      "exp=\"v1,\"+base64.b64encode(hmac.new(k,m,hashlib.sha256).digest()).decode(); "
      "print(\"ok\" if hmac.compare_digest(exp, sys.argv[4]) else \"bad \"+exp)' " +
      secret + " '" + r.header("webhook-id") + "' '" + r.header("webhook-timestamp") + "' '" +
      r.header("webhook-signature") + "' " + body_path;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return "popen failed";
  std::string out;
  char buf[256];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  ::pclose(p);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

TEST_F(DispatcherTest, DeliversSignedWithTheHeadersDocumented) {
  make_dispatcher();
  const int64_t id = enqueue(delivery(1, rx));
  dispatcher->poke();
  ASSERT_TRUE(run_until_attempts(id, 1));
  WebhookDelivery d = row(id);
  EXPECT_EQ(d.state, "delivered");
  EXPECT_EQ(d.attempts, 1);
  EXPECT_EQ(d.last_status, 200);
  EXPECT_EQ(d.finished_at_ms, clock.wall_ms());
  ASSERT_EQ(rx.count(), 1u);
  auto r = rx.requests()[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/hook");
  EXPECT_EQ(r.body, R"({"n":1})");
  EXPECT_EQ(r.header("webhook-id"), "msg_00000000000000000000000001");
  EXPECT_EQ(r.header("webhook-timestamp"), std::to_string(clock.wall_ms() / 1000));
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_EQ(r.header("User-Agent").rfind("osvi-edge/", 0), 0u);
  EXPECT_EQ(r.header("X-Custom"), "1");
  EXPECT_EQ(python_verify(r, cfg.webhooks.signing_secret, dir), "ok");
  auto attempts = store->webhooks().attempts_for_call("call-1");
  ASSERT_TRUE(attempts.ok());
  ASSERT_EQ(attempts->size(), 1u);
  EXPECT_EQ((*attempts)[0].status_code, 200);
  EXPECT_EQ((*attempts)[0].error, std::nullopt);
  EXPECT_EQ((*attempts)[0].started_at_ms, clock.wall_ms());
}

TEST_F(DispatcherTest, GetSendsNoBodyAndRowHeadersCannotReplaceOrSmuggle) {
  make_dispatcher();
  WebhookDelivery d = delivery(1, rx, "/hook?call=1");
  d.method = "GET";
  d.headers = {"X-Ok: 1", "Content-Type: text/plain", "webhook-id: forged", "X-Bad: a\r\nInjected: yes"};
  const int64_t id = enqueue(d);  // the row still holds a body: not sent, not signed
  dispatcher->poke();
  ASSERT_TRUE(run_until_attempts(id, 1));
  EXPECT_EQ(row(id).state, "delivered");
  ASSERT_EQ(rx.count(), 1u);
  auto r = rx.requests()[0];
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/hook?call=1");
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(r.header("X-Ok"), "1");
  EXPECT_EQ(r.header("Content-Type"), "");
  EXPECT_EQ(r.header("Injected"), "");
  EXPECT_EQ(r.header("X-Bad"), "");
  int ids = 0;
  for (const auto& [name, value] : r.headers) ids += name == "webhook-id" ? 1 : 0;
  EXPECT_EQ(ids, 1);
  EXPECT_EQ(r.header("webhook-id"), d.webhook_id);
  EXPECT_EQ(python_verify(r, cfg.webhooks.signing_secret, dir), "ok");
}

TEST_F(DispatcherTest, GeneratedBoxSecretSignsWhenNoneIsConfigured) {
  cfg.webhooks.signing_secret.clear();
  make_dispatcher();
  EXPECT_NE(::access(dir.file("webhook_secret").c_str(), F_OK),
            0);  // nothing written until a delivery needs it
  const int64_t id = enqueue(delivery(1, rx));
  dispatcher->poke();
  ASSERT_TRUE(run_until_attempts(id, 1));
  auto file = load_or_create_secret_file(dir.file("webhook_secret"));
  ASSERT_TRUE(file.ok());
  auto shown = dispatcher->default_secret();
  ASSERT_TRUE(shown.ok());
  EXPECT_EQ(*shown, *file);
  ASSERT_EQ(rx.count(), 1u);
  EXPECT_EQ(python_verify(rx.requests()[0], *file, dir), "ok");
}

TEST_F(DispatcherTest, RetriesA500WithBackoffAndTheSameWebhookId) {
  make_dispatcher();
  rx.push(Reply::with_status(500));
  rx.push(Reply::with_status(503));
  const int64_t id = enqueue(delivery(1, rx));
  dispatcher->poke();
  ASSERT_TRUE(run_until_attempts(id, 1));
  WebhookDelivery d = row(id);
  EXPECT_EQ(d.state, "pending");
  EXPECT_EQ(d.last_status, 500);
  EXPECT_EQ(d.last_error, "HTTP 500");
  // First retry: initial_backoff ±20 %.
  EXPECT_GE(d.next_attempt_at_ms - clock.wall_ms(), 800);
  EXPECT_LE(d.next_attempt_at_ms - clock.wall_ms(), 1200);
  // Not sent again before it is due.
  clock.advance_ms(500);
  dispatcher->poke();
  driver->run_for(100);
  EXPECT_EQ(rx.count(), 1u);
  advance_to_next_attempt(id);
  ASSERT_TRUE(run_until_attempts(id, 2));
  d = row(id);
  EXPECT_EQ(d.last_status, 503);
  EXPECT_GE(d.next_attempt_at_ms - clock.wall_ms(), 1600);  // doubled
  EXPECT_LE(d.next_attempt_at_ms - clock.wall_ms(), 2400);
  advance_to_next_attempt(id);
  ASSERT_TRUE(run_until_attempts(id, 3));
  d = row(id);
  EXPECT_EQ(d.state, "delivered");
  auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 3u);
  for (const auto& r : reqs) {
    EXPECT_EQ(r.header("webhook-id"), "msg_00000000000000000000000001");
    EXPECT_EQ(python_verify(r, cfg.webhooks.signing_secret, dir), "ok");
  }
  // Each attempt is signed at its own time.
  EXPECT_NE(reqs[0].header("webhook-timestamp"), reqs[2].header("webhook-timestamp"));
  auto attempts = store->webhooks().attempts_for_call("call-1");
  ASSERT_TRUE(attempts.ok());
  ASSERT_EQ(attempts->size(), 3u);
  EXPECT_EQ((*attempts)[0].status_code, 500);
  EXPECT_EQ((*attempts)[1].status_code, 503);
  EXPECT_EQ((*attempts)[2].status_code, 200);
}

TEST_F(DispatcherTest, TimeoutResetAndEmptyReplyAreRetried) {
  make_dispatcher();
  rx.push(Reply::of(Mode::hang));
  rx.push(Reply::of(Mode::reset));
  rx.push(Reply::of(Mode::close));
  rx.push(Reply::slow(100));  // slow but inside timeout_ms: delivered
  const int64_t id = enqueue(delivery(1, rx));
  dispatcher->poke();
  for (int64_t n = 1; n <= 3; ++n) {
    ASSERT_TRUE(run_until_attempts(id, n));
    EXPECT_EQ(row(id).state, "pending");
    advance_to_next_attempt(id);
  }
  ASSERT_TRUE(run_until_attempts(id, 4));
  EXPECT_EQ(row(id).state, "delivered");
  auto attempts = store->webhooks().attempts_for_call("call-1");
  ASSERT_TRUE(attempts.ok());
  ASSERT_EQ(attempts->size(), 4u);
  EXPECT_EQ((*attempts)[0].error.value_or("").rfind("timeout: ", 0), 0u) << (*attempts)[0].error.value_or("");
  EXPECT_EQ((*attempts)[1].error.value_or("").rfind("reset: ", 0), 0u) << (*attempts)[1].error.value_or("");
  EXPECT_EQ((*attempts)[2].error.value_or("").rfind("reset: ", 0), 0u) << (*attempts)[2].error.value_or("");
  EXPECT_EQ((*attempts)[0].status_code, std::nullopt);
  EXPECT_EQ((*attempts)[3].status_code, 200);
  for (const auto& r : rx.requests()) EXPECT_EQ(r.header("webhook-id"), "msg_00000000000000000000000001");
}

TEST_F(DispatcherTest, DeadAfterTheHorizonWithTheLastAttemptAtIt) {
  cfg.webhooks.horizon_s = 10;
  cfg.webhooks.initial_backoff_ms = 2000;
  make_dispatcher();
  rx.set_default(Reply::with_status(500));
  WebhookDelivery w = delivery(1, rx);
  const int64_t id = enqueue(w);
  dispatcher->poke();
  int64_t n = 1;
  for (; n < 20; ++n) {
    ASSERT_TRUE(run_until_attempts(id, n));
    if (row(id).state != "pending") break;
    advance_to_next_attempt(id);
  }
  WebhookDelivery d = row(id);
  EXPECT_EQ(d.state, "dead");
  EXPECT_EQ(d.last_error, "HTTP 500");
  // 0, ~2 s, ~6 s, then the horizon (10 s) itself; jitter may move the third, never the count past 5.
  EXPECT_GE(d.attempts, 3);
  EXPECT_LE(d.attempts, 5);
  EXPECT_EQ(d.finished_at_ms, w.expires_at_ms);
  EXPECT_EQ(static_cast<int64_t>(rx.count()), d.attempts);
  EXPECT_EQ(dispatcher->stats().dead, 1);
  auto counts = store->webhooks().counts();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->pending, 0);
  EXPECT_EQ(counts->dead, 1);
  int64_t total = 0;
  auto dead = store->webhooks().dead(1, 10, &total);
  ASSERT_TRUE(dead.ok());
  EXPECT_EQ(total, 1);
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].webhook_id, w.webhook_id);
}

TEST_F(DispatcherTest, RefusedTargetIsDeadAtOnceAndNeverConnected) {
  cfg.webhooks.allowed_targets.clear();
  make_dispatcher();
  const int64_t id = enqueue(delivery(1, rx));
  dispatcher->poke();
  ASSERT_TRUE(run_until_attempts(id, 1));
  WebhookDelivery d = row(id);
  EXPECT_EQ(d.state, "dead");
  EXPECT_EQ(d.last_error, "refused target 127.0.0.1 (loopback)");
  EXPECT_EQ(d.last_status, std::nullopt);
  driver->run_for(50);
  EXPECT_EQ(rx.count(), 0u);
  // allowed_targets exempts it; a bad CIDR is refused naming the key, and the old settings stay.
  cfg.webhooks.allowed_targets = {"nonsense"};
  Status bad = dispatcher->set_config(cfg);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("webhooks.allowed_targets"), std::string::npos);
  cfg.webhooks.allowed_targets = {"127.0.0.0/8"};
  ASSERT_TRUE(dispatcher->set_config(cfg).ok());
  WebhookDelivery second = delivery(2, rx);
  second.destination += "/2";
  const int64_t id2 = enqueue(second);
  dispatcher->poke();
  ASSERT_TRUE(run_until_attempts(id2, 1));
  EXPECT_EQ(row(id2).state, "delivered");
}

TEST_F(DispatcherTest, FollowsRedirectsKeepingMethodAndBody) {
  make_dispatcher();
  rx.set_route("/a", Reply::redirect(302, "/b"));
  rx.set_route("/b", Reply::redirect(307, rx.url("/c")));
  const int64_t id = enqueue(delivery(1, rx, "/a"));
  dispatcher->poke();
  ASSERT_TRUE(run_until_attempts(id, 1));
  EXPECT_EQ(row(id).state, "delivered");
  auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].target, "/a");
  EXPECT_EQ(reqs[1].target, "/b");
  EXPECT_EQ(reqs[2].target, "/c");
  for (const auto& r : reqs) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.body, R"({"n":1})");
    EXPECT_EQ(r.header("webhook-id"), "msg_00000000000000000000000001");
  }
  auto attempts = store->webhooks().attempts_for_call("call-1");
  ASSERT_TRUE(attempts.ok());
  EXPECT_EQ(attempts->size(), 1u);  // the hops are one attempt
}

TEST_F(DispatcherTest, RedirectToARefusedTargetIsNotFollowed) {
  make_dispatcher();
  // 127.0.0.2 is loopback outside the allowed 127.0.0.1/32.
  rx.set_route("/a", Reply::redirect(307, "http://127.0.0.2:" + std::to_string(rx.port()) + "/inside"));
  const int64_t id = enqueue(delivery(1, rx, "/a"));
  dispatcher->poke();
  ASSERT_TRUE(run_until_attempts(id, 1));
  WebhookDelivery d = row(id);
  EXPECT_EQ(d.state, "dead");
  EXPECT_EQ(d.last_error.value_or("").rfind("refused target 127.0.0.2 (loopback)", 0), 0u)
      << d.last_error.value_or("");
  EXPECT_EQ(rx.count(), 1u);
}

TEST_F(DispatcherTest, AnInvalidRequestIsDeadAtOnce) {
  make_dispatcher();
  rx.set_route("/a", Reply::redirect(302, "ftp://127.0.0.1/file"));
  const int64_t redirected = enqueue(delivery(1, rx, "/a"));
  WebhookDelivery bad = delivery(2, rx);
  bad.url = "gopher://127.0.0.1/x";
  bad.destination = "elsewhere";
  const int64_t unsupported = enqueue(bad);
  dispatcher->poke();
  ASSERT_TRUE(run_until_attempts(redirected, 1));
  ASSERT_TRUE(run_until_attempts(unsupported, 1));
  EXPECT_EQ(row(redirected).state, "dead");
  EXPECT_EQ(row(redirected).last_error.value_or("").rfind("invalid request: ", 0), 0u)
      << row(redirected).last_error.value_or("");
  EXPECT_EQ(row(unsupported).state, "dead");
  EXPECT_EQ(row(unsupported).last_error.value_or("").rfind("invalid request: ", 0), 0u);
  EXPECT_EQ(rx.count(), 1u);  // only the first hop of the redirected one
}

TEST_F(DispatcherTest, RedirectLoopStopsAtMaxRedirects) {
  cfg.webhooks.max_redirects = 2;
  make_dispatcher();
  rx.set_route("/loop", Reply::redirect(308, "/loop"));
  const int64_t id = enqueue(delivery(1, rx, "/loop"));
  dispatcher->poke();
  ASSERT_TRUE(run_until_attempts(id, 1));
  WebhookDelivery d = row(id);
  EXPECT_EQ(d.state, "pending");
  EXPECT_EQ(d.last_status, 308);
  EXPECT_EQ(d.last_error.value_or("").rfind("too many redirects (2 followed", 0), 0u)
      << d.last_error.value_or("");
  EXPECT_EQ(rx.count(), 3u);
}

TEST_F(DispatcherTest, ThousandQueuedWhileDownArriveInQueueOrder) {
  cfg.webhooks.initial_backoff_ms = 10;
  cfg.webhooks.max_backoff_ms = 20;
  const uint16_t port = rx.port();
  rx.stop();
  make_dispatcher();
  std::vector<std::string> ids;
  int64_t first = 0;
  for (int n = 1; n <= 1000; ++n) {
    WebhookDelivery d = delivery(n, rx);
    ids.push_back(d.webhook_id);
    int64_t id = enqueue(d);
    if (n == 1) first = id;
  }
  dispatcher->poke();
  ASSERT_TRUE(run_until_attempts(first, 1));  // connection refused...
  advance_to_next_attempt(first);
  ASSERT_TRUE(run_until_attempts(first, 2));  // ...and retried
  EXPECT_EQ(row(first).last_error.value_or("").rfind("connect: ", 0), 0u);
  ASSERT_TRUE(rx.start(port).ok());
  clock.advance_ms(100);
  dispatcher->poke();
  ASSERT_TRUE(driver->run_until([&] { return rx.count() >= 1000; }, 20'000));
  driver->run_for(20);
  auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 1000u);
  for (size_t i = 0; i < reqs.size(); ++i) ASSERT_EQ(reqs[i].header("webhook-id"), ids[i]) << i;
  auto counts = store->webhooks().counts();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->pending, 0);
}

TEST_F(DispatcherTest, OneStuckDestinationDoesNotHoldUpAnother) {
  WebhookReceiver other;
  ASSERT_TRUE(other.start().ok());
  cfg.webhooks.timeout_ms = 2000;
  make_dispatcher();
  rx.set_default(Reply::of(Mode::hang));
  const int64_t stuck = enqueue(delivery(1, rx));
  const int64_t behind = enqueue(delivery(2, rx));  // same destination: waits behind the stuck one
  const int64_t free_id = enqueue(delivery(3, other));
  dispatcher->poke();
  ASSERT_TRUE(run_until_attempts(free_id, 1, 1500));
  EXPECT_EQ(row(free_id).state, "delivered");
  EXPECT_EQ(row(stuck).attempts, 0);
  EXPECT_EQ(row(behind).attempts, 0);
  // The stuck request reached its receiver (its thread records it on its own time); the one behind it did
  // not.
  EXPECT_TRUE(rx.wait_for(1, 1000));
  driver->run_for(50);
  EXPECT_EQ(rx.count(), 1u);
  EXPECT_EQ(dispatcher->in_flight(), 1u);
}

TEST_F(DispatcherTest, DestinationsTakeTurnsWhenSlotsAreScarce) {
  cfg.webhooks.max_in_flight = 1;
  make_dispatcher();
  int n = 0;
  for (int round = 0; round < 3; ++round) {
    for (const char* dest : {"a", "b", "c"}) {
      WebhookDelivery d = delivery(++n, rx, std::string("/") + dest);
      d.destination = dest;
      enqueue(d);
    }
  }
  dispatcher->poke();
  ASSERT_TRUE(driver->run_until([&] { return dispatcher->stats().delivered == 9; }, 5000));
  std::string order;
  for (const auto& r : rx.requests()) order += r.target.substr(1);
  EXPECT_EQ(order, "abcabcabc");  // not aaabbbccc: one busy destination does not hold the only slot
}

TEST_F(DispatcherTest, RestartResendsADeliveryLeftMidFlightWithTheSameId) {
  make_dispatcher();
  rx.push(Reply::of(Mode::hang));
  const int64_t id = enqueue(delivery(1, rx));
  dispatcher->poke();
  ASSERT_TRUE(driver->run_until([&] { return rx.count() == 1; }, 2000));
  // The process dies with the request on the wire: nothing about it reached the database.
  dispatcher.reset();
  store.reset();
  StoreOptions opts;
  opts.path = dir.file("osvid.db");
  auto s = Store::open(opts, clock);
  ASSERT_TRUE(s.ok());
  store = std::move(*s);
  EXPECT_EQ(row(id).state, "pending");
  EXPECT_EQ(row(id).attempts, 0);
  make_dispatcher();
  ASSERT_TRUE(run_until_attempts(id, 1));
  EXPECT_EQ(row(id).state, "delivered");
  auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].header("webhook-id"), reqs[1].header("webhook-id"));
}

TEST_F(DispatcherTest, IntegrationsAreSignedWithTheirOwnSecretAndDeadWhenGone) {
  AgentConfig agent;
  agent.agent_uuid = "agent-1";
  IntegrationConfig crm;
  crm.name = "crm";
  crm.secret = "whsec_" + net::base64_encode("an integration's own key bytes");
  agent.analysis.integrations.push_back(crm);
  cfg.agents.push_back(agent);
  make_dispatcher();
  WebhookDelivery d = delivery(1, rx);
  d.kind = "integration";
  d.agent_uuid = "agent-1";
  d.integration = "crm";
  d.destination = "agent-1/crm";
  const int64_t id = enqueue(d);
  dispatcher->poke();
  ASSERT_TRUE(run_until_attempts(id, 1));
  EXPECT_EQ(row(id).state, "delivered");
  ASSERT_EQ(rx.count(), 1u);
  EXPECT_EQ(python_verify(rx.requests()[0], crm.secret, dir), "ok");
  EXPECT_NE(python_verify(rx.requests()[0], cfg.webhooks.signing_secret, dir), "ok");

  cfg.agents.clear();
  ASSERT_TRUE(dispatcher->set_config(cfg).ok());
  WebhookDelivery gone = d;
  gone.webhook_id = "msg_00000000000000000000000002";
  gone.call_id = "call-2";
  const int64_t id2 = enqueue(gone);
  dispatcher->poke();
  ASSERT_TRUE(run_until_attempts(id2, 1));
  EXPECT_EQ(row(id2).state, "dead");
  EXPECT_EQ(row(id2).last_error, "integration crm of agent agent-1 is gone");
  EXPECT_EQ(rx.count(), 1u);
}

}  // namespace
}  // namespace osvi::daemon::webhooks
