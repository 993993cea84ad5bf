// ContactImport: normalises, checks and stores one upload of contacts, batch by batch (contact_import.hpp).
#include "osvi/campaigns/contact_import.hpp"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>

#include "osvi/base/log.hpp"
#include "osvi/base/phone.hpp"
#include "osvi/base/time_zone.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/text.hpp"
#include "osvi/store/store.hpp"

namespace osvi::daemon {
namespace {

// Store failures leave as -EIO: begin()'s -EINVAL/-ENOENT/-ENODEV are the request's problems only.
Error io(const Error& e) {
  return make_error(e.message, -EIO);
}

constexpr size_t kBatch = 500;  // contacts per transaction: one fsync per batch, a short write lock

std::string random_hex16() {
  unsigned char bytes[8] = {};
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n <= 0) break;  // only EINTR in practice; the name needs no secrecy, so zeros are acceptable
    got += static_cast<size_t>(n);
  }
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
  }
  return out;
}

int64_t json_int(const cJSON* o, const char* name) {
  const cJSON* item = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsNumber(item) ? static_cast<int64_t>(item->valuedouble) : 0;
}

}  // namespace

cJSON* import_result_to_json(const ImportResult& r) {
  cJSON* o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "campaign_upload_id", static_cast<double>(r.campaign_upload_id));
  cJSON_AddNumberToObject(o, "contacts_received", static_cast<double>(r.contacts_received));
  cJSON_AddNumberToObject(o, "contacts_accepted", static_cast<double>(r.contacts_accepted));
  cJSON_AddNumberToObject(o, "duplicates_removed", static_cast<double>(r.duplicates_removed));
  cJSON_AddBoolToObject(o, "enqueued", r.enqueued);
  cJSON_AddNumberToObject(o, "queued_calls", static_cast<double>(r.queued_calls));
  cJSON* dnd = cJSON_AddArrayToObject(o, "dnd_skipped");
  for (const DndSkip& d : r.dnd_skipped) {
    cJSON* item = cJSON_CreateObject();
    net::json_add_string(item, "phone", d.phone);
    net::json_add_string(item, "reason", d.reason);
    cJSON_AddItemToArray(dnd, item);
  }
  cJSON* invalid = cJSON_AddArrayToObject(o, "invalid");
  for (const ContactProblem& p : r.invalid) {
    cJSON* item = cJSON_CreateObject();
    cJSON_AddNumberToObject(item, "index", static_cast<double>(p.index));
    net::json_add_string(item, "phone", p.phone);
    net::json_add_string(item, "reason", p.reason);
    cJSON_AddItemToArray(invalid, item);
  }
  cJSON_AddNumberToObject(o, "dnd_skipped_count", static_cast<double>(r.dnd_skipped_count));
  cJSON_AddNumberToObject(o, "invalid_count", static_cast<double>(r.invalid_count));
  net::json_add_string(o, "file_name", r.file_name);
  return o;
}

std::optional<ImportResult> import_result_from_json(std::string_view text) {
  std::string why;
  net::JsonPtr root = net::json_parse(text, &why);
  if (!root || !cJSON_IsObject(root.get())) return std::nullopt;
  const cJSON* o = root.get();
  ImportResult r;
  r.campaign_upload_id = json_int(o, "campaign_upload_id");
  r.contacts_received = json_int(o, "contacts_received");
  r.contacts_accepted = json_int(o, "contacts_accepted");
  r.duplicates_removed = json_int(o, "duplicates_removed");
  r.enqueued = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "enqueued"));
  r.queued_calls = json_int(o, "queued_calls");
  const cJSON* item = nullptr;
  cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(o, "dnd_skipped")) {
    const char* phone = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "phone"));
    const char* reason = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "reason"));
    r.dnd_skipped.push_back(DndSkip{phone ? phone : "", reason ? reason : ""});
  }
  cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(o, "invalid")) {
    const char* phone = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "phone"));
    const char* reason = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "reason"));
    r.invalid.push_back(ContactProblem{json_int(item, "index"), phone ? phone : "", reason ? reason : ""});
  }
  r.dnd_skipped_count = json_int(o, "dnd_skipped_count");
  r.invalid_count = json_int(o, "invalid_count");
  const char* file = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "file_name"));
  r.file_name = file ? file : "";
  return r;
}

struct ContactImport::Impl {
  Impl(Store& s, TimeZones& z, ImportOptions o) : store(s), zones(z), options(std::move(o)) {}

  Store& store;
  TimeZones& zones;
  ImportOptions options;
  ImportResult result;
  std::vector<ContactInput> pending;
  std::set<std::string, std::less<>> dnd_seen;  // numbers already reported as skipped in this upload
  std::optional<std::unordered_map<std::string, std::string>> dnd_reasons;  // loaded on the first hit
  std::optional<Error> failed;  // the first store failure; everything after it is ignored
  bool finished = false;

  void invalid(int64_t index, std::string_view phone, std::string reason) {
    ++result.contacts_received;
    ++result.invalid_count;
    if (result.invalid.size() < kMaxReportedProblems)
      result.invalid.push_back(ContactProblem{index, std::string(phone), std::move(reason)});
  }

