// Streaming CSV reader for contact uploads: RFC 4180 plus what spreadsheets emit, any chunking, memory
// bounded by one record, a bad row reported with its line number while the rest still loads.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace osvi::net {

struct CsvLimits {
  size_t max_field_bytes = 4096;        // one field after unquoting
  size_t max_fields = 64;               // fields in one record
  size_t max_record_bytes = 16 * 1024;  // one record as written (quotes, commas, embedded line ends)
};

// One record as the callback sees it. Every view is valid only during the callback.
struct CsvRecord {
  size_t line = 0;  // physical line (1-based) the record starts on; embedded line ends count
  std::span<const std::string_view> fields;  // empty when the record is bad
  std::string_view error;                    // why the record is bad; empty when it is good
  bool ok() const { return error.empty(); }
};

// Comma-separated, double-quoted fields with "" for a quote; CRLF, LF or a lone CR end a line (also inside
// quotes, where the line end is kept in the field as written). A UTF-8 byte order mark at the very start is
// dropped, empty lines are skipped, spaces are kept. Every field must be valid UTF-8 without NUL.
//
// A bad record (a limit broken, a quote inside an unquoted field, text after a closing quote, invalid UTF-8
// or NUL) is reported once with the first reason, and reading resumes after the next line end outside
// quotes. The record byte limit bounds how much a bad record can swallow: past it (a quote never closed,
// say) the record ends at the next physical line end whatever the quotes.
//
// The reader holds the current record only (its unquoted fields, at most max_record_bytes, and their
// offsets), never the input. on_record must not feed or finish the reader that called it.
class CsvReader {
 public:
  using OnRecord = std::function<void(const CsvRecord&)>;

  explicit CsvReader(CsvLimits limits = {}) : limits_(limits) {}

  // Calls on_record for every record that `chunk` completes. Chunks may split anything (a BOM, a CRLF, a ""
  // escape, a UTF-8 sequence); the records are the same as for the input in one piece.
  void feed(std::string_view chunk, const OnRecord& on_record);

  // End of input: the last record (a line end after it is optional), or a bad record for a quote never
  // closed. The reader is then as new, ready for another input.
  void finish(const OnRecord& on_record);

 private:
  enum class State {
    record_start,     // nothing of a record yet: a line end here is an empty line
    field_start,      // after a comma
    unquoted,         // inside an unquoted field
    quoted,           // inside quotes
    quote_in_quoted,  // a quote inside quotes: "" escape or the closing quote, the next byte decides
    to_line_end,      // past the record byte limit: everything up to the next physical line end is dropped
  };

  void consume(std::string_view bytes, const OnRecord& on_record);
  void line_end(bool cr);
  bool take_record_bytes(size_t n);
  bool take_text(std::string_view bytes);
  void end_field();
  void end_record(const OnRecord& on_record);
  std::string_view quote_hint() const;
  void fail(std::string why);
  void reset();

  CsvLimits limits_;
  State state_ = State::record_start;
  size_t bom_seen_ = 0;    // bytes of a BOM matched at the start of input while it may still be one
  bool started_ = false;   // past the BOM decision
  bool after_cr_ = false;  // the last byte was a CR line end: an LF now completes it
  size_t line_ = 1;        // the physical line being read
  size_t record_line_ = 0;
  size_t record_bytes_ = 0;  // raw bytes of the record so far
  bool bad_ = false;         // the record is bad: lex on without keeping anything, up to its end
  std::string error_;
  std::string text_;          // the fields of the record, unquoted, one after another
  std::vector<size_t> ends_;  // where each finished field ends in text_
  std::vector<std::string_view> views_;
};

}  // namespace osvi::net
