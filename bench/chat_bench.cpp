// POST /v1/chat/inbound overhead without the model: the daemon's HTTP server, Api, ChatService and store on
// an sd-event loop, a stand-in model that answers on the next loop turn; a client on loopback, p50/p99.
//
// chat_bench [requests] [sessions]: requests (default 5000, after 200 warm-up) spread round-robin over
// sessions (default 100) so each session's history grows as a real one does (40 messages are read per turn).
// Figures: the client's round trip (curl on loopback, keep-alive), the same client's round trip to a trivial
// endpoint (the HTTP floor), and the daemon's own time: from the Api handler's entry to the agent reply's
// commit, minus the stand-in model's time.
#include <curl/curl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "osvi/api/api.hpp"
#include "osvi/base/event_loop.hpp"
#include "osvi/base/http_on_loop.hpp"
#include "osvi/calls/call_timers.hpp"
#include "osvi/chat/chat_service.hpp"
#include "osvi/net/upstream.hpp"
#include "test_support.hpp"

using namespace osvi;
using namespace osvi::daemon;
using Clk = std::chrono::steady_clock;

namespace {

double us_since(Clk::time_point t0, Clk::time_point t1) {
  return std::chrono::duration<double, std::micro>(t1 - t0).count();
}

// The model: every chat request answers "ok" on the next loop turn, woken by an eventfd as a socket would
// wake it (a timer has sd-event's 1 ms accuracy); its own time is recorded and taken out of the daemon's.
class InstantUpstream final : public net::Upstream {
 public:
  explicit InstantUpstream(EventLoop& loop) : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    auto src = loop.add_io(fd_, EPOLLIN, [this](uint32_t) { answer(); });
    if (src) src_ = std::move(*src);
  }
  ~InstantUpstream() override { close(fd_); }
  net::RequestId transcribe(net::SttRequest, net::SttCallbacks) override { return 0; }
  net::RequestId speak(net::TtsRequest, net::TtsCallbacks) override { return 0; }
  net::RequestId embed(net::EmbeddingsRequest, net::EmbeddingsCallbacks) override { return 0; }
  net::RequestId chat(net::ChatRequest, net::ChatCallbacks cb) override {
    queue_.push_back({next_, std::move(cb), Clk::now()});
    const uint64_t one = 1;
    if (write(fd_, &one, sizeof one) < 0) std::abort();
    return next_++;
  }
  void cancel(net::RequestId id) override {
    std::erase_if(queue_, [id](const Pending& p) { return p.id == id; });
  }
  bool breaker_open(std::string_view) const override { return false; }
  std::vector<net::BreakerState> breakers() const override { return {}; }
  double model_us = 0;  // since the last reset

 private:
  struct Pending {
    net::RequestId id;
    net::ChatCallbacks cb;
    Clk::time_point sent;
  };
  void answer() {
    uint64_t n = 0;
    if (read(fd_, &n, sizeof n) < 0) return;
    std::vector<Pending> due;
    due.swap(queue_);
    for (Pending& p : due) {
      model_us += us_since(p.sent, Clk::now());
      net::ChatResult r;
      r.text = "ok";
      r.finish_reason = "stop";
      p.cb.on_done(std::move(r));
    }
  }
  int fd_;
  EventSource src_;
  std::vector<Pending> queue_;
  net::RequestId next_ = 1;
};

