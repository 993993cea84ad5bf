// OpenAiUpstream: request building, response classification, SSE delta assembly, embeddings checks, retries
// and breakers.
#include "osvi/net/upstream_openai.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <vector>

#include "osvi/net/json.hpp"
#include "osvi/net/sse.hpp"

namespace osvi::net {

namespace {

constexpr size_t kMaxBufferedBody = 1 << 20;  // an error page or a transcription; anything larger is not one
constexpr size_t kMaxSseLine = 1 << 20;

std::string one_line(std::string_view s, size_t max = 300) {
  std::string out(s.substr(0, max));
  for (char& c : out)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  return out;
}

// The media type without parameters, lower case ("text/event-stream; charset=utf-8" → "text/event-stream").
std::string media_type(std::string_view content_type) {
  std::string t(content_type.substr(0, content_type.find(';')));
  while (!t.empty() && t.back() == ' ') t.pop_back();
  std::transform(t.begin(), t.end(), t.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return t;
}

const char* string_of(const cJSON* obj, const char* name) {
  const cJSON* item = cJSON_GetObjectItemCaseSensitive(obj, name);
  return cJSON_IsString(item) ? item->valuestring : nullptr;
}

// The upstream's own words when it sent an OpenAI error envelope, else the start of the body.
std::string error_message(std::string_view body) {
  std::string perr;
  JsonPtr doc = json_parse(body, &perr);
  if (doc) {
    const cJSON* err = cJSON_GetObjectItemCaseSensitive(doc.get(), "error");
    if (cJSON_IsString(err)) return one_line(err->valuestring);
    if (const char* m = cJSON_IsObject(err) ? string_of(err, "message") : nullptr) return one_line(m);
    if (const char* m = string_of(doc.get(), "message")) return one_line(m);
  }
  return one_line(body);
}

bool is_azure(const Endpoint& ep) {
  return ep.provider == "azure_openai";
}
bool is_anthropic(const Endpoint& ep) {
  return ep.provider == "anthropic";
}
// The dialects that speak OpenAI's paths and Bearer keys under their own roots.
bool is_openai_like(const Endpoint& ep) {
  return ep.provider.empty() || ep.provider == "openai" || ep.provider == "gemini" || ep.provider == "groq";
}

// Why this endpoint cannot serve `stage`, or "" (the configuration refuses these combinations at load; this
// guards callers that build endpoints themselves).
std::string unsupported(const Endpoint& ep, UpstreamStage stage) {
  if (is_openai_like(ep) || is_azure(ep)) {
    // Google's OpenAI-compatible root serves chat and embeddings, not the audio endpoints.
    if (ep.provider == "gemini" && stage != UpstreamStage::llm && stage != UpstreamStage::embeddings)
      return "provider gemini serves chat and embeddings only (no " + std::string(to_string(stage)) + ")";
    if (ep.provider == "groq" && stage == UpstreamStage::tts) return "provider groq has no pcm speech";
    if (ep.provider == "groq" && stage == UpstreamStage::embeddings)
      return "provider groq has no embeddings endpoint";
    return {};
  }
  if (is_anthropic(ep)) {
    if (stage != UpstreamStage::llm)
      return "provider anthropic serves chat only (no " + std::string(to_string(stage)) + ")";
    return {};
  }
  return "unknown provider \"" + ep.provider + "\"";
}

// {base_url}{path} in the endpoint's dialect: Azure addresses the deployment (the model) and the version.
std::string url_of(const Endpoint& ep, std::string_view path) {
  if (is_azure(ep)) {
    return ep.base_url + "/openai/deployments/" + ep.model + std::string(path) +
           "?api-version=" + (ep.api_version.empty() ? std::string(kAzureApiVersion) : ep.api_version);
  }
  return ep.base_url + std::string(path);
}

std::vector<std::string> common_headers(const Endpoint& ep, const OpenAiOptions& o) {
  std::vector<std::string> h;
  if (!ep.api_key.empty()) {
    if (is_azure(ep))
      h.push_back("api-key: " + ep.api_key);
    else if (is_anthropic(ep))
      h.push_back("x-api-key: " + ep.api_key);
    else
      h.push_back("Authorization: Bearer " + ep.api_key);
  }
  if (is_anthropic(ep)) h.push_back(std::string("anthropic-version: ") + kAnthropicVersion);
  if (!o.user_agent.empty()) h.push_back("User-Agent: " + o.user_agent);
  return h;
}

// Anthropic's stop reasons in OpenAI's words, which the call engine reads.
std::string finish_reason_of(std::string_view stop_reason) {
  if (stop_reason == "end_turn" || stop_reason == "stop_sequence") return "stop";
  if (stop_reason == "tool_use") return "tool_calls";
  if (stop_reason == "max_tokens") return "length";
  return std::string(stop_reason);
}

// The Messages API body: the system prompt apart, tool calls and results as content blocks, consecutive
// turns of one role merged (the API wants user and assistant alternating). Returns "" or why it cannot be
// built.
std::string anthropic_body(const ChatRequest& request, cJSON* doc) {
  json_add_string(doc, "model", request.endpoint.model);
  cJSON_AddNumberToObject(doc, "max_tokens", request.max_tokens);
  std::string system;
  cJSON* messages = cJSON_AddArrayToObject(doc, "messages");
  cJSON* last = nullptr;  // the content array of the last message
  std::string last_role;
  auto content_of = [&](const std::string& role) {
    if (!last || last_role != role) {
      cJSON* jm = cJSON_CreateObject();
      cJSON_AddItemToArray(messages, jm);
      json_add_string(jm, "role", role);
      last = cJSON_AddArrayToObject(jm, "content");
      last_role = role;
    }
    return last;
  };
  auto add_text = [](cJSON* content, const std::string& text) {
    cJSON* b = cJSON_CreateObject();
    cJSON_AddItemToArray(content, b);
    json_add_string(b, "type", "text");
    json_add_string(b, "text", text);
  };
  for (const auto& m : request.messages) {
    if (m.role == "system" && !last) {
      if (!system.empty()) system += "\n\n";
      system += m.content;
    } else if (m.role == "system") {
      // An instruction in the middle of the conversation ("the transfer failed") stays where it was, as
      // the user's side: the API has no system turns, and the context must not end on the assistant's
      // (that would be a prefill the model continues).
      if (!m.content.empty()) add_text(content_of("user"), m.content);
    } else if (m.role == "tool") {
      cJSON* b = cJSON_CreateObject();
      cJSON_AddItemToArray(content_of("user"), b);
      json_add_string(b, "type", "tool_result");
      json_add_string(b, "tool_use_id", m.tool_call_id);
      json_add_string(b, "content", m.content);
    } else if (m.role == "assistant") {
      if (m.content.empty() && m.tool_calls.empty()) continue;  // the API refuses empty text blocks
      // The agent often speaks first (the greeting); the conversation must open with a user turn.
      if (!last) add_text(content_of("user"), "(The call is connected.)");
      cJSON* content = content_of("assistant");
      if (!m.content.empty()) add_text(content, m.content);
      for (const auto& tc : m.tool_calls) {
        cJSON* b = cJSON_CreateObject();
        cJSON_AddItemToArray(content, b);
        json_add_string(b, "type", "tool_use");
        json_add_string(b, "id", tc.id);
        json_add_string(b, "name", tc.name);
        std::string perr;
        JsonPtr input =
            json_parse(tc.arguments_json.empty() ? std::string_view("{}") : tc.arguments_json, &perr);
        cJSON_AddItemToObject(b, "input",
                              input && cJSON_IsObject(input.get()) ? input.release() : cJSON_CreateObject());
      }
    } else {
      if (m.content.empty()) continue;
      add_text(content_of("user"), m.content);
    }
  }
  if (!system.empty()) json_add_string(doc, "system", system);
  if (!request.tools.empty()) {
    cJSON* tools = cJSON_AddArrayToObject(doc, "tools");
    for (const auto& t : request.tools) {
      cJSON* jt = cJSON_CreateObject();
      cJSON_AddItemToArray(tools, jt);
      json_add_string(jt, "name", t.name);
      if (!t.description.empty()) json_add_string(jt, "description", t.description);
      std::string perr;
      JsonPtr params =
          json_parse(t.parameters_json.empty() ? std::string_view("{}") : t.parameters_json, &perr);
      if (!params) return "tool " + t.name + ": parameters are not JSON (" + perr + ")";
      cJSON_AddItemToObject(jt, "input_schema", params.release());
    }
  }
  cJSON_AddNumberToObject(doc, "temperature", request.temperature);
  cJSON_AddBoolToObject(doc, "stream", 1);
  return {};
}

void limits(HttpClient::Request& r, const Endpoint& ep, const OpenAiOptions& o) {
  r.timeout_ms = ep.timeout_ms;
  r.connect_timeout_ms =
      ep.timeout_ms > 0 ? std::min(o.connect_timeout_ms, ep.timeout_ms) : o.connect_timeout_ms;
}

}  // namespace

struct OpenAiUpstream::Call {
  RequestId id = 0;
  UpstreamStage stage = UpstreamStage::llm;
  Endpoint endpoint;
  HttpClient::Request http;
  std::string build_error;  // the request could not be built: answered as a protocol error
  SttCallbacks stt;
  ChatCallbacks llm;
  TtsCallbacks tts;
  EmbeddingsCallbacks emb;
  size_t inputs = 0;        // embeddings: how many vectors the answer must hold
  unsigned dimensions = 0;  // embeddings: their length, 0 = any (but one for all)
  std::vector<std::vector<float>> vectors;

