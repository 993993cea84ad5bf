// osvictl: the technician's command line over osvid's local API (and the journal), docs/osvictl.md.
//
// A separate executable beside osvid, not part of the daemon: it runs once per command, blocking calls are
// fine here (libcurl easy), and it links the daemon's configuration reader only so `config check` gives the
// exact verdict `osvid --check-config` gives.
#include <curl/curl.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "osvi/app/app.hpp"
#include "osvi/config/config.hpp"
#include "osvi/net/json.hpp"
#include "osvi/version.hpp"
#include "osvictl_text.hpp"

namespace {

using osvi::ctl::Args;
using osvi::ctl::kExitOk;
using osvi::ctl::kExitRefused;
using osvi::ctl::kExitUnreachable;
using osvi::ctl::kExitUsage;
using osvi::ctl::Table;
using osvi::net::JsonPtr;

constexpr const char* kDefaultApi = "http://127.0.0.1:8080";
constexpr const char* kDefaultStateDir = "/var/lib/osvi";
constexpr const char* kDefaultConfig = "/etc/osvi/osvid.json";
constexpr size_t kMaxResponseBytes = 64 * 1024 * 1024;  // a reply bigger than this is not the daemon's

// ---------------------------------------------------------------------------------------------------------
// Help texts: the tool's, and one per command (osvictl help CMD, osvictl CMD --help).

constexpr const char* kUsage =
    "usage: osvictl [global options] COMMAND [arguments]\n"
    "\n"
    "The technician's tool for an osvi-edge box: asks the local osvid API, reads osvid's journal.\n"
    "\n"
    "Commands:\n"
    "  status                      health summary: daemon, database, configuration, lines, fleet, last "
    "errors\n"
    "  calls list [filters]        calls, newest first (osvictl calls --help for the filters)\n"
    "  calls show ID               one call's record\n"
    "  calls transcript ID         one call's transcript with per-turn latencies\n"
    "  calls recording ID [-o F]   download the call's stereo Ogg Opus recording (signed link)\n"
    "  call --agent A --phone N [--country CC]   place one outbound call\n"
    "  lines                       the telephony lines and their state\n"
    "  line test ID                ask a modem line now: identity, signal, registration (sim: its script)\n"
    "  audio loopback ID           play a tone burst on an idle line's PCM, measure echo delay and loss\n"
    "  dnd list|add|remove         an agent's do-not-disturb list\n"
    "  campaign status ID          a campaign's calls and uploads\n"
    "  chat sessions [filters]     chat sessions, help requested first\n"
    "  errors [-n N]               the last warnings and errors osvid logged (kept in its memory)\n"
    "  config check [FILE]         validate a configuration file here, as osvid --check-config does\n"
    "  config reload               make osvid re-read its configuration (as SIGHUP does)\n"
    "  logs [filters]              osvid's journal entries, filtered by call, line or agent\n"
    "  help [COMMAND]              this text, or a command's\n"
    "\n"
    "Global options (anywhere on the line):\n"
    "  --api URL          osvid's API (default http://127.0.0.1:8080, or api.listen of --config)\n"
    "  --config FILE      read the API address, token file and state folder from this configuration\n"
    "  --state-dir DIR    the state folder holding api-token (default /var/lib/osvi)\n"
    "  --token-file FILE  read the API token from FILE instead\n"
    "  --json             print the answer as JSON on stdout ({\"data\":...,\"meta\":...}), nothing else\n"
    "  --timeout SECONDS  give up on the daemon after this long (default 30; line tests take longer)\n"
    "  --version          print the version\n"
    "  -h, --help         help (after a command: that command's help)\n"
    "\n"
    "Exit status: 0 done; 1 the daemon refused (its message on stderr) or a check failed; 2 bad command\n"
    "line; 3 osvid cannot be reached, no token could be read, or the token was refused.\n"
    "Messages and errors go to stderr; stdout carries only the answer.\n";

const std::map<std::string, std::string>& command_help() {
  static const std::map<std::string, std::string> h = {
      {"status",
       "usage: osvictl status\n"
       "GET /v1/health and GET /v1/system/errors: version, uptime, database state, configuration hash and\n"
       "source, log level and sink, MQTT, webhook queue, each line, and the number of warnings/errors kept.\n"
       "--json: {\"data\": <health>, \"errors\": <the last 5 errors>}.\n"},
      {"calls",
       "usage: osvictl calls list [--status S[,S]] [--agent A] [--type inbound|outbound] [--from DATE]\n"
       "                          [--to DATE] [--phone DIGITS] [--page N] [--per-page N]\n"
       "       osvictl calls show ID\n"
       "       osvictl calls transcript ID\n"
       "       osvictl calls recording ID [-o FILE]\n"
       "list: GET /v1/calls. --status picked, not_picked, failed, busy, voicemail, in_progress (comma "
       "list);\n"
       "  --from/--to bound call_picked_at: YYYY-MM-DD (whole days at the box's offset) or an ISO-8601 "
       "time;\n"
       "  --per-page 1..100 (default 25). Newest first; the last line says the page and the total.\n"
       "show: GET /v1/call/ID, every field of the record.\n"
       "transcript: GET /v1/call/ID/transcript: time, role, text, and the turn's latencies.\n"
       "recording: GET /v1/call/ID/recording for a signed link, then the file through it, written to FILE\n"
       "  (default ./ID.opus; - for stdout). --json prints the link's data plus \"file\" and \"bytes\".\n"},
      {"call",
       "usage: osvictl call --agent AGENT_UUID --phone NUMBER [--country CC] [--name PERSON]\n"
       "POST /v1/call: places one outbound call with the agent. --country is the number's ISO 3166-1 "
       "country\n"
       "(default: site.country of --config, else IN). Prints the new call's id; follow it with\n"
       "osvictl calls show ID.\n"},
      {"lines",
       "usage: osvictl lines\n"
       "The lines of GET /v1/health: id, type, state, the agent answering it, modem registration, audio\n"
       "endpoint, and why a line is down or cannot carry audio. A SIP line shows its registration with\n"
       "the registrar's last answer, and its calls (active/max, and the channels that carry them).\n"},
      {"line",
       "usage: osvictl line test ID [--timeout SECONDS]\n"
       "POST /v1/lines/ID/test. A modem line is asked now through its AT command queue: manufacturer, "
       "model,\n"
       "revision, IMEI (AT+CGMI/CGMM/CGMR/CGSN), signal (AT+CSQ, shown in dBm) and registration (AT+CREG?,\n"
       "AT+CEREG?). A simulated line shows its script. Refused (exit 1) while the line carries a call or is\n"
       "down.\n"},
      {"audio",
       "usage: osvictl audio loopback ID\n"
       "POST /v1/lines/ID/loopback. On an idle line: opens the line's PCM, plays a tone burst, captures "
       "what\n"
       "comes back and prints the echo's round-trip delay, its return loss (ERL, dB), the peak correlation,\n"
       "and whether the delay fits the echo canceller's tail (audio.echo.tail_ms). \"no echo found\" when "
       "the\n"
       "capture holds nothing like the burst. Refused (exit 1) while the line is busy.\n"},
      {"dnd",
       "usage: osvictl dnd list --agent A [--search DIGITS] [--page N] [--per-page N]\n"
       "       osvictl dnd add --agent A --phone N [--reason TEXT]\n"
       "       osvictl dnd remove --agent A --phone N\n"
       "The agent's do-not-disturb list (GET, POST, DELETE /v1/dnd_numbers). Numbers are normalised by the\n"
       "daemon (site.country for national numbers).\n"},
      {"campaign",
       "usage: osvictl campaign status ID\n"
       "GET /v1/campaigns/ID/status: the campaign, its calls by status, and each upload's queues.\n"},
      {"chat",
       "usage: osvictl chat sessions [--agent A] [--status active|dormant|closed] [--mode ai|support]\n"
       "                             [--customer ID] [--help-requested true|false] [--page N] [--per-page "
       "N]\n"
       "GET /v1/chat/sessions: help requested first, then the most recently updated.\n"},
      {"errors",
       "usage: osvictl errors [-n N]\n"
       "GET /v1/system/errors?limit=N (1..200, default 50): the last warnings and errors osvid logged, "
       "newest\n"
       "first, from its memory (works without a journal). For older entries use osvictl logs.\n"},
      {"config",
       "usage: osvictl config check [FILE]\n"
       "       osvictl config reload\n"
       "check: validates FILE (default /etc/osvi/osvid.json) here, with osvid's own reader: each problem\n"
       "  names its key. Exit 0 valid, 1 invalid. Needs no daemon.\n"
       "reload: POST /v1/system/reload: osvid re-reads its configuration file and applies it as on SIGHUP;\n"
       "  a rejected file leaves the running configuration and prints the reasons (exit 1).\n"},
      {"logs",
       "usage: osvictl logs [--call ID] [--line ID] [--agent A] [--since WHEN] [--priority P] [-n N]\n"
       "                    [--directory DIR | --file FILE] [--all-identifiers]\n"
       "osvid's entries in the systemd journal (SYSLOG_IDENTIFIER=osvid), oldest first, the last N (default\n"
       "50). --call, --line, --agent match osvid's structured fields CALL_ID, LINE, AGENT_UUID (all given\n"
       "must match). --since: 30s, 15m, 2h, 7d ago, or YYYY-MM-DD[THH:MM[:SS]][Z|+HH:MM] (UTC without a\n"
       "zone). --priority: err, warning, notice, info, debug (that and more severe). --directory reads a\n"
       "journal folder, --file one journal file (e.g. copied from a box). Reading the system journal needs\n"
       "membership of the systemd-journal or adm group. --json: {\"data\": [{at, priority, message,\n"
       "message_id, fields}]}.\n"},
  };
  return h;
}

// ---------------------------------------------------------------------------------------------------------
// Output helpers.

struct Ctx {
  std::string api = kDefaultApi;
  std::string token_file;
  std::string state_dir = kDefaultStateDir;
  std::optional<osvi::daemon::Config> config;  // --config, read and validated
  bool json = false;
  long timeout_s = 30;
  bool timeout_given = false;
  std::string token;  // read on first use
};

void err(const std::string& message) {
  std::fprintf(stderr, "osvictl: %s\n", message.c_str());
}

int usage_error(const std::string& message, const std::string& command = {}) {
  err(message);
  std::fprintf(stderr, "%s",
               command.empty() ? "try: osvictl --help\n" : ("try: osvictl " + command + " --help\n").c_str());
  return kExitUsage;
}

const cJSON* member(const cJSON* o, const char* name) {
  return o ? cJSON_GetObjectItemCaseSensitive(o, name) : nullptr;
}

// A member as text for a table: strings as they are, numbers without a needless ".0", "-" for null/absent.
std::string text(const cJSON* o, const char* name) {
  const cJSON* v = member(o, name);
  if (!v || cJSON_IsNull(v)) return "-";
  if (cJSON_IsString(v)) return v->valuestring;
  if (cJSON_IsBool(v)) return cJSON_IsTrue(v) ? "yes" : "no";
  if (cJSON_IsNumber(v)) {
    char buf[64];
    if (std::floor(v->valuedouble) == v->valuedouble && std::fabs(v->valuedouble) < 1e15)
      std::snprintf(buf, sizeof buf, "%.0f", v->valuedouble);
    else
      std::snprintf(buf, sizeof buf, "%.2f", v->valuedouble);
    return buf;
  }
  return osvi::net::json_print(v);
}

void print_json(const cJSON* v) {
  std::string s = osvi::net::json_print(v);
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fputc('\n', stdout);
}

// --json output: {"data": ..., "meta": ...} from the API's envelope.
void print_envelope(const cJSON* root) {
  JsonPtr out(cJSON_CreateObject());
  if (const cJSON* d = member(root, "data"))
    cJSON_AddItemToObject(out.get(), "data", cJSON_Duplicate(d, true));
  if (const cJSON* m = member(root, "meta"))
    cJSON_AddItemToObject(out.get(), "meta", cJSON_Duplicate(m, true));
  if (const cJSON* m = member(root, "message"))
    cJSON_AddItemToObject(out.get(), "message", cJSON_Duplicate(m, true));
  print_json(out.get());
}

void print_key_values(const cJSON* obj, const std::string& prefix = {}) {
  Table t({"FIELD", "VALUE"});
  std::function<void(const cJSON*, const std::string&)> walk = [&](const cJSON* o, const std::string& p) {
    const cJSON* v = nullptr;
    cJSON_ArrayForEach(v, o) {
      const std::string key = p + v->string;
      if (cJSON_IsObject(v) && v->child) {
        walk(v, key + ".");
      } else if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
        t.add({key, osvi::net::json_print(v)});
      } else {
        t.add({key, text(o, v->string)});
      }
    }
  };
  walk(obj, prefix);
  std::fputs(t.render().c_str(), stdout);
}

