// osvi-model-server end to end: the built binary on an ephemeral loopback port, driven through libcurl.
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "osvi/net/poll_driver.hpp"
#include "osvi/net/upstream_openai.hpp"
#include "stand_in_embedding.hpp"
#include "test_support.hpp"

namespace {

using osvi::test::http_request;

// Test binaries live in <build>/tests/, the tool in <build>/daemon/.
std::string server_path() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return {};
  std::string self(buf, static_cast<size_t>(n));
  self = self.substr(0, self.rfind('/'));
  return self.substr(0, self.rfind('/')) + "/daemon/osvi-model-server";
}

// The server as a child process; SIGTERM then SIGKILL on destruction.
class ServerProcess {
 public:
  explicit ServerProcess(std::vector<std::string> args) {
    int fds[2];
    if (::pipe(fds) != 0) return;
    const std::string path = server_path();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(fds[1], STDOUT_FILENO);
      ::close(fds[0]);
      ::close(fds[1]);
      std::vector<char*> argv{const_cast<char*>(path.c_str())};
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(path.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    out_fd_ = fds[0];
  }
  ~ServerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      for (int i = 0; i < 300 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        if (i == 299) {
          ::kill(pid_, SIGKILL);
          ::waitpid(pid_, &status, 0);
        }
      }
    }
    if (out_fd_ >= 0) ::close(out_fd_);
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Reads stdout until the "listening on 127.0.0.1:PORT" line; 0 on timeout or exit.
  int wait_port(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string text;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{out_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char buf[256];
      const ssize_t n = ::read(out_fd_, buf, sizeof buf);
      if (n <= 0) return 0;
      text.append(buf, static_cast<size_t>(n));
      const size_t at = text.find("listening on 127.0.0.1:");
      if (at != std::string::npos && text.find('\n', at) != std::string::npos) {
        return std::atoi(text.c_str() + at + std::strlen("listening on 127.0.0.1:"));
      }
    }
    return 0;
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
};

size_t append_cb(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

struct Upload {
  long status = 0;
  std::string body;
};

Upload transcribe(int port, const std::string& audio, const std::string& filename, const std::string& type) {
  Upload out;
  CURL* curl = curl_easy_init();
  curl_mime* mime = curl_mime_init(curl);
  curl_mimepart* part = curl_mime_addpart(mime);
  curl_mime_name(part, "file");
  curl_mime_data(part, audio.data(), audio.size());
  curl_mime_filename(part, filename.c_str());
  curl_mime_type(part, type.c_str());
  part = curl_mime_addpart(mime);
  curl_mime_name(part, "model");
  curl_mime_data(part, "whisper-1", CURL_ZERO_TERMINATED);
  part = curl_mime_addpart(mime);
  curl_mime_name(part, "language");
  curl_mime_data(part, "en", CURL_ZERO_TERMINATED);
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/v1/audio/transcriptions";
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_MIMEPOST, mime);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &append_cb);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out.body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  if (curl_easy_perform(curl) == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out.status);
  curl_mime_free(mime);
  curl_easy_cleanup(curl);
  return out;
}

// A POST whose body is timed as it arrives: when the first bytes came, how many, and when the last did.
struct Timed {
  long status = 0;
  bool complete = false;  // curl saw the whole answer (false when the server dropped it)
  std::string body;
  std::chrono::milliseconds first{-1};  // from the request's start to the first body bytes
  std::chrono::milliseconds last{-1};
  size_t first_bytes = 0;  // how many the first write brought
  int writes = 0;
};

struct TimedSink {
  Timed* out;
  std::chrono::steady_clock::time_point t0;
};

size_t timed_cb(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<TimedSink*>(user);
  const auto at =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - sink->t0);
  if (sink->out->writes++ == 0) {
    sink->out->first = at;
    sink->out->first_bytes = size * n;
  }
  sink->out->last = at;
  sink->out->body.append(data, size * n);
  return size * n;
}