  int attempts = 0;
  HttpClient::Id transfer = 0;
  HttpClient::TimerId timer = 0;  // retry delay or an asynchronous refusal
  HttpClient::TimerId watchdog = 0;
  bool finished = false;
  bool sent = false;
  bool delivered = false;  // the caller has seen part of the answer: retrying would duplicate it
  bool trial = false;      // the breaker's half-open trial

  // Per attempt.
  long status = 0;
  bool ok_status = false;
  std::string body;  // buffered: non-2xx bodies and transcriptions
  SseParser sse;
  size_t received = 0;  // speech bytes of this attempt
  ChatResult result;
  std::map<int, ToolCall> tools;
};

OpenAiUpstream::OpenAiUpstream(HttpClient& client, OpenAiOptions options)
    : client_(client), options_(std::move(options)) {}

std::unique_ptr<OpenAiUpstream> OpenAiUpstream::create(HttpClient& client, OpenAiOptions options) {
  return std::unique_ptr<OpenAiUpstream>(new OpenAiUpstream(client, std::move(options)));
}

OpenAiUpstream::~OpenAiUpstream() {
  for (auto& [id, c] : calls_) {
    c->finished = true;
    if (c->transfer) client_.cancel(c->transfer);
    if (c->timer) client_.cancel_timer(c->timer);
    if (c->watchdog) client_.cancel_timer(c->watchdog);
  }
}

int64_t OpenAiUpstream::now() const {
  if (options_.now_ms) return options_.now_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool OpenAiUpstream::breaker_open(std::string_view base_url) const {
  auto it = breakers_.find(base_url);
  if (it == breakers_.end() || it->second.failures < options_.failures_to_open) return false;
  return it->second.trial_in_flight || now() - it->second.opened_at < options_.cool_down_ms;
}

std::vector<BreakerState> OpenAiUpstream::breakers() const {
  std::vector<BreakerState> out;
  for (const auto& [url, b] : breakers_) {
    const char* state = "closed";
    if (b.failures >= options_.failures_to_open)
      state = b.trial_in_flight || now() - b.opened_at < options_.cool_down_ms ? "open" : "half_open";
    out.push_back({url, state, b.failures});
  }
  return out;
}

RequestId OpenAiUpstream::transcribe(SttRequest request, SttCallbacks callbacks) {
  auto c = std::make_shared<Call>();
  c->stage = UpstreamStage::stt;
  c->stt = std::move(callbacks);
  auto& r = c->http;
  r.method = "POST";
  c->build_error = unsupported(request.endpoint, UpstreamStage::stt);
  r.url = url_of(request.endpoint, "/audio/transcriptions");
  r.headers = common_headers(request.endpoint, options_);
  r.headers.emplace_back("Accept: application/json");
  bool wav = request.mime == "audio/wav" || request.mime == "audio/x-wav" || request.mime == "audio/wave";
  r.multipart.push_back({"file", std::string(request.audio.begin(), request.audio.end()),
                         wav ? "utterance.wav" : "utterance.ogg", wav ? "audio/wav" : "audio/ogg"});
  r.multipart.push_back({"model", request.endpoint.model, {}, {}});
  if (!request.language.empty()) r.multipart.push_back({"language", request.language, {}, {}});
  if (!request.prompt.empty()) r.multipart.push_back({"prompt", request.prompt, {}, {}});
  r.multipart.push_back({"response_format", "json", {}, {}});
  limits(r, request.endpoint, options_);
  c->endpoint = std::move(request.endpoint);
  return submit(std::move(c));
}

RequestId OpenAiUpstream::chat(ChatRequest request, ChatCallbacks callbacks) {
  auto c = std::make_shared<Call>();
  c->stage = UpstreamStage::llm;
  c->llm = std::move(callbacks);
  c->build_error = unsupported(request.endpoint, UpstreamStage::llm);
  if (is_anthropic(request.endpoint)) {
    JsonPtr doc(cJSON_CreateObject());
    if (std::string why = anthropic_body(request, doc.get()); !why.empty() && c->build_error.empty())
      c->build_error = why;
    auto& r = c->http;
    r.method = "POST";
    r.url = request.endpoint.base_url + "/messages";
    r.headers = common_headers(request.endpoint, options_);
    r.headers.emplace_back("Content-Type: application/json");
    r.headers.emplace_back("Accept: text/event-stream");
    r.body = json_print(doc.get());
    limits(r, request.endpoint, options_);
    c->endpoint = std::move(request.endpoint);
    return submit(std::move(c));
  }
  JsonPtr doc(cJSON_CreateObject());
  json_add_string(doc.get(), "model", request.endpoint.model);
  cJSON* messages = cJSON_AddArrayToObject(doc.get(), "messages");
  for (const auto& m : request.messages) {
    cJSON* jm = cJSON_CreateObject();
    cJSON_AddItemToArray(messages, jm);
    json_add_string(jm, "role", m.role);
    if (m.content.empty() && !m.tool_calls.empty())
      cJSON_AddNullToObject(jm, "content");  // OpenAI's shape for a turn that only called tools
    else
      json_add_string(jm, "content", m.content);
    if (!m.tool_calls.empty()) {
      cJSON* calls = cJSON_AddArrayToObject(jm, "tool_calls");
      for (const auto& tc : m.tool_calls) {
        cJSON* jc = cJSON_CreateObject();
        cJSON_AddItemToArray(calls, jc);
        json_add_string(jc, "id", tc.id);
        json_add_string(jc, "type", "function");
        cJSON* fn = cJSON_AddObjectToObject(jc, "function");
        json_add_string(fn, "name", tc.name);
        json_add_string(fn, "arguments", tc.arguments_json);
      }
    }
    if (!m.tool_call_id.empty()) json_add_string(jm, "tool_call_id", m.tool_call_id);
  }
  if (!request.tools.empty()) {
    cJSON* tools = cJSON_AddArrayToObject(doc.get(), "tools");
    for (const auto& t : request.tools) {
      cJSON* jt = cJSON_CreateObject();
      cJSON_AddItemToArray(tools, jt);
      json_add_string(jt, "type", "function");
      cJSON* fn = cJSON_AddObjectToObject(jt, "function");
      json_add_string(fn, "name", t.name);
      if (!t.description.empty()) json_add_string(fn, "description", t.description);
      std::string perr;
      JsonPtr params =
          json_parse(t.parameters_json.empty() ? std::string_view("{}") : t.parameters_json, &perr);
      if (!params) {
        if (c->build_error.empty())
          c->build_error = "tool " + t.name + ": parameters are not JSON (" + perr + ")";
        break;
      }
      cJSON_AddItemToObject(fn, "parameters", params.release());
    }
  }
  if (!request.response_format_json.empty()) {
    std::string perr;
    JsonPtr format = json_parse(request.response_format_json, &perr);
    if (!format || !cJSON_IsObject(format.get())) {
      if (c->build_error.empty())
        c->build_error = "response_format is not a JSON object" + (perr.empty() ? "" : " (" + perr + ")");
    } else {
      cJSON_AddItemToObject(doc.get(), "response_format", format.release());
    }
  }
  cJSON_AddNumberToObject(doc.get(), "temperature", request.temperature);
  cJSON_AddNumberToObject(doc.get(), "max_tokens", request.max_tokens);
  cJSON_AddBoolToObject(doc.get(), "stream", 1);

  return submit_json(std::move(c), std::move(request.endpoint), "/chat/completions", doc.get(),
                     "text/event-stream");
}

RequestId OpenAiUpstream::speak(TtsRequest request, TtsCallbacks callbacks) {
  auto c = std::make_shared<Call>();
  c->stage = UpstreamStage::tts;
  c->tts = std::move(callbacks);
  JsonPtr doc(cJSON_CreateObject());
  json_add_string(doc.get(), "model", request.endpoint.model);
  json_add_string(doc.get(), "input", request.text);
  json_add_string(doc.get(), "voice", request.voice);
  cJSON_AddNumberToObject(doc.get(), "speed", request.speed);
  json_add_string(doc.get(), "response_format", request.format);
  c->build_error = unsupported(request.endpoint, UpstreamStage::tts);
  return submit_json(std::move(c), std::move(request.endpoint), "/audio/speech", doc.get(), {});
}

RequestId OpenAiUpstream::embed(EmbeddingsRequest request, EmbeddingsCallbacks callbacks) {
  auto c = std::make_shared<Call>();
  c->stage = UpstreamStage::embeddings;
  c->emb = std::move(callbacks);
  c->inputs = request.inputs.size();
  c->dimensions = request.dimensions;
  c->build_error = unsupported(request.endpoint, UpstreamStage::embeddings);
  if (c->build_error.empty()) {
    if (request.inputs.empty()) {
      c->build_error = "embeddings request without inputs";
    } else if (request.inputs.size() > kMaxEmbeddingInputs) {
      c->build_error = "embeddings request with " + std::to_string(request.inputs.size()) +
                       " inputs (at most " + std::to_string(kMaxEmbeddingInputs) + " a request)";
    } else if (request.dimensions > kMaxEmbeddingDimensions) {
      c->build_error = "embeddings dimensions " + std::to_string(request.dimensions) + " over the limit of " +
                       std::to_string(kMaxEmbeddingDimensions);
    } else {
      // The API refuses empty strings; saying which one beats its 400.
      for (size_t i = 0; i < request.inputs.size(); ++i)
        if (request.inputs[i].empty()) {
          c->build_error = "embeddings input " + std::to_string(i) + " is empty";
          break;
        }
    }
  }
  JsonPtr doc(cJSON_CreateObject());
  json_add_string(doc.get(), "model", request.endpoint.model);
  cJSON* input = cJSON_AddArrayToObject(doc.get(), "input");
  for (const auto& text : request.inputs) cJSON_AddItemToArray(input, cJSON_CreateString(text.c_str()));
  json_add_string(doc.get(), "encoding_format", "float");
  if (request.dimensions > 0) cJSON_AddNumberToObject(doc.get(), "dimensions", request.dimensions);
  return submit_json(std::move(c), std::move(request.endpoint), "/embeddings", doc.get(), "application/json");
}

RequestId OpenAiUpstream::submit_json(std::shared_ptr<Call> c, Endpoint endpoint, std::string_view path,
                                      const cJSON* doc, std::string_view accept) {
  auto& r = c->http;
  r.method = "POST";
  r.url = url_of(endpoint, path);
  r.headers = common_headers(endpoint, options_);
  r.headers.emplace_back("Content-Type: application/json");
  if (!accept.empty()) r.headers.emplace_back("Accept: " + std::string(accept));
  r.body = json_print(doc);
  limits(r, endpoint, options_);
  c->endpoint = std::move(endpoint);
  return submit(std::move(c));
}

RequestId OpenAiUpstream::submit(std::shared_ptr<Call> call) {
  RequestId id = next_id_++;
  call->id = id;
  calls_.emplace(id, call);
  auto later = [this, id](UpstreamError::Kind kind, std::string message) {
    // Refusals travel through the timer so no callback runs inside chat()/speak()/transcribe().
    calls_[id]->timer = client_.schedule(0, [this, id, kind, message] {
      auto it = calls_.find(id);
      if (it == calls_.end()) return;
      auto c = it->second;
      c->timer = 0;
      fail(c, kind, message);
    });
  };
  if (!call->build_error.empty()) {
    later(UpstreamError::Kind::protocol, call->build_error);
    return id;
  }
  auto it = breakers_.find(call->endpoint.base_url);
  if (it != breakers_.end() && it->second.failures >= options_.failures_to_open) {
    Breaker& b = it->second;
    if (b.trial_in_flight || now() - b.opened_at < options_.cool_down_ms) {
      later(UpstreamError::Kind::breaker_open, "circuit breaker open for " + call->endpoint.base_url);
      return id;
    }
    b.trial_in_flight = true;
    call->trial = true;
  }
  attempt(call);
  return id;
}

void OpenAiUpstream::attempt(const std::shared_ptr<Call>& call) {
  call->attempts++;
  call->status = 0;
  call->ok_status = false;
  call->body.clear();
  call->sse = SseParser(kMaxSseLine, options_.max_sse_event_bytes);
  call->received = 0;
  call->result = {};
  call->tools.clear();
  call->vectors.clear();
  RequestId id = call->id;
  auto find = [this](RequestId rid) -> std::shared_ptr<Call> {
    auto it = calls_.find(rid);
    return it == calls_.end() ? nullptr : it->second;
  };
  HttpClient::Callbacks cb;
  cb.on_sent = [this, id, find] {
    auto c = find(id);
    if (!c || c->sent) return;
    c->sent = true;
    std::function<void()>* fn = nullptr;
    switch (c->stage) {
      case UpstreamStage::stt:
        fn = &c->stt.on_sent;
        break;
      case UpstreamStage::llm:
        fn = &c->llm.on_sent;
        break;
      case UpstreamStage::tts:
        fn = &c->tts.on_sent;
        break;
      case UpstreamStage::embeddings:
        fn = &c->emb.on_sent;
        break;
    }
    if (fn && *fn) (*fn)();
  };
  cb.on_headers = [this, id, find](long status, std::string_view ct) {
    if (auto c = find(id)) on_headers(c, status, ct);
  };
  cb.on_body = [this, id, find](std::string_view chunk) {
    if (auto c = find(id)) on_body(c, chunk);
  };
  cb.on_done = [this, id, find](const HttpClient::Done& d) {
    if (auto c = find(id)) {
      c->transfer = 0;
      on_done(c, d);
    }
  };
  auto started = client_.start(call->http, std::move(cb));
  if (!started) {
    std::string message = started.error().message;
    call->timer = client_.schedule(0, [this, id, find, message] {
      if (auto c = find(id)) {
        c->timer = 0;
        fail(c, UpstreamError::Kind::connect, message);
      }
    });
    return;
  }
  call->transfer = *started;
  int64_t first = call->endpoint.first_byte_timeout_ms;
  // Only the streamed stages have a first byte worth watching; the others wait for the whole answer.
  if ((call->stage == UpstreamStage::llm || call->stage == UpstreamStage::tts) && first > 0) {
    call->watchdog = client_.schedule(first, [this, id, find, first] {
      if (auto c = find(id)) {
        c->watchdog = 0;
        fail(c, UpstreamError::Kind::timeout,
             std::string(c->stage == UpstreamStage::llm ? "no first token" : "no first audio byte") +
                 " within " + std::to_string(first) + " ms");
      }
    });
  }
}

void OpenAiUpstream::on_headers(const std::shared_ptr<Call>& c, long status, std::string_view content_type) {
  c->status = status;
  c->ok_status = status >= 200 && status < 300;
  if (!c->ok_status) return;  // the body says why; judged at the end
  std::string type = media_type(content_type);
  if (c->stage == UpstreamStage::llm && type != "text/event-stream") {
    fail(c, UpstreamError::Kind::protocol, "wrong content type for a chat stream: '" + type + "'",
         int(status));
  } else if (c->stage == UpstreamStage::tts && type.rfind("audio/", 0) != 0 &&
             type != "application/octet-stream") {
    fail(c, UpstreamError::Kind::protocol, "wrong content type for speech: '" + type + "'", int(status));
  } else if (c->stage == UpstreamStage::embeddings && type != "application/json") {
    fail(c, UpstreamError::Kind::protocol, "wrong content type for embeddings: '" + type + "'", int(status));
  }
}

void OpenAiUpstream::on_body(const std::shared_ptr<Call>& c, std::string_view chunk) {
  if (c->finished) return;
  if (c->ok_status && c->stage == UpstreamStage::llm) {
    on_sse(c, chunk);
    return;
  }
  if (c->ok_status && c->stage == UpstreamStage::tts) {
    if (c->watchdog) client_.cancel_timer(std::exchange(c->watchdog, 0));
    if (c->received + chunk.size() > options_.max_speech_bytes) {
      fail(c, UpstreamError::Kind::protocol,
           "speech longer than the limit of " + std::to_string(options_.max_speech_bytes) + " bytes",
           int(c->status));
      return;
    }
    c->received += chunk.size();
    c->delivered = true;
    if (c->tts.on_audio)
      c->tts.on_audio(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(chunk.data()), chunk.size()));
    return;
  }
  const size_t cap = c->ok_status && c->stage == UpstreamStage::embeddings
                         ? options_.max_embeddings_body_bytes
                         : kMaxBufferedBody;
  if (c->body.size() + chunk.size() > cap) {
    fail(c, UpstreamError::Kind::protocol,
         std::string(cap == kMaxBufferedBody ? "response body" : "embeddings answer") + " larger than " +
             std::to_string(cap) + " bytes",
         int(c->status));
    return;
  }
  c->body.append(chunk);
}

void OpenAiUpstream::on_sse(const std::shared_ptr<Call>& c, std::string_view chunk) {
  std::vector<SseEvent> events;
  Status parsed = c->sse.feed(chunk, events);
  const bool anthropic = is_anthropic(c->endpoint);
  for (const auto& ev : events) {
    if (c->finished) return;
    if (!anthropic && ev.data == "[DONE]") {
      succeed(c);
      return;
    }
    std::string perr;
    JsonPtr doc = json_parse(ev.data, &perr);
    if (!doc || !cJSON_IsObject(doc.get())) {
      fail(c, UpstreamError::Kind::protocol,
           "bad JSON in the event stream: " + (doc ? "not an object" : perr));
      return;
    }
    if (const cJSON* err = cJSON_GetObjectItemCaseSensitive(doc.get(), "error")) {
      const char* m = cJSON_IsString(err) ? err->valuestring : string_of(err, "message");
      fail(c, UpstreamError::Kind::protocol,
           std::string("error event: ") + (m ? one_line(m) : "(no message)"));
      return;
    }
    if (!(anthropic ? on_anthropic_event(c, doc.get()) : on_openai_event(c, doc.get()))) return;
  }
  if (!parsed.ok() && !c->finished) fail(c, UpstreamError::Kind::protocol, parsed.error().message);
}

bool OpenAiUpstream::add_text(const std::shared_ptr<Call>& c, std::string_view text) {
  if (c->watchdog) client_.cancel_timer(std::exchange(c->watchdog, 0));
  if (c->result.text.size() + text.size() > options_.max_chat_text_bytes) {
    fail(c, UpstreamError::Kind::protocol,
         "chat answer longer than the limit of " + std::to_string(options_.max_chat_text_bytes) + " bytes");
    return false;
  }
  c->delivered = true;
  c->result.text += text;
  if (c->llm.on_delta) c->llm.on_delta(text);
  return !c->finished;
}

bool OpenAiUpstream::add_arguments(const std::shared_ptr<Call>& c, ToolCall& t, std::string_view text) {
  if (t.arguments_json.size() + text.size() > options_.max_tool_arguments_bytes) {
    fail(c, UpstreamError::Kind::protocol,
         "arguments of tool call " + (t.name.empty() ? std::string("(unnamed)") : one_line(t.name, 64)) +
             " longer than the limit of " + std::to_string(options_.max_tool_arguments_bytes) + " bytes");
    return false;
  }
  t.arguments_json += text;
  return true;
}

bool OpenAiUpstream::on_openai_event(const std::shared_ptr<Call>& c, const cJSON* doc) {
  const cJSON* choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "choices"), 0);
  if (!choice) return true;  // usage-only chunks
  if (const char* fr = string_of(choice, "finish_reason")) c->result.finish_reason = fr;
  const cJSON* delta = cJSON_GetObjectItemCaseSensitive(choice, "delta");
  if (!cJSON_IsObject(delta)) return true;
  const cJSON* calls = cJSON_GetObjectItemCaseSensitive(delta, "tool_calls");
  if (cJSON_IsArray(calls)) {
    int position = 0;
    const cJSON* tc = nullptr;
    cJSON_ArrayForEach(tc, calls) {
      const cJSON* index = cJSON_GetObjectItemCaseSensitive(tc, "index");
      ToolCall& t = c->tools[cJSON_IsNumber(index) ? index->valueint : position];
      ++position;
      if (const char* s = string_of(tc, "id")) t.id += s;
      const cJSON* fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
      if (const char* s = string_of(fn, "name")) t.name += s;
      if (const char* s = string_of(fn, "arguments"))
        if (!add_arguments(c, t, s)) return false;
    }
    if (c->watchdog) client_.cancel_timer(std::exchange(c->watchdog, 0));
  }
  const char* content = string_of(delta, "content");
  if (content && *content) return add_text(c, content);
  return true;
}

