// Calls end to end: turn latencies, barge-in stop time (sample-accurate, simulated line) and RSS per live
// call.
//
// Forks osvi-model-server (zero latency) and osvid with `type:"sim"` lines, then reads the party log (sample
// positions as the remote party heard them), the transcripts' latency figures and /proc/<pid>/status.
// The dead-air fault matrix: one question per call with one upstream stage slowed or hung (the model server's
// faults), the longest silence the party heard before agent audio.
// The greeting gap (abandonment guard): outbound calls answered with "Hello?", the record's greeting_gap_ms
// and the party's own measure of it, with answering-machine detection on (the default) and off.
// Usage: calls_bench [turns=55] [barge_ins=12] [--only latency|barge|memory|deadair|greeting]
//        [--greeting-calls N (20)] [--frame-ms 10|20 (20)] [--buffer-periods 2|3 (3)] [--no-tts-cache]
// --no-tts-cache: the latency run's model server renders every reply (its scenario's tts.cache false); the
// run's replies are all one sentence, so with the cache only the first turn renders.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "model_server_process.hpp"
#include "osvi/net/json.hpp"
#include "party_log.hpp"
#include "smaps_breakdown.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using osvi::net::JsonPtr;
using osvi::test::DaemonProcess;
using osvi::test::http_request;

namespace {

constexpr const char* kToken = "BenchToken012345";  // the API wants exactly 16 characters
constexpr int kRate = 16000;
// AudioStream writes (buffer_periods - 1) periods of silence before its first capture period, so the playback
// sample written together with capture sample c is c + 640 (docs/lines.md, 3 x 20 ms at 16 kHz). Set from
// --frame-ms / --buffer-periods (the audio settings the run gives osvid).
int g_frame_ms = 20;
int g_buffer_periods = 3;
bool g_tts_cache = true;  // --no-tts-cache
int64_t kCushion = 2 * kRate / 50;

// Thrown, not exit(): the destructors must kill osvid and the model server (an orphan would keep a pipe
// open).
struct Failure {
  std::string why;
};

[[noreturn]] void die(const std::string& why) {
  throw Failure{why};
}

JsonPtr parse(const std::string& s) {
  return osvi::test::parse_json(s);
}
std::string str(const cJSON* o, const char* k) {
  return osvi::test::json_str(o, k);
}

double num(const cJSON* o, const char* k, double dflt = -1) {
  const cJSON* v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

using osvi::test::ModelServer;

// Profiling hooks (bench only, off unless set): CALLS_BENCH_OSVID runs another osvid binary (heaptrack needs
// one linked with the shared libstdc++); CALLS_BENCH_HEAPTRACK=<file> preloads heaptrack into osvid and
// writes its raw trace there (`heaptrack_interpret < file | gzip > x.gz`, then heaptrack_print). The pid
// stays osvid's.
std::string osvid_binary() {
  const char* b = std::getenv("CALLS_BENCH_OSVID");
  return b && *b ? b : OSVID_PATH;
}
// CALLS_BENCH_MALLOC_INFO=<prefix>: after each memory sample, gdb calls malloc_info() in osvid and writes its
// XML (per arena: free chunks by size, the top chunk, mmapped) to <prefix>-<sample>.xml.
void malloc_info_dump(pid_t pid, const char* sample) {
  const char* prefix = std::getenv("CALLS_BENCH_MALLOC_INFO");
  if (!prefix || !*prefix) return;
  const std::string out = std::string(prefix) + "-" + sample + ".xml";
  const std::string cmd = "gdb -q -batch -p " + std::to_string(pid) + " -ex 'set $f = (void*)fopen(\"" + out +
                          "\", \"w\")' -ex 'call (int)malloc_info(0, $f)' -ex 'call (int)fclose($f)' "
                          ">/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "calls_bench: %s failed\n", cmd.c_str());
}
std::map<std::string, std::string> profiling_env() {
  const char* raw = std::getenv("CALLS_BENCH_HEAPTRACK");
  if (!raw || !*raw) return {};
  return {{"LD_PRELOAD", "/usr/lib/heaptrack/libheaptrack_preload.so"}, {"DUMP_HEAPTRACK_OUTPUT", raw}};
}

// One osvid + model server in a fresh folder. agent: extra members of the agent; lines: the "lines" array.
class Rig {
 public:
  Rig(const std::string& scenario, const std::string& agent, const std::string& lines_json) {
    osvi::test::write_file(dir_.file("scenario.json"), scenario);
    model_ = std::make_unique<ModelServer>(dir_.file("scenario.json"), dir_.file("model.log"));
    if (model_->base().empty()) die(model_->error());
    const std::string url = model_->base() + "/v1";
    port_ = osvi::test::free_loopback_port();
    const std::string cfg =
        R"({"state_dir":")" + dir_.file("state") + R"(","api":{"listen":"127.0.0.1:)" +
        std::to_string(port_) + R"(","tokens":[")" + kToken + R"("]},"audio":{"rt_priority":0,"frame_ms":)" +
        std::to_string(g_frame_ms) + R"(,"buffer_periods":)" + std::to_string(g_buffer_periods) +
        R"(},"agents":[{"agent_uuid":"agent_a","name":"A",)" + R"("active":true,"stt":{"base_url":")" + url +
        R"("},"llm":{"base_url":")" + url + R"("},"voice":{"base_url":")" + url + R"("},)" + agent +
        R"(}],"lines":)" + lines_json + "}";
    osvi::test::write_file(dir_.file("osvid.json"), cfg);
    daemon_ = std::make_unique<DaemonProcess>(dir_.path(),
                                              std::vector<std::string>{"--config", dir_.file("osvid.json")},
                                              profiling_env(), osvid_binary());
    if (!daemon_->wait_notify("READY=1", 10s)) die("osvid not READY:\n" + daemon_->stderr_text());
  }
  std::string file(const std::string& name) const { return dir_.file(name); }
  // The model server's control API (faults, scenario).
  void control(const std::string& path, const std::string& body) const {
    auto r = http_request("POST", model_->base() + path, "", body);
    if (r.status != 200) die("model server " + path + ": " + std::to_string(r.status) + " " + r.body);
  }
  pid_t pid() const { return daemon_->pid(); }
  std::string stderr_text() const { return daemon_->stderr_text(); }

  JsonPtr get(const std::string& path) const {
    auto r = http_request("GET", "http://127.0.0.1:" + std::to_string(port_) + path, kToken);
    return parse(r.body);
  }
  osvi::test::HttpResult post(const std::string& path, const std::string& body) const {
    return http_request("POST", "http://127.0.0.1:" + std::to_string(port_) + path, kToken, body);
  }
  // Calls by status: (in progress, finished).
  std::pair<int, int> count_calls() const {
    JsonPtr j = get("/v1/calls");
    int live = 0, done = 0;
    const cJSON* c = nullptr;
    const cJSON* data = j ? cJSON_GetObjectItem(j.get(), "data") : nullptr;
    cJSON_ArrayForEach(c, data) {
      (str(c, "status") == "in_progress" ? live : done)++;
    }
    return {live, done};
  }
  std::vector<std::string> call_ids() const {
    std::vector<std::string> out;
    JsonPtr j = get("/v1/calls");
    const cJSON* c = nullptr;
    const cJSON* data = j ? cJSON_GetObjectItem(j.get(), "data") : nullptr;
    cJSON_ArrayForEach(c, data) out.push_back(str(c, "call_id"));
    return out;
  }

 private:
  osvi::test::TempDir dir_;
  std::unique_ptr<ModelServer> model_;
  std::unique_ptr<DaemonProcess> daemon_;
  int port_ = 0;
};

