// OpenAiUpstream + HttpClient against a scripted HTTP server on 127.0.0.1 (a blocking server on its own
// thread; the client side runs on PollDriver as osvid runs it on sd-event).
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "osvi/net/poll_driver.hpp"
#include "osvi/net/upstream_openai.hpp"
#include "test_support.hpp"

namespace osvi::net {
namespace {

struct SeenRequest {
  std::string head;  // request line + headers
  std::string body;
};

// Accepts one connection at a time, reads one request (Content-Length bodies only: the client sends no
// chunked uploads), hands the socket to the scenario's handler and closes it.
class TestServer {
 public:
  class Conn {
   public:
    Conn(int fd, TestServer& s) : fd_(fd), s_(s) {}
    bool send(std::string_view bytes) {
      while (!bytes.empty()) {
        ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n <= 0) return false;
        bytes.remove_prefix(static_cast<size_t>(n));
      }
      return true;
    }
    // Sleeps unless the test is ending.
    bool pause(int ms) {
      for (int i = 0; i < ms && !s_.stop_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      return !s_.stop_;
    }
    void reset() {  // RST instead of FIN
      linger l{1, 0};
      setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }

   private:
    int fd_;
    TestServer& s_;
  };
  using Handler = std::function<void(Conn&, const SeenRequest&, int index)>;

  explicit TestServer(Handler handler) : handler_(std::move(handler)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { loop(); });
  }
  ~TestServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  std::vector<SeenRequest> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  void loop() {
    int index = 0;
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      int one = 1;
      setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      SeenRequest r;
      if (read_request(c, r)) {
        {
          std::lock_guard lock(mu_);
          seen_.push_back(r);
        }
        Conn conn(c, *this);
        handler_(conn, r, index++);
      }
      ::close(c);
    }
  }
  bool read_request(int c, SeenRequest& r) {
    std::string buf;
    char tmp[4096];
    size_t want = std::string::npos;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!stop_ && std::chrono::steady_clock::now() < deadline) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      ssize_t n = ::recv(c, tmp, sizeof tmp, 0);
      if (n <= 0) return false;
      buf.append(tmp, static_cast<size_t>(n));
      size_t end = buf.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      if (want == std::string::npos) {
        r.head = buf.substr(0, end + 2);
        size_t length = 0;
        std::string lower = r.head;
        for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (size_t cl = lower.find("content-length:"); cl != std::string::npos)
          length = std::stoul(lower.substr(cl + 15));
        want = end + 4 + length;
      }
      if (buf.size() >= want) {
        r.body = buf.substr(end + 4, want - end - 4);
        return true;
      }
    }
    return false;
  }

  Handler handler_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<SeenRequest> seen_;
  std::thread thread_;
};

std::string response_head(int status, const std::string& type, const std::string& extra = {}) {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: " + type + "\r\nConnection: close\r\n" +
         extra + "\r\n";
}
std::string full_response(int status, const std::string& type, const std::string& body) {
  return response_head(status, type, "Content-Length: " + std::to_string(body.size()) + "\r\n") + body;
}

const std::string kChatStream =
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
    "\"finish_reason\":null}]}\n\n"
    ": keep-alive\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" there\"},\"finish_reason\":null}]}\r\n\r\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":"
    "\"function\",\"function\":{\"name\":\"book\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_2\",\"type\":"
    "\"function\",\"function\":{\"name\":\"note\",\"arguments\":\"{}\"}}]},\"finish_reason\":null}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
    "\"{\\\"day\\\":\"}}]},\"finish_reason\":null}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
    "\"\\\"mon\\\"}\"}}]},\"finish_reason\":null}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
    "data: [DONE]\n\n";

struct ChatOutcome {
  bool sent = false;
  std::string deltas;
  std::optional<ChatResult> result;
  std::optional<UpstreamError> error;
  int terminal = 0;
  bool finished() const { return terminal > 0; }
};

class UpstreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = PollDriver::create();
    ASSERT_TRUE(d.ok());
    driver = std::move(d.value());
    OpenAiOptions o;
    o.now_ms = [this] { return clock_ms; };
    o.max_attempts = 1;
    make(o);
  }
  void make(OpenAiOptions o) {
    up.reset();
    up = OpenAiUpstream::create(driver->client(), std::move(o));
  }
  Endpoint endpoint(const TestServer& s) {
    Endpoint e;
    e.base_url = s.base();
    e.api_key = "sk-test";
    e.model = "m1";
    e.timeout_ms = 5000;
    return e;
  }
  ChatCallbacks chat_cb(ChatOutcome& o) {
    return {[&o] { o.sent = true; }, [&o](std::string_view d) { o.deltas += d; },
            [&o](ChatResult r) {
              o.result = std::move(r);
              ++o.terminal;
            },
            [&o](const UpstreamError& e) {
              o.error = e;
              ++o.terminal;
            }};
  }
  ChatRequest chat_request(const TestServer& s) {
    ChatRequest r;
    r.endpoint = endpoint(s);
    r.messages = {{"system", "brief", {}, {}},
                  {"user", "book monday", {}, {}},
                  {"assistant", "", {{"call_0", "lookup", "{}"}}, {}},
                  {"tool", "free", {}, "call_0"}};
    r.tools = {{"book", "books a table", R"({"type":"object","properties":{"day":{"type":"string"}}})"}};
    return r;
  }
  bool run(const std::function<bool()>& pred, int64_t ms = 5000) { return driver->run_until(pred, ms); }

  int64_t clock_ms = 1'000'000;
  std::unique_ptr<PollDriver> driver;
  std::unique_ptr<OpenAiUpstream> up;
};

TEST_F(UpstreamTest, SttSendsMultipartAndReadsText) {
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(full_response(200, "application/json", R"({"text":"book a table for two"})"));
  });
  SttRequest req;
  req.endpoint = endpoint(server);
  req.endpoint.model = "whisper-1";
  req.audio = {'O', 'g', 'g', 'S', 0, 1, 2, 3};
  req.language = "de";
  bool sent = false;
  std::optional<std::string> text;
  up->transcribe(req, {[&] { sent = true; }, [&](std::string t) { text = t; },
                       [&](const UpstreamError& e) { ADD_FAILURE() << e.message; }});
  ASSERT_TRUE(run([&] { return text.has_value(); }));
  EXPECT_TRUE(sent);
  EXPECT_EQ(*text, "book a table for two");
  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].head.rfind("POST /v1/audio/transcriptions HTTP/1.1", 0), 0u) << seen[0].head;
  EXPECT_NE(seen[0].head.find("Authorization: Bearer sk-test"), std::string::npos);
  EXPECT_NE(seen[0].head.find("multipart/form-data; boundary="), std::string::npos);
  const std::string& b = seen[0].body;
  EXPECT_NE(b.find("name=\"file\"; filename=\"utterance.ogg\"\r\nContent-Type: audio/ogg\r\n\r\nOggS"),
            std::string::npos)
      << b;
  EXPECT_NE(b.find(std::string("OggS\0\1\2\3", 8)), std::string::npos);
  EXPECT_NE(b.find("name=\"model\"\r\n\r\nwhisper-1\r\n"), std::string::npos);
  EXPECT_NE(b.find("name=\"language\"\r\n\r\nde\r\n"), std::string::npos);
  EXPECT_NE(b.find("name=\"response_format\"\r\n\r\njson\r\n"), std::string::npos);
  EXPECT_EQ(b.find("name=\"prompt\""), std::string::npos);
}