// Anthropic's stream: content blocks (text or tool_use) opened, grown by deltas and closed, then a
// message_delta with the stop reason and message_stop. Blocks are numbered across text and tools alike.
bool OpenAiUpstream::on_anthropic_event(const std::shared_ptr<Call>& c, const cJSON* doc) {
  const char* type = string_of(doc, "type");
  if (!type) return true;
  const std::string_view t = type;
  const cJSON* index = cJSON_GetObjectItemCaseSensitive(doc, "index");
  const int block = cJSON_IsNumber(index) ? index->valueint : 0;
  if (t == "content_block_start") {
    const cJSON* cb = cJSON_GetObjectItemCaseSensitive(doc, "content_block");
    const char* kind = string_of(cb, "type");
    if (kind && std::string_view(kind) == "tool_use") {
      ToolCall& tool = c->tools[block];
      if (const char* s = string_of(cb, "id")) tool.id = s;
      if (const char* s = string_of(cb, "name")) tool.name = s;
      if (c->watchdog) client_.cancel_timer(std::exchange(c->watchdog, 0));
    } else if (kind && std::string_view(kind) == "text") {
      if (const char* s = string_of(cb, "text"); s && *s) return add_text(c, s);
    }
  } else if (t == "content_block_delta") {
    const cJSON* delta = cJSON_GetObjectItemCaseSensitive(doc, "delta");
    const char* kind = string_of(delta, "type");
    if (!kind) return true;
    if (std::string_view(kind) == "text_delta") {
      if (const char* s = string_of(delta, "text"); s && *s) return add_text(c, s);
    } else if (std::string_view(kind) == "input_json_delta") {
      auto it = c->tools.find(block);
      if (it == c->tools.end()) {
        fail(c, UpstreamError::Kind::protocol,
             "tool input for content block " + std::to_string(block) + " that is not a tool_use");
        return false;
      }
      if (const char* s = string_of(delta, "partial_json"))
        if (!add_arguments(c, it->second, s)) return false;
    }
  } else if (t == "message_delta") {
    const cJSON* delta = cJSON_GetObjectItemCaseSensitive(doc, "delta");
    if (const char* sr = string_of(delta, "stop_reason")) c->result.finish_reason = finish_reason_of(sr);
  } else if (t == "message_stop") {
    if (c->result.finish_reason.empty()) c->result.finish_reason = "stop";
    succeed(c);
    return false;
  }
  return true;  // message_start, content_block_stop, ping and future event types
}

