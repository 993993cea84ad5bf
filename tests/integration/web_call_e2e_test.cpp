// Browser test calls end to end: osvid and osvi-model-server, a WebSocket client that speaks espeak-ng
// speech in 20 ms frames on a real-time clock like a browser's worklet, the agent's audio received paced, and
// the call's record (execution_mode test), transcript and stereo recording checked; the ticket rules of the
// API (one use, origin, scope, agent state, the web call limit).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "model_server_process.hpp"
#include "osvi/net/json.hpp"
#include "osvi/speech/speech.hpp"
#include "test_support.hpp"
#include "ws_client.hpp"

using namespace std::chrono_literals;
using osvi::net::JsonPtr;
using osvi::test::DaemonProcess;
using osvi::test::http_request;
using osvi::test::WsClient;

namespace {

constexpr const char* kToken = "WebCallToken0123";
constexpr const char* kLimitedToken = "WebCallLimited01";
constexpr size_t kFrame = 320;
// About twenty seconds of speech: more agent audio than the bounded buffers hold.
constexpr const char* kLongGreeting =
    "Hello and welcome to the front desk of the branch office. We are open from nine in the morning until "
    "six in the evening on every weekday, and from ten until two on Saturdays. You can book an appointment, "
    "ask about your account, or leave a message for any of our staff. Please tell me how I can help you "
    "today, and take all the time you need.";

std::string str(const cJSON* o, const char* k) {
  return osvi::test::json_str(o, k);
}

class WebCallE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    osvi::test::write_file(dir_.file("scenario.json"),
                           R"({"stt":{"transcripts":["I would like to book a table for two"]},
            "llm":{"rules":[{"match":"table","reply":"Booked. Goodbye!",
                             "tool_calls":[{"name":"end_call","arguments":{}}]}]}})");
    model_ = std::make_unique<osvi::test::ModelServer>(dir_.file("scenario.json"), dir_.file("model.log"));
    ASSERT_FALSE(model_->base().empty());
    const std::string url = model_->base() + "/v1";
    port_ = osvi::test::free_loopback_port();
    auto agent = [&](const std::string& uuid, bool active, const std::string& mode,
                     const std::string& greeting = "Hello, this is the front desk.") {
      return R"({"agent_uuid":")" + uuid + R"(","name":"A","active":)" + (active ? "true" : "false") +
             R"(,"mode":")" + mode + R"(","greeting":{"text":")" + greeting + R"("},)" +
             R"("stt":{"base_url":")" + url + R"("},"llm":{"base_url":")" + url +
             R"("},"voice":{"base_url":")" + url + R"("}})";
    };
    const std::string cfg = R"({"state_dir":")" + dir_.file("state") + R"(","api":{"listen":"127.0.0.1:)" +
                            std::to_string(port_) + R"(","tokens":[")" + kToken + R"(",{"token":")" +
                            kLimitedToken + R"(","agents":["agent_b"]}]},)" +
                            R"("audio":{"rt_priority":0},"agents":[)" + agent("agent_a", true, "voice") +
                            "," + agent("agent_b", true, "voice") + "," + agent("agent_off", false, "voice") +
                            "," + agent("agent_long", true, "voice", kLongGreeting) + "]}";
    osvi::test::write_file(dir_.file("osvid.json"), cfg);
    daemon_ = std::make_unique<DaemonProcess>(dir_.path(),
                                              std::vector<std::string>{"--config", dir_.file("osvid.json")});
    ASSERT_TRUE(daemon_->wait_notify("READY=1", 10s)) << daemon_->stderr_text();
  }

  std::string api(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::string origin() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // POST /v1/web_calls: the status, and the ticket's ws_path when issued.
  long ticket(const std::string& agent, std::string* ws_path, const std::string& token = kToken) {
    auto r = http_request("POST", api("/v1/web_calls"), token, R"({"agent_uuid":")" + agent + R"("})");
    if (r.status == 200 && ws_path) {
      JsonPtr j = osvi::test::parse_json(r.body);
      const cJSON* d = cJSON_GetObjectItem(j.get(), "data");
      *ws_path = str(d, "ws_path");
      EXPECT_EQ(str(d, "ticket").size(), 32u) << r.body;
      EXPECT_FALSE(str(d, "expires_at").empty()) << r.body;
    }
    last_body_ = r.body;
    return r.status;
  }

  JsonPtr get_data(const std::string& path) {
    auto r = http_request("GET", api(path), kToken);
    JsonPtr j = osvi::test::parse_json(r.body);
    return j ? JsonPtr(cJSON_Duplicate(cJSON_GetObjectItem(j.get(), "data"), true)) : nullptr;
  }

  osvi::test::TempDir dir_;
  std::unique_ptr<osvi::test::ModelServer> model_;
  std::unique_ptr<DaemonProcess> daemon_;
  int port_ = 0;
  std::string last_body_;
};

