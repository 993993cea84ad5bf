// Splitting a knowledge document into search chunks: TXT by headings and paragraphs with overlap, CSV one
// chunk per row (docs/api.md "Knowledge base"). Pure functions, no I/O.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/result.hpp"
#include "osvi/store/knowledge.hpp"

namespace osvi::daemon::knowledge {

struct ChunkLimits {
  size_t max_document_bytes = 8 * 1024 * 1024;
  size_t max_chunks = 20000;       // per document
  size_t chunk_bytes = 800;        // TXT: a chunk's body (the heading line comes on top)
  size_t overlap_bytes = 120;      // TXT: trailing sentences of the previous chunk repeated, at most this
  size_t max_heading_bytes = 200;  // a longer line is never taken for a heading
  size_t max_csv_row_bytes = 16 * 1024;
  size_t max_csv_fields = 128;
};

// " > " joins a heading path ("Fees > Cards > Replacement").
inline constexpr std::string_view kPathSeparator = " > ";

// TXT. Headings recognised: markdown "#".."######" lines; a line underlined with "===" (level 1) or "---"
// (level 2); a short line standing alone (its own paragraph, at most 60 bytes) whose letters are all
// upper case, taken as level 1. Everything else is paragraphs, split at blank lines. Paragraphs of one
// section are packed into chunks of at most chunk_bytes (a longer paragraph is split at sentence ends, a
// longer sentence at spaces); a chunk after the first of its section starts with the previous chunk's last
// sentences (up to overlap_bytes). Each chunk's text starts with "<name> > <heading path>" on its own line.
// Errors: not UTF-8, NUL, empty (nothing but white space), over max_document_bytes or max_chunks.
Result<std::vector<KnowledgeChunkText>> chunk_txt(std::string_view name, std::string_view text,
                                                  const ChunkLimits& limits = {});

// CSV (net/csv.hpp's reader). With a header the first record names the columns (an empty name becomes
// "column N"); without, every column is "column N" (1-based). One chunk per data row: the document name,
// then one "column: value" line per non-empty field. A bad record fails the document with its line number.
Result<std::vector<KnowledgeChunkText>> chunk_csv(std::string_view name, std::string_view text,
                                                  bool has_header, const ChunkLimits& limits = {});

}  // namespace osvi::daemon::knowledge
