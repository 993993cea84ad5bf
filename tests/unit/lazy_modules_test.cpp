// Lazily opened libraries (issue 18): not mapped until used, and a missing one refuses the key that needs it.
// Its own binary on purpose: each library is opened once per process, so the "missing" case must come first.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <string>
#include <utility>

#include "osvi/audio/echo.hpp"
#include "osvi/audio/preprocessor.hpp"
#include "osvi/base/secret.hpp"
#include "osvi/config/config.hpp"
#include "osvi/hal/audio_stream.hpp"
#include "osvi/knowledge/knowledge_service.hpp"
#include "osvi/net/digest.hpp"
#include "osvi/net/websocket.hpp"
#include "osvi/webhooks/signature.hpp"

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

// libcrypto is opened by the first digest (net/digest.hpp); the first load() decides, so a missing soname
// asked for first stands for a box without the library. Every user then reports an error value, never a crash
// or an empty signature (an empty HMAC would have matched an empty `sig` of a recording link).
TEST(LazyModules, AMissingCryptoLibraryIsAnErrorValueForEveryUser) {
  namespace digest = osvi::net::digest;
  const osvi::Status loaded = digest::load("libosvi-missing-crypto.so.3");
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code, -ELIBACC);
  EXPECT_NE(loaded.error().message.find("libosvi-missing-crypto.so.3"), std::string::npos)
      << loaded.error().message;
  EXPECT_FALSE(digest::load());  // the first call decided
  auto sha = digest::sha256("abc");
  ASSERT_FALSE(sha);
  EXPECT_EQ(sha.error().code, -ELIBACC);
  auto accept = osvi::net::ws::accept_key("dGhlIHNhbXBsZSBub25jZQ==");
  ASSERT_FALSE(accept);
  EXPECT_EQ(accept.error().code, -ELIBACC);
  auto link = osvi::daemon::hmac_sha256_hex("key", "message");
  ASSERT_FALSE(link);
  EXPECT_NE(link.error().message.find("cryptography library is not available"), std::string::npos)
      << link.error().message;
  auto signature = osvi::daemon::webhooks::sign("key", "msg_1", 1, "{}");
  ASSERT_FALSE(signature);
  EXPECT_EQ(signature.error().code, -ELIBACC);
  auto document = osvi::daemon::knowledge::sha256_hex("text");
  ASSERT_FALSE(document);
  EXPECT_EQ(document.error().code, -ELIBACC);
}

// alsa-lib is opened by the first audio stream (hal/audio_stream.hpp); the configuration check only probes
// it. Declared last: once the missing soname has decided, every line with ALSA audio is refused in this
// process (ctest runs each test alone).
TEST(LazyModules, AMissingAlsaLibraryRefusesLinesWithAlsaAudioByKey) {
  // Present on this machine: the probe succeeds and leaves nothing mapped.
  ASSERT_TRUE(osvi::hal::check_alsa_library());
  EXPECT_FALSE(mapped("libasound"));
  const osvi::Status loaded = osvi::hal::load_alsa_library("libosvi-missing-asound.so.2");
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code, -ELIBACC);
  EXPECT_NE(loaded.error().message.find("libosvi-missing-asound.so.2"), std::string::npos)
      << loaded.error().message;
  // A sim line's audio is an ALSA PCM; an EC25's too (by vendor, or by a PCM name in audio_device).
  for (const auto& [json, key] : std::initializer_list<std::pair<const char*, const char*>>{
           {R"({"lines":[{"id":"sim0","type":"sim"}]})", "lines[0].type"},
           {R"({"lines":[{"id":"m0","type":"at","device":"/dev/x","vendor":"quectel_ec25"}]})",
            "lines[0].vendor"},
           {R"({"lines":[{"id":"m0","type":"at","device":"/dev/x","audio_device":"hw:1"}]})",
            "lines[0].audio_device"}}) {
    auto cfg = osvi::daemon::parse_config(json);
    ASSERT_FALSE(cfg) << json;
    EXPECT_NE(cfg.error().message.find(key), std::string::npos) << cfg.error().message;
    EXPECT_NE(cfg.error().message.find("ALSA library is not available"), std::string::npos)
        << cfg.error().message;
  }
  // Lines without ALSA audio (a PCM tty, a disabled line) do not need it.
  for (const char* json :
       {R"({"lines":[{"id":"m0","type":"at","device":"/dev/x","vendor":"simcom_sim7600"}]})",
        R"({"lines":[{"id":"m0","type":"at","device":"/dev/x","audio_device":"/dev/pcm"}]})",
        R"({"lines":[{"id":"sim0","type":"sim","enabled":false}]})"}) {
    auto cfg = osvi::daemon::parse_config(json);
    EXPECT_TRUE(cfg) << json << ": " << cfg.error().message;
  }
  // The stream itself says so as a value.
  osvi::hal::AudioStreamOptions o;
  o.capture_device = o.playback_device = "null";
  auto stream = osvi::hal::AudioStream::create(o);
  ASSERT_FALSE(stream);
  EXPECT_EQ(stream.error().code, -ELIBACC);
  EXPECT_FALSE(mapped("libasound"));
}

}  // namespace
