// Chunking of knowledge documents: TXT by headings, paragraphs and sentences with overlap; CSV by rows.
#include "osvi/knowledge/chunking.hpp"

#include <cerrno>
#include <optional>
#include <utility>

#include "osvi/net/csv.hpp"
#include "osvi/net/text.hpp"

namespace osvi::daemon::knowledge {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string mib(size_t bytes) {
  return std::to_string(bytes / (1024 * 1024)) + " MiB";
}

// The checks both formats share; the message names what is wrong and where.
Status check_text(std::string_view text, const ChunkLimits& limits) {
  if (text.size() > limits.max_document_bytes)
    return make_error("the document is " + std::to_string(text.size()) + " bytes, more than the " +
                          mib(limits.max_document_bytes) + " limit",
                      -EFBIG);
  if (auto at = net::utf8_invalid_at(text))
    return make_error("the document is not valid UTF-8 (byte " + std::to_string(*at) + ")", -EINVAL);
  if (auto nul = text.find('\0'); nul != std::string_view::npos)
    return make_error("the document contains a NUL byte (byte " + std::to_string(nul) + ")", -EINVAL);
  if (trim(text).empty()) return make_error("the document is empty", -EINVAL);
  return {};
}

Status too_many_chunks(const ChunkLimits& limits) {
  return make_error("the document makes more than " + std::to_string(limits.max_chunks) +
                        " chunks (split it into several documents)",
                    -EFBIG);
}

// A line of the form "# Title" (up to three leading spaces, 1–6 '#', then a space or the line's end).
std::optional<std::pair<int, std::string_view>> atx_heading(std::string_view line) {
  size_t i = 0;
  while (i < line.size() && i < 3 && line[i] == ' ') ++i;
  size_t hashes = 0;
  while (i + hashes < line.size() && line[i + hashes] == '#') ++hashes;
  if (hashes == 0 || hashes > 6) return std::nullopt;
  const size_t after = i + hashes;
  if (after < line.size() && line[after] != ' ' && line[after] != '\t') return std::nullopt;
  std::string_view title = trim(line.substr(after));
  while (!title.empty() && title.back() == '#') title.remove_suffix(1);  // "## Fees ##"
  title = trim(title);
  if (title.empty()) return std::nullopt;
  return std::make_pair(static_cast<int>(hashes), title);
}

// "====" or "----" (at least three, nothing else): the previous line is a heading (level 1 or 2).
int underline_level(std::string_view line) {
  line = trim(line);
  if (line.size() < 3) return 0;
  const char c = line.front();
  if (c != '=' && c != '-') return 0;
  for (char x : line) {
    if (x != c) return 0;
  }
  return c == '=' ? 1 : 2;
}

// A short line of its own whose letters are all capitals ("OPENING HOURS"); not a sentence.
bool caps_heading(std::string_view line) {
  if (line.size() > 60 || line.back() == '.' || line.back() == ',') return false;
  bool letter = false;
  for (char c : line) {
    if (c >= 'a' && c <= 'z') return false;
    if (c >= 'A' && c <= 'Z') letter = true;
  }
  return letter;
}

// Sentences of a paragraph: ends after '.', '!' or '?' followed by white space, and at every line end
// (list items, table-like lines). Each trimmed, none empty.
std::vector<std::string_view> sentences(std::string_view text) {
  std::vector<std::string_view> out;
  size_t start = 0;
  auto push = [&](size_t end) {
    std::string_view s = trim(text.substr(start, end - start));
    if (!s.empty()) out.push_back(s);
    start = end;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n') {
      push(i + 1);
    } else if ((c == '.' || c == '!' || c == '?') && (i + 1 == text.size() || is_space(text[i + 1]))) {
      push(i + 1);
    }
  }
  push(text.size());
  return out;
}

// Cuts text at most max bytes long: at the last space before the limit, else at a UTF-8 boundary.
std::vector<std::string_view> hard_split(std::string_view text, size_t max) {
  std::vector<std::string_view> out;
  while (text.size() > max) {
    size_t cut = text.rfind(' ', max);
    if (cut == std::string_view::npos || cut < max / 2) {
      cut = max;
      while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    }
    out.push_back(trim(text.substr(0, cut)));
    text = trim(text.substr(cut));
  }
  if (!text.empty()) out.push_back(text);
  return out;
}

struct Section {
  std::string path;
  std::vector<std::string> paragraphs;
};

// The trailing sentences of a chunk body that fit in budget bytes: the next chunk's opening context.
std::string overlap_of(std::string_view body, size_t budget) {
  std::vector<std::string_view> s = sentences(body);
  size_t take = 0;
  size_t bytes = 0;
  while (take < s.size()) {
    const size_t n = s[s.size() - 1 - take].size() + (take > 0 ? 1 : 0);
    if (bytes + n > budget) break;
    bytes += n;
    ++take;
  }
  if (take == s.size()) return {};  // the whole chunk: repeating it all would only duplicate it
  std::string out;
  for (size_t i = s.size() - take; i < s.size(); ++i) {
    if (!out.empty()) out += ' ';
    out += s[i];
  }
  return out;
}

}  // namespace

