// Fleet sync throughput: osvid drains a pre-filled outbox of ~2 KB call records to a real mosquitto broker.
//
// Usage: mqtt_bench [--runs N] [--records N] [--inflight N] [--rtt-ms N] [--only loopback|rtt]
//                   [--protocol 5|3.1.1] [--broker-inflight N]
// Each run: a fresh state folder whose database is a copy of one filled through the Store API
// (calls().insert + finish_call_and_enqueue, so the outbox rows are exactly what the calls engine will
// queue), a fresh mosquitto on a free loopback port, a fleet-side subscriber (QoS 1) on <prefix>/calls, then
// osvid is forked with a configuration pointing at the broker (directly, or through a proxy in this process
// that delays every byte by rtt/2 in each direction). Measured from fork until the subscriber holds every
// record, and until the outbox is empty (PUBACKs turned into deletes).
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "mosquitto_broker.hpp"
#include "osvi/clock.hpp"
#include "osvi/store/store.hpp"
#include "test_support.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kPrefix = "osvi/v1/bench/box1";

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// A broker whose fleet side never drops records. broker_inflight > 0 sets mosquitto's max_inflight_messages,
// which it also announces to MQTT v5 clients as Receive Maximum: the cap on unacknowledged QoS 1 publishes,
// whatever osvid's max_inflight says. max_queued_messages 0: the default queue towards one subscriber (1000
// QoS 1 messages) would drop part of a 10,000 backlog arriving at loopback speed.
class Broker : public osvi::test::MosquittoBroker {
 public:
  Broker(const std::string& dir, int broker_inflight)
      : MosquittoBroker(
            dir, osvi::test::free_loopback_port(),
            "max_queued_messages 0\n" +
                (broker_inflight > 0 ? "max_inflight_messages " + std::to_string(broker_inflight) + "\n"
                                     : std::string())) {
    if (!started()) {
      std::fprintf(stderr, "mosquitto did not start (see %s)\n", log_path().c_str());
      std::exit(1);
    }
  }
};

// The fleet side: a QoS 1 subscriber on its own libmosquitto thread, counting distinct call records.
class Subscriber {
 public:
  explicit Subscriber(int port) {
    m_ = mosquitto_new(nullptr, true, this);
    mosquitto_int_option(m_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_message_v5_callback_set(
        m_, [](mosquitto*, void* obj, const mosquitto_message* msg, const mosquitto_property*) {
          static_cast<Subscriber*>(obj)->on_message(msg);
        });
    mosquitto_subscribe_v5_callback_set(
        m_, [](mosquitto*, void* obj, int, int, const int*, const mosquitto_property*) {
          auto* self = static_cast<Subscriber*>(obj);
          std::lock_guard lock(self->mu_);
          self->subscribed_ = true;
          self->cv_.notify_all();
        });
    mosquitto_connect_v5_callback_set(m_, [](mosquitto* m, void*, int rc, int, const mosquitto_property*) {
      if (rc == 0)
        mosquitto_subscribe_v5(m, nullptr, (std::string(kPrefix) + "/calls").c_str(), 1, 0, nullptr);
    });
    if (mosquitto_connect(m_, "127.0.0.1", port, 30) != MOSQ_ERR_SUCCESS) {
      std::fprintf(stderr, "subscriber: cannot connect to the broker\n");
      std::exit(1);
    }
    mosquitto_loop_start(m_);
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, 5s, [this] { return subscribed_; })) {
      std::fprintf(stderr, "subscriber: no SUBACK\n");
      std::exit(1);
    }
  }
  ~Subscriber() {
    mosquitto_disconnect(m_);
    // Not forced: cancelling the network thread mid-message leaked that message (LeakSanitizer, now and
    // then); after mosquitto_disconnect the thread ends on its own.
    mosquitto_loop_stop(m_, false);
    mosquitto_destroy(m_);
  }
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  // Waits until `n` distinct call records arrived; false on timeout.
  bool wait_distinct(size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return ids_.size() >= n; });
  }
  size_t distinct() {
    std::lock_guard lock(mu_);
    return ids_.size();
  }
  size_t received() {
    std::lock_guard lock(mu_);
    return received_;
  }
  Clock::time_point first_at() {
    std::lock_guard lock(mu_);
    return first_;
  }
  Clock::time_point last_new_at() {
    std::lock_guard lock(mu_);
    return last_new_;
  }
  size_t payload_bytes() {
    std::lock_guard lock(mu_);
    return payload_bytes_;
  }

 private:
  void on_message(const mosquitto_message* msg) {
    const auto now = Clock::now();
    std::string_view p(static_cast<const char*>(msg->payload), static_cast<size_t>(msg->payloadlen));
    const auto at = p.find("\"idempotency_key\":\"");
    std::string key;
    if (at != std::string_view::npos) {
      const size_t from = at + 19;
      key = std::string(p.substr(from, p.find('"', from) - from));
    }
    std::lock_guard lock(mu_);
    if (received_++ == 0) first_ = now;
    payload_bytes_ += p.size();
    if (ids_.insert(std::move(key)).second) last_new_ = now;
    cv_.notify_all();
  }

  mosquitto* m_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  bool subscribed_ = false;
  std::set<std::string> ids_;
  size_t received_ = 0, payload_bytes_ = 0;
  Clock::time_point first_{}, last_new_{};
};

