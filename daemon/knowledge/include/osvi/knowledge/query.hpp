// A search query made safe for FTS5, and the stand-in embedding function (tests, bench, model server).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace osvi::daemon::knowledge {

inline constexpr size_t kMaxQueryTerms = 32;
inline constexpr size_t kMaxTermBytes = 64;

// The query's words: runs of ASCII letters and digits and of non-ASCII characters (Devanagari, accented
// Latin), lower-cased (ASCII), English stop words dropped, each once, at most kMaxQueryTerms, each at most
// kMaxTermBytes (cut at a character boundary). Everything else (quotes, '-', ':', '*', '(', ')', '^') only
// separates words, so no operator of the MATCH syntax survives.
std::vector<std::string> query_terms(std::string_view query);

// One term as a MATCH string: in double quotes (a term never holds '"').
std::string quote_term(std::string_view term);

// '"term1" OR "term2" ...' over query_terms(): a MATCH expression of quoted strings only (a term never holds
// '"'); empty when the query has no words.
std::string fts_match(std::string_view query);

}  // namespace osvi::daemon::knowledge
