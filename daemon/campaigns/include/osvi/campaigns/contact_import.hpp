// ContactImport: one upload of contacts into a campaign (API JSON, CSV, fleet command), contact by contact,
// so a large file is never held whole: normalised, deduplicated, DND-checked, stored in batches.
//
// Threading: loop thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"

struct cJSON;

namespace osvi::daemon {

class Store;
class TimeZones;

inline constexpr size_t kMaxContactsPerJsonRequest = 10000;  // spec §3.7
inline constexpr size_t kMaxReportedProblems = 1000;         // items of dnd_skipped[] and invalid[]
inline constexpr size_t kMaxContactNameChars = 200;          // person_name, in characters
inline constexpr size_t kMaxContactVariables = 50;           // prompt variables (other keys) per contact
inline constexpr size_t kMaxContactVariablesBytes = 4096;    // their compact JSON

struct ImportOptions {
  int64_t campaign_id = 0;
  std::string agent_uuid;
  bool enqueue = false;
  std::string source = "api";  // api | csv | mqtt
  std::string file_name;       // empty = the synthetic "<unix s>-api_contacts_<16 hex>.csv"
  std::optional<std::string> idempotency_key;
  std::string default_region = "IN";  // site.country
  // A number mapping to no zone or several is stored with a null zone and dialled in this one (the site's,
  // read at dial time, so a change of site.time_zone applies to such contacts already queued).
  std::string site_time_zone = "Asia/Kolkata";
  // The box has a line that can place calls (the import sees the store only); enqueue without one: -ENODEV.
  bool can_dial = true;
};

struct ContactProblem {
  int64_t index = 0;  // 0-based position in the JSON array, or the CSV line number (1-based)
  std::string phone;  // as given
  std::string reason;
};

struct DndSkip {
  std::string phone;   // E.164
  std::string reason;  // the DND entry's reason, or "on the do-not-disturb list"
};

// The response `data` of POST /v1/campaigns/{id}/contacts (spec §3.7) plus the box's extensions.
struct ImportResult {
  int64_t campaign_upload_id = 0;
  int64_t contacts_received = 0;
  int64_t contacts_accepted = 0;   // stored as new contacts
  int64_t duplicates_removed = 0;  // within the upload and against the campaign's contacts
  bool enqueued = false;
  int64_t queued_calls = 0;  // contacts of the campaign now queued (or dialling) for this agent
  std::vector<DndSkip> dnd_skipped;
  std::vector<ContactProblem> invalid;  // extension: numbers that could not be normalised, bad rows
  // Both lists stop at kMaxReportedProblems entries (a million-row file of bad rows must not become a
  // million-item answer, held in memory and stored with the upload); the counts are complete.
  int64_t dnd_skipped_count = 0;
  int64_t invalid_count = 0;
  std::string file_name;
  bool replayed = false;  // the idempotency key was seen before: this is the first import's result
};

// The result as the response `data` (and as stored on the upload for a replay), and back.
cJSON* import_result_to_json(const ImportResult& result);  // owned by the caller
std::optional<ImportResult> import_result_from_json(std::string_view text);

class ContactImport {
 public:
  // Checks the campaign and agent and opens the upload (one transaction per batch of contacts). Errors:
  // -ENOENT unknown campaign, -EINVAL agent not in the campaign / not an active voice agent, -ENODEV enqueue
  // asked but no line of the box can place calls. With an idempotency key already used: *replay gets the
  // first result and the returned import is null.
  static Result<std::unique_ptr<ContactImport>> begin(Store& store, TimeZones& zones,
                                                      const ImportOptions& options,
                                                      std::optional<ImportResult>* replay);
  ~ContactImport();

  // One contact: phone, person_name, the other keys as prompt variables (JSON object item of §3.7).
  void add_json(const cJSON* contact, int64_t index);
  // One contact from separated fields (CSV): variables as a JSON object text or none.
  void add(std::string_view phone, std::optional<std::string_view> person_name,
           std::optional<std::string> variables_json, int64_t index);
  // A row that could not be read at all (CSV syntax), reported as invalid.
  void reject(int64_t index, std::string_view raw, std::string_view reason);
  // Stores what is pending, enqueues, writes the result on the upload row. A store failure anywhere makes the
  // whole import fail (no partial upload is left: the upload and its contacts are removed).
  Result<ImportResult> finish();

 private:
  struct Impl;
  explicit ContactImport(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace osvi::daemon
