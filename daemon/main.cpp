// osvid entry point: command line, --check-config, then the App.
#include <malloc.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "osvi/app/app.hpp"
#include "osvi/app/demo.hpp"
#include "osvi/base/files.hpp"
#include "osvi/config/config.hpp"
#include "osvi/net/json.hpp"
#include "osvi/version.hpp"

namespace {

void usage(FILE* out) {
  std::fputs(
      "usage: osvid [options]\n"
      "  -c, --config FILE        read the configuration from FILE (default: the embedded defaults)\n"
      "      --state-dir DIR      override state_dir (database, API token, recordings)\n"
      "      --listen HOST:PORT   override api.listen\n"
      "      --check-config FILE  validate FILE and exit 0 (valid) or 1 (each problem printed)\n"
      "      --demo               one simulated call with the shipped stand-in model server, then its\n"
      "                           transcript, record and recording; exits when the call ends\n"
      "      --print-default-config  print the embedded default configuration and exit\n"
      "      --version            print the version and exit\n"
      "  -h, --help               this text\n"
      "Signals: SIGHUP reloads the configuration (validated first), SIGTERM/SIGINT stop.\n",
      out);
}

int check_config(const char* path) {
  osvi::daemon::AppOptions o;
  o.config_path = path;
  auto cfg = osvi::daemon::load_configuration(o);
  if (!cfg) {
    std::fprintf(stderr, "%s\n", cfg.error().message.c_str());
    return 1;
  }
  std::printf("%s: configuration OK (%zu agents, hash %s)\n", path, cfg->agents.size(),
              cfg->source_hash.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Request bodies up to api.max_body_bytes (4 MiB) come and go. glibc's default mmap threshold is dynamic:
  // freeing the first such buffer raises it (and the trim threshold with it) to that size, so every later big
  // buffer lands in the heap, which then never shrinks — RSS ratcheted from 15 to 56 MB over a conformance
  // run. Fixed thresholds keep big buffers in their own mappings, returned on free, and let the heap's top go
  // back to the system (bench/api_soak_bench, bench/README.md).
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
  osvi::daemon::AppOptions options;
  bool demo = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "osvid: %s needs a value\n", name);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "-c" || a == "--config") {
      options.config_path = value("--config");
    } else if (a == "--state-dir") {
      options.state_dir = value("--state-dir");
    } else if (a == "--listen") {
      options.listen = value("--listen");
    } else if (a == "--demo") {
      demo = true;
    } else if (a == "--check-config") {
      return check_config(value("--check-config"));
    } else if (a == "--print-default-config") {
      std::string_view text = osvi::daemon::default_config_json();
      std::fwrite(text.data(), 1, text.size(), stdout);
      return 0;
    } else if (a == "--version") {
      std::printf("osvid %s\n", osvi::kVersion);
      return 0;
    } else if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else {
      std::fprintf(stderr, "osvid: unknown argument '%s'\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  // The demo's stand-in model server lives exactly as long as the App (declared first, destroyed last).
  std::unique_ptr<osvi::daemon::ModelServerProcess> model;
  if (demo) {
    const std::string state = options.state_dir.value_or("./state");
    options.state_dir = state;
    std::error_code ec;
    std::filesystem::create_directories(state, ec);
    osvi::net::JsonPtr doc = osvi::net::json_parse(osvi::daemon::demo_json(), nullptr);
    const cJSON* scenario = doc ? cJSON_GetObjectItemCaseSensitive(doc.get(), "model_server") : nullptr;
    const cJSON* line = doc ? cJSON_GetObjectItemCaseSensitive(doc.get(), "line") : nullptr;
    if (!scenario || !line) {
      std::fprintf(stderr, "osvid: the embedded demo description is broken\n");
      return 1;
    }
    const std::string scenario_path = state + "/demo-scenario.json";
    if (osvi::Status s =
            osvi::daemon::write_file_atomically(scenario_path, osvi::net::json_print(scenario), 0644);
        !s) {
      std::fprintf(stderr, "osvid --demo: %s\n", s.error().message.c_str());
      return 1;
    }
    auto m = osvi::daemon::ModelServerProcess::start(osvi::daemon::model_server_path(), scenario_path,
                                                     state + "/demo-model-server.log");
    if (!m) {
      std::fprintf(stderr, "osvid --demo: %s\n", m.error().message.c_str());
      return 1;
    }
    model = std::move(*m);
    std::fprintf(stderr, "osvid --demo: stand-in model server at %s; a simulated caller rings in 1 s\n",
                 model->url().c_str());
    options.demo = osvi::daemon::DemoSetup{model->url(), osvi::net::json_print(line)};
  }
  osvi::daemon::App app(std::move(options));
  return app.run();
}