using osvi::bench::PartyEvent;
std::vector<PartyEvent> read_party_log(const std::string& path) {
  std::vector<PartyEvent> out;
  std::string bad;
  if (!osvi::bench::read_party_log(path, kRate, &out, &bad)) die("party log rate is not 16000: " + bad);
  return out;
}

double ms_of(int64_t samples) {
  return static_cast<double>(samples) * 1000.0 / kRate;
}

struct Summary {
  size_t n = 0;
  double p50 = 0, p95 = 0, max = 0;
};

// Nearest-rank percentiles: with 55 values p95 is the 53rd, an actual measured turn.
Summary summarize(std::vector<double> v) {
  Summary s;
  s.n = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto rank = [&](double p) {
    const size_t r = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
    return v[std::max<size_t>(r, 1) - 1];
  };
  s.p50 = rank(0.50);
  s.p95 = rank(0.95);
  s.max = v.back();
  return s;
}

void row(const char* name, const Summary& s, const char* target, double bound, bool use_p95 = true) {
  const double fig = use_p95 ? s.p95 : s.max;
  std::printf("| %-58s | %3zu | %7.1f | %7.1f | %7.1f | %-16s | %s |\n", name, s.n, s.p50, s.p95, s.max,
              target, bound < 0 ? "-" : (fig <= bound ? "met" : "MISSED"));
}

void table_head() {
  std::printf("| %-58s | %3s | %7s | %7s | %7s | %-16s | %s |\n", "figure (ms)", "n", "p50", "p95", "max",
              "target", "verdict");
  std::printf("|%s|-----|---------|---------|---------|------------------|---------|\n",
              std::string(60, '-').c_str());
}

// Short, varied caller sentences (different lengths and phonemes, so the endpointer sees varied endings).
const std::vector<std::string> kSentences = {
    "I would like to check my balance",   "Can you tell me when the shop opens",
    "My order has not arrived yet",       "Please send me the invoice again",
    "Is there a branch near the station", "I want to change my address",
    "What documents do I need to bring",  "Could you repeat the last part",
    "The card was blocked this morning",  "How much does the service cost",
    "I am calling about a refund",        "Thank you, that helps a lot",
};

std::string json_quote(const std::string& s) {
  return "\"" + s + "\"";
}