Timed timed_post(int port, const std::string& path, const std::string& body) {
  Timed out;
  TimedSink sink{&out, std::chrono::steady_clock::now()};
  CURL* curl = curl_easy_init();
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &timed_cb);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  sink.t0 = std::chrono::steady_clock::now();
  out.complete = curl_easy_perform(curl) == CURLE_OK;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return out;
}

std::string sine_wav(int rate, double seconds) {
  const auto n = static_cast<uint32_t>(rate * seconds);
  std::string w(44 + 2 * n, '\0');
  auto put32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) w[at + static_cast<size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xff);
  };
  std::memcpy(w.data(), "RIFF", 4);
  put32(4, 36 + 2 * n);
  std::memcpy(w.data() + 8, "WAVEfmt ", 8);
  put32(16, 16);
  put32(20, 1 | (1u << 16));  // PCM, mono
  put32(24, static_cast<uint32_t>(rate));
  put32(28, static_cast<uint32_t>(rate * 2));
  put32(32, 2 | (16u << 16));  // block align, bits
  std::memcpy(w.data() + 36, "data", 4);
  put32(40, 2 * n);
  for (uint32_t i = 0; i < n; ++i) {
    const auto v = static_cast<uint16_t>(static_cast<int16_t>(8000 * std::sin(2 * M_PI * 440 * i / rate)));
    w[44 + 2 * i] = static_cast<char>(v & 0xff);
    w[45 + 2 * i] = static_cast<char>(v >> 8);
  }
  return w;
}

const char* kScenario = R"({"models":["osvi-sim"],
 "stt":{"transcripts":["I would like to book an appointment","Tomorrow at ten please","No that's all, thank you"]},
 "llm":{"rules":[{"match":"appointment","reply":"Sure. What day and time suit you?"},
                 {"match":"thank","reply":"Goodbye!","tool_calls":[{"name":"end_call","arguments":{"reason":"done"}}]}],
        "default_reply":"Noted. Anything else?"},
 "tts":{}})";

class ModelServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    osvi::test::write_file(dir_.file("scenario.json"), kScenario);
    server_ = std::make_unique<ServerProcess>(
        std::vector<std::string>{"--listen", "127.0.0.1:0", "--scenario", dir_.file("scenario.json"), "--log",
                                 dir_.file("log.jsonl"), "--quiet"});
    port_ = server_->wait_port(std::chrono::seconds(10));
    ASSERT_GT(port_, 0) << "no 'listening on' line from " << server_path();
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  osvi::test::HttpResult post(const std::string& path, const std::string& body) {
    return http_request("POST", url(path), "", body);
  }

  osvi::test::TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  int port_ = 0;
};

TEST_F(ModelServerTest, ListsModels) {
  auto r = http_request("GET", url("/v1/models"), "");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("\"id\":\"osvi-sim\""), std::string::npos) << r.body;
}

TEST_F(ModelServerTest, TranscriptionsFollowTheScriptAndRejectGarbage) {
  const std::string wav = sine_wav(16000, 1.0);
  auto first = transcribe(port_, wav, "a.wav", "audio/wav");
  EXPECT_EQ(first.status, 200);
  EXPECT_NE(first.body.find("\"text\":\"I would like to book an appointment\""), std::string::npos)
      << first.body;
  EXPECT_NE(first.body.find("\"duration\":1"), std::string::npos) << first.body;
  auto garbage = transcribe(port_, "this is not audio at all", "a.ogg", "audio/ogg");
  EXPECT_EQ(garbage.status, 400);
  EXPECT_NE(garbage.body.find("invalid_request_error"), std::string::npos) << garbage.body;
  auto fake_ogg = transcribe(port_, std::string("OggS") + std::string(60, '\x01'), "a.ogg", "audio/ogg");
  EXPECT_EQ(fake_ogg.status, 400) << fake_ogg.body;
  // Rejected uploads do not use up a transcript.
  auto second = transcribe(port_, wav, "a.wav", "audio/wav");
  EXPECT_NE(second.body.find("Tomorrow at ten please"), std::string::npos) << second.body;
  auto third = transcribe(port_, wav, "a.wav", "audio/wav");
  EXPECT_NE(third.body.find("No that's all, thank you"), std::string::npos) << third.body;
  auto fourth = transcribe(port_, wav, "a.wav", "audio/wav");  // cycles
  EXPECT_NE(fourth.body.find("I would like to book an appointment"), std::string::npos) << fourth.body;
}

