// CSV contact uploads through the real API: forks osvid and streams generated CSV files of growing size into
// a campaign, reporting time, rows/s and osvid's peak RSS (VmHWM) after each, to show that memory does not
// grow with the file.
//
//   csv_upload_bench [rows ...] [--osvid PATH]   (default rows: 1000 10000 100000)
//
// Each file goes to its own campaign (no duplicates between files), chunked from a generator (the client
// holds one piece at a time too), with a header, a person_name and two variable columns, one row in 1,000
// invalid.
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

constexpr const char* kToken = "CsvBenchToken012";

struct Mem {
  long rss_kb = 0, hwm_kb = 0;
  double rss_mb() const { return static_cast<double>(rss_kb) / 1024.0; }
  double hwm_mb() const { return static_cast<double>(hwm_kb) / 1024.0; }
};

Mem mem_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  Mem m;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) m.rss_kb = std::atol(line.c_str() + 6);
    if (line.rfind("VmHWM:", 0) == 0) m.hwm_kb = std::atol(line.c_str() + 6);
  }
  return m;
}

// The CSV, made as curl asks for it.
struct Generator {
  long rows = 0;
  long next = -1;  // -1: the header
  long base = 0;
  std::string pending;
  size_t at = 0;
  uint64_t bytes = 0;

  static size_t read(char* out, size_t size, size_t n, void* user) {
    auto* g = static_cast<Generator*>(user);
    const size_t want = size * n;
    size_t done = 0;
    while (done < want) {
      if (g->at == g->pending.size()) {
        if (g->next >= g->rows) break;
        g->pending.clear();
        g->at = 0;
        for (int k = 0; k < 64 && g->next < g->rows; ++k, ++g->next) {
          if (g->next < 0) {
            g->pending += "phone,person_name,plan,city\r\n";
            continue;
          }
          const long i = g->next;
          if (i % 1000 == 999) {
            g->pending += "12345,\"Bad \"\"number\"\"\",Pro,Pune\r\n";  // invalid: reported with its line
            continue;
          }
          g->pending += std::to_string(9810000000L + g->base + i) + ",\"Person " + std::to_string(i) +
                        ", Jr\"," + (i % 2 ? "Pro" : "Basic") + ",City" + std::to_string(i % 97) + "\r\n";
        }
      }
      const size_t take = std::min(want - done, g->pending.size() - g->at);
      std::memcpy(out + done, g->pending.data() + g->at, take);
      g->at += take;
      done += take;
    }
    g->bytes += done;
    return done;
  }
};

size_t sink(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

struct Upload {
  long status = 0;
  double seconds = 0;
  uint64_t bytes = 0;
  std::string body;
};

Upload upload(int port, int campaign, long rows, long base) {
  Generator g;
  g.rows = rows;
  g.base = base;
  Upload u;
  CURL* c = curl_easy_init();
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/v1/campaigns/" +
                          std::to_string(campaign) + "/contacts.csv?agent_uuid=agent_a&file_name=bench.csv";
  curl_slist* h = nullptr;
  h = curl_slist_append(h, (std::string("API-Token: ") + kToken).c_str());
  h = curl_slist_append(h, "Content-Type: text/csv");
  h = curl_slist_append(h, "Transfer-Encoding: chunked");
  h = curl_slist_append(h, "Expect:");
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_READFUNCTION, &Generator::read);
  curl_easy_setopt(c, CURLOPT_READDATA, &g);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &sink);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &u.body);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 600L);
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  const auto t0 = std::chrono::steady_clock::now();
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &u.status);
  u.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  u.bytes = g.bytes;
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  return u;
}

