// SimUpstream: each request becomes a list of timed steps run one after another through the owner's timer.
#include "upstream_sim.hpp"

#include <cmath>
#include <numbers>

#include "stand_in_embedding.hpp"

namespace osvi::net {

struct SimUpstream::State {
  struct Request {
    std::vector<Step> steps;
    bool delivered = false;  // a data step ran
  };
  std::map<RequestId, Request> active;
  bool alive = true;  // false once the SimUpstream is destroyed, possibly by a callback it was running
};

SimUpstream::SimUpstream(Schedule schedule)
    : schedule_(std::move(schedule)), state_(std::make_shared<State>()) {}

SimUpstream::~SimUpstream() {
  state_->alive = false;
}

void SimUpstream::push_stt(std::string text) {
  stt_.emplace_back(std::move(text));
}
void SimUpstream::push_stt_error(SimFailure failure) {
  stt_.emplace_back(std::move(failure));
}
void SimUpstream::push_llm(SimLlmReply reply) {
  llm_.push_back(std::move(reply));
}
void SimUpstream::push_embeddings(std::vector<std::vector<float>> vectors) {
  embeddings_.push_back(std::move(vectors));
}
void SimUpstream::set_timing(UpstreamStage stage, SimTiming timing) {
  timing_[stage] = timing;
}
void SimUpstream::fail_next(UpstreamStage stage, SimFailure failure) {
  failures_[stage].push_back(std::move(failure));
}
void SimUpstream::set_breaker_open(const std::string& base_url, bool open) {
  if (open)
    open_breakers_.insert(base_url);
  else
    open_breakers_.erase(base_url);
}
std::vector<BreakerState> SimUpstream::breakers() const {
  std::vector<BreakerState> out;
  for (const auto& url : open_breakers_) out.push_back({url, "open", 0});
  return out;
}

bool SimUpstream::breaker_open(std::string_view base_url) const {
  return open_breakers_.contains(base_url);
}
size_t SimUpstream::in_flight() const {
  return state_->active.size();
}

std::optional<SimFailure> SimUpstream::take_failure(UpstreamStage stage) {
  auto& q = failures_[stage];
  if (q.empty()) return std::nullopt;
  SimFailure f = std::move(q.front());
  q.pop_front();
  return f;
}

UpstreamError SimUpstream::error(UpstreamStage stage, const SimFailure& f,
                                 const std::string& provider) const {
  UpstreamError e;
  e.stage = stage;
  e.kind = f.kind;
  e.http_status = f.kind == UpstreamError::Kind::http ? f.http_status : 0;
  e.provider = provider;
  e.message = f.message;
  return e;
}

RequestId SimUpstream::run(std::vector<Step> steps) {
  RequestId id = next_id_++;
  state_->active.emplace(id, State::Request{std::move(steps), false});
  next(id, 0);
  return id;
}

void SimUpstream::watch(RequestId id, UpstreamStage stage, const Endpoint& ep,
                        std::function<void(const UpstreamError&)> fail) {
  if (!watchdogs || !state_->active.contains(id)) return;
  auto shared = std::make_shared<std::function<void(const UpstreamError&)>>(std::move(fail));
  std::weak_ptr<State> weak = state_;
  auto arm = [&](int64_t ms, bool first_byte) {
    if (ms <= 0) return;
    schedule_(ms, [weak, id, stage, ms, first_byte, shared, provider = ep.base_url] {
      auto state = weak.lock();
      if (!state || !state->alive) return;
      auto found = state->active.find(id);
      if (found == state->active.end() || (first_byte && found->second.delivered)) return;
      state->active.erase(found);
      UpstreamError e;
      e.stage = stage;
      e.kind = UpstreamError::Kind::timeout;
      e.provider = provider;
      e.message = first_byte
                      ? std::string(stage == UpstreamStage::llm ? "no first token" : "no first audio byte") +
                            " within " + std::to_string(ms) + " ms"
                      : "timed out after " + std::to_string(ms) + " ms";
      (*shared)(e);
    });
  };
  if (stage == UpstreamStage::llm || stage == UpstreamStage::tts) arm(ep.first_byte_timeout_ms, true);
  arm(ep.timeout_ms, false);
}

void SimUpstream::next(RequestId id, size_t index) {
  auto it = state_->active.find(id);
  if (it == state_->active.end()) return;
  if (index >= it->second.steps.size()) {
    state_->active.erase(it);
    return;
  }
  std::weak_ptr<State> weak = state_;
  schedule_(it->second.steps[index].delay_ms, [this, weak, id, index] {
    auto state = weak.lock();
    if (!state || !state->alive) return;  // the SimUpstream is gone
    auto found = state->active.find(id);
    if (found == state->active.end()) return;  // cancelled
    Step step = std::move(found->second.steps[index]);
    if (step.data) found->second.delivered = true;
    if (step.terminal) state->active.erase(found);
    step.action();
    if (!step.terminal && state->alive) next(id, index + 1);
  });
}

void SimUpstream::cancel(RequestId id) {
  state_->active.erase(id);
}

RequestId SimUpstream::transcribe(SttRequest request, SttCallbacks cb) {
  stt_requests_.push_back(request);
  SimTiming t = timing_[UpstreamStage::stt];
  std::string provider = request.endpoint.base_url;
  auto shared = std::make_shared<SttCallbacks>(std::move(cb));
  std::vector<Step> steps;
  if (breaker_open(provider)) {
    steps.push_back(failure_step(0, UpstreamStage::stt, breaker_refusal(provider), provider, shared));
    return run(std::move(steps));
  }
  std::variant<std::string, SimFailure> answer = std::string();
  if (auto f = take_failure(UpstreamStage::stt)) {
    answer = *f;
  } else if (!stt_.empty()) {
    answer = std::move(stt_.front());
    stt_.pop_front();
  }
  steps.push_back(sent_step(t.sent_ms, shared));
  if (auto* f = std::get_if<SimFailure>(&answer)) {
    steps.push_back(failure_step(t.first_ms, UpstreamStage::stt, *f, provider, shared));
  } else {
    steps.push_back({t.first_ms,
                     [shared, text = std::get<std::string>(answer)] {
                       if (shared->on_done) shared->on_done(text);
                     },
                     true, true});
  }
  const RequestId id = run(std::move(steps));
  watch(id, UpstreamStage::stt, request.endpoint, [shared](const UpstreamError& e) {
    if (shared->on_error) shared->on_error(e);
  });
  return id;
}

RequestId SimUpstream::chat(ChatRequest request, ChatCallbacks cb) {
  chat_requests_.push_back(request);
  SimTiming t = timing_[UpstreamStage::llm];
  std::string provider = request.endpoint.base_url;
  auto shared = std::make_shared<ChatCallbacks>(std::move(cb));
  std::vector<Step> steps;
  auto fail_with = [&](int64_t delay, const SimFailure& f) {
    steps.push_back(failure_step(delay, UpstreamStage::llm, f, provider, shared));
  };
  if (breaker_open(provider)) {
    fail_with(0, breaker_refusal(provider));
    return run(std::move(steps));
  }
  steps.push_back(sent_step(t.sent_ms, shared));
  std::optional<SimLlmReply> reply;
  if (auto f = take_failure(UpstreamStage::llm)) {
    reply = SimLlmReply{};
    reply->error = *f;
  } else if (!llm_.empty()) {
    reply = std::move(llm_.front());
    llm_.pop_front();
  } else {
    reply = SimLlmReply{};
    reply->error = SimFailure{UpstreamError::Kind::protocol, 0, "sim: no scripted reply"};
  }
  if (reply->error && !reply->error_after_text) {
    fail_with(t.first_ms, *reply->error);
    return run(std::move(steps));
  }
  size_t step_chars = std::max<size_t>(1, chunk_chars);
  int64_t delay = t.first_ms;
  int chunk = 0;
  for (size_t pos = 0; pos < reply->text.size(); pos += step_chars, ++chunk) {
    steps.push_back({delay + (chunk == t.stall_at ? t.stall_ms : 0),
                     [shared, delta = reply->text.substr(pos, step_chars)] {
                       if (shared->on_delta) shared->on_delta(delta);
                     },
                     false, true});
    delay = t.chunk_ms;
  }
  auto watched = [&] {
    const RequestId id = run(std::move(steps));
    watch(id, UpstreamStage::llm, request.endpoint, [shared](const UpstreamError& e) {
      if (shared->on_error) shared->on_error(e);
    });
    return id;
  };
  if (reply->error) {
    fail_with(delay, *reply->error);
    return watched();
  }
  ChatResult result;
  result.text = reply->text;
  result.tool_calls = reply->tool_calls;
  result.finish_reason = !reply->finish_reason.empty() ? reply->finish_reason
                         : reply->tool_calls.empty()   ? "stop"
                                                       : "tool_calls";
  steps.push_back({delay,
                   [shared, result] {
                     if (shared->on_done) shared->on_done(result);
                   },
                   true});
  return watched();
}

RequestId SimUpstream::speak(TtsRequest request, TtsCallbacks cb) {
  tts_requests_.push_back(request);
  SimTiming t = timing_[UpstreamStage::tts];
  std::string provider = request.endpoint.base_url;
  auto shared = std::make_shared<TtsCallbacks>(std::move(cb));
  std::vector<Step> steps;
  if (breaker_open(provider)) {
    steps.push_back(failure_step(0, UpstreamStage::tts, breaker_refusal(provider), provider, shared));
    return run(std::move(steps));
  }
  steps.push_back(sent_step(t.sent_ms, shared));
  if (auto f = take_failure(UpstreamStage::tts)) {
    steps.push_back(failure_step(t.first_ms, UpstreamStage::tts, *f, provider, shared));
    return run(std::move(steps));
  }
  size_t total = request.text.size() * tts_bytes_per_char;
  total -= total % 2;  // whole samples
  std::vector<uint8_t> pcm(total, 0);
  if (tts_tone) {
    for (size_t i = 0; i < total / 2; ++i) {
      double v = 0.3 * std::sin(2.0 * std::numbers::pi * 440.0 * static_cast<double>(i) / 24000.0);
      auto s = static_cast<int16_t>(std::lround(v * 32767.0));
      pcm[2 * i] = static_cast<uint8_t>(static_cast<uint16_t>(s) & 0xff);
      pcm[2 * i + 1] = static_cast<uint8_t>(static_cast<uint16_t>(s) >> 8);
    }
  }
  size_t chunk = std::max<size_t>(2, tts_chunk_bytes);
  int64_t delay = t.first_ms;
  int n = 0;
  for (size_t pos = 0; pos < total; pos += chunk, ++n) {
    std::vector<uint8_t> piece(pcm.begin() + static_cast<std::ptrdiff_t>(pos),
                               pcm.begin() + static_cast<std::ptrdiff_t>(std::min(total, pos + chunk)));
    steps.push_back({delay + (n == t.stall_at ? t.stall_ms : 0),
                     [shared, piece = std::move(piece)] {
                       if (shared->on_audio) shared->on_audio(piece);
                     },
                     false, true});
    delay = t.chunk_ms;
  }
  steps.push_back({delay,
                   [shared] {
                     if (shared->on_done) shared->on_done();
                   },
                   true});
  const RequestId id = run(std::move(steps));
  watch(id, UpstreamStage::tts, request.endpoint, [shared](const UpstreamError& e) {
    if (shared->on_error) shared->on_error(e);
  });
  return id;
}

}  // namespace osvi::net