void OpenAiUpstream::on_done(const std::shared_ptr<Call>& c, const HttpClient::Done& d) {
  if (c->finished) return;
  auto retry = [&] {
    if (c->delivered || c->attempts >= options_.max_attempts) return false;
    if (c->watchdog) client_.cancel_timer(std::exchange(c->watchdog, 0));
    RequestId id = c->id;
    c->timer = client_.schedule(options_.retry_delay_ms, [this, id] {
      auto it = calls_.find(id);
      if (it == calls_.end()) return;
      auto call = it->second;
      call->timer = 0;
      attempt(call);
    });
    return true;
  };
  using Failure = HttpClient::Failure;
  using Kind = UpstreamError::Kind;
  if (d.failure == Failure::connect) {
    if (!retry()) fail(c, Kind::connect, d.error);
    return;
  }
  if (d.failure == Failure::timeout) {
    fail(c, Kind::timeout, d.error, int(d.status));
    return;
  }
  if (d.failure != Failure::none) {
    fail(c, Kind::reset, "connection broke: " + d.error, int(d.status));
    return;
  }
  if (!c->ok_status) {
    long s = d.status ? d.status : c->status;
    if ((s == 429 || s == 502 || s == 503) && retry()) return;
    fail(c, Kind::http, "HTTP " + std::to_string(s) + ": " + error_message(c->body), int(s));
    return;
  }
  switch (c->stage) {
    case UpstreamStage::stt: {
      std::string perr;
      JsonPtr doc = json_parse(c->body, &perr);
      const char* text = doc ? string_of(doc.get(), "text") : nullptr;
      if (!text) {
        fail(c, Kind::protocol, doc ? "transcription without \"text\"" : "transcription is not JSON: " + perr,
             int(d.status));
        return;
      }
      c->result.text = text;
      succeed(c);
      return;
    }
    case UpstreamStage::llm:
      if (!c->result.finish_reason.empty()) {
        succeed(c);  // some servers close after the finish chunk without [DONE]
      } else {
        fail(c, Kind::reset, "chat stream ended without [DONE] or a finish_reason", int(d.status));
      }
      return;
    case UpstreamStage::tts:
      succeed(c);
      return;
    case UpstreamStage::embeddings:
      if (take_embeddings(c)) succeed(c);
      return;
  }
}