// ---------------------------------------------------------------------------------------------------------
// 1. Turn latency: one inbound call, `turns` caller sentences each answered by a one-sentence reply.
bool latency_run(int turns) {
  std::string transcripts, steps;
  for (int i = 0; i < turns; ++i) {
    const std::string& s = kSentences[static_cast<size_t>(i) % kSentences.size()];
    if (i) transcripts += ',';
    transcripts += json_quote(s);
    // ms 0: no silence padding, so the next after_agent step waits for exactly this turn's reply.
    steps += R"({"say":")" + s + R"(","ms":0,"after_agent":true},)";
  }
  steps += R"({"hangup":true,"after_agent":true})";
  const std::string scenario = R"({"stt":{"transcripts":[)" + transcripts +
                               R"(]},"llm":{"default_reply":"Noted, thank you."},)" + R"("tts":{"cache":)" +
                               (g_tts_cache ? "true" : "false") + "}}";
  // min = max endpointing: the agent waits exactly 0.5 s of silence, so the fixed delay can be subtracted.
  const std::string agent =
      R"("greeting":{"text":"Hello."},"call":{"min_endpointing_s":0.5,"max_endpointing_s":0.5,)"
      R"("max_duration_s":3600,"silence":{"timeout_s":120,"max_prompts":0}})";
  osvi::test::TempDir tmp;
  const std::string plog = tmp.file("party.log");
  Rig rig(scenario, agent,
          R"([{"id":"sim0","type":"sim","agent_uuid":"agent_a","sim":{"incoming_after_s":1,"party_log":")" +
              plog + R"(","steps":[)" + steps + "]}}]");
  std::printf(
      "latency run: %d turns on one call (espeak speaks in real time: ~%d s); model server TTS cache %s\n",
      turns, turns * 4, g_tts_cache ? "on" : "off");
  std::fflush(stdout);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60 + turns * 20);
  while (true) {
    auto [live, done] = rig.count_calls();
    if (done >= 1 && live == 0) break;
    if (std::chrono::steady_clock::now() > deadline) die("latency call did not end\n" + rig.stderr_text());
    std::this_thread::sleep_for(500ms);
  }
  const auto ids = rig.call_ids();
  if (ids.size() != 1) die("expected one call");

  // The transcript's agent turns with an STT stage, in order: one per caller sentence.
  struct Lat {
    double endpointing, stt_sent, first_sample, v2v, stt, llm, tts;
  };
  std::vector<Lat> lat;
  JsonPtr t = rig.get("/v1/call/" + ids[0] + "/transcript");
  const cJSON* e = nullptr;
  const cJSON* turns_json =
      t ? cJSON_GetObjectItem(cJSON_GetObjectItem(t.get(), "data"), "transcript") : nullptr;
  cJSON_ArrayForEach(e, turns_json) {
    const cJSON* l = cJSON_GetObjectItem(e, "latency");
    if (str(e, "role") != "agent" || !l || num(l, "stt_sent_ms") < 0) continue;
    lat.push_back({num(l, "endpointing_ms"), num(l, "stt_sent_ms"), num(l, "first_sample_ms"),
                   num(l, "voice_to_voice_ms"), num(l, "stt_ms"), num(l, "llm_first_token_ms"),
                   num(l, "tts_first_byte_ms")});
  }

  // Party side: each say's end of speech (capture clock) → the next agent_start (playback clock → capture).
  std::vector<double> v2v_party, v2v_heard;
  const auto ev = read_party_log(plog);
  int64_t step_end = -1;
  int says = 0;
  for (const PartyEvent& p : ev) {
    if (p.event == "step_end") step_end = p.sample, ++says;
    if (p.event == "agent_start" && step_end >= 0) {
      v2v_party.push_back(ms_of(p.sample - kCushion - step_end));
      v2v_heard.push_back(ms_of(p.sample - step_end));
      step_end = -1;
    }
  }
  const bool matched = v2v_party.size() == lat.size();
  std::printf("caller sentences %d, agent replies with latency %zu, party-side pairs %zu%s\n", says,
              lat.size(), v2v_party.size(),
              matched ? "" : "  ** MISMATCH: endpointing 500 ms assumed for all turns **");
  std::vector<double> stt_sent, first_sample, v2v_minus, v2v_heard_minus, daemon_v2v_minus, endpointing;
  for (size_t i = 0; i < v2v_party.size(); ++i) {
    const double ep = matched && lat[i].endpointing >= 0 ? lat[i].endpointing : 500.0;
    v2v_minus.push_back(v2v_party[i] - ep);
    v2v_heard_minus.push_back(v2v_heard[i] - ep);
  }
  std::vector<double> stt, llm, tts;  // where the daemon's figure goes: the model services' answers
  for (const Lat& l : lat) {
    if (l.stt >= 0) stt.push_back(l.stt);
    if (l.llm >= 0) llm.push_back(l.llm);
    if (l.tts >= 0) tts.push_back(l.tts);
    stt_sent.push_back(l.stt_sent);
    if (l.first_sample >= 0) first_sample.push_back(l.first_sample);
    if (l.v2v >= 0 && l.endpointing >= 0) daemon_v2v_minus.push_back(l.v2v - l.endpointing);
    endpointing.push_back(l.endpointing);
  }
  table_head();
  row("end of speech decision -> STT request sent (daemon)", summarize(stt_sent), "p95 <= 15", 15);
  row("first TTS byte -> first sample written (daemon)", summarize(first_sample), "p95 <= 25", 25);
  row("voice-to-voice - endpointing (party log, sample clock)", summarize(v2v_minus), "p95 <= 60", 60);
  row("  cross-check: daemon's voice_to_voice_ms - endpointing", summarize(daemon_v2v_minus), "-", -1);
  // The playback position itself: on a card, playback sample p sounds when capture sample p is taken, so the
  // cushion queued ahead of the agent's first sample is heard as delay (the row above subtracts it).
  row("  as heard: cushion not subtracted (playback pos - capture pos)", summarize(v2v_heard_minus), "-", -1);
  row("  endpointing_ms as configured (must be 500)", summarize(endpointing), "-", -1);
  row("  daemon: stt_ms (request -> transcript)", summarize(stt), "-", -1);
  row("  daemon: llm_first_token_ms", summarize(llm), "-", -1);
  row("  daemon: tts_first_byte_ms", summarize(tts), "-", -1);
  return summarize(stt_sent).p95 <= 15 && summarize(first_sample).p95 <= 25 && summarize(v2v_minus).p95 <= 60;
}