TEST_F(UpstreamTest, SttWithoutTextIsAProtocolError) {
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(full_response(200, "application/json", R"({"txt":"x"})"));
  });
  SttRequest req;
  req.endpoint = endpoint(server);
  std::optional<UpstreamError> err;
  up->transcribe(req, {{}, [](std::string) { ADD_FAILURE(); }, [&](const UpstreamError& e) { err = e; }});
  ASSERT_TRUE(run([&] { return err.has_value(); }));
  EXPECT_EQ(err->kind, UpstreamError::Kind::protocol);
  EXPECT_EQ(err->stage, UpstreamStage::stt);
}

TEST_F(UpstreamTest, ChatStreamsContentAndAssemblesToolCalls) {
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(response_head(200, "text/event-stream; charset=utf-8"));
    c.send(kChatStream);
  });
  ChatOutcome o;
  up->chat(chat_request(server), chat_cb(o));
  EXPECT_FALSE(o.sent);  // nothing re-entrant
  ASSERT_TRUE(run([&] { return o.finished(); }));
  ASSERT_TRUE(o.result) << o.error->message;
  EXPECT_TRUE(o.sent);
  EXPECT_EQ(o.deltas, "Hello there");
  EXPECT_EQ(o.result->text, "Hello there");
  EXPECT_EQ(o.result->finish_reason, "tool_calls");
  ASSERT_EQ(o.result->tool_calls.size(), 2u);
  EXPECT_EQ(o.result->tool_calls[0], (ToolCall{"call_1", "book", R"({"day":"mon"})"}));
  EXPECT_EQ(o.result->tool_calls[1], (ToolCall{"call_2", "note", "{}"}));

  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].head.rfind("POST /v1/chat/completions HTTP/1.1", 0), 0u);
  cJSON* doc = cJSON_Parse(seen[0].body.c_str());
  ASSERT_TRUE(doc) << seen[0].body;
  EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(doc, "stream")));
  EXPECT_STREQ(cJSON_GetObjectItem(doc, "model")->valuestring, "m1");
  cJSON* msgs = cJSON_GetObjectItem(doc, "messages");
  ASSERT_EQ(cJSON_GetArraySize(msgs), 4);
  cJSON* assistant = cJSON_GetArrayItem(msgs, 2);
  EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(assistant, "content")));
  cJSON* call = cJSON_GetArrayItem(cJSON_GetObjectItem(assistant, "tool_calls"), 0);
  EXPECT_STREQ(cJSON_GetObjectItem(call, "type")->valuestring, "function");
  EXPECT_STREQ(cJSON_GetObjectItem(cJSON_GetObjectItem(call, "function"), "name")->valuestring, "lookup");
  EXPECT_STREQ(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 3), "tool_call_id")->valuestring, "call_0");
  cJSON* tool = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "tools"), 0);
  EXPECT_STREQ(cJSON_GetObjectItem(tool, "type")->valuestring, "function");
  EXPECT_TRUE(cJSON_IsObject(cJSON_GetObjectItem(cJSON_GetObjectItem(tool, "function"), "parameters")));
  cJSON_Delete(doc);
}

TEST_F(UpstreamTest, ChatStreamOneBytePerWrite) {
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(response_head(200, "text/event-stream"));
    for (size_t i = 0; i < kChatStream.size(); ++i) {
      if (!c.send(kChatStream.substr(i, 1))) return;
      if (i % 4 == 0 && !c.pause(1)) return;
    }
  });
  ChatOutcome o;
  up->chat(chat_request(server), chat_cb(o));
  ASSERT_TRUE(run([&] { return o.finished(); }, 20000));
  ASSERT_TRUE(o.result) << o.error->message;
  EXPECT_EQ(o.result->text, "Hello there");
  ASSERT_EQ(o.result->tool_calls.size(), 2u);
  EXPECT_EQ(o.result->tool_calls[0].arguments_json, R"({"day":"mon"})");
}

TEST_F(UpstreamTest, ChatEndWithFinishReasonButNoDoneSucceeds) {
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(response_head(200, "text/event-stream"));
    c.send("data: {\"choices\":[{\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}\n\n");
  });
  ChatOutcome o;
  up->chat(chat_request(server), chat_cb(o));
  ASSERT_TRUE(run([&] { return o.finished(); }));
  ASSERT_TRUE(o.result);
  EXPECT_EQ(o.result->finish_reason, "stop");
}

struct ChatFailureCase {
  const char* name;
  std::function<void(TestServer::Conn&)> respond;
  UpstreamError::Kind kind;
  int status;
  const char* message_part;
};

class ChatFailures : public UpstreamTest, public ::testing::WithParamInterface<ChatFailureCase> {};

TEST_P(ChatFailures, AreReportedOnce) {
  const auto& p = GetParam();
  TestServer server([&](TestServer::Conn& c, const SeenRequest&, int) { p.respond(c); });
  ChatOutcome o;
  up->chat(chat_request(server), chat_cb(o));
  ASSERT_TRUE(run([&] { return o.finished(); }));
  driver->run_for(50);
  EXPECT_EQ(o.terminal, 1);
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error->kind, p.kind) << o.error->message;
  EXPECT_EQ(o.error->http_status, p.status);
  EXPECT_EQ(o.error->stage, UpstreamStage::llm);
  EXPECT_EQ(o.error->provider, server.base());
  EXPECT_NE(o.error->message.find(p.message_part), std::string::npos) << o.error->message;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ChatFailures,
    ::testing::Values(
        ChatFailureCase{"ErrorEvent",
                        [](TestServer::Conn& c) {
                          c.send(response_head(200, "text/event-stream"));
                          c.send(
                              "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
                              "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n");
                        },
                        UpstreamError::Kind::protocol, 0, "overloaded"},
        ChatFailureCase{"Http500WithJsonError",
                        [](TestServer::Conn& c) {
                          c.send(
                              full_response(500, "application/json",
                                            R"({"error":{"message":"model melted","type":"server_error"}})"));
                        },
                        UpstreamError::Kind::http, 500, "model melted"},
        ChatFailureCase{
            "WrongContentType",
            [](TestServer::Conn& c) { c.send(full_response(200, "application/json", R"({"choices":[]})")); },
            UpstreamError::Kind::protocol, 200, "wrong content type"},
        ChatFailureCase{"BadJsonInData",
                        [](TestServer::Conn& c) {
                          c.send(response_head(200, "text/event-stream"));
                          c.send(
                              "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {not json\n\n");
                        },
                        UpstreamError::Kind::protocol, 0, "bad JSON"},
        ChatFailureCase{"ResetMidStream",
                        [](TestServer::Conn& c) {
                          c.send(response_head(200, "text/event-stream"));
                          c.send("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"cho");
                          c.pause(50);
                          c.reset();
                        },
                        UpstreamError::Kind::reset, 200, ""},
        ChatFailureCase{"CleanEndWithoutDone",
                        [](TestServer::Conn& c) {
                          c.send(response_head(200, "text/event-stream"));
                          c.send("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n");
                        },
                        UpstreamError::Kind::reset, 200, "without [DONE]"}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

TEST_F(UpstreamTest, FirstTokenWatchdogFires) {
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(response_head(200, "text/event-stream"));
    c.send(": thinking\n\n");
    c.pause(3000);
  });
  ChatRequest req = chat_request(server);
  req.endpoint.first_byte_timeout_ms = 200;
  ChatOutcome o;
  auto start = std::chrono::steady_clock::now();
  up->chat(req, chat_cb(o));
  ASSERT_TRUE(run([&] { return o.finished(); }, 2000));
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error->kind, UpstreamError::Kind::timeout);
  EXPECT_NE(o.error->message.find("first token"), std::string::npos);
  EXPECT_GE(took, std::chrono::milliseconds(190));
  EXPECT_LT(took, std::chrono::milliseconds(1500));
  EXPECT_EQ(up->in_flight(), 0u);
  EXPECT_TRUE(run([&] { return driver->client().active() == 0; }, 1000));
}

