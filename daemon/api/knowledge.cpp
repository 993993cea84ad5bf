// The knowledge base extension (docs/api.md "Knowledge base"): upload, list, view and archive documents
// (admin tokens), and what an agent would retrieve for a question (GET /v1/knowledge/search).
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <memory>
#include <string>
#include <string_view>

#include "osvi/api/api.hpp"
#include "osvi/base/ids.hpp"
#include "osvi/base/log.hpp"
#include "osvi/knowledge/knowledge_service.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/text.hpp"
#include "requests.hpp"
#include "util.hpp"

namespace osvi::daemon {
namespace {

using net::HttpReply;
using net::HttpRequest;
using net::HttpResponse;
using net::JsonPtr;
using net::quoted;

HttpResponse store_error(std::string_view what, const Error& e) {
  log::error(std::string(what) + ": " + e.message);
  return Api::error(500, "database error");
}

std::string no_such(std::string_view id) {
  return "no knowledge document " + quoted(id) + " on this box";
}

// Rounded so a score prints as 0.8123, not 0.81234567890123.
double rounded(double v) {
  return std::round(v * 10000) / 10000;
}

JsonPtr document_json(const KnowledgeDocument& d, int offset, bool with_content) {
  JsonPtr o(cJSON_CreateObject());
  cJSON_AddNumberToObject(o.get(), "id", static_cast<double>(d.id));
  net::json_add_string(o.get(), "name", d.name);
  net::json_add_string(o.get(), "format", d.format);
  if (d.format == "csv") {
    cJSON_AddBoolToObject(o.get(), "header", d.csv_header);
  } else {
    cJSON_AddNullToObject(o.get(), "header");
  }
  cJSON_AddNumberToObject(o.get(), "size_bytes", static_cast<double>(d.size_bytes));
  cJSON_AddNumberToObject(o.get(), "chunk_count", static_cast<double>(d.chunk_count));
  net::json_add_string(o.get(), "sha256", d.sha256);
  net::json_add_string(o.get(), "source", d.source);
  net::json_add_string(o.get(), "uploader", d.uploader);
  net::json_add_string(o.get(), "created_at", format_local_iso(d.created_at_ms, offset));
  net::json_add_string(o.get(), "updated_at", format_local_iso(d.updated_at_ms, offset));
  cJSON_AddBoolToObject(o.get(), "archived", d.archived_at_ms.has_value());
  if (d.archived_at_ms) {
    net::json_add_string(o.get(), "archived_at", format_local_iso(*d.archived_at_ms, offset));
  } else {
    cJSON_AddNullToObject(o.get(), "archived_at");
  }
  if (with_content) net::json_add_string(o.get(), "content", d.content);
  return o;
}

bool admin_only(const ApiToken& caller, HttpReply& reply) {
  if (caller.admin) return true;
  reply.send(Api::error(403, "the knowledge base documents need an admin API token"));
  return false;
}

// "text/plain; charset=utf-8" → "text/plain".
std::string media_type(std::optional<std::string_view> header) {
  if (!header) return {};
  std::string_view t = header->substr(0, header->find(';'));
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
  std::string lower(t);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lower;
}

std::optional<bool> parse_bool(std::string_view v) {
  if (v == "true" || v == "1") return true;
  if (v == "false" || v == "0") return false;
  return std::nullopt;
}

// Unknown or repeated query parameters are refused, as on the other lists.
std::optional<std::string> check_params(const QueryParams& query,
                                        std::initializer_list<std::string_view> known) {
  std::vector<std::string_view> seen;
  for (const auto& [name, value] : query) {
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      std::string list;
      for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      return "query parameter " + quoted(name) + ": unknown (expected " + list + ")";
    }
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) return name + ": given more than once";
    seen.push_back(name);
  }
  return std::nullopt;
}

HttpResponse ingest_error(const Error& e) {
  if (e.code == -EINVAL || e.code == -EFBIG) return Api::error(422, e.message);
  if (e.code == -EPERM) return Api::error(409, e.message);
  return store_error("storing a knowledge document", e);
}

}  // namespace