// ---------------------------------------------------------------------------------------------------------
// 2. Barge-in: `calls` outbound calls, each with one interruption ~1.5 s into a long reply.
//    One interruption per call on purpose: the 640-sample capture/playback offset is documented for a stream
//    whose playback was never dropped; stop_playback() drops the ALSA buffer and writes a new cushion, after
//    which the party's playback clock is no longer known to be 640 samples ahead.
bool barge_run(int calls) {
  // The first sentence alone lasts ~5 s, so the interruption lands inside one sentence (inter-word gaps only)
  // and the last loud frame the party hears is where playback was cut, not the end of a sentence.
  const std::string long_reply =
      "Our branch is open from nine in the morning until five in the evening on every weekday of the year. "
      "On Saturdays we open at ten and close at two. We are closed on Sundays and on public holidays.";
  const std::string scenario = R"({"stt":{"transcripts":["Tell me the opening hours","Stop, thank you"]},)"
                               R"("llm":{"rules":[{"match":"hours","reply":")" +
                               long_reply + R"("}],"default_reply":"Sure."}})";
  const std::string agent =
      R"("greeting":{"text":"Hello."},"call":{"min_interruption_s":0.3,"min_endpointing_s":0.5,)"
      R"("max_endpointing_s":0.5,"voicemail":{"detect":false},"max_duration_s":600})";
  // wait 2050 ms after the question's end = 500 ms endpointing + ~50 ms to the first sample + 1.5 s of reply.
  osvi::test::TempDir tmp;
  const std::string plog = tmp.file("party.log");
  Rig rig(scenario, agent,
          R"([{"id":"sim0","type":"sim","agent_uuid":"agent_a","sim":{"outcome":"answer","rings":1,)"
          R"("ring_interval_ms":200,"party_log":")" +
              plog +
              R"(","steps":[{"say":"Tell me the opening hours","ms":0,"after_agent":true},{"wait_ms":2050},)"
              R"({"say":"Stop, thank you","ms":0},{"hangup":true,"after_agent":true}]}}])");
  std::printf("\nbarge-in run: %d outbound calls, min_interruption_s 0.3\n", calls);
  std::fflush(stdout);
  for (int i = 0; i < calls; ++i) {
    const auto end = std::chrono::steady_clock::now() + 60s;
    while (true) {
      auto r =
          rig.post("/v1/call", R"({"agent_uuid":"agent_a","phone_number":"9876543210","country_code":"IN"})");
      if (r.status == 200) break;
      if (std::chrono::steady_clock::now() > end) die("POST /v1/call: " + std::to_string(r.status) + r.body);
      std::this_thread::sleep_for(300ms);
    }
    while (true) {
      auto [live, done] = rig.count_calls();
      if (done >= i + 1 && live == 0) break;
      if (std::chrono::steady_clock::now() > end) die("barge-in call did not end\n" + rig.stderr_text());
      std::this_thread::sleep_for(300ms);
    }
    // A pause between calls, as a campaign on a real line would leave. (The stall once blamed on calls placed
    // right after a hang-up was osvid's loop blocked sending STATUS= to this process's unread notify socket,
    // fixed in daemon/app/app.cpp.)
    std::this_thread::sleep_for(1500ms);
  }
  // Per call (steps count from 0): step 2 (the interrupting say) starts at the caller's speech onset; the
  // agent_stop that follows carries the end of the last loud 20 ms frame the party read (logged
  // agent_quiet_ms later, but its sample is the last loud one, so no quiet-time correction applies).
  std::vector<double> stop, into_reply;
  int missing = 0;
  const auto ev = read_party_log(plog);
  for (int c = 1; c <= calls; ++c) {
    int64_t onset = -1, reply_start = -1, stop_at = -1, step1_end = -1;
    for (const PartyEvent& p : ev) {
      if (p.call != c) continue;
      if (p.event == "step_end" && p.step == 0) step1_end = p.sample;
      if (p.event == "agent_start" && step1_end >= 0 && reply_start < 0) reply_start = p.sample - kCushion;
      if (p.event == "step_start" && p.step == 2) onset = p.sample;
      if (p.event == "agent_stop" && onset >= 0 && stop_at < 0) stop_at = p.sample - kCushion;
    }
    if (onset < 0 || stop_at < 0 || reply_start < 0 || stop_at < onset) {
      // Show what the party saw, so a script that went wrong can be told from a barge-in that did not happen.
      for (const PartyEvent& p : ev)
        if (p.call == c)
          std::fprintf(stderr, "  call %d: %s step %d sample %lld\n", c, p.event.c_str(), p.step,
                       static_cast<long long>(p.sample));
      ++missing;
      continue;
    }
    stop.push_back(ms_of(stop_at - onset));
    into_reply.push_back(ms_of(onset - reply_start));
  }
  if (missing) std::printf("** %d call(s) without a usable onset/agent_stop pair **\n", missing);
  table_head();
  row("speech onset -> playback stopped (last loud sample)", summarize(stop), "max <= 340", 340, false);
  row("  caller onset, measured from the reply's first sample", summarize(into_reply), "~1500", -1);
  return !stop.empty() && summarize(stop).max <= 340 && missing == 0;
}

