// The search_knowledge_base tool: its spec, argument parsing and the bounded tool message of a search.
#include "osvi/knowledge/tool.hpp"

#include <cJSON.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "osvi/net/json.hpp"
#include "osvi/net/text.hpp"

namespace osvi::daemon::knowledge {

namespace {

// The longest prefix of `text` within `max` bytes that ends on a UTF-8 character boundary, shortened to the
// last space when that loses little, with "…" when anything was cut.
std::string trim_to(std::string_view text, size_t max) {
  if (text.size() <= max) return std::string(text);
  constexpr std::string_view kEllipsis = "…";
  size_t n = max > kEllipsis.size() ? max - kEllipsis.size() : 0;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  if (size_t space = text.rfind(' ', n); space != std::string_view::npos && space > n * 3 / 4) n = space;
  std::string out(text.substr(0, n));
  while (!out.empty() && (out.back() == ' ' || out.back() == '\n')) out.pop_back();
  return out + std::string(kEllipsis);
}

std::string quoted_list(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::vector<std::string> sources(const SearchResult& r) {
  std::vector<std::string> names;
  for (const SearchHit& h : r.hits)
    if (std::find(names.begin(), names.end(), h.document_name) == names.end())
      names.push_back(h.document_name);
  return names;
}

}  // namespace

bool search_tool_offered(const AgentKnowledgeConfig& agent) {
  return !agent.documents.empty();
}

net::ToolSpec search_tool_spec() {
  net::JsonPtr schema(cJSON_CreateObject());
  cJSON_AddStringToObject(schema.get(), "type", "object");
  cJSON* props = cJSON_AddObjectToObject(schema.get(), "properties");
  cJSON* query = cJSON_AddObjectToObject(props, "query");
  cJSON_AddStringToObject(query, "type", "string");
  cJSON_AddStringToObject(
      query, "description",
      "what to look up, as a short question or keywords (e.g. \"opening hours on Sunday\")");
  cJSON* required = cJSON_AddArrayToObject(schema.get(), "required");
  cJSON_AddItemToArray(required, cJSON_CreateString("query"));
  return {std::string(kSearchToolName),
          "Search the business's knowledge base (its documents: services, prices, hours, policies, "
          "procedures). Use it for any fact about the business that is not already in the conversation "
          "instead of guessing; if it finds nothing relevant, say you do not know.",
          net::json_print(schema.get())};
}

Result<std::string> parse_search_arguments(std::string_view arguments_json) {
  if (arguments_json.size() > kToolMaxArgumentsBytes)
    return make_error("the arguments are " + std::to_string(arguments_json.size()) + " bytes, more than " +
                      std::to_string(kToolMaxArgumentsBytes));
  std::string error;
  net::JsonPtr args =
      net::json_parse(arguments_json.empty() ? std::string_view("{}") : arguments_json, &error);
  if (!args) return make_error("the arguments are not valid JSON: " + error);
  if (!cJSON_IsObject(args.get())) return make_error("the arguments must be a JSON object with a \"query\"");
  const cJSON* q = cJSON_GetObjectItemCaseSensitive(args.get(), "query");
  if (!q) return make_error("the argument \"query\" is required");
  if (!cJSON_IsString(q)) return make_error("the argument \"query\" must be a string");
  std::string query = q->valuestring;
  const size_t first = query.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return make_error("the argument \"query\" is empty");
  query = query.substr(first, query.find_last_not_of(" \t\r\n") - first + 1);
  if (query.size() > kMaxQueryBytes)
    return make_error("the argument \"query\" is longer than " + std::to_string(kMaxQueryBytes) + " bytes");
  if (!net::utf8_valid(query)) return make_error("the argument \"query\" is not valid UTF-8");
  return query;
}

std::string render_search_result(const SearchResult& r) {
  if (r.hits.empty()) return std::string(kToolNoResult);
  const std::string head = "Knowledge base results, best first. Answer from them only:\n";
  const std::vector<std::string> names = sources(r);
  // The sources line is always kept: the budget for the hits is what remains.
  const std::string tail = "\nSources: " + trim_to(quoted_list(names), 1024);
  const size_t budget = kToolMaxBytes - std::min(kToolMaxBytes, head.size() + tail.size());
  std::string body;
  size_t n = 0;
  for (const SearchHit& h : r.hits) {
    if (n == r.k && r.k > 0) break;
    std::string label = "[";
    label.append(std::to_string(n + 1)).append("] ").append(trim_to(h.document_name, 200));
    if (!h.heading.empty()) label.append(" — ").append(trim_to(h.heading, 200));
    label.append(":\n");
    const size_t room = budget > body.size() + label.size() ? budget - body.size() - label.size() : 0;
    if (room < 64) break;  // too little left to carry a useful excerpt
    body += label + trim_to(h.text, std::min(room - 1, kToolMaxChunkBytes)) + "\n";
    ++n;
  }
  std::string out = head;
  out.append(body).append(std::string_view(tail).substr(1));
  return out;
}

std::string render_search_error(const Error& error) {
  return "The knowledge base search failed (" + trim_to(error.message, 300) +
         "). Tell the caller you cannot check that right now rather than guessing.";
}

std::string summarize_search(const SearchResult& r) {
  if (r.hits.empty()) {
    char t[32];
    std::snprintf(t, sizeof t, "%.2f", r.relevance_threshold);
    return "no hit above the threshold " + std::string(t);
  }
  return std::to_string(r.hits.size()) + (r.hits.size() == 1 ? " hit (" : " hits (") +
         trim_to(quoted_list(sources(r)), 500) + ")";
}

}  // namespace osvi::daemon::knowledge