// ---------------------------------------------------------------------------------------------------------
// HTTP (libcurl easy: one request at a time is all a command needs).

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

struct HttpAnswer {
  long status = 0;
  std::string body;
  std::string transport_error;  // non-empty: no HTTP answer at all
};

size_t collect(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<std::string*>(user);
  if (s->size() + size * n > kMaxResponseBytes) return 0;  // aborts the transfer
  s->append(data, size * n);
  return size * n;
}

size_t write_file_cb(char* data, size_t size, size_t n, void* user) {
  return std::fwrite(data, size, n, static_cast<FILE*>(user)) * size;
}

HttpAnswer http(const Ctx& ctx, const std::string& method, const std::string& url, const std::string& body,
                bool with_token, FILE* sink = nullptr) {
  HttpAnswer a;
  std::unique_ptr<CURL, CurlDeleter> c(curl_easy_init());
  if (!c) {
    a.transport_error = "libcurl could not start";
    return a;
  }
  char curl_error[CURL_ERROR_SIZE] = {0};
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  auto add_header = [&headers](const std::string& h) {
    headers.reset(curl_slist_append(headers.release(), h.c_str()));
  };
  if (with_token) add_header("API-Token: " + ctx.token);
  if (method != "GET" && method != "DELETE") add_header("Content-Type: application/json");
  add_header("Expect:");
  curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.get(), CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c.get(), CURLOPT_TIMEOUT, ctx.timeout_s);
  curl_easy_setopt(c.get(), CURLOPT_CONNECTTIMEOUT, 5L);
  curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c.get(), CURLOPT_ERRORBUFFER, curl_error);
  curl_easy_setopt(c.get(), CURLOPT_PROTOCOLS_STR, "http,https");
  if (method == "POST" || method == "PUT" || method == "PATCH") {
    curl_easy_setopt(c.get(), CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c.get(), CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  if (sink) {
    curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, write_file_cb);
    curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(c.get(), CURLOPT_FAILONERROR, 1L);
  } else {
    curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &a.body);
  }
  const CURLcode rc = curl_easy_perform(c.get());
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &a.status);
  if (rc != CURLE_OK && !(sink && rc == CURLE_HTTP_RETURNED_ERROR)) {
    a.transport_error = curl_error[0] ? curl_error : curl_easy_strerror(rc);
    a.status = 0;
  }
  return a;
}