long json_int(const std::string& body, const char* key) {
  auto j = osvi::test::parse_json(body);
  const cJSON* d = j ? cJSON_GetObjectItemCaseSensitive(j.get(), "data") : nullptr;
  const cJSON* v = d ? cJSON_GetObjectItemCaseSensitive(d, key) : nullptr;
  return cJSON_IsNumber(v) ? static_cast<long>(v->valuedouble) : -1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<long> sizes;
  std::string osvid = OSVID_PATH;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--osvid") == 0 && i + 1 < argc)
      osvid = argv[++i];
    else
      sizes.push_back(std::atol(argv[i]));
  }
  if (sizes.empty()) sizes = {1000, 10000, 100000};
  curl_global_init(CURL_GLOBAL_DEFAULT);
  osvi::test::TempDir dir;
  const int port = osvi::test::free_loopback_port();
  const std::string url = "http://127.0.0.1:9/v1";  // never reached: nothing is enqueued
  std::string campaigns;
  for (size_t i = 0; i < sizes.size(); ++i)
    campaigns += (i ? "," : "") + std::string(R"({"id":)") + std::to_string(i + 1) + R"(,"name":"bench )" +
                 std::to_string(i + 1) + R"(","agents":["agent_a"]})";
  osvi::test::write_file(
      dir.file("osvid.json"),
      R"({"state_dir":")" + dir.file("state") + R"(","api":{"listen":"127.0.0.1:)" + std::to_string(port) +
          R"(","tokens":[")" + kToken + R"("]},"agents":[{"agent_uuid":"agent_a","name":"A","active":true,)" +
          R"("stt":{"base_url":")" + url + R"("},"llm":{"base_url":")" + url + R"("},"voice":{"base_url":")" +
          url + R"("}}],"campaigns":[)" + campaigns + "]}");
  const std::string config = dir.file("osvid.json"), log = dir.file("osvid.log");
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    ::execl(osvid.c_str(), osvid.c_str(), "--config", config.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  bool up = false;
  for (int i = 0; i < 150 && !up; ++i) {
    std::this_thread::sleep_for(100ms);
    auto r =
        osvi::test::http_request("GET", "http://127.0.0.1:" + std::to_string(port) + "/v1/health", kToken);
    up = r.status == 200;
  }
  if (!up) {
    std::fprintf(stderr, "%s did not start (log %s)\n", osvid.c_str(), log.c_str());
    ::kill(pid, SIGKILL);
    return 1;
  }
  // One tiny upload first, so libphonenumber's module and SQLite's caches are in before anything is measured.
  upload(port, 1, 10, 150000L);
  const Mem idle = mem_of(pid);
  std::printf("osvid after start and a 10-row warm-up: VmRSS %.1f MB, VmHWM %.1f MB\n\n", idle.rss_mb(),
              idle.hwm_mb());
  std::printf("%10s %10s %9s %12s %10s %9s %14s %12s\n", "rows", "MB sent", "seconds", "rows/s", "accepted",
              "invalid", "VmHWM (MB)", "dHWM (MB)");
  int failed = 0;
  long base = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const Upload u = upload(port, static_cast<int>(i + 1), sizes[i], base);
    base += sizes[i];
    const Mem m = mem_of(pid);
    if (u.status != 200) {
      std::fprintf(stderr, "upload of %ld rows: HTTP %ld %s\n", sizes[i], u.status,
                   u.body.substr(0, 300).c_str());
      ++failed;
      continue;
    }
    auto j = osvi::test::parse_json(u.body);
    const cJSON* d = j ? cJSON_GetObjectItemCaseSensitive(j.get(), "data") : nullptr;
    const int invalid = d ? cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(d, "invalid")) : -1;
    const auto rows = static_cast<double>(sizes[i]);
    std::printf("%10ld %10.2f %9.2f %12.0f %10ld %9d %14.1f %12.1f\n", sizes[i],
                static_cast<double>(u.bytes) / 1e6, u.seconds, rows / u.seconds,
                json_int(u.body, "contacts_accepted"), invalid, m.hwm_mb(), m.hwm_mb() - idle.hwm_mb());
  }
  ::kill(pid, SIGTERM);
  int st = 0;
  ::waitpid(pid, &st, 0);
  curl_global_cleanup();
  return failed ? 1 : 0;
}