TEST_F(UpstreamTest, CancelStopsCallbacks) {
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(response_head(200, "text/event-stream"));
    for (int i = 0; i < 40; ++i) {
      if (!c.send("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n") || !c.pause(10)) return;
    }
    c.send("data: [DONE]\n\n");
  });
  ChatOutcome o;
  RequestId id = 0;
  ChatCallbacks cb = chat_cb(o);
  int deltas = 0;
  cb.on_delta = [&](std::string_view) {
    if (++deltas == 2) up->cancel(id);  // from inside the callback
  };
  id = up->chat(chat_request(server), cb);
  ASSERT_TRUE(run([&] { return deltas >= 2; }));
  driver->run_for(600);
  EXPECT_EQ(deltas, 2);
  EXPECT_EQ(o.terminal, 0);
  EXPECT_EQ(up->in_flight(), 0u);
  EXPECT_EQ(driver->client().active(), 0u);
}

TEST_F(UpstreamTest, TtsStreamsBytesInOrder) {
  std::string audio;
  for (int i = 0; i < 20000; ++i) audio.push_back(static_cast<char>(i * 7 % 251));
  TestServer server([&](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(response_head(200, "audio/pcm", "Content-Length: " + std::to_string(audio.size()) + "\r\n"));
    for (size_t i = 0; i < audio.size(); i += 1000) {
      if (!c.send(audio.substr(i, 1000)) || !c.pause(2)) return;
    }
  });
  TtsRequest req;
  req.endpoint = endpoint(server);
  req.endpoint.first_byte_timeout_ms = 2000;
  req.text = "Hello";
  std::string got;
  int chunks = 0;
  bool done = false, sent = false;
  up->speak(req, {[&] { sent = true; },
                  [&](std::span<const uint8_t> b) {
                    got.append(reinterpret_cast<const char*>(b.data()), b.size());
                    ++chunks;
                  },
                  [&] { done = true; }, [&](const UpstreamError& e) { ADD_FAILURE() << e.message; }});
  ASSERT_TRUE(run([&] { return done; }));
  EXPECT_TRUE(sent);
  EXPECT_EQ(got, audio);
  EXPECT_GT(chunks, 1);
  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].head.rfind("POST /v1/audio/speech", 0), 0u);
  EXPECT_NE(seen[0].body.find("\"input\":\"Hello\""), std::string::npos) << seen[0].body;
  EXPECT_NE(seen[0].body.find("\"response_format\":\"pcm\""), std::string::npos);
}

TEST_F(UpstreamTest, TtsJsonOn2xxIsWrongContentType) {
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(full_response(200, "application/json", R"({"audio":"base64..."})"));
  });
  TtsRequest req;
  req.endpoint = endpoint(server);
  req.text = "x";
  std::optional<UpstreamError> err;
  up->speak(req, {{},
                  [](std::span<const uint8_t>) { ADD_FAILURE(); },
                  [] { ADD_FAILURE(); },
                  [&](const UpstreamError& e) { err = e; }});
  ASSERT_TRUE(run([&] { return err.has_value(); }));
  EXPECT_EQ(err->kind, UpstreamError::Kind::protocol);
  EXPECT_NE(err->message.find("wrong content type"), std::string::npos);
}

TEST_F(UpstreamTest, RetriesA503OnceBeforeAnythingWasDelivered) {
  OpenAiOptions opts;
  opts.now_ms = [this] { return clock_ms; };
  opts.max_attempts = 2;
  opts.retry_delay_ms = 50;
  make(opts);
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int index) {
    if (index == 0) {
      c.send(full_response(503, "application/json", R"({"error":{"message":"busy"}})"));
    } else {
      c.send(response_head(200, "text/event-stream"));
      c.send(kChatStream);
    }
  });
  ChatOutcome o;
  up->chat(chat_request(server), chat_cb(o));
  ASSERT_TRUE(run([&] { return o.finished(); }));
  ASSERT_TRUE(o.result) << o.error->message;
  EXPECT_EQ(server.seen().size(), 2u);

  // Both attempts fail: the error counts them.
  TestServer down(
      [](TestServer::Conn& c, const SeenRequest&, int) { c.send(full_response(503, "text/plain", "busy")); });
  ChatOutcome o2;
  up->chat(chat_request(down), chat_cb(o2));
  ASSERT_TRUE(run([&] { return o2.finished(); }));
  ASSERT_TRUE(o2.error);
  EXPECT_EQ(o2.error->attempts, 2);
  EXPECT_EQ(o2.error->http_status, 503);
}

TEST_F(UpstreamTest, ConnectionRefusedIsConnectError) {
  ChatRequest req;
  req.endpoint.base_url = "http://127.0.0.1:" + std::to_string(test::free_loopback_port()) + "/v1";
  ChatOutcome o;
  up->chat(req, chat_cb(o));
  ASSERT_TRUE(run([&] { return o.finished(); }));
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error->kind, UpstreamError::Kind::connect);
}

TEST_F(UpstreamTest, ConnectionRefusedIsRetriedOnceAndCounted) {
  OpenAiOptions opts;
  opts.now_ms = [this] { return clock_ms; };
  opts.max_attempts = 2;
  opts.retry_delay_ms = 100;
  make(opts);
  SttRequest req;
  req.endpoint.base_url = "http://127.0.0.1:" + std::to_string(test::free_loopback_port()) + "/v1";
  std::optional<UpstreamError> err;
  bool sent = false;
  auto start = std::chrono::steady_clock::now();
  up->transcribe(req, {[&] { sent = true; }, [](std::string) { ADD_FAILURE(); },
                       [&](const UpstreamError& e) { err = e; }});
  ASSERT_TRUE(run([&] { return err.has_value(); }));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(95));  // the retry delay
  EXPECT_EQ(err->kind, UpstreamError::Kind::connect);
  EXPECT_EQ(err->attempts, 2);
  EXPECT_FALSE(sent);
}

TEST_F(UpstreamTest, BreakerOpensAfterFailuresAndHalfOpensAfterCoolDown) {
  std::atomic<bool> healthy{false};
  TestServer server([&](TestServer::Conn& c, const SeenRequest&, int) {
    if (!healthy) {
      c.send(full_response(500, "text/plain", "down"));
      return;
    }
    c.send(response_head(200, "audio/pcm"));
    c.send("abcd");
  });
  TtsRequest req;
  req.endpoint = endpoint(server);
  req.text = "x";
  auto speak = [&]() {
    struct Out {
      bool done = false;
      std::optional<UpstreamError> err;
    };
    auto out = std::make_shared<Out>();
    up->speak(req, {{}, {}, [out] { out->done = true; }, [out](const UpstreamError& e) { out->err = e; }});
    return out;
  };
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(up->breaker_open(server.base()));
    auto out = speak();
    ASSERT_TRUE(run([&] { return out->done || out->err; }));
    ASSERT_TRUE(out->err);
    EXPECT_EQ(out->err->kind, UpstreamError::Kind::http);
  }
  EXPECT_TRUE(up->breaker_open(server.base()));
  EXPECT_FALSE(up->breaker_open("http://127.0.0.1:1/other"));
  auto refused = speak();
  EXPECT_FALSE(refused->err);  // asynchronous, not from inside speak()
  ASSERT_TRUE(run([&] { return refused->err.has_value(); }));
  EXPECT_EQ(refused->err->kind, UpstreamError::Kind::breaker_open);
  EXPECT_EQ(server.seen().size(), 3u);

  clock_ms += 15000;  // cool-down over: half-open
  EXPECT_FALSE(up->breaker_open(server.base()));
  healthy = true;
  auto trial = speak();
  EXPECT_TRUE(up->breaker_open(server.base()));  // one trial at a time
  auto second = speak();
  ASSERT_TRUE(run([&] { return trial->done && second->err.has_value(); }));
  EXPECT_EQ(second->err->kind, UpstreamError::Kind::breaker_open);
  EXPECT_FALSE(up->breaker_open(server.base()));
  auto after = speak();
  ASSERT_TRUE(run([&] { return after->done || after->err; }));
  EXPECT_TRUE(after->done);
  EXPECT_EQ(server.seen().size(), 5u);
}