// The token file is 16 characters; anything past 4 KiB is not a token file.
std::optional<std::string> read_small_file(const std::string& path, std::string* why) {
  FILE* f = std::fopen(path.c_str(), "re");
  if (!f) {
    *why = std::strerror(errno);
    return std::nullopt;
  }
  char buf[4096];
  const size_t n = std::fread(buf, 1, sizeof buf, f);
  std::fclose(f);
  if (n == sizeof buf) {
    *why = "larger than 4 KiB, not a token file";
    return std::nullopt;
  }
  return std::string(buf, n);
}

bool load_token(Ctx& ctx) {
  if (!ctx.token.empty()) return true;
  std::string path = ctx.token_file;
  if (path.empty() && ctx.config && !ctx.config->api.tokens.empty()) {
    ctx.token = ctx.config->api.tokens.front().token;
    return true;
  }
  if (path.empty() && ctx.config)
    path = ctx.config->api.token_file.empty() ? ctx.config->state_dir + "/api-token"
                                              : ctx.config->api.token_file;
  if (path.empty()) path = ctx.state_dir + "/api-token";
  std::string why;
  auto t = read_small_file(path, &why);
  if (!t) {
    err("cannot read the API token from " + path + ": " + why +
        " (run as root or the osvi user, or give --token-file)");
    return false;
  }
  std::string tok = *t;
  while (!tok.empty() && (tok.back() == '\n' || tok.back() == '\r' || tok.back() == ' ')) tok.pop_back();
  if (tok.empty()) {
    err("the API token file " + path + " is empty");
    return false;
  }
  ctx.token = tok;
  return true;
}

// One API request: the parsed envelope in *root on 2xx. Otherwise the error is printed and the exit code
// returned (3 unreachable / token refused, 1 any other refusal).
int api(Ctx& ctx, const std::string& method, const std::string& path, const cJSON* body, JsonPtr* root) {
  if (!load_token(ctx)) return kExitUnreachable;
  const std::string text_body = body ? osvi::net::json_print(body) : std::string();
  HttpAnswer a = http(ctx, method, ctx.api + path, text_body, true);
  if (!a.transport_error.empty()) {
    err("cannot reach osvid at " + ctx.api + ": " + a.transport_error);
    return kExitUnreachable;
  }
  std::string why;
  JsonPtr j = osvi::net::json_parse(a.body, &why);
  std::string message;
  if (j) {
    if (const cJSON* e = member(j.get(), "error"); cJSON_IsString(e)) message = e->valuestring;
  }
  if (a.status == 401) {
    err("osvid refused the API token (" + (message.empty() ? std::string("401") : message) + ")");
    return kExitUnreachable;
  }
  if (a.status < 200 || a.status >= 300) {
    err(method + " " + path + ": " + std::to_string(a.status) + (message.empty() ? "" : " " + message));
    if (j) {
      const cJSON* errors = member(j.get(), "errors");
      if (cJSON_GetArraySize(errors) > 1) {
        const cJSON* e = nullptr;
        cJSON_ArrayForEach(e, errors) if (cJSON_IsString(e)) std::fprintf(stderr, "  %s\n", e->valuestring);
      }
    }
    return kExitRefused;
  }
  if (!j) {
    err(method + " " + path + ": the answer is not JSON: " + why);
    return kExitRefused;
  }
  *root = std::move(j);
  return kExitOk;
}

// ---------------------------------------------------------------------------------------------------------
// Commands.

using Params = std::vector<std::pair<std::string, std::string>>;

// Adds --name's value under the API's name when given.
void map_option(const Args& a, const char* option, const char* param, Params* q) {
  if (auto v = a.get(option)) q->emplace_back(param, *v);
}

int print_list(Ctx& ctx, const std::string& path, Table t,
               const std::function<std::vector<std::string>(const cJSON*)>& row, const char* noun) {
  JsonPtr root;
  if (int rc = api(ctx, "GET", path, nullptr, &root)) return rc;
  if (ctx.json) {
    print_envelope(root.get());
    return kExitOk;
  }
  const cJSON* item = nullptr;
  cJSON_ArrayForEach(item, member(root.get(), "data")) t.add(row(item));
  std::fputs(t.render().c_str(), stdout);
  if (const cJSON* meta = member(root.get(), "meta"))
    std::printf("page %s of %s, %s %s\n", text(meta, "current_page").c_str(),
                text(meta, "total_pages").c_str(), text(meta, "total_count").c_str(), noun);
  return kExitOk;
}

