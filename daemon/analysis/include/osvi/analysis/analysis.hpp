// AnalysisService: post-call analysis of picked calls (spec 7.3) from durable jobs (store/post_call.hpp) —
// summary, typed data extraction, tags, callback detection, structured output, opt-out — one request to the
// agent's analysis model per call (plus at most one repair round), its result written to the call record,
// the outbox, the callbacks queue and the do-not-disturb list in one transaction.
//
// Threading: loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/analysis/request.hpp"
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
  DialerControl* dialer = nullptr;    // poked after a callback is scheduled; may be null
  TimeZones* zones = nullptr;         // the callee's zone for callback times
  CallTimerFactory timer;             // the service's one timer
  // The callee's candidate zones by number (base/phone.hpp phone_time_zones); one zone = theirs, else the
  // site's. Replaceable so tests need not load libphonenumber's module.
  std::function<std::vector<std::string>(std::string_view e164)> phone_zones;
  size_t max_in_flight = 2;  // analyses waiting on the model at once
};

// Retry of an unreachable model (connect, timeout, reset, 5xx, 429, breaker open): 30 s doubling to 15 min,
// given up (job failed) once the call ended this long ago.
inline constexpr int64_t kAnalysisFirstRetryMs = 30'000;
inline constexpr int64_t kAnalysisMaxRetryMs = 15 * 60'000;
inline constexpr int64_t kAnalysisGiveUpMs = 24 * 3'600'000;
// The delay before try number `attempts` + 1, after `attempts` failed tries (>= 1).
int64_t analysis_backoff_ms(int64_t attempts);

// Told each call whose analysis is over (done, failed or skipped), after that state committed.
using AnalysisDoneListener = std::function<void(const std::string& call_id)>;

class AnalysisService {
 public:
  static Result<std::unique_ptr<AnalysisService>> create(AnalysisContext ctx);
  ~AnalysisService();
  AnalysisService(const AnalysisService&) = delete;
  AnalysisService& operator=(const AnalysisService&) = delete;

  // Agents (their analysis sections) and the site come from here; it must outlive the service until the
  // next set_config. Analyses in flight keep the agent they started with.
  void set_config(const Config* config);
  // Resumes the jobs a previous run left pending (kill -9 between a call's end and its analysis).
  Status start();
  int add_done_listener(AnalysisDoneListener listener);
  void remove_done_listener(int handle);

  // Looks for due jobs now (also done on every finished call and at the earliest job's due time).
  void poke();
  size_t in_flight() const { return running_.size(); }

 private:
  struct Running;  // one analysis waiting on the model (analysis.cpp)
  explicit AnalysisService(AnalysisContext ctx) : ctx_(std::move(ctx)) {}
  void pump();
  void arm();
  void begin(const PostCallJob& job);
  void send(const std::shared_ptr<Running>& r);
  void on_reply(const std::shared_ptr<Running>& r, std::string text);
  void on_error(const std::shared_ptr<Running>& r, const net::UpstreamError& e);
  void end(const std::string& call_id, bool notify);
  Status write_done(Running& r, analysis::Outcome& outcome, bool* callback_scheduled);
  Status write_failed(const std::string& call_id, const std::string& reason);
  Status finish(const std::string& call_id, std::string_view state, std::optional<std::string> reason);
  void notify(const std::string& call_id);

  AnalysisContext ctx_;
  const Config* config_ = nullptr;
  std::unique_ptr<CallTimer> timer_;
  int finished_handle_ = 0;
  bool started_ = false;
  bool pumping_ = false;
  std::map<std::string, std::shared_ptr<Running>> running_;  // by call id
  std::map<int, AnalysisDoneListener> listeners_;
  int next_listener_ = 1;
};

}  // namespace osvi::daemon
