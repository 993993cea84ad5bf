// CallManager: the calls engine of the box — places outbound calls on free lines (queueing when every line
// is busy), answers inbound calls with the line's agent, and owns every live Call.
//
// Threading: loop thread only.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "osvi/calls/call.hpp"
#include "osvi/calls/call_service.hpp"
#include "osvi/config/config.hpp"
#include "osvi/lines/line_manager.hpp"

namespace osvi::daemon {

struct CallsHealth {
  size_t live = 0;
  size_t queued = 0;
  size_t max_queue = 0;
  uint64_t xruns = 0;  // audio xruns of every call since start
};

class CallManager final : public CallService {
 public:
  // `ctx` and `lines` must outlive the manager.
  CallManager(CallContext& ctx, LineManager& lines);
  ~CallManager() override;
  CallManager(const CallManager&) = delete;
  CallManager& operator=(const CallManager&) = delete;

  // The configuration new calls start with (swapped on reload). Each call gets its own copy of the agent and
  // of the `audio` and `calls` sections when it is launched, so a reload applies to the next call and never
  // changes one in progress. Must outlive the calls launched under it only until the next set_config().
  void set_config(const Config* config) { config_ = config; }
  Result<std::string> place_call(const PlaceCallRequest& request) override;
  size_t idle_lines() const override;
  bool dials_extensions() const override { return lines_.has_sip(); }
  int add_finished_listener(CallFinishedListener listener) override;
  void remove_finished_listener(int handle) override;
  // Line events, from LineManager's sink.
  void on_line_event(hal::Line& line, const hal::LineEvent& event);
  // SIGTERM: every call is hung up and recorded now; queued calls are closed as failed.
  void shutdown();

  // A browser test call (web_call.hpp): the record (inbound, execution_mode test, no phone number) and the
  // call on `line`, whose audio comes from `port` and whose turns go to `on_turn`. The manager keeps the line
  // until the call is destroyed. Errors: -ENOENT the agent is not an active voice agent; the store's.
  Result<std::string> start_web_call(const std::string& agent_uuid, std::shared_ptr<hal::Line> line,
                                     AudioPortFactory port,
                                     std::function<void(const TranscriptTurn&)> on_turn);
  // Whether the agent exists, is active, not archived and a voice agent in the configuration of now.
  bool voice_agent_active(std::string_view agent_uuid) const;
  // Lines the configuration has (the box's capacity of calls at once).
  size_t line_count() const { return lines_.size(); }

  CallsHealth health() const;
  // The live call on a line, or null (tests, health).
  Call* call_on(const hal::Line& line);

 private:
  struct Queued {
    PlaceCallRequest request;
    CallRecord record;
  };
  // A call and the context it was launched with (the App's shared parts, this configuration's settings);
  // the call, declared last, goes first.
  struct Live {
    std::shared_ptr<hal::Line> owned_line;  // a web call's line, kept until the call is gone
    std::unique_ptr<CallContext> ctx;
    std::unique_ptr<Call> call;
  };
  // A free line for `number`: a PBX extension only on a SIP channel.
  hal::Line* free_line(std::string_view number);
  bool line_free(const hal::Line& line) const;
  const Call* call_on(const hal::Line& line) const;
  // `port` and `on_turn` replace the context's for this call (web calls); `owned` is kept with it.
  Status launch(hal::Line& line, CallSetup setup, AudioPortFactory port = {},
                std::function<void(const TranscriptTurn&)> on_turn = {},
                std::shared_ptr<hal::Line> owned = {});
  void drain_queue();
  void call_finished(Call& call);
  const AgentConfig* agent(std::string_view uuid) const;
  size_t max_queue() const { return config_ ? config_->calls.max_queue : ctx_.calls.max_queue; }
  void answer_inbound(hal::Line& line, const hal::LineEvent& event);
  std::string caller_number(const std::string& raw) const;
  void close_unplaced(CallRecord& rec, std::string reason);
  // Queues `record` for the finished listeners (delivered by the post source, after this loop iteration).
  void announce(const CallRecord& record);
  void deliver_finished();

  CallContext& ctx_;
  LineManager& lines_;
  const Config* config_ = nullptr;
  std::vector<Live> calls_;
  std::vector<Live> graveyard_;  // finished calls, destroyed outside their own callbacks
  std::deque<Queued> queue_;
  EventSource reaper_;
  uint64_t finished_xruns_ = 0;  // of calls that ended
  std::map<int, CallFinishedListener> finished_listeners_;
  int next_listener_ = 0;
  std::vector<CallRecord> finished_pending_;  // final records not yet delivered to the listeners
  bool stopping_ = false;                     // shutdown(): nothing more is announced
};

}  // namespace osvi::daemon