// Telemetry's view of the same breaker: closed → open (3 failures) → half_open after the cool-down → closed.
TEST_F(UpstreamTest, BreakersReportTheirStateForTelemetry) {
  std::atomic<bool> healthy{false};
  TestServer server([&](TestServer::Conn& c, const SeenRequest&, int) {
    if (!healthy) {
      c.send(full_response(500, "text/plain", "down"));
      return;
    }
    c.send(response_head(200, "audio/pcm"));
    c.send("abcd");
  });
  EXPECT_TRUE(up->breakers().empty());
  TtsRequest req;
  req.endpoint = endpoint(server);
  req.text = "x";
  auto speak_once = [&] {
    bool ended = false;
    up->speak(req, {{}, {}, [&] { ended = true; }, [&](const UpstreamError&) { ended = true; }});
    return run([&] { return ended; });
  };
  auto state = [&]() -> std::pair<std::string, int> {
    const auto b = up->breakers();
    if (b.size() != 1 || b[0].base_url != server.base()) return {"?", -1};
    return {b[0].state, b[0].failures};
  };
  ASSERT_TRUE(speak_once());
  EXPECT_EQ(state(), (std::pair<std::string, int>{"closed", 1}));
  ASSERT_TRUE(speak_once());
  ASSERT_TRUE(speak_once());
  EXPECT_EQ(state(), (std::pair<std::string, int>{"open", 3}));
  clock_ms += 15000;
  EXPECT_EQ(state(), (std::pair<std::string, int>{"half_open", 3}));
  healthy = true;
  ASSERT_TRUE(speak_once());
  EXPECT_EQ(state(), (std::pair<std::string, int>{"closed", 0}));
}

TEST_F(UpstreamTest, FailedTrialReopensTheBreaker) {
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(full_response(502, "text/plain", "bad gateway"));
  });
  TtsRequest req;
  req.endpoint = endpoint(server);
  int errors = 0;
  for (int i = 0; i < 4; ++i) {
    if (i == 3) clock_ms += 15000;
    int before = errors;
    up->speak(req, {{}, {}, {}, [&](const UpstreamError&) { ++errors; }});
    ASSERT_TRUE(run([&] { return errors > before; }));
  }
  EXPECT_EQ(server.seen().size(), 4u);
  EXPECT_TRUE(up->breaker_open(server.base()));
  clock_ms += 14000;
  EXPECT_TRUE(up->breaker_open(server.base()));
  clock_ms += 1000;
  EXPECT_FALSE(up->breaker_open(server.base()));
}

// ---- provider dialects ----

// The test server's root without the "/v1" the OpenAI tests use.
std::string root_of(const TestServer& s) {
  std::string b = s.base();
  return b.substr(0, b.size() - 3);
}
bool has_header(const SeenRequest& r, const std::string& line) {
  return r.head.find("\r\n" + line + "\r\n") != std::string::npos;
}

TEST_F(UpstreamTest, AzureAddressesTheDeploymentWithApiVersionAndApiKeyHeader) {
  TestServer server([](TestServer::Conn& c, const SeenRequest& r, int) {
    if (r.head.find("/chat/completions") != std::string::npos) {
      c.send(response_head(200, "text/event-stream"));
      c.send(
          "data: {\"choices\":[{\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}\n\ndata: "
          "[DONE]\n\n");
    } else if (r.head.find("/audio/transcriptions") != std::string::npos) {
      c.send(full_response(200, "application/json", R"({"text":"hi"})"));
    } else {
      c.send(full_response(200, "audio/pcm", std::string(64, '\1')));
    }
  });
  Endpoint ep = endpoint(server);
  ep.provider = "azure_openai";
  ep.base_url = root_of(server);
  ep.model = "gpt4o-deploy";

  ChatRequest chat = chat_request(server);
  chat.endpoint = ep;
  ChatOutcome o;
  up->chat(chat, chat_cb(o));
  ASSERT_TRUE(run([&] { return o.finished(); }));
  ASSERT_TRUE(o.result) << o.error->message;
  EXPECT_EQ(o.result->text, "ok");

  SttRequest stt;
  stt.endpoint = ep;
  stt.endpoint.model = "whisper-deploy";
  stt.endpoint.api_version = "2025-03-01-preview";
  stt.audio = {'O', 'g', 'g', 'S'};
  std::optional<std::string> text;
  up->transcribe(
      stt,
      {{}, [&](std::string t) { text = t; }, [&](const UpstreamError& e) { ADD_FAILURE() << e.message; }});
  ASSERT_TRUE(run([&] { return text.has_value(); }));
  EXPECT_EQ(*text, "hi");

  TtsRequest tts;
  tts.endpoint = ep;
  tts.endpoint.model = "tts-deploy";
  tts.text = "x";
  size_t bytes = 0;
  bool done = false;
  up->speak(tts, {{},
                  [&](std::span<const uint8_t> b) { bytes += b.size(); },
                  [&] { done = true; },
                  [&](const UpstreamError& e) { ADD_FAILURE() << e.message; }});
  ASSERT_TRUE(run([&] { return done; }));
  EXPECT_EQ(bytes, 64u);

  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].head.rfind(
                "POST /openai/deployments/gpt4o-deploy/chat/completions?api-version=2024-10-21 HTTP/1.1", 0),
            0u)
      << seen[0].head;
  EXPECT_EQ(seen[1].head.rfind(
                "POST /openai/deployments/whisper-deploy/audio/transcriptions?api-version=2025-03-01-preview "
                "HTTP/1.1",
                0),
            0u)
      << seen[1].head;
  EXPECT_EQ(seen[2].head.rfind(
                "POST /openai/deployments/tts-deploy/audio/speech?api-version=2024-10-21 HTTP/1.1", 0),
            0u)
      << seen[2].head;
  for (const auto& r : seen) {
    EXPECT_TRUE(has_header(r, "api-key: sk-test")) << r.head;
    EXPECT_EQ(r.head.find("Authorization:"), std::string::npos) << r.head;
  }
}

TEST_F(UpstreamTest, GeminiAndGroqSpeakOpenAiUnderTheirOwnRoot) {
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(response_head(200, "text/event-stream"));
    c.send(
        "data: {\"choices\":[{\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}\n\ndata: "
        "[DONE]\n\n");
  });
  for (const char* provider : {"gemini", "groq"}) {
    ChatRequest chat = chat_request(server);
    chat.endpoint.provider = provider;
    chat.endpoint.base_url = root_of(server) + "/" + provider + "/openai";
    ChatOutcome o;
    up->chat(chat, chat_cb(o));
    ASSERT_TRUE(run([&] { return o.finished(); }));
    ASSERT_TRUE(o.result) << o.error->message;
    EXPECT_EQ(o.result->text, "ok");
  }
  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].head.rfind("POST /gemini/openai/chat/completions HTTP/1.1", 0), 0u) << seen[0].head;
  EXPECT_EQ(seen[1].head.rfind("POST /groq/openai/chat/completions HTTP/1.1", 0), 0u) << seen[1].head;
  for (const auto& r : seen) EXPECT_TRUE(has_header(r, "Authorization: Bearer sk-test")) << r.head;
}

