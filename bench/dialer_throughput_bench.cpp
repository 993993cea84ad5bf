// Dialler throughput: a campaign on N simulated lines with a zero-latency model server, contacts completed
// per minute against the bound the call length sets (lines x 60 s / (ring + talk)), and the idle gap the
// dialler leaves on a line between one call's end and the next call's start.
//
// usage: dialer_throughput_bench [contacts=200] [talk_ms=3000] [lines=8]
#include <signal.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "model_server_process.hpp"
#include "osvi/net/json.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using osvi::net::JsonPtr;

namespace {

constexpr const char* kToken = "BenchToken012345";
constexpr int kRingMs = 200;

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5))];
}

}  // namespace

int main(int argc, char** argv) {
  const int contacts = argc > 1 ? std::atoi(argv[1]) : 200;
  const int talk_ms = argc > 2 ? std::atoi(argv[2]) : 3000;
  const int lines = argc > 3 ? std::atoi(argv[3]) : 8;
  if (contacts < 1 || contacts > 10000 || talk_ms < 100 || lines < 1 || lines > 64) {
    std::fprintf(stderr, "usage: %s [contacts 1..10000] [talk_ms >= 100] [lines 1..64]\n", argv[0]);
    return 2;
  }
  osvi::test::TempDir dir;
  // Zero latency: the scripted server answers at once (no "delay_ms" in the scenario).
  osvi::test::write_file(dir.file("scenario.json"), R"({"stt":{"transcripts":["hello"]},
                         "llm":{"rules":[{"match":"hello","reply":"Thank you, goodbye."}]}})");
  osvi::test::ModelServer model(dir.file("scenario.json"), dir.file("model.log"));
  if (model.base().empty()) {
    std::fprintf(stderr, "model server: %s\n", model.error().c_str());
    return 1;
  }
  const int port = osvi::test::free_loopback_port();
  const std::string url = model.base() + "/v1";
  std::string cfg =
      R"({"state_dir":")" + dir.file("state") + R"(","api":{"listen":"127.0.0.1:)" + std::to_string(port) +
      R"(","tokens":[")" + kToken +
      R"("]},"audio":{"rt_priority":0},"compliance":{"calling_hours":"00:00-24:00",)" +
      R"("max_attempts_per_day":3},"agents":[{"agent_uuid":"agent_b","name":"B","active":true,)" +
      R"("greeting":{"text":"Hello."},"stt":{"base_url":")" + url + R"("},"llm":{"base_url":")" + url +
      R"("},"voice":{"base_url":")" + url + R"("}}],)" +
      R"("campaigns":[{"id":1,"name":"Throughput","agents":["agent_b"],)" +
      R"("max_concurrent_calls_per_agent":)" + std::to_string(lines) + R"(}],"lines":[)";
  for (int i = 0; i < lines; ++i) {
    cfg += std::string(i ? "," : "") + R"({"id":"sim)" + std::to_string(i) +
           R"(","type":"sim","sim":{"outcome":"answer","rings":1,"ring_interval_ms":)" +
           std::to_string(kRingMs) + R"(,"steps":[{"say":"Hello?"},{"silence_ms":)" +
           std::to_string(talk_ms) + R"(},{"hangup":true}]}})";
  }
  cfg += "]}";
  osvi::test::write_file(dir.file("osvid.json"), cfg);
  osvi::test::DaemonProcess d(dir.path(), {"--config", dir.file("osvid.json")});
  if (!d.wait_notify("READY=1", 30s)) {
    std::fprintf(stderr, "osvid did not start:\n%s\n", d.stderr_text().c_str());
    return 1;
  }
  const std::string base = "http://127.0.0.1:" + std::to_string(port);

  JsonPtr body(cJSON_CreateObject());
  cJSON_AddStringToObject(body.get(), "agent_uuid", "agent_b");
  cJSON_AddBoolToObject(body.get(), "enqueue", true);
  cJSON* list = cJSON_AddArrayToObject(body.get(), "contacts");
  for (int i = 0; i < contacts; ++i) {
    char phone[32];
    std::snprintf(phone, sizeof phone, "98765%05d", i);
    cJSON* c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "phone", phone);
    cJSON_AddItemToArray(list, c);
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto up = osvi::test::http_request("POST", base + "/v1/campaigns/1/contacts", kToken,
                                     osvi::net::json_print(body.get()));
  if (up.status != 200) {
    std::fprintf(stderr, "upload: %ld %s\n", up.status, up.body.c_str());
    return 1;
  }
  // Done when nothing is queued or dialling any more.
  const auto deadline = t0 + std::chrono::seconds(30 + 3 * contacts * (talk_ms + 2000) / 1000 / lines);
  for (;;) {
    auto r = osvi::test::http_request("GET", base + "/v1/campaigns/1/status", kToken);
    JsonPtr j = osvi::test::parse_json(r.body);
    const cJSON* uploads = cJSON_GetObjectItem(cJSON_GetObjectItem(j.get(), "data"), "uploads");
    int left = r.status == 200 ? 0 : -1;
    const cJSON* u = nullptr;
    cJSON_ArrayForEach(u, uploads) {
      const cJSON* q = nullptr;
      cJSON_ArrayForEach(q, cJSON_GetObjectItem(u, "queues")) {
        left += static_cast<int>(cJSON_GetNumberValue(cJSON_GetObjectItem(q, "total_queued")));
      }
    }
    if (left == 0) break;
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "timed out with %d contacts left\n%s\n", left, d.stderr_text().c_str());
      return 1;
    }
    std::this_thread::sleep_for(50ms);
  }
  const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  d.signal(SIGTERM);
  (void)d.wait_exit(15s);

  // Per line, the gaps between one call's end and the next call's creation: what the dialler leaves idle.
  sqlite3* db = nullptr;
  if (sqlite3_open_v2((dir.file("state") + "/osvi.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) !=
      SQLITE_OK)
    return 1;
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db,
                     "SELECT line, created_at, ended_at, status FROM calls WHERE campaign_id = 1 "
                     "ORDER BY line, created_at",
                     -1, &st, nullptr);
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> by_line;
  std::map<std::string, int> statuses;
  std::vector<double> held_ms;
  while (sqlite3_step(st) == SQLITE_ROW) {
    const auto* line = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    const int64_t created = sqlite3_column_int64(st, 1), ended = sqlite3_column_int64(st, 2);
    by_line[line ? line : "?"].emplace_back(created, ended);
    held_ms.push_back(static_cast<double>(ended - created));
    ++statuses[reinterpret_cast<const char*>(sqlite3_column_text(st, 3))];
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  std::vector<double> gaps;
  for (const auto& [line, calls] : by_line) {
    for (size_t i = 1; i < calls.size(); ++i)
      gaps.push_back(static_cast<double>(calls[i].first - calls[i - 1].second));
  }
  const double per_min = contacts / wall_s * 60.0;
  const double held_mean = held_ms.empty() ? 0 : [&] {
    double sum = 0;
    for (double h : held_ms) sum += h;
    return sum / static_cast<double>(held_ms.size());
  }();
  // The bound: every line busy all the time with calls of the length they really had (dial, ring, the
  // callee's "Hello?", the agent's greeting, the talk, the hang-up), no gap between them.
  const double bound = held_mean > 0 ? lines * 60000.0 / held_mean : 0;
  std::printf("dialer throughput: %d contacts, %d lines; each call: ring %d ms, \"Hello?\", %d ms, hang-up\n",
              contacts, lines, kRingMs, talk_ms);
  std::printf("  wall %.1f s: %.1f contacts/min; bound from the call length %.1f/min (%.0f %%)\n", wall_s,
              per_min, bound, bound > 0 ? 100.0 * per_min / bound : 0);
  std::printf("  a call holds its line %.0f ms on average (created -> ended)\n", held_mean);
  std::printf("  line idle between calls: p50 %.0f ms, p95 %.0f ms, max %.0f ms (%zu gaps)\n",
              percentile(gaps, 0.5), percentile(gaps, 0.95), percentile(gaps, 1.0), gaps.size());
  std::printf("  outcomes:");
  for (const auto& [s, n] : statuses) std::printf(" %s=%d", s.c_str(), n);
  std::printf("\n");
  return 0;
}
