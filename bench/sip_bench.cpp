// The SIP line's figures on a real osvid: registration-to-ready (osvid start to "registered" in /v1/health
// behind a digest challenge), mouth-to-ear added by the box (RTP in -> engine -> RTP out, measured on the
// wire by the relay between baresip and the box), and memory per concurrent SIP call (PSS with 0 and N live
// calls from sipp). Figures and the exact command: bench/README.md "SIP line".
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "model_server_process.hpp"
#include "sip_peers.hpp"
#include "smaps_breakdown.hpp"
#include "test_support.hpp"
#include "wav.hpp"

using namespace std::chrono_literals;
using osvi::test::DaemonProcess;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr const char* kToken = "SipBenchToken012";

struct Options {
  int registrations = 5;
  int turns = 8;
  int calls = 20;
};

double ms_between(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

// "Pss:"/"Rss:" of /proc/<pid>/smaps_rollup in kB.
long smaps_kb(pid_t pid, const char* key) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/smaps_rollup");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::atol(line.c_str() + std::strlen(key));
  return -1;
}

class Box {
 public:
  Box(const osvi::test::TempDir& dir, const std::string& model_url, const std::string& sip) : dir_(dir) {
    api_port_ = osvi::test::free_loopback_port();
    sip_port_ = osvi::test::free_udp_port_pair();
    do rtp_min_ = osvi::test::free_udp_port_pair();
    while (rtp_min_ % 2 != 0 || rtp_min_ + 1000 > 65000 ||
           (sip_port_ >= rtp_min_ && sip_port_ < rtp_min_ + 1000));
    osvi::test::write_file(dir.file("sip.pass"), "s3cret-201\n");
    ::chmod(dir.file("sip.pass").c_str(), 0600);
    const std::string url = model_url + "/v1";
    const std::string cfg =
        R"({"state_dir":")" + dir.file("state") + R"(","api":{"listen":"127.0.0.1:)" +
        std::to_string(api_port_) + R"(","tokens":[")" + kToken + R"("]},"audio":{"rt_priority":0},)" +
        R"("agents":[{"agent_uuid":"agent_sip","name":"Desk","active":true,"mode":"voice",)" +
        R"("greeting":{"text":"Hello."},"call":{"voicemail":{"detect":false}},)" + R"("stt":{"base_url":")" +
        url + R"("},"llm":{"base_url":")" + url + R"("},"voice":{"base_url":")" + url +
        R"("}}],"lines":[{"id":"pbx","type":"sip","agent_uuid":"agent_sip","sip":{"user":"201","password_file":")" +
        dir.file("sip.pass") + R"(","local_ip":"127.0.0.1","local_port":)" + std::to_string(sip_port_) +
        R"(,"rtp_port_min":)" + std::to_string(rtp_min_) + R"(,"rtp_port_max":)" +
        std::to_string(rtp_min_ + 999) + R"(,"codecs":["pcmu"],"keepalive_s":0,)" + sip + "}}]}";
    osvi::test::write_file(dir.file("osvid.json"), cfg);
    started_ = SteadyClock::now();
    daemon_ = std::make_unique<DaemonProcess>(dir.path(),
                                              std::vector<std::string>{"--config", dir.file("osvid.json")});
  }
  ~Box() {
    daemon_->signal(SIGTERM);
    daemon_->wait_exit(20s);
  }
  bool ready() { return daemon_->wait_notify("READY=1", 20s); }
  DaemonProcess& daemon() { return *daemon_; }
  int sip_port() const { return sip_port_; }
  // A free even port with `span` ports after it clear of the box's RTP range (sipp's media ports).
  int media_base(int span) const {
    for (;;) {
      const int p = osvi::test::free_udp_port_pair();
      if (p % 2 == 0 && p + span < 65000 && (p + span <= rtp_min_ || p >= rtp_min_ + 1000)) return p;
    }
  }
  SteadyClock::time_point started() const { return started_; }
  osvi::net::JsonPtr get_data(const std::string& path) {
    auto r = osvi::test::http_request("GET", "http://127.0.0.1:" + std::to_string(api_port_) + path, kToken);
    osvi::net::JsonPtr j = osvi::test::parse_json(r.body);
    return j ? osvi::net::JsonPtr(cJSON_Duplicate(cJSON_GetObjectItem(j.get(), "data"), true)) : nullptr;
  }
  std::string registration() {
    osvi::net::JsonPtr h = get_data("/v1/health");
    const cJSON* l = nullptr;
    cJSON_ArrayForEach(
        l, cJSON_GetObjectItem(h.get(),
                               "lines")) if (osvi::test::json_str(l, "id") ==
                                             "pbx") return osvi::test::json_str(cJSON_GetObjectItem(l, "sip"),
                                                                                "registration");
    return {};
  }
  int live_calls() {
    osvi::net::JsonPtr l = get_data("/v1/calls?status=in_progress&per_page=100");
    return cJSON_GetArraySize(l.get());
  }

 private:
  const osvi::test::TempDir& dir_;
  int api_port_ = 0;
  int sip_port_ = 0;
  int rtp_min_ = 0;
  SteadyClock::time_point started_;
  std::unique_ptr<DaemonProcess> daemon_;
};