int cmd_status(Ctx& ctx, const Args& a) {
  if (!a.positional.empty()) return usage_error("status takes no arguments", "status");
  JsonPtr health;
  if (int rc = api(ctx, "GET", "/v1/health", nullptr, &health)) return rc;
  JsonPtr errors;
  const int erc = api(ctx, "GET", "/v1/system/errors?limit=5", nullptr, &errors);
  if (erc == kExitUnreachable) return erc;
  const cJSON* d = member(health.get(), "data");
  if (ctx.json) {
    JsonPtr out(cJSON_CreateObject());
    cJSON_AddItemToObject(out.get(), "data", cJSON_Duplicate(d, true));
    if (errors)
      cJSON_AddItemToObject(out.get(), "errors", cJSON_Duplicate(member(errors.get(), "data"), true));
    print_json(out.get());
    return kExitOk;
  }
  Table t({"", ""});
  t.add({"status", text(d, "status")});
  t.add({"version", text(d, "version")});
  if (const cJSON* up = member(d, "uptime_seconds"); cJSON_IsNumber(up))
    t.add({"uptime", osvi::ctl::human_duration(static_cast<int64_t>(up->valuedouble)) + " (since " +
                         text(d, "started_at") + ")"});
  if (const cJSON* db = member(d, "database"))
    t.add({"database", text(db, "state") + ", " + text(db, "calls_total") + " calls, schema " +
                           text(db, "schema_version") + ", " + text(db, "path")});
  if (const cJSON* c = member(d, "config"))
    t.add({"configuration", text(c, "source") + " (hash " + text(c, "hash") + ", " + text(c, "agents") +
                                " agents, loaded " + text(c, "loaded_at") + ")"});
  if (const cJSON* api_obj = member(d, "api")) t.add({"api", text(api_obj, "listen")});
  if (const cJSON* lg = member(d, "log")) t.add({"log", text(lg, "level") + " to " + text(lg, "sink")});
  if (const cJSON* m = member(d, "mqtt"); m && cJSON_IsObject(m))
    t.add({"mqtt", text(m, "state") == "-" ? osvi::net::json_print(m) : text(m, "state")});
  if (const cJSON* w = member(d, "webhooks"); w && cJSON_IsObject(w))
    t.add({"webhooks", text(w, "pending") + " pending, " + text(w, "dead") + " dead"});
  const cJSON* line = nullptr;
  cJSON_ArrayForEach(line, member(d, "lines")) {
    std::string reason = text(line, "reason");
    t.add({"line " + text(line, "id"), text(line, "type") + " " + text(line, "state") +
                                           (reason == "-" || reason.empty() ? "" : ": " + reason)});
  }
  if (errors) {
    const int n = cJSON_GetArraySize(member(errors.get(), "data"));
    const cJSON* newest = cJSON_GetArrayItem(member(errors.get(), "data"), 0);
    t.add({"recent problems", n == 0 ? std::string("none")
                                     : text(newest, "at") + " " + text(newest, "priority") + ": " +
                                           text(newest, "message") +
                                           (n > 1 ? " (osvictl errors for more)" : "")});
  }
  std::fputs(t.render().c_str(), stdout);
  return text(d, "status") == "ok" ? kExitOk : kExitRefused;
}

int cmd_calls(Ctx& ctx, const std::vector<std::string>& argv) {
  if (argv.empty()) return usage_error("calls needs list, show, transcript or recording", "calls");
  const std::string sub = argv[0];
  const std::vector<std::string> rest(argv.begin() + 1, argv.end());
  std::string why;
  if (sub == "list") {
    auto a = osvi::ctl::parse_args(
        rest, {"--status", "--agent", "--type", "--from", "--to", "--phone", "--page", "--per-page"}, {},
        &why);
    if (!a) return usage_error(why, "calls");
    if (!a->positional.empty()) return usage_error("calls list takes no positional arguments", "calls");
    Params q;
    map_option(*a, "--status", "status", &q);
    map_option(*a, "--agent", "agent_uuid", &q);
    map_option(*a, "--type", "call_type", &q);
    map_option(*a, "--from", "start_date", &q);
    map_option(*a, "--to", "end_date", &q);
    map_option(*a, "--phone", "phone_number", &q);
    map_option(*a, "--page", "page", &q);
    map_option(*a, "--per-page", "per_page", &q);
    return print_list(
        ctx, "/v1/calls" + osvi::ctl::query_string(q),
        Table({"CALL ID", "CREATED", "AGENT", "TYPE", "STATUS", "DURATION", "NUMBER"}),
        [](const cJSON* c) {
          return std::vector<std::string>{text(c, "call_id"),     text(c, "created_at"),
                                          text(c, "agent_uuid"),  text(c, "call_type"),
                                          text(c, "status"),      text(c, "duration_seconds") + "s",
                                          text(c, "phone_number")};
        },
        "calls");
  }
  auto a = osvi::ctl::parse_args(rest, {"-o", "--output"}, {}, &why);
  if (!a) return usage_error(why, "calls");
  if (a->positional.size() != 1) return usage_error("calls " + sub + " needs one call id", "calls");
  const std::string id = osvi::ctl::percent_encode(a->positional[0]);
  if (sub != "recording" && (a->get("-o") || a->get("--output")))
    return usage_error("-o is for calls recording", "calls");
  if (sub == "show") {
    JsonPtr root;
    if (int rc = api(ctx, "GET", "/v1/call/" + id, nullptr, &root)) return rc;
    if (ctx.json)
      print_envelope(root.get());
    else
      print_key_values(member(root.get(), "data"));
    return kExitOk;
  }
  if (sub == "transcript") {
    JsonPtr root;
    if (int rc = api(ctx, "GET", "/v1/call/" + id + "/transcript", nullptr, &root)) return rc;
    if (ctx.json) {
      print_envelope(root.get());
      return kExitOk;
    }
    const cJSON* d = member(root.get(), "data");
    Table t({"STARTED", "ROLE", "TEXT", "LATENCY"});
    const cJSON* turn = nullptr;
    cJSON_ArrayForEach(turn, member(d, "transcript")) {
      std::string lat;
      const cJSON* l = nullptr;
      cJSON_ArrayForEach(l, member(turn, "latency")) {
        if (!lat.empty()) lat += " ";
        lat.append(l->string).append("=").append(text(member(turn, "latency"), l->string));
      }
      std::string role = text(turn, "role");
      if (const cJSON* k = member(turn, "kind"); cJSON_IsString(k))
        role += " (" + std::string(k->valuestring) + ")";
      if (cJSON_IsTrue(member(turn, "interrupted"))) role += " [cut]";
      t.add({text(turn, "started_at"), role, text(turn, "text"), lat.empty() ? "-" : lat});
    }
    std::fputs(t.render().c_str(), stdout);
    if (const cJSON* s = member(d, "summary"); cJSON_IsString(s))
      std::printf("summary: %s\n", s->valuestring);
    std::printf("analysis: %s\n", text(d, "analysis_status").c_str());
    return kExitOk;
  }
  if (sub == "recording") {
    JsonPtr root;
    if (int rc = api(ctx, "GET", "/v1/call/" + id + "/recording", nullptr, &root)) return rc;
    const cJSON* d = member(root.get(), "data");
    const cJSON* url = member(d, "recording_url");
    if (!cJSON_IsString(url)) {
      err("the answer carries no recording_url");
      return kExitRefused;
    }
    std::string out = a->get("-o").value_or(a->get("--output").value_or(a->positional[0] + ".opus"));
    const bool to_stdout = out == "-";
    if (to_stdout && ctx.json) return usage_error("-o - and --json both want stdout", "calls");
    FILE* f = to_stdout ? stdout : std::fopen(out.c_str(), "wbx");
    if (!f) {
      err("cannot create " + out + ": " + std::strerror(errno) + (errno == EEXIST ? " (it exists)" : ""));
      return kExitRefused;
    }
    HttpAnswer dl = http(ctx, "GET", url->valuestring, {}, false, f);
    const long bytes = to_stdout ? 0 : std::ftell(f);
    if (!to_stdout) std::fclose(f);
    if (!dl.transport_error.empty() || dl.status != 200) {
      if (!to_stdout) ::unlink(out.c_str());
      err("downloading the recording: " +
          (dl.transport_error.empty() ? "HTTP " + std::to_string(dl.status) : dl.transport_error));
      return dl.transport_error.empty() ? kExitRefused : kExitUnreachable;
    }
    if (ctx.json) {
      JsonPtr o(cJSON_Duplicate(d, true));
      osvi::net::json_add_string(o.get(), "file", out);
      cJSON_AddNumberToObject(o.get(), "bytes", static_cast<double>(bytes));
      JsonPtr env(cJSON_CreateObject());
      cJSON_AddItemToObject(env.get(), "data", o.release());
      print_json(env.get());
    } else if (!to_stdout) {
      std::printf("%s: %ld bytes (stereo Ogg Opus: left the caller, right the agent)\n", out.c_str(), bytes);
    }
    return kExitOk;
  }
  return usage_error("unknown calls command " + sub, "calls");
}