namespace osvi::net {

RequestId SimUpstream::embed(EmbeddingsRequest request, EmbeddingsCallbacks cb) {
  embed_requests_.push_back(request);
  SimTiming t = timing_[UpstreamStage::embeddings];
  std::string provider = request.endpoint.base_url;
  auto shared = std::make_shared<EmbeddingsCallbacks>(std::move(cb));
  std::vector<Step> steps;
  auto fail_with = [&](int64_t delay, const SimFailure& f) {
    steps.push_back(failure_step(delay, UpstreamStage::embeddings, f, provider, shared));
  };
  if (breaker_open(provider)) {
    fail_with(0, breaker_refusal(provider));
    return run(std::move(steps));
  }
  steps.push_back(sent_step(t.sent_ms, shared));
  if (auto f = take_failure(UpstreamStage::embeddings)) {
    fail_with(t.first_ms, *f);
  } else {
    std::vector<std::vector<float>> vectors;
    if (!embeddings_.empty()) {
      vectors = std::move(embeddings_.front());
      embeddings_.pop_front();
    } else {
      const unsigned dims = request.dimensions ? request.dimensions : embedding_dimensions;
      for (const auto& text : request.inputs) vectors.push_back(tools::stand_in_embedding(text, dims));
    }
    steps.push_back({t.first_ms,
                     [shared, vectors = std::move(vectors)] {
                       if (shared->on_done) shared->on_done(vectors);
                     },
                     true, true});
  }
  const RequestId id = run(std::move(steps));
  watch(id, UpstreamStage::embeddings, request.endpoint, [shared](const UpstreamError& e) {
    if (shared->on_error) shared->on_error(e);
  });
  return id;
}

}  // namespace osvi::net
