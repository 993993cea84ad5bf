// Idle memory of osvid (shipped configuration, MQTT off and on) beside baresip and mosquitto, in one run.
//
// Usage: idle_footprint_bench [--idle-s N] [--libs] [--osvid PATH]
// Starts mosquitto on a loopback port, baresip with the tests' minimal config (sip_peers.hpp), osvid with the
// shipped rootfs/etc/osvi/osvid.json (a temp state folder, a free API port), and osvid with the same file and
// MQTT enabled against that mosquitto. Each osvid is measured once /v1/health answers and it has then been
// idle N seconds (default 3): VmRSS, RssAnon, RssFile from /proc/<pid>/status, Pss from smaps_rollup, and the
// shared objects it maps. --libs adds per-mapping Rss/Pss (from /proc/<pid>/smaps) for each process. --osvid
// measures another osvid binary (e.g. a build of an earlier commit) in place of this build's.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "mosquitto_broker.hpp"
#include "osvi/net/json.hpp"
#include "sip_peers.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;

struct Footprint {
  long vm_rss = -1, rss_anon = -1, rss_file = -1, pss = -1, pss_anon = -1, threads = -1;
  std::vector<std::string> libs;                             // mapped shared objects, basename, sorted
  std::map<std::string, std::pair<long, long>> per_mapping;  // name → (Rss, Pss) kB
};

