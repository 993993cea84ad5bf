// OpenAiUpstream: the Upstream interface over OpenAI-compatible HTTP (transcriptions, streaming chat
// completions, speech, embeddings) on an HttpClient, with per-request watchdogs, safe retries and a breaker
// per provider.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "osvi/net/http_client.hpp"
#include "osvi/net/upstream.hpp"

struct cJSON;

namespace osvi::net {

// Bounds on what an upstream may send (docs/configuration.md, "Bounded upstream answers"). Going over one
// ends that request with a protocol error naming the limit, recorded on the call like any upstream error.
inline constexpr size_t kMaxSseEventBytes = 256 * 1024;      // one server-sent event's data
inline constexpr size_t kMaxChatTextBytes = 256 * 1024;      // a chat answer's text (max_tokens ≤ 32768)
inline constexpr size_t kMaxToolArgumentsBytes = 64 * 1024;  // one tool call's arguments JSON
inline constexpr size_t kMaxSpeechBytes = 8 * 1024 * 1024;   // one TTS answer (~170 s of 24 kHz pcm)
// One embeddings answer as JSON text: ~14 bytes a float, so e.g. 384 vectors of 1536 dimensions. Callers
// batch their inputs to stay under it (the whole answer is parsed at once).
inline constexpr size_t kMaxEmbeddingsBodyBytes = 8 * 1024 * 1024;
inline constexpr size_t kMaxEmbeddingDimensions = 16384;  // one vector's length (the largest models: 4096)
inline constexpr const char* kAzureApiVersion = "2024-10-21";  // Azure OpenAI data-plane GA version
inline constexpr const char* kAnthropicVersion = "2023-06-01";

struct OpenAiOptions {
  std::string user_agent = "osvid";
  // The bounds above; tests lower them.
  size_t max_sse_event_bytes = kMaxSseEventBytes;
  size_t max_chat_text_bytes = kMaxChatTextBytes;
  size_t max_tool_arguments_bytes = kMaxToolArgumentsBytes;
  size_t max_speech_bytes = kMaxSpeechBytes;
  size_t max_embeddings_body_bytes = kMaxEmbeddingsBodyBytes;
  // Breaker per base_url: `failures_to_open` consecutive failures (connect, timeout, 5xx, reset) open it;
  // after `cool_down_ms` one trial request goes through; its success closes the breaker, its failure
  // re-opens.
  int failures_to_open = 3;
  int64_t cool_down_ms = 15000;
  // A request that provably delivered nothing to the caller (connect failure, or 429/502/503) is tried again
  // after retry_delay_ms, up to max_attempts in all. Never after any delta or audio byte was delivered.
  int max_attempts = 2;
  int64_t retry_delay_ms = 150;
  int64_t connect_timeout_ms = 3000;  // capped by the endpoint's timeout_ms
  // Monotonic milliseconds for the breaker; empty = steady_clock. Tests inject their own.
  std::function<int64_t()> now_ms;
};

class OpenAiUpstream final : public Upstream {
 public:
  // The client must outlive the upstream.
  static std::unique_ptr<OpenAiUpstream> create(HttpClient& client, OpenAiOptions options);
  ~OpenAiUpstream() override;
  OpenAiUpstream(const OpenAiUpstream&) = delete;
  OpenAiUpstream& operator=(const OpenAiUpstream&) = delete;

  RequestId transcribe(SttRequest request, SttCallbacks callbacks) override;
  RequestId chat(ChatRequest request, ChatCallbacks callbacks) override;
  RequestId speak(TtsRequest request, TtsCallbacks callbacks) override;
  RequestId embed(EmbeddingsRequest request, EmbeddingsCallbacks callbacks) override;
  void cancel(RequestId id) override;
  bool breaker_open(std::string_view base_url) const override;
  std::vector<BreakerState> breakers() const override;

  size_t in_flight() const { return calls_.size(); }

 private:
  struct Call;
  struct Breaker {
    int failures = 0;
    int64_t opened_at = 0;
    bool trial_in_flight = false;
  };
  OpenAiUpstream(HttpClient& client, OpenAiOptions options);
  int64_t now() const;
  RequestId submit(std::shared_ptr<Call> call);
  // POSTs doc as JSON to the endpoint's path (chat, speech, embeddings); accept empty = no Accept header.
  RequestId submit_json(std::shared_ptr<Call> call, Endpoint endpoint, std::string_view path,
                        const cJSON* doc, std::string_view accept);
  void attempt(const std::shared_ptr<Call>& call);
  void on_headers(const std::shared_ptr<Call>& call, long status, std::string_view content_type);
  void on_body(const std::shared_ptr<Call>& call, std::string_view chunk);
  void on_done(const std::shared_ptr<Call>& call, const HttpClient::Done& done);
  void on_sse(const std::shared_ptr<Call>& call, std::string_view chunk);
  // One parsed event of each chat dialect; false when the call ended (failed or succeeded) on it.
  bool on_openai_event(const std::shared_ptr<Call>& call, const cJSON* doc);
  bool on_anthropic_event(const std::shared_ptr<Call>& call, const cJSON* doc);
  // The buffered embeddings answer checked and put in input order; false when the call failed on it.
  bool take_embeddings(const std::shared_ptr<Call>& call);
  bool add_text(const std::shared_ptr<Call>& call, std::string_view text);
  bool add_arguments(const std::shared_ptr<Call>& call, ToolCall& tool, std::string_view text);
  void fail(const std::shared_ptr<Call>& call, UpstreamError::Kind kind, std::string message,
            int http_status = 0);
  void succeed(const std::shared_ptr<Call>& call);
  void finish(Call& call);
  void record(Call& call, bool counted_failure);

  HttpClient& client_;
  OpenAiOptions options_;
  std::map<RequestId, std::shared_ptr<Call>> calls_;
  std::map<std::string, Breaker, std::less<>> breakers_;
  RequestId next_id_ = 1;
};

}  // namespace osvi::net