// OpenAI's answer: {"object":"list","data":[{"object":"embedding","index":i,"embedding":[...]}, ...],
// "model":..., "usage":{...}}. The data items may come in any order; "index" says which input each embeds.
bool OpenAiUpstream::take_embeddings(const std::shared_ptr<Call>& c) {
  const int status = int(c->status);
  auto bad = [&](std::string message) {
    fail(c, UpstreamError::Kind::protocol, std::move(message), status);
    return false;
  };
  std::string perr;
  JsonPtr doc = json_parse(c->body, &perr);
  if (!doc) return bad("embeddings answer is not JSON: " + perr);
  const cJSON* data = cJSON_GetObjectItemCaseSensitive(doc.get(), "data");
  if (!cJSON_IsArray(data)) return bad("embeddings answer without a \"data\" array");
  const auto count = static_cast<size_t>(cJSON_GetArraySize(data));
  if (count != c->inputs)
    return bad("embeddings answer has " + std::to_string(count) + " vectors for " +
               std::to_string(c->inputs) + " inputs");
  std::vector<std::vector<float>> vectors(c->inputs);
  std::vector<bool> seen(c->inputs, false);
  size_t dims = c->dimensions;
  size_t position = 0;
  const cJSON* item = nullptr;
  cJSON_ArrayForEach(item, data) {
    const std::string where = "embeddings data[" + std::to_string(position++) + "]";
    const cJSON* index = cJSON_GetObjectItemCaseSensitive(item, "index");
    if (!cJSON_IsNumber(index)) return bad(where + " without a numeric \"index\"");
    const double ix = index->valuedouble;
    if (!(ix >= 0 && ix < double(c->inputs)) || ix != std::floor(ix))
      return bad(where + ": index " + one_line(json_print(index), 32) + " is not an input (0.." +
                 std::to_string(c->inputs - 1) + ")");
    const auto i = static_cast<size_t>(ix);
    if (seen[i]) return bad(where + ": input " + std::to_string(i) + " answered twice");
    seen[i] = true;
    const cJSON* embedding = cJSON_GetObjectItemCaseSensitive(item, "embedding");
    if (cJSON_IsString(embedding))
      return bad(where + ": embedding is base64 text, not the float array asked for");
    if (!cJSON_IsArray(embedding)) return bad(where + " without an \"embedding\" array");
    const auto n = static_cast<size_t>(cJSON_GetArraySize(embedding));
    if (n == 0) return bad(where + ": empty embedding");
    if (n > kMaxEmbeddingDimensions)
      return bad(where + ": " + std::to_string(n) + " dimensions, over the limit of " +
                 std::to_string(kMaxEmbeddingDimensions));
    if (dims == 0) dims = n;
    if (n != dims)
      return bad(where + ": " + std::to_string(n) + " dimensions, expected " + std::to_string(dims) +
                 (c->dimensions ? " (as requested)" : " (as the others)"));
    std::vector<float>& v = vectors[i];
    v.reserve(n);
    const cJSON* x = nullptr;
    cJSON_ArrayForEach(x, embedding) {
      if (!cJSON_IsNumber(x)) return bad(where + ": embedding holds a value that is not a number");
      const auto f = static_cast<float>(x->valuedouble);
      if (!std::isfinite(f)) return bad(where + ": embedding holds a value that is not a finite float");
      v.push_back(f);
    }
  }
  // count == inputs and no index twice: every input is answered exactly once.
  c->vectors = std::move(vectors);
  return true;
}

