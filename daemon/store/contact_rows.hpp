// The campaign_contacts row as both campaign repositories read it (private to the store).
#pragma once

#include "osvi/store/campaigns.hpp"
#include "sqlite.hpp"

namespace osvi::daemon::store_rows {

// The columns read_contact expects, in order.
inline constexpr const char* kContactColumns =
    "id, upload_id, campaign_id, agent_uuid, phone, person_name, variables_json, time_zone, state, attempts, "
    "next_attempt_at, last_call_id, last_outcome, created_at, updated_at";

inline ContactRow read_contact(const sql::Stmt& s) {
  ContactRow c;
  c.id = s.int64(0);
  c.upload_id = s.int64(1);
  c.campaign_id = s.int64(2);
  c.agent_uuid = s.text(3);
  c.phone = s.text(4);
  c.person_name = s.opt_text(5);
  c.variables_json = s.opt_text(6);
  c.time_zone = s.opt_text(7);
  c.state = s.text(8);
  c.attempts = s.int64(9);
  c.next_attempt_at_ms = s.opt_int64(10);
  c.last_call_id = s.opt_text(11);
  c.last_outcome = s.opt_text(12);
  c.created_at_ms = s.int64(13);
  c.updated_at_ms = s.int64(14);
  return c;
}

}  // namespace osvi::daemon::store_rows
