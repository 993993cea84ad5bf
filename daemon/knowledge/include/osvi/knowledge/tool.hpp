// The search_knowledge_base tool that voice and chat agents offer their model: its spec, its arguments and
// the tool message a SearchResult becomes (docs/api.md "The search_knowledge_base tool").
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "osvi/knowledge/knowledge_service.hpp"
#include "osvi/net/upstream.hpp"
#include "osvi/result.hpp"

namespace osvi::daemon::knowledge {

inline constexpr std::string_view kSearchToolName = "search_knowledge_base";
// The tool message is read by the model on every later request of the conversation: it stays small.
inline constexpr size_t kToolMaxBytes = 6 * 1024;       // the whole message
inline constexpr size_t kToolMaxChunkBytes = 1500;      // one hit's text
inline constexpr size_t kToolMaxArgumentsBytes = 4096;  // the model's arguments JSON
inline constexpr std::string_view kToolNoResult =
    "No relevant information found in the knowledge base. Tell the caller you do not know rather than "
    "guessing.";

// Offered when the agent has at least one attached document.
bool search_tool_offered(const AgentKnowledgeConfig& agent);
net::ToolSpec search_tool_spec();

// The `query` of the model's arguments (a JSON object with one non-empty string `query` of at most
// kMaxQueryBytes). -EINVAL with a message the model can act on otherwise.
Result<std::string> parse_search_arguments(std::string_view arguments_json);

// The tool message: each hit (best first) with its source document and heading, trimmed to
// kToolMaxChunkBytes, while the message stays within kToolMaxBytes, then the list of sources; kToolNoResult
// when nothing passed the agent's threshold.
std::string render_search_result(const SearchResult& result);
// The tool message when the search itself failed.
std::string render_search_error(const Error& error);
// One line for the transcript: "2 hits (Opening hours, Price list)" / "no hit above the threshold 0.30".
std::string summarize_search(const SearchResult& result);

}  // namespace osvi::daemon::knowledge