// ---------------------------------------------------------------------------------------------------------
// 3. Dead air: per fault one outbound call; the party asks one question 1 s after connecting and stays
//    silent. Every silence it hears before agent audio starts, from the end of its question or of the last
//    agent audio (party log, one sample clock: agent positions − the cushion), must be <= dead_air_ms + one
//    period. The model server can slow or hang a stage before its first byte and slow the LLM's stream; it
//    cannot hang a stream midway (the unit tier's matrix, call_test DeadAirTest, covers those).
bool deadair_run() {
  const std::string reply = "Your table for two is booked for tonight. We look forward to seeing you.";
  auto scenario = [&](int chunk_delay_ms) {
    return R"({"stt":{"transcripts":["Book a table for two"]},"llm":{"default_reply":")" + reply +
           R"(","chunk_delay_ms":)" + std::to_string(chunk_delay_ms) + "}}";
  };
  // No greeting (the fault hits the answer), no silence prompt within the call.
  const std::string agent =
      R"("greeting":{"text":""},"call":{"min_endpointing_s":0.5,"max_endpointing_s":0.5,)"
      R"("voicemail":{"detect":false},"max_duration_s":600,"silence":{"timeout_s":120,"max_prompts":0}})";
  osvi::test::TempDir tmp;
  const std::string plog = tmp.file("party.log");
  Rig rig(scenario(0), agent,
          R"([{"id":"sim0","type":"sim","agent_uuid":"agent_a","sim":{"outcome":"answer","rings":1,)"
          R"("ring_interval_ms":200,"party_log":")" +
              plog +
              R"(","steps":[{"wait_ms":1000},{"say":"Book a table for two","ms":0},{"silence_ms":16000},)"
              R"({"hangup":true}]}}])");
  struct Fault {
    const char* name;
    const char* stage;
    const char* fault;  // model server fault ("" = the scenario's chunk delay)
    int delay_ms;
    bool hung;
  };
  const Fault faults[] = {
      {"none", "llm", "none", 0, false},
      {"stt slowed 3 s", "stt", "delay", 3000, false},
      {"stt hung", "stt", "hang", 0, true},
      {"llm first token slowed 4 s", "llm", "delay", 4000, false},
      {"llm first token hung", "llm", "hang", 0, true},
      {"llm mid-stream slowed (600 ms per word)", "llm", "", 600, false},
      {"tts first byte slowed 3.1 s", "tts", "delay", 3100, false},
      {"tts first byte hung", "tts", "hang", 0, true},
  };
  const double bound_ms = 2500 + 20;  // calls.dead_air_ms (default) + one period
  std::printf("\ndead-air run: one call per fault, dead_air_ms 2500, bound %.0f ms (party's sample clock)\n",
              bound_ms);
  std::printf("| %-40s | %-13s | %-8s | %-32s | %s |\n", "fault", "worst gap ms", "outcome",
              "agent turns (kind)", "verdict");
  std::printf("|%s|---------------|----------|----------------------------------|---------|\n",
              std::string(42, '-').c_str());
  std::fflush(stdout);
  bool ok = true;
  double worst_all = 0;
  int call = 0;
  for (const Fault& f : faults) {
    ++call;
    if (*f.fault)
      rig.control("/control/faults", std::string(R"({"stage":")") + f.stage + R"(","fault":")" + f.fault +
                                         R"(","delay_ms":)" + std::to_string(f.delay_ms) + R"(,"count":0})");
    else
      rig.control("/control/scenario", scenario(f.delay_ms));
    const auto end = std::chrono::steady_clock::now() + 60s;
    while (true) {
      auto r =
          rig.post("/v1/call", R"({"agent_uuid":"agent_a","phone_number":"9876543210","country_code":"IN"})");
      if (r.status == 200) break;
      if (std::chrono::steady_clock::now() > end) die("POST /v1/call: " + std::to_string(r.status) + r.body);
      std::this_thread::sleep_for(300ms);
    }
    while (true) {
      auto [live, done] = rig.count_calls();
      if (done >= call && live == 0) break;
      if (std::chrono::steady_clock::now() > end) die("dead-air call did not end\n" + rig.stderr_text());
      std::this_thread::sleep_for(300ms);
    }
    if (*f.fault)
      rig.control("/control/faults", std::string(R"({"stage":")") + f.stage + R"(","fault":"none"})");
    else
      rig.control("/control/scenario", scenario(0));
    // The party's view: silences before each agent_start, from the question's end or the last agent_stop.
    int64_t last_sound = -1;
    double worst = 0;
    int starts = 0;
    for (const PartyEvent& p : read_party_log(plog)) {
      if (p.call != call) continue;
      if (p.event == "step_end" && p.step == 1) last_sound = p.sample;
      if (p.event == "agent_start" && last_sound >= 0) {
        ++starts;
        worst = std::max(worst, ms_of(p.sample - kCushion - last_sound));
      }
      if (p.event == "agent_stop" && last_sound >= 0) last_sound = std::max(last_sound, p.sample - kCushion);
    }
    // What the record says: the outcome and the agent turns with their kinds.
    const auto ids = rig.call_ids();  // newest first
    std::string kinds, outcome = "?";
    if (!ids.empty()) {
      JsonPtr rec = rig.get("/v1/call/" + ids.front());
      const cJSON* d = rec ? cJSON_GetObjectItem(rec.get(), "data") : nullptr;
      outcome = cJSON_IsTrue(cJSON_GetObjectItem(d, "callback_required")) ? "fallback" : "answered";
      JsonPtr t = rig.get("/v1/call/" + ids.front() + "/transcript");
      const cJSON* turns =
          t ? cJSON_GetObjectItem(cJSON_GetObjectItem(t.get(), "data"), "transcript") : nullptr;
      const cJSON* e = nullptr;
      cJSON_ArrayForEach(e, turns) {
        if (str(e, "role") != "agent") continue;
        const std::string k = str(e, "kind");
        kinds += (kinds.empty() ? "" : ",") + (k.empty() ? std::string("reply") : k);
      }
    }
    const bool expected = f.hung ? outcome == "fallback" : outcome == "answered";
    const bool met = starts > 0 && worst <= bound_ms && expected;
    ok &= met;
    worst_all = std::max(worst_all, worst);
    std::printf("| %-40s | %13.0f | %-8s | %-32s | %s |\n", f.name, worst, outcome.c_str(), kinds.c_str(),
                met ? "met" : "MISSED");
    std::fflush(stdout);
    std::this_thread::sleep_for(1000ms);
  }
  std::printf("worst gap over the matrix: %.0f ms (bound %.0f ms): %s\n", worst_all, bound_ms,
              worst_all <= bound_ms ? "met" : "MISSED");
  return ok;
}

