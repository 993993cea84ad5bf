// Upstream model services as the call engine sees them: speech-to-text, a streaming chat model,
// text-to-speech and text embeddings (the knowledge base), each an interface so the engine can run against
// OpenAI-compatible HTTP (upstream_openai.hpp) or a scripted in-process double
// (tests/support/upstream_sim.hpp) in engine tests.
//
// Threading: loop thread only. Every request answers through its callbacks, called later from the loop
// (never from inside the call that started the request). Exactly one terminal callback (done or error) runs
// per request unless it was cancelled first; after cancel() no callback runs at all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace osvi::net {

enum class UpstreamStage { stt, llm, tts, embeddings };
std::string_view to_string(UpstreamStage s);

// Why a request failed, recorded on the call (docs/api.md: the call's upstream_errors).
struct UpstreamError {
  enum class Kind {
    timeout,       // a stage watchdog (first byte / first token / result) or the total timeout fired
    connect,       // could not connect (refused, DNS, TLS)
    http,          // a non-2xx status; http_status says which
    protocol,      // bad JSON, wrong content type, malformed SSE, an error event in the stream
    reset,         // the connection broke mid-answer
    breaker_open,  // the provider's circuit breaker refused the request without trying
  };
  UpstreamStage stage = UpstreamStage::llm;
  Kind kind = Kind::protocol;
  int http_status = 0;
  std::string provider;  // base URL of the provider
  std::string message;   // one line, for the journal and the call record
  int attempts = 1;      // retries included
};
std::string_view to_string(UpstreamError::Kind k);

// Per-request endpoint settings (from the agent's stt / llm / voice sections).
struct Endpoint {
  // The API dialect (docs/configuration.md, upstream endpoints):
  //   "openai", "gemini", "groq": {base_url}/chat/completions, /audio/transcriptions, /audio/speech with
  //     "Authorization: Bearer" (Gemini and Groq serve OpenAI-compatible endpoints under their own roots);
  //   "azure_openai": {base_url}/openai/deployments/{model}/<same paths>?api-version={api_version} with an
  //     "api-key" header (the model is the deployment name);
  //   "anthropic": chat only, {base_url}/messages with "x-api-key" + "anthropic-version" and Anthropic's
  //     own streaming events.
  // Embeddings ({base_url}/embeddings) are served by openai, gemini and azure_openai; groq and anthropic
  // have no embeddings endpoint.
  // A stage a dialect does not offer fails the request as a protocol error (the configuration refuses it
  // at load already).
  std::string provider = "openai";
  std::string api_version;  // azure_openai only
  std::string base_url;     // "http://127.0.0.1:8090/v1" (no trailing '/')
  std::string api_key;      // empty = no authentication header
  std::string model;
  int64_t timeout_ms = 8000;          // the whole request
  int64_t first_byte_timeout_ms = 0;  // stage watchdog: first token (llm) / first byte (tts); 0 = off
};

using RequestId = uint64_t;  // 0 = none

// ---- speech-to-text: POST {base_url}/audio/transcriptions (multipart) ----
struct SttRequest {
  Endpoint endpoint;
  std::vector<uint8_t> audio;      // one endpointed utterance
  std::string mime = "audio/ogg";  // "audio/ogg" (Ogg Opus) or "audio/wav"
  std::string language;            // ISO 639-1 ("en"); empty = let the model guess
  std::string prompt;              // optional vocabulary hint
};
struct SttCallbacks {
  std::function<void()> on_sent;  // the request body left for the network (latency: "stt request sent")
  std::function<void(std::string text)> on_done;
  std::function<void(const UpstreamError&)> on_error;
};