TEST_F(UpstreamTest, AStageTheProviderDoesNotOfferFailsWithoutARequest) {
  TestServer server([](TestServer::Conn&, const SeenRequest&, int) { ADD_FAILURE() << "request sent"; });
  std::vector<UpstreamError> errors;
  auto err = [&](const UpstreamError& e) { errors.push_back(e); };
  SttRequest stt;
  stt.endpoint = endpoint(server);
  stt.endpoint.provider = "anthropic";
  up->transcribe(stt, {{}, [](std::string) { ADD_FAILURE(); }, err});
  TtsRequest tts;
  tts.endpoint = endpoint(server);
  tts.endpoint.provider = "gemini";
  up->speak(tts, {{}, [](std::span<const uint8_t>) { ADD_FAILURE(); }, [] { ADD_FAILURE(); }, err});
  ASSERT_TRUE(run([&] { return errors.size() == 2; }));
  EXPECT_EQ(errors[0].kind, UpstreamError::Kind::protocol);
  EXPECT_NE(errors[0].message.find("anthropic serves chat only"), std::string::npos) << errors[0].message;
  EXPECT_NE(errors[1].message.find("gemini serves chat and embeddings only"), std::string::npos)
      << errors[1].message;
  EXPECT_TRUE(server.seen().empty());
}

const std::string kAnthropicStream =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":"
    "\"assistant\",\"content\":[],\"stop_reason\":null}}\n\n"
    "event: content_block_start\n"
    "data: "
    "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
    "event: ping\ndata: {\"type\":\"ping\"}\n\n"
    "event: content_block_delta\n"
    "data: "
    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}"
    "\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" "
    "there\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":"
    "\"toolu_1\",\"name\":\"book\",\"input\":{}}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\"{\\\"day\\\":\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\"\\\"mon\\\"}\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
    "event: message_delta\n"
    "data: "
    "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":9}}"
    "\n\n"
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

// Structured output (the post-call analysis): response_format goes out verbatim in the OpenAI dialects; the
// Messages API has no such field and gets none; text that is not a JSON object fails before any request.
TEST_F(UpstreamTest, ResponseFormatIsSentByTheOpenAiDialectsOnly) {
  TestServer server([](TestServer::Conn& c, const SeenRequest& r, int) {
    if (r.head.rfind("POST /v1/messages", 0) == 0) {
      c.send(response_head(200, "text/event-stream"));
      c.send(kAnthropicStream);
      return;
    }
    c.send(response_head(200, "text/event-stream"));
    c.send(
        "data: {\"choices\":[{\"delta\":{\"content\":\"{}\"},\"finish_reason\":\"stop\"}]}\n\ndata: "
        "[DONE]\n\n");
  });
  const std::string format =
      R"({"type":"json_schema","json_schema":{"name":"a","strict":true,"schema":{"type":"object"}}})";
  for (const char* provider : {"openai", "anthropic"}) {
    ChatRequest chat = chat_request(server);
    chat.tools.clear();
    chat.endpoint.provider = provider;
    chat.response_format_json = format;
    ChatOutcome o;
    up->chat(chat, chat_cb(o));
    ASSERT_TRUE(run([&] { return o.finished(); }));
    ASSERT_TRUE(o.result) << provider << ": " << o.error->message;
  }
  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 2u);
  JsonPtr openai(cJSON_Parse(seen[0].body.c_str()));
  ASSERT_TRUE(openai) << seen[0].body;
  const cJSON* rf = cJSON_GetObjectItem(openai.get(), "response_format");
  ASSERT_TRUE(cJSON_IsObject(rf)) << seen[0].body;
  std::unique_ptr<char, decltype(&cJSON_free)> printed(cJSON_PrintUnformatted(rf), &cJSON_free);
  EXPECT_EQ(std::string(printed.get()), format);
  JsonPtr anthropic(cJSON_Parse(seen[1].body.c_str()));
  ASSERT_TRUE(anthropic) << seen[1].body;
  EXPECT_EQ(cJSON_GetObjectItem(anthropic.get(), "response_format"), nullptr) << seen[1].body;

  ChatRequest bad = chat_request(server);
  bad.response_format_json = "[1]";
  ChatOutcome o;
  up->chat(bad, chat_cb(o));
  ASSERT_TRUE(run([&] { return o.finished(); }));
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error->kind, UpstreamError::Kind::protocol);
  EXPECT_NE(o.error->message.find("response_format"), std::string::npos) << o.error->message;
  EXPECT_EQ(server.seen().size(), 2u);
}

TEST_F(UpstreamTest, AnthropicSpeaksTheMessagesApiAndReadsItsEvents) {
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(response_head(200, "text/event-stream; charset=utf-8"));
    c.send(kAnthropicStream);
  });
  ChatRequest chat = chat_request(server);
  chat.endpoint.provider = "anthropic";
  chat.messages.push_back({"assistant", "", {}, {}});  // an empty turn is never sent
  chat.messages.push_back({"user", "and tuesday?", {}, {}});
  ChatOutcome o;
  up->chat(chat, chat_cb(o));
  ASSERT_TRUE(run([&] { return o.finished(); }));
  ASSERT_TRUE(o.result) << o.error->message;
  EXPECT_EQ(o.deltas, "Hello there");
  EXPECT_EQ(o.result->text, "Hello there");
  EXPECT_EQ(o.result->finish_reason, "tool_calls");
  ASSERT_EQ(o.result->tool_calls.size(), 1u);
  EXPECT_EQ(o.result->tool_calls[0], (ToolCall{"toolu_1", "book", R"({"day":"mon"})"}));

  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].head.rfind("POST /v1/messages HTTP/1.1", 0), 0u) << seen[0].head;
  EXPECT_TRUE(has_header(seen[0], "x-api-key: sk-test")) << seen[0].head;
  EXPECT_TRUE(has_header(seen[0], "anthropic-version: 2023-06-01")) << seen[0].head;
  EXPECT_EQ(seen[0].head.find("Authorization:"), std::string::npos);
  JsonPtr doc(cJSON_Parse(seen[0].body.c_str()));
  ASSERT_TRUE(doc) << seen[0].body;
  EXPECT_STREQ(cJSON_GetObjectItem(doc.get(), "system")->valuestring, "brief");
  EXPECT_EQ(cJSON_GetObjectItem(doc.get(), "max_tokens")->valueint, 512);
  EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(doc.get(), "stream")));
  cJSON* msgs = cJSON_GetObjectItem(doc.get(), "messages");
  // user, assistant (tool_use), user (tool_result + the new words, merged: roles alternate)
  ASSERT_EQ(cJSON_GetArraySize(msgs), 3) << seen[0].body;
  cJSON* m0 = cJSON_GetArrayItem(msgs, 0);
  EXPECT_STREQ(cJSON_GetObjectItem(m0, "role")->valuestring, "user");
  EXPECT_STREQ(
      cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(m0, "content"), 0), "text")->valuestring,
      "book monday");
  cJSON* use = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 1), "content"), 0);
  EXPECT_STREQ(cJSON_GetObjectItem(use, "type")->valuestring, "tool_use");
  EXPECT_STREQ(cJSON_GetObjectItem(use, "id")->valuestring, "call_0");
  EXPECT_TRUE(cJSON_IsObject(cJSON_GetObjectItem(use, "input")));
  cJSON* m2 = cJSON_GetArrayItem(msgs, 2);
  EXPECT_STREQ(cJSON_GetObjectItem(m2, "role")->valuestring, "user");
  cJSON* result = cJSON_GetArrayItem(cJSON_GetObjectItem(m2, "content"), 0);
  EXPECT_STREQ(cJSON_GetObjectItem(result, "type")->valuestring, "tool_result");
  EXPECT_STREQ(cJSON_GetObjectItem(result, "tool_use_id")->valuestring, "call_0");
  EXPECT_STREQ(
      cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(m2, "content"), 1), "text")->valuestring,
      "and tuesday?");
  cJSON* tool = cJSON_GetArrayItem(cJSON_GetObjectItem(doc.get(), "tools"), 0);
  EXPECT_STREQ(cJSON_GetObjectItem(tool, "name")->valuestring, "book");
  EXPECT_TRUE(cJSON_IsObject(cJSON_GetObjectItem(tool, "input_schema")));
}

