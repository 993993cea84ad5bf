// The whole audio path through real alsa-lib: capture → LineChain → playback on file/null PCMs.
//
// The capture PCM reads a raw file holding DTMF digits and a spoken sentence; the loop side runs every
// captured frame (with its aligned playback reference) through the chain and queues the cleaned audio back
// to playback, like an agent that repeats the caller. The playback file must then hold that audio.
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "osvi/audio/line_chain.hpp"
#include "osvi/hal/audio_stream.hpp"
#include "test_support.hpp"
#include "wav.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int kRate = 16000;
constexpr size_t kFrame = 320;

TEST(AudioPath, CaptureThroughTheChainToPlayback) {
  osvi::test::TempDir dir;
  // The caller: half a second of silence, digits "42", a sentence, then silence for the endpointer.
  auto digits = osvi::audio::dtmf_render(kRate, "42");
  ASSERT_TRUE(digits);
  std::vector<int16_t> in(kRate / 2, 0);
  in.insert(in.end(), digits->begin(), digits->end());
  in.resize(in.size() + kRate / 2, 0);
  auto speech = osvi::test::espeak_speech("Please call me back tomorrow morning.");
  in.insert(in.end(), speech.begin(), speech.end());
  in.resize(in.size() + 3 * kRate, 0);
  in.resize(in.size() / kFrame * kFrame);
  osvi::test::write_file(dir.file("cap.in"),
                         std::string(reinterpret_cast<const char*>(in.data()), in.size() * 2));

  const std::string conf = "pcm.path_cap { type file; slave.pcm null; file \"" + dir.file("cap.out") +
                           "\"; format raw; infile \"" + dir.file("cap.in") + "\" }\n" +
                           "pcm.path_play { type file; slave.pcm null; file \"" + dir.file("play.out") +
                           "\"; format raw }\n";
  osvi::test::write_file(dir.file("test.conf"), conf);
  setenv("ALSA_CONFIG_PATH", ("/usr/share/alsa/alsa.conf:" + dir.file("test.conf")).c_str(), 1);

  osvi::hal::AudioStreamOptions o;
  o.capture_device = "path_cap";
  o.playback_device = "path_play";
  o.rate = kRate;
  o.pace = 1ms;  // these PCMs have no clock: 20x real time
  o.capture_ring_ms = 20000;
  auto stream = osvi::hal::AudioStream::create(o);
  ASSERT_TRUE(stream) << stream.error().message;
  osvi::audio::LineChainConfig cc;
  cc.format = {kRate, 20};
  auto chain = osvi::audio::LineChain::create(cc);
  ASSERT_TRUE(chain) << chain.error().message;
  ASSERT_TRUE((*stream)->start());

  std::string heard;
  int utterances = 0;
  size_t frames = 0;
  std::vector<int16_t> mic(kFrame), ref(kFrame);
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (frames < in.size() / kFrame && std::chrono::steady_clock::now() < deadline) {
    pollfd p{(*stream)->event_fd(), POLLIN, 0};
    poll(&p, 1, 5);
    osvi::hal::StreamEvent ev[8];
    while ((*stream)->drain_events(ev) > 0) {
    }
    // Past the end of its infile the file PCM keeps capturing silence: a loop that wakes late must not
    // count those frames as the file's.
    while (frames < in.size() / kFrame && (*stream)->read_frame(mic, ref)) {
      const auto& out = (*chain)->process_capture(mic, ref);
      ASSERT_EQ(out.clean.size(), kFrame);
      if (out.dtmf) heard += out.dtmf->digit;
      for (const auto& e : out.endpoints) utterances += e.kind == osvi::audio::EndpointKind::SpeechEnd;
      (*stream)->queue_playback(out.clean);
      ++frames;
    }
  }
  (*stream)->stop();
  EXPECT_EQ(frames, in.size() / kFrame) << "every captured frame went through the chain";
  EXPECT_EQ(heard, "42");
  EXPECT_GE(utterances, 1);

  // The played file holds the caller's sentence: its loudest second has real energy, and the total
  // played energy is close to the captured speech energy (the chain only cleans, it does not mute).
  const std::string bytes = osvi::test::read_file(dir.file("play.out"));
  std::vector<int16_t> played(bytes.size() / 2);
  std::memcpy(played.data(), bytes.data(), played.size() * 2);
  ASSERT_GT(played.size(), in.size() / 2);
  double e_in = 0, e_out = 0;
  for (int16_t s : speech) e_in += static_cast<double>(s) * s;
  for (int16_t s : played) e_out += static_cast<double>(s) * s;
  EXPECT_GT(e_out, 0.3 * e_in);
  EXPECT_EQ((*stream)->stats().xruns, 0u);
}

}  // namespace
