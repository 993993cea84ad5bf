// CsvReader: a byte-level state machine whose whole state lives in the reader, so a chunk boundary anywhere
// changes nothing; runs of plain field bytes are copied in one go.
#include "osvi/net/csv.hpp"

#include <array>
#include <cstdio>

#include "osvi/net/text.hpp"

namespace osvi::net {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

// Bytes that end a run of plain text: outside quotes (comma, quote, line ends) and inside them.
constexpr auto kStopUnquoted = [] {
  std::array<bool, 256> t{};
  t[','] = t['"'] = t['\r'] = t['\n'] = true;
  return t;
}();
constexpr auto kStopQuoted = [] {
  std::array<bool, 256> t{};
  t['"'] = t['\r'] = t['\n'] = true;
  return t;
}();

size_t run_end(std::string_view in, size_t i, const std::array<bool, 256>& stop) {
  while (i < in.size() && !stop[static_cast<unsigned char>(in[i])]) ++i;
  return i;
}

}  // namespace

void CsvReader::feed(std::string_view chunk, const OnRecord& on_record) {
  if (!started_) {
    // The BOM may itself arrive split: bytes that match it so far are held (as a count) until decided.
    while (!chunk.empty() && bom_seen_ < kBom.size() && chunk.front() == kBom[bom_seen_]) {
      ++bom_seen_;
      chunk.remove_prefix(1);
    }
    if (bom_seen_ < kBom.size() && chunk.empty()) return;
    started_ = true;
    // A BOM's first bytes followed by something else are text (invalid UTF-8, so a bad first record).
    if (bom_seen_ < kBom.size()) consume(kBom.substr(0, bom_seen_), on_record);
  }
  consume(chunk, on_record);
}

void CsvReader::finish(const OnRecord& on_record) {
  if (!started_) consume(kBom.substr(0, bom_seen_), on_record);
  if (state_ == State::quoted && !bad_)
    fail("field " + std::to_string(ends_.size() + 1) + ": quote not closed at the end of the input");
  if (state_ != State::record_start) {
    if (state_ != State::to_line_end) end_field();
    end_record(on_record);
  }
  reset();
}

void CsvReader::reset() {
  state_ = State::record_start;
  bom_seen_ = 0;
  started_ = after_cr_ = bad_ = false;
  line_ = 1;
  record_line_ = record_bytes_ = 0;
  error_.clear();
  text_.clear();
  ends_.clear();
}

void CsvReader::consume(std::string_view in, const OnRecord& on_record) {
  size_t i = 0;
  while (i < in.size()) {
    const char c = in[i];
    if (after_cr_) {
      after_cr_ = false;
      if (c == '\n') {  // the LF of a CRLF: the line end was counted at the CR
        ++i;
        if (state_ == State::quoted) take_text("\n");
        continue;
      }
    }
    switch (state_) {
      case State::record_start:
        if (c == '\r' || c == '\n') {  // an empty line
          line_end(c == '\r');
          ++i;
          break;
        }
        record_line_ = line_;
        state_ = State::field_start;
        break;
      case State::field_start:
        if (c == '"') {
          if (take_record_bytes(1)) state_ = State::quoted;
          ++i;
        } else {
          state_ = State::unquoted;
        }
        break;
      case State::unquoted: {
        const size_t j = run_end(in, i, kStopUnquoted);
        if (j > i) {
          take_text(in.substr(i, j - i));
          i = j;
          break;
        }
        if (c == ',') {
          if (take_record_bytes(1)) {
            end_field();
            if (!bad_ && ends_.size() == limits_.max_fields)
              fail("more than " + std::to_string(limits_.max_fields) + " fields");
            state_ = State::field_start;
          }
          ++i;
        } else if (c == '"') {
          // Kept out of the field and lexed as a plain byte from here on, so the line end after it still
          // ends the record: one stray quote costs one row, not the rest of the file.
          if (take_record_bytes(1) && !bad_)
            fail("field " + std::to_string(ends_.size() + 1) +
                 ": a quote inside an unquoted field (quote the whole field and double the quote)");
          ++i;
        } else {
          end_field();
          end_record(on_record);
          line_end(c == '\r');
          ++i;
        }
        break;
      }
      case State::quoted: {
        const size_t j = run_end(in, i, kStopQuoted);
        if (j > i) {
          take_text(in.substr(i, j - i));
          i = j;
          break;
        }
        if (c == '"') {
          if (take_record_bytes(1)) state_ = State::quote_in_quoted;
          ++i;
        } else if (take_text(in.substr(i, 1))) {  // a line end inside quotes belongs to the field
          line_end(c == '\r');
          ++i;
        }  // else: over the limit, and to_line_end takes this line end as the record's end
        break;
      }
      case State::quote_in_quoted:
        if (c == '"') {  // "" is one quote
          if (take_text("\"")) state_ = State::quoted;
          ++i;
        } else if (c == ',' || c == '\r' || c == '\n') {
          state_ = State::unquoted;  // the field is closed; the unquoted case ends it the same way
        } else {
          if (!bad_) fail("field " + std::to_string(ends_.size() + 1) + ": text after the closing quote");
          state_ = State::unquoted;
        }
        break;
      case State::to_line_end: {
        const size_t end = in.find_first_of("\r\n", i);
        if (end == std::string_view::npos) {
          i = in.size();
          break;
        }
        end_record(on_record);
        line_end(in[end] == '\r');
        i = end + 1;
        break;
      }
    }
  }
}