  std::string dnd_reason(const std::string& phone) {
    if (!dnd_reasons) {
      dnd_reasons.emplace();
      auto entries = store.dnd().active(options.agent_uuid);
      if (entries.ok()) {
        for (const DndEntry& e : *entries) {
          if (e.reason && !e.reason->empty()) (*dnd_reasons)[e.phone] = *e.reason;
        }
      }
    }
    auto it = dnd_reasons->find(phone);
    return it != dnd_reasons->end() ? it->second : "on the do-not-disturb list";
  }

  Status flush() {
    if (pending.empty()) return {};
    Status s = store.database().transaction([&]() -> Status {
      for (const ContactInput& c : pending) {
        auto added = store.campaigns().add_contact(options.campaign_id, result.campaign_upload_id,
                                                   options.agent_uuid, c, options.enqueue);
        if (!added.ok()) return added.error();
        if (*added == ContactAdd::added) {
          ++result.contacts_accepted;
        } else {
          ++result.duplicates_removed;
        }
      }
      return {};
    });
    pending.clear();
    return s;
  }

  void fail_cleanup() {
    if (Status s = store.campaigns().remove_upload(result.campaign_upload_id); !s.ok()) {
      log::error("could not remove a failed upload: " + s.error().message);
    }
  }
};

ContactImport::ContactImport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ContactImport::~ContactImport() {
  // An import abandoned before finish() (the request went away) leaves nothing half-stored.
  if (impl_ && !impl_->finished && impl_->result.campaign_upload_id > 0) impl_->fail_cleanup();
}

Result<std::unique_ptr<ContactImport>> ContactImport::begin(Store& store, TimeZones& zones,
                                                            const ImportOptions& options,
                                                            std::optional<ImportResult>* replay) {
  auto& repo = store.campaigns();
  if (options.idempotency_key) {
    auto seen = repo.upload_by_key(*options.idempotency_key);
    if (!seen.ok()) return io(seen.error());
    if (seen->has_value()) {
      if ((*seen)->result_json) {
        if (auto first = import_result_from_json(*(*seen)->result_json)) {
          first->replayed = true;
          if (replay != nullptr) *replay = std::move(*first);
          return std::unique_ptr<ContactImport>();
        }
      }
      // A key without a result: the daemon stopped in the middle of that import. Start it again cleanly.
      if (Status s = repo.remove_upload((*seen)->id); !s.ok()) return io(s.error());
    }
  }
  const std::string cid = std::to_string(options.campaign_id);
  auto campaign = repo.get(options.campaign_id);
  if (!campaign.ok()) return io(campaign.error());
  if (!campaign->has_value()) return make_error("campaign " + cid + " does not exist", -ENOENT);
  const auto& agents = (*campaign)->agents;
  if (std::none_of(agents.begin(), agents.end(),
                   [&](const CampaignAgentRow& a) { return a.agent_uuid == options.agent_uuid; })) {
    return make_error(
        "agent_uuid: " + net::quoted(options.agent_uuid) + " is not an agent of campaign " + cid, -EINVAL);
  }
  auto voice = store.agents().active_voice();
  if (!voice.ok()) return io(voice.error());
  if (std::none_of(voice->begin(), voice->end(),
                   [&](const AgentRecord& a) { return a.agent_uuid == options.agent_uuid; })) {
    return make_error("agent_uuid: " + net::quoted(options.agent_uuid) + " is not an active voice agent",
                      -EINVAL);
  }
  if (options.enqueue && !options.can_dial) {
    return make_error("enqueue: this box has no outbound line that can place calls", -ENODEV);
  }

  auto impl = std::make_unique<Impl>(store, zones, options);
  ImportResult& r = impl->result;
  r.enqueued = options.enqueue;
  r.file_name = options.file_name.empty() ? std::to_string(store.database().clock().wall_ms() / 1000) +
                                                "-api_contacts_" + random_hex16() + ".csv"
                                          : options.file_name;
  UploadRow row;
  row.campaign_id = options.campaign_id;
  row.agent_uuid = options.agent_uuid;
  row.file_name = r.file_name;
  row.source = options.source;
  row.enqueued = options.enqueue;
  row.idempotency_key = options.idempotency_key;
  auto id = repo.create_upload(row);
  if (!id.ok()) return io(id.error());
  r.campaign_upload_id = *id;
  return std::unique_ptr<ContactImport>(new ContactImport(std::move(impl)));
}

