// CampaignService: the campaigns of the box — configuration campaigns synced into the store, API campaigns
// created and patched, contact imports, the dialler poked when something may have become due.
//
// Threading: loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "osvi/campaigns/contact_import.hpp"
#include "osvi/config/config.hpp"
#include "osvi/result.hpp"
#include "osvi/store/campaigns.hpp"

struct cJSON;

namespace osvi::daemon {

class DialerControl;
class Store;
class TimeZones;

// A campaign row in the configuration's shape (parse_campaign's), and back.
CampaignConfig campaign_config_of(const CampaignRow& row);
CampaignRow campaign_row_of(const CampaignConfig& config, std::string_view source);
// The parse_campaign object of a campaign (agents always as objects, times at offset_minutes); owned by the
// caller. The API adds created_at, updated_at, source and queued_contacts to it.
cJSON* campaign_definition_json(const CampaignConfig& campaign, int offset_minutes);
// FNV-1a of the definition's compact JSON (UTC times): what a configuration campaign was last applied from.
std::string campaign_definition_hash(const CampaignConfig& campaign);

class CampaignService {
 public:
  CampaignService(Store& store, TimeZones& zones) : store_(store), zones_(zones) {}

  // Set by the app; either may be null / empty (no dialler: nothing to poke; no probe: the box can dial).
  void set_dialer(DialerControl* dialer) { dialer_ = dialer; }
  void set_can_dial(std::function<bool()> can_dial) { can_dial_ = std::move(can_dial); }

  // At start and on every reload (config must outlive the next call): the configuration's campaigns into the
  // store. A campaign whose definition changed (or is new) is written as the configuration says; one whose
  // definition is unchanged keeps its runtime status and agents' active flags (PATCHed since). A campaign
  // that left the configuration is set inactive, its queue kept (history, and a way back). An API campaign
  // with the id of a configuration campaign is taken over by the configuration (logged).
  Status sync(const Config& config);
  // The configuration the service reads (agents, site): after a reload moved the synced one into place.
  void set_config(const Config* config) { config_ = config; }

  // POST /v1/campaigns: -EINVAL (the message lists every problem), -EEXIST (the id is taken).
  Result<CampaignRow> create(const cJSON* body);
  // PATCH /v1/campaigns/{id}: -ENOENT, -EINVAL, -EPERM (a configuration campaign: only status and the
  // agents' active flags may change; the message names the key and the configuration).
  Result<CampaignRow> patch(int64_t id, const cJSON* body);
  Result<std::optional<CampaignRow>> get(int64_t id);
  Result<std::vector<CampaignRow>> list();

  // POST /v1/campaigns/{id}/contacts (JSON): every item of `contacts` through one ContactImport. Errors as
  // ContactImport::begin and finish. options.default_region and can_dial are filled from the configuration.
  Result<ImportResult> import_json(ImportOptions options, const cJSON* contacts);
  // The hook for CSV and fleet imports: begin() with the box's region and line state filled in; the caller
  // adds the contacts, then calls finished() with the result.
  Result<std::unique_ptr<ContactImport>> begin_import(ImportOptions options,
                                                      std::optional<ImportResult>* replay);
  void finished(const ImportResult& result);
  // POST /v1/campaigns/{id}/uploads/{upload_id}/enqueue: the upload's held contacts, queued now. -ENOENT
  // (no such upload in that campaign), -ENODEV (no line can place calls). Returns how many moved.
  Result<int64_t> enqueue_upload(int64_t campaign_id, int64_t upload_id);

 private:
  void poke();
  ImportOptions fill(ImportOptions options) const;

  Store& store_;
  TimeZones& zones_;
  const Config* config_ = nullptr;
  DialerControl* dialer_ = nullptr;
  std::function<bool()> can_dial_;
};

}  // namespace osvi::daemon