void CsvReader::line_end(bool cr) {
  ++line_;
  after_cr_ = cr;
}

// Counts n more bytes of the record as written. Past the limit the record is bad and the rest of it, up to
// the next physical line end, is dropped unread: the caller consumes nothing more of it.
bool CsvReader::take_record_bytes(size_t n) {
  record_bytes_ += n;
  if (record_bytes_ <= limits_.max_record_bytes) return true;
  if (!bad_)
    fail("record longer than " + std::to_string(limits_.max_record_bytes) + " bytes" +
         std::string(quote_hint()));
  state_ = State::to_line_end;
  return false;
}

// Field text: counted as record bytes and kept in the field. Whichever limit the bytes break first, byte by
// byte, is the one reported, so the reason does not depend on where the chunks were cut.
bool CsvReader::take_text(std::string_view bytes) {
  if (!bad_) {
    const size_t field = text_.size() - (ends_.empty() ? 0 : ends_.back());
    const size_t field_room = limits_.max_field_bytes - field;
    if (bytes.size() > field_room && field_room < limits_.max_record_bytes - record_bytes_)
      fail("field " + std::to_string(ends_.size() + 1) + ": longer than " +
           std::to_string(limits_.max_field_bytes) + " bytes" + std::string(quote_hint()));
  }
  if (!take_record_bytes(bytes.size())) return false;
  if (!bad_) text_.append(bytes);
  return true;
}

void CsvReader::end_field() {
  if (bad_) return;
  const size_t start = ends_.empty() ? 0 : ends_.back();
  const std::string_view field(text_.data() + start, text_.size() - start);
  size_t at = field.find('\0');
  if (const auto invalid = utf8_invalid_at(field); invalid && *invalid < at) at = *invalid;
  if (at != std::string_view::npos) {
    std::string what = "NUL byte";
    if (field[at] != '\0') {
      char byte[8];
      std::snprintf(byte, sizeof byte, "0x%02x", static_cast<unsigned char>(field[at]));
      what = std::string("invalid UTF-8 (byte ") + byte + ")";
    }
    fail("field " + std::to_string(ends_.size() + 1) + ": " + what + " at offset " + std::to_string(at));
    return;
  }
  ends_.push_back(text_.size());
}

void CsvReader::end_record(const OnRecord& on_record) {
  views_.clear();
  if (!bad_) {
    size_t start = 0;
    for (size_t end : ends_) {
      views_.emplace_back(text_.data() + start, end - start);
      start = end;
    }
  }
  on_record(CsvRecord{record_line_, views_, error_});
  state_ = State::record_start;
  record_bytes_ = 0;
  bad_ = false;
  error_.clear();
  text_.clear();
  ends_.clear();
}

// A limit broken inside quotes that already span a line end is most often a quote never closed: say so.
std::string_view CsvReader::quote_hint() const {
  if ((state_ == State::quoted || state_ == State::quote_in_quoted) && line_ > record_line_)
    return " (inside a quoted field: a quote never closed?)";
  return "";
}

void CsvReader::fail(std::string why) {
  bad_ = true;
  error_ = std::move(why);
}

}  // namespace osvi::net