TEST_F(ModelServerTest, ChatStreamsSseWithToolCallsAndLogsMessages) {
  auto r = post("/v1/chat/completions",
                R"({"model":"osvi-sim","stream":true,"messages":[{"role":"system","content":"Be brief."},)"
                R"({"role":"user","content":"No that's all, THANK you"}]})");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.headers.find("text/event-stream"), std::string::npos) << r.headers;
  // Every event is one "data: ...\n\n" line; the last is [DONE].
  std::vector<std::string> events;
  size_t pos = 0;
  while (pos < r.body.size()) {
    const size_t end = r.body.find("\n\n", pos);
    ASSERT_NE(end, std::string::npos) << r.body;
    const std::string ev = r.body.substr(pos, end - pos);
    ASSERT_EQ(ev.rfind("data: ", 0), 0u) << ev;
    events.push_back(ev.substr(6));
    pos = end + 2;
  }
  ASSERT_GE(events.size(), 5u);
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_NE(events.front().find("\"role\":\"assistant\""), std::string::npos);
  EXPECT_NE(r.body.find("\"content\":\"Goodbye!\""), std::string::npos);
  EXPECT_NE(r.body.find("\"name\":\"end_call\""), std::string::npos);
  EXPECT_NE(r.body.find("\"finish_reason\":\"tool_calls\""), std::string::npos);

  // Non-streamed, and a tool result gets the after-tool reply.
  auto plain =
      post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"book an appointment"}]})");
  EXPECT_EQ(plain.status, 200);
  EXPECT_NE(plain.body.find("\"content\":\"Sure. What day and time suit you?\""), std::string::npos)
      << plain.body;
  EXPECT_NE(plain.body.find("\"finish_reason\":\"stop\""), std::string::npos);
  auto after_tool = post("/v1/chat/completions",
                         R"({"messages":[{"role":"user","content":"bye"},{"role":"tool","content":"ok"}]})");
  EXPECT_NE(after_tool.body.find("\"content\":\"Done.\""), std::string::npos) << after_tool.body;

  auto log = http_request("GET", url("/control/log"), "");
  EXPECT_EQ(log.status, 200);
  EXPECT_NE(log.body.find(R"("messages":[{"role":"system","content":"Be brief."},)"), std::string::npos)
      << log.body;
  EXPECT_NE(osvi::test::read_file(dir_.file("log.jsonl")).find("No that's all, THANK you"),
            std::string::npos);
}

TEST_F(ModelServerTest, SpeechIsAudible24kPcm) {
  auto r = post("/v1/audio/speech",
                R"({"model":"tts-1","input":"Hello, how can I help you today?","voice":"alloy"})");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.headers.find("audio/pcm"), std::string::npos) << r.headers;
  ASSERT_EQ(r.body.size() % 2, 0u);
  const size_t samples = r.body.size() / 2;
  EXPECT_GT(samples, 12000u);  // > 0.5 s at 24 kHz
  double acc = 0;
  for (size_t i = 0; i < samples; ++i) {
    int16_t v;
    std::memcpy(&v, r.body.data() + 2 * i, 2);
    acc += static_cast<double>(v) * v;
  }
  EXPECT_GT(std::sqrt(acc / static_cast<double>(samples)), 300.0);
  auto again = post("/v1/audio/speech", R"({"input":"Hello, how can I help you today?"})");
  EXPECT_EQ(again.body, r.body);  // deterministic
  EXPECT_EQ(post("/v1/audio/speech", R"({"input":"x","response_format":"opus"})").status, 400);
}