Result<std::vector<KnowledgeChunkText>> chunk_txt(std::string_view name, std::string_view text,
                                                  const ChunkLimits& limits) {
  if (Status s = check_text(text, limits); !s.ok()) return s.error();

  // 1. Lines → sections of paragraphs, each section under the heading path in force.
  std::vector<Section> sections(1);
  std::vector<std::pair<int, std::string>> stack;  // (level, title)
  std::vector<std::string_view> para;              // lines of the paragraph being read
  auto set_heading = [&](int level, std::string_view title) {
    while (!stack.empty() && stack.back().first >= level) stack.pop_back();
    stack.emplace_back(level, std::string(title.substr(0, limits.max_heading_bytes)));
    Section s;
    for (const auto& [l, t] : stack) {
      if (!s.path.empty()) s.path += kPathSeparator;
      s.path += t;
    }
    sections.push_back(std::move(s));
  };
  auto flush = [&]() {
    if (para.empty()) return;
    if (para.size() == 1 && caps_heading(para[0])) {
      set_heading(1, para[0]);
    } else {
      std::string p;
      for (std::string_view l : para) {
        if (!p.empty()) p += '\n';
        p += l;
      }
      sections.back().paragraphs.push_back(std::move(p));
    }
    para.clear();
  };
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::string_view t = trim(line);
    if (t.empty()) {
      flush();
      continue;
    }
    if (auto h = atx_heading(line)) {
      flush();
      set_heading(h->first, h->second);
      continue;
    }
    if (int level = underline_level(t)) {
      if (para.size() == 1 && para[0].size() <= limits.max_heading_bytes) {
        std::string_view title = para[0];
        para.clear();
        set_heading(level, title);
      } else {
        flush();  // a rule between paragraphs: a break, no text
      }
      continue;
    }
    para.push_back(t);
  }
  flush();

  // 2. Each section's paragraphs packed into bounded chunks.
  std::vector<KnowledgeChunkText> out;
  for (const Section& sec : sections) {
    const std::string lead =
        std::string(name) + (sec.path.empty() ? "" : std::string(kPathSeparator) + sec.path);
    std::string body;
    bool fresh = false;  // body holds text no chunk has carried yet
    auto emit = [&]() -> Status {
      if (out.size() >= limits.max_chunks) return too_many_chunks(limits);
      out.push_back(KnowledgeChunkText{sec.path, lead + "\n" + body});
      body = overlap_of(body, limits.overlap_bytes);
      fresh = false;
      return {};
    };
    for (const std::string& p : sec.paragraphs) {
      std::vector<std::string_view> pieces;
      if (p.size() <= limits.chunk_bytes) {
        pieces.push_back(p);
      } else {
        for (std::string_view s : sentences(p)) {
          if (s.size() <= limits.chunk_bytes) {
            pieces.push_back(s);
          } else {
            for (std::string_view h : hard_split(s, limits.chunk_bytes)) pieces.push_back(h);
          }
        }
      }
      for (size_t i = 0; i < pieces.size(); ++i) {
        const std::string_view joiner = i == 0 ? "\n\n" : " ";
        if (fresh && body.size() + joiner.size() + pieces[i].size() > limits.chunk_bytes) {
          if (Status s = emit(); !s.ok()) return s.error();
        }
        // The overlap goes only where the piece still fits after it.
        if (!fresh && body.size() + joiner.size() + pieces[i].size() > limits.chunk_bytes) body.clear();
        if (!body.empty()) body += joiner;
        body += pieces[i];
        fresh = true;
      }
    }
    if (fresh) {
      if (Status s = emit(); !s.ok()) return s.error();
    }
  }
  if (out.empty()) return make_error("the document has headings but no text to search", -EINVAL);
  return out;
}

Result<std::vector<KnowledgeChunkText>> chunk_csv(std::string_view name, std::string_view text,
                                                  bool has_header, const ChunkLimits& limits) {
  if (Status s = check_text(text, limits); !s.ok()) return s.error();
  net::CsvLimits csv;
  csv.max_fields = limits.max_csv_fields;
  csv.max_record_bytes = limits.max_csv_row_bytes;
  csv.max_field_bytes = limits.max_csv_row_bytes;
  net::CsvReader reader(csv);
  std::vector<std::string> columns;
  bool header_pending = has_header;
  std::optional<Error> failure;
  std::vector<KnowledgeChunkText> out;
  auto column = [&](size_t i) {
    return i < columns.size() && !columns[i].empty() ? columns[i] : "column " + std::to_string(i + 1);
  };
  auto on_record = [&](const net::CsvRecord& r) {
    if (failure) return;
    if (!r.ok()) {
      failure = make_error("CSV line " + std::to_string(r.line) + ": " + std::string(r.error), -EINVAL);
      return;
    }
    if (header_pending) {
      header_pending = false;
      for (std::string_view f : r.fields) columns.emplace_back(trim(f));
      return;
    }
    std::string body;
    for (size_t i = 0; i < r.fields.size(); ++i) {
      std::string_view v = trim(r.fields[i]);
      if (v.empty()) continue;
      body += '\n';
      body += column(i);
      body += ": ";
      body += v;
    }
    if (body.empty()) return;  // a row of empty fields says nothing
    if (out.size() >= limits.max_chunks) {
      failure = too_many_chunks(limits).error();
      return;
    }
    out.push_back(KnowledgeChunkText{std::string(name), std::string(name) + body});
  };
  reader.feed(text, on_record);
  reader.finish(on_record);
  if (failure) return *failure;
  if (out.empty())
    return make_error(has_header ? "the CSV has a header but no data rows" : "the CSV has no rows", -EINVAL);
  return out;
}

}  // namespace osvi::daemon::knowledge