TEST_F(UpstreamTest, AnthropicOpensWithAUserTurnAndKeepsLateInstructionsInPlace) {
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(response_head(200, "text/event-stream"));
    c.send(kAnthropicStream);
  });
  ChatRequest chat = chat_request(server);
  chat.endpoint.provider = "anthropic";
  chat.tools.clear();
  chat.messages = {{"system", "brief", {}, {}},
                   {"assistant", "Hello, this is the clinic.", {}, {}},
                   {"user", "hi", {}, {}},
                   {"system", "The transfer failed.", {}, {}}};
  ChatOutcome o;
  up->chat(chat, chat_cb(o));
  ASSERT_TRUE(run([&] { return o.finished(); }));
  ASSERT_TRUE(o.result) << o.error->message;
  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 1u);
  JsonPtr doc(cJSON_Parse(seen[0].body.c_str()));
  ASSERT_TRUE(doc) << seen[0].body;
  EXPECT_STREQ(cJSON_GetObjectItem(doc.get(), "system")->valuestring, "brief");
  EXPECT_EQ(cJSON_GetObjectItem(doc.get(), "tools"), nullptr);
  cJSON* msgs = cJSON_GetObjectItem(doc.get(), "messages");
  ASSERT_EQ(cJSON_GetArraySize(msgs), 3) << seen[0].body;
  auto text = [&](int m, int block) -> std::string {
    cJSON* b = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, m), "content"), block);
    cJSON* t = cJSON_GetObjectItem(b, "text");
    return cJSON_IsString(t) ? t->valuestring : "<none>";
  };
  EXPECT_STREQ(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "role")->valuestring, "user");
  EXPECT_EQ(text(0, 0), "(The call is connected.)");
  EXPECT_EQ(text(1, 0), "Hello, this is the clinic.");
  EXPECT_STREQ(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 2), "role")->valuestring, "user");
  EXPECT_EQ(text(2, 0), "hi");
  EXPECT_EQ(text(2, 1), "The transfer failed.");
}

TEST_F(UpstreamTest, AnthropicErrorEventIsAProtocolError) {
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(response_head(200, "text/event-stream"));
    c.send(
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
        "\"Overloaded\"}}\n\n");
  });
  ChatRequest chat = chat_request(server);
  chat.endpoint.provider = "anthropic";
  ChatOutcome o;
  up->chat(chat, chat_cb(o));
  ASSERT_TRUE(run([&] { return o.finished(); }));
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error->kind, UpstreamError::Kind::protocol);
  EXPECT_NE(o.error->message.find("Overloaded"), std::string::npos) << o.error->message;
}

// ---- bounded answers ----

TEST_F(UpstreamTest, AnSseEventOverTheLimitEndsTheRequest) {
  // Many short data lines: each line is within the line limit, the event is not.
  const size_t lines = kMaxSseEventBytes / 1000 + 2;
  TestServer server([&](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(response_head(200, "text/event-stream"));
    const std::string line = "data: " + std::string(999, 'x') + "\n";
    for (size_t i = 0; i < lines; ++i)
      if (!c.send(line)) return;
    c.send("\n");
  });
  ChatOutcome o;
  up->chat(chat_request(server), chat_cb(o));
  ASSERT_TRUE(run([&] { return o.finished(); }));
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error->kind, UpstreamError::Kind::protocol);
  EXPECT_NE(o.error->message.find("event larger than " + std::to_string(kMaxSseEventBytes)),
            std::string::npos)
      << o.error->message;
}

TEST_F(UpstreamTest, ChatTextOverTheLimitEndsTheRequest) {
  OpenAiOptions opt;
  opt.max_attempts = 1;
  opt.max_chat_text_bytes = 20;
  make(opt);
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(response_head(200, "text/event-stream"));
    for (int i = 0; i < 5; ++i)
      c.send("data: {\"choices\":[{\"delta\":{\"content\":\"0123456789\"},\"finish_reason\":null}]}\n\n");
    c.send("data: [DONE]\n\n");
  });
  ChatOutcome o;
  up->chat(chat_request(server), chat_cb(o));
  ASSERT_TRUE(run([&] { return o.finished(); }));
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.terminal, 1);
  EXPECT_EQ(o.deltas, "01234567890123456789");  // what fit was delivered, nothing after
  EXPECT_NE(o.error->message.find("chat answer longer than the limit of 20 bytes"), std::string::npos)
      << o.error->message;
}

TEST_F(UpstreamTest, ToolArgumentsOverTheLimitEndTheRequest) {
  OpenAiOptions opt;
  opt.max_attempts = 1;
  opt.max_tool_arguments_bytes = 16;
  make(opt);
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(response_head(200, "text/event-stream"));
    for (int i = 0; i < 3; ++i)
      c.send(
          "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c\",\"function\":{\"name\":"
          "\"book\",\"arguments\":\"aaaaaaaa\"}}]},\"finish_reason\":null}]}\n\n");
    c.send("data: [DONE]\n\n");
  });
  ChatOutcome o;
  up->chat(chat_request(server), chat_cb(o));
  ASSERT_TRUE(run([&] { return o.finished(); }));
  ASSERT_TRUE(o.error);
  EXPECT_NE(o.error->message.find("arguments of tool call book"), std::string::npos) << o.error->message;
  EXPECT_NE(o.error->message.find("limit of 16 bytes"), std::string::npos) << o.error->message;
}

TEST_F(UpstreamTest, SpeechOverTheLimitEndsTheRequest) {
  OpenAiOptions opt;
  opt.max_attempts = 1;
  opt.max_speech_bytes = 3000;
  make(opt);
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(response_head(200, "audio/pcm"));
    for (int i = 0; i < 10; ++i)
      if (!c.send(std::string(1000, '\2')) || !c.pause(2)) return;
  });
  TtsRequest req;
  req.endpoint = endpoint(server);
  req.text = "long";
  size_t bytes = 0;
  std::optional<UpstreamError> err;
  up->speak(req, {{},
                  [&](std::span<const uint8_t> b) { bytes += b.size(); },
                  [] { ADD_FAILURE(); },
                  [&](const UpstreamError& e) { err = e; }});
  ASSERT_TRUE(run([&] { return err.has_value(); }));
  EXPECT_LE(bytes, 3000u);
  EXPECT_EQ(err->kind, UpstreamError::Kind::protocol);
  EXPECT_NE(err->message.find("speech longer than the limit of 3000 bytes"), std::string::npos)
      << err->message;
}

// ---- embeddings ----

struct EmbedOutcome {
  bool sent = false;
  std::optional<std::vector<std::vector<float>>> vectors;
  std::optional<UpstreamError> error;
  int terminal = 0;
  bool finished() const { return terminal > 0; }
};

EmbeddingsCallbacks embed_cb(EmbedOutcome& o) {
  return {[&o] { o.sent = true; },
          [&o](std::vector<std::vector<float>> v) {
            o.vectors = std::move(v);
            ++o.terminal;
          },
          [&o](const UpstreamError& e) {
            o.error = e;
            ++o.terminal;
          }};
}