// A cache miss streams the render as it is made, with the stage's latency counted from the request's arrival
// (first byte at max(latency, first chunk)); the same sentence again comes from the cache: identical bytes,
// first byte at the latency.
TEST_F(ModelServerTest, SpeechStreamsWhileRenderingAndCachesRepeats) {
  // About 80 s of speech: espeak needs hundreds of milliseconds to render all of it, far more than its
  // first 60 ms buffer takes.
  std::string text;
  for (int i = 0; i < 8; ++i) {
    text +=
        "Thank you for calling the branch office. Our opening hours are nine to six on weekdays, and ten "
        "to two on Saturdays. ";
  }
  // No latency: the first bytes go out while the rest is still being rendered. A server that renders
  // before answering sends its first byte moments before its last.
  const Timed streamed = timed_post(port_, "/v1/audio/speech", R"({"input":")" + text + R"(Goodbye."})");
  ASSERT_EQ(streamed.status, 200);
  ASSERT_TRUE(streamed.complete);
  EXPECT_LT(streamed.first.count() * 4, streamed.last.count())
      << "first byte at " << streamed.first.count() << " ms, last at " << streamed.last.count() << " ms";
  // In pieces, as rendered: the first write brought a small part and the rest kept coming.
  EXPECT_LT(streamed.first_bytes, streamed.body.size() / 10);
  EXPECT_GT(streamed.writes, 10);

  // With a latency, the render runs during it: first byte at the latency, not at latency + render.
  ASSERT_EQ(post("/control/scenario", R"({"tts":{"latency_ms":300}})").status, 200);
  const std::string body = R"({"input":")" + text + R"("})";
  const Timed miss = timed_post(port_, "/v1/audio/speech", body);
  ASSERT_EQ(miss.status, 200);
  ASSERT_TRUE(miss.complete);
  ASSERT_GT(miss.body.size(), 24000u * 2 * 40);  // > 40 s of speech
  EXPECT_GE(miss.first.count(), 290);
  EXPECT_LT(miss.first.count(), 300 + 150) << "last byte at " << miss.last.count() << " ms";

  const Timed hit = timed_post(port_, "/v1/audio/speech", body);
  ASSERT_EQ(hit.status, 200);
  EXPECT_EQ(hit.body, miss.body);
  EXPECT_GE(hit.first.count(), 290);
  EXPECT_LT(hit.first.count(), 300 + 150);
  // The WAV of a cached sentence: a header with the length, then the same samples.
  auto wav = post("/v1/audio/speech", body.substr(0, body.size() - 1) + R"(,"response_format":"wav"})");
  ASSERT_EQ(wav.status, 200);
  ASSERT_EQ(wav.body.size(), 44 + miss.body.size());
  EXPECT_EQ(wav.body.substr(44), miss.body);
  uint32_t data_bytes = 0;
  std::memcpy(&data_bytes, wav.body.data() + 40, 4);
  EXPECT_EQ(data_bytes, miss.body.size());

  auto log = http_request("GET", url("/control/log"), "");
  const size_t first_miss = log.body.find(R"("cache":"miss")");
  EXPECT_NE(first_miss, std::string::npos) << log.body;
  EXPECT_NE(log.body.find(R"("cache":"hit")", first_miss), std::string::npos) << log.body;

  // A WAV miss is rendered whole (its header carries the length) and gives the same samples as pcm.
  const std::string other = R"({"input":"See you tomorrow.")";
  auto wav_first = post("/v1/audio/speech", other + R"(,"response_format":"wav"})");
  ASSERT_EQ(wav_first.status, 200);
  auto pcm_after = post("/v1/audio/speech", other + "}");
  EXPECT_EQ(wav_first.body.substr(44), pcm_after.body);

  // Faults still apply to speech: delay adds to the latency, reset drops a stream that had started,
  // http500 and hang replace the answer.
  ASSERT_EQ(post("/control/scenario", R"({"tts":{}})").status, 200);
  const std::string fresh = R"({"input":"A sentence nobody asked for before, said once."})";
  ASSERT_EQ(post("/control/faults", R"({"stage":"tts","fault":"reset","count":1})").status, 200);
  const Timed reset = timed_post(port_, "/v1/audio/speech", fresh);
  EXPECT_FALSE(reset.complete);
  EXPECT_GT(reset.body.size(), 0u);
  const Timed whole = timed_post(port_, "/v1/audio/speech", fresh);
  EXPECT_TRUE(whole.complete);
  EXPECT_GT(whole.body.size(), reset.body.size());
  ASSERT_EQ(post("/control/faults", R"({"stage":"tts","fault":"delay","delay_ms":300,"count":1})").status,
            200);
  const Timed delayed = timed_post(port_, "/v1/audio/speech", fresh);
  EXPECT_GE(delayed.first.count(), 290);
  EXPECT_EQ(delayed.body, whole.body);
  ASSERT_EQ(post("/control/faults", R"({"stage":"tts","fault":"http500","count":1})").status, 200);
  EXPECT_EQ(post("/v1/audio/speech", fresh).status, 500);
  EXPECT_EQ(post("/v1/audio/speech", fresh).body, whole.body);

  // tts.cache false renders every answer (and still gives the same bytes); a non-boolean is refused.
  EXPECT_EQ(post("/control/scenario", R"({"tts":{"cache":1}})").status, 400);
  ASSERT_EQ(post("/control/scenario", R"({"tts":{"cache":false}})").status, 200);
  ASSERT_EQ(http_request("DELETE", url("/control/log"), "").status, 200);
  EXPECT_EQ(post("/v1/audio/speech", fresh).body, whole.body);
  EXPECT_NE(http_request("GET", url("/control/log"), "").body.find(R"("cache":"off")"), std::string::npos);
}