std::unique_ptr<osvi::test::ModelServer> model(const osvi::test::TempDir& dir, const std::string& transcript,
                                               const std::string& reply) {
  osvi::test::write_file(dir.file("scenario.json"), R"({"stt":{"transcripts":[")" + transcript +
                                                        R"("],"latency_ms":0},"llm":{"default_reply":")" +
                                                        reply +
                                                        R"(","latency_ms":0},"tts":{"latency_ms":0}})");
  auto m = std::make_unique<osvi::test::ModelServer>(dir.file("scenario.json"), dir.file("model.log"));
  if (m->base().empty()) {
    std::fprintf(stderr, "model server: %s\n", m->error().c_str());
    std::exit(1);
  }
  return m;
}

void registration_to_ready(const Options& o) {
  std::vector<double> ms;
  for (int i = 0; i < o.registrations; ++i) {
    osvi::test::TempDir dir;
    auto m = model(dir, "hello", "Noted.");
    const int registrar = osvi::test::free_udp_port_pair();
    osvi::test::Sipp sipp(dir.path(),
                          {"-sf", osvi::test::sip_scenario("registrar_digest.xml"), "-i", "127.0.0.1", "-p",
                           std::to_string(registrar), "-m", "1", "-key", "expires", "600"});
    std::this_thread::sleep_for(100ms);
    Box box(dir, m->base(),
            R"("registrar":"127.0.0.1:)" + std::to_string(registrar) + R"(","register_expires_s":600)");
    const auto until = SteadyClock::now() + 15s;
    bool ok = false;
    while (SteadyClock::now() < until && !(ok = box.registration() == "registered"))
      std::this_thread::sleep_for(5ms);
    if (!ok) {
      std::fprintf(stderr, "registration %d did not complete:\n%s\n%s\n", i,
                   box.daemon().stderr_text().c_str(), sipp.output().c_str());
      continue;
    }
    ms.push_back(ms_between(box.started(), SteadyClock::now()));
  }
  std::printf(
      "registration-to-ready (osvid exec -> \"registered\" in /v1/health, 401 challenge + 200), %zu runs: "
      "p50 %.0f ms, max %.0f ms\n",
      ms.size(), percentile(ms, 0.5), percentile(ms, 1.0));
}

