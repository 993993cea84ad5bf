// LineManager: brings up every configured telephony line, drives it from the control loop, logs its changes.
//
// Threading: loop thread only. Each line exposes an fd and a deadline (hal/line.hpp); the manager keeps one
// io source and one timer per line in step with them after every callback. A SIP line is a hal::SipTrunk
// whose channels ("pbx.1" …) are the lines the calls engine sees; the trunk, not its channels, has the fd
// and the deadline, so the manager watches it once for all of them.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/base/event_loop.hpp"
#include "osvi/clock.hpp"
#include "osvi/config/config.hpp"
#include "osvi/hal/line.hpp"
#include "osvi/hal/sip_line.hpp"
#include "osvi/result.hpp"

struct cJSON;

namespace osvi::daemon {

// One line as /v1/health shows it.
struct LineHealth {
  std::string id;
  std::string type;
  std::string state;
  std::string reason;
  std::string agent_uuid;
  hal::LineIdentity identity;
  hal::AudioEndpoint audio;
  // A SIP line: the trunk's registration and its channels that carry a call (neither idle nor down: those
  // say nothing the line's own state does not). Then identity and audio are not shown.
  struct Channel {
    std::string id;
    std::string state;
  };
  std::optional<hal::SipStatus> sip;
  std::vector<Channel> channels;
};

// One line as GET /v1/health and the fleet's birth show it (a new cJSON object, owned by the caller).
cJSON* line_health_json(const LineHealth& line);

class LineManager {
 public:
  // Line events for the calls engine; called after the manager has logged.
  using EventSink = std::function<void(hal::Line& line, const hal::LineEvent& event)>;

  LineManager(EventLoop& loop, const Clock& clock);
  ~LineManager();
  LineManager(const LineManager&) = delete;
  LineManager& operator=(const LineManager&) = delete;

  // Creates and starts every enabled line. on_change runs whenever a line's state or reason may have changed.
  Status start(const std::vector<LineConfig>& lines, std::function<void()> on_change);
  void set_event_sink(EventSink sink) { sink_ = std::move(sink); }

  // Every line is idle, or down with a reason (READY=1 waits for this).
  bool all_settled() const;
  std::vector<LineHealth> health() const;
  // "sim0 idle, gsm0 down (cannot open /dev/osvi-ec25-at: No such file or directory)"; "" without lines.
  std::string summary() const;
  hal::Line* find(std::string_view id);
  // The line's configuration (the agent that answers it), or null.
  const LineConfig* config_of(std::string_view id) const;
  // Every line, in configuration order; a SIP line contributes its channels.
  std::vector<hal::Line*> lines();
  // Whether `line` is a channel of a SIP line (it can dial PBX extensions).
  bool is_sip(const hal::Line& line) const;
  // Whether a SIP line is configured and enabled.
  bool has_sip() const;
  // Ends a diagnostic's hold on an idle line (hal::Line::set_held) and tells the event sink it is up, so
  // calls that queued meanwhile are placed.
  void release(hal::Line& line);
  // After an action taken outside a line callback (dial from the API): watch the line's new fd/deadline.
  void refresh(const hal::Line& line);
  // Lines the engine can use (a SIP line counts its channels): the box's capacity of calls at once.
  size_t size() const;
  // The configuration the lines were started with (a reload does not restart lines).
  const std::vector<LineConfig>& configs() const { return configs_; }

 private:
  struct Entry;
  void sync(Entry& e);
  void on_event(Entry& e, hal::Line& l, const hal::LineEvent& ev);
  Entry* entry_of(const hal::Line& line);

  EventLoop& loop_;
  const Clock& clock_;
  std::vector<LineConfig> configs_;
  std::vector<std::unique_ptr<Entry>> entries_;
  std::function<void()> on_change_;
  EventSink sink_;
};

}  // namespace osvi::daemon