// The other stages' latency also runs from the request's arrival: the decoding of an upload overlaps it.
TEST_F(ModelServerTest, LatencyCountsFromArrival) {
  ASSERT_EQ(post("/control/scenario", R"({"stt":{"latency_ms":200},"llm":{"latency_ms":200}})").status, 200);
  const auto t0 = std::chrono::steady_clock::now();
  auto stt = transcribe(port_, sine_wav(16000, 20.0), "a.wav", "audio/wav");
  const auto stt_ms = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(stt.status, 200) << stt.body;
  EXPECT_GE(stt_ms, std::chrono::milliseconds(190));
  EXPECT_LT(stt_ms, std::chrono::milliseconds(200 + 250));
  const Timed chat = timed_post(port_, "/v1/chat/completions",
                                R"({"stream":true,"messages":[{"role":"user","content":"hi"}]})");
  EXPECT_EQ(chat.status, 200);
  EXPECT_GE(chat.first.count(), 190);
  EXPECT_LT(chat.first.count(), 200 + 250);
}

TEST_F(ModelServerTest, FaultsTakeEffectAndExpire) {
  const std::string chat = R"({"messages":[{"role":"user","content":"hi"}]})";
  EXPECT_EQ(post("/control/faults", R"({"stage":"llm","fault":"http500","count":2})").status, 200);
  EXPECT_EQ(post("/control/faults", R"({"stage":"llm","fault":"explode"})").status, 400);
  EXPECT_EQ(post("/v1/chat/completions", chat).status, 500);
  EXPECT_EQ(post("/v1/chat/completions", chat).status, 500);
  auto ok = post("/v1/chat/completions", chat);
  EXPECT_EQ(ok.status, 200);
  EXPECT_NE(ok.body.find("Noted. Anything else?"), std::string::npos) << ok.body;

  // Other stages are untouched; wrong_content_type answers 200 text/html.
  EXPECT_EQ(post("/control/faults", R"({"stage":"stt","fault":"wrong_content_type","count":1})").status, 200);
  auto html = transcribe(port_, sine_wav(8000, 0.5), "a.wav", "audio/wav");
  EXPECT_EQ(html.status, 200);
  EXPECT_NE(html.body.find("<html>"), std::string::npos);

  // reset: the stream starts, then the connection drops (curl reports no status).
  EXPECT_EQ(post("/control/faults", R"({"stage":"llm","fault":"reset","count":1})").status, 200);
  auto reset = post("/v1/chat/completions", R"({"stream":true,"messages":[{"role":"user","content":"hi"}]})");
  EXPECT_EQ(reset.status, 0);

  // delay holds the first byte back.
  EXPECT_EQ(post("/control/faults", R"({"stage":"llm","fault":"delay","delay_ms":300,"count":1})").status,
            200);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(post("/v1/chat/completions", chat).status, 200);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(290));
}