// baresip speaks `turns` utterances into the box through the relay, 5 s apart; the agent answers each with a
// short reply. Per turn: the first loud RTP packet out of the box after the last loud packet of the
// utterance into it.
void mouth_to_ear(const Options& o) {
  osvi::test::TempDir dir;
  auto m = model(dir, "I have a question", "Noted.");
  Box box(dir, m->base(), R"("registrar":"127.0.0.1:9","register_expires_s":0)");
  if (!box.ready()) {
    std::fprintf(stderr, "osvid did not start:\n%s\n", box.daemon().stderr_text().c_str());
    return;
  }
  // The caller's track: the utterance at 2 s, 7 s, 12 s, ... (the greeting and each reply fit between).
  const int rate = 8000;
  std::vector<int16_t> track(static_cast<size_t>(rate) * (2 + 5 * o.turns + 10), 0);
  {
    osvi::test::TempDir t;
    const auto words = osvi::test::write_speech_wav(t.file("w.wav"), "I have a question", 0, 0, rate);
    for (int k = 0; k < o.turns; ++k)
      std::copy(words.begin(), words.end(), track.begin() + static_cast<long>(rate) * (2 + 5 * k));
  }
  osvi::test::write_wav(dir.file("caller.wav"), rate, 1, track);
  ::mkdir(dir.file("baresip").c_str(), 0700);
  osvi::test::BaresipOptions bo;
  bo.user = "caller";
  bo.source_wav = dir.file("caller.wav");
  osvi::test::Baresip phone(dir.file("baresip"), bo);
  if (!phone.start()) {
    std::fprintf(stderr, "baresip: %s\n", phone.error().c_str());
    return;
  }
  osvi::test::RelayOptions ro;
  ro.log_rtp = true;
  osvi::test::UdpRelay relay(box.sip_port(), ro);
  relay.start();
  phone.command("dial", "sip:201@127.0.0.1:" + std::to_string(relay.sip_port()));
  if (!phone.wait_event("CALL_ESTABLISHED", 10s)) {
    std::fprintf(stderr, "the call was not answered:\n%s\n", box.daemon().stderr_text().c_str());
    return;
  }
  std::this_thread::sleep_for(std::chrono::seconds(2 + 5 * o.turns + 1));
  phone.command("hangup");
  const auto log = relay.rtp_log();
  constexpr double kLoud = -45.0;
  std::vector<double> ms;
  // Utterances: runs of loud packets into the box, split by gaps over 400 ms.
  std::vector<std::pair<SteadyClock::time_point, SteadyClock::time_point>> utterances;
  for (const auto& r : log) {
    if (!r.to_box || r.level_dbfs < kLoud) continue;
    if (utterances.empty() || r.at - utterances.back().second > 400ms) utterances.push_back({r.at, r.at});
    utterances.back().second = r.at;
  }
  for (const auto& [start, end] : utterances) {
    for (const auto& r : log) {
      if (r.to_box || r.at <= end || r.level_dbfs < kLoud) continue;
      if (r.at - end < 10s) ms.push_back(ms_between(end, r.at));
      break;
    }
  }
  std::printf(
      "mouth-to-ear added by the box (last loud RTP packet of the caller's utterance into the box -> first "
      "loud RTP packet out of it; stand-in latencies 0), %zu of %d turns: p50 %.0f ms, p95 %.0f ms, max %.0f "
      "ms\n",
      ms.size(), o.turns, percentile(ms, 0.5), percentile(ms, 0.95), percentile(ms, 1.0));
}

// PSS of osvid idle and with `calls` live calls (sipp placing them at once, the caller's words, then
// silence; the agent answers and waits).
struct MemSample {
  int live = 0;
  long pss0 = 0, rss0 = 0, pss1 = 0, rss1 = 0;
  osvi::bench::SmapsBreakdown idle, busy;
};

