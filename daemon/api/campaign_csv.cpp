// CSV contact uploads (extension): POST /v1/campaigns/{id}/contacts with a text/csv body, and
// POST /v1/campaigns/{id}/contacts.csv. The body is parsed as it arrives (a net::HttpBodySink) and each row
// goes straight into a ContactImport, so a file of any size up to the limit is never held in memory.
#include <cjson/cJSON.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include "osvi/api/api.hpp"
#include "osvi/base/ids.hpp"
#include "osvi/campaigns/campaigns.hpp"
#include "osvi/campaigns/contact_import.hpp"
#include "osvi/campaigns/csv_contacts.hpp"
#include "osvi/net/text.hpp"
#include "requests.hpp"
#include "util.hpp"

namespace osvi::daemon {
namespace {

using net::HttpReply;
using net::HttpRequest;
using net::HttpResponse;
using net::quoted;

constexpr uint64_t kMaxCsvBodyBytes = 64ull * 1024 * 1024;
constexpr size_t kMaxFileNameChars = 128;

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The campaign id of /v1/campaigns/{id}/contacts[.csv] and whether it is the .csv form; nullopt for any other
// path. The id is whatever sits in the segment (checked later, so a bad one is a 404 of its own).
struct CsvRoute {
  std::string id;
  bool csv_path = false;
};
std::optional<CsvRoute> csv_route(std::string_view path) {
  while (path.size() > 1 && path.ends_with('/')) path.remove_suffix(1);
  constexpr std::string_view kPrefix = "/v1/campaigns/";
  if (!path.starts_with(kPrefix)) return std::nullopt;
  path.remove_prefix(kPrefix.size());
  const size_t slash = path.find('/');
  if (slash == 0 || slash == std::string_view::npos) return std::nullopt;
  const std::string_view tail = path.substr(slash);
  if (tail != "/contacts" && tail != "/contacts.csv") return std::nullopt;
  return CsvRoute{std::string(path.substr(0, slash)), tail == "/contacts.csv"};
}

// "text/csv" with optional parameters: nullopt when the type is something else, else the charset problem
// ("" when fine). Only UTF-8 (and its subset US-ASCII) is read.
std::optional<std::string> csv_type(std::optional<std::string_view> header) {
  if (!header) return std::nullopt;
  const std::string_view h = *header;
  if (lower_ascii(trim(h.substr(0, h.find(';')))) != "text/csv") return std::nullopt;
  std::string_view params = h.find(';') == std::string_view::npos ? "" : h.substr(h.find(';') + 1);
  while (!params.empty()) {
    const size_t semi = params.find(';');
    const std::string_view p = trim(params.substr(0, semi));
    params = semi == std::string_view::npos ? "" : params.substr(semi + 1);
    const size_t eq = p.find('=');
    if (eq == std::string_view::npos || lower_ascii(trim(p.substr(0, eq))) != "charset") continue;
    std::string_view cs = trim(p.substr(eq + 1));
    if (cs.size() >= 2 && cs.front() == '"' && cs.back() == '"') cs = cs.substr(1, cs.size() - 2);
    const std::string l = lower_ascii(cs);
    if (l != "utf-8" && l != "utf8" && l != "us-ascii")
      return "Content-Type: charset " + quoted(cs) + " is not supported (send UTF-8)";
  }
  return std::string();
}

// What a client may call its file in the campaign status: the last path component, letters, digits and
// ". _ -" kept, anything else '_', at most kMaxFileNameChars; empty = the synthetic name.
std::string sanitize_file_name(std::string_view name) {
  if (const size_t cut = name.find_last_of("/\\"); cut != std::string_view::npos) name.remove_prefix(cut + 1);
  std::string out;
  for (char c : name) {
    if (out.size() >= kMaxFileNameChars) break;
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-';
    out.push_back(keep ? c : '_');
  }
  while (!out.empty() && out.front() == '.') out.erase(out.begin());  // no hidden or ".." names
  return out;
}

std::optional<bool> parse_flag(std::string_view v) {
  if (v == "true" || v == "1") return true;
  if (v == "false" || v == "0") return false;
  return std::nullopt;
}

// A row of the file into the import.
class ImportRows : public ContactRows {
 public:
  explicit ImportRows(ContactImport& import) : import_(import) {}
  void add(std::string_view phone, std::optional<std::string_view> person_name,
           std::optional<std::string> variables_json, int64_t line) override {
    import_.add(phone, person_name, std::move(variables_json), line);
  }
  void reject(int64_t line, std::string_view raw, std::string_view reason) override {
    import_.reject(line, raw, reason);
  }