TEST_F(ModelServerTest, ScenarioCanBeReplacedAtRunTime) {
  EXPECT_EQ(post("/control/scenario", R"({"llm":{"rules":[{"turn":2,"reply":"second"}]}})").status, 200);
  auto one = post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"a"}]})");
  EXPECT_NE(one.body.find("You said: a. How else can I help?"), std::string::npos) << one.body;
  auto two = post("/v1/chat/completions",
                  R"({"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},)"
                  R"({"role":"user","content":"c"}]})");
  EXPECT_NE(two.body.find("\"content\":\"second\""), std::string::npos) << two.body;
  auto hello = transcribe(port_, sine_wav(16000, 0.5), "a.wav", "audio/wav");
  EXPECT_NE(hello.body.find("\"text\":\"hello\""), std::string::npos) << hello.body;
  EXPECT_EQ(post("/control/scenario", R"({"models":"nope"})").status, 400);
}

// ---- /v1/embeddings ----

struct JsonDoc {
  explicit JsonDoc(const std::string& text) : doc(cJSON_Parse(text.c_str())) {}
  ~JsonDoc() { cJSON_Delete(doc); }
  JsonDoc(const JsonDoc&) = delete;
  JsonDoc& operator=(const JsonDoc&) = delete;
  cJSON* doc;
};

// data[i].embedding of an embeddings answer, in the order listed.
std::vector<std::vector<float>> vectors_of(const std::string& body) {
  JsonDoc d(body);
  std::vector<std::vector<float>> out;
  const cJSON* item = nullptr;
  cJSON_ArrayForEach(item, cJSON_GetObjectItem(d.doc, "data")) {
    std::vector<float> v;
    const cJSON* x = nullptr;
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(item, "embedding"))
        v.push_back(static_cast<float>(x->valuedouble));
    out.push_back(std::move(v));
  }
  return out;
}

TEST_F(ModelServerTest, EmbeddingsAnswerTheOpenAiShapeWithTheStandInVectors) {
  auto one =
      post("/v1/embeddings", R"({"model":"text-embedding-3-small","input":"Refund my order, please"})");
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_NE(one.headers.find("application/json"), std::string::npos) << one.headers;
  {
    JsonDoc d(one.body);
    ASSERT_TRUE(d.doc) << one.body;
    EXPECT_STREQ(cJSON_GetObjectItem(d.doc, "object")->valuestring, "list");
    EXPECT_STREQ(cJSON_GetObjectItem(d.doc, "model")->valuestring, "text-embedding-3-small");
    const cJSON* data = cJSON_GetObjectItem(d.doc, "data");
    ASSERT_EQ(cJSON_GetArraySize(data), 1);
    const cJSON* item = cJSON_GetArrayItem(data, 0);
    EXPECT_STREQ(cJSON_GetObjectItem(item, "object")->valuestring, "embedding");
    EXPECT_EQ(cJSON_GetObjectItem(item, "index")->valueint, 0);
    const cJSON* usage = cJSON_GetObjectItem(d.doc, "usage");
    EXPECT_EQ(cJSON_GetObjectItem(usage, "prompt_tokens")->valueint, 4);  // four words
    EXPECT_EQ(cJSON_GetObjectItem(usage, "total_tokens")->valueint, 4);
  }
  auto v = vectors_of(one.body);
  ASSERT_EQ(v.size(), 1u);
  ASSERT_EQ(v[0].size(), 256u);  // the default
  double norm = 0;
  for (float x : v[0]) norm += double(x) * x;
  EXPECT_NEAR(norm, 1.0, 1e-5);
  EXPECT_EQ(v[0], osvi::tools::stand_in_embedding("Refund my order, please"));

  // An array, with dimensions: one vector per input, in order, of that length; same text, same vector.
  auto many = post("/v1/embeddings",
                   R"({"model":"m","input":["opening hours","Refund my order, please","opening hours"],)"
                   R"("dimensions":64,"encoding_format":"float"})");
  ASSERT_EQ(many.status, 200) << many.body;
  auto w = vectors_of(many.body);
  ASSERT_EQ(w.size(), 3u);
  for (const auto& x : w) EXPECT_EQ(x.size(), 64u);
  EXPECT_EQ(w[0], w[2]);
  EXPECT_NE(w[0], w[1]);
  EXPECT_EQ(w[1], osvi::tools::stand_in_embedding("Refund my order, please", 64));
  // Deterministic across requests.
  EXPECT_EQ(
      post("/v1/embeddings", R"({"model":"text-embedding-3-small","input":"Refund my order, please"})").body,
      one.body);

  auto log = http_request("GET", url("/control/log"), "");
  EXPECT_NE(log.body.find(R"("endpoint":"/v1/embeddings","model":"m","inputs":3,"dimensions":64)"),
            std::string::npos)
      << log.body;
}