void OpenAiUpstream::record(Call& c, bool counted_failure) {
  Breaker& b = breakers_[c.endpoint.base_url];
  if (c.trial) b.trial_in_flight = false;
  if (!counted_failure) {
    b.failures = 0;  // the provider answered: it is up, whatever it said
    return;
  }
  if (++b.failures >= options_.failures_to_open) b.opened_at = now();
}

void OpenAiUpstream::finish(Call& c) {
  c.finished = true;
  if (c.transfer) client_.cancel(std::exchange(c.transfer, 0));
  if (c.timer) client_.cancel_timer(std::exchange(c.timer, 0));
  if (c.watchdog) client_.cancel_timer(std::exchange(c.watchdog, 0));
  calls_.erase(c.id);
}

void OpenAiUpstream::fail(const std::shared_ptr<Call>& c, UpstreamError::Kind kind, std::string message,
                          int http_status) {
  if (c->finished) return;
  using Kind = UpstreamError::Kind;
  if (kind != Kind::breaker_open) {
    bool counted = kind == Kind::connect || kind == Kind::timeout || kind == Kind::reset ||
                   (kind == Kind::http && http_status >= 500);
    record(*c, counted);
  }
  UpstreamError e;
  e.stage = c->stage;
  e.kind = kind;
  e.http_status = http_status;
  e.provider = c->endpoint.base_url;
  e.message = one_line(message);
  e.attempts = std::max(1, c->attempts);
  finish(*c);  // c (a shared_ptr) keeps the callbacks alive while they run
  switch (c->stage) {
    case UpstreamStage::stt:
      if (c->stt.on_error) c->stt.on_error(e);
      break;
    case UpstreamStage::llm:
      if (c->llm.on_error) c->llm.on_error(e);
      break;
    case UpstreamStage::tts:
      if (c->tts.on_error) c->tts.on_error(e);
      break;
    case UpstreamStage::embeddings:
      if (c->emb.on_error) c->emb.on_error(e);
      break;
  }
}

void OpenAiUpstream::succeed(const std::shared_ptr<Call>& c) {
  if (c->finished) return;
  record(*c, false);
  finish(*c);
  switch (c->stage) {
    case UpstreamStage::stt:
      if (c->stt.on_done) c->stt.on_done(std::move(c->result.text));
      break;
    case UpstreamStage::llm:
      for (auto& [index, t] : c->tools) c->result.tool_calls.push_back(std::move(t));
      if (c->llm.on_done) c->llm.on_done(std::move(c->result));
      break;
    case UpstreamStage::tts:
      if (c->tts.on_done) c->tts.on_done();
      break;
    case UpstreamStage::embeddings:
      if (c->emb.on_done) c->emb.on_done(std::move(c->vectors));
      break;
  }
}

void OpenAiUpstream::cancel(RequestId id) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  auto c = it->second;
  if (c->trial) breakers_[c->endpoint.base_url].trial_in_flight = false;
  finish(*c);
}

}  // namespace osvi::net