std::string frame_bytes(const int16_t* s) {
  std::string b(2 * kFrame, '\0');
  for (size_t i = 0; i < kFrame; ++i) {
    const auto u = static_cast<uint16_t>(s[i]);
    b[2 * i] = static_cast<char>(u & 0xff);
    b[2 * i + 1] = static_cast<char>(u >> 8);
  }
  return b;
}

TEST_F(WebCallE2E, SpeaksHearsAndIsRecordedAsATest) {
  auto speech = osvi::daemon::Speech::create();
  ASSERT_TRUE(speech.ok()) << speech.error().message;
  auto words = (*speech)->render("I would like to book a table for two", 16000);
  ASSERT_TRUE(words.ok()) << words.error().message;

  std::string path;
  ASSERT_EQ(ticket("agent_a", &path), 200) << last_body_;
  WsClient ws;
  ASSERT_EQ(ws.open(port_, path, origin()), 101) << ws.head();

  // A browser's worklet: one frame every 20 ms of its own clock, whatever comes back. Quiet noise until the
  // greeting has been heard, then the sentence, then quiet until the agent ends the call.
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> noise(0, 0);  // a browser with noise suppression sends digital silence
  std::vector<WsClient::Frame> got;
  std::vector<std::string> texts;
  size_t frames_sent = 0, agent_samples = 0, max_ahead = 0, spoken = 0;
  bool greeted = false, closed = false;
  int64_t speak_after = -1;
  std::string call_id;
  uint16_t close_code = 0;
  const auto t0 = std::chrono::steady_clock::now();
  while (!closed && std::chrono::steady_clock::now() - t0 < 40s) {
    int16_t pcm[kFrame];
    const bool talk = greeted && speak_after >= 0 && static_cast<int64_t>(frames_sent) >= speak_after &&
                      spoken < words->size();
    for (size_t i = 0; i < kFrame; ++i) {
      pcm[i] = static_cast<int16_t>(noise(rng));
      if (talk && spoken < words->size()) pcm[i] = static_cast<int16_t>(pcm[i] + (*words)[spoken++]);
    }
    if (!ws.send(2, frame_bytes(pcm))) break;
    ++frames_sent;
    const auto next = t0 + std::chrono::milliseconds(20 * frames_sent);
    while (std::chrono::steady_clock::now() < next) {
      got.clear();
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(next - std::chrono::steady_clock::now());
      ws.poll(static_cast<int>(std::max<int64_t>(1, left.count())), got);
      for (const auto& f : got) {
        if (f.opcode == 2) {
          agent_samples += f.payload.size() / 2;
          // Paced: never more than the cushion (4 frames) ahead of the browser's clock.
          const size_t clock = frames_sent * kFrame;
          max_ahead = std::max(max_ahead, agent_samples > clock ? agent_samples - clock : 0);
        } else if (f.opcode == 1) {
          texts.push_back(f.payload);
          JsonPtr j = osvi::test::parse_json(f.payload);
          ASSERT_TRUE(j) << f.payload;
          const std::string type = str(j.get(), "type");
          if (type == "call") call_id = str(j.get(), "call_id");
          if (type == "transcript" && str(j.get(), "role") == "agent" && !greeted) {
            greeted = true;
            speak_after = static_cast<int64_t>(frames_sent) + 15;  // 300 ms after the greeting
          }
        } else if (f.opcode == 8) {
          close_code = f.payload.size() >= 2
                           ? static_cast<uint16_t>((static_cast<uint8_t>(f.payload[0]) << 8) |
                                                   static_cast<uint8_t>(f.payload[1]))
                           : 0;
          closed = true;
        }
      }
      if (closed || ws.eof()) break;
    }
    if (ws.eof()) break;
  }
  std::string all;
  for (const auto& t : texts) all += t + "\n";
  ASSERT_TRUE(closed) << "the box did not end the call\n" << all << daemon_->stderr_text();
  EXPECT_EQ(close_code, 1000) << all;
  ASSERT_FALSE(call_id.empty()) << all;
  EXPECT_NE(all.find(R"("type":"state","state":"connected")"), std::string::npos) << all;
  EXPECT_NE(all.find(R"("role":"agent","text":"Hello, this is the front desk.")"), std::string::npos) << all;
  EXPECT_NE(all.find(R"("role":"caller","text":"I would like to book a table for two")"), std::string::npos)
      << all;
  EXPECT_NE(all.find(R"("type":"end")"), std::string::npos) << all;
  EXPECT_NE(all.find(R"("status":"picked")"), std::string::npos) << all;
  // The greeting and the goodbye came back as audio, paced to the browser's clock.
  EXPECT_GT(agent_samples, 16000u) << all;
  EXPECT_LE(max_ahead, 4 * kFrame);

  // The record: a test, inbound from the browser, on a web line, no number.
  JsonPtr call;
  for (int i = 0; i < 50 && !call; ++i) {
    JsonPtr c = get_data("/v1/call/" + call_id);
    if (c && str(c.get(), "status") != "in_progress")
      call = std::move(c);
    else
      std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(call);
  EXPECT_EQ(str(call.get(), "status"), "picked");
  EXPECT_EQ(str(call.get(), "execution_mode"), "test");
  EXPECT_EQ(str(call.get(), "call_type"), "inbound");
  EXPECT_EQ(str(call.get(), "call_ended_reason"), "assistant-ended-call");

  JsonPtr tr = get_data("/v1/call/" + call_id + "/transcript");
  ASSERT_TRUE(tr);
  std::string turns;
  const cJSON* e = nullptr;
  cJSON_ArrayForEach(e, cJSON_GetObjectItem(tr.get(), "transcript")) turns +=
      str(e, "role") + ": " + str(e, "text") + "\n";
  EXPECT_NE(turns.find("user: I would like to book a table for two"), std::string::npos) << turns;
  EXPECT_NE(turns.find("agent: Booked. Goodbye!"), std::string::npos) << turns;

  // The stereo recording, as an independent reader sees it.
  std::string url;
  for (int i = 0; i < 50 && url.empty(); ++i) {
    auto rec = http_request("GET", api("/v1/call/" + call_id + "/recording"), kToken);
    if (rec.status == 200)
      url = str(cJSON_GetObjectItem(osvi::test::parse_json(rec.body).get(), "data"), "recording_url");
    else
      std::this_thread::sleep_for(100ms);
  }
  ASSERT_FALSE(url.empty());
  auto file = http_request("GET", url, "");
  ASSERT_EQ(file.status, 200);
  osvi::test::write_file(dir_.file("call.opus"), file.body);
  const std::string cmd =
      "opusinfo '" + dir_.file("call.opus") + "' > '" + dir_.file("opusinfo.txt") + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  const std::string info = osvi::test::read_file(dir_.file("opusinfo.txt"));
  EXPECT_EQ(rc, 0) << info;
  EXPECT_NE(info.find("Channels: 2\n"), std::string::npos) << info;
  EXPECT_NE(info.find("Original sample rate: 16000 Hz"), std::string::npos) << info;
}

TEST_F(WebCallE2E, BrowserHangUpEndsTheCallAndTheLineShowsWhileLive) {
  std::string path;
  ASSERT_EQ(ticket("agent_a", &path), 200) << last_body_;
  WsClient ws;
  ASSERT_EQ(ws.open(port_, path, origin()), 101) << ws.head();
  int16_t quiet[kFrame] = {};
  std::vector<WsClient::Frame> got;
  std::string call_id;
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(ws.send(2, frame_bytes(quiet)));
    ws.poll(20, got);
  }
  for (const auto& f : got) {
    JsonPtr j = f.opcode == 1 ? osvi::test::parse_json(f.payload) : nullptr;
    if (j && str(j.get(), "type") == "call") call_id = str(j.get(), "call_id");
  }
  ASSERT_FALSE(call_id.empty());
  JsonPtr health = get_data("/v1/health");
  const std::string h = osvi::net::json_print(health.get());
  EXPECT_NE(h.find(R"("id":"web1","type":"web","state":"active")"), std::string::npos) << h;

  ws.send(8, std::string("\x03\xe8", 2));  // the page's stop(): a normal close
  JsonPtr call;
  for (int i = 0; i < 50 && !call; ++i) {
    JsonPtr c = get_data("/v1/call/" + call_id);
    if (c && str(c.get(), "status") != "in_progress")
      call = std::move(c);
    else
      std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(call);
  EXPECT_EQ(str(call.get(), "status"), "picked");
  EXPECT_EQ(str(call.get(), "call_ended_by"), "user");
  EXPECT_EQ(str(call.get(), "execution_mode"), "test");
  const std::string after = osvi::net::json_print(get_data("/v1/health").get());
  EXPECT_EQ(after.find(R"("type":"web")"), std::string::npos) << after;
}

TEST_F(WebCallE2E, TicketRules) {
  std::string path;
  // Scope, agent state, body.
  EXPECT_EQ(ticket("agent_a", nullptr, kLimitedToken), 403) << last_body_;
  EXPECT_EQ(ticket("nobody", nullptr), 404) << last_body_;
  EXPECT_EQ(ticket("agent_off", nullptr), 409) << last_body_;
  auto extra = http_request("POST", api("/v1/web_calls"), kToken, R"({"agent_uuid":"agent_a","x":1})");
  EXPECT_EQ(extra.status, 422) << extra.body;
  EXPECT_NE(extra.body.find("\\\"x\\\""), std::string::npos) << extra.body;
  auto no_token = http_request("POST", api("/v1/web_calls"), "", R"({"agent_uuid":"agent_a"})");
  EXPECT_EQ(no_token.status, 401);

  // The box has no telephony line: one web call at once, an unused ticket counting.
  ASSERT_EQ(ticket("agent_b", &path, kLimitedToken), 200) << last_body_;
  EXPECT_EQ(ticket("agent_a", nullptr), 503) << last_body_;

  // Another site's page cannot use it; the refusal does not spend the ticket.
  {
    WsClient evil;
    EXPECT_EQ(evil.open(port_, path, "http://evil.example"), 403) << evil.head();
  }
  {
    WsClient no_ticket;
    EXPECT_EQ(no_ticket.open(port_, "/v1/web_calls/ws", origin()), 401) << no_ticket.head();
  }
  {
    WsClient ok;
    EXPECT_EQ(ok.open(port_, path, origin()), 101) << ok.head();
    // One use only.
    WsClient again;
    EXPECT_EQ(again.open(port_, path, origin()), 401) << again.head();
    // A message that is not a 20 ms frame ends it with 1003.
    ok.send(2, std::string(100, '\0'));
    std::vector<WsClient::Frame> got;
    bool closed = false;
    for (int i = 0; i < 100 && !closed; ++i) {
      ok.poll(20, got);
      for (const auto& f : got)
        if (f.opcode == 8) {
          closed = true;
          EXPECT_EQ(static_cast<uint8_t>(f.payload[0]) << 8 | static_cast<uint8_t>(f.payload[1]), 1003);
        }
    }
    EXPECT_TRUE(closed);
  }
}

// A browser that keeps sending but stops reading is dropped once the bounded buffers are full, and the call
// ends as if it had hung up.
TEST_F(WebCallE2E, BrowserThatStopsReadingIsDropped) {
  std::string path;
  ASSERT_EQ(ticket("agent_long", &path), 200) << last_body_;
  WsClient ws;
  ASSERT_EQ(ws.open(port_, path, origin(), 5000, 4096), 101) << ws.head();
  int16_t quiet[kFrame] = {};
  // Read the first message only (the call id), then never again.
  std::vector<WsClient::Frame> got;
  for (int i = 0; i < 20 && got.empty(); ++i) ws.poll(20, got);
  ASSERT_FALSE(got.empty());
  JsonPtr first = osvi::test::parse_json(got[0].payload);
  const std::string call_id = str(first.get(), "call_id");
  ASSERT_FALSE(call_id.empty()) << got[0].payload;
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t n = 1; std::chrono::steady_clock::now() - t0 < 25s; ++n) {
    if (!ws.send(2, frame_bytes(quiet))) break;  // the box closed the connection
    std::this_thread::sleep_until(t0 + std::chrono::milliseconds(20 * n));
  }
  JsonPtr call;
  for (int i = 0; i < 50 && !call; ++i) {
    JsonPtr c = get_data("/v1/call/" + call_id);
    if (c && str(c.get(), "status") != "in_progress")
      call = std::move(c);
    else
      std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(call) << daemon_->stderr_text();
  EXPECT_EQ(str(call.get(), "call_ended_by"), "user");
  EXPECT_EQ(str(call.get(), "call_ended_reason"), "customer-ended-call");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 20s);
  EXPECT_NE(daemon_->stderr_text().find("the browser stopped reading"), std::string::npos)
      << daemon_->stderr_text();
}

}  // namespace