bool Api::knowledge_ready(HttpReply& reply) {
  if (ctx_.knowledge != nullptr) return true;
  reply.send(error(503, "the knowledge base is not running on this box"));
  return false;
}

bool Api::knowledge_raw_upload(const HttpRequest& request) {
  if (request.method != "POST") return false;
  std::string_view path = request.path;
  while (path.size() > 1 && path.ends_with('/')) path.remove_suffix(1);
  if (path != "/v1/knowledge/documents") return false;
  const std::string type = media_type(request.header("Content-Type"));
  return type == "text/plain" || type == "text/csv";
}

void Api::upload_document(HttpRequest& request, HttpReply reply) {
  if (!admin_only(*caller_, reply) || !knowledge_ready(reply)) return;
  knowledge::IngestRequest req;
  req.uploader = "api";
  if (body_ == nullptr) {
    // A raw text/plain or text/csv body: the metadata comes in the query.
    const std::string type = media_type(request.header("Content-Type"));
    req.format = type == "text/csv" ? "csv" : "txt";
    if (auto bad = check_params(request.query, {"name", "header"})) {
      reply.send(error(422, *bad));
      return;
    }
    req.name = std::string(request.query_param("name").value_or(""));
    if (auto h = request.query_param("header")) {
      if (req.format != "csv") {
        reply.send(error(422, "header: only allowed with a text/csv body"));
        return;
      }
      auto b = parse_bool(*h);
      if (!b) {
        reply.send(error(422, "header: must be true or false, got " + quoted(*h)));
        return;
      }
      req.has_header = *b;
    }
    req.content = std::move(request.body);
  } else {
    for (const cJSON* m = body_->child; m != nullptr; m = m->next) {
      const std::string_view k = m->string;
      if (k != "name" && k != "format" && k != "content" && k != "header") {
        reply.send(error(422, quoted(k) + ": unknown field (expected name, format, content, header)"));
        return;
      }
    }
    const cJSON* name = cJSON_GetObjectItemCaseSensitive(body_.get(), "name");
    const cJSON* format = cJSON_GetObjectItemCaseSensitive(body_.get(), "format");
    const cJSON* content = cJSON_GetObjectItemCaseSensitive(body_.get(), "content");
    const cJSON* header = cJSON_GetObjectItemCaseSensitive(body_.get(), "header");
    if (!cJSON_IsString(name)) {
      reply.send(error(422, name ? "name: must be a string" : "name: required"));
      return;
    }
    if (format != nullptr && !cJSON_IsString(format)) {
      reply.send(error(422, "format: must be \"txt\" or \"csv\""));
      return;
    }
    if (!cJSON_IsString(content)) {
      reply.send(error(422, content ? "content: must be a string" : "content: required"));
      return;
    }
    req.name = name->valuestring;
    req.format = format ? format->valuestring : "txt";
    req.content = content->valuestring;
    if (header != nullptr) {
      if (!cJSON_IsBool(header)) {
        reply.send(error(422, "header: must be true or false"));
        return;
      }
      if (req.format != "csv") {
        reply.send(error(422, "header: only allowed when format is \"csv\""));
        return;
      }
      req.has_header = cJSON_IsTrue(header);
    }
  }
  auto r = ctx_.knowledge->ingest(std::move(req));
  if (!r.ok()) {
    reply.send(ingest_error(r.error()));
    return;
  }
  JsonPtr data = document_json(r->document, ctx_.config->site.utc_offset_minutes, false);
  cJSON_AddBoolToObject(data.get(), "created", r->created);
  net::json_add_int_or_null(data.get(), "replaced_id", r->replaced_id);
  if (r->created)
    log::info("knowledge document " + r->document.name + " stored (" +
              std::to_string(r->document.chunk_count) + " chunks, API)");
  JsonPtr root(cJSON_CreateObject());
  cJSON_AddBoolToObject(root.get(), "success", true);
  cJSON_AddItemToObject(root.get(), "data", data.release());
  reply.send(json_response(r->created ? 201 : 200, root.get()));
}

