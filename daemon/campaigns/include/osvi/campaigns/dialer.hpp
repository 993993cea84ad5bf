// Dialer: the campaign scheduler on the loop — keeps free lines busy with due callbacks (promised to a
// callee, or owed by a call's retry_config) and due contacts, inside the callee's calling hours, never a
// do-not-disturb number, never a second call for an attempt or a callback already placed.
//
// Threading: loop thread only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/base/time_zone.hpp"
#include "osvi/calls/call_service.hpp"
#include "osvi/calls/call_timers.hpp"
#include "osvi/clock.hpp"
#include "osvi/config/config.hpp"
#include "osvi/result.hpp"
#include "osvi/store/callbacks.hpp"
#include "osvi/store/calls.hpp"
#include "osvi/store/campaigns.hpp"
#include "osvi/store/store.hpp"

namespace osvi::daemon {

// What the API and the fleet tell the dialler (campaigns.hpp's service pokes it after an import or a status
// change); the dialler itself is built and wired by the app.
class DialerControl {
 public:
  virtual ~DialerControl() = default;
  // Something may have become due (contacts enqueued, a campaign activated, a callback scheduled): look again
  // on the next turn. Whoever schedules a callback pokes: the dialler's timer only knows the rows it saw.
  virtual void poke() = 0;
};

// The parts the dialler works with; each must outlive it.
struct DialerContext {
  const Clock* clock = nullptr;  // the loop's: wall time for the schedule, monotonic for the timer
  Store* store = nullptr;
  CallService* calls = nullptr;
  TimeZones* zones = nullptr;
  // Builds the scheduler's one timer (make_loop_call_timer in the daemon, a virtual clock in tests).
  CallTimerFactory timer;
};

// What one pass decided, for the journal's debug lines and the tests.
struct DialerCounters {
  int64_t placed = 0;             // calls handed to the line
  int64_t deferred_window = 0;    // outside the callee's calling hours
  int64_t deferred_cap = 0;       // over compliance.max_attempts_per_day
  int64_t dnd = 0;                // finished as dnd at dial time
  int64_t not_placed = 0;         // place_call refused (requeued or finished)
  int64_t retried = 0;            // queued again after a call's outcome
  int64_t finished = 0;           // done after a call's outcome
  int64_t recovered = 0;          // open attempts and callbacks closed at start
  int64_t callbacks_placed = 0;   // of placed: callbacks and retries
  int64_t retries_scheduled = 0;  // retry rows made from a call's retry_config
};

// call_config_overrides.retry_config of a call, as the dialler reads it (docs/api.md): absent members take
// these defaults (the spec's example); max_attempts counts retries, not the first call.
struct RetryConfig {
  bool enabled = true;
  int64_t max_attempts = 2;
  int64_t interval_minutes = 30;
};
// The retry_config of a call's call_config_overrides JSON; none when it has none (or is not an object).
std::optional<RetryConfig> retry_config_of(const std::optional<std::string>& call_config_overrides);
// Statuses a retry_config retries ("retry when unanswered"): not_picked and busy, as a campaign's default
// retry_on. voicemail (a machine answered, a message may have been left) and failed (the box or the network
// could not make the call; retrying blindly rarely helps) are not.
bool retry_config_retries(std::string_view status);

class Dialer final : public DialerControl {
 public:
  // Decisions per loop turn: a queue full of contacts outside their hours is deferred in slices, so one
  // pass never holds the loop for long; the rest follows on the next turn.
  static constexpr int kDecisionsPerTurn = 64;
  // place_call said the lines are busy or absent: the contact is due again this much later.
  static constexpr int64_t kBusyBackoffMs = 30'000;
  // place_call said the agent is gone: its contacts stay queued and the agent is skipped this long.
  static constexpr int64_t kAgentBackoffMs = 60'000;

  static Result<std::unique_ptr<Dialer>> create(DialerContext ctx);
  ~Dialer() override;
  Dialer(const Dialer&) = delete;
  Dialer& operator=(const Dialer&) = delete;

  // Compliance, the site's zone and the agents come from here; it must outlive the dialler until the next
  // set_config. Pokes: a reload may have activated an agent.
  void set_config(const Config* config);
  // Closes the attempts a previous daemon left open from their call records (a final status counts as the
  // call's outcome; no record means the line never dialled: the contact is queued again, its attempt
  // uncounted), then schedules the first pass. Never redials an attempt blindly.
  Status start();
  void poke() override;
  // A call finished (the dialler listens to CallService from create() to its end): its attempt is closed
  // and the contact retried or finished, the callback that placed it closed, and a retry scheduled when the
  // call's retry_config asks for one; a line is free, so a pass follows.
  void on_call_finished(const CallRecord& record);

  const DialerCounters& counters() const { return counters_; }
  // The wall time (ms) the timer is armed for, or -1 (tests).
  int64_t next_wake_ms() const { return wake_ms_; }

 private:
  explicit Dialer(DialerContext ctx) : ctx_(std::move(ctx)) {}
  struct Slot;
  enum class Pick { placed, moved, empty, full, no_line, stop_agent };

  void run();
  Pick pick(Slot& slot, int64_t now_ms);
  Pick place(Slot& slot, const ContactRow& contact, int64_t now_ms);
  Status settle(const AttemptRow& attempt, const std::string& status, int64_t now_ms);
  // Callbacks (due before campaign contacts: they are promises to a callee).
  // The next due callback of one of agents (those that may dial now), checked and placed.
  Pick pick_callback(int64_t now_ms, const std::vector<std::string>& agents);
  Pick place_callback(const CallbackRow& row, int64_t now_ms);
  // The callback that placed record's call closed, and the retry its retry_config owes scheduled: one
  // transaction.
  Status finish_callback(const CallRecord& record, int64_t now_ms);
  Status schedule_retry(const CallRecord& record, int64_t now_ms);
  Status recover_callbacks(int64_t now_ms);
  // Calls to phone in the 24 h before now: campaign attempts and callbacks together.
  Result<int64_t> calls_in_day(const std::string& phone, int64_t now_ms, std::optional<int64_t>* oldest);
  std::shared_ptr<const TimeZone> zone_of(const ContactRow& contact);
  // The callee's zone: `zone` when set and known, else the one zone phone_time_zones maps the number to,
  // else the site's.
  std::shared_ptr<const TimeZone> zone_for(const std::optional<std::string>& zone, const std::string& phone);
  std::shared_ptr<const TimeZone> site_zone();
  bool agent_dials(std::string_view agent_uuid) const;
  void arm(int64_t wall_ms);

  DialerContext ctx_;
  const Config* config_ = nullptr;
  std::unique_ptr<CallTimer> timer_;
  int listener_ = -1;  // CallService::add_finished_listener's handle
  int64_t wake_ms_ = -1;
  std::map<std::string, int64_t, std::less<>> agent_skip_until_;  // agent_uuid → wall ms
  DialerCounters counters_;
  bool running_ = false;  // inside run(): a poke from a nested callback (place_call's) waits for its end
  bool repoke_ = false;
};

}  // namespace osvi::daemon