// ---- chat model: POST {base_url}/chat/completions with stream:true ----
struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments_json;  // as assembled from the deltas; may be "" or invalid JSON (the caller checks)
  bool operator==(const ToolCall&) const = default;
};
struct ChatMessage {
  std::string role;  // system | user | assistant | tool
  std::string content;
  std::vector<ToolCall> tool_calls;  // assistant messages that called tools
  std::string tool_call_id;          // role tool
  bool operator==(const ChatMessage&) const = default;
};
struct ToolSpec {
  std::string name;
  std::string description;
  std::string parameters_json;  // a JSON Schema object, compact text
};
struct ChatRequest {
  Endpoint endpoint;
  std::vector<ChatMessage> messages;
  std::vector<ToolSpec> tools;
  double temperature = 0.7;
  unsigned max_tokens = 512;
  // A JSON object sent as "response_format" (e.g. {"type":"json_schema","json_schema":{...}}) by the
  // openai, azure_openai, gemini and groq dialects; empty = none. The anthropic dialect has no such field:
  // a caller wanting structured output there puts the schema in the prompt. Text that is not a JSON object
  // fails the request as a protocol error.
  std::string response_format_json;
};
struct ChatResult {
  std::string text;  // every content delta joined
  std::vector<ToolCall> tool_calls;
  std::string finish_reason;  // "stop", "tool_calls", "length", "" when the stream did not say
};
struct ChatCallbacks {
  std::function<void()> on_sent;
  std::function<void(std::string_view delta)> on_delta;  // content text as it streams
  std::function<void(ChatResult result)> on_done;        // after [DONE] (or a clean end of stream)
  std::function<void(const UpstreamError&)> on_error;
};

// ---- text-to-speech: POST {base_url}/audio/speech ----
struct TtsRequest {
  Endpoint endpoint;
  std::string text;
  std::string voice = "alloy";
  double speed = 1.0;
  std::string format = "pcm";  // "pcm": s16le mono 24 kHz (OpenAI's pcm); "opus": Ogg Opus pages
};
struct TtsCallbacks {
  std::function<void()> on_sent;
  std::function<void(std::span<const uint8_t> bytes)> on_audio;  // body bytes as they arrive, any split
  std::function<void()> on_done;
  std::function<void(const UpstreamError&)> on_error;
};

// ---- embeddings: POST {base_url}/embeddings ----
// One request embeds up to kMaxEmbeddingInputs non-empty texts (OpenAI's own limit is 2048 per request);
// the vectors come back in the order of `inputs`, all of one length (`dimensions` when it is not 0).
inline constexpr size_t kMaxEmbeddingInputs = 2048;
struct EmbeddingsRequest {
  Endpoint endpoint;
  std::vector<std::string> inputs;
  unsigned dimensions = 0;  // 0 = the model's default; else sent as "dimensions" (text-embedding-3 models)
};
struct EmbeddingsCallbacks {
  std::function<void()> on_sent;
  std::function<void(std::vector<std::vector<float>> vectors)> on_done;  // vectors[i] embeds inputs[i]
  std::function<void(const UpstreamError&)> on_error;
};

// One provider's circuit breaker as telemetry shows it.
struct BreakerState {
  std::string base_url;
  std::string state;  // "closed", "open" (refusing) or "half_open" (the next request is the trial)
  int failures = 0;   // consecutive counted failures
};

class Upstream {
 public:
  virtual ~Upstream() = default;
  virtual RequestId transcribe(SttRequest request, SttCallbacks callbacks) = 0;
  virtual RequestId chat(ChatRequest request, ChatCallbacks callbacks) = 0;
  virtual RequestId speak(TtsRequest request, TtsCallbacks callbacks) = 0;
  virtual RequestId embed(EmbeddingsRequest request, EmbeddingsCallbacks callbacks) = 0;
  // Drops a request in flight; no callback of it runs afterwards. Unknown or finished ids are ignored.
  virtual void cancel(RequestId id) = 0;
  // Whether the provider's breaker would refuse a request now (the engine goes to the fallback at once).
  virtual bool breaker_open(std::string_view base_url) const = 0;
  // Every provider spoken to so far, by base_url.
  virtual std::vector<BreakerState> breakers() const = 0;
};

}  // namespace osvi::net