TEST_F(ModelServerTest, EmbeddingsOfTextsSharingWordsAreCloserThanOfUnrelatedTexts) {
  auto r = post("/v1/embeddings",
                R"({"model":"m","input":["How do I get a refund for my order?","refunds for orders",)"
                R"("The weather in Pune is sunny today"]})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto v = vectors_of(r.body);
  ASSERT_EQ(v.size(), 3u);
  const double related = osvi::tools::stand_in_cosine(v[0], v[1]);
  const double unrelated = osvi::tools::stand_in_cosine(v[0], v[2]);
  EXPECT_GT(related, 0.3);
  EXPECT_GT(related, unrelated + 0.2) << related << " vs " << unrelated;
}

TEST_F(ModelServerTest, EmbeddingsRefuseWhatTheyCannotServe) {
  struct Case {
    const char* body;
    const char* words;
  };
  for (const Case& c :
       {Case{R"({"model":"m","input":[1,2,3]})", "token-array inputs are not supported"},
        Case{R"({"model":"m","input":[[1,2],[3]]})", "token-array inputs are not supported"},
        Case{R"({"model":"m","input":[]})", "must not be an empty array"},
        Case{R"({"model":"m","input":["a",""]})", "input[1] is an empty string"},
        Case{R"({"model":"m","input":{"a":1}})", "a string or an array of strings"},
        Case{R"({"input":"a"})", "model must be a non-empty string"},
        Case{R"({"model":"m","input":"a","encoding_format":"base64"})", "\"float\" only"},
        Case{R"({"model":"m","input":"a","dimensions":0})", "dimensions must be an integer"},
        Case{R"({"model":"m","input":"a","dimensions":5000})", "dimensions must be an integer"},
        Case{"not json", "body is not a JSON object"}}) {
    auto r = post("/v1/embeddings", c.body);
    EXPECT_EQ(r.status, 400) << c.body;
    JsonDoc d(r.body);
    const cJSON* err = cJSON_GetObjectItem(d.doc, "error");
    ASSERT_TRUE(cJSON_IsObject(err)) << r.body;
    EXPECT_STREQ(cJSON_GetObjectItem(err, "type")->valuestring, "invalid_request_error");
    EXPECT_NE(std::string(cJSON_GetObjectItem(err, "message")->valuestring).find(c.words), std::string::npos)
        << r.body;
  }
  std::string many = R"({"model":"m","input":[)";
  for (int i = 0; i < 2049; ++i) many += std::string(i ? "," : "") + "\"x\"";
  EXPECT_EQ(post("/v1/embeddings", many + "]}").status, 400);
  EXPECT_EQ(http_request("GET", url("/v1/embeddings"), "").status, 405);

  // A scenario naming its embedding models serves only those (and lists them).
  ASSERT_EQ(post("/control/scenario", R"({"embeddings":{"models":["osvi-embed"],"dimensions":32}})").status,
            200);
  auto unknown = post("/v1/embeddings", R"({"model":"text-embedding-3-small","input":"a"})");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(unknown.body.find("\"code\":\"model_not_found\""), std::string::npos) << unknown.body;
  auto known = post("/v1/embeddings", R"({"model":"osvi-embed","input":"a"})");
  ASSERT_EQ(known.status, 200) << known.body;
  EXPECT_EQ(vectors_of(known.body).at(0).size(), 32u);  // the scenario's default length
  EXPECT_NE(http_request("GET", url("/v1/models"), "").body.find("\"id\":\"osvi-embed\""), std::string::npos);
  EXPECT_EQ(post("/control/scenario", R"({"embeddings":{"dimensions":0}})").status, 400);
  EXPECT_EQ(post("/control/scenario", R"({"embeddings":{"models":[7]}})").status, 400);
}

TEST_F(ModelServerTest, EmbeddingsFaultsTakeEffectAndExpire) {
  const std::string body = R"({"model":"m","input":["a","b"]})";
  EXPECT_EQ(post("/control/faults", R"({"stage":"embeddings","fault":"http500","count":1})").status, 200);
  auto failed = post("/v1/embeddings", body);
  EXPECT_EQ(failed.status, 500);
  EXPECT_NE(failed.body.find("server_error"), std::string::npos) << failed.body;
  EXPECT_EQ(post("/v1/embeddings", body).status, 200);

  EXPECT_EQ(post("/control/faults", R"({"stage":"embeddings","fault":"bad_json","count":1})").status, 200);
  auto broken = post("/v1/embeddings", body);
  EXPECT_EQ(broken.status, 200);
  JsonDoc d(broken.body);
  EXPECT_EQ(d.doc, nullptr) << broken.body;

  EXPECT_EQ(post("/control/faults", R"({"stage":"embeddings","fault":"reset","count":1})").status, 200);
  EXPECT_EQ(post("/v1/embeddings", body).status, 0);

  // The stage's latency from the scenario.
  ASSERT_EQ(post("/control/scenario", R"({"embeddings":{"latency_ms":250}})").status, 200);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(post("/v1/embeddings", body).status, 200);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(240));
  // Other stages are untouched by an embeddings fault.
  ASSERT_EQ(post("/control/scenario", R"({"embeddings":{"fault":{"fault":"http500"}}})").status, 200);
  EXPECT_EQ(post("/v1/embeddings", body).status, 500);
  EXPECT_EQ(post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"hi"}]})").status, 200);
}