void ContactImport::add_json(const cJSON* contact, int64_t index) {
  Impl& m = *impl_;
  if (m.failed) return;
  if (!cJSON_IsObject(contact)) {
    m.invalid(index, "", "a contact must be a JSON object");
    return;
  }
  const cJSON* phone = cJSON_GetObjectItemCaseSensitive(contact, "phone");
  if (!cJSON_IsString(phone)) {
    m.invalid(index, "", phone == nullptr ? "phone: required" : "phone: must be a string");
    return;
  }
  std::optional<std::string_view> name;
  const cJSON* person = cJSON_GetObjectItemCaseSensitive(contact, "person_name");
  if (person != nullptr && !cJSON_IsNull(person)) {
    if (!cJSON_IsString(person)) {
      m.invalid(index, phone->valuestring, "person_name: must be a string");
      return;
    }
    name = person->valuestring;
  }
  std::optional<std::string> variables;
  size_t keys = 0;
  const cJSON* item = nullptr;
  cJSON_ArrayForEach(item, contact) {
    if (item == phone || item == person) continue;
    ++keys;
  }
  if (keys > 0) {
    if (keys > kMaxContactVariables) {
      m.invalid(index, phone->valuestring,
                std::to_string(keys) + " prompt variables, more than the " +
                    std::to_string(kMaxContactVariables) + " a contact may carry");
      return;
    }
    net::JsonPtr vars(cJSON_CreateObject());
    cJSON_ArrayForEach(item, contact) {
      if (item == phone || item == person) continue;
      cJSON_AddItemToObject(vars.get(), item->string, cJSON_Duplicate(item, true));
    }
    variables = net::json_print(vars.get());
    if (variables->size() > kMaxContactVariablesBytes) {
      m.invalid(index, phone->valuestring,
                "prompt variables: " + std::to_string(variables->size()) + " bytes of JSON, more than the " +
                    std::to_string(kMaxContactVariablesBytes) + " a contact may carry");
      return;
    }
  }
  add(phone->valuestring, name, std::move(variables), index);
}

void ContactImport::add(std::string_view phone, std::optional<std::string_view> person_name,
                        std::optional<std::string> variables_json, int64_t index) {
  Impl& m = *impl_;
  if (m.failed) return;
  ContactInput c;
  if (person_name) {
    if (net::utf8_length(*person_name) > kMaxContactNameChars) {
      m.invalid(index, phone,
                "person_name: longer than " + std::to_string(kMaxContactNameChars) + " characters");
      return;
    }
    if (!person_name->empty()) c.person_name = std::string(*person_name);
  }
  // The JSON path checked this already; CSV and fleet rows arrive here with their variables built.
  if (variables_json && variables_json->size() > kMaxContactVariablesBytes) {
    m.invalid(index, phone,
              "prompt variables: " + std::to_string(variables_json->size()) +
                  " bytes of JSON, more than the " + std::to_string(kMaxContactVariablesBytes) +
                  " a contact may carry");
    return;
  }
  auto e164 = normalize_any_phone(phone, m.options.default_region);
  if (!e164.ok()) {
    m.invalid(index, phone, "phone: " + e164.error().message);
    return;
  }
  ++m.result.contacts_received;
  c.phone = std::move(*e164);
  c.variables_json = std::move(variables_json);

  auto dnd = m.store.dnd().is_active(m.options.agent_uuid, c.phone);
  if (!dnd.ok()) {
    m.failed = dnd.error();
    return;
  }
  if (*dnd) {
    if (m.dnd_seen.insert(c.phone).second) {
      ++m.result.dnd_skipped_count;
      if (m.result.dnd_skipped.size() < kMaxReportedProblems)
        m.result.dnd_skipped.push_back(DndSkip{c.phone, m.dnd_reason(c.phone)});
    } else {
      ++m.result.duplicates_removed;  // the same DND number again: reported once
    }
    return;
  }
  // One zone: the callee's hours are read there. None or several (a country spanning zones): the site's,
  // stored as null so a change of the site's zone applies. A zone this box has no file for counts as none.
  std::vector<std::string> zones = phone_time_zones(c.phone);
  if (zones.size() == 1 && m.zones.get(zones.front()).ok()) {
    c.time_zone = std::move(zones.front());
  }
  m.pending.push_back(std::move(c));
  if (m.pending.size() >= kBatch) {
    if (Status s = m.flush(); !s.ok()) m.failed = s.error();
  }
}

void ContactImport::reject(int64_t index, std::string_view raw, std::string_view reason) {
  Impl& m = *impl_;
  if (m.failed) return;
  m.invalid(index, raw, std::string(reason));
}

Result<ImportResult> ContactImport::finish() {
  Impl& m = *impl_;
  m.finished = true;
  auto fail = [&](const Error& e) -> Result<ImportResult> {
    m.fail_cleanup();
    // -EIO whatever SQLite said (a constraint reads as -EINVAL): the caller's -EINVAL means a bad request.
    return make_error(
        "importing contacts into campaign " + std::to_string(m.options.campaign_id) + ": " + e.message, -EIO);
  };
  if (m.failed) return fail(*m.failed);
  if (Status s = m.flush(); !s.ok()) return fail(s.error());
  auto queued = m.store.campaigns().queued_count(m.options.campaign_id, m.options.agent_uuid);
  if (!queued.ok()) return fail(queued.error());
  m.result.queued_calls = *queued;
  net::JsonPtr json(import_result_to_json(m.result));
  if (Status s =
          m.store.campaigns().set_upload_result(m.result.campaign_upload_id, net::json_print(json.get()));
      !s.ok()) {
    return fail(s.error());
  }
  return m.result;
}

}  // namespace osvi::daemon