// An OpenAI embeddings answer whose data items are listed in `order` (input indexes), each item i being
// {i+0.5, -(i+0.25)}; `item` may rewrite one item's JSON text.
std::string embeddings_body(const std::vector<int>& order,
                            const std::function<std::string(int, std::string)>& item = {}) {
  std::string data;
  for (int i : order) {
    std::string one = "{\"object\":\"embedding\",\"index\":" + std::to_string(i) + ",\"embedding\":[" +
                      std::to_string(i + 0.5) + "," + std::to_string(-(i + 0.25)) + "]}";
    if (item) one = item(i, one);
    data += (data.empty() ? "" : ",") + one;
  }
  return "{\"object\":\"list\",\"data\":[" + data +
         "],\"model\":\"emb\",\"usage\":{\"prompt_tokens\":3,\"total_tokens\":3}}";
}

class EmbeddingsTest : public UpstreamTest {
 protected:
  EmbeddingsRequest request(const TestServer& s,
                            std::vector<std::string> inputs = {"alpha", "beta", "gamma"}) {
    EmbeddingsRequest r;
    r.endpoint = endpoint(s);
    r.endpoint.model = "text-embedding-3-small";
    r.inputs = std::move(inputs);
    return r;
  }
  // One request against a server that answers `body` (200, application/json).
  EmbedOutcome answer(const std::string& body, unsigned dimensions = 0) {
    TestServer server([body](TestServer::Conn& c, const SeenRequest&, int) {
      c.send(full_response(200, "application/json", body));
    });
    EmbeddingsRequest r = request(server);
    r.dimensions = dimensions;
    EmbedOutcome o;
    up->embed(r, embed_cb(o));
    EXPECT_TRUE(run([&] { return o.finished(); }));
    EXPECT_EQ(o.terminal, 1);
    return o;
  }
  static void expect_protocol(const EmbedOutcome& o, const std::string& words) {
    ASSERT_TRUE(o.error) << "succeeded";
    EXPECT_EQ(o.error->kind, UpstreamError::Kind::protocol);
    EXPECT_EQ(o.error->stage, UpstreamStage::embeddings);
    EXPECT_NE(o.error->message.find(words), std::string::npos) << o.error->message;
  }
};

TEST_F(EmbeddingsTest, SendsTheOpenAiBodyAndPutsVectorsBackInInputOrder) {
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(full_response(200, "application/json; charset=utf-8", embeddings_body({2, 0, 1})));
  });
  EmbeddingsRequest r = request(server);
  r.dimensions = 2;
  EmbedOutcome o;
  up->embed(r, embed_cb(o));
  EXPECT_FALSE(o.sent);  // nothing re-entrant
  ASSERT_TRUE(run([&] { return o.finished(); }));
  ASSERT_TRUE(o.vectors) << o.error->message;
  EXPECT_TRUE(o.sent);
  ASSERT_EQ(o.vectors->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_EQ((*o.vectors)[i].size(), 2u);
    EXPECT_FLOAT_EQ((*o.vectors)[i][0], float(i) + 0.5f);
    EXPECT_FLOAT_EQ((*o.vectors)[i][1], -(float(i) + 0.25f));
  }
  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].head.rfind("POST /v1/embeddings HTTP/1.1", 0), 0u) << seen[0].head;
  EXPECT_TRUE(has_header(seen[0], "Authorization: Bearer sk-test")) << seen[0].head;
  EXPECT_TRUE(has_header(seen[0], "Content-Type: application/json")) << seen[0].head;
  cJSON* doc = cJSON_Parse(seen[0].body.c_str());
  ASSERT_TRUE(doc) << seen[0].body;
  EXPECT_STREQ(cJSON_GetObjectItem(doc, "model")->valuestring, "text-embedding-3-small");
  EXPECT_STREQ(cJSON_GetObjectItem(doc, "encoding_format")->valuestring, "float");
  EXPECT_EQ(cJSON_GetObjectItem(doc, "dimensions")->valueint, 2);
  const cJSON* input = cJSON_GetObjectItem(doc, "input");
  ASSERT_TRUE(cJSON_IsArray(input));
  ASSERT_EQ(cJSON_GetArraySize(input), 3);
  EXPECT_STREQ(cJSON_GetArrayItem(input, 0)->valuestring, "alpha");
  EXPECT_STREQ(cJSON_GetArrayItem(input, 2)->valuestring, "gamma");
  cJSON_Delete(doc);
}

TEST_F(EmbeddingsTest, DimensionsAreLeftOutWhenZero) {
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(full_response(200, "application/json", embeddings_body({0, 1, 2})));
  });
  EmbedOutcome o;
  up->embed(request(server), embed_cb(o));
  ASSERT_TRUE(run([&] { return o.finished(); }));
  ASSERT_TRUE(o.vectors) << o.error->message;
  EXPECT_EQ(server.seen().at(0).body.find("dimensions"), std::string::npos) << server.seen().at(0).body;
}

TEST_F(EmbeddingsTest, AMissingIndexIsAProtocolError) {
  expect_protocol(answer(embeddings_body({0, 1, 2},
                                         [](int i, std::string one) {
                                           if (i != 1) return one;
                                           return std::string(R"({"object":"embedding","embedding":[1,2]})");
                                         })),
                  "without a numeric \"index\"");
}

TEST_F(EmbeddingsTest, AnIndexAnsweredTwiceIsAProtocolError) {
  expect_protocol(answer(embeddings_body({0, 1, 1})), "input 1 answered twice");
}

TEST_F(EmbeddingsTest, AnIndexOutOfRangeOrFractionalIsAProtocolError) {
  expect_protocol(answer(embeddings_body({0, 1, 3})), "index 3 is not an input (0..2)");
  expect_protocol(answer(embeddings_body({0, 1, 2},
                                         [](int i, std::string one) {
                                           if (i != 2) return one;
                                           return std::string(R"({"index":1.5,"embedding":[1,2]})");
                                         })),
                  "is not an input");
}

TEST_F(EmbeddingsTest, TooFewOrTooManyVectorsAreAProtocolError) {
  expect_protocol(answer(embeddings_body({0, 1})), "has 2 vectors for 3 inputs");
  expect_protocol(answer(embeddings_body({0, 1, 2, 3})), "has 4 vectors for 3 inputs");
}

TEST_F(EmbeddingsTest, VectorsOfDifferentLengthsAreAProtocolError) {
  expect_protocol(answer(embeddings_body({0, 1, 2},
                                         [](int i, std::string one) {
                                           if (i != 2) return one;
                                           return std::string(R"({"index":2,"embedding":[1,2,3]})");
                                         })),
                  "3 dimensions, expected 2 (as the others)");
  // Asked for 4, got 2.
  expect_protocol(answer(embeddings_body({0, 1, 2}), 4), "2 dimensions, expected 4 (as requested)");
}

TEST_F(EmbeddingsTest, NonFiniteOrNonNumericValuesAreAProtocolError) {
  auto with = [](const std::string& values) {
    return embeddings_body({0, 1, 2}, [values](int i, std::string one) {
      return i == 1 ? R"({"index":1,"embedding":)" + values + "}" : one;
    });
  };
  expect_protocol(answer(with("[1e999,0]")), "not a finite float");
  expect_protocol(answer(with("[1e39,0]")), "not a finite float");  // a double, but no float
  expect_protocol(answer(with("[\"1\",0]")), "not a number");
  expect_protocol(answer(with("\"AAAAAAAAgD8=\"")), "base64");
  expect_protocol(answer(with("[]")), "empty embedding");
  expect_protocol(answer(R"({"object":"list","data":{"index":0}})"), "without a \"data\" array");
  expect_protocol(answer(R"({"data":[{"index":0,"embedding":[1)"), "not JSON");
}

