// UpstreamLoop: the OpenAI-compatible upstream on the control loop's HttpLoop, created on first use.
#include "osvi/base/upstream_loop.hpp"

namespace osvi::daemon {

Result<std::unique_ptr<UpstreamLoop>> UpstreamLoop::create(EventLoop& loop, net::OpenAiOptions options) {
  std::unique_ptr<UpstreamLoop> u(new UpstreamLoop(loop, std::move(options)));
  auto http = HttpLoop::create(loop, "upstream");
  if (!http) return http.error();
  u->http_ = std::move(*http);
  return u;
}

net::Upstream* UpstreamLoop::ensure() {
  if (upstream_) return upstream_.get();
  net::HttpClient* client = http_->client();
  if (client == nullptr) return nullptr;
  upstream_ = net::OpenAiUpstream::create(*client, options_);
  return upstream_.get();
}

// Without libcurl every request fails at once; OpenAiUpstream reports errors on a later loop turn, so do
// we (a zero-delay timer), never from inside the call that made the request.
namespace {
template <class Callbacks>
net::RequestId fail_later(EventLoop& loop, net::UpstreamStage stage, Callbacks cb) {
  auto src = std::make_shared<EventSource>();
  auto t = loop.add_timer(loop.now_us(), [src, stage, cb = std::move(cb)] {
    net::UpstreamError e;
    e.stage = stage;
    e.kind = net::UpstreamError::Kind::connect;
    e.message = "libcurl is not available";
    if (cb.on_error) cb.on_error(e);
    src->reset();
  });
  if (t) *src = std::move(*t);
  return 0;
}
}  // namespace

net::RequestId UpstreamLoop::transcribe(net::SttRequest request, net::SttCallbacks callbacks) {
  if (net::Upstream* u = ensure()) return u->transcribe(std::move(request), std::move(callbacks));
  return fail_later(loop_, net::UpstreamStage::stt, std::move(callbacks));
}

net::RequestId UpstreamLoop::chat(net::ChatRequest request, net::ChatCallbacks callbacks) {
  if (net::Upstream* u = ensure()) return u->chat(std::move(request), std::move(callbacks));
  return fail_later(loop_, net::UpstreamStage::llm, std::move(callbacks));
}

net::RequestId UpstreamLoop::speak(net::TtsRequest request, net::TtsCallbacks callbacks) {
  if (net::Upstream* u = ensure()) return u->speak(std::move(request), std::move(callbacks));
  return fail_later(loop_, net::UpstreamStage::tts, std::move(callbacks));
}

net::RequestId UpstreamLoop::embed(net::EmbeddingsRequest request, net::EmbeddingsCallbacks callbacks) {
  if (net::Upstream* u = ensure()) return u->embed(std::move(request), std::move(callbacks));
  return fail_later(loop_, net::UpstreamStage::embeddings, std::move(callbacks));
}

void UpstreamLoop::cancel(net::RequestId id) {
  if (upstream_) upstream_->cancel(id);
}

std::vector<net::BreakerState> UpstreamLoop::breakers() const {
  return upstream_ ? upstream_->breakers() : std::vector<net::BreakerState>{};
}

bool UpstreamLoop::breaker_open(std::string_view base_url) const {
  return upstream_ && upstream_->breaker_open(base_url);
}

UpstreamLoop::~UpstreamLoop() {
  upstream_.reset();  // before the client it uses
  http_.reset();
}

}  // namespace osvi::daemon
