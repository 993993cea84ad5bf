// Repository of campaigns, their agents, uploads and contacts: definitions, imports and progress reports.
// The dialler's side of the contact queue (picking, attempts) is DialerQueue (dialer_queue.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"

namespace osvi::daemon {

class Database;

struct CampaignAgentRow {
  std::string agent_uuid;
  bool active = true;
  bool operator==(const CampaignAgentRow&) const = default;
};

// One row of `campaigns` with its agents. Times are Unix ms (UTC); window minutes are of the callee's local
// day, [start, end), wrapping past midnight when start > end.
struct CampaignRow {
  int64_t id = 0;
  std::string name;
  std::string status = "active";  // active | inactive
  std::string source = "api";     // api | config
  bool is_retry_enabled = false;
  int64_t retry_threshold = 2;  // attempts in all
  int64_t retry_delay_s = 1800;
  std::vector<std::string> retry_on = {"not_picked", "busy"};
  std::optional<int64_t> starts_at_ms, ends_at_ms;
  int window_start_min = 0, window_end_min = 24 * 60;
  int days_mask = 0x7f;  // bit 0 = Sunday
  int64_t max_concurrent_per_agent = 1;
  std::vector<CampaignAgentRow> agents;
  std::string definition_hash;  // config campaigns: the definition last applied
  int64_t created_at_ms = 0, updated_at_ms = 0;
  bool operator==(const CampaignRow&) const = default;
};

struct UploadRow {
  int64_t id = 0;
  int64_t campaign_id = 0;
  std::string agent_uuid;
  std::string file_name;       // "1718000000-api_contacts_<16 hex>.csv" for API uploads
  std::string source = "api";  // api | csv | mqtt
  bool enqueued = false;
  std::optional<std::string> idempotency_key;  // MQTT campaign_contacts
  std::optional<std::string> result_json;      // the import's response data, replayed for a repeated key
  int64_t created_at_ms = 0;
};

// A contact as imported (phone already E.164, the time zone already chosen).
struct ContactInput {
  std::string phone;
  std::optional<std::string> person_name;
  std::optional<std::string> variables_json;  // JSON object of the other keys
  std::optional<std::string> time_zone;       // IANA; none = the site's
};

enum class ContactAdd {
  added,              // a new contact
  duplicate,          // the number was already in the campaign; kept as it was
  duplicate_renamed,  // already there, and this person_name was longer: the stored name was replaced
};

struct ContactRow {
  int64_t id = 0;
  int64_t upload_id = 0, campaign_id = 0;
  std::string agent_uuid;
  std::string phone;
  std::optional<std::string> person_name;
  std::optional<std::string> variables_json;
  std::optional<std::string> time_zone;
  std::string state;  // held | queued | dialing | done | dnd
  int64_t attempts = 0;
  std::optional<int64_t> next_attempt_at_ms;
  std::optional<std::string> last_call_id, last_outcome;
  int64_t created_at_ms = 0, updated_at_ms = 0;
};

// GET /v1/campaigns/{id}/status: uploads[].queues[] — per agent, contacts still to call.
struct UploadQueue {
  std::string agent_uuid;
  int64_t total_queued = 0;  // contacts of the upload queued or dialing
  bool completed = false;    // enqueued and nothing left queued or dialing
};
struct UploadReport {
  UploadRow upload;
  std::vector<UploadQueue> queues;
};
struct CampaignReport {
  CampaignRow campaign;
  int64_t calls_total = 0;
  std::vector<std::pair<std::string, int64_t>> calls_by_status;  // status → count, calls of the campaign
  std::vector<UploadReport> uploads;                             // oldest first
};

class CampaignsRepo {
 public:
  explicit CampaignsRepo(Database& db) : db_(db) {}

  // Insert, or replace the definition of, campaign row.id (its agents replaced too); created_at kept.
  Status upsert(const CampaignRow& row);
  Result<std::optional<CampaignRow>> get(int64_t id);
  Result<std::vector<CampaignRow>> list();                 // by id
  Status set_status(int64_t id, std::string_view status);  // -ENOENT when absent

  // Uploads and contacts: the caller wraps an import in one transaction.
  Result<int64_t> create_upload(const UploadRow& row);
  Result<std::optional<UploadRow>> upload_by_key(std::string_view idempotency_key);
  Result<std::optional<UploadRow>> upload(int64_t upload_id);
  // A failed import's upload goes with its contacts (cascade).
  Status remove_upload(int64_t upload_id);
  Status set_upload_result(int64_t upload_id, std::string_view result_json);
  // Adds a contact of upload_id, or applies the duplicate rule against the campaign's contact of that number
  // (the longer person_name wins). state is "queued" (due now: next_attempt_at = now) or "held".
  Result<ContactAdd> add_contact(int64_t campaign_id, int64_t upload_id, std::string_view agent_uuid,
                                 const ContactInput& contact, bool enqueue);
  // Moves the upload's held contacts to queued, due now; returns how many.
  Result<int64_t> enqueue_upload(int64_t upload_id);
  // Contacts queued (or dialing) in the campaign, all uploads.
  Result<int64_t> queued_count(int64_t campaign_id);
  // The same for one agent's contacts (an import's queued_calls).
  Result<int64_t> queued_count(int64_t campaign_id, std::string_view agent_uuid);

  Result<std::optional<CampaignReport>> report(int64_t id);
  // A page of a campaign's contacts (extension GET /v1/campaigns/{id}/contacts), by id; state empty = all.
  Result<std::vector<ContactRow>> contacts(int64_t campaign_id, std::string_view state, int64_t page,
                                           int64_t per_page, int64_t* total_count);

 private:
  Database& db_;
};

}  // namespace osvi::daemon
