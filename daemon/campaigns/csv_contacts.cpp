// Contacts CSV rows → contacts: header mapping, extra columns as prompt variables, line numbers, row cap.
#include "osvi/campaigns/csv_contacts.hpp"

#include <cjson/cJSON.h>

#include <algorithm>

#include "osvi/net/json.hpp"
#include "osvi/net/text.hpp"

namespace osvi::daemon {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

}  // namespace

CsvContacts::CsvContacts(ContactRows& rows, bool has_header, int64_t max_rows)
    : out_(rows), has_header_(has_header), max_rows_(max_rows) {}

void CsvContacts::fail(int status, std::string message) {
  if (!failure_) failure_ = Failure{status, std::move(message)};
}

bool CsvContacts::feed(std::string_view chunk) {
  if (failure_) return false;
  reader_.feed(chunk, [this](const net::CsvRecord& r) { on_record(r); });
  return !failure_;
}

bool CsvContacts::finish() {
  if (failure_) return false;
  reader_.finish([this](const net::CsvRecord& r) { on_record(r); });
  if (!failure_ && has_header_ && !header_seen_)
    fail(422, "the file is empty: expected a header row with a phone column");
  return !failure_;
}

void CsvContacts::header(const net::CsvRecord& r) {
  header_seen_ = true;
  if (!r.ok()) {
    fail(422, "line " + std::to_string(r.line) + ": the header row cannot be read: " + std::string(r.error));
    return;
  }
  std::optional<size_t> phone;
  name_col_.reset();
  names_.assign(r.fields.size(), std::string());
  for (size_t i = 0; i < r.fields.size(); ++i) {
    const std::string_view name = trim(r.fields[i]);
    if (iequals(name, "phone")) {
      if (phone) return fail(422, "header: more than one phone column");
      phone = i;
    } else if (iequals(name, "person_name")) {
      if (name_col_) return fail(422, "header: more than one person_name column");
      name_col_ = i;
    } else {
      // A column without a name still carries its values, under its position.
      std::string var = name.empty() ? "col" + std::to_string(i + 1) : std::string(name);
      if (std::find(names_.begin(), names_.end(), var) != names_.end())
        return fail(422, "header: column " + net::quoted(var) + " appears twice");
      names_[i] = std::move(var);
    }
  }
  if (!phone) {
    std::string cols;
    for (std::string_view f : r.fields) cols += (cols.empty() ? "" : ", ") + net::quoted(trim(f), 64);
    fail(422,
         "header: a phone column is required (the header has " + (cols.empty() ? "no columns" : cols) + ")");
    return;
  }
  phone_col_ = *phone;
}

void CsvContacts::on_record(const net::CsvRecord& r) {
  if (failure_) return;
  if (has_header_ && !header_seen_) {
    header(r);
    return;
  }
  if (++rows_ > max_rows_) {
    fail(413, "the file has more than " + std::to_string(max_rows_) + " rows (line " +
                  std::to_string(r.line) + "); split it into several uploads");
    return;
  }
  const auto line = static_cast<int64_t>(r.line);
  if (!r.ok()) {
    out_.reject(line, "", r.error);
    return;
  }
  if (has_header_ && r.fields.size() > names_.size()) {
    out_.reject(line, r.fields.empty() ? std::string_view() : r.fields[0],
                std::to_string(r.fields.size()) + " fields, the header names " +
                    std::to_string(names_.size()) + " columns");
    return;
  }
  const std::string_view phone = phone_col_ < r.fields.size() ? r.fields[phone_col_] : std::string_view();
  std::optional<std::string_view> name;
  if (name_col_ && *name_col_ < r.fields.size() && !trim(r.fields[*name_col_]).empty())
    name = trim(r.fields[*name_col_]);
  net::JsonPtr vars;
  for (size_t i = 0; i < r.fields.size(); ++i) {
    if (i == phone_col_ || (name_col_ && i == *name_col_)) continue;
    if (!vars) vars.reset(cJSON_CreateObject());
    const std::string key = has_header_ ? names_[i] : "col" + std::to_string(i + 1);
    net::json_add_string(vars.get(), key.c_str(), r.fields[i]);
  }
  out_.add(phone, name, vars ? std::optional<std::string>(net::json_print(vars.get())) : std::nullopt, line);
}

}  // namespace osvi::daemon