 private:
  ContactImport& import_;
};

// One CSV upload: refused from its head (failure set, nothing imported), or an import being fed.
class CsvUploadSink : public net::HttpBodySink {
 public:
  CsvUploadSink(int status, std::string message)
      : failure_(CsvContacts::Failure{status, std::move(message)}) {}
  CsvUploadSink(std::unique_ptr<ContactImport> import, bool has_header, CampaignService& campaigns)
      : import_(std::move(import)), campaigns_(&campaigns) {
    rows_.emplace(*import_);
    csv_.emplace(*rows_, has_header);
  }

  uint64_t max_bytes() const override { return kMaxCsvBodyBytes; }
  Status write(std::string_view data) override {
    if (failure_) return make_error(failure_->message);
    if (!csv_->feed(data)) {
      failure_ = csv_->failure();
      abandon();
      return make_error(failure_->message);
    }
    return {};
  }

  HttpResponse finish() {
    if (!failure_ && !csv_->finish()) {
      failure_ = csv_->failure();
      abandon();
    }
    if (failure_) return Api::error(failure_->status, failure_->message);
    csv_.reset();
    rows_.reset();
    auto result = import_->finish();
    import_.reset();
    if (!result) return Api::error(500, "the upload could not be stored: " + result.error().message);
    campaigns_->finished(*result);
    net::JsonPtr data(import_result_to_json(*result));
    // A CSV row is found by its line in the file, not by a position in an array.
    cJSON* item = nullptr;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(data.get(), "invalid")) {
      if (cJSON* index = cJSON_DetachItemFromObjectCaseSensitive(item, "index")) {
        cJSON_AddNumberToObject(item, "line", index->valuedouble);
        cJSON_Delete(index);
      }
    }
    return success(std::move(data));
  }

 private:
  // The import is dropped unfinished: ContactImport leaves no partial upload behind.
  void abandon() {
    csv_.reset();
    rows_.reset();
    import_.reset();
  }

  std::optional<CsvContacts::Failure> failure_;
  // Declared in dependency order: the reader feeds the rows, the rows feed the import.
  std::unique_ptr<ContactImport> import_;
  std::optional<ImportRows> rows_;
  std::optional<CsvContacts> csv_;
  CampaignService* campaigns_ = nullptr;
};

}  // namespace

std::unique_ptr<net::HttpBodySink> Api::body_sink(const HttpRequest& head) {
  if (head.method != "POST" || !net::clean_text(head.path) || !csv_route(head.path)) return nullptr;
  auto type = csv_type(head.header("Content-Type"));
  if (!type || !type->empty()) return nullptr;  // answered by handle(), from a body of the usual limit
  // Only an authenticated client may send a body of the CSV limit; the others get handle()'s 401.
  auto token = head.header("API-Token");
  const ApiToken* caller = nullptr;
  if (token && !token->empty())
    for (const ApiToken& t : *ctx_.tokens)
      if (constant_time_equal(t.token, *token) && !caller) caller = &t;
  if (!caller) return nullptr;
  return open_csv_upload(head, *caller);
}

