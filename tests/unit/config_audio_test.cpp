// The audio section: defaults, every rejection naming its key, and the mapping onto the engine's options.
#include <gtest/gtest.h>

#include "osvi/config/audio_settings.hpp"
#include "osvi/config/config.hpp"

namespace {

using namespace osvi::daemon;

std::string errors_of(const std::string& json) {
  auto r = parse_config(json);
  EXPECT_FALSE(r) << json;
  return r ? std::string() : r.error().message;
}

TEST(ConfigAudio, DefaultsAreTheDocumentedOnes) {
  auto cfg = parse_config("{}");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->audio, AudioConfig{});
  EXPECT_EQ(cfg->audio.rate, 16000);
  EXPECT_EQ(cfg->audio.echo_backend, "speex");
  EXPECT_EQ(cfg->audio.echo_tail_ms, 128);
  EXPECT_EQ(cfg->audio.opus_complexity, 5);
  auto shipped = parse_config(default_config_json());
  ASSERT_TRUE(shipped) << shipped.error().message;
}

TEST(ConfigAudio, AcceptsEveryKey) {
  auto cfg = parse_config(R"({"audio":{"rate":8000,"frame_ms":10,"buffer_periods":2,"rt_priority":0,
    "echo":{"backend":"webrtc","tail_ms":256},
    "preprocess":{"denoise":false,"noise_suppress_db":-30,"agc":true,"agc_level_dbfs":-20,
                  "echo_suppress_db":-50,"echo_suppress_active_db":-20},
    "vad":"webrtc","opus":{"complexity":3,"bitrate":16000},"dtmf":false,"call_progress_plan":"eu",
    "amd":{"decision_window_ms":2500,"initial_silence_ms":2000,"greeting_ms":1200,"after_greeting_silence_ms":700,
           "min_word_length_ms":120,"between_words_silence_ms":60,"max_words":4,"silence_threshold":300},
    "recording":{"enabled":false,"bitrate":24000,"complexity":3}}})");
  ASSERT_TRUE(cfg) << cfg.error().message;
  const AudioConfig& a = cfg->audio;
  EXPECT_EQ(a.rate, 8000);
  EXPECT_EQ(a.frame_ms, 10);
  EXPECT_EQ(a.echo_backend, "webrtc");
  EXPECT_EQ(a.echo_tail_ms, 256);
  EXPECT_FALSE(a.denoise);
  EXPECT_EQ(a.vad, "webrtc");
  EXPECT_EQ(a.call_progress_plan, "eu");
  EXPECT_EQ(a.amd.max_words, 4);
  EXPECT_FALSE(a.recording.enabled);
}

TEST(ConfigAudio, RejectionsNameTheKey) {
  EXPECT_NE(errors_of(R"({"audio":{"rate":11025}})").find("audio.rate: must be 8000 or 16000"),
            std::string::npos);
  EXPECT_NE(errors_of(R"({"audio":{"frame_ms":15}})").find("audio.frame_ms"), std::string::npos);
  EXPECT_NE(errors_of(R"({"audio":{"buffer_periods":4}})").find("audio.buffer_periods"), std::string::npos);
  EXPECT_NE(errors_of(R"({"audio":{"echo":{"backend":"magic"}}})").find("audio.echo.backend: must be"),
            std::string::npos);
  EXPECT_NE(errors_of(R"({"audio":{"vad":"speex"}})").find("audio.vad"), std::string::npos);
  EXPECT_NE(errors_of(R"({"audio":{"call_progress_plan":"uk"}})").find("audio.call_progress_plan"),
            std::string::npos);
  EXPECT_NE(errors_of(R"({"audio":{"amd":{"max_words":0}}})").find("audio.amd.max_words"), std::string::npos);
  EXPECT_NE(errors_of(R"({"audio":{"opus":{"complexity":11}}})").find("audio.opus.complexity"),
            std::string::npos);
  EXPECT_NE(errors_of(R"({"audio":{"recording":{"colour":1}}})").find("audio.recording.colour: unknown key"),
            std::string::npos);
}

TEST(ConfigAudio, MapsOntoTheChainAndTheStreams) {
  auto cfg = parse_config(R"({"audio":{"rate":8000,"echo":{"tail_ms":200},"opus":{"complexity":7}},
    "agents":[{"agent_uuid":"agent_x","name":"X","call":{"min_endpointing_s":0.7,"max_endpointing_s":1.5,
    "vad":{"sensitivity":0.8}}}]})");
  ASSERT_TRUE(cfg) << cfg.error().message;
  auto chain = line_chain_config(cfg->audio, &cfg->agents[0]);
  EXPECT_EQ(chain.format.rate, 8000);
  EXPECT_EQ(chain.capture.echo.tail_ms, 200);
  // audio.opus.* set the encoder of the utterances sent to STT (the chain encodes nothing per frame).
  const osvi::audio::UtteranceOptions utt = utterance_options(cfg->audio);
  EXPECT_EQ(utt.complexity, 7);
  EXPECT_EQ(utt.bitrate, 24000);
  EXPECT_EQ(chain.endpointer.min_endpointing_ms, 700);
  EXPECT_EQ(chain.endpointer.max_endpointing_ms, 1500);
  EXPECT_FLOAT_EQ(chain.vad_options.sensitivity, 0.8f);
  // The mapped settings build a working chain.
  EXPECT_TRUE(osvi::audio::LineChain::create(chain));
  auto streams = audio_stream_options(cfg->audio, "hw:1", "hw:1", 2, 1);
  EXPECT_EQ(streams.rate, 8000);
  EXPECT_EQ(streams.channel, 1);
  EXPECT_EQ(streams.buffer_periods, 3);
}

}  // namespace
