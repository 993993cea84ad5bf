// AnalysisService: the post-call analysis pipeline (analysis.hpp).
#include "osvi/analysis/analysis.hpp"

#include <cerrno>

namespace osvi::daemon {

Result<std::unique_ptr<AnalysisService>> AnalysisService::create(AnalysisContext ctx) {
  if (ctx.clock == nullptr || ctx.store == nullptr || ctx.upstream == nullptr || ctx.calls == nullptr ||
      ctx.zones == nullptr || !ctx.timer) {
    return make_error("analysis: clock, store, upstream, calls, zones and timer are required", -EINVAL);
  }
  return std::unique_ptr<AnalysisService>(new AnalysisService(std::move(ctx)));
}

AnalysisService::~AnalysisService() = default;

void AnalysisService::set_config(const Config* config) {
  config_ = config;
}

Status AnalysisService::start() {
  return {};
}

int AnalysisService::add_done_listener(AnalysisDoneListener listener) {
  const int h = next_listener_++;
  listeners_.emplace(h, std::move(listener));
  return h;
}

void AnalysisService::remove_done_listener(int handle) {
  listeners_.erase(handle);
}

}  // namespace osvi::daemon