void Api::list_documents(HttpRequest& request, HttpReply reply) {
  if (!admin_only(*caller_, reply) || !knowledge_ready(reply)) return;
  if (auto bad = check_params(request.query, {"archived", "page", "per_page"})) {
    reply.send(error(422, *bad));
    return;
  }
  std::optional<bool> archived = false;
  int64_t page = 1;
  int64_t per_page = 20;
  if (auto a = request.query_param("archived"); a && !a->empty()) {
    if (*a == "all") {
      archived = std::nullopt;
    } else if (auto b = parse_bool(*a)) {
      archived = *b;
    } else {
      reply.send(error(422, "archived: must be true, false or all, got " + quoted(*a)));
      return;
    }
  }
  if (auto p = request.query_param("page"); p && !p->empty()) {
    auto n = parse_positive(*p);
    if (!n) {
      reply.send(error(422, "page: must be a positive integer"));
      return;
    }
    page = *n;
  }
  if (auto p = request.query_param("per_page"); p && !p->empty()) {
    auto n = parse_positive(*p);
    if (!n || *n > kMaxPerPage) {
      reply.send(error(422, "per_page: must be an integer in 1.." + std::to_string(kMaxPerPage)));
      return;
    }
    per_page = *n;
  }
  int64_t total = 0;
  auto docs = ctx_.knowledge->list(archived, page, per_page, &total);
  if (!docs.ok()) {
    reply.send(store_error("listing knowledge documents", docs.error()));
    return;
  }
  const int offset = ctx_.config->site.utc_offset_minutes;
  JsonPtr root(cJSON_CreateObject());
  cJSON_AddBoolToObject(root.get(), "success", true);
  cJSON* data = cJSON_AddArrayToObject(root.get(), "data");
  for (const KnowledgeDocument& d : *docs)
    cJSON_AddItemToArray(data, document_json(d, offset, false).release());
  cJSON* meta = cJSON_AddObjectToObject(root.get(), "meta");
  cJSON_AddNumberToObject(meta, "current_page", static_cast<double>(page));
  cJSON_AddNumberToObject(meta, "total_pages", static_cast<double>((total + per_page - 1) / per_page));
  cJSON_AddNumberToObject(meta, "total_count", static_cast<double>(total));
  cJSON_AddNumberToObject(meta, "per_page", static_cast<double>(per_page));
  reply.send(json_response(200, root.get()));
}

std::optional<KnowledgeDocument> Api::find_document(const HttpRequest& request, HttpReply& reply) {
  const std::string_view raw = request.param("id").value_or("");
  auto id = parse_positive(raw);
  if (!id) {
    reply.send(error(404, no_such(raw)));
    return std::nullopt;
  }
  auto d = ctx_.knowledge->get(*id);
  if (!d.ok()) {
    reply.send(store_error("reading a knowledge document", d.error()));
    return std::nullopt;
  }
  if (!*d) {
    reply.send(error(404, no_such(raw)));
    return std::nullopt;
  }
  return std::move(**d);
}

void Api::get_document(HttpRequest& request, HttpReply reply) {
  if (!admin_only(*caller_, reply) || !knowledge_ready(reply)) return;
  auto d = find_document(request, reply);
  if (!d) return;
  reply.send(success(document_json(*d, ctx_.config->site.utc_offset_minutes, true)));
}

void Api::archive_document(HttpRequest& request, HttpReply reply) {
  if (!admin_only(*caller_, reply) || !knowledge_ready(reply)) return;
  auto d = find_document(request, reply);
  if (!d) return;
  auto r = ctx_.knowledge->archive(d->id);
  if (!r.ok()) {
    reply.send(store_error("archiving a knowledge document", r.error()));
    return;
  }
  if (*r) log::info("knowledge document " + d->name + " (" + std::to_string(d->id) + ") archived (API)");
  auto now = ctx_.knowledge->get(d->id);
  if (!now.ok() || !*now) {
    reply.send(store_error("reading a knowledge document",
                           now.ok() ? make_error("the document vanished", -EIO) : now.error()));
    return;
  }
  reply.send(success(document_json(**now, ctx_.config->site.utc_offset_minutes, false)));
}

