// SimUpstream: a scripted, deterministic, in-process Upstream for engine tests; answers through the owner's
// timer so callbacks arrive later, as from the network, and records every request for inspection.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "osvi/net/upstream.hpp"

namespace osvi::net {

struct SimFailure {
  UpstreamError::Kind kind = UpstreamError::Kind::http;
  int http_status = 500;
  std::string message = "simulated failure";
};

struct SimLlmReply {
  std::string text;                  // streamed as deltas of `chunk_chars` characters
  std::vector<ToolCall> tool_calls;  // delivered in the result
  std::string finish_reason;         // "" = "tool_calls" when there are tool calls, else "stop"
  std::optional<SimFailure> error;   // fails instead of finishing...
  bool error_after_text = false;     // ...after the text was streamed (true) or before anything (false)
};

struct SimTiming {
  int64_t sent_ms = 1;    // request → on_sent
  int64_t first_ms = 20;  // on_sent → first delta / audio chunk / transcription
  int64_t chunk_ms = 5;   // between further deltas / chunks
  // A stall mid-stream: data chunk number `stall_at` (0 = the first delta / audio chunk) comes `stall_ms`
  // later than it would. -1 = none.
  int stall_at = -1;
  int64_t stall_ms = 0;
};

// A delay that never ends within a test: the stage hangs until a watchdog (or the call) gives up on it.
inline constexpr int64_t kSimHang = 3'600'000;

class SimUpstream final : public Upstream {
 public:
  // Runs fn after delay_ms on the owner's loop (never from inside the scheduling call).
  using Schedule = std::function<void(int64_t delay_ms, std::function<void()> fn)>;
  explicit SimUpstream(Schedule schedule);
  ~SimUpstream() override;
  SimUpstream(const SimUpstream&) = delete;
  SimUpstream& operator=(const SimUpstream&) = delete;

  // Script. An empty STT queue transcribes to ""; an empty LLM queue answers with a protocol error.
  void push_stt(std::string text);
  void push_stt_error(SimFailure failure);
  void push_llm(SimLlmReply reply);
  // Embeddings: the next request answers with these vectors (as given: a count or length that does not fit
  // the request is passed on, to test the caller's checks). With none scripted, every input gets
  // osvi::tools::stand_in_embedding (daemon/tools/stand_in_embedding.hpp) of the request's dimensions, or
  // embedding_dimensions when it asks for the default.
  void push_embeddings(std::vector<std::vector<float>> vectors);
  unsigned embedding_dimensions = 256;
  void set_timing(UpstreamStage stage, SimTiming timing);
  // The next request of `stage` fails (before any data) with this failure; one-shot, queued.
  void fail_next(UpstreamStage stage, SimFailure failure);
  void set_breaker_open(const std::string& base_url, bool open);
  size_t chunk_chars = 8;  // LLM delta size
  // As net's upstream: a request fails with a timeout when the endpoint's first_byte_timeout_ms passes
  // before its first delta / audio byte (llm, tts), or its timeout_ms before it ends.
  bool watchdogs = true;
  // TTS: bytes_per_char bytes of s16le 24 kHz PCM per input character (default 50 ms), in chunk_bytes chunks;
  // a 440 Hz tone, or silence when tts_tone is false. The requested format is ignored: always PCM.
  size_t tts_bytes_per_char = 2400;
  size_t tts_chunk_bytes = 4800;
  bool tts_tone = true;

  RequestId transcribe(SttRequest request, SttCallbacks callbacks) override;
  RequestId chat(ChatRequest request, ChatCallbacks callbacks) override;
  RequestId speak(TtsRequest request, TtsCallbacks callbacks) override;
  RequestId embed(EmbeddingsRequest request, EmbeddingsCallbacks callbacks) override;
  void cancel(RequestId id) override;
  bool breaker_open(std::string_view base_url) const override;
  std::vector<BreakerState> breakers() const override;  // the scripted open ones

  // Every request received, in order (cancelled ones included).
  const std::vector<SttRequest>& stt_requests() const { return stt_requests_; }
  const std::vector<ChatRequest>& chat_requests() const { return chat_requests_; }
  const std::vector<TtsRequest>& tts_requests() const { return tts_requests_; }
  const std::vector<EmbeddingsRequest>& embed_requests() const { return embed_requests_; }
  size_t in_flight() const;

 private:
  struct Step {
    int64_t delay_ms;
    std::function<void()> action;
    bool terminal = false;
    bool data = false;  // a delta, an audio chunk or a transcription (what stops the first-byte watchdog)
  };
  struct State;
  RequestId run(std::vector<Step> steps);
  // Starts the endpoint's watchdogs for request `id`; `fail` reports the timeout.
  void watch(RequestId id, UpstreamStage stage, const Endpoint& endpoint,
             std::function<void(const UpstreamError&)> fail);
  void next(RequestId id, size_t index);
  std::optional<SimFailure> take_failure(UpstreamStage stage);
  UpstreamError error(UpstreamStage stage, const SimFailure& f, const std::string& provider) const;
  // The steps every stage shares, for any stage's callbacks: ending the request with a failure, and
  // reporting the body sent.
  template <class Callbacks>
  Step failure_step(int64_t delay_ms, UpstreamStage stage, const SimFailure& f, const std::string& provider,
                    const std::shared_ptr<Callbacks>& cb) const {
    return {delay_ms,
            [cb, e = error(stage, f, provider)] {
              if (cb->on_error) cb->on_error(e);
            },
            true};
  }
  template <class Callbacks>
  static Step sent_step(int64_t delay_ms, const std::shared_ptr<Callbacks>& cb) {
    return {delay_ms, [cb] {
              if (cb->on_sent) cb->on_sent();
            }};
  }
  static SimFailure breaker_refusal(const std::string& provider) {
    return {UpstreamError::Kind::breaker_open, 0, "circuit breaker open for " + provider};
  }

  Schedule schedule_;
  std::shared_ptr<State> state_;  // scheduled closures hold it weakly: they may outlive this object
  std::deque<std::variant<std::string, SimFailure>> stt_;
  std::deque<SimLlmReply> llm_;
  std::deque<std::vector<std::vector<float>>> embeddings_;
  std::map<UpstreamStage, SimTiming> timing_;
  std::map<UpstreamStage, std::deque<SimFailure>> failures_;
  std::set<std::string, std::less<>> open_breakers_;
  std::vector<SttRequest> stt_requests_;
  std::vector<ChatRequest> chat_requests_;
  std::vector<TtsRequest> tts_requests_;
  std::vector<EmbeddingsRequest> embed_requests_;
  RequestId next_id_ = 1;
};

}  // namespace osvi::net