// A TCP proxy that holds every byte for `one_way` before forwarding it, in both directions: a WAN round
// trip without a bandwidth limit. One reader and one writer thread per direction and connection.
class DelayProxy {
 public:
  DelayProxy(int upstream_port, std::chrono::microseconds one_way)
      : upstream_port_(upstream_port), one_way_(one_way) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    port_ = osvi::test::free_loopback_port();
    sockaddr_in a = loopback(port_);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(listen_fd_, 8) != 0) {
      std::perror("proxy: bind/listen");
      std::exit(1);
    }
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~DelayProxy() {
    stop_ = true;
    acceptor_.join();
    {
      std::lock_guard lock(mu_);
      for (auto& l : links_) l->close_all();
    }
    for (auto& l : links_) l->join();
    ::close(listen_fd_);
  }
  DelayProxy(const DelayProxy&) = delete;
  DelayProxy& operator=(const DelayProxy&) = delete;
  int port() const { return port_; }

 private:
  static sockaddr_in loopback(int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
  }

  // One direction of one connection: chunks stamped with the time they may leave.
  struct Direction {
    int from = -1, to = -1;
    std::chrono::microseconds delay{};
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::pair<Clock::time_point, std::string>> q;  // empty string = EOF
    std::thread reader, writer;

    void start() {
      reader = std::thread([this] {
        std::vector<char> buf(64 * 1024);
        for (;;) {
          const ssize_t n = ::read(from, buf.data(), buf.size());
          std::lock_guard lock(mu);
          q.emplace_back(Clock::now() + delay, n > 0 ? std::string(buf.data(), static_cast<size_t>(n)) : "");
          cv.notify_all();
          if (n <= 0) return;
        }
      });
      writer = std::thread([this] {
        for (;;) {
          std::pair<Clock::time_point, std::string> item;
          {
            std::unique_lock lock(mu);
            cv.wait(lock, [this] { return !q.empty(); });
            const Clock::time_point due = q.front().first;
            cv.wait_until(lock, due, [] { return false; });
            item = std::move(q.front());
            q.pop_front();
          }
          if (item.second.empty()) {
            ::shutdown(to, SHUT_WR);
            return;
          }
          size_t off = 0;
          while (off < item.second.size()) {
            const ssize_t w = ::write(to, item.second.data() + off, item.second.size() - off);
            if (w <= 0) {
              ::shutdown(to, SHUT_RDWR);
              ::shutdown(from, SHUT_RDWR);
              return;
            }
            off += static_cast<size_t>(w);
          }
        }
      });
    }
  };

  struct Link {
    int client = -1, server = -1;
    Direction up, down;
    void close_all() {
      ::shutdown(client, SHUT_RDWR);
      ::shutdown(server, SHUT_RDWR);
    }
    void join() {
      for (std::thread* t : {&up.reader, &up.writer, &down.reader, &down.writer})
        if (t->joinable()) t->join();
      ::close(client);
      ::close(server);
    }
  };

  void accept_loop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      const int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a = loopback(upstream_port_);
      if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(c);
        ::close(s);
        continue;
      }
      const int one = 1;
      setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto link = std::make_unique<Link>();
      link->client = c;
      link->server = s;
      link->up.from = c;
      link->up.to = s;
      link->down.from = s;
      link->down.to = c;
      link->up.delay = link->down.delay = one_way_;
      link->up.start();
      link->down.start();
      std::lock_guard lock(mu_);
      links_.push_back(std::move(link));
    }
  }

  int upstream_port_;
  std::chrono::microseconds one_way_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Link>> links_;
};