size_t sink(char* p, size_t s, size_t n, void* out) {
  static_cast<std::string*>(out)->append(p, s * n);
  return s * n;
}

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  const int requests = argc > 1 ? std::atoi(argv[1]) : 5000;
  const int sessions = argc > 2 ? std::atoi(argv[2]) : 100;
  const int warmup = 200;
  test::TempDir dir;
  auto loop = EventLoop::create();
  if (!loop) return 1;
  LoopClock clock(**loop);
  auto store = Store::open(StoreOptions{dir.file("osvi.db")}, clock);
  if (!store) {
    std::fprintf(stderr, "%s\n", store.error().message.c_str());
    return 1;
  }
  Config config;
  AgentConfig a;
  a.agent_uuid = "agent_chat";
  a.name = "Chat";
  a.mode = AgentMode::chat;
  a.active = true;
  a.prompt.system_prompt = "You help {{name}} with their orders. Be brief and friendly.";
  config.agents.push_back(a);
  if (!(*store)->agents().sync({{0, "agent_chat", "Chat", "chat", true, false, "{}", "", 0, 0}})) return 1;
  InstantUpstream upstream(**loop);
  ChatContext cc{&config, store->get(), &upstream, &clock,
                 [&](std::function<void()> fire) { return make_loop_call_timer(**loop, std::move(fire)); }};
  auto chat = ChatService::create(std::move(cc));
  if (!chat) return 1;
  std::vector<ApiToken> tokens = {{"BenchToken012345", {}, true}};
  ApiContext ctx;
  ctx.config = &config;
  ctx.tokens = &tokens;
  ctx.store = store->get();
  ctx.clock = &clock;
  ctx.chat = chat->get();
  Api api(ctx);

  // The daemon's own time of the request in flight (one at a time): handler entry → agent reply stored.
  Clk::time_point handler_in;
  std::vector<double> daemon_us;
  (*chat)->set_listener([&](const ChatEvent& e) {
    const cJSON* role = cJSON_GetObjectItemCaseSensitive(e.data.get(), "role");
    if (e.type == "message.created" && cJSON_IsString(role) && std::string(role->valuestring) == "agent") {
      daemon_us.push_back(us_since(handler_in, Clk::now()) - upstream.model_us);
    }
  });
  net::HttpServerOptions o;
  o.port = 0;
  auto server = net::HttpServer::start(o, [&](net::HttpRequest& req, net::HttpReply reply) {
    handler_in = Clk::now();
    upstream.model_us = 0;
    api.handle(req, std::move(reply));
  });
  if (!server) return 1;
  net::HttpServer* srv = server->get();
  auto served = serve_http_on_loop(**loop, *srv);
  if (!served) return 1;
  const int stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  auto stop = (*loop)->add_io(stop_fd, EPOLLIN, [&](uint32_t) { (*loop)->exit(0); });
  const std::string url = "http://127.0.0.1:" + std::to_string(srv->port()) + "/v1/chat/inbound";

  std::vector<double> rtt_us, floor_us;
  const std::string health_url = "http://127.0.0.1:" + std::to_string(srv->port()) + "/v1/active_agents";
  std::atomic<int> failures{0};
  std::thread client([&] {
    CURL* c = curl_easy_init();
    curl_slist* h = curl_slist_append(nullptr, "Content-Type: application/json");
    h = curl_slist_append(h, "API-Token: BenchToken012345");
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    for (int i = 0; i < warmup + requests; ++i) {
      const std::string body = R"({"agent_uuid":"agent_chat","customer_id":"customer-)" +
                               std::to_string(i % sessions) + R"(","content":"Where is my order number )" +
                               std::to_string(i) + R"(? It was due yesterday."})";
      std::string out;
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
      const Clk::time_point t0 = Clk::now();
      long status = 0;
      if (curl_easy_perform(c) != CURLE_OK) ++failures;
      curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
      if (status != 200 || out.find("\"reply\":\"ok\"") == std::string::npos) ++failures;
      if (i >= warmup) rtt_us.push_back(us_since(t0, Clk::now()));
    }
    // The same client and server on an endpoint without the chat service: the HTTP floor to compare with.
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_URL, health_url.c_str());
    for (int i = 0; i < 2000; ++i) {
      std::string out;
      curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
      const Clk::time_point t0 = Clk::now();
      if (curl_easy_perform(c) != CURLE_OK) ++failures;
      floor_us.push_back(us_since(t0, Clk::now()));
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    const uint64_t one = 1;
    if (write(stop_fd, &one, sizeof one) < 0) std::abort();
  });
  (*loop)->run();
  client.join();
  close(stop_fd);
  daemon_us.erase(daemon_us.begin(), daemon_us.begin() + std::min<ptrdiff_t>(warmup, std::ssize(daemon_us)));
  if (failures > 0 || rtt_us.empty() || daemon_us.empty()) {
    std::fprintf(stderr, "%d failures\n", failures.load());
    return 1;
  }
  std::printf("requests %d over %d sessions (after %d warm-up)\n", requests, sessions, warmup);
  std::printf("client round trip (loopback, keep-alive): p50 %.2f ms  p99 %.2f ms  max %.2f ms\n",
              pct(rtt_us, 0.5) / 1000, pct(rtt_us, 0.99) / 1000, pct(rtt_us, 1.0) / 1000);
  std::printf("floor: GET /v1/active_agents round trip:     p50 %.2f ms  p99 %.2f ms\n",
              pct(floor_us, 0.5) / 1000, pct(floor_us, 0.99) / 1000);
  std::printf(
      "daemon's own time (handler -> reply stored, minus model): p50 %.2f ms  p99 %.2f ms  max %.2f ms\n",
      pct(daemon_us, 0.5) / 1000, pct(daemon_us, 0.99) / 1000, pct(daemon_us, 1.0) / 1000);
  return 0;
}