long field_kb(const std::string& text, const std::string& key) {
  const size_t at = text.find("\n" + key);
  const size_t p = at == std::string::npos ? (text.rfind(key, 0) == 0 ? 0 : std::string::npos) : at + 1;
  if (p == std::string::npos) return -1;
  return std::strtol(text.c_str() + p + key.size(), nullptr, 10);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string base_name(const std::string& path) {
  const size_t s = path.rfind('/');
  return s == std::string::npos ? path : path.substr(s + 1);
}

Footprint measure(pid_t pid) {
  Footprint f;
  const std::string proc = "/proc/" + std::to_string(pid);
  const std::string status = slurp(proc + "/status");
  f.vm_rss = field_kb(status, "VmRSS:");
  f.rss_anon = field_kb(status, "RssAnon:");
  f.rss_file = field_kb(status, "RssFile:");
  f.threads = field_kb(status, "Threads:");
  const std::string rollup = slurp(proc + "/smaps_rollup");
  f.pss = field_kb(rollup, "Pss:");
  f.pss_anon = field_kb(rollup, "Pss_Anon:");
  std::ifstream smaps(proc + "/smaps");
  std::string line, current;
  std::set<std::string> libs;
  while (std::getline(smaps, line)) {
    if (line.empty()) continue;
    const bool header = std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') < 17 &&
                        line.find(':') > line.find(' ');
    if (header) {
      std::istringstream ls(line);
      std::string range, perms, off, dev, inode, path;
      ls >> range >> perms >> off >> dev >> inode;
      std::getline(ls, path);
      path.erase(0, path.find_first_not_of(' '));
      current = path.empty() ? "[anon]" : base_name(path);
      if (path.find(".so") != std::string::npos) libs.insert(base_name(path));
      continue;
    }
    if (line.rfind("Rss:", 0) == 0)
      f.per_mapping[current].first += std::strtol(line.c_str() + 4, nullptr, 10);
    if (line.rfind("Pss:", 0) == 0)
      f.per_mapping[current].second += std::strtol(line.c_str() + 4, nullptr, 10);
  }
  f.libs.assign(libs.begin(), libs.end());
  return f;
}

double mb(long kb) {
  return static_cast<double>(kb) / 1024.0;
}

void print_row(const char* name, const Footprint& f) {
  std::printf("%-22s %8.1f %8.1f %8.1f %8.1f %5ld %5zu\n", name, mb(f.vm_rss), mb(f.rss_anon), mb(f.rss_file),
              mb(f.pss), f.threads, f.libs.size());
}

void print_mappings(const char* name, const Footprint& f) {
  std::vector<std::pair<std::string, std::pair<long, long>>> rows(f.per_mapping.begin(), f.per_mapping.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  std::printf("\n%s: per mapping (kB)\n%8s %8s  %s\n", name, "Rss", "Pss", "mapping");
  for (const auto& [m, v] : rows) {
    if (v.first == 0) continue;
    std::printf("%8ld %8ld  %s\n", v.first, v.second, m.c_str());
  }
}

// The shipped file with the folders and ports of this run, and MQTT as asked.
std::string shipped_config(const std::string& state, int api_port, int mqtt_port) {
  const std::string text =
      osvi::test::read_file(std::string(OSVI_SOURCE_DIR) + "/rootfs/etc/osvi/osvid.json");
  osvi::net::JsonPtr root(cJSON_Parse(text.c_str()));
  if (!root) {
    std::fprintf(stderr, "cannot parse the shipped osvid.json\n");
    std::exit(1);
  }
  cJSON_ReplaceItemInObject(root.get(), "state_dir", cJSON_CreateString(state.c_str()));
  cJSON* api = cJSON_GetObjectItem(root.get(), "api");
  const std::string listen = "127.0.0.1:" + std::to_string(api_port);
  cJSON_ReplaceItemInObject(api, "listen", cJSON_CreateString(listen.c_str()));
  cJSON* mqtt = cJSON_GetObjectItem(root.get(), "mqtt");
  cJSON_ReplaceItemInObject(mqtt, "enabled", cJSON_CreateBool(mqtt_port > 0));
  if (mqtt_port > 0) cJSON_ReplaceItemInObject(mqtt, "port", cJSON_CreateNumber(mqtt_port));
  char* out = cJSON_Print(root.get());
  std::string s(out);
  cJSON_free(out);
  return s;
}

bool wait_health(int port, const std::string& token_file) {
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < until) {
    std::ifstream in(token_file);
    std::string token;
    std::getline(in, token);
    const auto r =
        osvi::test::http_request("GET", "http://127.0.0.1:" + std::to_string(port) + "/v1/health", token);
    if (r.status == 200) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

Footprint run_osvid(const std::string& label, int mqtt_port, int idle_s, const std::string& binary) {
  osvi::test::TempDir dir;
  const int port = osvi::test::free_loopback_port();
  osvi::test::write_file(dir.file("osvid.json"), shipped_config(dir.file("state"), port, mqtt_port));
  osvi::test::DaemonProcess d(dir.path(), {"--config", dir.file("osvid.json")}, {}, binary);
  if (!d.wait_notify("READY=1", 20s) || !wait_health(port, dir.file("state/api-token"))) {
    std::fprintf(stderr, "%s: osvid did not come up\n%s", label.c_str(), d.stderr_text().c_str());
    std::exit(1);
  }
  std::this_thread::sleep_for(std::chrono::seconds(idle_s));
  Footprint f = measure(d.pid());
  d.signal(SIGTERM);
  d.wait_exit(5s);
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  int idle_s = 3;
  bool libs = false;
  std::string osvid = OSVID_PATH;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--idle-s") && i + 1 < argc) {
      idle_s = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--libs")) {
      libs = true;
    } else if (!std::strcmp(argv[i], "--osvid") && i + 1 < argc) {
      osvid = argv[++i];
    } else {
      std::fprintf(stderr, "usage: idle_footprint_bench [--idle-s N] [--libs] [--osvid PATH]\n");
      return 2;
    }
  }
  osvi::test::TempDir dir;
  osvi::test::MosquittoBroker broker(dir.path(), osvi::test::free_loopback_port());
  if (!broker.started()) {
    std::fprintf(stderr, "mosquitto did not start\n");
    return 1;
  }
  osvi::test::BaresipOptions bopt;
  osvi::test::TempDir baresip_dir;
  osvi::test::Baresip baresip(baresip_dir.path(), bopt);
  if (!baresip.start()) {
    std::fprintf(stderr, "baresip did not start: %s\n", baresip.error().c_str());
    return 1;
  }
  const Footprint off = run_osvid("osvid (MQTT off)", 0, idle_s, osvid);
  const Footprint on = run_osvid("osvid (MQTT on)", broker.port(), idle_s, osvid);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const Footprint bs = measure(baresip.pid());
  const Footprint mq = measure(broker.pid());

  std::printf("%s\nidle %d s after /v1/health; MB (1024 kB)\n", osvid.c_str(), idle_s);
  std::printf("%-22s %8s %8s %8s %8s %5s %5s\n", "process", "VmRSS", "RssAnon", "RssFile", "PSS", "thr",
              "libs");
  print_row("osvid (shipped)", off);
  print_row("osvid (MQTT on)", on);
  print_row("baresip", bs);
  print_row("mosquitto", mq);
  auto list = [](const char* name, const Footprint& f) {
    std::printf("\n%s maps %zu shared objects:", name, f.libs.size());
    for (const auto& l : f.libs) std::printf(" %s", l.c_str());
    std::printf("\n");
  };
  list("osvid (shipped)", off);
  list("osvid (MQTT on)", on);
  if (libs) {
    print_mappings("osvid (shipped)", off);
    print_mappings("osvid (MQTT on)", on);
    print_mappings("baresip", bs);
    print_mappings("mosquitto", mq);
  }
  return 0;
}