TEST_F(EmbeddingsTest, AnAnswerOverTheSizeLimitEndsTheRequest) {
  OpenAiOptions opt;
  opt.max_attempts = 1;
  opt.max_embeddings_body_bytes = 4096;
  make(opt);
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(response_head(200, "application/json"));
    c.send("{\"data\":[{\"index\":0,\"embedding\":[0.1");
    for (int i = 0; i < 1000; ++i)
      if (!c.send(std::string(",0.123456789", 12))) return;
  });
  EmbedOutcome o;
  up->embed(request(server, {"one"}), embed_cb(o));
  ASSERT_TRUE(run([&] { return o.finished(); }));
  expect_protocol(o, "embeddings answer larger than 4096 bytes");
}

TEST_F(EmbeddingsTest, WrongContentTypeIsAProtocolError) {
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(full_response(200, "text/html", "<html>busy</html>"));
  });
  EmbedOutcome o;
  up->embed(request(server), embed_cb(o));
  ASSERT_TRUE(run([&] { return o.finished(); }));
  expect_protocol(o, "wrong content type for embeddings: 'text/html'");
}

TEST_F(EmbeddingsTest, A429IsRetriedAndA500IsNotButCountsForTheBreaker) {
  OpenAiOptions opts;
  opts.now_ms = [this] { return clock_ms; };
  opts.max_attempts = 2;
  opts.retry_delay_ms = 20;
  opts.failures_to_open = 1;
  make(opts);
  TestServer busy([](TestServer::Conn& c, const SeenRequest&, int index) {
    if (index == 0)
      c.send(full_response(429, "application/json", R"({"error":{"message":"rate limited"}})"));
    else
      c.send(full_response(200, "application/json", embeddings_body({0, 1, 2})));
  });
  EmbedOutcome o;
  up->embed(request(busy), embed_cb(o));
  ASSERT_TRUE(run([&] { return o.finished(); }));
  ASSERT_TRUE(o.vectors) << o.error->message;
  EXPECT_EQ(busy.seen().size(), 2u);
  EXPECT_FALSE(up->breaker_open(busy.base()));

  TestServer broken([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(full_response(500, "application/json", R"({"error":{"message":"boom"}})"));
  });
  EmbedOutcome o2;
  up->embed(request(broken), embed_cb(o2));
  ASSERT_TRUE(run([&] { return o2.finished(); }));
  ASSERT_TRUE(o2.error);
  EXPECT_EQ(o2.error->kind, UpstreamError::Kind::http);
  EXPECT_EQ(o2.error->http_status, 500);
  EXPECT_EQ(o2.error->attempts, 1);
  EXPECT_EQ(o2.error->stage, UpstreamStage::embeddings);
  EXPECT_NE(o2.error->message.find("boom"), std::string::npos) << o2.error->message;
  EXPECT_EQ(broken.seen().size(), 1u);
  // One counted failure opens this breaker: the next request is refused without trying.
  EXPECT_TRUE(up->breaker_open(broken.base()));
  EmbedOutcome o3;
  up->embed(request(broken), embed_cb(o3));
  ASSERT_TRUE(run([&] { return o3.finished(); }));
  ASSERT_TRUE(o3.error);
  EXPECT_EQ(o3.error->kind, UpstreamError::Kind::breaker_open);
  EXPECT_EQ(broken.seen().size(), 1u);
}

TEST_F(EmbeddingsTest, ASlowAnswerTimesOut) {
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(response_head(200, "application/json"));
    c.pause(2000);
  });
  EmbeddingsRequest r = request(server);
  r.endpoint.timeout_ms = 150;
  r.endpoint.first_byte_timeout_ms = 20;  // not a streamed stage: only the whole-request timeout applies
  EmbedOutcome o;
  const auto start = std::chrono::steady_clock::now();
  up->embed(r, embed_cb(o));
  ASSERT_TRUE(run([&] { return o.finished(); }));
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error->kind, UpstreamError::Kind::timeout);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(140));
}

TEST_F(EmbeddingsTest, AzureAndGeminiAddressTheirEmbeddingsEndpoints) {
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.send(full_response(200, "application/json", embeddings_body({0})));
  });
  EmbeddingsRequest azure = request(server, {"one"});
  azure.endpoint.provider = "azure_openai";
  azure.endpoint.base_url = root_of(server);
  azure.endpoint.model = "embed-deploy";
  EmbedOutcome o;
  up->embed(azure, embed_cb(o));
  ASSERT_TRUE(run([&] { return o.finished(); }));
  ASSERT_TRUE(o.vectors) << o.error->message;

  EmbeddingsRequest gemini = request(server, {"one"});
  gemini.endpoint.provider = "gemini";
  gemini.endpoint.base_url = root_of(server) + "/v1beta/openai";
  gemini.endpoint.model = "text-embedding-004";
  EmbedOutcome o2;
  up->embed(gemini, embed_cb(o2));
  ASSERT_TRUE(run([&] { return o2.finished(); }));
  ASSERT_TRUE(o2.vectors) << o2.error->message;

  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].head.rfind(
                "POST /openai/deployments/embed-deploy/embeddings?api-version=2024-10-21 HTTP/1.1", 0),
            0u)
      << seen[0].head;
  EXPECT_TRUE(has_header(seen[0], "api-key: sk-test")) << seen[0].head;
  EXPECT_EQ(seen[0].head.find("Authorization:"), std::string::npos) << seen[0].head;
  EXPECT_EQ(seen[1].head.rfind("POST /v1beta/openai/embeddings HTTP/1.1", 0), 0u) << seen[1].head;
  EXPECT_TRUE(has_header(seen[1], "Authorization: Bearer sk-test")) << seen[1].head;
}

TEST_F(EmbeddingsTest, RefusedDialectsAndBadRequestsFailWithoutARequest) {
  TestServer server([](TestServer::Conn&, const SeenRequest&, int) { ADD_FAILURE() << "request sent"; });
  struct Case {
    std::string provider;
    std::vector<std::string> inputs;
    unsigned dimensions;
    std::string words;
  };
  const std::vector<Case> cases = {
      {"groq", {"a"}, 0, "provider groq has no embeddings endpoint"},
      {"anthropic", {"a"}, 0, "provider anthropic serves chat only (no embeddings)"},
      {"cohere", {"a"}, 0, "unknown provider \"cohere\""},
      {"openai", {}, 0, "embeddings request without inputs"},
      {"openai", std::vector<std::string>(kMaxEmbeddingInputs + 1, "x"), 0,
       "with 2049 inputs (at most 2048 a request)"},
      {"openai", {"a", ""}, 0, "embeddings input 1 is empty"},
      {"openai", {"a"}, 100000, "dimensions 100000 over the limit"},
  };
  for (const Case& c : cases) {
    EmbeddingsRequest r = request(server, c.inputs);
    r.endpoint.provider = c.provider;
    r.dimensions = c.dimensions;
    EmbedOutcome o;
    up->embed(r, embed_cb(o));
    EXPECT_FALSE(o.finished());  // answered later, never from inside embed()
    ASSERT_TRUE(run([&] { return o.finished(); })) << c.words;
    expect_protocol(o, c.words);
    EXPECT_FALSE(o.sent) << c.words;
  }
  EXPECT_TRUE(server.seen().empty());
}

TEST_F(EmbeddingsTest, CancelStopsCallbacks) {
  TestServer server([](TestServer::Conn& c, const SeenRequest&, int) {
    c.pause(100);
    c.send(full_response(200, "application/json", embeddings_body({0, 1, 2})));
  });
  EmbedOutcome o;
  RequestId id = up->embed(request(server), embed_cb(o));
  ASSERT_TRUE(run([&] { return o.sent; }));  // the server holds its answer back 100 ms
  up->cancel(id);
  EXPECT_EQ(up->in_flight(), 0u);
  driver->run_for(300);
  EXPECT_FALSE(o.finished());
  EXPECT_EQ(driver->client().active(), 0u);
}

}  // namespace
}  // namespace osvi::net
