// Contacts from a CSV upload, fed chunk by chunk as the body arrives: the header (or the no-header column
// order) mapped onto phone, person_name and prompt variables, each row handed on with its line number.
//
// Threading: loop thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/net/csv.hpp"

namespace osvi::daemon {

inline constexpr int64_t kMaxCsvRows = 1000000;  // data rows of one file (the JSON limit is 10,000)

// Where the rows go: ContactImport in the daemon, a recorder in tests.
class ContactRows {
 public:
  virtual ~ContactRows() = default;
  // variables_json: a JSON object text of the extra columns, none when the file has no extra column.
  virtual void add(std::string_view phone, std::optional<std::string_view> person_name,
                   std::optional<std::string> variables_json, int64_t line) = 0;
  virtual void reject(int64_t line, std::string_view raw, std::string_view reason) = 0;
};

class CsvContacts {
 public:
  // With a header, its `phone` column (case-insensitive, trimmed) is required, `person_name` optional, and
  // every other column is a variable named by its header. Without one the columns are phone, person_name,
  // then col3, col4, ...
  CsvContacts(ContactRows& rows, bool has_header, int64_t max_rows = kMaxCsvRows);

  // Why the upload cannot go on (nothing more is read): the HTTP status and the message.
  struct Failure {
    int status = 422;
    std::string message;
  };

  // False once failed (failure() says why): a header without a phone column, more than max_rows rows.
  bool feed(std::string_view chunk);
  // End of the body: the last record; false when failed, or when a header was required and none came.
  bool finish();
  const std::optional<Failure>& failure() const { return failure_; }
  int64_t rows() const { return rows_; }  // data rows seen, bad ones included

 private:
  void on_record(const net::CsvRecord& record);
  void header(const net::CsvRecord& record);
  void fail(int status, std::string message);

  ContactRows& out_;
  bool has_header_;
  int64_t max_rows_;
  net::CsvReader reader_;
  bool header_seen_ = false;
  size_t phone_col_ = 0;
  std::optional<size_t> name_col_ = 1;
  std::vector<std::string> names_;  // variable name per column; empty for phone and person_name
  int64_t rows_ = 0;
  std::optional<Failure> failure_;
};

}  // namespace osvi::daemon
