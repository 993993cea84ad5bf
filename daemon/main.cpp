// osvid entry point: command line, --check-config, then the App.
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "osvi/daemon/app.hpp"
#include "osvi/daemon/config.hpp"
#include "osvi/version.hpp"

namespace {

void usage(FILE* out) {
  std::fputs(
      "usage: osvid [options]\n"
      "  -c, --config FILE        read the configuration from FILE (default: the embedded defaults)\n"
      "      --state-dir DIR      override state_dir (database, API token, recordings)\n"
      "      --listen HOST:PORT   override api.listen\n"
      "      --check-config FILE  validate FILE and exit 0 (valid) or 1 (each problem printed)\n"
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
  osvi::daemon::AppOptions options;
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
  osvi::daemon::App app(std::move(options));
  return app.run();
}