void Api::search_knowledge(HttpRequest& request, HttpReply reply) {
  if (!knowledge_ready(reply)) return;
  if (auto bad = check_params(request.query, {"agent_uuid", "q", "k"})) {
    reply.send(error(422, *bad));
    return;
  }
  const std::string agent_uuid(request.query_param("agent_uuid").value_or(""));
  const std::string q(request.query_param("q").value_or(""));
  if (agent_uuid.empty()) {
    reply.send(error(422, "agent_uuid: required"));
    return;
  }
  if (!token_allows(*caller_, agent_uuid)) {
    reply.send(error(403, "agent_uuid: this API token may not use agent " + quoted(agent_uuid)));
    return;
  }
  std::optional<unsigned> k;
  if (auto raw = request.query_param("k"); raw && !raw->empty()) {
    auto n = parse_positive(*raw);
    if (!n || *n > 10) {
      reply.send(error(422, "k: must be an integer in 1..10"));
      return;
    }
    k = static_cast<unsigned>(*n);
  }
  const auto& agents = ctx_.config->agents;
  auto agent = std::find_if(agents.begin(), agents.end(),
                            [&](const AgentConfig& a) { return a.agent_uuid == agent_uuid; });
  if (agent == agents.end()) {
    reply.send(error(404, "agent_uuid: no agent " + quoted(agent_uuid) + " on this box"));
    return;
  }
  bool blank = std::all_of(q.begin(), q.end(), [](char c) { return c == ' ' || c == '\t'; });
  if (blank) {
    reply.send(error(422, "q: required"));
    return;
  }
  auto shared = std::make_shared<HttpReply>(std::move(reply));
  ctx_.knowledge->search(agent->knowledge, q, k, [shared, agent_uuid](Result<knowledge::SearchResult> r) {
    if (!r.ok()) {
      if (r.error().code == -EINVAL) {
        shared->send(error(422, r.error().message));
      } else {
        shared->send(store_error("searching the knowledge base", r.error()));
      }
      return;
    }
    JsonPtr data(cJSON_CreateObject());
    net::json_add_string(data.get(), "agent_uuid", agent_uuid);
    net::json_add_string(data.get(), "mode", r->mode);
    if (r->fallback_reason.empty()) {
      cJSON_AddNullToObject(data.get(), "fallback_reason");
    } else {
      net::json_add_string(data.get(), "fallback_reason", r->fallback_reason);
    }
    cJSON_AddNumberToObject(data.get(), "relevance_threshold", r->relevance_threshold);
    cJSON_AddNumberToObject(data.get(), "k", r->k);
    cJSON_AddNumberToObject(data.get(), "chunks_searched", static_cast<double>(r->chunks_searched));
    cJSON_AddNumberToObject(data.get(), "chunks_without_vectors",
                            static_cast<double>(r->chunks_without_vectors));
    cJSON* missing = cJSON_AddArrayToObject(data.get(), "missing_documents");
    for (const std::string& m : r->missing_documents)
      cJSON_AddItemToArray(missing, cJSON_CreateString(m.c_str()));
    cJSON* hits = cJSON_AddArrayToObject(data.get(), "results");
    for (const knowledge::SearchHit& h : r->hits) {
      cJSON* o = cJSON_CreateObject();
      cJSON_AddNumberToObject(o, "chunk_id", static_cast<double>(h.chunk_id));
      cJSON_AddNumberToObject(o, "document_id", static_cast<double>(h.document_id));
      net::json_add_string(o, "document_name", h.document_name);
      cJSON_AddNumberToObject(o, "ordinal", static_cast<double>(h.ordinal));
      net::json_add_string(o, "heading", h.heading);
      net::json_add_string(o, "text", h.text);
      cJSON_AddNumberToObject(o, "score", rounded(h.score));
      if (h.bm25) {
        cJSON_AddNumberToObject(o, "bm25", rounded(*h.bm25));
      } else {
        cJSON_AddNullToObject(o, "bm25");
      }
      if (h.cosine) {
        cJSON_AddNumberToObject(o, "cosine", rounded(*h.cosine));
      } else {
        cJSON_AddNullToObject(o, "cosine");
      }
      cJSON_AddItemToArray(hits, o);
    }
    shared->send(success(std::move(data)));
  });
}

}  // namespace osvi::daemon