std::string call_id(int i) {
  char id[64];
  std::snprintf(id, sizeof id, "0190b000-0000-7000-8000-%012d", i);
  return id;
}

// A finished call shaped like a real one: summary, extraction, analysis, trigger data (~2 KB of JSON).
osvi::daemon::CallRecord finished_call(int i) {
  osvi::daemon::CallRecord c;
  c.call_id = call_id(i);
  c.agent_uuid = "agent_a";
  c.agent_name = "Front desk (Hindi/English)";
  c.phone_number = "+9198765" + std::to_string(10000 + i % 90000);
  c.from_number = "+912067890000";
  c.call_type = i % 3 == 0 ? "inbound" : "outbound";
  c.created_at_ms = 1'790'000'000'000 + int64_t{i} * 1000;
  c.status = "picked";
  c.duration_seconds = 60 + i % 240;
  c.call_ended_by = "assistant";
  c.call_ended_reason = "assistant-ended-call";
  c.campaign_id = 12;
  c.campaign_upload_id = 40 + i % 5;
  c.tag_id = 3;
  c.tag_name = "Interested";
  c.tag_color_code = "#2e7d32";
  c.call_picked_at_ms = c.created_at_ms + 6000;
  c.ended_at_ms = *c.call_picked_at_ms + c.duration_seconds * 1000;
  c.person_name = "Priya Sharma";
  c.summary =
      "The caller enquired about the two-wheeler loan offer advertised last week. The agent confirmed "
      "eligibility criteria (salaried, minimum income 25,000 per month, 12 to 36 months tenure) and "
      "explained "
      "the documents needed: identity proof, address proof, last three salary slips and six months of bank "
      "statements. The caller asked whether the processing fee could be waived; the agent said the branch "
      "manager decides and offered a call back. The caller agreed to visit the Pune branch on Saturday "
      "morning and asked for the address by SMS. No complaint was raised. Overall sentiment positive.";
  c.data_captured =
      R"({"full_name":"Priya Sharma","city":"Pune","monthly_income":42000,"employment":"salaried",)"
      R"("loan_amount":85000,"tenure_months":24,"vehicle":"scooter","preferred_visit":"Saturday 10:00",)"
      R"("documents_ready":["pan","aadhaar","salary_slips"],"consent_sms":true})";
  c.post_call_analysis =
      R"({"interested":true,"sentiment":"positive","lead_score":82,"objections":["processing fee"],)"
      R"("next_step":"branch visit","callback_required":true,"language":"hi-en","compliance_ok":true,)"
      R"("agent_talk_ratio":0.46,"interruptions":2,"silence_seconds":7})";
  c.structured_output =
      R"({"disposition":"appointment_booked","appointment":{"date":"2026-11-28","time":"10:00",)"
      R"("branch":"Pune Camp"},"products":["two_wheeler_loan"]})";
  c.call_trigger_data = R"({"source":"campaign","campaign":"Diwali two-wheeler offer","row":)" +
                        std::to_string(i) +
                        R"(,"variables":{"first_name":"Priya","offer_rate":"9.99%","branch":"Pune Camp"}})";
  c.line = "fxo-1";
  c.callback_required = true;
  return c;
}

