// AnalysisService: post-call analysis of picked calls (spec 7.3) from durable jobs (store/post_call.hpp) —
// summary, typed data extraction, tags, callback detection, structured output, opt-out — one request to the
// agent's analysis model per call.
//
// Threading: loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "osvi/base/time_zone.hpp"
#include "osvi/calls/call_service.hpp"
#include "osvi/calls/call_timers.hpp"
#include "osvi/campaigns/dialer.hpp"
#include "osvi/clock.hpp"
#include "osvi/config/config.hpp"
#include "osvi/net/upstream.hpp"
#include "osvi/result.hpp"
#include "osvi/store/store.hpp"

namespace osvi::daemon {

// The parts the service works with; each must outlive it.
struct AnalysisContext {
  const Clock* clock = nullptr;
  Store* store = nullptr;
  net::Upstream* upstream = nullptr;  // the analysis model's requests
  CallService* calls = nullptr;       // finished calls: a new job may be due
  DialerControl* dialer = nullptr;    // poked after a callback is scheduled
  TimeZones* zones = nullptr;         // the callee's zone for callback times
  CallTimerFactory timer;             // the service's one timer
};

// Told each call whose analysis is over (done, failed or skipped), after that state committed.
using AnalysisDoneListener = std::function<void(const std::string& call_id)>;

class AnalysisService {
 public:
  static Result<std::unique_ptr<AnalysisService>> create(AnalysisContext ctx);
  ~AnalysisService();
  AnalysisService(const AnalysisService&) = delete;
  AnalysisService& operator=(const AnalysisService&) = delete;

  // Agents (their analysis sections) and the site come from here; it must outlive the service until the
  // next set_config.
  void set_config(const Config* config);
  // Resumes the jobs a previous run left pending (kill -9 between a call's end and its analysis).
  Status start();
  int add_done_listener(AnalysisDoneListener listener);
  void remove_done_listener(int handle);

 private:
  explicit AnalysisService(AnalysisContext ctx) : ctx_(std::move(ctx)) {}
  AnalysisContext ctx_;
  const Config* config_ = nullptr;
  std::map<int, AnalysisDoneListener> listeners_;
  int next_listener_ = 1;
};

}  // namespace osvi::daemon