// ---------------------------------------------------------------------------------------------------------
// 4. Greeting gap: `calls` outbound calls per variant on one sim line; the callee answers with "Hello?" (as
//    people do, 0.4 s after picking up) and hangs up once the agent has greeted. The record's greeting_gap_ms
//    (the daemon's own clock: the end of the hello on the capture clock → the first agent sample written)
//    against the party's (end of the hello → the first loud agent frame, playback position − the cushion: one
//    sample clock). The party's figure starts at the first *loud* frame, so it runs a little later than the
//    first sample.
bool greeting_run(int calls) {
  const std::string scenario = R"({"stt":{"transcripts":[]},"llm":{"default_reply":"Fine."}})";
  struct Variant {
    const char* name;
    const char* voicemail;
  };
  const Variant variants[] = {{"AMD on (default)", R"({"detect":true})"}, {"AMD off", R"({"detect":false})"}};
  bool ok = true;
  std::printf("\ngreeting gap: %d outbound calls per variant, callee answers \"Hello?\" (espeak, ~0.5 s)\n",
              calls);
  table_head();
  for (const Variant& v : variants) {
    const std::string agent =
        R"("greeting":{"text":"Hello, this is Asha from the bank. Is this a good time?"},)"
        R"("call":{"voicemail":)" +
        std::string(v.voicemail) + R"(,"max_duration_s":60})";
    osvi::test::TempDir tmp;
    const std::string plog = tmp.file("party.log");
    Rig rig(
        scenario, agent,
        R"([{"id":"sim0","type":"sim","agent_uuid":"agent_a","sim":{"outcome":"answer","rings":1,)"
        R"("ring_interval_ms":200,"party_log":")" +
            plog +
            R"(","steps":[{"wait_ms":400},{"say":"Hello?","ms":0},{"hangup":true,"after_agent":true}]}}])");
    std::vector<std::string> ids;
    for (int i = 0; i < calls; ++i) {
      const auto end = std::chrono::steady_clock::now() + 60s;
      while (true) {
        auto r = rig.post("/v1/call",
                          R"({"agent_uuid":"agent_a","phone_number":"9876543210","country_code":"IN"})");
        if (r.status == 200) {
          JsonPtr j = parse(r.body);
          ids.push_back(str(cJSON_GetObjectItem(j.get(), "data"), "call_id"));
          break;
        }
        if (std::chrono::steady_clock::now() > end)
          die("POST /v1/call: " + std::to_string(r.status) + r.body);
        std::this_thread::sleep_for(300ms);
      }
      while (true) {
        auto [live, done] = rig.count_calls();
        if (done >= i + 1 && live == 0) break;
        if (std::chrono::steady_clock::now() > end) die("greeting call did not end\n" + rig.stderr_text());
        std::this_thread::sleep_for(200ms);
      }
      std::this_thread::sleep_for(500ms);
    }
    std::vector<double> record, party;
    int missing = 0, over = 0;
    for (const std::string& id : ids) {
      JsonPtr rec = rig.get("/v1/call/" + id);
      const double g = num(rec ? cJSON_GetObjectItem(rec.get(), "data") : nullptr, "greeting_gap_ms");
      if (g < 0) {
        ++missing;
        continue;
      }
      record.push_back(g);
      if (g > 2000) ++over;
    }
    const auto ev = read_party_log(plog);
    for (int c = 1; c <= calls; ++c) {
      int64_t hello_end = -1, first = -1;
      for (const PartyEvent& p : ev) {
        if (p.call != c) continue;
        if (p.event == "step_end" && p.step == 1) hello_end = p.sample;
        if (p.event == "agent_start" && first < 0) first = p.sample - kCushion;
      }
      if (hello_end >= 0 && first >= 0) party.push_back(ms_of(std::max<int64_t>(first - hello_end, 0)));
    }
    const std::string name = std::string(v.name) + ": greeting_gap_ms (record)";
    row(name.c_str(), summarize(record), "max <= 2000", 2000, false);
    const std::string pname = std::string("  ") + v.name + ": hello end -> agent_start (party)";
    row(pname.c_str(), summarize(party), "-", -1);
    std::printf("  %s: %d of %zu calls over 2000 ms, %d without a figure\n", v.name, over, record.size(),
                missing);
    std::fflush(stdout);
    ok &= missing == 0 && over == 0;
  }
  return ok;
}

