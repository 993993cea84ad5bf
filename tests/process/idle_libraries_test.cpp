// osvid with the shipped configuration maps none of the libraries it opens on demand (issue 18): libcurl,
// libmosquitto and its TLS stack, libre with libssl, WebRTC's APM, libcrypto (the first digest), alsa-lib
// (the first call's audio stream; the configuration check of the shipped sim line only probes it).
// bench/idle_footprint_bench measures the RSS.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <string>

#include "daemon_process.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;

TEST(IdleLibraries, TheShippedConfigurationMapsNoOnDemandLibrary) {
  osvi::test::TempDir dir;
  const int port = osvi::test::free_loopback_port();
  // No --config: the embedded default, which is rootfs/etc/osvi/osvid.json.
  osvi::test::DaemonProcess d(
      dir.path(), {"--state-dir", dir.file("state"), "--listen", "127.0.0.1:" + std::to_string(port)});
  ASSERT_TRUE(d.wait_notify("READY=1", 10s)) << d.stderr_text();
  std::ifstream in("/proc/" + std::to_string(d.pid()) + "/maps");
  std::string maps((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_NE(maps.find("libc.so"), std::string::npos);  // the read worked
  for (const char* lib : {"libcurl", "libmosquitto", "/libre.so", "libssl", "libcrypto", "libasound",
                          "libwebrtc_audio_processing", "osvi-webrtc.so", "osvi-phone.so", "osvi-speech.so"})
    EXPECT_EQ(maps.find(lib), std::string::npos) << lib << " is mapped at idle";
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait_exit(5s), 0) << d.stderr_text();
}

}  // namespace