std::string default_country(const Ctx& ctx) {
  return ctx.config ? ctx.config->site.country : "IN";
}

int cmd_call(Ctx& ctx, const std::vector<std::string>& argv) {
  std::string why;
  auto a = osvi::ctl::parse_args(argv, {"--agent", "--phone", "--country", "--name"}, {}, &why);
  if (!a) return usage_error(why, "call");
  if (!a->positional.empty()) return usage_error("call takes options only", "call");
  if (!a->get("--agent") || !a->get("--phone")) return usage_error("call needs --agent and --phone", "call");
  JsonPtr body(cJSON_CreateObject());
  osvi::net::json_add_string(body.get(), "agent_uuid", *a->get("--agent"));
  osvi::net::json_add_string(body.get(), "phone_number", *a->get("--phone"));
  osvi::net::json_add_string(body.get(), "country_code", a->get("--country").value_or(default_country(ctx)));
  if (auto n = a->get("--name")) osvi::net::json_add_string(body.get(), "person_name", *n);
  JsonPtr root;
  if (int rc = api(ctx, "POST", "/v1/call", body.get(), &root)) return rc;
  if (ctx.json)
    print_envelope(root.get());
  else
    std::printf("call placed: %s\n", text(member(root.get(), "data"), "call_id").c_str());
  return kExitOk;
}

int cmd_lines(Ctx& ctx, const std::vector<std::string>& argv) {
  if (!argv.empty()) return usage_error("lines takes no arguments", "lines");
  JsonPtr root;
  if (int rc = api(ctx, "GET", "/v1/health", nullptr, &root)) return rc;
  const cJSON* lines = member(member(root.get(), "data"), "lines");
  if (ctx.json) {
    JsonPtr out(cJSON_CreateObject());
    cJSON_AddItemToObject(out.get(), "data", lines ? cJSON_Duplicate(lines, true) : cJSON_CreateArray());
    print_json(out.get());
    return kExitOk;
  }
  Table t({"ID", "TYPE", "STATE", "AGENT", "REGISTRATION", "CALLS", "AUDIO", "REASON"});
  const cJSON* l = nullptr;
  cJSON_ArrayForEach(l, lines) {
    const std::string reason = text(l, "reason").empty() ? "-" : text(l, "reason");
    if (const cJSON* sip = member(l, "sip")) {
      // A SIP line: the registrar's last answer, and its calls with the channels that carry them.
      std::string reg = text(sip, "registration");
      if (text(sip, "last_code") != "0")
        reg += " (" + text(sip, "last_code") + " " + text(sip, "last_reason") + ")";
      std::string calls = text(sip, "calls_active") + "/" + text(sip, "max_calls");
      const cJSON* ch = nullptr;
      std::string busy;
      cJSON_ArrayForEach(ch, member(l, "channels")) {
        busy += (busy.empty() ? "" : ", ") + text(ch, "id") + " " + text(ch, "state");
      }
      if (!busy.empty()) calls += " (" + busy + ")";
      t.add({text(l, "id"), text(l, "type"), text(l, "state"), text(l, "agent_uuid"), reg, calls, "rtp",
             reason});
      continue;
    }
    const cJSON* audio = member(l, "audio");
    std::string reg = text(member(l, "modem"), "registration");
    t.add({text(l, "id"), text(l, "type"), text(l, "state"), text(l, "agent_uuid"), reg.empty() ? "-" : reg,
           "-", text(audio, "kind") + " " + text(audio, "device"), reason});
  }
  std::fputs(t.render().c_str(), stdout);
  return kExitOk;
}

// POST on a line: the line test and the loopback answer after the hardware did (seconds).
int line_post(Ctx& ctx, const std::string& id, const char* what, JsonPtr* root) {
  if (!ctx.timeout_given) ctx.timeout_s = 60;
  JsonPtr body(cJSON_CreateObject());
  return api(ctx, "POST", "/v1/lines/" + osvi::ctl::percent_encode(id) + "/" + what, body.get(), root);
}

int cmd_line(Ctx& ctx, const std::vector<std::string>& argv) {
  if (argv.size() != 2 || argv[0] != "test") return usage_error("usage: osvictl line test ID", "line");
  JsonPtr root;
  if (int rc = line_post(ctx, argv[1], "test", &root)) return rc;
  if (ctx.json) {
    print_envelope(root.get());
    return kExitOk;
  }
  print_key_values(member(root.get(), "data"));
  return kExitOk;
}

int cmd_audio(Ctx& ctx, const std::vector<std::string>& argv) {
  if (argv.size() != 2 || argv[0] != "loopback")
    return usage_error("usage: osvictl audio loopback ID", "audio");
  JsonPtr root;
  if (int rc = line_post(ctx, argv[1], "loopback", &root)) return rc;
  if (ctx.json) {
    print_envelope(root.get());
    return kExitOk;
  }
  const cJSON* d = member(root.get(), "data");
  if (!cJSON_IsTrue(member(d, "echo_found"))) {
    std::printf("line %s: no echo found (peak correlation %s; the capture holds nothing like the burst)\n",
                text(d, "line").c_str(), text(d, "peak_correlation").c_str());
    return kExitOk;
  }
  std::printf("line %s: echo after %s ms, return loss %s dB, peak correlation %s\n", text(d, "line").c_str(),
              text(d, "delay_ms").c_str(), text(d, "erl_db").c_str(), text(d, "peak_correlation").c_str());
  std::printf("echo canceller tail %s ms: %s\n", text(d, "tail_ms").c_str(),
              cJSON_IsTrue(member(d, "fits")) ? "the echo fits"
                                              : "the echo is LATER than the tail (raise audio.echo.tail_ms)");
  return kExitOk;
}