// Fills a database with `n` finished calls through the Store API; returns the mean payload size.
double fill(const std::string& db_path, int n) {
  osvi::SystemClock clock;
  osvi::daemon::StoreOptions o;
  o.path = db_path;
  auto store = osvi::daemon::Store::open(o, clock);
  if (!store) {
    std::fprintf(stderr, "fill: %s\n", store.error().message.c_str());
    std::exit(1);
  }
  constexpr int kBatch = 500;  // batches only make the fill quick; each call still commits its own row
  for (int from = 0; from < n; from += kBatch) {
    osvi::Status s = (*store)->database().transaction([&]() -> osvi::Status {
      for (int i = from; i < std::min(n, from + kBatch); ++i) {
        osvi::daemon::CallRecord c = finished_call(i);
        osvi::daemon::CallRecord live = c;
        live.status = "in_progress";
        if (auto st = (*store)->calls().insert(live); !st) return st;
        if (auto st = osvi::daemon::finish_call_and_enqueue(**store, c); !st) return st;
      }
      return {};
    });
    if (!s) {
      std::fprintf(stderr, "fill: %s\n", s.error().message.c_str());
      std::exit(1);
    }
  }
  auto st = (*store)->outbox().stats();
  if (!st || st->queued != n) {
    std::fprintf(stderr, "fill: outbox holds %lld rows, expected %d\n",
                 st ? static_cast<long long>(st->queued) : -1LL, n);
    std::exit(1);
  }
  return static_cast<double>(st->bytes) / static_cast<double>(st->queued);
}

int64_t outbox_depth(const std::string& db_path) {
  osvi::SystemClock clock;
  osvi::daemon::StoreOptions o;
  o.path = db_path;
  o.quick_check = false;
  auto store = osvi::daemon::Store::open(o, clock);
  if (!store) return -1;
  auto st = (*store)->outbox().stats();
  return st ? st->queued : -1;
}

struct Options {
  int runs = 3;
  int records = 10000;
  int inflight = 0;  // 0 = the configuration default
  int rtt_ms = 50;
  std::string only;
  std::string protocol = "5";
  int broker_inflight = 0;  // 0 = mosquitto's default (20)
};

struct RunResult {
  double ready_ms = 0;  // fork → READY=1
  double first_ms = 0;  // fork → first record at the subscriber
  double all_ms = 0;    // fork → every record at the subscriber
  double empty_ms = 0;  // fork → outbox empty (every PUBACK deleted its row)
  double rate = 0;      // records/s between the first and the last new record
  size_t duplicates = 0;
};

RunResult run_once(const Options& opt, const std::string& template_db, int rtt_ms) {
  osvi::test::TempDir dir;
  const std::string state = dir.path() + "/state";
  std::filesystem::create_directories(state);
  const std::string db = state + "/osvi.db";
  std::filesystem::copy_file(template_db, db);

  Broker broker(dir.path(), opt.broker_inflight);
  Subscriber sub(broker.port());
  std::unique_ptr<DelayProxy> proxy;
  if (rtt_ms > 0)
    proxy = std::make_unique<DelayProxy>(broker.port(), std::chrono::microseconds(rtt_ms * 500));
  const int port = proxy ? proxy->port() : broker.port();

  std::string mqtt = R"({"enabled":true,"port":)" + std::to_string(port) +
                     R"(,"telemetry_interval_s":0,"reconnect_min_ms":100,"reconnect_max_ms":1000)";
  if (opt.inflight > 0) mqtt += R"(,"max_inflight":)" + std::to_string(opt.inflight);
  if (opt.protocol != "5") mqtt += R"(,"protocol":")" + opt.protocol + "\"";
  mqtt += "}";
  const std::string cfg =
      R"({"site":{"id":"bench","device":"box1"},"state_dir":")" + state + R"(","api":{"listen":"127.0.0.1:)" +
      std::to_string(osvi::test::free_loopback_port()) +
      R"("},"agents":[{"agent_uuid":"agent_a","name":"A","active":true}],"mqtt":)" + mqtt + "}";
  osvi::test::write_file(dir.file("osvid.json"), cfg);

  RunResult r;
  const auto t0 = Clock::now();
  osvi::test::DaemonProcess d(dir.path(), {"--config", dir.file("osvid.json")});
  if (!d.wait_notify("READY=1", 20s)) {
    std::fprintf(stderr, "osvid did not become ready:\n%s", d.stderr_text().c_str());
    std::exit(1);
  }
  r.ready_ms = ms_between(t0, Clock::now());
  const size_t n = static_cast<size_t>(opt.records);
  if (!sub.wait_distinct(n, 300s)) {
    std::fprintf(stderr, "only %zu of %zu records arrived\n%s", sub.distinct(), n, d.stderr_text().c_str());
    std::exit(1);
  }
  r.all_ms = ms_between(t0, sub.last_new_at());
  r.first_ms = ms_between(t0, sub.first_at());
  r.rate = static_cast<double>(n - 1) / (ms_between(sub.first_at(), sub.last_new_at()) / 1000.0);
  // The last PUBACKs may still be on their way: poll the outbox from another connection, as a tool would.
  for (int i = 0; i < 3000; ++i) {
    if (outbox_depth(db) == 0) break;
    std::this_thread::sleep_for(5ms);
  }
  r.empty_ms = ms_between(t0, Clock::now());
  r.duplicates = sub.received() - sub.distinct();
  d.signal(SIGTERM);
  d.wait_exit(10s);
  return r;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 == 1 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

