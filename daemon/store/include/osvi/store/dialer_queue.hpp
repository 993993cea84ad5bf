// The dialler's side of the campaign contact queue: the next due contact, attempts opened before the line
// dials and closed from the call's record, deferrals to the next allowed moment.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"
#include "osvi/store/campaigns.hpp"

namespace osvi::daemon {

class Database;

struct AttemptRow {
  int64_t id = 0;
  int64_t contact_id = 0, campaign_id = 0;
  std::string agent_uuid, phone, call_id;
  int64_t started_at_ms = 0;
  std::optional<int64_t> ended_at_ms;
  std::optional<std::string> outcome;  // the call's final status, or "not_placed"
};

class DialerQueue {
 public:
  explicit DialerQueue(Database& db) : db_(db) {}

  // The queued contact of (campaign, agent) with the earliest next_attempt_at <= now (then lowest id), or
  // none. One indexed probe: p99 <= 1 ms with 1,000,000 queued contacts (bench/dialer_bench).
  Result<std::optional<ContactRow>> next_due(int64_t campaign_id, std::string_view agent_uuid,
                                             int64_t now_ms);
  // The earliest next_attempt_at of any queued contact of (campaign, agent), to arm the scheduler's timer.
  Result<std::optional<int64_t>> earliest_due(int64_t campaign_id, std::string_view agent_uuid);
  // Moves a queued contact's next attempt (outside its window, over the daily cap, the agent busy).
  Status defer(int64_t contact_id, int64_t next_attempt_at_ms);
  // A contact leaves the queue for good: state done or dnd, with the outcome that ended it.
  Status finish(int64_t contact_id, std::string_view state, std::string_view outcome);

  // In one transaction: the attempt row (open) and the contact to dialing with attempts + 1 and
  // last_call_id = call_id. Must commit before the line dials.
  Status open_attempt(const ContactRow& contact, std::string_view call_id, int64_t now_ms);
  // Closes the attempt of call_id with outcome (idempotent: a closed attempt is left as it is) and returns
  // it; the contact stays dialing for the caller to requeue (queue_again) or finish. none = no such attempt.
  Result<std::optional<AttemptRow>> close_attempt(std::string_view call_id, std::string_view outcome,
                                                  int64_t now_ms);
  // A contact back to queued, due at next_attempt_at_ms (a retry, or an attempt that was never placed, in
  // which case uncount = true takes the attempt back from its count).
  Status queue_again(int64_t contact_id, int64_t next_attempt_at_ms, bool uncount);
  Result<std::optional<ContactRow>> contact(int64_t contact_id);
  // Attempts still open (start-up: a previous daemon died between dialling and the call's end).
  Result<std::vector<AttemptRow>> open_attempts();
  // Attempts to phone started at or after since_ms, every campaign; *oldest gets the earliest start among
  // them (for "when may it be called again").
  Result<int64_t> attempts_since(std::string_view phone, int64_t since_ms, std::optional<int64_t>* oldest);
  // Contacts of (campaign, agent) in state dialing.
  Result<int64_t> dialing_count(int64_t campaign_id, std::string_view agent_uuid);

 private:
  Database& db_;
};

}  // namespace osvi::daemon