int cmd_dnd(Ctx& ctx, const std::vector<std::string>& argv) {
  if (argv.empty()) return usage_error("dnd needs list, add or remove", "dnd");
  const std::string sub = argv[0];
  std::string why;
  const std::vector<std::string> rest(argv.begin() + 1, argv.end());
  if (sub == "list") {
    auto a = osvi::ctl::parse_args(rest, {"--agent", "--search", "--page", "--per-page"}, {}, &why);
    if (!a) return usage_error(why, "dnd");
    if (!a->get("--agent") || !a->positional.empty()) return usage_error("dnd list needs --agent", "dnd");
    Params q;
    map_option(*a, "--agent", "agent_uuid", &q);
    map_option(*a, "--search", "search", &q);
    map_option(*a, "--page", "page", &q);
    map_option(*a, "--per-page", "per_page", &q);
    return print_list(
        ctx, "/v1/dnd_numbers" + osvi::ctl::query_string(q), Table({"PHONE", "ADDED", "REASON"}),
        [](const cJSON* e) {
          return std::vector<std::string>{text(e, "phone"), text(e, "created_at"), text(e, "reason")};
        },
        "numbers");
  }
  if (sub == "add" || sub == "remove") {
    std::set<std::string> valued = {"--agent", "--phone"};
    if (sub == "add") valued.insert("--reason");
    auto a = osvi::ctl::parse_args(rest, valued, {}, &why);
    if (!a) return usage_error(why, "dnd");
    if (!a->get("--agent") || !a->get("--phone") || !a->positional.empty())
      return usage_error("dnd " + sub + " needs --agent and --phone", "dnd");
    JsonPtr root;
    int rc = 0;
    if (sub == "add") {
      JsonPtr body(cJSON_CreateObject());
      osvi::net::json_add_string(body.get(), "agent_uuid", *a->get("--agent"));
      osvi::net::json_add_string(body.get(), "phone", *a->get("--phone"));
      if (auto r = a->get("--reason")) osvi::net::json_add_string(body.get(), "reason", *r);
      rc = api(ctx, "POST", "/v1/dnd_numbers", body.get(), &root);
    } else {
      rc = api(ctx, "DELETE",
               "/v1/dnd_numbers" + osvi::ctl::query_string(
                                       {{"agent_uuid", *a->get("--agent")}, {"phone", *a->get("--phone")}}),
               nullptr, &root);
    }
    if (rc) return rc;
    if (ctx.json) {
      print_envelope(root.get());
    } else if (sub == "add") {
      const cJSON* m = member(root.get(), "message");
      std::printf("%s on the list of %s%s\n", text(member(root.get(), "data"), "phone").c_str(),
                  a->get("--agent")->c_str(), cJSON_IsString(m) ? " (it already was)" : "");
    } else {
      std::printf("removed from the list of %s\n", a->get("--agent")->c_str());
    }
    return kExitOk;
  }
  return usage_error("unknown dnd command " + sub, "dnd");
}

int cmd_campaign(Ctx& ctx, const std::vector<std::string>& argv) {
  if (argv.size() != 2 || argv[0] != "status")
    return usage_error("usage: osvictl campaign status ID", "campaign");
  JsonPtr root;
  if (int rc =
          api(ctx, "GET", "/v1/campaigns/" + osvi::ctl::percent_encode(argv[1]) + "/status", nullptr, &root))
    return rc;
  if (ctx.json) {
    print_envelope(root.get());
    return kExitOk;
  }
  const cJSON* d = member(root.get(), "data");
  const cJSON* c = member(d, "campaign");
  std::printf("campaign %s \"%s\": %s (retries %s)\n", text(c, "id").c_str(), text(c, "name").c_str(),
              text(c, "status").c_str(), text(c, "is_retry_enabled").c_str());
  const cJSON* calls = member(d, "calls");
  std::string by;
  const cJSON* s = nullptr;
  cJSON_ArrayForEach(s, member(calls, "by_status")) {
    if (!by.empty()) by += ", ";
    by.append(s->string).append(" ").append(text(member(calls, "by_status"), s->string));
  }
  std::printf("calls: %s%s\n", text(calls, "total").c_str(), by.empty() ? "" : (" (" + by + ")").c_str());
  Table t({"UPLOAD", "FILE", "AGENT", "QUEUED", "COMPLETED", "CREATED"});
  const cJSON* u = nullptr;
  cJSON_ArrayForEach(u, member(d, "uploads")) {
    const cJSON* q = nullptr;
    cJSON_ArrayForEach(q, member(u, "queues")) {
      t.add({text(u, "campaign_upload_id"), text(u, "file_name"), text(q, "agent_uuid"),
             text(q, "total_queued"), text(q, "completed"), text(u, "created_at")});
    }
  }
  if (t.rows() > 1) std::fputs(t.render().c_str(), stdout);
  return kExitOk;
}

int cmd_chat(Ctx& ctx, const std::vector<std::string>& argv) {
  if (argv.empty() || argv[0] != "sessions")
    return usage_error("usage: osvictl chat sessions [filters]", "chat");
  std::string why;
  auto a = osvi::ctl::parse_args(
      {argv.begin() + 1, argv.end()},
      {"--agent", "--status", "--mode", "--customer", "--help-requested", "--page", "--per-page"}, {}, &why);
  if (!a) return usage_error(why, "chat");
  if (!a->positional.empty()) return usage_error("chat sessions takes options only", "chat");
  Params q;
  map_option(*a, "--agent", "agent_uuid", &q);
  map_option(*a, "--status", "status", &q);
  map_option(*a, "--mode", "mode", &q);
  map_option(*a, "--customer", "customer_id", &q);
  map_option(*a, "--help-requested", "help_requested", &q);
  map_option(*a, "--page", "page", &q);
  map_option(*a, "--per-page", "per_page", &q);
  return print_list(
      ctx, "/v1/chat/sessions" + osvi::ctl::query_string(q),
      Table({"SESSION", "AGENT", "CUSTOMER", "STATUS", "MODE", "HELP", "LAST MESSAGE"}),
      [](const cJSON* s) {
        return std::vector<std::string>{
            text(s, "id"),   text(s, "agent_uuid"),     text(s, "customer_id"),    text(s, "status"),
            text(s, "mode"), text(s, "help_requested"), text(s, "last_message_at")};
      },
      "sessions");
}

int cmd_errors(Ctx& ctx, const std::vector<std::string>& argv) {
  std::string why;
  auto a = osvi::ctl::parse_args(argv, {"-n"}, {}, &why);
  if (!a) return usage_error(why, "errors");
  if (!a->positional.empty()) return usage_error("errors takes -n only", "errors");
  std::string n = a->get("-n").value_or("50");
  if (!osvi::ctl::parse_count(n)) return usage_error("-n: a positive integer", "errors");
  return print_list(
      ctx, "/v1/system/errors?limit=" + n, Table({"AT", "PRIORITY", "MESSAGE", "FIELDS"}),
      [](const cJSON* e) {
        std::string f;
        const cJSON* v = nullptr;
        cJSON_ArrayForEach(v, member(e, "fields")) {
          if (!f.empty()) f += ' ';
          f.append(v->string).append("=").append(text(member(e, "fields"), v->string));
        }
        return std::vector<std::string>{text(e, "at"), text(e, "priority"), text(e, "message"),
                                        f.empty() ? "-" : f};
      },
      "");
}