// The daemon's own client against the stand-in: what the knowledge base will see.
TEST_F(ModelServerTest, TheUpstreamClientReadsTheStandInEmbeddings) {
  auto driver = osvi::net::PollDriver::create();
  ASSERT_TRUE(driver.ok());
  osvi::net::OpenAiOptions options;
  options.max_attempts = 1;
  auto up = osvi::net::OpenAiUpstream::create((*driver)->client(), options);
  osvi::net::EmbeddingsRequest req;
  req.endpoint.base_url = url("/v1");
  req.endpoint.model = "text-embedding-3-small";
  req.inputs = {"opening hours", "refund policy", "delivery to Pune"};
  req.dimensions = 128;
  std::optional<std::vector<std::vector<float>>> vectors;
  std::optional<osvi::net::UpstreamError> error;
  auto cb = [&]() -> osvi::net::EmbeddingsCallbacks {
    return {{},
            [&](std::vector<std::vector<float>> v) { vectors = std::move(v); },
            [&](const osvi::net::UpstreamError& e) { error = e; }};
  };
  up->embed(req, cb());
  ASSERT_TRUE((*driver)->run_until([&] { return vectors || error; }, 5000));
  ASSERT_TRUE(vectors) << error->message;
  ASSERT_EQ(vectors->size(), 3u);
  for (size_t i = 0; i < 3; ++i)
    EXPECT_EQ((*vectors)[i], osvi::tools::stand_in_embedding(req.inputs[i], 128));

  // An injected reset reaches the client as one.
  ASSERT_EQ(post("/control/faults", R"({"stage":"embeddings","fault":"reset","count":1})").status, 200);
  vectors.reset();
  up->embed(req, cb());
  ASSERT_TRUE((*driver)->run_until([&] { return vectors || error; }, 5000));
  ASSERT_TRUE(error);
  EXPECT_EQ(error->kind, osvi::net::UpstreamError::Kind::reset) << error->message;
  EXPECT_EQ(error->stage, osvi::net::UpstreamStage::embeddings);
}

}  // namespace
