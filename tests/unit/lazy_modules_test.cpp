// Lazily opened libraries (issue 18): not mapped until used, and a missing one refuses the key that needs it.
// Its own binary on purpose: each library is opened once per process, so the "missing" case must come first.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "osvi/audio/echo.hpp"
#include "osvi/audio/preprocessor.hpp"
#include "osvi/config/config.hpp"

namespace {

bool mapped(const std::string& needle) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find(needle) != std::string::npos) return true;
  return false;
}

TEST(LazyModules, AMissingWebrtcModuleRefusesTheEchoBackendByName) {
  // The override is the only place tried (shared_library.hpp), so a wrong one fails like a missing install.
  ASSERT_EQ(setenv("OSVI_WEBRTC_MODULE", "/nonexistent/osvi-webrtc.so", 1), 0);
  EXPECT_FALSE(mapped("libwebrtc_audio_processing"));
  auto cfg = osvi::daemon::parse_config(R"({"audio":{"echo":{"backend":"webrtc"}}})");
  ASSERT_FALSE(cfg);
  EXPECT_NE(cfg.error().message.find("audio.echo.backend"), std::string::npos) << cfg.error().message;
  EXPECT_NE(cfg.error().message.find("/nonexistent/osvi-webrtc.so"), std::string::npos)
      << cfg.error().message;
  // The engine's own entry point says the same, as a value.
  osvi::audio::EchoOptions o;
  auto apm = osvi::audio::make_webrtc_apm(o, {});
  ASSERT_FALSE(apm);
  EXPECT_EQ(apm.error().code, -ELIBACC);
  EXPECT_FALSE(mapped("libwebrtc_audio_processing"));
}

TEST(LazyModules, AWebrtcVadIsOpenedWhenSelected) {
  auto cfg = osvi::daemon::parse_config(R"({"audio":{"vad":"webrtc"}})");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_TRUE(mapped("libwebrtc_audio_processing"));
}

}  // namespace