MemSample memory_sample(int calls) {
  MemSample r;
  osvi::test::TempDir dir;
  auto m = model(dir, "hello", "Noted.");
  Box box(dir, m->base(),
          R"("registrar":"127.0.0.1:9","register_expires_s":0,"max_calls":)" + std::to_string(calls));
  if (!box.ready()) {
    std::fprintf(stderr, "osvid did not start:\n%s\n", box.daemon().stderr_text().c_str());
    return r;
  }
  std::this_thread::sleep_for(1s);
  const pid_t pid = box.daemon().pid();
  r.pss0 = smaps_kb(pid, "Pss:");
  r.rss0 = smaps_kb(pid, "Rss:");
  r.idle = osvi::bench::read_smaps_breakdown(pid);
  osvi::test::write_speech_ulaw(dir.file("speech.ulaw"), "hello", 1000, 30000);
  osvi::test::Sipp sipp(
      dir.path(),
      {"127.0.0.1:" + std::to_string(box.sip_port()), "-sf", osvi::test::sip_scenario("uac_speech.xml"), "-s",
       "201", "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", std::to_string(osvi::test::free_udp_port_pair()),
       "-mp", std::to_string(box.media_base(4 * calls)), "-m", std::to_string(calls), "-l",
       std::to_string(calls), "-r", std::to_string(calls)});
  const auto until = SteadyClock::now() + 20s;
  while (SteadyClock::now() < until && (r.live = box.live_calls()) < calls)
    std::this_thread::sleep_for(100ms);
  std::this_thread::sleep_for(4s);  // greetings said, the caller's words heard and answered
  r.live = box.live_calls();
  r.pss1 = smaps_kb(pid, "Pss:");
  r.rss1 = smaps_kb(pid, "Rss:");
  r.busy = osvi::bench::read_smaps_breakdown(pid);
  sipp.stop();
  std::printf(
      "memory: idle PSS %ld kB (RSS %ld kB); %d live SIP calls PSS %ld kB (RSS %ld kB): %.0f kB PSS per "
      "call\n",
      r.pss0, r.rss0, r.live, r.pss1, r.rss1,
      r.live > 0 ? static_cast<double>(r.pss1 - r.pss0) / r.live : 0.0);
  osvi::bench::print_smaps_delta("memory", r.idle, r.busy, r.live);
  return r;
}

// The first call pays one-time costs (libraries' pages, curl/OpenSSL, allocator arenas): a 1-call run beside
// the N-call run separates them, as calls_bench does for sim lines.
void memory_per_call(const Options& o) {
  const MemSample one = memory_sample(1);
  const MemSample many = memory_sample(o.calls);
  const int extra = many.live - one.live;
  if (one.live != 1 || extra <= 0) {
    std::printf("memory: marginal not measured (%d and %d calls live)\n", one.live, many.live);
    return;
  }
  const double marginal = static_cast<double>((many.pss1 - many.pss0) - (one.pss1 - one.pss0)) / extra;
  osvi::bench::print_smaps_delta("marginal", one.busy - one.idle, many.busy - many.idle, extra);
  // PSS splits shared library pages among the processes mapping them, so it moves with whatever else runs on
  // the box; RSS does not, and is what the target is judged on (as calls_bench does).
  const double marginal_rss = static_cast<double>((many.rss1 - many.rss0) - (one.rss1 - one.rss0)) / extra;
  std::printf(
      "memory: marginal per live SIP call (calls 2..%d): %.0f kB RSS, %.0f kB PSS; target <= 512 kB: %s\n",
      many.live, marginal_rss, marginal, marginal_rss <= 512 ? "met" : "MISSED");
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string only;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--registrations")
      o.registrations = std::atoi(argv[i + 1]);
    else if (k == "--turns")
      o.turns = std::atoi(argv[i + 1]);
    else if (k == "--calls")
      o.calls = std::atoi(argv[i + 1]);
    else if (k == "--only")
      only = argv[i + 1];
    else {
      std::fprintf(stderr,
                   "usage: sip_bench [--registrations N] [--turns N] [--calls N] [--only reg|m2e|mem]\n");
      return 2;
    }
  }
  if (only.empty() || only == "reg") registration_to_ready(o);
  if (only.empty() || only == "m2e") mouth_to_ear(o);
  if (only.empty() || only == "mem") memory_per_call(o);
  return 0;
}