int cmd_config(Ctx& ctx, const std::vector<std::string>& argv) {
  if (argv.empty()) return usage_error("config needs check or reload", "config");
  if (argv[0] == "check") {
    if (argv.size() > 2) return usage_error("config check takes one file", "config");
    const std::string path = argv.size() == 2 ? argv[1] : kDefaultConfig;
    osvi::daemon::AppOptions o;
    o.config_path = path;
    auto cfg = osvi::daemon::load_configuration(o);
    JsonPtr out(cJSON_CreateObject());
    cJSON* d = cJSON_AddObjectToObject(out.get(), "data");
    osvi::net::json_add_string(d, "file", path);
    cJSON_AddBoolToObject(d, "valid", cfg.ok());
    if (!cfg) {
      cJSON* errors = cJSON_AddArrayToObject(d, "errors");
      const std::string& m = cfg.error().message;
      size_t start = 0;
      while (start < m.size()) {
        size_t end = m.find('\n', start);
        if (end == std::string::npos) end = m.size();
        std::string line = m.substr(start, end - start);
        if (!line.empty() && !(start == 0 && line.ends_with(':') && end != m.size()))
          cJSON_AddItemToArray(errors, cJSON_CreateString(line.c_str()));
        start = end + 1;
      }
      if (ctx.json) print_json(out.get());
      std::fprintf(stderr, "%s\n", m.c_str());
      return kExitRefused;
    }
    cJSON_AddNumberToObject(d, "agents", static_cast<double>(cfg->agents.size()));
    cJSON_AddNumberToObject(d, "lines", static_cast<double>(cfg->lines.size()));
    osvi::net::json_add_string(d, "hash", cfg->source_hash);
    if (ctx.json)
      print_json(out.get());
    else
      std::printf("%s: configuration OK (%zu agents, %zu lines, hash %s)\n", path.c_str(), cfg->agents.size(),
                  cfg->lines.size(), cfg->source_hash.c_str());
    return kExitOk;
  }
  if (argv[0] == "reload") {
    if (argv.size() != 1) return usage_error("config reload takes no arguments", "config");
    JsonPtr body(cJSON_CreateObject());
    JsonPtr root;
    if (int rc = api(ctx, "POST", "/v1/system/reload", body.get(), &root)) return rc;
    if (ctx.json) {
      print_envelope(root.get());
    } else {
      const cJSON* d = member(root.get(), "data");
      std::printf("configuration applied: %s (hash %s, %s agents)\n", text(d, "source").c_str(),
                  text(d, "config_hash").c_str(), text(d, "agents").c_str());
    }
    return kExitOk;
  }
  return usage_error("unknown config command " + argv[0], "config");
}

// --- logs: sd-journal --------------------------------------------------------------------------------------

struct JournalDeleter {
  void operator()(sd_journal* j) const { sd_journal_close(j); }
};

std::string journal_field(sd_journal* j, const char* name) {
  const void* data = nullptr;
  size_t len = 0;
  if (sd_journal_get_data(j, name, &data, &len) < 0) return {};
  std::string_view v(static_cast<const char*>(data), len);
  const size_t eq = v.find('=');
  return eq == std::string_view::npos ? std::string() : std::string(v.substr(eq + 1));
}

// The fields osvid writes itself (log.hpp), shown beside the message; journald's own (_PID, ...) are not.
bool shown_field(std::string_view name) {
  static const std::set<std::string_view> hidden = {
      "MESSAGE",    "PRIORITY",         "MESSAGE_ID", "SYSLOG_IDENTIFIER", "SYSLOG_FACILITY",
      "SYSLOG_PID", "SYSLOG_TIMESTAMP", "CODE_FILE",  "CODE_LINE",         "CODE_FUNC"};
  return !name.empty() && name[0] != '_' && !hidden.count(name);
}