std::unique_ptr<net::HttpBodySink> Api::open_csv_upload(const HttpRequest& head, const ApiToken& caller) {
  auto refuse = [](int status, std::string message) {
    return std::make_unique<CsvUploadSink>(status, std::move(message));
  };
  const auto route = csv_route(head.path);
  int64_t campaign_id = 0;
  if (const std::string& id = route->id;
      std::from_chars(id.data(), id.data() + id.size(), campaign_id).ptr != id.data() + id.size() ||
      campaign_id <= 0)
    return refuse(404, "no campaign " + quoted(route->id) + " (a campaign id is a positive integer)");
  if (auto bad = check_query(head.query)) return refuse(422, bad->message);

  ImportOptions o;
  o.campaign_id = campaign_id;
  o.source = "csv";
  bool has_header = true;
  bool have_agent = false;
  for (const auto& [name, value] : head.query) {
    if (name == "agent_uuid") {
      if (value.empty() || net::utf8_length(value) > kMaxAgentUuidChars)
        return refuse(422, "agent_uuid: expected an agent uuid of 1 to " +
                               std::to_string(kMaxAgentUuidChars) + " characters");
      o.agent_uuid = value;
      have_agent = true;
    } else if (name == "enqueue" || name == "no_header") {
      auto flag = parse_flag(value);
      if (!flag) return refuse(422, name + ": expected true or false, got " + quoted(value));
      if (name == "enqueue")
        o.enqueue = *flag;
      else
        has_header = !*flag;
    } else if (name == "file_name") {
      o.file_name = sanitize_file_name(value);
    } else {
      return refuse(422, "query parameter " + quoted(name) +
                             ": unknown (expected agent_uuid, enqueue, no_header, file_name)");
    }
  }
  if (!have_agent) return refuse(422, "agent_uuid: required (a query parameter of a CSV upload)");
  if (!(caller.agents.empty() ||
        std::find(caller.agents.begin(), caller.agents.end(), o.agent_uuid) != caller.agents.end()))
    return refuse(403, "agent_uuid: this API token may not use agent " + quoted(o.agent_uuid));
  if (!ctx_.campaigns) return refuse(503, "campaigns are not available");
  // As every campaign endpoint (campaigns.cpp): a limited token reaches only campaigns all of whose agents it
  // may use. Checked here, before a byte of the body is imported.
  auto campaign = ctx_.campaigns->get(campaign_id);
  if (!campaign.ok()) return refuse(500, "reading a campaign: " + campaign.error().message);
  if (!campaign->has_value()) return refuse(404, "no campaign " + std::to_string(campaign_id));
  const std::vector<CampaignAgentRow>& agents = (*campaign)->agents;
  if (!caller.agents.empty() &&
      (agents.empty() || !std::all_of(agents.begin(), agents.end(), [&](const CampaignAgentRow& a) {
         return std::find(caller.agents.begin(), caller.agents.end(), a.agent_uuid) != caller.agents.end();
       })))
    return refuse(403, "this API token may not use campaign " + std::to_string(campaign_id) +
                           " (it may not use all of its agents)");

  std::optional<ImportResult> replay;  // no idempotency key: never set
  auto import = ctx_.campaigns->begin_import(o, &replay);
  if (!import) {
    switch (import.error().code) {
      case -ENOENT:
        return refuse(404, "no campaign " + std::to_string(campaign_id));
      case -EINVAL:
        return refuse(422, import.error().message);
      case -ENODEV:  // as the JSON upload: retrying changes nothing until a line is configured
        return refuse(409,
                      "enqueue: this box has no active outbound line to place the calls on; upload without "
                      "enqueue, or configure a line");
      default:
        return refuse(500, "importing contacts: " + import.error().message);
    }
  }
  if (!*import) return refuse(500, "the upload could not be opened");
  return std::make_unique<CsvUploadSink>(std::move(*import), has_header, *ctx_.campaigns);
}

void Api::post_contacts_csv(HttpRequest& request, HttpReply reply) {
  auto type = csv_type(request.header("Content-Type"));
  if (!type) {
    const auto route = csv_route(request.path);
    const std::string expected = route && !route->csv_path ? "text/csv or application/json" : "text/csv";
    auto got = request.header("Content-Type");
    reply.send(error(415, got ? "Content-Type: expected " + expected + ", got " + quoted(*got)
                              : "Content-Type: required, " + expected));
    return;
  }
  if (!type->empty()) {
    reply.send(error(415, *type));
    return;
  }
  // Streamed by the server into the sink body_sink() opened; without one (a server not asked for sinks) the
  // gathered body goes through the same sink in one piece.
  std::shared_ptr<net::HttpBodySink> sink = request.body_sink;
  if (!dynamic_cast<CsvUploadSink*>(sink.get())) {
    sink = open_csv_upload(request, *caller_);
    (void)sink->write(request.body);
  }
  reply.send(static_cast<CsvUploadSink&>(*sink).finish());
}

}  // namespace osvi::daemon