void measure(const Options& opt, const std::string& template_db, int rtt_ms, const char* label) {
  std::vector<double> rate, all, empty, first;
  for (int i = 0; i < opt.runs; ++i) {
    const RunResult r = run_once(opt, template_db, rtt_ms);
    std::printf(
        "  %s run %d: READY %.0f ms, first record %.0f ms, all %d records %.0f ms, outbox empty "
        "%.0f ms, %.0f records/s, %zu duplicates\n",
        label, i + 1, r.ready_ms, r.first_ms, opt.records, r.all_ms, r.empty_ms, r.rate, r.duplicates);
    std::fflush(stdout);
    rate.push_back(r.rate);
    all.push_back(r.all_ms);
    empty.push_back(r.empty_ms);
    first.push_back(r.first_ms);
  }
  std::printf(
      "%s (median of %d): %.0f records/s; backlog of %d drained in %.2f s (first record %.0f ms, "
      "outbox empty %.2f s)\n",
      label, opt.runs, median(rate), opt.records, median(all) / 1000.0, median(first),
      median(empty) / 1000.0);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (v == nullptr) {
      std::fprintf(stderr, "%s needs a value\n", a.c_str());
      return 2;
    }
    if (a == "--runs") {
      opt.runs = std::atoi(v);
    } else if (a == "--records") {
      opt.records = std::atoi(v);
    } else if (a == "--inflight") {
      opt.inflight = std::atoi(v);
    } else if (a == "--rtt-ms") {
      opt.rtt_ms = std::atoi(v);
    } else if (a == "--only") {
      opt.only = v;
    } else if (a == "--protocol") {
      opt.protocol = v;
    } else if (a == "--broker-inflight") {
      opt.broker_inflight = std::atoi(v);
    } else {
      std::fprintf(stderr,
                   "usage: mqtt_bench [--runs N] [--records N] [--inflight N] [--rtt-ms N] "
                   "[--only loopback|rtt] [--protocol 5|3.1.1] [--broker-inflight N]\n");
      return 2;
    }
    ++i;
  }
  if (opt.runs < 1 || opt.records < 2) return 2;
  signal(SIGPIPE, SIG_IGN);  // the proxy writes to sockets the daemon may close
  mosquitto_lib_init();

  osvi::test::TempDir tmpl;
  const std::string db = tmpl.path() + "/osvi.db";
  const auto f0 = Clock::now();
  const double mean = fill(db, opt.records);
  std::printf(
      "filled %d call records through finish_call_and_enqueue in %.1f s, mean payload %.0f bytes; "
      "osvid max_inflight %s, MQTT %s, broker max_inflight_messages %s\n",
      opt.records, ms_between(f0, Clock::now()) / 1000.0, mean,
      opt.inflight > 0 ? std::to_string(opt.inflight).c_str() : "default", opt.protocol.c_str(),
      opt.broker_inflight > 0 ? std::to_string(opt.broker_inflight).c_str() : "default (20)");
  std::fflush(stdout);

  if (opt.only.empty() || opt.only == "loopback") measure(opt, db, 0, "loopback");
  if ((opt.only.empty() || opt.only == "rtt") && opt.rtt_ms > 0) {
    const std::string label = "+" + std::to_string(opt.rtt_ms) + " ms RTT";
    measure(opt, db, opt.rtt_ms, label.c_str());
  }
  mosquitto_lib_cleanup();
  return 0;
}