// ---------------------------------------------------------------------------------------------------------
// 5. Memory per live call: VmRSS with N idle sim lines, then with N calls live.
struct Rss {
  long rss = 0, anon = 0, file = 0;  // kB
};

Rss read_rss(pid_t pid) {
  Rss r;
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string k;
  long v = 0;
  while (f >> k) {
    if (k == "VmRSS:" && f >> v) r.rss = v;
    if (k == "RssAnon:" && f >> v) r.anon = v;
    if (k == "RssFile:" && f >> v) r.file = v;
  }
  return r;
}

struct MemResult {
  Rss idle, one, live;
  osvi::bench::SmapsBreakdown idle_maps, one_maps, live_maps;
};

// One osvid, N sim lines: line 0 rings 4 s after start, the others 18 s after, so one process gives idle, one
// call live (10 s in) and N calls live (10 s after the last connects). The marginal cost of calls 2..N is
// then free of what the first call pays once (libraries' pages, curl/OpenSSL, allocator arenas) and of the
// run-to-run spread of those one-time costs between two processes.
MemResult memory_run(int n) {
  std::string lines = "[";
  for (int i = 0; i < n; ++i) {
    lines +=
        std::string(i ? "," : "") + R"({"id":"sim)" + std::to_string(i) +
        R"(","type":"sim","agent_uuid":"agent_a","sim":{"incoming_after_s":)" + (i == 0 ? "4" : "18") +
        R"(,"steps":[{"say":"Hello, I am calling about my order","after_agent":true},{"silence_ms":60000}]}})";
  }
  lines += "]";
  Rig rig(
      R"({"stt":{"transcripts":["Hello, I am calling about my order"]},)"
      R"("llm":{"default_reply":"Sure, let me look at your order."}})",
      R"("greeting":{"text":"Hello, how can I help?"},"call":{"silence":{"timeout_s":120,"max_prompts":0}})",
      lines);
  // Idle: lines up, no call yet.
  std::this_thread::sleep_for(2s);
  if (rig.count_calls().first != 0) die("a call started before the idle sample");
  MemResult m;
  m.idle = read_rss(rig.pid());
  m.idle_maps = osvi::bench::read_smaps_breakdown(rig.pid());
  auto wait_live = [&](int want) {
    const auto end = std::chrono::steady_clock::now() + 20s;
    while (rig.count_calls().first < want) {
      if (std::chrono::steady_clock::now() > end) die("not all calls connected\n" + rig.stderr_text());
      std::this_thread::sleep_for(100ms);
    }
  };
  // 10 s into each sample's calls: greeting played, the caller's sentence transcribed and answered, silence.
  wait_live(1);
  std::this_thread::sleep_for(10s);
  if (rig.count_calls().first != 1) die("the first call ended, or others started, before its sample");
  m.one = read_rss(rig.pid());
  m.one_maps = osvi::bench::read_smaps_breakdown(rig.pid());
  malloc_info_dump(rig.pid(), "one");
  // CALLS_BENCH_MEM_STOP=one: end here (osvid is SIGKILLed with its one call live, e.g. for a heap profile of
  // that moment); the live sample then repeats the one-call one.
  if (const char* stop = std::getenv("CALLS_BENCH_MEM_STOP"); stop && std::string(stop) == "one") {
    m.live = m.one;
    m.live_maps = m.one_maps;
    return m;
  }
  wait_live(n);
  std::this_thread::sleep_for(10s);
  if (rig.count_calls().first != n) die("a call ended before the live sample");
  m.live = read_rss(rig.pid());
  m.live_maps = osvi::bench::read_smaps_breakdown(rig.pid());
  malloc_info_dump(rig.pid(), "live");
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  int turns = 55, barges = 12, greeting_calls = 20;
  std::string only;
  std::vector<int> pos;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--only" && i + 1 < argc)
      only = argv[++i];
    else if (a == "--frame-ms" && i + 1 < argc)
      g_frame_ms = std::atoi(argv[++i]) == 10 ? 10 : 20;
    else if (a == "--buffer-periods" && i + 1 < argc)
      g_buffer_periods = std::clamp(std::atoi(argv[++i]), 2, 3);
    else if (a == "--no-tts-cache")
      g_tts_cache = false;
    else if (a == "--greeting-calls" && i + 1 < argc)
      greeting_calls = std::max(1, std::atoi(argv[++i]));
    else
      pos.push_back(std::atoi(argv[i]));
  }
  kCushion = static_cast<int64_t>(g_buffer_periods - 1) * kRate * g_frame_ms / 1000;
  if (pos.size() > 0 && pos[0] > 0) turns = pos[0];
  if (pos.size() > 1 && pos[1] > 0) barges = pos[1];
  ::signal(SIGPIPE, SIG_IGN);
  bool ok = true;
  try {
    if (only.empty() || only == "latency") ok &= latency_run(turns);
    if (only.empty() || only == "barge") ok &= barge_run(barges);
    if (only.empty() || only == "deadair") ok &= deadair_run();
    if (only.empty() || only == "greeting") ok &= greeting_run(greeting_calls);
    if (only.empty() || only == "memory") {
      std::printf(
          "\nmemory: VmRSS of osvid, idle lines (2 s after READY), one call live, then 8 (10 s after "
          "connect)\n");
      std::printf(
          "| lines N | idle VmRSS kB | live VmRSS kB | per call kB | per call RssAnon kB | per call RssFile "
          "kB "
          "|\n");
      std::printf(
          "|---------|---------------|---------------|-------------|---------------------|-------------------"
          "--"
          "|\n");
      const int n = 8;
      const MemResult m = memory_run(n);
      std::printf("| %7d | %13ld | %13ld | %11ld | %19ld | %19ld |\n", 1, m.idle.rss, m.one.rss,
                  m.one.rss - m.idle.rss, m.one.anon - m.idle.anon, m.one.file - m.idle.file);
      std::printf("| %7d | %13ld | %13ld | %11.0f | %19.0f | %19.0f |\n", n, m.idle.rss, m.live.rss,
                  static_cast<double>(m.live.rss - m.idle.rss) / n,
                  static_cast<double>(m.live.anon - m.idle.anon) / n,
                  static_cast<double>(m.live.file - m.idle.file) / n);
      osvi::bench::print_smaps_delta("first call", m.idle_maps, m.one_maps, 1);
      osvi::bench::print_smaps_delta("marginal (calls 2..8)", m.one_maps, m.live_maps, n - 1);
      const double marginal = static_cast<double>(m.live.rss - m.one.rss) / (n - 1);
      const double marginal_pss = static_cast<double>(m.live_maps.pss - m.one_maps.pss) / (n - 1);
      std::printf(
          "marginal per live call (calls 2..%d): %.0f kB RSS, %.0f kB PSS; target <= 512 kB per live call: "
          "%s\n",
          n, marginal, marginal_pss, marginal <= 512 ? "met" : "MISSED");
      ok &= marginal <= 512;
    }
  } catch (const Failure& f) {
    std::fprintf(stderr, "calls_bench: %s\n", f.why.c_str());
    return 1;
  }
  return ok ? 0 : 3;
}