int cmd_logs(Ctx& ctx, const std::vector<std::string>& argv) {
  std::string why;
  auto a = osvi::ctl::parse_args(
      argv, {"--call", "--line", "--agent", "--since", "--priority", "-n", "--directory", "--file"},
      {"--all-identifiers"}, &why);
  if (!a) return usage_error(why, "logs");
  if (!a->positional.empty()) return usage_error("logs takes options only", "logs");
  if (a->get("--directory") && a->get("--file"))
    return usage_error("--directory or --file, not both", "logs");
  int64_t limit = 50;
  if (auto n = a->get("-n")) {
    auto v = osvi::ctl::parse_count(*n);
    if (!v) return usage_error("-n: a positive integer", "logs");
    limit = *v;
  }
  std::optional<int64_t> since;
  if (auto s = a->get("--since")) {
    const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    since = osvi::ctl::parse_since(*s, now);
    if (!since) return usage_error("--since: 30s, 15m, 2h, 7d or YYYY-MM-DD[THH:MM[:SS]][Z|+HH:MM]", "logs");
  }
  int max_priority = 7;
  if (auto p = a->get("--priority")) {
    static const std::map<std::string, int> names = {{"emerg", 0}, {"alert", 1},   {"crit", 2},
                                                     {"err", 3},   {"warning", 4}, {"notice", 5},
                                                     {"info", 6},  {"debug", 7}};
    auto it = names.find(*p);
    if (it == names.end()) return usage_error("--priority: err, warning, notice, info or debug", "logs");
    max_priority = it->second;
  }
  sd_journal* raw = nullptr;
  int r = 0;
  std::string source = "the system journal";
  if (auto dir = a->get("--directory")) {
    r = sd_journal_open_directory(&raw, dir->c_str(), 0);
    source = *dir;
  } else if (auto file = a->get("--file")) {
    const char* paths[] = {file->c_str(), nullptr};
    r = sd_journal_open_files(&raw, paths, 0);
    source = *file;
  } else {
    r = sd_journal_open(&raw, SD_JOURNAL_LOCAL_ONLY);
  }
  if (r < 0) {
    err("cannot open " + source + ": " + std::strerror(-r));
    return kExitRefused;
  }
  std::unique_ptr<sd_journal, JournalDeleter> j(raw);
  // Matches on different fields are ANDed by sd-journal; each is one exact value.
  auto match = [&](const std::string& field, const std::string& value) {
    const std::string m = field + "=" + value;
    return sd_journal_add_match(j.get(), m.data(), m.size());
  };
  if (!a->has("--all-identifiers")) match("SYSLOG_IDENTIFIER", "osvid");
  if (auto v = a->get("--call")) match("CALL_ID", *v);
  if (auto v = a->get("--line")) match("LINE", *v);
  if (auto v = a->get("--agent")) match("AGENT_UUID", *v);
  // Newest first from the tail, then printed oldest first.
  std::vector<JsonPtr> entries;
  sd_journal_seek_tail(j.get());
  while (static_cast<int64_t>(entries.size()) < limit && sd_journal_previous(j.get()) > 0) {
    uint64_t usec = 0;
    sd_journal_get_realtime_usec(j.get(), &usec);
    if (since && static_cast<int64_t>(usec) < *since) break;
    const std::string prio_text = journal_field(j.get(), "PRIORITY");
    const int prio = prio_text.empty() ? 6 : std::atoi(prio_text.c_str());
    if (prio > max_priority) continue;
    JsonPtr e(cJSON_CreateObject());
    osvi::net::json_add_string(e.get(), "at", osvi::ctl::utc_iso_us(static_cast<int64_t>(usec)));
    static const char* kNames[] = {"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"};
    osvi::net::json_add_string(e.get(), "priority", kNames[std::clamp(prio, 0, 7)]);
    osvi::net::json_add_string(e.get(), "message", journal_field(j.get(), "MESSAGE"));
    const std::string mid = journal_field(j.get(), "MESSAGE_ID");
    osvi::net::json_add_string_or_null(e.get(), "message_id",
                                       mid.empty() ? std::nullopt : std::optional<std::string>(mid));
    cJSON* fields = cJSON_AddObjectToObject(e.get(), "fields");
    const void* data = nullptr;
    size_t len = 0;
    sd_journal_restart_data(j.get());
    while (sd_journal_enumerate_data(j.get(), &data, &len) > 0) {
      std::string_view d(static_cast<const char*>(data), len);
      const size_t eq = d.find('=');
      if (eq == std::string_view::npos) continue;
      const std::string name(d.substr(0, eq));
      if (shown_field(name) && !member(fields, name.c_str()))
        osvi::net::json_add_string(fields, name.c_str(), d.substr(eq + 1));
    }
    entries.push_back(std::move(e));
  }
  if (ctx.json) {
    JsonPtr out(cJSON_CreateObject());
    cJSON* arr = cJSON_AddArrayToObject(out.get(), "data");
    for (auto it = entries.rbegin(); it != entries.rend(); ++it) cJSON_AddItemToArray(arr, it->release());
    print_json(out.get());
    return kExitOk;
  }
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    const cJSON* e = it->get();
    std::string line = text(e, "at") + " " + text(e, "priority") + ": " + text(e, "message");
    const cJSON* v = nullptr;
    cJSON_ArrayForEach(v, member(e, "fields")) line.append(" ").append(v->string).append("=").append(
        v->valuestring);
    for (char& c : line)
      if (c == '\n') c = ' ';
    std::printf("%s\n", line.c_str());
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------------------------------------

// Global options, taken from anywhere on the line; the rest is returned in order.
int parse_globals(int argc, char** argv, Ctx* ctx, std::vector<std::string>* rest, bool* help) {
  std::optional<std::string> api, config, state_dir, token_file, timeout;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::optional<std::string>* slot) -> bool {
      std::string v;
      if (const auto eq = a.find('='); eq != std::string::npos) {
        v = a.substr(eq + 1);
        a.resize(eq);
      } else if (i + 1 < argc) {
        v = argv[++i];
      } else {
        err(a + " needs a value");
        return false;
      }
      if (*slot) {
        err(a + " given twice");
        return false;
      }
      *slot = v;
      return true;
    };
    const std::string name = a.substr(0, a.find('='));
    if (name == "--api") {
      if (!value(&api)) return kExitUsage;
    } else if (name == "--config") {
      if (!value(&config)) return kExitUsage;
    } else if (name == "--state-dir") {
      if (!value(&state_dir)) return kExitUsage;
    } else if (name == "--token-file") {
      if (!value(&token_file)) return kExitUsage;
    } else if (name == "--timeout") {
      if (!value(&timeout)) return kExitUsage;
    } else if (a == "--json") {
      ctx->json = true;
    } else if (a == "-h" || a == "--help") {
      *help = true;
    } else if (a == "--version") {
      std::printf("osvictl %s\n", osvi::kVersion);
      std::exit(kExitOk);
    } else {
      rest->push_back(a);
    }
  }
  if (timeout) {
    auto t = osvi::ctl::parse_count(*timeout);
    if (!t || *t > 3600) {
      err("--timeout: seconds, 1..3600");
      return kExitUsage;
    }
    ctx->timeout_s = static_cast<long>(*t);
    ctx->timeout_given = true;
  }
  if (config) {
    osvi::daemon::AppOptions o;
    o.config_path = *config;
    auto cfg = osvi::daemon::load_configuration(o);
    if (!cfg) {
      err("--config " + *config + ": " + cfg.error().message);
      return kExitUsage;
    }
    ctx->config = std::move(*cfg);
    ctx->api = (ctx->config->api.tls_cert_pem.empty() ? "http://" : "https://") + ctx->config->api.listen;
  }
  if (api) {
    if (!api->starts_with("http://") && !api->starts_with("https://")) {
      err("--api: a URL, http://HOST:PORT");
      return kExitUsage;
    }
    ctx->api = *api;
  }
  while (!ctx->api.empty() && ctx->api.back() == '/') ctx->api.pop_back();
  if (state_dir) ctx->state_dir = *state_dir;
  if (token_file) ctx->token_file = *token_file;
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  Ctx ctx;
  std::vector<std::string> rest;
  bool help = false;
  if (int rc = parse_globals(argc, argv, &ctx, &rest, &help)) return rc;
  if (rest.empty() || rest[0] == "help") {
    if (rest.size() >= 2) {
      auto it = command_help().find(rest[1]);
      if (it == command_help().end()) return usage_error("no command " + rest[1]);
      std::fputs(it->second.c_str(), stdout);
      return kExitOk;
    }
    std::fputs(kUsage, help || !rest.empty() ? stdout : stderr);
    return help || !rest.empty() ? kExitOk : kExitUsage;
  }
  const std::string cmd = rest[0];
  const std::vector<std::string> args(rest.begin() + 1, rest.end());
  if (help) {
    auto it = command_help().find(cmd);
    if (it == command_help().end()) return usage_error("no command " + cmd);
    std::fputs(it->second.c_str(), stdout);
    return kExitOk;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = kExitUsage;
  if (cmd == "status") {
    std::string why;
    auto a = osvi::ctl::parse_args(args, {}, {}, &why);
    rc = a ? cmd_status(ctx, *a) : usage_error(why, "status");
  } else if (cmd == "calls") {
    rc = cmd_calls(ctx, args);
  } else if (cmd == "call") {
    rc = cmd_call(ctx, args);
  } else if (cmd == "lines") {
    rc = cmd_lines(ctx, args);
  } else if (cmd == "line") {
    rc = cmd_line(ctx, args);
  } else if (cmd == "audio") {
    rc = cmd_audio(ctx, args);
  } else if (cmd == "dnd") {
    rc = cmd_dnd(ctx, args);
  } else if (cmd == "campaign") {
    rc = cmd_campaign(ctx, args);
  } else if (cmd == "chat") {
    rc = cmd_chat(ctx, args);
  } else if (cmd == "errors") {
    rc = cmd_errors(ctx, args);
  } else if (cmd == "config") {
    rc = cmd_config(ctx, args);
  } else if (cmd == "logs") {
    rc = cmd_logs(ctx, args);
  } else {
    rc = usage_error("unknown command " + cmd);
  }
  curl_global_cleanup();
  return rc;
}
